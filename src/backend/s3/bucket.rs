//! A bucket's own settings: read together, and converged one idempotent
//! call at a time; and the newest backup under a prefix.

use std::collections::BTreeMap;

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, DefaultRetention,
    ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode, ObjectLockRule,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging,
    VersioningConfiguration,
};

use super::documents::{lifecycle_of, policy_of, replication_of};
use super::{BackendError, BucketDocs, S3Backend, answer, read_error, rejected, written};
use crate::config::namespace::LockMode;
use crate::resource::{BucketValue, LockRetention};

// Readers of the settings, shared by the plan's read and the apply's converge.

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

impl S3Backend {
    /// [`Self::read_bucket`] within the request time limit, with its name.
    pub(super) async fn read_named<'a>(
        &self,
        bucket: &'a str,
    ) -> Result<Option<(&'a str, (BucketValue, BucketDocs))>, BackendError> {
        let what = format!("reading bucket {bucket}");
        let read = self.bounded(&what, self.read_bucket(bucket)).await?;
        Ok(read.map(|r| (bucket, r)))
    }

    /// One bucket's settings and documents, read together.
    pub(super) async fn read_bucket(
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
                    mode: LockMode::from_s3_name(d.mode()?.as_str())?,
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

    /// Creates the bucket when missing, then sets every setting sluice
    /// manages. Each call is idempotent, so a re-run converges.
    pub(super) async fn converge_bucket(
        &self,
        bucket: &str,
        want: &BucketValue,
    ) -> Result<(), BackendError> {
        let c = self.client(&want.region);
        if self.region_of(bucket).await?.is_none() {
            create(&c, bucket, want).await?;
        }
        if want.versioning {
            enable_versioning(&c, bucket).await?;
        }
        if want.public_access_blocked {
            block_public_access(&c, bucket).await?;
        }
        // A bucket encrypted with KMS already meets the bar; keep it.
        if want.default_encryption
            && !encrypted(&c, bucket)
                .await
                .map_err(BackendError::Rejected)?
        {
            encrypt(&c, bucket).await?;
        }
        add_tags(&c, bucket, &want.tags).await?;
        if let Some(lock) = &want.object_lock {
            set_default_retention(&c, bucket, lock).await?;
        }
        Ok(())
    }

    /// Deletes a bucket sluice created. S3 refuses while it holds objects,
    /// which keeps backups safe; a bucket already gone is success.
    pub(super) async fn delete_bucket(&self, bucket: &str) -> Result<(), BackendError> {
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
}

// The steps of converging a bucket, each one idempotent call.

async fn create(c: &Client, bucket: &str, want: &BucketValue) -> Result<(), BackendError> {
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
    answer(
        create.send().await,
        "CreateBucket",
        bucket,
        &["BucketAlreadyOwnedByYou"],
    )
    .map(|_| ())
    .map_err(BackendError::Rejected)
}

async fn enable_versioning(c: &Client, bucket: &str) -> Result<(), BackendError> {
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
    )
}

async fn block_public_access(c: &Client, bucket: &str) -> Result<(), BackendError> {
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
    )
}

/// Default encryption with S3's own keys (AES256).
async fn encrypt(c: &Client, bucket: &str) -> Result<(), BackendError> {
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
    )
}

/// Tagging replaces the whole set: everyone else's tags are kept.
async fn add_tags(
    c: &Client,
    bucket: &str,
    want: &BTreeMap<String, String>,
) -> Result<(), BackendError> {
    let mut tags = tags_of(c, bucket).await.map_err(BackendError::Rejected)?;
    if want.iter().all(|(k, v)| tags.get(k) == Some(v)) {
        return Ok(());
    }
    let op = "PutBucketTagging";
    tags.extend(want.clone());
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
    )
}

async fn set_default_retention(
    c: &Client,
    bucket: &str,
    lock: &LockRetention,
) -> Result<(), BackendError> {
    let retention = DefaultRetention::builder()
        .mode(ObjectLockRetentionMode::from(lock.mode.s3_name()))
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
    )
}
