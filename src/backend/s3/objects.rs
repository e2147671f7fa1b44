//! Objects in one bucket, for backups and restores: put, get and list under
//! a prefix, with the bucket's region looked up once.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ObjectLockMode,
};

use super::{S3Backend, describe, read_error};
use crate::backend::BackendError;
use crate::config::namespace::LockMode;

/// The objects of one bucket, through the client that signs for its region.
#[derive(Clone)]
pub struct BucketObjects {
    client: Client,
    bucket: String,
}

impl S3Backend {
    /// The objects of `bucket`; fails when there is no such bucket.
    pub async fn objects(&self, bucket: &str) -> Result<BucketObjects, BackendError> {
        self.existing_objects(bucket).await?.ok_or_else(|| {
            read_error(format!(
                "bucket `{bucket}` does not exist (`sluice apply` creates the buckets the DR policies name)"
            ))
        })
    }

    /// The objects of `bucket`, or `None` when there is no such bucket.
    pub async fn existing_objects(
        &self,
        bucket: &str,
    ) -> Result<Option<BucketObjects>, BackendError> {
        Ok(self.region_of(bucket).await?.map(|region| BucketObjects {
            client: self.client(&region),
            bucket: bucket.to_owned(),
        }))
    }
}

/// Object-lock retention one object is written with.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    pub mode: LockMode,
    /// Milliseconds since the epoch.
    pub until_ms: i64,
}

impl Retention {
    fn mode(self) -> ObjectLockMode {
        ObjectLockMode::from(self.mode.s3_name())
    }

    fn until(self) -> DateTime {
        DateTime::from_millis(self.until_ms)
    }
}

/// A multipart upload in progress: parts go up one at a time, each with a
/// SHA-256 checksum S3 checks; [`Upload::complete`] makes the object,
/// [`Upload::abort`] drops the parts.
pub struct Upload {
    objects: BucketObjects,
    key: String,
    id: String,
    parts: Vec<CompletedPart>,
}

impl BucketObjects {
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Writes `body` as object `key`, with a SHA-256 checksum S3 checks: a
    /// bucket with default object lock takes no PutObject without one.
    pub async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), BackendError> {
        self.put_retained(key, body, None).await
    }

    /// [`BucketObjects::put`], locked until `retention` says when it does.
    pub async fn put_retained(
        &self,
        key: &str,
        body: Vec<u8>,
        retention: Option<Retention>,
    ) -> Result<(), BackendError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .set_object_lock_mode(retention.map(Retention::mode))
            .set_object_lock_retain_until_date(retention.map(Retention::until))
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.rejected("PutObject", key, &describe(&e)))
    }

    /// Whether the bucket has object lock enabled (so that objects can be
    /// written with a retention).
    pub async fn object_lock_enabled(&self) -> Result<bool, BackendError> {
        let got = super::answer(
            self.client
                .get_object_lock_configuration()
                .bucket(&self.bucket)
                .send()
                .await,
            "GetObjectLockConfiguration",
            &self.bucket,
            &["ObjectLockConfigurationNotFoundError"],
        )
        .map_err(read_error)?;
        Ok(got
            .and_then(|l| l.object_lock_configuration().cloned())
            .and_then(|c| c.object_lock_enabled().cloned())
            .is_some_and(|e| e.as_str() == "Enabled"))
    }

    /// Deletes object `key` (its current version: a versioned bucket keeps
    /// the data under a delete marker).
    pub async fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.rejected("DeleteObject", key, &describe(&e)))
    }

    /// Starts a multipart upload of object `key` (SHA-256 checksums, and
    /// `retention` when given).
    pub async fn upload(
        &self,
        key: &str,
        retention: Option<Retention>,
    ) -> Result<Upload, BackendError> {
        let started = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .set_object_lock_mode(retention.map(Retention::mode))
            .set_object_lock_retain_until_date(retention.map(Retention::until))
            .send()
            .await
            .map_err(|e| self.rejected("CreateMultipartUpload", key, &describe(&e)))?;
        let id = started.upload_id().ok_or_else(|| {
            self.rejected(
                "CreateMultipartUpload",
                key,
                "S3 answered without an upload ID",
            )
        })?;
        Ok(Upload {
            objects: self.clone(),
            key: key.to_owned(),
            id: id.to_owned(),
            parts: Vec::new(),
        })
    }

    fn rejected(&self, op: &str, key: &str, why: &str) -> BackendError {
        BackendError::Rejected(format!("{op} s3://{}/{key}: {why}", self.bucket))
    }

    /// The whole of object `key`.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, BackendError> {
        let what = || format!("GetObject s3://{}/{key}", self.bucket);
        let answer = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| read_error(format!("{}: {}", what(), describe(&e))))?;
        // Chunk by chunk into one buffer of the announced size: collecting
        // the chunks and copying them out held the object three times over
        // (a restore's peak memory).
        let announced = answer.content_length.unwrap_or(0).clamp(0, 64 << 20);
        let mut out = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
        let mut body = answer.body;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| read_error(format!("{}: {e}", what())))?
        {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Every key under `prefix`, in S3's (lexical) order, every page read.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BackendError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut keys = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                read_error(format!(
                    "ListObjectsV2 s3://{}/{prefix}: {}",
                    self.bucket,
                    describe(&e)
                ))
            })?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        Ok(keys)
    }
}

impl Upload {
    /// Sends the next part (all but the last at least 5 MiB, as S3 requires).
    pub async fn part(&mut self, body: Vec<u8>) -> Result<(), BackendError> {
        let number = i32::try_from(self.parts.len() + 1).unwrap_or(i32::MAX);
        let o = &self.objects;
        let sent = o
            .client
            .upload_part()
            .bucket(&o.bucket)
            .key(&self.key)
            .upload_id(&self.id)
            .part_number(number)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| o.rejected("UploadPart", &self.key, &describe(&e)))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(sent.e_tag().map(str::to_owned))
                .set_checksum_sha256(sent.checksum_sha256().map(str::to_owned))
                .build(),
        );
        Ok(())
    }

    /// Makes the object of the parts sent.
    pub async fn complete(self) -> Result<(), BackendError> {
        let o = &self.objects;
        o.client
            .complete_multipart_upload()
            .bucket(&o.bucket)
            .key(&self.key)
            .upload_id(&self.id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(self.parts.clone()))
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| o.rejected("CompleteMultipartUpload", &self.key, &describe(&e)))
    }

    /// Drops the parts sent; a failure is only logged (the bucket's
    /// lifecycle can expire incomplete uploads).
    pub async fn abort(self) {
        let o = &self.objects;
        if let Err(e) = o
            .client
            .abort_multipart_upload()
            .bucket(&o.bucket)
            .key(&self.key)
            .upload_id(&self.id)
            .send()
            .await
        {
            tracing::warn!(
                "AbortMultipartUpload s3://{}/{}: {}",
                o.bucket,
                self.key,
                describe(&e)
            );
        }
    }
}
