//! `sluice unlock`: the apply lock as it is, and its forced removal.

use etcd_client::{Compare, CompareOp, Txn, TxnOp};

use super::{EtcdState, gone, unreachable};
use crate::state::{Holder, StateError, UnlockRecord, now};

/// The apply lock, as `unlock` finds it.
#[derive(Clone, Debug)]
pub struct LockInfo {
    /// Who holds it, as its key says (`None`: the key does not read as a holder).
    pub holder: Option<Holder>,
    /// The lock key's create revision: this holding of the lock.
    pub revision: i64,
    /// The lease it lives on (0: none).
    pub lease: i64,
    /// Seconds its lease has left (`None`: on no lease, or one that expired).
    pub ttl_s: Option<i64>,
}

impl LockInfo {
    /// Whether the lock lives on a lease that has not expired: its holder
    /// renews it while it runs.
    pub fn is_live(&self) -> bool {
        self.ttl_s.is_some_and(|t| t > 0)
    }

    /// The holder as people read it, and whether its process is gone when
    /// it ran on `host`.
    pub fn describe(&self, host: &str) -> String {
        match &self.holder {
            Some(h) => format!("{h}{}", gone(h, host)),
            None => "a holder sluice cannot read".to_owned(),
        }
    }
}

impl EtcdState {
    /// The apply lock now, if it is held.
    pub async fn lock_info(&self) -> Result<Option<LockInfo>, StateError> {
        let mut client = self.client.clone();
        let got = client
            .get(self.keys.lock.as_str(), None)
            .await
            .map_err(unreachable)?;
        let Some(kv) = got.kvs().first() else {
            return Ok(None);
        };
        let lease = kv.lease();
        let ttl_s = if lease == 0 {
            None
        } else {
            let ttl = client
                .lease_time_to_live(lease, None)
                .await
                .map_err(unreachable)?
                .ttl();
            (ttl > 0).then_some(ttl)
        };
        Ok(Some(LockInfo {
            holder: serde_json::from_slice(kv.value()).ok(),
            revision: kv.create_revision(),
            lease,
            ttl_s,
        }))
    }

    /// Removes the lock `info` describes, and records that `by` did. Its
    /// lease is revoked rather than its key deleted: the holder's keep-alive
    /// then learns at its next renewal that the lock is gone, and it stops
    /// writing to Kafka and S3 too, not only to etcd. A lock that changed
    /// since `info` was read (released, or taken again) is left alone.
    pub async fn break_lock(
        &self,
        info: &LockInfo,
        by: &Holder,
    ) -> Result<UnlockRecord, StateError> {
        let mut client = self.client.clone();
        let moved = || StateError::LockMoved(self.env.clone());
        if info.lease == 0 {
            let txn = Txn::new()
                .when([Compare::create_revision(
                    self.keys.lock.as_str(),
                    CompareOp::Equal,
                    info.revision,
                )])
                .and_then([TxnOp::delete(self.keys.lock.as_str(), None)]);
            if !client.txn(txn).await.map_err(unreachable)?.succeeded() {
                return Err(moved());
            }
        } else if let Err(e) = client.lease_revoke(info.lease).await {
            // A lease id is never reused: gone means that holding ended.
            return Err(if e.to_string().contains("not found") {
                moved()
            } else {
                unreachable(e)
            });
        }
        let record = UnlockRecord {
            by: by.clone(),
            time: now(),
            holder: info.holder.clone(),
            lease_ttl_s: info.ttl_s,
        };
        let value = serde_json::to_vec(&record).expect("a record is JSON");
        client
            .put(self.keys.unlocked.as_str(), value, None)
            .await
            .map_err(|e| StateError::UnlockNotRecorded {
                env: self.env.clone(),
                source: e,
            })?;
        Ok(record)
    }
}
