//! Disaster-recovery buckets in S3 (aws-sdk-s3): reads batched per bucket,
//! never per namespace, and shared documents merged, never overwritten.
//!
//! A bucket's lifecycle, replication and policy documents can hold rules from
//! several namespaces and from other tools. sluice owns only the rules and
//! statements whose ID or Sid is `sluice-<namespace>`; an apply reads the
//! document fresh, changes those, and writes everything else back as it was.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::DateTime;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketLocationConstraint, BucketVersioningStatus,
    CreateBucketConfiguration, DefaultRetention, DeleteMarkerReplication,
    DeleteMarkerReplicationStatus, Destination, ExpirationStatus, LifecycleExpiration,
    LifecycleRule, LifecycleRuleFilter, NoncurrentVersionExpiration, ObjectLockConfiguration,
    ObjectLockEnabled, ObjectLockRetentionMode, ObjectLockRule, PublicAccessBlockConfiguration,
    ReplicationConfiguration, ReplicationRule, ReplicationRuleFilter, ReplicationRuleStatus,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration,
    ServerSideEncryptionRule, Tag, Tagging, VersioningConfiguration,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{Backend, BackendError, ConnectError};
use crate::config::workspace::S3Env;
use crate::plan::{Action, Change, LiveResource, LiveState};
use crate::resource::{
    Address, BucketValue, Kind, LifecycleValue, LockRetention, OWNED_PREFIX, ReplicationValue,
    System, Value,
};
use crate::state::Fence;

/// The S3 of one environment, with a client per region its buckets live in.
pub struct S3Backend {
    base: aws_sdk_s3::Config,
    home: String,
    clients: Mutex<HashMap<String, Client>>,
}

/// A bucket's shared documents, as read.
#[derive(Clone, Debug, Default)]
struct BucketDocs {
    lifecycle: Vec<LifecycleRule>,
    replication: Option<ReplicationConfiguration>,
    policy: Option<String>,
}

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

/// Each of a document's changes: the rule ID or Sid, and the value to write
/// (`None`: remove it).
fn owned<'a>(changes: &'a [&'a Change]) -> impl Iterator<Item = (&'a str, Option<&'a Value>)> {
    changes.iter().map(|c| {
        let value = match c.action {
            Action::Create | Action::Update => c.desired.as_ref(),
            Action::Delete | Action::Blocked => None,
        };
        (c.address.bucket_and_id().1.unwrap_or_default(), value)
    })
}

// One reader per setting or document, shared by the plan's read and the
// apply's read-merge-write.

async fn tags_of(c: &Client, bucket: &str) -> Result<BTreeMap<String, String>, String> {
    let tags = answer(
        c.get_bucket_tagging().bucket(bucket).send().await,
        "GetBucketTagging",
        bucket,
        &["NoSuchTagSet", "NoSuchTagSetError"],
    )?;
    Ok(tags
        .map(|t| {
            t.tag_set()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect()
        })
        .unwrap_or_default())
}

/// Whether the bucket has any default encryption (KMS counts).
async fn encrypted(c: &Client, bucket: &str) -> Result<bool, String> {
    let sse = answer(
        c.get_bucket_encryption().bucket(bucket).send().await,
        "GetBucketEncryption",
        bucket,
        &["ServerSideEncryptionConfigurationNotFoundError"],
    )?;
    Ok(sse
        .and_then(|s| s.server_side_encryption_configuration().cloned())
        .is_some_and(|s| !s.rules().is_empty()))
}

async fn lifecycle_of(c: &Client, bucket: &str) -> Result<Vec<LifecycleRule>, String> {
    let l = answer(
        c.get_bucket_lifecycle_configuration()
            .bucket(bucket)
            .send()
            .await,
        "GetBucketLifecycleConfiguration",
        bucket,
        &["NoSuchLifecycleConfiguration"],
    )?;
    Ok(l.map(|l| l.rules().to_vec()).unwrap_or_default())
}

async fn replication_of(
    c: &Client,
    bucket: &str,
) -> Result<Option<ReplicationConfiguration>, String> {
    let r = answer(
        c.get_bucket_replication().bucket(bucket).send().await,
        "GetBucketReplication",
        bucket,
        &["ReplicationConfigurationNotFoundError"],
    )?;
    Ok(r.and_then(|r| r.replication_configuration().cloned()))
}

