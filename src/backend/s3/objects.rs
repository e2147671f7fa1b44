//! Objects in one bucket, for backups and restores: put, get and list under
//! a prefix, with the bucket's region looked up once.

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;

use super::{S3Backend, describe, read_error};
use crate::backend::BackendError;

/// The objects of one bucket, through the client that signs for its region.
#[derive(Clone)]
pub struct BucketObjects {
    client: Client,
    bucket: String,
}

impl S3Backend {
    /// The objects of `bucket`; fails when there is no such bucket.
    pub async fn objects(&self, bucket: &str) -> Result<BucketObjects, BackendError> {
        let region = self.region_of(bucket).await?.ok_or_else(|| {
            read_error(format!(
                "bucket `{bucket}` does not exist (`sluice apply` creates the buckets the DR policies name)"
            ))
        })?;
        Ok(BucketObjects {
            client: self.client(&region),
            bucket: bucket.to_owned(),
        })
    }
}

impl BucketObjects {
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Writes `body` as object `key`, with a SHA-256 checksum S3 checks: a
    /// bucket with default object lock takes no PutObject without one.
    pub async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), BackendError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                BackendError::Rejected(format!(
                    "PutObject s3://{}/{key}: {}",
                    self.bucket,
                    describe(&e)
                ))
            })
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
