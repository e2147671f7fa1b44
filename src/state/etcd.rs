//! sluice's state in etcd: the inventory (a key per namespace), the applied
//! record and the lease lock, every write fenced by the lock.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse,
};
use serde::{Deserialize, Serialize};

mod index;
mod unlock;

pub use unlock::LockInfo;

use super::drills::Drills;
use super::lease::Lease;
use super::{
    AppliedRecord, Fence, Holder, Inventory, InventoryEntry, Lock, SourceIndex, StateError,
    StateStore, Stored,
};
use crate::records::state_key;
use crate::resource::Address;

/// Seconds the lock outlives a crashed holder.
pub const LOCK_TTL_SECS: u64 = 10;
/// Bytes written per transaction, under etcd's default request limit (1.5 MiB).
const TXN_BYTES: usize = 1 << 20;
/// Operations per transaction, under etcd's default `--max-txn-ops` (128).
const TXN_OPS: usize = 120;
/// Up to this many namespaces are read key by key; more, and the whole
/// inventory is read in one range.
const SCOPED_READ: usize = 100;
/// Bytes of one namespace's inventory key at most: with the applied record,
/// one transaction under etcd's default request limit.
const NAMESPACE_BYTES: usize = TXN_BYTES - (64 << 10);
/// The value format of a namespace's inventory key.
const FORMAT_VERSION: u32 = 2;

/// The keys of one environment's state.
#[derive(Clone, Debug)]
pub struct StateKeys {
    pub inventory: String,
    pub applied: String,
    pub lock: String,
    /// The record of the last forced unlock.
    pub unlocked: String,
    /// The directory of the last drill of each namespace.
    pub drills: String,
    /// The directory of the source index.
    pub index: String,
}

impl StateKeys {
    pub fn new(prefix: &str, env: &str) -> Self {
        StateKeys {
            inventory: format!("{}/", state_key(prefix, "inventory", env)),
            applied: state_key(prefix, "applied", env),
            lock: state_key(prefix, "locks", env),
            unlocked: state_key(prefix, "unlocked", env),
            drills: super::drills::drills_dir(prefix, env),
            index: format!("{}/", state_key(prefix, "index", env)),
        }
    }

    /// The inventory of one namespace.
    fn namespace(&self, namespace: &str) -> String {
        format!("{}ns/{namespace}", self.inventory)
    }

    /// What starts every namespace's key.
    fn namespaces(&self) -> String {
        format!("{}ns/", self.inventory)
    }

    /// The range of an older sluice's 16 shards, `0` to `f` (`ns/` is after it).
    fn legacy(&self) -> (String, String) {
        (
            format!("{}0", self.inventory),
            format!("{}g", self.inventory),
        )
    }
}

/// The value of a namespace's inventory key (and of an older sluice's shards).
#[derive(Default, Serialize, Deserialize)]
struct Shard {
    format_version: u32,
    entries: BTreeMap<Address, InventoryEntry>,
}

/// Whether the lock's holder ran on this host (`host`) and its process is gone.
fn dead_here(holder: &Holder, host: &str) -> bool {
    holder.host == host && !std::path::Path::new(&format!("/proc/{}", holder.pid)).exists()
}

/// What to add when the lock's holder ran on this host (`host`) and its
/// process is gone: its lease lapses within the TTL of its last renewal.
fn gone(holder: &Holder, host: &str) -> String {
    if dead_here(holder, host) {
        format!(
            "; that process is no longer running on this host, and its lock lapses within {LOCK_TTL_SECS} s of its last renewal"
        )
    } else {
        String::new()
    }
}

/// Whether each namespace's key of `inventory` holds at most `limit` bytes.
fn fits_in(inventory: &Inventory, limit: usize) -> Result<(), StateError> {
    let all: BTreeSet<String> = inventory
        .entries
        .values()
        .map(|e| e.namespace.clone())
        .collect();
    for (namespace, entries) in inventory.by_namespace(&all) {
        let count = entries.len();
        let bytes = shard_value(entries).len();
        if bytes > limit {
            return Err(StateError::TooLarge {
                namespace,
                entries: count,
                bytes,
                limit,
            });
        }
    }
    Ok(())
}

/// The value of a namespace's key.
fn shard_value(entries: BTreeMap<Address, InventoryEntry>) -> Vec<u8> {
    let shard = Shard {
        format_version: FORMAT_VERSION,
        entries,
    };
    serde_json::to_vec(&shard).expect("a shard is JSON")
}

