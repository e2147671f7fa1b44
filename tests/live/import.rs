//! `sluice import` round trips: an estate whose YAML was lost (its topics,
//! DLQs and records made by sluice, its inventory gone) is imported and the
//! next plan is clean; `import --namespace NS --merge` adopts a topic made by
//! hand into the existing file, every other byte of it kept.

use crate::adopt::create_topics;
use crate::common::{Run, TestRepo};

/// Namespace settings that differ from the workspace defaults, topics
/// declared out of alphabetical order, DLQs, and an alert whose PromQL
/// names the topics in their declared order.
fn seed(repo: &TestRepo) {
    repo.workspace(
        "  defaults:\n    compression: zstd\n    max_message_bytes: 1MiB\n    retention: 1d\n",
    );
    repo.namespace(
        "shop",
        "  retention: 7d\n  compression: lz4\n  max_message_bytes: 2MiB\n  topics:\n    - name: {tag}-shop.orders\n      partitions: 3\n      dlq: true\n    - name: {tag}-shop.state\n      config:\n        cleanup.policy: compact\n    - name: {tag}-shop.audit\n      config:\n        retention.ms: \"2592000000\"\n  consumers:\n    - group: {tag}-fulfilment\n  alerts:\n    - name: lagging\n      condition: consumer_lag > 1000\n      for: 5m\n      severity: warning\n",
    );
    repo.namespace(
        "pay",
        "  retention: 3d\n  compression: gzip\n  topics:\n    - name: {tag}-pay.ledger\n      dlq: true\n    - name: {tag}-pay.events\n      dlq: true\n  access:\n    - service: checkout\n      permissions: [write]\n",
    );
}

/// Forgets the YAML and sluice's state of the test's prefix, keeping the
/// live topics and records: what a team adopting sluice again starts from.
async fn lose_yaml_and_state(repo: &TestRepo) {
    for short in ["shop", "pay"] {
        repo.remove_namespace(short);
    }
    let mut etcd = etcd_client::Client::connect([repo.services().etcd.as_str()], None)
        .await
        .unwrap();
    for what in ["inventory/", "applied/"] {
        let key = format!("{}{what}", repo.prefix());
        etcd.delete(
            key.as_str(),
            Some(etcd_client::DeleteOptions::new().with_prefix()),
        )
        .await
        .unwrap();
    }
}

/// `import` of this test's topics into `namespaces/`, and where that is.
fn import_mine(repo: &TestRepo) -> (std::path::PathBuf, Run) {
    let out = repo.dir.path().join("namespaces");
    let run = repo.run(&[
        "import",
        "--out",
        out.to_str().unwrap(),
        "--topics",
        &format!("^{}", regex::escape(&repo.name(""))),
    ]);
    (out, run)
}

#[tokio::test]
async fn import_then_plan_is_clean_with_namespace_settings_dlqs_and_declared_order() {
    let repo = TestRepo::new();
    seed(&repo);
    let applied = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}", applied.all_output());
    lose_yaml_and_state(&repo).await;

    let (out, import) = import_mine(&repo);
    assert_eq!(import.code, 0, "{}", import.all_output());
    assert!(
        !import.stderr.contains("warning"),
        "import found nothing it could not write: {}",
        import.stderr
    );
    let shop = std::fs::read_to_string(out.join(format!("{}.yaml", repo.name("shop"))))
        .unwrap_or_else(|e| {
            panic!(
                "{e}: {}, {:?}",
                import.all_output(),
                std::fs::read_dir(&out).unwrap().collect::<Vec<_>>()
            )
        });
    let order: Vec<usize> = ["shop.orders", "shop.state", "shop.audit"]
        .iter()
        .map(|t| shop.find(&format!("name: {}", repo.name(t))).unwrap())
        .collect();
    assert!(order.is_sorted(), "declared order kept:\n{shop}");
    for setting in [
        "compression: lz4",
        "max_message_bytes: 2MiB",
        "retention: 7d",
    ] {
        assert!(shop.contains(setting), "{setting} at spec level:\n{shop}");
    }
    assert!(
        !shop.contains("compression.type") && !shop.contains("max.message.bytes"),
        "namespace settings are not repeated on each topic:\n{shop}"
    );
    assert!(shop.contains("cleanup.policy: compact"), "{shop}");

    let plan = repo.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}\n{shop}", plan.all_output());
    assert!(plan.stdout.contains("No changes"), "{}", plan.stdout);
    assert!(
        plan.stdout
            .contains("will be recorded in sluice's inventory"),
        "{}",
        plan.stdout
    );
}

