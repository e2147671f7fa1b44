//! What `status` shows of each namespace's backups, from its manifests: the
//! last complete run, the range its chain covers against `pitr.window`, and
//! data age against `rpo`.

use super::manifest::{self, Coverage, Manifest};
use super::run::load_chain;
use crate::backend::s3::S3Backend;
use crate::desired::{Desired, NamespaceState};
use crate::engine::status::BackupStatus;

/// Figures from the chain of a namespace's complete runs (oldest first), at
/// `now_ms`; `None` for a namespace without backups. Pure, for tests.
pub fn figures(ns: &NamespaceState, chain: &[Manifest], now_ms: i64) -> Option<BackupStatus> {
    let dr = ns.disaster_recovery.as_ref()?;
    let backup = dr.backup.as_ref()?;
    let mut out = BackupStatus {
        namespace: ns.name.clone(),
        location: format!(
            "s3://{}/{}",
            backup.bucket,
            manifest::namespace_dir(&backup.prefix, &ns.name)
        ),
        rpo_s: dr.rpo_ms.map(|ms| ms / 1000),
        pitr_window_s: dr.pitr_window_ms.map(|ms| ms / 1000),
        chain_runs: chain.len(),
        ..BackupStatus::default()
    };
    let Some(newest) = chain.last() else {
        return Some(out);
    };
    out.last_run = Some(newest.run_id.clone());
    out.last_started_at = Some(manifest::rfc3339(newest.started_at_ms));
    out.last_finished_at = Some(newest.finished_at.clone());
    out.data_age_s = Some(u64::try_from((now_ms - newest.started_at_ms) / 1000).unwrap_or(0));
    let refs: Vec<&Manifest> = chain.iter().collect();
    if let Some(c) = Coverage::of(&refs) {
        out.covered_from = c.from_ms.map(manifest::rfc3339);
        out.covered_to = Some(manifest::rfc3339(c.to_ms));
        out.covers_window = dr.pitr_window_ms.map(|w| {
            let start = now_ms.saturating_sub(i64::try_from(w).unwrap_or(i64::MAX));
            c.from_ms.is_some_and(|from| from <= start)
        });
    }
    Some(out)
}

/// The figures of every namespace of `desired` with backups (or of `only`),
/// each from a listing of its directory and its chain's manifests; a
/// namespace whose manifests cannot be read (or S3, when `s3` says why not)
/// says why in `error`.
pub async fn gather(
    desired: &Desired,
    s3: Result<&S3Backend, &str>,
    only: Option<&str>,
) -> Vec<BackupStatus> {
    let now_ms = super::now_ms();
    let mut out = Vec::new();
    for ns in desired.namespaces.iter() {
        if only.is_some_and(|o| o != ns.name) {
            continue;
        }
        let Some(backup) = ns
            .disaster_recovery
            .as_ref()
            .and_then(|d| d.backup.as_ref())
        else {
            continue;
        };
        let dir = manifest::namespace_dir(&backup.prefix, &ns.name);
        let read = async {
            let s3 = s3.map_err(str::to_owned)?;
            let loaded = async {
                let objects = s3.objects(&backup.bucket).await?;
                let loaded = load_chain(&objects, &dir).await?;
                let chain: Vec<Manifest> = manifest::chain(&loaded)?.into_iter().cloned().collect();
                Ok::<_, super::BackupError>(chain)
            };
            loaded.await.map_err(|e| crate::diag::chain(&e))
        };
        let figures = match read.await {
            Ok(chain) => figures(ns, &chain, now_ms),
            Err(e) => figures(ns, &[], now_ms).map(|mut f| {
                f.error = Some(e);
                f
            }),
        };
        out.extend(figures);
    }
    out
}
