//! `sluice restore`: the chain of manifests back into topics. [`plan`]
//! reads and checks everything and writes nothing; [`execute`] creates the
//! missing topics and writes the records, object by object, each verified
//! against its SHA-256 before any of its records is sent, then decoded a
//! block at a time: what is in memory is the compressed object being
//! written, the next one, and a few decoded blocks.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::producer::FutureProducer;

use super::groups::Translated;
use super::manifest::{self, Coverage, Manifest, SegmentObject};
use super::resume::{Present, Skipper, held};
use super::run::{complete_runs, load_all, load_chain};
use super::segment::SegmentReader;
use super::write::{Decoder, Writing, send_object};
use super::{BackupError, now_ms, sha256_hex};
use crate::backend::s3::BucketObjects;
use crate::desired::NamespaceState;
use crate::engine::Target;
use crate::engine::apply::Interrupt;
use crate::resource::{Address, Value};
use crate::state::Fence;

/// What the operator asked for.
#[derive(Clone, Debug, Default)]
pub struct RestoreRequest {
    /// Only records with a timestamp at or before this (ms since the epoch).
    pub to_time_ms: Option<i64>,
    /// Only these topics (all when empty).
    pub topics: Vec<String>,
    /// Restore topic `T` into `T<suffix>`.
    pub into_suffix: Option<String>,
    /// Go on with a restore that stopped: target topics may hold what it
    /// wrote before.
    pub resume: bool,
    /// Set the declared consumer groups' offsets on the restored topics.
    pub groups: bool,
}

/// What a restore will do: read before anything is written.
#[derive(Clone, Debug)]
pub struct RestorePlan {
    pub namespace: String,
    pub bucket: String,
    /// The runs of the chain, oldest (full) first.
    pub runs: Vec<String>,
    pub coverage: Coverage,
    pub to_time_ms: Option<i64>,
    pub topics: Vec<TopicRestore>,
    /// The run whose committed group offsets are translated: the newest.
    pub groups_from: String,
    /// When the newest run read the high watermarks (ms since the epoch):
    /// the age of the restored data is measured from it.
    pub read_at_ms: i64,
    /// The declared groups' committed offsets, translated.
    pub groups: Vec<Translated>,
    /// Whether they are set (`--groups`).
    pub set_groups: bool,
}

/// One topic to restore.
#[derive(Clone, Debug)]
pub struct TopicRestore {
    /// The backed-up topic.
    pub from: String,
    /// The topic written.
    pub into: String,
    /// Whether `into` is created (with the backed-up shape).
    pub create: bool,
    pub partitions: u32,
    pub replication_factor: u16,
    pub config: BTreeMap<String, String>,
    /// Partition by partition, in offset order.
    pub objects: Vec<(i32, SegmentObject)>,
    /// With `--resume`: what each partition of `into` holds already.
    pub present: BTreeMap<i32, Present>,
    /// The offset of each partition's first restored record, for a topic
    /// that exists (one that is created starts at 0).
    pub base: BTreeMap<i32, i64>,
}

impl TopicRestore {
    /// The records its objects hold (before `--to-time` filters them).
    pub fn records(&self) -> u64 {
        self.objects.iter().map(|(_, o)| o.records).sum()
    }

    /// The records `into` holds already (with `--resume`).
    pub fn present_records(&self) -> u64 {
        self.present.values().map(|p| p.count).sum()
    }

    /// The offset of `partition`'s first restored record.
    pub fn base(&self, partition: i32) -> i64 {
        self.base.get(&partition).copied().unwrap_or(0)
    }
}

/// What a restore wrote.
#[derive(Clone, Debug, Default)]
pub struct Restored {
    pub records: u64,
    pub objects: usize,
    pub created: Vec<String>,
    /// Where the records written to each partition (topic, partition) landed.
    pub landed: BTreeMap<(String, i32), Landed>,
}

/// The offsets the broker gave the records written to one partition.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Landed {
    pub first: Option<i64>,
    pub last: i64,
    pub records: u64,
}

