//! Namespace documents from live state, so that teams with existing
//! clusters can adopt sluice: `sluice import`, then `sluice plan` shows no
//! changes, and the next apply records the resources in the inventory.
//!
//! Topics are grouped by the registry records in etcd where they exist, else
//! by name prefix (up to the first `.`), and listed in the order the record
//! declares them. The namespace's own settings go at `spec` level
//! ([`settings`]); a topic gets only the configs set on it that those do not
//! give it, never broker defaults. `<topic>.dlq` folds back into `dlq: true`.
//! [`merge`] adds topics to an existing file instead.
//! Grants, alerts and DR come from their etcd records ([`crate::records`]),
//! and DR gaps from the buckets those records name.

pub mod merge;
mod settings;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value as Json, json};

use crate::config::namespace::{dlq_name, dlq_parent};
use crate::plan::LiveState;
use crate::records::{
    AlertRecord, AlertsRecord, DrRecord, GrantsRecord, RecordKind, RegistryRecord,
};
use crate::resource::{Address, Kind, TopicValue, Value, owned_id};

/// Live state as import reads it.
#[derive(Debug, Default)]
pub struct Estate {
    pub topics: BTreeMap<String, TopicValue>,
    /// The records of each namespace, by namespace name.
    pub registry: BTreeMap<String, RegistryRecord>,
    pub grants: BTreeMap<String, GrantsRecord>,
    pub alerts: BTreeMap<String, AlertsRecord>,
    pub dr: BTreeMap<String, DrRecord>,
    /// The buckets and rules DR records name.
    pub s3: LiveState,
}

impl Estate {
    /// Adds a record read at `rest`, its key relative to the prefix
    /// (`namespaces/orders`). Keys that hold no namespace record (sluice's
    /// own state, other tools') are not records: `Ok(false)`.
    pub fn add_record(&mut self, rest: &str, value: &[u8]) -> Result<bool, serde_json::Error> {
        let Some((kind, ns)) = RecordKind::parse(rest) else {
            return Ok(false);
        };
        let ns = ns.to_owned();
        match kind {
            RecordKind::Registry => {
                self.registry.insert(ns, serde_json::from_slice(value)?);
            }
            RecordKind::Grants => {
                self.grants.insert(ns, serde_json::from_slice(value)?);
            }
            RecordKind::Alerts => {
                self.alerts.insert(ns, serde_json::from_slice(value)?);
            }
            RecordKind::Dr => {
                self.dr.insert(ns, serde_json::from_slice(value)?);
            }
        }
        Ok(true)
    }

    /// Keeps only the records of these namespaces.
    pub fn retain_namespaces(&mut self, keep: &BTreeMap<String, BTreeSet<String>>) {
        self.registry.retain(|ns, _| keep.contains_key(ns));
        self.grants.retain(|ns, _| keep.contains_key(ns));
        self.alerts.retain(|ns, _| keep.contains_key(ns));
        self.dr.retain(|ns, _| keep.contains_key(ns));
    }

    /// The S3 addresses the DR records name, for the S3 read.
    pub fn dr_addresses(&self) -> Vec<Address> {
        let mut out = Vec::new();
        for (ns, record) in &self.dr {
            if let Some(b) = &record.backup {
                out.push(Address::bucket(&b.bucket));
                out.push(Address::in_bucket(
                    Kind::S3Lifecycle,
                    &b.bucket,
                    &owned_id(ns),
                ));
                out.push(Address::in_bucket(
                    Kind::S3Replication,
                    &b.bucket,
                    &owned_id(ns),
                ));
            }
        }
        out
    }
}

/// A duration as the YAML writes it (`90d`, `36h`, `5m`), in the largest
/// unit that keeps it exact.
pub(crate) fn duration(ms: u64) -> String {
    const UNITS: [(u64, &str); 5] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
        (1, "ms"),
    ];
    let (size, unit) = UNITS
        .into_iter()
        .find(|(size, _)| ms.is_multiple_of(*size) && ms > 0)
        .unwrap_or((1, "ms"));
    format!("{}{unit}", ms / size)
}

