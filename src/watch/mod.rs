//! `sluice watch`: the long-running drift watcher.
//!
//! Every `--interval` (with jitter), and whenever the desired state changes,
//! it plans against live state as the engine does, publishes what differs as
//! Prometheus metrics, logs drift events and, with `--remediate`, applies
//! what the guards and policies allow. Transient errors (an unreadable
//! system, an unreachable remote) back off exponentially; a permanent one (an
//! invalid config, a blocked change, a policy deny) is reported once per
//! commit and waits for the next. With `--ha`, replicas elect a leader
//! through an etcd lease and only the leader plans, reports and remediates.

pub mod backups;
pub mod drills;
mod error;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod snapshots;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

use crate::backend::ConnectError;
use crate::config::workspace::EtcdEnv;
use crate::desired::{Desired, Overrides};
use crate::diag::{Diagnostic, chain};
use crate::engine::apply::{ApplyOptions, Interrupt, apply};
use crate::engine::{self, Target};
use crate::plan::{Action, Plan};
use crate::policy::Policies;
use crate::source::{Origin, SourceTree};
use crate::state::Holder;

use self::error::CycleError;
use self::http::Health;
use self::leader::Leadership;
use self::metrics::{Metrics, Reconciled, env};

#[derive(Clone, Debug)]
pub struct Options {
    /// A Git repository at a branch (a URL is fetched into the cache each
    /// cycle), or a directory, watched for file events.
    pub source: Origin,
    pub env: Option<String>,
    pub interval: Duration,
    pub listen: SocketAddr,
    pub remediate: bool,
    pub ha: bool,
    pub lease_ttl: Duration,
    pub max_backoff: Duration,
    /// How long one request to a live system may take.
    pub timeout: Duration,
}

/// Why the watcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The metrics and health address is taken or not ours.
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The directory's file events cannot be watched.
    #[error("cannot watch `{path}` for changes")]
    Notify {
        path: String,
        #[source]
        source: notify::Error,
    },
}

/// How a cycle that did its work ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cycle {
    /// Planned (and perhaps remediated), with the result label of it.
    Done(Reconciled),
    /// Not the leader: nothing planned.
    Standby,
}

struct Watcher {
    opts: Options,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: Arc<Interrupt>,
    target: Option<(String, Target)>,
    leadership: Option<Leadership>,
    /// Permanent problems already reported, by commit and content.
    reported: BTreeSet<String>,
    /// Drifted addresses of the last cycle: only new drift is logged.
    drifted: BTreeSet<String>,
    environment: String,
    /// The commit of the cycle in progress, for reports once per commit.
    commit: String,
    /// Tells the backup scheduler the desired state while this replica leads.
    backups: backups::Leading,
}

/// Runs until `shutdown` is triggered (SIGTERM): the cycle in progress
/// finishes, leadership and its lease are released.
pub async fn run(opts: Options, shutdown: Arc<Interrupt>) -> Result<(), WatchError> {
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health {
        metrics: metrics.clone(),
        ready: AtomicBool::new(false),
    });
    let bound = http::serve(opts.listen, health.clone())
        .await
        .map_err(|source| WatchError::Listen {
            addr: opts.listen,
            source,
        })?;
    tracing::info!(%bound, "serving /metrics, /healthz and /readyz");

    let changed = Arc::new(Notify::new());
    let _watcher = match &opts.source {
        Origin::Dir(dir) => Some(watch_dir(dir, changed.clone())?),
        Origin::Git { .. } => None,
    };
    let backups = backups::spawn(metrics.clone(), shutdown.clone(), opts.timeout);
    let mut w = Watcher {
        opts,
        metrics,
        health,
        shutdown: shutdown.clone(),
        target: None,
        leadership: None,
        reported: BTreeSet::new(),
        drifted: BTreeSet::new(),
        environment: String::new(),
        commit: String::new(),
        backups,
    };
    // Transient failures in a row back off from 1 s, doubling with jitter,
    // up to `--max-backoff`; any other end of a cycle starts it again.
    let mut retries: Option<ExponentialBackoff> = None;
    loop {
        let started = Instant::now();
        let outcome = w.cycle().await;
        w.metrics.duration.observe(started.elapsed().as_secs_f64());
        let delay = w.after(outcome, &mut retries);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = changed.notified() => tracing::info!("the desired state changed"),
            // Also at once when it came during the cycle: the permit waits.
            () = shutdown.triggered() => {}
        }
        if shutdown.requested() {
            break;
        }
    }
    // A drill stops after its object in flight, then deletes its scratch
    // topics and records itself: time for a write, a delete and a record.
    if !drills::settle(w.opts.timeout * 4).await {
        tracing::error!(
            "a scheduled drill did not stop in time; its `.drill-` scratch topics may be left behind"
        );
    }
    if let Some(l) = w.leadership.take() {
        l.release().await;
        tracing::info!("released leadership and its lease");
    }
    Ok(())
}

