//! Scheduled backups in `sluice watch`: while this replica leads, each
//! namespace's backup runs on its `disaster_recovery.backup.schedule` (cron,
//! in UTC), a bounded jitter after each occurrence, and never twice at once.
//!
//! The scheduler is a task of its own, so a slow plan does not delay a
//! backup and a long backup does not delay a plan. The reconcile cycle hands
//! it the desired state while this replica leads, and `None` while it stands
//! by: a standby starts no run (one already running finishes). Each run is a
//! `sluice backup` of one namespace; its outcome moves
//! `sluice_backup_last_success_timestamp_seconds`, `sluice_backup_failures_total`
//! and `sluice_backup_duration_seconds`. When a replica starts to lead, it
//! first sets each namespace's last success from its newest complete run in
//! S3, so the series survives restarts and changes of leader. A run stopped
//! by shutdown writes no manifest, so the next one starts where the last
//! complete one ended.
//!
//! The same scheduler runs the environment's etcd snapshots on
//! `state_backup.schedule` ([`Job::Snapshot`]; [`super::snapshots`] runs
//! and seeds them) and each namespace's restore drills on
//! `disaster_recovery.drill.schedule` ([`Job::Drill`]; [`super::drills`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::metrics::{Metrics, NamespaceLabels};
use crate::backend::s3::S3Backend;
use crate::backup::BackupError;
use crate::backup::manifest;
use crate::backup::run::{self, BackupOptions, complete_runs};
use crate::desired::Desired;
use crate::diag::chain;
use crate::engine::Target;
use crate::engine::apply::Interrupt;

/// The longest jitter after an occurrence, whatever the schedule.
const MAX_JITTER: Duration = Duration::from_secs(60);

/// What the reconcile cycle tells the scheduler: the desired state while
/// this replica leads, `None` while it does not.
pub type Leading = watch::Sender<Option<Arc<Desired>>>;

/// Starts the scheduler; it ends on `shutdown`.
pub fn spawn(metrics: Arc<Metrics>, shutdown: Arc<Interrupt>, timeout: Duration) -> Leading {
    let (tx, rx) = watch::channel(None);
    tokio::spawn(schedule(rx, metrics, shutdown, timeout));
    tx
}

/// What the scheduler runs: a namespace's backup, or the environment's
/// etcd snapshot.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Job {
    Backup(String),
    Snapshot,
    Drill(String),
}

impl Job {
    /// What its jitter is drawn from, and logs name it by.
    fn name(&self) -> &str {
        match self {
            // A drill shares its namespace's jitter: on one schedule with the
            // backup, both start at once (the drill reads the newest complete run).
            Job::Backup(ns) | Job::Drill(ns) => ns,
            // Not a namespace name (they hold no space), so never a twin's.
            Job::Snapshot => "etcd snapshot",
        }
    }
}

/// Every scheduled job: the namespaces with a backup schedule, and the
/// environment's snapshots when `state_backup` has one; with the schedule.
fn scheduled(desired: &Desired) -> BTreeMap<Job, String> {
    let backups = desired.namespaces.iter().filter_map(|ns| {
        let schedule = ns
            .disaster_recovery
            .as_ref()?
            .backup
            .as_ref()?
            .schedule
            .clone()?;
        Some((Job::Backup(ns.name.clone()), schedule))
    });
    let drills = desired.namespaces.iter().filter_map(|ns| {
        let schedule = ns.disaster_recovery.as_ref()?.drill_schedule.clone()?;
        Some((Job::Drill(ns.name.clone()), schedule))
    });
    let snapshot = desired
        .environment
        .state_backup
        .as_ref()
        .and_then(|b| b.schedule.clone())
        .map(|s| (Job::Snapshot, s));
    backups.chain(drills).chain(snapshot).collect()
}