async fn policy_of(c: &Client, bucket: &str) -> Result<Option<String>, String> {
    let p = answer(
        c.get_bucket_policy().bucket(bucket).send().await,
        "GetBucketPolicy",
        bucket,
        &["NoSuchBucketPolicy"],
    )?;
    Ok(p.and_then(|p| p.policy().map(str::to_owned)))
}

impl S3Backend {
    /// A client for the environment's S3: static keys when the workspace
    /// names them, else the standard AWS chain.
    pub async fn connect(s3: &S3Env) -> Result<Self, ConnectError> {
        let region = Region::new(s3.region.clone());
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .region(region.clone())
            .load()
            .await;
        let mut builder = aws_sdk_s3::config::Builder::from(&shared)
            .region(region)
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
        })
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

    /// Lists buckets: proves S3 answers, for `status`.
    pub async fn health(&self) -> Result<usize, String> {
        self.client(&self.home)
            .list_buckets()
            .send()
            .await
            .map(|r| r.buckets().len())
            .map_err(|e| describe(&e))
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

    /// The newest LastModified under a prefix of a bucket in `region`, or
    /// `None` when it holds nothing.
    pub async fn newest_object(
        &self,
        bucket: &str,
        region: &str,
        prefix: &str,
    ) -> Result<Option<DateTime>, BackendError> {
        let mut pages = self
            .client(region)
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut newest: Option<DateTime> = None;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                read_error(format!("ListObjectsV2 {bucket}/{prefix}: {}", describe(&e)))
            })?;
            for o in page.contents() {
                if let Some(t) = o.last_modified()
                    && newest.is_none_or(|n| t.secs() > n.secs())
                {
                    newest = Some(*t);
                }
            }
        }
        Ok(newest)
    }

    /// One bucket's settings and documents, read together.
    async fn read_bucket(
        &self,
        bucket: &str,
    ) -> Result<Option<(BucketValue, BucketDocs)>, BackendError> {
        let Some(region) = self.region_of(bucket).await? else {
            return Ok(None);
        };
        let c = self.client(&region);
        let (versioning, lock, pab, encrypted, tags, lifecycle, replication, policy) = tokio::join!(
            c.get_bucket_versioning().bucket(bucket).send(),
            c.get_object_lock_configuration().bucket(bucket).send(),
            c.get_public_access_block().bucket(bucket).send(),
            encrypted(&c, bucket),
            tags_of(&c, bucket),
            lifecycle_of(&c, bucket),
            replication_of(&c, bucket),
            policy_of(&c, bucket),
        );
        let versioning =
            answer(versioning, "GetBucketVersioning", bucket, &[]).map_err(read_error)?;
        let lock = answer(
            lock,
            "GetObjectLockConfiguration",
            bucket,
            &["ObjectLockConfigurationNotFoundError"],
        )
        .map_err(read_error)?
        .and_then(|l| l.object_lock_configuration().cloned());
        let pab = answer(
            pab,
            "GetPublicAccessBlock",
            bucket,
            &["NoSuchPublicAccessBlockConfiguration"],
        )
        .map_err(read_error)?;

        let retention = lock
            .as_ref()
            .and_then(|l| l.rule())
            .and_then(|r| r.default_retention())
            .and_then(|d| {
                Some(LockRetention {
                    mode: d.mode()?.as_str().to_owned(),
                    days: u32::try_from(d.days().or(d.years().map(|y| y * 365))?).ok()?,
                })
            });
        let value = BucketValue {
            region,
            versioning: versioning.and_then(|v| v.status().cloned())
                == Some(BucketVersioningStatus::Enabled),
            object_lock_enabled: lock.as_ref().and_then(|l| l.object_lock_enabled())
                == Some(&ObjectLockEnabled::Enabled),
            object_lock: retention,
            public_access_blocked: pab
                .and_then(|p| p.public_access_block_configuration().cloned())
                .is_some_and(|p| {
                    [
                        p.block_public_acls(),
                        p.ignore_public_acls(),
                        p.block_public_policy(),
                        p.restrict_public_buckets(),
                    ]
                    .iter()
                    .all(|b| *b == Some(true))
                }),
            default_encryption: encrypted.map_err(read_error)?,
            tags: tags.map_err(read_error)?,
        };
        let docs = BucketDocs {
            lifecycle: lifecycle.map_err(read_error)?,
            replication: replication.map_err(read_error)?,
            policy: policy.map_err(read_error)?,
        };
        Ok(Some((value, docs)))
    }

    /// Applies the changes to one bucket: its settings, or one of its
    /// documents in one read-merge-write.
    async fn write(&self, bucket: &str, changes: &[&Change]) -> Result<(), BackendError> {
        match changes[0].address.kind() {
            // A bucket has one address, so one change.
            Kind::S3Bucket => match (changes[0].action, &changes[0].desired) {
                (Action::Delete, _) => self.delete_bucket(bucket).await,
                (_, Some(Value::Bucket(b))) => self.converge_bucket(bucket, b).await,
                _ => Err(not_a(changes[0])),
            },
            Kind::S3Lifecycle => self.merge_lifecycle(bucket, changes).await,
            Kind::S3Replication => self.merge_replication(bucket, changes).await,
            Kind::S3Policy => self.merge_policy(bucket, changes).await,
            _ => Err(not_a(changes[0])),
        }
    }

    /// Creates the bucket when missing, then sets every setting sluice
    /// manages. Each call is idempotent, so a re-run converges.
    async fn converge_bucket(&self, bucket: &str, want: &BucketValue) -> Result<(), BackendError> {
        let c = self.client(&want.region);
        if self.region_of(bucket).await?.is_none() {
            let mut create = c
                .create_bucket()
                .bucket(bucket)
                .object_lock_enabled_for_bucket(want.object_lock_enabled);
            if want.region != "us-east-1" {
                create = create.create_bucket_configuration(
                    CreateBucketConfiguration::builder()
                        .location_constraint(BucketLocationConstraint::from(want.region.as_str()))
                        .build(),
                );
            }
            let created = answer(
                create.send().await,
                "CreateBucket",
                bucket,
                &["BucketAlreadyOwnedByYou"],
            );
            created.map_err(BackendError::Rejected)?;
        }
        if want.versioning {
            let enabled = VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build();
            written(
                c.put_bucket_versioning()
                    .bucket(bucket)
                    .versioning_configuration(enabled)
                    .send()
                    .await,
                "PutBucketVersioning",
                bucket,
            )?;
        }
        if want.public_access_blocked {
            let all = PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build();
            written(
                c.put_public_access_block()
                    .bucket(bucket)
                    .public_access_block_configuration(all)
                    .send()
                    .await,
                "PutPublicAccessBlock",
                bucket,
            )?;
        }
        // A bucket encrypted with KMS already meets the bar; keep it.
        if want.default_encryption
            && !encrypted(&c, bucket)
                .await
                .map_err(BackendError::Rejected)?
        {
            let op = "PutBucketEncryption";
            let aes = ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::Aes256)
                .build()
                .map_err(|e| rejected(op, bucket, e))?;
            let config = ServerSideEncryptionConfiguration::builder()
                .rules(
                    ServerSideEncryptionRule::builder()
                        .apply_server_side_encryption_by_default(aes)
                        .build(),
                )
                .build()
                .map_err(|e| rejected(op, bucket, e))?;
            written(
                c.put_bucket_encryption()
                    .bucket(bucket)
                    .server_side_encryption_configuration(config)
                    .send()
                    .await,
                op,
                bucket,
            )?;
        }
        // Tagging replaces the whole set: keep everyone else's tags.
        let mut tags = tags_of(&c, bucket).await.map_err(BackendError::Rejected)?;
        if want.tags.iter().any(|(k, v)| tags.get(k) != Some(v)) {
            let op = "PutBucketTagging";
            tags.extend(want.tags.clone());
            let set = tags
                .into_iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| rejected(op, bucket, e))?;
            let tagging = Tagging::builder()
                .set_tag_set(Some(set))
                .build()
                .map_err(|e| rejected(op, bucket, e))?;
            written(
                c.put_bucket_tagging()
                    .bucket(bucket)
                    .tagging(tagging)
                    .send()
                    .await,
                op,
                bucket,
            )?;
        }
        if let Some(lock) = &want.object_lock {
            let retention = DefaultRetention::builder()
                .mode(ObjectLockRetentionMode::from(lock.mode.as_str()))
                .days(i32::try_from(lock.days).unwrap_or(i32::MAX))
                .build();
            let config = ObjectLockConfiguration::builder()
                .object_lock_enabled(ObjectLockEnabled::Enabled)
                .rule(
                    ObjectLockRule::builder()
                        .default_retention(retention)
                        .build(),
                )
                .build();
            written(
                c.put_object_lock_configuration()
                    .bucket(bucket)
                    .object_lock_configuration(config)
                    .send()
                    .await,
                "PutObjectLockConfiguration",
                bucket,
            )?;
        }
        Ok(())
    }

    /// Deletes a bucket sluice created. S3 refuses while it holds objects,
    /// which keeps backups safe; a bucket already gone is success.
    async fn delete_bucket(&self, bucket: &str) -> Result<(), BackendError> {
        let Some(region) = self.region_of(bucket).await? else {
            return Ok(());
        };
        let deleted = self
            .client(&region)
            .delete_bucket()
            .bucket(bucket)
            .send()
            .await;
        answer(deleted, "DeleteBucket", bucket, &["NoSuchBucket"])
            .map(|_| ())
            .map_err(|e| {
                BackendError::Rejected(format!(
                    "{e} (S3 deletes only empty buckets; empty it first if the backups may go)"
                ))
            })
    }

    async fn merge_lifecycle(&self, bucket: &str, changes: &[&Change]) -> Result<(), BackendError> {
        let c = self.client_for(bucket).await?;
        let mut rules = lifecycle_of(&c, bucket)
            .await
            .map_err(BackendError::Rejected)?;
        for (id, value) in owned(changes) {
            rules.retain(|r| r.id() != Some(id));
            if let Some(Value::Lifecycle(v)) = value {
                rules.push(lifecycle_rule(id, v)?);
            }
        }
        if rules.is_empty() {
            let deleted = c.delete_bucket_lifecycle().bucket(bucket).send().await;
            return written(deleted, "DeleteBucketLifecycle", bucket);
        }
        let op = "PutBucketLifecycleConfiguration";
        let config = BucketLifecycleConfiguration::builder()
            .set_rules(Some(rules))
            .build()
            .map_err(|e| rejected(op, bucket, e))?;
        let put = c
            .put_bucket_lifecycle_configuration()
            .bucket(bucket)
            .lifecycle_configuration(config)
            .send()
            .await;
        written(put, op, bucket)
    }

    async fn merge_replication(
        &self,
        bucket: &str,
        changes: &[&Change],
    ) -> Result<(), BackendError> {
        let c = self.client_for(bucket).await?;
        let (mut role, mut rules) = replication_of(&c, bucket)
            .await
            .map_err(BackendError::Rejected)?
            .map(|r| (Some(r.role().to_owned()), r.rules().to_vec()))
            .unwrap_or_default();
        for (id, value) in owned(changes) {
            rules.retain(|r| r.id() != Some(id));
            let Some(Value::Replication(v)) = value else {
                continue;
            };
            let foreign = rules
                .iter()
                .any(|r| !r.id().unwrap_or_default().starts_with(OWNED_PREFIX));
            match &role {
                Some(r) if r != &v.role && foreign => {
                    return Err(BackendError::Rejected(format!(
                        "bucket `{bucket}` replicates other rules with role `{r}`, and a bucket has one replication role; set `s3.replication_role` to it"
                    )));
                }
                _ => role = Some(v.role.clone()),
            }
            let priority = rules.iter().filter_map(|r| r.priority()).max().unwrap_or(0) + 1;
            rules.push(replication_rule(id, priority, v)?);
        }
        let Some(role) = role.filter(|_| !rules.is_empty()) else {
            let deleted = c.delete_bucket_replication().bucket(bucket).send().await;
            return written(deleted, "DeleteBucketReplication", bucket);
        };
        let op = "PutBucketReplication";
        let config = ReplicationConfiguration::builder()
            .role(role)
            .set_rules(Some(rules))
            .build()
            .map_err(|e| rejected(op, bucket, e))?;
        let put = c
            .put_bucket_replication()
            .bucket(bucket)
            .replication_configuration(config)
            .send()
            .await;
        written(put, op, bucket)
    }

    async fn merge_policy(&self, bucket: &str, changes: &[&Change]) -> Result<(), BackendError> {
        let c = self.client_for(bucket).await?;
        let text = policy_of(&c, bucket)
            .await
            .map_err(BackendError::Rejected)?;
        let mut policy = match text {
            Some(text) => {
                Policy::parse(&text).map_err(|e| rejected("GetBucketPolicy", bucket, e))?
            }
            None => Policy::default(),
        };
        for (sid, value) in owned(changes) {
            let statement = match value {
                Some(Value::Statement(s)) => Some(s),
                _ => None,
            };
            policy.set(sid, statement);
        }
        if policy.statements.is_empty() {
            let deleted = c.delete_bucket_policy().bucket(bucket).send().await;
            return written(deleted, "DeleteBucketPolicy", bucket);
        }
        let put = c
            .put_bucket_policy()
            .bucket(bucket)
            .policy(policy.to_text())
            .send()
            .await;
        written(put, "PutBucketPolicy", bucket)
    }
}