impl Watcher {
    /// Counts how a cycle ended and says how long to wait for the next: a
    /// transient error backs off, a permanent one is reported once per
    /// commit and waits the interval, as a cycle that did its work does.
    fn after(
        &mut self,
        outcome: Result<Cycle, CycleError>,
        retries: &mut Option<ExponentialBackoff>,
    ) -> Duration {
        let cap = self.opts.max_backoff;
        match outcome {
            Err(e) if e.is_transient() => {
                self.metrics.count(&self.environment, e.result());
                let delay = retries
                    .get_or_insert_with(|| backoff(cap))
                    .next()
                    .unwrap_or(cap)
                    .min(cap);
                tracing::error!(retry_in = ?delay, "reconcile failed: {}", chain(&e));
                return delay;
            }
            Ok(Cycle::Done(result)) => {
                self.metrics.count(&self.environment, result);
                self.metrics
                    .last_success
                    .get_or_create(&env(&self.environment))
                    .set(now_s());
            }
            Ok(Cycle::Standby) => {}
            Err(e) => {
                self.metrics.count(&self.environment, e.result());
                let commit = self.commit.clone();
                self.report_once(&commit, &chain(&e));
            }
        }
        *retries = None;
        self.health.ready.store(true, Ordering::Relaxed);
        jitter(self.opts.interval)
    }

    /// One reconcile: read the desired state, connect, lead (with `--ha`),
    /// plan, publish, and remediate when asked.
    async fn cycle(&mut self) -> Result<Cycle, CycleError> {
        let tree = self.opts.source.load()?;
        self.commit = tree
            .revision
            .clone()
            .unwrap_or_else(|| "working-tree".into());
        let (desired, policies) = resolve(&tree, self.opts.env.as_deref())?;
        self.environment = desired.environment.name.clone();
        self.metrics.set_commit(&self.environment, &self.commit);

        self.connect(&desired).await?;
        if !self.opts.ha {
            self.metrics
                .leader
                .get_or_create(&env(&self.environment))
                .set(1);
        } else if !self.lead(&desired.environment.etcd).await {
            self.metrics.forget_plan();
            self.backups.send_replace(None);
            return Ok(Cycle::Standby);
        }
        self.backups.send_replace(Some(Arc::new(desired.clone())));
        let (_, target) = self.target.as_ref().expect("connected above");
        // A failed read is an error, never a remediation.
        let planned = engine::plan(&desired, tree.revision.as_deref(), target, &policies).await?;
        let plan = planned.plan;
        self.metrics.publish(&self.environment, &plan);
        self.log_drift(&plan);

        let refused: Vec<String> = plan
            .changes
            .iter()
            .filter(|c| c.action == Action::Blocked)
            .map(|c| format!("{} is blocked: {}", c.address, c.reasons.join("; ")))
            .chain(plan.denials().map(|f| {
                format!(
                    "policy `{}` denies namespace `{}`: {}",
                    f.policy, f.namespace, f.message
                )
            }))
            .collect();
        let result = if !refused.is_empty() {
            let commit = self.commit.clone();
            self.report_once(
                &commit,
                &format!("the plan cannot be applied: {}", refused.join("; ")),
            );
            Reconciled::Blocked
        } else if plan.changes.is_empty() {
            Reconciled::Success
        } else {
            Reconciled::Changes
        };
        if !self.opts.remediate || plan.changes.is_empty() {
            return Ok(Cycle::Done(result));
        }
        let remediated = self.remediate(plan, &desired, &tree, &policies).await?;
        Ok(Cycle::Done(if result == Reconciled::Blocked {
            result
        } else {
            remediated
        }))
    }

