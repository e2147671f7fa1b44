//! Plans and drift for a terminal.

use std::fmt::Write;

use super::{Detail, by_namespace, compact_line, field_lines};
use crate::plan::{Action, Cause, Change, Plan};

const RESET: &str = "\x1b[0m";

fn paint(color: bool, code: &str, text: &str) -> String {
    if color {
        format!("\x1b[{code}m{text}{RESET}")
    } else {
        text.to_owned()
    }
}

fn action_color(action: Action) -> &'static str {
    match action {
        Action::Create => "32",
        Action::Update => "33",
        Action::Delete => "31",
        Action::Blocked => "1;31",
    }
}

/// One change: its symbol and address, where it is declared, its fields and
/// reasons; compact, only the names of its fields, unless it is blocked.
fn change(out: &mut String, c: &Change, color: bool, compact: bool) {
    let compact = compact && c.action != Action::Blocked;
    let head = if compact {
        compact_line(c)
    } else {
        format!("{} {}", c.action.symbol(), c.address)
    };
    let _ = write!(out, "    {}", paint(color, action_color(c.action), &head));
    if c.cause == Cause::Drift {
        let _ = write!(out, "  {}", paint(color, "35", "(drift)"));
    } else if c.drifted {
        let _ = write!(
            out,
            "  {}",
            paint(color, "35", "(also changed outside sluice)")
        );
    }
    if c.action == Action::Blocked
        && let Some(source) = &c.source
    {
        let _ = write!(out, "  {source}");
    }
    out.push('\n');
    if compact {
        return;
    }
    for line in field_lines(c) {
        let _ = writeln!(out, "        {line}");
    }
    for reason in &c.reasons {
        let _ = writeln!(
            out,
            "        {}",
            paint(
                color,
                if c.action == Action::Blocked {
                    "31"
                } else {
                    "2"
                },
                reason
            )
        );
    }
}

/// Changes by namespace; compact, without a blank line between namespaces.
fn changes<'a>(
    out: &mut String,
    changes: impl IntoIterator<Item = &'a Change>,
    color: bool,
    compact: bool,
) {
    for (ns, group) in by_namespace(changes) {
        let _ = writeln!(out, "  namespace {}", paint(color, "1", ns));
        for c in group {
            change(out, c, color, compact);
        }
        if !compact {
            out.push('\n');
        }
    }
    if compact {
        out.push('\n');
    }
}

fn header(plan: &Plan) -> String {
    let revision = plan.revision.as_deref().map_or_else(
        || "the working tree".to_owned(),
        |r| format!("commit {}", super::short(r)),
    );
    let mut scope = plan.scope.as_ref().map_or_else(String::new, |s| {
        let which = if plan.targets.is_empty() {
            "whose files changed"
        } else {
            "named with `--namespace`"
        };
        if s.is_empty() {
            return "\nNo namespace file changed: the plan covers no namespace.\n".to_owned();
        }
        format!(
            "\nOnly the {} namespace(s) {which}, or that share a bucket or a resource recorded under them: {}\n",
            s.len(),
            s.join(", ")
        )
    });
    if plan.destroy {
        scope = "\nDestroy: every resource sluice manages here, except those of protected namespaces.\n".into();
    }
    if let Some(why) = &plan.widened {
        scope = format!("\nEvery namespace: {why}.\n");
    }
    let review: String = plan
        .review
        .iter()
        .map(|r| {
            format!(
                "\nReview: the change sets `{r}`; this plan connected with the base revision's.\n"
            )
        })
        .collect();
    format!(
        "sluice plan for environment `{}`, from {revision}\n{}{scope}{review}\n",
        plan.environment,
        endpoints(plan)
    )
}

/// A line per system the plan reached, aligned: `  Kafka  b1:9092 (cluster `abc`)`.
fn endpoints(plan: &Plan) -> String {
    let Some(e) = &plan.endpoints else {
        return String::new();
    };
    let lines = e.lines();
    let width = lines.iter().map(|(s, _)| s.len()).max().unwrap_or(0);
    lines
        .iter()
        .map(|(system, at)| format!("  {system:width$}  {at}\n"))
        .collect()
}

