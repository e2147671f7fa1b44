//! What a pull request controls is untrusted input. These tests are named
//! after the defects they guard against; the ones that need the servers are
//! in `tests/live/untrusted.rs`.

use std::path::Path;

use git2::Repository;

use crate::common::{Run, TestRepo, commit_all, run, sluice};

/// Text that must never appear in any output.
const CANARY: &str = "CANARY-4f1d2c";

/// A file outside the repository, holding the canary.
fn outside(dir: &Path) -> std::path::PathBuf {
    let secret = dir.join("outside-secret.yaml");
    std::fs::write(
        &secret,
        format!("root:x:0:0:{CANARY}:/root:/bin/bash\npassword: {CANARY}\n"),
    )
    .unwrap();
    secret
}

fn assert_no_canary(r: &Run) {
    assert!(
        !r.all_output().contains(CANARY),
        "the canary leaked:\n{}",
        r.all_output()
    );
}

#[test]
fn a_symlinked_namespace_file_is_never_read_into_an_error_snippet() {
    let repo = TestRepo::new();
    let elsewhere = tempfile::tempdir().unwrap();
    let secret = outside(elsewhere.path());
    std::os::unix::fs::symlink(&secret, repo.dir.path().join("namespaces/leak.yaml")).unwrap();
    for format in ["text", "json"] {
        let r = repo.offline(&["validate", "--format", format]);
        assert_eq!(r.code, 1, "{}", r.all_output());
        assert_no_canary(&r);
        assert!(
            r.all_output().contains("namespaces/leak.yaml")
                && r.all_output().contains("symbolic link"),
            "{}",
            r.all_output()
        );
    }
}

#[test]
fn a_symlinked_workspace_or_directory_is_never_followed() {
    let repo = TestRepo::new();
    let elsewhere = tempfile::tempdir().unwrap();
    let secret = outside(elsewhere.path());
    let ws = repo.dir.path().join("sluice.yaml");
    std::fs::remove_file(&ws).unwrap();
    std::os::unix::fs::symlink(&secret, &ws).unwrap();
    std::fs::create_dir(elsewhere.path().join("more")).unwrap();
    std::fs::copy(&secret, elsewhere.path().join("more/x.yaml")).unwrap();
    std::os::unix::fs::symlink(
        elsewhere.path().join("more"),
        repo.dir.path().join("namespaces/more"),
    )
    .unwrap();
    let r = repo.offline(&["validate"]);
    assert_eq!(r.code, 1, "{}", r.all_output());
    assert_no_canary(&r);
    for link in ["sluice.yaml", "namespaces/more"] {
        assert!(r.stderr.contains(link), "{link} not named:\n{}", r.stderr);
    }
}

