//! `sluice backup [NS…]` and `sluice restore NS`: namespace data to and from
//! S3, per the namespaces' DR policies.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use super::apply::ask;
use super::{Error, Exit, block_on, load_desired, on_signal};
use crate::backend::s3::S3Backend;
use crate::backup::BackupError;
use crate::backup::groups;
use crate::backup::manifest::rfc3339;
use crate::backup::restore::{self, RestorePlan, RestoreRequest};
use crate::backup::run::{self, BackupOptions};
use crate::cli::Cli;
use crate::desired::{Desired, NamespaceState};
use crate::diag::quoted;
use crate::engine::Target;
use crate::engine::apply::{Interrupt, release};
use crate::state::Holder;

/// The namespaces named (each must exist), or every one with backups.
pub(super) fn chosen<'a>(
    desired: &'a Desired,
    names: &[String],
) -> Result<Vec<&'a NamespaceState>, Error> {
    let has_backup = |n: &NamespaceState| crate::backup::declared(n).is_ok();
    if names.is_empty() {
        return Ok(desired
            .namespaces
            .iter()
            .filter(|n| has_backup(n))
            .collect());
    }
    let all: Vec<&String> = desired.namespaces.iter().map(|n| &n.name).collect();
    let unknown: Vec<String> = names
        .iter()
        .filter(|n| !all.contains(n))
        .map(|n| {
            let hint = crate::config::parse::suggest_among(n, &all)
                .map_or_else(String::new, |h| format!(" ({h})"));
            format!("`{n}`{hint}")
        })
        .collect();
    if !unknown.is_empty() {
        return Err(Error::UnknownNamespace {
            names: unknown,
            env: desired.environment.name.clone(),
        });
    }
    let picked: Vec<&NamespaceState> = desired
        .namespaces
        .iter()
        .filter(|n| names.contains(&n.name))
        .collect();
    if let Some(n) = picked.iter().find(|n| !has_backup(n)) {
        return Err(BackupError::NotBackedUp(n.name.clone()).into());
    }
    Ok(picked)
}

/// The environment's S3, which backups need.
pub(super) async fn s3(cli: &Cli, desired: &Desired) -> Result<S3Backend, Error> {
    let Some(s3) = &desired.environment.s3 else {
        return Err(Error::NoS3(desired.environment.name.clone()));
    };
    Ok(S3Backend::connect(s3, cli.timeout).await?)
}

pub fn backup(cli: &Cli, names: &[String], segment_bytes: u64) -> Result<Exit, Error> {
    let (_tree, desired) = load_desired(cli, None)?;
    let namespaces = chosen(&desired, names)?;
    if namespaces.is_empty() {
        println!(
            "No namespace of environment `{}` declares `disaster_recovery.backup`; nothing to back up.",
            desired.environment.name
        );
        return Ok(Exit::Success);
    }
    let opts = BackupOptions {
        segment_bytes,
        timeout: cli.timeout,
    };
    block_on(async {
        let target = Target::connect(&desired.environment, cli.timeout).await?;
        let s3 = s3(cli, &desired).await?;
        let mut failed = 0;
        for ns in namespaces {
            let result = async {
                let bucket = &ns
                    .disaster_recovery
                    .as_ref()
                    .and_then(|d| d.backup.as_ref())
                    .expect("chosen namespaces have backups")
                    .bucket;
                let objects = s3.objects(bucket).await?;
                run::backup(ns, &desired.environment, &target, &objects, opts).await
            }
            .await;
            match result {
                Ok(b) => {
                    for w in &b.warnings {
                        eprintln!("warning: {w}");
                    }
                    println!(
                        "Backed up namespace `{}` ({} run `{}`): {} record(s) in {} object(s), {} byte(s); manifest {}",
                        b.namespace, b.kind, b.run_id, b.records, b.objects, b.bytes, b.manifest
                    );
                }
                Err(e) => {
                    failed += 1;
                    eprintln!(
                        "error: backing up namespace `{}`: {}; no manifest was written, so the next run starts where the last complete one ended",
                        ns.name,
                        crate::diag::chain(&e)
                    );
                }
            }
        }
        target.leave();
        Ok(if failed > 0 {
            Exit::Failure
        } else {
            Exit::Success
        })
    })
}

/// `sluice restore`'s arguments.
pub struct RestoreArgs<'a> {
    pub namespace: &'a str,
    pub request: RestoreRequest,
    pub confirm: Option<&'a str>,
    pub lock_wait: Duration,
}