/// The plan, closing with "Plan: N to create, N to update, N to delete.",
/// compact when it is long.
pub fn plan(plan: &Plan, color: bool) -> String {
    plan_with(plan, color, Detail::Auto)
}

/// [`plan`], with as much detail as asked.
pub fn plan_with(plan: &Plan, color: bool, detail: Detail) -> String {
    let mut out = header(plan);
    let compact = detail.compact(plan.changes.len());
    if plan.changes.is_empty() {
        out.push_str("No changes: the live state matches the desired state.\n");
    } else {
        changes(&mut out, &plan.changes, color, compact);
    }
    if !plan.adopt.is_empty() {
        let _ = writeln!(
            out,
            "{} unchanged resource(s) will be recorded in sluice's inventory.",
            plan.adopt.len()
        );
    }
    if !plan.forget.is_empty() {
        let _ = writeln!(
            out,
            "{} resource(s) already gone will be dropped from sluice's inventory.",
            plan.forget.len()
        );
    }
    // A destroy's deletes are confirmed by the environment's name instead.
    if plan.summary.delete > 0 && !plan.guards.allow_delete && !plan.destroy {
        let _ = writeln!(out, "Deletes need `sluice apply --allow-delete`.");
    }
    if plan.summary.delete > plan.guards.max_deletes as usize && !plan.destroy {
        let _ = writeln!(
            out,
            "{}",
            paint(
                color,
                "31",
                &format!(
                    "The plan deletes more than `guards.max_deletes` ({}): apply will refuse it.",
                    plan.guards.max_deletes
                )
            )
        );
    }
    violations(&mut out, plan, color);
    if let Some(note) = detail.note(plan.changes.len()) {
        let _ = writeln!(out, "{note}");
    }
    bold_line(&mut out, color, &plan.summary.to_string());
    out
}

/// A summary line, in bold on a terminal.
fn bold_line(out: &mut String, color: bool, text: &str) {
    let _ = writeln!(out, "{}", paint(color, "1", text));
}

/// DR compliance violations: checks, not changes, so apply does not fix them.
fn violations(out: &mut String, plan: &Plan, color: bool) {
    let mut list = plan.violations().peekable();
    if list.peek().is_none() {
        return;
    }
    out.push_str("DR compliance violations:\n");
    for (ns, v) in list {
        let mark = paint(color, "1;31", "✗");
        let _ = writeln!(out, "  {mark} {ns}: {} ({})", v.message, v.check);
    }
    out.push('\n');
}

/// Drift first (live changed behind Git's back), then what Git asks for and
/// is not applied yet; compact when it is long.
pub fn drift(plan: &Plan, color: bool) -> String {
    drift_with(plan, color, Detail::Auto)
}

/// [`drift`], with as much detail as asked.
pub fn drift_with(plan: &Plan, color: bool, detail: Detail) -> String {
    let mut out = header(plan).replacen("sluice plan", "sluice drift", 1);
    let compact = detail.compact(plan.changes.len());
    let drifted: Vec<&Change> = plan.drift().collect();
    let pending: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| c.cause == Cause::Pending)
        .collect();
    violations(&mut out, plan, color);
    let violated = plan.violations().count();
    if drifted.is_empty() && pending.is_empty() {
        if violated == 0 {
            out.push_str("No drift: the live state matches the desired state.\n");
        } else {
            bold_line(
                &mut out,
                color,
                &format!(
                    "No drift in resources, but {violated} DR compliance violation(s) (above): the exit code is 2."
                ),
            );
        }
        return out;
    }
    if !drifted.is_empty() {
        out.push_str("Changed outside sluice (apply restores the desired state):\n");
        changes(&mut out, drifted.iter().copied(), color, compact);
    }
    if !pending.is_empty() {
        out.push_str("Desired in Git but not applied yet:\n");
        changes(&mut out, pending.iter().copied(), color, compact);
    }
    if let Some(note) = detail.note(plan.changes.len()) {
        let _ = writeln!(out, "{note}");
    }
    bold_line(
        &mut out,
        color,
        &format!(
            "Drift: {} resource(s) changed outside sluice, {} change(s) pending, {violated} DR compliance violation(s).",
            drifted.len(),
            pending.len()
        ),
    );
    out
}
