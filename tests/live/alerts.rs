//! Alerts against the real tools: promtool on every rendered rule file, and
//! a real Prometheus loading what apply writes.

use std::path::Path;
use std::process::Command;

use crate::common::{copy_tree, render_alerts, root, run, sluice, unique};
use crate::servers::services;

/// Runs the real `promtool check rules` on every file of `dir`; returns
/// the number of rules it found.
fn promtool(dir: &Path) -> usize {
    let files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!files.is_empty(), "no rule files in {}", dir.display());
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .args(&files)
        .output()
        .expect("promtool is installed by scripts/services.sh install");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool refused the rules:\n{text}");
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("SUCCESS: "))
        .map(|l| l.split(' ').next().unwrap().parse::<usize>().unwrap())
        .sum()
}

/// The alerts the example namespaces declare.
fn example_alerts() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for file in [
        "orders.yaml",
        "payments.yaml",
        "user-events.yaml",
        "analytics/streams.yaml",
    ] {
        let text = std::fs::read_to_string(root().join("examples/namespaces").join(file)).unwrap();
        let ns = text
            .lines()
            .find_map(|l| l.strip_prefix("  name: "))
            .unwrap()
            .to_owned();
        let mut in_alerts = false;
        for line in text.lines() {
            if line.starts_with("  alerts:") {
                in_alerts = true;
            } else if in_alerts && line.starts_with("    - name: ") {
                out.push((ns.clone(), line["    - name: ".len()..].to_owned()));
            } else if !line.starts_with("    ") {
                in_alerts = false;
            }
        }
    }
    out
}

#[test]
fn every_example_rule_file_passes_promtool() {
    let alerts = example_alerts();
    assert!(alerts.len() >= 8, "{alerts:?}");
    // `prod` declares `state_backup`: its three snapshot rules too.
    for (env, workspace_rules) in [("local", 0), ("prod", 3)] {
        let out = render_alerts(&root().join("examples"), env);
        assert_eq!(
            promtool(out.path()),
            alerts.len() + workspace_rules,
            "environment {env}"
        );
    }
    // The golden fixture's rules, one per metric and operator, too.
    let golden = render_alerts(&root().join("tests/fixtures/alerts"), "local");
    assert_eq!(promtool(golden.path()), 15);
}

/// `GET /api/v1/rules` of the local Prometheus: (group, alert, expression).
fn loaded_rules(prometheus: &str) -> Vec<(String, String, String)> {
    let out = Command::new("curl")
        .args(["-sf", &format!("{prometheus}/api/v1/rules")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "Prometheus at {prometheus} does not answer"
    );
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut rules = Vec::new();
    for g in body["data"]["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            rules.push((
                g["name"].as_str().unwrap().to_owned(),
                r["name"].as_str().unwrap().to_owned(),
                r["query"].as_str().unwrap().to_owned(),
            ));
        }
    }
    rules
}

