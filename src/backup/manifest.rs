//! The manifest a backup run ends with, the key layout under a namespace's
//! backup prefix, and the chain of manifests a restore reads. No I/O.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

pub use crate::backend::s3::layout::{MANIFEST_FILE, complete_run, run_started_ms};

/// Version of the manifest document.
pub const MANIFEST_VERSION: u32 = 1;

/// Whether a run read from the beginning of each partition or went on from
/// the previous manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    Full,
    Incremental,
}

impl std::fmt::Display for RunKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunKind::Full => "full",
            RunKind::Incremental => "incremental",
        })
    }
}

/// What one complete backup run wrote (`<prefix><namespace>/<run>/manifest.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub namespace: String,
    pub environment: String,
    /// The run's directory under `<prefix><namespace>/`; sorts by start time.
    pub run_id: String,
    pub kind: RunKind,
    /// The run an incremental one goes on from.
    pub previous: Option<String>,
    /// When the high watermarks were read (RFC 3339, and milliseconds).
    pub started_at: String,
    pub started_at_ms: i64,
    pub finished_at: String,
    pub topics: Vec<TopicBackup>,
    /// The namespace's registry record in etcd, as it was.
    pub registry: Option<serde_json::Value>,
    /// Committed offsets of the namespace's declared consumer groups.
    pub consumer_groups: Vec<GroupOffsets>,
}

/// One topic of a run: its shape and what was read of each partition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TopicBackup {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u16,
    /// The configs set on the topic.
    pub config: BTreeMap<String, String>,
    /// Every partition, in order, read or not.
    pub ranges: Vec<PartitionRange>,
}

/// The offsets `[start_offset, end_offset)` of one partition a run covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRange {
    pub partition: i32,
    pub start_offset: i64,
    /// Where the next run starts: the high watermark read at the start.
    pub end_offset: i64,
    pub records: u64,
    pub min_timestamp: Option<i64>,
    pub max_timestamp: Option<i64>,
    pub objects: Vec<SegmentObject>,
}

/// One segment object and its checksum.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentObject {
    pub key: String,
    /// Hex SHA-256 of the object's bytes.
    pub sha256: String,
    pub size: u64,
    pub records: u64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub min_timestamp: Option<i64>,
    pub max_timestamp: Option<i64>,
}

#[cfg(test)]
impl SegmentObject {
    /// For unit tests: `bytes` stored under a segment key, said to hold
    /// `records` records at offset 0, without timestamps.
    pub(crate) fn holding(bytes: &[u8], records: u64) -> Self {
        SegmentObject {
            key: segment_key("b/ns/", "run", "t", 0, 0),
            sha256: crate::backup::sha256_hex(bytes),
            size: bytes.len() as u64,
            records,
            first_offset: 0,
            last_offset: 0,
            min_timestamp: None,
            max_timestamp: None,
        }
    }
}

/// A consumer group's committed offsets on the namespace's topics.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupOffsets {
    pub group: String,
    pub offsets: Vec<CommittedOffset>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// A segment object's key: `<dir><run>/<topic>/<partition>/<first offset>.avro`,
/// the offset zero-padded so that keys sort as offsets do.
pub fn segment_key(dir: &str, run: &str, topic: &str, partition: i32, first: i64) -> String {
    format!("{dir}{run}/{topic}/{partition}/{first:020}.avro")
}

pub fn manifest_key(dir: &str, run: &str) -> String {
    format!("{dir}{run}/{MANIFEST_FILE}")
}

/// The run ID of a run started at `ms` (milliseconds since the epoch) by
/// process `pid`: `20261207T083000.123Z-4711`, sorting by time.
pub fn run_id(ms: i64, pid: u32) -> String {
    let t =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    let text = humantime::format_rfc3339_millis(t).to_string();
    format!("{}-{pid}", text.replace(['-', ':'], ""))
}

/// The run IDs of the complete runs among `keys` (a listing of the
/// namespace's directory), oldest first.
pub fn complete_runs(dir: &str, keys: &[String]) -> Vec<String> {
    let mut runs: Vec<String> = keys
        .iter()
        .filter_map(|k| complete_run(dir, k))
        .map(str::to_owned)
        .collect();
    runs.sort();
    runs
}

/// Why the manifests do not make a chain.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("incremental run `{run}` goes on from run `{previous}`, whose manifest is missing")]
    Broken { run: String, previous: String },
    #[error(
        "incremental run `{run}` goes on from run `{previous}`, which goes back to it: the manifests' `previous` fields form a loop"
    )]
    Loop { run: String, previous: String },
}

