//! A namespace's disaster-recovery policy: RPO, RTO, backups, object lock,
//! replication and the PITR window, checked against the workspace's buckets.

use crate::config::Located;
use crate::config::namespace::{Backup, DrPolicy, Drill, Namespace, Replication};
use crate::config::parse::Doc;
use crate::config::units::millis;
use crate::diag::Diagnostic;
use crate::diag::Span;

use super::Ctx;
use crate::desired::model::*;
use crate::desired::units::{object_lock, parse_unit, schedule};

pub(super) fn resolve_dr(
    doc: &Doc<Namespace>,
    dr: &DrPolicy,
    cx: &Ctx<'_>,
    diags: &mut Vec<Diagnostic>,
) -> DrState {
    let file = doc.file.as_str();
    let pitr_window_ms = dr
        .pitr
        .as_ref()
        .and_then(|p| parse_unit(Some(&p.window), file, diags))
        .map(millis);
    let backup = dr
        .backup
        .as_ref()
        .map(|b| backup(b, &doc.value.metadata.name.value, file, cx, diags));
    if let (Some(pitr), Some(window), Some(b)) = (&dr.pitr, pitr_window_ms, &backup) {
        check_window(window, b, file, pitr.window.loc(), diags);
    }
    DrState {
        rpo_ms: parse_unit(dr.rpo.as_ref(), file, diags).map(millis),
        rto_ms: parse_unit(dr.rto.as_ref(), file, diags).map(millis),
        backup,
        replication: dr
            .replication
            .as_ref()
            .map(|r| replication(r, dr.backup.as_ref(), file, cx, diags)),
        pitr_window_ms,
        drill_schedule: dr
            .drill
            .as_ref()
            .and_then(|d| drill_schedule(d, dr.backup.is_some(), file, diags)),
        source: Span::new(file, doc.value.metadata.name.loc),
    }
}

/// With incremental backups and `retain`, a new chain starts every half of
/// `retain` (see `backup::run`), and an older chain lasts until its full run
/// expires: a restore is sure to reach back half of `retain` only. A longer
/// `pitr.window` is warned of.
fn check_window(
    window: u64,
    b: &BackupState,
    file: &str,
    at: crate::diag::Loc,
    diags: &mut Vec<Diagnostic>,
) {
    let Some(retain) = b.retain_ms.filter(|_| b.incremental) else {
        return;
    };
    if window <= retain / 2 {
        return;
    }
    let fmt = crate::config::units::format_ms;
    diags.push(
        Diagnostic::warning(
            "pitr-beyond-retain",
            format!(
                "`pitr.window` ({}) is longer than half of `retain` ({}): incremental backups start a new chain every {}, so a restore is sure to reach back only that far (and to what Kafka still held when that chain began)",
                fmt(window),
                fmt(retain),
                fmt(retain / 2)
            ),
        )
        .at(file, at)
        .hint("set `retain` to at least twice `pitr.window`, or `incremental: false`"),
    );
}

