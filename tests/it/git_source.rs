//! Reading the config from a Git revision, without a checkout.

use std::path::{Path, PathBuf};

use git2::{Oid, Repository};

use crate::common::{commit_all, copy_tree, root, run, sluice};

/// A repository with the examples committed, then a broken namespace committed on top.
fn repo_with_history(dir: &Path) -> (Repository, Oid, Oid) {
    let repo = Repository::init(dir).unwrap();
    copy_tree(&root().join("examples"), dir);
    let good = commit_all(&repo, "examples");
    std::fs::write(dir.join("namespaces/orders.yaml"), broken_file("orders")).unwrap();
    let bad = commit_all(&repo, "break orders");
    (repo, good, bad)
}

#[test]
fn reads_the_committed_files_at_a_revision() {
    let tmp = tempfile::tempdir().unwrap();
    let (_repo, good, bad) = repo_with_history(tmp.path());
    let git = tmp.path().to_str().unwrap();

    let out = run(sluice(&root()).args(["validate", "--git", git, "--rev", "HEAD"]));
    assert_eq!(out.code, 1, "HEAD has the broken file");
    assert!(
        out.stderr.contains("namespaces/orders.yaml:6:14"),
        "{}",
        out.stderr
    );

    let out = run(sluice(&root()).args([
        "validate", "--format", "json", "--git", git, "--rev", "HEAD~1",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["revision"], good.to_string());
    assert_ne!(good, bad);
}

#[test]
fn the_working_tree_is_not_read() {
    let tmp = tempfile::tempdir().unwrap();
    let (_repo, _good, bad) = repo_with_history(tmp.path());
    // Fix the file on disk only: the commit is still broken, and that is what counts.
    std::fs::copy(
        root().join("examples/namespaces/orders.yaml"),
        tmp.path().join("namespaces/orders.yaml"),
    )
    .unwrap();
    std::fs::remove_file(tmp.path().join("sluice.yaml")).unwrap();
    let out = run(sluice(&root()).args([
        "validate",
        "--format",
        "json",
        "--git",
        tmp.path().to_str().unwrap(),
    ]));
    assert_eq!(out.code, 1);
    assert_eq!(out.json()["revision"], bad.to_string());
    assert_eq!(out.json()["diagnostics"][0]["code"], "invalid-duration");
}

#[test]
fn a_url_is_fetched_into_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let origin = tmp.path().join("origin");
    let (repo, good, _bad) = repo_with_history(&origin);
    let branch = repo.head().unwrap().shorthand().unwrap().to_owned();
    let url = format!("file://{}", origin.display());
    let cache = tmp.path().join("cache");

    let out = run(sluice(&root()).env("SLUICE_CACHE_DIR", &cache).args([
        "validate",
        "--format",
        "json",
        "--git",
        &url,
        "--rev",
        &format!("{branch}~1"),
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.json()["revision"], good.to_string());
    assert!(
        cache.join("git").read_dir().unwrap().next().is_some(),
        "the remote is cached"
    );

    let out = run(sluice(&root())
        .env("SLUICE_CACHE_DIR", &cache)
        .args(["validate", "--git", &url]));
    assert_eq!(out.code, 1, "HEAD of the remote is the broken commit");

    let out = run(sluice(&root()).env("SLUICE_CACHE_DIR", &cache).args([
        "validate",
        "--git",
        &url,
        "--rev",
        "no-such-branch",
    ]));
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("cannot resolve revision `no-such-branch`"),
        "{}",
        out.stderr
    );
}

/// `sluice.yaml` of one environment whose servers refuse at once: a pull
/// request's plan says the problems of its own files before connecting.
const UNREACHABLE_WORKSPACE: &str = "apiVersion: sluice/v1\nkind: Workspace\nspec:\n  environments:\n    local:\n      stage: dev\n      kafka:\n        bootstrap_servers: [\"127.0.0.1:9\"]\n        brokers: 1\n      etcd:\n        endpoints: [\"http://127.0.0.1:9\"]\n      defaults:\n        replication_factor: 1\n";

/// A namespace file of `name` with one topic.
fn namespace_file(name: &str) -> String {
    format!(
        "apiVersion: sluice/v1\nkind: Namespace\nmetadata:\n  name: {name}\nspec:\n  topics:\n    - name: {name}\n"
    )
}

/// Namespace `name`'s file with a retention that does not parse, at 6:14.
fn broken_file(name: &str) -> String {
    format!(
        "apiVersion: sluice/v1\nkind: Namespace\nmetadata:\n  name: {name}\nspec:\n  retention: soon\n"
    )
}

/// A repository in `dir` whose config, in its subdirectory `config` (`.`
/// for its root), holds namespaces `names`, committed; returns the
/// repository, the config's path and the commit.
fn committed(dir: &Path, config: &str, names: &[&str]) -> (Repository, PathBuf, String) {
    let git = Repository::init(dir).unwrap();
    let config = dir.join(config);
    std::fs::create_dir_all(config.join("namespaces")).unwrap();
    std::fs::write(config.join("sluice.yaml"), UNREACHABLE_WORKSPACE).unwrap();
    for name in names {
        std::fs::write(
            config.join(format!("namespaces/{name}.yaml")),
            namespace_file(name),
        )
        .unwrap();
    }
    let base = commit_all(&git, "namespaces").to_string();
    (git, config, base)
}

/// `--repo DIR` where DIR is a directory of the repository whose name is a
/// glob pattern: a change under it is found (as a pattern, `c[1]` would
/// only match `c1/`, and the change would plan as none).
#[test]
fn plan_base_finds_a_change_under_a_directory_named_like_a_pattern() {
    let tmp = tempfile::tempdir().unwrap();
    let (_git, config, base) = committed(tmp.path(), "c[1]", &["a"]);
    std::fs::write(config.join("namespaces/a.yaml"), broken_file("a")).unwrap();
    let out = run(sluice(tmp.path()).args(["plan", "--repo", "c[1]", "--base", &base]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("c[1]/namespaces/a.yaml:6:14"),
        "{}",
        out.stderr
    );
}

/// A namespace file on disk that Git does not list (ignored, or removed
/// from its index) is read by a plan of the directory: a pull request's plan
/// reads it too, as a changed file, and says its problems.
#[test]
fn plan_base_reads_the_files_on_disk_git_does_not_list() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join(".gitignore"), "namespaces/local-*.yaml\n").unwrap();
    let (git, _, base) = committed(tmp.path(), ".", &["a", "b"]);
    let broken = broken_file("x");
    let plan = || run(sluice(tmp.path()).args(["plan", "--base", &base]));

    std::fs::write(tmp.path().join("namespaces/local-x.yaml"), &broken).unwrap();
    let validate = run(sluice(tmp.path()).args(["validate"]));
    assert!(
        validate.stderr.contains("namespaces/local-x.yaml:6:14"),
        "the directory's plan reads it: {}",
        validate.stderr
    );
    let ignored = plan();
    assert_eq!(ignored.code, 1, "{}", ignored.stderr);
    assert!(
        ignored.stderr.contains("namespaces/local-x.yaml:6:14"),
        "{}",
        ignored.stderr
    );
    std::fs::remove_file(tmp.path().join("namespaces/local-x.yaml")).unwrap();

    // Removed from Git's index, still on disk: its text on disk counts.
    std::fs::write(tmp.path().join("namespaces/b.yaml"), &broken).unwrap();
    let mut index = git.index().unwrap();
    index.remove_path(Path::new("namespaces/b.yaml")).unwrap();
    index.write().unwrap();
    std::fs::write(tmp.path().join(".gitignore"), "namespaces/b.yaml\n").unwrap();
    let untracked = plan();
    assert_eq!(untracked.code, 1, "{}", untracked.stderr);
    assert!(
        untracked.stderr.contains("namespaces/b.yaml:6:14"),
        "{}",
        untracked.stderr
    );
}

/// A namespace file Git's index marks assume-unchanged or skip-worktree is
/// not diffed by Git, and read from disk by a plan of the directory: a pull
/// request's plan reads it from disk too.
#[test]
fn plan_base_reads_from_disk_the_files_git_assumes_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let (git, _, base) = committed(tmp.path(), ".", &["a", "b"]);
    std::fs::write(tmp.path().join("namespaces/b.yaml"), broken_file("b")).unwrap();
    // libgit2's GIT_INDEX_ENTRY_VALID (in `flags`) and
    // GIT_INDEX_ENTRY_SKIP_WORKTREE (in `flags_extended`).
    for (valid, skip) in [(1 << 15, 0), (0, 1 << 14)] {
        let mut index = git.index().unwrap();
        let mut entry = index.get_path(Path::new("namespaces/b.yaml"), 0).unwrap();
        entry.flags = (entry.flags & !(1 << 15)) | valid;
        if skip != 0 {
            // An extended flag needs the entry marked extended.
            entry.flags |= 1 << 14;
        }
        entry.flags_extended = skip;
        index.add(&entry).unwrap();
        index.write().unwrap();
        let plan = run(sluice(tmp.path()).args(["plan", "--base", &base]));
        assert_eq!(plan.code, 1, "{}", plan.stderr);
        assert!(
            plan.stderr.contains("namespaces/b.yaml:6:14"),
            "valid {valid}, skip-worktree {skip}: {}",
            plan.stderr
        );
    }
}
