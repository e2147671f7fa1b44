//! Kafka through the rdkafka admin client (bundled librdkafka): one Metadata
//! request, DescribeConfigs batched for all topics, CreateTopics batched,
//! CreatePartitions, IncrementalAlterConfigs only, DeleteTopics, and ACLs.
//! What the broker supports comes from its ApiVersions answer.

mod api_versions;
mod lag;
pub mod sys;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rdkafka::admin::{
    AdminClient, AdminOptions, ConfigSource, NewPartitions, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;

use super::{Backend, BackendError, ConnectError};
use crate::config::secret::resolve;
use crate::config::workspace::{KafkaEnv, SecurityProtocol};
use crate::plan::{Action, Api, Change, Field, LiveResource, LiveState};
use crate::resource::{AclBinding, Address, Kind, System, TopicValue, Value, digest};
use crate::state::Fence;

pub use api_versions::TlsFiles;
pub use lag::PartitionLag;
use sys::{Admin, ConfigOp, TopicConfigOps};

/// How long one Kafka request may take.
const TIMEOUT: Duration = Duration::from_secs(15);

/// The Kafka cluster of one environment.
pub struct KafkaBackend {
    admin: Admin,
    /// For the consumers that read committed offsets.
    config: ClientConfig,
    servers: Vec<String>,
    tls: Option<TlsFiles>,
    /// API keys the broker supports, from the last read.
    supported: Mutex<Option<BTreeSet<i16>>>,
}

impl KafkaBackend {
    /// Builds the client: librdkafka connects lazily, so an unreachable
    /// broker shows up at the first read.
    pub fn connect(kafka: &KafkaEnv) -> Result<Self, ConnectError> {
        let (config, tls) = client_config(kafka)?;
        let admin: AdminClient<DefaultClientContext> = config
            .create()
            .map_err(|e| ConnectError::Kafka(e.to_string()))?;
        Ok(KafkaBackend {
            admin: Arc::new(admin),
            config,
            servers: kafka.bootstrap_servers.value.clone(),
            tls,
            supported: Mutex::new(None),
        })
    }

