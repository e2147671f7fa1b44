//! The command line: clap definitions only; `commands` does the work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::schema::Kind;
use crate::source::Origin;

/// `sluice --version`: the version and the Git commit it was built from
/// (`build.rs`; "unknown commit" outside a Git checkout).
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("SLUICE_COMMIT"), ")");

/// Declarative GitOps for streaming-platform namespaces: Kafka topics,
/// capacity, retention, access, alerts and disaster recovery.
#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version = VERSION,
    propagate_version = true,
    after_help = "Exit status: 0 success with nothing to do; 1 any failure (an invalid config, a usage error, a policy deny, a blocked or refused change, an unreachable server); 2 success with changes or drift (`plan --detailed-exitcode`, `drift`, `status`)."
)]
pub struct Cli {
    #[command(flatten)]
    pub source: SourceArgs,

    /// Environment to work on (default: `SLUICE_ENV`, else the only one, else `default`)
    #[arg(long, global = true, value_name = "ENV")]
    pub env: Option<String>,

    /// How long one request to a live system may take, e.g. `5s`
    #[arg(long, global = true, value_name = "DURATION", default_value = "15s", value_parser = parse_timeout)]
    pub timeout: std::time::Duration,

    /// No colour in any output, even on a terminal (as `NO_COLOR` does)
    #[arg(long, global = true)]
    pub no_color: bool,

    /// Log lines as text, or as JSON objects for machines
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

/// Where the config repository is read from.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Config repository directory
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = ".",
        conflicts_with = "git"
    )]
    pub repo: PathBuf,

    /// Read the config from a Git repository (local path or URL), without a checkout
    #[arg(long, global = true, value_name = "PATH|URL")]
    pub git: Option<String>,

    /// Revision to read with `--git`
    #[arg(
        long,
        global = true,
        value_name = "REF",
        default_value = "HEAD",
        requires = "git"
    )]
    pub rev: String,
}

