//! The commands: each loads what it needs, does its work and returns an
//! exit status. Output goes through here, never from library code.

mod apply;
mod backup;
mod completions;
mod destroy;
mod dr;
mod forget;
mod import;
mod plan;
mod progress;
mod pull_request;
mod render;
mod schema;
mod show;
mod snapshot;
mod status;
mod terminal;
mod unlock;
mod validate;
mod watch;

use std::collections::HashMap;
use std::process::ExitCode;

use crate::backend::{BackendError, ConnectError};
use crate::cli::{Cli, Command, DrCommand, LogFormat, Render};
use crate::config::redact::{self, Redactor};
use crate::desired::{Desired, Overrides};
use crate::diag::{Diagnostic, render_text};
use crate::engine::apply::ApplyError;
use crate::engine::forget::ForgetError;
use crate::engine::{self, EngineError};
use crate::plan::Finding;
use crate::policy::Policies;
use crate::source::{Origin, SourceError, SourceTree};
use crate::state::StateError;
use terminal::parse;
pub use terminal::{color_stderr, color_stdout};

/// Exit statuses, as README's "Exit codes" documents them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Success, nothing to do.
    Success = 0,
    /// An error, an invalid config, a policy deny or a blocked change.
    Failure = 1,
    /// Success, with changes or drift.
    Changes = 2,
}

/// Why a command could not do its work.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config repository could not be read.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A file the command writes could not be written.
    #[error("cannot write `{path}`")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The config has errors; they were printed.
    #[error("the config is invalid ({0} error(s) above)")]
    Invalid(usize),
    /// The environment's systems could not be set up.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The plan could not be made.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The apply refused to start, or stopped.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// A saved plan could not be used.
    #[error("cannot use the plan `{path}`: {message}")]
    PlanFile { path: String, message: String },
    /// A saved plan is not what planning again makes now.
    #[error("the plan is not what sluice plans now; nothing was changed:\n  {}", .0.join("\n  "))]
    PlanDiffers(Vec<String>),
    /// The person at the terminal said no.
    #[error("apply cancelled; nothing was changed")]
    Cancelled,
    /// `import --topics` is not a regular expression.
    #[error("`--topics` is not a regular expression")]
    Pattern(#[source] regex::Error),
    /// `import` would overwrite namespace files.
    #[error("refusing to overwrite {}; import into an empty directory", .0.join(", "))]
    Exists(Vec<String>),
    /// A command names namespaces the environment does not have (each
    /// quoted, with the closest name there is).
    #[error("there is no namespace {} in environment `{env}`", .names.join(", "))]
    UnknownNamespace { names: Vec<String>, env: String },
    /// `import --merge` cannot add to the namespace file.
    #[error(transparent)]
    Merge(#[from] crate::import::merge::MergeError),
    /// Policies refused the plan; their messages were printed.
    #[error("the plan is denied by {0} policy message(s) above")]
    Denied(usize),
    /// The watcher could not start.
    #[error(transparent)]
    Watch(#[from] crate::watch::WatchError),
    /// `plan --base`: the base revision has no valid such environment, and
    /// a pull request's plan connects only with the base's settings.
    #[error(
        "environment `{env}` is not declared (or not valid) at the base revision `{base}`; a pull request's plan connects with the base revision's settings"
    )]
    BaseEnvironment { env: String, base: String },
    /// `plan --base`: the base revision has no workspace file to connect
    /// with (`why` says how), and the change's is never used.
    #[error(
        "the base revision `{base}` has {why}; a pull request's plan connects only with the base revision's settings, so plan without `--base`, or choose a base that has one"
    )]
    BaseWorkspace { base: String, why: &'static str },
    /// Apply without a terminal to confirm on.
    #[error("refusing to apply without confirmation: there is no terminal to ask on")]
    NeedsApproval,
    /// Destroy without a terminal to type the environment's name on.
    #[error(
        "refusing to destroy environment `{0}` without confirmation: there is no terminal to type its name on; nothing was changed"
    )]
    NeedsConfirmation(String),
    /// `destroy --confirm` names another environment.
    #[error(
        "`--confirm {typed}` does not name the environment this would destroy, `{env}`; nothing was changed"
    )]
    NotConfirmed { typed: String, env: String },
    /// `unlock` without `--force` found the lock on a live lease.
    #[error("refusing to remove the apply lock of environment `{env}`: its lease is live")]
    LockLive { env: String },
    /// `forget` refused.
    #[error(transparent)]
    Forget(#[from] crate::engine::forget::ForgetError),
    /// A backup or restore failed or refused.
    #[error(transparent)]
    Backup(#[from] crate::backup::BackupError),
    /// An etcd snapshot failed.
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    /// Backups need the environment's S3.
    #[error("environment `{0}` has no `s3` settings; backups are kept in S3")]
    NoS3(String),
    /// Restore without a terminal to type the namespace's name on.
    #[error(
        "refusing to restore namespace `{0}` without confirmation: there is no terminal to type its name on; nothing was written"
    )]
    RestoreNeedsConfirmation(String),
    /// `restore --confirm` names another namespace.
    #[error(
        "`--confirm {typed}` does not name the namespace this would restore, `{namespace}`; nothing was written"
    )]
    RestoreNotConfirmed { typed: String, namespace: String },
    /// The person at the terminal did not confirm the restore.
    #[error("restore cancelled; nothing was written")]
    RestoreCancelled,
}

