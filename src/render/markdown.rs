//! The plan as a pull-request comment: a summary table and one collapsible
//! section per namespace, cut with a note before it grows past what a comment
//! may hold.

use std::fmt::Write;

use super::{Detail, by_namespace, compact_line, counts, field_lines};
use crate::plan::Level;
use crate::plan::{Action, Cause, Change, Plan, Summary};

/// GitHub rejects comments over 65,536 characters; keep a margin.
pub const LIMIT: usize = 60_000;

/// The comment: header and notes, then the table and sections that fit;
/// compact when the plan is long, so that more of it fits.
pub fn plan(plan: &Plan) -> String {
    plan_with(plan, Detail::Auto)
}

/// [`plan`], with as much detail as asked.
pub fn plan_with(plan: &Plan, detail: Detail) -> String {
    plan_within(plan, LIMIT, detail)
}

/// One comment for several environments, in apply order: a row per
/// environment, then each environment's plan in an equal share of the room.
pub fn environments(plans: &[Plan]) -> String {
    environments_with(plans, Detail::Auto)
}

/// [`environments`], with as much detail as asked.
pub fn environments_with(plans: &[Plan], detail: Detail) -> String {
    let mut out = String::from("### sluice plan: every environment\n\n");
    out.push_str("| Environment | Create | Update | Delete | Blocked | Drift |\n|---|---:|---:|---:|---:|---:|\n");
    for p in plans {
        out.push_str(&summary_row(&p.environment, &p.summary));
    }
    out.push('\n');
    let share = (LIMIT - out.len()) / plans.len().max(1);
    for p in plans {
        out.push_str(&plan_within(p, share, detail));
        out.push('\n');
    }
    out
}

fn plan_within(plan: &Plan, limit: usize, detail: Detail) -> String {
    let mut out = header(plan);
    notes(plan, &mut out);
    let compact = detail.compact(plan.changes.len());
    if let Some(note) = detail.note(plan.changes.len()) {
        let _ = writeln!(out, "> [!NOTE]\n> {note}\n");
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
    let (rows, sections): (Vec<String>, Vec<String>) = groups
        .iter()
        .map(|(ns, changes)| (row(ns, changes), section(ns, changes, compact)))
        .unzip();

    // Room for the notes that say what was left out; the table takes at
    // most half the room, the sections share the rest.
    let budget = limit.saturating_sub(400);
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
            "> [!NOTE]\n> Truncated: {} of {total} namespaces are not shown, to keep this comment under {LIMIT} characters. Run `sluice plan --env {} --detail` for the full plan.",
            total - shown,
            plan.environment
        );
    }
    out
}

/// The title, the commit, the scope and the summary line.
fn header(plan: &Plan) -> String {
    let mut out = format!("### sluice plan: `{}`\n\n", plan.environment);
    if let Some(r) = &plan.revision {
        let _ = writeln!(out, "From commit `{}`.\n", super::short(r));
    }
    if let Some(e) = &plan.endpoints {
        for (system, at) in e.lines() {
            let _ = writeln!(out, "- {system}: {at}");
        }
        out.push('\n');
    }
    if let Some(why) = &plan.widened {
        let _ = writeln!(out, "Every namespace: {why}.\n");
    }
    if let Some(scope) = &plan.scope {
        let _ = writeln!(
            out,
            "Only the {} namespace(s) {}, or that share a bucket or a resource recorded under them: {}.\n",
            scope.len(),
            if plan.targets.is_empty() {
                "whose files this change touches"
            } else {
                "named with `--namespace`"
            },
            scope
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = writeln!(out, "**{}**\n", plan.summary);
    out
}

/// The connection settings to review, DR violations and what the policies
/// said, 50 of each at most.
fn notes(plan: &Plan, out: &mut String) {
    if !plan.review.is_empty() {
        out.push_str("> [!WARNING]\n> This change sets connection settings; the plan connected with the base revision's. Review them:\n");
        for r in &plan.review {
            let _ = writeln!(out, "> - `{r}`");
        }
        out.push('\n');
    }
    let violations: Vec<_> = plan.violations().take(50).collect();
    if !violations.is_empty() {
        out.push_str("> [!CAUTION]\n> DR compliance violations:\n");
        for (ns, v) in violations {
            let _ = writeln!(out, "> - `{ns}`: {} ({})", v.message, v.check);
        }
        out.push('\n');
    }
    let findings: Vec<_> = plan.policy.iter().take(50).collect();
    if findings.is_empty() {
        return;
    }
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

/// A namespace's row of the summary table.
fn row(ns: &str, changes: &[&Change]) -> String {
    summary_row(ns, &Summary::of(changes.iter().copied()))
}

/// `| name | create | update | delete | blocked | drift |`.
fn summary_row(name: &str, s: &Summary) -> String {
    format!(
        "| `{name}` | {} | {} | {} | {} | {} |\n",
        s.create, s.update, s.delete, s.blocked, s.drift
    )
}

/// A namespace's collapsible section: each change with its fields and
/// reasons; compact, one line per change unless it is blocked.
fn section(ns: &str, changes: &[&Change], compact: bool) -> String {
    let mut section = format!(
        "<details><summary><code>{ns}</code>: {}</summary>\n\n```diff\n",
        counts(changes)
    );
    for c in changes {
        let drift = if c.cause == Cause::Drift {
            "  (drift)"
        } else if c.drifted {
            "  (also changed outside sluice)"
        } else {
            ""
        };
        if compact && c.action != Action::Blocked {
            let _ = writeln!(section, "{}{drift}", compact_line(c));
            continue;
        }
        let _ = writeln!(section, "{} {}{drift}", c.action.symbol(), c.address);
        for line in field_lines(c) {
            let _ = writeln!(section, "      {line}");
        }
        for reason in &c.reasons {
            let _ = writeln!(section, "      {reason}");
        }
    }
    section.push_str("```\n\n</details>\n\n");
    section
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