impl SourceArgs {
    pub fn origin(&self) -> Origin {
        match &self.git {
            Some(repo) => Origin::Git {
                repo: repo.clone(),
                rev: self.rev.clone(),
            },
            None => Origin::Dir(self.repo.clone()),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and check the config, without touching any live system
    Validate {
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Show what would change in the live systems to match the desired state
    Plan {
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        /// Also save the plan (JSON) for `sluice apply FILE`
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Exit 2 when there are changes, 0 when there are none
        #[arg(long)]
        detailed_exitcode: bool,
        /// Judge the plan by the policies at this Git revision (the pull request's
        /// base), so a change cannot loosen the policies that judge it
        #[arg(long, value_name = "REF", conflicts_with = "namespaces")]
        base: Option<String>,
        /// Plan every environment, in the workspace's `apply_order`: one
        /// comment with a row per environment; `--out` is then a directory
        /// that gets `<env>.json` for each
        #[arg(long, conflicts_with = "namespaces")]
        all_environments: bool,
        #[command(flatten)]
        targets: Targets,
        #[command(flatten)]
        detail: DetailArgs,
        /// Benchmarks only: make just the reads a full plan makes and print
        /// how long they took (the floor `scripts/bench-plan.sh` compares with)
        #[arg(long, hide = true, conflicts_with_all = ["base", "all_environments", "out", "namespaces"])]
        floor: bool,
    },
    /// Apply a saved plan, or plan and apply after confirmation
    Apply {
        /// A plan saved with `sluice plan --out`; refused when live state moved since
        #[arg(value_name = "PLAN", conflicts_with = "reviewed")]
        plan: Option<PathBuf>,
        /// The plan reviewed on a pull request, for the merge job: plans the merged
        /// revision in its scope and applies only when it makes the same changes.
        /// A directory of `<env>.json` plans is applied environment by environment
        /// in `apply_order`, stopping at the first failure
        #[arg(long, value_name = "PLAN")]
        reviewed: Option<PathBuf>,
        /// Apply without asking (needed without a terminal or a saved plan)
        #[arg(long)]
        auto_approve: bool,
        /// Allow the plan's deletes
        #[arg(long)]
        allow_delete: bool,
        /// Wait this long for another apply to release the lock, e.g. `30s`
        #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
        lock_timeout: std::time::Duration,
        /// Changes sent per request; smaller batches stop sooner on an interrupt
        #[arg(long, value_name = "N", default_value_t = crate::engine::apply::BATCH as u16, value_parser = clap::value_parser!(u16).range(1..))]
        batch_size: u16,
        /// Plan and apply only these namespaces (not with a saved plan, which
        /// keeps the scope it was planned in)
        #[arg(long = "namespace", value_name = "NS", conflicts_with_all = ["plan", "reviewed"])]
        namespaces: Vec<String>,
        #[command(flatten)]
        detail: DetailArgs,
    },
    /// Show what differs live from the desired state (exit 2 when anything does)
    Drift {
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        #[command(flatten)]
        targets: Targets,
        #[command(flatten)]
        detail: DetailArgs,
    },
    /// Render a saved plan (from `sluice plan --out`), checking its digest
    Show {
        /// The saved plan
        #[arg(value_name = "PLAN")]
        plan: PathBuf,
        #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
        format: PlanFormat,
        #[command(flatten)]
        detail: DetailArgs,
    },
    /// Name the holder of the environment's apply lock; remove it with `--force`
    Unlock {
        /// Remove the lock although its lease is live: revokes the holder's
        /// lease, so that the holder writes nothing more
        #[arg(long)]
        force: bool,
    },
    /// Stop managing resources without deleting them: drop their inventory entries
    Forget {
        /// Addresses as plans print them, e.g. `kafka.topic/orders`
        #[arg(value_name = "ADDRESS", required = true)]
        addresses: Vec<String>,
        /// Also forget resources of protected namespaces (their protection goes with them)
        #[arg(long)]
        force: bool,
        /// Wait this long for another apply to release the lock, e.g. `30s`
        #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
        lock_timeout: std::time::Duration,
    },
    /// Delete everything sluice manages in the environment, except protected namespaces
    Destroy {
        /// The environment's name, as the confirmation (needed without a terminal)
        #[arg(long, value_name = "ENV")]
        confirm: Option<String>,
        /// Wait this long for another apply to release the lock, e.g. `30s`
        #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
        lock_timeout: std::time::Duration,
        /// Changes sent per request; smaller batches stop sooner on an interrupt
        #[arg(long, value_name = "N", default_value_t = crate::engine::apply::BATCH as u16, value_parser = clap::value_parser!(u16).range(1..))]
        batch_size: u16,
    },
    /// Snapshot the environment's etcd to S3 per its `state_backup`: the snapshot, then a manifest
    Snapshot,
    /// Disaster recovery: restore drills (`dr drill NS`) and the DR review's report (`dr report`)
    Dr {
        #[command(subcommand)]
        command: DrCommand,
    },
    /// Back up namespaces' topics to S3 per their DR policy: segment objects, then a manifest
    Backup {
        /// Only these namespaces (default: every one with `disaster_recovery.backup`)
        #[arg(value_name = "NAMESPACE")]
        namespaces: Vec<String>,
        /// Start a new segment object once this much record data is in one, e.g. `64MiB`
        #[arg(long, value_name = "SIZE", default_value = "32MiB", value_parser = parse_size)]
        segment_size: u64,
    },
    /// Restore a namespace's topics from its backups, optionally up to a point in time
    Restore {
        /// The namespace whose backups are restored
        #[arg(value_name = "NAMESPACE")]
        namespace: String,
        /// Only records with a timestamp at or before this time (RFC 3339, e.g. `2026-12-07T09:30:00Z`)
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        to_time: Option<i64>,
        /// Only this backed-up topic (repeatable)
        #[arg(long = "topic", value_name = "TOPIC")]
        topics: Vec<String>,
        /// Write topic `T` into new topic `T<SUFFIX>` instead of `T`
        #[arg(long, value_name = "SUFFIX")]
        into_suffix: Option<String>,
        /// Go on with a restore that stopped: keep what the target topics hold
        /// (checked against the backup) and write the rest
        #[arg(long)]
        resume: bool,
        /// After writing the records, set the declared consumer groups' committed
        /// offsets, translated, on the restored topics (the groups must have no members)
        #[arg(long)]
        groups: bool,
        /// The namespace's name, as the confirmation (needed without a terminal)
        #[arg(long, value_name = "NAMESPACE")]
        confirm: Option<String>,
        /// Wait this long for another apply to release the lock, e.g. `30s`
        #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
        lock_timeout: std::time::Duration,
    },
    /// Print shell completions: `sluice completions bash > /etc/bash_completion.d/sluice`
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write the man pages: `sluice.1` and one per subcommand (`sluice-plan.1`, ...)
    Man {
        /// Directory the pages are written to
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// The operator's view: last apply, drift, backend health, consumer lag, DR
    Status {
        /// Only this namespace
        #[arg(value_name = "NAMESPACE")]
        namespace: Option<String>,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Write Namespace YAML from live state, to adopt an existing cluster
    Import {
        /// Directory the namespace files are written to (new files only)
        #[arg(long, value_name = "DIR", required_unless_present = "merge")]
        out: Option<PathBuf>,
        /// Only topics whose names match this regular expression
        #[arg(long, value_name = "REGEX", conflicts_with = "merge")]
        topics: Option<String>,
        /// Only this namespace: the topics its registry record names, or named `NS.…`
        #[arg(long, value_name = "NS")]
        namespace: Option<String>,
        /// Add the namespace's live topics that no file declares to its existing
        /// file, leaving every other line of it (comments too) as it is
        #[arg(long, requires = "namespace", conflicts_with = "out")]
        merge: bool,
    },
    /// Watch for drift: plan on every change and interval, serve metrics, optionally repair
    Watch {
        /// Branch to follow with `--git` (fetched and polled every interval)
        #[arg(long, value_name = "BRANCH", default_value = "main")]
        branch: String,
        /// Time between cycles (jittered by 10%), e.g. `60s`
        #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = parse_interval)]
        interval: std::time::Duration,
        /// Address of `/metrics`, `/healthz` and `/readyz`
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9464")]
        listen: std::net::SocketAddr,
        /// Apply what the guards and policies allow (deletes only with the workspace's `allow_delete`)
        #[arg(long)]
        remediate: bool,
        /// Elect a leader among replicas through an etcd lease; only the leader plans and remediates
        #[arg(long)]
        ha: bool,
        /// TTL of the election lease: how soon another replica takes over from a dead leader
        #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
        lease_ttl: std::time::Duration,
        /// Longest wait between retries after errors
        #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
        max_backoff: std::time::Duration,
    },
    /// Write generated files
    Render {
        #[command(subcommand)]
        what: Render,
    },
    /// Print a JSON Schema (a config kind, the etcd records, or the plan), or write them all to a directory
    Schema {
        /// Kind to print
        #[arg(value_enum, default_value_t = Kind::Namespace)]
        kind: Kind,
        /// Write `workspace.schema.json`, `namespace.schema.json`, `records.schema.json` and `plan.schema.json` here
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Fail when the schemas in `--out` (default `schemas/`) are stale
        #[arg(long)]
        check: bool,
    },
}

/// `--namespace NS`, repeatable: the namespaces a command plans.
#[derive(Debug, Args)]
pub struct Targets {
    /// Only this namespace (repeatable), as `plan --base` scopes a plan: with
    /// every namespace sharing a bucket with it. A namespace removed from the
    /// YAML but still in sluice's inventory plans as deletes
    #[arg(long = "namespace", value_name = "NS")]
    pub namespaces: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum Render {
    /// Write the Prometheus rule file of each namespace with alerts
    Alerts {
        /// Directory the rule files are written to
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

impl Command {
    /// Whether the command writes JSON on stdout, so that its errors must too.
    pub fn writes_json(&self) -> bool {
        match self {
            Command::Validate { format } | Command::Status { format, .. } => {
                *format == Format::Json
            }
            Command::Dr {
                command: DrCommand::Report { format },
            } => *format == ReportFormat::Json,
            Command::Plan { format, .. }
            | Command::Drift { format, .. }
            | Command::Show { format, .. } => *format == PlanFormat::Json,
            _ => false,
        }
    }
}

/// How much of each change a plan shows, as text or markdown.
#[derive(Clone, Copy, Debug, Default, Args)]
pub struct DetailArgs {
    /// One line per change: its action, address and the names of the fields it
    /// changes (the default above 200 changes)
    #[arg(long, conflicts_with = "detail")]
    pub compact: bool,
    /// Every field of every change, however many changes there are
    #[arg(long)]
    pub detail: bool,
}

impl DetailArgs {
    pub fn detail(self) -> crate::render::Detail {
        match (self.compact, self.detail) {
            (true, _) => crate::render::Detail::Compact,
            (_, true) => crate::render::Detail::Full,
            _ => crate::render::Detail::Auto,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `sluice dr ...`.
#[derive(Debug, Subcommand)]
pub enum DrCommand {
    /// Restore a namespace's newest backup into scratch topics, verify it against the
    /// manifests, measure RTO and data age against `rto` and `rpo`, delete the scratch topics
    Drill {
        /// The namespace drilled
        #[arg(value_name = "NAMESPACE")]
        namespace: String,
        /// Wait this long for another apply to release the lock, e.g. `30s`
        #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
        lock_timeout: std::time::Duration,
    },
    /// One table per environment (every one, or `--env`): each DR namespace's tier, RPO and
    /// RTO targets, last backup age, PITR coverage and replication, and the etcd snapshot's age
    Report {
        #[arg(long, value_enum, default_value_t = ReportFormat::Markdown)]
        format: ReportFormat,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Markdown,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    Text,
    Json,
    /// A pull-request comment
    Markdown,
}

/// A duration written as people write them (`30s`, `5m`, `1h 30m`); the
/// error says how, since humantime's own ("expected number at 0") does not.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration ({e}); write it like `30s`, `5m` or `1h`"))
}

/// A watch interval: at least a second (`0s` would plan without a pause).
fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration(text)?;
    if d < std::time::Duration::from_secs(1) {
        return Err("a watch interval is at least `1s`, such as `30s` or `5m`".into());
    }
    Ok(d)
}

/// A segment size: `32MiB`, `512KiB`; at least 1 KiB.
fn parse_size(text: &str) -> Result<u64, String> {
    let size = text
        .parse::<bytesize::ByteSize>()
        .map_err(|e| format!("`{text}` is not a size such as `32MiB`: {e}"))?
        .as_u64();
    if size < 1024 {
        return Err("a segment size is at least `1KiB`".into());
    }
    Ok(size)
}

/// A point in time, RFC 3339 (`2026-12-07T09:30:00Z`), as milliseconds
/// since the epoch.
fn parse_time(text: &str) -> Result<i64, String> {
    let t = humantime::parse_rfc3339_weak(text).map_err(|e| {
        format!("`{text}` is not an RFC 3339 time such as `2026-12-07T09:30:00Z`: {e}")
    })?;
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("`{text}` is before 1970"))?
        .as_millis();
    i64::try_from(ms).map_err(|_| format!("`{text}` is too far ahead"))
}

/// A request timeout: at least 100 ms, at most an hour.
fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    let d = parse_duration(text)?;
    if d < std::time::Duration::from_millis(100) || d > std::time::Duration::from_secs(3600) {
        return Err("a timeout is between `100ms` and `1h`".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_without_a_unit_says_how_to_write_one() {
        let e = parse_duration("5").unwrap_err();
        assert!(e.starts_with("`5` is not a duration"), "{e}");
        assert!(e.ends_with("write it like `30s`, `5m` or `1h`"), "{e}");
        assert_eq!(
            parse_duration("1h 30m"),
            Ok(std::time::Duration::from_secs(5400))
        );
        assert!(parse_interval("abc").unwrap_err().contains("write it like"));
        assert!(
            parse_timeout("0s")
                .unwrap_err()
                .contains("between `100ms` and `1h`")
        );
    }
}
