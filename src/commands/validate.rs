//! `sluice validate`: parse, check and resolve the config; no network.

use serde::Serialize;

use super::{Error, Exit, print_diagnostics, print_json, redactor};
use crate::cli::{Cli, Format};
use crate::desired::{Desired, Overrides, Selection, load};
use crate::diag::{Diagnostic, Level};
use crate::plan::Finding;
use crate::policy::{Policies, PolicyError};
use crate::source::SourceTree;

/// The version of `validate --format json` output.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Serialize)]
struct JsonReport<'a> {
    format_version: u32,
    valid: bool,
    revision: Option<&'a str>,
    diagnostics: &'a [Diagnostic],
    /// The resolved model per environment; empty unless valid.
    environments: &'a [Desired],
}

pub fn run(cli: &Cli, format: Format) -> Result<Exit, Error> {
    let started = std::time::Instant::now();
    let tree = cli.source.origin().load()?;
    tracing::debug!(took = ?started.elapsed(), "source read");
    let (desired, mut diags) = load(
        &tree,
        Selection::AllUnless(cli.env.as_deref()),
        &Overrides::from_process(),
    );
    let started = std::time::Instant::now();
    judge(&tree, &desired, &mut diags);
    tracing::debug!(took = ?started.elapsed(), "policies evaluated");
    let errors = diags.iter().filter(|d| d.level == Level::Error).count();
    let warnings = diags.len() - errors;

    match format {
        Format::Json => {
            let report = JsonReport {
                format_version: FORMAT_VERSION,
                valid: errors == 0,
                revision: tree.revision.as_deref(),
                diagnostics: &diags,
                environments: if errors == 0 { &desired } else { &[] },
            };
            let json = serde_json::to_string_pretty(&report).expect("the report is always JSON");
            print_json(&redactor(&tree).redact(&json));
        }
        Format::Text => {
            print_diagnostics(&tree, &diags);
            if errors > 0 {
                eprintln!("error: the config is invalid: {}", counts(errors, warnings));
            } else {
                let envs: Vec<&str> = desired
                    .iter()
                    .map(|d| d.environment.name.as_str())
                    .collect();
                let namespaces = desired
                    .iter()
                    .map(|d| d.namespaces.len())
                    .max()
                    .unwrap_or(0);
                let topics = desired
                    .iter()
                    .map(|d| d.topics().count())
                    .max()
                    .unwrap_or(0);
                println!(
                    "ok: {namespaces} namespace(s), {topics} topic(s), environment(s) {}{}",
                    envs.join(", "),
                    if warnings > 0 {
                        format!("; {}", counts(0, warnings))
                    } else {
                        String::new()
                    }
                );
            }
        }
    }
    Ok(if errors > 0 {
        Exit::Failure
    } else {
        Exit::Success
    })
}

/// The policies, judging each environment's namespaces; only a config
/// without errors is judged, so that policies see what a plan would.
fn judge(tree: &SourceTree, desired: &[Desired], diags: &mut Vec<Diagnostic>) {
    let policies = match Policies::load(&tree.policies) {
        Ok(p) => p,
        Err(errors) => {
            diags.extend(errors.iter().map(PolicyError::to_diagnostic));
            return;
        }
    };
    if diags.iter().any(Diagnostic::is_error) {
        return;
    }
    for d in desired {
        match policies.evaluate(d, &[]) {
            Ok(findings) => diags.extend(findings.iter().map(Finding::to_diagnostic)),
            Err(e) => diags.push(e.to_diagnostic()),
        }
    }
}

fn counts(errors: usize, warnings: usize) -> String {
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    match (errors, warnings) {
        (0, w) => plural(w, "warning"),
        (e, 0) => plural(e, "error"),
        (e, w) => format!("{}, {}", plural(e, "error"), plural(w, "warning")),
    }
}
