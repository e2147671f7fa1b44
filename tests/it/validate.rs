//! `sluice validate` on the invalid fixtures and on the examples.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::common::{copy_tree, root, run, sluice};

/// Every problem class the foundation issue names has a fixture.
const REQUIRED_CLASSES: &[&str] = &[
    "unknown-field",
    "duplicate-key",
    "wrong-type",
    "duplicate-namespace",
    "duplicate-topic",
    "dlq-collision",
    "replication-factor",
    "invalid-duration",
    "invalid-size",
    "invalid-cron",
    "invalid-condition",
    "undeclared-bucket",
    "undeclared-region",
    "inline-secret",
    "missing-field",
    "unknown-value",
    "invalid-value",
    "short-retention",
    "too-many-partitions",
    "empty-workspace",
    "invalid-topic-config",
];

/// `file:line:column: code: message` for each error in a JSON report.
fn error_lines(report: &Value) -> Vec<String> {
    report["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .filter(|d| d["level"] == "error")
        .map(|d| {
            format!(
                "{}:{}:{}: {}: {}",
                d["file"].as_str().unwrap(),
                d["line"],
                d["column"],
                d["code"].as_str().unwrap(),
                d["message"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn each_invalid_fixture_reports_exactly_its_problems() {
    let dir = root().join("tests/fixtures/invalid");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= REQUIRED_CLASSES.len(),
        "fixtures are missing from {}",
        dir.display()
    );
    let mut classes = BTreeSet::new();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let expected: Vec<String> = std::fs::read_to_string(case.join("expected.txt"))
            .unwrap_or_else(|_| panic!("{name}: no expected.txt"))
            .lines()
            .map(str::to_owned)
            .collect();
        assert!(!expected.is_empty(), "{name}: expected.txt is empty");

        let json = run(sluice(case).args(["validate", "--format", "json"]));
        let text = run(sluice(case).arg("validate"));
        for out in [&json, &text] {
            if out.code != 1 {
                failures.push(format!("{name}: exit {} instead of 1", out.code));
            }
            if out.all_output().contains("CANARY") {
                failures.push(format!(
                    "{name}: a secret value was printed:\n{}",
                    out.all_output()
                ));
            }
        }
        let got = error_lines(&json.json());
        if got != expected {
            failures.push(format!(
                "{name}: errors differ\n  expected: {expected:#?}\n  got: {got:#?}"
            ));
        }
        // The text report names each place as file:line:column and shows the message.
        for line in &expected {
            let mut parts = line.splitn(5, ':');
            let (file, l, c) = (
                parts.next().unwrap(),
                parts.next().unwrap(),
                parts.next().unwrap(),
            );
            let code = parts.next().unwrap().trim();
            let message = parts.next().unwrap().trim();
            classes.insert(code.to_owned());
            let place = format!("{file}:{l}:{c}");
            if !text.stderr.contains(&place) || !text.stderr.contains(message) {
                failures.push(format!(
                    "{name}: text output lacks `{place}` or `{message}`:\n{}",
                    text.stderr
                ));
            }
        }
        if !text.stderr.contains("help:") {
            failures.push(format!("{name}: no hint in\n{}", text.stderr));
        }
    }
    for class in REQUIRED_CLASSES {
        if !classes.contains(*class) {
            failures.push(format!("no fixture for the problem class `{class}`"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn several_problems_in_several_files_are_reported_in_one_run() {
    let out = run(sluice(&root().join("tests/fixtures/invalid/many-problems"))
        .args(["validate", "--format", "json"]));
    let files: BTreeSet<String> = out.json()["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["file"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    assert_eq!(error_lines(&out.json()).len(), 4);
}

fn examples_json(env: Option<&str>, vars: &[(&str, &str)]) -> Value {
    let mut cmd = sluice(&root());
    cmd.args(["validate", "--repo", "examples", "--format", "json"]);
    if let Some(env) = env {
        cmd.args(["--env", env]);
    }
    cmd.envs(vars.iter().copied());
    let out = run(&mut cmd);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    out.json()
}

fn namespace<'a>(env: &'a Value, name: &str) -> &'a Value {
    env["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no namespace {name}"))
}

fn topic<'a>(env: &'a Value, name: &str) -> &'a Value {
    env["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|n| n["topics"].as_array().unwrap())
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no topic {name}"))
}

#[test]
fn examples_validate_in_text() {
    let out = run(sluice(&root()).args(["validate", "--repo", "examples"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with("ok: 5 namespace(s)"),
        "{}",
        out.stdout
    );
}

#[test]
fn examples_resolve_to_derived_values() {
    let report = examples_json(None, &[]);
    assert_eq!(report["format_version"], 1);
    assert_eq!(report["valid"], true);
    let envs = report["environments"].as_array().unwrap();
    let names: Vec<_> = envs
        .iter()
        .map(|e| e["environment"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["local", "prod"]);
    let (local, prod) = (&envs[0], &envs[1]);

    // Partitions from capacity: max(5000/1000, 10000/2000) = 5, above the default of 3.
    let ue = topic(local, "user-events");
    assert_eq!(ue["partitions"], 5);
    assert_eq!(ue["partitions_from"], "capacity");
    assert_eq!(ue["config"]["retention.ms"], "604800000");
    assert_eq!(ue["config"]["compression.type"], "zstd");
    assert_eq!(ue["config"]["max.message.bytes"], "1048576");
    assert_eq!(ue["replication_factor"], 1, "local's default");
    assert_eq!(
        topic(prod, "user-events")["replication_factor"],
        3,
        "workspace default"
    );

    // The DLQ: the namespace's settings, the default partitions, not the topic's config.
    let dlq = topic(local, "orders.dlq");
    assert_eq!(dlq["dlq_of"], "orders");
    assert_eq!(dlq["partitions"], 3);
    assert_eq!(dlq["config"]["retention.ms"], "259200000");
    let state = topic(local, "orders-state");
    assert_eq!(state["config"]["cleanup.policy"], "compact");
    assert_eq!(
        state["config"]["min.compaction.lag.ms"], "3600000",
        "1h in ms"
    );
    assert_eq!(
        state["config"]["retention.ms"], "-1",
        "the topic's own config wins"
    );
    assert_eq!(state["partitions_from"], "explicit");
    assert!(
        topic(local, "payments.dlq")["config"]
            .get("min.insync.replicas")
            .is_none()
    );

    let payments = namespace(local, "payments");
    assert_eq!(payments["protected"], true);
    assert_eq!(payments["tier"], "critical");
    assert_eq!(payments["disaster_recovery"]["rpo_ms"], 300_000);
    assert_eq!(
        payments["disaster_recovery"]["backup"]["object_lock"]["days"],
        30
    );

    let events = namespace(local, "user-events");
    let conditions: Vec<_> = events["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["condition"].as_str().unwrap())
        .collect();
    assert_eq!(
        conditions,
        [
            "p99_latency > 50ms",
            "error_rate > 1%",
            "write_rps > 0.9 * capacity",
            "consumer_lag > 10000"
        ]
    );
    assert_eq!(events["alerts"][2]["for_ms"], 600_000);
    let grants: Vec<_> = events["access"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| format!("{}:{}", g["principal"].as_str().unwrap(), g["permissions"]))
        .collect();
    assert_eq!(
        grants,
        [
            r#"analytics-api:["read","write"]"#,
            r#"reporting-dashboard:["read"]"#,
            r#"data-pipeline:["write"]"#,
            r#"platform-team:["admin"]"#
        ]
    );
    assert_eq!(
        events["disaster_recovery"]["replication"]["region"],
        "eu-west-1"
    );
    assert_eq!(
        events["source"]["file"],
        "examples/namespaces/user-events.yaml"
    );
    assert_eq!(events["source"]["line"], 5);

    // page-views applies to prod only.
    assert!(
        local["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .all(|n| n["name"] != "page-views")
    );
    assert_eq!(
        namespace(prod, "page-views")["topics"][0]["name"],
        "page-views"
    );
}

#[test]
fn overrides_apply_to_the_selected_environment() {
    let vars = [
        ("SLUICE_ENV", "local"),
        ("SLUICE_KAFKA_BOOTSTRAP", "10.0.0.1:9092, 10.0.0.2:9092"),
        ("SLUICE_ETCD_ENDPOINTS", "http://10.0.0.3:2379"),
        ("SLUICE_ETCD_PREFIX", "/ci/"),
        ("SLUICE_S3_ENDPOINT", "http://10.0.0.4:9000"),
        ("SLUICE_S3_REGION", "eu-west-1"),
        ("SLUICE_RULES_DIR", "/tmp/rules"),
    ];
    let report = examples_json(None, &vars);
    let envs = report["environments"].as_array().unwrap();
    assert_eq!(envs.len(), 1, "SLUICE_ENV selects one environment");
    let env = &envs[0]["environment"];
    assert_eq!(
        env["kafka"]["bootstrap_servers"],
        serde_json::json!(["10.0.0.1:9092", "10.0.0.2:9092"])
    );
    assert_eq!(
        env["etcd"]["endpoints"],
        serde_json::json!(["http://10.0.0.3:2379"])
    );
    assert_eq!(env["etcd"]["prefix"], "/ci/");
    assert_eq!(env["s3"]["endpoint"], "http://10.0.0.4:9000");
    assert_eq!(env["s3"]["region"], "eu-west-1");
    assert_eq!(env["alerts"]["rules_dir"], "/tmp/rules");
    assert_eq!(env["overridden_by"].as_array().unwrap().len(), 6);

    // Validating every environment, the overrides touch none of them (no default).
    let all = examples_json(None, &vars[1..]);
    for e in all["environments"].as_array().unwrap() {
        assert!(e["environment"].get("overridden_by").is_none());
    }
}

#[test]
fn secret_references_stay_references() {
    let report = examples_json(
        Some("prod"),
        &[("KAFKA_SLUICE_PASSWORD", "CANARY-from-env")],
    );
    let text = report.to_string();
    assert!(!text.contains("CANARY"));
    assert_eq!(
        report["environments"][0]["environment"]["kafka"]["sasl"]["password"],
        "${env:KAFKA_SLUICE_PASSWORD}"
    );
}

#[test]
fn an_unknown_environment_is_an_error() {
    let out = run(sluice(&root()).args(["validate", "--repo", "examples", "--env", "staging"]));
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("environment `staging` is not declared"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("`local`, `prod`"), "{}", out.stderr);
}

#[test]
fn a_directory_without_a_workspace_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    copy_tree(
        &root().join("examples/namespaces"),
        &tmp.path().join("namespaces"),
    );
    let out = run(sluice(tmp.path()).arg("validate"));
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("no `sluice.yaml` found"),
        "{}",
        out.stderr
    );

    let out = run(sluice(tmp.path()).args(["validate", "--repo", "does-not-exist"]));
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("config repository `does-not-exist` does not exist"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_condition_nested_10000_deep_or_summing_20000_terms_is_an_error_not_a_crash() {
    let deep = format!(
        "{}consumer_lag{} > 1",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let long = format!("{} > 1", vec!["consumer_lag"; 20_000].join(" + "));
    for (name, condition) in [("nested", deep), ("sum", long)] {
        let dir = tempfile::tempdir().unwrap();
        copy_tree(
            &root().join("tests/fixtures/invalid/deep-condition"),
            dir.path(),
        );
        std::fs::write(
            dir.path().join("namespaces/orders.yaml"),
            format!(
                "apiVersion: sluice/v1\nkind: Namespace\nmetadata:\n  name: orders\nspec:\n  alerts:\n    - name: {name}\n      condition: \"{condition}\"\n      severity: warning\n"
            ),
        )
        .unwrap();
        let out = run(sluice(dir.path()).args(["validate", "--format", "json"]));
        assert_eq!(out.code, 1, "{name}: {}", out.stderr);
        let errors = error_lines(&out.json());
        assert_eq!(errors.len(), 1, "{name}: {errors:#?}");
        assert!(
            errors[0].contains("invalid-condition"),
            "{name}: {errors:?}"
        );
    }
}

#[test]
fn an_empty_or_document_less_workspace_is_an_error_that_says_what_is_wrong() {
    for text in ["", "---\n", "# only a comment\n"] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("namespaces")).unwrap();
        std::fs::write(dir.path().join("sluice.yaml"), text).unwrap();
        for cmd in ["validate", "plan"] {
            let out = run(sluice(dir.path()).arg(cmd));
            assert_eq!(out.code, 1, "{text:?} {cmd}: {}", out.stderr);
            assert!(
                out.stderr.contains("holds no `kind: Workspace` document"),
                "{text:?} {cmd}: the error above says what is wrong: {}",
                out.stderr
            );
        }
    }
}

#[test]
fn empty_upper_case_and_stray_yaml_files_are_not_ignored_without_a_word() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(
        &root().join("tests/fixtures/invalid/deep-condition"),
        dir.path(),
    );
    let ns = dir.path().join("namespaces");
    std::fs::remove_file(ns.join("orders.yaml")).unwrap();
    std::fs::write(
        ns.join("orders.yaml"),
        "apiVersion: sluice/v1\nkind: Namespace\nmetadata:\n  name: orders\n",
    )
    .unwrap();
    std::fs::write(ns.join("blank.yaml"), "").unwrap();
    std::fs::write(ns.join("comments.yml"), "# later\n---\n").unwrap();
    std::fs::write(ns.join("billing.YAML"), [0xff, 0xfe, 0x00]).unwrap();
    // Outside namespaces/: a misspelt directory, and a namespace at the root.
    std::fs::create_dir(dir.path().join("namespace")).unwrap();
    std::fs::write(
        dir.path().join("namespace/search.yaml"),
        "apiVersion: sluice/v1\nkind: Namespace\n",
    )
    .unwrap();
    // YAML that is not sluice's is nobody's business here.
    std::fs::write(dir.path().join("compose.yml"), "services: {}\n").unwrap();
    std::fs::write(dir.path().join("audit.yml"), "kind: Namespace\n").unwrap();
    std::fs::create_dir(dir.path().join(".github")).unwrap();
    std::fs::write(dir.path().join(".github/ci.yml"), "on: push\n").unwrap();
    let git = git2::Repository::init(dir.path()).unwrap();
    crate::common::commit_all(&git, "files sluice does not read");
    let path = dir.path().to_str().unwrap();
    for source in [["--repo", path, "", ""], ["--git", path, "--rev", "HEAD"]] {
        let args: Vec<&str> = source.iter().copied().filter(|a| !a.is_empty()).collect();
        let out = run(sluice(dir.path())
            .args(&args)
            .args(["validate", "--format", "json"]));
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        let report = out.json();
        let warned: BTreeSet<(String, String)> = report["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["level"] == "warning")
            .map(|d| {
                (
                    d["code"].as_str().unwrap().to_owned(),
                    d["file"]
                        .as_str()
                        .unwrap()
                        .rsplit('/')
                        .next()
                        .unwrap()
                        .to_owned(),
                )
            })
            .collect();
        for (code, file) in [
            ("empty-file", "blank.yaml"),
            ("empty-file", "comments.yml"),
            ("ignored-file", "billing.YAML"),
            ("ignored-file", "search.yaml"),
            ("ignored-file", "audit.yml"),
        ] {
            assert!(
                warned.contains(&(code.to_owned(), file.to_owned())),
                "{args:?}: no {code} for {file}: {warned:?}"
            );
        }
        assert!(
            !warned
                .iter()
                .any(|(_, f)| f == "ci.yml" || f == "sluice.yaml"),
            "{args:?}: hidden directories, the workspace and other YAML are not stray: {warned:?}"
        );
    }
}

/// Incremental backups start a new chain every half of `retain`: a
/// `pitr.window` longer than that is warned of, a shorter one is not.
#[test]
fn a_pitr_window_longer_than_half_of_retain_is_warned_of_with_incremental_backups() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        root().join("tests/fixtures/plans/sluice.yaml"),
        dir.path().join("sluice.yaml"),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("namespaces")).unwrap();
    let warned = |retain: &str| -> Vec<String> {
        std::fs::write(
            dir.path().join("namespaces/ledger.yaml"),
            format!(
                "apiVersion: sluice/v1\nkind: Namespace\nmetadata:\n  name: ledger\nspec:\n  topics:\n    - name: ledger\n  disaster_recovery:\n    pitr:\n      window: 7d\n    backup:\n      bucket: dr-backups\n      incremental: true\n      retain: {retain}\n"
            ),
        )
        .unwrap();
        let out = run(sluice(dir.path()).args(["validate", "--format", "json"]));
        assert_eq!(out.code, 0, "{}", out.stderr);
        out.json()["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["code"] == "pitr-beyond-retain")
            .map(|d| {
                format!(
                    "{}:{}: {}",
                    d["line"],
                    d["column"],
                    d["message"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(
        warned("10d"),
        [
            "10:15: `pitr.window` (7d) is longer than half of `retain` (10d): incremental backups start a new chain every 5d, so a restore is sure to reach back only that far (and to what Kafka still held when that chain began)"
        ]
    );
    assert_eq!(warned("14d"), Vec::<String>::new());
}
