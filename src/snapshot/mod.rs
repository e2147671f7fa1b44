//! Snapshots of an environment's etcd to S3 (`sluice snapshot`, and the
//! watcher on `state_backup.schedule`): sluice's own state (inventory,
//! applied records, locks) and the data plane's registry live there, so
//! losing etcd loses what sluice manages.
//!
//! A snapshot is etcd's own snapshot file, streamed from the maintenance
//! API into S3 as `<prefix><id>/snapshot.db` (what `etcdctl snapshot save`
//! writes, so `etcdctl snapshot restore` reads it), then its manifest
//! `<prefix><id>/manifest.json`, written last: a snapshot without a manifest
//! is incomplete. IDs sort by time, as backup runs' do. [`take`] does the
//! I/O; this file is the layout, the manifest and the errors.

pub mod status;
pub mod take;

use serde::{Deserialize, Serialize};

use crate::backend::{BackendError, ConnectError};
use crate::backup::manifest;

/// The snapshot object's name in its directory.
pub const SNAPSHOT_FILE: &str = "snapshot.db";

/// The probe object the preflight writes (and deletes) under the prefix.
pub const PROBE_FILE: &str = ".sluice-preflight-probe";

/// The manifest of one complete snapshot (JSON, `format_version: 1`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotManifest {
    pub format_version: u32,
    /// `20261207T083000.123Z-4711`: when it started, then the process.
    pub snapshot_id: String,
    pub environment: String,
    /// The snapshot object's key.
    pub object: String,
    /// The version of the etcd member that sent it.
    pub etcd_version: String,
    /// etcd's revision when the snapshot was taken.
    pub revision: i64,
    /// Bytes of the snapshot object.
    pub size: u64,
    /// Hex SHA-256 of the snapshot object.
    pub sha256: String,
    pub started_at: String,
    pub started_at_ms: i64,
    pub finished_at: String,
    pub finished_at_ms: i64,
    /// The object-lock retention the objects were written with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retained_until: Option<String>,
}

/// The snapshot object of snapshot `id` under `prefix`.
pub fn snapshot_key(prefix: &str, id: &str) -> String {
    format!("{prefix}{id}/{SNAPSHOT_FILE}")
}

/// The IDs of the complete snapshots among `keys` (a listing of the
/// prefix), oldest first.
pub fn complete(prefix: &str, keys: &[String]) -> Vec<String> {
    manifest::complete_runs(prefix, keys)
}

/// Why a snapshot failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The environment declares no `state_backup`.
    #[error(
        "environment `{0}` declares no `state_backup`: there is nowhere to write its etcd snapshots"
    )]
    NotDeclared(String),
    /// The environment has no S3 settings.
    #[error("environment `{0}` has no `s3` settings; etcd snapshots are written to S3")]
    NoS3(String),
    /// The bucket does not exist.
    #[error(
        "bucket `{bucket}` does not exist; etcd snapshots go to `s3://{bucket}/{prefix}` (`state_backup` in sluice.yaml), and nothing was written"
    )]
    NoBucket { bucket: String, prefix: String },
    /// The preflight's probe could not be written: a missing permission or bucket.
    #[error(
        "preflight: sluice cannot write to `s3://{bucket}/{prefix}` (no snapshot is complete there yet, so it wrote a probe object first): {message}"
    )]
    Preflight {
        bucket: String,
        prefix: String,
        message: String,
    },
    /// `object_lock` is declared, and the bucket cannot lock objects.
    #[error(
        "`state_backup.object_lock` asks for locked snapshots, but bucket `{0}` does not have object lock enabled; nothing was written"
    )]
    NoObjectLock(String),
    /// etcd could not be reached.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The snapshot stream failed.
    #[error("the etcd snapshot from {endpoints} failed: {message}; no manifest was written")]
    Etcd { endpoints: String, message: String },
    /// The snapshot etcd sent does not match the checksum it sent with it.
    #[error(
        "the etcd snapshot from {endpoints} is corrupt: its SHA-256 trailer does not match its {size} byte(s); no manifest was written"
    )]
    Corrupt { endpoints: String, size: u64 },
    /// S3 refused a read or a write.
    #[error("{what}: {source}")]
    S3 {
        what: String,
        #[source]
        source: BackendError,
    },
}

impl SnapshotError {
    /// What to do about it.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            SnapshotError::NotDeclared(_) => Some(
                "declare `state_backup` (`bucket`, and optionally `prefix`, `schedule`, `stale_after`, `object_lock`) under the environment in sluice.yaml",
            ),
            SnapshotError::NoS3(_) => Some(
                "add `s3` (`region`, and `endpoint` for an S3-compatible server) to the environment in sluice.yaml, or set `SLUICE_S3_ENDPOINT`",
            ),
            SnapshotError::NoBucket { .. } => Some(
                "create the bucket (sluice does not create snapshot buckets; with `object_lock`, create it with object lock enabled), or name an existing one in `state_backup.bucket`",
            ),
            SnapshotError::NoObjectLock(_) => Some(
                "object lock can only be enabled when a bucket is created: name a bucket created with it in `state_backup.bucket`, or remove `state_backup.object_lock`",
            ),
            SnapshotError::Preflight { .. } => Some(
                "give sluice's S3 credentials s3:PutObject, s3:GetObject, s3:ListBucket (and s3:DeleteObject, for the probe) on that bucket and prefix, or point `state_backup` at one they may write",
            ),
            SnapshotError::Corrupt { .. } | SnapshotError::Etcd { .. } => Some(
                "run `sluice snapshot` again; if it keeps failing, check the etcd member's health (`etcdctl endpoint status`)",
            ),
            _ => None,
        }
    }
}

/// Age of snapshot `newest` (its start) at `now_ms`, against `stale_after_ms`.
pub fn is_stale(started_at_ms: i64, stale_after_ms: u64, now_ms: i64) -> bool {
    let age = now_ms.saturating_sub(started_at_ms);
    u64::try_from(age).unwrap_or(0) > stale_after_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_snapshots_with_a_manifest_are_complete_oldest_first() {
        let p = "etcd-snapshots/local/";
        let keys: Vec<String> = [
            "etcd-snapshots/local/20261207T100000.000Z-2/snapshot.db",
            "etcd-snapshots/local/20261207T100000.000Z-2/manifest.json",
            "etcd-snapshots/local/20261207T090000.000Z-1/manifest.json",
            "etcd-snapshots/local/20261207T110000.000Z-3/snapshot.db",
            "etcd-snapshots/local/.sluice-preflight-probe",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            complete(p, &keys),
            ["20261207T090000.000Z-1", "20261207T100000.000Z-2"]
        );
        assert_eq!(snapshot_key(p, "x"), "etcd-snapshots/local/x/snapshot.db");
    }

    #[test]
    fn a_snapshot_is_stale_once_older_than_stale_after() {
        assert!(!is_stale(0, 7_200_000, 7_200_000));
        assert!(is_stale(0, 7_200_000, 7_200_001));
        // A clock behind the snapshot is not stale.
        assert!(!is_stale(10, 1, 0));
    }
}
