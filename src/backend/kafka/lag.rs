//! Consumer lag: committed offsets of groups against the high watermarks.

use std::time::Duration;

use crate::backend::PartitionLag;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

fn consumer(config: &ClientConfig, group: &str) -> Result<BaseConsumer, String> {
    config
        .clone()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| e.to_string())
}

/// The lag of each group on the partitions of `topics` (name and partition
/// count), one answer per group, in order. The watermarks are read once for
/// all groups; each group's committed offsets in one request.
pub fn read(
    config: &ClientConfig,
    groups: &[String],
    topics: &[(String, u32)],
    timeout: Duration,
) -> Vec<Result<Vec<PartitionLag>, String>> {
    let Some(first) = groups.first() else {
        return Vec::new();
    };
    let marks = consumer(config, first).and_then(|c| {
        let mut marks = Vec::new();
        for (topic, partitions) in topics {
            for p in 0..i32::try_from(*partitions).unwrap_or(i32::MAX) {
                let (low, high) = c
                    .fetch_watermarks(topic, p, timeout)
                    .map_err(|e| format!("watermarks of {topic}/{p}: {e}"))?;
                marks.push((topic.clone(), p, low, high));
            }
        }
        Ok(marks)
    });
    groups
        .iter()
        .map(|group| {
            let marks = marks.as_ref().map_err(Clone::clone)?;
            let mut wanted = TopicPartitionList::new();
            for (topic, p, _, _) in marks {
                wanted.add_partition(topic, *p);
            }
            let committed = consumer(config, group)?
                .committed_offsets(wanted, timeout)
                .map_err(|e| format!("committed offsets of {group}: {e}"))?;
            Ok(marks
                .iter()
                .map(|(topic, partition, low, high)| {
                    let committed =
                        committed.find_partition(topic, *partition).and_then(|e| {
                            match e.offset() {
                                Offset::Offset(o) => Some(o),
                                _ => None,
                            }
                        });
                    PartitionLag {
                        lag: (high - committed.unwrap_or(*low)).max(0),
                        topic: topic.clone(),
                        partition: *partition,
                        committed,
                        high_watermark: *high,
                    }
                })
                .collect())
        })
        .collect()
}