/// The chain that ends with the newest of `manifests` (by run ID): back
/// through `previous` to a full run; oldest first. Empty when there are none.
pub fn chain(manifests: &BTreeMap<String, Manifest>) -> Result<Vec<&Manifest>, ChainError> {
    match manifests.values().next_back() {
        Some(newest) => {
            let (chain, broken) = chain_to(manifests, newest);
            broken.map_or(Ok(chain), Err)
        }
        None => Ok(Vec::new()),
    }
}

/// The chain that ends with run `end`, oldest first, as far back as its
/// manifests go; and why it stops short of a full run, when it does.
fn chain_to<'a>(
    manifests: &'a BTreeMap<String, Manifest>,
    end: &'a Manifest,
) -> (Vec<&'a Manifest>, Option<ChainError>) {
    let mut out: Vec<&Manifest> = Vec::new();
    let mut at = end;
    let mut broken = None;
    loop {
        out.push(at);
        match (&at.kind, &at.previous) {
            (RunKind::Incremental, Some(previous)) if out.iter().any(|m| &m.run_id == previous) => {
                broken = Some(ChainError::Loop {
                    run: at.run_id.clone(),
                    previous: previous.clone(),
                });
                break;
            }
            (RunKind::Incremental, Some(previous)) => match manifests.get(previous) {
                Some(m) => at = m,
                None => {
                    broken = Some(ChainError::Broken {
                        run: at.run_id.clone(),
                        previous: previous.clone(),
                    });
                    break;
                }
            },
            _ => break,
        }
    }
    out.reverse();
    (out, broken)
}

/// Every chain of a namespace's complete runs, newest first.
pub struct Chains<'a> {
    /// Those that go back to a full run: the one ending with the newest
    /// run, then the one ending with the newest run not in it, and so on. A
    /// chain ending inside another covers no more than it, so it is left out.
    pub whole: Vec<Vec<&'a Manifest>>,
    /// Those whose full run is gone (`retain` expired it): no restore can
    /// read them.
    pub broken: Vec<ChainError>,
}

/// The [`Chains`] of `manifests`.
pub fn chains(manifests: &BTreeMap<String, Manifest>) -> Chains<'_> {
    let mut seen = BTreeSet::new();
    let mut out = Chains {
        whole: Vec::new(),
        broken: Vec::new(),
    };
    for m in manifests.values().rev() {
        if seen.contains(m.run_id.as_str()) {
            continue;
        }
        let (chain, broken) = chain_to(manifests, m);
        seen.extend(chain.iter().map(|m| m.run_id.as_str()));
        match broken {
            Some(e) => out.broken.push(e),
            None => out.whole.push(chain),
        }
    }
    out
}

/// The newest whole chain of `chains` that covers `t`, and what it covers;
/// otherwise, what each covers (and which are broken), in words.
pub fn covering<'c, 'm>(
    chains: &'c Chains<'m>,
    t: i64,
) -> Result<(&'c [&'m Manifest], Coverage), String> {
    if let Some(found) = chains.whole.iter().find_map(|c| {
        Coverage::of(c)
            .filter(|cov| cov.contains(t))
            .map(|cov| (c.as_slice(), cov))
    }) {
        return Ok(found);
    }
    const SHOWN: usize = 10;
    let mut each: Vec<String> = chains
        .whole
        .iter()
        .take(SHOWN)
        .filter_map(|c| {
            let cov = Coverage::of(c)?;
            let newest = c.last()?;
            Some(format!(
                "the chain ending with run `{}` ({} run(s)) covers {}",
                newest.run_id,
                c.len(),
                cov.describe()
            ))
        })
        .collect();
    if chains.whole.len() > SHOWN {
        each.push(format!(
            "{} older chain(s) not shown",
            chains.whole.len() - SHOWN
        ));
    }
    if let Some(first) = chains.broken.first() {
        each.push(format!(
            "{} broken chain(s) cannot be restored ({first})",
            chains.broken.len()
        ));
    }
    Err(each.join("; "))
}

/// Where each partition's next run starts, from the newest manifest.
pub fn resume_points(newest: &Manifest) -> BTreeMap<(String, i32), i64> {
    newest
        .topics
        .iter()
        .flat_map(|t| {
            t.ranges
                .iter()
                .map(|r| ((t.name.clone(), r.partition), r.end_offset))
        })
        .collect()
}

/// The times a chain covers: from its oldest record to the moment its
/// newest run read the high watermarks (or its newest record, if later).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coverage {
    pub from_ms: Option<i64>,
    pub to_ms: i64,
}

impl Coverage {
    pub fn of(chain: &[&Manifest]) -> Option<Coverage> {
        let newest = chain.last()?;
        let ranges = || chain.iter().flat_map(|m| &m.topics).flat_map(|t| &t.ranges);
        let from_ms = ranges().filter_map(|r| r.min_timestamp).min();
        let newest_record = ranges().filter_map(|r| r.max_timestamp).max();
        Some(Coverage {
            from_ms,
            to_ms: newest.started_at_ms.max(newest_record.unwrap_or(i64::MIN)),
        })
    }

