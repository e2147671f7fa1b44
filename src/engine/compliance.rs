//! DR compliance: checks, not changes. Is the newest complete backup (a run
//! with a manifest) within the RPO, are both buckets versioned, is
//! replication on, is the replica read-only, did the last restore drill pass?

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::backend::{BackendError, BackupCatalog};
use crate::desired::{BackupState, Desired, NamespaceState, ReplicationState};
use crate::plan::{Check, DrReport, LiveState, Violation};
use crate::resource::owned_id;
use crate::resource::{Address, Kind, Value};
use crate::state::drills::DrillRecord;

/// When the newest complete backup started (seconds since the epoch), by
/// `(bucket, namespace directory)`; the directory is `<prefix><namespace>/`.
pub type Newest = BTreeMap<(String, String), Option<i64>>;

/// How many bucket listings are in flight at once.
const LISTINGS_IN_FLIGHT: usize = 8;

/// The newest backups, and the region each bucket was listed in.
#[derive(Debug, Default)]
pub struct Listing {
    pub newest: Newest,
    pub regions: BTreeMap<String, String>,
}

/// The region the backups of each backup bucket of `desired` are listed in:
/// `region_of` the bucket, and no entry when it says none (a bucket that
/// does not exist has no backups).
pub fn backup_regions<'a>(
    desired: &Desired,
    region_of: impl Fn(&str) -> Option<&'a str>,
) -> BTreeMap<String, String> {
    desired
        .namespaces
        .iter()
        .filter_map(|ns| ns.disaster_recovery.as_ref()?.backup.as_ref())
        .filter_map(|b| Some((b.bucket.clone(), region_of(&b.bucket)?.to_owned())))
        .collect()
}

/// The region of each bucket a plan found live.
pub fn live_region<'a>(live: &'a LiveState) -> impl Fn(&str) -> Option<&'a str> {
    |bucket| match live
        .resources
        .get(&Address::bucket(bucket))
        .map(|l| &l.value)
    {
        Some(Value::Bucket(b)) => Some(b.region.as_str()),
        _ => None,
    }
}

/// Reads the newest complete backup of every namespace of `desired` that has
/// backups, in the region `region_of` each bucket: one listing per bucket, a
/// few buckets at once. A bucket without a region has no backups.
pub async fn newest_backups<'a>(
    desired: &Desired,
    region_of: impl Fn(&str) -> Option<&'a str>,
    catalog: &dyn BackupCatalog,
) -> Result<Listing, BackendError> {
    use futures_util::{StreamExt, TryStreamExt};
    let regions = backup_regions(desired, region_of);
    let mut newest = Newest::new();
    let mut by_bucket: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let dirs: Vec<(&str, String)> = desired
        .namespaces
        .iter()
        .filter_map(|ns| {
            let b = ns.disaster_recovery.as_ref()?.backup.as_ref()?;
            Some((b.bucket.as_str(), b.dir(&ns.name)))
        })
        .collect();
    for (bucket, dir) in &dirs {
        let fresh = newest
            .insert(((*bucket).to_owned(), dir.clone()), None)
            .is_none();
        if fresh && regions.contains_key(*bucket) {
            by_bucket.entry(bucket).or_default().push(dir);
        }
    }
    let listings = by_bucket.into_iter().map(|(bucket, prefixes)| {
        let region = regions[bucket].as_str();
        async move {
            let found = catalog.newest_backups(bucket, region, &prefixes).await?;
            Ok::<_, BackendError>((bucket, prefixes, found))
        }
    });
    let found: Vec<_> = futures_util::stream::iter(listings)
        .buffer_unordered(LISTINGS_IN_FLIGHT)
        .try_collect()
        .await?;
    for (bucket, prefixes, found) in found {
        for (prefix, n) in prefixes.into_iter().zip(found) {
            newest.insert((bucket.to_owned(), prefix.to_owned()), n);
        }
    }
    Ok(Listing { newest, regions })
}

pub fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

use crate::state::drills::Drills;

/// Checks every namespace with a DR backup against the live state a plan
/// read, the newest backups and the last drills. Pure, for tests.
pub fn evaluate(
    desired: &Desired,
    live: &LiveState,
    newest: &Newest,
    drills: &Drills,
    now: i64,
) -> Vec<DrReport> {
    desired
        .namespaces
        .iter()
        .filter_map(|ns| {
            let mut r = report(ns, live, newest, now)?;
            r.violations.extend(failed_drill(drills.get(&ns.name)));
            Some(r)
        })
        .collect()
}

/// A last drill that failed, or whose record cannot be read: a namespace
/// never drilled is no violation.
fn failed_drill(last: Option<&Result<DrillRecord, String>>) -> Option<Violation> {
    let message = match last? {
        Ok(d) if d.passed => return None,
        Ok(d) => format!(
            "the last restore drill (started {}) failed: {}",
            d.started_at,
            d.failure.as_deref().unwrap_or("no reason recorded")
        ),
        Err(why) => why.clone(),
    };
    Some(Violation {
        check: Check::Drill,
        message,
    })
}

