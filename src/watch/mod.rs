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

pub mod http;
pub mod leader;
pub mod metrics;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;

use crate::config::workspace::EtcdEnv;
use crate::desired::{Desired, Overrides, Selection, load};
use crate::engine::apply::{ApplyOptions, apply};
use crate::engine::{self, Target};
use crate::plan::{Action, Cause, Plan};
use crate::policy::Policies;
use crate::source::{Origin, SourceTree};
use crate::state::Holder;

use self::http::Health;
use self::leader::Leadership;
use self::metrics::{Metrics, env};

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
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot watch `{path}` for changes: {message}")]
    Notify { path: String, message: String },
}

/// A request to stop (SIGTERM): the flag stops an apply in flight from
/// starting more, the notification ends the wait between cycles.
#[derive(Debug, Default)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    wake: Notify,
}

impl Shutdown {
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }

    fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
}

/// How a cycle ended.
enum Outcome {
    /// Planned; `result` is the metric's label.
    Done(&'static str),
    /// Not the leader: nothing planned.
    Standby,
    /// The config is invalid: it waits for the next commit.
    Invalid,
    /// May get better by itself: back off and retry.
    Transient(String),
}

struct Watcher {
    opts: Options,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: Arc<Shutdown>,
    target: Option<(String, Target)>,
    leadership: Option<Leadership>,
    /// Permanent problems already reported, by commit and content.
    reported: BTreeSet<String>,
    /// Drifted addresses of the last cycle: only new drift is logged.
    drifted: BTreeSet<String>,
    environment: String,
}

/// Runs until `shutdown` is triggered (SIGTERM): the cycle in progress
/// finishes, leadership and its lease are released.
pub async fn run(opts: Options, shutdown: Arc<Shutdown>) -> Result<(), WatchError> {
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
    };
    let mut failures: u32 = 0;
    loop {
        let started = Instant::now();
        let outcome = w.cycle().await;
        w.metrics.duration.observe(started.elapsed().as_secs_f64());
        let delay = match outcome {
            Outcome::Transient(message) => {
                failures += 1;
                w.metrics.count(&w.environment, "error");
                let delay = backoff(failures, w.opts.max_backoff);
                tracing::error!(failures, retry_in = ?delay, "reconcile failed: {message}");
                delay
            }
            other => {
                failures = 0;
                match other {
                    Outcome::Done(result) => {
                        w.metrics.count(&w.environment, result);
                        w.metrics
                            .last_success
                            .get_or_create(&env(&w.environment))
                            .set(now_s());
                    }
                    Outcome::Invalid => w.metrics.count(&w.environment, "invalid"),
                    Outcome::Standby | Outcome::Transient(_) => {}
                }
                w.health.ready.store(true, Ordering::Relaxed);
                jitter(w.opts.interval)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = changed.notified() => tracing::info!("the desired state changed"),
            // Also at once when it came during the cycle: the permit waits.
            () = shutdown.wake.notified() => {}
        }
        if shutdown.requested() {
            break;
        }
    }
    if let Some(l) = w.leadership.take() {
        l.release().await;
        tracing::info!("released leadership and its lease");
    }
    Ok(())
}

impl Watcher {
    async fn cycle(&mut self) -> Outcome {
        let tree = match self.opts.source.load() {
            Ok(t) => t,
            Err(e) => return Outcome::Transient(format!("cannot read the desired state: {e}")),
        };
        let commit = tree
            .revision
            .clone()
            .unwrap_or_else(|| "working-tree".into());
        let (desired, policies) = match resolve(&tree, self.opts.env.as_deref()) {
            Ok(d) => d,
            Err(message) => {
                self.report_once(&commit, &format!("the config is invalid: {message}"));
                return Outcome::Invalid;
            }
        };
        self.environment = desired.environment.name.clone();
        self.metrics.set_commit(&self.environment, &commit);

        if let Err(e) = self.connect(&desired).await {
            return Outcome::Transient(e);
        }
        if !self.opts.ha {
            self.metrics
                .leader
                .get_or_create(&env(&self.environment))
                .set(1);
        } else if !self.lead(&desired.environment.etcd).await {
            self.metrics.forget_plan();
            return Outcome::Standby;
        }
        let (_, target) = self.target.as_ref().expect("connected above");
        let planned =
            match engine::plan(&desired, tree.revision.as_deref(), target, &policies).await {
                Ok(p) => p,
                // A failed read is an error, never a remediation.
                Err(e) => return Outcome::Transient(e.to_string()),
            };
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
            self.report_once(
                &commit,
                &format!("the plan cannot be applied: {}", refused.join("; ")),
            );
            "blocked"
        } else if plan.changes.is_empty() {
            "success"
        } else {
            "changes"
        };
        if !self.opts.remediate || plan.changes.is_empty() {
            return Outcome::Done(result);
        }
        match self.remediate(plan, &desired, &tree, &policies).await {
            Outcome::Done(_) if result == "blocked" => Outcome::Done(result),
            other => other,
        }
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
    ) -> Outcome {
        let allow_delete = desired.guards.allow_delete;
        let denied: BTreeSet<String> = plan.denials().map(|f| f.namespace.clone()).collect();
        plan.changes
            .retain(|c| c.action != Action::Blocked && !denied.contains(&c.namespace));
        let before = plan.changes.len();
        if !allow_delete {
            plan.changes.retain(|c| c.action != Action::Delete);
        }
        if plan.changes.len() < before {
            tracing::warn!(
                skipped = before - plan.changes.len(),
                "deletes are not remediated: the workspace guard `allow_delete` is off"
            );
        }
        plan.summary = crate::plan::Summary::of(&plan.changes);
        if plan.changes.is_empty() {
            return Outcome::Done("changes");
        }
        let (_, target) = self.target.as_ref().expect("connected");
        let opts = ApplyOptions {
            allow_delete,
            lock_wait: Duration::from_secs(10),
            holder: Holder::current(),
            cancel: self.shutdown.flag.clone(),
            batch: crate::engine::apply::BATCH,
        };
        match apply(&plan, target, &opts).await {
            Ok(outcome) => {
                tracing::info!(changes = plan.changes.len(), status = ?outcome.status(), "remediated");
            }
            Err(e) => return Outcome::Transient(format!("remediation failed: {e}")),
        }
        match engine::plan(desired, tree.revision.as_deref(), target, policies).await {
            Ok(again) => {
                self.metrics.publish(&self.environment, &again.plan);
                self.drifted = drift_addresses(&again.plan);
                Outcome::Done("remediated")
            }
            Err(e) => Outcome::Transient(e.to_string()),
        }
    }

