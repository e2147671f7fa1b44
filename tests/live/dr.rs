//! Disaster recovery against the real S3 server (moto), with Kafka and etcd:
//! buckets and their shared documents, drift, compliance, failed reads.

use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketVersioningStatus, ExpirationStatus, LifecycleExpiration,
    LifecycleRule, LifecycleRuleFilter, VersioningConfiguration,
};

use crate::common::{Run, TestRepo};

/// A bucket's lifecycle rules, as S3 answers them.
async fn lifecycle_rules(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<LifecycleRule> {
    s3.get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
        .unwrap()
        .rules()
        .to_vec()
}

/// A bucket's policy text, as S3 answers it.
async fn policy_text(s3: &aws_sdk_s3::Client, bucket: &str) -> String {
    let p = s3.get_bucket_policy().bucket(bucket).send().await.unwrap();
    p.policy().unwrap().to_owned()
}

fn ok(run: &Run) {
    assert_eq!(run.code, 0, "{}", run.all_output());
}

/// A workspace that declares the test's two buckets.
fn declare_buckets(repo: &TestRepo) {
    repo.workspace(&format!(
        "  disaster_recovery:\n    regions: [us-east-1, eu-west-1]\n    buckets:\n      {}:\n        region: us-east-1\n      {}:\n        region: eu-west-1\n",
        repo.bucket("backups"),
        repo.bucket("replica")
    ));
}

/// Namespace `dr` backing up to the test's bucket; `extra` goes under
/// `disaster_recovery` (replication, rpo, pitr).
fn dr_namespace(repo: &TestRepo, retain: &str, extra: &str) {
    repo.namespace(
        "dr",
        &format!(
            "  topics:\n    - name: {{tag}}-dr\n      partitions: 1\n  disaster_recovery:\n    backup:\n      bucket: {}\n      prefix: dr/\n      retain: {retain}\n{extra}",
            repo.bucket("backups")
        ),
    );
}

fn replicated(repo: &TestRepo, read_only: bool) -> String {
    format!(
        "    replication:\n      bucket: {}\n      region: eu-west-1\n      read_only: {read_only}\n    pitr:\n      window: 7d\n",
        repo.bucket("replica")
    )
}

#[tokio::test]
async fn apply_dr_then_plan_has_no_changes() {
    let repo = TestRepo::new();
    declare_buckets(&repo);
    dr_namespace(&repo, "30d", &replicated(&repo, true));
    ok(&repo.run(&["apply", "--auto-approve"]));
    let plan = repo.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.all_output());

    let s3 = repo.s3();
    let (backups, replica) = (repo.bucket("backups"), repo.bucket("replica"));
    let id = format!("sluice-{}", repo.name("dr"));
    for b in [&backups, &replica] {
        let v = s3.get_bucket_versioning().bucket(b).send().await.unwrap();
        assert_eq!(v.status(), Some(&BucketVersioningStatus::Enabled), "{b}");
        let tags = s3.get_bucket_tagging().bucket(b).send().await.unwrap();
        assert!(
            tags.tag_set()
                .iter()
                .any(|t| t.key() == "managed-by" && t.value() == "sluice")
        );
    }
    let lifecycle = lifecycle_rules(&s3, &backups).await;
    let rule = &lifecycle[0];
    assert_eq!(rule.id(), Some(id.as_str()));
    assert_eq!(rule.expiration().and_then(|e| e.days()), Some(30));
    let replication = s3
        .get_bucket_replication()
        .bucket(&backups)
        .send()
        .await
        .unwrap();
    let rules = replication.replication_configuration().unwrap().rules();
    assert_eq!(rules[0].id(), Some(id.as_str()));
    assert!(policy_text(&s3, &replica).await.contains(&id));
}

