//! Resources: what a namespace becomes in the live systems, each with a stable,
//! readable address such as `kafka.topic/user-events` or
//! `etcd.key//sluice/namespaces/user-events`.

pub mod expand;
pub mod rules;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::namespace::LockMode;
pub use crate::desired::Configs;
use crate::diag::Span;

/// A live system sluice reconciles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    S3,
    Kafka,
    Etcd,
    /// The Prometheus rules directory.
    Prometheus,
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            System::S3 => "S3",
            System::Kafka => "Kafka",
            System::Etcd => "etcd",
            System::Prometheus => "Prometheus rules",
        })
    }
}

/// A kind of resource, in apply order: creates and updates run in this order,
/// deletes in the reverse.
/// Written as [`Kind::prefix`] names it, in addresses and in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum Kind {
    S3Bucket,
    S3Lifecycle,
    S3Replication,
    S3Policy,
    KafkaTopic,
    KafkaAcl,
    EtcdKey,
    /// A rule file in the environment's rules directory.
    RuleFile,
}

/// In JSON, a kind is its prefix (`kafka.topic`).
impl schemars::JsonSchema for Kind {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Kind".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let names: Vec<&str> = Kind::ALL.iter().map(|k| k.prefix()).collect();
        schemars::json_schema!({ "type": "string", "enum": names })
    }
}

/// In JSON, an address is `<kind>/<name>`.
impl schemars::JsonSchema for Address {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Address".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "`<kind>/<name>`, such as `kafka.topic/orders`",
            "pattern": "^[a-z0-9]+\\.[a-z0-9_]+/.+$"
        })
    }
}

impl From<Kind> for &'static str {
    fn from(k: Kind) -> &'static str {
        k.prefix()
    }
}

impl TryFrom<String> for Kind {
    type Error = String;
    fn try_from(s: String) -> Result<Kind, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.prefix() == s)
            .ok_or_else(|| format!("`{s}` is not a resource kind"))
    }
}

impl Kind {
    /// The apply order: buckets and their settings, then the documents
    /// shared in them, topics, ACLs, records, rule files.
    pub const ALL: [Kind; 8] = [
        Kind::S3Bucket,
        Kind::S3Lifecycle,
        Kind::S3Replication,
        Kind::S3Policy,
        Kind::KafkaTopic,
        Kind::KafkaAcl,
        Kind::EtcdKey,
        Kind::RuleFile,
    ];

    /// The address prefix, before the `/`.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::S3Bucket => "s3.bucket",
            Kind::S3Lifecycle => "s3.lifecycle",
            Kind::S3Replication => "s3.replication",
            Kind::S3Policy => "s3.policy",
            Kind::KafkaTopic => "kafka.topic",
            Kind::KafkaAcl => "kafka.acl",
            Kind::EtcdKey => "etcd.key",
            Kind::RuleFile => "prometheus.rules",
        }
    }

    pub fn system(self) -> System {
        match self {
            Kind::S3Bucket | Kind::S3Lifecycle | Kind::S3Replication | Kind::S3Policy => System::S3,
            Kind::KafkaTopic | Kind::KafkaAcl => System::Kafka,
            Kind::EtcdKey => System::Etcd,
            Kind::RuleFile => System::Prometheus,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.prefix())
    }
}

/// `<kind>/<name>`: stable across runs, readable in plans.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Address {
    kind: Kind,
    name: String,
}

impl Address {
    pub fn new(kind: Kind, name: impl Into<String>) -> Self {
        Address {
            kind,
            name: name.into(),
        }
    }
    pub fn topic(name: &str) -> Self {
        Address::new(Kind::KafkaTopic, name)
    }
    pub fn etcd_key(key: &str) -> Self {
        Address::new(Kind::EtcdKey, key)
    }
    pub fn bucket(name: &str) -> Self {
        Address::new(Kind::S3Bucket, name)
    }
    /// A rule or statement sluice owns in a bucket's shared document:
    /// `s3.lifecycle/<bucket>/sluice-<namespace>`.
    pub fn in_bucket(kind: Kind, bucket: &str, id: &str) -> Self {
        Address::new(kind, format!("{bucket}/{id}"))
    }
    /// For S3 resources: the bucket, and the rule or statement ID if any.
    pub fn bucket_and_id(&self) -> (&str, Option<&str>) {
        match self.name.split_once('/') {
            Some((b, id)) => (b, Some(id)),
            None => (&self.name, None),
        }
    }
    pub fn kind(&self) -> Kind {
        self.kind
    }
    /// The part after the kind: a topic name, an etcd key, an ACL binding.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.prefix(), self.name)
    }
}

