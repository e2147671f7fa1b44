//! Kafka through the rdkafka admin client (bundled librdkafka): Metadata (of
//! the cluster, or of a few topics by name), DescribeConfigs batched, CreateTopics batched,
//! CreatePartitions, IncrementalAlterConfigs only, DeleteTopics, and ACLs.
//! What the broker supports comes from its ApiVersions answer.
//!
//! [`client`] turns an environment into librdkafka settings, [`topics`]
//! reads and changes topics, [`acls`] the ACL bindings, and [`sys`] wraps
//! the librdkafka calls the rdkafka crate lacks.

mod acls;
mod api_versions;
mod client;
mod lag;
pub mod sys;
mod topics;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;

use super::{Backend, BackendError, ClusterProbe, ConnectError, PartitionLag};
use crate::config::workspace::KafkaEnv;
use crate::plan::{Action, Api, Change, LiveState};
use crate::resource::{Address, Kind, System};
use crate::state::Fence;

pub use api_versions::TlsFiles;
use client::client_config;
use sys::Admin;

/// The librdkafka settings of an environment (servers, security, secrets
/// resolved), for the data-plane clients of backups and restores.
pub fn client_settings(kafka: &KafkaEnv) -> Result<ClientConfig, ConnectError> {
    client_config(kafka).map(|(config, _)| config)
}

/// The Kafka cluster of one environment.
pub struct KafkaBackend {
    admin: Admin,
    /// For the consumers that read committed offsets.
    config: ClientConfig,
    servers: Vec<String>,
    tls: Option<TlsFiles>,
    /// API keys the broker supports, from the last read.
    supported: Mutex<Option<BTreeSet<i16>>>,
    /// How long one request may take.
    timeout: Duration,
}

impl KafkaBackend {
    /// Builds the client: librdkafka connects lazily, so an unreachable
    /// broker shows up at the first read.
    pub fn connect(kafka: &KafkaEnv, timeout: Duration) -> Result<Self, ConnectError> {
        let (config, tls) = client_config(kafka)?;
        let admin: AdminClient<DefaultClientContext> =
            config.create().map_err(ConnectError::Kafka)?;
        Ok(KafkaBackend {
            admin: Arc::new(admin),
            config,
            servers: kafka.bootstrap_servers.value.clone(),
            tls,
            supported: Mutex::new(None),
            timeout,
        })
    }

    /// One Metadata request for the whole cluster, answered by `f`.
    async fn metadata<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Metadata) -> T + Send + 'static,
    ) -> Result<T, String> {
        let timeout = self.timeout;
        self.sent("Metadata");
        self.blocking(move |admin| {
            admin
                .inner()
                .fetch_metadata(None, timeout)
                .map(|m| f(&m))
                .map_err(|e| failed("Metadata", &e, timeout))
        })
        .await?
    }

    /// Every topic's name, internal ones (`__…`) left out.
    pub async fn topic_names(&self) -> Result<Vec<String>, BackendError> {
        self.metadata(|m| {
            m.topics()
                .iter()
                .map(|t| t.name().to_owned())
                .filter(|n| !n.starts_with("__"))
                .collect()
        })
        .await
        .map_err(|message| BackendError::Read {
            system: System::Kafka,
            message,
        })
    }

    /// Logs each admin request; the plan benchmark counts them
    /// (`SLUICE_LOG=sluice::backend::kafka=debug`).
    fn sent(&self, api: &str) {
        tracing::debug!(api, "kafka request");
    }

    fn options(&self) -> AdminOptions {
        AdminOptions::new()
            .operation_timeout(Some(self.timeout))
            .request_timeout(Some(self.timeout))
    }

    fn unsupported(&self, api: Api) -> bool {
        self.supported
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|keys| !keys.contains(&api.kafka_key()))
    }

    /// Runs blocking librdkafka work off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(Admin) -> T + Send + 'static,
    ) -> Result<T, String> {
        let admin = self.admin.clone();
        tokio::task::spawn_blocking(move || f(admin))
            .await
            .map_err(|e| e.to_string())
    }
}

/// A failed request as people read it: one that waited the whole timeout
/// says so, as the other systems' do.
fn failed(request: &str, e: &KafkaError, timeout: Duration) -> String {
    use rdkafka::error::RDKafkaErrorCode::{OperationTimedOut, RequestTimedOut};
    match e.rdkafka_error_code() {
        Some(OperationTimedOut | RequestTimedOut) => {
            format!("{request} timed out after {}s", timeout.as_secs_f64())
        }
        _ => format!("{request} failed: {e}"),
    }
}

fn read_error(message: impl Into<String>) -> BackendError {
    BackendError::Read {
        system: System::Kafka,
        message: message.into(),
    }
}

fn rejected(e: KafkaError) -> BackendError {
    BackendError::Rejected(e.to_string())
}

/// Per-change results, or one error for the whole batch.
type BatchResult = Result<Vec<Result<(), BackendError>>, BackendError>;

