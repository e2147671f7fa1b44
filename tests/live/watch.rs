//! `sluice watch` against the real servers and a real local Git repository:
//! metrics of pending changes and drift, remediation, leader election, a
//! blocked change reported once per commit, and SIGTERM.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use git2::Repository;

use crate::common::{TestRepo, commit_all};

const INTERVAL: Duration = Duration::from_secs(1);

/// A free loopback port (a watcher's listen address, a test's own etcd).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `sluice watch`; killed when dropped.
struct Watcher {
    child: Child,
    port: u16,
}

impl Watcher {
    fn start(repo: &TestRepo, args: &[&str]) -> Watcher {
        let port = free_port();
        let child = repo
            .sluice()
            .args(["watch", "--interval", "1s", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .env("SLUICE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Watcher { child, port }
    }

    /// `GET path`, or `None` while it does not answer.
    fn get(&self, path: &str) -> Option<String> {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "2"])
            .arg(format!("http://127.0.0.1:{}{path}", self.port))
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The value of the first sample whose line starts with `series`.
    fn metric(&self, series: &str) -> Option<f64> {
        let text = self.get("/metrics")?;
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// Waits until `check` holds, up to `within`; panics with what it saw.
    fn wait_until(&self, within: Duration, what: &str, check: impl Fn(&Watcher) -> bool) {
        let start = Instant::now();
        while start.elapsed() < within {
            if check(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "{what}: not within {within:?}; metrics:\n{}",
            self.get("/metrics").unwrap_or_default()
        );
    }

    /// Stops it with SIGTERM; its exit code, how long it took, and its logs.
    fn terminate(mut self) -> (Option<i32>, Duration, String) {
        let start = Instant::now();
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break Some(s);
            }
            if start.elapsed() > Duration::from_secs(20) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let took = start.elapsed();
        let mut logs = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut logs);
        }
        (status.and_then(|s| s.code()), took, logs)
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn series(name: &str, repo: &TestRepo, short: &str, kind: &str) -> String {
    format!(
        "sluice_{name}{{environment=\"local\",namespace=\"{}\",kind=\"{kind}\"}}",
        repo.name(short)
    )
}

fn topic_spec(topics: &[&str]) -> String {
    let mut spec = String::from("  topics:\n");
    for t in topics {
        spec.push_str(&format!("    - name: {{tag}}-{t}\n      partitions: 1\n"));
    }
    spec
}

fn branch(git: &Repository) -> String {
    git.head().unwrap().shorthand().unwrap().to_owned()
}

#[test]
fn a_commit_shows_as_a_pending_change_within_two_intervals() {
    let repo = TestRepo::new();
    let git = Repository::init(repo.dir.path()).unwrap();
    repo.namespace("events", &topic_spec(&["events"]));
    commit_all(&git, "events");
    let applied = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}", applied.all_output());

    let dir = repo.dir.path().to_str().unwrap().to_owned();
    let w = Watcher::start(&repo, &["--git", &dir, "--branch", &branch(&git)]);
    w.wait_until(Duration::from_secs(20), "a first successful cycle", |w| {
        w.metric("sluice_reconciles_total{environment=\"local\",result=\"success\"}")
            .is_some_and(|n| n >= 1.0)
    });
    assert_eq!(w.get("/readyz").as_deref(), Some("ready\n"));
    assert_eq!(w.get("/healthz").as_deref(), Some("ok\n"));

    repo.namespace("events", &topic_spec(&["events", "audit"]));
    let commit = commit_all(&git, "add a topic").to_string();
    let pending = series("pending_changes", &repo, "events", "kafka.topic");
    let started = Instant::now();
    w.wait_until(
        INTERVAL * 2 + Duration::from_secs(3),
        "the pending topic",
        |w| w.metric(&pending) == Some(1.0),
    );
    eprintln!("pending change seen after {:?}", started.elapsed());
    let metrics = w.get("/metrics").unwrap();
    assert!(
        metrics.contains(&format!("commit=\"{commit}\"")),
        "{metrics}"
    );
    assert!(
        metrics.contains("sluice_leader{environment=\"local\"} 1"),
        "without --ha a watcher always leads:\n{metrics}"
    );
    let (code, _, _) = w.terminate();
    assert_eq!(code, Some(0));
}

#[test]
fn drift_shows_in_the_metrics_and_remediate_repairs_it() {
    let repo = TestRepo::new();
    repo.namespace(
        "drift",
        &format!("  retention: 3d\n{}", topic_spec(&["drift"])),
    );
    let applied = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}", applied.all_output());
    repo.set_topic_config(&repo.name("drift"), "retention.ms", "1000");

    let drifted = series("drifted_resources", &repo, "drift", "kafka.topic");
    let watching = Watcher::start(&repo, &[]);
    watching.wait_until(Duration::from_secs(20), "the drift metric", |w| {
        w.metric(&drifted) == Some(1.0)
    });
    let (code, _, logs) = watching.terminate();
    assert_eq!(code, Some(0), "{logs}");
    assert!(logs.contains("drift: changed outside sluice"), "{logs}");
    assert_eq!(
        logs.matches("drift: changed outside sluice").count(),
        1,
        "a drift event is logged once, not every cycle:\n{logs}"
    );

    let repairing = Watcher::start(&repo, &["--remediate", "--log-format", "json"]);
    repairing.wait_until(Duration::from_secs(20), "the repair", |w| {
        w.metric("sluice_reconciles_total{environment=\"local\",result=\"remediated\"}")
            .is_some_and(|n| n >= 1.0)
    });
    let metrics = repairing.get("/metrics").unwrap();
    assert!(!metrics.contains(&drifted), "drift remains:\n{metrics}");
    let (code, _, logs) = repairing.terminate();
    assert_eq!(code, Some(0), "{logs}");
    let first = logs.lines().next().unwrap_or_default();
    assert!(
        serde_json::from_str::<serde_json::Value>(first).is_ok(),
        "--log-format json writes JSON lines: {first}"
    );
    let plan = repo.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "repaired: {}", plan.all_output());
}