impl TryFrom<String> for Address {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let (prefix, name) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not a resource address"))?;
        let kind = Kind::try_from(prefix.to_owned())
            .map_err(|_| format!("`{s}` has an unknown resource kind `{prefix}`"))?;
        Ok(Address::new(kind, name))
    }
}

impl From<Address> for String {
    fn from(a: Address) -> String {
        a.to_string()
    }
}

/// A Kafka topic, as far as sluice manages it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TopicValue {
    pub partitions: u32,
    pub replication_factor: u16,
    /// Desired: exactly the configs sluice sets. Live: every config set on the topic.
    pub config: Configs,
}

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
#[serde(rename_all = "lowercase")]
pub enum AclResource {
    Topic,
    Group,
}

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
#[serde(rename_all = "lowercase")]
pub enum AclOperation {
    All,
    Read,
    Write,
    Describe,
}

/// An `Allow` ACL for any host on a literal resource name: the only shape
/// sluice creates. Other bindings on the cluster are not sluice's.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct AclBinding {
    /// `User:<service>` or `Group:<team>`.
    pub principal: String,
    pub resource: AclResource,
    pub resource_name: String,
    pub operation: AclOperation,
}

impl AclBinding {
    /// `kafka.acl/User:analytics-api/topic:user-events/read`.
    pub fn address(&self) -> Address {
        let resource = serde_json::to_value(self.resource).unwrap_or_default();
        let operation = serde_json::to_value(self.operation).unwrap_or_default();
        Address::new(
            Kind::KafkaAcl,
            format!(
                "{}/{}:{}/{}",
                self.principal,
                resource.as_str().unwrap_or_default(),
                self.resource_name,
                operation.as_str().unwrap_or_default()
            ),
        )
    }
}

/// What starts the ID of everything sluice owns in a document or directory
/// it shares with others: lifecycle and replication rules, policy
/// statements, rule groups and their files.
pub const OWNED_PREFIX: &str = "sluice-";

/// The ID of what sluice owns for a namespace: `sluice-<namespace>`.
pub fn owned_id(namespace: &str) -> String {
    format!("{OWNED_PREFIX}{namespace}")
}

/// The tag that marks what sluice created.
pub const MANAGED_BY: (&str, &str) = ("managed-by", "sluice");

/// A bucket's settings, as far as sluice manages them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BucketValue {
    pub region: String,
    pub versioning: bool,
    /// Whether the bucket was created with object lock (it cannot be added later).
    pub object_lock_enabled: bool,
    /// Default retention of new object versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<LockRetention>,
    /// All four public access block settings on.
    pub public_access_blocked: bool,
    /// Some default server-side encryption (sluice sets AES256; KMS counts too).
    pub default_encryption: bool,
    /// Desired: the tags sluice sets. Live: those of them the bucket carries.
    pub tags: BTreeMap<String, String>,
}

/// A bucket's default retention of new object versions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LockRetention {
    /// Written as S3 names it: `GOVERNANCE` or `COMPLIANCE`.
    #[serde(with = "s3_lock_mode")]
    #[schemars(with = "S3LockMode")]
    pub mode: LockMode,
    pub days: u32,
}

/// How S3 names an object lock mode, for the plan's schema.
#[derive(schemars::JsonSchema)]
#[allow(dead_code)]
enum S3LockMode {
    #[serde(rename = "GOVERNANCE")]
    Governance,
    #[serde(rename = "COMPLIANCE")]
    Compliance,
}

mod s3_lock_mode {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::config::namespace::LockMode;

    pub fn serialize<S: Serializer>(mode: &LockMode, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(mode.s3_name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<LockMode, D::Error> {
        let name = String::deserialize(d)?;
        LockMode::from_s3_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown object lock mode `{name}`")))
    }
}

/// sluice's lifecycle rule for one namespace's prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct LifecycleValue {
    pub prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noncurrent_days: Option<u32>,
}

/// sluice's replication rule for one namespace's prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ReplicationValue {
    pub prefix: String,
    pub destination_bucket: String,
    /// The role of the bucket's whole replication document.
    pub role: String,
    pub enabled: bool,
}

/// What a resource is: the part sluice compares and applies.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Value {
    Topic(TopicValue),
    Acl(AclBinding),
    /// An etcd record: a JSON document.
    Record(Record),
    Bucket(BucketValue),
    Lifecycle(LifecycleValue),
    Replication(ReplicationValue),
    /// A bucket policy statement, as JSON.
    Statement(serde_json::Value),
    /// A Prometheus rule file's text.
    Rules(String),
}

