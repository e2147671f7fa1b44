//! Whether output is coloured: only on a terminal, and never with
//! `--no-color` or `NO_COLOR`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{CommandFactory, FromArgMatches};

use crate::cli::Cli;

/// The command line, parsed; its own usage errors and help are uncoloured
/// under `--no-color` (clap honours `NO_COLOR` itself).
pub(super) fn parse() -> Result<Cli, clap::Error> {
    let mut command = Cli::command();
    if std::env::args_os().any(|a| a == "--no-color") {
        command = command.color(clap::ColorChoice::Never);
    }
    Cli::from_arg_matches(&command.try_get_matches()?)
}

/// Set from `--no-color`.
static NO_COLOR_FLAG: AtomicBool = AtomicBool::new(false);

/// `--no-color`, once the command line is parsed.
pub(super) fn no_color(set: bool) {
    NO_COLOR_FLAG.store(set, Ordering::SeqCst);
}

/// Whether colour is allowed at all: not with `--no-color`, nor with `NO_COLOR` set.
fn color_allowed() -> bool {
    !NO_COLOR_FLAG.load(Ordering::SeqCst)
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Colour on stdout only on a terminal, and never with `--no-color` or `NO_COLOR`.
pub fn color_stdout() -> bool {
    color_allowed() && std::io::stdout().is_terminal()
}

/// Colour on stderr only on a terminal, and never with `--no-color` or `NO_COLOR`.
pub fn color_stderr() -> bool {
    color_allowed() && std::io::stderr().is_terminal()
}