#[test]
fn a_topic_changed_by_hand_stays_drifted_while_a_blocked_change_waits_on_it() {
    let repo = TestRepo::new();
    let spec = |partitions: u32| {
        format!(
            "  retention: 3d\n  topics:\n    - name: {{tag}}-both\n      partitions: {partitions}\n"
        )
    };
    repo.namespace("both", &spec(2));
    let applied = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}", applied.all_output());
    // Changed by hand, then asked in Git for what cannot be done (a shrink).
    repo.set_topic_config(&repo.name("both"), "retention.ms", "1000");
    repo.namespace("both", &spec(1));

    let w = Watcher::start(&repo, &[]);
    let drifted = series("drifted_resources", &repo, "both", "kafka.topic");
    w.wait_until(Duration::from_secs(20), "the blocked change", |w| {
        w.metric("sluice_blocked_changes{environment=\"local\"}") == Some(1.0)
    });
    assert_eq!(
        w.metric(&drifted),
        Some(1.0),
        "still drifted: {}",
        w.get("/metrics").unwrap_or_default()
    );
    let pending = series("pending_changes", &repo, "both", "kafka.topic");
    assert_eq!(w.metric(&pending), Some(1.0));
    let (code, _, logs) = w.terminate();
    assert_eq!(code, Some(0), "{logs}");
    assert!(logs.contains("drift: changed outside sluice"), "{logs}");
}

#[test]
fn one_of_two_ha_replicas_leads_and_the_other_takes_over_within_the_ttl() {
    let repo = TestRepo::new();
    repo.namespace("ha", &topic_spec(&["ha"]));
    let ha = ["--ha", "--lease-ttl", "3s"];
    let a = Watcher::start(&repo, &ha);
    let b = Watcher::start(&repo, &ha);
    let leader = "sluice_leader{environment=\"local\"}";
    for w in [&a, &b] {
        w.wait_until(Duration::from_secs(20), "the leader gauge", |w| {
            w.metric(leader).is_some()
        });
    }
    // Give a loser's first cycle time to run after the winner's.
    std::thread::sleep(Duration::from_secs(2));
    let leads = |w: &Watcher| w.metric(leader) == Some(1.0);
    assert_eq!(
        [leads(&a), leads(&b)].iter().filter(|l| **l).count(),
        1,
        "exactly one leader"
    );
    let (mut dead, alive) = if leads(&a) { (a, b) } else { (b, a) };
    // Only the leader reports drift and pending changes.
    let pending = series("pending_changes", &repo, "ha", "kafka.topic");
    assert_eq!(dead.metric(&pending), Some(1.0));
    assert_eq!(alive.metric(&pending), None);

    dead.child.kill().unwrap();
    dead.child.wait().unwrap();
    let killed = Instant::now();
    alive.wait_until(
        Duration::from_secs(3) + INTERVAL * 2 + Duration::from_secs(2),
        "the take-over",
        leads,
    );
    eprintln!(
        "took over {:?} after kill -9 (lease TTL 3s)",
        killed.elapsed()
    );
    alive.wait_until(Duration::from_secs(10), "the new leader's report", |w| {
        w.metric(&pending) == Some(1.0)
    });
}

