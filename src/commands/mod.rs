//! The commands: each loads what it needs, does its work and returns an
//! exit status. Output goes through here, never from library code.

mod schema;
mod validate;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::source::SourceError;

/// Exit statuses, as DESIGN §3 defines them.
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
}

/// Runs sluice with this process's arguments.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let exit = match run(&cli) {
        Ok(exit) => exit,
        Err(err) => {
            eprintln!("error: {}", chain(&err));
            Exit::Failure
        }
    };
    ExitCode::from(exit as u8)
}

fn run(cli: &Cli) -> Result<Exit, Error> {
    match &cli.command {
        Command::Validate { format } => validate::run(cli, *format),
        Command::Schema { kind, out, check } => schema::run(*kind, out.as_deref(), *check),
    }
}

/// An error and its causes, on one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Logs go to stderr, filtered by `SLUICE_LOG` (default: warnings).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(color_stderr())
        .try_init();
}

/// Colour only on a terminal, and never with `NO_COLOR` set.
pub fn color_stderr() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}
