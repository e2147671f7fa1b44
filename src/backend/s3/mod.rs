//! Disaster-recovery buckets in S3 (aws-sdk-s3): reads batched per bucket,
//! never per namespace, and shared documents merged, never overwritten.
//!
//! A bucket's lifecycle, replication and policy documents can hold rules from
//! several namespaces and from other tools. sluice owns only the rules and
//! statements whose ID or Sid is `sluice-<namespace>`; an apply reads the
//! document fresh, changes those, and writes everything else back as it was.
//!
//! [`bucket`] reads and converges a bucket's own settings, [`documents`]
//! merges its shared lifecycle, replication and policy documents, and
//! [`policy`] is the bucket policy document that keeps others' statements
//! byte for byte.

mod bucket;
mod documents;
pub mod layout;
mod newest;
mod objects;
pub mod policy;

pub use objects::{BucketObjects, Retention, Upload};

use documents::{lifecycle_value, replication_value};
use policy::Policy;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{LifecycleRule, ReplicationConfiguration};
use futures_util::{StreamExt, TryStreamExt};

use super::{Backend, BackendError, BackupCatalog, ConnectError};
use crate::config::workspace::S3Env;
use crate::plan::{Change, LiveResource, LiveState};
use crate::resource::{Address, Kind, OWNED_PREFIX, System, Value};
use crate::state::Fence;

/// How many times one S3 request is tried.
const ATTEMPTS: u32 = 3;

/// The S3 of one environment, with a client per region its buckets live in.
pub struct S3Backend {
    base: aws_sdk_s3::Config,
    home: String,
    clients: Mutex<HashMap<String, Client>>,
    /// How long one request may take.
    timeout: Duration,
}

/// A bucket's shared documents, as read.
#[derive(Clone, Debug, Default)]
struct BucketDocs {
    lifecycle: Vec<LifecycleRule>,
    replication: Option<ReplicationConfiguration>,
    policy: Option<String>,
}

/// The longest start every one of `prefixes` shares (on a char boundary).
fn common_start<'a>(prefixes: &[&'a str]) -> &'a str {
    let Some(first) = prefixes.first() else {
        return "";
    };
    let mut end = first.len();
    for p in &prefixes[1..] {
        end = first
            .char_indices()
            .zip(p.chars())
            .take_while(|((_, a), b)| a == b)
            .last()
            .map_or(0, |((i, a), _)| i + a.len_utf8())
            .min(end);
    }
    &first[..end]
}

/// How many buckets are read at once; each read sends its eight GETs together.
const BUCKETS_IN_FLIGHT: usize = 4;

fn read_error(message: String) -> BackendError {
    BackendError::Read {
        system: System::S3,
        message,
    }
}

/// The error code S3 answered with, if it answered.
fn code<E: ProvideErrorMetadata>(e: &E) -> &str {
    e.code().unwrap_or_default()
}

/// An S3 error as one line: its code and message, or the transport failure.
fn describe<E, R>(e: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if let SdkError::TimeoutError(_) = e {
        return "timed out after `--timeout` with no answer (each attempt waits that long)".into();
    }
    match (e.code(), e.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_owned(),
        _ => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            text
        }
    }
}

/// An S3 answer: `Some`, `None` when S3 says the thing was never set (one of
/// the `absent` codes), or the failure as one line naming the request.
fn answer<T, E, R>(
    result: Result<T, SdkError<E, R>>,
    op: &str,
    bucket: &str,
    absent: &[&str],
) -> Result<Option<T>, String>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(r) => Ok(Some(r)),
        Err(e) if absent.contains(&code(&e)) => Ok(None),
        Err(e) => Err(format!("{op} {bucket}: {}", describe(&e))),
    }
}

/// A write's outcome: S3's refusal becomes the change's error.
fn written<T, E, R>(
    result: Result<T, SdkError<E, R>>,
    op: &str,
    bucket: &str,
) -> Result<(), BackendError>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    answer(result, op, bucket, &[])
        .map(|_| ())
        .map_err(BackendError::Rejected)
}

fn rejected(op: &str, bucket: &str, e: impl std::fmt::Display) -> BackendError {
    BackendError::Rejected(format!("{op} {bucket}: {e}"))
}

