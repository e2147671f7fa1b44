//! Namespace documents from live state, so that teams with existing
//! clusters can adopt sluice: `sluice import`, then `sluice plan` shows no
//! changes, and the next apply records the resources in the inventory.
//!
//! Topics are grouped by the registry records in etcd where they exist, else
//! by name prefix (up to the first `.`). Only configs set on the topic are
//! written, never broker defaults. `<topic>.dlq` folds back into `dlq: true`.
//! Grants, alerts and DR come from their etcd records, and DR gaps from the
//! buckets those records name.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value as Json, json};

use crate::plan::LiveState;
use crate::resource::owned_id;
use crate::resource::{Address, Kind, TopicValue, Value};

/// Live state as import reads it.
#[derive(Debug, Default)]
pub struct Estate {
    pub topics: BTreeMap<String, TopicValue>,
    /// etcd records by key relative to the prefix (`namespaces/orders`).
    pub records: BTreeMap<String, Json>,
    /// The buckets and rules DR records name.
    pub s3: LiveState,
}

impl Estate {
    fn record(&self, kind: &str, ns: &str) -> Option<&Json> {
        self.records.get(&format!("{kind}/{ns}"))
    }

    /// The S3 addresses the DR records name, for the S3 read.
    pub fn dr_addresses(&self) -> Vec<Address> {
        let mut out = Vec::new();
        for (key, record) in &self.records {
            let Some(ns) = key.strip_prefix("dr/") else {
                continue;
            };
            if let Some(bucket) = record.pointer("/backup/bucket").and_then(Json::as_str) {
                out.push(Address::bucket(bucket));
                out.push(Address::in_bucket(Kind::S3Lifecycle, bucket, &owned_id(ns)));
                out.push(Address::in_bucket(
                    Kind::S3Replication,
                    bucket,
                    &owned_id(ns),
                ));
            }
        }
        out
    }
}

/// A duration as the YAML writes it (`90d`, `36h`, `5m`), in the largest
/// unit that keeps it exact.
fn duration(ms: u64) -> String {
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

/// A record's value for `key`: `Some(None)` when the record says "none",
/// `None` when it does not say, and the buckets may.
fn said(record: &Json, key: &str) -> Option<Option<Json>> {
    record.get(key).map(|v| (!v.is_null()).then(|| v.clone()))
}

/// The items of a record's list field (none when it is missing).
fn items<'a>(record: &'a Json, key: &str) -> impl Iterator<Item = &'a Json> {
    record[key].as_array().into_iter().flatten()
}

fn ms(v: Option<&Json>) -> Option<u64> {
    v.and_then(Json::as_u64)
}