/// When namespace `ns`'s next run is due after `now`: the schedule's next
/// occurrence, plus the namespace's jitter (a fixed share, from a hash of
/// its name, of a tenth of the gap to the occurrence after, at most
/// [`MAX_JITTER`]), so that namespaces on one schedule do not start in
/// step. `None` when the schedule does not parse or never occurs again.
pub fn next_due(schedule: &str, ns: &str, now: SystemTime) -> Option<SystemTime> {
    use crate::config::units::UnitKind;
    let cron = crate::config::units::CronUnit::parse(schedule).ok()?;
    let now: chrono::DateTime<chrono::Utc> = now.into();
    let first = cron.find_next_occurrence(&now, false).ok()?;
    let second = cron.find_next_occurrence(&first, false).ok()?;
    let gap = (second - first).to_std().ok()?;
    let bound = (gap / 10).min(MAX_JITTER);
    let hash = Sha256::digest(ns.as_bytes());
    let share = u64::from_be_bytes(hash[..8].try_into().expect("8 bytes"));
    let bound_ms = u64::try_from(bound.as_millis()).unwrap_or(u64::MAX).max(1);
    let jitter = Duration::from_millis(share % bound_ms);
    Some(SystemTime::from(first) + jitter)
}

/// The connections runs share, made again when the environment changes.
pub(super) struct Connection {
    key: String,
    target: Arc<Target>,
    s3: Arc<S3Backend>,
}

async fn schedule(
    mut rx: watch::Receiver<Option<Arc<Desired>>>,
    metrics: Arc<Metrics>,
    shutdown: Arc<Interrupt>,
    timeout: Duration,
) {
    let running: Running = Arc::default();
    // Per job: its schedule and when its next run is due.
    let mut due: BTreeMap<Job, (String, SystemTime)> = BTreeMap::new();
    let mut connection: Option<Connection> = None;
    // Jobs whose last success was read from S3 since this replica led.
    let mut seeded: BTreeSet<Job> = BTreeSet::new();
    loop {
        let desired = rx.borrow_and_update().clone();
        let now = SystemTime::now();
        let wanted = desired.as_deref().map(scheduled).unwrap_or_default();
        if desired.is_none() {
            seeded.clear();
        }
        due.retain(|job, (schedule, _)| wanted.get(job) == Some(schedule));
        if let Some(desired) = &desired {
            seed_all(
                desired,
                &wanted,
                &mut seeded,
                &mut connection,
                &metrics,
                timeout,
            )
            .await;
        }
        for (job, schedule) in &wanted {
            if !due.contains_key(job) {
                match next_due(schedule, job.name(), now) {
                    Some(at) => {
                        tracing::info!(job = %job.name(), schedule = %schedule, next = %humantime::format_rfc3339_seconds(at), "scheduled");
                        due.insert(job.clone(), (schedule.clone(), at));
                    }
                    None => {
                        tracing::warn!(job = %job.name(), schedule = %schedule, "the schedule never occurs; nothing is scheduled")
                    }
                }
            }
        }
        if let Some(desired) = &desired {
            let ready: Vec<Job> = due
                .iter()
                .filter(|(_, (_, at))| *at <= now)
                .map(|(job, _)| job.clone())
                .collect();
            let backups = ready
                .iter()
                .any(|j| matches!(j, Job::Backup(_) | Job::Drill(_)));
            let conn = if backups {
                connect(&mut connection, desired, timeout).await
            } else {
                Err(String::new())
            };
            for job in ready {
                match &job {
                    Job::Backup(ns) => {
                        let conn = match &conn {
                            Ok(c) => Ok(*c),
                            Err(e) => Err(e.as_str()),
                        };
                        start(ns, desired, conn, &running, &metrics, timeout);
                    }
                    Job::Snapshot => {
                        super::snapshots::start(desired, &running, &metrics, timeout);
                    }
                    Job::Drill(ns) => {
                        let conn = match &conn {
                            Ok(c) => Ok((c.target.clone(), c.s3.clone())),
                            Err(e) => Err(e.as_str()),
                        };
                        super::drills::start(
                            ns,
                            desired,
                            conn,
                            (&running, &metrics, &shutdown),
                            timeout,
                        );
                    }
                }
                let (schedule, at) = due.get_mut(&job).expect("listed above");
                // A schedule that never occurs again drops out.
                match next_due(schedule, job.name(), now) {
                    Some(next) => *at = next,
                    None => {
                        due.remove(&job);
                    }
                }
            }
        }
        let wake = due.values().map(|(_, at)| *at).min();
        let sleep = wake.map_or(Duration::from_secs(3600), |at| {
            at.duration_since(SystemTime::now()).unwrap_or_default()
        });
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            changed = rx.changed() => if changed.is_err() { return },
            () = shutdown.triggered() => return,
        }
        if shutdown.requested() {
            return;
        }
    }
}

