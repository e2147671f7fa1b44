//! Consumer lag: committed offsets of a group against the high watermarks.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

/// One partition of a group's lag.
#[derive(Clone, Debug, Serialize)]
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

/// Reads the lag of the consumer `config` names (its `group.id`) on `topics`.
pub fn read(
    config: &ClientConfig,
    topics: &[String],
    timeout: Duration,
) -> Result<Vec<PartitionLag>, String> {
    let consumer: BaseConsumer = config.create().map_err(|e| e.to_string())?;
    let mut wanted = TopicPartitionList::new();
    let mut marks = Vec::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), timeout)
            .map_err(|e| format!("metadata of {topic}: {e}"))?;
        for t in metadata.topics() {
            for p in t.partitions() {
                let (low, high) = consumer
                    .fetch_watermarks(topic, p.id(), timeout)
                    .map_err(|e| format!("watermarks of {topic}/{}: {e}", p.id()))?;
                wanted.add_partition(topic, p.id());
                marks.push((topic.clone(), p.id(), low, high));
            }
        }
    }
    if marks.is_empty() {
        return Ok(Vec::new());
    }
    let committed = consumer
        .committed_offsets(wanted, timeout)
        .map_err(|e| format!("committed offsets: {e}"))?;
    Ok(marks
        .into_iter()
        .map(|(topic, partition, low, high)| {
            let committed =
                committed
                    .find_partition(&topic, partition)
                    .and_then(|e| match e.offset() {
                        Offset::Offset(o) => Some(o),
                        _ => None,
                    });
            PartitionLag {
                lag: (high - committed.unwrap_or(low)).max(0),
                topic,
                partition,
                committed,
                high_watermark: high,
            }
        })
        .collect())
}
