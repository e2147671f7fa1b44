//! Applying a plan: guards first, then the lock, a stale check, the changes in
//! order, and the inventory recorded as each batch lands.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use std::time::{Duration, Instant};
use tokio::sync::Notify;

use super::Target;
use super::progress::{Progress, Step};
use crate::backend::BackendError;
use crate::plan::{ABSENT, Action, Change, Plan, Summary};
use crate::resource::{Address, Kind};
use crate::state::{
    AppliedRecord, ApplyStatus, Fence, Holder, Inventory, Lock, Operation, StateError, Stored,
    Tally, now,
};

/// Changes sent to a backend at once, by default: small enough that an
/// interrupt is honoured quickly, large enough to batch.
pub const BATCH: usize = 50;
/// Progress is saved after every batch while a save rewrites the keys of
/// namespaces that hold at most this many resources together (about 300
/// KB); beyond that, at most every [`PROGRESS_EVERY`], so that a namespace
/// of thousands of topics is not rewritten whole for every 50 of them.
const SAVE_EVERY_BATCH_UP_TO: usize = 2000;
/// How often an apply records its progress when saves are large.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// A request to stop (SIGINT, SIGTERM): work in flight finishes, nothing
/// new starts, and whoever waits (a prompt, the watcher between cycles)
/// wakes at once.
#[derive(Debug, Default)]
pub struct Interrupt {
    flag: AtomicBool,
    wake: Notify,
}

impl Interrupt {
    pub fn trigger(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.wake.notify_waiters();
    }

    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Waits until the interrupt is triggered.
    pub async fn triggered(&self) {
        // Registered before the check, so a trigger in between still wakes us.
        let notified = self.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !self.requested() {
            notified.await;
        }
    }
}

pub struct ApplyOptions {
    pub allow_delete: bool,
    /// How long to wait for another apply's lock (0: fail at once).
    pub lock_wait: Duration,
    pub holder: Holder,
    /// Triggered on SIGINT/SIGTERM: start nothing new.
    pub cancel: Arc<Interrupt>,
    /// Changes per request (at least 1).
    pub batch: usize,
    /// Told of each batch as it is done.
    pub progress: Arc<dyn Progress>,
}

/// What an apply did.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub applied: Vec<Address>,
    pub failed: Vec<(Address, String)>,
    /// What was applied and what failed, per kind.
    pub done: BTreeMap<Kind, Tally>,
    /// Changes not attempted after an interrupt or a failure.
    pub not_attempted: usize,
    pub interrupted: bool,
    /// From the first batch to the last record.
    pub elapsed: Duration,
}

impl Outcome {
    pub fn status(&self) -> ApplyStatus {
        if self.interrupted {
            ApplyStatus::Interrupted
        } else if !self.failed.is_empty() {
            ApplyStatus::Failed
        } else {
            ApplyStatus::Complete
        }
    }
}

/// Why an apply refused to start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The plan asks for what cannot be done.
    #[error("the plan has {0} blocked change(s); resolve them before applying")]
    Blocked(usize),
    /// The plan deletes, and neither `--allow-delete` nor the guard allows it.
    #[error(
        "the plan deletes {0} resource(s); deletes need `--allow-delete` (or `guards.allow_delete: true` in the workspace)"
    )]
    DeletesNotAllowed(usize),
    /// The plan deletes more than `guards.max_deletes`.
    #[error("the plan deletes {count} resource(s), more than `guards.max_deletes` ({max}) allows")]
    TooManyDeletes { count: usize, max: u32 },
    /// The plan would change resources sluice's inventory does not hold.
    #[error("the plan changes or deletes {} resource(s) sluice does not manage: {}; nothing was changed", .0.len(), .0.join(", "))]
    NotOwned(Vec<String>),
    /// What the plan read moved since it was made.
    #[error("the plan is stale: {} changed since it was made; nothing was changed. Plan again.", .0.join(", "))]
    Stale(Vec<String>),
    /// sluice's state could not be read or written, or the lock is held.
    #[error(transparent)]
    State(#[from] StateError),
    /// A live system could not be read.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl ApplyError {
    /// A guard refuses until the desired state or the workspace changes; a
    /// stale plan, a held lock or a failed read may pass on the next try.
    pub fn is_transient(&self) -> bool {
        match self {
            ApplyError::Blocked(_)
            | ApplyError::DeletesNotAllowed(_)
            | ApplyError::TooManyDeletes { .. }
            | ApplyError::NotOwned(_) => false,
            ApplyError::Stale(_) => true,
            ApplyError::State(e) => e.is_transient(),
            ApplyError::Backend(e) => e.is_transient(),
        }
    }
}

