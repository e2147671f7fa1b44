//! The local servers that `scripts/services.sh up` started, and what the live
//! tests do with them: `sluice` pointed at them, and clients of each.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use sluice::backend::kafka::sys::{ConfigOp, incremental_alter_configs};

use crate::common::{Run, TestRepo, root, run, sluice};

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

    /// The env file itself.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn lookup(text: &str, path: &Path, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("export {key}=")))
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

/// The servers, read once per test binary.
pub fn shared() -> &'static Services {
    static SERVICES: OnceLock<Services> = OnceLock::new();
    SERVICES.get_or_init(services)
}

impl TestRepo {
    /// The servers this repository's commands are pointed at.
    pub fn services(&self) -> &'static Services {
        shared()
    }

    /// `sluice` in the repository, pointed at the local servers.
    pub fn sluice(&self) -> Command {
        let mut cmd = sluice(self.dir.path());
        cmd.env("SLUICE_KAFKA_BOOTSTRAP", &self.services().kafka)
            .env("SLUICE_ETCD_ENDPOINTS", &self.services().etcd)
            .env("SLUICE_ETCD_PREFIX", self.prefix())
            .env("SLUICE_S3_ENDPOINT", &self.services().s3)
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
        s3_client(&self.services().s3)
    }

    pub fn run(&self, args: &[&str]) -> Run {
        run(self.sluice().args(args))
    }

    /// A Kafka admin client of the local broker.
    pub fn kafka_admin(&self) -> AdminClient<DefaultClientContext> {
        ClientConfig::new()
            .set("bootstrap.servers", &self.services().kafka)
            .create()
            .unwrap()
    }

    /// Whether the broker lists topic `<tag>-<short>` (a metadata request for
    /// every topic: one for a single topic may create it on brokers that
    /// auto-create).
    pub fn has_topic(&self, short: &str) -> bool {
        let topic = self.name(short);
        self.kafka_admin()
            .inner()
            .fetch_metadata(None, Duration::from_secs(10))
            .unwrap()
            .topics()
            .iter()
            .any(|t| t.name() == topic && t.error().is_none())
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

/// Runs check-jsonschema (installed by `scripts/services.sh install`) with
/// `args`: whether the files passed, and what it printed.
pub fn check_jsonschema(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let tool = shared().var("CHECK_JSONSCHEMA");
    let out = Command::new(&tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} does not run ({e}): scripts/services.sh install"));
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// `127.0.0.1:PORT` with nothing listening: a server that is down.
pub fn closed_port() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}
