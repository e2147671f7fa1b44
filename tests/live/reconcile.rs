//! plan, apply and drift against the real tansu broker and etcd.

use std::collections::BTreeMap;
use std::process::{Child, Stdio};
use std::time::Duration;

use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};

use crate::common::{Run, TestRepo};

/// The test's topics on the broker, with their partition counts.
pub(crate) fn topics(repo: &TestRepo) -> BTreeMap<String, usize> {
    let md = repo
        .kafka_admin()
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    md.topics()
        .iter()
        .filter(|t| t.name().starts_with(&repo.tag) && t.error().is_none())
        .map(|t| (t.name().to_owned(), t.partitions().len()))
        .collect()
}

pub(crate) async fn etcd(repo: &TestRepo) -> etcd_client::Client {
    etcd_client::Client::connect([repo.services().etcd.as_str()], None)
        .await
        .unwrap()
}

pub(crate) fn ok(run: &Run) {
    assert_eq!(
        run.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        run.stdout, run.stderr
    );
}

fn orders(repo: &TestRepo, partitions: u32) {
    repo.namespace(
        "orders",
        &format!(
            "  retention: 3d\n  topics:\n    - name: {{tag}}-orders\n      partitions: {partitions}\n      dlq: true\n  access:\n    - service: checkout\n      permissions: [write]\n  alerts:\n    - name: lag\n      condition: consumer_lag > 100\n      for: 5m\n      severity: warning\n"
        ),
    );
}

fn billing(repo: &TestRepo) {
    repo.namespace(
        "billing",
        "  topics:\n    - name: {tag}-invoices\n      partitions: 2\n",
    );
}

/// A namespace with `n` topics: an apply that takes a while on tansu.
pub(crate) fn many(repo: &TestRepo, n: usize) {
    let topics: String = (0..n)
        .map(|i| format!("    - name: {{tag}}-bulk-{i:03}\n      partitions: 1\n"))
        .collect();
    repo.namespace("bulk", &format!("  topics:\n{topics}"));
}

#[test]
fn apply_from_empty_then_nothing_to_do() {
    let repo = TestRepo::new();
    orders(&repo, 2);
    billing(&repo);
    let first = repo.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(first.code, 2, "{}{}", first.stdout, first.stderr);
    assert!(
        first
            .stdout
            .contains("Plan: 7 to create, 0 to update, 0 to delete."),
        "{}",
        first.stdout
    );

    ok(&repo.run(&["apply", "--auto-approve"]));
    let live = topics(&repo);
    assert_eq!(live.get(&repo.name("orders")), Some(&2));
    assert_eq!(live.get(&format!("{}.dlq", repo.name("orders"))), Some(&1));
    assert_eq!(live.get(&repo.name("invoices")), Some(&2));

    let second = repo.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(second.code, 0, "{}{}", second.stdout, second.stderr);
    assert!(second.stdout.contains("No changes"), "{}", second.stdout);
}

#[test]
fn a_config_altered_out_of_band_is_drift_naming_the_field() {
    let repo = TestRepo::new();
    orders(&repo, 1);
    ok(&repo.run(&["apply", "--auto-approve"]));

    let topic = repo.name("orders");
    repo.set_topic_config(&topic, "retention.ms", "1000");

    let drift = repo.run(&["drift"]);
    assert_eq!(drift.code, 2, "{}{}", drift.stdout, drift.stderr);
    assert!(
        drift
            .stdout
            .contains(&format!("~ kafka.topic/{topic}  (drift)")),
        "{}",
        drift.stdout
    );
    assert!(
        drift
            .stdout
            .contains("config.retention.ms:  1000 → 259200000"),
        "{}",
        drift.stdout
    );

    // Apply restores it, and drift is gone.
    ok(&repo.run(&["apply", "--auto-approve"]));
    assert_eq!(repo.run(&["drift"]).code, 0);
}

