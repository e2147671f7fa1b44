//! `sluice plan` and `sluice drift`: desired against live, no writes.

use std::collections::BTreeSet;
use std::path::Path;

use futures_util::future::Either;

use super::{
    Error, Exit, block_on, color_stdout, load_desired, load_policies, print_findings, print_json,
    pull_request, resolve_selected,
};
use crate::cli::{Cli, PlanFormat};
use crate::config::parse::suggest_among;
use crate::desired::{self, Desired, Overrides};
use crate::engine::{self, EngineError, Known, Planned, Target};
use crate::plan::Plan;
use crate::policy::Policies;
use crate::render::{self, Detail};
use crate::source::SourceTree;
use crate::state::{ApplyStatus, Stored};

/// Validates, connects and plans the selected environment, judged by the
/// policies; prints what the policies said. With `base` (a pull request's
/// base revision), plans the namespaces whose files changed since (and those
/// sharing a bucket with them), or every namespace when the workspace or a
/// policy changed, and judges by the base's policies.
/// With `targets` (`--namespace`), plans those namespaces as `plan --base`
/// plans a pull request's.
async fn plan_now(
    cli: &Cli,
    base: Option<&str>,
    env: Option<&str>,
    targets: &[String],
) -> Result<Planned, Error> {
    let (tree, planned) = match base {
        None if targets.is_empty() => {
            let ((tree, planned), target) =
                while_loading(cli, env, async |(tree, desired, policies), to| {
                    let revision = tree.revision.as_deref();
                    let planned =
                        engine::plan_from(&desired, revision, to.target, &policies, to.known)
                            .await?;
                    Ok((tree, planned))
                })
                .await?;
            target.leave();
            (tree, planned)
        }
        None => {
            let (tree, mut desired) = load_desired(cli, env)?;
            let policies = load_policies(&tree)?;
            let target = Target::connect(&desired.environment, cli.timeout).await?;
            scope_to(&mut desired, targets, &target).await?;
            let mut planned =
                engine::plan(&desired, tree.revision.as_deref(), &target, &policies).await?;
            target.leave();
            planned.plan.targets = targets.to_vec();
            (tree, planned)
        }
        Some(base) => {
            let pr = pull_request::load(cli, base, env).await?;
            for r in &pr.review {
                eprintln!(
                    "warning: the change sets `{r}`; this plan connects with the base revision's (review it)"
                );
            }
            let mut planned = engine::plan_from(
                &pr.desired,
                pr.tree.revision.as_deref(),
                &pr.target,
                &pr.policies,
                pr.stored
                    .map_or(Known::Nothing, |s| Known::Stored(Box::new(s))),
            )
            .await?;
            pr.target.leave();
            planned.plan.review = pr.review;
            planned.plan.widened = pr.widened;
            (pr.tree, planned)
        }
    };
    warn_unfinished(&planned.stored);
    print_findings(&tree, &planned.plan.policy);
    Ok(planned)
}

/// A tree's desired state and policies, loaded.
type Loaded = (SourceTree, Desired, Policies);

/// Loads the desired state of environment `env` from `tree`, and its policies.
fn load_all(tree: SourceTree, env: Option<&str>) -> Result<Loaded, Error> {
    let (tree, desired) = resolve_selected(tree, env)?;
    let policies = load_policies(&tree)?;
    Ok((tree, desired, policies))
}

/// The systems [`while_loading`] connected to, what it is reading from
/// them, and when it began to connect.
struct Connected<'a> {
    target: &'a Target,
    known: Known,
    since: std::time::Instant,
}

