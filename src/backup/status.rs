//! What `status` shows of each namespace's backups, from its manifests: the
//! last complete run, the range a restore can reach against `pitr.window`,
//! and data age against `rpo`.

use super::manifest::{self, Coverage, Manifest};
use super::run::{complete_runs, load_all, load_chain};
use crate::backend::s3::S3Backend;
use crate::desired::{BackupState, Desired, NamespaceState};
use crate::engine::status::BackupStatus;

/// Figures from the newest chain of a namespace's complete runs (oldest
/// first), and from the `older` whole chains (newest first) that a restore
/// can reach past it without a gap, at `now_ms`; `None` for a namespace
/// without backups. Pure, for tests.
pub fn figures(
    ns: &NamespaceState,
    chain: &[&Manifest],
    older: &[Vec<&Manifest>],
    now_ms: i64,
) -> Option<BackupStatus> {
    let dr = ns.disaster_recovery.as_ref()?;
    let backup = dr.backup.as_ref()?;
    let mut out = BackupStatus {
        namespace: ns.name.clone(),
        location: format!("s3://{}/{}", backup.bucket, backup.dir(&ns.name)),
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
    if let Some(c) = Coverage::of(chain) {
        let from = reachable_from(c, older);
        out.covered_from = from.map(manifest::rfc3339);
        out.covered_to = Some(manifest::rfc3339(c.to_ms));
        out.covers_window = dr.pitr_window_ms.map(|w| {
            let start = now_ms.saturating_sub(i64::try_from(w).unwrap_or(i64::MAX));
            from.is_some_and(|from| from <= start)
        });
    }
    Some(out)
}

/// How far back a restore reaches without a gap: the newest chain's
/// coverage `newest`, then each older chain (newest first) whose coverage
/// reaches the start so far.
fn reachable_from(newest: Coverage, older: &[Vec<&Manifest>]) -> Option<i64> {
    let mut from = newest.from_ms?;
    for chain in older {
        match Coverage::of(chain) {
            Some(c) if c.to_ms >= from => from = c.from_ms.map_or(from, |f| f.min(from)),
            _ => break,
        }
    }
    Some(from)
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
        let read = match s3 {
            Ok(s3) => namespace_figures(ns, backup, s3, now_ms)
                .await
                .map_err(|e| crate::diag::chain(&e)),
            Err(why) => Err(why.to_owned()),
        };
        let figures = read.unwrap_or_else(|e| {
            figures(ns, &[], &[], now_ms).map(|mut f| {
                f.error = Some(e);
                f
            })
        });
        out.extend(figures);
    }
    out
}

/// The figures of `ns`, backed up as `backup` says, from one listing of
/// its directory: its newest chain's, and when that falls short of the
/// window, with the older whole chains a restore can reach too (if their
/// manifests can be read; else the newest chain's alone).
async fn namespace_figures(
    ns: &NamespaceState,
    backup: &BackupState,
    s3: &S3Backend,
    now_ms: i64,
) -> Result<Option<BackupStatus>, super::BackupError> {
    let dir = backup.dir(&ns.name);
    let objects = s3.objects(&backup.bucket).await?;
    let runs = complete_runs(&objects, &dir).await?;
    let loaded = load_chain(&objects, &dir, &runs).await?;
    let chain = manifest::chain(&loaded)?;
    let newest = figures(ns, &chain, &[], now_ms);
    if newest.as_ref().and_then(|f| f.covers_window) != Some(false) {
        return Ok(newest);
    }
    let Ok(all) = load_all(&objects, &dir, &runs, &loaded).await else {
        return Ok(newest);
    };
    let first = chain.first().map(|m| m.run_id.as_str());
    let older: Vec<Vec<&Manifest>> = manifest::chains(&all)
        .whole
        .into_iter()
        .filter(|c| c.last().map(|m| m.run_id.as_str()) < first)
        .collect();
    Ok(figures(ns, &chain, &older, now_ms))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::manifest::RunKind;
    use crate::desired::{Overrides, Selection, load};
    use crate::source::{SourceFile, SourceTree};

    const DAY: i64 = 86_400_000;

    /// Namespace `ledger` of the golden plans: `pitr.window: 7d`.
    fn ledger() -> NamespaceState {
        let file = |path: &str, at: &str| SourceFile {
            path: path.into(),
            text: std::fs::read_to_string(format!(
                "{}/tests/fixtures/plans/{at}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        };
        let tree = SourceTree {
            workspace: Some(file("sluice.yaml", "sluice.yaml")),
            namespaces: vec![file(
                "namespaces/ledger.yaml",
                "dr-compliance-met/desired/namespaces/ledger.yaml",
            )],
            ..SourceTree::default()
        };
        let (mut envs, diags) = load(&tree, Selection::One(None), &Overrides::default());
        assert!(diags.iter().all(|d| !d.is_error()), "{diags:#?}");
        envs.pop().unwrap().namespaces[0].clone()
    }

    /// A run whose records run from `from` to `to` (days), read at `to`.
    fn run(id: &str, previous: Option<&str>, from: i64, to: i64) -> Manifest {
        let kind = if previous.is_some() {
            RunKind::Incremental
        } else {
            RunKind::Full
        };
        let mut m = Manifest::sample(id, kind, previous);
        m.started_at_ms = to * DAY;
        let range = &mut m.topics[0].ranges[0];
        range.min_timestamp = Some(from * DAY);
        range.max_timestamp = Some(to * DAY);
        m
    }

    #[test]
    fn the_window_counts_older_chains_a_restore_reaches_without_a_gap() {
        let ns = ledger();
        let now = 100 * DAY;
        // The newest chain began with a full run two days ago, and holds
        // records from day 97 on: alone, it does not cover 7 days.
        let three = run("3", None, 97, 99);
        let newest = [&three];
        let alone = figures(&ns, &newest, &[], now).unwrap();
        assert_eq!(alone.covers_window, Some(false));
        assert_eq!(alone.covered_from, Some(manifest::rfc3339(97 * DAY)));
        // The chain before it reaches day 98, past the newest one's start.
        let (one, two) = (run("1", None, 90, 91), run("2", Some("1"), 91, 98));
        let reaching = figures(&ns, &newest, &[vec![&one, &two]], now).unwrap();
        assert_eq!(reaching.covers_window, Some(true));
        assert_eq!(reaching.covered_from, Some(manifest::rfc3339(90 * DAY)));
        assert_eq!(reaching.chain_runs, 1);
        // One that ended on day 96 leaves a gap a restore cannot cross.
        let short = run("2", Some("1"), 91, 96);
        let gap = figures(&ns, &newest, &[vec![&one, &short]], now).unwrap();
        assert_eq!(gap.covers_window, Some(false));
        assert_eq!(gap.covered_from, Some(manifest::rfc3339(97 * DAY)));
    }
}