/// The drill schedule, parsed as the backup's is; a drill restores the
/// backups, so it needs a `backup`.
fn drill_schedule(
    d: &Drill,
    has_backup: bool,
    file: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<String> {
    if !has_backup {
        diags.push(
            Diagnostic::error(
                "drill-without-backup",
                "`drill` restores the namespace's backups, but there is no `backup`",
            )
            .at(file, d.schedule.loc())
            .hint("add `disaster_recovery.backup`, or remove `drill`"),
        );
    }
    schedule(Some(&d.schedule), file, diags)
}

/// A bucket the namespace names must be one the workspace declares, when it
/// declares any.
fn check_bucket(bucket: &Located<String>, file: &str, cx: &Ctx<'_>, diags: &mut Vec<Diagnostic>) {
    let Some(declared) = cx.catalog.map(|c| &c.buckets).filter(|b| !b.is_empty()) else {
        return;
    };
    if declared.contains_key(&bucket.value) {
        return;
    }
    let names: Vec<_> = declared.keys().map(|b| format!("`{b}`")).collect();
    diags.push(
        Diagnostic::error(
            "undeclared-bucket",
            format!("bucket `{}` is not declared in the workspace", bucket.value),
        )
        .at(file, bucket.loc)
        .hint(format!(
            "use one of {}, or declare it under `spec.disaster_recovery.buckets` in {}",
            names.join(", "),
            cx.ws_file
        )),
    );
}

fn backup(
    b: &Backup,
    namespace: &str,
    file: &str,
    cx: &Ctx<'_>,
    diags: &mut Vec<Diagnostic>,
) -> BackupState {
    check_bucket(&b.bucket, file, cx, diags);
    let schedule = schedule(b.schedule.as_ref(), file, diags);
    let object_lock = object_lock(b.object_lock.as_ref(), file, diags);
    BackupState {
        bucket: b.bucket.value.clone(),
        prefix: b.prefix.clone().unwrap_or_else(|| format!("{namespace}/")),
        schedule,
        retain_ms: parse_unit(b.retain.as_ref(), file, diags).map(millis),
        incremental: b.incremental,
        object_lock,
        source: Span::new(file, b.bucket.loc),
    }
}

fn replication(
    r: &Replication,
    backup: Option<&Backup>,
    file: &str,
    cx: &Ctx<'_>,
    diags: &mut Vec<Diagnostic>,
) -> ReplicationState {
    check_bucket(&r.bucket, file, cx, diags);
    if check_region(r, file, cx, diags) {
        check_bucket_region(r, file, cx, diags);
    }
    match backup {
        None => diags.push(
            Diagnostic::error(
                "replication-without-backup",
                "`replication` copies the backup bucket, but there is no `backup`",
            )
            .at(file, r.bucket.loc)
            .hint("add `disaster_recovery.backup` with the bucket to replicate"),
        ),
        Some(b) if b.bucket.value == r.bucket.value => diags.push(
            Diagnostic::error(
                "replication-into-itself",
                format!("bucket `{}` would replicate into itself", r.bucket.value),
            )
            .at(file, r.bucket.loc)
            .related(file, b.bucket.loc, "the backup bucket")
            .hint("replicate into a bucket in another region"),
        ),
        Some(_) => {}
    }
    ReplicationState {
        bucket: r.bucket.value.clone(),
        region: r.region.value.clone(),
        read_only: r.read_only,
        source: Span::new(file, r.bucket.loc),
    }
}

/// The replica's region must be one the workspace declares, when it
/// declares any; whether it is.
fn check_region(r: &Replication, file: &str, cx: &Ctx<'_>, diags: &mut Vec<Diagnostic>) -> bool {
    let Some(regions) = cx.catalog.map(|c| &c.regions).filter(|r| !r.is_empty()) else {
        return true;
    };
    if regions.iter().any(|reg| reg.value == r.region.value) {
        return true;
    }
    let names: Vec<_> = regions.iter().map(|r| format!("`{}`", r.value)).collect();
    diags.push(
        Diagnostic::error(
            "undeclared-region",
            format!(
                "region `{}` is not declared in the workspace",
                r.region.value
            ),
        )
        .at(file, r.region.loc)
        .hint(format!(
            "use one of {}, or add it to `spec.disaster_recovery.regions` in {}",
            names.join(", "),
            cx.ws_file
        )),
    );
    false
}

/// A declared replica bucket lives in the region its declaration says.
fn check_bucket_region(r: &Replication, file: &str, cx: &Ctx<'_>, diags: &mut Vec<Diagnostic>) {
    let declared = cx.catalog.and_then(|c| c.buckets.get(&r.bucket.value));
    if let Some(bucket) = declared
        && bucket.region.value != r.region.value
    {
        diags.push(
            Diagnostic::error(
                "region-mismatch",
                format!(
                    "bucket `{}` is declared in region `{}`, not `{}`",
                    r.bucket.value, bucket.region.value, r.region.value
                ),
            )
            .at(file, r.region.loc)
            .related(cx.ws_file, bucket.region.loc, "declared here")
            .hint(format!("set `region: {}`", bucket.region.value)),
        );
    }
}
