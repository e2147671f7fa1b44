//! The drill records in etcd: one per namespace, the last drill's outcome,
//! under `<prefix>drills/<env>/<namespace>`. `dr drill` and the watcher write
//! them; `status`, DR compliance and `dr report` read them ([`read_drills`]).

use std::collections::BTreeMap;

use etcd_client::{Client, GetOptions, TxnOp};
use serde::{Deserialize, Serialize};

use super::etcd::fenced_txn;
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

/// The last restore drill of each namespace that had one, by namespace; a
/// record that does not parse is said, and does not hide the others.
pub type Drills = BTreeMap<String, Result<DrillRecord, String>>;

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
    fenced_txn(client, env, fence, vec![TxnOp::put(key, value, None)]).await
}

/// The key listing the scratch topics a drill of the namespace creates:
/// written before it creates them, deleted once they are gone. A drill whose
/// process was killed leaves it, for the next drill to delete them.
fn scratch_key(prefix: &str, env: &str, namespace: &str) -> String {
    format!("{}/{namespace}", state_key(prefix, "drill-scratch", env))
}

/// Where a drill of one namespace lists its scratch topics while they
/// exist ([`scratch_key`]), written only under the lock `fence` proves.
pub struct ScratchList<'a> {
    client: &'a Client,
    env: &'a str,
    key: String,
    pub fence: &'a Fence,
}

impl<'a> ScratchList<'a> {
    pub fn new(
        client: &'a Client,
        prefix: &str,
        env: &'a str,
        namespace: &str,
        fence: &'a Fence,
    ) -> Self {
        ScratchList {
            client,
            env,
            key: scratch_key(prefix, env, namespace),
            fence,
        }
    }

    /// Lists `topics` as the scratch topics, or (with none) says they are
    /// gone.
    pub async fn mark(&self, topics: &[String]) -> Result<(), StateError> {
        let op = if topics.is_empty() {
            TxnOp::delete(self.key.as_str(), None)
        } else {
            let value = serde_json::to_string(topics).expect("topic names are JSON");
            TxnOp::put(self.key.as_str(), value, None)
        };
        fenced_txn(self.client, self.env, Some(self.fence), vec![op]).await
    }

    /// The scratch topics a drill listed and did not see deleted (none,
    /// when the last drill cleaned up).
    pub async fn left(&self) -> Result<Vec<String>, StateError> {
        let resp = self
            .client
            .clone()
            .get(self.key.as_str(), None)
            .await
            .map_err(super::etcd::unreachable)?;
        match resp.kvs().first() {
            Some(kv) => serde_json::from_slice(kv.value()).map_err(|source| StateError::Corrupt {
                key: self.key.clone(),
                source,
            }),
            None => Ok(Vec::new()),
        }
    }
}

/// The drill records under `dir`, by namespace.
pub(crate) async fn read_drills(client: &Client, dir: &str) -> Result<Drills, StateError> {
    let resp = client
        .clone()
        .get(dir, Some(GetOptions::new().with_prefix()))
        .await
        .map_err(super::etcd::unreachable)?;
    Ok(resp
        .kvs()
        .iter()
        .map(|kv| {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let namespace = key.strip_prefix(dir).unwrap_or(&key).to_owned();
            let record = parse(&key, &namespace, kv.value());
            (namespace, record)
        })
        .collect())
}

/// The drill record at `key`, or why it cannot be read, and what to do.
fn parse(key: &str, namespace: &str, value: &[u8]) -> Result<DrillRecord, String> {
    serde_json::from_slice(value).map_err(|e| {
        format!(
            "its drill record `{key}` in etcd cannot be read ({e}); the next `sluice dr drill {namespace}` writes a new one"
        )
    })
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
        let bad = super::parse("/x/drills/dev/orders", "orders", b"{\"namespace\":");
        assert_eq!(
            bad.unwrap_err(),
            "its drill record `/x/drills/dev/orders` in etcd cannot be read (EOF while parsing a value at line 1 column 13); the next `sluice dr drill orders` writes a new one"
        );
    }
}
