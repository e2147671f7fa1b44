//! The resolved model expanded into resources (DESIGN §2): topics, ACL
//! bindings when the environment enforces them, and etcd records.

use std::collections::BTreeMap;

use serde_json::json;

use super::{AclBinding, AclOperation, AclResource, Address, Resource, TopicValue, Value};
use crate::config::namespace::Permission;
use crate::desired::{Desired, GrantState, NamespaceState, PartitionsFrom, PrincipalKind};
use crate::diag::Span;

/// Every resource of the desired state, sorted by address.
pub fn expand(desired: &Desired) -> Vec<Resource> {
    let prefix = &desired.environment.etcd.prefix;
    let mut out = Vec::new();
    for ns in &desired.namespaces {
        let resource = |address: Address, value: Value| Resource {
            address,
            namespace: ns.name.clone(),
            value,
            partitions_floor: false,
            protected: ns.protected,
            source: Some(ns.source.clone()),
        };
        for t in &ns.topics {
            out.push(Resource {
                partitions_floor: t.partitions_from != PartitionsFrom::Explicit,
                source: Some(t.source.clone()),
                ..resource(
                    Address::topic(&t.name),
                    Value::Topic(TopicValue {
                        partitions: t.partitions,
                        replication_factor: t.replication_factor,
                        config: t.config.clone(),
                    }),
                )
            });
        }
        if desired.environment.kafka.acls {
            for (binding, source) in acl_bindings(ns) {
                out.push(Resource {
                    source: Some(source),
                    ..resource(binding.address(), Value::Acl(binding))
                });
            }
        }
        for (key, record) in records(prefix, ns) {
            out.push(resource(Address::etcd_key(&key), Value::Record(record)));
        }
    }
    out.sort_by(|a, b| a.address.cmp(&b.address));
    out
}

/// An etcd key under the environment's prefix.
pub fn etcd_key(prefix: &str, rest: &str) -> String {
    if prefix.ends_with('/') {
        format!("{prefix}{rest}")
    } else {
        format!("{prefix}/{rest}")
    }
}

/// The Kafka principal of a grant: services are users, teams are groups.
pub fn principal(g: &GrantState) -> String {
    match g.kind {
        PrincipalKind::Service => format!("User:{}", g.principal),
        PrincipalKind::Team => format!("Group:{}", g.principal),
    }
}

/// read → Read and Describe on the topics, Read on the consumer groups;
/// write → Write and Describe on the topics; admin → All on the topics. Each
/// binding with the grant that asks for it (the first, when several do).
fn acl_bindings(ns: &NamespaceState) -> BTreeMap<AclBinding, Span> {
    let mut out = BTreeMap::new();
    for g in &ns.access {
        let principal = principal(g);
        let mut add = |resource, name: &str, operation| {
            let binding = AclBinding {
                principal: principal.clone(),
                resource,
                resource_name: name.to_owned(),
                operation,
            };
            out.entry(binding).or_insert_with(|| g.source.clone());
        };
        for p in &g.permissions {
            let topic_ops: &[AclOperation] = match p {
                Permission::Read => &[AclOperation::Read, AclOperation::Describe],
                Permission::Write => &[AclOperation::Write, AclOperation::Describe],
                Permission::Admin => &[AclOperation::All],
            };
            for t in &ns.topics {
                for op in topic_ops {
                    add(AclResource::Topic, &t.name, *op);
                }
            }
            if *p == Permission::Read {
                for c in &ns.consumers {
                    add(AclResource::Group, &c.group, AclOperation::Read);
                }
            }
        }
    }
    out
}

/// The namespace's etcd records: the registry the data plane reads, and the
/// grant, alert and DR records when the namespace has any.
fn records(prefix: &str, ns: &NamespaceState) -> Vec<(String, serde_json::Value)> {
    let name = &ns.name;
    // Partition counts and replication stay Kafka's to tell: a derived count
    // is only a floor, and the live topic may have more.
    let topics: Vec<_> = ns
        .topics
        .iter()
        .map(|t| json!({"name": t.name, "dlq_of": t.dlq_of}))
        .collect();
    let mut out = vec![(
        etcd_key(prefix, &format!("namespaces/{name}")),
        json!({
            "name": name,
            "owner": ns.owner,
            "tier": ns.tier,
            "labels": ns.labels,
            "protected": ns.protected,
            "capacity": ns.capacity,
            "retention_ms": ns.retention_ms,
            "cache": ns.cache,
            "connection_pool_size": ns.connection_pool_size,
            "topics": topics,
            "consumers": ns.consumers,
            "managed_by": "sluice",
        }),
    )];
    if !ns.access.is_empty() {
        let grants: Vec<_> = ns
            .access
            .iter()
            .map(
                |g| json!({"kind": g.kind, "principal": g.principal, "permissions": g.permissions}),
            )
            .collect();
        out.push((
            etcd_key(prefix, &format!("grants/{name}")),
            json!({"namespace": name, "grants": grants}),
        ));
    }
    if !ns.alerts.is_empty() {
        let alerts: Vec<_> = ns
            .alerts
            .iter()
            .map(|a| {
                json!({
                    "name": a.name,
                    "condition": a.condition,
                    "for_ms": a.for_ms,
                    "severity": a.severity,
                    "labels": a.labels,
                    "annotations": a.annotations,
                })
            })
            .collect();
        out.push((
            etcd_key(prefix, &format!("alerts/{name}")),
            json!({"namespace": name, "alerts": alerts}),
        ));
    }
    if let Some(dr) = &ns.disaster_recovery {
        let mut record = serde_json::to_value(dr).expect("DR state is JSON");
        if let Some(map) = record.as_object_mut() {
            // Where the YAML says it would churn the record whenever lines move.
            map.remove("source");
            map.insert("namespace".into(), json!(name));
        }
        out.push((etcd_key(prefix, &format!("dr/{name}")), record));
    }
    out
}
