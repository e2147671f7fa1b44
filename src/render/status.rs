//! `status` as text: the last apply, a backend table, drift, consumer lag
//! and DR compliance.

use comfy_table::presets::NOTHING;
use comfy_table::{Cell, Table};

use crate::engine::compliance::human;
use crate::engine::status::{SnapshotState, SnapshotStatus, Status};
use crate::resource::System;
use crate::state::{AppliedRecord, Operation, UnlockRecord};

/// A table with a header row of column names, as `kubectl get` prints them.
fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(NOTHING)
        .set_header(header.iter().map(|h| Cell::new(h.to_uppercase())));
    // Flush left, two spaces between columns.
    for column in t.column_iter_mut() {
        column.set_padding((0, 2));
    }
    t
}

/// A table as text: comfy-table pads every cell to its column's width, the
/// last one included; lines do not end in spaces.
fn show(t: &Table) -> String {
    t.trim_fmt()
}

/// The status for people.
pub fn text(s: &Status) -> String {
    let mut out = format!("sluice status for environment `{}`", s.environment);
    if let Some(ns) = &s.namespace {
        out.push_str(&format!(", namespace `{ns}`"));
    }
    out.push_str("\n\n");
    let etcd_down = s.backends.iter().any(|b| b.system == System::Etcd && !b.ok);
    if etcd_down {
        out.push_str("Last apply: unknown (etcd, which records it, is down).\n");
    } else {
        out.push_str(&last_apply(s.last_apply.as_ref()));
    }
    if let Some(u) = &s.last_unlock {
        out.push_str(&last_unlock(u));
    }
    let mut t = table(&["backend", "state", "detail"]);
    for b in &s.backends {
        t.add_row(vec![
            b.system.to_string(),
            if b.ok { "ok" } else { "DOWN" }.to_owned(),
            b.detail.clone(),
        ]);
    }
    out.push_str(&format!("\n{}\n", show(&t)));
    for b in s.backends.iter().filter(|b| !b.ok) {
        out.push_str(&format!("hint: {}\n", down_hint(b.system)));
    }
    out.push('\n');
    match (&s.drift, &s.drift_error) {
        (Some(d), _) => out.push_str(&format!(
            "Drift: {} changed outside sluice, {} pending, {} blocked.\n",
            d.drifted, d.pending, d.blocked
        )),
        (None, Some(e)) => out.push_str(&format!("Drift: unknown ({e}).\n")),
        (None, None) => {}
    }
    if !s.consumers.is_empty() {
        out.push_str(&format!("\nConsumer lag:\n{}\n", show(&consumers(s))));
    }
    if !s.dr.is_empty() {
        out.push_str(&format!("\nDisaster recovery:\n{}\n", show(&dr(s))));
    }
    if !s.backups.is_empty() {
        out.push_str(&format!(
            "\nBackups (complete runs, from their manifests):\n{}\n",
            show(&backups(s))
        ));
        for b in &s.backups {
            if let Some(e) = &b.error {
                out.push_str(&format!(
                    "error: the backups of `{}` could not be read: {e}\n",
                    b.namespace
                ));
            }
        }
    }
    if !s.drills.is_empty() {
        out.push_str(&format!("\nLast restore drills:\n{}\n", show(&drills(s))));
    }
    if let Some(snap) = &s.state_snapshot {
        out.push_str(&state_snapshot(snap));
    }
    out
}

fn drills(s: &Status) -> Table {
    use crate::drill::human_ms;
    let mut t = table(&[
        "namespace",
        "last drill",
        "result",
        "rto measured",
        "data age",
    ]);
    for d in &s.drills {
        let result = match &d.failure {
            None => "passed".to_owned(),
            Some(f) => format!("FAILED: {f}"),
        };
        let rto = match d.rto_target_ms {
            Some(target) => format!("{} (target {})", human_ms(d.rto_ms), human_ms(target)),
            None => format!("{} (no rto declared)", human_ms(d.rto_ms)),
        };
        let age = match d.rpo_ms {
            Some(rpo) => format!("{} (rpo {})", human_ms(d.data_age_ms), human_ms(rpo)),
            None => human_ms(d.data_age_ms),
        };
        t.add_row(vec![
            d.namespace.clone(),
            format!("{} (run `{}`)", d.started_at, d.run),
            result,
            rto,
            age,
        ]);
    }
    t
}

/// The etcd snapshots' line: last success, and its age against `stale_after`.
fn state_snapshot(s: &SnapshotStatus) -> String {
    let limit = human(s.stale_after_s);
    let head = format!("\netcd snapshots ({}): ", s.location);
    let last = match (&s.last_snapshot, &s.last_started_at, s.age_s) {
        (Some(id), Some(at), Some(age)) => {
            let what = match (s.revision, s.size) {
                (Some(r), Some(b)) => format!(", revision {r}, {b} byte(s)"),
                _ => String::new(),
            };
            format!(
                "last success {at} (snapshot `{id}`{what}), {} ago",
                human(age)
            )
        }
        _ => String::new(),
    };
    match (s.state, &s.error) {
        (_, Some(e)) => format!("{head}unknown: {e}\n"),
        (SnapshotState::NeverSucceeded, _) => format!(
            "{head}NEVER SUCCEEDED: no complete snapshot (stale after {limit}); run `sluice snapshot`\n"
        ),
        (SnapshotState::Stale, _) => format!("{head}STALE: {last}, over stale_after {limit}\n"),
        _ => format!("{head}{last}; ok (stale after {limit})\n"),
    }
}