/// An etcd client error as people read it. A gRPC status prints as a
/// debug dump (`code: '…', message: "…", source: tonic::transport::Error(…)`);
/// this is its message and the causes under it, each once.
pub fn readable(e: &etcd_client::Error) -> String {
    let etcd_client::Error::GRpcStatus(status) = e else {
        return crate::diag::chain(e);
    };
    let mut parts = vec![status.message().to_owned()];
    let mut cause = std::error::Error::source(status);
    while let Some(c) = cause {
        let text = c.to_string();
        // tonic's own wrapper says nothing the causes around it do not.
        if text != "transport error" && !parts.contains(&text) {
            parts.push(text);
        }
        cause = c.source();
    }
    parts.retain(|p| !p.is_empty());
    parts.join(": ")
}

pub(crate) fn unreachable(e: etcd_client::Error) -> StateError {
    StateError::Unreachable(e)
}

/// An environment's state in etcd.
#[derive(Clone)]
pub struct EtcdState {
    client: Client,
    env: String,
    keys: StateKeys,
}

impl EtcdState {
    pub fn new(client: Client, prefix: &str, env: &str) -> Self {
        EtcdState {
            client,
            env: env.to_owned(),
            keys: StateKeys::new(prefix, env),
        }
    }
}

impl EtcdState {
    /// The applied record, the lock, the last forced unlock, an older sluice's shards, and the
    /// namespaces of `scope` (every one when `None`), in one transaction.
    async fn read(&self, scope: Option<&BTreeSet<String>>) -> Result<Stored, StateError> {
        let (start, end) = self.keys.legacy();
        let mut ops = vec![
            TxnOp::get(self.keys.applied.as_str(), None),
            // Whether the apply an `applying` record names still runs.
            TxnOp::get(self.keys.lock.as_str(), None),
            TxnOp::get(self.keys.unlocked.as_str(), None),
            TxnOp::get(start, Some(GetOptions::new().with_range(end))),
        ];
        match scope {
            Some(scope) => ops.extend(
                scope
                    .iter()
                    .map(|ns| TxnOp::get(self.keys.namespace(ns), None)),
            ),
            None => ops.push(TxnOp::get(
                self.keys.namespaces(),
                Some(GetOptions::new().with_prefix()),
            )),
        }
        let resp = self
            .client
            .clone()
            .txn(Txn::new().and_then(ops))
            .await
            .map_err(unreachable)?;
        let mut stored = Stored {
            namespaces: scope.cloned(),
            ..Stored::default()
        };
        let mut shards: Vec<(i64, Option<String>, Shard)> = Vec::new();
        for (i, op) in resp.op_responses().into_iter().enumerate() {
            let TxnOpResponse::Get(get) = op else {
                continue;
            };
            for kv in get.kvs() {
                let key = String::from_utf8_lossy(kv.key()).into_owned();
                let corrupt = |source: serde_json::Error| StateError::Corrupt {
                    key: key.clone(),
                    source,
                };
                match i {
                    0 => {
                        stored.applied = Some(serde_json::from_slice(kv.value()).map_err(corrupt)?);
                        continue;
                    }
                    1 => {
                        // A lock whose process is gone from this host holds
                        // nothing up, though its lease has yet to lapse.
                        let holder: Option<Holder> = serde_json::from_slice(kv.value()).ok();
                        let here = Holder::current().host;
                        if !holder.is_some_and(|h| dead_here(&h, &here)) {
                            stored.lock = Some(kv.create_revision());
                        }
                        continue;
                    }
                    2 => {
                        stored.unlocked =
                            Some(serde_json::from_slice(kv.value()).map_err(corrupt)?);
                        continue;
                    }
                    _ => {}
                }
                let shard: Shard = serde_json::from_slice(kv.value()).map_err(corrupt)?;
                let namespace = key.strip_prefix(&self.keys.namespaces()).map(str::to_owned);
                shards.push((kv.mod_revision(), namespace, shard));
            }
        }
        merge(&mut stored, shards);
        Ok(stored.settle())
    }
}

/// The inventory keys read, each with its mod revision and its namespace
/// (none for an older sluice's shards), into `stored`. Of an address
/// recorded twice (a resource handed over while the namespace it left was
/// not read), the later write wins. A namespace with a key of its own is
/// what that key says: an older sluice's shards still hold what a
/// migration cut short removed from it.
fn merge(stored: &mut Stored, mut shards: Vec<(i64, Option<String>, Shard)>) {
    shards.sort_by_key(|(revision, ..)| *revision);
    let own: BTreeSet<String> = shards.iter().filter_map(|(_, ns, _)| ns.clone()).collect();
    for (revision, namespace, shard) in shards {
        match namespace {
            Some(ns) => {
                stored.revisions.insert(ns, revision);
                stored.inventory.entries.extend(shard.entries);
            }
            None => {
                stored.legacy = true;
                stored.shared_revision = stored.shared_revision.max(revision);
                stored.inventory.entries.extend(
                    shard
                        .entries
                        .into_iter()
                        .filter(|(_, e)| !own.contains(&e.namespace)),
                );
            }
        }
    }
}

