//! Scheduled restore drills in `sluice watch`: the scheduler of
//! [`super::backups`] starts them on `disaster_recovery.drill.schedule`
//! while this replica leads; each is a `sluice dr drill` of one namespace
//! (under the apply lock, not waiting for it: an apply in progress makes
//! that occurrence fail). Its outcome moves
//! `sluice_dr_drill_last_success_timestamp_seconds` (when a passing drill
//! finished), `sluice_dr_drill_rto_seconds` (the RTO it measured, passed or
//! not) and `sluice_dr_drill_failures_total`. When a replica starts to lead
//! it sets the last success from the namespace's drill record in etcd, when
//! that drill passed. A shutdown stops a drill between objects; its scratch
//! topics are deleted and the drill recorded as failed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::backups::{Job, Running};
use super::metrics::{Metrics, NamespaceLabels};
use crate::backend::s3::S3Backend;
use crate::desired::Desired;
use crate::diag::chain;
use crate::drill::Drilled;
use crate::engine::Target;
use crate::engine::apply::Interrupt;
use crate::state::StateError;

/// Drills running in this process: a watcher shutting down waits for them
/// to delete their scratch topics and record themselves ([`settle`]).
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Waits, up to `limit`, until no drill runs: each was told to stop by the
/// shutdown, and stops after the object in flight, then deletes its scratch
/// topics. Whether none was left running.
pub async fn settle(limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while IN_FLIGHT.load(Ordering::SeqCst) > 0 {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Seconds since the epoch of an RFC 3339 time.
fn seconds(rfc3339: &str) -> Option<f64> {
    let t = humantime::parse_rfc3339_weak(rfc3339).ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_secs_f64())
}

/// Sets namespace `ns`'s last success from its drill record in etcd, when
/// that drill passed, unless a drill of this replica set a later one.
pub fn seed(desired: &Desired, ns: &str, target: Arc<Target>, metrics: Arc<Metrics>) {
    let labels = NamespaceLabels::new(&desired.environment.name, ns);
    // The failure counter starts at 0, so that its first failure is an increase.
    let _ = metrics.drill_failures.get_or_create(&labels);
    tokio::spawn(async move {
        let drills = match target.state.drills().await {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(namespace = %labels.namespace, "cannot read the last drill: {}", chain(&e));
                return;
            }
        };
        let Some(at) = drills
            .get(&labels.namespace)
            .and_then(|d| d.as_ref().ok())
            .filter(|d| d.passed)
            .and_then(|d| seconds(&d.finished_at))
        else {
            return;
        };
        let gauge = metrics.drill_last_success.get_or_create(&labels);
        if gauge.get() < at {
            gauge.set(at);
        }
    });
}

/// Starts a drill of namespace `ns`, unless one is still running.
pub fn start(
    ns: &str,
    desired: &Arc<Desired>,
    conn: Result<(Arc<Target>, Arc<S3Backend>), &str>,
    (running, metrics, shutdown): (&Running, &Arc<Metrics>, &Arc<Interrupt>),
    timeout: Duration,
) {
    let labels = NamespaceLabels::new(&desired.environment.name, ns);
    let (target, s3) = match conn {
        Ok(c) => c,
        Err(why) => {
            metrics.drill_failures.get_or_create(&labels).inc();
            tracing::error!(namespace = %ns, "scheduled drill not started: {why}");
            return;
        }
    };
    let job = Job::Drill(ns.to_owned());
    if !running.lock().expect("not poisoned").insert(job.clone()) {
        tracing::warn!(namespace = %ns, "the previous scheduled drill is still running; this occurrence is skipped");
        return;
    }
    let (desired, running, metrics, shutdown) = (
        desired.clone(),
        running.clone(),
        metrics.clone(),
        shutdown.clone(),
    );
    // On a blocking thread of its own, driven by this runtime: restore's
    // futures are not `Send` for every lifetime (iterator closures held
    // across awaits), which `tokio::spawn` asks; a drill is long and rare.
    let handle = tokio::runtime::Handle::current();
    IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    tokio::task::spawn_blocking(move || {
        let result = handle.block_on(drill_one(
            &desired,
            &labels.namespace,
            &target,
            &s3,
            &shutdown,
            timeout,
        ));
        match result {
            Ok((drilled, saved)) => {
                let r = &drilled.record;
                #[allow(clippy::cast_precision_loss)]
                let rto = r.rto_ms as f64 / 1000.0;
                metrics.drill_rto.get_or_create(&labels).set(rto);
                if let Err(e) = saved {
                    tracing::error!(namespace = %labels.namespace, "the drill's record could not be written: {}", chain(&e));
                }
                if r.passed {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64());
                    metrics.drill_last_success.get_or_create(&labels).set(now);
                    tracing::info!(namespace = %labels.namespace, run = %r.run, records = r.records, rto_ms = r.rto_ms, data_age_ms = r.data_age_ms, "scheduled drill passed");
                } else {
                    metrics.drill_failures.get_or_create(&labels).inc();
                    tracing::error!(namespace = %labels.namespace, run = %r.run, rto_ms = r.rto_ms, "scheduled drill failed: {}", r.failure.as_deref().unwrap_or("unknown"));
                }
                if !drilled.left_behind.is_empty() {
                    tracing::error!(namespace = %labels.namespace, topics = ?drilled.left_behind, "scratch topics left behind");
                }
                if !drilled.cleaned.is_empty() {
                    tracing::warn!(namespace = %labels.namespace, topics = ?drilled.cleaned, "deleted the scratch topics an interrupted drill left");
                }
            }
            Err(why) => {
                metrics.drill_failures.get_or_create(&labels).inc();
                tracing::error!(namespace = %labels.namespace, "scheduled drill could not start: {why}");
            }
        }
        running.lock().expect("not poisoned").remove(&job);
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    });
}

async fn drill_one(
    desired: &Desired,
    ns: &str,
    target: &Target,
    s3: &S3Backend,
    cancel: &Interrupt,
    timeout: Duration,
) -> Result<(Drilled, Result<(), StateError>), String> {
    let Some(namespace) = desired.namespaces.iter().find(|n| n.name == ns) else {
        return Err(format!("namespace `{ns}` is no longer declared"));
    };
    crate::drill::locked(
        namespace,
        &desired.environment,
        target,
        s3,
        cancel,
        Duration::ZERO,
        timeout,
    )
    .await
    .map_err(|e| chain(&e))
}
