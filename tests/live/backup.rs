//! `sluice backup` and `sluice restore` against the real broker (tansu), S3
//! (moto) and etcd: records with keys, headers and known timestamps over
//! three partitions, backed up, deleted, restored and read back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use sluice::backup::segment::BackedRecord;

use crate::common::{Run, TestRepo};

/// The first record's timestamp; record `i` has `BASE + i` seconds.
const BASE: i64 = 1_765_000_000_000;
const PARTITIONS: i32 = 3;

/// A record as the tests compare them: as a backup keeps it, with its
/// offset left at 0 (a restore may write it at another).
type Rec = BackedRecord;

/// Record `i`: binary values, a null key now and then, a null value once,
/// headers with and without values.
fn record(i: i64) -> Rec {
    Rec {
        partition: i32::try_from(i).unwrap() % PARTITIONS,
        offset: 0,
        timestamp: BASE + i * 1_000,
        key: (i % 7 != 3).then(|| format!("key-{i}").into_bytes()),
        value: (i != 5).then(|| {
            let mut v = format!("value {i} ").into_bytes();
            v.extend([0u8, 255, 10, 13, u8::try_from(i % 256).unwrap()]);
            v
        }),
        headers: match i % 3 {
            0 => Vec::new(),
            1 => vec![(
                "trace".into(),
                Some(vec![1, 2, u8::try_from(i % 256).unwrap()]),
            )],
            _ => vec![
                ("trace".into(), Some(b"x".to_vec())),
                ("empty".into(), None),
                ("trace".into(), Some(Vec::new())),
            ],
        },
    }
}

fn kafka(repo: &TestRepo) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &repo.services().kafka);
    c
}

/// Produces records `range` to `topic`, several records per batch (one
/// flush for all of them).
pub(crate) fn produce(repo: &TestRepo, topic: &str, range: std::ops::Range<i64>) {
    produce_records(repo, topic, range.map(record));
}

fn produce_records(repo: &TestRepo, topic: &str, records: impl Iterator<Item = Rec>) {
    let producer: BaseProducer = kafka(repo).set("linger.ms", "50").create().unwrap();
    for r in records {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k.as_str(),
                value: v.as_deref(),
            });
        }
        let mut out: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic)
            .partition(r.partition)
            .timestamp(r.timestamp)
            .headers(headers);
        if let Some(k) = &r.key {
            out = out.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            out = out.payload(v.as_slice());
        }
        producer.send(out).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(20)).unwrap();
}

/// Produces one record per partition (records `from..from + 3`), each in
/// a batch of its own. tansu's high watermark stands at the base offset of a
/// partition's last batch plus one, so the rest of that batch is above it
/// until another batch comes; a last batch of one record puts the high
/// watermark past every record before it.
pub(crate) fn produce_closing(repo: &TestRepo, topic: &str, from: i64) {
    for i in from..from + i64::from(PARTITIONS) {
        produce(repo, topic, i..i + 1);
    }
}

/// Each partition's high watermark.
fn high_watermarks(repo: &TestRepo, topic: &str) -> Vec<i64> {
    let consumer: BaseConsumer = kafka(repo).create().unwrap();
    (0..PARTITIONS)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .unwrap()
                .1
        })
        .collect()
}

/// `sluice restore NS ARGS... --confirm NS`: a restore confirmed as a
/// script confirms it.
fn restore_confirmed(repo: &TestRepo, ns: &str, args: &[&str]) -> Run {
    let mut all = vec!["restore", ns];
    all.extend_from_slice(args);
    all.extend(["--confirm", ns]);
    repo.run(&all)
}

/// Every record of `topic`, per partition in order, read to the end.
fn read_back(repo: &TestRepo, topic: &str) -> BTreeMap<i32, Vec<Rec>> {
    let consumer: BaseConsumer = kafka(repo)
        .set("group.id", format!("{}-reader", repo.tag))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out: BTreeMap<i32, Vec<Rec>> = BTreeMap::new();
    let mut ended = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while ended.len() < PARTITIONS as usize {
        assert!(Instant::now() < deadline, "reading {topic} took over 30 s");
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                ended.insert(p);
            }
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            Some(Ok(m)) => {
                ended.remove(&m.partition());
                out.entry(m.partition()).or_default().push(Rec {
                    offset: 0,
                    ..BackedRecord::of(&m)
                });
            }
        }
    }
    out
}

/// Records `range` as the tests expect to read them back: per partition, in order.
fn expected(range: impl Iterator<Item = i64>) -> BTreeMap<i32, Vec<Rec>> {
    let mut out: BTreeMap<i32, Vec<Rec>> = BTreeMap::new();
    for i in range {
        let r = record(i);
        out.entry(r.partition).or_default().push(r);
    }
    out
}

fn ok(run: &Run) {
    assert_eq!(run.code, 0, "{}", run.all_output());
}

/// Milliseconds since the epoch as RFC 3339, as `--to-time` takes them.
fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap()),
    )
    .to_string()
}

/// Record `i`'s timestamp, as `--to-time` takes it.
fn time_of(i: i64) -> String {
    rfc3339(BASE + i * 1_000)
}

