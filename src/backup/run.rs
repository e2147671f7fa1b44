//! `sluice backup`: each partition of a namespace's topics, from where the
//! last complete run ended (or from the beginning) up to the high watermark
//! read at the start, into segment objects; then the manifest, last.
//!
//! A reader thread consumes one partition at a time and hands finished
//! segments over a channel of one to the uploader: at most three segments
//! are in memory (one filling, one waiting, one uploading), whatever the
//! topic's size.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::manifest::{self, CommittedOffset, GroupOffsets, Manifest, RunKind, SegmentObject};
use super::segment::{BackedRecord, SegmentStats, SegmentWriter};
use super::{BackupError, now_ms, sha256_hex};
use crate::backend::s3::BucketObjects;
use crate::desired::{Environment, NamespaceState};
use crate::engine::Target;
use crate::records::RecordKind;
use crate::resource::{Address, Value};

/// How a backup runs.
#[derive(Clone, Copy, Debug)]
pub struct BackupOptions {
    /// Record bytes per segment object.
    pub segment_bytes: u64,
    /// How long one request may take, and how long a partition may go
    /// without a record before its read fails.
    pub timeout: Duration,
}

/// What one run wrote.
#[derive(Clone, Debug)]
pub struct Backed {
    pub namespace: String,
    pub run_id: String,
    pub kind: RunKind,
    /// `s3://bucket/key` of the manifest.
    pub manifest: String,
    pub records: u64,
    pub objects: usize,
    pub bytes: u64,
    /// Records lost between runs (retention deleted them first), and the like.
    pub warnings: Vec<String>,
}

/// The newest complete run's manifest and those it goes on from, by run ID.
pub async fn load_chain(
    objects: &BucketObjects,
    dir: &str,
) -> Result<BTreeMap<String, Manifest>, BackupError> {
    let runs = manifest::complete_runs(dir, &objects.list(dir).await?);
    let mut loaded = BTreeMap::new();
    let mut next = runs.last().cloned();
    while let Some(run) = next.take() {
        if !runs.contains(&run) {
            // chain() names the missing link.
            break;
        }
        let m = load_manifest(objects, dir, &run).await?;
        if m.kind == RunKind::Incremental {
            next.clone_from(&m.previous);
        }
        loaded.insert(run, m);
    }
    Ok(loaded)
}

/// Every complete run's manifest, by run ID: what a restore to a time the
/// newest chain does not cover chooses among.
pub async fn load_all(
    objects: &BucketObjects,
    dir: &str,
) -> Result<BTreeMap<String, Manifest>, BackupError> {
    let runs = manifest::complete_runs(dir, &objects.list(dir).await?);
    let loaded: Vec<Manifest> = futures_util::stream::iter(&runs)
        .map(|run| load_manifest(objects, dir, run))
        .buffered(16)
        .try_collect()
        .await?;
    Ok(runs.into_iter().zip(loaded).collect())
}

async fn load_manifest(
    objects: &BucketObjects,
    dir: &str,
    run: &str,
) -> Result<Manifest, BackupError> {
    let key = manifest::manifest_key(dir, run);
    let bytes = objects.get(&key).await?;
    let bad = |message: String| BackupError::BadManifest {
        bucket: objects.bucket().to_owned(),
        key: key.clone(),
        message,
    };
    let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
    if m.format_version > manifest::MANIFEST_VERSION {
        return Err(bad(format!(
            "format_version {} is newer than this sluice reads ({})",
            m.format_version,
            manifest::MANIFEST_VERSION
        )));
    }
    Ok(m)
}

/// One partition to read, and where the previous run ended.
struct Work {
    topic: String,
    partition: i32,
    resume: Option<i64>,
}

/// A finished segment on its way to S3.
struct Segment {
    topic: String,
    partition: i32,
    bytes: Vec<u8>,
    stats: SegmentStats,
}

/// What was read of one partition.
struct Read {
    topic: String,
    partition: i32,
    start: i64,
    end: i64,
    records: u64,
    min_timestamp: Option<i64>,
    max_timestamp: Option<i64>,
    warning: Option<String>,
}

