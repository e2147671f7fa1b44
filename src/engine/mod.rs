//! The reconcile engine: read sluice's state and the live systems, compute
//! the plan (pure, in [`crate::plan`]), and apply it ([`apply`]).

pub mod apply;
mod cluster;
pub mod compliance;
pub mod destroy;
pub mod forget;
pub mod progress;
pub mod report;
pub mod status;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use crate::backend::etcd::EtcdBackend;
use crate::backend::kafka::KafkaBackend;
use crate::backend::rules::RulesBackend;
use crate::backend::s3::S3Backend;
use crate::backend::{Backend, BackendError, BackupCatalog, ClusterProbe, ConnectError};
use crate::config::workspace::Guards;
use crate::desired::{Desired, Environment, Overrides, Selection, load};
use crate::diag::Diagnostic;
use crate::plan::{Endpoints, LiveState, Plan, PlanError, PlanInput, diff};
use crate::policy::{Policies, PolicyError};
use crate::resource::expand::expand;
use crate::resource::{Address, Resource, System, Value};
use crate::source::SourceTree;
use crate::state::etcd::EtcdState;
use crate::state::{Inventory, StateError, StateStore, Stored};

/// The live systems and the state store of one environment, and what the
/// engine asks of them beyond their resources.
pub struct Target {
    pub backends: Vec<Box<dyn Backend>>,
    pub state: Box<dyn StateStore>,
    /// Where backups are kept, for DR compliance (the environment's S3).
    pub catalog: Option<Arc<dyn BackupCatalog>>,
    /// Broker and consumer-lag probes, for `status` (the environment's Kafka).
    pub cluster: Option<Arc<dyn ClusterProbe>>,
    /// The time DR compliance measures backup age against.
    pub clock: Clock,
}

/// Seconds since the epoch: the system's, or a fixed one for tests.
#[derive(Clone, Copy, Debug)]
pub enum Clock {
    System,
    Fixed(i64),
}

impl Clock {
    pub fn now(self) -> i64 {
        match self {
            Clock::System => compliance::now_s(),
            Clock::Fixed(t) => t,
        }
    }
}

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The diff refused to plan (an empty desired state over a full inventory).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A live system could not be read.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// sluice's state could not be read.
    #[error(transparent)]
    State(#[from] StateError),
    /// A policy could not be evaluated.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The Kafka cluster is not the one the environment pins.
    #[error(
        "environment `{env}` pins Kafka cluster `{expected}` (`kafka.cluster_id`), but the brokers at {servers} report cluster `{found}`; nothing was planned or changed"
    )]
    OtherCluster {
        env: String,
        expected: String,
        found: String,
        servers: String,
    },
    /// The environment pins a cluster and the brokers did not say which they are.
    #[error(
        "environment `{env}` pins Kafka cluster `{expected}` (`kafka.cluster_id`), but the brokers at {servers} did not report a cluster ID (none answered within the timeout, or they report none); nothing was planned or changed"
    )]
    ClusterUnknown {
        env: String,
        expected: String,
        servers: String,
    },
}

impl EngineError {
    /// Whether planning again later may succeed without a new commit.
    pub fn is_transient(&self) -> bool {
        match self {
            EngineError::Plan(_) | EngineError::Policy(_) | EngineError::OtherCluster { .. } => {
                false
            }
            EngineError::ClusterUnknown { .. } => true,
            EngineError::Backend(e) => e.is_transient(),
            EngineError::State(e) => e.is_transient(),
        }
    }
}

impl Target {
    /// The real systems of an environment: its Kafka cluster, and its etcd
    /// for both the records and sluice's state. Fails when etcd does not answer.
    /// Every request to them times out after `timeout`.
    pub async fn connect(env: &Environment, timeout: Duration) -> Result<Target, ConnectError> {
        let kafka = Arc::new(KafkaBackend::connect(&env.kafka, timeout)?);
        let etcd = crate::backend::etcd::connect(&env.etcd, timeout).await?;
        let mut backends: Vec<Box<dyn Backend>> = vec![
            Box::new(kafka.clone()),
            Box::new(EtcdBackend::new(etcd.clone(), &env.etcd.prefix)),
        ];
        let s3 = match &env.s3 {
            Some(s3) => Some(Arc::new(S3Backend::connect(s3, timeout).await?)),
            None => None,
        };
        if let Some(s3) = &s3 {
            backends.push(Box::new(s3.clone()));
        }
        if let Some(alerts) = &env.alerts {
            backends.push(Box::new(RulesBackend::new(alerts)));
        }
        Ok(Target {
            backends,
            state: Box::new(EtcdState::new(etcd, &env.etcd.prefix, &env.name)),
            catalog: s3.map(|s3| s3 as Arc<dyn BackupCatalog>),
            cluster: Some(kafka),
            clock: Clock::System,
        })
    }