#[test]
fn prometheus_loads_applied_rules_and_drift_restores_an_edited_file() {
    let s = services();
    let rules_dir = std::path::PathBuf::from(s.var("PROMETHEUS_TEST_RULES_DIR"));
    let prometheus = s.var("PROMETHEUS_URL");
    // This test is the only writer of that directory: start it empty.
    for e in std::fs::read_dir(&rules_dir).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let repo = tempfile::tempdir().unwrap();
    copy_tree(&root().join("examples"), repo.path());
    let prefix = format!("/{}/", unique("alerts"));
    let sluice_here = |args: &[&str]| {
        run(sluice(repo.path())
            .args(args)
            .args(["--env", "local"])
            .env("SLUICE_KAFKA_BOOTSTRAP", &s.kafka)
            .env("SLUICE_ETCD_ENDPOINTS", &s.etcd)
            .env("SLUICE_ETCD_PREFIX", &prefix)
            .env("SLUICE_S3_ENDPOINT", &s.s3)
            .env("SLUICE_RULES_DIR", &rules_dir)
            .env("SLUICE_RELOAD_URL", format!("{prometheus}/-/reload"))
            .env("AWS_ACCESS_KEY_ID", "sluice-local")
            .env("AWS_SECRET_ACCESS_KEY", "sluice-local"))
    };

    // The alert records in etcd carry the expression the rule file runs.
    let plan = sluice_here(&["plan", "--format", "json"]);
    assert_eq!(plan.code, 0, "{}", plan.all_output());
    let plan = plan.json();
    let record = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == format!("etcd.key/{prefix}alerts/payments"))
        .expect("an alert record for payments");
    let exprs: Vec<&str> = record["desired"]["record"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["expr"].as_str().unwrap())
        .collect();
    assert!(
        exprs
            .iter()
            .any(|e| e.contains("sluice_backup_last_success_timestamp_seconds")),
        "{exprs:?}"
    );

    let apply = sluice_here(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.all_output());
    let loaded = loaded_rules(&prometheus);
    for (ns, alert) in example_alerts() {
        let group = format!("sluice-{ns}");
        assert!(
            loaded.iter().any(|(g, a, _)| *g == group && *a == alert),
            "{group}/{alert} is not loaded: {loaded:?}"
        );
    }
    for e in &exprs {
        assert!(loaded.iter().any(|(_, _, q)| q == e), "{e} is not loaded");
    }

    // An edit behind sluice's back is drift, and apply restores the file.
    let file = rules_dir.join("sluice-user-events.yml");
    let rendered = std::fs::read_to_string(&file).unwrap();
    // `drift` exits 2 and shows `marker`; its output.
    let drift_shows = |marker: &str| {
        let drift = sluice_here(&["drift"]);
        assert_eq!(drift.code, 2, "{}", drift.all_output());
        assert!(drift.stdout.contains(marker), "{}", drift.stdout);
        drift.stdout
    };
    let apply_restores = || {
        let again = sluice_here(&["apply", "--auto-approve"]);
        assert_eq!(again.code, 0, "{}", again.all_output());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), rendered);
    };
    std::fs::write(&file, rendered.replace("> 0.05", "> 5")).unwrap();
    let drift = drift_shows("~ prometheus.rules/sluice-user-events.yml");
    assert!(
        drift.contains("+        expr: 'histogram_quantile(0.99"),
        "{drift}"
    );
    apply_restores();
    assert!(
        loaded_rules(&prometheus)
            .iter()
            .any(|(g, a, q)| g == "sluice-user-events"
                && a == "high-latency"
                && q.ends_with("> 0.05")),
        "the restored rule is not what Prometheus runs"
    );

    // A deleted file is drift too; a file sluice does not own is left alone.
    std::fs::write(rules_dir.join("team-own.yml"), "groups: []\n").unwrap();
    std::fs::remove_file(&file).unwrap();
    let drift = drift_shows("+ prometheus.rules/sluice-user-events.yml");
    assert!(!drift.contains("team-own"), "{drift}");
    apply_restores();
    assert_eq!(
        std::fs::read_to_string(rules_dir.join("team-own.yml")).unwrap(),
        "groups: []\n"
    );
}

/// `promtool test rules` on the golden namespace's rendered rules: its
/// `backups` alert (`backup_age > rpo`, RPO 15m, `for: 5m`) against the
/// metric `sluice watch`'s scheduled backups publish. A series that stops
/// advancing (backups fail or stop) fires it; one that keeps advancing does not.
#[test]
fn backup_age_over_rpo_fires_under_promtool_when_the_backup_metric_stops_advancing() {
    let rendered = render_alerts(&root().join("tests/fixtures/alerts"), "local");
    let rules = rendered.path().join("sluice-golden.yml");
    assert!(rules.exists(), "no {}", rules.display());
    let alert = r#"
          - exp_labels:
              severity: critical
              namespace: golden
              owner: observability
              tier: standard
            exp_annotations:
              condition: 'backup_age > rpo'
              description: '`backup_age > rpo` held for 5m in namespace golden (owner: observability, tier: standard).'
              summary: 'backups in namespace golden'"#;
    let series =
        r#"sluice_backup_last_success_timestamp_seconds{environment="local",namespace="golden"}"#;
    let test = format!(
        r#"rule_files: ['{rules}']
evaluation_interval: 1m
tests:
  # A success every minute for 10 minutes, then none: the value stays at 600.
  - interval: 1m
    input_series:
      - series: '{series}'
        values: '0+60x10 600x40'
    alert_rule_test:
      # 10 minutes after the last success: within the RPO of 15m.
      - eval_time: 20m
        alertname: backups
        exp_alerts: []
      # Over the RPO since 25m, but not yet for 5m.
      - eval_time: 28m
        alertname: backups
        exp_alerts: []
      - eval_time: 35m
        alertname: backups
        exp_alerts:{alert}
  # A success every minute throughout.
  - interval: 1m
    input_series:
      - series: '{series}'
        values: '0+60x50'
    alert_rule_test:
      - eval_time: 35m
        alertname: backups
        exp_alerts: []
      - eval_time: 50m
        alertname: backups
        exp_alerts: []
"#,
        rules = rules.display()
    );
    let file = rendered.path().join("backup-age.test.yml");
    promtool_test(&file, &test);
}

