//! `kind: Workspace` (`sluice.yaml`): environments, endpoints, defaults, guards.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ApiVersion;
use super::located::Located;
use super::namespace::{Compression, ObjectLock};
use super::scalar::Scalar;
use super::secret::{REDACTED, SecretRef, is_secret_key, parse_reference};
use super::units::{CronSchedule, HumanDuration, HumanRetention, HumanSize};

/// The workspace: one per config repository, in `sluice.yaml`.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "sluice Workspace")]
pub struct Workspace {
    #[serde(rename = "apiVersion")]
    pub api_version: ApiVersion,
    pub kind: WorkspaceKind,
    #[serde(default)]
    pub metadata: WorkspaceMeta,
    pub spec: WorkspaceSpec,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema)]
pub enum WorkspaceKind {
    Workspace,
}

#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceMeta {
    /// A name for people; shown in plans.
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSpec {
    /// Environments by name, selected with `--env` or `SLUICE_ENV`.
    pub environments: BTreeMap<String, Environment>,
    /// Defaults for every namespace; an environment may override them.
    #[serde(default)]
    pub defaults: Defaults,
    /// Limits on what one apply may delete.
    #[serde(default)]
    pub guards: Guards,
    /// PromQL per alert metric name, overriding the built-in mapping or
    /// adding a metric. Placeholders: `$namespace`, `$topics`, `$dlq_topics`,
    /// `$groups`.
    #[serde(default)]
    pub metrics: BTreeMap<String, Located<String>>,
    /// Buckets and regions DR policies may use; unchecked when absent.
    #[serde(default)]
    pub disaster_recovery: Option<DrCatalog>,
    /// The order a change is applied to the environments, such as `[dev,
    /// staging, prod]` (`plan --all-environments`, `apply --reviewed DIR`):
    /// every environment, once. Without it, environments go by name.
    #[serde(default)]
    pub apply_order: Vec<Located<String>>,
}

impl WorkspaceSpec {
    /// Every environment, in apply order.
    pub fn environments_in_order(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for name in self.apply_order.iter().map(|n| &n.value) {
            if self.environments.contains_key(name) && !out.contains(name) {
                out.push(name.clone());
            }
        }
        for name in self.environments.keys() {
            if !out.contains(name) {
                out.push(name.clone());
            }
        }
        out
    }
}

/// One environment: where its Kafka, S3, etcd and rule files are.
#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// What policies see: `dev`, `staging` or `prod`.
    pub stage: Stage,
    pub kafka: KafkaEnv,
    #[serde(default)]
    pub s3: Option<S3Env>,
    pub etcd: EtcdEnv,
    /// Prometheus rule files.
    #[serde(default)]
    pub alerts: Option<AlertsEnv>,
    /// Overrides of the workspace defaults for this environment.
    #[serde(default)]
    pub defaults: Defaults,
    /// Snapshots of this environment's etcd (sluice's state and the data
    /// plane's registry) to S3: `sluice snapshot`, and the watcher on
    /// `schedule`.
    #[serde(default)]
    pub state_backup: Option<StateBackup>,
}

/// Where and how often the environment's etcd is snapshotted to S3.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateBackup {
    /// S3 bucket holding the snapshots (in the environment's `s3`); it must
    /// exist: sluice does not create it.
    pub bucket: Located<String>,
    /// Key prefix in the bucket; defaults to `etcd-snapshots/<environment>/`.
    #[serde(default)]
    pub prefix: Option<Located<String>>,
    /// When the watcher takes a snapshot (cron, UTC).
    #[serde(default)]
    pub schedule: Option<CronSchedule>,
    /// How old the last snapshot may get before it is stale (default `2h`,
    /// KafScale's 7,200 s): `status` and the `SluiceStateSnapshotStale` alert.
    #[serde(default)]
    pub stale_after: Option<HumanDuration>,
    /// Object-lock retention each snapshot object is written with (the
    /// bucket must have object lock enabled).
    #[serde(default)]
    pub object_lock: Option<ObjectLock>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Dev,
    Staging,
    Prod,
}

/// How to reach the Kafka cluster.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaEnv {
    /// `host:port` of one or more brokers (`SLUICE_KAFKA_BOOTSTRAP` overrides).
    pub bootstrap_servers: Located<Vec<String>>,
    /// Broker count; caps the replication factor.
    pub brokers: Located<u16>,
    #[serde(default)]
    pub security_protocol: SecurityProtocol,
    #[serde(default)]
    pub sasl: Option<Sasl>,
    #[serde(default)]
    pub tls: Option<Tls>,
    /// Whether access grants become Kafka ACLs.
    #[serde(default)]
    pub acls: bool,
    /// The ID the cluster must report (in its Metadata answer): plan and
    /// apply refuse, changing nothing, when the brokers report another, so
    /// that a workspace is never applied to the wrong cluster. A plan's
    /// header names the ID it found.
    #[serde(default)]
    pub cluster_id: Option<Located<String>>,
    /// Extra librdkafka client properties; secret-bearing ones must be references.
    #[serde(default, serialize_with = "serialize_properties")]
    pub properties: BTreeMap<String, Located<Scalar>>,
}

