//! `sluice plan` and `sluice drift`: desired against live, no writes.

use std::path::Path;

use super::{Error, Exit, color_stdout, load_desired, load_policies, print_findings, runtime};
use crate::cli::{Cli, PlanFormat};
use crate::engine::{self, Planned, Target};
use crate::plan::{Action, Plan};
use crate::render;
use crate::state::{ApplyStatus, Stored};

/// Validates, connects and plans the selected environment, judged by the
/// policies (of `base` when given); prints what the policies said.
async fn plan_now(cli: &Cli, base: Option<&str>) -> Result<Planned, Error> {
    let (tree, desired) = load_desired(cli, None)?;
    let policies = load_policies(cli, &tree, base)?;
    let target = Target::connect(&desired.environment).await?;
    let planned = engine::plan(&desired, tree.revision.as_deref(), &target, &policies).await?;
    warn_unfinished(&planned.stored);
    print_findings(&tree, &planned.plan.policy);
    Ok(planned)
}

/// Says when the last apply did not end cleanly: a plan then shows what it left.
pub(super) fn warn_unfinished(stored: &Stored) {
    let Some(last) = &stored.applied else { return };
    let what = match last.status {
        ApplyStatus::Complete => return,
        ApplyStatus::Applying => "did not finish (it crashed, or it is running now)",
        ApplyStatus::Failed => "failed",
        ApplyStatus::Interrupted => "was interrupted",
    };
    eprintln!(
        "warning: the last apply (by {} at {}, plan {}) {what}: {} change(s) applied, {} failed. This plan shows what is left.",
        last.user,
        last.time,
        &last.plan_digest[..last.plan_digest.len().min(12)],
        last.applied,
        last.failed
    );
}

fn print(plan: &Plan, format: PlanFormat, drift: bool) {
    match format {
        PlanFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(plan).expect("a plan is JSON")
        ),
        PlanFormat::Markdown => print!("{}", render::markdown::plan(plan)),
        PlanFormat::Text if drift => print!("{}", render::text::drift(plan, color_stdout())),
        PlanFormat::Text => print!("{}", render::text::plan(plan, color_stdout())),
    }
}

pub fn plan(
    cli: &Cli,
    format: PlanFormat,
    out: Option<&Path>,
    detailed: bool,
    base: Option<&str>,
) -> Result<Exit, Error> {
    let planned = runtime().block_on(plan_now(cli, base))?;
    let plan = planned.plan;
    print(&plan, format, false);
    let denied = plan.denials().count();
    if denied > 0 {
        if out.is_some() {
            eprintln!("The plan is denied by policy; it was not saved.");
        }
        return Err(Error::Denied(denied));
    }
    if let Some(path) = out {
        let text = serde_json::to_string_pretty(&plan).expect("a plan is JSON");
        std::fs::write(path, text + "\n").map_err(|source| Error::Write {
            path: path.display().to_string(),
            source,
        })?;
        eprintln!(
            "Saved the plan to {}; apply it with `sluice apply {}`.",
            path.display(),
            path.display()
        );
    }
    Ok(
        if plan.changes.iter().any(|c| c.action == Action::Blocked) {
            Exit::Failure
        } else if detailed && !plan.changes.is_empty() {
            Exit::Changes
        } else {
            Exit::Success
        },
    )
}

pub fn drift(cli: &Cli, format: PlanFormat) -> Result<Exit, Error> {
    let planned = runtime().block_on(plan_now(cli, None))?;
    print(&planned.plan, format, true);
    Ok(
        if planned.plan.changes.is_empty() && planned.plan.violations().next().is_none() {
            Exit::Success
        } else {
            Exit::Changes
        },
    )
}
