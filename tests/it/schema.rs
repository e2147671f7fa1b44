//! The JSON Schemas: fresh in `schemas/`, checked by `sluice schema --check`,
//! and referenced by every example file.

use sluice::schema::Kind;

use crate::common::{root, run, sluice};

#[test]
fn committed_schemas_match_the_types() {
    for kind in Kind::ALL {
        let path = root().join("schemas").join(kind.file_name());
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == kind.render(),
            "{} is stale: run `cargo run -- schema --out schemas` and commit it",
            path.display()
        );
    }
}

#[test]
fn schema_check_fails_on_a_stale_schema() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_str().unwrap();
    assert_eq!(run(sluice(&root()).args(["schema", "--out", dir])).code, 0);
    assert_eq!(
        run(sluice(&root()).args(["schema", "--check", "--out", dir])).code,
        0
    );

    let path = tmp.path().join("namespace.schema.json");
    let edited = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"retention\"", "\"retention_period\"");
    std::fs::write(&path, edited).unwrap();
    let out = run(sluice(&root()).args(["schema", "--check", "--out", dir]));
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("namespace.schema.json"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("workspace.schema.json"),
        "{}",
        out.stderr
    );
}

#[test]
fn schema_prints_a_kind() {
    let out = run(sluice(&root()).args(["schema", "workspace"]));
    assert_eq!(out.code, 0);
    assert_eq!(out.json()["title"], "sluice Workspace");
}

#[test]
fn every_example_carries_the_schema_modeline() {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join("examples"), &mut files);
    assert!(files.len() >= 4);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let line = text.lines().next().unwrap_or_default();
        let target = line
            .strip_prefix("# yaml-language-server: $schema=")
            .unwrap_or_else(|| panic!("{} lacks the modeline", file.display()));
        let schema = file.parent().unwrap().join(target);
        assert!(
            schema.is_file(),
            "{}: {} does not exist",
            file.display(),
            schema.display()
        );
        let kind = if file.ends_with("sluice.yaml") {
            "workspace"
        } else {
            "namespace"
        };
        assert!(
            target.ends_with(&format!("{kind}.schema.json")),
            "{}",
            file.display()
        );
    }
}