/// The jobs running now: none starts twice at once in one watcher.
pub type Running = Arc<Mutex<BTreeSet<Job>>>;

/// Sets the last success of each wanted job not seeded since this replica
/// led, from S3.
async fn seed_all(
    desired: &Arc<Desired>,
    wanted: &BTreeMap<Job, String>,
    seeded: &mut BTreeSet<Job>,
    connection: &mut Option<Connection>,
    metrics: &Arc<Metrics>,
    timeout: Duration,
) {
    if wanted.contains_key(&Job::Snapshot) && seeded.insert(Job::Snapshot) {
        super::snapshots::seed(desired, metrics.clone(), timeout);
    }
    let backups: Vec<&Job> = wanted.keys().filter(|j| !seeded.contains(*j)).collect();
    if backups.is_empty() {
        return;
    }
    match connect(connection, desired, timeout).await {
        Ok(conn) => {
            for job in backups {
                match job {
                    Job::Backup(ns) => seed(desired, ns, conn.s3.clone(), metrics.clone()),
                    Job::Drill(ns) => {
                        super::drills::seed(desired, ns, conn.target.clone(), metrics.clone());
                    }
                    Job::Snapshot => continue,
                }
                seeded.insert(job.clone());
            }
        }
        Err(why) => tracing::warn!("cannot read the last complete backups yet: {why}"),
    }
}

/// The shared connections for `desired`'s environment, connecting when
/// there are none or the environment changed; the error says why not.
async fn connect<'a>(
    connection: &'a mut Option<Connection>,
    desired: &Desired,
    timeout: Duration,
) -> Result<&'a Connection, String> {
    let env = &desired.environment;
    let key = serde_json::to_string(env).unwrap_or_default();
    if connection.as_ref().is_none_or(|c| c.key != key) {
        *connection = None;
        let Some(s3) = &env.s3 else {
            return Err(format!(
                "environment `{}` has no `s3` in sluice.yaml, where backups are written",
                env.name
            ));
        };
        let target = Target::connect(env, timeout).await.map_err(|e| chain(&e))?;
        let s3 = S3Backend::connect(s3, timeout)
            .await
            .map_err(|e| chain(&e))?;
        *connection = Some(Connection {
            key,
            target: Arc::new(target),
            s3: Arc::new(s3),
        });
    }
    Ok(connection.as_ref().expect("connected above"))
}

/// Sets namespace `ns`'s last success from its newest complete run in S3
/// (when it started), unless a run of this replica set a later one: after a
/// restart or a change of leader the series is there before the next run,
/// so `backup_age` keeps growing while runs fail.
fn seed(desired: &Desired, ns: &str, s3: Arc<S3Backend>, metrics: Arc<Metrics>) {
    let Some(backup) = desired
        .namespaces
        .iter()
        .find(|n| n.name == ns)
        .and_then(|n| n.disaster_recovery.as_ref()?.backup.clone())
    else {
        return;
    };
    let labels = NamespaceLabels::new(&desired.environment.name, ns);
    tokio::spawn(async move {
        let dir = backup.dir(&labels.namespace);
        let listed = async { complete_runs(&s3.objects(&backup.bucket).await?, &dir).await }.await;
        let runs = match listed {
            Ok(runs) => runs,
            Err(e) => {
                tracing::warn!(namespace = %labels.namespace, "cannot read the last complete backup: {}", chain(&e));
                return;
            }
        };
        let Some(ms) = runs.last().and_then(|run| manifest::run_started_ms(run)) else {
            return;
        };
        #[allow(clippy::cast_precision_loss)]
        let secs = ms as f64 / 1000.0;
        let gauge = metrics.backup_last_success.get_or_create(&labels);
        if gauge.get() < secs {
            gauge.set(secs);
        }
    });
}