#[tokio::test]
async fn foreign_rules_and_statements_survive_an_apply_byte_for_byte() {
    let repo = TestRepo::new();
    declare_buckets(&repo);
    dr_namespace(&repo, "30d", &replicated(&repo, true));
    ok(&repo.run(&["apply", "--auto-approve"]));
    let s3 = repo.s3();
    let (backups, replica) = (repo.bucket("backups"), repo.bucket("replica"));

    // Another tool's lifecycle rule beside sluice's.
    let theirs = LifecycleRule::builder()
        .id("their-tmp-expiry")
        .filter(LifecycleRuleFilter::builder().prefix("tmp/").build())
        .status(ExpirationStatus::Enabled)
        .expiration(LifecycleExpiration::builder().days(1).build())
        .build()
        .unwrap();
    let mut rules = lifecycle_rules(&s3, &backups).await;
    rules.insert(0, theirs.clone());
    s3.put_bucket_lifecycle_configuration()
        .bucket(&backups)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .set_rules(Some(rules))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    // And a foreign policy statement, written with its own spacing.
    let foreign = r#"{ "Sid": "AuditorsRead",  "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:role/auditor"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::BUCKET/*" }"#
        .replace("BUCKET", &replica);
    let current = policy_text(&s3, &replica).await;
    let statements = current
        .split_once("\"Statement\":[")
        .unwrap()
        .1
        .trim_end_matches('}')
        .trim_end_matches(']');
    let with_foreign =
        format!(r#"{{"Version":"2012-10-17","Statement":[{foreign},{statements}]}}"#);
    s3.put_bucket_policy()
        .bucket(&replica)
        .policy(&with_foreign)
        .send()
        .await
        .unwrap();

    // sluice changes its own rule and drops its own statement.
    dr_namespace(&repo, "60d", &replicated(&repo, false));
    ok(&repo.run(&["apply", "--auto-approve", "--allow-delete"]));

    let rules = lifecycle_rules(&s3, &backups).await;
    assert!(rules.contains(&theirs), "{rules:#?}");
    let ours = rules
        .iter()
        .find(|r| r.id() == Some(&format!("sluice-{}", repo.name("dr"))))
        .unwrap();
    assert_eq!(ours.expiration().and_then(|e| e.days()), Some(60));
    let policy = policy_text(&s3, &replica).await;
    assert!(policy.contains(&foreign), "{policy}");
    assert!(!policy.contains("sluice-"), "{policy}");
    let plan = repo.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.all_output());
}

#[tokio::test]
async fn versioning_suspended_out_of_band_is_drift_and_apply_restores_it() {
    let repo = TestRepo::new();
    declare_buckets(&repo);
    dr_namespace(&repo, "30d", "");
    ok(&repo.run(&["apply", "--auto-approve"]));
    let s3 = repo.s3();
    let backups = repo.bucket("backups");
    s3.put_bucket_versioning()
        .bucket(&backups)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let drift = repo.run(&["drift"]);
    assert_eq!(drift.code, 2, "{}", drift.all_output());
    assert!(
        drift
            .stdout
            .contains(&format!("~ s3.bucket/{backups}  (drift)")),
        "{}",
        drift.stdout
    );
    assert!(
        drift.stdout.contains("versioning:  false → true"),
        "{}",
        drift.stdout
    );
    ok(&repo.run(&["apply", "--auto-approve"]));
    let v = s3
        .get_bucket_versioning()
        .bucket(&backups)
        .send()
        .await
        .unwrap();
    assert_eq!(v.status(), Some(&BucketVersioningStatus::Enabled));
    ok(&repo.run(&["drift"]));
}

/// The key of run `run`'s manifest for namespace `dr`, under prefix `dr/`,
/// the run started `ago` before now (sluice's run ID layout).
fn manifest_key(repo: &TestRepo, ago: Duration) -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .saturating_sub(ago)
        .as_millis();
    let run = sluice::backup::manifest::run_id(i64::try_from(ms).unwrap(), 1);
    sluice::backup::manifest::manifest_key(&format!("dr/{}/", repo.name("dr")), &run)
}

/// A DR namespace with an RPO of an hour, applied, and its backups bucket.
struct Backups {
    repo: TestRepo,
    s3: aws_sdk_s3::Client,
    bucket: String,
}

impl Backups {
    fn applied() -> Backups {
        let repo = TestRepo::new();
        declare_buckets(&repo);
        dr_namespace(&repo, "30d", "    rpo: 1h\n");
        ok(&repo.run(&["apply", "--auto-approve"]));
        let (s3, bucket) = (repo.s3(), repo.bucket("backups"));
        Backups { repo, s3, bucket }
    }

