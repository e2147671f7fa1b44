//! The drill records in etcd: one per namespace, the last drill's outcome,
//! under `<prefix>drills/<env>/<namespace>`. `dr drill` and the watcher write
//! them; `status`, DR compliance and `dr report` read them ([`last_drills`]).

use std::collections::BTreeMap;

use etcd_client::{Client, Compare, GetOptions, Txn, TxnOp};
use serde::{Deserialize, Serialize};

use super::{Fence, StateError};
use crate::records::state_key;

/// The outcome of one restore drill of a namespace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DrillRecord {
    pub namespace: String,
    /// The backup run restored (the newest of its chain).
    pub run: String,
    /// RFC 3339.
    pub started_at: String,
    pub finished_at: String,
    pub passed: bool,
    /// Measured: from the start to a verified restore (or to the failure).
    pub rto_ms: u64,
    /// The namespace's `rto`, when it declares one.
    pub rto_target_ms: Option<u64>,
    /// At the drill's start: how old the restored data was (now minus the
    /// moment the newest backup run read the high watermarks).
    pub data_age_ms: u64,
    /// The namespace's `rpo`, when it declares one.
    pub rpo_ms: Option<u64>,
    /// Records written and counted against the manifests (0 when the
    /// restore failed before its count).
    pub records: u64,
    /// Why the drill failed; `None` when it passed.
    pub failure: Option<String>,
}

/// The directory of an environment's drill records.
pub fn drills_dir(prefix: &str, env: &str) -> String {
    format!("{}/", state_key(prefix, "drills", env))
}

/// The key of a namespace's last drill.
pub fn drill_key(prefix: &str, env: &str, namespace: &str) -> String {
    format!("{}{namespace}", drills_dir(prefix, env))
}

/// Writes `record` as the namespace's last drill; with a `fence`, only while
/// that lock is held.
pub async fn save(
    client: &Client,
    prefix: &str,
    env: &str,
    record: &DrillRecord,
    fence: Option<&Fence>,
) -> Result<(), StateError> {
    let key = drill_key(prefix, env, &record.namespace);
    let value = serde_json::to_string(record).expect("a drill record is JSON");
    let compares: Vec<Compare> = fence.map(super::etcd::fence_compare).into_iter().collect();
    let txn = Txn::new()
        .when(compares)
        .and_then(vec![TxnOp::put(key, value, None)]);
    let resp = client
        .clone()
        .txn(txn)
        .await
        .map_err(super::etcd::unreachable)?;
    if resp.succeeded() {
        Ok(())
    } else {
        Err(StateError::FenceLost(env.to_owned()))
    }
}

/// The last drill of every namespace of `env` that had one, by namespace:
/// one range read.
pub async fn last_drills(
    client: &Client,
    prefix: &str,
    env: &str,
) -> Result<BTreeMap<String, DrillRecord>, StateError> {
    read_drills(client, &drills_dir(prefix, env)).await
}

/// The drill records under `dir`, by namespace.
pub(crate) async fn read_drills(
    client: &Client,
    dir: &str,
) -> Result<BTreeMap<String, DrillRecord>, StateError> {
    let resp = client
        .clone()
        .get(dir, Some(GetOptions::new().with_prefix()))
        .await
        .map_err(super::etcd::unreachable)?;
    let mut out = BTreeMap::new();
    for kv in resp.kvs() {
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        let record: DrillRecord =
            serde_json::from_slice(kv.value()).map_err(|source| StateError::Corrupt {
                key: key.clone(),
                source,
            })?;
        out.insert(record.namespace.clone(), record);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn drill_keys_sit_beside_the_state_of_their_environment() {
        assert_eq!(
            super::drill_key("/sluice/", "prod", "orders"),
            "/sluice/drills/prod/orders"
        );
        assert_eq!(super::drills_dir("/x", "dev"), "/x/drills/dev/");
    }
}