/// Applies a saved plan: checks the guards, takes the lock, refuses a stale
/// plan, applies the changes in order and records the outcome. The lock is
/// released on every path.
pub async fn apply(
    plan: &Plan,
    target: &Target,
    opts: &ApplyOptions,
) -> Result<Outcome, ApplyError> {
    check_guards(plan, opts.allow_delete)?;
    let lock = target.state.lock(&opts.holder, opts.lock_wait).await?;
    let result = apply_locked(plan, target, lock.as_ref(), opts).await;
    release(lock).await;
    result
}

/// Releases the lock; a failure only delays the next apply until the lease expires.
pub async fn release(lock: Box<dyn Lock>) {
    if let Err(e) = lock.release().await {
        tracing::warn!(
            "could not release the apply lock (it expires with its lease): {}",
            crate::diag::chain(&e)
        );
    }
}

/// Counted from the changes themselves, which are what runs, not from the
/// plan's summary. A destroy plan's deletes were confirmed by the
/// environment's name: the delete guards do not bound them (protected
/// namespaces are kept out of it when it is planned).
fn check_guards(plan: &Plan, allow_delete: bool) -> Result<(), ApplyError> {
    let s = Summary::of(&plan.changes);
    if s.blocked > 0 {
        return Err(ApplyError::Blocked(s.blocked));
    }
    if plan.destroy {
        return Ok(());
    }
    if s.delete > 0 && !(allow_delete || plan.guards.allow_delete) {
        return Err(ApplyError::DeletesNotAllowed(s.delete));
    }
    if s.delete > plan.guards.max_deletes as usize {
        return Err(ApplyError::TooManyDeletes {
            count: s.delete,
            max: plan.guards.max_deletes,
        });
    }
    Ok(())
}

/// Applies a plan under a lock the caller holds (and releases): checks the
/// guards, refuses the plan when anything it read moved, then applies.
pub async fn apply_locked(
    plan: &Plan,
    target: &Target,
    lock: &dyn Lock,
    opts: &ApplyOptions,
) -> Result<Outcome, ApplyError> {
    check_guards(plan, opts.allow_delete)?;
    let scope: Option<BTreeSet<String>> = plan.scope.as_ref().map(|s| s.iter().cloned().collect());
    let stored = load_for(plan, scope.as_ref(), target).await?;
    check_owned(plan, &stored.inventory)?;
    let stale = moved_since(plan, target, stored.revision_of(scope.as_ref())).await?;
    if !stale.is_empty() {
        return Err(ApplyError::Stale(stale));
    }

    let fence = lock.fence();
    let mut record = AppliedRecord {
        operation: if plan.destroy {
            Operation::Destroy
        } else {
            Operation::Apply
        },
        status: ApplyStatus::Applying,
        commit: plan.revision.clone(),
        plan_digest: plan.digest(),
        time: now(),
        started: Some(now()),
        user: opts.holder.user.clone(),
        applied: 0,
        failed: 0,
        planned: plan.changes.len(),
        done: BTreeMap::new(),
        last: None,
        lock: fence.revision,
        errors: Vec::new(),
        forgotten: Vec::new(),
    };
    // What was saved last: each save writes the namespaces that differ from
    // it. An older sluice's layout is rewritten whole.
    let mut saved = if stored.legacy {
        Inventory::default()
    } else {
        stored.inventory.clone()
    };
    let mut inventory = stored.inventory;
    inventory.entries.extend(plan.adopt.clone());
    for address in &plan.forget {
        inventory.entries.remove(address);
    }
    let projected = projected(&inventory, plan);
    lock.fits(&projected)?;
    let sizes = namespace_sizes(&projected);
    lock.record(&record).await?;
    let batches = batches(&plan.changes, opts.batch.max(1));
    opts.progress.start(&plan.changes, batches.len());
    let mut outcome = Outcome::default();
    let started = Instant::now();
    let mut last_save = Instant::now();
    for (i, batch) in batches.iter().enumerate() {
        if opts.cancel.requested() {
            outcome.interrupted = true;
            break;
        }
        // The lease may go between saves: nothing more is sent once it has.
        if !fence.is_held() {
            return Err(StateError::FenceLost(plan.environment.clone()).into());
        }
        // Write-ahead: a create of several steps is recorded just before it
        // is sent, so that a crash half-way leaves a resource the next apply
        // knows as its own.
        if record_intents(batch, &mut inventory) {
            record_progress(&mut record, &outcome);
            save(lock, &mut saved, &inventory, &record).await?;
        }
        let before = (outcome.applied.len(), outcome.failed.len());
        apply_batch(batch, target, &fence, &mut inventory, &mut outcome)
            .await
            .map_err(|e| match e {
                BackendError::FenceLost => StateError::FenceLost(plan.environment.clone()).into(),
                e => ApplyError::from(e),
            })?;
        // What landed is recorded before anything more is sent, so that a
        // crash leaves a record of it (saves of large namespaces wait a
        // little; a re-run adopts what landed since).
        if small_save(&saved, &inventory, &sizes) || last_save.elapsed() >= PROGRESS_EVERY {
            record_progress(&mut record, &outcome);
            save(lock, &mut saved, &inventory, &record).await?;
            last_save = Instant::now();
        }
        opts.progress.step(&Step {
            number: i + 1,
            batches: batches.len(),
            kind: batch[0].address.kind(),
            action: batch[0].action,
            applied: outcome.applied.len() - before.0,
            failed: outcome.failed.len() - before.1,
            done: &outcome.done,
            total: plan.changes.len(),
            elapsed: started.elapsed(),
        });
        if !outcome.failed.is_empty() {
            break;
        }
    }
    outcome.not_attempted = plan.changes.len() - outcome.applied.len() - outcome.failed.len();
    record_progress(&mut record, &outcome);
    record.status = outcome.status();
    record.errors = outcome
        .failed
        .iter()
        .take(20)
        .map(|(a, e)| format!("{a}: {e}"))
        .collect();
    save(lock, &mut saved, &inventory, &record).await?;
    outcome.elapsed = started.elapsed();
    Ok(outcome)
}