    /// Ends a command's use of the systems without waiting for rdkafka's
    /// admin thread, which notices that its client is dropped only on its
    /// next 100 ms poll: the process exits next, and nothing is buffered.
    pub fn leave(self) {
        std::mem::forget(self);
    }

    fn backend(&self, system: System) -> Option<&dyn Backend> {
        self.backends
            .iter()
            .find(|b| b.system() == system)
            .map(|b| b.as_ref())
    }

    /// Reads the live state of `wanted`, one batched read per system, all
    /// systems at once. Any failed read fails the whole: a missing answer
    /// must never look like a missing resource.
    pub async fn read(&self, wanted: &BTreeSet<Address>) -> Result<LiveState, BackendError> {
        let mut by_system: BTreeMap<System, Vec<Address>> = BTreeMap::new();
        for a in wanted {
            by_system
                .entry(a.kind().system())
                .or_default()
                .push(a.clone());
        }
        let reads = self.backends.iter().map(|backend| {
            let addresses = by_system.remove(&backend.system()).unwrap_or_default();
            async move {
                let start = std::time::Instant::now();
                let read = backend.read(&addresses).await;
                let system = backend.system();
                tracing::debug!(?system, addresses = addresses.len(), took = ?start.elapsed(), "read");
                read
            }
        });
        let reads: Vec<_> = reads.collect();
        if let Some((system, _)) = by_system.into_iter().next() {
            return Err(BackendError::Read {
                system,
                message: "no backend is configured for it".into(),
            });
        }
        let mut live = LiveState::default();
        for part in futures_util::future::try_join_all(reads).await? {
            live.merge(part);
        }
        Ok(live)
    }
}

/// The desired state of one environment (`env`, else the default), and
/// every diagnostic loading it gave; errors refuse it. Nothing is printed:
/// commands print the diagnostics, the watcher logs them.
pub fn load_desired(
    tree: &SourceTree,
    env: Option<&str>,
    overrides: &Overrides,
) -> (Option<Desired>, Vec<Diagnostic>) {
    let (mut desired, diags) = load(tree, Selection::One(env), overrides);
    let desired = desired
        .pop()
        .filter(|_| !diags.iter().any(Diagnostic::is_error));
    (desired, diags)
}

/// The built-in policies and the repository's in `tree` (for a pull
/// request, the base revision's); what does not load, as diagnostics.
pub fn load_policies(tree: &SourceTree) -> Result<Policies, Vec<Diagnostic>> {
    Policies::load(&tree.policies)
        .map_err(|errors| errors.iter().map(PolicyError::to_diagnostic).collect())
}

/// What a plan has read, or is reading, before it is asked for.
pub enum Known {
    /// Nothing: a full plan reads sluice's state beside the live systems.
    Nothing,
    /// sluice's state, read to choose what to load (`plan --base`): a
    /// scoped plan uses it; a full one reads it again, beside the rest.
    Stored(Box<Stored>),
    /// [`Prefetched`], being read while the desired state loaded.
    Reading(tokio::sync::oneshot::Receiver<Result<Prefetched, EngineError>>),
}

/// sluice's state and the live state of everything its inventory records:
/// all a full plan can read before its desired state is known.
pub struct Prefetched {
    stored: Stored,
    live: LiveState,
}

/// Reads [`Prefetched`]: sluice's state, then what its inventory records.
/// A full plan reads this while its namespaces still parse; what the
/// desired state names beyond it is read once that is known.
pub async fn prefetch(target: &Target) -> Result<Prefetched, EngineError> {
    let stored = target.state.load(None).await?;
    let recorded: BTreeSet<Address> = stored.inventory.entries.keys().cloned().collect();
    let live = target.read(&recorded).await?;
    Ok(Prefetched { stored, live })
}

/// A plan and the state it was made against.
pub struct Planned {
    pub plan: Plan,
    pub stored: Stored,
    /// What the plan was computed from.
    pub live: LiveState,
}