/// Which namespace each topic belongs to: the topics of each namespace.
pub fn group(estate: &Estate) -> BTreeMap<String, BTreeSet<String>> {
    let mut owner: BTreeMap<&str, String> = BTreeMap::new();
    for (key, record) in &estate.records {
        let Some(ns) = key.strip_prefix("namespaces/") else {
            continue;
        };
        for t in items(record, "topics") {
            if let Some(name) = t["name"].as_str() {
                owner.insert(name, ns.to_owned());
            }
        }
    }
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for name in estate.topics.keys() {
        let ns = owner.get(name.as_str()).cloned().unwrap_or_else(|| {
            // A DLQ goes with its topic.
            let base = name.strip_suffix(".dlq").unwrap_or(name);
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
    let registry = estate.record("namespaces", name);
    let field = |k: &str| registry.map(|r| &r[k]).filter(|v| !v.is_null());
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(name));
    for key in ["owner", "tier"] {
        if let Some(v) = field(key) {
            metadata.insert(key.into(), v.clone());
        }
    }
    if let Some(labels) = field("labels").filter(|l| l.as_object().is_some_and(|m| !m.is_empty())) {
        metadata.insert("labels".into(), labels.clone());
    }
    if field("protected") == Some(&json!(true)) {
        metadata.insert("protected".into(), json!(true));
    }

    let mut spec = Map::new();
    if let Some(c) = field("capacity") {
        spec.insert("capacity".into(), c.clone());
    }
    if let Some(r) = ms(field("retention_ms")) {
        spec.insert("retention".into(), json!(duration(r)));
    }
    if let Some(c) = field("cache") {
        let mut cache = Map::new();
        cache.insert("enabled".into(), c["enabled"].clone());
        if let Some(ttl) = ms(c.get("ttl_ms")) {
            cache.insert("ttl".into(), json!(duration(ttl)));
        }
        spec.insert("cache".into(), Json::Object(cache));
    }
    if let Some(p) = field("connection_pool_size") {
        spec.insert("connection_pool_size".into(), p.clone());
    }
    spec.insert("topics".into(), Json::Array(topic_specs(estate, topics)));
    if let Some(c) = field("consumers").filter(|c| c.as_array().is_some_and(|a| !a.is_empty())) {
        spec.insert("consumers".into(), c.clone());
    }
    if let Some(grants) = estate.record("grants", name) {
        let access: Vec<Json> = items(grants, "grants")
            .filter_map(|g| {
                let kind = g["kind"].as_str()?;
                Some(json!({kind: g["principal"], "permissions": g["permissions"]}))
            })
            .collect();
        spec.insert("access".into(), Json::Array(access));
    }
    if let Some(alerts) = estate.record("alerts", name) {
        let list: Vec<Json> = items(alerts, "alerts")
            .map(|a| {
                let mut out = Map::new();
                for key in ["name", "condition", "severity"] {
                    out.insert(key.into(), a[key].clone());
                }
                if let Some(f) = ms(a.get("for_ms")) {
                    out.insert("for".into(), json!(duration(f)));
                }
                for key in ["labels", "annotations"] {
                    if a[key].as_object().is_some_and(|m| !m.is_empty()) {
                        out.insert(key.into(), a[key].clone());
                    }
                }
                Json::Object(out)
            })
            .collect();
        spec.insert("alerts".into(), Json::Array(list));
    }
    if let Some(dr) = estate.record("dr", name) {
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

fn topic_specs(estate: &Estate, topics: &BTreeSet<String>) -> Vec<Json> {
    let mut out = Vec::new();
    for name in topics {
        if let Some(base) = name.strip_suffix(".dlq")
            && topics.contains(base)
        {
            continue; // folded into its topic's `dlq: true`
        }
        let t = &estate.topics[name];
        let mut spec = Map::new();
        spec.insert("name".into(), json!(name));
        spec.insert("partitions".into(), json!(t.partitions));
        spec.insert("replication_factor".into(), json!(t.replication_factor));
        if !t.config.is_empty() {
            spec.insert("config".into(), json!(t.config));
        }
        if topics.contains(&format!("{name}.dlq")) {
            spec.insert("dlq".into(), json!(true));
        }
        out.push(Json::Object(spec));
    }
    out
}

/// The DR record mapped back; what it lacks is read from the buckets.
fn disaster_recovery(estate: &Estate, ns: &str, dr: &Json) -> Json {
    let mut out = Map::new();
    for (from, to) in [("rpo_ms", "rpo"), ("rto_ms", "rto")] {
        if let Some(v) = ms(dr.get(from)) {
            out.insert(to.into(), json!(duration(v)));
        }
    }
    let id = owned_id(ns);
    let live = |a: Address| estate.s3.resources.get(&a).map(|l| &l.value);
    if let Some(b) = dr.get("backup").filter(|b| !b.is_null()) {
        let bucket = b["bucket"].as_str().unwrap_or_default();
        let rule = match live(Address::in_bucket(Kind::S3Lifecycle, bucket, &id)) {
            Some(Value::Lifecycle(l)) => Some(l.clone()),
            _ => None,
        };
        let mut backup = Map::new();
        backup.insert("bucket".into(), json!(bucket));
        backup.insert("prefix".into(), b["prefix"].clone());
        if let Some(s) = b["schedule"].as_str() {
            backup.insert("schedule".into(), json!(s));
        }
        let retain = match said(b, "retain_ms") {
            Some(v) => ms(v.as_ref()),
            None => rule
                .as_ref()
                .and_then(|r| r.expiration_days)
                .map(|d| u64::from(d) * 86_400_000),
        };
        if let Some(r) = retain {
            backup.insert("retain".into(), json!(duration(r)));
        }
        if b["incremental"] == json!(true) {
            backup.insert("incremental".into(), json!(true));
        }
        let lock = match said(b, "object_lock") {
            Some(v) => v,
            None => match live(Address::bucket(bucket)) {
                Some(Value::Bucket(v)) => v
                    .object_lock
                    .as_ref()
                    .map(|l| json!({"mode": l.mode.to_lowercase(), "days": l.days})),
                _ => None,
            },
        };
        if let Some(l) = lock {
            backup.insert("object_lock".into(), l);
        }
        out.insert("backup".into(), Json::Object(backup));
        let pitr = match said(dr, "pitr_window_ms") {
            Some(v) => ms(v.as_ref()),
            None => rule
                .and_then(|r| r.noncurrent_days)
                .map(|d| u64::from(d) * 86_400_000),
        };
        if let Some(p) = pitr {
            out.insert("pitr".into(), json!({"window": duration(p)}));
        }
        let replica = dr.get("replication").filter(|r| !r.is_null()).cloned();
        if let Some(r) = replica {
            out.insert("replication".into(), r);
        }
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
        estate.records.insert(
            "namespaces/billing".into(),
            json!({"name": "billing", "owner": "fin", "topics": [{"name": "billing-ledger"}]}),
        );
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
    fn durations_print_as_they_parse() {
        for ms in [300_000, 604_800_000, 129_600_000, 1_500] {
            let text = duration(ms);
            let back = humantime::parse_duration(&text).unwrap();
            assert_eq!(back.as_millis(), u128::from(ms), "{text}");
        }
    }
}
