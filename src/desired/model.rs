//! The resolved desired state of one environment: every default applied, every
//! unit converted, every derived value computed. Later stages read only this.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Serialize;

use crate::config::Labels;
use crate::config::condition::Condition;
use crate::config::namespace::{Capacity, Compression, LockMode, Permission, Severity, Tier};
use crate::config::workspace::{AlertsEnv, EtcdEnv, Guards, KafkaEnv, S3Env, Stage};
use crate::diag::Span;

/// Desired state of one environment.
#[derive(Clone, Debug, Serialize)]
pub struct Desired {
    pub environment: Environment,
    pub guards: Guards,
    /// PromQL overrides per metric name, from the workspace.
    pub metrics: BTreeMap<String, String>,
    /// Buckets the workspace declares for DR, with their regions: sluice
    /// creates a declared replica bucket; an undeclared one must exist.
    pub buckets: BTreeMap<String, String>,
    /// Shared, so that work on another thread (the policies, judged while a
    /// plan's reads are in flight) can hold them.
    pub namespaces: Arc<[NamespaceState]>,
    /// When set, the namespaces a partial plan covers (`plan --base`): the
    /// others, and what the inventory holds of them, are left out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<BTreeSet<String>>,
}

impl Desired {
    pub fn topics(&self) -> impl Iterator<Item = &TopicState> {
        self.namespaces.iter().flat_map(|n| &n.topics)
    }
}

/// An environment's endpoints, after `SLUICE_*` overrides.
#[derive(Clone, Debug, Serialize)]
pub struct Environment {
    pub name: String,
    pub stage: Stage,
    pub kafka: KafkaEnv,
    pub s3: Option<S3Env>,
    pub etcd: EtcdEnv,
    pub alerts: Option<AlertsEnv>,
    /// Where and how often its etcd is snapshotted to S3.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_backup: Option<StateBackupState>,
    /// The `SLUICE_*` variables that changed this environment.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub overridden_by: Vec<&'static str>,
}

/// One namespace, resolved.
#[derive(Clone, Debug, Serialize)]
pub struct NamespaceState {
    pub name: String,
    /// Where the namespace is declared.
    pub source: Span,
    pub owner: Option<String>,
    pub tier: Tier,
    pub labels: Labels,
    /// Marked `protected`, or listed in the workspace guards.
    pub protected: bool,
    pub capacity: Option<Capacity>,
    /// Milliseconds; `-1` keeps messages forever.
    pub retention_ms: Option<i64>,
    pub compression: Option<Compression>,
    pub max_message_bytes: Option<u64>,
    pub cache: Option<CacheState>,
    pub connection_pool_size: Option<u32>,
    pub topics: Vec<TopicState>,
    pub consumers: Vec<ConsumerState>,
    pub access: Vec<GrantState>,
    pub alerts: Vec<AlertState>,
    pub disaster_recovery: Option<DrState>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CacheState {
    pub enabled: bool,
    pub ttl_ms: Option<u64>,
}

/// Where a topic's partition count came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionsFrom {
    /// Set in the YAML.
    Explicit,
    /// Derived from the namespace's capacity.
    Capacity,
    /// The workspace default (no capacity, or a DLQ).
    Default,
}

/// A topic's configs, by name: a sorted vector, a few dozen bytes for the
/// two or three configs a topic sets, where a `BTreeMap` takes a node of
/// over 500 (a plan holds three copies of every topic's). It reads and
/// writes as a map, as a `BTreeMap` does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Configs(litemap::LiteMap<String, String>);

impl Configs {
    pub fn new() -> Configs {
        Configs::default()
    }
}

impl std::ops::Deref for Configs {
    type Target = litemap::LiteMap<String, String>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Configs {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl FromIterator<(String, String)> for Configs {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Configs {
        Configs(iter.into_iter().collect())
    }
}

impl Serialize for Configs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter())
    }
}

impl<'de> serde::Deserialize<'de> for Configs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Configs, D::Error> {
        BTreeMap::<String, String>::deserialize(d).map(|m| m.into_iter().collect())
    }
}

impl schemars::JsonSchema for Configs {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        BTreeMap::<String, String>::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        BTreeMap::<String, String>::json_schema(generator)
    }
}

/// A Kafka topic as sluice wants it.
#[derive(Clone, Debug, Serialize)]
pub struct TopicState {
    pub name: String,
    pub namespace: String,
    pub partitions: u32,
    pub partitions_from: PartitionsFrom,
    pub replication_factor: u16,
    /// Exactly the configs sluice sets; nothing else is compared.
    pub config: Configs,
    /// For a dead-letter topic, the topic it serves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dlq_of: Option<String>,
    /// The topic allows growing its partitions although it is compacted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub allow_repartition: bool,
    pub source: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConsumerState {
    pub group: String,
    pub max_lag: Option<u64>,
}

/// `service` principals are Kafka users, `team` principals groups.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    Service,
    Team,
}

impl PrincipalKind {
    /// The key of a grant in the namespace YAML: `service` or `team`.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Service => "service",
            PrincipalKind::Team => "team",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct GrantState {
    pub kind: PrincipalKind,
    pub principal: String,
    pub permissions: Vec<Permission>,
    pub source: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct AlertState {
    pub name: String,
    pub condition: Condition,
    /// The condition compiled to PromQL.
    pub expr: String,
    pub for_ms: Option<u64>,
    pub severity: Severity,
    pub labels: Labels,
    pub annotations: Labels,
    pub source: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct DrState {
    pub rpo_ms: Option<u64>,
    pub rto_ms: Option<u64>,
    pub backup: Option<BackupState>,
    pub replication: Option<ReplicationState>,
    pub pitr_window_ms: Option<u64>,
    /// When the watcher drills the namespace (cron), from `drill.schedule`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drill_schedule: Option<String>,
    pub source: Span,
}

impl BackupState {
    /// Where `namespace`'s backup runs live in the bucket,
    /// `<prefix><namespace>/`: its own directory under the prefix, which
    /// other namespaces may share. Its lifecycle rule, replication rule and
    /// the replica's read-only statement cover this directory alone.
    pub fn dir(&self, namespace: &str) -> String {
        format!("{}{namespace}/", self.prefix)
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct BackupState {
    pub bucket: String,
    pub prefix: String,
    pub schedule: Option<String>,
    pub retain_ms: Option<u64>,
    pub incremental: bool,
    pub object_lock: Option<ObjectLockState>,
    /// Where the bucket is named.
    #[serde(skip)]
    pub source: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct ObjectLockState {
    pub mode: LockMode,
    pub days: u32,
    #[serde(skip)]
    pub source: Span,
}

#[derive(Clone, Debug, Serialize)]
pub struct ReplicationState {
    pub bucket: String,
    pub region: String,
    pub read_only: bool,
    /// Where the replica bucket is named.
    #[serde(skip)]
    pub source: Span,
}

/// An environment's etcd snapshots (`state_backup`), resolved.
#[derive(Clone, Debug, Serialize)]
pub struct StateBackupState {
    pub bucket: String,
    /// Ends with `/` (or is empty): snapshots lie under `<prefix><id>/`.
    pub prefix: String,
    pub schedule: Option<String>,
    /// How old the last complete snapshot may be before it is stale.
    pub stale_after_ms: u64,
    pub object_lock: Option<ObjectLockState>,
}