#[tokio::test]
async fn an_etcd_key_edited_out_of_band_is_drift() {
    let repo = TestRepo::new();
    billing(&repo);
    ok(&repo.run(&["apply", "--auto-approve"]));

    let key = format!("{}namespaces/{}", repo.prefix(), repo.name("billing"));
    let mut client = etcd(&repo).await;
    let current = client.get(key.as_str(), None).await.unwrap();
    let mut record: serde_json::Value = serde_json::from_slice(current.kvs()[0].value()).unwrap();
    record["owner"] = "someone-else".into();
    client
        .put(key.as_str(), record.to_string(), None)
        .await
        .unwrap();

    let drift = repo.run(&["drift", "--format", "json"]);
    assert_eq!(drift.code, 2, "{}", drift.stderr);
    let plan = drift.json();
    let change = &plan["changes"][0];
    assert_eq!(change["address"], format!("etcd.key/{key}"));
    assert_eq!(change["cause"], "drift");
    assert_eq!(change["fields"][0]["field"], "owner");
    assert_eq!(change["fields"][0]["before"], "someone-else");
}

#[tokio::test]
async fn a_saved_plan_is_refused_after_an_out_of_band_change() {
    let repo = TestRepo::new();
    billing(&repo);
    ok(&repo.run(&["apply", "--auto-approve"]));
    orders(&repo, 1);
    let plan_file = repo.dir.path().join("plan.json");
    ok(&repo.run(&["plan", "--out", plan_file.to_str().unwrap()]));

    let key = format!("{}namespaces/{}", repo.prefix(), repo.name("billing"));
    etcd(&repo)
        .await
        .put(key.as_str(), "{\"edited\": true}", None)
        .await
        .unwrap();

    let refused = repo.run(&["apply", plan_file.to_str().unwrap()]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("the plan is stale"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains(&format!("etcd.key/{key}")),
        "{}",
        refused.stderr
    );
    assert!(
        !topics(&repo).contains_key(&repo.name("orders")),
        "nothing was created"
    );
    let record = etcd(&repo).await.get(key.as_str(), None).await.unwrap();
    assert_eq!(
        record.kvs()[0].value(),
        b"{\"edited\": true}",
        "nothing was written"
    );
}

fn spawn_apply(repo: &TestRepo, args: &[&str]) -> Child {
    repo.sluice()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> Run {
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn of_two_concurrent_applies_exactly_one_runs() {
    let repo = TestRepo::new();
    many(&repo, 200);
    let plan_file = repo.dir.path().join("plan.json");
    ok(&repo.run(&["plan", "--out", plan_file.to_str().unwrap()]));
    let a = spawn_apply(&repo, &["apply", plan_file.to_str().unwrap()]);
    let b = spawn_apply(&repo, &["apply", plan_file.to_str().unwrap()]);
    let runs = [finish(a), finish(b)];
    let winners = runs.iter().filter(|r| r.code == 0).count();
    assert_eq!(winners, 1, "{runs:#?}");
    let loser = runs.iter().find(|r| r.code != 0).unwrap();
    assert_eq!(loser.code, 1);
    assert!(
        loser
            .stderr
            .contains("the apply lock of environment `local` is held by"),
        "{}",
        loser.stderr
    );
    assert_eq!(topics(&repo).len(), 200);
}

#[test]
fn a_topic_created_outside_sluice_is_never_planned_for_deletion() {
    let repo = TestRepo::new();
    orders(&repo, 1);
    billing(&repo);
    ok(&repo.run(&["apply", "--auto-approve"]));
    let foreign = repo.name("foreign");
    let created =
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(repo.kafka_admin().create_topics(
                &[NewTopic::new(&foreign, 1, TopicReplication::Fixed(1))],
                &AdminOptions::new(),
            ));
    assert!(created.unwrap()[0].is_ok());

    repo.remove_namespace("billing");
    let plan = repo.run(&["plan", "--format", "json"]);
    ok(&plan);
    let addresses: Vec<String> = plan.json()["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["address"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        !addresses.iter().any(|a| a.contains("foreign")),
        "{addresses:?}"
    );
    assert!(
        addresses.contains(&format!("kafka.topic/{}", repo.name("invoices"))),
        "{addresses:?}"
    );

    ok(&repo.run(&["apply", "--auto-approve", "--allow-delete"]));
    let live = topics(&repo);
    assert!(
        live.contains_key(&foreign),
        "the foreign topic survives: {live:?}"
    );
    assert!(!live.contains_key(&repo.name("invoices")));
}

#[test]
fn removing_a_namespace_without_allow_delete_is_refused() {
    let repo = TestRepo::new();
    orders(&repo, 1);
    billing(&repo);
    ok(&repo.run(&["apply", "--auto-approve"]));
    repo.remove_namespace("billing");

    let refused = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("deletes need `--allow-delete`"),
        "{}",
        refused.stderr
    );
    assert!(
        topics(&repo).contains_key(&repo.name("invoices")),
        "nothing was deleted"
    );

    ok(&repo.run(&["apply", "--auto-approve", "--allow-delete"]));
    assert!(!topics(&repo).contains_key(&repo.name("invoices")));
}

#[test]
fn a_partition_increase_on_tansu_is_blocked_as_unsupported() {
    let repo = TestRepo::new();
    orders(&repo, 1);
    ok(&repo.run(&["apply", "--auto-approve"]));
    orders(&repo, 3);
    let plan = repo.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(
        plan.code, 1,
        "a blocked change fails the plan: {}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains(&format!("! kafka.topic/{}", repo.name("orders"))),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("not supported by this broker (CreatePartitions)"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("namespaces/orders.yaml:9:13"),
        "the desired file:line: {}",
        plan.stdout
    );
    let apply = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 1);
}

#[test]
fn with_the_broker_stopped_plan_fails_and_plans_no_deletes() {
    let repo = TestRepo::new();
    orders(&repo, 1);
    ok(&repo.run(&["apply", "--auto-approve"]));
    // A port nothing listens on: the broker is down.
    let down = crate::servers::closed_port();
    let plan = crate::common::run(
        repo.sluice()
            .env("SLUICE_KAFKA_BOOTSTRAP", &down)
            .args(["plan", "--detailed-exitcode"]),
    );
    assert_eq!(plan.code, 1, "{}{}", plan.stdout, plan.stderr);
    assert!(plan.stderr.contains("cannot read Kafka"), "{}", plan.stderr);
    assert!(!plan.stdout.contains("- kafka.topic"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("to delete"), "{}", plan.stdout);
}

#[test]
fn a_canary_secret_never_appears() {
    let repo = TestRepo::new();
    let canary = "CANARY-7f3a9c-do-not-print";
    repo.workspace("");
    let ws = std::fs::read_to_string(repo.dir.path().join("sluice.yaml")).unwrap().replace(
        "        brokers: 1\n",
        "        brokers: 1\n        properties:\n          sasl.password: ${env:SLUICE_TEST_CANARY_SECRET}\n",
    );
    std::fs::write(repo.dir.path().join("sluice.yaml"), ws).unwrap();
    orders(&repo, 1);
    let plan_file = repo.dir.path().join("plan.json");
    let with_canary = |args: &[&str]| {
        crate::common::run(
            repo.sluice()
                .env("SLUICE_TEST_CANARY_SECRET", canary)
                .env("SLUICE_LOG", "debug")
                .args(args),
        )
    };
    let runs = [
        with_canary(&["validate", "--format", "json"]),
        with_canary(&["plan", "--out", plan_file.to_str().unwrap()]),
        with_canary(&["plan", "--format", "json"]),
        with_canary(&["plan", "--format", "markdown"]),
        with_canary(&["apply", plan_file.to_str().unwrap()]),
        with_canary(&["drift"]),
    ];
    for run in &runs {
        assert!(run.code == 0 || run.code == 2, "{run:#?}");
        assert!(
            !run.all_output().contains(canary),
            "the secret was printed: {run:#?}"
        );
    }
    assert!(
        !std::fs::read_to_string(&plan_file)
            .unwrap()
            .contains(canary)
    );
    // Unset, the error names the reference and not a value.
    let missing = repo.run(&["plan"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing
            .stderr
            .contains("secret `${env:SLUICE_TEST_CANARY_SECRET}`"),
        "{}",
        missing.stderr
    );
}

/// Starts `apply --batch-size 1` and returns once it has sent `n`
/// CreateTopics requests (it logs each as it sends it): the apply is then
/// certainly in the middle of its 200 topics.
fn apply_until_requests(repo: &TestRepo, n: usize) -> (Child, std::thread::JoinHandle<String>) {
    use std::io::{BufRead, BufReader};
    let mut child = repo
        .sluice()
        .env("SLUICE_LOG", "sluice::backend::kafka=debug")
        .args(["apply", "--auto-approve", "--batch-size", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = 0;
    let mut log = String::new();
    while seen < n {
        let line = lines
            .next()
            .expect("the apply ended before sending its requests")
            .unwrap();
        seen += usize::from(line.contains("api=\"CreateTopics\""));
        log.push_str(&line);
        log.push('\n');
    }
    // Keep draining, so the child never blocks on a full pipe.
    let rest = std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            log.push_str(&line);
            log.push('\n');
        }
        log
    });
    (child, rest)
}

#[test]
fn kill_9_during_an_apply_then_a_rerun_converges() {
    let repo = TestRepo::new();
    many(&repo, 200);
    let (mut child, _) = apply_until_requests(&repo, 20);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let landed = topics(&repo).len();
    assert!(
        (1..200).contains(&landed),
        "the kill did not land mid-apply ({landed} topics)"
    );
    // Each batch is recorded before the next is sent: the 19 before the
    // 20th request are, and at most the one in flight is not.
    let key = format!("{}applied/local", repo.prefix());
    let record = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let got = etcd(&repo).await.get(key.as_str(), None).await.unwrap();
        serde_json::from_slice::<serde_json::Value>(got.kvs()[0].value()).unwrap()
    });
    let applied = record["applied"].as_u64().unwrap() as usize;
    assert!(
        applied >= 19 && (applied..=applied + 1).contains(&landed),
        "{landed} topics, recorded: {record}"
    );

    // The dead apply's lock lives until its lease expires.
    let rerun = repo.run(&["apply", "--auto-approve", "--lock-timeout", "30s"]);
    ok(&rerun);
    assert!(
        rerun.stderr.contains("did not finish"),
        "the crash is on record: {}",
        rerun.stderr
    );
    assert_eq!(topics(&repo).len(), 200);
    let third = repo.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(third.code, 0, "{}{}", third.stdout, third.stderr);
}

