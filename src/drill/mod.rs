//! Restore drills: `sluice dr drill NS` restores the namespace's newest
//! backup chain into scratch topics (`<topic>.drill-<timestamp>`) with
//! restore's own plan and execution, counts what was written against the
//! manifests, measures the time to a verified restore against `rto` and the
//! data's age against `rpo`, and deletes the scratch topics whatever
//! happened. [`crate::state::drills`] keeps the last outcome per namespace in
//! etcd.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

use crate::backend::ConnectError;
use crate::backend::s3::{BucketObjects, S3Backend};
use crate::backup::manifest::{rfc3339, run_id};
use crate::backup::restore::{self, RestorePlan, RestoreRequest, Restored};
use crate::backup::{BackupError, now_ms};
use crate::desired::{Environment, NamespaceState};
use crate::diag::quoted;
use crate::engine::Target;
use crate::engine::apply::{Interrupt, release};
pub use crate::state::drills::DrillRecord;
use crate::state::drills::{ScratchList, save};
use crate::state::{Holder, StateError};

/// What a drill did: its record, and the scratch topics it wrote and
/// whether they are gone.
#[derive(Clone, Debug)]
pub struct Drilled {
    pub record: DrillRecord,
    /// The scratch topics created.
    pub scratch: Vec<String>,
    /// Scratch topics that could not be deleted (named in the failure).
    pub left_behind: Vec<String>,
    /// Scratch topics an earlier drill listed and did not see deleted (its
    /// process was killed), deleted before this one began.
    pub cleaned: Vec<String>,
    pub objects: usize,
    /// Whether the restore completed and its counts matched the manifests
    /// (the RTO is then measured to that moment).
    pub verified: bool,
}

/// Why a drill could not start: nothing was written, and no record.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// The backup bucket could not be reached, or the namespace has no backup.
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// The Kafka client or etcd could not be set up.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The apply lock could not be taken.
    #[error(transparent)]
    State(#[from] StateError),
}

/// A drill of `ns` under the environment's apply lock (waiting up to
/// `lock_wait` for it), its outcome recorded in etcd, fenced by the lock, and
/// the lock released: `dr drill` and the watcher's schedule. Beside the
/// outcome, whether its record was written.
pub async fn locked(
    ns: &NamespaceState,
    env: &Environment,
    target: &Target,
    s3: &S3Backend,
    cancel: &Interrupt,
    lock_wait: Duration,
    timeout: Duration,
) -> Result<(Drilled, Result<(), StateError>), DrillError> {
    let bucket = &crate::backup::declared(ns)?.bucket;
    let config = crate::backend::kafka::client_settings(&env.kafka)?;
    let etcd = crate::backend::etcd::connect(&env.etcd, timeout).await?;
    let objects = s3.objects(bucket).await.map_err(BackupError::from)?;
    let lock = target.state.lock(&Holder::current(), lock_wait).await?;
    let fence = lock.fence();
    let list = ScratchList::new(&etcd, &env.etcd.prefix, &env.name, &ns.name, &fence);
    let drilled = drill(ns, target, &objects, &config, &list, cancel, timeout).await;
    let saved = save(
        &etcd,
        &env.etcd.prefix,
        &env.name,
        &drilled.record,
        Some(&fence),
    )
    .await;
    release(lock).await;
    Ok((drilled, saved))
}

/// The suffix of a drill's scratch topics, from its start:
/// `.drill-20261207T093000.123Z`.
pub fn scratch_suffix(started_ms: i64) -> String {
    let id = run_id(started_ms, 0);
    let stamp = id.rsplit_once('-').map_or(id.as_str(), |(t, _)| t);
    format!(".drill-{stamp}")
}

/// Deletes the scratch topics an earlier drill listed in `list` and did not
/// see deleted (its process was killed); what it deleted, or why it could not.
async fn clean(
    list: &ScratchList<'_>,
    config: &ClientConfig,
    timeout: Duration,
) -> Result<Vec<String>, String> {
    let chain = |e: StateError| crate::diag::chain(&e);
    let left = list.left().await.map_err(chain)?;
    if left.is_empty() {
        return Ok(left);
    }
    delete_scratch(config, &left, timeout)
        .await
        .map_err(|m| format!("{} ({m})", quoted(&left)))?;
    list.mark(&[]).await.map_err(chain)?;
    Ok(left)
}

