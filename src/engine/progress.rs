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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::config::workspace::Guards;
    use crate::engine::apply::{ApplyOptions, apply};
    use crate::engine::tests::{holder, options, plan, record, topic, world};
    use crate::state::memory::MemoryState;
    use crate::state::{ApplyStatus, StateStore};

    /// What the state held as each batch was reported: (batch, of, the record).
    #[derive(Default)]
    struct Steps {
        state: MemoryState,
        seen: std::sync::Mutex<Vec<(usize, usize, crate::state::AppliedRecord)>>,
    }

    impl super::Progress for Steps {
        fn start(&self, _: &[crate::plan::Change], _: usize) {}
        fn step(&self, step: &super::Step<'_>) {
            let record = self.state.snapshot().applied.unwrap();
            let mut seen = self.seen.lock().unwrap();
            seen.push((step.number, step.batches, record));
        }
    }

    #[tokio::test]
    async fn each_batch_is_recorded_before_it_is_reported_and_the_next_is_sent() {
        let w = world();
        let desired = [topic("a", 1), topic("b", 1), record("a")];
        let p = plan(&w, &desired, &Guards::default()).await.unwrap().plan;
        let steps = Arc::new(Steps {
            state: w.state.clone(),
            ..Steps::default()
        });
        let opts = ApplyOptions {
            batch: 1,
            progress: steps.clone(),
            ..options(false)
        };
        let outcome = apply(&p, &w.target, &opts).await.unwrap();
        let seen = steps.seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        for (i, (number, of, record)) in seen.iter().enumerate() {
            assert_eq!((*number, *of), (i + 1, 3));
            assert_eq!(record.status, ApplyStatus::Applying);
            assert_eq!((record.applied, record.planned), (i + 1, 3));
            assert_eq!(record.last.as_ref(), Some(&outcome.applied[i]));
        }
        // The topics' batches recorded them in the inventory as they landed.
        assert_eq!(
            seen[1].2.done[&crate::resource::Kind::KafkaTopic].created,
            2
        );
        let last = w.state.snapshot().applied.unwrap();
        assert_eq!((last.status, last.applied), (ApplyStatus::Complete, 3));
        assert_eq!(last.done[&crate::resource::Kind::EtcdKey].created, 1);
        assert_eq!(outcome.done, last.done);
    }

    #[tokio::test]
    async fn an_applying_record_reads_as_unfinished_once_its_lock_is_gone() {
        let w = world();
        let lock = w
            .target
            .state
            .lock(&holder(), Duration::ZERO)
            .await
            .unwrap();
        // An apply that dies after its first save leaves `applying` behind.
        let mut record = crate::state::AppliedRecord {
            operation: crate::state::Operation::Apply,
            status: ApplyStatus::Applying,
            commit: None,
            plan_digest: "d".into(),
            time: crate::state::now(),
            started: None,
            user: "tests".into(),
            applied: 0,
            failed: 0,
            planned: 1,
            done: BTreeMap::new(),
            last: None,
            lock: lock.fence().revision,
            errors: Vec::new(),
            forgotten: Vec::new(),
        };
        lock.record(&record).await.unwrap();
        let status = |stored: crate::state::Stored| stored.applied.unwrap().status;
        assert_eq!(
            status(w.state.load(None).await.unwrap()),
            ApplyStatus::Applying
        );
        drop(lock); // killed: its lock lapses, never released
        w.state.clear_lock();
        assert_eq!(
            status(w.state.load(None).await.unwrap()),
            ApplyStatus::Unfinished
        );
        // Another apply holding the lock does not make it running again.
        let other = w
            .target
            .state
            .lock(&holder(), Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            status(w.state.load(None).await.unwrap()),
            ApplyStatus::Unfinished
        );
        record.lock = other.fence().revision;
        other.record(&record).await.unwrap();
        assert_eq!(
            status(w.state.load(None).await.unwrap()),
            ApplyStatus::Applying
        );
    }
}
