//! The live state a plan is computed from: what each system read, with a
//! fingerprint per resource, and the requests a server cannot serve.
//! Backends produce it; the diff and the stale check read it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::resource::{Address, Value};

/// A resource as it is live, with a fingerprint that changes whenever it does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LiveResource {
    pub value: Value,
    /// Topic config digest, etcd mod revision…
    pub fingerprint: String,
}

/// The fingerprint recorded for a resource that does not exist.
pub const ABSENT: &str = "absent";

/// A protocol request a server may not support.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Api {
    CreateTopics,
    DeleteTopics,
    CreatePartitions,
    DescribeConfigs,
    IncrementalAlterConfigs,
    DescribeAcls,
    CreateAcls,
    DeleteAcls,
}

impl Api {
    pub const KAFKA: [Api; 8] = [
        Api::CreateTopics,
        Api::DeleteTopics,
        Api::CreatePartitions,
        Api::DescribeConfigs,
        Api::IncrementalAlterConfigs,
        Api::DescribeAcls,
        Api::CreateAcls,
        Api::DeleteAcls,
    ];

    /// The Kafka protocol API key.
    pub fn kafka_key(self) -> i16 {
        match self {
            Api::CreateTopics => 19,
            Api::DeleteTopics => 20,
            Api::CreatePartitions => 37,
            Api::DescribeConfigs => 32,
            Api::IncrementalAlterConfigs => 44,
            Api::DescribeAcls => 29,
            Api::CreateAcls => 30,
            Api::DeleteAcls => 31,
        }
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// What one system read: the resources that exist, and what it cannot do.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LiveState {
    pub resources: BTreeMap<Address, LiveResource>,
    pub unsupported: BTreeSet<Api>,
}

impl LiveState {
    pub fn merge(&mut self, other: LiveState) {
        self.resources.extend(other.resources);
        self.unsupported.extend(other.unsupported);
    }
}