/// Replaces `old` with `new` in namespace `events`'s file.
fn edit_events(repo: &TestRepo, old: &str, new: &str) {
    let yaml = repo.dir.path().join("namespaces/events.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    assert!(text.contains(old), "{text}");
    std::fs::write(&yaml, text.replace(old, new)).unwrap();
}

/// Namespace `events`: one topic of three partitions, a consumer group, and
/// incremental backups into the test's bucket; applied.
fn backed_up_namespace(repo: &TestRepo) -> (String, String) {
    backed_up_namespace_with(repo, "")
}

/// [`backed_up_namespace`], with `backup` settings added (indented as its
/// fields are).
pub(crate) fn backed_up_namespace_with(repo: &TestRepo, backup: &str) -> (String, String) {
    let topic = repo.name("events");
    repo.namespace(
        "events",
        &format!(
            "  topics:\n    - name: {topic}\n      partitions: 3\n  consumers:\n    - group: {{tag}}-readers\n  disaster_recovery:\n    rpo: 1h\n    backup:\n      bucket: {}\n      prefix: backups/\n      incremental: true\n{backup}",
            repo.bucket("backups")
        ),
    );
    ok(&repo.run(&["apply", "--auto-approve"]));
    (repo.name("events"), topic)
}

/// Deletes the manifest of `run` (one of [`manifests`]) of `ns`, as
/// `retain`'s lifecycle rule would expire it (moto runs no lifecycle).
async fn expire(repo: &TestRepo, ns: &str, run: &serde_json::Value) {
    repo.s3()
        .delete_object()
        .bucket(repo.bucket("backups"))
        .key(format!(
            "backups/{ns}/{}/manifest.json",
            run["run_id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
}

/// The manifests under the namespace's directory, oldest first.
pub(crate) async fn manifests(repo: &TestRepo, ns: &str) -> Vec<serde_json::Value> {
    manifests_under(repo, &repo.bucket("backups"), &format!("backups/{ns}/")).await
}

/// The manifests under `prefix` of `bucket`, oldest first (by key).
pub(crate) async fn manifests_under(
    repo: &TestRepo,
    bucket: &str,
    prefix: &str,
) -> Vec<serde_json::Value> {
    let s3 = repo.s3();
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    let mut keys: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key())
        .filter(|k| k.ends_with("/manifest.json"))
        .map(str::to_owned)
        .collect();
    keys.sort();
    let mut out = Vec::new();
    for k in keys {
        let body = s3.get_object().bucket(bucket).key(&k).send().await.unwrap();
        let bytes = body.body.collect().await.unwrap().into_bytes();
        out.push(serde_json::from_slice(&bytes).unwrap());
    }
    out
}

async fn delete_topic(repo: &TestRepo, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = kafka(repo).create().unwrap();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let deleted = admin.delete_topics(&[topic], &opts).await.unwrap();
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while repo.has_topic(topic.strip_prefix(&format!("{}-", repo.tag)).unwrap()) {
        assert!(Instant::now() < deadline, "{topic} is still listed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `retain`'s lifecycle rule expires a chain's full run by age; the runs
/// after it are then a broken chain, which no restore can read. The next
/// backup starts a new chain, from each partition's low watermark.
#[tokio::test]
async fn a_backup_after_the_chains_full_run_expired_starts_a_new_chain() {
    let repo = TestRepo::new();
    let (ns, topic) = backed_up_namespace(&repo);
    produce(&repo, &topic, 0..20);
    ok(&repo.run(&["backup", &ns]));
    produce(&repo, &topic, 20..40);
    ok(&repo.run(&["backup", &ns]));
    let runs = manifests(&repo, &ns).await;
    assert_eq!(
        runs.iter().map(|m| m["kind"].clone()).collect::<Vec<_>>(),
        ["full", "incremental"],
        "{runs:#?}"
    );
    expire(&repo, &ns, &runs[0]).await;

    produce(&repo, &topic, 40..60);
    let third = repo.run(&["backup", &ns]);
    ok(&third);
    assert!(third.stdout.contains("(full run "), "{}", third.stdout);
    let runs = manifests(&repo, &ns).await;
    let newest = runs.last().unwrap();
    assert_eq!(newest["kind"], "full", "{runs:#?}");
    assert_eq!(newest["previous"], serde_json::Value::Null);
    for range in newest["topics"][0]["ranges"].as_array().unwrap() {
        assert_eq!(range["start_offset"], 0, "{newest:#}");
    }
    // The new chain is whole: status reads it, one run long.
    let status = repo.run(&["status", "--format", "json"]);
    let b = &status.json()["backups"][0];
    assert_eq!(b["last_run"], newest["run_id"], "{b}");
    assert_eq!(b["chain_runs"], 1, "{b}");
    assert_eq!(b["error"], serde_json::Value::Null, "{b}");
}

/// A new chain starts when the newest is broken, so an older chain that
/// `retain` broke stays in the bucket beside whole ones: a restore to a
/// time only a whole older chain covers reads that chain.
#[tokio::test]
async fn a_restore_to_a_time_an_older_whole_chain_covers_is_not_refused_for_a_broken_one() {
    let repo = TestRepo::new();
    let (ns, topic) = backed_up_namespace(&repo);
    // Chain A: a full run and an incremental one; its full run then expires.
    produce(&repo, &topic, 0..9);
    produce_closing(&repo, &topic, 9);
    ok(&repo.run(&["backup", &ns]));
    produce(&repo, &topic, 20..29);
    produce_closing(&repo, &topic, 29);
    ok(&repo.run(&["backup", &ns]));
    let a = manifests(&repo, &ns).await;
    expire(&repo, &ns, &a[0]).await;
    // Chain B: a full run of later records only (the topic emptied).
    delete_topic(&repo, &topic).await;
    ok(&repo.run(&["apply", "--auto-approve"]));
    produce(&repo, &topic, 100..109);
    produce_closing(&repo, &topic, 109);
    ok(&repo.run(&["backup", &ns]));
    // Chain C, the newest: later records again, a full run asked for.
    delete_topic(&repo, &topic).await;
    edit_events(&repo, "incremental: true", "incremental: false");
    ok(&repo.run(&["apply", "--auto-approve"]));
    produce(&repo, &topic, 200..209);
    produce_closing(&repo, &topic, 209);
    ok(&repo.run(&["backup", &ns]));
    let runs = manifests(&repo, &ns).await;
    assert_eq!(
        runs.iter().map(|m| m["kind"].clone()).collect::<Vec<_>>(),
        ["incremental", "full", "full"],
        "{runs:#?}"
    );

    let b = restore_confirmed(
        &repo,
        &ns,
        &["--to-time", &time_of(105), "--into-suffix", ".b"],
    );
    ok(&b);
    assert_eq!(read_back(&repo, &format!("{topic}.b")), expected(100..106));
    // A time only the broken chain holds: refused, naming the missing run.
    let broken = restore_confirmed(
        &repo,
        &ns,
        &["--to-time", &time_of(25), "--into-suffix", ".a"],
    );
    assert_eq!(broken.code, 1, "{}", broken.all_output());
    assert!(
        broken.stderr.contains(&format!(
            "goes on from run `{}`, whose manifest is missing",
            a[0]["run_id"].as_str().unwrap()
        )),
        "{}",
        broken.stderr
    );
    assert!(!repo.has_topic("events.a"));
}

/// The newest chain broken (its full run expired, say) does not stop a
/// restore to a time an older whole chain covers.
#[tokio::test]
async fn a_restore_to_a_time_reads_an_older_whole_chain_when_the_newest_is_broken() {
    let repo = TestRepo::new();
    let (ns, topic) = backed_up_namespace(&repo);
    produce(&repo, &topic, 0..9);
    produce_closing(&repo, &topic, 9);
    ok(&repo.run(&["backup", &ns]));
    // Chain Y: a full run, then an incremental one; its full run is lost.
    edit_events(&repo, "incremental: true", "incremental: false");
    ok(&repo.run(&["apply", "--auto-approve"]));
    ok(&repo.run(&["backup", &ns]));
    edit_events(&repo, "incremental: false", "incremental: true");
    ok(&repo.run(&["apply", "--auto-approve"]));
    produce(&repo, &topic, 20..29);
    produce_closing(&repo, &topic, 29);
    ok(&repo.run(&["backup", &ns]));
    let runs = manifests(&repo, &ns).await;
    assert_eq!(
        runs.iter().map(|m| m["kind"].clone()).collect::<Vec<_>>(),
        ["full", "full", "incremental"],
        "{runs:#?}"
    );
    expire(&repo, &ns, &runs[1]).await;

    let restore = restore_confirmed(
        &repo,
        &ns,
        &["--to-time", &time_of(5), "--into-suffix", ".x"],
    );
    ok(&restore);
    assert_eq!(read_back(&repo, &format!("{topic}.x")), expected(0..6));
    // Without a time, the newest chain is what a restore reads: refused.
    let newest = restore_confirmed(&repo, &ns, &["--into-suffix", ".y"]);
    assert_eq!(newest.code, 1, "{}", newest.all_output());
    assert!(
        newest.stderr.contains("whose manifest is missing"),
        "{}",
        newest.stderr
    );
}

/// Retention deletes a busy partition's old records before a slow one's;
/// a chain whose full run started after `--to-time` then holds a record
/// that old without the others: the chain that started by that time, and
/// holds them all, is the one read.
#[tokio::test]
async fn a_restore_to_a_time_reads_the_chain_started_by_then_not_a_later_full_run() {
    let repo = TestRepo::new();
    let (ns, topic) = backed_up_namespace(&repo);
    // Records of a minute ago, as producers stamp them.
    let since = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
        - 60_000;
    let at = move |i: i64| Rec {
        timestamp: since + (i % 100) * 100,
        ..record(i)
    };
    let closing = |from: i64| {
        for i in from..from + i64::from(PARTITIONS) {
            produce_records(&repo, &topic, std::iter::once(at(i)));
        }
    };
    produce_records(&repo, &topic, (100..109).map(at));
    closing(109);
    ok(&repo.run(&["backup", &ns]));
    let first = manifests(&repo, &ns).await[0].clone();
    // The time of the first run: every record so far is at or before it.
    let t = first["started_at_ms"].as_i64().unwrap();
    // Retention, as it deletes: all but record 101 (partition 2) gone;
    // then records after `t`.
    delete_topic(&repo, &topic).await;
    ok(&repo.run(&["apply", "--auto-approve"]));
    produce_records(&repo, &topic, std::iter::once(at(101)));
    let later = |i: i64| Rec {
        timestamp: t + 1_000 + i,
        ..record(i)
    };
    produce_records(&repo, &topic, (200..212).map(later));
    // A new chain: a full run, as a restarted chain starts.
    edit_events(&repo, "incremental: true", "incremental: false");
    ok(&repo.run(&["backup", &ns]));
    let runs = manifests(&repo, &ns).await;
    assert_eq!(runs.len(), 2, "{runs:#?}");

    let restore = restore_confirmed(
        &repo,
        &ns,
        &["--to-time", &rfc3339(t), "--into-suffix", ".pit"],
    );
    ok(&restore);
    assert!(
        restore.stdout.contains(&format!(
            "runs {} (covering",
            first["run_id"].as_str().unwrap()
        )),
        "{}",
        restore.stdout
    );
    let mut want: BTreeMap<i32, Vec<Rec>> = BTreeMap::new();
    for r in (100..112).map(at) {
        want.entry(r.partition).or_default().push(r);
    }
    assert_eq!(read_back(&repo, &format!("{topic}.pit")), want);
}

/// Manifests edited by hand so that two runs go on from each other: backup,
/// status and restore say so, and none walks the loop for ever.
#[tokio::test]
async fn manifests_whose_previous_fields_loop_are_refused_not_walked_for_ever() {
    let repo = TestRepo::new();
    let (ns, topic) = backed_up_namespace(&repo);
    produce(&repo, &topic, 0..9);
    ok(&repo.run(&["backup", &ns]));
    produce(&repo, &topic, 9..18);
    ok(&repo.run(&["backup", &ns]));
    let runs = manifests(&repo, &ns).await;
    let (first, second) = (&runs[0]["run_id"], &runs[1]["run_id"]);
    let mut looped = runs[0].clone();
    looped["kind"] = "incremental".into();
    looped["previous"] = second.clone();
    repo.s3()
        .put_object()
        .bucket(repo.bucket("backups"))
        .key(format!(
            "backups/{ns}/{}/manifest.json",
            first.as_str().unwrap()
        ))
        .body(ByteStream::from(serde_json::to_vec(&looped).unwrap()))
        .send()
        .await
        .unwrap();

    let status = crate::faults::run_bounded(repo.sluice().args(["status", "--format", "json"]));
    let b = &status.json()["backups"][0];
    assert!(
        b["error"]
            .as_str()
            .unwrap_or_default()
            .contains("form a loop"),
        "{b}"
    );
    let restore = crate::faults::run_bounded(repo.sluice().args([
        "restore",
        &ns,
        "--into-suffix",
        ".r",
        "--confirm",
        &ns,
    ]));
    assert_eq!(restore.code, 1, "{}", restore.all_output());
    assert!(restore.stderr.contains("form a loop"), "{}", restore.stderr);
    // A backup starts a new chain from the loop, which is no whole chain.
    let backup = crate::faults::run_bounded(repo.sluice().args(["backup", &ns]));
    assert_eq!(backup.code, 0, "{}", backup.all_output());
    assert!(backup.stdout.contains("(full run "), "{}", backup.stdout);
}

#[tokio::test]
async fn backup_full_then_incremental_then_restore_gives_back_every_record() {
    let repo = TestRepo::new();
    let (ns, topic) = backed_up_namespace(&repo);
    produce(&repo, &topic, 0..40);

    // The declared group has committed offset 1 on partition 0.
    let group: BaseConsumer = kafka(&repo)
        .set("group.id", format!("{}-readers", repo.tag))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset(&topic, 0, Offset::Offset(1))
        .unwrap();
    group
        .commit(&commit, rdkafka::consumer::CommitMode::Sync)
        .unwrap();

    // A run covers each partition up to the high watermark it read as it
    // started. On tansu that is the first record of the partition's last
    // batch: the rest of the batch is left to the next run.
    let marks = high_watermarks(&repo, &topic);
    let full = repo.run(&["backup", "--segment-size", "1KiB"]);
    ok(&full);
    let covered: i64 = marks.iter().sum();
    assert!(
        full.stdout.contains(&format!(" {covered} record(s)")),
        "{marks:?}: {}",
        full.stdout
    );
    produce(&repo, &topic, 40..130);
    produce_closing(&repo, &topic, 130);
    let marks = high_watermarks(&repo, &topic);
    let incremental = repo.run(&["backup", &ns, "--segment-size", "1KiB"]);
    ok(&incremental);
    assert!(
        incremental
            .stdout
            .contains(&format!(" {} record(s)", 133 - covered)),
        "{}",
        incremental.stdout
    );

    let runs = manifests(&repo, &ns).await;
    assert_eq!(runs.len(), 2, "{runs:#?}");
    assert_eq!(runs[0]["kind"], "full");
    assert_eq!(runs[1]["kind"], "incremental");
    assert_eq!(runs[1]["previous"], runs[0]["run_id"]);
    assert_eq!(runs[1]["topics"][0]["partitions"], 3);
    // Each partition's second range starts where its first ended and ends
    // at the high watermark; several objects hold its records.
    for p in 0..3 {
        let first = &runs[0]["topics"][0]["ranges"][p];
        let second = &runs[1]["topics"][0]["ranges"][p];
        assert_eq!(first["partition"], p);
        assert_eq!(first["start_offset"], 0);
        assert_eq!(second["start_offset"], first["end_offset"], "{runs:#?}");
        assert_eq!(second["end_offset"], marks[p], "{runs:#?}");
        let objects = second["objects"].as_array().unwrap();
        assert!(objects.len() > 1, "{second:#}");
        for o in objects {
            assert_eq!(o["sha256"].as_str().unwrap().len(), 64);
        }
    }
    let records: u64 = runs
        .iter()
        .flat_map(|m| m["topics"][0]["ranges"].as_array().unwrap().clone())
        .map(|r| r["records"].as_u64().unwrap())
        .sum();
    assert_eq!(records, 133);
    assert_eq!(
        runs[0]["registry"]["name"],
        ns.as_str(),
        "{:#}",
        runs[0]["registry"]
    );
    assert_eq!(
        runs[0]["consumer_groups"],
        serde_json::json!([{
            "group": format!("{}-readers", repo.tag),
            "offsets": [{"topic": topic, "partition": 0, "offset": 1}],
        }])
    );

    delete_topic(&repo, &topic).await;
    let restore = restore_confirmed(&repo, &ns, &[]);
    ok(&restore);
    assert!(
        restore
            .stdout
            .contains(&format!("+ create topic `{topic}` (3 partition(s)")),
        "{}",
        restore.stdout
    );
    assert!(
        restore.stdout.contains(" 133 record(s)"),
        "{}",
        restore.stdout
    );
    assert_eq!(read_back(&repo, &topic), expected(0..133));
}

/// A bucket with default object lock takes a PutObject only with a
/// checksum (S3 and moto refuse it without Content-MD5 or an SDK checksum):
/// segments and manifest alike.
#[tokio::test]
async fn backup_into_a_bucket_with_object_lock_writes_segments_and_manifest() {
    let repo = TestRepo::new();
    let (ns, topic) =
        backed_up_namespace_with(&repo, "      object_lock: {mode: governance, days: 1}\n");
    let lock = repo
        .s3()
        .get_object_lock_configuration()
        .bucket(repo.bucket("backups"))
        .send()
        .await
        .unwrap();
    assert!(
        lock.object_lock_configuration()
            .and_then(|c| c.rule())
            .is_some(),
        "the bucket has no default retention: {lock:?}"
    );
    produce(&repo, &topic, 0..30);
    produce_closing(&repo, &topic, 30);
    ok(&repo.run(&["backup", "--segment-size", "1KiB"]));
    let manifests = manifests(&repo, &ns).await;
    assert_eq!(manifests.len(), 1, "{manifests:?}");
    ok(&restore_confirmed(
        &repo,
        &ns,
        &["--into-suffix", ".locked"],
    ));
    assert_eq!(
        read_back(&repo, &format!("{topic}.locked")),
        expected(0..30 + i64::from(PARTITIONS))
    );
}

#[tokio::test]
async fn restore_to_a_time_restores_exactly_the_records_up_to_it() {
    let repo = TestRepo::new();
    let (ns, topic) = backed_up_namespace(&repo);
    produce(&repo, &topic, 0..30);
    produce_closing(&repo, &topic, 30);
    ok(&repo.run(&["backup", "--segment-size", "1KiB"]));

    // Record 14's timestamp: records 0 to 14 are at or before it.
    let t = time_of(14);
    let restore = restore_confirmed(&repo, &ns, &["--to-time", &t, "--into-suffix", ".pit"]);
    ok(&restore);
    assert_eq!(read_back(&repo, &format!("{topic}.pit")), expected(0..15));

    // Before the first record: refused, saying what is covered.
    let early = restore_confirmed(
        &repo,
        &ns,
        &[
            "--to-time",
            "2020-01-01T00:00:00Z",
            "--into-suffix",
            ".early",
        ],
    );
    assert_eq!(early.code, 1, "{}", early.all_output());
    let covered = time_of(0);
    assert!(
        early.stderr.contains("outside what the backups")
            && early.stderr.contains(&format!("from {covered} to ")),
        "{}",
        early.stderr
    );
    assert!(!repo.has_topic("events.early"), "nothing was created");

    // Inside what the backups cover, but before the PITR window (the
    // records' timestamps are a year old): refused.
    edit_events(
        &repo,
        "    rpo: 1h\n",
        "    rpo: 1h\n    pitr:\n      window: 7d\n",
    );
    let windowed = restore_confirmed(&repo, &ns, &["--to-time", &t, "--into-suffix", ".window"]);
    assert_eq!(windowed.code, 1, "{}", windowed.all_output());
    assert!(
        windowed.stderr.contains(&format!(
            "`--to-time {t}` is before namespace `{ns}`'s PITR window (`pitr.window: 7days`"
        )),
        "{}",
        windowed.stderr
    );
    assert!(!repo.has_topic("events.window"), "nothing was created");
}

/// Flips one bit in the middle of the second object of partition 0 of the
/// namespace's first run (partition 0 is restored first, so the scratch or
/// restored topic holds the first object's records when it fails); the
/// bucket, the object's key, and how many records the first object holds.
pub(crate) async fn corrupt_second_object(repo: &TestRepo, ns: &str) -> (String, String, usize) {
    let runs = manifests(repo, ns).await;
    let objects = runs[0]["topics"][0]["ranges"][0]["objects"]
        .as_array()
        .unwrap();
    assert!(objects.len() > 1, "{objects:#?}");
    let before = objects[0]["records"].as_u64().unwrap() as usize;
    let key = objects[1]["key"].as_str().unwrap().to_owned();
    let s3 = repo.s3();
    let bucket = repo.bucket("backups");
    let body = s3
        .get_object()
        .bucket(&bucket)
        .key(&key)
        .send()
        .await
        .unwrap();
    let mut bytes = body.body.collect().await.unwrap().into_bytes().to_vec();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    s3.put_object()
        .bucket(&bucket)
        .key(&key)
        .body(ByteStream::from(bytes))
        .send()
        .await
        .unwrap();
    (bucket, key, before)
}

#[tokio::test]
async fn backup_a_corrupt_segment_fails_the_restore_naming_it_and_nothing_after_it_is_written() {
    let repo = TestRepo::new();
    let (ns, topic) = backed_up_namespace(&repo);
    produce(&repo, &topic, 0..150);
    produce_closing(&repo, &topic, 150);
    ok(&repo.run(&["backup", "--segment-size", "1KiB"]));
    // Partition 0's objects are restored first; spoil its second one.
    let (bucket, key, before) = corrupt_second_object(&repo, &ns).await;

    let restore = restore_confirmed(&repo, &ns, &["--into-suffix", ".r"]);
    assert_eq!(restore.code, 1, "{}", restore.all_output());
    assert!(
        restore
            .stderr
            .contains(&format!("object `s3://{bucket}/{key}` is corrupt")),
        "{}",
        restore.stderr
    );
    // Only the object before it was written: partition 0's first records.
    let read = read_back(&repo, &format!("{topic}.r"));
    let all = expected(0..153);
    assert_eq!(read.get(&0).map_or(0, Vec::len), before, "{read:#?}");
    assert_eq!(read[&0][..], all[&0][..before]);
    assert!(
        !read.contains_key(&1) && !read.contains_key(&2),
        "{read:#?}"
    );
}

#[tokio::test]
async fn backup_restore_refuses_a_topic_that_holds_data_and_needs_confirmation() {
    let repo = TestRepo::new();
    let (ns, topic) = backed_up_namespace(&repo);
    produce(&repo, &topic, 0..9);
    // DR compliance reads the objects under the backup prefix: none yet.
    let drift = repo.run(&["drift", "--format", "json"]);
    let report = &drift.json()["dr"][0];
    assert!(
        !report["violations"].as_array().unwrap().is_empty(),
        "{report}"
    );
    ok(&repo.run(&["backup"]));
    let drift = repo.run(&["drift", "--format", "json"]);
    assert_eq!(drift.code, 0, "{}", drift.all_output());
    assert_eq!(drift.json()["dr"][0]["violations"], serde_json::json!([]));

    let refused = restore_confirmed(&repo, &ns, &[]);
    assert_eq!(refused.code, 1, "{}", refused.all_output());
    assert!(
        refused.stderr.contains(&format!(
            "refusing to restore into topic `{topic}`: it holds"
        )),
        "{}",
        refused.stderr
    );
    assert_eq!(
        read_back(&repo, &topic),
        expected(0..9),
        "nothing was added"
    );

    let unknown = restore_confirmed(&repo, &ns, &["--topic", "nope"]);
    assert_eq!(unknown.code, 1, "{}", unknown.all_output());
    assert!(
        unknown.stderr.contains(&format!(
            "the backups of namespace `{ns}` hold no topic `nope`; they hold `{topic}`"
        )),
        "{}",
        unknown.stderr
    );

    // No terminal and no --confirm, or a --confirm naming another namespace.
    let unconfirmed = repo.run(&["restore", &ns, "--into-suffix", ".x"]);
    assert_eq!(unconfirmed.code, 1, "{}", unconfirmed.all_output());
    assert!(
        unconfirmed.stderr.contains("without confirmation"),
        "{}",
        unconfirmed.stderr
    );
    let wrong = repo.run(&["restore", &ns, "--into-suffix", ".x", "--confirm", "other"]);
    assert_eq!(wrong.code, 1, "{}", wrong.all_output());
    assert!(
        wrong.stderr.contains("does not name the namespace"),
        "{}",
        wrong.stderr
    );
    assert!(!repo.has_topic("events.x"));

    // A backup whose topic is gone fails, naming it, and writes no manifest.
    delete_topic(&repo, &topic).await;
    let failed = repo.run(&["backup"]);
    assert_eq!(failed.code, 1, "{}", failed.all_output());
    assert!(
        failed.stderr.contains(&format!(
            "topic `{topic}` of namespace `{ns}` does not exist in Kafka"
        )) && failed.stderr.contains("no manifest was written"),
        "{}",
        failed.stderr
    );
    assert_eq!(manifests(&repo, &ns).await.len(), 1);
}

/// Keys of the objects under the namespace's backup directory.
async fn backup_keys(repo: &TestRepo, ns: &str) -> Vec<String> {
    repo.s3()
        .list_objects_v2()
        .bucket(repo.bucket("backups"))
        .prefix(format!("backups/{ns}/"))
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn backup_killed_mid_run_leaves_no_manifest_and_the_next_run_covers_every_offset_once() {
    let repo = TestRepo::new();
    let (ns, topic) = backed_up_namespace(&repo);
    produce(&repo, &topic, 0..3000);
    produce_closing(&repo, &topic, 3000);

    // Killed (SIGKILL) as soon as S3 holds its first segment object.
    let mut child = repo
        .sluice()
        .args(["backup", "--segment-size", "1KiB"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let written = loop {
        let keys = backup_keys(&repo, &ns).await;
        let written = keys.iter().any(|k| k.ends_with(".avro"));
        if written || Instant::now() > deadline {
            break written;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(written, "no segment object within 30 s");
    let orphans = backup_keys(&repo, &ns).await;
    assert!(
        !orphans.iter().any(|k| k.ends_with("manifest.json")),
        "the killed run wrote no manifest: {orphans:?}"
    );
    assert!(manifests(&repo, &ns).await.is_empty());

    // The next run starts over (there is no complete run to go on from)
    // and covers every offset once; the killed run's objects stay unnamed.
    let marks = high_watermarks(&repo, &topic);
    ok(&repo.run(&["backup", "--segment-size", "1KiB"]));
    let runs = manifests(&repo, &ns).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["kind"], "full");
    let named: Vec<&str> = runs[0]["topics"][0]["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["objects"].as_array().unwrap())
        .map(|o| o["key"].as_str().unwrap())
        .collect();
    assert!(orphans.iter().all(|k| !named.contains(&k.as_str())));
    for (p, range) in runs[0]["topics"][0]["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        assert_eq!(range["start_offset"], 0);
        assert_eq!(range["end_offset"], marks[p]);
        assert_eq!(range["records"], marks[p], "one record per offset");
    }

    let restore = restore_confirmed(&repo, &ns, &["--into-suffix", ".again"]);
    ok(&restore);
    assert_eq!(
        read_back(&repo, &format!("{topic}.again")),
        expected(0..3003)
    );
}

#[tokio::test]
async fn backup_restore_on_a_terminal_asks_for_the_namespace_name() {
    use crate::faults::OnTerminal;
    let repo = TestRepo::new();
    let (ns, topic) = backed_up_namespace(&repo);
    produce(&repo, &topic, 0..9);
    produce_closing(&repo, &topic, 9);
    ok(&repo.run(&["backup"]));
    let prompt = "Type the namespace's name to confirm:";

    let mut wrong = OnTerminal::spawn(repo.sluice().args(["restore", &ns, "--into-suffix", ".t"]));
    wrong.wait_for(prompt);
    wrong.type_line("not-it");
    assert_eq!(wrong.exit_code(), Some(1));
    assert!(!repo.has_topic("events.t"), "nothing was written");

    let mut right = OnTerminal::spawn(repo.sluice().args(["restore", &ns, "--into-suffix", ".t"]));
    right.wait_for(prompt);
    right.type_line(&ns);
    assert_eq!(right.exit_code(), Some(0));
    assert_eq!(read_back(&repo, &format!("{topic}.t")), expected(0..12));
}

#[tokio::test]
async fn backup_restore_killed_mid_way_then_resumed_writes_every_record_once() {
    let repo = TestRepo::new();
    let (ns, topic) = backed_up_namespace(&repo);
    produce(&repo, &topic, 0..3000);
    produce_closing(&repo, &topic, 3000);
    ok(&repo.run(&["backup", "--segment-size", "1KiB"]));
    let into = format!("{topic}.r");

    // Killed (SIGKILL) as soon as the restored topic holds records.
    let mut child = repo
        .sluice()
        .args(["restore", &ns, "--into-suffix", ".r", "--confirm", &ns])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let consumer: BaseConsumer = kafka(&repo).create().unwrap();
    let landed = loop {
        let landed = repo.has_topic("events.r")
            && consumer
                .fetch_watermarks(&into, 0, Duration::from_secs(5))
                .is_ok_and(|(_, high)| high > 0);
        if landed || Instant::now() > deadline {
            break landed;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(landed, "no record was restored within 30 s");
    let partial: usize = read_back(&repo, &into).values().map(Vec::len).sum();
    assert!(
        partial > 0 && partial < 3003,
        "killed mid-way: {partial} record(s)"
    );

    // The killed restore held the environment's apply lock: until its lease
    // lapses, another restore (or apply) is refused.
    let locked = restore_confirmed(&repo, &ns, &["--into-suffix", ".r", "--resume"]);
    assert_eq!(locked.code, 1, "{}", locked.all_output());
    assert!(
        locked
            .stderr
            .contains("the apply lock of environment `local` is held"),
        "{}",
        locked.stderr
    );

    // Without --resume the topic holds data: refused. With it, the rest is
    // written (the killed run's lock lapses with its lease).
    let refused = restore_confirmed(
        &repo,
        &ns,
        &["--into-suffix", ".r", "--lock-timeout", "30s"],
    );
    assert_eq!(refused.code, 1, "{}", refused.all_output());
    assert!(
        refused.stderr.contains("it holds") && refused.stderr.contains("--resume"),
        "{}",
        refused.stderr
    );
    let resumed = restore_confirmed(
        &repo,
        &ns,
        &["--into-suffix", ".r", "--resume", "--lock-timeout", "30s"],
    );
    ok(&resumed);
    assert!(
        resumed.stdout.contains(&format!(
            "~ resume writing into `{into}` (it holds {partial} record(s)"
        )),
        "{}",
        resumed.stdout
    );
    assert!(
        resumed
            .stdout
            .contains(&format!(" {} record(s) from", 3003 - partial)),
        "{}",
        resumed.stdout
    );
    assert_eq!(read_back(&repo, &into), expected(0..3003));

    // A topic holding something else is not taken for a restore's prefix.
    produce(&repo, &format!("{topic}.r"), 5000..5001);
    let other = restore_confirmed(&repo, &ns, &["--into-suffix", ".r", "--resume"]);
    assert_eq!(other.code, 1, "{}", other.all_output());
    assert!(
        other.stderr.contains("refusing to resume the restore into"),
        "{}",
        other.stderr
    );
}

#[tokio::test]
async fn backup_status_shows_the_last_complete_run_its_pitr_range_and_data_age() {
    let repo = TestRepo::new();
    let topic = repo.name("events");
    repo.namespace(
        "events",
        &format!(
            "  topics:\n    - name: {topic}\n      partitions: 3\n  disaster_recovery:\n    rpo: 1h\n    pitr:\n      window: 7d\n    backup:\n      bucket: {}\n      prefix: backups/\n      incremental: true\n",
            repo.bucket("backups")
        ),
    );
    ok(&repo.run(&["apply", "--auto-approve"]));
    let ns = repo.name("events");

    // No run yet: no figures, and compliance says there is no backup.
    let before = repo.run(&["status", "--format", "json"]);
    let b = &before.json()["backups"][0];
    assert_eq!(b["namespace"], ns.as_str(), "{b}");
    assert_eq!(b["last_run"], serde_json::Value::Null, "{b}");
    assert_eq!(b["data_age_s"], serde_json::Value::Null, "{b}");
    assert_eq!(before.code, 2, "{}", before.all_output());

    produce(&repo, &topic, 0..12);
    produce_closing(&repo, &topic, 12);
    ok(&repo.run(&["backup"]));
    let m = manifests(&repo, &ns).await.pop().unwrap();
    // A run that died after it: segments and no manifest, so not the last run.
    repo.s3()
        .put_object()
        .bucket(repo.bucket("backups"))
        .key(format!(
            "backups/{ns}/20991231T000000.000Z-1/{topic}/0/00000000000000000000.avro"
        ))
        .body(ByteStream::from_static(b"segment"))
        .send()
        .await
        .unwrap();

    let status = repo.run(&["status", "--format", "json"]);
    assert_eq!(status.code, 0, "{}", status.all_output());
    let json = status.json();
    let b = &json["backups"][0];
    assert_eq!(b["last_run"], m["run_id"], "{b}");
    assert_eq!(b["chain_runs"], 1, "{b}");
    assert_eq!(b["covered_from"], rfc3339(BASE).as_str(), "{b}");
    assert_eq!(
        b["covered_to"],
        rfc3339(m["started_at_ms"].as_i64().unwrap()).as_str(),
        "{b}"
    );
    assert_eq!(b["last_started_at"], b["covered_to"], "{b}");
    assert!(b["data_age_s"].as_u64().unwrap() < 60, "{b}");
    assert_eq!(b["rpo_s"], 3600, "{b}");
    assert_eq!(b["pitr_window_s"], 604_800, "{b}");
    // The records are a year old: the range reaches back past the window.
    assert_eq!(b["covers_window"], true, "{b}");
    assert_eq!(json["dr"][0]["violations"], serde_json::json!([]));

    let text = repo.run(&["status"]);
    assert!(
        text.stdout
            .contains("Backups (complete runs, from their manifests):")
            && text.stdout.contains(&format!(
                "(run `{}`, 1 in chain)",
                m["run_id"].as_str().unwrap()
            ))
            && text.stdout.contains("(rpo 1h)")
            && text.stdout.contains("covers the 7d window"),
        "{}",
        text.stdout
    );
}

/// `group`'s committed offsets on `topic`, by partition (none where it
/// committed nothing).
fn committed(repo: &TestRepo, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = kafka(repo).set("group.id", group).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(topic, p);
    }
    consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((e.partition(), o)),
            _ => None,
        })
        .collect()
}

/// A member of `group` subscribed to `topic`, once it is assigned every
/// partition.
fn member(repo: &TestRepo, group: &str, topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = kafka(repo)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // tansu takes about 20 s to form a group with the default 45 s
        // session timeout, 3 s with this one.
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while consumer.assignment().unwrap().count() < PARTITIONS as usize {
        assert!(
            Instant::now() < deadline,
            "{group} was not assigned {topic}"
        );
        if let Some(Err(e)) = consumer.poll(Duration::from_millis(200)) {
            panic!("{group} reading {topic}: {e}");
        }
    }
    consumer
}

/// Where each committed offset of `before` (by partition) should land in
/// `after`: at the first record at or after it in `before` that `after`
/// holds, or at `after`'s end when there is none.
fn landing(
    before: &BTreeMap<i32, Vec<Rec>>,
    after: &BTreeMap<i32, Vec<Rec>>,
    offsets: &BTreeMap<i32, i64>,
) -> BTreeMap<i32, i64> {
    offsets
        .iter()
        .map(|(p, c)| {
            let restored = after.get(p).map(Vec::as_slice).unwrap_or_default();
            let at = before[p][usize::try_from(*c).unwrap().min(before[p].len())..]
                .iter()
                .find_map(|r| restored.iter().position(|x| x == r))
                .unwrap_or(restored.len());
            (*p, i64::try_from(at).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn backup_restore_groups_sets_each_group_at_the_restored_record_it_had_committed() {
    let repo = TestRepo::new();
    let (ns, topic) = backed_up_namespace(&repo);
    let group = format!("{}-readers", repo.tag);
    // Per partition: records 0 to 23, two late ones whose timestamps are
    // after the time restored to below, records 24 to 44, and one closing
    // record (after that time too) in a batch of its own, so that the
    // backup covers every record (see `produce_closing`).
    produce(&repo, &topic, 0..24);
    produce_records(
        &repo,
        &topic,
        (0..6).map(|k| Rec {
            timestamp: BASE + 1_000_000 + k,
            ..record(100 + k)
        }),
    );
    produce(&repo, &topic, 24..45);
    produce_closing(&repo, &topic, 45);
    let before = read_back(&repo, &topic);
    let ends: Vec<i64> = (0..PARTITIONS)
        .map(|p| i64::try_from(before[&p].len()).unwrap())
        .collect();

    // A member of the group reads, commits mid-way (after the late records
    // on partition 0, before them on 1, everything on 2), and leaves.
    let reader = member(&repo, &group, &topic);
    let offsets: BTreeMap<i32, i64> = [(0, 12), (1, 4), (2, ends[2])].into();
    let mut commit = TopicPartitionList::new();
    for (p, o) in &offsets {
        commit
            .add_partition_offset(&topic, *p, Offset::Offset(*o))
            .unwrap();
    }
    reader
        .commit(&commit, rdkafka::consumer::CommitMode::Sync)
        .unwrap();
    drop(reader);
    assert_eq!(committed(&repo, &group, &topic), offsets);

    ok(&repo.run(&["backup"]));
    let runs = manifests(&repo, &ns).await;
    assert_eq!(
        runs[0]["consumer_groups"][0]["offsets"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    for (p, range) in runs[0]["topics"][0]["ranges"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        assert_eq!(
            range["end_offset"], ends[p],
            "the backup covers every record"
        );
    }

    // Deleted and restored whole: every record is back at its offset.
    delete_topic(&repo, &topic).await;
    // The broker dropped the group's offsets with the topic.
    assert!(committed(&repo, &group, &topic).is_empty());
    let restore = restore_confirmed(&repo, &ns, &["--groups"]);
    ok(&restore);
    let after = read_back(&repo, &topic);
    assert_eq!(after, before);
    assert!(
        restore
            .stdout
            .contains(&format!("group `{group}`, `{topic}` partition 0: 12 -> 12"))
            && restore.stdout.contains("consumer group(s)"),
        "{}",
        restore.stdout
    );
    assert_eq!(committed(&repo, &group, &topic), offsets);

    // Restored up to record 44: the late records and the closing ones are
    // left out, so the offsets after them move.
    let t = time_of(44);
    let pit = format!("{topic}.pit");
    let restore = restore_confirmed(
        &repo,
        &ns,
        &["--to-time", &t, "--into-suffix", ".pit", "--groups"],
    );
    ok(&restore);
    let restored = read_back(&repo, &pit);
    assert_eq!(restored, expected(0..45));
    let set = committed(&repo, &group, &pit);
    assert_eq!(
        set,
        landing(&before, &restored, &offsets),
        "{}",
        restore.stdout
    );
    // Each lands on the record it had committed (or at the end, for the
    // one committed past every restored record).
    assert_eq!(
        restored[&0][usize::try_from(set[&0]).unwrap()],
        before[&0][12]
    );
    assert_eq!(
        restored[&1][usize::try_from(set[&1]).unwrap()],
        before[&1][4]
    );
    assert_eq!(set[&2], i64::try_from(restored[&2].len()).unwrap());
    assert!(set[&0] < 12 && set[&2] < ends[2], "{set:?}");
    assert!(
        restore.stdout.contains(&format!(
            "group `{group}`, `{topic}` -> `{pit}` partition 0: 12 -> {}",
            set[&0]
        )),
        "{}",
        restore.stdout
    );

    // Without `--groups` the plan shows the translation and sets nothing.
    let shown = restore_confirmed(&repo, &ns, &["--to-time", &t, "--into-suffix", ".shown"]);
    ok(&shown);
    assert!(
        shown
            .stdout
            .contains("(not set: pass `--groups` to set them)")
            && shown.stdout.contains(&format!(
                "`{topic}` -> `{topic}.shown` partition 0: 12 -> {}",
                set[&0]
            )),
        "{}",
        shown.stdout
    );
    assert!(committed(&repo, &group, &format!("{topic}.shown")).is_empty());
    // `--resume --groups` over a complete restore writes nothing more and
    // sets the groups (what to do when setting them failed).
    let resumed = restore_confirmed(
        &repo,
        &ns,
        &[
            "--to-time",
            &t,
            "--into-suffix",
            ".shown",
            "--resume",
            "--groups",
        ],
    );
    ok(&resumed);
    assert!(
        resumed.stdout.contains("Restore complete: 0 record(s)"),
        "{}",
        resumed.stdout
    );
    assert_eq!(committed(&repo, &group, &format!("{topic}.shown")), set);

    // A group with a member is refused before anything is written.
    let busy = member(&repo, &group, &topic);
    let refused = restore_confirmed(&repo, &ns, &["--into-suffix", ".busy", "--groups"]);
    drop(busy);
    assert_eq!(refused.code, 1, "{}", refused.all_output());
    assert!(
        refused
            .stderr
            .contains(&format!("consumer group `{group}` has 1 active member(s)"))
            && refused.stderr.contains("nothing was written"),
        "{}",
        refused.stderr
    );
    assert!(!repo.has_topic("events.busy"), "nothing was created");

    // A group the namespace no longer declares is not set.
    edit_events(&repo, &format!("  consumers:\n    - group: {group}\n"), "");
    let undeclared = restore_confirmed(&repo, &ns, &["--into-suffix", ".undeclared", "--groups"]);
    ok(&undeclared);
    assert!(
        undeclared
            .stdout
            .contains("No consumer group offsets to set"),
        "{}",
        undeclared.stdout
    );
    assert!(committed(&repo, &group, &format!("{topic}.undeclared")).is_empty());
}

#[tokio::test]
async fn backup_restore_to_a_time_only_an_older_full_run_covers_reads_that_run() {
    let repo = TestRepo::new();
    let (ns, topic) = backed_up_namespace(&repo);
    edit_events(&repo, "incremental: true", "incremental: false");
    produce(&repo, &topic, 0..9);
    produce_closing(&repo, &topic, 9);
    ok(&repo.run(&["backup"]));
    // The topic is emptied (deleted and created again) and gets later
    // records: the second full run holds none of the first run's.
    delete_topic(&repo, &topic).await;
    ok(&repo.run(&["apply", "--auto-approve"]));
    produce(&repo, &topic, 100..109);
    produce_closing(&repo, &topic, 109);
    ok(&repo.run(&["backup"]));
    let runs = manifests(&repo, &ns).await;
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|m| m["kind"] == "full"), "{runs:#?}");

    // Record 5's time: only the first run holds records that old.
    let old = restore_confirmed(
        &repo,
        &ns,
        &["--to-time", &time_of(5), "--into-suffix", ".old"],
    );
    ok(&old);
    assert!(
        old.stdout.contains(&format!(
            "runs {} (covering",
            runs[0]["run_id"].as_str().unwrap()
        )),
        "{}",
        old.stdout
    );
    assert_eq!(read_back(&repo, &format!("{topic}.old")), expected(0..6));
    // Record 105's: the newest run.
    let new = restore_confirmed(
        &repo,
        &ns,
        &["--to-time", &time_of(105), "--into-suffix", ".new"],
    );
    ok(&new);
    assert_eq!(
        read_back(&repo, &format!("{topic}.new")),
        expected(100..106)
    );
    // Before record 0: neither run covers it, and the refusal says what
    // each covers.
    let none = restore_confirmed(
        &repo,
        &ns,
        &["--to-time", &time_of(-1), "--into-suffix", ".none"],
    );
    assert_eq!(none.code, 1, "{}", none.all_output());
    for m in &runs {
        assert!(
            none.stderr.contains(&format!(
                "the chain ending with run `{}` (1 run(s)) covers from",
                m["run_id"].as_str().unwrap()
            )),
            "{}",
            none.stderr
        );
    }
    assert!(!repo.has_topic("events.none"));
}
