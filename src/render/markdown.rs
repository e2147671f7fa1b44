//! The plan as a pull-request comment: a summary table and one collapsible
//! section per namespace, cut with a note before it grows past what a comment
//! may hold.

use std::fmt::Write;

use super::{by_namespace, counts, field_lines};
use crate::plan::Level;
use crate::plan::{Cause, Plan, Summary};

/// GitHub rejects comments over 65,536 characters; keep a margin.
pub const LIMIT: usize = 60_000;

pub fn plan(plan: &Plan) -> String {
    let mut out = format!("### sluice plan: `{}`\n\n", plan.environment);
    if let Some(r) = &plan.revision {
        let _ = writeln!(out, "From commit `{}`.\n", super::short(r));
    }
    if let Some(scope) = &plan.scope {
        let _ = writeln!(
            out,
            "Only the {} namespace(s) whose files this change touches: {}.\n",
            scope.len(),
            scope
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = writeln!(out, "**{}**\n", plan.summary);
    let violations: Vec<_> = plan.violations().take(50).collect();
    if !violations.is_empty() {
        out.push_str("> [!CAUTION]\n> DR compliance violations:\n");
        for (ns, v) in violations {
            let _ = writeln!(out, "> - `{ns}`: {} ({})", v.message, v.check);
        }
        out.push('\n');
    }
    let findings: Vec<_> = plan.policy.iter().take(50).collect();
    if !findings.is_empty() {
        let denied = plan.denials().next().is_some();
        let _ = writeln!(
            out,
            "> [!{}]\n> Policies{}:",
            if denied { "CAUTION" } else { "NOTE" },
            if denied {
                " deny this plan; it cannot be applied"
            } else {
                ""
            }
        );
        for f in findings {
            let _ = writeln!(
                out,
                "> - **{}** `{}` on `{}`: {}",
                match f.level {
                    Level::Deny => "deny",
                    Level::Warn => "warn",
                },
                f.policy,
                f.namespace,
                f.message
            );
        }
        out.push('\n');
    }
    if plan.changes.is_empty() {
        out.push_str("No changes: the live state matches the desired state.\n");
        return out;
    }
    if plan.summary.blocked > 0 {
        out.push_str("> [!WARNING]\n> Some changes are blocked; the plan cannot be applied until they are resolved.\n\n");
    }
    let groups = by_namespace(&plan.changes);
    let total = groups.len();

    // Room for the notes that say what was left out.
    let budget = LIMIT - 400;
    let mut sections = Vec::with_capacity(total);
    let mut rows = Vec::with_capacity(total);
    for (ns, changes) in &groups {
        let s = Summary::of(changes.iter().copied());
        rows.push(format!(
            "| `{ns}` | {} | {} | {} | {} | {} |\n",
            s.create, s.update, s.delete, s.blocked, s.drift
        ));
        let mut section = format!(
            "<details><summary><code>{ns}</code>: {}</summary>\n\n```diff\n",
            counts(changes)
        );
        for c in changes {
            let drift = if c.cause == Cause::Drift {
                "  (drift)"
            } else {
                ""
            };
            let _ = writeln!(section, "{} {}{drift}", c.action.symbol(), c.address);
            for line in field_lines(c) {
                let _ = writeln!(section, "      {line}");
            }
            for reason in &c.reasons {
                let _ = writeln!(section, "      {reason}");
            }
        }
        section.push_str("```\n\n</details>\n\n");
        sections.push(section);
    }

    // The table takes at most half the room; the sections share the rest.
    out.push_str("| Namespace | Create | Update | Delete | Blocked | Drift |\n|---|---:|---:|---:|---:|---:|\n");
    let listed = append_while_fits(&mut out, &rows, budget / 2);
    if listed < total {
        let _ = writeln!(out, "| … and {} more | | | | | |", total - listed);
    }
    out.push('\n');
    let shown = append_while_fits(&mut out, &sections, budget);
    if shown < total {
        let _ = writeln!(
            out,
            "> [!NOTE]\n> Truncated: {} of {total} namespaces are not shown, to keep this comment under {LIMIT} characters. Run `sluice plan --env {}` for the full plan.",
            total - shown,
            plan.environment
        );
    }
    out
}

/// Appends pieces in order while `out` stays within `budget`; returns how many.
fn append_while_fits(out: &mut String, pieces: &[String], budget: usize) -> usize {
    let mut n = 0;
    for piece in pieces {
        if out.len() + piece.len() > budget {
            break;
        }
        out.push_str(piece);
        n += 1;
    }
    n
}
