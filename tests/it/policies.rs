//! Policy guardrails through `sluice validate`: each built-in one passing and
//! failing, and the repository's own (deny and warn). `tests/live/policies.rs`
//! judges plans.

use crate::common::{DR_AND_ALERTS, TestRepo, root};

/// Validates; returns the exit code and stderr.
fn validate(repo: &TestRepo) -> (i32, String) {
    let r = repo.offline(&["validate"]);
    (r.code, r.stderr)
}

fn assert_denied(repo: &TestRepo, policy: &str, short: &str, message: &str) {
    let (code, stderr) = validate(repo);
    assert_eq!(code, 1, "{stderr}");
    let expected = format!(
        "policy `sluice.{policy}` denies namespace `{}` in environment `local`: {message}",
        repo.name(short)
    );
    assert!(
        stderr.contains(&expected),
        "wanted `{expected}` in:\n{stderr}"
    );
}

fn assert_passes(repo: &TestRepo) {
    let (code, stderr) = validate(repo);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("policy"), "{stderr}");
}

#[test]
fn critical_namespaces_need_dr_with_a_short_rpo() {
    let repo = TestRepo::in_stage("dev");
    let alerts =
        "  alerts:\n    - {name: lag, condition: consumer_lag > 100, severity: critical}\n";
    repo.namespace_in_tier("pay", "critical", alerts);
    assert_denied(
        &repo,
        "critical_dr",
        "pay",
        "a critical namespace needs a `disaster_recovery` policy",
    );
    repo.namespace_in_tier(
        "pay",
        "critical",
        &format!("  disaster_recovery:\n    rpo: 1h\n{alerts}"),
    );
    assert_denied(
        &repo,
        "critical_dr",
        "pay",
        "a critical namespace needs an RPO of at most 15m; it has 3600s",
    );
    repo.namespace_in_tier("pay", "critical", DR_AND_ALERTS);
    assert_passes(&repo);
}

#[test]
fn replication_factor_is_at_least_three_outside_dev() {
    let repo = TestRepo::in_stage("prod");
    repo.namespace(
        "rf",
        "  topics:\n    - name: {tag}-rf\n      replication_factor: 2\n",
    );
    assert_denied(
        &repo,
        "replication_factor",
        "rf",
        &format!("topic `{}` has replication factor 2", repo.name("rf")),
    );
    repo.namespace("rf", "  topics:\n    - name: {tag}-rf\n");
    assert_passes(&repo);
    // In dev, one replica is fine.
    let dev = TestRepo::in_stage("dev");
    dev.namespace(
        "rf",
        "  topics:\n    - name: {tag}-rf\n      replication_factor: 1\n",
    );
    assert_passes(&dev);
}

#[test]
fn grants_never_go_to_wildcard_principals() {
    let repo = TestRepo::in_stage("dev");
    repo.namespace(
        "acl",
        "  access:\n    - service: \"*\"\n      permissions: [read]\n",
    );
    assert_denied(
        &repo,
        "wildcard_grants",
        "acl",
        "grants read to the wildcard principal `*`",
    );
    repo.namespace(
        "acl",
        "  access:\n    - service: analytics\n      permissions: [read]\n",
    );
    assert_passes(&repo);
}

#[test]
fn retention_above_30d_needs_the_critical_tier() {
    let repo = TestRepo::in_stage("dev");
    repo.namespace("ret", "  retention: 90d\n");
    assert_denied(
        &repo,
        "retention",
        "ret",
        &format!(
            "topic `{}` keeps data for 90d; above 30d needs tier `critical`",
            repo.name("ret")
        ),
    );
    repo.namespace("ret", "  retention: 30d\n");
    assert_passes(&repo);
    repo.namespace_in_tier(
        "ret",
        "critical",
        &format!("  retention: 90d\n{DR_AND_ALERTS}"),
    );
    assert_passes(&repo);
}

#[test]
fn critical_namespaces_need_alerts() {
    let repo = TestRepo::in_stage("dev");
    repo.namespace_in_tier("crit", "critical", "  disaster_recovery:\n    rpo: 10m\n");
    assert_denied(
        &repo,
        "critical_alerts",
        "crit",
        "a critical namespace needs at least one alert",
    );
    repo.namespace_in_tier("crit", "critical", DR_AND_ALERTS);
    assert_passes(&repo);
}

#[test]
fn the_repository_policies_deny_and_warn() {
    let repo = TestRepo::in_stage("dev");
    std::fs::create_dir_all(repo.dir.path().join("policies")).unwrap();
    std::fs::copy(
        root().join("tests/fixtures/policies/naming.rego"),
        repo.dir.path().join("policies/naming.rego"),
    )
    .unwrap();
    repo.namespace("ok", "  topics:\n    - name: {tag}-events\n");
    let (code, stderr) = validate(&repo);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "policy `team.naming` warns about namespace `{}` in environment `local`: no consumer group is declared",
            repo.name("ok")
        )),
        "{stderr}"
    );
    repo.namespace("ok", "  topics:\n    - name: {tag}-tmp\n");
    let (code, stderr) = validate(&repo);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("policy `team.naming` denies"), "{stderr}");
    assert!(stderr.contains("looks temporary"), "{stderr}");

    // A broken policy is an error naming its file.
    std::fs::write(
        repo.dir.path().join("policies/broken.rego"),
        "package x\ndeny contains msg if {",
    )
    .unwrap();
    let (code, stderr) = validate(&repo);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("policy policies/broken.rego"), "{stderr}");
}
