//! `sluice snapshot` against the real servers: the preflight before the
//! first snapshot, a missing bucket, object lock, `status`, and the
//! recovery the README documents: snapshot, wipe etcd, `etcdctl snapshot
//! restore` into a new data directory, start etcd on it, and plan clean.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::backup::manifests_under;
use crate::common::TestRepo;
use crate::proxy::{Mode, Proxy};
use crate::watch::free_port;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `state_backup` under the test's `local` environment.
fn state_backup(bucket: &str, extra: &str) -> String {
    format!("      state_backup:\n        bucket: {bucket}\n        prefix: snaps/\n{extra}")
}

async fn create_bucket(repo: &TestRepo, bucket: &str, lock: bool) {
    repo.s3()
        .create_bucket()
        .bucket(bucket)
        .object_lock_enabled_for_bucket(lock)
        .send()
        .await
        .unwrap();
}

/// A test repository whose workspace snapshots etcd into a new bucket
/// (without object lock); the bucket's name.
fn snapshotting_repo() -> (TestRepo, String) {
    let repo = TestRepo::new();
    let bucket = repo.bucket("state");
    rt().block_on(create_bucket(&repo, &bucket, false));
    repo.workspace(&state_backup(&bucket, ""));
    (repo, bucket)
}

async fn keys(repo: &TestRepo, bucket: &str) -> Vec<String> {
    let listed = repo
        .s3()
        .list_objects_v2()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

async fn object(repo: &TestRepo, bucket: &str, key: &str) -> Vec<u8> {
    let got = repo
        .s3()
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    got.body.collect().await.unwrap().into_bytes().to_vec()
}

/// An etcd of the test's own, on free ports; killed when dropped.
struct Etcd {
    child: Child,
    client: u16,
}

impl Etcd {
    /// Starts etcd on `data` (as scripts/services.sh does) and waits until
    /// it answers `/health`.
    fn start(data: &Path, client: u16, peer: u16) -> Etcd {
        let child = Command::new("etcd")
            .args(["--name", "snap", "--data-dir"])
            .arg(data)
            .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
            ))
            .arg(format!("--initial-cluster=snap=http://127.0.0.1:{peer}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd is installed by scripts/services.sh install");
        let etcd = Etcd { child, client };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            let up = Command::new("curl")
                .args(["-sf", "--max-time", "1"])
                .arg(format!("{}/health", etcd.endpoint()))
                .output()
                .is_ok_and(|o| o.status.success());
            if up {
                return etcd;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("etcd on {} did not become healthy", etcd.endpoint());
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }

    fn stop(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn etcdctl(&self, args: &[&str], stdin: Option<&[u8]>) -> String {
        etcdctl(&[&["--endpoints", &self.endpoint()], args].concat(), stdin)
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn etcdctl(args: &[&str], stdin: Option<&[u8]>) -> String {
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl is installed by scripts/services.sh install");
    {
        use std::io::Write;
        let mut input = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            input.write_all(bytes).unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "etcdctl {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// 10 MiB under `/bulk/`: the snapshot takes more than one 8 MiB part, so
/// it goes up as a multipart upload.
fn fill(etcd: &Etcd) {
    let mib = vec![b'x'; 1024 * 1024];
    for i in 0..10 {
        etcd.etcdctl(&["put", &format!("/bulk/{i}")], Some(&mib));
    }
}

#[test]
fn a_snapshot_cut_during_its_upload_writes_no_manifest_and_the_next_one_completes() {
    let (repo, bucket) = snapshotting_repo();
    let dir = tempfile::tempdir().unwrap();
    let etcd = Etcd::start(&dir.path().join("data"), free_port(), free_port());
    fill(&etcd);
    let s3 = Proxy::start(&repo.services().s3);
    // S3 goes away as the second part is sent.
    let second = s3.when_sent("partNumber=2", Mode::Reset);
    let cut = crate::common::run(
        repo.sluice()
            .env("SLUICE_ETCD_ENDPOINTS", etcd.endpoint())
            .env("SLUICE_S3_ENDPOINT", s3.url())
            .args(["snapshot", "--timeout", "2s"]),
    );
    second
        .recv_timeout(Duration::from_secs(30))
        .expect("the second part was sent");
    assert_eq!(cut.code, 1, "{}", cut.all_output());
    assert!(
        cut.stderr.contains("writing the snapshot to `s3://") && cut.stderr.contains("UploadPart"),
        "{}",
        cut.stderr
    );
    let listed = rt().block_on(keys(&repo, &bucket));
    assert!(
        !listed.iter().any(|k| k.ends_with("/manifest.json")),
        "no manifest after a cut upload: {listed:?}"
    );
    let status = repo.run(&["status", "--format", "json"]);
    assert_eq!(status.json()["state_snapshot"]["state"], "never_succeeded");

    let next = crate::common::run(
        repo.sluice()
            .env("SLUICE_ETCD_ENDPOINTS", etcd.endpoint())
            .arg("snapshot"),
    );
    assert_eq!(next.code, 0, "{}", next.all_output());
    let manifests = rt().block_on(manifests_under(&repo, &bucket, "snaps/"));
    assert_eq!(manifests.len(), 1, "{manifests:?}");
    let m = &manifests[0];
    let bytes = rt().block_on(object(&repo, &bucket, m["object"].as_str().unwrap()));
    assert_eq!(
        m["sha256"].as_str(),
        Some(hex(&Sha256::digest(&bytes)).as_str())
    );
}

#[test]
fn a_snapshot_restored_with_etcdctl_into_a_new_data_directory_plans_clean() {
    let (repo, bucket) = snapshotting_repo();
    repo.namespace(
        "orders",
        "  topics:\n    - name: {tag}-orders\n      partitions: 1\n  access:\n    - service: billing\n      permissions: [read]\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (free_port(), free_port());
    let etcd = Etcd::start(&dir.path().join("data"), client, peer);
    let endpoint = etcd.endpoint();
    let sluice = |args: &[&str]| {
        crate::common::run(
            repo.sluice()
                .env("SLUICE_ETCD_ENDPOINTS", &endpoint)
                .args(args),
        )
    };
    fill(&etcd);
    let applied = sluice(&["apply", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}", applied.all_output());
    let clean = sluice(&["plan", "--detailed-exitcode"]);
    assert_eq!(clean.code, 0, "{}", clean.all_output());

    let snap = sluice(&["snapshot"]);
    assert_eq!(snap.code, 0, "{}", snap.all_output());
    assert!(snap.stdout.contains("revision"), "{}", snap.stdout);
    let manifests = rt().block_on(manifests_under(&repo, &bucket, "snaps/"));
    assert_eq!(manifests.len(), 1, "{manifests:?}");
    let m = &manifests[0];
    let key = m["object"].as_str().unwrap().to_owned();
    let bytes = rt().block_on(object(&repo, &bucket, &key));
    assert_eq!(m["size"].as_u64(), Some(bytes.len() as u64));
    assert!(bytes.len() > 10 * 1024 * 1024, "{}", bytes.len());
    assert_eq!(
        m["sha256"].as_str(),
        Some(hex(&Sha256::digest(&bytes)).as_str())
    );
    assert!(m["etcd_version"].as_str().unwrap().starts_with("3."), "{m}");
    assert!(m["revision"].as_i64().unwrap() > 10, "{m}");
    let head = rt().block_on(async {
        repo.s3()
            .head_object()
            .bucket(&bucket)
            .key(&key)
            .send()
            .await
            .unwrap()
    });
    // A multipart object's ETag names its part count: one per 8 MiB.
    let parts = bytes.len().div_ceil(8 * 1024 * 1024);
    assert!(parts > 1);
    assert!(
        head.e_tag()
            .unwrap_or_default()
            .ends_with(&format!("-{parts}\"")),
        "{head:?}"
    );
    let file = dir.path().join("snapshot.db");
    std::fs::write(&file, &bytes).unwrap();

    // Wipe etcd: a new, empty one on the same address plans everything again.
    etcd.stop();
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    let empty = Etcd::start(&dir.path().join("data"), client, peer);
    let lost = sluice(&["plan", "--detailed-exitcode"]);
    assert_eq!(lost.code, 2, "{}", lost.all_output());
    empty.stop();

    // Restore into a new data directory, as the README says, and start on it.
    let restored = dir.path().join("restored");
    etcdctl(
        &[
            "snapshot",
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            restored.to_str().unwrap(),
            "--name",
            "snap",
            "--initial-cluster",
            &format!("snap=http://127.0.0.1:{peer}"),
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{peer}"),
        ],
        None,
    );
    let back = Etcd::start(&restored, client, peer);
    let plan = sluice(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "{}", plan.all_output());
    let bulk = back.etcdctl(&["get", "/bulk/", "--prefix", "--keys-only"], None);
    assert_eq!(
        bulk.lines().filter(|l| l.starts_with("/bulk/")).count(),
        10,
        "{bulk}"
    );
    back.stop();
}

#[test]
fn the_first_snapshot_probes_its_prefix_a_missing_bucket_is_named_and_status_follows() {
    let repo = TestRepo::new();
    let bucket = repo.bucket("state");
    repo.workspace(&state_backup(&bucket, "        stale_after: 1h\n"));

    let missing = repo.run(&["snapshot"]);
    assert_eq!(missing.code, 1, "{}", missing.all_output());
    let err = missing.all_output();
    assert!(
        err.contains(&format!("bucket `{bucket}` does not exist"))
            && err.contains(&format!("s3://{bucket}/snaps/"))
            && err.contains("create the bucket"),
        "{err}"
    );

    rt().block_on(create_bucket(&repo, &bucket, false));
    let never = repo.run(&["status", "--format", "json"]);
    assert_eq!(never.code, 2, "{}", never.all_output());
    assert_eq!(never.json()["state_snapshot"]["state"], "never_succeeded");
    let text = repo.run(&["status"]);
    assert!(text.stdout.contains("NEVER SUCCEEDED"), "{}", text.stdout);

    let first = repo.run(&["snapshot"]);
    assert_eq!(first.code, 0, "{}", first.all_output());
    assert!(
        first
            .stderr
            .contains("Preflight: wrote and deleted a probe object"),
        "{}",
        first.stderr
    );
    let listed = rt().block_on(keys(&repo, &bucket));
    assert_eq!(listed.len(), 2, "no probe left behind: {listed:?}");
    assert!(
        listed.iter().any(|k| k.ends_with("/snapshot.db")),
        "{listed:?}"
    );
    assert!(
        listed.iter().any(|k| k.ends_with("/manifest.json")),
        "{listed:?}"
    );
    let second = repo.run(&["snapshot"]);
    assert_eq!(second.code, 0, "{}", second.all_output());
    assert!(!second.stderr.contains("Preflight"), "{}", second.stderr);

    let status = repo.run(&["status", "--format", "json"]);
    let s = &status.json()["state_snapshot"];
    assert_eq!(s["state"], "ok", "{s}");
    assert_eq!(s["stale_after_s"], 3600, "{s}");
    let newest = rt().block_on(manifests_under(&repo, &bucket, "snaps/"));
    assert_eq!(newest.len(), 2);
    assert_eq!(s["last_snapshot"], newest[1]["snapshot_id"], "{s}");
    assert_eq!(s["revision"], newest[1]["revision"], "{s}");
    let text = repo.run(&["status"]);
    assert!(
        text.stdout.contains("etcd snapshots (s3://"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("ok (stale after 1h)"),
        "{}",
        text.stdout
    );
}

#[test]
fn a_probe_s3_refuses_fails_the_first_snapshot_at_once_naming_bucket_and_prefix() {
    let (repo, bucket) = snapshotting_repo();
    let s3 = Proxy::start(&repo.services().s3);
    let probe = s3.when_sent(".sluice-preflight-probe", Mode::Reset);
    let refused = crate::common::run(repo.sluice().env("SLUICE_S3_ENDPOINT", s3.url()).args([
        "snapshot",
        "--timeout",
        "2s",
    ]));
    probe
        .recv_timeout(Duration::from_secs(30))
        .expect("the probe was sent");
    assert_eq!(refused.code, 1, "{}", refused.all_output());
    assert!(
        refused.stderr.contains(&format!(
            "preflight: sluice cannot write to `s3://{bucket}/snaps/`"
        )) && refused.stderr.contains("s3:PutObject"),
        "{}",
        refused.stderr
    );
    // Found before any snapshot was taken or written.
    assert_eq!(rt().block_on(keys(&repo, &bucket)), Vec::<String>::new());
}

#[test]
fn snapshots_into_an_object_lock_bucket_are_retained_as_declared() {
    let repo = TestRepo::new();
    let lock = "        object_lock:\n          mode: governance\n          days: 1\n";
    // A bucket without object lock cannot keep that promise: refused, nothing written.
    let plain = repo.bucket("plain");
    rt().block_on(create_bucket(&repo, &plain, false));
    repo.workspace(&state_backup(&plain, lock));
    let refused = repo.run(&["snapshot"]);
    assert_eq!(refused.code, 1, "{}", refused.all_output());
    assert!(
        refused.stderr.contains(&format!(
            "bucket `{plain}` does not have object lock enabled"
        )),
        "{}",
        refused.stderr
    );
    assert_eq!(rt().block_on(keys(&repo, &plain)), Vec::<String>::new());

    let bucket = repo.bucket("locked");
    rt().block_on(create_bucket(&repo, &bucket, true));
    repo.workspace(&state_backup(&bucket, lock));
    let snap = repo.run(&["snapshot"]);
    assert_eq!(snap.code, 0, "{}", snap.all_output());
    let m = &rt().block_on(manifests_under(&repo, &bucket, "snaps/"))[0];
    let head = rt().block_on(async {
        repo.s3()
            .head_object()
            .bucket(&bucket)
            .key(m["object"].as_str().unwrap())
            .send()
            .await
            .unwrap()
    });
    assert_eq!(
        head.object_lock_mode().map(|m| m.as_str()),
        Some("GOVERNANCE"),
        "{head:?}"
    );
    let until = head.object_lock_retain_until_date().unwrap().secs();
    let started = m["started_at_ms"].as_i64().unwrap() / 1000;
    assert!(
        (until - started - 86_400).abs() <= 1,
        "{until} vs {started}"
    );
    assert!(m["retained_until"].is_string(), "{m}");
}
