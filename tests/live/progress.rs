//! What an apply tells as it goes and leaves behind, against the real
//! servers: a line per batch off a terminal and a summary per kind; the
//! record a `kill -9` leaves in etcd; the Kafka cluster ID a workspace pins.

use std::process::Stdio;
use std::time::Instant;

use crate::common::TestRepo;
use crate::faults::{HANG, heard};
use crate::proxy::{Mode, Proxy};
use crate::reconcile::{etcd, many, ok, topics};

#[test]
fn an_apply_without_a_terminal_prints_a_line_per_batch_and_a_summary_per_kind() {
    let repo = TestRepo::new();
    many(&repo, 500);
    let run = repo.run(&["apply", "--auto-approve", "--batch-size", "50"]);
    ok(&run);
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("apply: batch "))
        .collect();
    // Ten batches of 50 topics, then the namespace's registry record.
    assert_eq!(lines.len(), 11, "{}", run.stderr);
    for (i, line) in lines[..10].iter().enumerate() {
        let n = i + 1;
        let expected = format!(
            "apply: batch {n}/11: 50 kafka.topic created; {}/501 changes ({} created, 0 updated, 0 deleted), ",
            n * 50,
            n * 50
        );
        assert!(line.starts_with(&expected), "{line}");
        assert!(line.ends_with('s'), "the time so far: {line}");
    }
    assert!(
        lines[10].starts_with("apply: batch 11/11: 1 etcd.key created; 501/501 changes"),
        "{}",
        lines[10]
    );
    for part in [
        "Applied in ",
        "\n  kafka.topic  500 created\n",
        "\n  etcd.key     1 created\n",
        "Apply complete: 501 change(s) applied.",
    ] {
        assert!(run.stdout.contains(part), "{part:?} in:\n{}", run.stdout);
    }
    assert_eq!(topics(&repo).len(), 500);
}

/// The applied record in etcd, once it says `applied` is `n`.
fn record_once_applied(repo: &TestRepo, n: u64) -> serde_json::Value {
    let key = format!("{}applied/local", repo.prefix());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    loop {
        let got = rt.block_on(async { etcd(repo).await.get(key.as_str(), None).await.unwrap() });
        if let Some(kv) = got.kvs().first() {
            let record: serde_json::Value = serde_json::from_slice(kv.value()).unwrap();
            if record["applied"] == n {
                return record;
            }
        }
        assert!(
            started.elapsed() < HANG,
            "the record never said {n} applied"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The entries of a namespace's inventory key.
fn inventory_entries(repo: &TestRepo, namespace: &str) -> usize {
    let key = format!("{}inventory/local/ns/{namespace}", repo.prefix());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let got = rt.block_on(async { etcd(repo).await.get(key.as_str(), None).await.unwrap() });
    let value: serde_json::Value = serde_json::from_slice(got.kvs()[0].value()).unwrap();
    value["entries"].as_object().unwrap().len()
}

#[test]
fn kill_9_mid_apply_leaves_a_record_of_what_was_applied_and_a_rerun_replaces_it() {
    let repo = TestRepo::new();
    many(&repo, 200);
    // The save that records the 20th topic reaches etcd, and its answer
    // never comes back: the apply sends nothing more, and dies there.
    let etcd_proxy = Proxy::start(&repo.services().etcd);
    let saved = etcd_proxy.when_sent("\"applied\":20,", Mode::HoldReplies);
    let mut apply = repo
        .sluice()
        .env("SLUICE_ETCD_ENDPOINTS", etcd_proxy.url())
        .args(["apply", "--auto-approve", "--batch-size", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    heard(&saved, "the save of the 20th change");
    // etcd cancels a request whose connection closes before it commits, so
    // the kill waits until etcd holds the save (its answer stays held).
    let record = record_once_applied(&repo, 20);
    apply.kill().unwrap(); // SIGKILL
    apply.wait().unwrap();

    assert_eq!(record["status"], "applying", "{record}");
    assert_eq!(record["planned"], 201, "{record}");
    assert_eq!(record["done"]["kafka.topic"]["created"], 20, "{record}");
    assert_eq!(
        record["last"],
        format!("kafka.topic/{}-bulk-019", repo.tag),
        "{record}"
    );
    // The record, the inventory and Kafka agree on what was applied.
    assert_eq!(topics(&repo).len(), 20);
    assert_eq!(inventory_entries(&repo, &repo.name("bulk")), 20);

    // `status` tells it did not finish, and how far it got.
    let status = repo.run(&["status"]);
    assert!(
        status.stdout.contains("Last apply: did not finish")
            && status
                .stdout
                .contains("20 of 201 change(s) applied (kafka.topic: 20 created)"),
        "{}{}",
        status.stdout,
        status.stderr
    );
    let json = repo.run(&["status", "--format", "json"]).json();
    assert_eq!(json["last_apply"]["status"], "unfinished", "{json}");

    // The dead apply's lock lives until its lease expires.
    let rerun = repo.run(&["apply", "--auto-approve", "--lock-timeout", "30s"]);
    ok(&rerun);
    assert!(
        rerun
            .stderr
            .contains("did not finish (its process stopped without recording an end"),
        "the crash is on record: {}",
        rerun.stderr
    );
    let record = record_once_applied(&repo, 181);
    assert_eq!(record["status"], "complete", "{record}");
    assert_eq!(topics(&repo).len(), 200);
    assert_eq!(inventory_entries(&repo, &repo.name("bulk")), 201);
    let third = repo.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(third.code, 0, "{}{}", third.stdout, third.stderr);
}

/// Pins `id` as the `local` environment's Kafka cluster.
fn pin(repo: &TestRepo, id: &str) {
    repo.workspace("");
    let path = repo.dir.path().join("sluice.yaml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "        brokers: 1\n",
        &format!("        brokers: 1\n        cluster_id: {id}\n"),
    );
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn a_pinned_cluster_id_the_brokers_do_not_report_refuses_plan_and_apply_before_any_change() {
    let repo = TestRepo::new();
    repo.namespace("pinned", "  topics:\n    - name: {tag}-pinned\n");
    // The ID the broker reports, as an unpinned plan finds and shows it.
    let plan = repo.run(&["plan", "--format", "json"]);
    ok(&plan);
    let id = plan.json()["endpoints"]["cluster_id"]
        .as_str()
        .expect("the broker reports a cluster ID")
        .to_owned();
    assert!(!id.is_empty());
    let text = repo.run(&["plan"]);
    assert!(
        text.stdout.contains(&format!(
            "  Kafka  {} (cluster `{id}`)",
            repo.services().kafka
        )),
        "{}",
        text.stdout
    );

    pin(&repo, "another-cluster");
    for args in [&["plan"][..], &["apply", "--auto-approve"]] {
        let refused = repo.run(args);
        assert_eq!(refused.code, 1, "{args:?}: {}", refused.all_output());
        for part in [
            "pins Kafka cluster `another-cluster`",
            &format!("report cluster `{id}`"),
            "nothing was planned or changed",
            "hint: check `--env`",
        ] {
            assert!(refused.stderr.contains(part), "{part}: {}", refused.stderr);
        }
    }
    assert!(!repo.has_topic("pinned"), "nothing was created");
    let applied = format!("{}applied/local", repo.prefix());
    let record = etcd(&repo).await.get(applied.as_str(), None).await.unwrap();
    assert!(record.kvs().is_empty(), "no apply was recorded");

    pin(&repo, &id);
    ok(&repo.run(&["apply", "--auto-approve"]));
    assert!(repo.has_topic("pinned"));
}
