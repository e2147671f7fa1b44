//! `sluice dr drill` against the real broker (tansu), S3 (moto) and etcd: a
//! drill of a backed-up namespace passes and is recorded; a corrupt segment
//! fails it, names the object, leaves no scratch topic behind, and is a DR
//! compliance violation until a drill passes again.

use std::time::Duration;

use crate::backup::{
    backed_up_namespace_with, corrupt_second_object, manifests, produce, produce_closing,
};
use crate::common::{Run, TestRepo};

fn ok(run: &Run) {
    assert_eq!(run.code, 0, "{}", run.all_output());
}

/// Every topic the broker lists whose name starts with `topic` and holds
/// `.drill-`: the scratch topics of drills of it.
pub(crate) fn scratch_topics(repo: &TestRepo, topic: &str) -> Vec<String> {
    repo.kafka_admin()
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap()
        .topics()
        .iter()
        .map(|t| t.name().to_owned())
        .filter(|n| n.starts_with(&format!("{topic}.drill-")))
        .collect()
}

/// A drill's output says it deleted its scratch topics of `topic`, and the
/// broker lists none.
fn assert_scratch_topics_deleted(repo: &TestRepo, out: &str, topic: &str) {
    assert!(
        out.contains(&format!("scratch topics deleted: {topic}.drill-")),
        "{out}"
    );
    assert_eq!(scratch_topics(repo, topic), Vec::<String>::new());
}

/// The drill record of `ns` in etcd, as JSON.
async fn drill_record(repo: &TestRepo, ns: &str) -> serde_json::Value {
    let mut etcd = etcd_client::Client::connect([repo.services().etcd.as_str()], None)
        .await
        .unwrap();
    let key = format!("{}drills/local/{ns}", repo.prefix());
    let got = etcd.get(key.as_str(), None).await.unwrap();
    let kv = got
        .kvs()
        .first()
        .unwrap_or_else(|| panic!("no `{key}` in etcd"));
    serde_json::from_slice(kv.value()).unwrap()
}

/// The message of the `drill` DR violation `drift` reports (exit 2) for
/// the one DR namespace.
fn drill_violation(repo: &TestRepo) -> String {
    let drift = repo.run(&["drift", "--format", "json"]);
    assert_eq!(drift.code, 2, "{}", drift.all_output());
    let violations = drift.json()["dr"][0]["violations"].clone();
    violations
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["check"] == "drill")
        .and_then(|v| v["message"].as_str())
        .unwrap_or_else(|| panic!("{violations}"))
        .to_owned()
}

/// Namespace `events` with an RTO and RPO, 153 records over three
/// partitions, backed up into small segments; its name and topic.
async fn drilled_namespace(repo: &TestRepo) -> (String, String) {
    backed_up_in_small_segments(repo, "    rto: 30m\n", 150)
}

/// Namespace `events` (with `extra` settings) holding `records` records and
/// three closing ones, backed up into 1 KiB segments; its name and topic.
fn backed_up_in_small_segments(repo: &TestRepo, extra: &str, records: i64) -> (String, String) {
    let (ns, topic) = backed_up_namespace_with(repo, extra);
    produce(repo, &topic, 0..records);
    produce_closing(repo, &topic, records);
    ok(&repo.run(&["backup", "--segment-size", "1KiB"]));
    (ns, topic)
}