fn not_a(change: &Change) -> BackendError {
    BackendError::Rejected(format!("{} is not an S3 change", change.address))
}

fn lifecycle_rule(id: &str, v: &LifecycleValue) -> Result<LifecycleRule, BackendError> {
    let days = |d: u32| i32::try_from(d).unwrap_or(i32::MAX);
    LifecycleRule::builder()
        .id(id)
        .filter(LifecycleRuleFilter::builder().prefix(&v.prefix).build())
        .status(ExpirationStatus::Enabled)
        .set_expiration(
            v.expiration_days
                .map(|d| LifecycleExpiration::builder().days(days(d)).build()),
        )
        .set_noncurrent_version_expiration(v.noncurrent_days.map(|d| {
            NoncurrentVersionExpiration::builder()
                .noncurrent_days(days(d))
                .build()
        }))
        .build()
        .map_err(|e| BackendError::Rejected(e.to_string()))
}

fn replication_rule(
    id: &str,
    priority: i32,
    v: &ReplicationValue,
) -> Result<ReplicationRule, BackendError> {
    let destination = Destination::builder()
        .bucket(format!("arn:aws:s3:::{}", v.destination_bucket))
        .build()
        .map_err(|e| BackendError::Rejected(e.to_string()))?;
    ReplicationRule::builder()
        .id(id)
        .priority(priority)
        .filter(ReplicationRuleFilter::builder().prefix(&v.prefix).build())
        .status(if v.enabled {
            ReplicationRuleStatus::Enabled
        } else {
            ReplicationRuleStatus::Disabled
        })
        .delete_marker_replication(
            DeleteMarkerReplication::builder()
                .status(DeleteMarkerReplicationStatus::Disabled)
                .build(),
        )
        .destination(destination)
        .build()
        .map_err(|e| BackendError::Rejected(e.to_string()))
}

