//! `sluice destroy`: delete everything sluice manages in an environment,
//! except protected namespaces, once the environment's name is typed.

use std::io::IsTerminal;
use std::sync::Arc;

use super::apply::{Limits, ask, lock, report, worth_applying};
use super::progress::Reporter;
use super::{Error, Exit, block_on, color_stdout, load_desired, load_policies};
use crate::cli::Cli;
use crate::engine::apply::{ApplyOptions, apply_locked, release};
use crate::engine::{Target, destroy};
use crate::render;
use crate::state::{ApplyStatus, Holder};

pub fn run(cli: &Cli, confirm: Option<&str>, limits: Limits) -> Result<Exit, Error> {
    let (tree, desired) = load_desired(cli, None)?;
    let env = desired.environment.name.clone();
    // Settled before anything is locked or read.
    match confirm {
        Some(typed) if typed != env => {
            return Err(Error::NotConfirmed {
                typed: typed.to_owned(),
                env,
            });
        }
        None if !std::io::stdin().is_terminal() => return Err(Error::NeedsConfirmation(env)),
        _ => {}
    }
    let policies = load_policies(&tree)?;
    let reporter = Arc::new(Reporter::for_stderr());
    let opts = ApplyOptions {
        // Typing the environment's name is the permission.
        allow_delete: true,
        lock_wait: limits.lock_wait,
        holder: Holder::current(),
        cancel: Arc::default(),
        batch: limits.batch,
        progress: reporter.clone(),
    };
    block_on(async {
        let target = Target::connect(&desired.environment, cli.timeout).await?;
        let lock = lock(&target, &opts).await?;
        let result = async {
            // A signal while planning stops it: nothing is written yet.
            let planned = tokio::select! {
                planned = destroy::plan(&desired, tree.revision.as_deref(), &target, &policies) => planned?,
                () = opts.cancel.triggered() => return Err(Error::Cancelled),
            };
            let plan = &planned.planned.plan;
            print!("{}", render::text::plan(plan, color_stdout()));
            if let Some(kept) = destroy::kept_line(&planned.kept) {
                println!("{kept}");
            }
            if !worth_applying(&tree, plan)? {
                return Ok(None);
            }
            if confirm.is_none() {
                let question = format!(
                    "\nThis deletes {} resource(s) of environment `{env}`. Type the environment's name to confirm: ",
                    plan.summary.delete
                );
                if !ask(&question, &env, &opts.cancel).await? {
                    return Err(Error::Cancelled);
                }
            }
            Ok(Some(apply_locked(plan, &target, lock.as_ref(), &opts).await?))
        }
        .await;
        reporter.finish();
        release(lock).await;
        target.leave();
        let Some(outcome) = result? else {
            println!("Nothing to destroy in environment `{env}`.");
            return Ok(Exit::Success);
        };
        report(&outcome, 0);
        Ok(if outcome.status() == ApplyStatus::Complete {
            Exit::Success
        } else {
            Exit::Failure
        })
    })
}
