//! sluice's own state, kept in etcd (there is no local state file):
//!
//! - the inventory of what sluice manages, with the digest of what it last
//!   applied and the protected flag, one key per namespace under
//!   `<prefix>inventory/<env>/ns/`, so that a scoped plan reads only its
//!   own; a resource about to be created is recorded first, as `creating`;
//! - the applied record (commit, plan digest, time, user, outcome) at
//!   `<prefix>applied/<env>`, written in the same transaction as the inventory;
//! - a lease-based apply lock per environment at `<prefix>locks/<env>`;
//! - the record of the last forced unlock at `<prefix>unlocked/<env>`;
//! - the source index under `<prefix>index/<env>/` (see [`index`]).

pub mod drills;
pub mod etcd;
pub mod index;
pub mod lease;
pub mod memory;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::resource::{Address, Kind, Resource, Value};
pub use index::SourceIndex;

/// What sluice manages in one environment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    pub entries: BTreeMap<Address, InventoryEntry>,
}

impl Inventory {
    /// The namespaces whose entries differ between `self` and `after`.
    pub fn changed_namespaces(&self, after: &Inventory) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (address, entry) in &self.entries {
            if after.entries.get(address) != Some(entry) {
                out.insert(entry.namespace.clone());
            }
        }
        for (address, entry) in &after.entries {
            if self.entries.get(address) != Some(entry) {
                out.insert(entry.namespace.clone());
            }
        }
        out
    }

    /// The entries of each of `namespaces`, grouped (an empty group for a
    /// namespace with none left).
    pub fn by_namespace(
        &self,
        namespaces: &BTreeSet<String>,
    ) -> BTreeMap<String, BTreeMap<Address, InventoryEntry>> {
        let mut out: BTreeMap<String, BTreeMap<Address, InventoryEntry>> = namespaces
            .iter()
            .map(|n| (n.clone(), BTreeMap::new()))
            .collect();
        for (address, entry) in &self.entries {
            if let Some(group) = out.get_mut(&entry.namespace) {
                group.insert(address.clone(), entry.clone());
            }
        }
        out
    }
}

/// One managed resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct InventoryEntry {
    pub namespace: String,
    /// Digest of the desired value sluice last applied.
    pub digest: String,
    /// Protection is remembered, so that deleting the YAML does not lift it.
    pub protected: bool,
    /// For topics: the config keys sluice set, so that a key removed from the
    /// YAML is reset on the topic rather than forgotten.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// Written before sluice creates the resource and cleared once the
    /// create is recorded: a crash in between leaves a half-made resource
    /// that the next apply knows as its own and finishes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub creating: bool,
}

impl InventoryEntry {
    pub fn of(resource: &Resource) -> Self {
        let keys = match &resource.value {
            Value::Topic(t) => t.config.keys().cloned().collect(),
            _ => Vec::new(),
        };
        InventoryEntry {
            namespace: resource.namespace.clone(),
            digest: resource.value.digest(),
            protected: resource.protected,
            keys,
            creating: false,
        }
    }

    /// The write-ahead intent of creating this entry's resource: owned, but
    /// with no applied digest, so whatever exists is converged to the YAML.
    pub fn intent(&self) -> Self {
        InventoryEntry {
            digest: String::new(),
            creating: true,
            ..self.clone()
        }
    }
}

/// How the last apply ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyStatus {
    /// Started and not yet recorded as ended, and its lock is still held:
    /// it is running now.
    Applying,
    /// Recorded as applying, but the lock it held is gone: its process
    /// stopped (`kill -9`, a crash, a lost lease) before recording an end.
    /// Never written: [`Stored::settle`] reads an `applying` record so.
    Unfinished,
    Complete,
    Failed,
    Interrupted,
}

/// What wrote an applied record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// `apply`, or the watcher's remediation: a plan's changes.
    #[default]
    Apply,
    /// `sluice destroy`: every resource of the inventory deleted, except
    /// those of protected namespaces.
    Destroy,
    /// `sluice forget`: inventory entries dropped; nothing live changed.
    Forget,
}