impl S3Backend {
    /// A client for the environment's S3: static keys when the workspace
    /// names them, else the standard AWS chain.
    /// Every request has `timeout` to connect and to answer, and is tried at
    /// most three times (the SDK's standard retries, with jittered backoff);
    /// each read of a bucket as a whole has three times that.
    pub async fn connect(s3: &S3Env, timeout: Duration) -> Result<Self, ConnectError> {
        let region = Region::new(s3.region.clone());
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .region(region.clone())
            .load()
            .await;
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .read_timeout(timeout)
            .operation_attempt_timeout(timeout)
            .operation_timeout(timeout * ATTEMPTS)
            .build();
        let mut builder = aws_sdk_s3::config::Builder::from(&shared)
            .region(region)
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(ATTEMPTS))
            .force_path_style(s3.path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &s3.endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        if let (Some(id), Some(secret)) = (&s3.access_key_id, &s3.secret_access_key) {
            let id = id.resolve("s3.access_key_id")?;
            let secret = secret.resolve("s3.secret_access_key")?;
            builder =
                builder.credentials_provider(Credentials::new(id, secret, None, None, "sluice"));
        }
        Ok(S3Backend {
            base: builder.build(),
            home: s3.region.clone(),
            clients: Mutex::new(HashMap::new()),
            timeout,
        })
    }

    /// `work` with a bound on the whole of it (every attempt of every
    /// request): a server that accepts and never answers fails it, as
    /// "timed out after Ns".
    async fn bounded<T>(
        &self,
        what: &str,
        work: impl std::future::Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        tokio::time::timeout(self.limit(), work)
            .await
            .unwrap_or_else(|_| Err(read_error(format!("{what}: {}", self.timed_out()))))
    }

    /// How long one bounded piece of work may take: every attempt of it.
    fn limit(&self) -> Duration {
        self.timeout * ATTEMPTS
    }

    fn timed_out(&self) -> String {
        format!("timed out after {}s", self.limit().as_secs_f64())
    }

    /// The client that signs for `region`.
    fn client(&self, region: &str) -> Client {
        let mut clients = self
            .clients
            .lock()
            .expect("the client map is never poisoned");
        clients
            .entry(region.to_owned())
            .or_insert_with(|| {
                Client::from_conf(
                    self.base
                        .to_builder()
                        .region(Region::new(region.to_owned()))
                        .build(),
                )
            })
            .clone()
    }

    /// The bucket's region, or `None` when there is no such bucket.
    async fn region_of(&self, bucket: &str) -> Result<Option<String>, BackendError> {
        let location = answer(
            self.client(&self.home)
                .get_bucket_location()
                .bucket(bucket)
                .send()
                .await,
            "GetBucketLocation",
            bucket,
            &["NoSuchBucket"],
        )
        .map_err(read_error)?;
        Ok(location.map(|r| {
            r.location_constraint()
                .map(|c| c.as_str())
                .filter(|c| !c.is_empty())
                .unwrap_or("us-east-1")
                .to_owned()
        }))
    }

    /// The client for an existing bucket, for a write.
    async fn client_for(&self, bucket: &str) -> Result<Client, BackendError> {
        let region = self
            .region_of(bucket)
            .await?
            .ok_or_else(|| BackendError::Rejected(format!("bucket `{bucket}` does not exist")))?;
        Ok(self.client(&region))
    }
}

#[async_trait]
impl Backend for S3Backend {
    fn system(&self) -> System {
        System::S3
    }

    async fn read(&self, wanted: &[Address]) -> Result<LiveState, BackendError> {
        let buckets: BTreeSet<&str> = wanted.iter().map(|a| a.bucket_and_id().0).collect();
        let mut live = LiveState::default();
        let mut insert = |address: Address, value: Value| {
            let fingerprint = value.digest();
            live.resources
                .insert(address, LiveResource { value, fingerprint });
        };
        // A few buckets at once, each with its documents read together.
        let reads: Vec<_> = buckets.into_iter().map(|b| self.read_named(b)).collect();
        let read: Vec<_> = futures_util::stream::iter(reads)
            .buffered(BUCKETS_IN_FLIGHT)
            .try_collect()
            .await?;
        for (bucket, (value, docs)) in read.into_iter().flatten() {
            insert(Address::bucket(bucket), Value::Bucket(value));
            for rule in &docs.lifecycle {
                if let Some(id) = rule.id().filter(|id| id.starts_with(OWNED_PREFIX)) {
                    insert(
                        Address::in_bucket(Kind::S3Lifecycle, bucket, id),
                        Value::Lifecycle(lifecycle_value(rule)),
                    );
                }
            }
            if let Some(config) = &docs.replication {
                for rule in config.rules() {
                    if let Some(id) = rule.id().filter(|id| id.starts_with(OWNED_PREFIX)) {
                        insert(
                            Address::in_bucket(Kind::S3Replication, bucket, id),
                            Value::Replication(replication_value(config.role(), rule)),
                        );
                    }
                }
            }
            if let Some(text) = &docs.policy {
                let policy = Policy::parse(text)
                    .map_err(|e| read_error(format!("the policy of {bucket}: {e}")))?;
                for (sid, statement) in policy.owned() {
                    insert(
                        Address::in_bucket(Kind::S3Policy, bucket, &sid),
                        Value::Statement(statement),
                    );
                }
            }
        }
        Ok(live)
    }

