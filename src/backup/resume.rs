//! Going on with a restore that stopped (a crash, a signal): each partition
//! of a target topic holds a prefix of what the restore writes there, in
//! order, since records are written in order and each object is
//! acknowledged before the next. `restore --resume` counts what a partition
//! holds, checks that its last record is the backup's record at that place,
//! and writes only what comes after it. [`held`] reads what existing target
//! topics hold, for any restore into them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::BackupError;
use super::segment::BackedRecord;

/// A record's content, its offset aside.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Content {
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl From<BackedRecord> for Content {
    fn from(r: BackedRecord) -> Self {
        Content {
            timestamp: r.timestamp,
            key: r.key,
            value: r.value,
            headers: r.headers,
        }
    }
}

impl From<&BackedRecord> for Content {
    fn from(r: &BackedRecord) -> Self {
        Content {
            timestamp: r.timestamp,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r.headers.clone(),
        }
    }
}

/// What one partition of a target topic holds already.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Present {
    pub count: u64,
    /// The offset of the first record it holds.
    pub first_offset: Option<i64>,
    pub last: Option<Content>,
}

/// What each partition (topic, partition) holds already.
pub type Holdings = BTreeMap<(String, i32), Present>;

/// What each partition of `topics` (name, partitions) holds, read to the
/// end of each partition (not to its high watermark: some brokers, tansu,
/// keep records above it).
pub fn read_present(
    config: &ClientConfig,
    topics: &[(String, u32)],
    timeout: Duration,
) -> Result<Holdings, BackupError> {
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", "sluice-restore")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .create()
        .map_err(|e| BackupError::Kafka(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (topic, partitions) in topics {
        for p in 0..i32::try_from(*partitions).unwrap_or(i32::MAX) {
            let present = read_partition(&consumer, topic, p, timeout).map_err(|message| {
                BackupError::Read {
                    topic: topic.clone(),
                    partition: p,
                    message,
                }
            })?;
            out.insert((topic.clone(), p), present);
        }
    }
    Ok(out)
}

/// Low and high watermarks, by topic and partition.
pub type Watermarks = BTreeMap<(String, i32), (i64, i64)>;

/// The watermarks of every partition of `topics` (name, partitions).
pub fn watermarks(
    config: &ClientConfig,
    topics: &[(String, u32)],
    timeout: Duration,
) -> Result<Watermarks, BackupError> {
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", "sluice-restore")
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| BackupError::Kafka(e.to_string()))?;
    let mut out = BTreeMap::new();
    for (topic, partitions) in topics {
        for p in 0..i32::try_from(*partitions).unwrap_or(i32::MAX) {
            let marks =
                consumer
                    .fetch_watermarks(topic, p, timeout)
                    .map_err(|e| BackupError::Read {
                        topic: topic.clone(),
                        partition: p,
                        message: format!("reading its watermarks: {e}"),
                    })?;
            out.insert((topic.clone(), p), marks);
        }
    }
    Ok(out)
}

/// What the partitions of the existing target `topics` (name, partitions)
/// hold: their watermarks, and with `resume` their records.
pub fn held(
    config: &ClientConfig,
    topics: &[(String, u32)],
    resume: bool,
    timeout: Duration,
) -> Result<(Watermarks, Holdings), BackupError> {
    let marks = watermarks(config, topics, timeout)?;
    let present = if resume {
        read_present(config, topics, timeout)?
    } else {
        BTreeMap::new()
    };
    Ok((marks, present))
}

fn read_partition(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    timeout: Duration,
) -> Result<Present, String> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .map_err(|e| e.to_string())?;
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let mut present = Present::default();
    let mut last_event = Instant::now();
    loop {
        match consumer.poll(Duration::from_millis(200)) {
            None if last_event.elapsed() > timeout => {
                return Err(format!(
                    "no record and no end of the partition came for {}s",
                    timeout.as_secs_f64()
                ));
            }
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) if p == partition => break,
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => return Err(e.to_string()),
            Some(Ok(m)) => {
                last_event = Instant::now();
                if m.topic() != topic || m.partition() != partition {
                    continue;
                }
                present.first_offset.get_or_insert(m.offset());
                present.count += 1;
                present.last = Some(BackedRecord::of(&m).into());
            }
        }
    }
    consumer.unassign().map_err(|e| e.to_string())?;
    Ok(present)
}

/// Passes over the records a partition holds already, object by object.
pub struct Skipper {
    left: u64,
    last: Option<Content>,
}

impl Skipper {
    pub fn new(present: Option<&Present>) -> Self {
        Skipper {
            left: present.map_or(0, |p| p.count),
            last: present.and_then(|p| p.last.clone()),
        }
    }

    /// The records of one object still to write. When the last of those
    /// present falls in this object, it must be the backup's record there.
    pub fn rest<'a>(
        &mut self,
        records: Vec<&'a BackedRecord>,
    ) -> Result<Vec<&'a BackedRecord>, String> {
        let n = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(records.len());
        self.left -= n as u64;
        if n > 0 && self.left == 0 {
            let theirs = Content::from(records[n - 1]);
            if self.last.as_ref() != Some(&theirs) {
                return Err(format!(
                    "its last record is not the backup's record at that place (its record {}): it holds something other than this restore wrote",
                    n - 1
                ));
            }
        }
        Ok(records[n..].to_vec())
    }

    /// Fails when the partition holds more records than the backup writes.
    pub fn finish(&self) -> Result<(), String> {
        if self.left > 0 {
            return Err(format!(
                "it holds {} record(s) more than this restore writes",
                self.left
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: i64) -> BackedRecord {
        BackedRecord {
            partition: 0,
            offset: i,
            timestamp: i,
            key: Some(vec![u8::try_from(i).unwrap()]),
            value: None,
            headers: Vec::new(),
        }
    }

    #[test]
    fn what_a_partition_holds_is_passed_over_once_its_last_record_matches() {
        let all: Vec<BackedRecord> = (0..10).map(record).collect();
        let present = Present {
            count: 7,
            first_offset: Some(0),
            last: Some(Content::from(&all[6])),
        };
        let mut skip = Skipper::new(Some(&present));
        let first: Vec<&BackedRecord> = all[..5].iter().collect();
        assert!(skip.rest(first).unwrap().is_empty());
        let second: Vec<&BackedRecord> = all[5..].iter().collect();
        let rest = skip.rest(second).unwrap();
        assert_eq!(rest, all[7..].iter().collect::<Vec<_>>());
        skip.finish().unwrap();

        // Something else there: refused.
        let other = Present {
            count: 3,
            first_offset: Some(0),
            last: Some(Content::from(&record(99))),
        };
        let mut skip = Skipper::new(Some(&other));
        assert!(skip.rest(all.iter().collect()).is_err());
        // More there than the backup has: refused.
        let more = Present {
            count: 11,
            first_offset: Some(0),
            last: None,
        };
        let mut skip = Skipper::new(Some(&more));
        assert!(skip.rest(all.iter().collect()).unwrap().is_empty());
        assert!(skip.finish().is_err());
        // Nothing there: everything is written.
        let mut skip = Skipper::new(None);
        assert_eq!(skip.rest(all.iter().collect()).unwrap().len(), 10);
    }
}