/// What kind of failure an error is: what a bot reads, and what the exit
/// code comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The config (or a policy) has errors.
    Invalid,
    /// A policy denies the plan.
    Denied,
    /// A guard or a blocked change refuses the apply, or nobody approved it.
    Refused,
    /// What the plan read moved since it was made.
    Stale,
    /// Another apply holds the lock.
    Locked,
    /// A live system or sluice's state could not be reached or read.
    Unavailable,
    /// A file could not be read or written, or an argument is wrong.
    Input,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Invalid => "invalid",
            ErrorKind::Denied => "denied",
            ErrorKind::Refused => "refused",
            ErrorKind::Stale => "stale",
            ErrorKind::Locked => "locked",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Input => "input",
        }
    }

    /// Every kind of failure exits 1; 2 is kept for success with changes.
    pub fn exit(self) -> Exit {
        Exit::Failure
    }
}

impl Error {
    /// The kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        use ErrorKind as K;
        match self {
            Error::Invalid(_) => K::Invalid,
            Error::Denied(_) => K::Denied,
            Error::Backup(e) if e.is_refusal() => K::Refused,
            Error::Backup(_) => K::Unavailable,
            Error::NoS3(_) => K::Input,
            Error::Snapshot(e) => {
                use crate::snapshot::SnapshotError as S;
                match e {
                    S::NotDeclared(_) | S::NoS3(_) | S::NoBucket { .. } | S::NoObjectLock(_) => {
                        K::Input
                    }
                    S::Connect(ConnectError::Secret(_)) => K::Invalid,
                    _ => K::Unavailable,
                }
            }
            Error::RestoreNeedsConfirmation(_)
            | Error::RestoreNotConfirmed { .. }
            | Error::RestoreCancelled => K::Refused,
            Error::Cancelled
            | Error::NeedsApproval
            | Error::NeedsConfirmation(_)
            | Error::NotConfirmed { .. }
            | Error::Forget(ForgetError::Protected(_)) => K::Refused,
            Error::LockLive { .. } => K::Locked,
            Error::Forget(ForgetError::Unknown { .. }) => K::Input,
            Error::Forget(ForgetError::State(StateError::Locked { .. })) => K::Locked,
            Error::Forget(ForgetError::State(_)) => K::Unavailable,
            Error::Apply(ApplyError::Stale(_)) | Error::PlanDiffers(_) => K::Stale,
            Error::Apply(ApplyError::State(StateError::Locked { .. }))
            | Error::Engine(EngineError::State(StateError::Locked { .. })) => K::Locked,
            Error::Apply(
                ApplyError::Blocked(_)
                | ApplyError::DeletesNotAllowed(_)
                | ApplyError::TooManyDeletes { .. }
                | ApplyError::NotOwned(_),
            )
            | Error::Engine(EngineError::Plan(_) | EngineError::OtherCluster { .. }) => K::Refused,
            Error::Engine(EngineError::Policy(_)) => K::Invalid,
            Error::Connect(ConnectError::Secret(_) | ConnectError::Kafka(_)) => K::Invalid,
            Error::Connect(_) | Error::Engine(_) | Error::Apply(_) | Error::Watch(_) => {
                K::Unavailable
            }
            Error::BaseEnvironment { .. } | Error::BaseWorkspace { .. } => K::Refused,
            Error::Source(_)
            | Error::Write { .. }
            | Error::PlanFile { .. }
            | Error::Pattern(_)
            | Error::Exists(_)
            | Error::Merge(_)
            | Error::UnknownNamespace { .. } => K::Input,
        }
    }

    /// What to do about it, where there is something to say.
    fn hint(&self) -> Option<&'static str> {
        use crate::resource::System;
        let down = |system| Some(crate::render::status::down_hint(system));
        match self {
            Error::Connect(ConnectError::Etcd { .. } | ConnectError::EtcdTimedOut { .. })
            | Error::Engine(EngineError::State(StateError::Unreachable(_)))
            | Error::Apply(ApplyError::State(StateError::Unreachable(_))) => down(System::Etcd),
            Error::Engine(EngineError::Backend(BackendError::Read { system, .. }))
            | Error::Apply(ApplyError::Backend(BackendError::Read { system, .. })) => down(*system),
            Error::NeedsApproval => Some(
                "review the plan and pass `--auto-approve`, or apply a saved plan: `sluice plan --out plan.json` then `sluice apply plan.json`",
            ),
            Error::Apply(ApplyError::State(StateError::Locked { .. }))
            | Error::Engine(EngineError::State(StateError::Locked { .. }))
            | Error::Forget(ForgetError::State(StateError::Locked { .. })) => Some(
                "wait for that apply to finish, or retry with `--lock-timeout 60s`; `sluice unlock` says more about the lock",
            ),
            Error::LockLive { .. } => Some(
                "if its holder is stuck, stop it (it releases the lock as it exits), or wait: the lock of a process that died lapses within 10 s. `sluice unlock --force` removes it now and revokes its lease, so that its holder writes nothing more",
            ),
            Error::NeedsConfirmation(_) | Error::NotConfirmed { .. } => Some(
                "run it on a terminal and type the environment's name, or pass `--confirm` with it (`sluice destroy --env prod --confirm prod`)",
            ),
            Error::RestoreNeedsConfirmation(_) | Error::RestoreNotConfirmed { .. } => Some(
                "run it on a terminal and type the namespace's name, or pass `--confirm` with it (`sluice restore orders --confirm orders`)",
            ),
            Error::Backup(crate::backup::BackupError::HoldsData { .. }) => Some(
                "to go on with a restore that stopped, pass `--resume`; else restore into new topics with `--into-suffix .restored`, or delete the topic first",
            ),
            Error::Backup(crate::backup::BackupError::Corrupt { .. }) => Some(
                "the object changed after its backup wrote it; restore from an S3 version of it (the backup buckets are versioned), or to a time before it with `--to-time`",
            ),
            Error::Snapshot(crate::snapshot::SnapshotError::Connect(_)) => down(System::Etcd),
            Error::Snapshot(e) => e.hint(),
            Error::Forget(ForgetError::Protected(_)) => Some(
                "pass `--force` to forget them anyway; sluice then no longer remembers that they were protected",
            ),
            Error::Forget(ForgetError::Unknown { .. }) => Some(
                "write addresses as plans print them, such as `kafka.topic/orders` (`sluice plan --format json` lists them)",
            ),
            Error::UnknownNamespace { .. } => Some(
                "name a namespace the YAML declares; `plan`, `apply` and `drift` also take one whose YAML is gone while sluice's inventory still records it",
            ),
            Error::Apply(ApplyError::Stale(_)) | Error::PlanDiffers(_) => {
                Some("run `sluice plan --out plan.json` again, review it, and apply the new plan")
            }
            Error::Apply(ApplyError::DeletesNotAllowed(_)) => {
                Some("review the deletes in the plan; pass `--allow-delete` to apply them")
            }
            Error::Denied(_) => Some(
                "change the namespaces to meet the policies; a policy's own file says what it checks",
            ),
            Error::Engine(
                EngineError::OtherCluster { .. } | EngineError::ClusterUnknown { .. },
            ) => Some(
                "check `--env` and the environment's `kafka.bootstrap_servers` (`SLUICE_KAFKA_BOOTSTRAP` overrides them); if the cluster was replaced on purpose, set its `kafka.cluster_id` to the ID it reports",
            ),
            Error::Engine(EngineError::Plan(_)) => Some(
                "check `--repo` and `--env`. To remove the last namespaces, plan them by name (`sluice plan --namespace NS`); to delete everything sluice manages in the environment, use `sluice destroy`",
            ),
            _ => None,
        }
    }
}

