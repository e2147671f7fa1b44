//! Scheduled etcd snapshots in `sluice watch`: the scheduler of
//! [`super::backups`] starts them on `state_backup.schedule` while this
//! replica leads; each is a `sluice snapshot`. Its outcome moves
//! `sluice_state_snapshot_last_success_timestamp_seconds` (when the newest
//! complete snapshot started), `sluice_state_snapshot_failures_total` and
//! `sluice_state_snapshot_duration_seconds`. When a replica starts to lead
//! it sets the first from the newest complete snapshot in S3, or to 0 when
//! there is none, so "never succeeded" is a value an alert can see.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::backups::{Job, Running};
use super::metrics::{EnvLabels, Metrics};
use crate::backend::s3::S3Backend;
use crate::backup::manifest::run_started_ms;
use crate::desired::Desired;
use crate::diag::chain;
use crate::snapshot::take::{PART_BYTES, take};
use crate::snapshot::{SnapshotError, complete};

fn labels(desired: &Desired) -> EnvLabels {
    EnvLabels {
        environment: desired.environment.name.clone(),
    }
}

async fn s3(desired: &Desired, timeout: Duration) -> Result<S3Backend, SnapshotError> {
    let env = &desired.environment;
    let s3 = env
        .s3
        .as_ref()
        .ok_or_else(|| SnapshotError::NoS3(env.name.clone()))?;
    Ok(S3Backend::connect(s3, timeout).await?)
}

#[allow(clippy::cast_precision_loss)]
fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// Sets the last success from the newest complete snapshot in S3 (0 when
/// S3 holds none), unless a run of this replica set a later one. When S3
/// cannot be read the series is left as it is.
pub fn seed(desired: &Arc<Desired>, metrics: Arc<Metrics>, timeout: Duration) {
    let Some(sb) = desired.environment.state_backup.clone() else {
        return;
    };
    // The failure counter starts at 0, so that its first failure is an increase.
    let _ = metrics.snapshot_failures.get_or_create(&labels(desired));
    let desired = desired.clone();
    tokio::spawn(async move {
        let listed = async {
            let s3 = s3(&desired, timeout).await?;
            let objects = s3
                .existing_objects(&sb.bucket)
                .await
                .map_err(|source| SnapshotError::S3 {
                    what: format!("reading bucket `{}`", sb.bucket),
                    source,
                })?
                .ok_or_else(|| SnapshotError::NoBucket {
                    bucket: sb.bucket.clone(),
                    prefix: sb.prefix.clone(),
                })?;
            objects
                .list(&sb.prefix)
                .await
                .map_err(|source| SnapshotError::S3 {
                    what: format!("listing `s3://{}/{}`", sb.bucket, sb.prefix),
                    source,
                })
        };
        let keys = match listed.await {
            Ok(keys) => keys,
            Err(e) => {
                tracing::warn!("cannot read the last complete etcd snapshot: {}", chain(&e));
                return;
            }
        };
        let newest = complete(&sb.prefix, &keys)
            .last()
            .and_then(|id| run_started_ms(id))
            .map_or(0.0, seconds);
        let gauge = metrics
            .snapshot_last_success
            .get_or_create(&labels(&desired));
        if gauge.get() < newest {
            gauge.set(newest);
        }
    });
}

/// Starts a snapshot, unless the previous one is still running.
pub fn start(desired: &Arc<Desired>, running: &Running, metrics: &Arc<Metrics>, timeout: Duration) {
    if !running.lock().expect("not poisoned").insert(Job::Snapshot) {
        tracing::warn!(
            "the previous scheduled etcd snapshot is still running; this occurrence is skipped"
        );
        return;
    }
    let (desired, running, metrics) = (desired.clone(), running.clone(), metrics.clone());
    tokio::spawn(async move {
        let started = Instant::now();
        let result = async {
            let s3 = s3(&desired, timeout).await?;
            take(&desired.environment, &s3, timeout, PART_BYTES).await
        }
        .await;
        let labels = labels(&desired);
        metrics
            .snapshot_duration
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        match result {
            Ok(t) => {
                metrics
                    .snapshot_last_success
                    .get_or_create(&labels)
                    .set(seconds(t.manifest.started_at_ms));
                for w in &t.warnings {
                    tracing::warn!("{w}");
                }
                tracing::info!(snapshot = %t.manifest.snapshot_id, revision = t.manifest.revision, size = t.manifest.size, manifest = %format!("s3://{}/{}", t.bucket, t.manifest_key), "scheduled etcd snapshot complete");
            }
            Err(e) => {
                metrics.snapshot_failures.get_or_create(&labels).inc();
                let hint = e.hint().map(|h| format!(" ({h})")).unwrap_or_default();
                tracing::error!("scheduled etcd snapshot failed: {}{hint}", chain(&e));
            }
        }
        running.lock().expect("not poisoned").remove(&Job::Snapshot);
    });
}
