//! DR compliance: checks, not changes. Is the newest backup within the RPO,
//! are both buckets versioned, is replication on, is the replica read-only?

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::backend::{BackendError, BackupCatalog};
use crate::desired::{BackupState, Desired, NamespaceState, ReplicationState};
use crate::plan::{Check, DrReport, LiveState, Violation};
use crate::resource::owned_id;
use crate::resource::{Address, Kind, Value};

/// Newest backup times (seconds since the epoch), by `(bucket, prefix)`.
pub type Newest = BTreeMap<(String, String), Option<i64>>;

/// How many bucket listings are in flight at once.
const LISTINGS_IN_FLIGHT: usize = 8;

/// Reads the newest backup under every backup prefix, in the buckets the
/// plan found live (in the region it found them in): one listing per
/// bucket, a few buckets at once. A missing bucket has no backups.
pub async fn newest_backups(
    desired: &Desired,
    live: &LiveState,
    catalog: &dyn BackupCatalog,
) -> Result<Newest, BackendError> {
    use futures_util::{StreamExt, TryStreamExt};
    let mut out = Newest::new();
    let mut by_bucket: BTreeMap<&str, (&str, Vec<&str>)> = BTreeMap::new();
    for b in desired
        .namespaces
        .iter()
        .filter_map(|ns| ns.disaster_recovery.as_ref()?.backup.as_ref())
    {
        if out
            .insert((b.bucket.clone(), b.prefix.clone()), None)
            .is_some()
        {
            continue;
        }
        if let Some(Value::Bucket(bucket)) = live
            .resources
            .get(&Address::bucket(&b.bucket))
            .map(|l| &l.value)
        {
            let (_, prefixes) = by_bucket
                .entry(&b.bucket)
                .or_insert_with(|| (&bucket.region, Vec::new()));
            prefixes.push(&b.prefix);
        }
    }
    let listings = by_bucket
        .into_iter()
        .map(|(bucket, (region, prefixes))| async move {
            let newest = catalog.newest_backups(bucket, region, &prefixes).await?;
            Ok::<_, BackendError>((bucket, prefixes, newest))
        });
    let found: Vec<_> = futures_util::stream::iter(listings)
        .buffer_unordered(LISTINGS_IN_FLIGHT)
        .try_collect()
        .await?;
    for (bucket, prefixes, newest) in found {
        for (prefix, n) in prefixes.into_iter().zip(newest) {
            out.insert((bucket.to_owned(), prefix.to_owned()), n);
        }
    }
    Ok(out)
}

pub fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Checks every namespace with a DR backup against the live state a plan
/// read and the newest backups. Pure, for tests.
pub fn evaluate(desired: &Desired, live: &LiveState, newest: &Newest, now: i64) -> Vec<DrReport> {
    desired
        .namespaces
        .iter()
        .filter_map(|ns| report(ns, live, newest, now))
        .collect()
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
    let backups = format!("s3://{}/{}", backup.bucket, backup.prefix);
    let age = newest
        .get(&(backup.bucket.clone(), backup.prefix.clone()))
        .copied()
        .flatten()
        .map(|t| u64::try_from(now - t).unwrap_or(0));
    if let Some(rpo) = rpo_s {
        let message = match age {
            None => Some(format!(
                "no backup under {backups}; the RPO is {}",
                human(rpo)
            )),
            Some(age) if age > rpo => Some(format!(
                "the newest backup under {backups} is {} old, older than the RPO of {}",
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