#[tokio::test]
async fn merge_adopts_a_topic_made_by_hand_and_keeps_the_file_byte_for_byte() {
    let repo = TestRepo::new();
    let ns = repo.name("shop");
    let spec = format!(
        "  retention: 7d\n  # The topics, oldest first.\n  topics:\n    - name: {ns}.orders   # the main one\n      partitions: 2\n\n    - name: {ns}.events\n      # events are kept a day\n      config:\n        retention.ms: \"86400000\"\n  # Who reads.\n  consumers:\n    - group: {ns}-readers\n"
    );
    repo.namespace("shop", &spec);
    let applied = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}", applied.all_output());
    let path = repo.dir.path().join("namespaces/shop.yaml");
    let before = std::fs::read_to_string(&path).unwrap();

    // Someone makes a topic by hand, named for the namespace.
    let manual = format!("{ns}.manual");
    let configs = [("retention.ms", "604800000"), ("cleanup.policy", "compact")];
    create_topics(&repo, &[(&manual, 2, &configs)]).await;
    let plan = repo.run(&["plan"]);
    assert!(
        !plan.stdout.contains(&manual),
        "sluice leaves a topic it does not know alone: {}",
        plan.stdout
    );

    let merge = repo.run(&["import", "--namespace", &ns, "--merge"]);
    assert_eq!(merge.code, 0, "{}", merge.all_output());
    assert!(merge.stderr.contains(&manual), "{}", merge.stderr);
    assert!(!merge.stderr.contains("warning"), "{}", merge.stderr);
    let after = std::fs::read_to_string(&path).unwrap();
    // The new entry goes after the last topic's lines, before the comment
    // that opens the next key; everything else is the same bytes.
    let at = before.find("  # Who reads.").unwrap();
    assert_eq!(&after[..at], &before[..at]);
    assert!(after.ends_with(&before[at..]), "{after}");
    let added = &after[at..after.len() - (before.len() - at)];
    assert_eq!(
        added,
        format!(
            "    - name: {manual}\n      partitions: 2\n      replication_factor: 1\n      config:\n        cleanup.policy: compact\n"
        ),
        "retention is the namespace's, so it is not repeated:\n{after}"
    );

    // The topic is adopted as it is; only the namespace's records change.
    let plan = repo.run(&["plan"]);
    assert_eq!(plan.code, 0, "{}", plan.all_output());
    assert!(
        !plan.stdout.contains(&format!("kafka.topic/{manual}")),
        "the topic itself is not changed: {}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("will be recorded in sluice's inventory"),
        "{}",
        plan.stdout
    );
    let applied = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}", applied.all_output());
    let again = repo.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "{}", again.all_output());

    // Nothing left to add: said, and the file is left alone.
    let twice = repo.run(&["import", "--namespace", &ns, "--merge"]);
    assert_eq!(twice.code, 0, "{}", twice.all_output());
    assert!(twice.stderr.contains("Nothing to add"), "{}", twice.stderr);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), after);
}

#[tokio::test]
async fn merge_refuses_a_flow_style_topics_list_and_changes_nothing() {
    let repo = TestRepo::new();
    let ns = repo.name("flow");
    repo.namespace("flow", &format!("  topics: [{{name: {ns}.a}}]\n"));
    let applied = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}", applied.all_output());
    create_topics(&repo, &[(&format!("{ns}.b"), 1, &[])]).await;
    let path = repo.dir.path().join("namespaces/flow.yaml");
    let before = std::fs::read_to_string(&path).unwrap();
    let merge = repo.run(&["import", "--namespace", &ns, "--merge"]);
    assert_eq!(merge.code, 1, "{}", merge.all_output());
    assert!(
        merge.stderr.contains("not a block list") && merge.stderr.contains("flow.yaml"),
        "{}",
        merge.stderr
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
}

#[tokio::test]
async fn import_says_what_the_next_plan_will_still_change() {
    let repo = TestRepo::new();
    seed(&repo);
    let applied = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}", applied.all_output());
    // A DLQ given a retention of its own, which a namespace cannot declare:
    // a DLQ takes the namespace's.
    let dlq = repo.name("pay.ledger.dlq");
    repo.set_topic_config(&dlq, "retention.ms", "86400000");
    lose_yaml_and_state(&repo).await;

    let (_, import) = import_mine(&repo);
    assert_eq!(import.code, 0, "{}", import.all_output());
    assert!(
        import
            .stderr
            .contains("warning: the next plan will still change 1 resource(s)")
            && import
                .stderr
                .contains(&format!("kafka.topic/{dlq}  config.retention.ms")),
        "{}",
        import.stderr
    );
    // What import announced, and only it (blocked: the inventory does not
    // hold the topic yet).
    let plan = repo.run(&["plan"]);
    assert!(
        plan.stdout.contains(&format!("! kafka.topic/{dlq}"))
            && plan
                .stdout
                .contains("Plan: 0 to create, 0 to update, 0 to delete. 1 blocked."),
        "{}",
        plan.stdout
    );
}