/// Reads the tree and runs `then` with what it loads, connected to its
/// environment. When the workspace alone selects that environment, sluice
/// connects and [`engine::prefetch`]es (its state, and the live state of
/// what it records) while the namespaces parse on a thread of their own, and
/// `then` is handed the reads in flight; else it loads, then connects. A
/// problem in the files is said before any connection error, and as soon as
/// it is found.
async fn while_loading<R>(
    cli: &Cli,
    env: Option<&str>,
    then: impl AsyncFnOnce(Loaded, Connected<'_>) -> Result<R, Error>,
) -> Result<(R, Target), Error> {
    let tree = cli.source.origin().load()?;
    let selected = env.or(cli.env.as_deref()).map(str::to_owned);
    let overrides = Overrides::from_process();
    let Some(environment) = desired::environment(&tree, selected.as_deref(), &overrides) else {
        let (tree, desired, policies) = load_all(tree, selected.as_deref())?;
        let since = std::time::Instant::now();
        let target = Target::connect(&desired.environment, cli.timeout).await?;
        let known = Known::Nothing;
        let done = then(
            (tree, desired, policies),
            Connected {
                target: &target,
                known,
                since,
            },
        );
        return Ok((done.await?, target));
    };
    let mut loading = tokio::task::spawn_blocking(move || load_all(tree, selected.as_deref()));
    let joined = |loaded: Result<Result<Loaded, Error>, tokio::task::JoinError>| {
        loaded.expect("loading the tree does not panic")
    };
    let since = std::time::Instant::now();
    let connecting = Target::connect(&environment, cli.timeout);
    tokio::pin!(connecting);
    let (target, mut loaded) = tokio::select! {
        loaded = &mut loading => {
            let loaded = joined(loaded)?;
            (connecting.await?, Some(loaded))
        }
        target = &mut connecting => match target {
            Ok(target) => (target, None),
            Err(e) => {
                joined(loading.await)?;
                return Err(e.into());
            }
        },
    };
    let done = {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let reading = std::pin::pin!(async {
            let _ = sender.send(engine::prefetch(&target).await);
        });
        let planning = std::pin::pin!(async {
            let loaded = match loaded.take() {
                Some(loaded) => loaded,
                None => joined(loading.await)?,
            };
            let known = Known::Reading(receiver);
            then(
                loaded,
                Connected {
                    target: &target,
                    known,
                    since,
                },
            )
            .await
        });
        match futures_util::future::select(planning, reading).await {
            Either::Left((done, _)) => done,
            Either::Right(((), planning)) => planning.await,
        }
    }?;
    Ok((done, target))
}

/// Scopes `desired` to the namespaces `--namespace` names, as a pull
/// request's plan is scoped: each one declared, or still in sluice's
/// inventory (its YAML removed: it plans as deletes). Any other name is an
/// error, with the closest names there are.
pub(super) async fn scope_to(
    desired: &mut Desired,
    names: &[String],
    target: &Target,
) -> Result<(), Error> {
    let asked: BTreeSet<String> = names.iter().cloned().collect();
    let declared: BTreeSet<&str> = desired.namespaces.iter().map(|n| n.name.as_str()).collect();
    let undeclared: BTreeSet<String> = asked
        .iter()
        .filter(|n| !declared.contains(n.as_str()))
        .cloned()
        .collect();
    if !undeclared.is_empty() {
        let recorded = |stored: &Stored| -> BTreeSet<String> {
            stored
                .inventory
                .entries
                .values()
                .map(|e| e.namespace.clone())
                .collect()
        };
        let stored = target
            .state
            .load(Some(&undeclared))
            .await
            .map_err(EngineError::from)?;
        let found = recorded(&stored);
        let unknown: Vec<&String> = undeclared.iter().filter(|n| !found.contains(*n)).collect();
        if !unknown.is_empty() {
            // The closest of every namespace declared or recorded.
            let all = target.state.load(None).await.map_err(EngineError::from)?;
            let mut known = recorded(&all);
            known.extend(declared.iter().map(|n| (*n).to_owned()));
            let known: Vec<&String> = known.iter().collect();
            return Err(Error::UnknownNamespace {
                names: unknown
                    .iter()
                    .map(|n| match suggest_among(n, &known) {
                        Some(hint) => format!("`{n}` ({hint})"),
                        None => format!("`{n}`"),
                    })
                    .collect(),
                env: desired.environment.name.clone(),
            });
        }
    }
    desired.scope = Some(asked);
    Ok(())
}

/// Says when the last apply did not end cleanly: a plan then shows what it left.
pub(super) fn warn_unfinished(stored: &Stored) {
    let Some(last) = &stored.applied else { return };
    if last.status == ApplyStatus::Complete {
        return;
    }
    eprintln!(
        "warning: the last apply {}. This plan shows what is left.",
        render::progress::last_apply(last)
    );
}

/// How a plan is shown: the format, and for text and markdown, the detail.
pub type View = (PlanFormat, Detail);

pub(super) fn print(plan: &Plan, (format, detail): View, drift: bool) {
    match format {
        PlanFormat::Json => {
            print_json(&serde_json::to_string_pretty(plan).expect("a plan is JSON"))
        }
        PlanFormat::Markdown => print!("{}", render::markdown::plan_with(plan, detail)),
        PlanFormat::Text if drift => {
            print!("{}", render::text::drift_with(plan, color_stdout(), detail))
        }
        PlanFormat::Text => print!("{}", render::text::plan_with(plan, color_stdout(), detail)),
    }
}

pub fn plan(
    cli: &Cli,
    view: View,
    out: Option<&Path>,
    detailed: bool,
    base: Option<&str>,
    targets: &[String],
) -> Result<Exit, Error> {
    let planned = block_on(plan_now(cli, base, None, targets))?;
    let plan = planned.plan;
    print(&plan, view, false);
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

/// `plan --floor`: loads and connects as a plan does, and makes only the
/// plan's reads; prints how long they took, in seconds, from the start of
/// connecting.
pub fn floor(cli: &Cli) -> Result<Exit, Error> {
    let took = block_on(async {
        let (took, target) = while_loading(cli, None, async |(_, desired, _), to| {
            engine::read_floor(&desired, to.target, to.known).await?;
            Ok(to.since.elapsed())
        })
        .await?;
        target.leave();
        Ok::<_, Error>(took)
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

pub fn drift(cli: &Cli, view: View, targets: &[String]) -> Result<Exit, Error> {
    let planned = block_on(plan_now(cli, None, None, targets))?;
    print(&planned.plan, view, true);
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
    (format, detail): View,
    out: Option<&Path>,
    detailed: bool,
    base: Option<&str>,
) -> Result<Exit, Error> {
    let mut plans = Vec::new();
    for env in super::environments_in_order(cli)? {
        plans.push(block_on(plan_now(cli, base, Some(&env), &[]))?.plan);
    }
    match format {
        PlanFormat::Json => {
            print_json(&serde_json::to_string_pretty(&plans).expect("plans are JSON"))
        }
        PlanFormat::Markdown => print!("{}", render::markdown::environments_with(&plans, detail)),
        PlanFormat::Text => plans
            .iter()
            .for_each(|p| print!("{}", render::text::plan_with(p, color_stdout(), detail))),
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
