//! The plan JSON against `schemas/plan.schema.json`, with check-jsonschema
//! (installed by `scripts/services.sh install`): every golden plan, which
//! between them hold every action, cause and kind of value.

use std::process::Command;

use crate::common::root;
use crate::servers::shared;

fn check(files: &[std::path::PathBuf]) -> (bool, String) {
    let tool = shared().var("CHECK_JSONSCHEMA");
    let out = Command::new(&tool)
        .arg("--schemafile")
        .arg(root().join("schemas/plan.schema.json"))
        .args(files)
        .output()
        .unwrap_or_else(|e| panic!("{tool} does not run ({e}): scripts/services.sh install"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn every_golden_plan_validates_against_the_plan_schema() {
    let mut plans: Vec<_> = std::fs::read_dir(root().join("tests/fixtures/plans"))
        .unwrap()
        .map(|e| e.unwrap().path().join("expected.json"))
        .filter(|p| p.exists())
        .collect();
    plans.sort();
    assert!(plans.len() >= 10, "{plans:?}");
    let (ok, text) = check(&plans);
    assert!(ok, "{text}");
    // The check can fail: an action the schema does not know is refused.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    let text = std::fs::read_to_string(&plans[0]).unwrap();
    assert!(text.contains("\"action\": \""), "{text}");
    let text = regex::Regex::new(r#""action": "[a-z]+""#)
        .unwrap()
        .replace(&text, r#""action": "explode""#)
        .into_owned();
    std::fs::write(&bad, text).unwrap();
    let (ok, text) = check(&[bad]);
    assert!(!ok, "an unknown action passed:\n{text}");
}
