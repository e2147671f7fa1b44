//! The example workflow against GitHub's own workflow schema, offline: the
//! copy check-jsonschema vendors (installed by `scripts/services.sh install`).

use std::process::Command;

use crate::common::root;
use crate::servers::shared;

fn check(file: &std::path::Path) -> (bool, String) {
    let tool = shared().var("CHECK_JSONSCHEMA");
    let out = Command::new(&tool)
        .args(["--builtin-schema", "vendor.github-workflows"])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("{tool} does not run ({e}): scripts/services.sh install"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_example_workflow_is_valid_under_githubs_workflow_schema() {
    let example = root().join("examples/ci/github-actions.yml");
    let (ok, text) = check(&example);
    assert!(ok, "{text}");
    // The check can fail: a misspelt job key is refused.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yml");
    let text = std::fs::read_to_string(&example)
        .unwrap()
        .replacen("runs-on:", "runs_on:", 1);
    std::fs::write(&bad, text).unwrap();
    let (ok, text) = check(&bad);
    assert!(!ok, "a misspelt `runs-on` passed:\n{text}");
}
