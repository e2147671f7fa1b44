//! One namespace in one environment: checked and resolved. Its topics,
//! alerts and DR policy each have a module; the rest is here.

mod alerts;
mod dr;
mod topics;

pub use topics::partition_limit;

use std::collections::{BTreeMap, BTreeSet};

use crate::config::namespace::Namespace;
use crate::config::parse::Doc;
use crate::config::units::millis;
use crate::config::workspace::{DrCatalog, Guards};
use crate::config::{Loc, Located};
use crate::desired::Configs;
use crate::diag::{Diagnostic, Span};

use super::env::Effective;
use super::model::*;
use super::units::parse_unit;
use alerts::resolve_alerts;
use dr::resolve_dr;
use topics::resolve_topics;

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

pub fn resolve(doc: &Doc<Namespace>, cx: &Ctx<'_>, diags: &mut Vec<Diagnostic>) -> NamespaceState {
    let ns = &doc.value;
    let file = doc.file.as_str();
    let name = ns.metadata.name.value.clone();
    check_name(&ns.metadata.name, file, diags);
    let spec = &ns.spec;
    let retention_ms =
        parse_unit(spec.retention.as_ref(), file, diags).or(cx.defaults.retention_ms);
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
    let mut base = Configs::new();
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
    if !crate::desired::is_name(n, MAX_NAME, b"-") {
        diags.push(
            Diagnostic::error("invalid-name", format!("`{n}` is not a valid namespace name"))
                .at(file, name.loc)
                .hint(format!("use lowercase letters, digits and `-`, at most {MAX_NAME} characters, starting and ending with a letter or digit")),
        );
    }
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