/// Plans the desired state of one environment against its live state, and
/// judges the plan by the policies.
pub async fn plan(
    desired: &Desired,
    revision: Option<&str>,
    target: &Target,
    policies: &Policies,
) -> Result<Planned, EngineError> {
    plan_from(desired, revision, target, policies, Known::Nothing).await
}

/// [`plan`], with what the caller has read, or is reading, already.
pub async fn plan_from(
    desired: &Desired,
    revision: Option<&str>,
    target: &Target,
    policies: &Policies,
    known: Known,
) -> Result<Planned, EngineError> {
    // Resources come from the whole desired state, so that a bucket shared
    // with a namespace outside the scope has the value a full plan gives it.
    let resources = expand(desired);
    let env = &desired.environment;
    let kafka = resources
        .iter()
        .any(|r| r.address.kind().system() == System::Kafka);
    // A full plan judges its namespaces as they stand, and lists their
    // backups in the buckets' declared regions, while it reads; once the
    // changes are known, only the namespaces they touch are judged again.
    let full = desired.scope.is_none();
    let unchanged = full.then(|| policies.judge_unchanged(desired));
    let listed = async {
        match (&target.catalog, full) {
            (Some(catalog), true) => {
                let declared = declared_regions(&resources);
                let region = |b: &str| declared.get(b).copied();
                Some(compliance::newest_backups(desired, region, catalog.as_ref()).await)
            }
            _ => None,
        }
    };
    // The cluster's ID is asked beside the reads; a pin refuses the plan
    // (before any apply) when it does not match, whatever the reads found.
    // The last drills (for DR compliance) are read beside the rest too.
    let drills = async {
        match &target.catalog {
            Some(_) => Some(target.state.drills().await),
            None => None,
        }
    };
    let (planned, cluster_id, listed, drills) = tokio::join!(
        plan_resources(
            &env.name,
            revision,
            &desired.guards,
            &resources,
            desired.scope.as_ref(),
            target,
            known,
        ),
        cluster::cluster_id(env, target, kafka),
        listed,
        drills
    );
    let cluster_id = cluster::pinned(env, cluster_id)?;
    let mut planned = planned?;
    drop(resources);
    planned.plan.endpoints = Some(Endpoints::of(env, cluster_id));
    let scope: Option<BTreeSet<String>> = planned
        .plan
        .scope
        .as_ref()
        .map(|s| s.iter().cloned().collect());
    let scoped;
    let judged = match &scope {
        Some(scope) => {
            scoped = Desired {
                namespaces: desired
                    .namespaces
                    .iter()
                    .filter(|ns| scope.contains(&ns.name))
                    .cloned()
                    .collect::<Vec<_>>()
                    .into(),
                ..desired.clone()
            };
            &scoped
        }
        None => desired,
    };
    let started = std::time::Instant::now();
    planned.plan.policy = match unchanged {
        Some(unchanged) => {
            let unchanged = unchanged.wait().await?;
            policies.evaluate_changed(unchanged, judged, &planned.plan.changes)?
        }
        None => policies.evaluate(judged, &planned.plan.changes)?,
    };
    tracing::debug!(took = ?started.elapsed(), "policies judged (after the reads)");
    if let Some(catalog) = &target.catalog {
        let started = std::time::Instant::now();
        let live_region = compliance::live_region(&planned.live);
        // The early listing holds when every bucket was found live where it
        // was listed; else the buckets are listed where they were found.
        let newest = match listed {
            Some(Ok(early))
                if early.regions == compliance::backup_regions(judged, &live_region) =>
            {
                early.newest
            }
            _ => {
                compliance::newest_backups(judged, &live_region, catalog.as_ref())
                    .await?
                    .newest
            }
        };
        let drills = drills.transpose()?.unwrap_or_default();
        planned.plan.dr =
            compliance::evaluate(judged, &planned.live, &newest, &drills, target.clock.now());
        tracing::debug!(took = ?started.elapsed(), "backup listings read (after the reads)");
    }
    Ok(planned)
}

/// The region each bucket `resources` declare is wanted in.
fn declared_regions(resources: &[Resource]) -> BTreeMap<&str, &str> {
    resources
        .iter()
        .filter_map(|r| match &r.value {
            Value::Bucket(b) => Some((r.address.name(), b.region.as_str())),
            _ => None,
        })
        .collect()
}

