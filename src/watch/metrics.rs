//! The watcher's Prometheus metrics, in the text exposition format.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::plan::{Cause, Plan};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    pub environment: String,
    pub namespace: String,
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct NamespaceLabels {
    pub environment: String,
    pub namespace: String,
}

impl NamespaceLabels {
    /// The labels of namespace `namespace` in environment `environment`.
    pub fn new(environment: &str, namespace: &str) -> Self {
        NamespaceLabels {
            environment: environment.to_owned(),
            namespace: namespace.to_owned(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub environment: String,
    /// [`Reconciled::as_str`].
    pub result: String,
}

/// How a reconcile cycle ended: the `result` label of `sluice_reconciles_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reconciled {
    /// Nothing differs.
    Success,
    /// Changes are pending or drifted (and not remediated).
    Changes,
    /// A change is blocked or a policy denies the plan.
    Blocked,
    /// `--remediate` applied what it could.
    Remediated,
    /// The config is invalid: the cycle waits for the next commit.
    Invalid,
    /// The cycle failed: a transient error is retried with backoff.
    Error,
}

impl Reconciled {
    pub fn as_str(self) -> &'static str {
        match self {
            Reconciled::Success => "success",
            Reconciled::Changes => "changes",
            Reconciled::Blocked => "blocked",
            Reconciled::Remediated => "remediated",
            Reconciled::Invalid => "invalid",
            Reconciled::Error => "error",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommitLabels {
    pub environment: String,
    pub commit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EnvLabels {
    pub environment: String,
}

/// Every metric the watcher publishes.
pub struct Metrics {
    registry: Registry,
    pub drifted: Family<ResourceLabels, Gauge>,
    pub pending: Family<ResourceLabels, Gauge>,
    pub blocked: Family<EnvLabels, Gauge>,
    pub dr_violations: Family<NamespaceLabels, Gauge>,
    pub duration: Histogram,
    pub reconciles: Family<ResultLabels, Counter>,
    pub last_success: Family<EnvLabels, Gauge<f64, AtomicU64>>,
    pub commit: Family<CommitLabels, Gauge>,
    pub leader: Family<EnvLabels, Gauge>,
    pub backup_last_success: Family<NamespaceLabels, Gauge<f64, AtomicU64>>,
    pub backup_failures: Family<NamespaceLabels, Counter>,
    pub backup_duration: Family<NamespaceLabels, Histogram, fn() -> Histogram>,
    pub snapshot_last_success: Family<EnvLabels, Gauge<f64, AtomicU64>>,
    pub snapshot_failures: Family<EnvLabels, Counter>,
    pub snapshot_duration: Family<EnvLabels, Histogram, fn() -> Histogram>,
    pub drill_last_success: Family<NamespaceLabels, Gauge<f64, AtomicU64>>,
    pub drill_rto: Family<NamespaceLabels, Gauge<f64, AtomicU64>>,
    pub drill_failures: Family<NamespaceLabels, Counter>,
}

/// Buckets for backup runs: from a second to about nine hours.
fn backup_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("sluice");
        // Registers a metric under its name and help, and hands it back.
        macro_rules! registered {
            ($name:literal, $help:literal, $metric:expr) => {{
                let metric = $metric;
                registry.register($name, $help, metric.clone());
                metric
            }};
        }
        Metrics {
            drifted: registered!(
                "drifted_resources",
                "Resources changed outside sluice, per environment, namespace and kind",
                Family::default()
            ),
            pending: registered!(
                "pending_changes",
                "Changes desired in Git and not applied yet, per environment, namespace and kind",
                Family::default()
            ),
            blocked: registered!(
                "blocked_changes",
                "Changes the plan blocks, or that policies deny",
                Family::default()
            ),
            dr_violations: registered!(
                "dr_compliance_violations",
                "Failed DR compliance checks, per namespace",
                Family::default()
            ),
            duration: registered!(
                "reconcile_duration_seconds",
                "Time one reconcile cycle took",
                Histogram::new(exponential_buckets(0.05, 2.0, 12))
            ),
            reconciles: registered!(
                "reconciles",
                "Reconcile cycles, by result",
                Family::default()
            ),
            last_success: registered!(
                "last_success_timestamp_seconds",
                "When a reconcile cycle last succeeded (Unix time)",
                Family::default()
            ),
            commit: registered!(
                "commit_info",
                "The desired state's current commit (1 for the current one)",
                Family::default()
            ),
            leader: registered!(
                "leader",
                "1 when this replica is the leader (always 1 without --ha)",
                Family::default()
            ),
            backup_last_success: registered!(
                "backup_last_success_timestamp_seconds",
                "When a scheduled backup of the namespace last wrote its manifest (Unix time)",
                Family::default()
            ),
            backup_failures: registered!(
                "backup_failures",
                "Scheduled backups of the namespace that failed or could not start",
                Family::default()
            ),
            backup_duration: registered!(
                "backup_duration_seconds",
                "Time one scheduled backup run of the namespace took, failed or not",
                Family::new_with_constructor(backup_histogram as fn() -> Histogram)
            ),
            snapshot_last_success: registered!(
                "state_snapshot_last_success_timestamp_seconds",
                "When the newest complete etcd snapshot of the environment started (Unix time); 0 when there is none",
                Family::default()
            ),
            snapshot_failures: registered!(
                "state_snapshot_failures",
                "Scheduled etcd snapshots of the environment that failed or could not start",
                Family::default()
            ),
            snapshot_duration: registered!(
                "state_snapshot_duration_seconds",
                "Time one scheduled etcd snapshot of the environment took, failed or not",
                Family::new_with_constructor(backup_histogram as fn() -> Histogram)
            ),
            drill_last_success: registered!(
                "dr_drill_last_success_timestamp_seconds",
                "When a restore drill of the namespace last passed (Unix time, when it finished)",
                Family::default()
            ),
            drill_rto: registered!(
                "dr_drill_rto_seconds",
                "The RTO the namespace's last scheduled restore drill measured (start to verified restore)",
                Family::default()
            ),
            drill_failures: registered!(
                "dr_drill_failures",
                "Scheduled restore drills of the namespace that failed or could not start",
                Family::default()
            ),
            registry,
        }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// Publishes what a plan found: drift and pending changes per namespace
    /// and kind, blocked changes, DR violations.
    pub fn publish(&self, environment: &str, plan: &Plan) {
        self.forget_plan();
        for c in &plan.changes {
            let labels = ResourceLabels {
                environment: environment.to_owned(),
                namespace: c.namespace.clone(),
                kind: c.address.kind().to_string(),
            };
            // A resource changed outside sluice counts as drifted whatever
            // else is pending on it, a blocked change included.
            if c.is_drift() {
                self.drifted.get_or_create(&labels).inc();
            }
            if c.cause == Cause::Pending {
                self.pending.get_or_create(&labels).inc();
            }
        }
        let blocked = plan.summary.blocked + plan.denials().count();
        self.blocked
            .get_or_create(&env(environment))
            .set(i64::try_from(blocked).unwrap_or(i64::MAX));
        for (namespace, _) in plan.violations() {
            self.dr_violations
                .get_or_create(&NamespaceLabels::new(environment, namespace))
                .inc();
        }
    }

    /// Forgets what a plan found: a standby replica reports no drift.
    pub fn forget_plan(&self) {
        self.drifted.clear();
        self.pending.clear();
        self.dr_violations.clear();
        self.blocked.clear();
    }

    pub fn set_commit(&self, environment: &str, commit: &str) {
        self.commit.clear();
        self.commit
            .get_or_create(&CommitLabels {
                environment: environment.to_owned(),
                commit: commit.to_owned(),
            })
            .set(1);
    }

    pub fn count(&self, environment: &str, result: Reconciled) {
        self.reconciles
            .get_or_create(&ResultLabels {
                environment: environment.to_owned(),
                result: result.as_str().to_owned(),
            })
            .inc();
    }
}

pub fn env(environment: &str) -> EnvLabels {
    EnvLabels {
        environment: environment.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Action, Change};
    use crate::resource::Address;

    fn change(name: &str, action: Action, cause: Cause, drifted: bool) -> Change {
        Change {
            drifted,
            ..Change::bare(Address::topic(name), "orders", action, cause)
        }
    }

    fn sample(metrics: &Metrics, series: &str) -> Option<String> {
        metrics
            .encode()
            .lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    }

    #[test]
    fn a_drifted_resource_stays_drifted_whatever_is_pending_on_it() {
        let metrics = Metrics::new();
        metrics.publish(
            "prod",
            &Plan::of_changes(
                "prod",
                vec![
                    change("drifted", Action::Update, Cause::Drift, false),
                    // Blocked in Git (a partition shrink) and changed by hand.
                    change("both", Action::Blocked, Cause::Pending, true),
                    change("pending", Action::Update, Cause::Pending, false),
                ],
            ),
        );
        let labels = r#"{environment="prod",namespace="orders",kind="kafka.topic"}"#;
        assert_eq!(
            sample(&metrics, &format!("sluice_drifted_resources{labels}")).as_deref(),
            Some("2"),
            "{}",
            metrics.encode()
        );
        assert_eq!(
            sample(&metrics, &format!("sluice_pending_changes{labels}")).as_deref(),
            Some("2")
        );
        assert_eq!(
            sample(&metrics, r#"sluice_blocked_changes{environment="prod"}"#).as_deref(),
            Some("1")
        );
    }

    #[test]
    fn dr_violations_are_counted_per_environment_and_namespace() {
        use crate::plan::{Check, DrReport, Violation};
        let violation = |check| Violation {
            check,
            message: String::new(),
        };
        let mut plan = Plan::of_changes("prod", Vec::new());
        plan.dr = vec![DrReport {
            namespace: "orders".into(),
            backups: String::new(),
            backup_age_s: None,
            rpo_s: None,
            violations: vec![violation(Check::BackupAge), violation(Check::Drill)],
        }];
        let metrics = Metrics::new();
        metrics.publish("prod", &plan);
        assert_eq!(
            sample(
                &metrics,
                r#"sluice_dr_compliance_violations{environment="prod",namespace="orders"}"#
            )
            .as_deref(),
            Some("2"),
            "{}",
            metrics.encode()
        );
    }
}