/// Brings the record up to what `outcome` says was done.
fn record_progress(record: &mut AppliedRecord, outcome: &Outcome) {
    record.applied = outcome.applied.len();
    record.failed = outcome.failed.len();
    record.done.clone_from(&outcome.done);
    record.last = outcome.applied.last().cloned();
    record.time = now();
}

/// How many resources each namespace records.
fn namespace_sizes(inventory: &Inventory) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for e in inventory.entries.values() {
        *out.entry(e.namespace.clone()).or_default() += 1;
    }
    out
}

/// Whether a save now writes little: the namespaces changed since the
/// last save hold at most [`SAVE_EVERY_BATCH_UP_TO`] resources together.
fn small_save(saved: &Inventory, now: &Inventory, sizes: &BTreeMap<String, usize>) -> bool {
    let written: usize = saved
        .changed_namespaces(now)
        .iter()
        .map(|ns| sizes.get(ns).copied().unwrap_or(0))
        .sum();
    written <= SAVE_EVERY_BATCH_UP_TO
}

/// sluice's state of the plan's `scope`; of every namespace when the plan
/// changes what the scope's namespaces do not record (a resource handed
/// over from outside the scope), which needs its entry.
async fn load_for(
    plan: &Plan,
    scope: Option<&BTreeSet<String>>,
    target: &Target,
) -> Result<Stored, StateError> {
    let stored = target.state.load(scope).await?;
    // What exists and the scope does not record may be recorded elsewhere:
    // read whole, the namespace it leaves is written without it.
    let recorded = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::Create)
        .map(|c| &c.address)
        .chain(plan.adopt.keys())
        .all(|a| stored.inventory.entries.contains_key(a));
    if recorded || stored.namespaces.is_none() {
        return Ok(stored);
    }
    target.state.load(None).await
}

/// The inventory once every change of `plan` is made.
fn projected(inventory: &Inventory, plan: &Plan) -> Inventory {
    let mut out = inventory.clone();
    for c in &plan.changes {
        match (&c.action, &c.inventory) {
            (Action::Delete, _) => {
                out.entries.remove(&c.address);
            }
            (_, Some(entry)) => {
                out.entries.insert(c.address.clone(), entry.clone());
            }
            _ => {}
        }
    }
    out
}

/// Saves what changed since `saved`, which becomes what was saved.
async fn save(
    lock: &dyn Lock,
    saved: &mut Inventory,
    inventory: &Inventory,
    record: &AppliedRecord,
) -> Result<(), StateError> {
    lock.save(saved, inventory, record).await?;
    saved.clone_from(inventory);
    Ok(())
}

