//! The pull-request view: `plan --base REF` plans only the namespaces whose
//! files changed between REF and the revision, against the real servers.

use std::path::{Path, PathBuf};

use git2::Repository;

use crate::common::{TestRepo, commit_all, run};

fn topics(names: &[&str]) -> String {
    let mut spec = String::from("  topics:\n");
    for n in names {
        spec.push_str(&format!("    - name: {{tag}}-{n}\n"));
    }
    spec
}

/// Three namespaces, committed and applied: the repository and the commit.
fn three_applied(repo: &TestRepo) -> (Repository, String) {
    let git = Repository::init(repo.dir.path()).unwrap();
    repo.namespace("a", &topics(&["a"]));
    repo.namespace("b", &topics(&["b"]));
    repo.namespace("c", &topics(&["c"]));
    let base = commit_all(&git, "three namespaces").to_string();
    let apply = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.all_output());
    (git, base)
}

/// Three namespaces applied at the base commit; the pull request changes
/// `b` and deletes `c`'s file.
fn two_commits(repo: &TestRepo) -> (Repository, String) {
    let (git, base) = three_applied(repo);
    repo.namespace("b", &topics(&["b", "b2"]));
    repo.remove_namespace("c");
    commit_all(&git, "grow b, drop c");
    (git, base)
}

/// The namespaces a JSON plan's changes belong to, in plan order.
pub(crate) fn namespaces_of(plan: &serde_json::Value) -> Vec<String> {
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

/// The changes of a plan, without what differs between a scoped and a full
/// plan by design (the scope itself).
fn changes_of(plan: &serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "changes": plan["changes"],
        "adopt": plan["adopt"],
        "summary": plan["summary"],
    })
}

#[test]
fn a_workspace_only_or_policy_only_change_plans_every_namespace_like_the_full_plan() {
    let repo = TestRepo::new();
    let git = Repository::init(repo.dir.path()).unwrap();
    repo.namespace("a", &topics(&["a"]));
    repo.namespace("b", &topics(&["b"]));
    let base = commit_all(&git, "two namespaces").to_string();
    let apply = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.all_output());

    // The workspace raises every topic's retention: no namespace file changes.
    repo.workspace("  defaults:\n    retention: 2d\n");
    commit_all(&git, "workspace only");
    let full = repo.run(&["plan", "--format", "json"]).json();
    assert_ne!(full["summary"]["update"], 0, "the change changes something");
    let text = repo.run(&["plan", "--base", &base]);
    assert!(
        text.stdout
            .contains("Every namespace: the change edits the workspace file"),
        "{}",
        text.stdout
    );
    let scoped = repo.run(&["plan", "--format", "json", "--base", &base]);
    assert_eq!(changes_of(&scoped.json()), changes_of(&full));
    assert_eq!(scoped.json()["scope"], serde_json::Value::Null);

    // A policy alone: every namespace is judged again.
    let policy_base = commit_all(&git, "retention applied").to_string();
    std::fs::create_dir_all(repo.dir.path().join("policies")).unwrap();
    std::fs::write(
        repo.dir.path().join("policies/names.rego"),
        "package sluice.names\n\nwarn contains msg if {\n  false\n  msg := \"never\"\n}\n",
    )
    .unwrap();
    commit_all(&git, "policy only");
    let scoped = repo.run(&["plan", "--base", &policy_base]);
    assert!(
        scoped
            .stdout
            .contains("Every namespace: the change edits a policy"),
        "{}",
        scoped.all_output()
    );
}

