//! A bucket's shared documents: lifecycle, replication and policy, each
//! read fresh, merged by the IDs sluice owns, and written back whole.

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, DeleteMarkerReplication, DeleteMarkerReplicationStatus,
    Destination, ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter,
    NoncurrentVersionExpiration, ReplicationConfiguration, ReplicationRule, ReplicationRuleFilter,
    ReplicationRuleStatus,
};

use super::policy::Policy;
use super::{BackendError, S3Backend, answer, rejected, written};
use crate::plan::{Action, Change};
use crate::resource::{Kind, LifecycleValue, OWNED_PREFIX, ReplicationValue, Value};

/// Each of a document's changes: the rule ID or Sid, and the value to write
/// (`None`: remove it).
fn owned<'a>(changes: &'a [&'a Change]) -> impl Iterator<Item = (&'a str, Option<&'a Value>)> {
    changes.iter().map(|c| {
        let value = match c.action {
            Action::Create | Action::Update => c.desired.as_ref(),
            Action::Delete | Action::Blocked => None,
        };
        (c.address.bucket_and_id().1.unwrap_or_default(), value)
    })
}

// One reader per setting or document, shared by the plan's read and the

pub(super) async fn lifecycle_of(c: &Client, bucket: &str) -> Result<Vec<LifecycleRule>, String> {
    let l = answer(
        c.get_bucket_lifecycle_configuration()
            .bucket(bucket)
            .send()
            .await,
        "GetBucketLifecycleConfiguration",
        bucket,
        &["NoSuchLifecycleConfiguration"],
    )?;
    Ok(l.map(|l| l.rules().to_vec()).unwrap_or_default())
}

pub(super) async fn replication_of(
    c: &Client,
    bucket: &str,
) -> Result<Option<ReplicationConfiguration>, String> {
    let r = answer(
        c.get_bucket_replication().bucket(bucket).send().await,
        "GetBucketReplication",
        bucket,
        &["ReplicationConfigurationNotFoundError"],
    )?;
    Ok(r.and_then(|r| r.replication_configuration().cloned()))
}

pub(super) async fn policy_of(c: &Client, bucket: &str) -> Result<Option<String>, String> {
    let p = answer(
        c.get_bucket_policy().bucket(bucket).send().await,
        "GetBucketPolicy",
        bucket,
        &["NoSuchBucketPolicy"],
    )?;
    Ok(p.and_then(|p| p.policy().map(str::to_owned)))
}

impl S3Backend {
    /// Applies the changes to one bucket: its settings, or one of its
    /// documents in one read-merge-write.
    pub(super) async fn write(
        &self,
        bucket: &str,
        changes: &[&Change],
    ) -> Result<(), BackendError> {
        match changes[0].address.kind() {
            // A bucket has one address, so one change.
            Kind::S3Bucket => match (changes[0].action, &changes[0].desired) {
                (Action::Delete, _) => self.delete_bucket(bucket).await,
                (_, Some(Value::Bucket(b))) => self.converge_bucket(bucket, b).await,
                _ => Err(not_a(changes[0])),
            },
            Kind::S3Lifecycle => self.merge_lifecycle(bucket, changes).await,
            Kind::S3Replication => self.merge_replication(bucket, changes).await,
            Kind::S3Policy => self.merge_policy(bucket, changes).await,
            _ => Err(not_a(changes[0])),
        }
    }

    async fn merge_lifecycle(&self, bucket: &str, changes: &[&Change]) -> Result<(), BackendError> {
        let c = self.client_for(bucket).await?;
        let mut rules = lifecycle_of(&c, bucket)
            .await
            .map_err(BackendError::Rejected)?;
        for (id, value) in owned(changes) {
            rules.retain(|r| r.id() != Some(id));
            if let Some(Value::Lifecycle(v)) = value {
                rules.push(lifecycle_rule(id, v)?);
            }
        }
        if rules.is_empty() {
            let deleted = c.delete_bucket_lifecycle().bucket(bucket).send().await;
            return written(deleted, "DeleteBucketLifecycle", bucket);
        }
        let op = "PutBucketLifecycleConfiguration";
        let config = BucketLifecycleConfiguration::builder()
            .set_rules(Some(rules))
            .build()
            .map_err(|e| rejected(op, bucket, e))?;
        let put = c
            .put_bucket_lifecycle_configuration()
            .bucket(bucket)
            .lifecycle_configuration(config)
            .send()
            .await;
        written(put, op, bucket)
    }

