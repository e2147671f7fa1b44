//! Topics: read with Metadata (of the cluster, or of a few topics by name)
//! and DescribeConfigs for those that exist; created, grown, reconfigured (IncrementalAlterConfigs only) and
//! deleted in batches.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::{StreamExt, TryStreamExt};
use rdkafka::admin::{ConfigSource, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;

use super::sys::{self, ConfigOp, TopicConfigOps};
use super::{BatchResult, KafkaBackend, failed, read_error, rejected};
use crate::backend::BackendError;
use crate::plan::{Api, Change, Field, LiveResource, LiveState};
use crate::resource::{Address, Configs, TopicValue, Value, digest};

/// Topics per DescribeConfigs request, and how many requests are in flight.
const DESCRIBE_CHUNK: usize = 500;
const DESCRIBES_IN_FLIGHT: usize = 4;
/// Up to this many topics are looked up by name, one Metadata request each
/// (librdkafka asks for one topic or all); more, and one request for the
/// whole cluster costs less.
const METADATA_BY_NAME: usize = 32;

/// Partitions and replication factor of each topic a Metadata answer holds
/// without an error (a missing topic has one).
fn shapes(md: &rdkafka::metadata::Metadata) -> BTreeMap<String, (usize, usize)> {
    md.topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| {
            let rf = t.partitions().first().map_or(0, |p| p.replicas().len());
            (t.name().to_owned(), (t.partitions().len(), rf))
        })
        .collect()
}

impl KafkaBackend {
    /// The live value of every wanted topic that exists.
    pub(super) async fn read_topics(
        &self,
        topics: &BTreeSet<&str>,
        live: &mut LiveState,
    ) -> Result<(), BackendError> {
        let timeout = self.timeout;
        // A scoped plan wants a few topics: Metadata of those alone.
        let by_name: Option<Vec<String>> = (topics.len() <= METADATA_BY_NAME)
            .then(|| topics.iter().map(|t| (*t).to_owned()).collect());
        for _ in 0..by_name.as_ref().map_or(1, Vec::len) {
            self.sent("Metadata");
        }
        let metadata = self
            .blocking(move |admin| match by_name {
                None => admin
                    .inner()
                    .fetch_metadata(None, timeout)
                    .map(|md| shapes(&md)),
                Some(names) => names.iter().try_fold(BTreeMap::new(), |mut all, name| {
                    let md = admin.inner().fetch_metadata(Some(name), timeout)?;
                    all.extend(shapes(&md));
                    Ok(all)
                }),
            })
            .await
            .map_err(read_error)?
            .map_err(|e| read_error(failed("Metadata", &e, timeout)))?;

        let existing: Vec<&str> = topics
            .iter()
            .copied()
            .filter(|t| metadata.contains_key(*t))
            .collect();
        if !existing.is_empty() {
            if live.unsupported.contains(&Api::DescribeConfigs) {
                return Err(read_error("not supported by this broker (DescribeConfigs)"));
            }
            // In chunks: librdkafka matches each answer to its resource by a
            // linear search, so one request of every topic costs quadratic time.
            let requests: Vec<_> = existing
                .chunks(DESCRIBE_CHUNK)
                .map(|chunk| self.describe_chunk(chunk))
                .collect();
            let described: Vec<_> = futures_util::stream::iter(requests)
                .buffered(DESCRIBES_IN_FLIGHT)
                .try_collect()
                .await?;
            for (topic, result) in described.into_iter().flatten() {
                let resource = result
                    .map_err(|e| read_error(format!("DescribeConfigs of `{topic}` failed: {e}")))?;
                let config = explicit_configs(
                    resource
                        .entries
                        .into_iter()
                        .map(|e| (e.name, e.value, e.source)),
                );
                let (partitions, rf) = metadata[topic];
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
        Ok(())
    }

    /// One DescribeConfigs request: each topic with its answer.
    async fn describe_chunk<'a>(
        &self,
        chunk: &'a [&'a str],
    ) -> Result<Vec<(&'a str, rdkafka::admin::ConfigResourceResult)>, BackendError> {
        self.sent("DescribeConfigs");
        let specifiers: Vec<ResourceSpecifier> =
            chunk.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
        let described = self
            .admin
            .describe_configs(&specifiers, &self.options())
            .await
            .map_err(|e| read_error(failed("DescribeConfigs", &e, self.timeout)))?;
        Ok(chunk.iter().copied().zip(described).collect())
    }

