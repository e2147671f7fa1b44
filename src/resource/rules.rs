//! Prometheus rule files: one per namespace, `sluice-<namespace>.yml`, holding
//! one rule group of the same name. [`render`] writes a plain [`RuleGroup`];
//! [`super::expand`] builds it from the namespace's alerts.
//!
//! The file is written byte for byte the same from the same group (sorted
//! keys, fixed quoting), so plans never churn and any edit of it is drift.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::config::units::format_ms;
use crate::desired::StateBackupState;

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

/// The workspace-level rule file of an environment's etcd snapshots. Its
/// name has a `.`, which no namespace's has, so it is never a namespace's.
pub const STATE_SNAPSHOT_FILE: &str = "sluice.state-snapshots.yml";

/// How far back the failing rule looks for a failed snapshot.
const FAILING_WINDOW: &str = "1h";

/// The three rules on an environment's etcd snapshots, modelled on
/// KafScale's: stale (the newest is older than `stale_after`), never
/// succeeded (none in S3 while a watcher leads, held for `stale_after`, so
/// that a new environment has as long as a stale one), and failing.
pub fn state_snapshot_group(env: &str, sb: &StateBackupState) -> RuleGroup {
    let stale_s = sb.stale_after_ms / 1000;
    let stale = format_ms(sb.stale_after_ms);
    // A PromQL string literal: JSON's escapes are PromQL's.
    let is_env = format!(
        "{{environment={}}}",
        serde_json::to_string(env).expect("strings are JSON")
    );
    let success = format!(
        "max by (environment) (sluice_state_snapshot_last_success_timestamp_seconds{is_env})"
    );
    let rule = |alert: &str,
                expr: String,
                for_ms,
                severity: &str,
                summary: String,
                description: String| {
        Rule {
            alert: alert.into(),
            expr,
            for_ms,
            labels: BTreeMap::from([("severity".into(), severity.into())]),
            annotations: BTreeMap::from([
                ("summary".into(), summary),
                ("description".into(), description),
            ]),
        }
    };
    let place = format!("s3://{}/{}", sb.bucket, sb.prefix);
    RuleGroup {
        name: "sluice.state-snapshots".into(),
        rules: vec![
            rule(
                "SluiceStateSnapshotStale",
                format!("time() - ({success} > 0) > {stale_s}"),
                Some(300_000),
                "critical",
                format!("etcd snapshots of environment {env} are stale"),
                format!(
                    "The newest complete etcd snapshot of environment {env} (in {place}) is older than {stale} (`state_backup.stale_after`): sluice's state and the registry are not backed up. Check the leading `sluice watch`'s log for `scheduled etcd snapshot failed`, or run `sluice snapshot --env {env}`."
                ),
            ),
            rule(
                "SluiceStateSnapshotNeverSucceeded",
                format!(
                    "({success} == 0) or (max by (environment) (sluice_leader{is_env}) == 1 unless on (environment) {success})"
                ),
                Some(sb.stale_after_ms),
                "critical",
                format!("no etcd snapshot of environment {env} has ever succeeded"),
                format!(
                    "A `sluice watch` leads environment {env}, and {place} holds no complete etcd snapshot. Run `sluice snapshot --env {env}`: its preflight says what is missing (bucket, permissions)."
                ),
            ),
            rule(
                "SluiceStateSnapshotFailing",
                format!(
                    "sum by (environment) (increase(sluice_state_snapshot_failures_total{is_env}[{FAILING_WINDOW}])) > 0"
                ),
                None,
                "warning",
                format!("etcd snapshots of environment {env} are failing"),
                format!(
                    "Scheduled etcd snapshots of environment {env} to {place} failed in the last {FAILING_WINDOW}. The leading `sluice watch`'s log says why (`scheduled etcd snapshot failed`)."
                ),
            ),
        ],
    }
}

/// The rule file of a group.
pub fn render(group: &RuleGroup) -> String {
    render_as(
        "# Managed by sluice: edits are drift and are undone by the next apply.",
        group,
    )
}

/// The rule file of a group, under a first comment line of its own.
pub fn render_as(header: &str, group: &RuleGroup) -> String {
    let mut out = String::new();
    out.push_str(header);
    out.push('\n');
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
    fn snapshot_rules_select_their_environment_whatever_its_name() {
        let sb = StateBackupState {
            bucket: "state".into(),
            prefix: "etcd/".into(),
            schedule: None,
            stale_after_ms: 5_400_000,
            object_lock: None,
        };
        let g = state_snapshot_group(r#"we"ird\env"#, &sb);
        let names: Vec<&str> = g.rules.iter().map(|r| r.alert.as_str()).collect();
        assert_eq!(
            names,
            [
                "SluiceStateSnapshotStale",
                "SluiceStateSnapshotNeverSucceeded",
                "SluiceStateSnapshotFailing"
            ]
        );
        for r in &g.rules {
            assert!(
                r.expr.contains(r#"{environment="we\"ird\\env"}"#),
                "{}",
                r.expr
            );
        }
        assert!(g.rules[0].expr.ends_with("> 5400"), "{}", g.rules[0].expr);
        assert_eq!(g.rules[1].for_ms, Some(5_400_000));
    }

    #[test]
    fn quoting_keeps_every_character() {
        assert_eq!(quote(r#"x{a=~"b\\.c"}"#), r#"'x{a=~"b\\.c"}'"#);
        assert_eq!(quote("it's"), "'it''s'");
        assert_eq!(quote("a\nb"), r#""a\nb""#);
    }
}
