//! Plans for people (text, markdown) and for bots (JSON, the plan itself).

pub mod markdown;
pub mod status;
pub mod text;

use std::collections::BTreeMap;

use crate::plan::{Change, FieldChange};
use crate::resource::Kind;

/// The first 12 characters of a commit or a digest: enough to tell them apart.
pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Changes grouped by namespace, namespaces sorted, changes in plan order.
fn by_namespace<'a>(
    changes: impl IntoIterator<Item = &'a Change>,
) -> BTreeMap<&'a str, Vec<&'a Change>> {
    let mut out: BTreeMap<&str, Vec<&Change>> = BTreeMap::new();
    for c in changes {
        out.entry(c.namespace.as_str()).or_default().push(c);
    }
    out
}

/// `name: before → after`, `name: value` for a create, aligned.
fn field_lines(change: &Change) -> Vec<String> {
    if let Some(diff) = document_diff(change) {
        return diff;
    }
    let width = change
        .fields
        .iter()
        .map(|f| f.field.to_string().len())
        .max()
        .unwrap_or(0);
    change
        .fields
        .iter()
        .map(|f| {
            format!(
                "{:width$}  {}",
                format!("{}:", f.field),
                values(change, f),
                width = width + 1
            )
        })
        .collect()
}

/// The rules and statements sluice owns in a bucket's shared documents read
/// best as a unified diff of their JSON, and rule files as one of their
/// text, live → desired.
fn document_diff(change: &Change) -> Option<Vec<String>> {
    if !matches!(
        change.address.kind(),
        Kind::S3Lifecycle | Kind::S3Replication | Kind::S3Policy | Kind::RuleFile
    ) {
        return None;
    }
    let text = |v: &Option<crate::resource::Value>| match v {
        None => String::new(),
        Some(crate::resource::Value::Rules(text)) => text.clone(),
        Some(v) => serde_json::to_string_pretty(&v.inner_json()).expect("JSON prints") + "\n",
    };
    let (before, after) = (text(&change.live), text(&change.desired));
    let diff = similar::TextDiff::from_lines(&before, &after);
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header("live", "desired")
        .to_string();
    Some(text.lines().map(str::to_owned).collect())
}

fn values(change: &Change, f: &FieldChange) -> String {
    let absent = "(absent)";
    // A topic config sluice stops setting goes back to the broker's default.
    let reset = if change.address.kind() == Kind::KafkaTopic {
        "(default)"
    } else {
        absent
    };
    let show = |v: &Option<serde_json::Value>, none: &str| {
        v.as_ref().map_or_else(|| none.to_owned(), |v| f.show(v))
    };
    match (&f.before, &f.after) {
        (None, Some(after)) if change.live.is_none() => f.show(after),
        (before, after) => format!("{} → {}", show(before, absent), show(after, reset)),
    }
}

/// "3 to create, 1 to delete" for one group of changes.
fn counts(changes: &[&Change]) -> String {
    let s = crate::plan::Summary::of(changes.iter().copied());
    let mut parts = Vec::new();
    for (n, what) in [
        (s.create, "to create"),
        (s.update, "to update"),
        (s.delete, "to delete"),
        (s.blocked, "blocked"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    if s.drift > 0 {
        parts.push(format!("{} from drift", s.drift));
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::config::workspace::Guards;
    use crate::plan::{Action, Cause, Change, FORMAT_VERSION, FieldChange, Plan, Summary};
    use crate::resource::{Address, TopicValue, Value};

    /// A plan creating `n` topics, each in its own namespace.
    fn plan(n: usize) -> Plan {
        let changes: Vec<Change> = (0..n)
            .map(|i| Change {
                address: Address::topic(&format!("team-{i:05}-events")),
                namespace: format!("team-{i:05}"),
                action: Action::Create,
                cause: Cause::Pending,
                drifted: false,
                fields: vec![FieldChange {
                    field: crate::plan::Field::Partitions,
                    before: None,
                    after: Some(12.into()),
                }],
                reasons: Vec::new(),
                source: None,
                desired: Some(Value::Topic(TopicValue {
                    partitions: 12,
                    replication_factor: 3,
                    config: BTreeMap::new(),
                })),
                live: None,
                inventory: None,
            })
            .collect();
        Plan {
            format_version: FORMAT_VERSION,
            environment: "prod".into(),
            revision: None,
            guards: Guards::default(),
            summary: Summary::of(&changes),
            changes,
            unchanged: 0,
            adopt: BTreeMap::new(),
            forget: Vec::new(),
            fingerprints: BTreeMap::new(),
            inventory_revision: 0,
            dr: Vec::new(),
            policy: Vec::new(),
            scope: None,
            widened: None,
            review: Vec::new(),
            digest: None,
        }
    }

    #[test]
    fn a_large_markdown_plan_stays_under_the_limit_and_says_so() {
        let md = super::markdown::plan(&plan(3000));
        assert!(md.len() <= super::markdown::LIMIT, "{}", md.len());
        assert!(md.contains("Truncated:"), "no truncation note");
        assert!(md.contains("| … and "), "the table is cut too");
        assert!(md.contains("**Plan: 3000 to create, 0 to update, 0 to delete.**"));
        let small = super::markdown::plan(&plan(3));
        assert!(!small.contains("Truncated"));
        assert_eq!(small.matches("<details>").count(), 3);
    }

    #[test]
    fn colour_only_when_asked() {
        let p = plan(1);
        assert!(super::text::plan(&p, true).contains("\x1b[32m+ kafka.topic/team-00000-events"));
        assert!(!super::text::plan(&p, false).contains('\x1b'));
        assert!(
            super::text::plan(&p, false)
                .ends_with("Plan: 1 to create, 0 to update, 0 to delete.\n")
        );
    }
}