    /// Applies what the guards and policies allow: not what is blocked, not
    /// a namespace a policy denies, and deletes only with the workspace's
    /// `allow_delete`; then plans again so the metrics show the result.
    async fn remediate(
        &mut self,
        mut plan: Plan,
        desired: &Desired,
        tree: &SourceTree,
        policies: &Policies,
    ) -> Result<Reconciled, CycleError> {
        let allow_delete = desired.guards.allow_delete;
        let denied: BTreeSet<String> = plan.denials().map(|f| f.namespace.clone()).collect();
        plan.changes
            .retain(|c| c.action != Action::Blocked && !denied.contains(&c.namespace));
        let before = plan.changes.len();
        if !allow_delete {
            plan.changes.retain(|c| c.action != Action::Delete);
        }
        if plan.changes.len() < before {
            let commit = self.commit.clone();
            self.report_once(
                &commit,
                &format!(
                    "{} delete(s) are not remediated: the workspace guard `allow_delete` is off",
                    before - plan.changes.len()
                ),
            );
        }
        plan.summary = crate::plan::Summary::of(&plan.changes);
        if plan.changes.is_empty() {
            return Ok(Reconciled::Changes);
        }
        let (_, target) = self.target.as_ref().expect("connected");
        let opts = ApplyOptions {
            allow_delete,
            lock_wait: Duration::from_secs(10),
            holder: Holder::current(),
            cancel: self.shutdown.clone(),
            batch: crate::engine::apply::BATCH,
            progress: Arc::new(crate::engine::progress::Silent),
        };
        let outcome = apply(&plan, target, &opts).await?;
        tracing::info!(changes = plan.changes.len(), status = ?outcome.status(), "remediated");
        let again = engine::plan(desired, tree.revision.as_deref(), target, policies).await?;
        self.metrics.publish(&self.environment, &again.plan);
        self.drifted = drift_addresses(&again.plan);
        Ok(Reconciled::Remediated)
    }

    /// Connects to the environment's systems, again when its settings changed.
    async fn connect(&mut self, desired: &Desired) -> Result<(), ConnectError> {
        let key = serde_json::to_string(&desired.environment).unwrap_or_default();
        if self.target.as_ref().is_some_and(|(k, _)| *k == key) {
            return Ok(());
        }
        let target = Target::connect(&desired.environment, self.opts.timeout).await?;
        self.target = Some((key, target));
        Ok(())
    }

    /// With `--ha`: campaigns on the first call; whether this replica leads.
    async fn lead(&mut self, etcd_env: &EtcdEnv) -> bool {
        if self.leadership.is_none() {
            // The campaign waits for as long as another replica leads.
            let etcd = match crate::backend::etcd::connect_with(etcd_env, None).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!("cannot join the leader election: {}", chain(&e));
                    return false;
                }
            };
            let election = crate::records::state_key(&etcd_env.prefix, "leader", &self.environment);
            let id = format!("{}@{}", std::process::id(), Holder::current().host);
            match Leadership::start(etcd, election, id, self.opts.lease_ttl).await {
                Ok(l) => self.leadership = Some(l),
                Err(e) => {
                    tracing::error!("cannot join the leader election: {e}");
                    return false;
                }
            }
        }
        let leads = self.leadership.as_ref().is_some_and(Leadership::is_leader);
        self.metrics
            .leader
            .get_or_create(&env(&self.environment))
            .set(i64::from(leads));
        if !leads
            && self.leadership.as_ref().is_some_and(Leadership::finished)
            && let Some(lost) = self.leadership.take()
        {
            // The lease was lost: campaign again, with a new one, next cycle.
            lost.release().await;
        }
        leads
    }

    /// Logs a problem that lasts until the desired state changes, once per
    /// commit rather than once per cycle.
    fn report_once(&mut self, commit: &str, problem: &str) {
        if self.reported.insert(format!("{commit}\n{problem}")) {
            tracing::warn!("at {commit}, {problem}; waiting for the next commit");
        }
    }

    /// Logs drift that was not there in the last cycle.
    fn log_drift(&mut self, plan: &Plan) {
        let now = drift_addresses(plan);
        for c in plan.changes.iter().filter(|c| c.is_drift()) {
            if !self.drifted.contains(&c.address.to_string()) {
                tracing::warn!(
                    environment = %plan.environment,
                    namespace = %c.namespace,
                    address = %c.address,
                    action = ?c.action,
                    "drift: changed outside sluice"
                );
            }
        }
        self.drifted = now;
    }
}

