//! `status`: the operator's single view, read-only. The last apply, the
//! health of every backend, drift, consumer lag of the declared groups, and
//! DR compliance. [`crate::render::status`] shows it.

use std::time::Duration;

use serde::Serialize;

use super::{Target, plan};
use crate::backend::kafka::KafkaBackend;
use crate::backend::s3::S3Backend;
use crate::backend::{BackupCatalog, ClusterProbe, ConnectError, PartitionLag};
use crate::desired::{Desired, Environment, NamespaceState};
use crate::plan::{Action, Cause, DrReport, LiveState};
use crate::policy::Policies;
use crate::resource::{Address, System, Value};
use crate::state::drills::DrillRecord;
use crate::state::{AppliedRecord, StateError, Stored, UnlockRecord};

/// The operator's single view of an environment, or of one namespace in it.
#[derive(Debug, Serialize)]
pub struct Status {
    pub environment: String,
    pub namespace: Option<String>,
    pub last_apply: Option<AppliedRecord>,
    /// The last `unlock --force`: who removed whose lock, and when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_unlock: Option<UnlockRecord>,
    pub backends: Vec<Health>,
    /// `None` when the plan could not be made; `drift_error` says why.
    pub drift: Option<DriftCounts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift_error: Option<String>,
    pub consumers: Vec<ConsumerStatus>,
    pub dr: Vec<DrReport>,
    /// Per namespace with backups: its last complete run, what the chain
    /// covers against `pitr.window`, and data age against `rpo` (filled from
    /// the manifests, by the `backup` module's `status`).
    pub backups: Vec<BackupStatus>,
    /// The environment's etcd snapshots, when it declares `state_backup`
    /// (filled from S3 by the `snapshot` module).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_snapshot: Option<SnapshotStatus>,
    /// The last restore drill of each namespace that had one (from etcd).
    pub drills: Vec<DrillRecord>,
}

/// An environment's etcd snapshots, as S3 holds them.
#[derive(Debug, Default, Serialize)]
pub struct SnapshotStatus {
    /// `s3://bucket/<prefix>`.
    pub location: String,
    /// `ok`, `stale`, `never_succeeded`, or `unknown` (S3 could not be read).
    pub state: SnapshotState,
    /// The newest complete snapshot's ID, start (RFC 3339), etcd revision and size.
    pub last_snapshot: Option<String>,
    pub last_started_at: Option<String>,
    pub revision: Option<i64>,
    pub size: Option<u64>,
    /// Seconds since the newest complete snapshot started.
    pub age_s: Option<u64>,
    pub stale_after_s: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Whether the environment's etcd snapshots are fresh enough.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotState {
    Ok,
    Stale,
    NeverSucceeded,
    #[default]
    Unknown,
}

/// A namespace's backups as their manifests tell them.
#[derive(Debug, Default, Serialize)]
pub struct BackupStatus {
    pub namespace: String,
    /// `s3://bucket/<prefix><namespace>/`.
    pub location: String,
    /// The newest complete run (`None`: there is none).
    pub last_run: Option<String>,
    /// When it read the high watermarks and when it wrote its manifest (RFC 3339).
    pub last_started_at: Option<String>,
    pub last_finished_at: Option<String>,
    /// Seconds since the newest complete run read the data.
    pub data_age_s: Option<u64>,
    pub rpo_s: Option<u64>,
    /// The runs a restore would read: the last full one and those after it.
    pub chain_runs: usize,
    /// The times a restore can reach (RFC 3339): from the chain's oldest
    /// record to its newest run's read.
    pub covered_from: Option<String>,
    pub covered_to: Option<String>,
    pub pitr_window_s: Option<u64>,
    /// Whether the covered range reaches back to the start of the window.
    pub covers_window: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One backend, as `status` found it.
#[derive(Debug, Serialize)]
pub struct Health {
    /// As people name it: `Kafka`, `etcd`, `S3`.
    #[serde(serialize_with = "display")]
    pub system: System,
    pub ok: bool,
    pub detail: String,
}

fn display<S: serde::Serializer>(system: &System, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(system)
}

#[derive(Debug, Default, Serialize)]
pub struct DriftCounts {
    /// Changed outside sluice.
    pub drifted: usize,
    /// In Git, not applied yet.
    pub pending: usize,
    pub blocked: usize,
}

#[derive(Debug, Serialize)]
pub struct ConsumerStatus {
    pub namespace: String,
    pub group: String,
    pub max_lag: Option<u64>,
    /// Records behind, over the namespace's topics; `None` when unknown, or
    /// when the group never committed an offset on them.
    pub lag: Option<i64>,
    pub state: LagState,
    pub partitions: Vec<PartitionLag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where a group stands against its `max_lag`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LagState {
    /// Within its `max_lag` (or it has none).
    Ok,
    /// Further behind than its `max_lag`.
    OverMaxLag,
    /// It committed no offset on the namespace's topics: it has not started
    /// reading them, so it has no lag to judge (not a lag of 0).
    NoCommits,
    /// Its offsets could not be read; `error` says why.
    Unknown,
}

impl LagState {
    pub fn as_str(self) -> &'static str {
        match self {
            LagState::Ok => "ok",
            LagState::OverMaxLag => "over max lag",
            LagState::NoCommits => "no commits",
            LagState::Unknown => "unknown",
        }
    }