/// Reads the chain and the target topics; refuses what must not be done.
/// Writes nothing.
pub async fn plan(
    ns: &NamespaceState,
    target: &Target,
    objects: &BucketObjects,
    config: &ClientConfig,
    req: &RestoreRequest,
    timeout: Duration,
) -> Result<RestorePlan, BackupError> {
    let backup = super::declared(ns)?;
    let dir = backup.dir(&ns.name);
    let runs = complete_runs(objects, &dir).await?;
    let loaded = load_chain(objects, &dir, &runs).await?;
    if loaded.is_empty() {
        return Err(BackupError::NoBackup {
            namespace: ns.name.clone(),
            bucket: objects.bucket().to_owned(),
            dir,
        });
    }
    let mut chain = match manifest::chain(&loaded) {
        Ok(chain) => chain,
        // A broken newest chain: an older whole one may cover `--to-time`.
        Err(_) if req.to_time_ms.is_some() => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let window = ns
        .disaster_recovery
        .as_ref()
        .and_then(|dr| dr.pitr_window_ms);
    if let (Some(t), Some(window)) = (req.to_time_ms, window) {
        let from = now_ms().saturating_sub(i64::try_from(window).unwrap_or(i64::MAX));
        if t < from {
            return Err(BackupError::OutsideWindow {
                namespace: ns.name.clone(),
                time: manifest::rfc3339(t),
                window: humantime::format_duration(Duration::from_millis(window)).to_string(),
                from: manifest::rfc3339(from),
            });
        }
    }
    // A time the newest chain does not cover, or that it did not run
    // across: an older chain may hold more of it. A full run holds what
    // retention left then, so a chain started after the time may lack
    // records that were there at it; the newest chain whose runs went on
    // across the time (its full run by then, a run at or after it) is read
    // first.
    let ran_across = |c: &[&Manifest], t: i64| {
        c.first().is_some_and(|m| m.started_at_ms <= t)
            && c.last().is_some_and(|m| m.started_at_ms >= t)
    };
    let all;
    let mut chains;
    if let Some(t) = req.to_time_ms
        && !(Coverage::of(&chain).is_some_and(|c| c.contains(t)) && ran_across(&chain, t))
    {
        all = load_all(objects, &dir, &runs, &loaded).await?;
        chains = manifest::chains(&all);
        chains.whole.sort_by_key(|c| !ran_across(c, t));
        let (found, _) =
            manifest::covering(&chains, t).map_err(|covered| BackupError::OutOfRange {
                namespace: ns.name.clone(),
                time: manifest::rfc3339(t),
                covered,
            })?;
        chain = found.to_vec();
    }
    let coverage = Coverage::of(&chain).expect("a whole chain of complete runs covers a range");
    let mut topics = topics_of(&chain, req.to_time_ms);
    if !req.topics.is_empty() {
        let held: Vec<String> = topics.iter().map(|t| format!("`{}`", t.from)).collect();
        let unknown: Vec<String> = req
            .topics
            .iter()
            .filter(|n| !topics.iter().any(|t| &t.from == *n))
            .map(|n| format!("`{n}`"))
            .collect();
        if !unknown.is_empty() {
            return Err(BackupError::UnknownTopics {
                namespace: ns.name.clone(),
                names: unknown,
                held,
            });
        }
        topics.retain(|t| req.topics.contains(&t.from));
    }
    if let Some(suffix) = &req.into_suffix {
        for t in &mut topics {
            t.into = format!("{}{suffix}", t.from);
        }
    }

    // Targets that exist must be empty and wide enough.
    let wanted: BTreeSet<Address> = topics.iter().map(|t| Address::topic(&t.into)).collect();
    let live = target.read(&wanted).await?;
    let mut existing = Vec::new();
    for t in &mut topics {
        if let Some(Value::Topic(v)) = live
            .resources
            .get(&Address::topic(&t.into))
            .map(|r| &r.value)
        {
            if v.partitions < t.partitions {
                return Err(BackupError::TooFewPartitions {
                    topic: t.into.clone(),
                    live: v.partitions,
                    backed: t.partitions,
                });
            }
            t.create = false;
            existing.push((t.into.clone(), v.partitions));
        }
    }
    if !existing.is_empty() {
        let (config, resume) = (config.clone(), req.resume);
        let (marks, mut present) =
            tokio::task::spawn_blocking(move || held(&config, &existing, resume, timeout))
                .await
                .map_err(|e| BackupError::Kafka(e.to_string()))??;
        for t in &mut topics {
            let mut held = 0;
            for p in 0..i32::try_from(t.partitions).unwrap_or(i32::MAX) {
                let Some(&(low, high)) = marks.get(&(t.into.clone(), p)) else {
                    continue;
                };
                held += (high - low).max(0);
                let present = present.remove(&(t.into.clone(), p)).unwrap_or_default();
                // The restore's first record is the first one present, or
                // comes at the end of the partition.
                t.base.insert(p, present.first_offset.unwrap_or(high));
                if present.count > 0 {
                    t.present.insert(p, present);
                }
            }
            if held > 0 && !req.resume {
                return Err(BackupError::HoldsData {
                    topic: t.into.clone(),
                    records: held,
                });
            }
        }
    }
    let newest = chain.last().expect("a chain holds a run");
    let declared: Vec<&str> = ns.consumers.iter().map(|c| c.group.as_str()).collect();
    let translated =
        super::groups::translate(&topics, newest, &declared, req.to_time_ms, objects).await?;
    if req.groups {
        let config = config.clone();
        let names: BTreeSet<String> = translated.iter().map(|g| g.group.clone()).collect();
        tokio::task::spawn_blocking(move || super::groups::check_idle(&config, &names, timeout))
            .await
            .map_err(|e| BackupError::Kafka(e.to_string()))??;
    }
    Ok(RestorePlan {
        namespace: ns.name.clone(),
        bucket: objects.bucket().to_owned(),
        runs: chain.iter().map(|m| m.run_id.clone()).collect(),
        coverage,
        to_time_ms: req.to_time_ms,
        topics,
        groups_from: newest.run_id.clone(),
        read_at_ms: newest.started_at_ms,
        groups: translated,
        set_groups: req.groups,
    })
}

/// Every topic of the chain, with the shape its newest run saw, and the
/// objects holding records at or before `to_time_ms`.
fn topics_of(chain: &[&Manifest], to_time_ms: Option<i64>) -> Vec<TopicRestore> {
    let mut topics: BTreeMap<String, TopicRestore> = BTreeMap::new();
    let mut objects: BTreeMap<String, BTreeMap<i32, Vec<SegmentObject>>> = BTreeMap::new();
    for m in chain {
        for t in &m.topics {
            topics.insert(
                t.name.clone(),
                TopicRestore {
                    from: t.name.clone(),
                    into: t.name.clone(),
                    create: true,
                    partitions: t.partitions,
                    replication_factor: t.replication_factor,
                    config: t.config.clone(),
                    objects: Vec::new(),
                    present: BTreeMap::new(),
                    base: BTreeMap::new(),
                },
            );
            for r in &t.ranges {
                let kept = r
                    .objects
                    .iter()
                    .filter(|o| match (to_time_ms, o.min_timestamp) {
                        (Some(t), Some(min)) => min <= t,
                        _ => true,
                    });
                objects
                    .entry(t.name.clone())
                    .or_default()
                    .entry(r.partition)
                    .or_default()
                    .extend(kept.cloned());
            }
        }
    }
    topics
        .into_values()
        .map(|mut t| {
            t.objects = objects
                .remove(&t.from)
                .unwrap_or_default()
                .into_iter()
                .flat_map(|(p, objs)| objs.into_iter().map(move |o| (p, o)))
                .collect();
            t
        })
        .collect()
}

/// Writes the plan: missing topics first, then each object's records to
/// their partitions, in order. Between objects it stops on `cancel` and
/// when the lock is lost.
pub async fn execute(
    plan: &RestorePlan,
    objects: &BucketObjects,
    config: &ClientConfig,
    fence: &Fence,
    cancel: &Interrupt,
    timeout: Duration,
) -> Result<Restored, BackupError> {
    let mut done = Restored::default();
    create_topics(plan, config, timeout, &mut done).await?;
    let producer: FutureProducer = config
        .clone()
        .set("linger.ms", "5")
        // librdkafka copies what is queued: at most 16 MiB of it, rather
        // than its default 1 GiB (an object's records all go in at once).
        .set("queue.buffering.max.kbytes", "16384")
        // One request in flight per broker keeps each partition's order
        // through retries, without needing idempotence from the broker.
        .set("max.in.flight.requests.per.connection", "1")
        .set(
            "message.timeout.ms",
            (timeout.as_millis().max(1_000) * 4).to_string(),
        )
        .create()
        .map_err(|e| BackupError::Kafka(e.to_string()))?;
    // Objects in the order they are written; the next one is fetched and
    // checked while the records of this one are sent.
    let order: Vec<&SegmentObject> = plan
        .topics
        .iter()
        .flat_map(|t| {
            (0..i32::try_from(t.partitions).unwrap_or(i32::MAX)).flat_map(move |partition| {
                t.objects
                    .iter()
                    .filter(move |(p, _)| *p == partition)
                    .map(|(_, o)| o)
            })
        })
        .collect();
    let mut fetches = order.into_iter().map(|o| fetch(objects, &plan.bucket, o));
    let mut ahead = fetches.next();
    let mut decoder = Decoder::start();
    for t in &plan.topics {
        for partition in 0..i32::try_from(t.partitions).unwrap_or(i32::MAX) {
            let mut skip = Skipper::new(t.present.get(&partition));
            for (_, object) in t.objects.iter().filter(|(p, _)| *p == partition) {
                if cancel.requested() {
                    return Err(BackupError::Stopped {
                        reason: "interrupted",
                        written: done.records,
                    });
                }
                if !fence.is_held() {
                    return Err(BackupError::Stopped {
                        reason: "the apply lock was lost",
                        written: done.records,
                    });
                }
                let this = ahead.take().expect("one fetch per object");
                ahead = fetches.next();
                let bytes = this
                    .await
                    .map_err(|e| BackupError::Kafka(e.to_string()))?
                    .map_err(|e| e.written_before(done.records))?;
                let mut writing = Writing {
                    producer: &producer,
                    topic: &t.into,
                    partition,
                    pending: Vec::new(),
                    acked: 0,
                    before: done.records,
                    landed: done.landed.entry((t.into.clone(), partition)).or_default(),
                };
                let sent = send_object(
                    bytes,
                    &mut decoder,
                    &mut writing,
                    &mut skip,
                    plan.to_time_ms,
                    (&plan.bucket, object),
                )
                .await;
                // Whatever happened, what was sent is waited for, so that
                // the count an error gives is what the broker holds.
                let settled = writing.settle().await;
                done.records += writing.acked;
                sent.map_err(|e| e.written_before(done.records))?;
                settled?;
                done.objects += 1;
            }
            skip.finish().map_err(|message| BackupError::Mismatch {
                topic: t.into.clone(),
                partition,
                message,
            })?;
        }
    }
    Ok(done)
}

/// Starts fetching one object: its bytes, checked against the manifest's
/// SHA-256 and walked for their framing on a blocking thread. Nothing is
/// written until it is awaited, and an object that fails stops the restore
/// before its records.
pub(super) fn fetch(
    objects: &BucketObjects,
    bucket: &str,
    object: &SegmentObject,
) -> tokio::task::JoinHandle<Result<Vec<u8>, BackupError>> {
    let (objects, bucket, object) = (objects.clone(), bucket.to_owned(), object.clone());
    tokio::spawn(async move {
        let bytes = objects.get(&object.key).await?;
        tokio::task::spawn_blocking(move || check(&bucket, &object, &bytes).map(|()| bytes))
            .await
            .map_err(|e| BackupError::Kafka(e.to_string()))?
    })
}

/// Whether one object's bytes match the manifest's SHA-256 and frame the
/// records the manifest counts. `written` in its errors is filled in by the
/// caller.
fn check(bucket: &str, object: &SegmentObject, bytes: &[u8]) -> Result<(), BackupError> {
    let found = sha256_hex(bytes);
    if found != object.sha256 {
        return Err(BackupError::Corrupt {
            bucket: bucket.to_owned(),
            key: object.key.clone(),
            expected: object.sha256.clone(),
            found,
            written: 0,
        });
    }
    let unreadable = |message: String| BackupError::Unreadable {
        bucket: bucket.to_owned(),
        key: object.key.clone(),
        message,
        written: 0,
    };
    let records = SegmentReader::open(bytes)
        .and_then(|r| r.check_framing())
        .map_err(unreadable)?;
    if records != object.records {
        return Err(unreadable(format!(
            "it frames {records} record(s), the manifest says {}",
            object.records
        )));
    }
    Ok(())
}

/// Creates the plan's missing topics with their backed-up shape, and waits
/// until the cluster's metadata shows every partition.
async fn create_topics(
    plan: &RestorePlan,
    config: &ClientConfig,
    timeout: Duration,
    done: &mut Restored,
) -> Result<(), BackupError> {
    let missing: Vec<&TopicRestore> = plan.topics.iter().filter(|t| t.create).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = config
        .create()
        .map_err(|e| BackupError::Kafka(e.to_string()))?;
    let new: Vec<NewTopic> = missing
        .iter()
        .map(|t| {
            let topic = NewTopic::new(
                &t.into,
                i32::try_from(t.partitions).unwrap_or(i32::MAX),
                TopicReplication::Fixed(i32::from(t.replication_factor)),
            );
            t.config.iter().fold(topic, |topic, (k, v)| topic.set(k, v))
        })
        .collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    let results = admin
        .create_topics(&new, &options)
        .await
        .map_err(|e| BackupError::Kafka(e.to_string()))?;
    for r in results {
        match r {
            Ok(topic) => done.created.push(topic),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                return Err(BackupError::Create {
                    topic,
                    message:
                        "something else created it after restore checked it; run restore again"
                            .into(),
                });
            }
            Err((topic, code)) => {
                return Err(BackupError::Create {
                    topic,
                    message: code.to_string(),
                });
            }
        }
    }
    let wanted: Vec<(String, usize)> = missing
        .iter()
        .map(|t| (t.into.clone(), t.partitions as usize))
        .collect();
    tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + timeout;
        for (topic, partitions) in wanted {
            loop {
                let seen = admin
                    .inner()
                    .fetch_metadata(Some(&topic), timeout)
                    .ok()
                    .and_then(|md| {
                        md.topics()
                            .first()
                            .filter(|t| t.error().is_none())
                            .map(|t| t.partitions().len())
                    });
                if seen == Some(partitions) {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    return Err(BackupError::Create {
                        topic,
                        message: format!(
                            "created, but the cluster did not show its {partitions} partition(s) within {}s",
                            timeout.as_secs_f64()
                        ),
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| BackupError::Kafka(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::segment::{self, BackedRecord};

    #[test]
    fn an_object_is_refused_before_its_records_unless_checksum_framing_and_count_agree() {
        let records: Vec<BackedRecord> = (0..3000)
            .map(|i| BackedRecord {
                partition: 0,
                offset: i,
                timestamp: i,
                key: Some(i.to_le_bytes().to_vec()),
                value: Some(vec![b'x'; 700]),
                headers: Vec::new(),
            })
            .collect();
        let (bytes, _) = segment::write(&records).unwrap();
        check("b", &SegmentObject::holding(&bytes, 3000), &bytes).unwrap();

        // Damaged in storage: the checksum says so, naming the object.
        let mut damaged = bytes.clone();
        damaged[bytes.len() / 2] ^= 1;
        let err = check("b", &SegmentObject::holding(&bytes, 3000), &damaged).unwrap_err();
        assert!(matches!(err, BackupError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("s3://b/b/ns/run/t/0/"), "{err}");

        // Cut short by its writer (the checksum is of the cut bytes): the
        // framing walk finds it before any block is decoded.
        let cut = &bytes[..bytes.len() - 100];
        let err = check("b", &SegmentObject::holding(cut, 3000), cut).unwrap_err();
        assert!(matches!(err, BackupError::Unreadable { .. }), "{err}");

        // Whole, but not what the manifest counts.
        let err = check("b", &SegmentObject::holding(&bytes, 2999), &bytes).unwrap_err();
        assert!(err.to_string().contains("manifest says 2999"), "{err}");
    }
}