/// The resources of the namespaces in `scope`, and the scope itself grown by
/// every namespace that shares a bucket with one in it (a bucket's value
/// comes from all the namespaces that use it), or that now declares what the
/// inventory records under one in it (a resource handed over, not deleted).
fn in_scope(
    resources: &[Resource],
    scope: &BTreeSet<String>,
    inventory: &Inventory,
) -> (Vec<Resource>, BTreeSet<String>) {
    let buckets_of = |r: &Resource| -> Vec<String> {
        std::iter::once(&r.address)
            .chain(&r.requires)
            .filter(|a| a.kind().system() == System::S3)
            .map(|a| a.bucket_and_id().0.to_owned())
            .collect()
    };
    let mut scope = scope.clone();
    loop {
        let recorded: BTreeSet<&Address> = inventory
            .entries
            .iter()
            .filter(|(_, e)| scope.contains(&e.namespace))
            .map(|(a, _)| a)
            .collect();
        let used: BTreeSet<String> = resources
            .iter()
            .filter(|r| scope.contains(&r.namespace))
            .flat_map(buckets_of)
            .chain(
                recorded
                    .iter()
                    .filter(|a| a.kind().system() == System::S3)
                    .map(|a| a.bucket_and_id().0.to_owned()),
            )
            .collect();
        let sharing: Vec<String> = resources
            .iter()
            .filter(|r| !scope.contains(&r.namespace))
            .filter(|r| {
                recorded.contains(&r.address) || buckets_of(r).iter().any(|b| used.contains(b))
            })
            .map(|r| r.namespace.clone())
            .collect();
        if sharing.is_empty() {
            break;
        }
        scope.extend(sharing);
    }
    let kept = resources
        .iter()
        .filter(|r| scope.contains(&r.namespace))
        .cloned()
        .collect();
    (kept, scope)
}

/// Plans desired resources (sorted by address) against live state and the
/// inventory; with a `scope`, only the inventory of those namespaces.
pub async fn plan_resources(
    environment: &str,
    revision: Option<&str>,
    guards: &Guards,
    resources: &[Resource],
    scope: Option<&BTreeSet<String>>,
    target: &Target,
    known: Known,
) -> Result<Planned, EngineError> {
    let input = |desired, live, inventory, inventory_revision, partial| PlanInput {
        environment,
        revision,
        guards,
        desired,
        live,
        inventory,
        inventory_revision,
        partial,
    };
    let Some(scope) = scope else {
        let (stored, live) = read_all(target, resources, known).await?;
        let revision = stored.revision_of(None);
        let plan = diff(&input(resources, &live, &stored.inventory, revision, false))?;
        return Ok(Planned { plan, stored, live });
    };
    let stored = match known {
        Known::Stored(stored) => *stored,
        _ => target.state.load(Some(scope)).await?,
    };
    let (resources, scope, mut stored) = widen(resources, scope, stored, target).await?;
    let mut inventory = scoped_inventory(&stored, &resources, &scope);
    let mut live = LiveState::default();
    read_rest(
        target,
        addresses(&resources),
        &inventory,
        &BTreeSet::new(),
        &mut live,
    )
    .await?;
    // What the scope declares and finds live, but does not record, may be
    // recorded under a namespace outside it (handed over): its entry, and
    // so its protection, is found in the whole inventory.
    let unrecorded = resources.iter().any(|r| {
        !inventory.entries.contains_key(&r.address) && live.resources.contains_key(&r.address)
    });
    if unrecorded && stored.namespaces.is_some() {
        stored = target.state.load(None).await?;
        inventory = scoped_inventory(&stored, &resources, &scope);
    }
    let revision = stored.revision_of(Some(&scope));
    let mut plan = diff(&input(&resources, &live, &inventory, revision, true))?;
    plan.scope = Some(scope.iter().cloned().collect());
    Ok(Planned { plan, stored, live })
}

/// The resources of the scope as [`in_scope`] widens it, the widened scope,
/// and sluice's state of every namespace in it, read again until it covers
/// the scope it widens to.
async fn widen(
    resources: &[Resource],
    scope: &BTreeSet<String>,
    mut stored: Stored,
    target: &Target,
) -> Result<(Vec<Resource>, BTreeSet<String>, Stored), EngineError> {
    loop {
        let (kept, widened) = in_scope(resources, scope, &stored.inventory);
        if stored.covers(&widened) {
            return Ok((kept, widened, stored));
        }
        stored = target.state.load(Some(&widened)).await?;
    }
}

