//! The declared consumer groups' committed offsets, which every manifest
//! records, translated to the restored topics: a restored topic numbers its
//! records from its own start, so a committed offset `c` becomes the offset
//! of the first restored record whose original offset is at least `c`
//! (where the restore started writing in that partition, plus the restored
//! records before `c`); a group committed past the restored records lands at
//! their end. `restore --groups` sets them once the records are written.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};

use super::BackupError;
use super::manifest::{Manifest, SegmentObject};
use super::restore::{RestorePlan, Restored, TopicRestore, fetch};
use super::segment::{self, BackedRecord};
use crate::backend::s3::BucketObjects;

/// One committed offset of a group, and where it lands in the restored topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Translated {
    pub group: String,
    /// The backed-up topic.
    pub topic: String,
    /// The topic written.
    pub into: String,
    pub partition: i32,
    /// The offset the group had committed on `topic`.
    pub committed: i64,
    /// The same place in `into`.
    pub restored: i64,
}

/// How many of `object`'s records a restore to `to` writes before offset
/// `c`, when its manifest entry says so; `None` when only its records can
/// (`c` or `to` falls inside it, and its offsets have gaps or its
/// timestamps straddle `to`).
fn counted(object: &SegmentObject, c: i64, to: Option<i64>) -> Option<u64> {
    if object.first_offset >= c {
        return Some(0);
    }
    // Records without a timestamp (-1) are kept by any `to`.
    if to.is_some_and(|t| object.max_timestamp.is_some_and(|max| max > t)) {
        return None;
    }
    if object.last_offset < c {
        return Some(object.records);
    }
    let span = object.last_offset - object.first_offset + 1;
    (u64::try_from(span).ok() == Some(object.records))
        .then(|| u64::try_from(c - object.first_offset).unwrap_or(0))
}

/// Of `records`, how many a restore to `to` writes before offset `c`.
fn count(records: &[BackedRecord], c: i64, to: Option<i64>) -> u64 {
    records
        .iter()
        .filter(|r| r.offset < c && to.is_none_or(|t| r.timestamp <= t))
        .count() as u64
}

/// The committed offsets `newest` (the chain's newest run) recorded of the
/// `declared` groups (those the namespace declares now: a group it no
/// longer declares is not its to set) on the topics of `topics`, translated. Reads (and checks) only the objects whose
/// manifest entry cannot say how many of their records come before an
/// offset.
///
/// With `--to-time` too they are the newest run's: the group had read a
/// restored record exactly when its original offset is below the group's
/// offset then, so the group goes on with the first restored record it had
/// not read, and reads none again (the records it read after `to` are not
/// restored). Offsets from an earlier run would have it read again what it
/// had read since.
pub async fn translate(
    topics: &[TopicRestore],
    newest: &Manifest,
    declared: &[&str],
    to: Option<i64>,
    objects: &BucketObjects,
) -> Result<Vec<Translated>, BackupError> {
    let mut out = Vec::new();
    for g in newest
        .consumer_groups
        .iter()
        .filter(|g| declared.contains(&g.group.as_str()))
    {
        for o in &g.offsets {
            // A partition the backup does not have is no group's offset.
            let Some(t) = topics.iter().find(|t| {
                t.from == o.topic && (0..i64::from(t.partitions)).contains(&i64::from(o.partition))
            }) else {
                continue;
            };
            let mut before = 0u64;
            for (_, object) in t.objects.iter().filter(|(p, _)| *p == o.partition) {
                before += match counted(object, o.offset, to) {
                    Some(n) => n,
                    None => {
                        let bytes = fetch(objects, objects.bucket(), object)
                            .await
                            .map_err(|e| BackupError::Kafka(e.to_string()))??;
                        let records =
                            segment::read(&bytes).map_err(|message| BackupError::Unreadable {
                                bucket: objects.bucket().to_owned(),
                                key: object.key.clone(),
                                message,
                                written: 0,
                            })?;
                        count(&records, o.offset, to)
                    }
                };
            }
            out.push(Translated {
                group: g.group.clone(),
                topic: t.from.clone(),
                into: t.into.clone(),
                partition: o.partition,
                committed: o.offset,
                restored: t.base(o.partition) + i64::try_from(before).unwrap_or(i64::MAX),
            });
        }
    }
    Ok(out)
}