#[test]
fn a_bucket_shared_by_two_namespaces_has_one_value_in_scoped_and_full_plans() {
    let repo = TestRepo::new();
    let git = Repository::init(repo.dir.path()).unwrap();
    let bucket = repo.bucket("shared");
    repo.workspace(&format!(
        "  guards:\n    protected_namespaces: [{}]\n  disaster_recovery:\n    buckets:\n      {bucket}:\n        region: us-east-1\n",
        repo.name("pay")
    ));
    let dr = |prefix: &str, lock: &str| {
        format!(
            "  disaster_recovery:\n    backup:\n      bucket: {bucket}\n      prefix: {prefix}/\n      retain: 7d\n{lock}"
        )
    };
    // `pay` (protected) asks for object lock; `web` shares the bucket.
    repo.namespace(
        "pay",
        &format!(
            "{}{}",
            topics(&["pay"]),
            dr("pay", "      object_lock: {mode: governance, days: 7}\n")
        ),
    );
    repo.namespace("web", &format!("{}{}", topics(&["web"]), dr("web", "")));
    let base = commit_all(&git, "two namespaces, one bucket").to_string();
    let apply = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.all_output());

    // The pull request touches `web` only.
    repo.namespace(
        "web",
        &format!("{}{}", topics(&["web", "web2"]), dr("web", "")),
    );
    commit_all(&git, "grow web");
    let plan = repo.run(&["plan", "--format", "json", "--base", &base]);
    assert_eq!(plan.code, 0, "{}", plan.all_output());
    let plan = plan.json();
    assert_eq!(
        plan["scope"],
        serde_json::json!([repo.name("pay"), repo.name("web")]),
        "the namespace sharing the bucket joins the scope"
    );
    let full = repo.run(&["plan", "--format", "json"]).json();
    assert_eq!(changes_of(&plan), changes_of(&full));
    let scoped = repo.run(&["plan", "--base", &base]);
    assert!(
        !scoped.stderr.contains("is not declared"),
        "no warning the full plan would not give: {}",
        scoped.stderr
    );

    // Scoped and full applies in turn never move the bucket between namespaces.
    let out = repo.dir.path().join("pr.json");
    let saved = repo.run(&["plan", "--base", &base, "--out", out.to_str().unwrap()]);
    assert_eq!(saved.code, 0, "{}", saved.all_output());
    let applied = repo.run(&["apply", out.to_str().unwrap()]);
    assert_eq!(applied.code, 0, "{}", applied.all_output());
    let again = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(again.code, 0, "{}", again.all_output());
    assert!(
        !again.stdout.contains("adopted"),
        "the full apply moved something back: {}",
        again.stdout
    );
    let third = repo.run(&["plan", "--detailed-exitcode", "--base", &base]);
    assert_eq!(third.code, 0, "{}", third.all_output());
}

/// Commits the work tree onto `parent` as `refname` (a branch, a squash or a
/// rebased commit: a new SHA whatever the content); returns the commit.
fn commit_on(git: &Repository, parent: git2::Oid, refname: &str, message: &str) -> String {
    let mut index = git.index().unwrap();
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .unwrap();
    let tree = git.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = git2::Signature::now("sluice tests", "tests@sluice.invalid").unwrap();
    let parent = git.find_commit(parent).unwrap();
    git.commit(Some(refname), &sig, &sig, message, &tree, &[&parent])
        .unwrap()
        .to_string()
}

