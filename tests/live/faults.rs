//! Faults a real estate sees, injected with the project's TCP proxy in front
//! of etcd, S3 and Kafka: hung servers, a create cut short by `kill -9`, a
//! connection blip under a held lock, signals at every point after the lock
//! is taken. Each fault is triggered by a protocol event (a request the proxy
//! sees, a prompt on the terminal), not by a timer.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use crate::common::{Run, TestRepo, commit_all};
use crate::proxy::{Mode, Proxy};

/// Long enough for anything here to finish; a run past it is a hang.
pub(crate) const HANG: Duration = Duration::from_secs(90);

/// Runs `cmd`, failing the test (and killing it) if it is still running
/// after [`HANG`]: the defect under test is a command that never returns.
pub(crate) fn run_bounded(cmd: &mut Command) -> Run {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let readers = std::thread::spawn(move || {
        let (mut o, mut e) = (String::new(), String::new());
        let _ = out.read_to_string(&mut o);
        let _ = err.read_to_string(&mut e);
        (o, e)
    });
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > HANG {
            let _ = child.kill();
            panic!("`{cmd:?}` still ran after {HANG:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (stdout, stderr) = readers.join().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
    }
}

/// Waits for a proxy trigger, failing the test if the event never comes.
pub(crate) fn heard(rx: &Receiver<()>, what: &str) {
    rx.recv_timeout(HANG)
        .unwrap_or_else(|_| panic!("the proxy never saw {what}"));
}

/// A repository with one DR namespace whose backups go to a declared bucket,
/// so that plans read S3 and applies create the bucket.
fn dr_repo() -> TestRepo {
    let repo = TestRepo::new();
    let bucket = repo.bucket("backups");
    repo.workspace(&format!(
        "  disaster_recovery:\n    buckets:\n      {bucket}:\n        region: us-east-1\n"
    ));
    repo.namespace(
        "dr",
        &format!(
            "  topics:\n    - name: {{tag}}-dr\n      partitions: 1\n  disaster_recovery:\n    backup:\n      bucket: {bucket}\n      prefix: dr/\n      retain: 7d\n"
        ),
    );
    repo
}

#[test]
fn s3_that_accepts_and_never_answers_fails_plan_drift_status_and_apply_with_timed_out() {
    let repo = dr_repo();
    let s3 = Proxy::start(&repo.services().s3);
    s3.set(Mode::BlackHole);
    for args in [
        &["plan"][..],
        &["drift"],
        &["status"],
        &["apply", "--auto-approve"],
    ] {
        let run = run_bounded(
            repo.sluice()
                .env("SLUICE_S3_ENDPOINT", s3.url())
                .args(["--timeout", "1s"])
                .args(args),
        );
        assert_ne!(run.code, 0, "{args:?}: {}", run.all_output());
        assert!(
            run.all_output().contains("timed out after"),
            "{args:?} names the timeout: {}",
            run.all_output()
        );
    }
    // The apply gave up and released its lock: a second one takes it at once.
    let applied =
        run_bounded(
            repo.sluice()
                .args(["apply", "--auto-approve", "--lock-timeout", "0s"]),
        );
    assert_eq!(applied.code, 0, "{}", applied.all_output());
}

/// Kafka and etcd, each behind a proxy that swallows every byte: the
/// variable that points sluice at it, the proxy (kept while in use) and the
/// endpoint to set.
fn hung_servers(repo: &TestRepo) -> Vec<(&'static str, Proxy, String)> {
    [
        ("SLUICE_KAFKA_BOOTSTRAP", repo.services().kafka.clone()),
        ("SLUICE_ETCD_ENDPOINTS", repo.services().etcd.clone()),
    ]
    .into_iter()
    .map(|(var, upstream)| {
        let proxy = Proxy::start(&upstream);
        proxy.set(Mode::BlackHole);
        let endpoint = if var.contains("ETCD") {
            proxy.url()
        } else {
            proxy.addr()
        };
        (var, proxy, endpoint)
    })
    .collect()
}

#[test]
fn a_hung_kafka_or_etcd_fails_plan_drift_and_apply_with_timed_out_and_status_keeps_its_table() {
    let repo = TestRepo::new();
    repo.namespace("hung", "  topics:\n    - name: {tag}-hung\n");
    for (var, _proxy, endpoint) in hung_servers(&repo) {
        for args in [
            &["plan"][..],
            &["drift"],
            &["apply", "--auto-approve"],
            &["status"],
        ] {
            let run = run_bounded(
                repo.sluice()
                    .env(var, &endpoint)
                    .args(["--timeout", "1s"])
                    .args(args),
            );
            let what = format!("{var} {args:?}");
            assert_eq!(run.code, 1, "{what}: {}", run.all_output());
            assert!(
                run.all_output().contains("timed out after 1s"),
                "{what}: says it timed out, and after how long: {}",
                run.all_output()
            );
            assert!(
                !run.all_output().contains("os error 11"),
                "{what}: not a raw errno: {}",
                run.all_output()
            );
            if args == ["status"] {
                assert_status_table(
                    &run,
                    if var.contains("ETCD") {
                        "etcd"
                    } else {
                        "Kafka"
                    },
                );
            } else {
                assert!(
                    run.stderr.contains("hint: check that"),
                    "{what}: {}",
                    run.stderr
                );
            }
        }
    }
}

/// A full plan, and a pull request's (`plan --base`), connect while they
/// read and parse the files.
#[test]
fn a_yaml_error_is_said_though_the_plan_connects_while_it_parses_and_a_server_hangs() {
    let repo = TestRepo::new();
    let git = git2::Repository::init(repo.dir.path()).unwrap();
    repo.namespace("fine", "  topics:\n    - name: {tag}-fine\n");
    let base = commit_all(&git, "fine").to_string();
    // A typo the schema names, at a line and column: the change.
    repo.namespace(
        "typo",
        "  topics:\n    - name: {tag}-typo\n      partitons: 3\n",
    );
    for (var, _proxy, endpoint) in hung_servers(&repo) {
        for args in [&["plan"][..], &["plan", "--base", &base]] {
            // The timeout is longer than `run_bounded` waits: had the plan
            // waited on the hung server before saying what is wrong in the
            // file, it would hang.
            let run = run_bounded(
                repo.sluice()
                    .env(var, &endpoint)
                    .args(["--timeout", "10m"])
                    .args(args),
            );
            let what = format!("{var} {args:?}");
            assert_eq!(run.code, 1, "{what}: {}", run.all_output());
            assert!(
                run.stderr.contains("namespaces/typo.yaml:9:7") && run.stderr.contains("partitons"),
                "{what}: the file, line and column of the typo: {}",
                run.stderr
            );
            assert!(
                !run.all_output().contains("timed out"),
                "{what}: {}",
                run.all_output()
            );
        }
    }
}

/// `status` kept its table, named the down backend in its row and said
/// what to do, with the other backends' rows there too.
fn assert_status_table(run: &Run, down: &str) {
    let out = &run.stdout;
    assert!(
        out.contains("BACKEND  STATE  DETAIL"),
        "{}",
        run.all_output()
    );
    let row = out
        .lines()
        .find(|l| l.starts_with(down))
        .unwrap_or_else(|| panic!("no {down} row: {out}"));
    assert!(row.contains("DOWN"), "{row}");
    for other in ["Kafka", "etcd"].iter().filter(|s| **s != down) {
        assert!(
            out.lines()
                .any(|l| l.starts_with(other) && l.contains(" ok ")),
            "the {other} row is there and fine: {out}"
        );
    }
    assert!(out.contains("hint: check that"), "{out}");
    assert!(
        out.lines().all(|l| !l.ends_with(' ')),
        "no trailing spaces:\n{out:?}"
    );
    assert!(!run.all_output().contains("tonic"), "{}", run.all_output());
}

#[test]
fn status_with_etcd_stopped_shows_every_backend_and_why_etcd_is_down() {
    let repo = TestRepo::new();
    repo.namespace("down", "  topics:\n    - name: {tag}-down\n");
    // A port nothing listens on: etcd is stopped.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let run = run_bounded(
        repo.sluice()
            .env("SLUICE_ETCD_ENDPOINTS", &url)
            .args(["status"]),
    );
    assert_eq!(run.code, 1, "{}", run.all_output());
    assert_status_table(&run, "etcd");
    assert!(
        run.stdout.contains("Connection refused"),
        "the cause, as the OS says it: {}",
        run.stdout
    );
    assert!(run.stdout.contains("Last apply: unknown"), "{}", run.stdout);
}