/// Runs one drill of `ns` from `objects` (its backup bucket) into scratch
/// topics, under the lock `list` holds, listing them there while they
/// exist. Never fails: every failure is in the record, and the scratch
/// topics are deleted in every outcome; those a killed drill left first.
pub async fn drill(
    ns: &NamespaceState,
    target: &Target,
    objects: &BucketObjects,
    config: &ClientConfig,
    list: &ScratchList<'_>,
    cancel: &Interrupt,
    timeout: Duration,
) -> Drilled {
    // What an interrupted drill left goes first: its deletion is not part
    // of the time this drill measures.
    let mut notes = Vec::new();
    let cleaned = match clean(list, config, timeout).await {
        Ok(cleaned) => cleaned,
        Err(why) => {
            notes.push(format!(
                "the scratch topics an interrupted drill left could not be deleted: {why}; delete them by hand"
            ));
            Vec::new()
        }
    };
    let clock = Instant::now();
    let started_ms = now_ms();
    let dr = ns.disaster_recovery.as_ref();
    let mut record = DrillRecord {
        namespace: ns.name.clone(),
        run: String::new(),
        started_at: rfc3339(started_ms),
        finished_at: String::new(),
        passed: false,
        rto_ms: 0,
        rto_target_ms: dr.and_then(|d| d.rto_ms),
        data_age_ms: 0,
        rpo_ms: dr.and_then(|d| d.rpo_ms),
        records: 0,
        failure: None,
    };
    let request = RestoreRequest {
        into_suffix: Some(scratch_suffix(started_ms)),
        ..RestoreRequest::default()
    };
    let mut scratch = Vec::new();
    let mut objects_read = 0;
    let outcome = async {
        let plan = restore::plan(ns, target, objects, config, &request, timeout)
            .await
            .map_err(|e| failed(&e))?;
        record.run = plan.runs.last().cloned().unwrap_or_default();
        record.data_age_ms = u64::try_from(started_ms - plan.read_at_ms).unwrap_or(0);
        if let Some(t) = plan.topics.iter().find(|t| !t.create) {
            return Err(format!(
                "scratch topic `{}` exists already; nothing was written (delete it, or drill again)",
                t.into
            ));
        }
        let names: Vec<String> = plan.topics.iter().map(|t| t.into.clone()).collect();
        list.mark(&names).await.map_err(|e| {
            format!(
                "the scratch topics could not be listed in etcd before they were created ({}); nothing was written",
                crate::diag::chain(&e)
            )
        })?;
        scratch = names;
        let done = restore::execute(&plan, objects, config, list.fence, cancel, timeout)
            .await
            .map_err(|e| failed(&e))?;
        objects_read = done.objects;
        record.records = done.records;
        verify(&plan, &done)
    }
    .await;
    record.rto_ms = u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
    let verified = outcome.is_ok();
    let mut failure = outcome.err();
    let left_behind = match delete_scratch(config, &scratch, timeout).await {
        Ok(()) => {
            if !scratch.is_empty()
                && let Err(e) = list.mark(&[]).await
            {
                // The next drill deletes them again: they are gone.
                tracing::warn!(namespace = %ns.name, "the deleted scratch topics are still listed in etcd: {}", crate::diag::chain(&e));
            }
            Vec::new()
        }
        Err(message) => {
            notes.push(format!(
                "the scratch topic(s) {} could not be deleted ({message}); delete them by hand",
                quoted(&scratch)
            ));
            scratch.clone()
        }
    };
    if !notes.is_empty() {
        let notes = notes.join("; ");
        failure = Some(match failure {
            Some(f) => format!("{f}; {notes}"),
            None => notes,
        });
    }
    if failure.is_none() {
        failure = targets_missed(&record);
    }
    record.passed = failure.is_none();
    record.failure = failure;
    record.finished_at = rfc3339(now_ms());
    Drilled {
        record,
        scratch,
        left_behind,
        cleaned,
        objects: objects_read,
        verified,
    }
}

fn failed(e: &BackupError) -> String {
    crate::diag::chain(e)
}

/// Whether the measured figures miss the namespace's targets.
fn targets_missed(r: &DrillRecord) -> Option<String> {
    let mut missed = Vec::new();
    if let Some(rto) = r.rto_target_ms
        && r.rto_ms > rto
    {
        missed.push(format!(
            "the restore took {}, over the RTO of {}",
            human_ms(r.rto_ms),
            human_ms(rto)
        ));
    }
    if let Some(rpo) = r.rpo_ms
        && r.data_age_ms > rpo
    {
        missed.push(format!(
            "the restored data was {} old, over the RPO of {}",
            human_ms(r.data_age_ms),
            human_ms(rpo)
        ));
    }
    (!missed.is_empty()).then(|| missed.join("; "))
}

