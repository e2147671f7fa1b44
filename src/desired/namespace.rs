//! One namespace in one environment: checked and resolved.

use std::collections::{BTreeMap, BTreeSet};

use crate::alerts::{
    self,
    promql::{self, Refs, Subjects},
};
use crate::config::condition::{self, Scope};
use crate::config::namespace::{Alert, Capacity, DrPolicy, Namespace, TopicSpec};
use crate::config::parse::Doc;
use crate::config::units::millis;
use crate::config::workspace::{DrCatalog, Guards};
use crate::config::{Loc, Located};
use crate::diag::{Diagnostic, Span};

use super::env::{Effective, rf_above_brokers};
use super::model::*;
use super::topic_config;
use super::units::{nonzero, parse_unit};

/// What a namespace is resolved against.
pub struct Ctx<'a> {
    pub env: &'a str,
    pub brokers: u16,
    pub defaults: &'a Effective,
    pub guards: &'a Guards,
    pub custom_metrics: &'a [&'a str],
    /// PromQL per metric, overriding the built-in mapping.
    pub metrics: &'a BTreeMap<String, String>,
    pub catalog: Option<&'a DrCatalog>,
    pub ws_file: &'a str,
}

/// Longest namespace name: it becomes part of etcd keys, S3 rule IDs and rule group names.
const MAX_NAME: usize = 63;
/// Kafka's limit on topic names.
const MAX_TOPIC: usize = 249;

pub fn resolve(doc: &Doc<Namespace>, cx: &Ctx<'_>, diags: &mut Vec<Diagnostic>) -> NamespaceState {
    let ns = &doc.value;
    let file = doc.file.as_str();
    let name = ns.metadata.name.value.clone();
    check_name(&ns.metadata.name, file, diags);
    let spec = &ns.spec;
    let retention_ms = parse_unit(spec.retention.as_ref(), file, diags)
        .map(millis)
        .or(cx.defaults.retention_ms);
    let max_message_bytes = match spec.max_message_bytes.as_ref() {
        Some(size) => parse_unit(Some(size), file, diags).filter(|b| {
            let fits = i32::try_from(*b).is_ok();
            if !fits {
                diags.push(
                    Diagnostic::error(
                        "invalid-size",
                        format!(
                            "max_message_bytes {b} is above Kafka's limit of {} bytes",
                            i32::MAX
                        ),
                    )
                    .at(file, size.loc())
                    .hint("Kafka stores it as a 32-bit integer; use at most `2047MiB`"),
                );
            }
            fits
        }),
        None => cx.defaults.max_message_bytes,
    };
    let compression = spec.compression.or(cx.defaults.compression);

    // Settings every topic of the namespace gets, before its own `config`.
    let mut base = BTreeMap::new();
    if let Some(ms) = retention_ms {
        base.insert("retention.ms".to_owned(), ms.to_string());
    }
    if let Some(c) = compression {
        base.insert("compression.type".to_owned(), c.kafka_value().to_owned());
    }
    if let Some(b) = max_message_bytes {
        base.insert("max.message.bytes".to_owned(), b.to_string());
    }

    let topics = resolve_topics(doc, cx, &base, diags);
    let consumers = resolve_consumers(ns, file, diags);
    let access = resolve_access(ns, file, diags);
    let disaster_recovery = spec
        .disaster_recovery
        .as_ref()
        .map(|dr| resolve_dr(doc, dr, cx, diags));
    let rpo_ms = disaster_recovery.as_ref().and_then(|d| d.rpo_ms);
    let alerts = resolve_alerts(doc, cx, &topics, &consumers, rpo_ms, diags);
    let cache = spec.cache.as_ref().map(|c| CacheState {
        enabled: c.enabled,
        ttl_ms: parse_unit(c.ttl.as_ref(), file, diags).map(millis),
    });

    NamespaceState {
        protected: ns.metadata.protected || cx.guards.protected_namespaces.contains(&name),
        source: Span::new(file, ns.metadata.name.loc),
        owner: ns.metadata.owner.clone(),
        tier: ns.metadata.tier,
        labels: ns.metadata.labels.clone(),
        capacity: spec.capacity.clone(),
        retention_ms,
        compression,
        max_message_bytes,
        cache,
        connection_pool_size: spec.connection_pool_size,
        topics,
        consumers,
        access,
        alerts,
        disaster_recovery,
        name,
    }
}

