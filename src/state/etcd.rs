//! sluice's state in etcd: inventory shards, the applied record and the lease
//! lock, every write fenced by the lock.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse};
use serde::{Deserialize, Serialize};

use super::lease::Lease;
use super::{
    AppliedRecord, Fence, Holder, Inventory, InventoryEntry, Lock, StateError, StateStore, Stored,
};
use crate::records::state_key;
use crate::resource::{Address, digest};

/// Seconds the lock outlives a crashed holder.
pub const LOCK_TTL_SECS: u64 = 10;
/// The inventory is split into this many keys, so that no value nears etcd's
/// request size limit on large estates.
const SHARDS: usize = 16;
/// Bytes written per transaction, under etcd's default request limit (1.5 MiB).
const TXN_BYTES: usize = 1 << 20;

/// The keys of one environment's state.
#[derive(Clone, Debug)]
pub struct StateKeys {
    pub inventory: String,
    pub applied: String,
    pub lock: String,
}

impl StateKeys {
    pub fn new(prefix: &str, env: &str) -> Self {
        StateKeys {
            inventory: format!("{}/", state_key(prefix, "inventory", env)),
            applied: state_key(prefix, "applied", env),
            lock: state_key(prefix, "locks", env),
        }
    }

    fn shard(&self, n: usize) -> String {
        format!("{}{n:x}", self.inventory)
    }
}

/// The value of one inventory shard.
#[derive(Default, Serialize, Deserialize)]
struct Shard {
    format_version: u32,
    entries: BTreeMap<Address, InventoryEntry>,
}

fn shard_of(address: &Address) -> usize {
    usize::from_str_radix(&digest(address.to_string().as_bytes())[..1], 16).unwrap_or(0) % SHARDS
}

fn unreachable(e: etcd_client::Error) -> StateError {
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

#[async_trait]
impl StateStore for EtcdState {
    async fn load(&self) -> Result<Stored, StateError> {
        let txn = Txn::new().and_then([
            TxnOp::get(
                self.keys.inventory.as_str(),
                Some(GetOptions::new().with_prefix()),
            ),
            TxnOp::get(self.keys.applied.as_str(), None),
        ]);
        let resp = self.client.clone().txn(txn).await.map_err(unreachable)?;
        let mut stored = Stored::default();
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
                if i == 0 {
                    let shard: Shard = serde_json::from_slice(kv.value()).map_err(corrupt)?;
                    stored.inventory.entries.extend(shard.entries);
                    stored.inventory_revision = stored.inventory_revision.max(kv.mod_revision());
                } else {
                    stored.applied = Some(serde_json::from_slice(kv.value()).map_err(corrupt)?);
                }
            }
        }
        Ok(stored)
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
                    .map_or_else(|| "another process".to_owned(), |h| h.to_string());
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
        if !self.fence.is_held() {
            return Err(StateError::FenceLost(self.env.clone()));
        }
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.fence.key.as_str(),
                CompareOp::Equal,
                self.fence.revision,
            )])
            .and_then(ops);
        let resp = self.client.clone().txn(txn).await.map_err(unreachable)?;
        if resp.succeeded() {
            Ok(())
        } else {
            Err(StateError::FenceLost(self.env.clone()))
        }
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

    async fn record(&self, applied: &AppliedRecord) -> Result<(), StateError> {
        let value = serde_json::to_vec(applied).expect("a record is JSON");
        self.fenced(vec![TxnOp::put(self.keys.applied.as_str(), value, None)])
            .await
    }

    async fn save(&self, inventory: &Inventory, applied: &AppliedRecord) -> Result<(), StateError> {
        let mut shards: Vec<Shard> = (0..SHARDS)
            .map(|_| Shard {
                format_version: 1,
                ..Shard::default()
            })
            .collect();
        for (address, entry) in &inventory.entries {
            shards[shard_of(address)]
                .entries
                .insert(address.clone(), entry.clone());
        }
        let mut puts: Vec<(String, Vec<u8>)> = shards
            .iter()
            .enumerate()
            .map(|(n, s)| {
                (
                    self.keys.shard(n),
                    serde_json::to_vec(s).expect("a shard is JSON"),
                )
            })
            .collect();
        puts.push((
            self.keys.applied.clone(),
            serde_json::to_vec(applied).expect("a record is JSON"),
        ));
        // One transaction, unless the inventory outgrows etcd's request limit;
        // then several, each fenced, the applied record in the last.
        let mut txn = Vec::new();
        let mut bytes = 0;
        for (key, value) in puts {
            if !txn.is_empty() && bytes + value.len() > TXN_BYTES {
                self.fenced(std::mem::take(&mut txn)).await?;
                bytes = 0;
            }
            bytes += key.len() + value.len();
            txn.push(TxnOp::put(key, value, None));
        }
        self.fenced(txn).await
    }

    async fn release(self: Box<Self>) -> Result<(), StateError> {
        // Revoking the lease deletes the lock key with it.
        self.lease.revoke().await.map_err(unreachable)
    }
}
