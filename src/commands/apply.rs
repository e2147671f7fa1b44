//! `sluice apply [PLAN]`: apply a saved plan, or plan, confirm and apply.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::plan::{scope_to, warn_unfinished};
use super::progress::Reporter;
use super::{
    Error, Exit, block_on, color_stdout, load_desired, load_policies, on_signal, print_findings,
    resolve_desired,
};
use crate::cli::Cli;
use crate::desired::Desired;
use crate::engine::apply::{ApplyError, ApplyOptions, Interrupt, Outcome, apply_locked, release};
use crate::engine::{self, EngineError, Target};
use crate::plan::{FORMAT_VERSION, Plan};
use crate::render;
use crate::source::{SourceTree, load_revision};
use crate::state::{ApplyStatus, Holder, Lock, SourceIndex};

/// How long to wait for the lock, how many changes per request, and how
/// much of the plan to show before asking.
#[derive(Clone, Copy)]
pub struct Limits {
    pub lock_wait: Duration,
    pub batch: usize,
    pub detail: render::Detail,
}

/// Writes the source index of `tree`'s namespace files, which pull
/// requests' plans look names up in, unless it is of them already (the
/// files are parsed again only then). Without it those plans read every
/// file: a failure is said, and changes nothing else.
async fn save_index(tree: &SourceTree, target: &Target, lock: &dyn Lock) {
    if tree.partial {
        return;
    }
    let digest = SourceIndex::digest_of(tree);
    let none = std::collections::BTreeSet::new();
    if let Ok(Some(_)) = target.state.index_lookup(&digest, &none).await {
        return;
    }
    let Some(index) = SourceIndex::of(tree) else {
        return;
    };
    if let Err(e) = lock.save_index(&index).await {
        tracing::warn!(
            "could not write the source index (plans of pull requests read every namespace file until an apply writes it): {}",
            crate::diag::chain(&e)
        );
    }
}

/// A plan file given to apply.
#[derive(Clone, Copy)]
pub enum Saved<'a> {
    /// `apply PLAN`: exactly that plan, from the desired state at its
    /// revision; refused when what it changes moved since.
    Exact(&'a Path),
    /// `apply --reviewed PLAN`: the merged revision, planned in the reviewed
    /// plan's scope, applied only when it makes the reviewed changes.
    Reviewed(&'a Path),
}

impl Saved<'_> {
    fn path(&self) -> &Path {
        match self {
            Saved::Exact(p) | Saved::Reviewed(p) => p,
        }
    }
}