#[test]
fn a_blocked_change_is_logged_once_per_commit() {
    let repo = TestRepo::new();
    let git = Repository::init(repo.dir.path()).unwrap();
    repo.namespace("blk", &topic_spec(&["blk"]));
    repo.namespace(
        "fine",
        &format!("  retention: 3d\n{}", topic_spec(&["fine"])),
    );
    commit_all(&git, "one partition");
    let applied = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}", applied.all_output());
    // Drift elsewhere is still repaired while the blocked change waits.
    repo.set_topic_config(&repo.name("fine"), "retention.ms", "1000");
    // tansu cannot add partitions: the change is blocked.
    repo.namespace(
        "blk",
        "  topics:\n    - name: {tag}-blk\n      partitions: 3\n",
    );
    commit_all(&git, "three partitions");

    let dir = repo.dir.path().to_str().unwrap().to_owned();
    let w = Watcher::start(
        &repo,
        &["--git", &dir, "--branch", &branch(&git), "--remediate"],
    );
    let blocked = "sluice_reconciles_total{environment=\"local\",result=\"blocked\"}";
    w.wait_until(Duration::from_secs(20), "three blocked cycles", |w| {
        w.metric(blocked).is_some_and(|n| n >= 3.0)
    });
    // Another commit, still blocked: reported again, once.
    repo.namespace(
        "blk",
        "  topics:\n    - name: {tag}-blk\n      partitions: 4\n",
    );
    commit_all(&git, "four partitions");
    let seen = w.metric(blocked).unwrap();
    w.wait_until(Duration::from_secs(20), "three more blocked cycles", |w| {
        w.metric(blocked).is_some_and(|n| n >= seen + 3.0)
    });
    let (code, _, logs) = w.terminate();
    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(
        logs.matches("cannot be applied").count(),
        2,
        "once per commit, not per cycle:\n{logs}"
    );
    assert!(
        logs.contains("not supported by this broker (CreatePartitions)"),
        "{logs}"
    );
    let drift = repo.run(&["drift"]);
    assert!(
        !drift
            .stdout
            .contains(&format!("kafka.topic/{}", repo.name("fine"))),
        "the other namespace's drift was not repaired:\n{}",
        drift.stdout
    );
    assert!(
        drift
            .stdout
            .contains(&format!("! kafka.topic/{}", repo.name("blk"))),
        "{}",
        drift.stdout
    );
}

#[test]
fn sigterm_exits_zero_within_seconds_and_releases_the_lease() {
    let repo = TestRepo::new();
    repo.namespace("term", &topic_spec(&["term"]));
    let w = Watcher::start(&repo, &["--ha", "--lease-ttl", "30s"]);
    w.wait_until(Duration::from_secs(20), "leadership", |w| {
        w.metric("sluice_leader{environment=\"local\"}") == Some(1.0)
    });
    let (code, took, logs) = w.terminate();
    assert_eq!(code, Some(0), "{logs}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(logs.contains("released leadership and its lease"), "{logs}");
    // The election key went with the lease: nothing waits out the 30 s TTL.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let keys = rt.block_on(async {
        let mut etcd = etcd_client::Client::connect([repo.services().etcd.as_str()], None)
            .await
            .unwrap();
        let prefix = format!("{}leader/", repo.prefix());
        etcd.get(prefix, Some(etcd_client::GetOptions::new().with_prefix()))
            .await
            .unwrap()
            .count()
    });
    assert_eq!(keys, 0, "the election key outlived the watcher");
}

