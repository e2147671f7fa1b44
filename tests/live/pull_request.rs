//! The pull-request view: `plan --base REF` plans only the namespaces whose
//! files changed between REF and the revision, against the real servers.

use git2::Repository;

use crate::common::{TestRepo, commit_all};

fn topics(names: &[&str]) -> String {
    let mut spec = String::from("  topics:\n");
    for n in names {
        spec.push_str(&format!("    - name: {{tag}}-{n}\n"));
    }
    spec
}

/// Three namespaces applied at the base commit; the pull request changes
/// `b` and deletes `c`'s file.
fn two_commits(repo: &TestRepo) -> (Repository, String) {
    let git = Repository::init(repo.dir.path()).unwrap();
    repo.namespace("a", &topics(&["a"]));
    repo.namespace("b", &topics(&["b"]));
    repo.namespace("c", &topics(&["c"]));
    let base = commit_all(&git, "three namespaces").to_string();
    let apply = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.all_output());
    repo.namespace("b", &topics(&["b", "b2"]));
    repo.remove_namespace("c");
    commit_all(&git, "grow b, drop c");
    (git, base)
}

fn namespaces_of(plan: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["namespace"].as_str().unwrap().to_owned())
        .collect();
    out.dedup();
    out
}

#[test]
fn plan_with_base_lists_only_the_changed_namespaces() {
    let repo = TestRepo::new();
    let (_git, base) = two_commits(&repo);
    let dir = repo.dir.path().to_str().unwrap().to_owned();

    for source in [
        vec!["--git", dir.as_str(), "--rev", "HEAD"],
        vec!["--repo", dir.as_str()],
    ] {
        let mut args = vec!["plan", "--format", "json", "--base", base.as_str()];
        args.extend(&source);
        let plan = repo.run(&args);
        assert_eq!(plan.code, 0, "{:?}: {}", source, plan.all_output());
        let plan = plan.json();
        assert_eq!(
            plan["scope"],
            serde_json::json!([repo.name("b"), repo.name("c")]),
            "{source:?}"
        );
        assert_eq!(namespaces_of(&plan), vec![repo.name("b"), repo.name("c")]);
        let actions: Vec<(String, String)> = plan["changes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["address"].as_str().unwrap().starts_with("kafka.topic/"))
            .map(|c| {
                (
                    c["address"].as_str().unwrap().to_owned(),
                    c["action"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            actions,
            vec![
                (
                    format!("kafka.topic/{}", repo.name("b2")),
                    "create".to_owned()
                ),
                (
                    format!("kafka.topic/{}", repo.name("c")),
                    "delete".to_owned()
                ),
            ],
            "{source:?}"
        );
    }

    // The same plan without --base sees the whole repository: `a` is unchanged.
    let full = repo.run(&["plan", "--format", "json"]);
    assert_eq!(full.code, 0, "{}", full.all_output());
    assert!(full.json()["scope"].is_null());
    assert!(full.json()["unchanged"].as_u64().unwrap() >= 2);
}

#[test]
fn a_deleted_namespace_file_is_refused_without_allow_delete() {
    let repo = TestRepo::new();
    let (_git, base) = two_commits(&repo);
    let out = repo.dir.path().join("plan.json");
    let plan = repo.run(&["plan", "--base", &base, "--out", out.to_str().unwrap()]);
    assert_eq!(plan.code, 0, "{}", plan.all_output());
    assert!(
        plan.stdout
            .contains(&format!("- kafka.topic/{}", repo.name("c"))),
        "{}",
        plan.stdout
    );
    let refused = repo.run(&["apply", out.to_str().unwrap()]);
    assert_eq!(refused.code, 1, "{}", refused.all_output());
    assert!(
        refused.stderr.contains("--allow-delete"),
        "{}",
        refused.stderr
    );
    let applied = repo.run(&["apply", out.to_str().unwrap(), "--allow-delete"]);
    assert_eq!(applied.code, 0, "{}", applied.all_output());
    // Namespace `a`, outside the plan, is still there and unchanged.
    let after = repo.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(after.code, 0, "{}", after.all_output());
}

#[test]
fn the_markdown_of_a_large_change_is_cut_with_a_note() {
    let repo = TestRepo::new();
    let git = Repository::init(repo.dir.path()).unwrap();
    repo.namespace("seed", &topics(&["seed"]));
    let base = commit_all(&git, "seed").to_string();
    // 400 new namespaces with long topic names: far past one comment.
    for i in 0..400 {
        let names: Vec<String> = (0..3)
            .map(|t| format!("a-rather-long-topic-name-for-review-{i:03}-{t}"))
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        repo.namespace(&format!("n{i:03}"), &topics(&names));
    }
    commit_all(&git, "many namespaces");
    let md = repo.run(&["plan", "--base", &base, "--format", "markdown"]);
    assert_eq!(md.code, 0, "{}", md.all_output());
    assert!(md.stdout.chars().count() < 60_000, "{}", md.stdout.len());
    assert!(md.stdout.contains("Truncated:"), "no truncation note");
    assert!(
        md.stdout.contains("Only the 400 namespace(s)"),
        "{}",
        &md.stdout[..400]
    );
}
