//! `sluice plan` and `sluice drift`: desired against live, no writes.

use std::collections::BTreeSet;
use std::path::Path;

use super::{
    Error, Exit, block_on, color_stdout, load_desired, load_policies, print_findings, print_json,
    resolve_desired,
};
use crate::cli::{Cli, PlanFormat};
use crate::config::parse::parse_tree;
use crate::desired::{Desired, Environment, Overrides, connect_as_base};
use crate::engine::{self, Planned, Target};
use crate::plan::Plan;
use crate::render;
use crate::source::{PullRequest, SourceFile, SourceTree, load_pull_request};
use crate::state::{ApplyStatus, Stored};

/// Validates, connects and plans the selected environment, judged by the
/// policies; prints what the policies said. With `base` (a pull request's
/// base revision), plans the namespaces whose files changed since (and those
/// sharing a bucket with them), or every namespace when the workspace or a
/// policy changed, and judges by the base's policies.
async fn plan_now(cli: &Cli, base: Option<&str>, env: Option<&str>) -> Result<Planned, Error> {
    let mut review = Vec::new();
    let mut widened = None;
    let (tree, desired, policies) = match base {
        None => {
            let (tree, desired) = load_desired(cli, env)?;
            let policies = load_policies(&tree)?;
            (tree, desired, policies)
        }
        Some(base) => {
            let pr = load_pull_request(&cli.source.origin(), base)?;
            let policies = load_policies(&pr.base)?;
            let base_env = base_environment(cli, &pr.base, base, env)?;
            let (tree, mut desired, why) = load_changed(cli, pr, env)?;
            widened = why;
            review = connect_as_base(&mut desired.environment, &base_env);
            for r in &review {
                eprintln!(
                    "warning: the change sets `{r}`; this plan connects with the base revision's (review it)"
                );
            }
            (tree, desired, policies)
        }
    };
    let target = Target::connect(&desired.environment, cli.timeout).await?;
    let mut planned = engine::plan(&desired, tree.revision.as_deref(), &target, &policies).await?;
    planned.plan.review = review;
    planned.plan.widened = widened;
    warn_unfinished(&planned.stored);
    print_findings(&tree, &planned.plan.policy);
    Ok(planned)
}

/// The desired state of a pull request, whole, scoped to the namespaces
/// whose files it changed: those its changed files declare now, and those
/// they declared at the base (a deleted or renamed namespace, which then
/// plans as deletes). A change to what every namespace resolves through (the
/// workspace, a policy) scopes nothing, and says so.
fn load_changed(
    cli: &Cli,
    pr: PullRequest,
    env: Option<&str>,
) -> Result<(SourceTree, Desired, Option<String>), Error> {
    let PullRequest {
        head: tree,
        base,
        changed,
    } = pr;
    let widened = widened_by(&base, &tree);
    let names = |files: Vec<SourceFile>| -> BTreeSet<String> {
        let only = SourceTree {
            namespaces: files,
            ..SourceTree::default()
        };
        // A version that does not parse names nothing; the full load reports it.
        parse_tree(&only, &mut Vec::new())
            .namespaces
            .iter()
            .map(|d| d.value.metadata.name.value.clone())
            .collect()
    };
    let mut scope = names(
        base.namespaces
            .into_iter()
            .filter(|f| changed.before.contains(&f.path))
            .collect(),
    );
    scope.extend(names(
        tree.namespaces
            .iter()
            .filter(|f| changed.now.contains(&f.path))
            .cloned()
            .collect(),
    ));
    // Nothing declared at all: plan everything, so that the guard against
    // deleting everything applies.
    let whole = widened.is_some() || tree.namespaces.is_empty();
    let (tree, mut desired) = resolve_desired(cli, tree, env)?;
    if !whole {
        desired.scope = Some(scope);
    }
    Ok((tree, desired, widened))
}

/// What a pull request changes outside `namespaces/` that every namespace
/// resolves or is judged through.
fn widened_by(base: &SourceTree, head: &SourceTree) -> Option<String> {
    let text = |f: &Option<SourceFile>| f.as_ref().map(|f| f.text.clone());
    if text(&base.workspace) != text(&head.workspace) {
        return Some("the change edits the workspace file (`sluice.yaml`)".into());
    }
    let policies = |t: &SourceTree| -> Vec<(String, String)> {
        let mut p: Vec<_> = t
            .policies
            .iter()
            .map(|f| (f.path.clone(), f.text.clone()))
            .collect();
        p.sort();
        p
    };
    if policies(base) != policies(head) {
        return Some("the change edits a policy (`policies/`)".into());
    }
    None
}