/// Starts namespace `ns`'s run, unless one is still running.
fn start(
    ns: &str,
    desired: &Arc<Desired>,
    conn: Result<&Connection, &str>,
    running: &Running,
    metrics: &Arc<Metrics>,
    timeout: Duration,
) {
    let labels = NamespaceLabels::new(&desired.environment.name, ns);
    let conn = match conn {
        Ok(c) => c,
        Err(why) => {
            metrics.backup_failures.get_or_create(&labels).inc();
            tracing::error!(namespace = %ns, "scheduled backup not started: {why}");
            return;
        }
    };
    let job = Job::Backup(ns.to_owned());
    if !running.lock().expect("not poisoned").insert(job.clone()) {
        tracing::warn!(namespace = %ns, "the previous scheduled backup is still running; this occurrence is skipped");
        return;
    }
    let (target, s3) = (conn.target.clone(), conn.s3.clone());
    let (desired, running, metrics) = (desired.clone(), running.clone(), metrics.clone());
    let ns = ns.to_owned();
    tokio::spawn(async move {
        let started = Instant::now();
        let result = backup_one(&desired, &ns, &target, &s3, timeout).await;
        metrics
            .backup_duration
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(b) => {
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                metrics.backup_last_success.get_or_create(&labels).set(now);
                for w in &b.warnings {
                    tracing::warn!(namespace = %ns, "{w}");
                }
                tracing::info!(namespace = %ns, run = %b.run_id, kind = ?b.kind, records = b.records, objects = b.objects, manifest = %b.manifest, "scheduled backup complete");
            }
            Err(e) => {
                metrics.backup_failures.get_or_create(&labels).inc();
                tracing::error!(namespace = %ns, "scheduled backup failed: {}; no manifest was written, so the next run starts where the last complete one ended", chain(&e));
            }
        }
        running.lock().expect("not poisoned").remove(&job);
    });
}

async fn backup_one(
    desired: &Desired,
    ns: &str,
    target: &Target,
    s3: &S3Backend,
    timeout: Duration,
) -> Result<run::Backed, BackupError> {
    let namespace = desired
        .namespaces
        .iter()
        .find(|n| n.name == ns)
        .ok_or_else(|| BackupError::NotBackedUp(ns.to_owned()))?;
    let bucket = &crate::backup::declared(namespace)?.bucket;
    let objects = s3.objects(bucket).await?;
    let opts = BackupOptions {
        segment_bytes: crate::backup::DEFAULT_SEGMENT_BYTES,
        timeout,
    };
    run::backup(namespace, &desired.environment, target, &objects, opts).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc: &str) -> SystemTime {
        humantime::parse_rfc3339(rfc).unwrap()
    }

    #[test]
    fn runs_are_due_at_the_next_occurrence_plus_a_bounded_jitter_fixed_per_namespace() {
        let now = at("2026-12-07T10:00:30Z");
        let a = next_due("* * * * *", "orders", now).unwrap();
        let minute = at("2026-12-07T10:01:00Z");
        // A one-minute schedule: at most a tenth of the minute later.
        assert!(a >= minute && a < minute + Duration::from_secs(6), "{a:?}");
        assert_eq!(next_due("* * * * *", "orders", now), Some(a));
        // Another namespace has its own share.
        let names = ["a", "b", "c", "d", "e"];
        let dues: BTreeSet<SystemTime> = names
            .iter()
            .map(|n| next_due("* * * * *", n, now).unwrap())
            .collect();
        assert!(dues.len() > 1, "{dues:?}");
        // Daily: the jitter is capped at a minute.
        let d = next_due("0 2 * * *", "orders", now).unwrap();
        let two = at("2026-12-08T02:00:00Z");
        assert!(d >= two && d < two + MAX_JITTER, "{d:?}");
        assert_eq!(next_due("not a schedule", "orders", now), None);
    }
}
