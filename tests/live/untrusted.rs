//! What a pull request controls is untrusted input, against the real
//! servers. Each test is named after the defect it guards against.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use git2::Repository;

use crate::common::{TestRepo, commit_all, run, sluice};

const CANARY: &str = "CANARY-secret-77";

/// A listener that counts who connects, and closes at once.
fn trap() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if conn.is_ok() {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    (address, hits)
}

/// A pull request chose where CI's secrets go: its own `sluice.yaml`
/// pointed Kafka at its host with a secret reference, and CI connected.
#[test]
fn a_pull_request_that_points_kafka_at_its_own_host_is_never_connected_to() {
    let repo = TestRepo::new();
    let s = repo.services();
    let git = Repository::init(repo.dir.path()).unwrap();
    let ws = repo.dir.path().join("sluice.yaml");
    let base_text = std::fs::read_to_string(&ws).unwrap().replace(
        "127.0.0.1:9\"]\n        brokers",
        &format!("{}\"]\n        brokers", s.kafka),
    );
    std::fs::write(&ws, &base_text).unwrap();
    repo.namespace("a", "  topics:\n    - name: {tag}-a\n");
    commit_all(&git, "base");

    let (evil, hits) = trap();
    let pr_text = base_text.replace(
        &format!("bootstrap_servers: [\"{}\"]", s.kafka),
        &format!(
            "bootstrap_servers: [\"{evil}\"]\n        security_protocol: sasl_plaintext\n        sasl:\n          mechanism: PLAIN\n          username: ci\n          password: ${{env:CI_KAFKA_PASSWORD}}\n        cluster_id: the-pull-requests"
        ),
    );
    assert_ne!(pr_text, base_text);
    std::fs::write(&ws, &pr_text).unwrap();
    repo.namespace("a", "  topics:\n    - name: {tag}-a\n    - name: {tag}-b\n");
    commit_all(&git, "the pull request");

    // CI's environment: its endpoints for etcd and S3, its secret; Kafka
    // is not overridden, so only the workspace says where it is.
    let out = run(sluice(repo.dir.path())
        .args(["plan", "--base", "HEAD~1", "--format", "json"])
        .env("SLUICE_ETCD_ENDPOINTS", &s.etcd)
        .env("SLUICE_ETCD_PREFIX", repo.prefix())
        .env("SLUICE_S3_ENDPOINT", &s.s3)
        .env("CI_KAFKA_PASSWORD", CANARY));
    assert_eq!(out.code, 0, "{}", out.all_output());
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "CI connected to the pull request's host"
    );
    let plan = out.json();
    let review: Vec<&str> = plan["review"]
        .as_array()
        .expect("the plan names what to review")
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        review.contains(&"environments.local.kafka.bootstrap_servers"),
        "{review:?}"
    );
    assert!(
        review.contains(&"environments.local.kafka.sasl"),
        "{review:?}"
    );
    // Its cluster pin goes with the connection it came with: the base's
    // (none) holds, or this plan would have been refused.
    assert!(
        review.contains(&"environments.local.kafka.cluster_id"),
        "{review:?}"
    );
    // It still planned the namespace change, with the base's connection.
    assert!(
        out.stdout
            .contains(&format!("kafka.topic/{}", repo.name("b"))),
        "{}",
        out.stdout
    );
    assert!(!out.all_output().contains(CANARY), "{}", out.all_output());
    let md = run(sluice(repo.dir.path())
        .args(["plan", "--base", "HEAD~1", "--format", "markdown"])
        .env("SLUICE_ETCD_ENDPOINTS", &s.etcd)
        .env("SLUICE_ETCD_PREFIX", repo.prefix())
        .env("SLUICE_S3_ENDPOINT", &s.s3)
        .env("CI_KAFKA_PASSWORD", CANARY));
    assert!(md.stdout.contains("connection settings"), "{}", md.stdout);
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

fn ok(r: &crate::common::Run) {
    assert_eq!(r.code, 0, "{}", r.all_output());
}

/// The topics of this test and their configs, as the broker has them.
fn topic_config(
    repo: &TestRepo,
    topic: &str,
) -> Option<std::collections::BTreeMap<String, String>> {
    use rdkafka::admin::{AdminOptions, ResourceSpecifier};
    let admin = repo.kafka_admin();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let md = admin
        .inner()
        .fetch_metadata(None, std::time::Duration::from_secs(10))
        .unwrap();
    if !md
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none())
    {
        return None;
    }
    let described = rt
        .block_on(admin.describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new()))
        .unwrap();
    let resource = described.into_iter().next().unwrap().unwrap();
    Some(
        resource
            .entries
            .into_iter()
            .filter_map(|e| e.value.map(|v| (e.name, v)))
            .collect(),
    )
}

/// One edit of a saved plan.
type Edit<'a> = Box<dyn FnOnce(&mut sluice::plan::Plan) + 'a>;