/// `promtool test rules` on the workspace-level rules of an environment's
/// etcd snapshots (`state_backup`, `stale_after: 1h`): stale fires an hour
/// (and its `for: 5m`) after the success series stops advancing, and not
/// while it advances; never-succeeded fires, after `stale_after`, when the
/// series is 0 or absent while a watcher leads, and not when a snapshot
/// exists or no replica leads; failing fires when the failure counter moves.
#[test]
fn state_snapshot_rules_fire_under_promtool_on_the_right_series_only() {
    let repo = crate::common::TestRepo::new();
    repo.workspace(
        "      state_backup:\n        bucket: platform-state\n        schedule: \"*/10 * * * *\"\n        stale_after: 1h\n",
    );
    let rendered = render_alerts(repo.dir.path(), "local");
    let rules = rendered.path().join("sluice.state-snapshots.yml");
    let text = std::fs::read_to_string(&rules).unwrap();
    // Each alert as promtool must find it: the rule's annotations, from the file.
    let doc: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let alert = |name: &str| {
        let rule = doc["groups"][0]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["alert"] == name)
            .unwrap_or_else(|| panic!("no rule {name} in\n{text}"));
        format!(
            "\n          - exp_labels: {{severity: {}, environment: local}}\n            exp_annotations: {}",
            rule["labels"]["severity"].as_str().unwrap(),
            rule["annotations"]
        )
    };
    let (stale, never, failing) = (
        alert("SluiceStateSnapshotStale"),
        alert("SluiceStateSnapshotNeverSucceeded"),
        alert("SluiceStateSnapshotFailing"),
    );
    let success = r#"sluice_state_snapshot_last_success_timestamp_seconds{environment="local"}"#;
    let leader = r#"sluice_leader{environment="local"}"#;
    let failures = r#"sluice_state_snapshot_failures_total{environment="local"}"#;
    let test = format!(
        r#"rule_files: ['{rules}']
evaluation_interval: 1m
tests:
  # Snapshots every minute for 10 minutes, then none: the last at 600 s.
  - interval: 1m
    input_series:
      - series: '{success}'
        values: '0+60x10 600x100'
      - series: '{leader}'
        values: '1x110'
    alert_rule_test:
      - eval_time: 68m
        alertname: SluiceStateSnapshotStale
        exp_alerts: []
      # Over 1h since 70m, for 5m by 75m.
      - eval_time: 80m
        alertname: SluiceStateSnapshotStale
        exp_alerts:{stale}
      - eval_time: 80m
        alertname: SluiceStateSnapshotNeverSucceeded
        exp_alerts: []
  # Snapshots every minute throughout.
  - interval: 1m
    input_series:
      - series: '{success}'
        values: '60+60x110'
      - series: '{leader}'
        values: '1x110'
    alert_rule_test:
      - eval_time: 100m
        alertname: SluiceStateSnapshotStale
        exp_alerts: []
      - eval_time: 100m
        alertname: SluiceStateSnapshotNeverSucceeded
        exp_alerts: []
  # The leader found no snapshot in S3 (0), and none succeeds.
  - interval: 1m
    input_series:
      - series: '{success}'
        values: '0x100'
      - series: '{leader}'
        values: '1x100'
    alert_rule_test:
      - eval_time: 50m
        alertname: SluiceStateSnapshotNeverSucceeded
        exp_alerts: []
      - eval_time: 70m
        alertname: SluiceStateSnapshotNeverSucceeded
        exp_alerts:{never}
      - eval_time: 70m
        alertname: SluiceStateSnapshotStale
        exp_alerts: []
  # A leader publishes no success series at all (S3 unreadable).
  - interval: 1m
    input_series:
      - series: '{leader}'
        values: '1x100'
    alert_rule_test:
      - eval_time: 70m
        alertname: SluiceStateSnapshotNeverSucceeded
        exp_alerts:{never}
  # Only a standby runs: nobody is expected to snapshot.
  - interval: 1m
    input_series:
      - series: '{leader}'
        values: '0x100'
    alert_rule_test:
      - eval_time: 70m
        alertname: SluiceStateSnapshotNeverSucceeded
        exp_alerts: []
  # A failure at 5m, then none.
  - interval: 1m
    input_series:
      - series: '{failures}'
        values: '0 0 0 0 0 1x100'
    alert_rule_test:
      - eval_time: 4m
        alertname: SluiceStateSnapshotFailing
        exp_alerts: []
      - eval_time: 10m
        alertname: SluiceStateSnapshotFailing
        exp_alerts:{failing}
      - eval_time: 90m
        alertname: SluiceStateSnapshotFailing
        exp_alerts: []
"#,
        rules = rules.display()
    );
    let file = rendered.path().join("state-snapshots.test.yml");
    promtool_test(&file, &test);
}

/// Writes `test` to `file` and runs the real `promtool test rules` on it;
/// every test in it must pass.
fn promtool_test(file: &Path, test: &str) {
    std::fs::write(file, test).unwrap();
    let out = Command::new("promtool")
        .args(["test", "rules"])
        .arg(file)
        .output()
        .expect("promtool is installed by scripts/services.sh install");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "promtool test rules failed:\n{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}