/// Client properties as output: secret-looking ones that are not references are redacted.
fn serialize_properties<S: serde::Serializer>(
    props: &BTreeMap<String, Located<Scalar>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_map(props.iter().map(|(k, v)| {
        let shown = if is_secret_key(k) && parse_reference(&v.value.0).is_none() {
            REDACTED
        } else {
            v.value.0.as_str()
        };
        (k, shown)
    }))
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sasl {
    pub mechanism: SaslMechanism,
    /// User name, inline or a reference.
    pub username: String,
    pub password: SecretRef,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

/// TLS files; paths, not contents.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// CA bundle that signs the brokers' certificates.
    #[serde(default)]
    pub ca: Option<String>,
    /// Client certificate, for mutual TLS.
    #[serde(default)]
    pub cert: Option<String>,
    /// Client private key, for mutual TLS.
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub key_password: Option<SecretRef>,
}

/// How to reach S3. Credentials come from the standard AWS chain unless set here.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3Env {
    /// `SLUICE_S3_REGION` overrides.
    pub region: String,
    /// Custom endpoint for S3-compatible servers (`SLUICE_S3_ENDPOINT` overrides).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Path-style addressing, as most S3-compatible servers need.
    #[serde(default)]
    pub path_style: bool,
    #[serde(default)]
    pub access_key_id: Option<SecretRef>,
    #[serde(default)]
    pub secret_access_key: Option<SecretRef>,
    /// IAM role S3 assumes to replicate DR backups; it is also the one
    /// principal the replica's read-only policy lets write.
    #[serde(default)]
    pub replication_role: Option<String>,
}

/// sluice's state store.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EtcdEnv {
    /// `http://host:port` URLs (`SLUICE_ETCD_ENDPOINTS` overrides).
    pub endpoints: Located<Vec<String>>,
    /// Key prefix of everything sluice writes (`SLUICE_ETCD_PREFIX` overrides).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<SecretRef>,
}

fn default_prefix() -> String {
    "/sluice/".into()
}

/// Where rendered Prometheus rule files go.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertsEnv {
    /// Directory of rule files (`SLUICE_RULES_DIR` overrides).
    pub rules_dir: String,
    /// Prometheus reload endpoint, POSTed after rule files change.
    #[serde(default)]
    pub reload_url: Option<String>,
}

/// Namespace defaults. Every field is optional: environment defaults win over
/// workspace defaults, which win over the built-in values.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Replicas per partition (built-in: 3).
    #[serde(default)]
    pub replication_factor: Option<Located<u16>>,
    /// Fewest partitions of a topic, and the count without capacity (built-in: 1).
    #[serde(default)]
    pub partitions: Option<Located<u32>>,
    /// Writes per second one partition carries (built-in: 1000).
    #[serde(default)]
    pub partition_write_rps: Option<Located<u64>>,
    /// Reads per second one partition carries (built-in: 2000).
    #[serde(default)]
    pub partition_read_rps: Option<Located<u64>>,
    /// Retention when a namespace sets none; the broker's when absent.
    #[serde(default)]
    pub retention: Option<HumanRetention>,
    /// Compression when a namespace sets none; the broker's when absent.
    #[serde(default)]
    pub compression: Option<Compression>,
    /// Largest message when a namespace sets none; the broker's when absent.
    #[serde(default)]
    pub max_message_bytes: Option<HumanSize>,
}

/// Limits on deletion and on partition counts.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Guards {
    /// Most resources one apply may delete (built-in: 10).
    #[serde(default = "default_max_deletes")]
    pub max_deletes: u32,
    /// Namespaces never deleted, in addition to those marked `protected`.
    #[serde(default)]
    pub protected_namespaces: Vec<String>,
    /// Allow deletes without `--allow-delete`.
    #[serde(default)]
    pub allow_delete: bool,
    /// Most partitions one topic may have, written or derived from capacity
    /// (built-in: 4000, the per-broker figure of Kafka's operating guidance).
    #[serde(default = "default_max_partitions")]
    pub max_partitions_per_topic: u32,
    /// Most partition replicas (partitions × replication factor, over every
    /// topic of an environment) per broker (built-in: 4000, from Kafka's
    /// operating guidance).
    #[serde(default = "default_max_partitions")]
    pub max_partitions_per_broker: u32,
}

impl Default for Guards {
    fn default() -> Self {
        Guards {
            max_deletes: default_max_deletes(),
            protected_namespaces: Vec::new(),
            allow_delete: false,
            max_partitions_per_topic: default_max_partitions(),
            max_partitions_per_broker: default_max_partitions(),
        }
    }
}

/// "Up to 4,000 partitions per broker": Apache Kafka's operating guidance
/// (Jun Rao, "Apache Kafka Supports 200K Partitions Per Cluster", 2018).
fn default_max_partitions() -> u32 {
    4000
}

fn default_max_deletes() -> u32 {
    10
}

/// The buckets and regions DR policies may name.
#[derive(Clone, Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DrCatalog {
    /// Regions replicas may live in.
    #[serde(default)]
    pub regions: Vec<Located<String>>,
    /// Buckets by name.
    #[serde(default)]
    pub buckets: BTreeMap<String, DeclaredBucket>,
}

#[derive(Clone, Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeclaredBucket {
    pub region: Located<String>,
}