    pub fn contains(&self, t: i64) -> bool {
        self.from_ms.is_some_and(|from| from <= t) && t <= self.to_ms
    }

    /// "from A to B", as RFC 3339 times.
    pub fn describe(&self) -> String {
        match self.from_ms {
            Some(from) => format!("from {} to {}", rfc3339(from), rfc3339(self.to_ms)),
            None => format!(
                "no records (the newest backup read up to {})",
                rfc3339(self.to_ms)
            ),
        }
    }
}

/// Milliseconds since the epoch as RFC 3339.
pub fn rfc3339(ms: i64) -> String {
    let t =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
impl Manifest {
    /// A run of 7 records in one partition of `orders`, started at 1,000 ms.
    pub(crate) fn sample(run: &str, kind: RunKind, previous: Option<&str>) -> Manifest {
        Manifest {
            format_version: MANIFEST_VERSION,
            namespace: "orders".into(),
            environment: "prod".into(),
            run_id: run.into(),
            kind,
            previous: previous.map(str::to_owned),
            started_at: String::new(),
            started_at_ms: 1_000,
            finished_at: String::new(),
            topics: vec![TopicBackup {
                name: "orders".into(),
                partitions: 1,
                replication_factor: 1,
                config: BTreeMap::new(),
                ranges: vec![PartitionRange {
                    partition: 0,
                    start_offset: 0,
                    end_offset: 7,
                    records: 7,
                    min_timestamp: Some(500),
                    max_timestamp: Some(900),
                    objects: Vec::new(),
                }],
            }],
            registry: None,
            consumer_groups: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(run: &str, kind: RunKind, previous: Option<&str>) -> Manifest {
        Manifest::sample(run, kind, previous)
    }

    #[test]
    fn only_runs_with_a_manifest_are_complete() {
        let dir = "b/orders/";
        let keys: Vec<String> = [
            "b/orders/2/orders/0/00000000000000000000.avro",
            "b/orders/2/manifest.json",
            "b/orders/1/manifest.json",
            // A run that died: segments, no manifest.
            "b/orders/3/orders/0/00000000000000000000.avro",
            "b/orders/x/y/manifest.json",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        assert_eq!(complete_runs(dir, &keys), ["1", "2"]);
    }

    #[test]
    fn a_run_id_gives_its_start() {
        let ms = 1_700_000_000_123;
        assert_eq!(run_started_ms(&run_id(ms, 4711)), Some(ms));
        assert_eq!(run_started_ms("full-0"), None);
        assert_eq!(run_started_ms("x"), None);
        assert_eq!(complete_run("p/ns/", "p/ns/r1/manifest.json"), Some("r1"));
        // Segments of a run, a manifest elsewhere: not a complete run.
        assert_eq!(complete_run("p/ns/", "p/ns/r1/t/0/00.avro"), None);
        assert_eq!(complete_run("p/ns/", "p/other/r1/manifest.json"), None);
    }

    #[test]
    fn the_chain_goes_back_to_the_last_full_run() {
        let all: BTreeMap<String, Manifest> = [
            manifest("1", RunKind::Full, None),
            manifest("2", RunKind::Full, None),
            manifest("3", RunKind::Incremental, Some("2")),
            manifest("4", RunKind::Incremental, Some("3")),
        ]
        .into_iter()
        .map(|m| (m.run_id.clone(), m))
        .collect();
        let runs: Vec<&str> = chain(&all)
            .unwrap()
            .iter()
            .map(|m| m.run_id.as_str())
            .collect();
        assert_eq!(runs, ["2", "3", "4"]);

        let broken: BTreeMap<String, Manifest> = [manifest("4", RunKind::Incremental, Some("3"))]
            .into_iter()
            .map(|m| (m.run_id.clone(), m))
            .collect();
        assert_eq!(
            chain(&broken).unwrap_err(),
            ChainError::Broken {
                run: "4".into(),
                previous: "3".into()
            }
        );
        assert!(chain(&BTreeMap::new()).unwrap().is_empty());
    }

    /// `manifest(run, ...)` holding records from `min` to `max`, read at `read`.
    fn timed(m: Manifest, min: i64, max: i64, read: i64) -> Manifest {
        let mut m = m;
        m.started_at_ms = read;
        let r = &mut m.topics[0].ranges[0];
        r.min_timestamp = Some(min);
        r.max_timestamp = Some(max);
        m
    }

    fn by_run(all: Vec<Manifest>) -> BTreeMap<String, Manifest> {
        all.into_iter().map(|m| (m.run_id.clone(), m)).collect()
    }

    fn runs(chain: &[&Manifest]) -> Vec<String> {
        chain.iter().map(|m| m.run_id.clone()).collect()
    }

    #[test]
    fn a_time_an_older_chain_covers_restores_from_that_chain() {
        // Full runs only (`incremental: false`): retention had deleted the
        // records before 250 when run 2 read the topic.
        let all = by_run(vec![
            timed(manifest("1", RunKind::Full, None), 100, 200, 300),
            timed(manifest("2", RunKind::Full, None), 250, 400, 500),
        ]);
        let cs = chains(&all);
        assert_eq!(
            cs.whole.iter().map(|c| runs(c)).collect::<Vec<_>>(),
            [["2"], ["1"]]
        );
        assert_eq!(runs(covering(&cs, 150).unwrap().0), ["1"]);
        // Both cover 260: the newest does.
        assert_eq!(runs(covering(&cs, 260).unwrap().0), ["2"]);
        assert_eq!(runs(covering(&cs, 500).unwrap().0), ["2"]);
        let none = covering(&cs, 50).unwrap_err();
        assert_eq!(
            none,
            "the chain ending with run `2` (1 run(s)) covers from 1970-01-01T00:00:00.250Z to 1970-01-01T00:00:00.500Z; \
             the chain ending with run `1` (1 run(s)) covers from 1970-01-01T00:00:00.100Z to 1970-01-01T00:00:00.300Z"
        );
        assert!(covering(&cs, 501).is_err());

        // Two chains of incremental runs: a chain ending inside another is
        // not tried on its own.
        let all = by_run(vec![
            timed(manifest("1", RunKind::Full, None), 100, 150, 200),
            timed(
                manifest("2", RunKind::Incremental, Some("1")),
                160,
                250,
                300,
            ),
            timed(manifest("3", RunKind::Full, None), 280, 350, 400),
            timed(
                manifest("4", RunKind::Incremental, Some("3")),
                360,
                450,
                500,
            ),
        ]);
        let cs = chains(&all);
        assert_eq!(
            cs.whole.iter().map(|c| runs(c)).collect::<Vec<_>>(),
            [["3", "4"], ["1", "2"]]
        );
        assert_eq!(runs(covering(&cs, 120).unwrap().0), ["1", "2"]);
        assert_eq!(runs(covering(&cs, 290).unwrap().0), ["3", "4"]);
        assert_eq!(runs(covering(&cs, 270).unwrap().0), ["1", "2"]);

        // A chain whose full run expired cannot be restored: a time it
        // covers is refused, and said; a whole chain still restores.
        let mut all = all;
        all.remove("1");
        all.remove("4");
        let cs = chains(&all);
        assert_eq!(
            cs.whole.iter().map(|c| runs(c)).collect::<Vec<_>>(),
            [["3"]]
        );
        assert_eq!(runs(covering(&cs, 290).unwrap().0), ["3"]);
        let gone = covering(&cs, 200).unwrap_err();
        assert!(
            gone.ends_with(
                "1 broken chain(s) cannot be restored (incremental run `2` goes on from run `1`, whose manifest is missing)"
            ),
            "{gone}"
        );
        assert!(chain(&all).is_ok());
        let newest_broken = by_run(vec![manifest("4", RunKind::Incremental, Some("3"))]);
        assert!(chain(&newest_broken).is_err());
        // Hand-edited manifests naming each other: a loop, said, not walked
        // for ever.
        let looped = by_run(vec![
            manifest("5", RunKind::Incremental, Some("6")),
            manifest("6", RunKind::Incremental, Some("5")),
        ]);
        assert!(matches!(chain(&looped), Err(ChainError::Loop { .. })));
        let cs = chains(&looped);
        assert!(cs.whole.is_empty());
        assert_eq!(cs.broken.len(), 1);
    }

    #[test]
    fn coverage_runs_from_the_oldest_record_to_the_newest_read() {
        let m = manifest("1", RunKind::Full, None);
        let c = Coverage::of(&[&m]).unwrap();
        assert_eq!(
            c,
            Coverage {
                from_ms: Some(500),
                to_ms: 1_000
            }
        );
        assert!(c.contains(500) && c.contains(1_000));
        assert!(!c.contains(499) && !c.contains(1_001));
        assert_eq!(
            c.describe(),
            "from 1970-01-01T00:00:00.500Z to 1970-01-01T00:00:01.000Z"
        );
    }

    #[test]
    fn run_ids_sort_by_time_and_keys_by_offset() {
        let a = run_id(1_700_000_000_000, 99);
        let b = run_id(1_700_000_000_001, 1);
        assert_eq!(a, "20231114T221320.000Z-99");
        assert!(a < b);
        assert!(segment_key("p/", a.as_str(), "t", 0, 9) < segment_key("p/", &a, "t", 0, 10));
        assert_eq!(
            resume_points(&manifest("1", RunKind::Full, None))[&("orders".into(), 0)],
            7
        );
    }
}