/// Backs up one namespace: segments first, the manifest last.
pub async fn backup(
    ns: &NamespaceState,
    env: &Environment,
    target: &Target,
    objects: &BucketObjects,
    opts: BackupOptions,
) -> Result<Backed, BackupError> {
    let backup = super::declared(ns)?;
    let dir = manifest::namespace_dir(&backup.prefix, &ns.name);
    let chain = load_chain(objects, &dir).await?;
    let previous = chain.values().next_back();
    let kind = match previous {
        Some(_) if backup.incremental => RunKind::Incremental,
        _ => RunKind::Full,
    };
    let resume = match (kind, previous) {
        (RunKind::Incremental, Some(p)) => manifest::resume_points(p),
        _ => BTreeMap::new(),
    };

    // The topics' shapes and configs, and the registry record, as they are.
    let registry_key = RecordKind::Registry.key(&env.etcd.prefix, &ns.name);
    let mut wanted: BTreeSet<Address> = ns.topics.iter().map(|t| Address::topic(&t.name)).collect();
    wanted.insert(Address::etcd_key(&registry_key));
    let live = target.read(&wanted).await?;
    let mut topics = Vec::new();
    for t in &ns.topics {
        match live
            .resources
            .get(&Address::topic(&t.name))
            .map(|r| &r.value)
        {
            Some(Value::Topic(v)) => topics.push((t.name.clone(), v.clone())),
            _ => {
                return Err(BackupError::MissingTopic {
                    namespace: ns.name.clone(),
                    topic: t.name.clone(),
                });
            }
        }
    }
    let registry = match live
        .resources
        .get(&Address::etcd_key(&registry_key))
        .map(|r| &r.value)
    {
        Some(Value::Record(record)) => Some(record.json()),
        _ => None,
    };

    let started_at_ms = now_ms();
    let run_id = manifest::run_id(started_at_ms, std::process::id());
    let work: Vec<Work> = topics
        .iter()
        .flat_map(|(name, v)| {
            (0..i32::try_from(v.partitions).unwrap_or(i32::MAX)).map(|p| Work {
                topic: name.clone(),
                partition: p,
                resume: resume.get(&(name.clone(), p)).copied(),
            })
        })
        .collect();
    let partitions: Vec<(String, i32)> = work
        .iter()
        .map(|w| (w.topic.clone(), w.partition))
        .collect();
    let config = crate::backend::kafka::client_settings(&env.kafka)?;

    let (tx, mut rx) = mpsc::channel::<Segment>(1);
    let reader = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || read_all(&config, work, opts, &tx))
    };
    let (dir_ref, run_ref) = (&dir, &run_id);
    // Owns the receiver: should an upload fail, the reader's next send fails
    // and it stops.
    let upload = async move {
        let mut uploaded: BTreeMap<(String, i32), Vec<SegmentObject>> = BTreeMap::new();
        let mut bytes = 0u64;
        while let Some(seg) = rx.recv().await {
            let key = manifest::segment_key(
                dir_ref,
                run_ref,
                &seg.topic,
                seg.partition,
                seg.stats.first_offset,
            );
            let sha256 = sha256_hex(&seg.bytes);
            let size = seg.bytes.len() as u64;
            objects.put(&key, seg.bytes).await?;
            bytes += size;
            uploaded
                .entry((seg.topic, seg.partition))
                .or_default()
                .push(SegmentObject {
                    key,
                    sha256,
                    size,
                    records: seg.stats.records,
                    first_offset: seg.stats.first_offset,
                    last_offset: seg.stats.last_offset,
                    min_timestamp: seg.stats.min_timestamp,
                    max_timestamp: seg.stats.max_timestamp,
                });
        }
        Ok::<_, BackupError>((uploaded, bytes))
    }
    .await;
    let read = reader
        .await
        .map_err(|e| BackupError::Kafka(e.to_string()))?;
    let (mut uploaded, bytes) = upload?;
    let read = read?;

    let groups: Vec<String> = ns.consumers.iter().map(|c| c.group.clone()).collect();
    let timeout = opts.timeout;
    let consumer_groups =
        tokio::task::spawn_blocking(move || committed(&config, &groups, &partitions, timeout))
            .await
            .map_err(|e| BackupError::Kafka(e.to_string()))??;

    let mut warnings = Vec::new();
    let mut records = 0;
    let mut objects_written = 0;
    let mut ranges: BTreeMap<String, Vec<manifest::PartitionRange>> = BTreeMap::new();
    for r in read {
        warnings.extend(r.warning);
        records += r.records;
        let objs = uploaded
            .remove(&(r.topic.clone(), r.partition))
            .unwrap_or_default();
        objects_written += objs.len();
        ranges
            .entry(r.topic)
            .or_default()
            .push(manifest::PartitionRange {
                partition: r.partition,
                start_offset: r.start,
                end_offset: r.end,
                records: r.records,
                min_timestamp: r.min_timestamp,
                max_timestamp: r.max_timestamp,
                objects: objs,
            });
    }
    let m = Manifest {
        format_version: manifest::MANIFEST_VERSION,
        namespace: ns.name.clone(),
        environment: env.name.clone(),
        run_id: run_id.clone(),
        kind,
        previous: match kind {
            RunKind::Incremental => previous.map(|p| p.run_id.clone()),
            RunKind::Full => None,
        },
        started_at: manifest::rfc3339(started_at_ms),
        started_at_ms,
        finished_at: manifest::rfc3339(now_ms()),
        topics: topics
            .into_iter()
            .map(|(name, v)| manifest::TopicBackup {
                ranges: ranges.remove(&name).unwrap_or_default(),
                name,
                partitions: v.partitions,
                replication_factor: v.replication_factor,
                config: v
                    .config
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            })
            .collect(),
        registry,
        consumer_groups,
    };
    let key = manifest::manifest_key(&dir, &run_id);
    let text = serde_json::to_vec_pretty(&m).expect("a manifest is JSON");
    objects.put(&key, text).await?;
    Ok(Backed {
        namespace: ns.name.clone(),
        run_id,
        kind,
        manifest: format!("s3://{}/{key}", objects.bucket()),
        records,
        objects: objects_written,
        bytes,
        warnings,
    })
}

