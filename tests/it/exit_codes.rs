//! Exit codes CI can trust: usage errors are failures (1), never the 2 that
//! means "changes"; under `--format json` a failure is one JSON object.

use crate::common::{root, run, sluice};

#[test]
fn usage_errors_exit_1_not_2() {
    for args in [
        &["drift", "--nope"][..],
        &["plan", "--detailed-exitcode", "--fromat", "json"],
        &["bogus"],
        &["--timeout", "0s", "plan"],
        &["watch", "--interval", "0s"],
        &["watch", "--interval", "500ms"],
    ] {
        let out = run(sluice(&root()).args(args));
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert!(out.stderr.contains("error:"), "{args:?}: {}", out.stderr);
    }
    let zero = run(sluice(&root()).args(["watch", "--interval", "0s"]));
    assert!(
        zero.stderr.contains("a watch interval is at least `1s`"),
        "{}",
        zero.stderr
    );
    for args in [&["--help"][..], &["--version"], &["plan", "--help"]] {
        assert_eq!(run(sluice(&root()).args(args)).code, 0, "{args:?}");
    }
    let help = run(sluice(&root()).arg("--help")).stdout;
    assert!(help.contains("Exit status:"), "{help}");
}

#[test]
fn a_failure_under_format_json_prints_one_json_error_object() {
    let missing = tempfile::tempdir().unwrap();
    let gone = missing.path().join("gone");
    for cmd in ["validate", "plan", "drift", "status"] {
        let out = run(sluice(missing.path()).args([
            cmd,
            "--format",
            "json",
            "--repo",
            gone.to_str().unwrap(),
        ]));
        assert_eq!(out.code, 1, "{cmd}: {}", out.stderr);
        let json: serde_json::Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{cmd}: stdout is not JSON ({e}): {}", out.stdout));
        assert_eq!(json["format_version"], 1, "{cmd}");
        assert_eq!(json["error"]["kind"], "input", "{cmd}: {json}");
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("does not exist")),
            "{cmd}: {json}"
        );
    }
}

#[test]
fn an_invalid_config_under_format_json_carries_its_diagnostics_and_no_secret() {
    for case in ["partitions-limit", "inline-secret"] {
        let dir = root().join("tests/fixtures/invalid").join(case);
        let out = run(sluice(&dir).args(["plan", "--format", "json"]));
        assert_eq!(out.code, 1, "{case}: {}", out.stderr);
        let json: serde_json::Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{case}: stdout is not JSON ({e}): {}", out.stdout));
        assert_eq!(json["error"]["kind"], "invalid", "{case}: {json}");
        let diagnostics = json["diagnostics"].as_array().expect("diagnostics");
        assert!(
            diagnostics
                .iter()
                .any(|d| d["level"] == "error" && d["file"].is_string() && d["line"].is_number()),
            "{case}: {json}"
        );
        assert!(!out.stdout.contains("CANARY"), "{case}: {}", out.stdout);
    }
}