/// Rewrites a saved plan as an attacker would: edited, with its digest
/// recomputed (the algorithm is no secret).
fn tamper(
    from: &std::path::Path,
    to: &std::path::Path,
    edit: impl FnOnce(&mut sluice::plan::Plan),
) {
    let mut plan: sluice::plan::Plan =
        serde_json::from_str(&std::fs::read_to_string(from).unwrap()).unwrap();
    edit(&mut plan);
    plan.digest = Some(plan.digest());
    std::fs::write(to, serde_json::to_string_pretty(&plan).unwrap()).unwrap();
}

/// A saved plan was trusted completely: apply took the changes, the values
/// and the guards from the file. A hand-edited plan deleted a topic sluice
/// never managed, wrote a key outside its prefix, and set `retention.ms=1`
/// on a live topic. Each edit is now refused and changes nothing, and the
/// plan as saved still applies.
#[test]
fn a_hand_edited_plan_is_refused_and_changes_nothing() {
    use sluice::plan::{Action, Cause, Change, Field, FieldChange};
    use sluice::resource::{Address, TopicValue, Value};

    let repo = TestRepo::new();
    repo.namespace("a", "  retention: 7d\n  topics:\n    - name: {tag}-a1\n");
    ok(&repo.run(&["apply", "--auto-approve"]));
    let foreign = repo.name("foreign");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(repo.kafka_admin().create_topics(
        &[rdkafka::admin::NewTopic::new(
            &foreign,
            1,
            rdkafka::admin::TopicReplication::Fixed(1),
        )],
        &rdkafka::admin::AdminOptions::new(),
    ))
    .unwrap();
    repo.namespace(
        "a",
        "  retention: 7d\n  topics:\n    - name: {tag}-a1\n    - name: {tag}-a2\n",
    );
    let saved = repo.dir.path().join("plan.json");
    ok(&repo.run(&["plan", "--out", saved.to_str().unwrap()]));
    let edited = repo.dir.path().join("edited.json");
    let a1 = repo.name("a1");
    let before_a1 = topic_config(&repo, &a1).unwrap();

    let change =
        |address: Address, action: Action, desired: Option<Value>, live: Option<Value>| Change {
            address,
            namespace: repo.name("a"),
            action,
            cause: Cause::Pending,
            drifted: false,
            fields: Vec::new(),
            reasons: Vec::new(),
            source: None,
            desired,
            live,
            inventory: None,
        };
    let foreign_topic = Value::Topic(TopicValue {
        partitions: 1,
        replication_factor: 1,
        config: Default::default(),
    });
    let edits: Vec<(&str, Edit)> = vec![
        (
            "a delete of a topic sluice never managed",
            Box::new(|p| {
                p.changes.push(change(
                    Address::topic(&foreign),
                    Action::Delete,
                    None,
                    Some(foreign_topic.clone()),
                ));
                p.guards.allow_delete = true;
            }),
        ),
        (
            "a key outside sluice's prefix",
            Box::new(|p| {
                p.changes.push(change(
                    Address::etcd_key("/other-app/config"),
                    Action::Create,
                    Some(Value::Record(
                        serde_json::json!({"owned": "by someone else"}).into(),
                    )),
                    None,
                ));
            }),
        ),
        (
            "values sent to a live topic",
            Box::new(|p| {
                let mut config: sluice::resource::Configs = before_a1.clone().into_iter().collect();
                config.insert("retention.ms".into(), "1".into());
                config.insert("cleanup.policy".into(), "compact".into());
                let mut c = change(
                    Address::topic(&a1),
                    Action::Update,
                    Some(Value::Topic(TopicValue {
                        partitions: 1,
                        replication_factor: 1,
                        config,
                    })),
                    None,
                );
                c.fields = vec![
                    FieldChange {
                        field: Field::Config("retention.ms".into()),
                        before: None,
                        after: Some("1".into()),
                    },
                    FieldChange {
                        field: Field::Config("cleanup.policy".into()),
                        before: None,
                        after: Some("compact".into()),
                    },
                ];
                p.changes.push(c);
            }),
        ),
    ];
    for (what, edit) in edits {
        tamper(&saved, &edited, edit);
        let r = repo.run(&["apply", edited.to_str().unwrap(), "--allow-delete"]);
        assert_eq!(r.code, 1, "{what}: {}", r.all_output());
        assert!(
            r.stderr.contains("not what sluice plans now"),
            "{what}: {}",
            r.stderr
        );
        assert!(
            topic_config(&repo, &foreign).is_some(),
            "{what}: the foreign topic is gone"
        );
        assert_eq!(
            topic_config(&repo, &a1).unwrap(),
            before_a1,
            "{what}: a1 was changed"
        );
        assert!(
            topic_config(&repo, &repo.name("a2")).is_none(),
            "{what}: a2 was created"
        );
    }
    let mut etcd = rt
        .block_on(etcd_client::Client::connect(
            [repo.services().etcd.as_str()],
            None,
        ))
        .unwrap();
    let other = rt.block_on(etcd.get("/other-app/config", None)).unwrap();
    assert!(
        other.kvs().is_empty(),
        "a key outside the prefix was written"
    );

    // Edited without a new digest: refused before anything is read.
    let text = std::fs::read_to_string(&saved)
        .unwrap()
        .replace("\"a2\"", "\"a3\"");
    let text = text.replace(&format!("{}-a2", repo.tag), &format!("{}-a3", repo.tag));
    std::fs::write(&edited, text).unwrap();
    let r = repo.run(&["apply", edited.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.all_output());
    assert!(
        r.stderr.contains("does not match its digest"),
        "{}",
        r.stderr
    );

    // The plan as saved applies.
    ok(&repo.run(&["apply", saved.to_str().unwrap()]));
    assert!(topic_config(&repo, &repo.name("a2")).is_some());
}

/// A plan saved while `max_deletes` was 10 still deleted 9 after the
/// repository lowered the guard to 1: the guards were the file's.
#[test]
fn a_saved_plans_guards_are_the_workspaces_at_apply_time() {
    let repo = TestRepo::new();
    let guards = |max: u32| format!("  guards:\n    max_deletes: {max}\n    allow_delete: true\n");
    repo.workspace(&guards(10));
    repo.namespace(
        "gone",
        "  topics:\n    - name: {tag}-g1\n    - name: {tag}-g2\n    - name: {tag}-g3\n",
    );
    repo.namespace("kept", "  topics:\n    - name: {tag}-k\n");
    ok(&repo.run(&["apply", "--auto-approve"]));
    repo.remove_namespace("gone");
    let saved = repo.dir.path().join("plan.json");
    ok(&repo.run(&["plan", "--out", saved.to_str().unwrap()]));
    repo.workspace(&guards(1));
    let r = repo.run(&["apply", saved.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.all_output());
    assert!(
        r.stderr.contains("more than `guards.max_deletes` (1)"),
        "{}",
        r.stderr
    );
    for t in ["g1", "g2", "g3"] {
        assert!(
            topic_config(&repo, &repo.name(t)).is_some(),
            "{t} was deleted"
        );
    }
    // A plan whose file says the guard is 10 is no way around it either.
    let edited = repo.dir.path().join("edited.json");
    tamper(&saved, &edited, |p| p.guards.max_deletes = 100);
    let r = repo.run(&["apply", edited.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.all_output());
    assert!(topic_config(&repo, &repo.name("g1")).is_some());
}

/// `import` wrote through a dangling symlink planted at `<out>/<ns>.yaml`.
#[test]
fn import_never_writes_through_a_symlink_at_its_output() {
    let repo = TestRepo::new();
    repo.namespace("imp", "  topics:\n    - name: {tag}-imp\n");
    ok(&repo.run(&["apply", "--auto-approve"]));
    let out = repo.dir.path().join("imported");
    std::fs::create_dir(&out).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("planted.yaml");
    // Dangling: the file it names does not exist yet.
    std::os::unix::fs::symlink(&target, out.join(format!("{}.yaml", repo.name("imp")))).unwrap();
    let r = repo.run(&[
        "import",
        "--out",
        out.to_str().unwrap(),
        "--topics",
        &format!("^{}-", repo.tag),
    ]);
    assert_eq!(r.code, 1, "{}", r.all_output());
    assert!(r.stderr.contains("refusing to overwrite"), "{}", r.stderr);
    assert!(!target.exists(), "import wrote through the link");
}

/// At `SLUICE_LOG=debug`, aws-smithy logged the S3 access key id 10 to 52
/// times per command. The credentials here are canaries (moto takes any),
/// read through `${env:}` references, at every log level.
#[test]
fn credentials_never_reach_the_logs_at_any_level() {
    let repo = TestRepo::new();
    let ws = repo.dir.path().join("sluice.yaml");
    let text = std::fs::read_to_string(&ws).unwrap().replace(
        "        path_style: true\n",
        "        path_style: true\n        access_key_id: ${env:CANARY_KEY_ID}\n        secret_access_key: ${env:CANARY_SECRET}\n",
    );
    std::fs::write(&ws, text).unwrap();
    repo.namespace(
        "dr",
        &format!(
            "  topics:\n    - name: {{tag}}-dr\n  disaster_recovery:\n    rpo: 1h\n    backup:\n      bucket: {}\n",
            repo.bucket("logs")
        ),
    );
    for level in ["error", "warn", "info", "debug", "trace"] {
        let r = crate::common::run(
            repo.sluice()
                .args(["plan", "--format", "json"])
                .env("SLUICE_LOG", level)
                .env("CANARY_KEY_ID", "AKIACANARYKEYID77")
                .env("CANARY_SECRET", "CANARY-secret-access-77"),
        );
        assert!(r.code == 0 || r.code == 2, "{level}: {}", r.all_output());
        for canary in ["AKIACANARYKEYID77", "CANARY-secret-access-77"] {
            assert!(
                !r.all_output().contains(canary),
                "{canary} at SLUICE_LOG={level}:\n{}",
                r.all_output()
                    .lines()
                    .filter(|l| l.contains(canary))
                    .take(3)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}