/// Records the intent of each create in `batch` that takes several requests
/// (a bucket and its settings); whether there was one. A create of one
/// request (a topic with its configs, an ACL, a record, a rule file) either
/// happens or not, and needs none.
fn record_intents(batch: &[&Change], inventory: &mut Inventory) -> bool {
    let mut any = false;
    for c in batch {
        if c.action == Action::Create
            && c.address.kind() == crate::resource::Kind::S3Bucket
            && let Some(entry) = &c.inventory
            && !inventory.entries.contains_key(&c.address)
        {
            inventory.entries.insert(c.address.clone(), entry.intent());
            any = true;
        }
    }
    any
}

/// Deletes and updates reach only what sluice's inventory holds: whatever a
/// plan says, a resource sluice did not create is never changed.
fn check_owned(plan: &Plan, inventory: &Inventory) -> Result<(), ApplyError> {
    let foreign: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| matches!(c.action, Action::Update | Action::Delete))
        .filter(|c| !inventory.entries.contains_key(&c.address))
        .map(|c| c.address.to_string())
        .collect();
    if foreign.is_empty() {
        Ok(())
    } else {
        Err(ApplyError::NotOwned(foreign))
    }
}

/// What moved since the plan was made: the inventory (another apply ran),
/// or any live resource whose fingerprint differs.
async fn moved_since(
    plan: &Plan,
    target: &Target,
    inventory_revision: i64,
) -> Result<Vec<String>, ApplyError> {
    let mut stale = Vec::new();
    if inventory_revision != plan.inventory_revision {
        stale.push("sluice's inventory (another apply ran)".to_owned());
    }
    let live = target
        .read(&plan.fingerprints.keys().cloned().collect())
        .await?;
    for (address, fingerprint) in &plan.fingerprints {
        let now = live
            .resources
            .get(address)
            .map_or(ABSENT, |l| l.fingerprint.as_str());
        if now != fingerprint {
            stale.push(address.to_string());
        }
    }
    Ok(stale)
}

/// Sends one batch to its system and records each result: applied changes
/// update the inventory, failed ones are kept with their error. A lost lock
/// is an error of its own: nothing more may be written.
async fn apply_batch(
    batch: &[&Change],
    target: &Target,
    fence: &Fence,
    inventory: &mut Inventory,
    outcome: &mut Outcome,
) -> Result<(), BackendError> {
    let system = batch[0].address.kind().system();
    let backend = target.backend(system).ok_or_else(|| BackendError::Read {
        system,
        message: "no backend is configured for it".into(),
    })?;
    let results = backend.apply(batch, fence).await;
    for (change, result) in batch.iter().zip(results) {
        count(
            outcome.done.entry(change.address.kind()).or_default(),
            change.action,
            result.is_ok(),
        );
        match result {
            Ok(()) => {
                match (change.action, &change.inventory) {
                    (Action::Delete, _) => {
                        inventory.entries.remove(&change.address);
                    }
                    (_, Some(entry)) => {
                        inventory
                            .entries
                            .insert(change.address.clone(), entry.clone());
                    }
                    (_, None) => {}
                }
                outcome.applied.push(change.address.clone());
            }
            Err(BackendError::FenceLost) => return Err(BackendError::FenceLost),
            Err(e) => outcome.failed.push((change.address.clone(), e.to_string())),
        }
    }
    Ok(())
}

/// Counts one change of `action`: applied, or failed.
fn count(tally: &mut Tally, action: Action, ok: bool) {
    let slot = match action {
        _ if !ok => &mut tally.failed,
        Action::Create => &mut tally.created,
        Action::Update => &mut tally.updated,
        Action::Delete => &mut tally.deleted,
        Action::Blocked => &mut tally.failed,
    };
    *slot += 1;
}

/// Consecutive changes of one kind and action, at most `size` at a time.
fn batches(changes: &[Change], size: usize) -> Vec<Vec<&Change>> {
    let mut out: Vec<Vec<&Change>> = Vec::new();
    for c in changes {
        match out.last_mut() {
            Some(batch)
                if batch.len() < size
                    && batch[0].action == c.action
                    && batch[0].address.kind() == c.address.kind() =>
            {
                batch.push(c);
            }
            _ => out.push(vec![c]),
        }
    }
    out
}