#[async_trait]
impl StateStore for EtcdState {
    async fn load(&self, scope: Option<&BTreeSet<String>>) -> Result<Stored, StateError> {
        let scoped = scope.filter(|s| s.len() <= SCOPED_READ);
        let stored = self.read(scoped).await?;
        // An older sluice's shards hold every namespace mixed: read them whole.
        if stored.legacy && scoped.is_some() {
            return self.read(None).await;
        }
        Ok(stored)
    }

    async fn drills(&self) -> Result<Drills, StateError> {
        super::drills::read_drills(&self.client, &self.keys.drills).await
    }

    async fn index_lookup(
        &self,
        digest: &str,
        words: &BTreeSet<String>,
    ) -> Result<Option<BTreeSet<String>>, StateError> {
        index::lookup(&self.client, &self.keys, digest, words).await
    }

    async fn lock(&self, holder: &Holder, wait: Duration) -> Result<Box<dyn Lock>, StateError> {
        let mut client = self.client.clone();
        // Kept alive from the start: waiting for another holder may outlast the TTL.
        let lease = Lease::grant(client.clone(), Duration::from_secs(LOCK_TTL_SECS))
            .await
            .map_err(unreachable)?;
        let value = serde_json::to_string(holder).expect("a holder is JSON");
        let started = Instant::now();
        loop {
            let txn = Txn::new()
                .when([Compare::create_revision(
                    self.keys.lock.as_str(),
                    CompareOp::Equal,
                    0,
                )])
                .and_then([TxnOp::put(
                    self.keys.lock.as_str(),
                    value.as_str(),
                    Some(PutOptions::new().with_lease(lease.id())),
                )])
                .or_else([TxnOp::get(self.keys.lock.as_str(), None)]);
            let resp = match client.txn(txn).await {
                Ok(resp) => resp,
                Err(e) => {
                    let _ = lease.revoke().await;
                    return Err(unreachable(e));
                }
            };
            if resp.succeeded() {
                let revision = resp.header().map_or(0, |h| h.revision());
                return Ok(Box::new(EtcdLock {
                    client: client.clone(),
                    env: self.env.clone(),
                    keys: self.keys.clone(),
                    fence: Fence {
                        key: self.keys.lock.clone(),
                        revision,
                        held: lease.held(),
                    },
                    lease,
                }));
            }
            if started.elapsed() >= wait {
                let current = resp.op_responses().into_iter().find_map(|op| match op {
                    TxnOpResponse::Get(g) => g.kvs().first().map(|kv| kv.value().to_vec()),
                    _ => None,
                });
                let holder = current
                    .and_then(|v| serde_json::from_slice::<Holder>(&v).ok())
                    .map_or_else(
                        || "another process".to_owned(),
                        |h| format!("{h}{}", gone(&h, &Holder::current().host)),
                    );
                let _ = lease.revoke().await;
                return Err(StateError::Locked {
                    env: self.env.clone(),
                    holder,
                });
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

struct EtcdLock {
    client: Client,
    env: String,
    keys: StateKeys,
    fence: Fence,
    lease: Lease,
}

impl EtcdLock {
    async fn fenced(&self, ops: Vec<TxnOp>) -> Result<(), StateError> {
        fenced_txn(&self.client, &self.env, Some(&self.fence), ops).await
    }
}

/// Runs `ops` in one transaction; with a `fence`, only while that lock is
/// held (checked first as far as its keep-alive knows, then by etcd).
pub(crate) async fn fenced_txn(
    client: &Client,
    env: &str,
    fence: Option<&Fence>,
    ops: Vec<TxnOp>,
) -> Result<(), StateError> {
    if fence.is_some_and(|f| !f.is_held()) {
        return Err(StateError::FenceLost(env.to_owned()));
    }
    let compares: Vec<Compare> = fence.map(fence_compare).into_iter().collect();
    let txn = Txn::new().when(compares).and_then(ops);
    let resp = client.clone().txn(txn).await.map_err(unreachable)?;
    if resp.succeeded() {
        Ok(())
    } else {
        Err(StateError::FenceLost(env.to_owned()))
    }
}

/// A compare that holds only while this apply holds the lock.
pub fn fence_compare(fence: &Fence) -> Compare {
    Compare::create_revision(fence.key.as_str(), CompareOp::Equal, fence.revision)
}

#[async_trait]
impl Lock for EtcdLock {
    fn fence(&self) -> Fence {
        self.fence.clone()
    }

    fn fits(&self, inventory: &Inventory) -> Result<(), StateError> {
        fits_in(inventory, NAMESPACE_BYTES)
    }

    async fn record(&self, applied: &AppliedRecord) -> Result<(), StateError> {
        let value = serde_json::to_vec(applied).expect("a record is JSON");
        self.fenced(vec![TxnOp::put(self.keys.applied.as_str(), value, None)])
            .await
    }

    async fn save(
        &self,
        before: &Inventory,
        after: &Inventory,
        applied: &AppliedRecord,
    ) -> Result<(), StateError> {
        let changed = before.changed_namespaces(after);
        let mut groups: Vec<(String, BTreeMap<Address, InventoryEntry>)> =
            after.by_namespace(&changed).into_iter().collect();
        // A namespace an entry moves into is written before the one it
        // leaves: a save cut short between transactions then leaves it
        // recorded twice (the later write wins), never nowhere.
        let gains = |ns: &str, entries: &BTreeMap<Address, InventoryEntry>| {
            entries
                .keys()
                .any(|a| before.entries.get(a).is_none_or(|e| e.namespace != ns))
        };
        groups.sort_by_key(|(ns, entries)| !gains(ns, entries));
        let mut puts: Vec<(String, Vec<u8>)> = groups
            .into_iter()
            .map(|(ns, entries)| (self.keys.namespace(&ns), shard_value(entries)))
            .collect();
        puts.push((
            self.keys.applied.clone(),
            serde_json::to_vec(applied).expect("a record is JSON"),
        ));
        // One transaction, unless it outgrows etcd's limits; then several,
        // each fenced, the applied record in the last, with the removal of
        // an older sluice's shards (a no-op once they are gone).
        let mut txn = Vec::new();
        let mut bytes = 0;
        for (key, value) in puts {
            if !txn.is_empty() && (bytes + value.len() > TXN_BYTES || txn.len() >= TXN_OPS) {
                self.fenced(std::mem::take(&mut txn)).await?;
                bytes = 0;
            }
            bytes += key.len() + value.len();
            txn.push(TxnOp::put(key, value, None));
        }
        let (start, end) = self.keys.legacy();
        txn.push(TxnOp::delete(
            start,
            Some(DeleteOptions::new().with_range(end)),
        ));
        self.fenced(txn).await
    }

    async fn save_index(&self, index: &SourceIndex) -> Result<(), StateError> {
        index::save(self, index).await
    }

    async fn release(self: Box<Self>) -> Result<(), StateError> {
        // Revoking the lease deletes the lock key with it.
        self.lease.revoke().await.map_err(unreachable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(namespace: &str) -> InventoryEntry {
        InventoryEntry {
            namespace: namespace.into(),
            digest: "d".into(),
            protected: false,
            keys: Vec::new(),
            creating: false,
        }
    }

    fn shard(entries: &[(&str, &str)]) -> Shard {
        Shard {
            format_version: FORMAT_VERSION,
            entries: entries
                .iter()
                .map(|(topic, ns)| (Address::topic(topic), entry(ns)))
                .collect(),
        }
    }

    #[test]
    fn a_namespace_key_wins_over_the_older_shards_and_the_later_write_over_the_earlier() {
        let mut stored = Stored::default();
        merge(
            &mut stored,
            vec![
                // `x` moved from `a` to `b`; `b` was written last.
                (9, Some("b".into()), shard(&[("x", "b")])),
                (7, Some("a".into()), shard(&[("x", "a"), ("y", "a")])),
                // The shards still hold `z`, which `a` no longer records,
                // and `w` of `c`, which has no key of its own yet.
                (3, None, shard(&[("z", "a"), ("w", "c")])),
            ],
        );
        let owner = |t: &str| {
            stored.inventory.entries[&Address::topic(t)]
                .namespace
                .clone()
        };
        assert_eq!(owner("x"), "b");
        assert_eq!(owner("y"), "a");
        assert_eq!(owner("w"), "c");
        assert!(!stored.inventory.entries.contains_key(&Address::topic("z")));
        assert!(stored.legacy);
        assert_eq!(stored.revision_of(Some(&["a".to_owned()].into())), 7);
    }

    #[test]
    fn a_lock_held_by_a_dead_process_on_this_host_says_so() {
        let me = Holder::current();
        assert_eq!(gone(&me, &me.host), "");
        let dead = Holder {
            pid: u32::MAX,
            ..me.clone()
        };
        assert!(gone(&dead, &me.host).contains("no longer running"));
        assert_eq!(gone(&dead, "elsewhere"), "");
    }

    #[test]
    fn a_namespace_too_large_for_one_request_is_refused_before_anything_changes() {
        let mut inventory = Inventory::default();
        for i in 0..100 {
            inventory
                .entries
                .insert(Address::topic(&format!("t{i}")), entry("big"));
        }
        inventory
            .entries
            .insert(Address::topic("s"), entry("small"));
        assert!(fits_in(&inventory, 1 << 20).is_ok());
        match fits_in(&inventory, 2000) {
            Err(StateError::TooLarge {
                namespace, entries, ..
            }) => {
                assert_eq!((namespace.as_str(), entries), ("big", 100));
            }
            other => panic!("{other:?}"),
        }
    }
}