/// Which namespace each topic belongs to: the topics of each namespace.
pub fn group(estate: &Estate) -> BTreeMap<String, BTreeSet<String>> {
    let mut owner: BTreeMap<&str, String> = BTreeMap::new();
    for (ns, record) in &estate.registry {
        for t in &record.topics {
            owner.insert(&t.name, ns.clone());
        }
    }
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for name in estate.topics.keys() {
        let ns = owner.get(name.as_str()).cloned().unwrap_or_else(|| {
            // A DLQ goes with its topic.
            let base = dlq_parent(name).unwrap_or(name);
            owner
                .get(base)
                .cloned()
                .unwrap_or_else(|| base.split('.').next().unwrap_or(base).to_owned())
        });
        out.entry(ns).or_default().insert(name.clone());
    }
    out
}

/// One Namespace document per group of topics, by namespace name.
pub fn namespaces(estate: &Estate) -> BTreeMap<String, Json> {
    group(estate)
        .into_iter()
        .map(|(ns, topics)| {
            let doc = namespace(estate, &ns, &topics);
            (ns, doc)
        })
        .collect()
}

fn namespace(estate: &Estate, name: &str, topics: &BTreeSet<String>) -> Json {
    let registry = estate.registry.get(name);
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(name));
    let mut spec = Map::new();
    if let Some(r) = registry {
        registry_settings(r, &mut metadata, &mut spec);
    }
    let order = declared_order(registry, topics);
    let base = settings::namespace_base(estate, registry, &order, topics);
    for (key, value) in settings::spec_values(&base) {
        spec.insert(key.into(), value);
    }
    spec.insert(
        "topics".into(),
        Json::Array(topic_specs(estate, &order, topics, &base)),
    );
    if let Some(c) = registry.map(|r| &r.consumers).filter(|c| !c.is_empty()) {
        spec.insert("consumers".into(), json!(c));
    }
    if let Some(grants) = estate.grants.get(name) {
        let access: Vec<Json> = grants
            .grants
            .iter()
            .map(|g| json!({g.kind.as_str(): g.principal, "permissions": g.permissions}))
            .collect();
        spec.insert("access".into(), Json::Array(access));
    }
    if let Some(alerts) = estate.alerts.get(name) {
        spec.insert(
            "alerts".into(),
            Json::Array(alerts.alerts.iter().map(alert).collect()),
        );
    }
    if let Some(dr) = estate.dr.get(name) {
        spec.insert(
            "disaster_recovery".into(),
            disaster_recovery(estate, name, dr),
        );
    }
    json!({
        "apiVersion": "sluice/v1",
        "kind": "Namespace",
        "metadata": metadata,
        "spec": spec,
    })
}

/// The namespace's topics in the order its registry record declares them
/// (the order the YAML had, which the record, its alerts' regular
/// expressions and its rule file keep), then any others by name.
fn declared_order<'a>(
    registry: Option<&'a RegistryRecord>,
    topics: &'a BTreeSet<String>,
) -> Vec<&'a str> {
    let mut order: Vec<&str> = registry
        .into_iter()
        .flat_map(|r| &r.topics)
        .map(|t| t.name.as_str())
        .filter(|name| topics.contains(*name))
        .collect();
    for name in topics {
        if !order.contains(&name.as_str()) {
            order.push(name);
        }
    }
    order
}

/// What the registry record says, as metadata and spec settings; retention
/// is one of the namespace's topic settings ([`settings`]).
fn registry_settings(
    r: &RegistryRecord,
    metadata: &mut Map<String, Json>,
    spec: &mut Map<String, Json>,
) {
    if let Some(owner) = &r.owner {
        metadata.insert("owner".into(), json!(owner));
    }
    metadata.insert("tier".into(), json!(r.tier));
    if !r.labels.is_empty() {
        metadata.insert("labels".into(), json!(r.labels));
    }
    if r.protected {
        metadata.insert("protected".into(), json!(true));
    }
    if let Some(c) = &r.capacity {
        spec.insert("capacity".into(), json!(c));
    }
    if let Some(c) = &r.cache {
        let mut cache = Map::new();
        cache.insert("enabled".into(), json!(c.enabled));
        if let Some(ttl) = c.ttl_ms {
            cache.insert("ttl".into(), json!(duration(ttl)));
        }
        spec.insert("cache".into(), Json::Object(cache));
    }
    if let Some(p) = r.connection_pool_size {
        spec.insert("connection_pool_size".into(), json!(p));
    }
}