/// The files of a JSON validate's `symlink` diagnostics.
fn symlinks(r: &Run) -> Vec<String> {
    r.json()["diagnostics"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["code"] == "symlink")
        .map(|d| d["file"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn symlink_loops_do_not_make_validate_walk_forever() {
    let repo = TestRepo::new();
    repo.namespace("a", "  topics:\n    - name: {tag}-a\n");
    let ns = repo.dir.path().join("namespaces");
    std::os::unix::fs::symlink(".", ns.join("loop1")).unwrap();
    std::os::unix::fs::symlink(".", ns.join("loop2")).unwrap();
    std::os::unix::fs::symlink("self.yaml", ns.join("self.yaml")).unwrap();
    let r = repo.offline(&["validate", "--format", "json"]);
    assert_eq!(r.code, 1, "{}", r.all_output());
    let links = symlinks(&r);
    assert_eq!(links.len(), 3, "{links:?}");
    // The real file is still read, once.
    assert!(!r.stdout.contains("duplicate"), "{}", r.stdout);
}

#[test]
fn a_symlink_committed_to_git_is_never_read() {
    let repo = TestRepo::new();
    let git = Repository::init(repo.dir.path()).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let secret = outside(elsewhere.path());
    std::os::unix::fs::symlink(&secret, repo.dir.path().join("namespaces/leak.yaml")).unwrap();
    commit_all(&git, "a link");
    let r =
        run(sluice(repo.dir.path()).args(["validate", "--git", repo.dir.path().to_str().unwrap()]));
    assert_eq!(r.code, 1, "{}", r.all_output());
    assert_no_canary(&r);
    assert!(r.stderr.contains("namespaces/leak.yaml"), "{}", r.stderr);
}

/// A committed `namespaces` that is a link to a folder is an error, as it
/// is in a directory; read from Git, it was taken for no namespace at all.
#[test]
fn a_namespaces_folder_committed_as_a_link_is_an_error() {
    let repo = TestRepo::new();
    let git = Repository::init(repo.dir.path()).unwrap();
    let ns = repo.dir.path().join("namespaces");
    std::fs::remove_dir_all(&ns).unwrap();
    std::fs::create_dir(repo.dir.path().join("elsewhere")).unwrap();
    std::os::unix::fs::symlink("elsewhere", &ns).unwrap();
    commit_all(&git, "a linked folder");
    let dir = repo.dir.path().to_str().unwrap();
    for source in [vec!["--repo", dir], vec!["--git", dir]] {
        let r = run(sluice(repo.dir.path())
            .args(["validate", "--format", "json"])
            .args(&source));
        assert_eq!(r.code, 1, "{source:?}: {}", r.all_output());
        let links = symlinks(&r);
        assert_eq!(links.len(), 1, "{source:?}: {}", r.stdout);
        assert!(links[0].ends_with("namespaces"), "{links:?}");
    }
}

/// `plan --base` connects only with the base's settings: a base without a
/// workspace file, or with a link in its place, is refused saying which,
/// before any system is reached; the link is not followed, and the
/// change's workspace is not used instead.
#[test]
fn plan_base_refuses_a_base_whose_workspace_is_missing_a_symlink_or_invalid_saying_which() {
    let repo = TestRepo::new();
    let git = Repository::init(repo.dir.path()).unwrap();
    let ws = repo.dir.path().join("sluice.yaml");
    let text = std::fs::read_to_string(&ws).unwrap();
    std::fs::remove_file(&ws).unwrap();
    repo.namespace("a", "  topics:\n    - name: {tag}-a\n");
    let missing = commit_all(&git, "no workspace").to_string();
    let elsewhere = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside(elsewhere.path()), &ws).unwrap();
    let link = commit_all(&git, "a link").to_string();
    std::fs::remove_file(&ws).unwrap();
    std::fs::write(&ws, text.replace("brokers: 1", "brokerz: 1")).unwrap();
    let invalid = commit_all(&git, "a typo").to_string();
    // The change: a workspace of its own.
    std::fs::write(&ws, text).unwrap();
    // What is wrong with the base's file is said, where, as validate says it.
    let r = run(sluice(repo.dir.path()).args(["plan", "--base", &invalid]));
    assert_eq!(r.code, 1, "{}", r.all_output());
    assert!(
        r.stderr.contains("sluice.yaml:9:9") && r.stderr.contains("brokerz"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains(&format!("at the base revision `{invalid}`")),
        "{}",
        r.stderr
    );
    for (base, said) in [
        (missing, "has no `sluice.yaml`"),
        (
            link,
            "has `sluice.yaml` as a symbolic link, which sluice never follows",
        ),
    ] {
        let r = run(sluice(repo.dir.path()).args(["plan", "--base", &base]));
        assert_eq!(r.code, 1, "{}", r.all_output());
        assert!(
            r.stderr
                .contains(&format!("the base revision `{base}` {said}")),
            "{}",
            r.stderr
        );
        assert_no_canary(&r);
    }
}

/// Every secret-bearing field of the workspace, written inline: the canary
/// never reaches any output of validate or plan, in any format, whether the
/// document is otherwise valid or has a problem of shape too (which sends it
/// through the schema check).
#[test]
fn a_canary_in_every_secret_field_never_reaches_validate_or_plan_output() {
    let fields = [
        (
            "kafka.sasl.password",
            "      kafka:\n        bootstrap_servers: [\"127.0.0.1:9\"]\n        brokers: 1\n        sasl: {mechanism: PLAIN, username: app, password: CANARY}\n",
        ),
        (
            "kafka.tls.key_password",
            "      kafka:\n        bootstrap_servers: [\"127.0.0.1:9\"]\n        brokers: 1\n        tls:\n          key_password: CANARY\n",
        ),
        (
            "kafka.properties",
            "      kafka:\n        bootstrap_servers: [\"127.0.0.1:9\"]\n        brokers: 1\n        properties:\n          ssl.keystore.password: CANARY\n",
        ),
        (
            "etcd.password",
            "      etcd:\n        endpoints: [\"http://127.0.0.1:9\"]\n        username: root\n        password: CANARY\n",
        ),
        (
            "s3.access_key_id",
            "      s3:\n        region: us-east-1\n        access_key_id: CANARY\n        secret_access_key: ${env:S}\n",
        ),
        (
            "s3.secret_access_key",
            "      s3:\n        region: us-east-1\n        access_key_id: ${env:A}\n        secret_access_key: CANARY\n",
        ),
    ];
    let defaults = [
        (
            "kafka",
            "      kafka:\n        bootstrap_servers: [\"127.0.0.1:9\"]\n        brokers: 1\n",
        ),
        (
            "etcd",
            "      etcd:\n        endpoints: [\"http://127.0.0.1:9\"]\n",
        ),
    ];
    for (field, body) in fields {
        // The sections the case does not set, as plain defaults.
        let rest: String = defaults
            .iter()
            .filter(|(section, _)| !field.starts_with(section))
            .map(|(_, text)| *text)
            .collect();
        for broken in [false, true] {
            let extra = if broken { "      stage_typo: x\n" } else { "" };
            let workspace = format!(
                "apiVersion: sluice/v1\nkind: Workspace\nspec:\n  environments:\n    local:\n      stage: dev\n{extra}{body}{rest}"
            )
            .replace("CANARY", CANARY);
            let repo = TestRepo::new();
            std::fs::write(repo.dir.path().join("sluice.yaml"), &workspace).unwrap();
            repo.namespace("a", "  topics:\n    - name: {tag}-a\n");
            let runs = [
                vec!["validate"],
                vec!["validate", "--format", "json"],
                vec!["plan"],
                vec!["plan", "--format", "json"],
                vec!["plan", "--format", "markdown"],
            ];
            for args in runs {
                let r = repo.offline(&args);
                assert_ne!(r.code, 0, "{field} {args:?}: {}", r.all_output());
                assert!(
                    !r.all_output().contains(CANARY),
                    "{field} (broken: {broken}) {args:?} leaked the canary:\n{}",
                    r.all_output()
                );
                // A document of the wrong shape is not decoded, so the
                // checks past the schema (properties) wait for the fix.
                let schema_sees_it = !broken || field != "kafka.properties";
                assert!(
                    !schema_sees_it || r.all_output().contains("inline secret"),
                    "{field} (broken: {broken}) {args:?}: no inline-secret problem:\n{}",
                    r.all_output()
                );
            }
        }
    }
}

/// The masking worked line by line on `key: value`: a secret in any other
/// shape was printed in the snippet. Each workspace below writes the canary
/// inline in a secret-bearing field, in one shape.
#[test]
fn a_secret_in_any_yaml_shape_never_reaches_validate_output() {
    let local = |body: &str| {
        format!(
            "apiVersion: sluice/v1\nkind: Workspace\nspec:\n  environments:\n    local:\n      stage: dev\n{body}      etcd:\n        endpoints: [\"http://127.0.0.1:9\"]\n"
        )
    };
    let kafka = |extra: &str| {
        format!(
            "      kafka:\n        bootstrap_servers: [\"127.0.0.1:9\"]\n        brokers: 1\n{extra}"
        )
    };
    let cases = [
        (
            "a block scalar",
            local(&kafka(&format!(
                "        sasl:\n          mechanism: PLAIN\n          username: app\n          password: |\n            {CANARY}\n"
            ))),
        ),
        (
            "a flow mapping",
            local(&kafka(&format!(
                "        sasl: {{mechanism: PLAIN, username: app, password: {CANARY}}}\n"
            ))),
        ),
        (
            "s3.access_key_id",
            local(&format!(
                "{}      s3:\n        region: us-east-1\n        access_key_id: {CANARY}\n        secret_access_key: ${{env:S}}\n",
                kafka("")
            )),
        ),
        (
            "a reference with more after it",
            local(&kafka(&format!(
                "        sasl:\n          mechanism: PLAIN\n          username: app\n          password: \"${{env:X}} {CANARY}\"\n"
            ))),
        ),
        (
            "a misspelt key",
            local(&kafka(&format!(
                "        sasl:\n          mechanism: PLAIN\n          username: app\n          pasword: {CANARY}\n"
            ))),
        ),
        (
            "a property whose key does not look secret",
            local(&kafka(&format!(
                "        properties:\n          sasl.oauthbearer.config: {CANARY}\n        brokers_typo: [{CANARY}]\n"
            ))),
        ),
        (
            "a wrong type",
            local(&kafka(&format!(
                "        sasl:\n          mechanism: PLAIN\n          username: app\n          password: [{CANARY}]\n"
            ))),
        ),
    ];
    for (shape, workspace) in cases {
        let repo = TestRepo::new();
        std::fs::write(repo.dir.path().join("sluice.yaml"), &workspace).unwrap();
        repo.namespace("a", "  topics:\n    - name: {tag}-a\n");
        for format in ["text", "json"] {
            let r = repo.offline(&["validate", "--format", format]);
            assert_eq!(r.code, 1, "{shape}: {}", r.all_output());
            assert!(
                !r.all_output().contains(CANARY),
                "{shape} ({format}) leaked the canary:\n{}",
                r.all_output()
            );
        }
    }
}