impl ApplyStatus {
    /// As people read it: `complete`, `did not finish`…
    pub fn describe(self) -> &'static str {
        match self {
            ApplyStatus::Applying => "in progress",
            ApplyStatus::Unfinished => {
                "did not finish (its process stopped without recording an end: killed or crashed)"
            }
            ApplyStatus::Complete => "complete",
            ApplyStatus::Failed => "failed",
            ApplyStatus::Interrupted => "was interrupted",
        }
    }
}

/// Changes of one kind applied, by action, and those that failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub created: usize,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub updated: usize,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub deleted: usize,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Tally {
    /// The sum of `tallies`.
    pub fn total<'a>(tallies: impl IntoIterator<Item = &'a Tally>) -> Tally {
        let mut sum = Tally::default();
        for t in tallies {
            sum.created += t.created;
            sum.updated += t.updated;
            sum.deleted += t.deleted;
            sum.failed += t.failed;
        }
        sum
    }

    /// Changes applied (failures left out).
    pub fn applied(&self) -> usize {
        self.created + self.updated + self.deleted
    }
}

/// The record of the last apply in an environment: written as it starts,
/// after its batches, and as it ends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AppliedRecord {
    /// What wrote it (a record of an older sluice: an apply).
    #[serde(default)]
    pub operation: Operation,
    pub status: ApplyStatus,
    /// The Git commit the plan was made from, when it was made from Git.
    pub commit: Option<String>,
    pub plan_digest: String,
    /// When it was last recorded (its end, once it ended), RFC 3339, UTC.
    pub time: String,
    /// When it started, RFC 3339, UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    pub user: String,
    pub applied: usize,
    pub failed: usize,
    /// The changes of the plan, applied or not.
    #[serde(default)]
    pub planned: usize,
    /// What was applied, per kind (`kafka.topic`): what a crashed apply
    /// left, as its inventory records it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub done: BTreeMap<Kind, Tally>,
    /// The last change applied: changes run in plan order, so an apply
    /// that stopped got this far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Address>,
    /// The create revision of the lock it held: while that lock is held,
    /// an `applying` record is an apply running now.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub lock: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// The addresses `sluice forget` dropped from the inventory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forgotten: Vec<String>,
}

/// The record of the last `sluice unlock --force` in an environment: who
/// removed whose lock, and when.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnlockRecord {
    /// Who ran `unlock --force`.
    pub by: Holder,
    /// RFC 3339, UTC.
    pub time: String,
    /// Whose lock it removed, as the lock said (`None`: unreadable).
    pub holder: Option<Holder>,
    /// Seconds its lease had left (`None`: it was on no lease).
    pub lease_ttl_s: Option<i64>,
}

fn is_zero_i64(n: &i64) -> bool {
    *n == 0
}

/// Who holds the apply lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub user: String,
    pub host: String,
    pub pid: u32,
    /// RFC 3339, UTC.
    pub since: String,
}

impl Holder {
    /// This process: `$SLUICE_ACTOR` (CI sets it to the actor), else
    /// `$USER`, else the name of the process's uid (containers and CI
    /// often set no `$USER`), else `uid <n>`.
    pub fn current() -> Self {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        Holder {
            user: var("SLUICE_ACTOR")
                .or_else(|| var("USER"))
                .unwrap_or_else(uid_name),
            host: var("HOSTNAME")
                .or_else(|| {
                    std::fs::read_to_string("/proc/sys/kernel/hostname")
                        .ok()
                        .map(|h| h.trim().to_owned())
                })
                .unwrap_or_else(|| "unknown".into()),
            pid: std::process::id(),
            since: now(),
        }
    }
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{} (pid {}) since {}",
            self.user, self.host, self.pid, self.since
        )
    }
}

