//! An apply's progress for people: a line per batch (for logs), the
//! counts a terminal's bar shows, and the closing summary per kind.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use crate::engine::progress::Step;
use crate::plan::Action;
use crate::resource::Kind;
use crate::state::{AppliedRecord, ApplyStatus, Tally};

/// `1.2s`, `1m05s`.
pub fn elapsed(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1}s")
    } else {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

fn done_by(action: Action) -> &'static str {
    match action {
        Action::Create => "created",
        Action::Update => "updated",
        Action::Delete => "deleted",
        Action::Blocked => "blocked",
    }
}

/// `150 created, 2 updated, 0 deleted` (and `, 1 failed` when any did).
pub fn counts(t: &Tally) -> String {
    let mut out = format!(
        "{} created, {} updated, {} deleted",
        t.created, t.updated, t.deleted
    );
    if t.failed > 0 {
        let _ = write!(out, ", {} failed", t.failed);
    }
    out
}

/// One batch, for a log: `apply: batch 3/11: 50 kafka.topic created;
/// 150/501 changes (150 created, 0 updated, 0 deleted), 2.1s`.
pub fn line(step: &Step<'_>) -> String {
    let mut batch = format!("{} {} {}", step.applied, step.kind, done_by(step.action));
    if step.failed > 0 {
        let _ = write!(batch, ", {} failed", step.failed);
    }
    let total = Tally::total(step.done.values());
    format!(
        "apply: batch {}/{}: {batch}; {}/{} changes ({}), {}",
        step.number,
        step.batches,
        total.applied() + total.failed,
        step.total,
        counts(&total),
        elapsed(step.elapsed)
    )
}

/// What the bar says beside its count: `+150 ~2 -0 kafka.topic`.
pub fn bar_message(step: &Step<'_>) -> String {
    let t = Tally::total(step.done.values());
    let mut out = format!("+{} ~{} -{}", t.created, t.updated, t.deleted);
    if t.failed > 0 {
        let _ = write!(out, " !{}", t.failed);
    }
    let _ = write!(out, "  {}", step.kind);
    out
}

/// Per kind what was done, and the time it took:
///
/// ```text
/// Applied in 3.4s:
///   kafka.topic  500 created
///   etcd.key     1 created, 1 updated
/// ```
pub fn summary(done: &BTreeMap<Kind, Tally>, took: Duration) -> String {
    let mut out = format!("Applied in {}:\n", elapsed(took));
    let width = done.keys().map(|k| k.prefix().len()).max().unwrap_or(0);
    for (kind, t) in done {
        let _ = writeln!(out, "  {:width$}  {}", kind.prefix(), short_counts(t));
    }
    out
}

/// The last apply as its record tells it: `did not finish: 20 of 200
/// change(s) applied (kafka.topic: 20 created), 0 failed, the last
/// kafka.topic/x; by ci at T, plan P`.
pub fn last_apply(a: &AppliedRecord) -> String {
    let mut out = format!("{}: ", a.status.describe());
    if a.planned > 0 {
        let _ = write!(out, "{} of {} change(s) applied", a.applied, a.planned);
    } else {
        let _ = write!(out, "{} change(s) applied", a.applied);
    }
    if !a.done.is_empty() {
        let kinds: Vec<String> = a
            .done
            .iter()
            .map(|(kind, t)| format!("{kind}: {}", short_counts(t)))
            .collect();
        let _ = write!(out, " ({})", kinds.join("; "));
    }
    let _ = write!(out, ", {} failed", a.failed);
    if a.status != ApplyStatus::Complete
        && let Some(last) = &a.last
    {
        let _ = write!(out, ", the last {last}");
    }
    let started = a
        .started
        .as_ref()
        .map_or_else(String::new, |s| format!(", started {s}"));
    let _ = write!(
        out,
        "; by {} at {}{started}, plan {}",
        a.user,
        a.time,
        super::short(&a.plan_digest)
    );
    out
}

/// `3 created, 1 updated`: only what is not zero.
fn short_counts(t: &Tally) -> String {
    [
        (t.created, "created"),
        (t.updated, "updated"),
        (t.deleted, "deleted"),
        (t.failed, "failed"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect::<Vec<_>>()
    .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_line_says_the_batch_and_the_counts_so_far() {
        let mut done = BTreeMap::new();
        done.insert(
            Kind::KafkaTopic,
            Tally {
                created: 150,
                ..Tally::default()
            },
        );
        let step = Step {
            number: 3,
            batches: 11,
            kind: Kind::KafkaTopic,
            action: Action::Create,
            applied: 50,
            failed: 0,
            done: &done,
            total: 501,
            elapsed: Duration::from_millis(2140),
        };
        assert_eq!(
            line(&step),
            "apply: batch 3/11: 50 kafka.topic created; 150/501 changes (150 created, 0 updated, 0 deleted), 2.1s"
        );
        assert_eq!(bar_message(&step), "+150 ~0 -0  kafka.topic");
        done.insert(
            Kind::EtcdKey,
            Tally {
                updated: 1,
                failed: 2,
                ..Tally::default()
            },
        );
        assert_eq!(
            summary(&done, Duration::from_secs(65)),
            "Applied in 1m05s:\n  kafka.topic  150 created\n  etcd.key     1 updated, 2 failed\n"
        );
    }
}
