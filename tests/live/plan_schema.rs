//! The plan JSON against `schemas/plan.schema.json`, with check-jsonschema
//! (installed by `scripts/services.sh install`): every golden plan, which
//! between them hold every action, cause and kind of value.

use std::ffi::OsStr;

use crate::common::root;
use crate::servers::check_jsonschema;

fn check(files: &[std::path::PathBuf]) -> (bool, String) {
    let schema = root().join("schemas/plan.schema.json");
    let mut args: Vec<&OsStr> = vec![OsStr::new("--schemafile"), schema.as_os_str()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    check_jsonschema(&args)
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