fn backups(s: &Status) -> Table {
    let mut t = table(&["namespace", "last complete run", "data age", "pitr covered"]);
    for b in &s.backups {
        let last = match (&b.last_run, &b.last_started_at) {
            (Some(run), Some(at)) => format!("{at} (run `{run}`, {} in chain)", b.chain_runs),
            _ if b.error.is_some() => "unknown".into(),
            _ => "none".into(),
        };
        let age = match (b.data_age_s, b.rpo_s) {
            (Some(age), Some(rpo)) if age > rpo => {
                format!("{} (over the rpo of {})", human(age), human(rpo))
            }
            (Some(age), Some(rpo)) => format!("{} (rpo {})", human(age), human(rpo)),
            (Some(age), None) => human(age),
            (None, Some(rpo)) => format!("none (rpo {})", human(rpo)),
            (None, None) => "none".into(),
        };
        let range = match (&b.covered_from, &b.covered_to) {
            (Some(from), Some(to)) => format!("{from} to {to}"),
            (None, Some(to)) => format!("no records (read up to {to})"),
            _ => "nothing".into(),
        };
        let covered = match (b.pitr_window_s, b.covers_window) {
            (Some(w), Some(true)) => format!("{range}; covers the {} window", human(w)),
            (Some(w), _) => format!("{range}; short of the {} window", human(w)),
            (None, _) => format!("{range}; no pitr window declared"),
        };
        t.add_row(vec![b.namespace.clone(), last, age, covered]);
    }
    t
}

/// What to do about a backend that is down or does not answer: where its
/// address is set. `status` says it under its table, errors as their hint.
pub fn down_hint(system: System) -> &'static str {
    match system {
        System::Kafka => {
            "check that the brokers answer at `kafka.bootstrap_servers` of this environment in sluice.yaml (with `plan --base`, the base revision's) or `SLUICE_KAFKA_BOOTSTRAP`"
        }
        System::Etcd => {
            "check that etcd answers at `etcd.endpoints` of this environment in sluice.yaml (with `plan --base`, the base revision's) or `SLUICE_ETCD_ENDPOINTS`; without it sluice knows neither its state nor drift"
        }
        System::S3 => {
            "check the S3 endpoint and region of this environment in sluice.yaml (with `plan --base`, the base revision's) or `SLUICE_S3_ENDPOINT` and `SLUICE_S3_REGION`, and the AWS credentials"
        }
        System::Prometheus => {
            "check the rules directory and the reload URL of this environment in sluice.yaml (or `SLUICE_RULES_DIR`)"
        }
    }
}

fn last_apply(a: Option<&AppliedRecord>) -> String {
    let Some(a) = a else {
        return "Last apply: never.\n".into();
    };
    if a.operation == Operation::Forget {
        return format!(
            "Last apply: forget at {} by {}: {} resource(s) dropped from the inventory ({}), nothing live changed.\n",
            a.time,
            a.user,
            a.forgotten.len(),
            a.forgotten.join(", ")
        );
    }
    let what = if a.operation == Operation::Destroy {
        "destroy, "
    } else {
        ""
    };
    format!(
        "Last apply: {what}{}, {}.\n",
        crate::render::progress::last_apply(a),
        a.commit
            .as_deref()
            .map_or("from a working tree".to_owned(), |c| format!(
                "commit {}",
                crate::render::short(c)
            ))
    )
}

/// The last forced unlock: who removed whose lock, and when.
fn last_unlock(u: &UnlockRecord) -> String {
    let whose = u
        .holder
        .as_ref()
        .map_or_else(|| "an unreadable holder".to_owned(), ToString::to_string);
    format!(
        "Last forced unlock: at {} by {}@{}, of the lock held by {whose}.\n",
        u.time, u.by.user, u.by.host
    )
}

fn consumers(s: &Status) -> Table {
    let mut t = table(&["namespace", "group", "lag", "max lag", "state"]);
    for c in &s.consumers {
        t.add_row(vec![
            c.namespace.clone(),
            c.group.clone(),
            c.lag.map_or("-".into(), |l| l.to_string()),
            c.max_lag.map_or("-".into(), |m| m.to_string()),
            match &c.error {
                Some(e) => format!("{}: {e}", c.state.as_str()),
                None => c.state.as_str().to_owned(),
            },
        ]);
    }
    t
}

fn dr(s: &Status) -> Table {
    let age = |secs: Option<u64>| secs.map_or("none".into(), human);
    let mut t = table(&["namespace", "backups", "newest", "rpo", "compliance"]);
    for r in &s.dr {
        t.add_row(vec![
            r.namespace.clone(),
            r.backups.clone(),
            age(r.backup_age_s),
            age(r.rpo_s),
            if r.violations.is_empty() {
                "compliant".into()
            } else {
                r.violations
                    .iter()
                    .map(|v| v.message.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            },
        ]);
    }
    t
}