/// `1.234s`, `2m 3s`: a measured duration for people.
pub fn human_ms(ms: u64) -> String {
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

/// Counts what landed in each scratch partition against the records the
/// manifests say its objects hold: every one must be there.
pub fn verify(plan: &RestorePlan, done: &Restored) -> Result<(), String> {
    let mut mismatched = Vec::new();
    for t in &plan.topics {
        let mut expected: BTreeMap<i32, u64> = BTreeMap::new();
        for (p, o) in &t.objects {
            *expected.entry(*p).or_default() += o.records;
        }
        for (p, want) in expected {
            let got = done
                .landed
                .get(&(t.into.clone(), p))
                .map_or(0, |l| l.records);
            if got != want {
                mismatched.push(format!(
                    "`{}` partition {p}: {got} record(s) written, the manifest says {want}",
                    t.from
                ));
            }
        }
    }
    if mismatched.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "record counts differ from the manifest: {}",
            mismatched.join("; ")
        ))
    }
}

/// Deletes the scratch topics (one that is gone already counts as deleted)
/// and waits until the cluster's metadata no longer shows them.
async fn delete_scratch(
    config: &ClientConfig,
    names: &[String],
    timeout: Duration,
) -> Result<(), String> {
    if names.is_empty() {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = config.create().map_err(|e| e.to_string())?;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let options = AdminOptions::new()
        .operation_timeout(Some(timeout))
        .request_timeout(Some(timeout));
    let results = admin
        .delete_topics(&refs, &options)
        .await
        .map_err(|e| e.to_string())?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((topic, code)) => return Err(format!("`{topic}`: {code}")),
        }
    }
    let names = names.to_vec();
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + timeout;
        loop {
            let md = admin
                .inner()
                .fetch_metadata(None, timeout)
                .map_err(|e| e.to_string())?;
            let left: Vec<String> = md
                .topics()
                .iter()
                .map(|t| t.name().to_owned())
                .filter(|n| names.contains(n))
                .collect();
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the cluster still shows {} after {}s",
                    quoted(&left),
                    timeout.as_secs_f64()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .map_err(|e| e.to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_topics_are_named_by_the_drills_start() {
        assert_eq!(scratch_suffix(0), ".drill-19700101T000000.000Z");
    }

    #[test]
    fn a_partition_missing_records_fails_the_count_naming_it() {
        use crate::backup::manifest::{Coverage, SegmentObject};
        use crate::backup::restore::{Landed, TopicRestore};
        let plan = RestorePlan {
            namespace: "orders".into(),
            bucket: "b".into(),
            runs: vec!["r".into()],
            coverage: Coverage {
                from_ms: None,
                to_ms: 0,
            },
            to_time_ms: None,
            topics: vec![TopicRestore {
                from: "orders".into(),
                into: "orders.drill-x".into(),
                create: true,
                partitions: 2,
                replication_factor: 1,
                config: BTreeMap::new(),
                objects: vec![
                    (0, SegmentObject::holding(&[], 3)),
                    (0, SegmentObject::holding(&[], 2)),
                    (1, SegmentObject::holding(&[], 4)),
                ],
                present: BTreeMap::new(),
                base: BTreeMap::new(),
            }],
            groups_from: "r".into(),
            read_at_ms: 0,
            groups: Vec::new(),
            set_groups: false,
        };
        let landed = |records| Landed {
            first: Some(0),
            last: 0,
            records,
        };
        let mut done = Restored::default();
        done.landed.insert(("orders.drill-x".into(), 0), landed(5));
        done.landed.insert(("orders.drill-x".into(), 1), landed(4));
        assert_eq!(verify(&plan, &done), Ok(()));
        done.landed.insert(("orders.drill-x".into(), 1), landed(3));
        let failed = verify(&plan, &done).unwrap_err();
        assert!(
            failed.contains("`orders` partition 1: 3 record(s) written, the manifest says 4"),
            "{failed}"
        );
        assert!(!failed.contains("partition 0"), "{failed}");
    }

    fn record() -> DrillRecord {
        DrillRecord {
            namespace: "orders".into(),
            run: "r".into(),
            started_at: String::new(),
            finished_at: String::new(),
            passed: false,
            rto_ms: 90_000,
            rto_target_ms: Some(60_000),
            data_age_ms: 1_000,
            rpo_ms: Some(900_000),
            records: 3,
            failure: None,
        }
    }

    #[test]
    fn a_restore_slower_than_the_rto_misses_it_and_says_by_how_much() {
        let missed = targets_missed(&record()).expect("over the RTO");
        assert!(
            missed.contains("took 1m 30s, over the RTO of 1m"),
            "{missed}"
        );
        let met = DrillRecord {
            rto_ms: 60_000,
            ..record()
        };
        assert_eq!(targets_missed(&met), None);
        let stale = DrillRecord {
            rto_ms: 1,
            data_age_ms: 900_001,
            ..record()
        };
        assert!(
            targets_missed(&stale)
                .expect("over the RPO")
                .contains("RPO")
        );
    }
}