/// sluice's view of a lifecycle rule it owns.
fn lifecycle_value(r: &LifecycleRule) -> LifecycleValue {
    let days = |d: Option<i32>| d.and_then(|d| u32::try_from(d).ok());
    LifecycleValue {
        prefix: r
            .filter()
            .and_then(|f| f.prefix())
            .unwrap_or_default()
            .to_owned(),
        expiration_days: days(r.expiration().and_then(|e| e.days())),
        noncurrent_days: days(
            r.noncurrent_version_expiration()
                .and_then(|e| e.noncurrent_days()),
        ),
    }
}

fn replication_value(role: &str, r: &ReplicationRule) -> ReplicationValue {
    let bucket = r.destination().map(|d| d.bucket()).unwrap_or_default();
    ReplicationValue {
        prefix: r
            .filter()
            .and_then(|f| f.prefix())
            .unwrap_or_default()
            .to_owned(),
        destination_bucket: bucket
            .strip_prefix("arn:aws:s3:::")
            .unwrap_or(bucket)
            .to_owned(),
        role: role.to_owned(),
        enabled: r.status() == &ReplicationRuleStatus::Enabled,
    }
}

/// A bucket policy whose statements are kept as the exact text they were
/// read as, so that statements sluice does not own are written back
/// byte-for-byte.
#[derive(Debug, Default)]
pub struct Policy {
    version: Option<String>,
    id: Option<String>,
    statements: Vec<Box<RawValue>>,
}