/// Whether a namespace applies to an environment.
pub fn applies(ns: &Namespace, env: &str) -> bool {
    ns.metadata
        .environments
        .as_ref()
        .is_none_or(|envs| envs.iter().any(|e| e.value == env))
}

fn check_name(name: &Located<String>, file: &str, diags: &mut Vec<Diagnostic>) {
    let n = name.value.as_str();
    let valid = !n.is_empty()
        && n.len() <= MAX_NAME
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !n.starts_with('-')
        && !n.ends_with('-');
    if !valid {
        diags.push(
            Diagnostic::error("invalid-name", format!("`{n}` is not a valid namespace name"))
                .at(file, name.loc)
                .hint(format!("use lowercase letters, digits and `-`, at most {MAX_NAME} characters, starting and ending with a letter or digit")),
        );
    }
}

fn check_topic_name(name: &str, file: &str, loc: Loc, diags: &mut Vec<Diagnostic>) {
    let valid = !name.is_empty()
        && name.len() <= MAX_TOPIC
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if !valid {
        diags.push(
            Diagnostic::error(
                "invalid-name",
                format!("`{name}` is not a valid Kafka topic name"),
            )
            .at(file, loc)
            .hint(format!(
                "use letters, digits, `.`, `_` and `-`, at most {MAX_TOPIC} characters"
            )),
        );
    }
}

/// Partitions from capacity: enough for both the write and the read rate,
/// never fewer than the default.
fn derived_partitions(capacity: Option<&Capacity>, d: &Effective) -> (u32, PartitionsFrom) {
    let Some(c) = capacity else {
        return (d.partitions, PartitionsFrom::Default);
    };
    let need = c
        .write_rps
        .div_ceil(d.partition_write_rps)
        .max(c.read_rps.div_ceil(d.partition_read_rps));
    let n = u32::try_from(need).unwrap_or(u32::MAX).max(d.partitions);
    (n, PartitionsFrom::Capacity)
}

