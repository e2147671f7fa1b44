//! `kind: Namespace`: what a team declares about its streaming namespace.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::located::Located;
use super::scalar::Scalar;
use super::units::{CronSchedule, HumanDuration, HumanRetention, HumanSize, PromDuration};
use super::{ApiVersion, Labels};

/// One namespace: its topics, capacity, retention, access, alerts and DR policy.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "sluice Namespace")]
pub struct Namespace {
    #[serde(rename = "apiVersion")]
    pub api_version: ApiVersion,
    pub kind: NamespaceKind,
    pub metadata: NamespaceMeta,
    #[serde(default)]
    pub spec: NamespaceSpec,
}

/// The dead-letter topic `dlq: true` makes for topic `topic`.
pub fn dlq_name(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// The topic whose `dlq: true` would make a topic named `name`, when the
/// name is a dead-letter topic's.
pub fn dlq_parent(name: &str) -> Option<&str> {
    name.strip_suffix(".dlq")
}

impl Namespace {
    /// Every name by which this namespace could collide with another or
    /// share with it: its own, its topics' (the implicit one too), its
    /// consumer groups' and its buckets'. A topic `x.dlq` also gives `x`,
    /// whose `dlq: true` would make it; `x` is found in `x.dlq` as it is.
    pub fn names(&self) -> Vec<String> {
        let own = &self.metadata.name.value;
        let topics: Vec<String> = match &self.spec.topics {
            None => vec![own.clone()],
            Some(topics) => topics
                .iter()
                .map(|t| t.value.name.as_ref().map_or(own, |n| &n.value).clone())
                .collect(),
        };
        let stems: Vec<String> = topics
            .iter()
            .filter_map(|t| dlq_parent(t))
            .map(str::to_owned)
            .collect();
        std::iter::once(own.clone())
            .chain(topics)
            .chain(stems)
            .chain(self.spec.consumers.iter().map(|c| c.group.value.clone()))
            .chain(self.buckets())
            .collect()
    }

    /// The buckets its DR policy keeps backups and replicas in.
    pub fn buckets(&self) -> Vec<String> {
        let dr = self.spec.disaster_recovery.as_ref();
        dr.and_then(|d| d.backup.as_ref())
            .map(|b| b.bucket.value.clone())
            .into_iter()
            .chain(
                dr.and_then(|d| d.replication.as_ref())
                    .map(|r| r.bucket.value.clone()),
            )
            .collect()
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema)]
pub enum NamespaceKind {
    Namespace,
}

/// Who owns the namespace and how it is treated.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamespaceMeta {
    /// Namespace name: lowercase letters, digits and `-`; names its default topic.
    pub name: Located<String>,
    /// Owning team, used in alert labels and the registry.
    #[serde(default)]
    pub owner: Option<String>,
    /// Service tier; policies read it.
    #[serde(default)]
    pub tier: Tier,
    /// Free-form labels, copied to the registry record.
    #[serde(default)]
    pub labels: Labels,
    /// A protected namespace is never deleted, even after its YAML is removed.
    #[serde(default)]
    pub protected: bool,
    /// Environments this namespace applies to; all when absent.
    #[serde(default)]
    pub environments: Option<Vec<Located<String>>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Tier {
    Critical,
    #[default]
    Standard,
    BestEffort,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Critical => "critical",
            Tier::Standard => "standard",
            Tier::BestEffort => "best-effort",
        }
    }
}

/// The desired state of the namespace.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NamespaceSpec {
    /// Expected traffic; partition counts derive from it when not set.
    #[serde(default)]
    pub capacity: Option<Capacity>,
    /// How long messages are kept (`7d`, `30days`, `12h`, `infinite`) → `retention.ms`.
    #[serde(default)]
    pub retention: Option<HumanRetention>,
    /// Topic compression → `compression.type`.
    #[serde(default)]
    pub compression: Option<Compression>,
    /// Largest message accepted (`1MiB`) → `max.message.bytes`.
    #[serde(default)]
    pub max_message_bytes: Option<HumanSize>,
    /// Data-plane cache settings, recorded in the registry.
    #[serde(default)]
    pub cache: Option<Cache>,
    /// Data-plane connection pool size, recorded in the registry.
    #[serde(default)]
    pub connection_pool_size: Option<u32>,
    /// Kafka topics; when absent, one topic named after the namespace.
    #[serde(default)]
    pub topics: Option<Vec<Located<TopicSpec>>>,
    /// Consumer groups that read the namespace.
    #[serde(default)]
    pub consumers: Vec<Consumer>,
    /// Who may read, write or administer the namespace's topics.
    #[serde(default)]
    pub access: Vec<Located<Grant>>,
    /// Alert rules, in the operators' own vocabulary.
    #[serde(default)]
    pub alerts: Vec<Alert>,
    /// Backup, replication and point-in-time recovery.
    #[serde(default)]
    pub disaster_recovery: Option<DrPolicy>,
}

/// Requests per second the namespace must sustain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    /// Writes (produced messages) per second.
    #[serde(default)]
    pub write_rps: u64,
    /// Reads (consumed messages) per second.
    #[serde(default)]
    pub read_rps: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
    /// Keep whatever the producer used.
    Producer,
}

impl Compression {
    /// The value of Kafka's `compression.type`.
    pub fn kafka_value(self) -> &'static str {
        match self {
            Compression::None => "uncompressed",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
            Compression::Producer => "producer",
        }
    }
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cache {
    pub enabled: bool,
    /// How long entries live (`5m`).
    #[serde(default)]
    pub ttl: Option<HumanDuration>,
}

