//! `sluice backup`: each partition of a namespace's topics, from where the
//! last complete run ended (or from the beginning) up to the high watermark
//! read at the start, into segment objects; then the manifest, last.
//!
//! [`super::read`] reads the partitions, up to four at once, into
//! compressed segments; here they are uploaded, a channel of one between
//! them, and the manifest written last. What is in memory is bounded
//! whatever the topic's size: the blocks being compressed, a segment being
//! assembled per partition being read, one waiting and one uploading.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use super::manifest::{self, CommittedOffset, GroupOffsets, Manifest, RunKind, SegmentObject};
use super::read::{BLOCKS_IN_FLIGHT, Piece, Segment, Work, assemble, read_all};
use super::{BackupError, now_ms};
use crate::backend::s3::BucketObjects;
use crate::desired::{BackupState, Environment, NamespaceState};
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

/// The complete runs under `dir`, oldest first: one listing, which
/// [`load_chain`] and [`load_all`] then read from.
pub async fn complete_runs(objects: &BucketObjects, dir: &str) -> Result<Vec<String>, BackupError> {
    Ok(manifest::complete_runs(dir, &objects.list(dir).await?))
}

/// The newest of the complete `runs`' manifest and those it goes on from,
/// by run ID.
pub async fn load_chain(
    objects: &BucketObjects,
    dir: &str,
    runs: &[String],
) -> Result<BTreeMap<String, Manifest>, BackupError> {
    let mut loaded = BTreeMap::new();
    let mut next = runs.last().cloned();
    while let Some(run) = next.take() {
        if !runs.contains(&run) || loaded.contains_key(&run) {
            // chain() names the missing link, or the loop.
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
/// newest chain does not cover chooses among. Those in `known` (the
/// newest chain, read already) are not read again.
pub async fn load_all(
    objects: &BucketObjects,
    dir: &str,
    runs: &[String],
    known: &BTreeMap<String, Manifest>,
) -> Result<BTreeMap<String, Manifest>, BackupError> {
    let missing: Vec<&String> = runs.iter().filter(|r| !known.contains_key(*r)).collect();
    let loaded: Vec<Manifest> = futures_util::stream::iter(&missing)
        .map(|run| load_manifest(objects, dir, run))
        .buffered(16)
        .try_collect()
        .await?;
    let mut all = known.clone();
    all.extend(missing.into_iter().cloned().zip(loaded));
    Ok(all)
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

/// Whether a run goes on from the newest chain (`chain`, oldest run first)
/// or starts a new one with a full run. A chain goes on only while it is
/// whole (its oldest run a full one: a run added to a broken chain could
/// never be restored), and, with `retain`, while its full run is younger
/// than half of it. The bucket's lifecycle rule expires objects by age, so
/// a chain whose full run had expired could not be restored either: a new
/// chain starts well before that.
fn run_kind(backup: &BackupState, chain: &BTreeMap<String, Manifest>, now_ms: i64) -> RunKind {
    let Some(first) = chain.values().next() else {
        return RunKind::Full;
    };
    let young = backup.retain_ms.is_none_or(|retain| {
        now_ms.saturating_sub(first.started_at_ms) < i64::try_from(retain / 2).unwrap_or(i64::MAX)
    });
    if backup.incremental && first.kind == RunKind::Full && young {
        RunKind::Incremental
    } else {
        RunKind::Full
    }
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
    let dir = backup.dir(&ns.name);
    let runs = complete_runs(objects, &dir).await?;
    let chain = load_chain(objects, &dir, &runs).await?;
    let previous = chain.values().next_back();
    let kind = run_kind(backup, &chain, now_ms());
    let ended = previous.map(manifest::resume_points).unwrap_or_default();
    // An incremental run resumes each partition where the last one ended.
    let incremental = kind == RunKind::Incremental;

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
            (0..i32::try_from(v.partitions).unwrap_or(i32::MAX)).map(|p| {
                let ended = ended.get(&(name.clone(), p)).copied();
                Work {
                    topic: name.clone(),
                    partition: p,
                    resume: ended.filter(|_| incremental),
                    ended,
                }
            })
        })
        .collect();
    let partitions: Vec<(String, i32)> = work
        .iter()
        .map(|w| (w.topic.clone(), w.partition))
        .collect();
    let config = crate::backend::kafka::client_settings(&env.kafka)?;

    let (pieces, pieces_rx) = mpsc::channel::<Piece>(BLOCKS_IN_FLIGHT);
    let (segments, mut rx) = mpsc::channel::<Segment>(1);
    let reader = {
        let config = config.clone();
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || read_all(&config, work, opts, &pieces, &runtime))
    };
    let (dir_ref, run_ref) = (&dir, &run_id);
    // Each stage owns its receiver: should an upload fail, the assembler's
    // next send fails, then the reader's, and both stop.
    let assemble = assemble(pieces_rx, segments);
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
            let sha256 = seg.sha256;
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
    };
    let (assembled, upload) = tokio::join!(assemble, upload);
    let read = reader
        .await
        .map_err(|e| BackupError::Kafka(e.to_string()))?;
    // The first failure downstream is the cause of those upstream.
    let (mut uploaded, bytes) = upload?;
    assembled?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::{Loc, Span};

    const DAY_MS: u64 = 86_400_000;

    fn backup(incremental: bool, retain_days: Option<u64>) -> BackupState {
        BackupState {
            bucket: "b".into(),
            prefix: String::new(),
            schedule: None,
            retain_ms: retain_days.map(|d| d * DAY_MS),
            incremental,
            object_lock: None,
            source: Span::new("namespaces/orders.yaml", Loc::default()),
        }
    }

    /// A chain of a full run started at `full_ms` and one incremental run;
    /// without its full run when `whole` is false (retention expired it).
    fn chain(full_ms: i64, whole: bool) -> BTreeMap<String, Manifest> {
        let mut full = Manifest::sample("1", RunKind::Full, None);
        full.started_at_ms = full_ms;
        let mut next = Manifest::sample("2", RunKind::Incremental, Some("1"));
        next.started_at_ms = full_ms + 1;
        let runs = if whole { vec![full, next] } else { vec![next] };
        runs.into_iter().map(|m| (m.run_id.clone(), m)).collect()
    }

    #[test]
    fn a_chain_goes_on_while_whole_and_its_full_run_is_younger_than_half_of_retain() {
        let day = i64::try_from(DAY_MS).unwrap();
        let now = 100 * day;
        let kind = |b: &BackupState, c: &BTreeMap<String, Manifest>| run_kind(b, c, now);
        // Nothing yet, or full runs asked for: a full run.
        assert_eq!(kind(&backup(true, None), &BTreeMap::new()), RunKind::Full);
        assert_eq!(
            kind(&backup(false, None), &chain(now - day, true)),
            RunKind::Full
        );
        // No retain: the chain goes on, whatever its age.
        assert_eq!(
            kind(&backup(true, None), &chain(now - 50 * day, true)),
            RunKind::Incremental
        );
        // retain 14d: on while the full run is under 7 days old, then anew.
        let retain = backup(true, Some(14));
        assert_eq!(
            kind(&retain, &chain(now - 7 * day + 1, true)),
            RunKind::Incremental
        );
        assert_eq!(kind(&retain, &chain(now - 7 * day, true)), RunKind::Full);
        // A chain whose full run is gone is never gone on from.
        assert_eq!(kind(&retain, &chain(now - day, false)), RunKind::Full);
        assert_eq!(
            kind(&backup(true, None), &chain(now - day, false)),
            RunKind::Full
        );
    }
}
