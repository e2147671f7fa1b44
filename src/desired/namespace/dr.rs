//! A namespace's disaster-recovery policy: RPO, RTO, backups, object lock,
//! replication and the PITR window, checked against the workspace's buckets.

use crate::config::Located;
use crate::config::namespace::{DrPolicy, Namespace};
use crate::config::parse::Doc;
use crate::config::units::millis;
use crate::diag::Diagnostic;
use crate::diag::Span;

use super::Ctx;
use crate::desired::model::*;
use crate::desired::units::{nonzero, parse_unit};

pub(super) fn resolve_dr(
    doc: &Doc<Namespace>,
    dr: &DrPolicy,
    cx: &Ctx<'_>,
    diags: &mut Vec<Diagnostic>,
) -> DrState {
    let file = doc.file.as_str();
    let ns_name = &doc.value.metadata.name.value;
    let rpo_ms = parse_unit(dr.rpo.as_ref(), file, diags).map(millis);
    let rto_ms = parse_unit(dr.rto.as_ref(), file, diags).map(millis);
    let pitr_window_ms = dr
        .pitr
        .as_ref()
        .and_then(|p| parse_unit(Some(&p.window), file, diags))
        .map(millis);
    let declared = cx.catalog.map(|c| &c.buckets).filter(|b| !b.is_empty());
    let regions = cx.catalog.map(|c| &c.regions).filter(|r| !r.is_empty());
    let check_bucket = |bucket: &Located<String>, diags: &mut Vec<Diagnostic>| {
        if let Some(declared) = declared
            && !declared.contains_key(&bucket.value)
        {
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
    };

    let backup = dr.backup.as_ref().map(|b| {
        check_bucket(&b.bucket, diags);
        let schedule = b
            .schedule
            .as_ref()
            .and_then(|s| parse_unit(Some(s), file, diags).map(|_| s.text().trim().to_owned()));
        let object_lock = b.object_lock.as_ref().map(|l| {
            nonzero(&l.days, "object_lock.days", file, diags);
            ObjectLockState {
                mode: l.mode,
                days: l.days.value,
                source: Span::new(file, l.days.loc),
            }
        });
        BackupState {
            bucket: b.bucket.value.clone(),
            prefix: b.prefix.clone().unwrap_or_else(|| format!("{ns_name}/")),
            schedule,
            retain_ms: parse_unit(b.retain.as_ref(), file, diags).map(millis),
            incremental: b.incremental,
            object_lock,
            source: Span::new(file, b.bucket.loc),
        }
    });

    let replication = dr.replication.as_ref().map(|r| {
        check_bucket(&r.bucket, diags);
        let region_declared =
            regions.is_none_or(|regions| regions.iter().any(|reg| reg.value == r.region.value));
        if let Some(regions) = regions
            && !region_declared
        {
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
        }
        if region_declared
            && let Some(declared) = declared
            && let Some(bucket) = declared.get(&r.bucket.value)
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
        match &dr.backup {
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
    });

    DrState {
        rpo_ms,
        rto_ms,
        backup,
        replication,
        pitr_window_ms,
        source: Span::new(file, doc.value.metadata.name.loc),
    }
}
