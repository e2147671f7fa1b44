//! `sluice apply [PLAN]`: apply a saved plan, or plan, confirm and apply.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::plan::warn_unfinished;
use super::{
    Error, Exit, block_on, color_stdout, load_desired, load_policies, on_signal, print_findings,
};
use crate::cli::Cli;
use crate::desired::Desired;
use crate::engine::apply::{
    ApplyError, ApplyOptions, Interrupt, Outcome, apply, apply_locked, release,
};
use crate::engine::{self, EngineError, Target};
use crate::plan::{FORMAT_VERSION, Plan};
use crate::render;
use crate::source::SourceTree;
use crate::state::{ApplyStatus, Holder, Lock};

/// How long to wait for the lock, and how many changes per request.
pub struct Limits {
    pub lock_wait: Duration,
    pub batch: usize,
}

pub fn run(
    cli: &Cli,
    plan_file: Option<&Path>,
    auto_approve: bool,
    allow_delete: bool,
    limits: Limits,
) -> Result<Exit, Error> {
    let opts = ApplyOptions {
        allow_delete,
        lock_wait: limits.lock_wait,
        holder: Holder::current(),
        cancel: Arc::default(),
        batch: limits.batch,
    };
    block_on(async {
        let done = match plan_file {
            Some(path) => {
                let plan = read_plan(path, cli.env.as_deref())?;
                let denied = plan.denials().count();
                if denied > 0 {
                    return Err(Error::Denied(denied));
                }
                let (_, desired) = load_desired(cli, Some(&plan.environment))?;
                let target = Target::connect(&desired.environment).await?;
                cancel_on_signal(&opts.cancel);
                Some((apply(&plan, &target, &opts).await?, plan.adopt.len()))
            }
            None => {
                // Plan under the lock, so that nothing moves between plan and apply.
                let (tree, desired) = load_desired(cli, None)?;
                let target = Target::connect(&desired.environment).await?;
                let lock = target
                    .state
                    .lock(&opts.holder, opts.lock_wait)
                    .await
                    .map_err(EngineError::from)?;
                // From here on a signal is handled, so the lock is released
                // whenever it comes: while planning, at the prompt, applying.
                cancel_on_signal(&opts.cancel);
                let result =
                    plan_and_apply(&tree, &desired, &target, lock.as_ref(), auto_approve, &opts)
                        .await;
                release(lock).await;
                result?
            }
        };
        let Some((outcome, adopted)) = done else {
            return Ok(Exit::Success);
        };
        report(&outcome, adopted);
        Ok(if outcome.status() == ApplyStatus::Complete {
            Exit::Success
        } else {
            Exit::Failure
        })
    })
}

/// Plans, shows the plan, asks, and applies; `None` when there is nothing to
/// do or the answer is no.
async fn plan_and_apply(
    tree: &SourceTree,
    desired: &Desired,
    target: &Target,
    lock: &dyn Lock,
    auto_approve: bool,
    opts: &ApplyOptions,
) -> Result<Option<(Outcome, usize)>, Error> {
    let policies = load_policies(tree)?;
    // A signal while planning stops it: nothing is written yet.
    let planned = tokio::select! {
        planned = engine::plan(desired, tree.revision.as_deref(), target, &policies) => planned?,
        () = opts.cancel.triggered() => return Err(Error::Cancelled),
    };
    warn_unfinished(&planned.stored);
    let plan = planned.plan;
    print!("{}", render::text::plan(&plan, color_stdout()));
    let denied = print_findings(tree, &plan.policy);
    if denied > 0 {
        return Err(Error::Denied(denied));
    }
    if plan.summary.blocked > 0 {
        return Err(ApplyError::Blocked(plan.summary.blocked).into());
    }
    if plan.is_empty() {
        return Ok(None);
    }
    if !auto_approve && !confirm(&plan.environment, &opts.cancel).await? {
        return Err(Error::Cancelled);
    }
    let outcome = apply_locked(&plan, target, lock, opts).await?;
    Ok(Some((outcome, plan.adopt.len())))
}

fn read_plan(path: &Path, env: Option<&str>) -> Result<Plan, Error> {
    let error = |message: String| Error::PlanFile {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    let version: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| error(format!("not a plan: {e}")))?;
    if version["format_version"] != FORMAT_VERSION {
        return Err(error(format!(
            "format_version {} is not {FORMAT_VERSION}; plan again with this sluice",
            version["format_version"]
        )));
    }
    let plan: Plan =
        serde_json::from_value(version).map_err(|e| error(format!("not a plan: {e}")))?;
    if let Some(env) = env
        && env != plan.environment
    {
        return Err(error(format!(
            "it is for environment `{}`, not `{env}`",
            plan.environment
        )));
    }
    Ok(plan)
}

/// Asks on the terminal; without one, refuses. A signal while waiting for
/// the answer is a no.
async fn confirm(env: &str, interrupt: &Interrupt) -> Result<bool, Error> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::NeedsApproval);
    }
    print!("\nApply these changes to environment `{env}`? Only `yes` is accepted: ");
    let _ = std::io::stdout().flush();
    let answer = tokio::task::spawn_blocking(|| {
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        answer
    });
    tokio::select! {
        answer = answer => Ok(answer.is_ok_and(|a| a.trim() == "yes")),
        () = interrupt.triggered() => {
            println!();
            Ok(false)
        }
    }
}

/// Sets `flag` on SIGINT or SIGTERM: apply then starts nothing new, finishes
/// what is in flight, records it and releases the lock.
fn cancel_on_signal(interrupt: &Arc<Interrupt>) {
    let interrupt = interrupt.clone();
    on_signal(move || {
        interrupt.trigger();
        eprintln!("sluice: interrupted; finishing the changes in flight, then stopping");
    });
}

fn report(outcome: &Outcome, adopted: usize) {
    for (address, error) in &outcome.failed {
        eprintln!("  ! {address}: {error}");
    }
    let applied = outcome.applied.len();
    let adopted = if adopted > 0 {
        format!(", {adopted} adopted into the inventory")
    } else {
        String::new()
    };
    match outcome.status() {
        ApplyStatus::Complete => println!("Apply complete: {applied} change(s) applied{adopted}."),
        ApplyStatus::Interrupted => eprintln!(
            "Apply interrupted: {applied} change(s) applied, {} not started. The inventory records what was applied; apply again to continue.",
            outcome.not_attempted
        ),
        _ => eprintln!(
            "Apply failed: {applied} change(s) applied, {} failed, {} not attempted. The inventory records what was applied; fix the cause and apply again.",
            outcome.failed.len(),
            outcome.not_attempted
        ),
    }
}