/// One Kafka topic of the namespace.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicSpec {
    /// Topic name; defaults to the namespace name.
    #[serde(default)]
    pub name: Option<Located<String>>,
    /// Partition count; derived from capacity when absent. Only ever grows.
    #[serde(default)]
    pub partitions: Option<Located<u32>>,
    /// Replicas per partition; the workspace default when absent.
    #[serde(default)]
    pub replication_factor: Option<Located<u16>>,
    /// Any Kafka topic config (`cleanup.policy: compact`); wins over spec-level settings.
    #[serde(default)]
    #[schemars(schema_with = "super::topic_catalog::schema")]
    pub config: BTreeMap<String, Located<Scalar>>,
    /// Adds a dead-letter topic `<name>.dlq`, with the namespace's retention,
    /// compression and message size but not this topic's own `config`.
    #[serde(default)]
    pub dlq: bool,
    /// Allows a retention under one minute, which deletes data almost as
    /// soon as it is written.
    #[serde(default)]
    pub allow_short_retention: bool,
    /// Allows growing the partitions of a compacted topic, which moves keys
    /// to other partitions (the built-in policy `sluice.repartition`).
    #[serde(default)]
    pub allow_repartition: bool,
}

/// A consumer group that reads the namespace.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Consumer {
    /// Kafka consumer group id.
    pub group: Located<String>,
    /// Lag (messages) above which the group is reported as behind.
    #[serde(default)]
    pub max_lag: Option<u64>,
}

/// Access for one service or one team.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    /// A service principal; set this or `team`.
    #[serde(default)]
    pub service: Option<String>,
    /// A team principal; set this or `service`.
    #[serde(default)]
    pub team: Option<String>,
    pub permissions: Vec<Permission>,
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Read and Describe on the topics, Read on the consumer groups.
    Read,
    /// Write and Describe on the topics.
    Write,
    /// Every topic operation.
    Admin,
}

/// One alert rule.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Alert {
    /// Rule name, unique within the namespace.
    pub name: Located<String>,
    /// Condition such as `p99_latency > 50ms` or `write_rps > 0.9 * capacity`.
    pub condition: Located<String>,
    /// How long the condition must hold before the alert fires, in
    /// Prometheus units (`5m`, `1h30m`).
    #[serde(default, rename = "for")]
    pub for_: Option<PromDuration>,
    pub severity: Severity,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Labels,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// Disaster-recovery policy.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DrPolicy {
    /// Recovery point objective: the newest backup must be younger than this.
    #[serde(default)]
    pub rpo: Option<HumanDuration>,
    /// Recovery time objective, recorded for the runbooks.
    #[serde(default)]
    pub rto: Option<HumanDuration>,
    #[serde(default)]
    pub backup: Option<Backup>,
    #[serde(default)]
    pub replication: Option<Replication>,
    #[serde(default)]
    pub pitr: Option<Pitr>,
    #[serde(default)]
    pub drill: Option<Drill>,
}

/// Restore drills the watcher runs (`sluice dr drill` on a schedule).
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Drill {
    /// When the watcher's leader drills the namespace (cron, as the backup's).
    pub schedule: CronSchedule,
}

/// Where and how often the namespace is backed up.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// S3 bucket holding the backups.
    pub bucket: Located<String>,
    /// Key prefix in the bucket; defaults to `<namespace>/`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// When backups run (cron).
    #[serde(default)]
    pub schedule: Option<CronSchedule>,
    /// How long backups are kept (`30d`).
    #[serde(default)]
    pub retain: Option<HumanDuration>,
    /// Whether backups are incremental.
    #[serde(default)]
    pub incremental: bool,
    /// Default object-lock retention on the bucket.
    #[serde(default)]
    pub object_lock: Option<ObjectLock>,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ObjectLock {
    pub mode: LockMode,
    /// Days each object version is locked.
    pub days: Located<u32>,
}

/// S3 object-lock retention modes: `compliance` cannot be shortened or
/// lifted by anyone, `governance` by those with the permission to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LockMode {
    Governance,
    Compliance,
}

impl LockMode {
    /// The name S3 uses: `GOVERNANCE` or `COMPLIANCE`.
    pub fn s3_name(self) -> &'static str {
        match self {
            LockMode::Governance => "GOVERNANCE",
            LockMode::Compliance => "COMPLIANCE",
        }
    }

    pub fn from_s3_name(name: &str) -> Option<LockMode> {
        [LockMode::Governance, LockMode::Compliance]
            .into_iter()
            .find(|m| m.s3_name() == name)
    }

    /// The stricter of two modes, for namespaces that share a bucket.
    pub fn strictest(self, other: LockMode) -> LockMode {
        if self == LockMode::Compliance || other == LockMode::Compliance {
            LockMode::Compliance
        } else {
            LockMode::Governance
        }
    }
}

/// Replication of the backup bucket into another region.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Replication {
    /// The replica bucket.
    pub bucket: Located<String>,
    /// The replica's region.
    pub region: Located<String>,
    /// Deny writes to the replica except by replication.
    #[serde(default = "yes")]
    pub read_only: bool,
}

fn yes() -> bool {
    true
}

/// Point-in-time recovery.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pitr {
    /// How far back any version can be restored; noncurrent versions expire after it.
    pub window: HumanDuration,
}
