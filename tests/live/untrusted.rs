//! What a pull request controls is untrusted input, against the real
//! servers. Each test is named after the defect it guards against.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use git2::Repository;

use crate::common::{TestRepo, commit_all, run, sluice};

const CANARY: &str = "CANARY-secret-77";

/// A listener that counts who connects, and closes at once.
fn trap() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            if conn.is_ok() {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    (address, hits)
}

/// A pull request chose where CI's secrets go: its own `sluice.yaml`
/// pointed Kafka at its host with a secret reference, and CI connected.
#[test]
fn a_pull_request_that_points_kafka_at_its_own_host_is_never_connected_to() {
    let repo = TestRepo::new();
    let s = repo.services();
    let git = Repository::init(repo.dir.path()).unwrap();
    let ws = repo.dir.path().join("sluice.yaml");
    let base_text = std::fs::read_to_string(&ws).unwrap().replace(
        "127.0.0.1:9\"]\n        brokers",
        &format!("{}\"]\n        brokers", s.kafka),
    );
    std::fs::write(&ws, &base_text).unwrap();
    repo.namespace("a", "  topics:\n    - name: {tag}-a\n");
    commit_all(&git, "base");

    let (evil, hits) = trap();
    let pr_text = base_text.replace(
        &format!("bootstrap_servers: [\"{}\"]", s.kafka),
        &format!(
            "bootstrap_servers: [\"{evil}\"]\n        security_protocol: sasl_plaintext\n        sasl:\n          mechanism: PLAIN\n          username: ci\n          password: ${{env:CI_KAFKA_PASSWORD}}"
        ),
    );
    assert_ne!(pr_text, base_text);
    std::fs::write(&ws, &pr_text).unwrap();
    repo.namespace("a", "  topics:\n    - name: {tag}-a\n    - name: {tag}-b\n");
    commit_all(&git, "the pull request");

    // CI's environment: its endpoints for etcd and S3, its secret; Kafka
    // is not overridden, so only the workspace says where it is.
    let out = run(sluice(repo.dir.path())
        .args(["plan", "--base", "HEAD~1", "--format", "json"])
        .env("SLUICE_ETCD_ENDPOINTS", &s.etcd)
        .env("SLUICE_ETCD_PREFIX", repo.prefix())
        .env("SLUICE_S3_ENDPOINT", &s.s3)
        .env("CI_KAFKA_PASSWORD", CANARY));
    assert_eq!(out.code, 0, "{}", out.all_output());
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "CI connected to the pull request's host"
    );
    let plan = out.json();
    let review: Vec<&str> = plan["review"]
        .as_array()
        .expect("the plan names what to review")
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        review.contains(&"environments.local.kafka.bootstrap_servers"),
        "{review:?}"
    );
    assert!(
        review.contains(&"environments.local.kafka.sasl"),
        "{review:?}"
    );
    // It still planned the namespace change, with the base's connection.
    assert!(
        out.stdout
            .contains(&format!("kafka.topic/{}", repo.name("b"))),
        "{}",
        out.stdout
    );
    assert!(!out.all_output().contains(CANARY), "{}", out.all_output());
    let md = run(sluice(repo.dir.path())
        .args(["plan", "--base", "HEAD~1", "--format", "markdown"])
        .env("SLUICE_ETCD_ENDPOINTS", &s.etcd)
        .env("SLUICE_ETCD_PREFIX", repo.prefix())
        .env("SLUICE_S3_ENDPOINT", &s.s3)
        .env("CI_KAFKA_PASSWORD", CANARY));
    assert!(md.stdout.contains("connection settings"), "{}", md.stdout);
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}