impl KafkaBackend {
    fn require(&self, api: Api) -> Result<(), BackendError> {
        if self.unsupported(api) {
            Err(BackendError::Unsupported(api))
        } else {
            Ok(())
        }
    }

    /// Which requests the broker serves, from one ApiVersions exchange; the
    /// apply checks its requests against the answer.
    async fn probe_apis(&self) -> Result<BTreeSet<Api>, BackendError> {
        let timeout = self.timeout;
        self.sent("ApiVersions");
        let (servers, tls) = (self.servers.clone(), self.tls.clone());
        let keys = tokio::task::spawn_blocking(move || {
            api_versions::supported(&servers, tls.as_ref(), timeout)
        })
        .await
        .map_err(|e| read_error(e.to_string()))?
        .map_err(|e| read_error(format!("no broker answered ApiVersions ({e})")))?;
        let unsupported = Api::KAFKA
            .into_iter()
            .filter(|a| !keys.contains(&a.kafka_key()))
            .collect();
        *self.supported.lock().unwrap() = Some(keys);
        Ok(unsupported)
    }
}

#[async_trait]
impl Backend for KafkaBackend {
    fn system(&self) -> System {
        System::Kafka
    }

    /// ApiVersions, then Metadata and DescribeConfigs for the topics that
    /// exist, and DescribeAcls when bindings are wanted.
    async fn read(&self, wanted: &[Address]) -> Result<LiveState, BackendError> {
        let topics: BTreeSet<&str> = wanted
            .iter()
            .filter(|a| a.kind() == Kind::KafkaTopic)
            .map(Address::name)
            .collect();
        let acls: BTreeSet<&Address> = wanted
            .iter()
            .filter(|a| a.kind() == Kind::KafkaAcl)
            .collect();
        let mut live = LiveState::default();
        if topics.is_empty() && acls.is_empty() {
            return Ok(live);
        }
        live.unsupported = self.probe_apis().await?;
        if !topics.is_empty() {
            self.read_topics(&topics, &mut live).await?;
        }
        if !acls.is_empty() {
            self.read_acls(&acls, &mut live).await?;
        }
        Ok(live)
    }

    async fn apply(&self, changes: &[&Change], _fence: &Fence) -> Vec<Result<(), BackendError>> {
        let Some(first) = changes.first() else {
            return Vec::new();
        };
        let result = match (first.address.kind(), first.action) {
            (Kind::KafkaTopic, Action::Create) => self.create_topics(changes).await,
            (Kind::KafkaTopic, Action::Update) => self.update_topics(changes).await,
            (Kind::KafkaTopic, Action::Delete) => self.delete_topics(changes).await,
            (Kind::KafkaAcl, Action::Create) => self.acls(changes, Api::CreateAcls).await,
            (Kind::KafkaAcl, Action::Delete) => self.acls(changes, Api::DeleteAcls).await,
            (kind, action) => Err(BackendError::Rejected(format!(
                "sluice cannot {action:?} a {kind}"
            ))),
        };
        result.unwrap_or_else(|e| changes.iter().map(|_| Err(e.clone())).collect())
    }
}

#[async_trait]
impl ClusterProbe for KafkaBackend {
    /// The brokers the cluster reports, as `id@host:port`. ApiVersions
    /// goes first: librdkafka calls a broker that never answers a
    /// "transport failure", where the probe says it timed out, and after how long.
    async fn brokers(&self) -> Result<Vec<String>, String> {
        self.probe_apis().await.map_err(|e| match e {
            BackendError::Read { message, .. } => message,
            other => other.to_string(),
        })?;
        self.metadata(|m| {
            m.brokers()
                .iter()
                .map(|b| format!("{}@{}:{}", b.id(), b.host(), b.port()))
                .collect()
        })
        .await
    }

    /// From the Metadata answer librdkafka keeps (it asks for one of the
    /// brokers only when it has none yet), waiting at most the request
    /// timeout. Logged apart from the plan's own Metadata requests.
    async fn cluster_id(&self) -> Option<String> {
        let timeout = self.timeout;
        self.sent("Metadata (cluster ID)");
        self.blocking(move |admin| admin.inner().fetch_cluster_id(timeout))
            .await
            .ok()
            .flatten()
    }

    /// The lag of consumer groups on topics (name and partition count): per
    /// partition, the high watermark against each group's committed offset.
    /// One answer per group, in order. Reads only; it joins no group.
    async fn consumer_lag(
        &self,
        groups: Vec<String>,
        topics: Vec<(String, u32)>,
    ) -> Vec<Result<Vec<PartitionLag>, String>> {
        let timeout = self.timeout;
        let config = self.config.clone();
        self.sent("ListOffsets");
        self.sent("OffsetFetch");
        let n = groups.len();
        tokio::task::spawn_blocking(move || lag::read(&config, &groups, &topics, timeout))
            .await
            .unwrap_or_else(|e| vec![Err(e.to_string()); n])
    }
}