/// The scope's entries, and the entry of anything it declares, wherever it
/// was recorded: a resource moving in from outside the scope keeps its
/// protection.
fn scoped_inventory(
    stored: &Stored,
    resources: &[Resource],
    scope: &BTreeSet<String>,
) -> Inventory {
    let declared: BTreeSet<&Address> = resources.iter().map(|r| &r.address).collect();
    Inventory {
        entries: stored
            .inventory
            .entries
            .iter()
            .filter(|(a, e)| scope.contains(&e.namespace) || declared.contains(a))
            .map(|(a, e)| (a.clone(), e.clone()))
            .collect(),
    }
}

/// The reads of a full plan that [`prefetch`]ed: what it read, once it is
/// read, and what `resources` name beyond that.
async fn read_after(
    target: &Target,
    resources: &[Resource],
    prefetched: tokio::sync::oneshot::Receiver<Result<Prefetched, EngineError>>,
) -> Result<(Stored, LiveState), EngineError> {
    let Prefetched { stored, mut live } = prefetched
        .await
        .expect("the prefetch runs until the plan has it")?;
    let rest: BTreeSet<Address> = addresses(resources)
        .into_iter()
        .filter(|a| !stored.inventory.entries.contains_key(a))
        .collect();
    tracing::debug!(rest = rest.len(), "read beyond the inventory");
    if !rest.is_empty() {
        live.merge(target.read(&rest).await?);
    }
    Ok((stored, live))
}

/// The reads of a full plan: after what was [`prefetch`]ed (`known`), what
/// `resources` name beyond it; else what `resources` name while sluice's state
/// loads, then what only the inventory names.
async fn read_all(
    target: &Target,
    resources: &[Resource],
    known: Known,
) -> Result<(Stored, LiveState), EngineError> {
    if let Known::Reading(prefetched) = known {
        return read_after(target, resources, prefetched).await;
    }
    let named = addresses(resources);
    let (stored, mut live) = load_and_read(target, &named).await?;
    read_rest(
        target,
        BTreeSet::new(),
        &stored.inventory,
        &named,
        &mut live,
    )
    .await?;
    Ok((stored, live))
}

/// sluice's state and the live state of `named`, read at the same time.
async fn load_and_read(
    target: &Target,
    named: &BTreeSet<Address>,
) -> Result<(Stored, LiveState), EngineError> {
    let (stored, live) = tokio::join!(target.state.load(None), target.read(named));
    Ok((stored?, live?))
}

/// Reads `unread` and what only `inventory` names beyond what was `read`
/// already, into `live`; no request when nothing is left.
async fn read_rest(
    target: &Target,
    mut unread: BTreeSet<Address>,
    inventory: &Inventory,
    read: &BTreeSet<Address>,
    live: &mut LiveState,
) -> Result<(), EngineError> {
    unread.extend(
        inventory
            .entries
            .keys()
            .filter(|a| !read.contains(*a))
            .cloned(),
    );
    if !unread.is_empty() {
        live.merge(target.read(&unread).await?);
    }
    Ok(())
}

/// The floor a full plan of `desired` is measured against: only the reads
/// it makes, with the same batching, concurrency and overlap (what the
/// caller [`prefetch`]ed or reads itself, then what `desired` names beyond
/// it; the backup listings of DR compliance beside them, in the declared
/// regions).
pub async fn read_floor(
    desired: &Desired,
    target: &Target,
    known: Known,
) -> Result<(), EngineError> {
    let resources = expand(desired);
    let declared = declared_regions(&resources);
    let region = |b: &str| declared.get(b).copied();
    let listed = async {
        match &target.catalog {
            Some(catalog) => {
                compliance::newest_backups(desired, region, catalog.as_ref()).await?;
                tracing::debug!("backup listings read");
                Ok(())
            }
            None => Ok::<_, EngineError>(()),
        }
    };
    let read = async {
        read_all(target, &resources, known).await?;
        tracing::debug!("state and live state read");
        Ok::<_, EngineError>(())
    };
    tokio::try_join!(read, listed)?;
    Ok(())
}

/// Every address `resources` declare or require.
fn addresses(resources: &[Resource]) -> BTreeSet<Address> {
    resources
        .iter()
        .flat_map(|r| std::iter::once(&r.address).chain(&r.requires))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests;
