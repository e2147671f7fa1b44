//! The resolved model expanded into resources (README, "What a namespace
//! becomes"): topics, ACL bindings when the environment enforces them, etcd
//! records, DR buckets and their documents, and rule files when the
//! environment has a rules directory.

use std::collections::BTreeMap;

use serde_json::json;

use super::rules::{self, Rule, RuleGroup};
use super::{
    AclBinding, AclOperation, AclResource, Address, BucketValue, Kind, LifecycleValue,
    LockRetention, MANAGED_BY, Record, ReplicationValue, Resource, TopicValue, Value, owned_id,
};
use crate::config::namespace::Permission;
use crate::config::units::format_ms;
use crate::desired::{
    BackupState, Desired, DrState, GrantState, NamespaceState, PartitionsFrom, PrincipalKind,
    ReplicationState,
};
use crate::diag::Span;
use crate::records::{
    AlertRecord, AlertsRecord, BackupRecord, CacheRecord, ConsumerRecord, DrRecord, GrantRecord,
    GrantsRecord, ObjectLockRecord, RecordKind, RegistryRecord, ReplicationRecord, TopicRecord,
};

/// Every resource of the desired state, sorted by address.
pub fn expand(desired: &Desired) -> Vec<Resource> {
    let prefix = &desired.environment.etcd.prefix;
    let mut out = Vec::new();
    for ns in desired.namespaces.iter() {
        let resource = |address: Address, value: Value| Resource {
            address,
            namespace: ns.name.clone(),
            value,
            partitions_floor: false,
            protected: ns.protected,
            source: Some(ns.source.clone()),
            requires: Vec::new(),
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
        if desired.environment.alerts.is_some() && !ns.alerts.is_empty() {
            out.push(resource(
                Address::new(Kind::RuleFile, rules::file_name(&ns.name)),
                Value::Rules(rules::render(&rule_group(ns))),
            ));
        }
    }
    out.extend(dr_resources(desired));
    out.sort_by(|a, b| a.address.cmp(&b.address));
    out
}

/// The rule group of a namespace's alerts: each with the namespace, owner,
/// tier and severity as labels, and a summary and description unless the
/// alert writes its own.
pub fn rule_group(ns: &NamespaceState) -> RuleGroup {
    let rules = ns
        .alerts
        .iter()
        .map(|a| {
            let mut labels = a.labels.clone();
            labels.insert("namespace".into(), ns.name.clone());
            labels.insert("severity".into(), a.severity.as_str().into());
            labels.insert("tier".into(), ns.tier.as_str().into());
            if let Some(owner) = &ns.owner {
                labels.insert("owner".into(), owner.clone());
            }
            let mut annotations = a.annotations.clone();
            annotations
                .entry("summary".into())
                .or_insert_with(|| format!("{} in namespace {}", a.name, ns.name));
            annotations.entry("description".into()).or_insert_with(|| {
                let held = a
                    .for_ms
                    .map(|ms| format!(" for {}", format_ms(ms)))
                    .unwrap_or_default();
                format!(
                    "`{}` held{held} in namespace {} (owner: {}, tier: {}).",
                    a.condition,
                    ns.name,
                    ns.owner.as_deref().unwrap_or("none"),
                    ns.tier.as_str()
                )
            });
            annotations.insert("condition".into(), a.condition.to_string());
            Rule {
                alert: a.name.clone(),
                expr: a.expr.clone(),
                for_ms: a.for_ms,
                labels,
                annotations,
            }
        })
        .collect();
    RuleGroup {
        name: rules::group_name(&ns.name),
        rules,
    }
}

const DAY_MS: u64 = 86_400_000;

/// Whole days, rounded up: S3 lifecycle rules count in days.
fn days(ms: u64) -> u32 {
    u32::try_from(ms.div_ceil(DAY_MS).max(1)).unwrap_or(u32::MAX)
}

/// The statement that makes a namespace's prefix of the replica read-only:
/// writes and deletes are denied to everyone but the replication role.
pub fn read_only_statement(
    namespace: &str,
    bucket: &str,
    prefix: &str,
    role: &str,
) -> serde_json::Value {
    json!({
        "Sid": owned_id(namespace),
        "Effect": "Deny",
        "Principal": "*",
        "Action": ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"],
        "Resource": format!("arn:aws:s3:::{bucket}/{prefix}*"),
        "Condition": {"ArnNotEquals": {"aws:PrincipalArn": role}},
    })
}

/// The S3 side of each namespace's disaster recovery: its backup
/// bucket and the replica when the workspace declares it, and the rules and
/// statements sluice owns in their shared documents.
fn dr_resources(desired: &Desired) -> Vec<Resource> {
    let Some(s3) = &desired.environment.s3 else {
        return Vec::new();
    };
    let region = |name: &str| desired.buckets.get(name).unwrap_or(&s3.region).clone();
    let mut buckets = Buckets::default();
    let mut out = Vec::new();
    for ns in desired.namespaces.iter() {
        let Some(dr) = &ns.disaster_recovery else {
            continue;
        };
        let Some(backup) = &dr.backup else { continue };
        let lock = backup.object_lock.as_ref();
        buckets.add(
            ns,
            &backup.bucket,
            &region(&backup.bucket),
            lock.map(|l| LockRetention {
                mode: l.mode,
                days: l.days,
            }),
            lock.map_or(&backup.source, |l| &l.source),
        );
        let id = owned_id(&ns.name);
        if backup.retain_ms.is_some() || dr.pitr_window_ms.is_some() {
            out.push(owned(
                ns,
                Address::in_bucket(Kind::S3Lifecycle, &backup.bucket, &id),
                Value::Lifecycle(LifecycleValue {
                    // The namespace's own directory: namespaces sharing a
                    // prefix must not expire each other's runs.
                    prefix: backup.dir(&ns.name),
                    expiration_days: backup.retain_ms.map(days),
                    noncurrent_days: dr.pitr_window_ms.map(days),
                }),
                &backup.source,
            ));
        }
        let (Some(replica), Some(role)) = (&dr.replication, &s3.replication_role) else {
            continue;
        };
        if desired.buckets.contains_key(&replica.bucket) {
            let r = region(&replica.bucket);
            buckets.add(ns, &replica.bucket, &r, None, &replica.source);
        }
        out.extend(replication(ns, backup, replica, role));
    }
    out.extend(buckets.0.into_values());
    out
}

/// A resource sluice owns for a namespace, declared at `source`.
fn owned(ns: &NamespaceState, address: Address, value: Value, source: &Span) -> Resource {
    Resource {
        address,
        namespace: ns.name.clone(),
        value,
        partitions_floor: false,
        protected: ns.protected,
        source: Some(source.clone()),
        requires: Vec::new(),
    }
}

/// The DR buckets, each once however many namespaces use it.
#[derive(Default)]
struct Buckets(BTreeMap<String, Resource>);

impl Buckets {
    /// A namespace uses a bucket: protected when any of them is, with the
    /// strictest default retention any of them asks for.
    fn add(
        &mut self,
        ns: &NamespaceState,
        name: &str,
        region: &str,
        lock: Option<LockRetention>,
        source: &Span,
    ) {
        let r = self.0.entry(name.to_owned()).or_insert_with(|| {
            owned(
                ns,
                Address::bucket(name),
                Value::Bucket(BucketValue {
                    region: region.to_owned(),
                    versioning: true,
                    object_lock_enabled: false,
                    object_lock: None,
                    public_access_blocked: true,
                    default_encryption: true,
                    tags: [MANAGED_BY]
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                }),
                source,
            )
        });
        r.protected |= ns.protected;
        if let (Value::Bucket(b), Some(lock)) = (&mut r.value, lock) {
            r.source = Some(source.clone());
            b.object_lock_enabled = true;
            b.object_lock = Some(match b.object_lock.take() {
                Some(old) => LockRetention {
                    mode: old.mode.strictest(lock.mode),
                    days: old.days.max(lock.days),
                },
                None => lock,
            });
        }
    }
}

/// The replication rule into the replica, and the replica's read-only
/// statement when asked for; both need the replica bucket to exist.
fn replication(
    ns: &NamespaceState,
    backup: &BackupState,
    replica: &ReplicationState,
    role: &str,
) -> Vec<Resource> {
    let id = owned_id(&ns.name);
    let requires = vec![Address::bucket(&replica.bucket)];
    let mut out = vec![Resource {
        requires: requires.clone(),
        ..owned(
            ns,
            Address::in_bucket(Kind::S3Replication, &backup.bucket, &id),
            Value::Replication(ReplicationValue {
                prefix: backup.dir(&ns.name),
                destination_bucket: replica.bucket.clone(),
                role: role.to_owned(),
                enabled: true,
            }),
            &replica.source,
        )
    }];
    if replica.read_only {
        out.push(Resource {
            requires,
            ..owned(
                ns,
                Address::in_bucket(Kind::S3Policy, &replica.bucket, &id),
                Value::Statement(read_only_statement(
                    &ns.name,
                    &replica.bucket,
                    &backup.dir(&ns.name),
                    role,
                )),
                &replica.source,
            )
        });
    }
    out
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
fn records(prefix: &str, ns: &NamespaceState) -> Vec<(String, Record)> {
    let name = &ns.name;
    let registry = RegistryRecord {
        name: name.clone(),
        owner: ns.owner.clone(),
        tier: ns.tier,
        labels: ns.labels.clone(),
        protected: ns.protected,
        capacity: ns.capacity.clone(),
        retention_ms: ns.retention_ms,
        cache: ns.cache.as_ref().map(|c| CacheRecord {
            enabled: c.enabled,
            ttl_ms: c.ttl_ms,
        }),
        connection_pool_size: ns.connection_pool_size,
        topics: ns
            .topics
            .iter()
            .map(|t| TopicRecord {
                name: t.name.clone(),
                dlq_of: t.dlq_of.clone(),
            })
            .collect(),
        consumers: ns
            .consumers
            .iter()
            .map(|c| ConsumerRecord {
                group: c.group.clone(),
                max_lag: c.max_lag,
            })
            .collect(),
        managed_by: "sluice".into(),
    };
    let mut out = vec![(
        RecordKind::Registry.key(prefix, name),
        Record::of(&registry),
    )];
    if !ns.access.is_empty() {
        let grants = GrantsRecord {
            namespace: name.clone(),
            grants: ns
                .access
                .iter()
                .map(|g| GrantRecord {
                    kind: g.kind,
                    principal: g.principal.clone(),
                    permissions: g.permissions.clone(),
                })
                .collect(),
        };
        out.push((RecordKind::Grants.key(prefix, name), Record::of(&grants)));
    }
    if !ns.alerts.is_empty() {
        let alerts = AlertsRecord {
            namespace: name.clone(),
            alerts: ns
                .alerts
                .iter()
                .map(|a| AlertRecord {
                    name: a.name.clone(),
                    condition: a.condition.to_string(),
                    expr: a.expr.clone(),
                    for_ms: a.for_ms,
                    severity: a.severity,
                    labels: a.labels.clone(),
                    annotations: a.annotations.clone(),
                })
                .collect(),
        };
        out.push((RecordKind::Alerts.key(prefix, name), Record::of(&alerts)));
    }
    if let Some(dr) = &ns.disaster_recovery {
        out.push((
            RecordKind::Dr.key(prefix, name),
            Record::of(&dr_record(name, dr)),
        ));
    }
    out
}

/// The DR record: the resolved policy, without where the YAML says it (that
/// would churn the record whenever lines move).
fn dr_record(namespace: &str, dr: &DrState) -> DrRecord {
    DrRecord {
        namespace: namespace.to_owned(),
        rpo_ms: dr.rpo_ms,
        rto_ms: dr.rto_ms,
        backup: dr.backup.as_ref().map(|b| BackupRecord {
            bucket: b.bucket.clone(),
            prefix: b.prefix.clone(),
            schedule: b.schedule.clone(),
            retain_ms: b.retain_ms,
            incremental: b.incremental,
            object_lock: b.object_lock.as_ref().map(|l| ObjectLockRecord {
                mode: l.mode,
                days: l.days,
            }),
        }),
        replication: dr.replication.as_ref().map(|r| ReplicationRecord {
            bucket: r.bucket.clone(),
            region: r.region.clone(),
            read_only: r.read_only,
        }),
        pitr_window_ms: dr.pitr_window_ms,
    }
}