pub fn run(
    cli: &Cli,
    plan_file: Option<Saved<'_>>,
    auto_approve: bool,
    allow_delete: bool,
    limits: Limits,
    namespaces: &[String],
) -> Result<Exit, Error> {
    let reporter = Arc::new(Reporter::for_stderr());
    let opts = ApplyOptions {
        allow_delete,
        lock_wait: limits.lock_wait,
        holder: Holder::current(),
        cancel: Arc::default(),
        batch: limits.batch,
        progress: reporter.clone(),
    };
    block_on(async {
        let saved = plan_file
            .map(|file| read_plan(file.path(), cli.env.as_deref()))
            .transpose()?;
        let reviewed = matches!(plan_file, Some(Saved::Reviewed(_)));
        // The desired state now: its workspace's guards and policies hold,
        // whatever a saved plan says.
        let (tree, mut desired) =
            load_desired(cli, saved.as_ref().map(|p| p.environment.as_str()))?;
        match &saved {
            Some(saved) if reviewed => {
                desired.scope = saved.scope.as_ref().map(|s| s.iter().cloned().collect());
            }
            Some(saved) => desired = derive_as_saved(cli, saved, &tree, desired)?,
            None => {}
        }
        // Plan under the lock, so that nothing moves between plan and apply.
        let target = Target::connect(&desired.environment, cli.timeout).await?;
        if !namespaces.is_empty() {
            scope_to(&mut desired, namespaces, &target).await?;
        }
        let lock = lock(&target, &opts).await?;
        let result = match &saved {
            Some(saved) => {
                let check = Check { moved: !reviewed };
                apply_saved(saved, check, &tree, &desired, &target, lock.as_ref(), &opts)
                    .await
                    .map(Some)
            }
            None => {
                let how = How {
                    auto_approve,
                    targets: namespaces,
                    detail: limits.detail,
                };
                plan_and_apply(&tree, &desired, &target, lock.as_ref(), how, &opts).await
            }
        };
        // After SIGINT or SIGTERM, nothing new is started.
        if !opts.cancel.requested() {
            save_index(&tree, &target, lock.as_ref()).await;
        }
        reporter.finish();
        release(lock).await;
        target.leave();
        let done = result?;
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

/// How an apply without a plan file goes.
#[derive(Clone, Copy)]
struct How<'a> {
    /// Without asking.
    auto_approve: bool,
    /// The namespaces `--namespace` named, for the plan's header.
    targets: &'a [String],
    /// How much of the plan to show before asking.
    detail: render::Detail,
}

/// Plans, shows the plan, asks, and applies; `None` when there is nothing to
/// do or the answer is no.
async fn plan_and_apply(
    tree: &SourceTree,
    desired: &Desired,
    target: &Target,
    lock: &dyn Lock,
    how: How<'_>,
    opts: &ApplyOptions,
) -> Result<Option<(Outcome, usize)>, Error> {
    let policies = load_policies(tree)?;
    // A signal while planning stops it: nothing is written yet.
    let planned = tokio::select! {
        planned = engine::plan(desired, tree.revision.as_deref(), target, &policies) => planned?,
        () = opts.cancel.triggered() => return Err(Error::Cancelled),
    };
    warn_unfinished(&planned.stored);
    let mut plan = planned.plan;
    plan.targets = how.targets.to_vec();
    print!(
        "{}",
        render::text::plan_with(&plan, color_stdout(), how.detail)
    );
    if !worth_applying(tree, &plan)? {
        return Ok(None);
    }
    if !how.auto_approve && !confirm(&plan, &opts.cancel).await? {
        return Err(Error::Cancelled);
    }
    let outcome = apply_locked(&plan, target, lock, opts).await?;
    Ok(Some((outcome, plan.adopt.len())))
}

/// Whether a plan shown before it is applied has anything to apply; refused
/// when a policy denies it (what the policies said is printed) or a change
/// is blocked.
pub(super) fn worth_applying(tree: &SourceTree, plan: &Plan) -> Result<bool, Error> {
    let denied = print_findings(tree, &plan.policy);
    if denied > 0 {
        return Err(Error::Denied(denied));
    }
    if plan.summary.blocked > 0 {
        return Err(ApplyError::Blocked(plan.summary.blocked).into());
    }
    Ok(!plan.is_empty())
}

/// The desired state a saved plan was made from: at its revision (when it
/// was made from Git and the source is now elsewhere), in its scope, with
/// the guards of the workspace as it is now.
fn derive_as_saved(
    cli: &Cli,
    saved: &Plan,
    now: &SourceTree,
    current: Desired,
) -> Result<Desired, Error> {
    let mut desired = match saved.revision.as_deref() {
        Some(rev) if now.revision.as_deref() != Some(rev) => {
            let tree = load_revision(&cli.source.origin(), rev)?;
            let (_, at) = resolve_desired(cli, tree, Some(&saved.environment))?;
            Desired {
                guards: current.guards.clone(),
                ..at
            }
        }
        _ => current,
    };
    // The whole desired state, scoped: a shared bucket gets the value the
    // plan gave it.
    desired.scope = saved.scope.as_ref().map(|s| s.iter().cloned().collect());
    Ok(desired)
}

/// What a saved plan is held to besides making the same changes.
#[derive(Clone, Copy)]
struct Check {
    /// Nothing it changes moved since it was made (an exact plan); a reviewed
    /// plan is planned again from the merged revision, so only its changes count.
    moved: bool,
}

/// Plans again under the lock and applies only when that plan makes the
/// same changes as the saved one: the file is what was reviewed, never what
/// is sent. Resources it changes must not have moved since it was made.
async fn apply_saved(
    saved: &Plan,
    check: Check,
    tree: &SourceTree,
    desired: &Desired,
    target: &Target,
    lock: &dyn Lock,
    opts: &ApplyOptions,
) -> Result<(Outcome, usize), Error> {
    let policies = load_policies(tree)?;
    // An exact plan is made again at its own revision; a reviewed one at the merge.
    let revision = if check.moved {
        saved.revision.as_deref()
    } else {
        tree.revision.as_deref()
    };
    let fresh = tokio::select! {
        planned = engine::plan(desired, revision, target, &policies) => planned?,
        () = opts.cancel.triggered() => return Err(Error::Cancelled),
    }
    .plan;
    let denied = print_findings(tree, &fresh.denials().cloned().collect::<Vec<_>>());
    if denied > 0 {
        return Err(Error::Denied(denied));
    }
    let moved = if check.moved {
        saved.moved(&fresh)
    } else {
        Vec::new()
    };
    if !moved.is_empty() {
        return Err(ApplyError::Stale(moved).into());
    }
    let differences = saved.differences(&fresh);
    if !differences.is_empty() {
        return Err(Error::PlanDiffers(differences));
    }
    let outcome = apply_locked(&fresh, target, lock, opts).await?;
    Ok((outcome, fresh.adopt.len()))
}

/// A saved plan, refused unless its digest matches its content and it is
/// for `env` (when given): whoever wrote the file, it is never trusted.
pub(super) fn read_plan(path: &Path, env: Option<&str>) -> Result<Plan, Error> {
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
    match &plan.digest {
        Some(d) if *d == plan.digest() => {}
        Some(_) => {
            return Err(error(
                "its content does not match its digest: it was edited after `sluice plan --out` wrote it".into(),
            ));
        }
        None => {
            return Err(error(
                "it has no digest: save plans with `sluice plan --out FILE`".into(),
            ));
        }
    }
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

/// Asks on the terminal, naming the environment and where its systems
/// are; without a terminal, refuses. A signal while waiting for the answer
/// is a no.
async fn confirm(plan: &Plan, interrupt: &Interrupt) -> Result<bool, Error> {
    if !std::io::stdin().is_terminal() {
        return Err(Error::NeedsApproval);
    }
    let at: String = plan
        .endpoints
        .iter()
        .flat_map(|e| e.lines())
        .map(|(system, at)| format!("\n  {system}: {at}"))
        .collect();
    let question = format!(
        "\nApply these changes to environment `{}`?{at}\nOnly `yes` is accepted: ",
        plan.environment
    );
    ask(&question, "yes", interrupt).await
}

/// Asks `question` on the terminal: whether the answer is `expected`. A
/// signal while waiting for it is a no.
pub(super) async fn ask(
    question: &str,
    expected: &str,
    interrupt: &Interrupt,
) -> Result<bool, Error> {
    print!("{question}");
    let _ = std::io::stdout().flush();
    let answer = tokio::task::spawn_blocking(|| {
        let mut answer = String::new();
        let _ = std::io::stdin().lock().read_line(&mut answer);
        answer
    });
    tokio::select! {
        answer = answer => Ok(answer.is_ok_and(|a| a.trim() == expected)),
        () = interrupt.triggered() => {
            println!();
            Ok(false)
        }
    }
}

/// Takes the environment's apply lock. From then on a signal is handled
/// (it triggers `opts.cancel`), so that the lock is released whenever it
/// comes: while planning, at the prompt, applying.
pub(super) async fn lock(target: &Target, opts: &ApplyOptions) -> Result<Box<dyn Lock>, Error> {
    let lock = target
        .state
        .lock(&opts.holder, opts.lock_wait)
        .await
        .map_err(EngineError::from)?;
    cancel_on_signal(&opts.cancel);
    Ok(lock)
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

/// What was applied per kind and how long it took, then how the apply
/// ended: on stdout when it completed, on stderr otherwise.
pub(super) fn report(outcome: &Outcome, adopted: usize) {
    for (address, error) in &outcome.failed {
        eprintln!("  ! {address}: {error}");
    }
    if !outcome.done.is_empty() {
        let summary = render::progress::summary(&outcome.done, outcome.elapsed);
        if outcome.status() == ApplyStatus::Complete {
            print!("{summary}");
        } else {
            eprint!("{summary}");
        }
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

/// `apply --reviewed DIR`: the reviewed plan of each environment (`<env>.json`,
/// from `plan --all-environments --out DIR`) in the workspace's apply order,
/// stopping at the first that fails.
pub fn run_reviewed_dir(
    cli: &Cli,
    dir: &Path,
    allow_delete: bool,
    limits: Limits,
) -> Result<Exit, Error> {
    let order = super::environments_in_order(cli)?;
    let file_error = |message: String| Error::PlanFile {
        path: dir.display().to_string(),
        message,
    };
    let entries = std::fs::read_dir(dir).map_err(|e| file_error(e.to_string()))?;
    let mut found = Vec::new();
    for entry in entries {
        let name = entry.map_err(|e| file_error(e.to_string()))?.file_name();
        let name = name.to_string_lossy();
        match name.strip_suffix(".json") {
            Some(env) if order.iter().any(|e| e == env) => found.push(env.to_owned()),
            _ => {
                return Err(file_error(format!(
                    "`{name}` is not `<env>.json` of a declared environment; the directory holds only the plans of `plan --all-environments --out`"
                )));
            }
        }
    }
    // Every environment has its plan, each for the environment its file
    // names: checked before anything is applied.
    for env in &order {
        let path = dir.join(format!("{env}.json"));
        if !found.contains(env) {
            return Err(file_error(format!(
                "there is no plan for environment `{env}` (`{env}.json`); plan with `--all-environments --out` again"
            )));
        }
        read_plan(&path, Some(env))?;
    }
    for env in &order {
        eprintln!("sluice: applying the reviewed plan of environment `{env}`");
        let path = dir.join(format!("{env}.json"));
        let stopped = || {
            eprintln!(
                "sluice: environment `{env}` failed; the environments after it were not applied"
            );
        };
        match run(
            cli,
            Some(Saved::Reviewed(&path)),
            true,
            allow_delete,
            limits,
            &[],
        ) {
            Ok(Exit::Failure) => {
                stopped();
                return Ok(Exit::Failure);
            }
            Err(e) => {
                stopped();
                return Err(e);
            }
            Ok(_) => {}
        }
    }
    Ok(Exit::Success)
}