#[test]
fn a_standby_takes_over_after_kill_9_of_the_leader_three_times_in_a_row() {
    let repo = TestRepo::new();
    repo.namespace("fo", &topic_spec(&["fo"]));
    // A request timeout far below how long a standby waits: its campaign
    // must not be cut by it.
    let ha = ["--ha", "--lease-ttl", "3s", "--timeout", "1s"];
    let leader = "sluice_leader{environment=\"local\"}";
    let leads = |w: &Watcher| w.metric(leader) == Some(1.0);
    let mut replicas = vec![Watcher::start(&repo, &ha), Watcher::start(&repo, &ha)];
    for round in 1..=3 {
        for w in &replicas {
            w.wait_until(Duration::from_secs(20), "the leader gauge", |w| {
                w.metric(leader).is_some()
            });
        }
        replicas[0].wait_until(Duration::from_secs(20), "a leader", |_| {
            replicas.iter().filter(|w| leads(w)).count() == 1
        });
        // The standby has campaigned for longer than the request timeout.
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(
            replicas.iter().filter(|w| leads(w)).count(),
            1,
            "round {round}: exactly one leader"
        );
        let at = replicas.iter().position(leads).unwrap();
        let mut dead = replicas.remove(at);
        dead.child.kill().unwrap();
        dead.child.wait().unwrap();
        let killed = Instant::now();
        replicas[0].wait_until(
            Duration::from_secs(3) + INTERVAL + Duration::from_secs(2),
            &format!("round {round}: the take-over"),
            leads,
        );
        eprintln!(
            "round {round}: took over {:?} after kill -9",
            killed.elapsed()
        );
        replicas.push(Watcher::start(&repo, &ha));
    }
}

#[test]
fn deletes_not_remediated_are_logged_once_per_commit_not_every_cycle() {
    let repo = TestRepo::new();
    let git = Repository::init(repo.dir.path()).unwrap();
    repo.namespace("keep", &topic_spec(&["keep", "gone"]));
    commit_all(&git, "two topics");
    let applied = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}", applied.all_output());
    repo.namespace("keep", &topic_spec(&["keep"]));
    commit_all(&git, "one topic gone");

    let dir = repo.dir.path().to_str().unwrap().to_owned();
    let w = Watcher::start(
        &repo,
        &["--git", &dir, "--branch", &branch(&git), "--remediate"],
    );
    let cycles = "sluice_reconciles_total{environment=\"local\",result=\"changes\"}";
    w.wait_until(Duration::from_secs(20), "three cycles", |w| {
        w.metric(cycles).is_some_and(|n| n >= 3.0)
    });
    let (code, _, logs) = w.terminate();
    assert_eq!(code, Some(0), "{logs}");
    assert_eq!(
        logs.matches("are not remediated").count(),
        1,
        "once per commit, not per cycle:\n{logs}"
    );
}

/// Produces `n` records to partition 0 of `topic`, each in a batch of its
/// own: tansu's high watermark then stands past every one of them.
fn produce_each(repo: &TestRepo, topic: &str, n: usize) {
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    let producer: BaseProducer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", &repo.services().kafka)
        .create()
        .unwrap();
    for i in 0..n {
        let value = format!("record {i}");
        producer
            .send(
                BaseRecord::<[u8], [u8]>::to(topic)
                    .partition(0)
                    .payload(value.as_bytes()),
            )
            .map_err(|(e, _)| e)
            .unwrap();
        producer.flush(Duration::from_secs(20)).unwrap();
    }
}

/// The manifests of namespace `ns` under `backups/`, oldest first (the
/// backup tests' reader, from a synchronous test).
fn manifests(repo: &TestRepo, ns: &str) -> Vec<serde_json::Value> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(crate::backup::manifests(repo, ns))
}