pub fn restore(cli: &Cli, args: RestoreArgs<'_>) -> Result<Exit, Error> {
    let (_tree, desired) = load_desired(cli, None)?;
    let ns = chosen(&desired, &[args.namespace.to_owned()])?[0];
    // Settled before anything is locked or read.
    match args.confirm {
        Some(typed) if typed != ns.name => {
            return Err(Error::RestoreNotConfirmed {
                typed: typed.to_owned(),
                namespace: ns.name.clone(),
            });
        }
        None if !std::io::stdin().is_terminal() => {
            return Err(Error::RestoreNeedsConfirmation(ns.name.clone()));
        }
        _ => {}
    }
    let bucket = ns
        .disaster_recovery
        .as_ref()
        .and_then(|d| d.backup.as_ref())
        .expect("chosen namespaces have backups")
        .bucket
        .clone();
    let cancel = Arc::new(Interrupt::default());
    block_on(async {
        let target = Target::connect(&desired.environment, cli.timeout).await?;
        let s3 = s3(cli, &desired).await?;
        let config = crate::backend::kafka::client_settings(&desired.environment.kafka)?;
        let lock = target
            .state
            .lock(&Holder::current(), args.lock_wait)
            .await
            .map_err(crate::engine::EngineError::from)?;
        {
            let cancel = cancel.clone();
            on_signal(move || {
                cancel.trigger();
                eprintln!("sluice: interrupted; finishing the object in flight, then stopping");
            });
        }
        let result = async {
            let objects = s3.objects(&bucket).await.map_err(BackupError::from)?;
            let plan =
                restore::plan(ns, &target, &objects, &config, &args.request, cli.timeout).await?;
            print!("{}", describe(&plan));
            if args.confirm.is_none() {
                let question = format!(
                    "\nThis writes the records above into namespace `{}`'s topics{}. Type the namespace's name to confirm: ",
                    ns.name,
                    if plan.set_groups && !plan.groups.is_empty() {
                        " and sets the consumer groups' offsets"
                    } else {
                        ""
                    }
                );
                if !ask(&question, &ns.name, &cancel).await? {
                    return Err(Error::RestoreCancelled);
                }
            }
            let done = restore::execute(
                &plan,
                &objects,
                &config,
                &lock.fence(),
                &cancel,
                cli.timeout,
            )
            .await?;
            let set = if plan.set_groups && !plan.groups.is_empty() {
                groups::set(&plan, &done, &config, cli.timeout).await?
            } else {
                Vec::new()
            };
            Ok::<_, Error>((plan.topics.len(), done, set))
        }
        .await;
        release(lock).await;
        target.leave();
        let (topics, done, set) = result?;
        println!(
            "Restore complete: {} record(s) from {} object(s) into {} topic(s){}{}.",
            done.records,
            done.objects,
            topics,
            if done.created.is_empty() {
                String::new()
            } else {
                format!(", created {}", quoted(&done.created))
            },
            if set.is_empty() {
                String::new()
            } else {
                format!("; set the offsets of consumer group(s) {}", quoted(&set))
            }
        );
        Ok(Exit::Success)
    })
}

/// The restore plan as people read it.
fn describe(plan: &RestorePlan) -> String {
    let mut out = format!(
        "Restore of namespace `{}` from s3://{}, runs {} (covering {})",
        plan.namespace,
        plan.bucket,
        plan.runs.join(", "),
        plan.coverage.describe()
    );
    if let Some(t) = plan.to_time_ms {
        out.push_str(&format!(", records up to {}", rfc3339(t)));
    }
    out.push_str(":\n");
    for t in &plan.topics {
        let action = if t.create {
            format!(
                "+ create topic `{}` ({} partition(s), replication factor {})",
                t.into, t.partitions, t.replication_factor
            )
        } else if t.present_records() > 0 {
            format!(
                "~ resume writing into `{}` (it holds {} record(s), checked against the backup)",
                t.into,
                t.present_records()
            )
        } else {
            format!("~ write into the empty topic `{}`", t.into)
        };
        out.push_str(&format!(
            "  {action}: up to {} record(s) of `{}` from {} object(s)\n",
            t.records(),
            t.from,
            t.objects.len()
        ));
    }
    if plan.groups.is_empty() {
        if plan.set_groups {
            out.push_str(&format!(
                "No consumer group offsets to set: run {} recorded no committed offsets of the groups the namespace declares on the restored topics.\n",
                plan.groups_from
            ));
        }
        return out;
    }
    out.push_str(&format!(
        "Consumer group offsets committed as of run {}, in the restored topics{}:\n",
        plan.groups_from,
        if plan.set_groups {
            ", set once the records are written"
        } else {
            " (not set: pass `--groups` to set them)"
        }
    ));
    for g in &plan.groups {
        let topic = if g.into == g.topic {
            format!("`{}`", g.topic)
        } else {
            format!("`{}` -> `{}`", g.topic, g.into)
        };
        out.push_str(&format!(
            "  group `{}`, {topic} partition {}: {} -> {}\n",
            g.group, g.partition, g.committed, g.restored
        ));
    }
    out
}