/// The name `/etc/passwd` gives this process's real uid, else `uid <n>`,
/// else `unknown`.
fn uid_name() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let Some(uid) = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
    else {
        return "unknown".into();
    };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    user_of(&passwd, uid).unwrap_or_else(|| format!("uid {uid}"))
}

/// The user of `uid` in a passwd file's text.
fn user_of(passwd: &str, uid: &str) -> Option<String> {
    passwd.lines().find_map(|l| {
        let mut fields = l.split(':');
        let name = fields.next()?;
        (fields.nth(1)? == uid && !name.is_empty()).then(|| name.to_owned())
    })
}

/// The current time, RFC 3339 in UTC, to the second.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// The state of an environment as read at one moment.
#[derive(Clone, Debug, Default)]
pub struct Stored {
    /// Every entry of the namespaces read, each namespace whole.
    pub inventory: Inventory,
    /// The namespaces read; every one when `None`.
    pub namespaces: Option<BTreeSet<String>>,
    /// Per namespace, the revision its entries were last written at.
    pub revisions: BTreeMap<String, i64>,
    /// A revision every namespace shares (a store that keeps one for all,
    /// or the inventory of an older sluice, before it is rewritten).
    pub shared_revision: i64,
    /// Read from the layout of an older sluice (shards by address): the
    /// next save writes every namespace, and removes the shards.
    pub legacy: bool,
    pub applied: Option<AppliedRecord>,
    /// The create revision of the apply lock, when it is held (and not by
    /// a process known to be gone: one of this host that no longer runs).
    pub lock: Option<i64>,
    /// The last forced unlock.
    pub unlocked: Option<UnlockRecord>,
}

impl Stored {
    /// The revision of the inventory of `scope` (all of it when `None`):
    /// it changes whenever an apply writes an entry of it, and a plan
    /// records it, so that only an apply of the same namespaces makes the
    /// plan stale.
    pub fn revision_of(&self, scope: Option<&BTreeSet<String>>) -> i64 {
        let own = self
            .revisions
            .iter()
            .filter(|(ns, _)| scope.is_none_or(|s| s.contains(*ns)))
            .map(|(_, r)| *r)
            .max()
            .unwrap_or(0);
        own.max(self.shared_revision)
    }

    /// Reads an `applying` record whose lock is no longer held (or is
    /// held again, by another apply) as [`ApplyStatus::Unfinished`].
    pub fn settle(mut self) -> Self {
        if let Some(a) = &mut self.applied
            && a.status == ApplyStatus::Applying
            && self.lock != Some(a.lock)
        {
            a.status = ApplyStatus::Unfinished;
        }
        self
    }

    /// Whether every namespace of `scope` was read.
    pub fn covers(&self, scope: &BTreeSet<String>) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|read| read.is_superset(scope))
    }
}

/// Proof of holding the lock, checked by every etcd write of an apply (in
/// the transaction) and by every Kafka and S3 write (before it is sent).
#[derive(Clone, Debug)]
pub struct Fence {
    pub key: String,
    /// The lock key's create revision: unique to this holding of the lock.
    pub revision: i64,
    /// Turns when the lock's lease is lost.
    pub held: lease::Held,
}

impl Fence {
    /// Whether the lock is still held, as far as the keep-alive knows.
    pub fn is_held(&self) -> bool {
        self.held.is_held()
    }
}