/// The environment as the base revision's workspace declares it: a pull
/// request's plan connects with it, never with the change's settings.
fn base_environment(
    cli: &Cli,
    base: &SourceTree,
    rev: &str,
    env: Option<&str>,
) -> Result<Environment, Error> {
    let workspace_only = SourceTree {
        workspace: base.workspace.clone(),
        ..SourceTree::default()
    };
    let (desired, _) = engine::load_desired(
        &workspace_only,
        env.or(cli.env.as_deref()),
        &Overrides::from_process(),
    );
    desired
        .map(|d| d.environment)
        .ok_or_else(|| Error::BaseEnvironment {
            env: env
                .or(cli.env.as_deref())
                .unwrap_or("the default")
                .to_owned(),
            base: rev.to_owned(),
        })
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
        render::short(&last.plan_digest),
        last.applied,
        last.failed
    );
}

fn print(plan: &Plan, format: PlanFormat, drift: bool) {
    match format {
        PlanFormat::Json => {
            print_json(&serde_json::to_string_pretty(plan).expect("a plan is JSON"))
        }
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
    let planned = block_on(plan_now(cli, base, None))?;
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
        save(&plan, path)?;
        eprintln!(
            "Saved the plan to {}; apply it with `sluice apply {}`.",
            path.display(),
            path.display()
        );
    }
    Ok(exit_of(
        plan.summary.blocked > 0,
        detailed && !plan.changes.is_empty(),
    ))
}

/// `plan --floor`: loads and connects as a plan does, then makes only the
/// plan's reads and prints how long they took, in seconds.
pub fn floor(cli: &Cli) -> Result<Exit, Error> {
    let (_, desired) = load_desired(cli, None)?;
    let took = block_on(async {
        let target = Target::connect(&desired.environment, cli.timeout).await?;
        Ok::<_, Error>(engine::read_floor(&desired, &target).await?)
    })?;
    println!("floor reads: {:.3} s", took.as_secs_f64());
    Ok(Exit::Success)
}

/// A plan's exit: 1 when something is blocked, 2 for changes when asked.
fn exit_of(blocked: bool, changes: bool) -> Exit {
    if blocked {
        Exit::Failure
    } else if changes {
        Exit::Changes
    } else {
        Exit::Success
    }
}

pub fn drift(cli: &Cli, format: PlanFormat) -> Result<Exit, Error> {
    let planned = block_on(plan_now(cli, None, None))?;
    print(&planned.plan, format, true);
    Ok(
        if planned.plan.changes.is_empty() && planned.plan.violations().next().is_none() {
            Exit::Success
        } else {
            Exit::Changes
        },
    )
}

/// `plan --all-environments`: each environment in apply order, one output.
pub fn plan_all(
    cli: &Cli,
    format: PlanFormat,
    out: Option<&Path>,
    detailed: bool,
    base: Option<&str>,
) -> Result<Exit, Error> {
    let mut plans = Vec::new();
    for env in super::environments_in_order(cli)? {
        plans.push(block_on(plan_now(cli, base, Some(&env)))?.plan);
    }
    match format {
        PlanFormat::Json => {
            print_json(&serde_json::to_string_pretty(&plans).expect("plans are JSON"))
        }
        PlanFormat::Markdown => print!("{}", render::markdown::environments(&plans)),
        PlanFormat::Text => plans
            .iter()
            .for_each(|p| print!("{}", render::text::plan(p, color_stdout()))),
    }
    let denied: usize = plans.iter().map(|p| p.denials().count()).sum();
    if denied > 0 {
        return Err(Error::Denied(denied));
    }
    if let Some(dir) = out {
        std::fs::create_dir_all(dir).map_err(|source| Error::Write {
            path: dir.display().to_string(),
            source,
        })?;
        for plan in &plans {
            save(plan, &dir.join(format!("{}.json", plan.environment)))?;
        }
        eprintln!(
            "Saved {} plan(s) to {}; apply them in order with `sluice apply --reviewed {}`.",
            plans.len(),
            dir.display(),
            dir.display()
        );
    }
    let blocked = plans.iter().any(|p| p.summary.blocked > 0);
    let changes = plans.iter().any(|p| !p.changes.is_empty());
    Ok(exit_of(blocked, detailed && changes))
}

/// Writes a plan with its digest, for `apply`.
fn save(plan: &Plan, path: &Path) -> Result<(), Error> {
    let saved = Plan {
        digest: Some(plan.digest()),
        ..plan.clone()
    };
    let text = serde_json::to_string_pretty(&saved).expect("a plan is JSON");
    crate::files::replace(path, (text + "\n").as_bytes()).map_err(|source| Error::Write {
        path: path.display().to_string(),
        source,
    })
}
