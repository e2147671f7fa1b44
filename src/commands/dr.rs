//! `sluice dr drill NS`: a restore drill of one namespace, into scratch
//! topics, measured against its RTO and RPO and recorded in etcd.
//! `sluice dr report`: the DR review's tables, one per environment.

use std::sync::Arc;
use std::time::Duration;

use super::backup::{chosen, s3};
use super::{
    Error, Exit, block_on, environments_in_order, load_desired, load_policies, on_signal,
    print_json,
};
use crate::backup::{manifest::rfc3339, now_ms};
use crate::cli::{Cli, ReportFormat};
use crate::drill::{self, DrillError, Drilled, human_ms};
use crate::engine::apply::Interrupt;
use crate::engine::report::EnvironmentReport;
use crate::engine::{EngineError, Target};
use crate::render;

pub fn drill(cli: &Cli, namespace: &str, lock_wait: Duration) -> Result<Exit, Error> {
    let (_tree, desired) = load_desired(cli, None)?;
    let ns = chosen(&desired, &[namespace.to_owned()])?[0];
    let env = &desired.environment;
    let cancel = Arc::new(Interrupt::default());
    block_on(async {
        let target = Target::connect(env, cli.timeout).await?;
        let s3 = s3(cli, &desired).await?;
        {
            let cancel = cancel.clone();
            on_signal(move || {
                cancel.trigger();
                eprintln!(
                    "sluice: interrupted; stopping the drill after the object in flight, then deleting its scratch topics"
                );
            });
        }
        let drilled = drill::locked(ns, env, &target, &s3, &cancel, lock_wait, cli.timeout).await;
        target.leave();
        let (drilled, saved) = drilled?;
        print!("{}", describe(&drilled));
        saved.map_err(EngineError::from)?;
        Ok(if drilled.record.passed {
            Exit::Success
        } else {
            Exit::Failure
        })
    })
}

impl From<DrillError> for Error {
    fn from(e: DrillError) -> Self {
        match e {
            DrillError::Backup(e) => e.into(),
            DrillError::Connect(e) => e.into(),
            DrillError::State(e) => EngineError::from(e).into(),
        }
    }
}

/// The drill's outcome as people read it.
fn describe(d: &Drilled) -> String {
    let r = &d.record;
    let verdict = if r.passed { "PASSED" } else { "FAILED" };
    let mut out = format!(
        "Drill of namespace `{}`{}: {verdict}\n",
        r.namespace,
        if r.run.is_empty() {
            String::new()
        } else {
            format!(" from run {}", r.run)
        }
    );
    if let Some(f) = &r.failure {
        out.push_str(&format!("  failure: {f}\n"));
    }
    if d.verified {
        out.push_str(&format!(
            "  restored: {} record(s) from {} object(s) into {} scratch topic(s), counts match the manifests\n",
            r.records,
            d.objects,
            d.scratch.len()
        ));
        out.push_str(&format!(
            "  RTO: {} measured (start to verified restore), target {}\n",
            human_ms(r.rto_ms),
            r.rto_target_ms
                .map_or_else(|| "none declared".into(), human_ms)
        ));
    } else {
        out.push_str(&format!(
            "  restored: not verified ({} scratch topic(s) created)\n  RTO: not reached: the restore failed after {}, target {}\n",
            d.scratch.len(),
            human_ms(r.rto_ms),
            r.rto_target_ms.map_or_else(|| "none declared".into(), human_ms)
        ));
    }
    out.push_str(&format!(
        "  data age: {} (newest backup's read), RPO {}\n",
        human_ms(r.data_age_ms),
        r.rpo_ms.map_or_else(|| "none declared".into(), human_ms)
    ));
    out.push_str(&if d.left_behind.is_empty() {
        format!(
            "  scratch topics deleted: {}\n",
            if d.scratch.is_empty() {
                "none were created".to_owned()
            } else {
                d.scratch.join(", ")
            }
        )
    } else {
        format!(
            "  scratch topics LEFT BEHIND: {}\n",
            d.left_behind.join(", ")
        )
    });
    if !d.cleaned.is_empty() {
        out.push_str(&format!(
            "  scratch topics an interrupted drill left, deleted first: {}\n",
            d.cleaned.join(", ")
        ));
    }
    out
}

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