#[test]
fn sigint_during_an_apply_finishes_in_flight_records_and_releases_the_lock() {
    let repo = TestRepo::new();
    many(&repo, 200);
    let (child, rest) = apply_until_requests(&repo, 20);
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = { child }.wait_with_output().unwrap().status;
    let log = rest.join().unwrap();
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("Apply interrupted"), "{log}");
    let landed = topics(&repo).len();
    assert!((1..200).contains(&landed), "{landed} topics");

    // The lock was released (no waiting), and what landed is in the inventory.
    let plan = repo.run(&["plan", "--format", "json"]);
    ok(&plan);
    let creates = plan.json()["summary"]["create"].as_u64().unwrap() as usize;
    assert_eq!(
        creates,
        200 - landed + 1,
        "the topics not yet created, and the registry record"
    );
    assert!(plan.stderr.contains("was interrupted"), "{}", plan.stderr);
    ok(&repo.run(&["apply", "--auto-approve"]));
    assert_eq!(repo.run(&["plan", "--detailed-exitcode"]).code, 0);
}

#[test]
fn moving_a_topic_out_of_a_protected_namespace_is_blocked_with_both_places() {
    let repo = TestRepo::new();
    repo.workspace(&format!(
        "  guards:\n    protected_namespaces: [{}]\n",
        repo.name("pay")
    ));
    repo.namespace(
        "pay",
        "  topics:\n    - name: {tag}-ledger\n    - name: {tag}-pay\n",
    );
    ok(&repo.run(&["apply", "--auto-approve"]));

    // One commit moves the ledger into an unprotected namespace.
    repo.namespace("pay", "  topics:\n    - name: {tag}-pay\n");
    repo.namespace("scratch", "  topics:\n    - name: {tag}-ledger\n");
    let plan = repo.run(&["plan"]);
    let ledger = format!("kafka.topic/{}", repo.name("ledger"));
    assert!(
        plan.stdout.contains(&format!("! {ledger}")),
        "the move is listed, blocked:\n{}",
        plan.stdout
    );
    for place in ["namespaces/pay.yaml:", "namespaces/scratch.yaml:"] {
        assert!(
            plan.stdout.contains(place),
            "names {place}:\n{}",
            plan.stdout
        );
    }
    let apply = repo.run(&["apply", "--auto-approve"]);
    assert_ne!(apply.code, 0, "{}", apply.all_output());

    // Deleting it next is still refused: its protection did not move.
    repo.namespace("scratch", "  topics:\n    - name: {tag}-other\n");
    let delete = repo.run(&["apply", "--auto-approve", "--allow-delete"]);
    assert_ne!(delete.code, 0, "{}", delete.all_output());
    assert!(topics(&repo).contains_key(&repo.name("ledger")));
}