#[tokio::test]
async fn drill_of_a_backed_up_namespace_passes_reports_its_rto_and_is_recorded() {
    let repo = TestRepo::new();
    let (ns, topic) = drilled_namespace(&repo).await;
    let runs = manifests(&repo, &ns).await;
    let run = runs[0]["run_id"].as_str().unwrap().to_owned();

    let drill = repo.run(&["dr", "drill", &ns]);
    ok(&drill);
    let out = &drill.stdout;
    assert!(
        out.contains(&format!("Drill of namespace `{ns}` from run {run}: PASSED")),
        "{out}"
    );
    assert!(
        out.contains("restored: 153 record(s)") && out.contains("counts match the manifests"),
        "{out}"
    );
    assert!(out.contains("target 30m"), "{out}");
    assert!(out.contains("RPO 1h"), "{out}");
    assert_scratch_topics_deleted(&repo, out, &topic);

    let record = drill_record(&repo, &ns).await;
    assert_eq!(record["passed"], true, "{record}");
    assert_eq!(record["run"], run.as_str(), "{record}");
    assert_eq!(record["records"], 153, "{record}");
    assert_eq!(record["rto_target_ms"], 1_800_000, "{record}");
    assert_eq!(record["rpo_ms"], 3_600_000, "{record}");
    assert_eq!(record["failure"], serde_json::Value::Null, "{record}");
    let rto = record["rto_ms"].as_u64().unwrap();
    assert!(rto > 0 && rto < 1_800_000, "{record}");

    let status = repo.run(&["status"]);
    assert!(
        status.stdout.contains("Last restore drills:")
            && status.stdout.contains(&format!("run `{run}`"))
            && status.stdout.contains("passed")
            && status.stdout.contains("(target 30m)"),
        "{}",
        status.all_output()
    );
    let json = repo.run(&["status", "--format", "json"]).json();
    assert_eq!(json["drills"][0]["namespace"], ns.as_str(), "{json}");
    assert_eq!(json["drills"][0]["rto_ms"], rto, "{json}");
    // A passed drill is no violation.
    let drift = repo.run(&["drift", "--format", "json"]).json();
    assert_eq!(
        drift["dr"][0]["violations"],
        serde_json::json!([]),
        "{drift}"
    );
}

#[tokio::test]
async fn drill_after_a_segment_is_corrupted_fails_naming_it_and_leaves_no_scratch_topic() {
    let repo = TestRepo::new();
    let (ns, topic) = drilled_namespace(&repo).await;
    // Partition 0's objects are written first; spoiling its second one
    // fails the drill once the scratch topic exists and holds records.
    let (bucket, key, _) = corrupt_second_object(&repo, &ns).await;

    let drill = repo.run(&["dr", "drill", &ns]);
    assert_eq!(drill.code, 1, "{}", drill.all_output());
    let out = &drill.stdout;
    assert!(out.contains(": FAILED"), "{out}");
    assert!(
        out.contains(&format!("object `s3://{bucket}/{key}` is corrupt")),
        "{out}"
    );
    assert!(
        out.contains("restored: not verified (1 scratch topic(s) created)")
            && out.contains("RTO: not reached: the restore failed after"),
        "{out}"
    );
    // The scratch topic was created and written to, then deleted.
    assert_scratch_topics_deleted(&repo, out, &topic);

    let record = drill_record(&repo, &ns).await;
    assert_eq!(record["passed"], false, "{record}");
    assert!(
        record["failure"].as_str().unwrap().contains(&key),
        "{record}"
    );

    // A failed last drill is a DR compliance violation, in drift and status.
    let message = drill_violation(&repo);
    assert!(message.contains("the last restore drill"), "{message}");
    let status = repo.run(&["status"]);
    assert_eq!(status.code, 2, "{}", status.all_output());
    assert!(status.stdout.contains("FAILED: "), "{}", status.stdout);
}

/// A drill record that does not parse (written by hand, or by a later
/// sluice) is one namespace's violation, not every plan's failure; the next
/// drill writes a new one.
#[tokio::test]
async fn an_unreadable_drill_record_is_a_violation_of_its_namespace_and_the_next_drill_replaces_it()
{
    let repo = TestRepo::new();
    let (ns, _topic) = drilled_namespace(&repo).await;
    let mut etcd = etcd_client::Client::connect([repo.services().etcd.as_str()], None)
        .await
        .unwrap();
    let key = format!("{}drills/local/{ns}", repo.prefix());
    etcd.put(key.as_str(), "{\"namespace\":", None)
        .await
        .unwrap();

    let message = drill_violation(&repo);
    assert!(
        message.contains(&format!("`{key}` in etcd cannot be read"))
            && message.contains(&format!("the next `sluice dr drill {ns}` writes a new one")),
        "{message}"
    );
    let status = repo.run(&["status"]);
    assert_eq!(status.code, 2, "{}", status.all_output());

    ok(&repo.run(&["dr", "drill", &ns]));
    assert_eq!(drill_record(&repo, &ns).await["passed"], true);
    let drift = repo.run(&["drift", "--format", "json"]);
    assert_eq!(drift.code, 0, "{}", drift.all_output());
}

