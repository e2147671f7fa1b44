//! Live systems behind one narrow interface: a batched read of current state
//! and the application of changes: Kafka, etcd, S3 and the Prometheus rules
//! directory. The fake serves the engine's unit tests.

pub mod etcd;
pub mod fake;
pub mod kafka;
pub mod rules;
pub mod s3;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::plan::Change;
use crate::resource::{Address, System, Value};
use crate::state::Fence;

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

#[derive(Clone, Debug, thiserror::Error)]
pub enum BackendError {
    /// The system could not be read completely: the plan must fail.
    #[error("cannot read {system}: {message}")]
    Read { system: System, message: String },
    /// The server lacks a request the change needs.
    #[error("not supported by this broker ({0})")]
    Unsupported(Api),
    /// The server refused the change.
    #[error("{0}")]
    Rejected(String),
    /// The apply lock was lost; nothing more may be written.
    #[error("the apply lock was lost; nothing more is written")]
    FenceLost,
}

/// Why a backend could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error(transparent)]
    Secret(#[from] crate::config::secret::SecretError),
    /// librdkafka refused the client configuration.
    #[error("cannot configure the Kafka client: {0}")]
    Kafka(String),
    /// No etcd endpoint answered.
    #[error("cannot connect to etcd at {endpoints}: {message}")]
    Etcd { endpoints: String, message: String },
}

/// One live system.
#[async_trait]
pub trait Backend: Send + Sync {
    fn system(&self) -> System;

    /// Reads the live state of `wanted` (addresses of this system's kinds) in
    /// batched requests. A partial read is an error, never a shorter answer.
    async fn read(&self, wanted: &[Address]) -> Result<LiveState, BackendError>;

    /// Applies changes of one kind and action, batching where the system
    /// allows; one result per change, in order. Creating what exists
    /// identically and deleting what is gone succeed, so re-runs converge.
    async fn apply(&self, changes: &[&Change], fence: &Fence) -> Vec<Result<(), BackendError>>;
}

/// A shared backend is a backend: the engine's S3 also serves DR checks.
#[async_trait]
impl<T: Backend + ?Sized> Backend for Arc<T> {
    fn system(&self) -> System {
        (**self).system()
    }
    async fn read(&self, wanted: &[Address]) -> Result<LiveState, BackendError> {
        (**self).read(wanted).await
    }
    async fn apply(&self, changes: &[&Change], fence: &Fence) -> Vec<Result<(), BackendError>> {
        (**self).apply(changes, fence).await
    }
}
