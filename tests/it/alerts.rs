//! Alerts: the PromQL each metric and operator compiles to (golden), and
//! errors in the workspace's metric templates. `tests/live/alerts.rs` runs the
//! real promtool and Prometheus on them.
//!
//! `SLUICE_BLESS=1 cargo test --test it alerts` rewrites the golden file.

use crate::common::{copy_tree, render_alerts, root, run, sluice};

#[test]
fn promql_of_every_metric_and_operator_is_golden() {
    let fixture = root().join("tests/fixtures/alerts");
    let out = render_alerts(&fixture, "local");
    let got = std::fs::read_to_string(out.path().join("sluice-golden.yml")).unwrap();
    let expected_path = fixture.join("expected/sluice-golden.yml");
    if std::env::var_os("SLUICE_BLESS").is_some() {
        std::fs::write(&expected_path, &got).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap();
    assert_eq!(got, expected, "rerun with SLUICE_BLESS=1 to accept");
    // Rendering twice gives the same bytes: plans never churn.
    let again = render_alerts(&fixture, "local");
    assert_eq!(
        std::fs::read(again.path().join("sluice-golden.yml")).unwrap(),
        got.as_bytes()
    );
}

#[test]
fn an_unknown_placeholder_is_an_error_at_its_column() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&root().join("tests/fixtures/alerts"), dir.path());
    let ws = dir.path().join("sluice.yaml");
    let text = std::fs::read_to_string(&ws)
        .unwrap()
        .replace("group=~\"$groups\"", "group=~\"$group\"");
    std::fs::write(&ws, text).unwrap();
    let r = run(sluice(dir.path()).args(["validate"]));
    assert_eq!(r.code, 1, "{}", r.all_output());
    assert!(
        r.stderr
            .contains("uses `$group`, which is not a placeholder"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("sluice.yaml:18:"), "{}", r.stderr);
}

/// The etcd snapshot rules read the metrics of a watcher's scheduled
/// snapshots: rendered with `state_backup.schedule`, not without it.
#[test]
fn snapshot_rules_are_rendered_only_for_scheduled_snapshots() {
    let repo = crate::common::TestRepo::new();
    let rendered = |extra: &str| {
        repo.workspace(&format!(
            "      state_backup:\n        bucket: platform-state\n{extra}"
        ));
        let out = render_alerts(repo.dir.path(), "local");
        out.path().join("sluice.state-snapshots.yml").exists()
    };
    assert!(!rendered(""));
    assert!(rendered("        schedule: \"0 * * * *\"\n"));
}
