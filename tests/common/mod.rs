//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use std::sync::Arc;
use std::time::Duration;

use git2::{IndexAddOption, Oid, Repository, Signature};
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use sluice::backend::kafka::sys::{ConfigOp, incremental_alter_configs};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What a `sluice` run printed and returned.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Everything printed, for "never appears" checks.
    pub fn all_output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// A `sluice` command in `dir`, isolated from the caller's `SLUICE_*` settings.
pub fn sluice(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.current_dir(dir).env("NO_COLOR", "1");
    for (name, _) in std::env::vars() {
        if name.starts_with("SLUICE_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

pub fn run(cmd: &mut Command) -> Run {
    let out = cmd.output().expect("the sluice binary runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Copies a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Addresses of the local servers that `scripts/services.sh up` started.
#[derive(Debug, Clone)]
pub struct Services {
    pub etcd: String,
    pub s3: String,
    pub kafka: String,
    /// The whole env file, for [`Services::var`].
    text: String,
    path: PathBuf,
}

impl Services {
    /// A variable of the env file; panics naming the file when it is missing.
    pub fn var(&self, key: &str) -> String {
        lookup(&self.text, &self.path, key)
    }
}

fn lookup(text: &str, path: &Path, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| {
            panic!(
                "{} has no {key}: restart the servers with `scripts/services.sh down && scripts/services.sh up`",
                path.display()
            )
        })
        .to_owned()
}

/// Reads the servers' env file (`$SLUICE_SERVICES_ENV`, else `.services/env`).
/// Fails loudly when the servers are not up: these tests never skip.
pub fn services() -> Services {
    let path = std::env::var_os("SLUICE_SERVICES_ENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".services/env"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "the local servers are not running ({} is missing): start them with `scripts/services.sh up`, or run the suite with `scripts/test.sh`",
            path.display()
        )
    });
    Services {
        etcd: lookup(&text, &path, "SLUICE_ETCD_ENDPOINTS"),
        s3: lookup(&text, &path, "SLUICE_S3_ENDPOINT"),
        kafka: lookup(&text, &path, "SLUICE_KAFKA_BOOTSTRAP"),
        text,
        path,
    }
}

/// A name no other test run uses, for resources on the shared servers.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// A config repository of one test: its namespaces carry a unique tag and
/// its etcd prefix is its own, so tests share the servers without meeting.
pub struct TestRepo {
    pub dir: tempfile::TempDir,
    pub tag: String,
    pub services: Services,
}

impl TestRepo {
    pub fn new() -> Self {
        let repo = TestRepo {
            dir: tempfile::tempdir().unwrap(),
            tag: unique("t").replace('-', ""),
            services: services(),
        };
        std::fs::create_dir_all(repo.dir.path().join("namespaces")).unwrap();
        repo.workspace("");
        repo
    }

    /// Writes `sluice.yaml` with one `local` environment; `extra` goes under `spec`.
    pub fn workspace(&self, extra: &str) {
        let text = format!(
            "apiVersion: sluice/v1\nkind: Workspace\nspec:\n  environments:\n    local:\n      stage: dev\n      kafka:\n        bootstrap_servers: [\"127.0.0.1:9\"]\n        brokers: 1\n      s3:\n        region: us-east-1\n        endpoint: http://127.0.0.1:9\n        path_style: true\n        replication_role: arn:aws:iam::123456789012:role/tests\n      etcd:\n        endpoints: [\"http://127.0.0.1:9\"]\n      defaults:\n        replication_factor: 1\n{extra}"
        );
        std::fs::write(self.dir.path().join("sluice.yaml"), text).unwrap();
    }

    /// The name a namespace or topic of this test gets.
    pub fn name(&self, short: &str) -> String {
        format!("{}-{short}", self.tag)
    }

    /// Writes `namespaces/<short>.yaml` for namespace `<tag>-<short>`; `spec`
    /// is the indented body under `spec:`, where `{tag}` stands for the tag.
    pub fn namespace(&self, short: &str, spec: &str) {
        self.write_namespace(short, "", spec);
    }

    /// [`TestRepo::namespace`] of a tier (`critical`, `standard`, `best-effort`).
    pub fn namespace_in_tier(&self, short: &str, tier: &str, spec: &str) {
        self.write_namespace(short, &format!("  tier: {tier}\n"), spec);
    }

    fn write_namespace(&self, short: &str, metadata: &str, spec: &str) {
        let text = format!(
            "apiVersion: sluice/v1\nkind: Namespace\nmetadata:\n  name: {}\n  owner: tests\n{metadata}spec:\n{}",
            self.name(short),
            spec.replace("{tag}", &self.tag)
        );
        std::fs::write(
            self.dir.path().join(format!("namespaces/{short}.yaml")),
            text,
        )
        .unwrap();
    }

    pub fn remove_namespace(&self, short: &str) {
        std::fs::remove_file(self.dir.path().join(format!("namespaces/{short}.yaml"))).unwrap();
    }

    /// The etcd prefix of this test.
    pub fn prefix(&self) -> String {
        format!("/{}/", self.tag)
    }

    /// `sluice` in the repository, pointed at the local servers.
    pub fn sluice(&self) -> Command {
        let mut cmd = sluice(self.dir.path());
        cmd.env("SLUICE_KAFKA_BOOTSTRAP", &self.services.kafka)
            .env("SLUICE_ETCD_ENDPOINTS", &self.services.etcd)
            .env("SLUICE_ETCD_PREFIX", self.prefix())
            .env("SLUICE_S3_ENDPOINT", &self.services.s3)
            .env("AWS_ACCESS_KEY_ID", "sluice-local")
            .env("AWS_SECRET_ACCESS_KEY", "sluice-local");
        cmd
    }

    /// A bucket name of this test.
    pub fn bucket(&self, short: &str) -> String {
        format!("{}-{short}", self.tag)
    }

    /// An S3 client for the local server.
    pub fn s3(&self) -> aws_sdk_s3::Client {
        s3_client(&self.services.s3)
    }

    pub fn run(&self, args: &[&str]) -> Run {
        run(self.sluice().args(args))
    }

    /// A Kafka admin client of the local broker.
    pub fn kafka_admin(&self) -> AdminClient<DefaultClientContext> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.services.kafka)
            .create()
            .unwrap()
    }

    /// Sets a topic config behind sluice's back, as another tool would.
    pub fn set_topic_config(&self, topic: &str, key: &str, value: &str) {
        let changed = incremental_alter_configs(
            &Arc::new(self.kafka_admin()),
            &[(
                topic.to_owned(),
                vec![(key.to_owned(), ConfigOp::Set(value.to_owned()))],
            )],
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(changed, [Ok(())]);
    }
}

/// An S3 client for an S3-compatible server at `endpoint`.
pub fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    use aws_sdk_s3::config::{
        BehaviorVersion, Credentials, Region, RequestChecksumCalculation,
        ResponseChecksumValidation,
    };
    let config = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .force_path_style(true)
        .credentials_provider(Credentials::new(
            "sluice-local",
            "sluice-local",
            None,
            None,
            "static",
        ))
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// `127.0.0.1:PORT` with nothing listening: a server that is down.
pub fn closed_port() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}

/// Commits everything in the work tree of `repo`; returns the commit.
pub fn commit_all(repo: &Repository, message: &str) -> Oid {
    let mut index = repo.index().unwrap();
    index.add_all(["*"], IndexAddOption::DEFAULT, None).unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = Signature::now("sluice tests", "tests@sluice.invalid").unwrap();
    let parents: Vec<_> = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .into_iter()
        .collect();
    let parents: Vec<_> = parents.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
        .unwrap()
}
