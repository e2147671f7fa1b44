//! The example workflow against GitHub's own workflow schema, offline: the
//! copy check-jsonschema vendors (installed by `scripts/services.sh install`).

use std::ffi::OsStr;

use crate::common::root;
use crate::servers::check_jsonschema;

fn check(file: &std::path::Path) -> (bool, String) {
    let builtin = ["--builtin-schema", "vendor.github-workflows"].map(OsStr::new);
    check_jsonschema(&[builtin[0], builtin[1], file.as_os_str()])
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
