//! The reading side of `sluice backup`: a reader thread consumes up to
//! [`PARTITIONS_AT_ONCE`] partitions of a topic at once (one consumer, so
//! one fetch brings several of them, as a plain consumer reads) and encodes
//! each partition's records into blocks of about 1 MiB; each block is
//! compressed on a worker thread (tokio's blocking pool) while the reader
//! goes on; [`assemble`] puts each segment's compressed blocks together in
//! order, hashing them as they come, for the uploader in [`super::run`].

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::BackupError;
use super::hex;
use super::run::BackupOptions;
use super::segment::{RawBlock, SegmentStats, SegmentWriter};

/// One partition to read, where to start, and where the previous run ended.
pub(super) struct Work {
    pub(super) topic: String,
    pub(super) partition: i32,
    /// Where an incremental run goes on from (a full run starts at the low
    /// watermark).
    pub(super) resume: Option<i64>,
    /// Where the newest complete run ended, whatever this run's kind: what
    /// retention deleted since is said.
    pub(super) ended: Option<i64>,
}

impl Work {
    /// Where to start reading, given the partition's low watermark `low`;
    /// and, when retention deleted records after the newest complete run
    /// ended, which, for every kind of run.
    fn start(&self, low: i64) -> (i64, Option<String>) {
        let start = self.resume.map_or(low, |r| r.max(low));
        let warning = self.ended.filter(|r| *r < low).map(|r| {
            format!(
                "`{}` partition {}: offsets {r} to {} were deleted (retention) before this backup read them",
                self.topic,
                self.partition,
                low - 1
            )
        });
        (start, warning)
    }
}

/// Blocks handed to the compressing threads and not yet assembled: bounds
/// the memory of the pipeline (about 1.5 MiB each) and the threads busy.
pub(super) const BLOCKS_IN_FLIGHT: usize = 6;

/// Partitions one consumer reads at once, at most: as many segments are
/// assembled at once (about half `--segment-size` each, compressed).
const PARTITIONS_AT_ONCE: usize = 4;

/// Record data of the segments assembled at once: with larger segments,
/// fewer partitions are read at once (64 MiB segments, two), so that
/// memory stays about the same up to 128 MiB segments.
const ASSEMBLED_BYTES: u64 = 128 * 1024 * 1024;

/// How many partitions to read at once with segments of `segment_bytes`.
fn at_once(segment_bytes: u64) -> usize {
    let fit = ASSEMBLED_BYTES / segment_bytes.max(1);
    usize::try_from(fit)
        .unwrap_or(PARTITIONS_AT_ONCE)
        .clamp(1, PARTITIONS_AT_ONCE)
}

/// What the reader hands to the assembler, in order; `usize` is the
/// partition's place in the run's work, since segments of several
/// partitions are assembled at once.
pub(super) enum Piece {
    /// A segment starts: its file header.
    Start {
        at: usize,
        topic: String,
        partition: i32,
        header: Vec<u8>,
    },
    /// Its next block, being compressed on a worker thread.
    Block(usize, JoinHandle<Result<Vec<u8>, String>>),
    /// The segment is complete.
    End(usize, SegmentStats),
}

/// A finished segment on its way to S3.
pub(super) struct Segment {
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) bytes: Vec<u8>,
    pub(super) sha256: String,
    pub(super) stats: SegmentStats,
}

/// What was read of one partition.
pub(super) struct Read {
    pub(super) topic: String,
    pub(super) partition: i32,
    pub(super) start: i64,
    pub(super) end: i64,
    pub(super) records: u64,
    pub(super) min_timestamp: Option<i64>,
    pub(super) max_timestamp: Option<i64>,
    pub(super) warning: Option<String>,
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

/// Reads every partition of `work`, topic after topic; the high watermarks
/// are read first, all of them, so that the run covers what was there when
/// it began.
pub(super) fn read_all(
    config: &ClientConfig,
    work: Vec<Work>,
    opts: BackupOptions,
    tx: &mpsc::Sender<Piece>,
    runtime: &tokio::runtime::Handle,
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
    let mut reads: Vec<Read> = Vec::with_capacity(work.len());
    for (w, (low, high)) in work.into_iter().zip(marks) {
        let (start, warning) = w.start(low);
        reads.push(Read {
            topic: w.topic,
            partition: w.partition,
            start,
            end: high.max(start),
            records: 0,
            min_timestamp: None,
            max_timestamp: None,
            warning,
        });
    }
    // A topic's partitions are next to each other in the work.
    let mut first = 0;
    while first < reads.len() {
        let topic = reads[first].topic.clone();
        let last = first
            + reads[first..]
                .iter()
                .take_while(|r| r.topic == topic)
                .count();
        let todo = (first..last)
            .filter(|&i| reads[i].start < reads[i].end)
            .collect();
        let mut pipe = Pipe { tx, runtime };
        // A consumer per topic: librdkafka reports the end of a partition by
        // its number alone, so an end left queued from the previous topic's
        // partition of the same number could otherwise end this one's read
        // early, and the manifest would claim offsets it does not hold.
        read_topic(&reader(config)?, &topic, &mut reads, todo, opts, &mut pipe)?;
        first = last;
    }
    Ok(reads)
}

/// Where the reader's pieces go.
struct Pipe<'a> {
    tx: &'a mpsc::Sender<Piece>,
    runtime: &'a tokio::runtime::Handle,
}