    /// A group's state from the answer for its partitions.
    fn of(partitions: &[PartitionLag], lag: i64, max_lag: Option<u64>) -> LagState {
        if partitions.iter().all(|p| p.committed.is_none()) {
            LagState::NoCommits
        } else if max_lag.is_some_and(|m| lag > i64::try_from(m).unwrap_or(i64::MAX)) {
            LagState::OverMaxLag
        } else {
            LagState::Ok
        }
    }
}

impl ConsumerStatus {
    /// Whether the group is further behind than its `max_lag`.
    pub fn over(&self) -> bool {
        self.state == LagState::OverMaxLag
    }
}

impl Status {
    /// Whether a backend is down, or drift could not be known.
    pub fn unhealthy(&self) -> bool {
        self.backends.iter().any(|b| !b.ok) || self.drift.is_none()
    }

    /// Whether anything needs attention: drift, pending or blocked changes,
    /// DR violations, a group over its `max_lag`, or etcd snapshots that
    /// are stale, never succeeded or cannot be read.
    pub fn needs_attention(&self) -> bool {
        self.drift
            .as_ref()
            .is_some_and(|d| d.drifted + d.pending + d.blocked > 0)
            || self.dr.iter().any(|r| !r.violations.is_empty())
            || self.consumers.iter().any(ConsumerStatus::over)
            || self
                .state_snapshot
                .as_ref()
                .is_some_and(|s| s.state != SnapshotState::Ok)
    }
}

/// Gathers the status of an environment (or of namespace `only`): backend
/// health first; drift, lag and DR only when every backend answers.
pub async fn gather(
    desired: &Desired,
    revision: Option<&str>,
    target: &Target,
    policies: &Policies,
    only: Option<&str>,
) -> Status {
    let (backends, stored) = health(target).await;
    let stored = stored.ok();
    let mut status = Status {
        environment: desired.environment.name.clone(),
        namespace: only.map(str::to_owned),
        last_apply: stored.as_ref().and_then(|s| s.applied.clone()),
        last_unlock: stored.and_then(|s| s.unlocked),
        backends,
        drift: None,
        drift_error: None,
        consumers: Vec::new(),
        dr: Vec::new(),
        backups: Vec::new(),
        state_snapshot: None,
        drills: Vec::new(),
    };
    if !status.backends.iter().all(|b| b.ok) {
        status.drift_error = Some("a backend is down; drift is unknown".into());
        return status;
    }
    let planned = match plan(desired, revision, target, policies).await {
        Ok(p) => p,
        Err(e) => {
            status.drift_error = Some(crate::diag::chain(&e));
            return status;
        }
    };
    let mine = |ns: &str| only.is_none_or(|o| o == ns);
    let mut counts = DriftCounts::default();
    for c in planned.plan.changes.iter().filter(|c| mine(&c.namespace)) {
        match (c.action, c.cause) {
            (Action::Blocked, _) => counts.blocked += 1,
            (_, Cause::Drift) => counts.drifted += 1,
            (_, Cause::Pending) => counts.pending += 1,
        }
    }
    status.drift = Some(counts);
    // Drills of namespaces that are still declared (and in the scope).
    match target.state.drills().await {
        Ok(drills) => {
            // One that cannot be read is DR compliance's violation.
            status.drills = drills
                .into_values()
                .filter_map(Result::ok)
                .filter(|d| mine(&d.namespace))
                .filter(|d| desired.namespaces.iter().any(|n| n.name == d.namespace))
                .collect();
        }
        // The plan above read them for DR compliance; a failure here is
        // the store's between two reads, and the table is left out.
        Err(e) => tracing::warn!(
            "the last drills could not be read: {}",
            crate::diag::chain(&e)
        ),
    }
    status.dr = planned
        .plan
        .dr
        .into_iter()
        .filter(|r| mine(&r.namespace))
        .collect();
    for ns in desired.namespaces.iter().filter(|n| mine(&n.name)) {
        status
            .consumers
            .extend(consumers(target, ns, &planned.live).await);
    }
    status
}

/// Every backend's health, and sluice's state as read for it.
async fn health(target: &Target) -> (Vec<Health>, Result<Stored, StateError>) {
    let mut backends = Vec::new();
    if let Some(cluster) = &target.cluster {
        backends.push(kafka_health(cluster.as_ref()).await);
    }
    let stored = target.state.load(None).await;
    backends.push(Health {
        system: System::Etcd,
        ok: stored.is_ok(),
        detail: match &stored {
            Ok(s) => format!(
                "{} resource(s) in sluice's inventory",
                s.inventory.entries.len()
            ),
            Err(e) => crate::diag::chain(e),
        },
    });
    if let Some(catalog) = &target.catalog {
        backends.push(s3_health(catalog.as_ref()).await);
    }
    (backends, stored)
}

async fn kafka_health(cluster: &dyn ClusterProbe) -> Health {
    let brokers = cluster.brokers().await;
    Health {
        system: System::Kafka,
        ok: brokers.is_ok(),
        detail: match brokers {
            Ok(b) => format!("{} broker(s): {}", b.len(), b.join(", ")),
            Err(e) => e,
        },
    }
}

async fn s3_health(catalog: &dyn BackupCatalog) -> Health {
    let health = catalog.health().await;
    Health {
        system: System::S3,
        ok: health.is_ok(),
        detail: match health {
            Ok(n) => format!("{n} bucket(s) visible"),
            Err(e) => e,
        },
    }
}

fn down(system: System, detail: String) -> Health {
    Health {
        system,
        ok: false,
        detail,
    }
}

/// The status when etcd, which holds sluice's state, does not answer: every
/// backend's row all the same, etcd's saying why, and nothing that needs
/// sluice's state (the last apply, drift, lag against the plan's topics, DR).
pub async fn etcd_unreachable(
    env: &Environment,
    only: Option<&str>,
    timeout: Duration,
    why: &ConnectError,
) -> Status {
    let mut backends = vec![match KafkaBackend::connect(&env.kafka, timeout) {
        Ok(kafka) => kafka_health(&kafka).await,
        Err(e) => down(System::Kafka, crate::diag::chain(&e)),
    }];
    backends.push(down(System::Etcd, crate::diag::chain(why)));
    if let Some(s3) = &env.s3 {
        backends.push(match S3Backend::connect(s3, timeout).await {
            Ok(s3) => s3_health(&s3).await,
            Err(e) => down(System::S3, crate::diag::chain(&e)),
        });
    }
    Status {
        environment: env.name.clone(),
        namespace: only.map(str::to_owned),
        last_apply: None,
        backends,
        drift: None,
        drift_error: Some("etcd is down, so sluice's state and drift are unknown".into()),
        consumers: Vec::new(),
        dr: Vec::new(),
        backups: Vec::new(),
        state_snapshot: None,
        drills: Vec::new(),
        last_unlock: None,
    }
}

/// The lag of a namespace's declared groups on its topics that exist, with
/// the partition counts the plan read.
async fn consumers(target: &Target, ns: &NamespaceState, live: &LiveState) -> Vec<ConsumerStatus> {
    let Some(cluster) = &target.cluster else {
        return Vec::new();
    };
    let topics: Vec<(String, u32)> = ns
        .topics
        .iter()
        .filter_map(|t| {
            match live
                .resources
                .get(&Address::topic(&t.name))
                .map(|l| &l.value)
            {
                Some(Value::Topic(live)) => Some((t.name.clone(), live.partitions)),
                _ => None,
            }
        })
        .collect();
    let groups: Vec<String> = ns.consumers.iter().map(|c| c.group.clone()).collect();
    let answers = cluster.consumer_lag(groups, topics).await;
    ns.consumers
        .iter()
        .zip(answers)
        .map(|(c, answer)| {
            let (lag, state, partitions, error) = match answer {
                Ok(parts) => {
                    let lag = parts.iter().map(|p| p.lag).sum();
                    let state = LagState::of(&parts, lag, c.max_lag);
                    let lag = (state != LagState::NoCommits).then_some(lag);
                    (lag, state, parts, None)
                }
                Err(e) => (None, LagState::Unknown, Vec::new(), Some(e)),
            };
            ConsumerStatus {
                namespace: ns.name.clone(),
                group: c.group.clone(),
                max_lag: c.max_lag,
                lag,
                state,
                partitions,
                error,
            }
        })
        .collect()
}
