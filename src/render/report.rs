//! `dr report` as markdown: per environment, its etcd snapshot and one row
//! per namespace with a DR policy, in the shape of the RPO/RTO tables
//! operations teams keep for the quarterly DR review.

use std::fmt::Write;

use crate::engine::compliance::human;
use crate::engine::report::{EnvironmentReport, NamespaceRow, Replication};
use crate::engine::status::{SnapshotState, SnapshotStatus};

pub fn markdown(reports: &[EnvironmentReport]) -> String {
    let mut out = String::from("# Disaster recovery report\n");
    for r in reports {
        environment(r, &mut out);
    }
    out
}

fn environment(r: &EnvironmentReport, out: &mut String) {
    let _ = write!(
        out,
        "\n## Environment `{}`\n\nRead at {}.\n\n",
        r.environment, r.generated_at
    );
    if let Some(e) = &r.error {
        let _ = writeln!(out, "**Figures incomplete:** {}\n", cell(e));
    }
    let _ = writeln!(
        out,
        "etcd snapshot: {}\n",
        snapshot(r.state_snapshot.as_ref())
    );
    if r.namespaces.is_empty() {
        out.push_str("No namespace declares `disaster_recovery`.\n");
        return;
    }
    out.push_str("| Namespace | Tier | RPO | RTO | Last backup age | PITR coverage | Last drill | Replication | Meets targets |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|\n");
    for n in &r.namespaces {
        row(n, out);
    }
    let failing: Vec<&NamespaceRow> = r
        .namespaces
        .iter()
        .filter(|n| !n.violations.is_empty())
        .collect();
    if !failing.is_empty() {
        out.push_str("\nViolations:\n\n");
        for n in failing {
            for v in &n.violations {
                let _ = writeln!(out, "- `{}`: {}", n.namespace, cell(v));
            }
        }
    }
}

fn row(n: &NamespaceRow, out: &mut String) {
    let target = |s: Option<u64>| s.map_or_else(|| "-".into(), human);
    let replication = match n.replication {
        Replication::NotDeclared => "not declared",
        Replication::Ok => "ok",
        Replication::Failing => "FAILING",
        Replication::Unknown => "unknown",
    };
    let meets = match n.compliant {
        Some(true) => "yes",
        Some(false) => "**NO**",
        None => "unknown",
    };
    let _ = writeln!(
        out,
        "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} |",
        n.namespace,
        n.tier.as_str(),
        target(n.rpo_s),
        target(n.rto_s),
        cell(&n.backup_age()),
        cell(&n.pitr()),
        cell(&n.drill()),
        replication,
        meets
    );
}

fn snapshot(s: Option<&SnapshotStatus>) -> String {
    let Some(s) = s else {
        return "not declared (the workspace's `state_backup`)".into();
    };
    let limit = human(s.stale_after_s);
    match (s.state, &s.error, s.age_s) {
        (_, Some(e), _) => format!("unknown ({})", cell(e)),
        (SnapshotState::NeverSucceeded, _, _) => {
            format!("**NEVER SUCCEEDED** (stale after {limit})")
        }
        (SnapshotState::Stale, _, Some(age)) => {
            format!("**STALE**: {} old (stale after {limit})", human(age))
        }
        (_, _, Some(age)) => format!("{} old (stale after {limit})", human(age)),
        _ => "unknown".into(),
    }
}

/// Text safe inside a table cell: no pipes, no line breaks.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}