impl Pipe<'_> {
    /// The assembler stopped: its error (or the uploader's) is the one to
    /// report, `stopped` only names where the reader was.
    fn send(
        &mut self,
        piece: Piece,
        stopped: impl FnOnce() -> BackupError,
    ) -> Result<(), BackupError> {
        self.tx.blocking_send(piece).map_err(|_| stopped())
    }

    fn block(
        &mut self,
        at: usize,
        b: RawBlock,
        stopped: impl FnOnce() -> BackupError,
    ) -> Result<(), BackupError> {
        let job = self.runtime.spawn_blocking(move || b.compress());
        self.send(Piece::Block(at, job), stopped)
    }
}

/// A partition being read.
struct Active {
    /// Its place in the work.
    at: usize,
    next: i64,
    segment: SegmentWriter,
}

/// Reads `[start, end)` of the partitions `todo` (places in `reads`) of
/// one topic, up to [`at_once`] at a time, into segments.
fn read_topic(
    consumer: &BaseConsumer,
    topic: &str,
    reads: &mut [Read],
    todo: VecDeque<usize>,
    opts: BackupOptions,
    pipe: &mut Pipe<'_>,
) -> Result<(), BackupError> {
    let mut todo = todo;
    let mut active: BTreeMap<i32, Active> = BTreeMap::new();
    let mut last_record = Instant::now();
    loop {
        let mut add = TopicPartitionList::new();
        while active.len() < at_once(opts.segment_bytes)
            && let Some(at) = todo.pop_front()
        {
            let r = &reads[at];
            add.add_partition_offset(topic, r.partition, Offset::Offset(r.start))
                .map_err(|e| r.fail(e.to_string()))?;
            active.insert(
                r.partition,
                Active {
                    at,
                    next: r.start,
                    segment: SegmentWriter::new(),
                },
            );
        }
        if add.count() > 0 {
            consumer
                .incremental_assign(&add)
                .map_err(|e| BackupError::Kafka(format!("reading `{topic}`: {e}")))?;
            last_record = Instant::now();
        }
        let Some(a) = active.values().next() else {
            return Ok(());
        };
        let done = match consumer.poll(Duration::from_millis(200)) {
            None => {
                if last_record.elapsed() > opts.timeout {
                    let r = &reads[a.at];
                    return Err(r.fail(format!(
                        "no record came for {}s; read up to offset {} of {}",
                        opts.timeout.as_secs_f64(),
                        a.next,
                        r.end
                    )));
                }
                continue;
            }
            // The end of the log came before the high watermark read at the
            // start: nothing more is there to read.
            Some(Err(KafkaError::PartitionEOF(p))) if active.contains_key(&p) => p,
            Some(Err(KafkaError::PartitionEOF(_))) => continue,
            Some(Err(e)) => return Err(reads[a.at].fail(e.to_string())),
            Some(Ok(m)) => {
                last_record = Instant::now();
                let p = m.partition();
                let Some(a) = active.get_mut(&p).filter(|_| m.topic() == topic) else {
                    continue;
                };
                let r = &mut reads[a.at];
                if m.offset() < a.next {
                    continue;
                }
                if m.offset() < r.end {
                    a.next = m.offset() + 1;
                    if a.segment.records() == 0 {
                        let header = a.segment.header();
                        let start = Piece::Start {
                            at: a.at,
                            topic: topic.to_owned(),
                            partition: p,
                            header,
                        };
                        pipe.send(start, || r.stopped())?;
                    }
                    if let Some(b) = a.segment.append_message(&m) {
                        pipe.block(a.at, b, || r.stopped())?;
                    }
                    if a.segment.size() as u64 >= opts.segment_bytes {
                        finish(std::mem::take(&mut a.segment), a.at, r, pipe)?;
                    }
                }
                if a.next < r.end {
                    continue;
                }
                p
            }
        };
        let a = active.remove(&done).expect("an active partition");
        let r = &mut reads[a.at];
        if a.segment.records() > 0 {
            finish(a.segment, a.at, r, pipe)?;
        }
        let mut gone = TopicPartitionList::new();
        gone.add_partition(topic, done);
        consumer
            .incremental_unassign(&gone)
            .map_err(|e| r.fail(e.to_string()))?;
    }
}

