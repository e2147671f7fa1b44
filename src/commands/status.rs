//! `sluice status [NS]`: the operator's single view, read-only.

use super::{Error, Exit, block_on, load_desired, load_policies, print_json};
use crate::backend::s3::S3Backend;
use crate::cli::{Cli, Format};
use crate::desired::Desired;
use crate::engine::status::Status;
use crate::engine::{Target, status};
use crate::policy::Policies;
use crate::render;
use crate::resource::System;
use crate::source::SourceTree;

pub fn run(cli: &Cli, namespace: Option<&str>, format: Format) -> Result<Exit, Error> {
    let (tree, desired) = load_desired(cli, None)?;
    if let Some(ns) = namespace
        && !desired.namespaces.iter().any(|n| n.name == ns)
    {
        let names: Vec<&String> = desired.namespaces.iter().map(|n| &n.name).collect();
        let hint = crate::config::parse::suggest_among(ns, &names)
            .map_or_else(String::new, |h| format!(" ({h})"));
        return Err(Error::UnknownNamespace {
            names: vec![format!("`{ns}`{hint}")],
            env: desired.environment.name.clone(),
        });
    }
    let policies = load_policies(&tree)?;
    let status = collect(cli, &tree, &desired, &policies, namespace)?;
    match format {
        Format::Json => print_json(&serde_json::to_string_pretty(&status).expect("status is JSON")),
        Format::Text => print!("{}", render::status::text(&status)),
    }
    Ok(if status.unhealthy() {
        Exit::Failure
    } else if status.needs_attention() {
        Exit::Changes
    } else {
        Exit::Success
    })
}

/// The status of `desired`'s environment (or of namespace `only`), with its
/// backups' and etcd snapshots' figures when the systems answer.
pub(super) fn collect(
    cli: &Cli,
    tree: &SourceTree,
    desired: &Desired,
    policies: &Policies,
    namespace: Option<&str>,
) -> Result<Status, Error> {
    block_on(async {
        let target = match Target::connect(&desired.environment, cli.timeout).await {
            Ok(target) => target,
            // etcd does not answer: the table says so, with the others' health.
            Err(e) if e.is_transient() => {
                return Ok(status::etcd_unreachable(
                    &desired.environment,
                    namespace,
                    cli.timeout,
                    &e,
                )
                .await);
            }
            Err(e) => return Err(e.into()),
        };
        let mut status = status::gather(
            desired,
            tree.revision.as_deref(),
            &target,
            policies,
            namespace,
        )
        .await;
        target.leave();
        let Some(s3) = &desired.environment.s3 else {
            return Ok(status);
        };
        // The backups' figures, from their manifests, when every backend answers.
        let backups = status.backends.iter().all(|b| b.ok);
        // The etcd snapshots, for the environment as a whole, when S3 answers.
        let snapshots = desired.environment.state_backup.as_ref().filter(|_| {
            namespace.is_none()
                && status
                    .backends
                    .iter()
                    .any(|b| b.system == System::S3 && b.ok)
        });
        if !backups && snapshots.is_none() {
            return Ok(status);
        }
        // One client for both.
        let s3 = S3Backend::connect(s3, cli.timeout)
            .await
            .map_err(|e| crate::diag::chain(&e));
        let s3 = s3.as_ref().map_err(String::as_str);
        if backups {
            status.backups = crate::backup::status::gather(desired, s3, namespace).await;
        }
        if let Some(sb) = snapshots {
            status.state_snapshot = Some(crate::snapshot::status::gather(sb, s3).await);
        }
        Ok::<_, Error>(status)
    })
}