/// Refuses when one of `groups` has members: the broker takes offsets from
/// outside a group only while it is empty (some brokers, tansu, take them
/// anyway, and the members would overwrite them).
pub fn check_idle(
    config: &ClientConfig,
    groups: &BTreeSet<String>,
    timeout: Duration,
) -> Result<(), BackupError> {
    for group in groups {
        let consumer: BaseConsumer = config
            .clone()
            .set("group.id", group)
            .create()
            .map_err(|e| BackupError::Kafka(e.to_string()))?;
        let list = consumer
            .fetch_group_list(Some(group), timeout)
            .map_err(|e| BackupError::Kafka(format!("describing consumer group `{group}`: {e}")))?;
        if let Some(g) = list.groups().iter().find(|g| g.name() == group)
            && !g.members().is_empty()
        {
            return Err(BackupError::GroupActive {
                group: group.clone(),
                members: g.members().len(),
            });
        }
    }
    Ok(())
}

/// Sets the plan's translated offsets, group by group, once the records
/// landed where the plan put them, and reads them back. The groups set.
pub async fn set(
    plan: &RestorePlan,
    done: &Restored,
    config: &ClientConfig,
    timeout: Duration,
) -> Result<Vec<String>, BackupError> {
    landed_as_planned(plan, done)?;
    let mut by_group: BTreeMap<&str, Vec<&Translated>> = BTreeMap::new();
    for t in &plan.groups {
        by_group.entry(&t.group).or_default().push(t);
    }
    let mut set = Vec::new();
    for (group, offsets) in by_group {
        let mut tpl = TopicPartitionList::new();
        for t in offsets {
            tpl.add_partition_offset(&t.into, t.partition, Offset::Offset(t.restored))
                .map_err(|e| not_set(group, e.to_string()))?;
        }
        let (config, name) = (config.clone(), group.to_owned());
        let commit = tokio::task::spawn_blocking(move || commit(&config, &name, &tpl, timeout));
        match tokio::time::timeout(timeout * 2, commit).await {
            Ok(joined) => joined.map_err(|e| not_set(group, e.to_string()))??,
            Err(_) => {
                return Err(not_set(
                    group,
                    format!(
                        "the broker did not answer within {}s",
                        (timeout * 2).as_secs_f64()
                    ),
                ));
            }
        }
        set.push(group.to_owned());
    }
    Ok(set)
}

fn not_set(group: &str, message: String) -> BackupError {
    BackupError::GroupNotSet {
        group: group.to_owned(),
        message,
    }
}

/// Each partition a group offset is set on holds the records written
/// there at the offsets the translation assumed: starting right after what
/// it held, one after the other. Otherwise something else wrote into it, or
/// a retried request wrote a record twice, and the offsets would be wrong.
fn landed_as_planned(plan: &RestorePlan, done: &Restored) -> Result<(), BackupError> {
    for g in &plan.groups {
        let Some(t) = plan.topics.iter().find(|t| t.into == g.into) else {
            continue;
        };
        let Some(landed) = done.landed.get(&(g.into.clone(), g.partition)) else {
            continue;
        };
        let held = t.present.get(&g.partition).map_or(0, |p| p.count);
        let expected = t.base(g.partition) + i64::try_from(held).unwrap_or(i64::MAX);
        let Some(first) = landed.first else {
            continue;
        };
        if first != expected
            || landed.last - first + 1 != i64::try_from(landed.records).unwrap_or(-1)
        {
            return Err(not_set(
                &g.group,
                format!(
                    "the {} record(s) written to `{}` partition {} landed at offsets {first} to {}, where the translation expects {expected} to {} (something else wrote into it, or a retried request wrote a record twice), so the translated offsets would be wrong",
                    landed.records,
                    g.into,
                    g.partition,
                    landed.last,
                    expected + i64::try_from(landed.records).unwrap_or(0) - 1
                ),
            ));
        }
    }
    Ok(())
}

/// Commits `offsets` for `group` from outside it, then reads them back.
fn commit(
    config: &ClientConfig,
    group: &str,
    offsets: &TopicPartitionList,
    timeout: Duration,
) -> Result<(), BackupError> {
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .map_err(|e| not_set(group, e.to_string()))?;
    consumer
        .commit(offsets, CommitMode::Sync)
        .map_err(|e| not_set(group, refused(&e)))?;
    let found = consumer
        .committed_offsets(offsets.clone(), timeout)
        .map_err(|e| not_set(group, format!("reading them back: {e}")))?;
    for e in offsets.elements() {
        let back = found
            .find_partition(e.topic(), e.partition())
            .map(|f| f.offset());
        if back != Some(e.offset()) {
            return Err(not_set(
                group,
                format!(
                    "`{}` partition {} reads back as {back:?}, not {:?}",
                    e.topic(),
                    e.partition(),
                    e.offset()
                ),
            ));
        }
    }
    Ok(())
}