/// A consumer that reads by assignment and never commits.
fn reader(config: &ClientConfig) -> Result<BaseConsumer, BackupError> {
    config
        .clone()
        .set("group.id", "sluice-backup")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        // librdkafka's prefetch queue, per partition: bounded memory.
        .set("queued.max.messages.kbytes", "16384")
        .create()
        .map_err(|e| BackupError::Kafka(e.to_string()))
}

/// Reads every partition of `work` in turn; the high watermarks are read
/// first, all of them, so that the run covers what was there when it began.
fn read_all(
    config: &ClientConfig,
    work: Vec<Work>,
    opts: BackupOptions,
    tx: &mpsc::Sender<Segment>,
) -> Result<Vec<Read>, BackupError> {
    let consumer = reader(config)?;
    let mut marks = Vec::with_capacity(work.len());
    for w in &work {
        let mark = consumer
            .fetch_watermarks(&w.topic, w.partition, opts.timeout)
            .map_err(|e| BackupError::Read {
                topic: w.topic.clone(),
                partition: w.partition,
                message: format!("reading its watermarks: {e}"),
            })?;
        marks.push(mark);
    }
    let mut out = Vec::with_capacity(work.len());
    for (w, (low, high)) in work.into_iter().zip(marks) {
        let start = w.resume.map_or(low, |r| r.max(low));
        let warning = w.resume.filter(|r| *r < low).map(|r| {
            format!(
                "`{}` partition {}: offsets {r} to {} were deleted (retention) before this backup read them",
                w.topic,
                w.partition,
                low - 1
            )
        });
        let mut read = Read {
            topic: w.topic,
            partition: w.partition,
            start,
            end: high.max(start),
            records: 0,
            min_timestamp: None,
            max_timestamp: None,
            warning,
        };
        if start < high {
            read_partition(&consumer, &mut read, opts, tx)?;
        }
        out.push(read);
    }
    Ok(out)
}

