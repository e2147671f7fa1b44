//! What a pull request controls is untrusted input. These tests are named
//! after the defects they guard against; the ones that need the servers are
//! in `tests/live/untrusted.rs`.

use std::path::Path;

use git2::Repository;

use crate::common::{Run, TestRepo, commit_all, run, sluice};

/// Text that must never appear in any output.
const CANARY: &str = "CANARY-4f1d2c";

/// A file outside the repository, holding the canary.
fn outside(dir: &Path) -> std::path::PathBuf {
    let secret = dir.join("outside-secret.yaml");
    std::fs::write(
        &secret,
        format!("root:x:0:0:{CANARY}:/root:/bin/bash\npassword: {CANARY}\n"),
    )
    .unwrap();
    secret
}

fn assert_no_canary(r: &Run) {
    assert!(
        !r.all_output().contains(CANARY),
        "the canary leaked:\n{}",
        r.all_output()
    );
}

#[test]
fn a_symlinked_namespace_file_is_never_read_into_an_error_snippet() {
    let repo = TestRepo::new();
    let elsewhere = tempfile::tempdir().unwrap();
    let secret = outside(elsewhere.path());
    std::os::unix::fs::symlink(&secret, repo.dir.path().join("namespaces/leak.yaml")).unwrap();
    for format in ["text", "json"] {
        let r = repo.offline(&["validate", "--format", format]);
        assert_eq!(r.code, 1, "{}", r.all_output());
        assert_no_canary(&r);
        assert!(
            r.all_output().contains("namespaces/leak.yaml")
                && r.all_output().contains("symbolic link"),
            "{}",
            r.all_output()
        );
    }
}

#[test]
fn a_symlinked_workspace_or_directory_is_never_followed() {
    let repo = TestRepo::new();
    let elsewhere = tempfile::tempdir().unwrap();
    let secret = outside(elsewhere.path());
    let ws = repo.dir.path().join("sluice.yaml");
    std::fs::remove_file(&ws).unwrap();
    std::os::unix::fs::symlink(&secret, &ws).unwrap();
    std::fs::create_dir(elsewhere.path().join("more")).unwrap();
    std::fs::copy(&secret, elsewhere.path().join("more/x.yaml")).unwrap();
    std::os::unix::fs::symlink(
        elsewhere.path().join("more"),
        repo.dir.path().join("namespaces/more"),
    )
    .unwrap();
    let r = repo.offline(&["validate"]);
    assert_eq!(r.code, 1, "{}", r.all_output());
    assert_no_canary(&r);
    for link in ["sluice.yaml", "namespaces/more"] {
        assert!(r.stderr.contains(link), "{link} not named:\n{}", r.stderr);
    }
}

#[test]
fn symlink_loops_do_not_make_validate_walk_forever() {
    let repo = TestRepo::new();
    repo.namespace("a", "  topics:\n    - name: {tag}-a\n");
    let ns = repo.dir.path().join("namespaces");
    std::os::unix::fs::symlink(".", ns.join("loop1")).unwrap();
    std::os::unix::fs::symlink(".", ns.join("loop2")).unwrap();
    std::os::unix::fs::symlink("self.yaml", ns.join("self.yaml")).unwrap();
    let r = repo.offline(&["validate", "--format", "json"]);
    assert_eq!(r.code, 1, "{}", r.all_output());
    let links: Vec<String> = r.json()["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["code"] == "symlink")
        .map(|d| d["file"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(links.len(), 3, "{links:?}");
    // The real file is still read, once.
    assert!(!r.stdout.contains("duplicate"), "{}", r.stdout);
}

#[test]
fn a_symlink_committed_to_git_is_never_read() {
    let repo = TestRepo::new();
    let git = Repository::init(repo.dir.path()).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let secret = outside(elsewhere.path());
    std::os::unix::fs::symlink(&secret, repo.dir.path().join("namespaces/leak.yaml")).unwrap();
    commit_all(&git, "a link");
    let r =
        run(sluice(repo.dir.path()).args(["validate", "--git", repo.dir.path().to_str().unwrap()]));
    assert_eq!(r.code, 1, "{}", r.all_output());
    assert_no_canary(&r);
    assert!(r.stderr.contains("namespaces/leak.yaml"), "{}", r.stderr);
}