/// The broker's refusal of a commit, with what it means.
fn refused(e: &KafkaError) -> String {
    match e.rdkafka_error_code() {
        Some(
            RDKafkaErrorCode::UnknownMemberId
            | RDKafkaErrorCode::IllegalGeneration
            | RDKafkaErrorCode::RebalanceInProgress
            | RDKafkaErrorCode::FencedInstanceId,
        ) => format!("{e}: the group has active members; stop its consumers"),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(first: i64, last: i64, records: u64, min: i64, max: i64) -> SegmentObject {
        SegmentObject {
            first_offset: first,
            last_offset: last,
            min_timestamp: Some(min),
            max_timestamp: Some(max),
            ..SegmentObject::holding(&[], records)
        }
    }

    fn record(offset: i64, timestamp: i64) -> BackedRecord {
        BackedRecord {
            partition: 0,
            offset,
            timestamp,
            key: None,
            value: None,
            headers: Vec::new(),
        }
    }

    #[test]
    fn offsets_are_set_only_where_the_records_landed_as_translated() {
        use super::super::manifest::Coverage;
        use super::super::restore::Landed;
        use super::super::resume::Present;
        let topic = TopicRestore {
            from: "t".into(),
            into: "t.r".into(),
            create: false,
            partitions: 1,
            replication_factor: 1,
            config: BTreeMap::new(),
            objects: Vec::new(),
            // Held 3 records from offset 40: the restore goes on at 43.
            present: [(
                0,
                Present {
                    count: 3,
                    first_offset: Some(40),
                    last: None,
                },
            )]
            .into(),
            base: [(0, 40)].into(),
        };
        let plan = RestorePlan {
            namespace: "ns".into(),
            bucket: "b".into(),
            runs: Vec::new(),
            coverage: Coverage {
                from_ms: None,
                to_ms: 0,
            },
            to_time_ms: None,
            topics: vec![topic],
            groups_from: "r".into(),
            read_at_ms: 0,
            groups: vec![Translated {
                group: "g".into(),
                topic: "t".into(),
                into: "t.r".into(),
                partition: 0,
                committed: 7,
                restored: 45,
            }],
            set_groups: true,
        };
        let done = |first: Option<i64>, last: i64, records: u64| Restored {
            landed: [(
                ("t.r".to_owned(), 0),
                Landed {
                    first,
                    last,
                    records,
                },
            )]
            .into(),
            ..Restored::default()
        };
        landed_as_planned(&plan, &done(Some(43), 52, 10)).unwrap();
        landed_as_planned(&plan, &done(None, 0, 0)).unwrap();
        // Something else wrote first.
        let err = landed_as_planned(&plan, &done(Some(44), 53, 10)).unwrap_err();
        assert!(
            err.to_string()
                .contains("landed at offsets 44 to 53, where the translation expects 43 to 52"),
            "{err}"
        );
        // A record written twice (a gap in what was acknowledged).
        assert!(landed_as_planned(&plan, &done(Some(43), 53, 10)).is_err());
    }

    #[test]
    fn an_object_counts_from_its_manifest_entry_unless_c_or_the_time_falls_inside_it() {
        // Offsets 10 to 19, timestamps 100 to 190.
        let o = object(10, 19, 10, 100, 190);
        assert_eq!(counted(&o, 10, None), Some(0));
        assert_eq!(counted(&o, 5, Some(0)), Some(0));
        assert_eq!(counted(&o, 20, None), Some(10));
        assert_eq!(counted(&o, 25, Some(190)), Some(10));
        // Without gaps, the records before 14 are 10 to 13.
        assert_eq!(counted(&o, 14, None), Some(4));
        // Its records straddle the time: they say.
        assert_eq!(counted(&o, 20, Some(150)), None);
        // A gap in its offsets (compaction): they say.
        let gaps = object(10, 19, 6, 100, 190);
        assert_eq!(counted(&gaps, 14, None), None);
        assert_eq!(counted(&gaps, 20, None), Some(6));
    }

    #[test]
    fn records_count_before_an_offset_and_at_or_before_the_time() {
        // Offsets 10, 11, 13, 14 (12 was compacted away); 11 is late.
        let records = [
            record(10, 100),
            record(11, 500),
            record(13, 130),
            record(14, 140),
        ];
        assert_eq!(count(&records, 14, None), 3);
        assert_eq!(count(&records, 14, Some(200)), 2);
        assert_eq!(count(&records, 12, Some(200)), 1);
        assert_eq!(count(&records, 99, Some(200)), 3);
        assert_eq!(count(&records, 10, None), 0);
    }
}