/// Reads `[read.start, read.end)` of one partition into segments.
fn read_partition(
    consumer: &BaseConsumer,
    read: &mut Read,
    opts: BackupOptions,
    tx: &mpsc::Sender<Segment>,
) -> Result<(), BackupError> {
    let (topic, partition, end) = (read.topic.clone(), read.partition, read.end);
    let fail = |message: String| BackupError::Read {
        topic: topic.clone(),
        partition,
        message,
    };
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, partition, Offset::Offset(read.start))
        .map_err(|e| fail(e.to_string()))?;
    consumer.assign(&tpl).map_err(|e| fail(e.to_string()))?;
    let new_segment = || SegmentWriter::new().map_err(|e| fail(format!("starting a segment: {e}")));
    let mut segment = new_segment()?;
    let mut next = read.start;
    let mut last_record = Instant::now();
    let send = |segment: SegmentWriter| -> Result<(), BackupError> {
        let (bytes, stats) = segment
            .finish()
            .map_err(|e| fail(format!("encoding a segment: {e}")))?;
        tx.blocking_send(Segment {
            topic: topic.clone(),
            partition,
            bytes,
            stats,
        })
        // The uploader stopped: its error is the one to report.
        .map_err(|_| fail("the upload stopped".into()))
    };
    while next < end {
        match consumer.poll(Duration::from_millis(200)) {
            None => {
                if last_record.elapsed() > opts.timeout {
                    return Err(fail(format!(
                        "no record came for {}s; read up to offset {next} of {end}",
                        opts.timeout.as_secs_f64()
                    )));
                }
            }
            // The end of the log came before the high watermark read at the
            // start: nothing more is there to read.
            Some(Err(KafkaError::PartitionEOF(p))) if p == partition => break,
            Some(Err(KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => return Err(fail(e.to_string())),
            Some(Ok(m)) => {
                last_record = Instant::now();
                if m.topic() != topic || m.partition() != partition || m.offset() < next {
                    continue;
                }
                if m.offset() >= end {
                    break;
                }
                let record = BackedRecord::of(&m);
                next = m.offset() + 1;
                read.records += 1;
                if record.timestamp >= 0 {
                    let t = record.timestamp;
                    read.min_timestamp = Some(read.min_timestamp.map_or(t, |m| m.min(t)));
                    read.max_timestamp = Some(read.max_timestamp.map_or(t, |m| m.max(t)));
                }
                segment
                    .append(record)
                    .map_err(|e| fail(format!("encoding a record: {e}")))?;
                if segment.size() as u64 >= opts.segment_bytes {
                    send(std::mem::replace(&mut segment, new_segment()?))?;
                }
            }
        }
    }
    if segment.records() > 0 {
        send(segment)?;
    }
    consumer.unassign().map_err(|e| fail(e.to_string()))?;
    Ok(())
}

/// The committed offsets of each group on `partitions`; partitions where a
/// group committed nothing are left out.
fn committed(
    config: &ClientConfig,
    groups: &[String],
    partitions: &[(String, i32)],
    timeout: Duration,
) -> Result<Vec<GroupOffsets>, BackupError> {
    let mut wanted = TopicPartitionList::new();
    for (topic, p) in partitions {
        wanted.add_partition(topic, *p);
    }
    groups
        .iter()
        .map(|group| {
            let failed = |e: KafkaError| {
                BackupError::Kafka(format!(
                    "reading the committed offsets of group `{group}`: {e}"
                ))
            };
            let consumer: BaseConsumer = config
                .clone()
                .set("group.id", group)
                .set("enable.auto.commit", "false")
                .create()
                .map_err(failed)?;
            let found = consumer
                .committed_offsets(wanted.clone(), timeout)
                .map_err(failed)?;
            let offsets = found
                .elements()
                .iter()
                .filter_map(|e| match e.offset() {
                    Offset::Offset(o) => Some(CommittedOffset {
                        topic: e.topic().to_owned(),
                        partition: e.partition(),
                        offset: o,
                    }),
                    _ => None,
                })
                .collect();
            Ok(GroupOffsets {
                group: group.clone(),
                offsets,
            })
        })
        .collect()
}
