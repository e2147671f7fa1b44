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