#[test]
fn scheduled_backups_run_every_minute_and_move_the_backup_metrics() {
    let repo = TestRepo::new();
    let dr = |schedule: &str| {
        format!(
            "  disaster_recovery:\n    rpo: 1h\n    backup:\n      bucket: {}\n      prefix: backups/\n      incremental: true\n      schedule: \"{schedule}\"\n",
            repo.bucket("backups")
        )
    };
    repo.namespace(
        "sched",
        &format!("{}{}", topic_spec(&["sched"]), dr("* * * * *")),
    );
    let applied = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}", applied.all_output());
    let topic = format!("{}-sched", repo.tag);
    produce_each(&repo, &topic, 2);
    // Declared after the apply: its topic is not in Kafka, so its backups fail.
    repo.namespace(
        "broken",
        &format!("{}{}", topic_spec(&["broken"]), dr("* * * * *")),
    );

    let w = Watcher::start(&repo, &[]);
    let labels = |short: &str| {
        format!(
            "{{environment=\"local\",namespace=\"{}\"}}",
            repo.name(short)
        )
    };
    let success = format!(
        "sluice_backup_last_success_timestamp_seconds{}",
        labels("sched")
    );
    // The next minute, plus at most six seconds of jitter, plus the run.
    w.wait_until(Duration::from_secs(80), "a first scheduled backup", |w| {
        w.metric(&success).is_some()
    });
    let first = w.metric(&success).unwrap();
    let ns = repo.name("sched");
    let runs = manifests(&repo, &ns);
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0]["kind"], "full");
    assert_eq!(runs[0]["topics"][0]["ranges"][0]["records"], 2);
    let count = format!("sluice_backup_duration_seconds_count{}", labels("sched"));
    assert_eq!(w.metric(&count), Some(1.0));
    let failures = format!("sluice_backup_failures_total{}", labels("broken"));
    w.wait_until(
        Duration::from_secs(10),
        "the failing namespace's run",
        |w| w.metric(&failures).is_some_and(|n| n >= 1.0),
    );
    assert_eq!(
        w.metric(&format!("sluice_backup_failures_total{}", labels("sched"))),
        None
    );

    // A minute later the next run goes on from the first, and the metric moves.
    produce_each(&repo, &topic, 1);
    w.wait_until(Duration::from_secs(70), "a second scheduled backup", |w| {
        w.metric(&success).is_some_and(|t| t > first)
    });
    let second = w.metric(&success).unwrap();
    assert!(
        (50.0..70.0).contains(&(second - first)),
        "{first} then {second}"
    );
    let runs = manifests(&repo, &ns);
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert_eq!(runs[1]["kind"], "incremental");
    assert_eq!(runs[1]["previous"], runs[0]["run_id"]);
    let range = &runs[1]["topics"][0]["ranges"][0];
    assert_eq!(
        (range["start_offset"].as_i64(), range["records"].as_u64()),
        (Some(2), Some(1))
    );
    let (code, _, logs) = w.terminate();
    assert_eq!(code, Some(0), "{logs}");
    assert!(logs.contains("scheduled backup failed"), "{logs}");
    assert!(logs.contains("does not exist in Kafka"), "{logs}");
}

#[test]
fn a_starting_watcher_sets_the_backup_metric_from_the_last_complete_run_in_s3() {
    let repo = TestRepo::new();
    repo.namespace(
        "seeded",
        &format!(
            "{}  disaster_recovery:\n    rpo: 1h\n    backup:\n      bucket: {}\n      prefix: backups/\n      schedule: \"0 0 1 1 *\"\n",
            topic_spec(&["seeded"]),
            repo.bucket("backups")
        ),
    );
    let applied = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}", applied.all_output());
    let backup = repo.run(&["backup"]);
    assert_eq!(backup.code, 0, "{}", backup.all_output());
    let runs = manifests(&repo, &repo.name("seeded"));
    let started_ms = runs[0]["started_at_ms"].as_i64().unwrap();

    // A yearly schedule: no run during the test; the series comes from S3.
    let w = Watcher::start(&repo, &[]);
    let success = format!(
        "sluice_backup_last_success_timestamp_seconds{{environment=\"local\",namespace=\"{}\"}}",
        repo.name("seeded")
    );
    w.wait_until(Duration::from_secs(20), "the seeded backup metric", |w| {
        w.metric(&success).is_some()
    });
    #[allow(clippy::cast_precision_loss)]
    let expected = started_ms as f64 / 1000.0;
    let seen = w.metric(&success).unwrap();
    assert!((seen - expected).abs() < 0.01, "{seen} vs {expected}");
    assert_eq!(
        w.metric(&format!(
            "sluice_backup_duration_seconds_count{{environment=\"local\",namespace=\"{}\"}}",
            repo.name("seeded")
        )),
        None,
        "no run was expected"
    );
}

/// A repository whose `local` environment snapshots etcd on `schedule`
/// into bucket `<tag>-state` (not created) under `snaps/`; the bucket's name.
fn snapshotted(repo: &TestRepo, schedule: &str) -> String {
    let bucket = repo.bucket("state");
    repo.workspace(&format!(
        "      state_backup:\n        bucket: {bucket}\n        prefix: snaps/\n        schedule: \"{schedule}\"\n"
    ));
    bucket
}

