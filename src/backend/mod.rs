//! Live systems behind one narrow interface: a batched read of current state
//! and the application of changes: Kafka, etcd, S3 and the Prometheus rules
//! directory. The fake serves the engine's unit tests.

pub mod etcd;
pub mod fake;
pub mod kafka;
pub mod rules;
pub mod s3;

use std::sync::Arc;

use async_trait::async_trait;

use crate::plan::{Api, Change, LiveState};
use crate::resource::{Address, System};
use crate::state::Fence;

/// How long one request to a live system may take, unless `--timeout`
/// says otherwise.
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Why a live system could not be read or changed.
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

impl BackendError {
    /// Whether trying again later may succeed: a read that failed or a lock
    /// lost may; what a server cannot do or refused to do will not, until
    /// the desired state changes.
    pub fn is_transient(&self) -> bool {
        match self {
            BackendError::Read { .. } | BackendError::FenceLost => true,
            BackendError::Unsupported(_) | BackendError::Rejected(_) => false,
        }
    }
}

/// Why a backend could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// A secret reference does not resolve.
    #[error(transparent)]
    Secret(#[from] crate::config::secret::SecretError),
    /// librdkafka refused the client configuration.
    #[error("cannot configure the Kafka client")]
    Kafka(#[source] rdkafka::error::KafkaError),
    /// An etcd endpoint took connections and never answered.
    #[error("cannot connect to etcd at {endpoints}: timed out after {}s", .after.as_secs_f64())]
    EtcdTimedOut {
        endpoints: String,
        after: std::time::Duration,
    },
    /// No etcd endpoint answered.
    #[error("cannot connect to etcd at {endpoints}: {}", crate::state::etcd::readable(.cause))]
    Etcd {
        endpoints: String,
        cause: etcd_client::Error,
    },
}

impl ConnectError {
    /// An unreachable etcd may come back; a bad setting or a missing secret
    /// stays until the config (or the environment) changes.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ConnectError::Etcd { .. } | ConnectError::EtcdTimedOut { .. }
        )
    }
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

/// Where backups are kept: the newest complete backup of a namespace, for
/// DR compliance, and whether the store answers at all, for `status`.
#[async_trait]
pub trait BackupCatalog: Send + Sync {
    /// When the newest complete run (one with a manifest) under each of
    /// `dirs` (`<prefix><namespace>/`) in `bucket` (which lives in `region`)
    /// started, in seconds since the epoch, in the order asked; `None` where
    /// a directory holds no complete run.
    async fn newest_backups(
        &self,
        bucket: &str,
        region: &str,
        dirs: &[&str],
    ) -> Result<Vec<Option<i64>>, BackendError>;

    /// How many buckets are visible: proof that the store answers.
    async fn health(&self) -> Result<usize, String>;
}

/// What `status` asks of a cluster beyond its resources.
#[async_trait]
pub trait ClusterProbe: Send + Sync {
    /// The brokers the cluster reports, as `id@host:port`.
    async fn brokers(&self) -> Result<Vec<String>, String>;

    /// The ID the cluster reports; `None` when no broker answered in time
    /// or the brokers report none.
    async fn cluster_id(&self) -> Option<String>;

    /// The lag of consumer groups on topics (name and partition count): one
    /// answer per group, in order. Reads only; it joins no group.
    async fn consumer_lag(
        &self,
        groups: Vec<String>,
        topics: Vec<(String, u32)>,
    ) -> Vec<Result<Vec<PartitionLag>, String>>;
}

/// One partition of a group's lag.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// `None`: the group has committed nothing here.
    pub committed: Option<i64>,
    pub high_watermark: i64,
    /// Records behind: from the committed offset, or from the low watermark
    /// when nothing is committed.
    pub lag: i64,
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