fn alert(a: &AlertRecord) -> Json {
    let mut out = Map::new();
    out.insert("name".into(), json!(a.name));
    out.insert("condition".into(), json!(a.condition));
    out.insert("severity".into(), json!(a.severity));
    if let Some(f) = a.for_ms {
        out.insert("for".into(), json!(duration(f)));
    }
    for (key, map) in [("labels", &a.labels), ("annotations", &a.annotations)] {
        if !map.is_empty() {
            out.insert(key.into(), json!(map));
        }
    }
    Json::Object(out)
}

/// The topics in `order`, each with the configs the namespace's settings
/// (`base`) do not give it; a DLQ folds into its topic's `dlq: true`.
fn topic_specs(
    estate: &Estate,
    order: &[&str],
    topics: &BTreeSet<String>,
    base: &BTreeMap<String, String>,
) -> Vec<Json> {
    order
        .iter()
        .filter(|name| !settings::is_folded_dlq(name, topics))
        .map(|name| json!(topic_spec(name, &estate.topics[*name], topics, base)))
        .collect()
}

/// One topic's entry in `spec.topics`, its fields in the order people
/// write them.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TopicEntry {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u16,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dlq: bool,
}

/// A topic's entry: its own configs are those the namespace's settings
/// (`base`) do not give it.
pub(crate) fn topic_spec(
    name: &str,
    t: &TopicValue,
    topics: &BTreeSet<String>,
    base: &BTreeMap<String, String>,
) -> TopicEntry {
    TopicEntry {
        name: name.to_owned(),
        partitions: t.partitions,
        replication_factor: t.replication_factor,
        config: t
            .config
            .iter()
            .filter(|(k, v)| base.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        dlq: topics.contains(&dlq_name(name)),
    }
}

/// The DR record mapped back. Retention and the PITR window a record leaves
/// out are read from sluice's lifecycle rule for the namespace.
fn disaster_recovery(estate: &Estate, ns: &str, dr: &DrRecord) -> Json {
    let mut out = Map::new();
    for (value, to) in [(dr.rpo_ms, "rpo"), (dr.rto_ms, "rto")] {
        if let Some(v) = value {
            out.insert(to.into(), json!(duration(v)));
        }
    }
    let Some(b) = &dr.backup else {
        return Json::Object(out);
    };
    let id = owned_id(ns);
    let rule = match estate
        .s3
        .resources
        .get(&Address::in_bucket(Kind::S3Lifecycle, &b.bucket, &id))
        .map(|l| &l.value)
    {
        Some(Value::Lifecycle(l)) => Some(l.clone()),
        _ => None,
    };
    let days = |d: u32| u64::from(d) * 86_400_000;
    let mut backup = Map::new();
    backup.insert("bucket".into(), json!(b.bucket));
    backup.insert("prefix".into(), json!(b.prefix));
    if let Some(s) = &b.schedule {
        backup.insert("schedule".into(), json!(s));
    }
    let retain = b
        .retain_ms
        .or_else(|| rule.as_ref().and_then(|r| r.expiration_days).map(days));
    if let Some(r) = retain {
        backup.insert("retain".into(), json!(duration(r)));
    }
    if b.incremental {
        backup.insert("incremental".into(), json!(true));
    }
    if let Some(l) = &b.object_lock {
        backup.insert(
            "object_lock".into(),
            json!({"mode": l.mode, "days": l.days}),
        );
    }
    out.insert("backup".into(), Json::Object(backup));
    let pitr = dr
        .pitr_window_ms
        .or_else(|| rule.and_then(|r| r.noncurrent_days).map(days));
    if let Some(p) = pitr {
        out.insert("pitr".into(), json!({"window": duration(p)}));
    }
    if let Some(r) = &dr.replication {
        out.insert("replication".into(), json!(r));
    }
    Json::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(partitions: u32, config: &[(&str, &str)]) -> TopicValue {
        TopicValue {
            partitions,
            replication_factor: 1,
            config: config
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn topics_group_by_registry_then_prefix_and_dlqs_fold() {
        let mut estate = Estate::default();
        for (name, t) in [
            ("orders", topic(6, &[("cleanup.policy", "compact")])),
            ("orders.dlq", topic(3, &[])),
            ("orders.events", topic(3, &[])),
            ("billing-ledger", topic(1, &[])),
        ] {
            estate.topics.insert(name.into(), t);
        }
        let registry = json!({
            "name": "billing", "owner": "fin", "tier": "standard", "labels": {},
            "protected": false, "capacity": null, "retention_ms": null, "cache": null,
            "connection_pool_size": null, "topics": [{"name": "billing-ledger", "dlq_of": null}],
            "consumers": [], "managed_by": "sluice",
        });
        assert!(
            estate
                .add_record("namespaces/billing", registry.to_string().as_bytes())
                .unwrap()
        );
        assert!(!estate.add_record("inventory/prod/0", b"{}").unwrap());
        let docs = namespaces(&estate);
        assert_eq!(docs.keys().collect::<Vec<_>>(), vec!["billing", "orders"]);
        let orders = &docs["orders"]["spec"]["topics"];
        assert_eq!(orders.as_array().unwrap().len(), 2, "{orders}");
        assert_eq!(orders[0]["name"], "orders");
        assert_eq!(orders[0]["dlq"], true);
        assert_eq!(orders[0]["config"]["cleanup.policy"], "compact");
        assert_eq!(docs["billing"]["metadata"]["owner"], "fin");
    }

    #[test]
    fn settings_go_at_spec_level_and_topics_keep_their_declared_order() {
        let ns = [
            ("retention.ms", "604800000"),
            ("compression.type", "lz4"),
            ("max.message.bytes", "2097152"),
        ];
        let own = |extra: (&'static str, &'static str)| {
            let mut c = ns.to_vec();
            c.retain(|(k, _)| *k != extra.0);
            c.push(extra);
            c
        };
        let mut estate = Estate::default();
        for (name, t) in [
            ("shop.orders", topic(3, &ns)),
            ("shop.orders.dlq", topic(1, &ns)),
            ("shop.audit", topic(1, &own(("retention.ms", "2592000000")))),
            ("shop.state", topic(1, &own(("cleanup.policy", "compact")))),
        ] {
            estate.topics.insert(name.into(), t);
        }
        let registry = json!({
            "name": "shop", "owner": "s", "tier": "standard", "labels": {}, "protected": false,
            "capacity": null, "retention_ms": 604800000u64, "cache": null,
            "connection_pool_size": null, "consumers": [], "managed_by": "sluice",
            "topics": [
                {"name": "shop.state", "dlq_of": null},
                {"name": "shop.orders", "dlq_of": null},
                {"name": "shop.audit", "dlq_of": null},
                {"name": "shop.orders.dlq", "dlq_of": "shop.orders"},
            ],
        });
        estate
            .add_record("namespaces/shop", registry.to_string().as_bytes())
            .unwrap();
        let doc = &namespaces(&estate)["shop"]["spec"];
        assert_eq!(doc["retention"], "7d", "{doc:#}");
        assert_eq!(doc["compression"], "lz4", "{doc:#}");
        assert_eq!(doc["max_message_bytes"], "2MiB", "{doc:#}");
        let topics = doc["topics"].as_array().unwrap();
        let names: Vec<&str> = topics.iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["shop.state", "shop.orders", "shop.audit"]);
        assert_eq!(topics[0]["config"], json!({"cleanup.policy": "compact"}));
        assert!(topics[1].get("config").is_none(), "{doc:#}");
        assert_eq!(topics[1]["dlq"], true);
        assert_eq!(topics[2]["config"], json!({"retention.ms": "2592000000"}));
    }

    #[test]
    fn without_dlqs_a_setting_is_the_namespace_s_only_when_every_topic_has_it() {
        let mut estate = Estate::default();
        estate
            .topics
            .insert("pay.a".into(), topic(1, &[("compression.type", "gzip")]));
        estate.topics.insert(
            "pay.b".into(),
            topic(
                1,
                &[("compression.type", "gzip"), ("max.message.bytes", "1000")],
            ),
        );
        let doc = &namespaces(&estate)["pay"]["spec"];
        assert_eq!(doc["compression"], "gzip", "{doc:#}");
        assert!(doc.get("max_message_bytes").is_none(), "{doc:#}");
        assert!(doc.get("retention").is_none(), "{doc:#}");
        assert_eq!(
            doc["topics"][1]["config"],
            json!({"max.message.bytes": "1000"})
        );
    }

    #[test]
    fn durations_print_as_they_parse() {
        for ms in [300_000, 604_800_000, 129_600_000, 1_500] {
            let text = duration(ms);
            let back = humantime::parse_duration(&text).unwrap();
            assert_eq!(back.as_millis(), u128::from(ms), "{text}");
        }
    }
}
