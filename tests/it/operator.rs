//! The operator's commands and flags that need no server: completions and
//! man pages, `--version` and `--no-color`.

use std::io::Read;
use std::process::Stdio;

use crate::common::{root, run, sluice};

#[test]
fn completions_name_every_command_and_man_pages_cover_each() {
    let bash = run(sluice(&root()).args(["completions", "bash"]));
    assert_eq!(bash.code, 0, "{}", bash.stderr);
    for word in ["plan", "apply", "drift", "completions", "man", "--no-color"] {
        assert!(bash.stdout.contains(word), "bash completions lack {word}");
    }
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let out = run(sluice(&root()).args(["completions", shell]));
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        assert!(out.stdout.contains("completions"), "{shell}");
    }
    assert_eq!(run(sluice(&root()).args(["completions", "tcsh"])).code, 1);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let made = run(sluice(&root()).args(["man", "--out", out.to_str().unwrap()]));
    assert_eq!(made.code, 0, "{}", made.stderr);
    for page in [
        "sluice.1",
        "sluice-plan.1",
        "sluice-apply.1",
        "sluice-render-alerts.1",
    ] {
        let text =
            std::fs::read_to_string(out.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.starts_with(".ie"), "{page} is not roff: {text:.80}");
        assert!(text.contains(".TH"), "{page}");
    }
    let plan = std::fs::read_to_string(out.join("sluice-plan.1")).unwrap();
    assert!(plan.contains("detailed\\-exitcode"), "{plan}");
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let out = run(sluice(&root()).arg("--version"));
    assert_eq!(out.code, 0);
    let line = out.stdout.trim();
    assert!(line.starts_with("sluice 0."), "{line}");
    // Built from this checkout: its HEAD (cargo rebuilds when HEAD moves).
    match git2::Repository::open(root()) {
        Ok(repo) => {
            let head = repo
                .head()
                .unwrap()
                .peel_to_commit()
                .unwrap()
                .id()
                .to_string();
            assert!(
                line.ends_with(&format!("(commit {})", &head[..12])),
                "{line}"
            );
        }
        Err(_) => assert!(line.ends_with("(unknown commit)"), "{line}"),
    }
}

/// What a command prints on stderr when stderr is a terminal (a pty).
fn stderr_on_a_terminal(args: &[&str], no_color_env: bool) -> String {
    let (master, slave) = crate::common::pty();
    let mut cmd = sluice(&root());
    if !no_color_env {
        cmd.env_remove("NO_COLOR");
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    // The command holds this end too: closed, the child's exit ends the reads.
    drop(cmd);
    let mut text = Vec::new();
    let mut reader = std::fs::File::from(master);
    // The pty reads until the child closes it (EIO then).
    let _ = reader.read_to_end(&mut text);
    child.wait().unwrap();
    String::from_utf8_lossy(&text).into_owned()
}

#[test]
fn no_color_turns_colour_off_on_a_terminal() {
    let invalid = root().join("tests/fixtures/invalid/many-problems");
    let repo = invalid.to_str().unwrap();
    let coloured = stderr_on_a_terminal(&["validate", "--repo", repo], false);
    assert!(
        coloured.contains("\x1b["),
        "no colour on a terminal: {coloured}"
    );
    let plain = stderr_on_a_terminal(&["validate", "--repo", repo, "--no-color"], false);
    assert!(plain.contains("invalid duration"), "{plain}");
    assert!(
        !plain.contains("\x1b["),
        "colour despite --no-color: {plain}"
    );
    let env = stderr_on_a_terminal(&["validate", "--repo", repo], true);
    assert!(!env.contains("\x1b["), "colour despite NO_COLOR: {env}");
}
