//! Taking a snapshot: the preflight before the first one, etcd's snapshot
//! stream into S3 (multipart above one part, each part with a SHA-256
//! checksum S3 checks), then the manifest.

use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{PROBE_FILE, SnapshotError, SnapshotManifest, complete, snapshot_key};
use crate::backend::BackendError;
use crate::backend::s3::{BucketObjects, Retention, S3Backend, Upload};
use crate::backup::manifest::{manifest_key, rfc3339, run_id};
use crate::backup::{hex, now_ms};
use crate::desired::Environment;
use crate::desired::model::StateBackupState;
use crate::diag::chain;

/// How much of the snapshot one multipart part holds (S3's parts are at
/// least 5 MiB but the last); a smaller snapshot is one PutObject.
pub const PART_BYTES: usize = 8 * 1024 * 1024;

/// etcd ends its snapshot stream with the SHA-256 of what came before.
const TRAILER: usize = 32;

/// A snapshot that was written, and what the preflight said.
#[derive(Debug)]
pub struct Taken {
    pub manifest: SnapshotManifest,
    pub bucket: String,
    pub manifest_key: String,
    /// Whether this run probed the prefix first (no snapshot was complete).
    pub probed: bool,
    pub warnings: Vec<String>,
}

/// Snapshots `env`'s etcd into its `state_backup` bucket. `timeout` bounds
/// each request, and each wait for the next piece of the stream.
pub async fn take(
    env: &Environment,
    s3: &S3Backend,
    timeout: Duration,
    part_bytes: usize,
) -> Result<Taken, SnapshotError> {
    let sb = env
        .state_backup
        .as_ref()
        .ok_or_else(|| SnapshotError::NotDeclared(env.name.clone()))?;
    let objects = bucket(s3, sb).await?;
    let mut warnings = Vec::new();
    let keys = objects
        .list(&sb.prefix)
        .await
        .map_err(|e| preflight(sb, &e))?;
    if sb.object_lock.is_some()
        && !objects
            .object_lock_enabled()
            .await
            .map_err(|e| preflight(sb, &e))?
    {
        return Err(SnapshotError::NoObjectLock(sb.bucket.clone()));
    }
    let probed = complete(&sb.prefix, &keys).is_empty();
    if probed {
        probe(&objects, sb, &mut warnings).await?;
    }
    let started_ms = now_ms();
    let id = run_id(started_ms, std::process::id());
    let key = snapshot_key(&sb.prefix, &id);
    let retention = sb.object_lock.as_ref().map(|l| Retention {
        mode: l.mode,
        until_ms: started_ms + i64::from(l.days) * 86_400_000,
    });
    let dest = Dest {
        objects: &objects,
        key: &key,
        retention,
        part_bytes,
    };
    let streamed = stream(env, &dest, timeout).await?;
    let finished_ms = now_ms();
    let manifest = SnapshotManifest {
        format_version: 1,
        snapshot_id: id.clone(),
        environment: env.name.clone(),
        object: key,
        etcd_version: streamed.version,
        revision: streamed.revision,
        size: streamed.size,
        sha256: streamed.sha256,
        started_at: rfc3339(started_ms),
        started_at_ms: started_ms,
        finished_at: rfc3339(finished_ms),
        finished_at_ms: finished_ms,
        retained_until: retention.map(|r| rfc3339(r.until_ms)),
    };
    let manifest_key = manifest_key(&sb.prefix, &id);
    let body = serde_json::to_vec_pretty(&manifest).expect("a manifest always serializes");
    objects
        .put_retained(&manifest_key, body, retention)
        .await
        .map_err(|source| SnapshotError::S3 {
            what: format!(
                "writing the manifest `s3://{}/{manifest_key}` (the snapshot object is written, but without its manifest it is incomplete)",
                sb.bucket
            ),
            source,
        })?;
    Ok(Taken {
        manifest,
        bucket: sb.bucket.clone(),
        manifest_key,
        probed,
        warnings,
    })
}

/// The snapshot bucket's objects; a missing bucket is an error of its own.
async fn bucket(s3: &S3Backend, sb: &StateBackupState) -> Result<BucketObjects, SnapshotError> {
    match s3.existing_objects(&sb.bucket).await {
        Ok(Some(objects)) => Ok(objects),
        Ok(None) => Err(SnapshotError::NoBucket {
            bucket: sb.bucket.clone(),
            prefix: sb.prefix.clone(),
        }),
        Err(e) => Err(preflight(sb, &e)),
    }
}

fn preflight(sb: &StateBackupState, e: &BackendError) -> SnapshotError {
    SnapshotError::Preflight {
        bucket: sb.bucket.clone(),
        prefix: sb.prefix.clone(),
        message: chain(e),
    }
}

/// Before the first snapshot: writes a probe object under the prefix, so a
/// missing permission shows now rather than after a whole snapshot was
/// streamed, and deletes it (a failed delete is only a warning).
async fn probe(
    objects: &BucketObjects,
    sb: &StateBackupState,
    warnings: &mut Vec<String>,
) -> Result<(), SnapshotError> {
    let key = format!("{}{PROBE_FILE}", sb.prefix);
    let body = b"written by sluice's snapshot preflight; safe to delete\n".to_vec();
    objects
        .put(&key, body)
        .await
        .map_err(|e| preflight(sb, &e))?;
    if let Err(e) = objects.delete(&key).await {
        warnings.push(format!(
            "the preflight's probe object `s3://{}/{key}` could not be deleted ({}); delete it by hand",
            sb.bucket,
            chain(&e)
        ));
    }
    Ok(())
}