/// Why sluice's own state could not be read, locked or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Another apply holds the lock.
    #[error("the apply lock of environment `{env}` is held by {holder}")]
    Locked { env: String, holder: String },
    /// The lock expired or was taken over while applying.
    #[error(
        "the apply lock of environment `{0}` was lost (its lease expired or was revoked); nothing more is written"
    )]
    FenceLost(String),
    /// `unlock`: the lock changed between reading and removing it.
    #[error(
        "the apply lock of environment `{0}` changed since it was read (released, expired, or taken again); nothing was removed"
    )]
    LockMoved(String),
    /// `unlock --force` removed the lock, and could not record it.
    #[error(
        "the apply lock of environment `{env}` was removed, but recording who removed it failed"
    )]
    UnlockNotRecorded {
        env: String,
        #[source]
        source: etcd_client::Error,
    },
    /// etcd did not answer or refused.
    #[error("cannot reach sluice's state in etcd: {}", etcd::readable(.0))]
    Unreachable(etcd_client::Error),
    /// A namespace's inventory would outgrow what one etcd request holds.
    #[error(
        "namespace `{namespace}` would record {entries} resources ({bytes} bytes), more than one etcd request holds ({limit} bytes); nothing was changed"
    )]
    TooLarge {
        namespace: String,
        entries: usize,
        bytes: usize,
        limit: usize,
    },
    /// A state record does not parse.
    #[error("sluice's state record `{key}` is not readable")]
    Corrupt {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

impl StateError {
    /// A held or lost lock and an unreachable etcd pass; a record that does
    /// not read stays unreadable until someone repairs it.
    pub fn is_transient(&self) -> bool {
        !matches!(
            self,
            StateError::Corrupt { .. } | StateError::TooLarge { .. }
        )
    }
}

/// Where an environment's state lives.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Reads the inventory of the namespaces in `scope` (every namespace
    /// when `None`; a store may read more), the applied record and who
    /// holds the lock, in one round trip; the record [`Stored::settle`]d.
    async fn load(&self, scope: Option<&BTreeSet<String>>) -> Result<Stored, StateError>;
    /// The last restore drill of each namespace that had one (none, for a
    /// store that keeps no drills).
    async fn drills(&self) -> Result<drills::Drills, StateError> {
        Ok(drills::Drills::new())
    }
    /// Of the namespace files the source index holds, the blobs that
    /// declare one of `words`: none when the index is not of the files
    /// whose digest is `digest` (not written, being rewritten, or of other
    /// files), or the store keeps no index.
    async fn index_lookup(
        &self,
        _digest: &str,
        _words: &BTreeSet<String>,
    ) -> Result<Option<BTreeSet<String>>, StateError> {
        Ok(None)
    }
    /// Takes the apply lock, waiting up to `wait` for another holder; fails
    /// naming the holder after that.
    async fn lock(&self, holder: &Holder, wait: Duration) -> Result<Box<dyn Lock>, StateError>;
}

/// A held apply lock. Writes through it fail once it is lost.
#[async_trait]
pub trait Lock: Send + Sync {
    fn fence(&self) -> Fence;
    /// Whether `inventory` can be saved: checked before anything is
    /// changed, so that a save never fails after the changes are made.
    fn fits(&self, _inventory: &Inventory) -> Result<(), StateError> {
        Ok(())
    }
    /// Writes the applied record alone (as an apply starts).
    async fn record(&self, applied: &AppliedRecord) -> Result<(), StateError>;
    /// Writes the inventory and the applied record: of the inventory, the
    /// namespaces whose entries differ between `before` (what was read or
    /// last saved) and `after`, each whole from `after`. One transaction,
    /// unless that outgrows etcd's limits; then several, the applied
    /// record in the last.
    async fn save(
        &self,
        before: &Inventory,
        after: &Inventory,
        applied: &AppliedRecord,
    ) -> Result<(), StateError>;
    /// Makes the source index that of `index`'s files: a reader meanwhile
    /// finds none.
    async fn save_index(&self, _index: &SourceIndex) -> Result<(), StateError> {
        Ok(())
    }
    async fn release(self: Box<Self>) -> Result<(), StateError>;
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_actor_without_user_is_the_uids_name() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nci:x:1001:1001::/home/ci:/bin/sh\n";
        assert_eq!(super::user_of(passwd, "1001").as_deref(), Some("ci"));
        assert_eq!(super::user_of(passwd, "0").as_deref(), Some("root"));
        assert_eq!(super::user_of(passwd, "42"), None);
        // This process has a uid; its name or number is never "unknown".
        assert_ne!(super::uid_name(), "unknown");
    }
}
