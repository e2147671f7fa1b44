//! A namespace's alerts: conditions parsed and compiled to PromQL for its
//! topics, groups and settings; labels and annotations checked.

use std::collections::BTreeMap;

use crate::config::Loc;
use crate::config::condition::{self, Scope};
use crate::config::namespace::{Alert, Namespace};
use crate::config::parse::Doc;
use crate::config::units::millis;
use crate::diag::{Diagnostic, Span};

use super::Ctx;
use crate::desired::model::*;
use crate::desired::promql::{self, Refs, Subjects};
use crate::desired::units::parse_unit;

pub(super) fn resolve_alerts(
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
            if !promql::is_prometheus_name(k) {
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
            } else if what == "label" && promql::RESERVED_LABELS.contains(&k.as_str()) {
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