/// Hands a segment's last block and its end to the assembler, and counts
/// what it holds in its partition's read.
fn finish(
    mut segment: SegmentWriter,
    at: usize,
    read: &mut Read,
    pipe: &mut Pipe<'_>,
) -> Result<(), BackupError> {
    if let Some(b) = segment.take_block() {
        pipe.block(at, b, || read.stopped())?;
    }
    let stats = segment.stats().clone();
    read.records += stats.records;
    for t in [stats.min_timestamp, stats.max_timestamp]
        .into_iter()
        .flatten()
    {
        read.min_timestamp = Some(read.min_timestamp.map_or(t, |m| m.min(t)));
        read.max_timestamp = Some(read.max_timestamp.map_or(t, |m| m.max(t)));
    }
    pipe.send(Piece::End(at, stats), || read.stopped())
}

impl Read {
    fn fail(&self, message: String) -> BackupError {
        BackupError::Read {
            topic: self.topic.clone(),
            partition: self.partition,
            message,
        }
    }

    fn stopped(&self) -> BackupError {
        self.fail("the upload stopped".into())
    }
}

/// A segment being put together.
struct Assembling {
    topic: String,
    partition: i32,
    /// The header, then the compressed blocks: joined once complete, into a
    /// buffer of their exact size (a buffer grown block by block held up to
    /// twice a segment).
    parts: Vec<Vec<u8>>,
    hash: Sha256,
}

/// Puts each segment's compressed blocks together, in the order the reader
/// sent them, hashing them as they come, and hands finished segments on.
pub(super) async fn assemble(
    mut pieces: mpsc::Receiver<Piece>,
    segments: mpsc::Sender<Segment>,
) -> Result<(), BackupError> {
    let mut current: BTreeMap<usize, Assembling> = BTreeMap::new();
    let stopped = || BackupError::Kafka("the backup's segments went out of order".into());
    while let Some(piece) = pieces.recv().await {
        match piece {
            Piece::Start {
                at,
                topic,
                partition,
                header,
            } => {
                let mut hash = Sha256::new();
                hash.update(&header);
                current.insert(
                    at,
                    Assembling {
                        topic,
                        partition,
                        parts: vec![header],
                        hash,
                    },
                );
            }
            Piece::Block(at, job) => {
                let Assembling {
                    topic,
                    partition,
                    parts,
                    hash,
                } = current.get_mut(&at).ok_or_else(stopped)?;
                let block = job
                    .await
                    .map_err(|e| BackupError::Kafka(e.to_string()))?
                    .map_err(|e| BackupError::Read {
                        topic: topic.clone(),
                        partition: *partition,
                        message: format!("compressing a segment: {e}"),
                    })?;
                hash.update(&block);
                parts.push(block);
            }
            Piece::End(at, stats) => {
                let Assembling {
                    topic,
                    partition,
                    parts,
                    hash,
                } = current.remove(&at).ok_or_else(stopped)?;
                let mut bytes = Vec::with_capacity(parts.iter().map(Vec::len).sum());
                for part in parts {
                    bytes.extend_from_slice(&part);
                }
                let segment = Segment {
                    topic,
                    partition,
                    bytes,
                    sha256: hex(&hash.finalize()),
                    stats,
                };
                if segments.send(segment).await.is_err() {
                    // The uploader stopped: its error is the one reported.
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_retention_deleted_since_the_last_run_is_said_for_a_full_run_too() {
        let work = |resume, ended| Work {
            topic: "orders".into(),
            partition: 2,
            resume,
            ended,
        };
        let lost = "`orders` partition 2: offsets 40 to 49 were deleted (retention) before this backup read them";
        // An incremental run goes on where the last ended, or from the low
        // watermark when retention got there first.
        assert_eq!(work(Some(60), Some(60)).start(50), (60, None));
        assert_eq!(work(Some(40), Some(40)).start(50), (50, Some(lost.into())));
        // A full run (a new chain) starts at the low watermark, and says
        // what the last run did not read either.
        assert_eq!(work(None, Some(40)).start(50), (50, Some(lost.into())));
        assert_eq!(work(None, Some(60)).start(50), (50, None));
        assert_eq!(work(None, None).start(50), (50, None));
    }

    #[test]
    fn larger_segments_read_fewer_partitions_at_once() {
        let mib = 1024 * 1024;
        assert_eq!(at_once(1024), 4);
        assert_eq!(at_once(32 * mib), 4);
        assert_eq!(at_once(64 * mib), 2);
        assert_eq!(at_once(128 * mib), 1);
        assert_eq!(at_once(1024 * mib), 1);
        assert_eq!(at_once(0), 4);
    }
}
