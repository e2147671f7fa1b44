//! Records the Git commit sluice is built from, for `sluice --version`, as
//! `SLUICE_COMMIT`. Outside a Git checkout of this crate (a crates.io
//! tarball, a source archive, no `git` installed) it is "unknown commit".
//!
//! Cargo runs this again when HEAD moves: it watches the HEAD file and the
//! file of the branch HEAD names, wherever Git keeps them (a worktree has a
//! `.git` file, its HEAD under the main repository's `worktrees/`, and its
//! branches in the common directory; a packed branch lives in `packed-refs`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    // Git reads these, so they change which commit is found.
    println!("cargo:rerun-if-env-changed=GIT_DIR");
    println!("cargo:rerun-if-env-changed=GIT_WORK_TREE");
    let commit = commit(&dir).unwrap_or_else(|| "unknown commit".to_owned());
    println!("cargo:rustc-env=SLUICE_COMMIT={commit}");
}

/// `commit <id>` of HEAD, when `dir` is the top of a Git checkout.
fn commit(dir: &Path) -> Option<String> {
    // A tarball unpacked inside another repository must not take that
    // repository's commit.
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    if canonical(Path::new(&top)) != canonical(dir) {
        return None;
    }
    watch_head(dir);
    let id = git(dir, &["rev-parse", "--short=12", "HEAD"])?;
    Some(format!("commit {id}"))
}

/// Tells cargo which files move when HEAD does. Only files that exist are
/// named: cargo runs a build script on every build for a missing one.
fn watch_head(dir: &Path) {
    let path = |name: &str| git(dir, &["rev-parse", "--git-path", name]).map(|p| dir.join(p));
    let mut watched = Vec::new();
    watched.extend(path("HEAD"));
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        match path(&branch) {
            Some(file) if file.is_file() => watched.push(file),
            // Packed: the first commit on it writes a loose file in its
            // directory, which cargo then sees as a change there.
            Some(file) => watched.extend(file.parent().map(Path::to_path_buf)),
            None => {}
        }
        watched.extend(path("packed-refs"));
    }
    for file in watched.into_iter().filter(|p| p.exists()) {
        println!("cargo:rerun-if-changed={}", file.display());
    }
}

/// What `git -C dir ARGS` prints, trimmed; `None` when it fails or prints nothing.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}