    /// Connects to the environment's systems, again when its settings changed.
    async fn connect(&mut self, desired: &Desired) -> Result<(), String> {
        let key = serde_json::to_string(&desired.environment).unwrap_or_default();
        if self.target.as_ref().is_some_and(|(k, _)| *k == key) {
            return Ok(());
        }
        let target = Target::connect(&desired.environment)
            .await
            .map_err(|e| e.to_string())?;
        self.target = Some((key, target));
        Ok(())
    }

    /// With `--ha`: campaigns on the first call; whether this replica leads.
    async fn lead(&mut self, etcd_env: &EtcdEnv) -> bool {
        if self.leadership.is_none() {
            let etcd = match crate::backend::etcd::connect(etcd_env).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!("cannot join the leader election: {e}");
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
        for c in plan.changes.iter().filter(|c| c.cause == Cause::Drift) {
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
    plan.drift().map(|c| c.address.to_string()).collect()
}

/// The one environment of a tree, and its policies; the errors as text.
fn resolve(tree: &SourceTree, env: Option<&str>) -> Result<(Desired, Policies), String> {
    let (mut desired, diags) = load(tree, Selection::One(env), &Overrides::from_process());
    let errors: Vec<String> = diags
        .iter()
        .filter(|d| d.is_error())
        .map(|d| match &d.span {
            Some(at) => format!("{}:{}:{}: {}", at.file, at.line, at.column, d.message),
            None => d.message.clone(),
        })
        .collect();
    if !errors.is_empty() {
        return Err(format!("{} error(s): {}", errors.len(), errors.join("; ")));
    }
    let desired = desired.pop().ok_or("no environment to watch")?;
    let policies = Policies::load(&tree.policies).map_err(|errors| {
        errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    Ok((desired, policies))
}

/// 1 s, 2 s, 4 s… up to `cap`.
fn backoff(failures: u32, cap: Duration) -> Duration {
    let exp = Duration::from_secs(1u64 << failures.saturating_sub(1).min(20));
    exp.min(cap)
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
    let error = |e: notify::Error| WatchError::Notify {
        path: dir.display().to_string(),
        message: e.to_string(),
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
    fn backoff_doubles_up_to_the_cap() {
        let cap = Duration::from_secs(60);
        assert_eq!(backoff(1, cap), Duration::from_secs(1));
        assert_eq!(backoff(2, cap), Duration::from_secs(2));
        assert_eq!(backoff(5, cap), Duration::from_secs(16));
        assert_eq!(backoff(30, cap), cap);
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