/// Runs sluice with this process's arguments.
pub fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        // `--help` and `--version` succeed; a usage error is a failure (1),
        // never the 2 that means "changes".
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() {
                Exit::Failure
            } else {
                Exit::Success
            } as u8);
        }
    };
    terminal::no_color(cli.no_color);
    init_logging(&cli);
    let exit = match run(&cli) {
        Ok(exit) => exit,
        Err(err) => {
            let message = crate::diag::chain(&err);
            eprintln!("error: {message}");
            if let Some(hint) = err.hint() {
                eprintln!("hint: {hint}");
            }
            if cli.command.writes_json() && !PRINTED_JSON.load(std::sync::atomic::Ordering::SeqCst)
            {
                println!("{}", error_json(err.kind(), &message, err.hint()));
            }
            err.kind().exit()
        }
    };
    ExitCode::from(exit as u8)
}

/// Every environment of the workspace in its apply order, for a command that
/// works on each in turn; warns of overrides that would reach them all.
fn environments_in_order(cli: &Cli) -> Result<Vec<String>, Error> {
    let tree = cli.source.origin().load()?;
    let Some(workspace) = crate::config::parse::parse_tree(&tree, &mut Vec::new()).workspace else {
        // The full load says what is wrong.
        resolve_desired(cli, tree, None)?;
        return Err(Error::Invalid(1));
    };
    warn_overrides_all();
    Ok(workspace.value.spec.environments_in_order())
}

