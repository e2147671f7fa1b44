//! `sluice completions SHELL` and `sluice man --out DIR`: generated from the
//! command line's own definitions, so they never fall behind it.

use std::path::Path;

use clap::CommandFactory;

use super::{Error, Exit};
use crate::cli::Cli;

pub fn completions(shell: clap_complete::Shell) -> Result<Exit, Error> {
    clap_complete::generate(shell, &mut Cli::command(), "sluice", &mut std::io::stdout());
    Ok(Exit::Success)
}

/// Writes `sluice.1` and a page per subcommand (`sluice-plan.1`,
/// `sluice-render-alerts.1`), never through a symlink.
pub fn man(out: &Path) -> Result<Exit, Error> {
    let write_error = |path: &Path, source| Error::Write {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(out).map_err(|e| write_error(out, e))?;
    let mut command = Cli::command().disable_help_subcommand(true);
    // Built, each subcommand carries the global options and its full name.
    command.build();
    let mut written = 0;
    let mut todo = vec![command];
    while let Some(command) = todo.pop() {
        todo.extend(
            command
                .get_subcommands()
                .filter(|c| !c.is_hide_set())
                .cloned(),
        );
        let page = clap_mangen::Man::new(command);
        let path = out.join(page.get_filename());
        let mut text = Vec::new();
        page.render(&mut text).map_err(|e| write_error(&path, e))?;
        crate::files::replace(&path, &text).map_err(|e| write_error(&path, e))?;
        written += 1;
    }
    eprintln!("Wrote {written} man page(s) to {}.", out.display());
    Ok(Exit::Success)
}
