//! `sluice import` on a cluster seeded outside sluice, and `sluice status`
//! with a real consumer group.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;

use crate::common::TestRepo;

fn config(repo: &TestRepo) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &repo.services().kafka);
    c
}

/// A topic made outside sluice: its name, partitions and configs.
pub type Seed<'a> = (&'a str, i32, &'a [(&'a str, &'a str)]);

/// Makes topics as another tool would, with replication factor 1.
pub async fn create_topics(repo: &TestRepo, topics: &[Seed<'_>]) {
    let admin: AdminClient<DefaultClientContext> = config(repo).create().unwrap();
    let new: Vec<NewTopic> = topics
        .iter()
        .map(|(name, partitions, configs)| {
            configs.iter().fold(
                NewTopic::new(name, *partitions, TopicReplication::Fixed(1)),
                |t, (k, v)| t.set(k, v),
            )
        })
        .collect();
    for r in admin
        .create_topics(&new, &AdminOptions::new())
        .await
        .unwrap()
    {
        r.unwrap();
    }
}

#[tokio::test]
async fn import_from_a_seeded_cluster_then_plan_has_no_changes() {
    let repo = TestRepo::new();
    let ns = repo.name("shop");
    let (orders, dlq, state) = (
        format!("{ns}.orders"),
        format!("{ns}.orders.dlq"),
        format!("{ns}.state"),
    );
    let week = "604800000";
    create_topics(
        &repo,
        &[
            (
                &orders,
                3,
                &[("retention.ms", week), ("max.message.bytes", "2097152")],
            ),
            (&dlq, 3, &[("retention.ms", week)]),
            (
                &state,
                1,
                &[("retention.ms", week), ("cleanup.policy", "compact")],
            ),
        ],
    )
    .await;
    // The records a data plane already reads, in the registry's format.
    let mut etcd = etcd_client::Client::connect([repo.services().etcd.as_str()], None)
        .await
        .unwrap();
    let p = repo.prefix();
    let records = [
        (
            format!("{p}namespaces/{ns}"),
            json!({
                "name": ns, "owner": "shop-team", "tier": "best-effort", "labels": {"domain": "shop"},
                "protected": false, "capacity": {"write_rps": 100, "read_rps": 200},
                "retention_ms": 604800000u64, "cache": null, "connection_pool_size": 8,
                "topics": [
                    {"name": orders, "dlq_of": null},
                    {"name": state, "dlq_of": null},
                    {"name": dlq, "dlq_of": orders},
                ],
                "consumers": [{"group": "fulfilment", "max_lag": 500}],
                "managed_by": "sluice",
            }),
        ),
        (
            format!("{p}grants/{ns}"),
            json!({"namespace": ns, "grants": [
                {"kind": "service", "principal": "checkout", "permissions": ["write"]},
                {"kind": "team", "principal": "shop-team", "permissions": ["admin"]},
            ]}),
        ),
    ];
    for (key, value) in &records {
        etcd.put(key.as_str(), value.to_string(), None)
            .await
            .unwrap();
    }

    let out = repo.dir.path().join("namespaces");
    let import = repo.run(&[
        "import",
        "--out",
        out.to_str().unwrap(),
        "--topics",
        &format!("^{}\\.", regex::escape(&ns)),
    ]);
    assert_eq!(import.code, 0, "{}", import.all_output());
    let yaml = std::fs::read_to_string(out.join(format!("{ns}.yaml"))).unwrap();
    assert!(yaml.contains("dlq: true"), "{yaml}");
    assert!(yaml.contains("cleanup.policy: compact"), "{yaml}");
    assert!(yaml.contains("service: checkout"), "{yaml}");
    assert!(
        !yaml.contains(&dlq),
        "the DLQ folds into `dlq: true`:\n{yaml}"
    );

    let validate = repo.run(&["validate"]);
    assert_eq!(validate.code, 0, "{}", validate.all_output());
    let plan = repo.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}\n{yaml}", plan.all_output());
    assert!(plan.stdout.contains("No changes"), "{}", plan.stdout);

    // Importing again would overwrite: refused.
    let again = repo.run(&["import", "--out", out.to_str().unwrap()]);
    assert_eq!(again.code, 1, "{}", again.all_output());
    assert!(
        again.stderr.contains("refusing to overwrite"),
        "{}",
        again.stderr
    );
}

#[tokio::test]
async fn status_shows_the_lag_of_a_real_consumer_group() {
    let repo = TestRepo::new();
    let topic = repo.name("events");
    let group = repo.name("readers");
    let idle = repo.name("idle");
    repo.namespace(
        "events",
        &format!(
            "  topics:\n    - name: {topic}\n      partitions: 1\n  consumers:\n    - group: {group}\n      max_lag: 100\n    - group: {idle}\n"
        ),
    );
    let apply = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 0, "{}", apply.all_output());

    // One batch per record: tansu 0.6 moves the high watermark by one per
    // batch, not per record.
    let producer: BaseProducer = config(&repo).create().unwrap();
    for i in 0..10 {
        producer
            .send(BaseRecord::<(), _>::to(&topic).payload(&format!("event {i}")))
            .unwrap();
        producer.flush(Duration::from_secs(10)).unwrap();
    }

    let consumer: BaseConsumer = config(&repo)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut read = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while read < 4 && std::time::Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(500)) {
            m.unwrap();
            read += 1;
        }
    }
    assert_eq!(read, 4, "the consumer read 4 records");
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset(&topic, 0, Offset::Offset(4))
        .unwrap();
    consumer.commit(&commit, CommitMode::Sync).unwrap();

    let status = repo.run(&["status", "--format", "json"]);
    assert_eq!(status.code, 0, "{}", status.all_output());
    let json = status.json();
    let c = &json["consumers"][0];
    assert_eq!(c["group"], group.as_str(), "{json:#}");
    assert_eq!(c["lag"], 6, "{json:#}");
    assert_eq!(c["partitions"][0]["committed"], 4, "{json:#}");
    assert_eq!(c["state"], "ok", "{json:#}");
    // A group that never committed has no lag to judge: not 0, not ok.
    let never = &json["consumers"][1];
    assert_eq!(never["group"], idle.as_str(), "{json:#}");
    assert_eq!(never["state"], "no_commits", "{json:#}");
    assert!(never["lag"].is_null(), "{json:#}");
    assert!(
        json["backends"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["ok"] == true),
        "{json:#}"
    );

    let text = repo.run(&["status"]);
    assert!(text.stdout.contains(&group), "{}", text.stdout);
    let row = |g: &str| -> Vec<String> {
        let line = text.stdout.lines().find(|l| l.contains(g)).unwrap();
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(row(&group)[2..], ["6", "100", "ok"], "{}", text.stdout);
    assert_eq!(row(&idle)[2..], ["-", "-", "no commits"], "{}", text.stdout);
    assert!(
        text.stdout.contains("NAMESPACE") && text.stdout.contains("MAX LAG  STATE"),
        "named columns: {}",
        text.stdout
    );
    assert!(
        text.stdout.lines().all(|l| !l.ends_with(' ')),
        "no trailing spaces: {:?}",
        text.stdout
    );
    assert!(
        text.stdout.contains("Drift: 0 changed outside sluice"),
        "{}",
        text.stdout
    );
}
