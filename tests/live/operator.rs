//! The operator's commands against the real servers: `--namespace`
//! targeting.

use crate::common::TestRepo;
use crate::pull_request::namespaces_of;
use crate::state::{ok, topics};

#[test]
fn namespace_plans_applies_and_drifts_only_the_namespaces_named() {
    let repo = TestRepo::new();
    repo.namespace("a", &topics(&["a"]));
    repo.namespace("b", &topics(&["b"]));
    ok(&repo.run(&["apply", "--auto-approve"]));
    repo.namespace("a", &topics(&["a", "a2"]));
    repo.namespace("b", &topics(&["b", "b2"]));
    let (a, b) = (repo.name("a"), repo.name("b"));

    let plan = repo.run(&["plan", "--namespace", &a, "--format", "json"]);
    ok(&plan);
    let json = plan.json();
    assert_eq!(json["scope"], serde_json::json!([a]));
    assert_eq!(json["targets"], serde_json::json!([a]));
    assert_eq!(namespaces_of(&json), [a.as_str()]);
    let text = repo.run(&["plan", "--namespace", &a]);
    assert!(
        text.stdout.contains("named with `--namespace`"),
        "{}",
        text.stdout
    );

    // A typo is an error that names the closest namespace.
    let typo = repo.run(&["plan", "--namespace", &format!("{a}x")]);
    assert_eq!(typo.code, 1, "{}", typo.all_output());
    assert!(
        typo.stderr.contains(&format!(
            "there is no namespace `{a}x` (did you mean `{a}`?)"
        )),
        "{}",
        typo.stderr
    );

    // A saved plan keeps its scope; `show` and `apply` take it from the file.
    let saved = repo.dir.path().join("a.json");
    ok(&repo.run(&["plan", "--namespace", &a, "--out", saved.to_str().unwrap()]));
    let shown = repo.run(&["show", saved.to_str().unwrap()]);
    ok(&shown);
    assert!(shown.stdout.contains("named with `--namespace`"));
    ok(&repo.run(&["apply", saved.to_str().unwrap()]));
    assert!(repo.has_topic("a2"));
    assert!(!repo.has_topic("b2"), "`b` is outside the plan's scope");

    let drift = repo.run(&["drift", "--namespace", &b, "--format", "json"]);
    assert_eq!(drift.code, 2, "{}", drift.all_output());
    assert_eq!(namespaces_of(&drift.json()), [b.as_str()]);
    let none = repo.run(&["drift", "--namespace", &a]);
    assert_eq!(none.code, 0, "{}", none.all_output());

    ok(&repo.run(&["apply", "--namespace", &b, "--auto-approve"]));
    assert!(repo.has_topic("b2"));
    ok(&repo.run(&["plan", "--detailed-exitcode"]));
}

#[test]
fn the_last_namespace_is_removed_by_name_and_the_guard_says_how() {
    let repo = TestRepo::new();
    repo.namespace("a", &topics(&["a"]));
    ok(&repo.run(&["apply", "--auto-approve"]));
    repo.remove_namespace("a");
    let refused = repo.run(&["plan"]);
    assert_eq!(refused.code, 1);
    assert!(refused.stderr.contains("refusing to plan their deletion"));
    assert!(refused.stderr.contains("--namespace"), "{}", refused.stderr);
    // Named, a namespace whose YAML is gone plans as deletes.
    let a = repo.name("a");
    let plan = repo.run(&["plan", "--namespace", &a, "--format", "json"]);
    ok(&plan);
    assert!(plan.json()["summary"]["delete"].as_u64().unwrap() >= 1);
    ok(&repo.run(&[
        "apply",
        "--namespace",
        &a,
        "--auto-approve",
        "--allow-delete",
    ]));
    assert!(!repo.has_topic("a"));
    ok(&repo.run(&["plan", "--detailed-exitcode"]));
}
