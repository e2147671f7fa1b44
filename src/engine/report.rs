//! `dr report`: the quarterly DR review's table of one environment, built
//! from what `status` gathers: per namespace with a DR policy, its targets,
//! how old its newest backup is, what its backups cover of the PITR window,
//! its replication, and the environment's etcd snapshot.

use serde::Serialize;

use super::compliance::human;
use super::status::{BackupStatus, SnapshotStatus, Status};
use crate::config::namespace::Tier;
use crate::config::units::format_ms;
use crate::desired::Desired;
use crate::plan::{Check, DrReport};
use crate::state::drills::DrillRecord;

/// One environment's DR table.
#[derive(Debug, Serialize)]
pub struct EnvironmentReport {
    pub environment: String,
    /// When the figures were read (RFC 3339).
    pub generated_at: String,
    /// The environment's etcd snapshots; `None` when it declares no `state_backup`.
    pub state_snapshot: Option<SnapshotStatus>,
    pub namespaces: Vec<NamespaceRow>,
    /// Why figures are missing, when a system did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A namespace with a DR policy, as the review reads it.
#[derive(Debug, Serialize)]
pub struct NamespaceRow {
    pub namespace: String,
    pub tier: Tier,
    pub rpo_s: Option<u64>,
    pub rto_s: Option<u64>,
    /// Whether its DR policy declares backups.
    pub backup_declared: bool,
    /// Its backups, as their manifests tell; `None` when it declares none or
    /// they could not be read.
    pub backup: Option<BackupStatus>,
    /// Its last restore drill (`sluice dr drill`), when it had one.
    pub last_drill: Option<DrillRecord>,
    /// `not_declared`, `ok`, `failing` or `unknown`.
    pub replication: Replication,
    /// Every DR compliance check it fails (as `plan` and `status` report them).
    pub violations: Vec<String>,
    /// Whether it meets every target the report can check.
    pub compliant: Option<bool>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Replication {
    NotDeclared,
    Ok,
    Failing,
    Unknown,
}

impl EnvironmentReport {
    /// The report of `desired`'s environment from its `status` (gathered
    /// for the whole environment).
    pub fn of(desired: &Desired, status: Status, generated_at: String) -> EnvironmentReport {
        let Status {
            backends,
            drift_error,
            dr,
            backups,
            state_snapshot,
            drills,
            ..
        } = status;
        let down: Vec<String> = backends
            .iter()
            .filter(|b| !b.ok)
            .map(|b| format!("{}: {}", b.system, b.detail))
            .collect();
        let error = match (down.is_empty(), drift_error) {
            (false, _) => Some(down.join("; ")),
            (true, e) => e,
        };
        Self::build(
            desired,
            &dr,
            backups,
            drills,
            state_snapshot,
            error,
            generated_at,
        )
    }

    /// The report of an environment whose status could not be read: its
    /// namespaces and targets, every figure unknown.
    pub fn unread(desired: &Desired, error: String, generated_at: String) -> EnvironmentReport {
        Self::build(
            desired,
            &[],
            Vec::new(),
            Vec::new(),
            None,
            Some(error),
            generated_at,
        )
    }

