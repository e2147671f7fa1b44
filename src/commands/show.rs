//! `sluice show PLAN`: a saved plan, rendered once its digest checks out.

use std::path::Path;

use super::apply::read_plan;
use super::plan::View;
use super::{Error, Exit};
use crate::cli::{Cli, PlanFormat};

/// Renders a saved plan as `plan` prints one. The file is checked as
/// `apply` checks it: a plan whose content does not match its digest (an
/// edited file) is refused, so what is shown is what `plan --out` wrote.
pub fn run(cli: &Cli, path: &Path, view: View) -> Result<Exit, Error> {
    let format = view.0;
    let plan = read_plan(path, cli.env.as_deref())?;
    if format == PlanFormat::Text {
        println!(
            "Saved plan {} (digest {}), as `sluice plan` made it; `sluice apply {}` plans again before it changes anything.\n",
            path.display(),
            crate::render::short(plan.digest.as_deref().unwrap_or_default()),
            path.display()
        );
    }
    super::plan::print(&plan, view, false);
    Ok(Exit::Success)
}