fn create_bucket(repo: &TestRepo, bucket: &str) {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        repo.s3()
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .unwrap();
    });
}

#[test]
fn scheduled_etcd_snapshots_run_every_minute_count_failures_and_move_the_snapshot_metrics() {
    let repo = TestRepo::new();
    // No bucket yet: the first occurrence fails.
    let bucket = snapshotted(&repo, "* * * * *");
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let w = Watcher::start(&repo, &[]);
    let success = "sluice_state_snapshot_last_success_timestamp_seconds{environment=\"local\"}";
    let failures = "sluice_state_snapshot_failures_total{environment=\"local\"}";
    let count = "sluice_state_snapshot_duration_seconds_count{environment=\"local\"}";
    // On taking the lead the failure counter is there at 0; S3 cannot be
    // read, so no success series.
    w.wait_until(Duration::from_secs(20), "the failure counter", |w| {
        w.metric(failures).is_some()
    });
    assert_eq!(w.metric(failures), Some(0.0));
    // The next minute, plus at most six seconds of jitter, plus the run.
    w.wait_until(Duration::from_secs(80), "a first, failed snapshot", |w| {
        w.metric(failures).is_some_and(|n| n >= 1.0)
    });
    assert_eq!(w.metric(success), None);
    assert_eq!(w.metric(count), Some(1.0));

    create_bucket(&repo, &bucket);
    w.wait_until(Duration::from_secs(70), "a scheduled snapshot", |w| {
        w.metric(success).is_some_and(|t| t > started)
    });
    let first = w.metric(success).unwrap();
    assert_eq!(w.metric(count), Some(2.0));
    assert_eq!(w.metric(failures), Some(1.0));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let snaps = rt.block_on(crate::backup::manifests_under(&repo, &bucket, "snaps/"));
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    #[allow(clippy::cast_precision_loss)]
    let started_at = snaps[0]["started_at_ms"].as_i64().unwrap() as f64 / 1000.0;
    assert!((first - started_at).abs() < 0.01, "{first} vs {started_at}");
    let (code, _, logs) = w.terminate();
    assert_eq!(code, Some(0), "{logs}");
    assert!(logs.contains("scheduled etcd snapshot complete"), "{logs}");
    assert!(
        logs.contains("scheduled etcd snapshot failed") && logs.contains("does not exist"),
        "{logs}"
    );
}

#[test]
fn a_starting_watcher_sets_the_snapshot_metric_to_zero_without_a_snapshot_and_from_s3_with_one() {
    let repo = TestRepo::new();
    // A yearly schedule: no snapshot during the test; the series comes from S3.
    let bucket = snapshotted(&repo, "0 0 1 1 *");
    create_bucket(&repo, &bucket);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let success = "sluice_state_snapshot_last_success_timestamp_seconds{environment=\"local\"}";
    let w = Watcher::start(&repo, &[]);
    w.wait_until(Duration::from_secs(20), "the seeded snapshot metric", |w| {
        w.metric(success).is_some()
    });
    assert_eq!(w.metric(success), Some(0.0), "never succeeded");
    drop(w);

    let snap = repo.run(&["snapshot"]);
    assert_eq!(snap.code, 0, "{}", snap.all_output());
    let snaps = rt.block_on(crate::backup::manifests_under(&repo, &bucket, "snaps/"));
    #[allow(clippy::cast_precision_loss)]
    let started_at = snaps[0]["started_at_ms"].as_i64().unwrap() as f64 / 1000.0;
    let w = Watcher::start(&repo, &[]);
    w.wait_until(
        Duration::from_secs(20),
        "the snapshot metric from S3",
        |w| w.metric(success).is_some_and(|t| t > 0.0),
    );
    let seen = w.metric(success).unwrap();
    assert!((seen - started_at).abs() < 0.01, "{seen} vs {started_at}");
    assert_eq!(
        w.metric("sluice_state_snapshot_duration_seconds_count{environment=\"local\"}"),
        None,
        "no scheduled snapshot was expected"
    );
}