#[derive(Deserialize)]
struct PolicyText<'a> {
    #[serde(rename = "Version", default)]
    version: Option<String>,
    #[serde(rename = "Id", default)]
    id: Option<String>,
    #[serde(rename = "Statement", borrow)]
    statement: &'a RawValue,
}

#[derive(Serialize)]
struct PolicyOut<'a> {
    #[serde(rename = "Version")]
    version: &'a str,
    #[serde(rename = "Id", skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "Statement")]
    statement: &'a [Box<RawValue>],
}

#[derive(Deserialize)]
struct SidOnly {
    #[serde(rename = "Sid", default)]
    sid: Option<String>,
}

impl Policy {
    pub fn parse(text: &str) -> Result<Policy, serde_json::Error> {
        let doc: PolicyText = serde_json::from_str(text)?;
        let raw = doc.statement.get().trim_start();
        // IAM allows one statement object in place of a list.
        let statements = if raw.starts_with('[') {
            serde_json::from_str::<Vec<Box<RawValue>>>(raw)?
        } else {
            vec![RawValue::from_string(raw.to_owned())?]
        };
        Ok(Policy {
            version: doc.version,
            id: doc.id,
            statements,
        })
    }

    fn sid(raw: &RawValue) -> Option<String> {
        serde_json::from_str::<SidOnly>(raw.get()).ok()?.sid
    }