#[test]
fn reviewed_plans_apply_after_squash_and_rebase_merges_and_refuse_what_was_not_reviewed() {
    let repo = TestRepo::new();
    let git = Repository::init(repo.dir.path()).unwrap();
    let dir = repo.dir.path().to_str().unwrap().to_owned();
    let retained = |names: &[&str]| format!("  retention: 3d\n{}", topics(names));
    let (a, b, c) = (topics(&["a"]), topics(&["b"]), retained(&["c"]));
    repo.namespace("a", &a);
    repo.namespace("b", &b);
    repo.namespace("c", &c);
    let base = commit_all(&git, "three namespaces");
    let applied = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}", applied.all_output());

    // Three pull requests from the same base, one namespace each.
    let branch = |short: &str, spec: &str, old: &str, n: usize| {
        repo.namespace(short, spec);
        let head = commit_on(&git, base, &format!("refs/heads/pr{n}"), short);
        repo.namespace(short, old);
        head
    };
    let pr1 = branch("a", &topics(&["a", "a2"]), &a, 1);
    let pr2 = branch("b", &topics(&["b", "b2"]), &b, 2);
    let pr3 = branch("c", &retained(&["c", "c2"]), &c, 3);
    let base = base.to_string();
    let review = |head: &str, n: usize| {
        let out = repo.dir.path().join(format!("pr{n}.json"));
        let plan = repo.run(&[
            "plan",
            "--git",
            &dir,
            "--rev",
            head,
            "--base",
            &base,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(plan.code, 0, "{}", plan.all_output());
        out.to_str().unwrap().to_owned()
    };
    let (r1, r2, r3) = (review(&pr1, 1), review(&pr2, 2), review(&pr3, 3));
    let merge = |reviewed: &str| {
        repo.run(&[
            "apply",
            "--reviewed",
            reviewed,
            "--git",
            &dir,
            "--rev",
            "main",
        ])
    };

    // Pull request 1, squash-merged: one new commit on the base.
    repo.namespace("a", &topics(&["a", "a2"]));
    let m1 = commit_on(&git, base.parse().unwrap(), "refs/heads/main", "squash #1");
    let one = merge(&r1);
    assert_eq!(one.code, 0, "{}", one.all_output());

    // Pull request 2, rebase-merged onto main after #1: its commit, a new SHA.
    repo.namespace("b", &topics(&["b", "b2"]));
    let m2 = commit_on(&git, m1.parse().unwrap(), "refs/heads/main", "rebased #2");
    assert_ne!(m2, pr2);
    let two = merge(&r2);
    assert_eq!(
        two.code,
        0,
        "another apply in between does not matter: {}",
        two.all_output()
    );
    assert!(
        repo.has_topic("a2") && repo.has_topic("b2"),
        "both reviewed plans applied"
    );

    // Pull request 3: its topic is changed out-of-band before the merge.
    repo.set_topic_config(&repo.name("c"), "retention.ms", "1000");
    repo.namespace("c", &retained(&["c", "c2"]));
    commit_on(&git, m2.parse().unwrap(), "refs/heads/main", "merge #3");
    let three = merge(&r3);
    assert_eq!(three.code, 1, "{}", three.all_output());
    assert!(
        three
            .stderr
            .contains(&format!("new: ~ kafka.topic/{}", repo.name("c"))),
        "the difference is shown: {}",
        three.stderr
    );
    assert!(!repo.has_topic("c2"), "nothing of #3 was applied");
}

#[test]
fn every_environment_in_one_comment_and_applied_in_order_stopping_at_the_first_failure() {
    let repo = TestRepo::new();
    let env = |name: &str| {
        format!(
            "    {name}:\n      stage: dev\n      kafka:\n        bootstrap_servers: [\"127.0.0.1:9\"]\n        brokers: 1\n      etcd:\n        endpoints: [\"http://127.0.0.1:9\"]\n      defaults:\n        replication_factor: 1\n"
        )
    };
    std::fs::write(
        repo.dir.path().join("sluice.yaml"),
        format!(
            "apiVersion: sluice/v1\nkind: Workspace\nspec:\n  apply_order: [dev, prod]\n  environments:\n{}{}",
            env("prod"),
            env("dev")
        ),
    )
    .unwrap();
    let write = |short: &str, env: &str, names: &[&str]| {
        std::fs::write(
            repo.dir.path().join(format!("namespaces/{short}.yaml")),
            format!(
                "apiVersion: sluice/v1\nkind: Namespace\nmetadata:\n  name: {}\n  owner: tests\n  environments: [{env}]\nspec:\n{}",
                repo.name(short),
                format!("  retention: 3d\n{}", topics(names)).replace("{tag}", &repo.tag)
            ),
        )
        .unwrap();
    };
    write("d", "dev", &["d"]);
    write("p", "prod", &["p"]);
    let git = Repository::init(repo.dir.path()).unwrap();
    let base = commit_all(&git, "one namespace per environment").to_string();
    for e in ["dev", "prod"] {
        let applied = repo.run(&["apply", "--auto-approve", "--env", e]);
        assert_eq!(applied.code, 0, "{e}: {}", applied.all_output());
    }
    write("d", "dev", &["d", "d2"]);
    write("p", "prod", &["p", "p2"]);
    commit_all(&git, "grow both");

    let plans = repo.dir.path().join("plans");
    let plan_all = |out: &std::path::Path| {
        repo.run(&[
            "plan",
            "--all-environments",
            "--base",
            &base,
            "--format",
            "markdown",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let comment = plan_all(&plans);
    assert_eq!(comment.code, 0, "{}", comment.all_output());
    let (dev, prod) = (
        comment.stdout.find("| `dev` | 1 |").expect(&comment.stdout),
        comment
            .stdout
            .find("| `prod` | 1 |")
            .expect(&comment.stdout),
    );
    assert!(
        dev < prod,
        "a row per environment, in apply order:\n{}",
        comment.stdout
    );
    assert!(comment.stdout.len() < 60_000);
    assert!(plans.join("dev.json").exists() && plans.join("prod.json").exists());

    // A directory missing an environment's plan, or holding one under
    // another environment's name, applies nothing.
    for (name, files) in [
        ("partial", vec![("dev.json", "dev.json")]),
        (
            "swapped",
            vec![("dev.json", "prod.json"), ("prod.json", "dev.json")],
        ),
    ] {
        let dir = repo.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (to, from) in files {
            std::fs::copy(plans.join(from), dir.join(to)).unwrap();
        }
        let refused = repo.run(&["apply", "--reviewed", dir.to_str().unwrap()]);
        assert_eq!(refused.code, 1, "{name}: {}", refused.all_output());
        assert!(
            refused.stderr.contains("no plan for environment `prod`")
                || refused.stderr.contains("it is for environment"),
            "{name}: {}",
            refused.stderr
        );
    }

    // dev's topic moves out-of-band: dev's reviewed plan no longer holds, and
    // prod, after it in the order, is not applied.
    repo.set_topic_config(&repo.name("d"), "retention.ms", "1000");
    let merged = repo.run(&["apply", "--reviewed", plans.to_str().unwrap()]);
    assert_eq!(merged.code, 1, "{}", merged.all_output());
    assert!(
        merged.stderr.contains("environment `dev` failed"),
        "{}",
        merged.stderr
    );
    assert!(
        !repo.has_topic("d2") && !repo.has_topic("p2"),
        "nothing applied after the failure"
    );

    // Planned again and reviewed, both apply, dev first.
    let again = repo.dir.path().join("again");
    assert_eq!(plan_all(&again).code, 0);
    let merged = repo.run(&["apply", "--reviewed", again.to_str().unwrap()]);
    assert_eq!(merged.code, 0, "{}", merged.all_output());
    let (d, p) = (
        merged.stderr.find("environment `dev`").unwrap(),
        merged.stderr.find("environment `prod`").unwrap(),
    );
    assert!(d < p, "{}", merged.stderr);
    assert!(repo.has_topic("d2") && repo.has_topic("p2"));
}

/// A pull request's plan parses the files it changed and those that spell
/// a name they declare, and asks Kafka about its own topics only: one
/// Metadata request of each by name, which must not create it.
#[test]
fn a_pull_request_plan_reads_only_what_bears_on_it_and_creates_nothing() {
    let repo = TestRepo::new();
    let (_git, base) = three_applied(&repo);

    repo.namespace("a", &topics(&["a", "a2"]));
    let plan = run(repo
        .sluice()
        .env("SLUICE_LOG", "sluice=debug")
        .args(["plan", "--format", "json", "--base", &base]));
    assert_eq!(plan.code, 0, "{}", plan.all_output());
    assert!(
        plan.stderr
            .contains("namespace files read for the scope files=1 unchanged_read=0 of=3"),
        "{}",
        plan.stderr
    );
    let metadata = plan.stderr.matches("api=\"Metadata\"").count();
    assert_eq!(
        metadata, 2,
        "one by name for each of `a` and `a2`: {}",
        plan.stderr
    );
    let json = plan.json();
    assert_eq!(json["scope"], serde_json::json!([repo.name("a")]));
    let changes: Vec<&str> = json["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["address"].as_str().unwrap().starts_with("kafka.topic/"))
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    assert_eq!(changes, ["create"]);
    assert!(!repo.has_topic("a2"), "reading a missing topic created it");

    // Taking an unchanged namespace's topic is found, though `b` is unchanged.
    repo.namespace("a", &topics(&["a", "b"]));
    let taken = repo.run(&["plan", "--base", &base]);
    assert_eq!(taken.code, 1, "{}", taken.all_output());
    assert!(
        taken.stderr.contains("is declared twice") && taken.stderr.contains("namespaces/b.yaml"),
        "{}",
        taken.stderr
    );
}

/// Moves the objects of `paths` at `commit` out of the repository, so that
/// reading one fails; returns where each went, for [`restore`].
fn hide(git: &Repository, commit: &str, paths: &[&str]) -> Vec<(PathBuf, PathBuf)> {
    let tree = git
        .find_commit(git2::Oid::from_str(commit).unwrap())
        .unwrap()
        .tree()
        .unwrap();
    let aside = git.path().join("aside");
    std::fs::create_dir_all(&aside).unwrap();
    paths
        .iter()
        .map(|p| {
            let id = tree.get_path(Path::new(p)).unwrap().id().to_string();
            let object = git.path().join("objects").join(&id[..2]).join(&id[2..]);
            let moved = aside.join(&id);
            std::fs::rename(&object, &moved).unwrap();
            (object, moved)
        })
        .collect()
}

fn restore(hidden: &[(PathBuf, PathBuf)]) {
    for (object, moved) in hidden {
        std::fs::rename(moved, object).unwrap();
    }
}

/// Apply writes the source index of the files it applied; a pull request
/// based on the same files looks names up there and reads only the files
/// it finds, which a plan shows by succeeding with the other files'
/// objects gone from the repository. Based on other files, it reads them
/// all. The next apply updates the index: it gains the new files, and
/// keeps nothing of those deleted.
#[tokio::test]
async fn with_the_source_index_a_pull_request_reads_only_the_files_it_finds() {
    let repo = TestRepo::new();
    let git = Repository::init(repo.dir.path()).unwrap();
    for n in ["a", "b", "c", "d"] {
        repo.namespace(n, &topics(&[n]));
    }
    let base = commit_all(&git, "four namespaces").to_string();
    let apply = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.all_output());
    let (b, d) = ("namespaces/b.yaml", "namespaces/d.yaml");
    let dir = repo.dir.path().to_str().unwrap().to_owned();
    let plan = |base: &str| {
        run(repo
            .sluice()
            .env("SLUICE_LOG", "sluice=debug")
            .args(["plan", "--repo", &dir, "--format", "json", "--base", base]))
    };

    let hidden = hide(&git, &base, &[b, d]);
    repo.namespace("a", &topics(&["a", "a2"]));
    let grown = plan(&base);
    assert_eq!(grown.code, 0, "{}", grown.all_output());
    assert!(
        grown.stderr.contains("files=1 unchanged_read=0 of=4"),
        "{}",
        grown.stderr
    );
    assert_eq!(grown.json()["scope"], serde_json::json!([repo.name("a")]));
    // A topic that `c` declares: the index finds `c`, and only `c`.
    repo.namespace("a", &topics(&["a", "c"]));
    let taken = plan(&base);
    assert_eq!(taken.code, 1, "{}", taken.all_output());
    assert!(
        taken.stderr.contains("is declared twice")
            && taken.stderr.contains("namespaces/c.yaml")
            && taken.stderr.contains("files=2 unchanged_read=1 of=4"),
        "{}",
        taken.stderr
    );

    // A base with other files (`e` added, `d` deleted) not applied yet:
    // every file is read, and a hidden one fails the plan.
    restore(&hidden);
    repo.namespace("a", &topics(&["a"]));
    repo.namespace("e", &topics(&["e"]));
    let d_blob = hidden[1]
        .1
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    repo.remove_namespace("d");
    let next = commit_all(&git, "add e, drop d").to_string();
    let hidden = hide(&git, &next, &[b]);
    repo.namespace("a", &topics(&["a", "a2"]));
    let unindexed = plan(&next);
    assert_eq!(unindexed.code, 1, "{}", unindexed.all_output());
    assert!(
        unindexed.stderr.contains("namespaces/b.yaml"),
        "{}",
        unindexed.stderr
    );

    // Applied, the index is of those files: `e` is found in it.
    restore(&hidden);
    repo.namespace("a", &topics(&["a"]));
    let apply = repo.run(&["apply", "--auto-approve", "--allow-delete"]);
    assert_eq!(apply.code, 0, "{}", apply.all_output());
    let _hidden = hide(&git, &next, &[b]);
    repo.namespace("a", &topics(&["a", "e"]));
    let taken = plan(&next);
    assert_eq!(taken.code, 1, "{}", taken.all_output());
    assert!(
        taken.stderr.contains("namespaces/e.yaml")
            && taken.stderr.contains("unchanged_read=1 of=4"),
        "{}",
        taken.stderr
    );
    let index = format!("{}index/local/", repo.prefix());
    let keys = index_keys(&repo).await;
    assert!(keys.contains(&format!("{index}digest")), "{keys:?}");
    assert!(!keys.iter().any(|k| k.contains(&d_blob)), "{keys:?}");
    assert!(
        keys.iter()
            .any(|k| k.contains(&format!("/word/{}/", repo.name("e")))),
        "{keys:?}"
    );
}

/// The keys under the source index of this test's `local` environment.
pub(crate) async fn index_keys(repo: &TestRepo) -> Vec<String> {
    let mut etcd = etcd_client::Client::connect([repo.services().etcd.as_str()], None)
        .await
        .unwrap();
    let index = format!("{}index/local/", repo.prefix());
    let keys = etcd
        .get(
            index.as_str(),
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_keys_only(),
            ),
        )
        .await
        .unwrap();
    keys.kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect()
}

/// An apply killed while it writes the source index, once the first
/// transaction of word keys has reached etcd (more names than one
/// transaction holds), leaves no digest: a pull request's plan reads every
/// file and still finds its collision. The next apply writes the index
/// whole, and the plan reads only the file it finds.
#[tokio::test]
async fn an_apply_killed_while_writing_the_index_leaves_none_and_the_next_writes_it_whole() {
    let repo = TestRepo::new();
    let git = Repository::init(repo.dir.path()).unwrap();
    repo.namespace("a", &topics(&["a"]));
    repo.namespace("c", &topics(&["c"]));
    commit_all(&git, "two namespaces");
    let apply = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.all_output());

    // `b` declares 150 consumer groups: its words take two transactions.
    let mut groups = String::from("  consumers:\n");
    for i in 0..150 {
        groups.push_str(&format!("    - group: {{tag}}-g{i}\n"));
    }
    repo.namespace("b", &format!("{}{groups}", topics(&["b"])));
    let base = commit_all(&git, "add b").to_string();
    // The first transaction of words is committed (etcd says so to a
    // watch), its reply held: the apply waits there, and is killed.
    let mut client = etcd_client::Client::connect([repo.services().etcd.as_str()], None)
        .await
        .unwrap();
    let b_words = format!("{}index/local/word/{}-g", repo.prefix(), repo.tag);
    let mut committed = client
        .watch(
            b_words.as_str(),
            Some(etcd_client::WatchOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    let etcd = crate::proxy::Proxy::start(&repo.services().etcd);
    let words = format!("{}index/local/word/", repo.prefix());
    let sent = etcd.when_sent(&words, crate::proxy::Mode::HoldReplies);
    let mut killed = repo
        .sluice()
        .env("SLUICE_ETCD_ENDPOINTS", etcd.url())
        .args(["apply", "--auto-approve"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    sent.recv().expect("the apply writes the index's words");
    // The first answer says the watch is made; then come the puts.
    while committed
        .message()
        .await
        .unwrap()
        .expect("the watch goes on")
        .events()
        .is_empty()
    {}
    killed.kill().unwrap();
    killed.wait().unwrap();
    drop(etcd);
    let keys = index_keys(&repo).await;
    let b_words = keys
        .iter()
        .filter(|k| k.contains(&format!("/word/{}-g", repo.tag)))
        .count();
    assert!(
        !keys.iter().any(|k| k.ends_with("/digest")) && b_words > 0 && b_words < 150,
        "half written, with no digest: {keys:?}"
    );

    let plan = || {
        run(repo
            .sluice()
            .env("SLUICE_LOG", "sluice=debug")
            .args(["plan", "--base", &base]))
    };
    repo.namespace("a", &topics(&["a", "c"]));
    let unindexed = plan();
    assert_eq!(unindexed.code, 1, "{}", unindexed.all_output());
    assert!(
        unindexed.stderr.contains("is declared twice")
            && unindexed.stderr.contains("namespaces/c.yaml")
            && unindexed.stderr.contains("unchanged_read=2 of=3"),
        "{}",
        unindexed.stderr
    );

    // The killed apply's lock is left on its lease: removed, as an operator would.
    repo.namespace("a", &topics(&["a"]));
    let unlock = repo.run(&["unlock", "--force"]);
    assert_eq!(unlock.code, 0, "{}", unlock.all_output());
    let apply = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.all_output());
    let keys = index_keys(&repo).await;
    assert!(keys.iter().any(|k| k.ends_with("/digest")), "{keys:?}");
    repo.namespace("a", &topics(&["a", "c"]));
    let indexed = plan();
    assert_eq!(indexed.code, 1, "{}", indexed.all_output());
    assert!(
        indexed.stderr.contains("namespaces/c.yaml")
            && indexed.stderr.contains("unchanged_read=1 of=3"),
        "{}",
        indexed.stderr
    );
}

/// A blob's entry in the index that says other names than the file
/// declares (as a sluice whose names were other would have written it,
/// or a corrupt value that still reads), with those words' keys gone: the
/// next apply that writes the index writes that blob's names again, and a
/// pull request's plan finds the file by them.
#[tokio::test]
async fn an_index_entry_that_says_other_names_is_written_again() {
    let repo = TestRepo::new();
    let git = Repository::init(repo.dir.path()).unwrap();
    repo.namespace("a", &topics(&["a"]));
    repo.namespace("c", &topics(&["c"]));
    let base = commit_all(&git, "two namespaces").to_string();
    let apply = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.all_output());

    let mut etcd = etcd_client::Client::connect([repo.services().etcd.as_str()], None)
        .await
        .unwrap();
    let index = format!("{}index/local/", repo.prefix());
    let c_blob = git2::Oid::hash_file(
        git2::ObjectType::Blob,
        repo.dir.path().join("namespaces/c.yaml"),
    )
    .unwrap()
    .to_string();
    etcd.put(format!("{index}blob/{c_blob}"), "[]", None)
        .await
        .unwrap();
    let c_words: Vec<String> = index_keys(&repo)
        .await
        .into_iter()
        .filter(|k| k.contains("/word/") && k.ends_with(&c_blob))
        .collect();
    assert!(!c_words.is_empty());
    for key in c_words {
        etcd.delete(key, None).await.unwrap();
    }
    etcd.delete(format!("{index}digest"), None).await.unwrap();
    let apply = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.all_output());
    assert!(index_keys(&repo).await.contains(&format!("{index}digest")));

    repo.namespace("a", &topics(&["a", "c"]));
    let taken = run(repo
        .sluice()
        .env("SLUICE_LOG", "sluice=debug")
        .args(["plan", "--base", &base]));
    assert_eq!(taken.code, 1, "{}", taken.all_output());
    assert!(
        taken.stderr.contains("is declared twice")
            && taken.stderr.contains("namespaces/c.yaml")
            && taken.stderr.contains("unchanged_read=1 of=2"),
        "{}",
        taken.stderr
    );
}

#[test]
fn a_change_to_no_namespace_file_says_so() {
    let repo = TestRepo::new();
    let (git, _base) = three_applied(&repo);
    std::fs::write(repo.dir.path().join("README.md"), "notes\n").unwrap();
    let base = commit_all(&git, "notes only").to_string();
    std::fs::write(repo.dir.path().join("README.md"), "more notes\n").unwrap();
    let plan = repo.run(&["plan", "--base", &base]);
    assert_eq!(plan.code, 0, "{}", plan.all_output());
    assert!(
        plan.stdout
            .contains("No namespace file changed: the plan covers no namespace."),
        "{}",
        plan.stdout
    );
    assert!(!plan.stdout.contains("Only the 0"), "{}", plan.stdout);
}
