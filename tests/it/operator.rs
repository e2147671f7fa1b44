//! The operator's commands and flags that need no server: `show`,
//! completions and man pages, `--version`, `--no-color`, and what `destroy`
//! and `--namespace` refuse before reaching any system.

use std::io::Read;
use std::path::Path;
use std::process::Stdio;

use sluice::plan::Plan;

use crate::common::{root, run, sluice};

/// A plan as `plan --out` saves it, from a golden case.
fn saved_plan(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(
        root().join("tests/fixtures/plans/create-from-empty/expected.json"),
    )
    .unwrap();
    let plan: Plan = serde_json::from_str(&text).unwrap();
    let saved = Plan {
        digest: Some(plan.digest()),
        ..plan
    };
    let path = dir.join("plan.json");
    std::fs::write(&path, serde_json::to_string_pretty(&saved).unwrap()).unwrap();
    path
}

#[test]
fn show_renders_a_saved_plan_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved_plan(dir.path());
    let file = path.to_str().unwrap();
    let text = run(sluice(dir.path()).args(["show", file]));
    assert_eq!(text.code, 0, "{}", text.all_output());
    assert!(text.stdout.contains("Saved plan"), "{}", text.stdout);
    assert!(
        text.stdout.contains("sluice plan for environment `dev`"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains(" to create, 0 to update, 0 to delete.")
    );
    let json = run(sluice(dir.path()).args(["show", file, "--format", "json"]));
    assert_eq!(json.code, 0, "{}", json.all_output());
    let shown: Plan = serde_json::from_str(&json.stdout).unwrap();
    let saved: Plan = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(shown, saved);
    let md = run(sluice(dir.path()).args(["show", file, "--format", "markdown"]));
    assert_eq!(md.code, 0, "{}", md.all_output());
    assert!(
        md.stdout.starts_with("### sluice plan: `dev`"),
        "{}",
        md.stdout
    );
    // Another environment's plan is refused when `--env` names one.
    let other = run(sluice(dir.path()).args(["show", file, "--env", "prod"]));
    assert_eq!(other.code, 1);
    assert!(other.stderr.contains("not `prod`"), "{}", other.stderr);
}

#[test]
fn show_refuses_an_edited_plan() {
    let dir = tempfile::tempdir().unwrap();
    let path = saved_plan(dir.path());
    let text = std::fs::read_to_string(&path).unwrap();
    // Someone raises a partition count in the file after it was saved.
    let edited = text.replacen("\"after\": 3\n", "\"after\": 30\n", 1);
    assert_ne!(edited, text, "the fixture creates a topic of 3 partitions");
    std::fs::write(&path, edited).unwrap();
    let file = path.to_str().unwrap();
    let out = run(sluice(dir.path()).args(["show", file]));
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("does not match its digest"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "nothing is shown: {}", out.stdout);
    let json = run(sluice(dir.path()).args(["show", file, "--format", "json"]));
    assert_eq!(json.code, 1);
    assert_eq!(json.json()["error"]["kind"], "input");
    // Not a plan at all.
    std::fs::write(&path, "{}").unwrap();
    let out = run(sluice(dir.path()).args(["show", file]));
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("cannot use the plan"), "{}", out.stderr);
}

#[test]
fn completions_name_every_command_and_man_pages_cover_each() {
    let bash = run(sluice(&root()).args(["completions", "bash"]));
    assert_eq!(bash.code, 0, "{}", bash.stderr);
    for word in [
        "plan",
        "apply",
        "drift",
        "show",
        "unlock",
        "forget",
        "destroy",
        "--namespace",
        "--no-color",
    ] {
        assert!(bash.stdout.contains(word), "bash completions lack {word}");
    }
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let out = run(sluice(&root()).args(["completions", shell]));
        assert_eq!(out.code, 0, "{shell}: {}", out.stderr);
        assert!(out.stdout.contains("destroy"), "{shell}");
    }
    assert_eq!(run(sluice(&root()).args(["completions", "tcsh"])).code, 1);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("man1");
    let made = run(sluice(&root()).args(["man", "--out", out.to_str().unwrap()]));
    assert_eq!(made.code, 0, "{}", made.stderr);
    for page in [
        "sluice.1",
        "sluice-plan.1",
        "sluice-destroy.1",
        "sluice-render-alerts.1",
    ] {
        let text =
            std::fs::read_to_string(out.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.starts_with(".ie"), "{page} is not roff: {text:.80}");
        assert!(text.contains(".TH"), "{page}");
    }
    let plan = std::fs::read_to_string(out.join("sluice-plan.1")).unwrap();
    assert!(plan.contains("namespace"), "{plan}");
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

#[test]
fn destroy_and_namespace_refuse_before_reaching_any_system() {
    // Both are settled before any system is reached: none runs for these tests.
    let examples = root().join("examples");
    let repo = examples.to_str().unwrap();
    let none = run(sluice(&root()).args(["destroy", "--repo", repo, "--env", "local"]));
    assert_eq!(none.code, 1);
    assert!(
        none.stderr
            .contains("refusing to destroy environment `local` without confirmation"),
        "{}",
        none.stderr
    );
    assert!(none.stderr.contains("--confirm"), "{}", none.stderr);
    let wrong = run(sluice(&root()).args([
        "destroy",
        "--repo",
        repo,
        "--env",
        "local",
        "--confirm",
        "prod",
    ]));
    assert_eq!(wrong.code, 1);
    assert!(
        wrong.stderr.contains("`--confirm prod` does not name"),
        "{}",
        wrong.stderr
    );
    for args in [
        &["plan", "--namespace", "a", "--base", "HEAD"][..],
        &["plan", "--namespace", "a", "--all-environments"],
        &["apply", "plan.json", "--namespace", "a"],
    ] {
        let out = run(sluice(&root()).args(args));
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("cannot be used with"), "{}", out.stderr);
    }
}

/// `sluice snapshot` in an environment without `state_backup` fails before
/// reaching anything, naming the setting to add.
#[test]
fn snapshot_without_state_backup_names_the_setting_and_reaches_nothing() {
    let repo = crate::common::TestRepo::new();
    let out = repo.offline(&["snapshot"]);
    assert_eq!(out.code, 1, "{}", out.all_output());
    assert!(
        out.stderr
            .contains("environment `local` declares no `state_backup`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("hint: declare `state_backup`"),
        "{}",
        out.stderr
    );
}
