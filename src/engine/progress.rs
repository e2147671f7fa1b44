//! What an apply reports as it goes. The engine prints nothing: it calls a
//! [`Progress`] after each batch, and the command that runs it renders the
//! reports (a bar on a terminal, a line per batch in CI logs).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::plan::{Action, Change};
use crate::resource::Kind;
use crate::state::Tally;

/// One batch done: sent, its results counted and recorded.
#[derive(Clone, Debug)]
pub struct Step<'a> {
    /// 1-based, of `batches`.
    pub number: usize,
    pub batches: usize,
    pub kind: Kind,
    pub action: Action,
    /// Of this batch.
    pub applied: usize,
    pub failed: usize,
    /// Since the apply started, per kind.
    pub done: &'a BTreeMap<Kind, Tally>,
    /// Changes of the plan.
    pub total: usize,
    /// Since the first batch started.
    pub elapsed: Duration,
}

/// Receives an apply's reports, in order, from the task that applies.
pub trait Progress: Send + Sync {
    /// Before the first batch: the changes to make, in `batches` batches.
    fn start(&self, changes: &[Change], batches: usize);
    /// After each batch.
    fn step(&self, step: &Step<'_>);
}

/// Reports nowhere: the watcher logs its outcome instead.
pub struct Silent;

impl Progress for Silent {
    fn start(&self, _: &[Change], _: usize) {}
    fn step(&self, _: &Step<'_>) {}
}