fn resolve_topics(
    doc: &Doc<Namespace>,
    cx: &Ctx<'_>,
    base: &BTreeMap<String, String>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<TopicState> {
    let ns = &doc.value;
    let file = doc.file.as_str();
    let implicit = [Located::new(TopicSpec::default(), ns.metadata.name.loc)];
    let specs: &[Located<TopicSpec>] = ns.spec.topics.as_deref().unwrap_or(&implicit);
    let mut topics = Vec::new();
    for spec in specs {
        let (name, loc) = match &spec.name {
            Some(n) => (n.value.clone(), n.loc),
            None => (ns.metadata.name.value.clone(), spec.loc),
        };
        check_topic_name(&name, file, loc, diags);
        let (partitions, partitions_from) = match &spec.partitions {
            Some(p) if nonzero(p, "partitions", file, diags) => (p.value, PartitionsFrom::Explicit),
            _ => derived_partitions(ns.spec.capacity.as_ref(), cx.defaults),
        };
        let replication_factor = match &spec.replication_factor {
            Some(rf) if nonzero(rf, "replication_factor", file, diags) => {
                if rf.value > cx.brokers {
                    diags.push(rf_above_brokers(rf.value, cx.brokers, cx.env).at(file, rf.loc).hint(format!(
                        "lower it to at most {}, or limit the namespace with `metadata.environments`",
                        cx.brokers
                    )));
                }
                rf.value
            }
            _ => cx.defaults.replication_factor,
        };
        let mut config = base.clone();
        for (key, value) in &spec.config {
            topic_config::check_key(key, value, file, diags);
            if let Some(v) = topic_config::value(key, value, file, diags) {
                config.insert(key.clone(), v);
            }
        }
        if let Some(min_isr) = spec.config.get("min.insync.replicas")
            && let Ok(n) = min_isr.value.0.trim().parse::<u16>()
            && n > replication_factor
        {
            diags.push(
                Diagnostic::error("invalid-topic-config", format!("min.insync.replicas {n} is above the replication factor {replication_factor}"))
                    .at(file, min_isr.loc)
                    .hint("producers with acks=all could never write; lower it to at most the replication factor"),
            );
        }
        let source = Span::new(file, loc);
        if spec.dlq {
            // A DLQ keeps the namespace's retention and sizes, not the topic's own
            // configs (a compacted topic's DLQ must not compact away failures).
            topics.push(TopicState {
                name: format!("{name}.dlq"),
                namespace: ns.metadata.name.value.clone(),
                partitions: cx.defaults.partitions,
                partitions_from: PartitionsFrom::Default,
                replication_factor,
                config: base.clone(),
                dlq_of: Some(name.clone()),
                source: source.clone(),
            });
        }
        topics.push(TopicState {
            name,
            namespace: ns.metadata.name.value.clone(),
            partitions,
            partitions_from,
            replication_factor,
            config,
            dlq_of: None,
            source,
        });
    }
    // Declared topics first, then DLQs, so that collisions blame the DLQ.
    topics.sort_by_key(|t| t.dlq_of.is_some());
    topics
}

fn resolve_consumers(
    ns: &Namespace,
    file: &str,
    diags: &mut Vec<Diagnostic>,
) -> Vec<ConsumerState> {
    let mut seen: BTreeMap<&str, Loc> = BTreeMap::new();
    let mut out = Vec::new();
    for c in &ns.spec.consumers {
        if c.group.trim().is_empty() {
            diags.push(
                Diagnostic::error("invalid-value", "a consumer `group` is empty")
                    .at(file, c.group.loc)
                    .hint("give the Kafka consumer group id"),
            );
            continue;
        }
        if let Some(first) = seen.insert(&c.group.value, c.group.loc) {
            diags.push(
                Diagnostic::error(
                    "duplicate-consumer",
                    format!("consumer group `{}` is listed twice", c.group.value),
                )
                .at(file, c.group.loc)
                .related(file, first, "first listed here")
                .hint("list each group once"),
            );
            continue;
        }
        out.push(ConsumerState {
            group: c.group.value.clone(),
            max_lag: c.max_lag,
        });
    }
    out
}

fn resolve_access(ns: &Namespace, file: &str, diags: &mut Vec<Diagnostic>) -> Vec<GrantState> {
    let mut out = Vec::new();
    for g in &ns.spec.access {
        let (kind, principal) = match (&g.service, &g.team) {
            (Some(s), None) => (PrincipalKind::Service, s),
            (None, Some(t)) => (PrincipalKind::Team, t),
            _ => {
                diags.push(
                    Diagnostic::error(
                        "invalid-grant",
                        "an access grant must name exactly one of `service` or `team`",
                    )
                    .at(file, g.loc)
                    .hint("split it into one grant per principal"),
                );
                continue;
            }
        };
        if principal.trim().is_empty() || g.permissions.is_empty() {
            diags.push(
                Diagnostic::error(
                    "invalid-grant",
                    format!("the grant to `{principal}` names no principal or no permissions"),
                )
                .at(file, g.loc)
                .hint("give a principal name and at least one of `read`, `write`, `admin`"),
            );
            continue;
        }
        let permissions: BTreeSet<_> = g.permissions.iter().copied().collect();
        out.push(GrantState {
            kind,
            principal: principal.clone(),
            permissions: permissions.into_iter().collect(),
            source: Span::new(file, g.loc),
        });
    }
    out
}

fn resolve_alerts(
    doc: &Doc<Namespace>,
    cx: &Ctx<'_>,
    topics: &[TopicState],
    consumers: &[ConsumerState],
    rpo_ms: Option<u64>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<AlertState> {
    let ns = &doc.value;
    let file = doc.file.as_str();
    let subjects = Subjects {
        namespace: &ns.metadata.name.value,
        topics: topics.iter().map(|t| t.name.as_str()).collect(),
        dlq_topics: topics
            .iter()
            .filter(|t| t.dlq_of.is_some())
            .map(|t| t.name.as_str())
            .collect(),
        groups: consumers.iter().map(|c| c.group.as_str()).collect(),
    };
    let refs = Refs {
        write_capacity: ns.spec.capacity.as_ref().map(|c| c.write_rps),
        read_capacity: ns.spec.capacity.as_ref().map(|c| c.read_rps),
        rpo_ms,
    };
    let scope = Scope {
        custom_metrics: cx.custom_metrics,
        has_capacity: ns.spec.capacity.is_some(),
        has_rpo: ns
            .spec
            .disaster_recovery
            .as_ref()
            .is_some_and(|d| d.rpo.is_some()),
    };
    let mut seen: BTreeMap<&str, Loc> = BTreeMap::new();
    let mut out = Vec::new();
    for a in &ns.spec.alerts {
        if let Some(first) = seen.insert(&a.name.value, a.name.loc) {
            diags.push(
                Diagnostic::error(
                    "duplicate-alert",
                    format!(
                        "alert `{}` is declared twice in namespace `{}`",
                        a.name.value, ns.metadata.name.value
                    ),
                )
                .at(file, a.name.loc)
                .related(file, first, "first declared here")
                .hint("alert names must be unique within a namespace"),
            );
        }
        let for_ms = parse_unit(a.for_.as_ref(), file, diags).map(millis);
        check_alert_labels(a, file, diags);
        match condition::parse(&a.condition.value, &scope) {
            Ok(condition) => match promql::compile(&condition, cx.metrics, &subjects, &refs) {
                Ok(expr) => out.push(alert_state(a, condition, expr, for_ms, file)),
                Err(e) => diags.push(
                    Diagnostic::error(
                        "invalid-condition",
                        format!("alert `{}`: {}", a.name.value, e.message),
                    )
                    .at(file, a.condition.loc)
                    .hint(e.hint),
                ),
            },
            Err(e) => {
                let mut d = Diagnostic::error(
                    "invalid-condition",
                    format!("alert `{}`: {}", a.name.value, e.message),
                )
                .at(file, doc.column_in_value(a.condition.loc, e.offset));
                if let Some(h) = e.hint {
                    d = d.hint(h);
                }
                diags.push(d);
            }
        }
    }
    out
}

/// Alert labels and annotations become Prometheus label names, and sluice
/// sets its own labels itself.
fn check_alert_labels(a: &Alert, file: &str, diags: &mut Vec<Diagnostic>) {
    for (what, map) in [("label", &a.labels), ("annotation", &a.annotations)] {
        for k in map.keys() {
            if !alerts::is_prometheus_name(k) {
                diags.push(
                    Diagnostic::error(
                        "invalid-label",
                        format!(
                            "alert `{}`: `{k}` is not a valid Prometheus {what} name",
                            a.name.value
                        ),
                    )
                    .at(file, a.name.loc)
                    .hint("use letters, digits and `_`, not starting with a digit"),
                );
            } else if what == "label" && alerts::RESERVED_LABELS.contains(&k.as_str()) {
                diags.push(
                    Diagnostic::error(
                        "reserved-label",
                        format!("alert `{}`: sluice sets the `{k}` label itself", a.name.value),
                    )
                    .at(file, a.name.loc)
                    .hint("set it on the namespace (`metadata.owner`, `metadata.tier`) or the alert (`severity`), or pick another label name"),
                );
            }
        }
    }
}

fn alert_state(
    a: &Alert,
    condition: condition::Condition,
    expr: String,
    for_ms: Option<u64>,
    file: &str,
) -> AlertState {
    AlertState {
        name: a.name.value.clone(),
        condition,
        expr,
        for_ms,
        severity: a.severity,
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        source: Span::new(file, a.name.loc),
    }
}

fn resolve_dr(
    doc: &Doc<Namespace>,
    dr: &DrPolicy,
    cx: &Ctx<'_>,
    diags: &mut Vec<Diagnostic>,
) -> DrState {
    let file = doc.file.as_str();
    let ns_name = &doc.value.metadata.name.value;
    let rpo_ms = parse_unit(dr.rpo.as_ref(), file, diags).map(millis);
    let rto_ms = parse_unit(dr.rto.as_ref(), file, diags).map(millis);
    let pitr_window_ms = dr
        .pitr
        .as_ref()
        .and_then(|p| parse_unit(Some(&p.window), file, diags))
        .map(millis);
    let declared = cx.catalog.map(|c| &c.buckets).filter(|b| !b.is_empty());
    let regions = cx.catalog.map(|c| &c.regions).filter(|r| !r.is_empty());
    let check_bucket = |bucket: &Located<String>, diags: &mut Vec<Diagnostic>| {
        if let Some(declared) = declared
            && !declared.contains_key(&bucket.value)
        {
            let names: Vec<_> = declared.keys().map(|b| format!("`{b}`")).collect();
            diags.push(
                Diagnostic::error(
                    "undeclared-bucket",
                    format!("bucket `{}` is not declared in the workspace", bucket.value),
                )
                .at(file, bucket.loc)
                .hint(format!(
                    "use one of {}, or declare it under `spec.disaster_recovery.buckets` in {}",
                    names.join(", "),
                    cx.ws_file
                )),
            );
        }
    };

    let backup = dr.backup.as_ref().map(|b| {
        check_bucket(&b.bucket, diags);
        let schedule = b
            .schedule
            .as_ref()
            .and_then(|s| parse_unit(Some(s), file, diags).map(|_| s.text().trim().to_owned()));
        let object_lock = b.object_lock.as_ref().map(|l| {
            nonzero(&l.days, "object_lock.days", file, diags);
            ObjectLockState {
                mode: l.mode,
                days: l.days.value,
                source: Span::new(file, l.days.loc),
            }
        });
        BackupState {
            bucket: b.bucket.value.clone(),
            prefix: b.prefix.clone().unwrap_or_else(|| format!("{ns_name}/")),
            schedule,
            retain_ms: parse_unit(b.retain.as_ref(), file, diags).map(millis),
            incremental: b.incremental,
            object_lock,
            source: Span::new(file, b.bucket.loc),
        }
    });

    let replication = dr.replication.as_ref().map(|r| {
        check_bucket(&r.bucket, diags);
        let region_declared =
            regions.is_none_or(|regions| regions.iter().any(|reg| reg.value == r.region.value));
        if let Some(regions) = regions
            && !region_declared
        {
            let names: Vec<_> = regions.iter().map(|r| format!("`{}`", r.value)).collect();
            diags.push(
                Diagnostic::error(
                    "undeclared-region",
                    format!(
                        "region `{}` is not declared in the workspace",
                        r.region.value
                    ),
                )
                .at(file, r.region.loc)
                .hint(format!(
                    "use one of {}, or add it to `spec.disaster_recovery.regions` in {}",
                    names.join(", "),
                    cx.ws_file
                )),
            );
        }
        if region_declared
            && let Some(declared) = declared
            && let Some(bucket) = declared.get(&r.bucket.value)
            && bucket.region.value != r.region.value
        {
            diags.push(
                Diagnostic::error(
                    "region-mismatch",
                    format!(
                        "bucket `{}` is declared in region `{}`, not `{}`",
                        r.bucket.value, bucket.region.value, r.region.value
                    ),
                )
                .at(file, r.region.loc)
                .related(cx.ws_file, bucket.region.loc, "declared here")
                .hint(format!("set `region: {}`", bucket.region.value)),
            );
        }
        match &dr.backup {
            None => diags.push(
                Diagnostic::error(
                    "replication-without-backup",
                    "`replication` copies the backup bucket, but there is no `backup`",
                )
                .at(file, r.bucket.loc)
                .hint("add `disaster_recovery.backup` with the bucket to replicate"),
            ),
            Some(b) if b.bucket.value == r.bucket.value => diags.push(
                Diagnostic::error(
                    "replication-into-itself",
                    format!("bucket `{}` would replicate into itself", r.bucket.value),
                )
                .at(file, r.bucket.loc)
                .related(file, b.bucket.loc, "the backup bucket")
                .hint("replicate into a bucket in another region"),
            ),
            Some(_) => {}
        }
        ReplicationState {
            bucket: r.bucket.value.clone(),
            region: r.region.value.clone(),
            read_only: r.read_only,
            source: Span::new(file, r.bucket.loc),
        }
    });

    DrState {
        rpo_ms,
        rto_ms,
        backup,
        replication,
        pitr_window_ms,
        source: Span::new(file, doc.value.metadata.name.loc),
    }
}