    /// Changes to one bucket's document are merged into one write.
    /// One read-merge-write per bucket; none starts once the lock is lost.
    async fn apply(&self, changes: &[&Change], fence: &Fence) -> Vec<Result<(), BackendError>> {
        let mut by_bucket: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (i, c) in changes.iter().enumerate() {
            by_bucket
                .entry(c.address.bucket_and_id().0)
                .or_default()
                .push(i);
        }
        let mut results: Vec<Result<(), BackendError>> = changes.iter().map(|_| Ok(())).collect();
        for (bucket, indexes) in by_bucket {
            let group: Vec<&Change> = indexes.iter().map(|i| changes[*i]).collect();
            // Each request of a write is bounded by the SDK's timeouts; the
            // write as a whole is not, so a slow but answering S3 finishes it.
            let outcome = if fence.is_held() {
                self.write(bucket, &group).await
            } else {
                Err(BackendError::FenceLost)
            };
            for i in indexes {
                results[i] = outcome.clone();
            }
        }
        results
    }
}

#[async_trait]
impl BackupCatalog for S3Backend {
    /// When the newest complete run under each namespace directory started,
    /// from one listing of the bucket under the directories' common start,
    /// every page read (S3 lists by key, not by time, so no page can be
    /// skipped). A run is complete once its manifest is written: the segments
    /// of a run that died do not count. One listing per bucket instead of one
    /// per namespace: a plan of many DR namespaces sharing a few buckets costs
    /// a request per bucket and per thousand objects, and no object is read.
    async fn newest_backups(
        &self,
        bucket: &str,
        region: &str,
        dirs: &[&str],
    ) -> Result<Vec<Option<i64>>, BackendError> {
        let common = common_start(dirs);
        let what = format!("listing s3://{bucket}/{common}");
        let lister = BucketLister {
            client: self.client(region),
            bucket,
        };
        self.bounded(&what, newest::newest(&lister, common, dirs))
            .await
    }

    /// Lists buckets: proves S3 answers.
    async fn health(&self) -> Result<usize, String> {
        let listed = self.client(&self.home).list_buckets().send();
        match tokio::time::timeout(self.limit(), listed).await {
            Ok(Ok(r)) => Ok(r.buckets().len()),
            Ok(Err(SdkError::TimeoutError(_))) | Err(_) => Err(self.timed_out()),
            Ok(Err(e)) => Err(describe(&e)),
        }
    }
}

/// [`newest::Lister`] over one bucket.
struct BucketLister<'a> {
    client: Client,
    bucket: &'a str,
}

#[async_trait]
impl newest::Lister for BucketLister<'_> {
    async fn page(
        &self,
        prefix: &str,
        delimited: bool,
        token: Option<String>,
    ) -> Result<newest::Page, BackendError> {
        let bucket = self.bucket;
        let page = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_delimiter(delimited.then(|| "/".to_owned()))
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| {
                read_error(format!("ListObjectsV2 {bucket}/{prefix}: {}", describe(&e)))
            })?;
        Ok(newest::Page {
            keys: page
                .contents()
                .iter()
                .filter_map(|o| Some((o.key()?.to_owned(), o.last_modified().map(|t| t.secs()))))
                .collect(),
            prefixes: page
                .common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_owned))
                .collect(),
            next: page
                .is_truncated()
                .unwrap_or(false)
                .then(|| page.next_continuation_token().map(str::to_owned))
                .flatten(),
        })
    }

    async fn modified(&self, key: &str) -> Result<Option<Option<i64>>, BackendError> {
        let bucket = self.bucket;
        match self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(head) => Ok(Some(head.last_modified().map(|t| t.secs()))),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(e) => Err(read_error(format!(
                "HeadObject {bucket}/{key}: {}",
                describe(&e)
            ))),
        }
    }
}
