//! `sluice dr report`: the DR review's tables, one per environment.

use super::{Error, Exit, environments_in_order, load_desired, load_policies, print_json};
use crate::backup::{manifest::rfc3339, now_ms};
use crate::cli::{Cli, ReportFormat};
use crate::engine::report::EnvironmentReport;
use crate::render;

/// Every environment in apply order (or `--env`'s): exit 0 when each
/// namespace meets its targets, 2 when one misses one (or the etcd snapshots
/// are not fresh), 1 when an environment could not be read.
pub fn report(cli: &Cli, format: ReportFormat) -> Result<Exit, Error> {
    let envs = match &cli.env {
        Some(env) => vec![env.clone()],
        None => environments_in_order(cli)?,
    };
    let mut reports = Vec::new();
    for env in &envs {
        let (tree, desired) = load_desired(cli, Some(env))?;
        let policies = load_policies(&tree)?;
        let at = rfc3339(now_ms());
        reports.push(
            match super::status::collect(cli, &tree, &desired, &policies, None) {
                Ok(status) => EnvironmentReport::of(&desired, status, at),
                Err(e) => EnvironmentReport::unread(&desired, crate::diag::chain(&e), at),
            },
        );
    }
    match format {
        ReportFormat::Json => {
            print_json(&serde_json::to_string_pretty(&reports).expect("a report is JSON"))
        }
        ReportFormat::Markdown => print!("{}", render::report::markdown(&reports)),
    }
    Ok(if reports.iter().any(|r| r.error.is_some()) {
        Exit::Failure
    } else if reports.iter().any(EnvironmentReport::needs_attention) {
        Exit::Changes
    } else {
        Exit::Success
    })
}