    async fn merge_replication(
        &self,
        bucket: &str,
        changes: &[&Change],
    ) -> Result<(), BackendError> {
        let c = self.client_for(bucket).await?;
        let (mut role, mut rules) = replication_of(&c, bucket)
            .await
            .map_err(BackendError::Rejected)?
            .map(|r| (Some(r.role().to_owned()), r.rules().to_vec()))
            .unwrap_or_default();
        for (id, value) in owned(changes) {
            rules.retain(|r| r.id() != Some(id));
            let Some(Value::Replication(v)) = value else {
                continue;
            };
            let foreign = rules
                .iter()
                .any(|r| !r.id().unwrap_or_default().starts_with(OWNED_PREFIX));
            match &role {
                Some(r) if r != &v.role && foreign => {
                    return Err(BackendError::Rejected(format!(
                        "bucket `{bucket}` replicates other rules with role `{r}`, and a bucket has one replication role; set `s3.replication_role` to it"
                    )));
                }
                _ => role = Some(v.role.clone()),
            }
            let priority = rules.iter().filter_map(|r| r.priority()).max().unwrap_or(0) + 1;
            rules.push(replication_rule(id, priority, v)?);
        }
        let Some(role) = role.filter(|_| !rules.is_empty()) else {
            let deleted = c.delete_bucket_replication().bucket(bucket).send().await;
            return written(deleted, "DeleteBucketReplication", bucket);
        };
        let op = "PutBucketReplication";
        let config = ReplicationConfiguration::builder()
            .role(role)
            .set_rules(Some(rules))
            .build()
            .map_err(|e| rejected(op, bucket, e))?;
        let put = c
            .put_bucket_replication()
            .bucket(bucket)
            .replication_configuration(config)
            .send()
            .await;
        written(put, op, bucket)
    }

    async fn merge_policy(&self, bucket: &str, changes: &[&Change]) -> Result<(), BackendError> {
        let c = self.client_for(bucket).await?;
        let text = policy_of(&c, bucket)
            .await
            .map_err(BackendError::Rejected)?;
        let mut policy = match text {
            Some(text) => {
                Policy::parse(&text).map_err(|e| rejected("GetBucketPolicy", bucket, e))?
            }
            None => Policy::default(),
        };
        for (sid, value) in owned(changes) {
            let statement = match value {
                Some(Value::Statement(s)) => Some(s),
                _ => None,
            };
            policy.set(sid, statement);
        }
        if policy.is_empty() {
            let deleted = c.delete_bucket_policy().bucket(bucket).send().await;
            return written(deleted, "DeleteBucketPolicy", bucket);
        }
        let put = c
            .put_bucket_policy()
            .bucket(bucket)
            .policy(policy.to_text())
            .send()
            .await;
        written(put, "PutBucketPolicy", bucket)
    }
}

fn not_a(change: &Change) -> BackendError {
    BackendError::Rejected(format!("{} is not an S3 change", change.address))
}

fn lifecycle_rule(id: &str, v: &LifecycleValue) -> Result<LifecycleRule, BackendError> {
    let days = |d: u32| i32::try_from(d).unwrap_or(i32::MAX);
    LifecycleRule::builder()
        .id(id)
        .filter(LifecycleRuleFilter::builder().prefix(&v.prefix).build())
        .status(ExpirationStatus::Enabled)
        .set_expiration(
            v.expiration_days
                .map(|d| LifecycleExpiration::builder().days(days(d)).build()),
        )
        .set_noncurrent_version_expiration(v.noncurrent_days.map(|d| {
            NoncurrentVersionExpiration::builder()
                .noncurrent_days(days(d))
                .build()
        }))
        .build()
        .map_err(|e| BackendError::Rejected(e.to_string()))
}

fn replication_rule(
    id: &str,
    priority: i32,
    v: &ReplicationValue,
) -> Result<ReplicationRule, BackendError> {
    let destination = Destination::builder()
        .bucket(format!("arn:aws:s3:::{}", v.destination_bucket))
        .build()
        .map_err(|e| BackendError::Rejected(e.to_string()))?;
    ReplicationRule::builder()
        .id(id)
        .priority(priority)
        .filter(ReplicationRuleFilter::builder().prefix(&v.prefix).build())
        .status(if v.enabled {
            ReplicationRuleStatus::Enabled
        } else {
            ReplicationRuleStatus::Disabled
        })
        .delete_marker_replication(
            DeleteMarkerReplication::builder()
                .status(DeleteMarkerReplicationStatus::Disabled)
                .build(),
        )
        .destination(destination)
        .build()
        .map_err(|e| BackendError::Rejected(e.to_string()))
}

/// sluice's view of a lifecycle rule it owns.
pub(super) fn lifecycle_value(r: &LifecycleRule) -> LifecycleValue {
    let days = |d: Option<i32>| d.and_then(|d| u32::try_from(d).ok());
    LifecycleValue {
        prefix: r
            .filter()
            .and_then(|f| f.prefix())
            .unwrap_or_default()
            .to_owned(),
        expiration_days: days(r.expiration().and_then(|e| e.days())),
        noncurrent_days: days(
            r.noncurrent_version_expiration()
                .and_then(|e| e.noncurrent_days()),
        ),
    }
}

pub(super) fn replication_value(role: &str, r: &ReplicationRule) -> ReplicationValue {
    let bucket = r.destination().map(|d| d.bucket()).unwrap_or_default();
    ReplicationValue {
        prefix: r
            .filter()
            .and_then(|f| f.prefix())
            .unwrap_or_default()
            .to_owned(),
        destination_bucket: bucket
            .strip_prefix("arn:aws:s3:::")
            .unwrap_or(bucket)
            .to_owned(),
        role: role.to_owned(),
        enabled: r.status() == &ReplicationRuleStatus::Enabled,
    }
}