    fn build(
        desired: &Desired,
        dr: &[DrReport],
        mut backups: Vec<BackupStatus>,
        mut drills: Vec<DrillRecord>,
        state_snapshot: Option<SnapshotStatus>,
        error: Option<String>,
        generated_at: String,
    ) -> EnvironmentReport {
        let known = error.is_none();
        let namespaces = desired
            .namespaces
            .iter()
            .filter_map(|ns| {
                let policy = ns.disaster_recovery.as_ref()?;
                let compliance: Option<&DrReport> = dr.iter().find(|r| r.namespace == ns.name);
                let backup = backups
                    .iter()
                    .position(|b| b.namespace == ns.name)
                    .map(|i| backups.swap_remove(i));
                let failing = |checks: &[Check]| -> Vec<String> {
                    compliance
                        .iter()
                        .flat_map(|r| &r.violations)
                        .filter(|v| checks.contains(&v.check))
                        .map(|v| v.message.clone())
                        .collect()
                };
                let replication = match (&policy.replication, known) {
                    (None, _) => Replication::NotDeclared,
                    (Some(_), false) => Replication::Unknown,
                    (Some(_), true)
                        if failing(&[Check::Replication, Check::ReplicaPolicy]).is_empty() =>
                    {
                        Replication::Ok
                    }
                    (Some(_), true) => Replication::Failing,
                };
                let violations = failing(&[
                    Check::BackupAge,
                    Check::Versioning,
                    Check::Replication,
                    Check::ReplicaPolicy,
                    Check::Drill,
                ]);
                let last_drill = drills
                    .iter()
                    .position(|d| d.namespace == ns.name)
                    .map(|i| drills.swap_remove(i));
                let window_short = backup
                    .as_ref()
                    .is_some_and(|b| b.covers_window == Some(false));
                Some(NamespaceRow {
                    namespace: ns.name.clone(),
                    tier: ns.tier,
                    rpo_s: policy.rpo_ms.map(|ms| ms / 1000),
                    rto_s: policy.rto_ms.map(|ms| ms / 1000),
                    compliant: known.then_some(violations.is_empty() && !window_short),
                    backup_declared: policy.backup.is_some(),
                    backup,
                    last_drill,
                    replication,
                    violations,
                })
            })
            .collect();
        EnvironmentReport {
            environment: desired.environment.name.clone(),
            generated_at,
            state_snapshot,
            namespaces,
            error,
        }
    }

    /// Whether any namespace misses a target, or the snapshots are not fresh.
    pub fn needs_attention(&self) -> bool {
        self.namespaces.iter().any(|n| n.compliant == Some(false))
            || self
                .state_snapshot
                .as_ref()
                .is_some_and(|s| s.state != super::status::SnapshotState::Ok)
    }
}

impl NamespaceRow {
    /// The newest backup's age against the RPO: `3m (rpo 5m)`, `none`.
    pub fn backup_age(&self) -> String {
        let age = self.backup.as_ref().and_then(|b| b.data_age_s);
        match (age, self.rpo_s) {
            (Some(age), Some(rpo)) if age > rpo => {
                format!("{} (OVER rpo {})", human(age), human(rpo))
            }
            (Some(age), _) => human(age),
            (None, _) if !self.backup_declared => "no backups declared".into(),
            (None, _) if self.backup.as_ref().is_none_or(|b| b.error.is_some()) => "unknown".into(),
            (None, _) => "none".into(),
        }
    }

    /// The last drill: when, whether it passed, its RTO against the target.
    pub fn drill(&self) -> String {
        let Some(d) = &self.last_drill else {
            return if self.compliant.is_some() {
                "never"
            } else {
                "unknown"
            }
            .into();
        };
        let when = d.started_at.get(..10).unwrap_or(&d.started_at);
        if !d.passed {
            return format!("{when}, FAILED");
        }
        let rto = format_ms(d.rto_ms);
        match d.rto_target_ms {
            Some(t) if d.rto_ms > t => format!("{when}, passed, RTO {rto} (OVER {})", format_ms(t)),
            _ => format!("{when}, passed, RTO {rto}"),
        }
    }

    /// What the backups cover against the PITR window.
    pub fn pitr(&self) -> String {
        let Some(b) = &self.backup else {
            return if self.backup_declared { "unknown" } else { "-" }.into();
        };
        let range = match (&b.covered_from, &b.covered_to) {
            (Some(from), Some(to)) => format!("{from} to {to}"),
            (None, Some(to)) => format!("no records (read up to {to})"),
            _ => "nothing".into(),
        };
        match (b.pitr_window_s, b.covers_window) {
            (Some(w), Some(true)) => format!("{range} (covers {})", human(w)),
            (Some(w), _) => format!("{range} (SHORT of {})", human(w)),
            (None, _) => range,
        }
    }
}