#[test]
fn a_one_minute_drill_schedule_runs_a_drill_and_moves_the_drill_metrics() {
    let repo = TestRepo::new();
    repo.namespace(
        "drilled",
        &format!(
            "{}  disaster_recovery:\n    rpo: 1h\n    rto: 30m\n    backup:\n      bucket: {}\n      prefix: backups/\n    drill:\n      schedule: \"* * * * *\"\n",
            topic_spec(&["drilled"]),
            repo.bucket("backups")
        ),
    );
    let applied = repo.run(&["apply", "--auto-approve"]);
    assert_eq!(applied.code, 0, "{}", applied.all_output());
    let topic = repo.name("drilled");
    produce_each(&repo, &topic, 3);
    let backup = repo.run(&["backup"]);
    assert_eq!(backup.code, 0, "{}", backup.all_output());

    let w = Watcher::start(&repo, &[]);
    let labels = format!(
        "{{environment=\"local\",namespace=\"{}\"}}",
        repo.name("drilled")
    );
    let success = format!("sluice_dr_drill_last_success_timestamp_seconds{labels}");
    let rto = format!("sluice_dr_drill_rto_seconds{labels}");
    let failures = format!("sluice_dr_drill_failures_total{labels}");
    // Seeded when the replica leads: no drill yet, no failure yet.
    w.wait_until(Duration::from_secs(20), "the drill failure counter", |w| {
        w.metric(&failures) == Some(0.0)
    });
    assert_eq!(w.metric(&success), None);
    // The next minute, plus at most six seconds of jitter, plus the drill.
    w.wait_until(Duration::from_secs(80), "a scheduled drill", |w| {
        w.metric(&success).is_some()
    });
    let measured = w.metric(&rto).expect("the drill's RTO");
    assert!(measured > 0.0 && measured < 1800.0, "{measured}");
    assert_eq!(w.metric(&failures), Some(0.0));
    let (code, _, logs) = w.terminate();
    assert_eq!(code, Some(0), "{logs}");
    assert!(logs.contains("scheduled drill passed"), "{logs}");

    // Recorded as `dr drill` records it, and no scratch topic is left.
    let status = repo.run(&["status", "--format", "json"]).json();
    let drill = &status["drills"][0];
    assert_eq!(drill["passed"], true, "{status}");
    assert_eq!(drill["records"], 3, "{status}");
    assert_eq!(
        crate::drill::scratch_topics(&repo, &topic),
        Vec::<String>::new()
    );
}

#[test]
fn sigterm_during_a_scheduled_drill_deletes_its_scratch_topic_and_records_it_failed() {
    let repo = TestRepo::new();
    let (ns, topic) = crate::backup::backed_up_namespace_with(
        &repo,
        "    drill:\n      schedule: \"* * * * *\"\n",
    );
    // Many small objects: the drill writes them one after the other.
    crate::backup::produce(&repo, &topic, 0..3000);
    crate::backup::produce_closing(&repo, &topic, 3000);
    let backup = repo.run(&["backup", "--segment-size", "1KiB"]);
    assert_eq!(backup.code, 0, "{}", backup.all_output());

    let w = Watcher::start(&repo, &[]);
    // SIGTERM as soon as the broker shows records in a scratch partition.
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", &repo.services().kafka)
        .create()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(80);
    let landed = loop {
        let landed = crate::drill::scratch_topics(&repo, &topic)
            .first()
            .is_some_and(|t| {
                rdkafka::consumer::Consumer::fetch_watermarks(
                    &consumer,
                    t,
                    0,
                    Duration::from_secs(5),
                )
                .is_ok_and(|(_, high)| high > 0)
            });
        if landed || Instant::now() > deadline {
            break landed;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let (code, _, logs) = w.terminate();
    assert!(
        landed,
        "no scheduled drill wrote records within 80 s:\n{logs}"
    );
    assert_eq!(code, Some(0), "{logs}");
    assert!(logs.contains("scheduled drill failed"), "{logs}");
    assert_eq!(
        crate::drill::scratch_topics(&repo, &topic),
        Vec::<String>::new()
    );
    let status = repo.run(&["status", "--format", "json"]).json();
    let drill = &status["drills"][0];
    assert_eq!(drill["namespace"], ns.as_str(), "{status}");
    assert_eq!(drill["passed"], false, "{status}");
    assert!(
        drill["failure"].as_str().unwrap().contains("interrupted"),
        "{status}"
    );
}