    /// Puts a small object at `key`.
    async fn put(&self, key: String) {
        self.s3
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from_static(b"{}"))
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_backup_older_than_the_rpo_is_a_violation_and_a_fresh_one_clears_it() {
    let backups = Backups::applied();
    let (repo, put) = (&backups.repo, |key| backups.put(key));
    // A complete run that started two hours ago.
    put(manifest_key(repo, Duration::from_secs(7200))).await;
    // A run that died just now: its segments, no manifest. It is no backup.
    let dir = format!("dr/{}/", repo.name("dr"));
    put(format!(
        "{dir}20991231T000000.000Z-1/t/0/00000000000000000000.avro"
    ))
    .await;
    put(format!("{dir}{}", "loose-object.tar")).await;

    let drift = repo.run(&["drift", "--format", "json"]);
    assert_eq!(drift.code, 2, "{}", drift.all_output());
    let report = &drift.json()["dr"][0];
    assert_eq!(report["violations"][0]["check"], "backup-age", "{report}");
    let age = report["backup_age_s"].as_u64().unwrap();
    assert!((7200..7300).contains(&age), "{report}");
    let text = repo.run(&["drift"]);
    assert!(
        text.stdout.contains("older than the RPO of 1h"),
        "{}",
        text.stdout
    );
    // The summary names what the exit code 2 is for.
    assert_eq!(text.code, 2);
    assert!(
        !text.stdout.contains("No drift: the live state matches")
            && text.stdout.contains("1 DR compliance violation(s)"),
        "{}",
        text.stdout
    );

    put(manifest_key(repo, Duration::ZERO)).await;
    let drift = repo.run(&["drift", "--format", "json"]);
    assert_eq!(drift.code, 0, "{}", drift.all_output());
    assert_eq!(drift.json()["dr"][0]["violations"], serde_json::json!([]));
    assert!(drift.json()["dr"][0]["backup_age_s"].as_u64().unwrap() < 60);
}

#[tokio::test]
async fn a_backup_history_longer_than_two_listing_pages_is_read_by_its_runs() {
    use futures_util::StreamExt;
    let backups = Backups::applied();
    let (repo, put) = (&backups.repo, |key| backups.put(key));
    // A run of two hours ago with 2,100 segments: more than two pages of
    // 1,000 keys, so sluice reads this directory by its runs. Then the
    // complete run of ten minutes ago, and one of a minute ago that died
    // before its manifest.
    let two_hours = manifest_key(repo, Duration::from_secs(7200));
    let old_run = two_hours.strip_suffix("manifest.json").unwrap().to_owned();
    futures_util::stream::iter((0..2100).map(|n| put(format!("{old_run}t/0/{n:020}.avro"))))
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    put(two_hours).await;
    put(manifest_key(repo, Duration::from_secs(600))).await;
    let died = manifest_key(repo, Duration::from_secs(60));
    put(died.replace("manifest.json", "t/0/00000000000000000000.avro")).await;

    let drift = repo.run(&["drift", "--format", "json"]);
    assert_eq!(drift.code, 0, "{}", drift.all_output());
    let report = &drift.json()["dr"][0];
    assert_eq!(report["violations"], serde_json::json!([]), "{report}");
    // The run of ten minutes ago: not the one that died, not the older one.
    let age = report["backup_age_s"].as_u64().unwrap();
    assert!((600..900).contains(&age), "{report}");
}

#[tokio::test]
async fn segments_without_a_manifest_are_no_backup() {
    let repo = TestRepo::new();
    declare_buckets(&repo);
    dr_namespace(&repo, "30d", "    rpo: 1h\n");
    ok(&repo.run(&["apply", "--auto-approve"]));
    let dir = format!("dr/{}/", repo.name("dr"));
    repo.s3()
        .put_object()
        .bucket(repo.bucket("backups"))
        .key(format!(
            "{dir}20261207T000000.000Z-1/t/0/00000000000000000000.avro"
        ))
        .body(ByteStream::from_static(b"segment"))
        .send()
        .await
        .unwrap();
    let drift = repo.run(&["drift", "--format", "json"]);
    assert_eq!(drift.code, 2, "{}", drift.all_output());
    let report = &drift.json()["dr"][0];
    assert_eq!(report["backup_age_s"], serde_json::Value::Null, "{report}");
    assert!(
        report["violations"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("no complete backup"),
        "{report}"
    );
}

#[test]
fn with_s3_stopped_plan_fails_and_plans_no_deletes() {
    let repo = TestRepo::new();
    declare_buckets(&repo);
    dr_namespace(&repo, "30d", &replicated(&repo, true));
    ok(&repo.run(&["apply", "--auto-approve"]));
    let down = crate::servers::closed_port();
    let plan = crate::common::run(
        repo.sluice()
            .env("SLUICE_S3_ENDPOINT", format!("http://{down}"))
            .args(["plan", "--detailed-exitcode"]),
    );
    assert_eq!(plan.code, 1, "{}", plan.all_output());
    assert!(plan.stderr.contains("cannot read S3"), "{}", plan.stderr);
    assert!(!plan.stdout.contains("to delete"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("- s3."), "{}", plan.stdout);
}

#[test]
fn a_missing_replication_target_is_blocked_with_file_and_line() {
    let repo = TestRepo::new();
    // No bucket catalog: the replica is not sluice's to create.
    dr_namespace(&repo, "30d", &replicated(&repo, false));
    let plan = repo.run(&["plan"]);
    assert_eq!(plan.code, 1, "{}", plan.all_output());
    let blocked = format!(
        "! s3.replication/{}/sluice-{}  namespaces/dr.yaml:",
        repo.bucket("backups"),
        repo.name("dr")
    );
    assert!(plan.stdout.contains(&blocked), "{}", plan.stdout);
    assert!(
        plan.stdout.contains(&format!(
            "bucket `{}` does not exist and is not declared",
            repo.bucket("replica")
        )),
        "{}",
        plan.stdout
    );
    let apply = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 1, "{}", apply.all_output());
}

#[test]
fn dr_report_shows_targets_backup_age_coverage_and_replication() {
    let repo = TestRepo::new();
    declare_buckets(&repo);
    let replication = format!(
        "    rpo: 1h\n    rto: 4h\n    replication:\n      bucket: {}\n      region: eu-west-1\n      read_only: true\n",
        repo.bucket("replica")
    );
    dr_namespace(&repo, "30d", &replication);
    ok(&repo.run(&["apply", "--auto-approve"]));
    let ns = repo.name("dr");
    let row = |run: &Run| -> serde_json::Value {
        let envs = run.json();
        assert_eq!(envs.as_array().unwrap().len(), 1, "{envs}");
        assert_eq!(envs[0]["environment"], "local", "{envs}");
        envs[0]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["namespace"] == ns.as_str())
            .cloned()
            .unwrap_or_else(|| panic!("no row for {ns}: {envs}"))
    };

    // No backup yet: the targets, the violation, exit 2.
    let before = repo.run(&["dr", "report", "--format", "json"]);
    assert_eq!(before.code, 2, "{}", before.all_output());
    let r = row(&before);
    assert_eq!(r["tier"], "standard", "{r}");
    assert_eq!(
        (r["rpo_s"].as_u64(), r["rto_s"].as_u64()),
        (Some(3600), Some(14400)),
        "{r}"
    );
    assert_eq!(r["replication"], "ok", "{r}");
    assert_eq!(r["backup"]["last_run"], serde_json::Value::Null, "{r}");
    assert!(
        r["violations"][0]
            .as_str()
            .unwrap()
            .starts_with("no complete backup"),
        "{r}"
    );
    assert_eq!(r["compliant"], false, "{r}");

    // A real backup: its age, no violation, every target met, exit 0.
    ok(&repo.run(&["backup"]));
    let after = repo.run(&["dr", "report", "--format", "json"]);
    assert_eq!(after.code, 0, "{}", after.all_output());
    let r = row(&after);
    assert!(r["backup"]["data_age_s"].as_u64().unwrap() < 60, "{r}");
    assert_eq!(r["violations"], serde_json::json!([]), "{r}");
    assert_eq!(r["compliant"], true, "{r}");
    let md = repo.run(&["dr", "report"]);
    assert_eq!(md.code, 0, "{}", md.all_output());
    assert!(
        md.stdout.contains("## Environment `local`"),
        "{}",
        md.stdout
    );
    assert!(
        md.stdout
            .contains(&format!("| `{ns}` | standard | 1h | 4h | ")),
        "{}",
        md.stdout
    );
    assert!(md.stdout.contains("| never | ok | yes |"), "{}", md.stdout);

    // A drill: its day, pass and measured RTO in the row.
    ok(&repo.run(&["dr", "drill", &ns]));
    let drilled = repo.run(&["dr", "report", "--format", "json"]);
    assert_eq!(drilled.code, 0, "{}", drilled.all_output());
    let r = row(&drilled);
    assert_eq!(r["last_drill"]["passed"], true, "{r}");
    assert!(r["last_drill"]["rto_ms"].as_u64().is_some(), "{r}");
    let md = repo.run(&["dr", "report"]);
    assert!(md.stdout.contains(", passed, RTO "), "{}", md.stdout);

    // The replication rule removed out of band: failing, named, exit 2.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(
        repo.s3()
            .delete_bucket_replication()
            .bucket(repo.bucket("backups"))
            .send(),
    )
    .unwrap();
    let broken = repo.run(&["dr", "report", "--format", "json"]);
    assert_eq!(broken.code, 2, "{}", broken.all_output());
    let r = row(&broken);
    assert_eq!(r["replication"], "failing", "{r}");
    assert!(
        r["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v.as_str().unwrap().contains("replication rule")),
        "{r}"
    );

    // S3 gone: the rows and targets still, every figure unknown, exit 1.
    let down = crate::servers::closed_port();
    let unread = crate::common::run(
        repo.sluice()
            .env("SLUICE_S3_ENDPOINT", format!("http://{down}"))
            .args(["dr", "report"]),
    );
    assert_eq!(unread.code, 1, "{}", unread.all_output());
    assert!(
        unread.stdout.contains("**Figures incomplete:**"),
        "{}",
        unread.stdout
    );
    assert!(
        unread.stdout.contains(&format!(
            "| `{ns}` | standard | 1h | 4h | unknown | unknown | unknown | unknown |"
        )),
        "{}",
        unread.stdout
    );
}