impl Value {
    /// A digest of the value, stable across runs and platforms.
    pub fn digest(&self) -> String {
        match self {
            // The bytes `serde_json` writes for it, without parsing it again.
            Value::Record(r) => digest(format!(r#"{{"record":{}}}"#, r.text()).as_bytes()),
            _ => digest(&serde_json::to_vec(self).expect("values are JSON")),
        }
    }

    /// The value without its kind tag: what a topic, bucket, rule or record
    /// holds, as JSON.
    pub fn inner_json(&self) -> serde_json::Value {
        match serde_json::to_value(self).expect("values are JSON") {
            serde_json::Value::Object(mut m) => m
                .values_mut()
                .next()
                .map(serde_json::Value::take)
                .unwrap_or_default(),
            other => other,
        }
    }
}

/// A JSON document held as its canonical text: compact, object keys
/// sorted, as `serde_json` writes a [`serde_json::Value`]. Equal documents
/// have equal text, and the text is a fraction of a `Value`'s size (each of
/// its objects is a B-tree node of several hundred bytes), so plans of
/// thousands of namespaces hold their records cheaply. It reads and writes
/// as the JSON it holds, in every format.
#[derive(Clone, PartialEq, Eq)]
pub struct Record(Box<str>);

impl Record {
    /// The canonical text of `json`.
    pub fn new(json: &serde_json::Value) -> Record {
        Record(json.to_string().into_boxed_str())
    }

    /// The canonical text of a serializable record.
    pub fn of(record: &impl Serialize) -> Record {
        Record::new(&serde_json::to_value(record).expect("records are JSON"))
    }

    /// The document, parsed again.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.0).expect("a record holds the JSON it was made from")
    }

    /// The canonical text.
    pub fn text(&self) -> &str {
        &self.0
    }
}

impl From<serde_json::Value> for Record {
    fn from(json: serde_json::Value) -> Record {
        Record::new(&json)
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Record {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.json().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Record, D::Error> {
        serde_json::Value::deserialize(d).map(|json| Record::new(&json))
    }
}

impl schemars::JsonSchema for Record {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        serde_json::Value::schema_name()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        serde_json::Value::json_schema(generator)
    }
}

/// The first 128 bits of a SHA-256, in hex.
pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    hex::encode(&hash[..16])
}

/// A desired resource: its address, value, and where it was declared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub address: Address,
    pub namespace: String,
    pub value: Value,
    /// The partition count is derived from capacity: a floor, not a target,
    /// so it never shrinks a live topic.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partitions_floor: bool,
    pub protected: bool,
    pub source: Option<Span>,
    /// Resources that must exist (desired, or live) for this one to be made,
    /// such as the bucket a replication rule copies into.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<Address>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip() {
        for text in [
            "kafka.topic/user-events",
            "etcd.key//sluice/namespaces/orders",
            "kafka.acl/User:a/topic:orders/read",
        ] {
            let a = Address::try_from(text.to_owned()).unwrap();
            assert_eq!(a.to_string(), text);
        }
        assert_eq!(
            Address::try_from("etcd.key//x".to_owned()).unwrap().name(),
            "/x"
        );
        assert!(Address::try_from("s4.bucket/x".to_owned()).is_err());
    }

    #[test]
    fn acl_addresses_name_every_part() {
        let b = AclBinding {
            principal: "User:analytics-api".into(),
            resource: AclResource::Topic,
            resource_name: "user-events".into(),
            operation: AclOperation::Read,
        };
        assert_eq!(
            b.address().to_string(),
            "kafka.acl/User:analytics-api/topic:user-events/read"
        );
    }

    #[test]
    fn digests_are_stable() {
        let v = Value::Record(serde_json::json!({"b": 1, "a": [true]}).into());
        assert_eq!(
            v.digest(),
            Value::Record(serde_json::json!({"a": [true], "b": 1}).into()).digest()
        );
        assert_eq!(v.digest().len(), 32);
        // A record's digest is that of the JSON `serde_json` writes for it.
        assert_eq!(
            v.digest(),
            digest(&serde_json::to_vec(&v).unwrap()),
            "{}",
            serde_json::to_string(&v).unwrap()
        );
    }

    #[test]
    fn records_read_and_write_as_the_json_they_hold() {
        let json = serde_json::json!({"z": {"b": [1, null], "a": "x"}, "a": 1.5});
        let r = Record::new(&json);
        assert_eq!(r.text(), r#"{"a":1.5,"z":{"a":"x","b":[1,null]}}"#);
        assert_eq!(r.json(), json);
        assert_eq!(
            serde_json::to_string_pretty(&r).unwrap(),
            serde_json::to_string_pretty(&json).unwrap()
        );
        let back: Record =
            serde_json::from_str(" { \"z\": {\"b\": [1, null], \"a\": \"x\"}, \"a\": 1.5 }")
                .unwrap();
        assert_eq!(back, r);
    }
}
