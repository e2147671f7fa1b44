//! State in memory, for unit tests of the engine.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{
    AppliedRecord, Fence, Holder, Inventory, Lock, SourceIndex, StateError, StateStore, Stored,
};

#[derive(Debug, Default)]
struct Inner {
    stored: Stored,
    holder: Option<(Holder, i64)>,
    next_revision: i64,
    index: Option<SourceIndex>,
}

/// An environment's state held in memory; clones share it.
#[derive(Clone, Debug, Default)]
pub struct MemoryState {
    env: String,
    inner: Arc<Mutex<Inner>>,
}

impl MemoryState {
    pub fn new(env: &str, inventory: Inventory) -> Self {
        let state = MemoryState {
            env: env.to_owned(),
            inner: Arc::default(),
        };
        state.inner.lock().unwrap().stored.inventory = inventory;
        state
    }

    pub fn snapshot(&self) -> Stored {
        self.inner.lock().unwrap().stored.clone()
    }

    /// Lets the lock lapse, as a lease does after its holder dies.
    pub fn clear_lock(&self) {
        self.inner.lock().unwrap().holder = None;
    }
}

#[async_trait]
impl StateStore for MemoryState {
    /// Everything, whatever the scope; one revision for all namespaces.
    async fn load(&self, _scope: Option<&BTreeSet<String>>) -> Result<Stored, StateError> {
        let inner = self.inner.lock().unwrap();
        let stored = Stored {
            lock: inner.holder.as_ref().map(|(_, revision)| *revision),
            ..inner.stored.clone()
        };
        Ok(stored.settle())
    }

    async fn index_lookup(
        &self,
        digest: &str,
        words: &BTreeSet<String>,
    ) -> Result<Option<BTreeSet<String>>, StateError> {
        let inner = self.inner.lock().unwrap();
        Ok(inner
            .index
            .as_ref()
            .filter(|i| i.digest == digest)
            .map(|i| i.naming(words)))
    }

    async fn lock(&self, holder: &Holder, _wait: Duration) -> Result<Box<dyn Lock>, StateError> {
        let mut inner = self.inner.lock().unwrap();
        if let Some((h, _)) = &inner.holder {
            return Err(StateError::Locked {
                env: self.env.clone(),
                holder: h.to_string(),
            });
        }
        inner.next_revision += 1;
        let revision = inner.next_revision;
        inner.holder = Some((holder.clone(), revision));
        Ok(Box::new(MemoryLock {
            state: self.clone(),
            revision,
        }))
    }
}

struct MemoryLock {
    state: MemoryState,
    revision: i64,
}

impl MemoryLock {
    fn held(&self, inner: &Inner) -> Result<(), StateError> {
        match &inner.holder {
            Some((_, r)) if *r == self.revision => Ok(()),
            _ => Err(StateError::FenceLost(self.state.env.clone())),
        }
    }
}

#[async_trait]
impl Lock for MemoryLock {
    fn fence(&self) -> Fence {
        Fence {
            key: format!("memory/{}", self.state.env),
            revision: self.revision,
            held: Default::default(),
        }
    }

    async fn record(&self, applied: &AppliedRecord) -> Result<(), StateError> {
        let mut inner = self.state.inner.lock().unwrap();
        self.held(&inner)?;
        inner.stored.applied = Some(applied.clone());
        Ok(())
    }

    async fn save(
        &self,
        before: &Inventory,
        after: &Inventory,
        applied: &AppliedRecord,
    ) -> Result<(), StateError> {
        let mut inner = self.state.inner.lock().unwrap();
        self.held(&inner)?;
        let entries = &mut inner.stored.inventory.entries;
        for address in before.entries.keys() {
            if !after.entries.contains_key(address) {
                entries.remove(address);
            }
        }
        for (address, entry) in &after.entries {
            if before.entries.get(address) != Some(entry) {
                entries.insert(address.clone(), entry.clone());
            }
        }
        inner.stored.shared_revision += 1;
        inner.stored.applied = Some(applied.clone());
        Ok(())
    }

    async fn save_index(&self, index: &SourceIndex) -> Result<(), StateError> {
        let mut inner = self.state.inner.lock().unwrap();
        self.held(&inner)?;
        inner.index = Some(index.clone());
        Ok(())
    }

    async fn release(self: Box<Self>) -> Result<(), StateError> {
        let mut inner = self.state.inner.lock().unwrap();
        if self.held(&inner).is_ok() {
            inner.holder = None;
        }
        Ok(())
    }
}