/// What the stream gave.
struct Streamed {
    version: String,
    revision: i64,
    size: u64,
    sha256: String,
}

/// Where the stream goes: object `key`, in parts of `part_bytes`.
struct Dest<'a> {
    objects: &'a BucketObjects,
    key: &'a str,
    retention: Option<Retention>,
    part_bytes: usize,
}

impl Dest<'_> {
    fn error(&self, source: BackendError) -> SnapshotError {
        SnapshotError::S3 {
            what: format!(
                "writing the snapshot to `s3://{}/{}`",
                self.objects.bucket(),
                self.key
            ),
            source,
        }
    }
}

/// etcd's snapshot into object `key`; a multipart upload that fails is aborted.
async fn stream(
    env: &Environment,
    dest: &Dest<'_>,
    timeout: Duration,
) -> Result<Streamed, SnapshotError> {
    let mut upload: Option<Upload> = None;
    let result = copy(env, dest, timeout, &mut upload).await;
    match (result, upload) {
        (Ok(s), None) => Ok(s),
        (Ok(s), Some(u)) => u.complete().await.map(|()| s).map_err(|e| dest.error(e)),
        (Err(e), Some(u)) => {
            u.abort().await;
            Err(e)
        }
        (Err(e), None) => Err(e),
    }
}

async fn copy(
    env: &Environment,
    dest: &Dest<'_>,
    timeout: Duration,
    upload: &mut Option<Upload>,
) -> Result<Streamed, SnapshotError> {
    let endpoints = env
        .etcd
        .endpoints
        .iter()
        .map(|e| crate::config::redact::endpoint(e))
        .collect::<Vec<_>>()
        .join(",");
    let etcd_error = |message: String| SnapshotError::Etcd {
        endpoints: endpoints.clone(),
        message,
    };
    let waited = |what: &str| format!("{what}: no answer within {}s", timeout.as_secs_f64());
    let s3_error = |e| dest.error(e);
    let (objects, key, retention, part_bytes) =
        (dest.objects, dest.key, dest.retention, dest.part_bytes);
    // No deadline on the call as a whole: a large snapshot takes as long as
    // it takes; each piece of it must come within `timeout`.
    let client = crate::backend::etcd::connect_with(&env.etcd, None).await?;
    let mut maintenance = client.maintenance_client();
    let status = tokio::time::timeout(timeout, maintenance.status())
        .await
        .map_err(|_| etcd_error(waited("Status")))?
        .map_err(|e| etcd_error(format!("Status: {e}")))?;
    let mut revision = status.header().map_or(0, |h| h.revision());
    let mut stream = tokio::time::timeout(timeout, maintenance.snapshot())
        .await
        .map_err(|_| etcd_error(waited("Snapshot")))?
        .map_err(|e| etcd_error(format!("Snapshot: {e}")))?;
    let (mut whole, mut db) = (Sha256::new(), Sha256::new());
    let mut tail: Vec<u8> = Vec::with_capacity(2 * TRAILER);
    let mut buf: Vec<u8> = Vec::with_capacity(part_bytes);
    let mut size = 0u64;
    loop {
        let message = tokio::time::timeout(timeout, stream.message())
            .await
            .map_err(|_| etcd_error(waited(&format!("the snapshot stream after {size} byte(s)"))))?
            .map_err(|e| etcd_error(format!("the snapshot stream after {size} byte(s): {e}")))?;
        let Some(message) = message else { break };
        if let Some(r) = message
            .header()
            .map(|h| h.revision())
            .filter(|r| *r > revision)
        {
            revision = r;
        }
        let blob = message.blob();
        whole.update(blob);
        size += blob.len() as u64;
        // The database is everything but the trailer, which comes last.
        tail.extend_from_slice(blob);
        if tail.len() > TRAILER {
            let n = tail.len() - TRAILER;
            db.update(&tail[..n]);
            tail.drain(..n);
        }
        buf.extend_from_slice(blob);
        if buf.len() >= part_bytes {
            if upload.is_none() {
                *upload = Some(objects.upload(key, retention).await.map_err(s3_error)?);
            }
            let part = std::mem::replace(&mut buf, Vec::with_capacity(part_bytes));
            let u = upload.as_mut().expect("started above");
            u.part(part).await.map_err(s3_error)?;
        }
    }
    if tail.len() < TRAILER || db.finalize().as_slice() != tail.as_slice() {
        return Err(SnapshotError::Corrupt { endpoints, size });
    }
    match upload.as_mut() {
        Some(u) if !buf.is_empty() => u.part(buf).await.map_err(s3_error)?,
        Some(_) => {}
        None => objects
            .put_retained(key, buf, retention)
            .await
            .map_err(s3_error)?,
    }
    Ok(Streamed {
        version: status.version().to_owned(),
        revision,
        size,
        sha256: hex(&whole.finalize()),
    })
}