#[test]
fn a_bucket_interrupted_between_create_bucket_and_its_settings_is_finished_by_the_next_apply() {
    let repo = dr_repo();
    let bucket = repo.bucket("backups");
    let s3 = Proxy::start(&repo.services().s3);
    // The bucket exists once CreateBucket returns; sluice dies as it turns
    // versioning on.
    let versioning = s3.when_sent(&format!("PUT /{bucket}/?versioning"), Mode::BlackHole);
    let mut apply = repo
        .sluice()
        .env("SLUICE_S3_ENDPOINT", s3.url())
        .args(["apply", "--auto-approve"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    heard(&versioning, "the versioning request");
    apply.kill().unwrap(); // SIGKILL
    apply.wait().unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let versioned = |bucket: &str| {
        rt.block_on(async {
            let v = repo
                .s3()
                .get_bucket_versioning()
                .bucket(bucket)
                .send()
                .await;
            v.unwrap().status().map(|s| s.as_str().to_owned())
        })
    };
    assert_eq!(versioned(&bucket), None, "half made: no versioning yet");

    // The dead apply's lock lives until its lease expires.
    let rerun =
        run_bounded(
            repo.sluice()
                .args(["apply", "--auto-approve", "--lock-timeout", "30s"]),
        );
    assert_eq!(rerun.code, 0, "{}", rerun.all_output());
    assert!(
        !rerun.all_output().contains("did not create"),
        "its own half-made bucket is not foreign: {}",
        rerun.all_output()
    );
    assert_eq!(versioned(&bucket).as_deref(), Some("Enabled"));
    let plan = run_bounded(repo.sluice().args(["plan", "--detailed-exitcode"]));
    assert_eq!(plan.code, 0, "converged: {}", plan.all_output());
}

/// A child on a pseudo-terminal, so that `apply` asks for confirmation.
pub struct OnTerminal {
    child: Child,
    terminal: std::fs::File,
}

impl OnTerminal {
    pub fn spawn(cmd: &mut Command) -> OnTerminal {
        let (master, slave) = crate::common::pty();
        let child = cmd
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave))
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        OnTerminal {
            child,
            terminal: std::fs::File::from(master),
        }
    }

    /// Types a line on the terminal, as an answer to a prompt.
    pub fn type_line(&mut self, line: &str) {
        writeln!(self.terminal, "{line}").unwrap();
    }

    /// Reads the terminal until `text` appears.
    pub fn wait_for(&mut self, text: &str) {
        let mut seen = String::new();
        let mut reader = BufReader::new(self.terminal.try_clone().unwrap());
        let mut buf = Vec::new();
        while !seen.contains(text) {
            buf.clear();
            let n = reader.read_until(b' ', &mut buf).unwrap_or(0);
            assert!(n > 0, "the terminal closed before `{text}`:\n{seen}");
            seen.push_str(&String::from_utf8_lossy(&buf));
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: a signal to our own child.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// Waits for the exit, failing after [`HANG`].
    pub fn exit_code(mut self) -> Option<i32> {
        let started = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            if started.elapsed() > HANG {
                let _ = self.child.kill();
                panic!("still running {HANG:?} after the signal");
            }
            // Keep the terminal drained so the child never blocks writing.
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

const PROMPT: &str = "Only `yes` is accepted:";

/// Whether the lock is free: an apply that will not wait gets it.
fn lock_is_free(repo: &TestRepo) -> bool {
    let run = run_bounded(repo.sluice().args(["plan"]));
    assert_eq!(run.code, 0, "{}", run.all_output());
    let apply =
        run_bounded(
            repo.sluice()
                .args(["apply", "--auto-approve", "--lock-timeout", "0s"]),
        );
    if apply.code != 0 {
        eprintln!("{}", apply.all_output());
    }
    apply.code == 0
}

#[test]
fn sigint_and_sigterm_at_the_confirmation_prompt_release_the_lock() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let repo = TestRepo::new();
        repo.namespace("prompt", "  topics:\n    - name: {tag}-prompt\n");
        let mut apply = OnTerminal::spawn(repo.sluice().arg("apply"));
        apply.wait_for(PROMPT);
        apply.signal(sig);
        assert_ne!(apply.exit_code(), Some(0), "a signal is no `yes`");
        // Nothing new is started after it: not the source index either.
        let index = index_keys(&repo);
        assert!(index.is_empty(), "signal {sig}, then written: {index:?}");
        assert!(lock_is_free(&repo), "signal {sig} left the lock held");
    }
}

/// [`crate::pull_request::index_keys`], from a test that is not async.
fn index_keys(repo: &TestRepo) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(crate::pull_request::index_keys(repo))
}

#[test]
fn a_signal_while_apply_is_still_planning_releases_the_lock() {
    let repo = dr_repo();
    let bucket = repo.bucket("backups");
    let s3 = Proxy::start(&repo.services().s3);
    // The plan under the lock reads the bucket: it hangs there.
    let reading = s3.when_sent(&format!("/{bucket}"), Mode::BlackHole);
    let mut apply = repo
        .sluice()
        .env("SLUICE_S3_ENDPOINT", s3.url())
        .args(["apply", "--auto-approve"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    heard(&reading, "the plan's bucket read");
    // SAFETY: a signal to our own child.
    assert_eq!(unsafe { libc::kill(apply.id() as i32, libc::SIGTERM) }, 0);
    let mut err = String::new();
    apply
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = apply.wait().unwrap();
    assert_ne!(status.code(), Some(0), "{err}");
    assert!(lock_is_free(&repo), "the lock is held after SIGTERM: {err}");
}

/// The lock's lease, as etcd has it: `(id, seconds left)`.
async fn lock_lease(repo: &TestRepo) -> Option<(i64, i64)> {
    let mut etcd = etcd_client::Client::connect([repo.services().etcd.as_str()], None)
        .await
        .unwrap();
    let key = format!("{}locks/local", repo.prefix());
    let got = etcd.get(key, None).await.unwrap();
    let id = got.kvs().first()?.lease();
    let ttl = etcd.lease_time_to_live(id, None).await.unwrap().ttl();
    Some((id, ttl))
}

#[test]
fn a_one_second_etcd_drop_does_not_lose_the_lock_of_an_apply() {
    let repo = TestRepo::new();
    repo.namespace("blip", "  topics:\n    - name: {tag}-blip\n");
    let etcd = Proxy::start(&repo.services().etcd);
    let mut apply = OnTerminal::spawn(
        repo.sluice()
            .env("SLUICE_ETCD_ENDPOINTS", etcd.url())
            .arg("apply"),
    );
    apply.wait_for(PROMPT);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (lease, before) = rt.block_on(lock_lease(&repo)).expect("the lock is held");

    // Every etcd connection of the apply is cut, the keep-alive stream with it.
    etcd.set(Mode::Reset);
    std::thread::sleep(Duration::from_secs(1));
    etcd.set(Mode::Pass);

    // The keep-alive comes back: the lease's TTL goes up again. Without it,
    // the TTL only falls, and the lock goes when it reaches zero.
    let mut last = before;
    loop {
        match rt.block_on(lock_lease(&repo)) {
            Some((id, ttl)) if id == lease => {
                if ttl > last {
                    break;
                }
                last = ttl;
            }
            other => panic!("the lock went after a 1 s blip: {other:?}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    apply.terminal.write_all(b"yes\n").unwrap();
    assert_eq!(
        apply.exit_code(),
        Some(0),
        "the apply completes under its lock"
    );
    let plan = run_bounded(repo.sluice().args(["plan", "--detailed-exitcode"]));
    assert_eq!(plan.code, 0, "{}", plan.all_output());
}
