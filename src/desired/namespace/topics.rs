//! A namespace's topics: names, partitions (explicit, or derived from
//! capacity), replication and configs, with their DLQs.

use std::collections::BTreeMap;

use crate::config::namespace::{Capacity, Namespace, TopicSpec};
use crate::config::parse::Doc;
use crate::config::{Loc, Located};
use crate::diag::{Diagnostic, Span};

use super::Ctx;
use crate::desired::env::{Effective, rf_above_brokers};
use crate::desired::model::*;
use crate::desired::topic_config;
use crate::desired::units::nonzero;

/// Kafka's limit on topic names.
const MAX_TOPIC: usize = 249;

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

/// Kafka counts partitions in a signed 32-bit integer.
pub const MAX_PARTITIONS: u32 = i32::MAX as u32;

/// A partition count Kafka cannot hold is refused here, where it was
/// written, and never reaches a broker as a wrapped number.
fn check_partitions(
    n: u32,
    from: PartitionsFrom,
    file: &str,
    loc: Loc,
    diags: &mut Vec<Diagnostic>,
) {
    if n <= MAX_PARTITIONS {
        return;
    }
    let (message, hint) = match from {
        PartitionsFrom::Capacity => (
            format!("the capacity needs more partitions than Kafka's limit of {MAX_PARTITIONS}"),
            "lower `capacity`, or raise `defaults.partition_write_rps` and `partition_read_rps`",
        ),
        _ => (
            format!("`partitions: {n}` is above Kafka's limit of {MAX_PARTITIONS} partitions"),
            "lower `partitions`",
        ),
    };
    diags.push(
        Diagnostic::error("invalid-value", message)
            .at(file, loc)
            .hint(hint),
    );
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

pub(super) fn resolve_topics(
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
        let at = spec.partitions.as_ref().map_or(loc, |p| p.loc);
        check_partitions(partitions, partitions_from, file, at, diags);
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
