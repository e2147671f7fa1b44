//! Policy guardrails on plans against the real servers: deletes of a
//! critical namespace's topics, and `plan --base` judging by the base
//! revision's policies.

use git2::Repository;

use crate::common::{DR_AND_ALERTS, TestRepo, commit_all, root};

#[test]
fn plans_never_delete_topics_of_critical_namespaces() {
    let repo = TestRepo::in_stage("dev");
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

#[test]
fn plan_with_base_is_judged_by_the_base_policies() {
    let repo = TestRepo::in_stage("dev");
    let git = Repository::init(repo.dir.path()).unwrap();
    std::fs::create_dir_all(repo.dir.path().join("policies")).unwrap();
    std::fs::copy(
        root().join("tests/fixtures/policies/naming.rego"),
        repo.dir.path().join("policies/naming.rego"),
    )
    .unwrap();
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