    /// One Metadata request for the whole cluster, answered by `f`.
    async fn metadata<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Metadata) -> T + Send + 'static,
    ) -> Result<T, String> {
        self.sent("Metadata");
        self.blocking(|admin| {
            admin
                .inner()
                .fetch_metadata(None, TIMEOUT)
                .map(|m| f(&m))
                .map_err(|e| e.to_string())
        })
        .await?
    }

    /// The brokers the cluster reports, as `id@host:port`.
    pub async fn brokers(&self) -> Result<Vec<String>, String> {
        self.metadata(|m| {
            m.brokers()
                .iter()
                .map(|b| format!("{}@{}:{}", b.id(), b.host(), b.port()))
                .collect()
        })
        .await
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

    /// The lag of consumer groups on topics (name and partition count): per
    /// partition, the high watermark against each group's committed offset.
    /// One answer per group, in order. Reads only; it joins no group.
    pub async fn consumer_lag(
        &self,
        groups: Vec<String>,
        topics: Vec<(String, u32)>,
    ) -> Vec<Result<Vec<PartitionLag>, String>> {
        let config = self.config.clone();
        self.sent("ListOffsets");
        self.sent("OffsetFetch");
        let n = groups.len();
        tokio::task::spawn_blocking(move || lag::read(&config, &groups, &topics, TIMEOUT))
            .await
            .unwrap_or_else(|e| vec![Err(e.to_string()); n])
    }

    /// Logs each admin request; the plan benchmark counts them
    /// (`SLUICE_LOG=sluice::backend::kafka=debug`).
    fn sent(&self, api: &str) {
        tracing::debug!(api, "kafka request");
    }

    fn options() -> AdminOptions {
        AdminOptions::new()
            .operation_timeout(Some(TIMEOUT))
            .request_timeout(Some(TIMEOUT))
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

/// The configs set on a topic. A broker that reports where each value comes
/// from lists defaults too, and only `DynamicTopic` entries are set on the
/// topic. One that reports every entry as a default (tansu, brokers before
/// Kafka 1.1) does not tell sources apart, and returns only what was set.
fn explicit_configs(
    entries: impl IntoIterator<Item = (String, Option<String>, ConfigSource)>,
) -> BTreeMap<String, String> {
    let entries: Vec<_> = entries.into_iter().collect();
    let reports_sources = entries
        .iter()
        .any(|(_, _, s)| !matches!(s, ConfigSource::Default | ConfigSource::Unknown));
    entries
        .into_iter()
        .filter(|(_, _, s)| !reports_sources || matches!(s, ConfigSource::DynamicTopic))
        .filter_map(|(name, value, _)| value.map(|v| (name, v)))
        .collect()
}

fn protocol(p: SecurityProtocol) -> &'static str {
    match p {
        SecurityProtocol::Plaintext => "plaintext",
        SecurityProtocol::Ssl => "ssl",
        SecurityProtocol::SaslPlaintext => "sasl_plaintext",
        SecurityProtocol::SaslSsl => "sasl_ssl",
    }
}

fn read_error(message: impl Into<String>) -> BackendError {
    BackendError::Read {
        system: System::Kafka,
        message: message.into(),
    }
}

#[async_trait]
impl Backend for KafkaBackend {
    fn system(&self) -> System {
        System::Kafka
    }

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

        self.sent("ApiVersions");
        let (servers, tls) = (self.servers.clone(), self.tls.clone());
        let keys = tokio::task::spawn_blocking(move || {
            api_versions::supported(&servers, tls.as_ref(), TIMEOUT)
        })
        .await
        .map_err(|e| read_error(e.to_string()))?
        .map_err(|e| read_error(format!("no broker answered ApiVersions ({e})")))?;
        live.unsupported = Api::KAFKA
            .into_iter()
            .filter(|a| !keys.contains(&a.kafka_key()))
            .collect();
        *self.supported.lock().unwrap() = Some(keys);

        self.sent("Metadata");
        let metadata = self
            .blocking(|admin| {
                admin.inner().fetch_metadata(None, TIMEOUT).map(|md| {
                    md.topics()
                        .iter()
                        .filter(|t| t.error().is_none())
                        .map(|t| {
                            let rf = t.partitions().first().map_or(0, |p| p.replicas().len());
                            (t.name().to_owned(), (t.partitions().len(), rf))
                        })
                        .collect::<BTreeMap<_, _>>()
                })
            })
            .await
            .map_err(read_error)?
            .map_err(|e| read_error(format!("Metadata failed: {e}")))?;

        let existing: Vec<&str> = topics
            .iter()
            .copied()
            .filter(|t| metadata.contains_key(*t))
            .collect();
        if !existing.is_empty() {
            if live.unsupported.contains(&Api::DescribeConfigs) {
                return Err(read_error("not supported by this broker (DescribeConfigs)"));
            }
            self.sent("DescribeConfigs");
            let specifiers: Vec<ResourceSpecifier> = existing
                .iter()
                .map(|t| ResourceSpecifier::Topic(t))
                .collect();
            let described = self
                .admin
                .describe_configs(&specifiers, &Self::options())
                .await
                .map_err(|e| read_error(format!("DescribeConfigs failed: {e}")))?;
            for (topic, result) in existing.iter().zip(described) {
                let resource = result
                    .map_err(|e| read_error(format!("DescribeConfigs of `{topic}` failed: {e}")))?;
                let config = explicit_configs(
                    resource
                        .entries
                        .into_iter()
                        .map(|e| (e.name, e.value, e.source)),
                );
                let (partitions, rf) = metadata[*topic];
                let value = TopicValue {
                    partitions: u32::try_from(partitions).unwrap_or(u32::MAX),
                    replication_factor: u16::try_from(rf).unwrap_or(u16::MAX),
                    config,
                };
                let fingerprint = digest(&serde_json::to_vec(&value).expect("a topic is JSON"));
                live.resources.insert(
                    Address::topic(topic),
                    LiveResource {
                        value: Value::Topic(value),
                        fingerprint,
                    },
                );
            }
        }

        if !acls.is_empty() {
            if live.unsupported.contains(&Api::DescribeAcls) {
                return Err(read_error("not supported by this broker (DescribeAcls)"));
            }
            self.sent("DescribeAcls");
            let bindings = self
                .blocking(|admin| sys::describe_acls(&admin, TIMEOUT))
                .await
                .map_err(read_error)?
                .map_err(|e| read_error(format!("DescribeAcls failed: {e}")))?;
            for b in bindings {
                let address = b.address();
                if acls.contains(&address) {
                    live.resources.insert(
                        address,
                        LiveResource {
                            value: Value::Acl(b),
                            fingerprint: "present".into(),
                        },
                    );
                }
            }
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

/// Per-change results, or one error for the whole batch.
type BatchResult = Result<Vec<Result<(), BackendError>>, BackendError>;

fn topic_value(c: &Change) -> Result<&TopicValue, BackendError> {
    match &c.desired {
        Some(Value::Topic(t)) => Ok(t),
        _ => Err(BackendError::Rejected(format!(
            "{} has no topic value",
            c.address
        ))),
    }
}

impl KafkaBackend {
    fn require(&self, api: Api) -> Result<(), BackendError> {
        if self.unsupported(api) {
            Err(BackendError::Unsupported(api))
        } else {
            Ok(())
        }
    }

    async fn create_topics(&self, changes: &[&Change]) -> BatchResult {
        self.require(Api::CreateTopics)?;
        let values = changes
            .iter()
            .map(|c| topic_value(c))
            .collect::<Result<Vec<_>, _>>()?;
        let new: Vec<NewTopic> = changes
            .iter()
            .zip(&values)
            .map(|(c, t)| {
                let topic = NewTopic::new(
                    c.address.name(),
                    t.partitions as i32,
                    TopicReplication::Fixed(i32::from(t.replication_factor)),
                );
                t.config.iter().fold(topic, |topic, (k, v)| topic.set(k, v))
            })
            .collect();
        self.sent("CreateTopics");
        let results = self
            .admin
            .create_topics(&new, &Self::options())
            .await
            .map_err(rejected)?;
        Ok(results
            .into_iter()
            .map(|r| match r {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => Ok(()),
                Err((topic, code)) => Err(BackendError::Rejected(format!(
                    "creating topic `{topic}`: {code}"
                ))),
            })
            .collect())
    }

    async fn delete_topics(&self, changes: &[&Change]) -> BatchResult {
        self.require(Api::DeleteTopics)?;
        let names: Vec<&str> = changes.iter().map(|c| c.address.name()).collect();
        self.sent("DeleteTopics");
        let results = self
            .admin
            .delete_topics(&names, &Self::options())
            .await
            .map_err(rejected)?;
        Ok(results
            .into_iter()
            .map(|r| match r {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => Ok(()),
                Err((topic, code)) => Err(BackendError::Rejected(format!(
                    "deleting topic `{topic}`: {code}"
                ))),
            })
            .collect())
    }

    /// Partitions grow first, then configs are set and reset.
    async fn update_topics(&self, changes: &[&Change]) -> BatchResult {
        let mut results: Vec<Result<(), BackendError>> = changes.iter().map(|_| Ok(())).collect();
        let mut grown = Vec::new();
        let mut parts = Vec::new();
        for (i, c) in changes.iter().enumerate() {
            if c.fields.iter().any(|f| f.field == Field::Partitions) {
                grown.push(i);
                parts.push(NewPartitions::new(
                    c.address.name(),
                    topic_value(c)?.partitions as usize,
                ));
            }
        }
        if !parts.is_empty() {
            self.require(Api::CreatePartitions)?;
            self.sent("CreatePartitions");
            let answer = self
                .admin
                .create_partitions(&parts, &Self::options())
                .await
                .map_err(rejected)?;
            for (i, r) in grown.iter().zip(answer) {
                if let Err((topic, code)) = r {
                    results[*i] = Err(BackendError::Rejected(format!(
                        "adding partitions to `{topic}`: {code}"
                    )));
                }
            }
        }
        let mut alter: Vec<(usize, TopicConfigOps)> = Vec::new();
        for (i, c) in changes.iter().enumerate() {
            let ops: Vec<(String, ConfigOp)> = c
                .fields
                .iter()
                .filter_map(|f| {
                    let key = f.field.config_key()?;
                    Some((
                        key.to_owned(),
                        f.after.clone().map_or(ConfigOp::Delete, ConfigOp::Set),
                    ))
                })
                .collect();
            if !ops.is_empty() && results[i].is_ok() {
                alter.push((i, (c.address.name().to_owned(), ops)));
            }
        }
        if !alter.is_empty() {
            self.require(Api::IncrementalAlterConfigs)?;
            self.sent("IncrementalAlterConfigs");
            let request: Vec<_> = alter.iter().map(|(_, r)| r.clone()).collect();
            let answer = self
                .blocking(move |admin| sys::incremental_alter_configs(&admin, &request, TIMEOUT))
                .await
                .map_err(BackendError::Rejected)?
                .map_err(|e| {
                    BackendError::Rejected(format!("IncrementalAlterConfigs failed: {e}"))
                })?;
            for ((i, (topic, _)), r) in alter.iter().zip(answer) {
                if let Err(e) = r {
                    results[*i] = Err(BackendError::Rejected(format!(
                        "altering configs of `{topic}`: {e}"
                    )));
                }
            }
        }
        Ok(results)
    }

    async fn acls(&self, changes: &[&Change], api: Api) -> BatchResult {
        self.require(api)?;
        self.require(Api::DeleteAcls)?;
        let bindings: Vec<AclBinding> = changes
            .iter()
            .map(|c| match (&c.desired, &c.live) {
                (Some(Value::Acl(b)), _) | (None, Some(Value::Acl(b))) => Ok(b.clone()),
                _ => Err(BackendError::Rejected(format!(
                    "{} has no ACL binding",
                    c.address
                ))),
            })
            .collect::<Result<_, _>>()?;
        self.sent(&api.to_string());
        let answer = self
            .blocking(move |admin| match api {
                Api::CreateAcls => sys::create_acls(&admin, &bindings, TIMEOUT),
                _ => sys::delete_acls(&admin, &bindings, TIMEOUT),
            })
            .await
            .map_err(BackendError::Rejected)?
            .map_err(|e| BackendError::Rejected(format!("{api} failed: {e}")))?;
        Ok(changes
            .iter()
            .enumerate()
            .map(|(i, c)| match answer.get(i) {
                Some(Ok(())) => Ok(()),
                Some(Err(e)) => Err(BackendError::Rejected(format!("{}: {e}", c.address))),
                None => Err(BackendError::Rejected(format!(
                    "{}: no answer from the broker",
                    c.address
                ))),
            })
            .collect())
    }
}

fn rejected(e: KafkaError) -> BackendError {
    BackendError::Rejected(e.to_string())
}

/// The librdkafka settings of an environment, and the TLS files for the
/// ApiVersions probe.
fn client_config(kafka: &KafkaEnv) -> Result<(ClientConfig, Option<TlsFiles>), ConnectError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", kafka.bootstrap_servers.join(","))
        .set("security.protocol", protocol(kafka.security_protocol))
        .set("client.id", "sluice");
    if let Some(sasl) = &kafka.sasl {
        let mechanism = serde_json::to_value(sasl.mechanism).unwrap_or_default();
        config
            .set("sasl.mechanism", mechanism.as_str().unwrap_or_default())
            .set(
                "sasl.username",
                resolve(&sasl.username, "kafka.sasl.username")?
                    .unwrap_or_else(|| sasl.username.clone()),
            )
            .set(
                "sasl.password",
                sasl.password.resolve("kafka.sasl.password")?,
            );
    }
    let mut tls = None;
    if let Some(t) = &kafka.tls {
        for (key, value) in [
            ("ssl.ca.location", &t.ca),
            ("ssl.certificate.location", &t.cert),
            ("ssl.key.location", &t.key),
        ] {
            if let Some(v) = value {
                config.set(key, v);
            }
        }
        if let Some(p) = &t.key_password {
            config.set("ssl.key.password", p.resolve("kafka.tls.key_password")?);
        }
        tls = Some(TlsFiles {
            ca: t.ca.clone(),
            cert: t.cert.clone(),
            key: t.key.clone(),
        });
    }
    if matches!(
        kafka.security_protocol,
        SecurityProtocol::Ssl | SecurityProtocol::SaslSsl
    ) && tls.is_none()
    {
        tls = Some(TlsFiles::default());
    }
    for (key, value) in &kafka.properties {
        let field = format!("kafka.properties.{key}");
        let v = resolve(&value.value.0, &field)?.unwrap_or_else(|| value.value.0.clone());
        config.set(key, v);
    }
    Ok((config, tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        name: &str,
        value: &str,
        source: ConfigSource,
    ) -> (String, Option<String>, ConfigSource) {
        (name.into(), Some(value.into()), source)
    }

    #[test]
    fn only_topic_settings_count_where_the_broker_reports_sources() {
        let kafka = explicit_configs([
            entry("retention.ms", "3600000", ConfigSource::DynamicTopic),
            entry("cleanup.policy", "delete", ConfigSource::Default),
            entry("segment.bytes", "1073741824", ConfigSource::StaticBroker),
            ("secret".into(), None, ConfigSource::DynamicTopic),
        ]);
        assert_eq!(
            kafka,
            BTreeMap::from([("retention.ms".into(), "3600000".into())])
        );
        // tansu marks what was set as a default, and returns nothing else.
        let tansu = explicit_configs([entry("retention.ms", "3600000", ConfigSource::Default)]);
        assert_eq!(
            tansu,
            BTreeMap::from([("retention.ms".into(), "3600000".into())])
        );
    }
}
