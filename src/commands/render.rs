//! `sluice render alerts`: the rule files an apply would write, without
//! touching any live system.

use std::path::Path;

use super::{Error, Exit, load_desired};
use crate::cli::Cli;
use crate::resource::expand::rule_group;
use crate::resource::rules;

pub fn alerts(cli: &Cli, out: &Path) -> Result<Exit, Error> {
    let (_, desired) = load_desired(cli, None)?;
    let write_error = |path: &Path, source| Error::Write {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(out).map_err(|e| write_error(out, e))?;
    let mut written = 0;
    for ns in desired.namespaces.iter().filter(|ns| !ns.alerts.is_empty()) {
        let path = out.join(rules::file_name(&ns.name));
        crate::files::replace(&path, rules::render(&rule_group(ns)).as_bytes())
            .map_err(|e| write_error(&path, e))?;
        println!("{}", path.display());
        written += 1;
    }
    // The rules read what a watcher publishes of its scheduled snapshots:
    // without a schedule there is nothing to read.
    if let Some(sb) = &desired.environment.state_backup
        && sb.schedule.is_some()
    {
        let path = out.join(rules::STATE_SNAPSHOT_FILE);
        let group = rules::state_snapshot_group(&desired.environment.name, sb);
        let header = "# Written by `sluice render alerts` from `state_backup` in sluice.yaml; `sluice apply` does not manage this file.";
        crate::files::replace(&path, rules::render_as(header, &group).as_bytes())
            .map_err(|e| write_error(&path, e))?;
        println!("{}", path.display());
        written += 1;
    }
    eprintln!(
        "Wrote {written} rule file(s) for environment `{}` to {}.",
        desired.environment.name,
        out.display()
    );
    Ok(Exit::Success)
}
