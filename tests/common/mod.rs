//! Helpers shared by both test binaries: `it` (no servers) and `live`
//! (the local servers; `tests/live/servers.rs` adds what talks to them).
#![allow(dead_code)] // each binary uses its own part

use std::path::{Path, PathBuf};
use std::process::Command;

use git2::{IndexAddOption, Oid, Repository, Signature};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What a `sluice` run printed and returned.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Everything printed, for "never appears" checks.
    pub fn all_output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// A `sluice` command in `dir`, isolated from the caller's `SLUICE_*` settings.
pub fn sluice(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.current_dir(dir).env("NO_COLOR", "1");
    for (name, _) in std::env::vars() {
        if name.starts_with("SLUICE_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

pub fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().expect("the sluice binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A new pseudo-terminal: its controlling side, and the side a child's
/// stdin, stdout or stderr is given to act on a terminal.
pub fn pty() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty fills in two new fds, which are then owned here.
    let made = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(made, 0, "openpty");
    // SAFETY: both are open and owned by nothing else.
    unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(master),
            std::os::fd::OwnedFd::from_raw_fd(slave),
        )
    }
}

/// Copies a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `sluice render alerts` of `repo` (an environment of it) into a new directory.
pub fn render_alerts(repo: &Path, env: &str) -> tempfile::TempDir {
    let out = tempfile::tempdir().unwrap();
    let r = run(sluice(&root()).args([
        "render",
        "alerts",
        "--repo",
        repo.to_str().unwrap(),
        "--env",
        env,
        "--out",
        out.path().to_str().unwrap(),
    ]));
    assert_eq!(r.code, 0, "{}", r.all_output());
    out
}

/// A name no other test run uses, for resources on the shared servers.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// What a critical namespace needs to pass the built-in policies: DR with a
/// short RPO, and an alert.
pub const DR_AND_ALERTS: &str = "  disaster_recovery:\n    rpo: 10m\n  alerts:\n    - {name: lag, condition: consumer_lag > 100, severity: critical}\n";

/// A config repository of one test: its namespaces carry a unique tag and
/// its etcd prefix is its own, so tests share the servers without meeting.
pub struct TestRepo {
    pub dir: tempfile::TempDir,
    pub tag: String,
}

impl TestRepo {
    pub fn new() -> Self {
        let repo = TestRepo {
            dir: tempfile::tempdir().unwrap(),
            tag: unique("t").replace('-', ""),
        };
        std::fs::create_dir_all(repo.dir.path().join("namespaces")).unwrap();
        repo.workspace("");
        repo
    }

    /// A repository whose `local` environment has `stage` (`prod` also gets 3
    /// brokers and 3 replicas by default).
    pub fn in_stage(stage: &str) -> Self {
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

    /// Writes `sluice.yaml` with one `local` environment; `extra` goes under `spec`.
    pub fn workspace(&self, extra: &str) {
        let text = format!(
            "apiVersion: sluice/v1\nkind: Workspace\nspec:\n  environments:\n    local:\n      stage: dev\n      kafka:\n        bootstrap_servers: [\"127.0.0.1:9\"]\n        brokers: 1\n      s3:\n        region: us-east-1\n        endpoint: http://127.0.0.1:9\n        path_style: true\n        replication_role: arn:aws:iam::123456789012:role/tests\n      etcd:\n        endpoints: [\"http://127.0.0.1:9\"]\n      defaults:\n        replication_factor: 1\n{extra}"
        );
        std::fs::write(self.dir.path().join("sluice.yaml"), text).unwrap();
    }

    /// The name a namespace or topic of this test gets.
    pub fn name(&self, short: &str) -> String {
        format!("{}-{short}", self.tag)
    }

    /// Writes `namespaces/<short>.yaml` for namespace `<tag>-<short>`; `spec`
    /// is the indented body under `spec:`, where `{tag}` stands for the tag.
    pub fn namespace(&self, short: &str, spec: &str) {
        self.write_namespace(short, "", spec);
    }

    /// [`TestRepo::namespace`] of a tier (`critical`, `standard`, `best-effort`).
    pub fn namespace_in_tier(&self, short: &str, tier: &str, spec: &str) {
        self.write_namespace(short, &format!("  tier: {tier}\n"), spec);
    }

    fn write_namespace(&self, short: &str, metadata: &str, spec: &str) {
        let text = format!(
            "apiVersion: sluice/v1\nkind: Namespace\nmetadata:\n  name: {}\n  owner: tests\n{metadata}spec:\n{}",
            self.name(short),
            spec.replace("{tag}", &self.tag)
        );
        std::fs::write(
            self.dir.path().join(format!("namespaces/{short}.yaml")),
            text,
        )
        .unwrap();
    }

    pub fn remove_namespace(&self, short: &str) {
        std::fs::remove_file(self.dir.path().join(format!("namespaces/{short}.yaml"))).unwrap();
    }

    /// The etcd prefix of this test.
    pub fn prefix(&self) -> String {
        format!("/{}/", self.tag)
    }

    /// `sluice` in the repository, with no server settings: for commands
    /// that need no network (validate, schema, render).
    pub fn offline(&self, args: &[&str]) -> Run {
        run(sluice(self.dir.path()).args(args))
    }
}

/// Commits everything in the work tree of `repo`; returns the commit.
pub fn commit_all(repo: &Repository, message: &str) -> Oid {
    let mut index = repo.index().unwrap();
    index.add_all(["*"], IndexAddOption::DEFAULT, None).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = Signature::now("sluice tests", "tests@sluice.invalid").unwrap();
    let parents: Vec<_> = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .into_iter()
        .collect();
    let parents: Vec<_> = parents.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
        .unwrap()
}
