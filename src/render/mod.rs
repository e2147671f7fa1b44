//! Plans for people (text, markdown) and for bots (JSON, the plan itself).

pub mod markdown;
pub mod text;

use std::collections::BTreeMap;

use crate::plan::{Change, FieldChange};
use crate::resource::Kind;

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
    let width = change
        .fields
        .iter()
        .map(|f| f.field.len())
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

fn values(change: &Change, f: &FieldChange) -> String {
    let absent = "(absent)";
    // A topic config sluice stops setting goes back to the broker's default.
    let reset = if change.address.kind() == Kind::KafkaTopic {
        "(default)"
    } else {
        absent
    };
    match (&f.before, &f.after) {
        (None, Some(after)) if change.live.is_none() => after.clone(),
        (before, after) => format!(
            "{} → {}",
            before.as_deref().unwrap_or(absent),
            after.as_deref().unwrap_or(reset)
        ),
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