    pub(super) async fn create_topics(&self, changes: &[&Change]) -> BatchResult {
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
                    partition_count(c, t.partitions)?,
                    TopicReplication::Fixed(i32::from(t.replication_factor)),
                );
                Ok(t.config.iter().fold(topic, |topic, (k, v)| topic.set(k, v)))
            })
            .collect::<Result<_, BackendError>>()?;
        self.sent("CreateTopics");
        let results = self
            .admin
            .create_topics(&new, &self.options())
            .await
            .map_err(rejected)?;
        Ok(results
            .into_iter()
            .map(|r| match r {
                Ok(_) => Ok(()),
                // The plan under the lock read it as absent: someone else made
                // it since, and sluice does not record what it did not create.
                Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => Err(BackendError::Rejected(format!(
                    "topic `{topic}` was created by something else after sluice read the cluster; it is not recorded as sluice's. Plan again"
                ))),
                Err((topic, code)) => Err(BackendError::Rejected(format!(
                    "creating topic `{topic}`: {code}"
                ))),
            })
            .collect())
    }

    pub(super) async fn delete_topics(&self, changes: &[&Change]) -> BatchResult {
        self.require(Api::DeleteTopics)?;
        let names: Vec<&str> = changes.iter().map(|c| c.address.name()).collect();
        self.sent("DeleteTopics");
        let results = self
            .admin
            .delete_topics(&names, &self.options())
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
    pub(super) async fn update_topics(&self, changes: &[&Change]) -> BatchResult {
        let timeout = self.timeout;
        let mut results: Vec<Result<(), BackendError>> = changes.iter().map(|_| Ok(())).collect();
        let mut grown = Vec::new();
        let mut parts = Vec::new();
        for (i, c) in changes.iter().enumerate() {
            if c.fields.iter().any(|f| f.field == Field::Partitions) {
                grown.push(i);
                let count = partition_count(c, topic_value(c)?.partitions)?;
                parts.push(NewPartitions::new(c.address.name(), count as usize));
            }
        }
        if !parts.is_empty() {
            self.require(Api::CreatePartitions)?;
            self.sent("CreatePartitions");
            let answer = self
                .admin
                .create_partitions(&parts, &self.options())
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
                        f.after_text().map_or(ConfigOp::Delete, ConfigOp::Set),
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
                .blocking(move |admin| sys::incremental_alter_configs(&admin, &request, timeout))
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
}

fn topic_value(c: &Change) -> Result<&TopicValue, BackendError> {
    match &c.desired {
        Some(Value::Topic(t)) => Ok(t),
        _ => Err(BackendError::Rejected(format!(
            "{} has no topic value",
            c.address
        ))),
    }
}

/// The configs set on a topic. A broker that reports where each value comes
/// from lists defaults too, and only `DynamicTopic` entries are set on the
/// topic. One that reports every entry as a default (tansu, brokers before
/// Kafka 1.1) does not tell sources apart, and returns only what was set.
fn explicit_configs(
    entries: impl IntoIterator<Item = (String, Option<String>, ConfigSource)>,
) -> Configs {
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

/// A partition count as Kafka's protocol carries it: never wrapped into a
/// negative number (-1 asks the broker for its default).
fn partition_count(c: &Change, n: u32) -> Result<i32, BackendError> {
    i32::try_from(n).map_err(|_| {
        BackendError::Rejected(format!(
            "topic `{}`: {n} partitions is above Kafka's limit of {}",
            c.address.name(),
            i32::MAX
        ))
    })
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
            Configs::from_iter([("retention.ms".into(), "3600000".into())])
        );
        // tansu marks what was set as a default, and returns nothing else.
        let tansu = explicit_configs([entry("retention.ms", "3600000", ConfigSource::Default)]);
        assert_eq!(
            tansu,
            Configs::from_iter([("retention.ms".into(), "3600000".into())])
        );
    }
}
