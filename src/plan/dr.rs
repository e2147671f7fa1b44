//! DR compliance of a plan: checks, not changes. The engine evaluates them
//! against the live state and the backup catalogue; the plan carries them.

use serde::{Deserialize, Serialize};

/// The DR state of one namespace, as `status` and the JSON outputs show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DrReport {
    pub namespace: String,
    /// `s3://bucket/<prefix><namespace>/`: where the namespace's runs are.
    pub backups: String,
    /// Seconds since the newest complete run (one with a manifest) started;
    /// `None` when there is none.
    pub backup_age_s: Option<u64>,
    pub rpo_s: Option<u64>,
    pub violations: Vec<Violation>,
}

/// One DR check a namespace fails.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Violation {
    pub check: Check,
    pub message: String,
}

/// The DR checks, as the JSON outputs name them.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// The newest backup is older than the RPO, or there is none.
    BackupAge,
    /// The backup or the replica bucket is missing or not versioned.
    Versioning,
    /// The replication rule is missing, disabled or points elsewhere.
    Replication,
    /// The replica has no read-only policy statement.
    ReplicaPolicy,
    /// The namespace's last restore drill failed.
    Drill,
}

impl Check {
    /// The name the JSON outputs use: `backup-age`, `versioning`,
    /// `replication`, `replica-policy`, `drill`.
    pub fn as_str(self) -> &'static str {
        match self {
            Check::BackupAge => "backup-age",
            Check::Versioning => "versioning",
            Check::Replication => "replication",
            Check::ReplicaPolicy => "replica-policy",
            Check::Drill => "drill",
        }
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