/// `5m`, `1h30m`: a duration in seconds, for people.
pub fn human(secs: u64) -> String {
    crate::config::units::format_ms(secs.saturating_mul(1000))
}

fn report(ns: &NamespaceState, live: &LiveState, newest: &Newest, now: i64) -> Option<DrReport> {
    let dr = ns.disaster_recovery.as_ref()?;
    let backup = dr.backup.as_ref()?;
    let mut violations = Vec::new();
    let rpo_s = dr.rpo_ms.map(|ms| ms / 1000);
    let dir = backup.dir(&ns.name);
    let backups = format!("s3://{}/{dir}", backup.bucket);
    let age = newest
        .get(&(backup.bucket.clone(), dir))
        .copied()
        .flatten()
        .map(|t| u64::try_from(now - t).unwrap_or(0));
    if let Some(rpo) = rpo_s {
        let message = match age {
            None => Some(format!(
                "no complete backup (a run with a manifest) under {backups}; the RPO is {}",
                human(rpo)
            )),
            Some(age) if age > rpo => Some(format!(
                "the newest complete backup under {backups} is {} old, older than the RPO of {}",
                human(age),
                human(rpo)
            )),
            Some(_) => None,
        };
        violations.extend(message.map(|message| Violation {
            check: Check::BackupAge,
            message,
        }));
    }
    violations.extend(unversioned(live, &backup.bucket));
    if let Some(replica) = &dr.replication {
        violations.extend(unversioned(live, &replica.bucket));
        violations.extend(replication(ns, backup, replica, live));
    }
    Some(DrReport {
        namespace: ns.name.clone(),
        backups,
        backup_age_s: age,
        rpo_s,
        violations,
    })
}

/// A bucket that is missing or not versioned.
fn unversioned(live: &LiveState, bucket: &str) -> Option<Violation> {
    let message = match live
        .resources
        .get(&Address::bucket(bucket))
        .map(|l| &l.value)
    {
        Some(Value::Bucket(b)) if b.versioning => return None,
        Some(_) => format!("bucket `{bucket}` is not versioned"),
        None => format!("bucket `{bucket}` does not exist"),
    };
    Some(Violation {
        check: Check::Versioning,
        message,
    })
}

/// The replication rule into the replica, and its read-only statement.
fn replication(
    ns: &NamespaceState,
    backup: &BackupState,
    replica: &ReplicationState,
    live: &LiveState,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let id = owned_id(&ns.name);
    let rule = Address::in_bucket(Kind::S3Replication, &backup.bucket, &id);
    let problem = match live.resources.get(&rule).map(|l| &l.value) {
        Some(Value::Replication(r)) if r.enabled && r.destination_bucket == replica.bucket => None,
        Some(_) => Some(format!(
            "replication rule `{id}` of `{}` is disabled or points elsewhere",
            backup.bucket
        )),
        None => Some(format!(
            "`{}` has no replication rule `{id}` to `{}`",
            backup.bucket, replica.bucket
        )),
    };
    out.extend(problem.map(|message| Violation {
        check: Check::Replication,
        message,
    }));
    let statement = Address::in_bucket(Kind::S3Policy, &replica.bucket, &id);
    if replica.read_only && !live.resources.contains_key(&statement) {
        out.push(Violation {
            check: Check::ReplicaPolicy,
            message: format!(
                "replica `{}` has no read-only policy statement `{id}`",
                replica.bucket
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drill(passed: bool) -> DrillRecord {
        DrillRecord {
            namespace: "orders".into(),
            run: "r".into(),
            started_at: "2026-12-07T09:00:00.000Z".into(),
            finished_at: "2026-12-07T09:00:01.000Z".into(),
            passed,
            rto_ms: 1_000,
            rto_target_ms: None,
            data_age_ms: 0,
            rpo_ms: None,
            records: 1,
            failure: (!passed).then(|| "object `s3://b/k` is corrupt".to_owned()),
        }
    }

    #[test]
    fn only_a_failed_last_drill_is_a_violation_and_it_says_why() {
        assert_eq!(failed_drill(None), None);
        assert_eq!(failed_drill(Some(&Ok(drill(true)))), None);
        let v = failed_drill(Some(&Ok(drill(false)))).expect("a violation");
        assert_eq!(v.check, Check::Drill);
        assert_eq!(
            v.message,
            "the last restore drill (started 2026-12-07T09:00:00.000Z) failed: object `s3://b/k` is corrupt"
        );
        // A record that cannot be read is said as read: it hides no other.
        let unreadable = Err("its drill record `k` in etcd cannot be read".to_owned());
        let v = failed_drill(Some(&unreadable)).expect("a violation");
        assert_eq!(v.message, "its drill record `k` in etcd cannot be read");
    }
}
