//! The etcd records sluice writes for the data plane, and where they live:
//! one owner for their shape and key layout. Expansion writes them, import
//! and status read them back, and `schemas/records.schema.json` documents
//! them for the data plane (`sluice schema records`).
//!
//! | Key                          | Record             |
//! |------------------------------|--------------------|
//! | `<prefix>namespaces/<name>`  | [`RegistryRecord`] |
//! | `<prefix>grants/<name>`      | [`GrantsRecord`]   |
//! | `<prefix>alerts/<name>`      | [`AlertsRecord`]   |
//! | `<prefix>dr/<name>`          | [`DrRecord`]       |
//!
//! Read back (by import), a field a record leaves out takes its default, as
//! records written by hand or by an older sluice may.
//!
//! sluice's own state shares the prefix: `inventory/<env>/`, `applied/<env>`,
//! `locks/<env>`, `unlocked/<env>` and `leader/<env>` ([`state_key`]).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::config::Labels;
use crate::config::namespace::{Capacity, LockMode, Permission, Severity, Tier};
pub use crate::desired::PrincipalKind;

/// An etcd key under the environment's prefix.
pub fn etcd_key(prefix: &str, rest: &str) -> String {
    if prefix.ends_with('/') {
        format!("{prefix}{rest}")
    } else {
        format!("{prefix}/{rest}")
    }
}

/// A key of sluice's own state in an environment: `what` is `inventory`,
/// `applied`, `locks`, `unlocked` or `leader`.
pub fn state_key(prefix: &str, what: &str, env: &str) -> String {
    etcd_key(prefix, &format!("{what}/{env}"))
}

/// The records of one namespace, by the directory their key is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordKind {
    Registry,
    Grants,
    Alerts,
    Dr,
}

impl RecordKind {
    pub const ALL: [RecordKind; 4] = [
        RecordKind::Registry,
        RecordKind::Grants,
        RecordKind::Alerts,
        RecordKind::Dr,
    ];

    /// The directory under the prefix: `namespaces`, `grants`, `alerts`, `dr`.
    pub fn dir(self) -> &'static str {
        match self {
            RecordKind::Registry => "namespaces",
            RecordKind::Grants => "grants",
            RecordKind::Alerts => "alerts",
            RecordKind::Dr => "dr",
        }
    }

    /// The record's key for a namespace.
    pub fn key(self, prefix: &str, namespace: &str) -> String {
        etcd_key(prefix, &format!("{}/{namespace}", self.dir()))
    }

    /// The kind and namespace of a key relative to the prefix
    /// (`namespaces/orders`); `None` for sluice's own state and other keys.
    pub fn parse(rest: &str) -> Option<(RecordKind, &str)> {
        let (dir, ns) = rest.split_once('/')?;
        let kind = RecordKind::ALL.into_iter().find(|k| k.dir() == dir)?;
        (!ns.is_empty() && !ns.contains('/')).then_some((kind, ns))
    }
}

/// The registry record the data plane reads: the namespace's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RegistryRecord {
    pub name: String,
    pub owner: Option<String>,
    #[serde(default)]
    pub tier: Tier,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub protected: bool,
    pub capacity: Option<Capacity>,
    /// Milliseconds; `-1` keeps messages forever.
    pub retention_ms: Option<i64>,
    pub cache: Option<CacheRecord>,
    pub connection_pool_size: Option<u32>,
    /// In declared order. Partition counts and replication stay Kafka's to
    /// tell: a derived count is only a floor, and the live topic may have more.
    #[serde(default)]
    pub topics: Vec<TopicRecord>,
    #[serde(default)]
    pub consumers: Vec<ConsumerRecord>,
    /// Always `sluice`.
    #[serde(default)]
    pub managed_by: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CacheRecord {
    pub enabled: bool,
    pub ttl_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TopicRecord {
    pub name: String,
    /// For a dead-letter topic, the topic it serves.
    pub dlq_of: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConsumerRecord {
    pub group: String,
    pub max_lag: Option<u64>,
}

/// Who may do what with the namespace's topics and groups.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GrantsRecord {
    pub namespace: String,
    #[serde(default)]
    pub grants: Vec<GrantRecord>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GrantRecord {
    pub kind: PrincipalKind,
    pub principal: String,
    pub permissions: Vec<Permission>,
}

/// The namespace's alerts, with the PromQL each compiled to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AlertsRecord {
    pub namespace: String,
    #[serde(default)]
    pub alerts: Vec<AlertRecord>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AlertRecord {
    pub name: String,
    /// As written in the YAML.
    pub condition: String,
    /// The PromQL expression of the rule.
    pub expr: String,
    pub for_ms: Option<u64>,
    pub severity: Severity,
    pub labels: Labels,
    pub annotations: Labels,
}

/// The namespace's disaster-recovery policy, resolved.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DrRecord {
    pub namespace: String,
    pub rpo_ms: Option<u64>,
    pub rto_ms: Option<u64>,
    pub backup: Option<BackupRecord>,
    pub replication: Option<ReplicationRecord>,
    pub pitr_window_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BackupRecord {
    pub bucket: String,
    pub prefix: String,
    /// A cron schedule.
    pub schedule: Option<String>,
    pub retain_ms: Option<u64>,
    #[serde(default)]
    pub incremental: bool,
    pub object_lock: Option<ObjectLockRecord>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ObjectLockRecord {
    pub mode: LockMode,
    pub days: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ReplicationRecord {
    pub bucket: String,
    pub region: String,
    pub read_only: bool,
}

/// Any record sluice writes under its prefix: one of the four shapes.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)] // only its schema is used
pub enum EtcdRecord {
    Registry(RegistryRecord),
    Grants(GrantsRecord),
    Alerts(AlertsRecord),
    Dr(DrRecord),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_laid_out_under_the_prefix_and_read_back() {
        assert_eq!(
            RecordKind::Registry.key("/sluice/", "orders"),
            "/sluice/namespaces/orders"
        );
        assert_eq!(RecordKind::Dr.key("/x", "orders"), "/x/dr/orders");
        assert_eq!(
            RecordKind::parse("grants/orders"),
            Some((RecordKind::Grants, "orders"))
        );
        assert_eq!(RecordKind::parse("inventory/prod/0"), None);
        assert_eq!(RecordKind::parse("applied/prod"), None);
        assert_eq!(state_key("/sluice/", "locks", "prod"), "/sluice/locks/prod");
    }
}