fn drift_addresses(plan: &Plan) -> BTreeSet<String> {
    plan.changes
        .iter()
        .filter(|c| c.is_drift())
        .map(|c| c.address.to_string())
        .collect()
}

/// The one environment of a tree, and its policies; the errors as one
/// line each, at their place.
fn resolve(tree: &SourceTree, env: Option<&str>) -> Result<(Desired, Policies), CycleError> {
    let invalid = |diags: &[Diagnostic]| {
        let errors: Vec<String> = diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| match &d.span {
                Some(at) => format!("{at}: {}", d.message),
                None => d.message.clone(),
            })
            .collect();
        CycleError::Invalid(format!("{} error(s): {}", errors.len(), errors.join("; ")))
    };
    let (desired, diags) = engine::load_desired(tree, env, &Overrides::from_process());
    let desired = desired.ok_or_else(|| invalid(&diags))?;
    let policies = engine::load_policies(tree).map_err(|diags| invalid(&diags))?;
    Ok((desired, policies))
}

/// Delays between transient failures: from 1 s, doubling, each with up to
/// as much again of jitter (the caller cuts them at `cap`), for as long as
/// they last.
fn backoff(cap: Duration) -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(1))
        .with_max_delay(cap.max(Duration::from_secs(1)))
        .with_jitter()
        .without_max_times()
        .build()
}

/// The interval, give or take 10%, so that replicas do not plan in step.
fn jitter(interval: Duration) -> Duration {
    use std::hash::{BuildHasher, RandomState};
    let r = RandomState::new().hash_one(SystemTime::now()) % 2001;
    let factor = 0.9 + (r as f64) / 10_000.0;
    interval.mul_f64(factor)
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// File events under `dir`, debounced: one notification after they settle.
fn watch_dir(
    dir: &std::path::Path,
    changed: Arc<Notify>,
) -> Result<notify::RecommendedWatcher, WatchError> {
    use notify::Watcher as _;
    let (tx, rx) = std::sync::mpsc::channel::<notify::Result<notify::Event>>();
    let error = |source: notify::Error| WatchError::Notify {
        path: dir.display().to_string(),
        source,
    };
    let mut watcher = notify::recommended_watcher(tx).map_err(error)?;
    watcher
        .watch(dir, notify::RecursiveMode::Recursive)
        .map_err(error)?;
    // Reading the files (each cycle does) is no change.
    let is_change =
        |e: &notify::Result<notify::Event>| e.as_ref().is_ok_and(|e| !e.kind.is_access());
    std::thread::spawn(move || {
        while let Ok(event) = rx.recv() {
            if !is_change(&event) {
                continue;
            }
            // Settle: swallow the burst an editor or `git checkout` makes.
            while rx.recv_timeout(Duration::from_millis(500)).is_ok() {}
            changed.notify_one();
        }
    });
    Ok(watcher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let cap = Duration::from_secs(60);
        let delays: Vec<Duration> = backoff(cap).take(12).collect();
        // Each delay is its doubling step plus up to as much again of jitter.
        for (n, d) in delays.iter().take(5).enumerate() {
            let step = Duration::from_secs(1 << n);
            assert!(*d >= step && *d < step * 2, "{n}: {d:?}");
        }
        assert!(delays[11] >= cap && delays[11] < cap * 2, "{delays:?}");
        // It never runs out: failures are retried for as long as they last.
        assert_eq!(backoff(cap).take(1000).count(), 1000);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(10));
            assert!(
                d >= Duration::from_secs(9) && d <= Duration::from_secs(11),
                "{d:?}"
            );
        }
    }
}
