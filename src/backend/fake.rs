//! An in-memory live system for unit tests: it holds resources by address,
//! can lack APIs or fail its reads, and records every call.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use super::{Backend, BackendError, BackupCatalog, ClusterProbe, PartitionLag};
use crate::plan::{Action, Api, Change, Field, LiveResource, LiveState};
use crate::resource::{Address, System, Value};
use crate::state::Fence;

#[derive(Debug, Default)]
struct Inner {
    resources: BTreeMap<Address, Value>,
    unsupported: BTreeSet<Api>,
    fail_reads: bool,
    /// Fail applying these addresses.
    refuse: BTreeSet<Address>,
    calls: Vec<String>,
}

/// A fake live system; clones share their state.
#[derive(Clone, Debug)]
pub struct FakeBackend {
    system: System,
    inner: Arc<Mutex<Inner>>,
}

impl FakeBackend {
    pub fn new(system: System) -> Self {
        FakeBackend {
            system,
            inner: Arc::default(),
        }
    }

    /// A fake of another system over the same store and call log, so that
    /// tests see the order of calls across systems.
    pub fn sharing(&self, system: System) -> Self {
        FakeBackend {
            system,
            inner: self.inner.clone(),
        }
    }

    pub fn insert(&self, address: Address, value: Value) {
        self.inner.lock().unwrap().resources.insert(address, value);
    }

    pub fn remove(&self, address: &Address) {
        self.inner.lock().unwrap().resources.remove(address);
    }

    pub fn set_unsupported(&self, apis: impl IntoIterator<Item = Api>) {
        self.inner.lock().unwrap().unsupported = apis.into_iter().collect();
    }

    pub fn fail_reads(&self, fail: bool) {
        self.inner.lock().unwrap().fail_reads = fail;
    }

    pub fn refuse(&self, address: Address) {
        self.inner.lock().unwrap().refuse.insert(address);
    }

    pub fn clear_refusals(&self) {
        self.inner.lock().unwrap().refuse.clear();
    }

    pub fn resources(&self) -> BTreeMap<Address, Value> {
        self.inner.lock().unwrap().resources.clone()
    }

    /// `read N`, `create ADDRESS`, `update ADDRESS`, `delete ADDRESS`, in order.
    pub fn calls(&self) -> Vec<String> {
        self.inner.lock().unwrap().calls.clone()
    }
}

/// A topic update applied to the live value: partitions grow, config keys are
/// set or reset, as the real broker does.
fn updated(live: &Value, change: &Change) -> Option<Value> {
    match (live, change.desired.as_ref()?) {
        (Value::Topic(have), Value::Topic(want)) => {
            let mut t = have.clone();
            for f in &change.fields {
                match &f.field {
                    Field::Partitions => t.partitions = want.partitions,
                    Field::Config(key) => {
                        match f.after_text() {
                            Some(v) => t.config.insert(key.clone(), v),
                            None => t.config.remove(key),
                        };
                    }
                    _ => {}
                }
            }
            Some(Value::Topic(t))
        }
        (_, want) => Some(want.clone()),
    }
}

#[async_trait]
impl Backend for FakeBackend {
    fn system(&self) -> System {
        self.system
    }

    async fn read(&self, wanted: &[Address]) -> Result<LiveState, BackendError> {
        let mut inner = self.inner.lock().unwrap();
        inner
            .calls
            .push(format!("read {} {}", self.system, wanted.len()));
        if inner.fail_reads {
            return Err(BackendError::Read {
                system: self.system,
                message: "connection refused".into(),
            });
        }
        let resources = wanted
            .iter()
            .filter_map(|a| {
                inner.resources.get(a).map(|v| {
                    let live = LiveResource {
                        value: v.clone(),
                        fingerprint: v.digest(),
                    };
                    (a.clone(), live)
                })
            })
            .collect();
        Ok(LiveState {
            resources,
            unsupported: inner.unsupported.clone(),
        })
    }

    async fn apply(&self, changes: &[&Change], _fence: &Fence) -> Vec<Result<(), BackendError>> {
        let mut inner = self.inner.lock().unwrap();
        changes
            .iter()
            .map(|c| {
                let verb = format!("{:?}", c.action).to_lowercase();
                inner.calls.push(format!("{verb} {}", c.address));
                if inner.refuse.contains(&c.address) {
                    return Err(BackendError::Rejected(format!(
                        "{} refused by the fake",
                        c.address
                    )));
                }
                match c.action {
                    Action::Create => {
                        let value = c.desired.clone().expect("a create has a value");
                        inner.resources.insert(c.address.clone(), value);
                    }
                    Action::Update => {
                        let next = inner
                            .resources
                            .get(&c.address)
                            .and_then(|live| updated(live, c));
                        if let Some(v) = next {
                            inner.resources.insert(c.address.clone(), v);
                        }
                    }
                    Action::Delete => {
                        inner.resources.remove(&c.address);
                    }
                    Action::Blocked => {
                        return Err(BackendError::Rejected(
                            "a blocked change is never applied".into(),
                        ));
                    }
                }
                Ok(())
            })
            .collect()
    }
}

/// A fake backup store: the newest complete run of each `(bucket, dir)`.
#[derive(Clone, Debug, Default)]
pub struct FakeCatalog {
    newest: Arc<Mutex<BTreeMap<(String, String), i64>>>,
}

impl FakeCatalog {
    /// Records a backup written at `secs` since the epoch.
    pub fn backup(&self, bucket: &str, prefix: &str, secs: i64) {
        self.newest
            .lock()
            .unwrap()
            .insert((bucket.to_owned(), prefix.to_owned()), secs);
    }
}

#[async_trait]
impl BackupCatalog for FakeCatalog {
    async fn newest_backups(
        &self,
        bucket: &str,
        _region: &str,
        prefixes: &[&str],
    ) -> Result<Vec<Option<i64>>, BackendError> {
        let newest = self.newest.lock().unwrap();
        Ok(prefixes
            .iter()
            .map(|p| newest.get(&(bucket.to_owned(), (*p).to_owned())).copied())
            .collect())
    }

    async fn health(&self) -> Result<usize, String> {
        Ok(0)
    }
}

/// A fake cluster: its brokers, its ID, and the lag each group reports.
#[derive(Clone, Debug, Default)]
pub struct FakeCluster {
    pub brokers: Vec<String>,
    pub id: Option<String>,
    pub lag: BTreeMap<String, Vec<PartitionLag>>,
}

#[async_trait]
impl ClusterProbe for FakeCluster {
    async fn brokers(&self) -> Result<Vec<String>, String> {
        Ok(self.brokers.clone())
    }

    async fn cluster_id(&self) -> Option<String> {
        self.id.clone()
    }

    async fn consumer_lag(
        &self,
        groups: Vec<String>,
        _topics: Vec<(String, u32)>,
    ) -> Vec<Result<Vec<PartitionLag>, String>> {
        groups
            .iter()
            .map(|g| Ok(self.lag.get(g).cloned().unwrap_or_default()))
            .collect()
    }
}
