//! Policy guardrails through `sluice validate` and `sluice plan`: each
//! built-in one passing and failing, the repository's own (deny and warn),
//! and `plan --base` judging by the base revision's policies.

use git2::Repository;

use crate::common::{TestRepo, commit_all};

/// A repository whose `local` environment has `stage` (`prod` also gets 3
/// brokers and 3 replicas by default).
fn repo_in(stage: &str) -> TestRepo {
    let repo = TestRepo::new();
    if stage != "dev" {
        let ws = repo.dir.path().join("sluice.yaml");
        let text = std::fs::read_to_string(&ws)
            .unwrap()
            .replace("stage: dev", &format!("stage: {stage}"))
            .replace("brokers: 1", "brokers: 3")
            .replace("replication_factor: 1", "replication_factor: 3");
        std::fs::write(ws, text).unwrap();
    }
    repo
}

const DR_AND_ALERTS: &str = "  disaster_recovery:\n    rpo: 10m\n  alerts:\n    - {name: lag, condition: consumer_lag > 100, severity: critical}\n";

/// Validates; returns the exit code and stderr.
fn validate(repo: &TestRepo) -> (i32, String) {
    let r = repo.run(&["validate"]);
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
    let repo = repo_in("dev");
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
    let repo = repo_in("prod");
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
    let dev = repo_in("dev");
    dev.namespace(
        "rf",
        "  topics:\n    - name: {tag}-rf\n      replication_factor: 1\n",
    );
    assert_passes(&dev);
}

#[test]
fn grants_never_go_to_wildcard_principals() {
    let repo = repo_in("dev");
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
    let repo = repo_in("dev");
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
    let repo = repo_in("dev");
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
fn plans_never_delete_topics_of_critical_namespaces() {
    let repo = repo_in("dev");
    let two = format!("  topics:\n    - name: {{tag}}-a\n    - name: {{tag}}-b\n{DR_AND_ALERTS}");
    let one = format!("  topics:\n    - name: {{tag}}-a\n{DR_AND_ALERTS}");
    repo.namespace_in_tier("crit", "critical", &two);
    repo.namespace(
        "std",
        "  topics:\n    - name: {tag}-c\n    - name: {tag}-d\n",
    );
    let apply = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.all_output());

    // A standard namespace may lose a topic (under the delete guards).
    repo.namespace("std", "  topics:\n    - name: {tag}-c\n");
    let plan = repo.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{}", plan.all_output());
    assert!(
        plan.stdout
            .contains(&format!("- kafka.topic/{}", repo.name("d"))),
        "{}",
        plan.stdout
    );

    // A critical one may not, and the denied plan is not saved.
    repo.namespace_in_tier("crit", "critical", &one);
    let out = repo.dir.path().join("plan.json");
    let plan = repo.run(&["plan", "--out", out.to_str().unwrap()]);
    assert_eq!(plan.code, 1, "{}", plan.all_output());
    let denied = format!(
        "policy `sluice.critical_deletes` denies namespace `{}` in environment `local`: the plan deletes topic `{}`",
        repo.name("crit"),
        repo.name("b")
    );
    assert!(plan.stderr.contains(&denied), "{}", plan.stderr);
    assert!(!out.exists(), "a denied plan was saved");
    let apply = repo.run(&["apply", "--auto-approve", "--allow-delete"]);
    assert_eq!(apply.code, 1, "{}", apply.all_output());
    assert!(
        apply
            .stderr
            .contains("the plan is denied by 1 policy message(s)"),
        "{}",
        apply.stderr
    );

    // Nor when the namespace's file is removed: its registry record says critical.
    repo.namespace_in_tier("crit", "critical", &two);
    repo.remove_namespace("crit");
    let plan = repo.run(&["plan", "--format", "json"]);
    assert_eq!(plan.code, 1, "{}", plan.all_output());
    let policy = &plan.json()["policy"];
    let messages: Vec<&str> = policy
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["policy"] == "sluice.critical_deletes")
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages.len(), 2, "{policy}");
    // The pull-request comment says so too.
    let md = repo.run(&["plan", "--format", "markdown"]);
    assert_eq!(md.code, 1, "{}", md.all_output());
    assert!(
        md.stdout.contains("Policies deny this plan"),
        "{}",
        md.stdout
    );
    assert!(
        md.stdout.contains(&format!(
            "- **deny** `sluice.critical_deletes` on `{}`",
            repo.name("crit")
        )),
        "{}",
        md.stdout
    );
}

const USER_POLICY: &str = r#"package team.naming

deny contains msg if {
	some topic in input.namespace.topics
	contains(topic.name, "tmp")
	msg := sprintf("topic `%s` looks temporary", [topic.name])
}

warn contains msg if {
	count(input.namespace.consumers) == 0
	msg := "no consumer group is declared"
}
"#;

#[test]
fn the_repository_policies_deny_and_warn() {
    let repo = repo_in("dev");
    std::fs::create_dir_all(repo.dir.path().join("policies")).unwrap();
    std::fs::write(repo.dir.path().join("policies/naming.rego"), USER_POLICY).unwrap();
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

#[test]
fn plan_with_base_is_judged_by_the_base_policies() {
    let repo = repo_in("dev");
    let git = Repository::init(repo.dir.path()).unwrap();
    std::fs::create_dir_all(repo.dir.path().join("policies")).unwrap();
    std::fs::write(repo.dir.path().join("policies/naming.rego"), USER_POLICY).unwrap();
    repo.namespace("ns", "  topics:\n    - name: {tag}-events\n");
    let base = commit_all(&git, "base");
    // The pull request drops the policy and adds what it forbade.
    std::fs::remove_file(repo.dir.path().join("policies/naming.rego")).unwrap();
    repo.namespace(
        "ns",
        "  topics:\n    - name: {tag}-events\n    - name: {tag}-tmp\n",
    );
    commit_all(&git, "loosen the policy");

    let head = repo.run(&["plan"]);
    assert_eq!(head.code, 0, "{}", head.all_output());
    let judged = repo.run(&["plan", "--base", &base.to_string()]);
    assert_eq!(judged.code, 1, "{}", judged.all_output());
    assert!(
        judged.stderr.contains("policy `team.naming` denies"),
        "{}",
        judged.stderr
    );
    let by_git = repo.run(&[
        "plan",
        "--git",
        repo.dir.path().to_str().unwrap(),
        "--base",
        "HEAD~1",
    ]);
    assert_eq!(by_git.code, 1, "{}", by_git.all_output());
    assert!(
        by_git.stderr.contains("looks temporary"),
        "{}",
        by_git.stderr
    );
}
