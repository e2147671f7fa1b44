//! What `status` shows of the environment's etcd snapshots: the newest
//! complete one (from its manifest) and its age against `stale_after`.

use super::{SnapshotManifest, complete, is_stale};
use crate::backend::s3::S3Backend;
use crate::backup::manifest::{manifest_key, rfc3339, run_started_ms};
use crate::backup::now_ms;
use crate::desired::model::StateBackupState;
use crate::engine::status::{SnapshotState, SnapshotStatus};

/// The figures of the newest complete snapshot in `keys` (a listing of
/// the prefix) and its manifest, at `now_ms`. Pure, for tests.
pub fn figures(
    sb: &StateBackupState,
    keys: &[String],
    manifest: Option<&SnapshotManifest>,
    now_ms: i64,
) -> SnapshotStatus {
    let mut out = SnapshotStatus {
        location: format!("s3://{}/{}", sb.bucket, sb.prefix),
        stale_after_s: sb.stale_after_ms / 1000,
        state: SnapshotState::NeverSucceeded,
        ..SnapshotStatus::default()
    };
    let Some(id) = complete(&sb.prefix, keys).pop() else {
        return out;
    };
    let started_ms = manifest
        .filter(|m| m.snapshot_id == id)
        .map(|m| m.started_at_ms)
        .or_else(|| run_started_ms(&id))
        .unwrap_or(0);
    out.last_started_at = Some(rfc3339(started_ms));
    out.age_s = Some(u64::try_from((now_ms - started_ms) / 1000).unwrap_or(0));
    if let Some(m) = manifest.filter(|m| m.snapshot_id == id) {
        out.revision = Some(m.revision);
        out.size = Some(m.size);
    }
    out.last_snapshot = Some(id);
    out.state = if is_stale(started_ms, sb.stale_after_ms, now_ms) {
        SnapshotState::Stale
    } else {
        SnapshotState::Ok
    };
    out
}

/// The status of `sb`'s snapshots in S3 (or why it is unknown).
pub async fn gather(sb: &StateBackupState, s3: Result<&S3Backend, &str>) -> SnapshotStatus {
    let read = async {
        let s3 = s3.map_err(str::to_owned)?;
        let chain = |e: crate::backend::BackendError| crate::diag::chain(&e);
        let objects = s3
            .existing_objects(&sb.bucket)
            .await
            .map_err(chain)?
            .ok_or_else(|| format!("bucket `{}` does not exist", sb.bucket))?;
        let keys = objects.list(&sb.prefix).await.map_err(chain)?;
        let manifest = match complete(&sb.prefix, &keys).last() {
            Some(id) => {
                let key = manifest_key(&sb.prefix, id);
                let bytes = objects.get(&key).await.map_err(chain)?;
                let m: SnapshotManifest = serde_json::from_slice(&bytes).map_err(|e| {
                    format!("manifest `s3://{}/{key}` cannot be read: {e}", sb.bucket)
                })?;
                Some(m)
            }
            None => None,
        };
        Ok::<_, String>((keys, manifest))
    };
    match read.await {
        Ok((keys, manifest)) => figures(sb, &keys, manifest.as_ref(), now_ms()),
        Err(e) => SnapshotStatus {
            location: format!("s3://{}/{}", sb.bucket, sb.prefix),
            stale_after_s: sb.stale_after_ms / 1000,
            error: Some(e),
            ..SnapshotStatus::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb() -> StateBackupState {
        StateBackupState {
            bucket: "state".into(),
            prefix: "etcd/".into(),
            schedule: None,
            stale_after_ms: 7_200_000,
            object_lock: None,
        }
    }

    #[test]
    fn the_newest_complete_snapshot_is_fresh_stale_or_there_is_none() {
        let none = figures(
            &sb(),
            &["etcd/20261207T100000.000Z-1/snapshot.db".into()],
            None,
            0,
        );
        assert_eq!(none.state, SnapshotState::NeverSucceeded);
        assert_eq!(none.last_snapshot, None);
        let keys = vec![
            "etcd/20261207T080000.000Z-1/manifest.json".to_owned(),
            "etcd/20261207T100000.000Z-2/manifest.json".to_owned(),
        ];
        let at_ten = run_started_ms("20261207T100000.000Z-2").unwrap();
        let fresh = figures(&sb(), &keys, None, at_ten + 7_200_000);
        assert_eq!(fresh.state, SnapshotState::Ok);
        assert_eq!(fresh.age_s, Some(7200));
        assert_eq!(
            fresh.last_snapshot.as_deref(),
            Some("20261207T100000.000Z-2")
        );
        let stale = figures(&sb(), &keys, None, at_ten + 7_200_001);
        assert_eq!(stale.state, SnapshotState::Stale);
    }
}
