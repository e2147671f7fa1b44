//! Alerts: conditions compiled to PromQL ([`promql`]), and one Prometheus
//! rule file per namespace, `sluice-<namespace>.yml`, holding one rule group
//! of the same name.
//!
//! The file is written byte for byte the same from the same desired state
//! (sorted keys, fixed quoting), so plans never churn and any edit of it is
//! drift.

pub mod promql;

use std::fmt::Write;

use crate::desired::{AlertState, NamespaceState};

/// The rule group, and the file's stem: `sluice-<namespace>`.
pub fn group_name(namespace: &str) -> String {
    format!("sluice-{namespace}")
}

/// The rule file's name in the rules directory.
pub fn file_name(namespace: &str) -> String {
    format!("{}.yml", group_name(namespace))
}

/// Labels sluice sets on every rule; an alert's own labels may not replace them.
pub const RESERVED_LABELS: &[&str] = &["namespace", "owner", "severity", "tier"];

/// A valid Prometheus label (and metric) name: `[a-zA-Z_][a-zA-Z0-9_]*`,
/// which is also how the condition language spells a metric.
pub fn is_prometheus_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The rule file of a namespace with alerts.
pub fn rule_file(ns: &NamespaceState) -> String {
    let mut out = String::new();
    out.push_str("# Managed by sluice: edits are drift and are undone by the next apply.\n");
    out.push_str("groups:\n");
    let _ = writeln!(out, "  - name: {}", quote(&group_name(&ns.name)));
    out.push_str("    rules:\n");
    for a in &ns.alerts {
        rule(&mut out, ns, a);
    }
    out
}

fn rule(out: &mut String, ns: &NamespaceState, a: &AlertState) {
    let _ = writeln!(out, "      - alert: {}", quote(&a.name));
    let _ = writeln!(out, "        expr: {}", quote(&a.expr));
    if let Some(ms) = a.for_ms {
        let _ = writeln!(out, "        for: {}", duration(ms));
    }
    let mut labels = a.labels.clone();
    labels.insert("namespace".into(), ns.name.clone());
    labels.insert("severity".into(), a.severity.as_str().into());
    labels.insert("tier".into(), ns.tier.as_str().into());
    if let Some(owner) = &ns.owner {
        labels.insert("owner".into(), owner.clone());
    }
    out.push_str("        labels:\n");
    for (k, v) in &labels {
        let _ = writeln!(out, "          {k}: {}", quote(v));
    }
    let mut annotations = a.annotations.clone();
    annotations
        .entry("summary".into())
        .or_insert_with(|| format!("{} in namespace {}", a.name, ns.name));
    annotations.entry("description".into()).or_insert_with(|| {
        let held = a
            .for_ms
            .map(|ms| format!(" for {}", duration(ms)))
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
    out.push_str("        annotations:\n");
    for (k, v) in &annotations {
        let _ = writeln!(out, "          {k}: {}", quote(v));
    }
}

/// A YAML scalar that reads back as exactly `s`: single-quoted (only `'`
/// needs doubling, so PromQL keeps its backslashes readable), or
/// double-quoted with escapes when it spans lines.
fn quote(s: &str) -> String {
    if s.chars().any(char::is_control) {
        serde_json::to_string(s).expect("strings are JSON")
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// A Prometheus duration: `90000` ms is `1m30s`.
pub fn duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut rest = ms;
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ] {
        if rest >= size {
            let _ = write!(out, "{}{unit}", rest / size);
            rest %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_prometheus_writes_them() {
        assert_eq!(duration(300_000), "5m");
        assert_eq!(duration(90_000), "1m30s");
        assert_eq!(duration(86_400_000 + 1), "1d1ms");
        assert_eq!(duration(0), "0s");
    }

    #[test]
    fn quoting_keeps_every_character() {
        assert_eq!(quote(r#"x{a=~"b\\.c"}"#), r#"'x{a=~"b\\.c"}'"#);
        assert_eq!(quote("it's"), "'it''s'");
        assert_eq!(quote("a\nb"), r#""a\nb""#);
    }
}