/// Warns when variables override the connection settings of every
/// environment a command works on in turn.
fn warn_overrides_all() {
    let names = crate::desired::Overrides::from_process().connection_names();
    if !names.is_empty() {
        eprintln!(
            "warning: {} override the settings of every environment this command plans or applies; unset them unless all environments really share those servers",
            names.join(", ")
        );
    }
}

/// Set once a command has printed its JSON document, so that an error after
/// it (a plan a policy denies) does not print a second one.
static PRINTED_JSON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints a command's one JSON document on stdout.
pub(crate) fn print_json(text: &str) {
    println!("{text}");
    PRINTED_JSON.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// The diagnostics printed so far, for the JSON error object.
static DIAGNOSTICS: std::sync::Mutex<Vec<serde_json::Value>> = std::sync::Mutex::new(Vec::new());

/// Version of the JSON error object.
pub const ERROR_FORMAT_VERSION: u32 = 1;

/// The one JSON object a failed command prints on stdout under `--format json`.
fn error_json(kind: ErrorKind, message: &str, hint: Option<&str>) -> String {
    let mut value = serde_json::json!({
        "format_version": ERROR_FORMAT_VERSION,
        "error": { "kind": kind.as_str(), "message": message, "hint": hint },
    });
    let diagnostics = std::mem::take(&mut *DIAGNOSTICS.lock().expect("not poisoned"));
    if !diagnostics.is_empty() {
        value["diagnostics"] = serde_json::Value::Array(diagnostics);
    }
    serde_json::to_string_pretty(&value).expect("an error is JSON")
}

fn run(cli: &Cli) -> Result<Exit, Error> {
    match &cli.command {
        Command::Validate { format } => validate::run(cli, *format),
        Command::Plan { floor: true, .. } => plan::floor(cli),
        Command::Plan {
            format,
            out,
            detailed_exitcode,
            base,
            all_environments: true,
            detail,
            ..
        } => plan::plan_all(
            cli,
            (*format, detail.detail()),
            out.as_deref(),
            *detailed_exitcode,
            base.as_deref(),
        ),
        Command::Plan {
            format,
            out,
            detailed_exitcode,
            base,
            all_environments: false,
            targets,
            detail,
            ..
        } => plan::plan(
            cli,
            (*format, detail.detail()),
            out.as_deref(),
            *detailed_exitcode,
            base.as_deref(),
            &targets.namespaces,
        ),
        Command::Drift {
            format,
            targets,
            detail,
        } => plan::drift(cli, (*format, detail.detail()), &targets.namespaces),
        Command::Show {
            plan,
            format,
            detail,
        } => show::run(cli, plan, (*format, detail.detail())),
        Command::Unlock { force } => unlock::run(cli, *force),
        Command::Forget {
            addresses,
            force,
            lock_timeout,
        } => forget::run(cli, addresses, *force, *lock_timeout),
        Command::Destroy {
            confirm,
            lock_timeout,
            batch_size,
        } => destroy::run(
            cli,
            confirm.as_deref(),
            apply::Limits {
                lock_wait: *lock_timeout,
                batch: usize::from(*batch_size),
                detail: crate::render::Detail::Auto,
            },
        ),
        Command::Snapshot => snapshot::run(cli),
        Command::Dr {
            command: DrCommand::Report { format },
        } => dr::report(cli, *format),
        Command::Backup {
            namespaces,
            segment_size,
        } => backup::backup(cli, namespaces, *segment_size),
        Command::Restore {
            namespace,
            to_time,
            topics,
            into_suffix,
            resume,
            groups,
            confirm,
            lock_timeout,
        } => backup::restore(
            cli,
            backup::RestoreArgs {
                namespace,
                request: crate::backup::restore::RestoreRequest {
                    to_time_ms: *to_time,
                    topics: topics.clone(),
                    into_suffix: into_suffix.clone(),
                    resume: *resume,
                    groups: *groups,
                },
                confirm: confirm.as_deref(),
                lock_wait: *lock_timeout,
            },
        ),
        Command::Dr {
            command:
                DrCommand::Drill {
                    namespace,
                    lock_timeout,
                },
        } => dr::drill(cli, namespace, *lock_timeout),
        Command::Completions { shell } => completions::completions(*shell),
        Command::Man { out } => completions::man(out),
        Command::Apply {
            reviewed: Some(dir),
            allow_delete,
            lock_timeout,
            batch_size,
            detail,
            ..
        } if dir.is_dir() => apply::run_reviewed_dir(
            cli,
            dir,
            *allow_delete,
            apply::Limits {
                lock_wait: *lock_timeout,
                batch: usize::from(*batch_size),
                detail: detail.detail(),
            },
        ),
        Command::Apply {
            plan,
            reviewed,
            auto_approve,
            allow_delete,
            lock_timeout,
            batch_size,
            namespaces,
            detail,
        } => apply::run(
            cli,
            match (plan, reviewed) {
                (Some(p), _) => Some(apply::Saved::Exact(p)),
                (None, Some(p)) => Some(apply::Saved::Reviewed(p)),
                (None, None) => None,
            },
            *auto_approve,
            *allow_delete,
            apply::Limits {
                lock_wait: *lock_timeout,
                batch: usize::from(*batch_size),
                detail: detail.detail(),
            },
            namespaces,
        ),
        Command::Status { namespace, format } => status::run(cli, namespace.as_deref(), *format),
        Command::Import {
            out,
            topics,
            namespace,
            merge,
        } => import::run(
            cli,
            &import::Options {
                out: out.as_deref(),
                topics: topics.as_deref(),
                namespace: namespace.as_deref(),
                merge: *merge,
            },
        ),
        Command::Watch {
            branch,
            interval,
            listen,
            remediate,
            ha,
            lease_ttl,
            max_backoff,
        } => watch::run(crate::watch::Options {
            source: match &cli.source.git {
                Some(repo) => Origin::Git {
                    repo: repo.clone(),
                    rev: branch.clone(),
                },
                None => Origin::Dir(cli.source.repo.clone()),
            },
            env: cli.env.clone(),
            interval: *interval,
            listen: *listen,
            remediate: *remediate,
            ha: *ha,
            lease_ttl: *lease_ttl,
            max_backoff: *max_backoff,
            timeout: cli.timeout,
        }),
        Command::Render {
            what: Render::Alerts { out },
        } => render::alerts(cli, out),
        Command::Schema { kind, out, check } => schema::run(*kind, out.as_deref(), *check),
    }
}

/// Prints diagnostics (the offending lines, hints) to stderr; returns the error count.
/// Snippets come from the files the diagnostics point at, secrets masked.
fn print_diagnostics(tree: &SourceTree, diags: &[Diagnostic]) -> usize {
    let cited: std::collections::HashSet<&str> = diags
        .iter()
        .filter_map(|d| d.span.as_ref())
        .map(|s| s.file.as_str())
        .collect();
    let sources: HashMap<String, String> = tree
        .files()
        .filter(|f| cited.contains(f.path.as_str()))
        .map(|f| (f.path.clone(), redact::mask(&f.text)))
        .collect();
    let text = render_text(diags, &sources, color_stderr());
    let redactor = redactor(tree);
    eprint!("{}", redactor.redact(&text));
    // Kept for the JSON error object, should the command fail with them.
    let json = serde_json::to_string(diags).expect("diagnostics are JSON");
    if let Ok(serde_json::Value::Array(list)) = serde_json::from_str(&redactor.redact(&json)) {
        DIAGNOSTICS.lock().expect("not poisoned").extend(list);
    }
    diags.iter().filter(|d| d.is_error()).count()
}

/// What scrubs the secret values written in a tree's files from any output.
fn redactor(tree: &SourceTree) -> Redactor {
    let namespaces = tree.namespaces.iter().map(|f| f.text.as_str());
    Redactor::of(
        tree.workspace
            .iter()
            .map(|f| f.text.as_str())
            .chain(namespaces.filter(|t| redact::may_hold_secrets(t))),
    )
}

/// Loads, validates and resolves the one environment a command works on
/// (`env`, else `--env`, else the default); problems are printed.
fn load_desired(cli: &Cli, env: Option<&str>) -> Result<(SourceTree, Desired), Error> {
    resolve_desired(cli, cli.source.origin().load()?, env)
}

/// [`load_desired`] of a tree already read.
fn resolve_desired(
    cli: &Cli,
    tree: SourceTree,
    env: Option<&str>,
) -> Result<(SourceTree, Desired), Error> {
    resolve_selected(tree, env.or(cli.env.as_deref()))
}

/// The desired state of environment `env` (else the one `SLUICE_ENV` or
/// the workspace selects) in a tree already read; problems are printed.
fn resolve_selected(tree: SourceTree, env: Option<&str>) -> Result<(SourceTree, Desired), Error> {
    let (desired, diags) = engine::load_desired(&tree, env, &Overrides::from_process());
    let errors = print_diagnostics(&tree, &diags);
    match desired {
        Some(d) => Ok((tree, d)),
        None => Err(Error::Invalid(errors.max(1))),
    }
}

/// The built-in policies and the repository's, from `tree` (the base
/// revision's, for a pull request); problems are printed.
fn load_policies(tree: &SourceTree) -> Result<Policies, Error> {
    engine::load_policies(tree).map_err(|diags| Error::Invalid(print_diagnostics(tree, &diags)))
}

/// Prints what the policies said about a plan; returns the number of denials.
fn print_findings(tree: &SourceTree, findings: &[Finding]) -> usize {
    let diags: Vec<Diagnostic> = findings.iter().map(Finding::to_diagnostic).collect();
    print_diagnostics(tree, &diags)
}

/// Runs the async work of a command that talks to live systems. Blocking
/// work left behind (a prompt nobody answered) does not hold up the exit.
fn block_on<F: std::future::Future>(work: F) -> F::Output {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    let out = runtime.block_on(work);
    runtime.shutdown_background();
    out
}

/// Calls `on_each` on every SIGINT and SIGTERM, from a background task of
/// the runtime; without signal handlers (they could not be installed) the
/// default ones stay.
fn on_signal(on_each: impl Fn() + Send + 'static) {
    use tokio::signal::unix::{SignalKind, signal};
    if let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                on_each();
            }
        });
    }
}

/// Third-party crates whose logs are capped at warnings.
const QUIET_TARGETS: &[&str] = &[
    "aws_config",
    "aws_credential_types",
    "aws_runtime",
    "aws_sdk_s3",
    "aws_sigv4",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "h2",
    "hyper",
    "hyper_util",
    "rdkafka",
    "rustls",
    "tonic",
    "tower",
];

/// Logs go to stderr, filtered by `SLUICE_LOG` (default: warnings; for
/// `watch`, whose logs are its events, info), as text or JSON lines.
fn init_logging(cli: &Cli) {
    let default = match cli.command {
        Command::Watch { .. } => "info",
        _ => "warn",
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // The clients' own debug logs print credentials (aws-smithy logs the
    // access key id, for one): they say warnings at most, whatever is asked.
    for target in QUIET_TARGETS {
        if let Ok(d) = format!("{target}=warn").parse() {
            filter = filter.add_directive(d);
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cli.log_format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.with_ansi(color_stderr()).try_init(),
    };
}
