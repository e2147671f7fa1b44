//! Prometheus rule files: one per namespace, `sluice-<namespace>.yml`, holding
//! one rule group of the same name. [`render`] writes a plain [`RuleGroup`];
//! [`super::expand`] builds it from the namespace's alerts.
//!
//! The file is written byte for byte the same from the same group (sorted
//! keys, fixed quoting), so plans never churn and any edit of it is drift.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::config::units::format_ms;

/// A rule group as Prometheus loads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleGroup {
    pub name: String,
    pub rules: Vec<Rule>,
}

/// One alerting rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub alert: String,
    pub expr: String,
    /// How long the expression must hold, in milliseconds.
    pub for_ms: Option<u64>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

/// The rule group of a namespace, and the file's stem: `sluice-<namespace>`.
pub fn group_name(namespace: &str) -> String {
    super::owned_id(namespace)
}

/// The rule file's name in the rules directory.
pub fn file_name(namespace: &str) -> String {
    format!("{}.yml", group_name(namespace))
}

/// The rule file of a group.
pub fn render(group: &RuleGroup) -> String {
    let mut out = String::new();
    out.push_str("# Managed by sluice: edits are drift and are undone by the next apply.\n");
    out.push_str("groups:\n");
    let _ = writeln!(out, "  - name: {}", quote(&group.name));
    out.push_str("    rules:\n");
    for r in &group.rules {
        let _ = writeln!(out, "      - alert: {}", quote(&r.alert));
        let _ = writeln!(out, "        expr: {}", quote(&r.expr));
        if let Some(ms) = r.for_ms {
            let _ = writeln!(out, "        for: {}", format_ms(ms));
        }
        for (section, map) in [("labels", &r.labels), ("annotations", &r.annotations)] {
            let _ = writeln!(out, "        {section}:");
            for (k, v) in map {
                let _ = writeln!(out, "          {k}: {}", quote(v));
            }
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_prometheus_writes_them() {
        assert_eq!(format_ms(300_000), "5m");
        assert_eq!(format_ms(90_000), "1m30s");
        assert_eq!(format_ms(86_400_000 + 1), "1d1ms");
        assert_eq!(format_ms(0), "0s");
    }

    #[test]
    fn quoting_keeps_every_character() {
        assert_eq!(quote(r#"x{a=~"b\\.c"}"#), r#"'x{a=~"b\\.c"}'"#);
        assert_eq!(quote("it's"), "'it''s'");
        assert_eq!(quote("a\nb"), r#""a\nb""#);
    }
}