    /// The statements sluice owns, by Sid, as JSON.
    pub fn owned(&self) -> impl Iterator<Item = (String, serde_json::Value)> + '_ {
        self.statements.iter().filter_map(|raw| {
            let sid = Self::sid(raw).filter(|s| s.starts_with(OWNED_PREFIX))?;
            Some((sid, serde_json::from_str(raw.get()).ok()?))
        })
    }

    /// Replaces, adds or (with `None`) removes the statement `sid`, in place.
    pub fn set(&mut self, sid: &str, statement: Option<&serde_json::Value>) {
        let at = self
            .statements
            .iter()
            .position(|raw| Self::sid(raw).as_deref() == Some(sid));
        let new = statement.map(|s| {
            RawValue::from_string(s.to_string()).expect("a JSON value is valid JSON text")
        });
        match (at, new) {
            (Some(i), Some(new)) => self.statements[i] = new,
            (Some(i), None) => {
                self.statements.remove(i);
            }
            (None, Some(new)) => self.statements.push(new),
            (None, None) => {}
        }
    }

    pub fn to_text(&self) -> String {
        serde_json::to_string(&PolicyOut {
            version: self.version.as_deref().unwrap_or("2012-10-17"),
            id: self.id.as_deref(),
            statement: &self.statements,
        })
        .expect("a policy is JSON")
    }

    /// The statement texts, as read: for tests that foreign ones survive.
    pub fn statement_texts(&self) -> impl Iterator<Item = &str> {
        self.statements.iter().map(|s| s.get())
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
        for bucket in buckets {
            let Some((value, docs)) = self.read_bucket(bucket).await? else {
                continue;
            };
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
    async fn apply(&self, changes: &[&Change], _fence: &Fence) -> Vec<Result<(), BackendError>> {
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
            let outcome = self.write(bucket, &group).await;
            for i in indexes {
                results[i] = outcome.clone();
            }
        }
        results
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_keeps_foreign_statements_byte_for_byte() {
        let text = r#"{"Version":"2012-10-17","Statement":[ {"Sid":"Theirs", "Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"} ,{"Sid":"sluice-a","Effect":"Deny"}]}"#;
        let mut p = Policy::parse(text).unwrap();
        let theirs = p.statement_texts().next().unwrap().to_owned();
        assert_eq!(
            p.owned().map(|(s, _)| s).collect::<Vec<_>>(),
            vec!["sluice-a"]
        );
        p.set("sluice-a", None);
        p.set("sluice-b", Some(&serde_json::json!({"Sid": "sluice-b"})));
        let again = Policy::parse(&p.to_text()).unwrap();
        let texts: Vec<&str> = again.statement_texts().collect();
        assert_eq!(texts, vec![theirs.as_str(), r#"{"Sid":"sluice-b"}"#]);
    }

    #[test]
    fn a_single_statement_object_is_a_policy_too() {
        let p = Policy::parse(r#"{"Statement":{"Sid":"sluice-x","Effect":"Deny"}}"#).unwrap();
        assert_eq!(p.owned().count(), 1);
        assert!(
            p.to_text()
                .starts_with(r#"{"Version":"2012-10-17","Statement":[{"#)
        );
    }
}