/// Starts `dr drill NS` and sends it `signal` as soon as the broker shows a
/// partition of one of its scratch topics (of `topic`) holding records;
/// its output, and whether records were seen within 30 s.
fn signal_once_scratch_holds_records(
    repo: &TestRepo,
    ns: &str,
    topic: &str,
    signal: i32,
) -> (std::process::Output, bool) {
    let child = repo
        .sluice()
        .args(["dr", "drill", ns])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", &repo.services().kafka)
        .create()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let landed = loop {
        let landed = scratch_topics(repo, topic).first().is_some_and(|t| {
            rdkafka::consumer::Consumer::fetch_watermarks(&consumer, t, 0, Duration::from_secs(5))
                .is_ok_and(|(_, high)| high > 0)
        });
        if landed || std::time::Instant::now() > deadline {
            break landed;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    // A signal sent by the test itself: a bare machine may have no `kill` binary.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    (child.wait_with_output().unwrap(), landed)
}

/// A namespace of many small backup objects, which a drill writes one
/// after the other: its name and topic.
fn slowly_drilled_namespace(repo: &TestRepo) -> (String, String) {
    backed_up_in_small_segments(repo, "", 3000)
}

/// A drill killed outright cannot clean up: it listed its scratch topics
/// in etcd before creating them, and the next drill deletes them first.
#[tokio::test]
async fn the_scratch_topics_of_a_killed_drill_are_deleted_by_the_next_drill() {
    let repo = TestRepo::new();
    let (ns, topic) = slowly_drilled_namespace(&repo);
    let (out, landed) = signal_once_scratch_holds_records(&repo, &ns, &topic, libc::SIGKILL);
    assert!(landed, "no scratch record within 30 s: {out:?}");
    let left = scratch_topics(&repo, &topic);
    assert_eq!(
        left.len(),
        1,
        "the killed drill's scratch topic is still there"
    );

    // Its lock's lease outlives it by the TTL: the operator removes it.
    ok(&repo.run(&["unlock", "--force"]));
    let drill = repo.run(&["dr", "drill", &ns]);
    ok(&drill);
    assert!(
        drill.stdout.contains(&format!(
            "scratch topics an interrupted drill left, deleted first: {}",
            left[0]
        )),
        "{}",
        drill.stdout
    );
    assert_eq!(scratch_topics(&repo, &topic), Vec::<String>::new());
    // The list is gone with them: the drill after that cleans nothing.
    let again = repo.run(&["dr", "drill", &ns]);
    ok(&again);
    assert!(
        !again.stdout.contains("interrupted drill left"),
        "{}",
        again.stdout
    );
}

#[tokio::test]
async fn drill_interrupted_once_its_scratch_topic_holds_records_deletes_it_and_is_recorded_failed()
{
    let repo = TestRepo::new();
    let (ns, topic) = slowly_drilled_namespace(&repo);
    let (out, landed) = signal_once_scratch_holds_records(&repo, &ns, &topic, libc::SIGINT);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(landed, "no scratch record within 30 s: {stdout}{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains(": FAILED") && stdout.contains("restore stopped (interrupted)"),
        "{stdout}{stderr}"
    );
    assert_scratch_topics_deleted(&repo, &stdout, &topic);
    let record = drill_record(&repo, &ns).await;
    assert_eq!(record["passed"], false, "{record}");
    assert!(
        record["failure"].as_str().unwrap().contains("interrupted"),
        "{record}"
    );
}
