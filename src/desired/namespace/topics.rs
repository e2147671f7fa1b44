//! A namespace's topics: names, partitions (explicit, or derived from
//! capacity), replication and configs, with their DLQs.

use crate::config::namespace::{Capacity, Namespace, TopicSpec, dlq_name};
use crate::config::parse::Doc;
use crate::config::workspace::Guards;
use crate::config::{Loc, Located};
use crate::desired::Configs;
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

/// The most partitions a topic may have, and what sets that limit.
pub fn partition_limit(guards: &Guards) -> (u32, &'static str) {
    if guards.max_partitions_per_topic < MAX_PARTITIONS {
        (
            guards.max_partitions_per_topic,
            "`guards.max_partitions_per_topic`",
        )
    } else {
        (MAX_PARTITIONS, "Kafka's limit")
    }
}

/// A partition count above the limit is refused here, where it was written
/// (or the capacity it was derived from), and never reaches a broker.
fn check_partitions(
    n: u64,
    why: &Partitions,
    cx: &Ctx<'_>,
    at: (&str, Loc),
    diags: &mut Vec<Diagnostic>,
) {
    let (max, limit) = partition_limit(cx.guards);
    if n <= u64::from(max) {
        return;
    }
    let raise = if max < MAX_PARTITIONS {
        ", or raise `guards.max_partitions_per_topic` in sluice.yaml"
    } else {
        ""
    };
    let (message, hint) = match why {
        Partitions::Derived(why) => (
            format!("the capacity needs {n} partitions ({why}), above {limit} of {max}"),
            format!(
                "lower `capacity`, or raise `defaults.partition_write_rps` and `partition_read_rps`{raise}"
            ),
        ),
        Partitions::Written => (
            format!("`partitions: {n}` is above {limit} of {max} partitions"),
            format!("lower `partitions`{raise}"),
        ),
    };
    diags.push(
        Diagnostic::error("invalid-value", message)
            .at(at.0, at.1)
            .hint(hint),
    );
}

/// How a partition count came about, for the message when it is too high.
enum Partitions {
    Written,
    /// The arithmetic of the rate that needs the most partitions.
    Derived(String),
}

/// Partitions from capacity: enough for both the write and the read rate,
/// never fewer than the default.
fn derived_partitions(
    capacity: Option<&Capacity>,
    d: &Effective,
) -> (u64, PartitionsFrom, Partitions) {
    let Some(c) = capacity else {
        return (
            d.partitions.into(),
            PartitionsFrom::Default,
            Partitions::Written,
        );
    };
    let (w, r) = (
        c.write_rps.div_ceil(d.partition_write_rps),
        c.read_rps.div_ceil(d.partition_read_rps),
    );
    let why = if w >= r {
        format!(
            "write_rps {} / partition_write_rps {} = {w}",
            c.write_rps, d.partition_write_rps
        )
    } else {
        format!(
            "read_rps {} / partition_read_rps {} = {r}",
            c.read_rps, d.partition_read_rps
        )
    };
    (
        w.max(r).max(d.partitions.into()),
        PartitionsFrom::Capacity,
        Partitions::Derived(why),
    )
}

/// Below this, retention deletes data about as soon as it is written.
const MIN_RETENTION_MS: i64 = 60_000;

/// A retention under a minute is refused unless the topic asks for it, at
/// the place the retention was written.
fn check_retention(
    config: &Configs,
    spec: &TopicSpec,
    ns: &Namespace,
    (file, topic): (&str, Loc),
    diags: &mut Vec<Diagnostic>,
) {
    let Some(ms) = config
        .get("retention.ms")
        .and_then(|v| v.parse::<i64>().ok())
    else {
        return;
    };
    if !(0..MIN_RETENTION_MS).contains(&ms) || spec.allow_short_retention {
        return;
    }
    let (at, written) = match (spec.config.get("retention.ms"), &ns.spec.retention) {
        (Some(v), _) => (v.loc, "this topic's `retention.ms`"),
        (None, Some(r)) => (r.loc(), "the namespace's `retention`"),
        (None, None) => (topic, "the workspace's `defaults.retention`"),
    };
    diags.push(
        Diagnostic::error(
            "short-retention",
            format!("{written} keeps messages for {ms} ms: Kafka deletes them almost as soon as they are written"),
        )
        .at(file, at)
        .hint("write a retention of at least `1m` (`7d` is common), or set `allow_short_retention: true` on the topic if losing data is meant"),
    );
}

pub(super) fn resolve_topics(
    doc: &Doc<Namespace>,
    cx: &Ctx<'_>,
    base: &Configs,
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
        let (partitions, partitions_from, why) = match &spec.partitions {
            Some(p) if nonzero(p, "partitions", true, file, diags) => (
                p.value.into(),
                PartitionsFrom::Explicit,
                Partitions::Written,
            ),
            _ => derived_partitions(ns.spec.capacity.as_ref(), cx.defaults),
        };
        let at = spec.partitions.as_ref().map_or(loc, |p| p.loc);
        check_partitions(partitions, &why, cx, (file, at), diags);
        let partitions = u32::try_from(partitions).unwrap_or(u32::MAX);
        let replication_factor = match &spec.replication_factor {
            Some(rf) if nonzero(rf, "replication_factor", true, file, diags) => {
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
        check_retention(&config, spec, ns, (file, loc), diags);
        let source = Span::new(file, loc);
        if spec.dlq {
            // A DLQ keeps the namespace's retention and sizes, not the topic's own
            // configs (a compacted topic's DLQ must not compact away failures).
            topics.push(TopicState {
                name: dlq_name(&name),
                namespace: ns.metadata.name.value.clone(),
                partitions: cx.defaults.partitions,
                partitions_from: PartitionsFrom::Default,
                replication_factor,
                config: base.clone(),
                dlq_of: Some(name.clone()),
                allow_repartition: false,
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
            allow_repartition: spec.allow_repartition,
            source,
        });
    }
    // Declared topics first, then DLQs, so that collisions blame the DLQ.
    topics.sort_by_key(|t| t.dlq_of.is_some());
    topics
}
