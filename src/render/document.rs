//! Documents in a plan (etcd records, the rules and statements sluice owns
//! in a bucket's shared documents, rule files) as a unified diff, live →
//! desired. JSON documents are pretty-printed with their strings as they
//! are: JSON's escaping on top of a PromQL expression's own (`\\.` in a
//! topic regex printed as `\\\\.`) is what made them unreadable. A string
//! holding a `"` goes in single quotes (a `'` in it doubled), so that a
//! value can never read as more keys than it is.

use std::fmt::Write;

use serde_json::Value as Json;

use crate::plan::Change;
use crate::resource::{Kind, Value};

/// The diff of a change to a document, or `None` for other resources. A
/// created or deleted document is all one side, so it goes without the
/// diff's header.
pub(super) fn diff(change: &Change) -> Option<Vec<String>> {
    if !matches!(
        change.address.kind(),
        Kind::EtcdKey | Kind::S3Lifecycle | Kind::S3Replication | Kind::S3Policy | Kind::RuleFile
    ) {
        return None;
    }
    let text = |v: &Option<Value>| match v {
        None => String::new(),
        Some(Value::Rules(text)) => text.clone(),
        Some(v) => {
            let mut out = String::new();
            pretty(&v.inner_json(), 0, &mut out);
            out + "\n"
        }
    };
    let (before, after) = (text(&change.live), text(&change.desired));
    if before.is_empty() || after.is_empty() {
        let (sign, whole) = if before.is_empty() {
            ('+', after)
        } else {
            ('-', before)
        };
        return Some(whole.lines().map(|l| format!("{sign}{l}")).collect());
    }
    let text = similar::TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(3)
        .header("live", "desired")
        .to_string();
    Some(text.lines().map(str::to_owned).collect())
}

/// JSON laid out as `serde_json::to_string_pretty` lays it out, strings in
/// quotes as they are: only control characters are escaped, so that each
/// line of the diff stays one line.
fn pretty(v: &Json, indent: usize, out: &mut String) {
    let pad = |n: usize| "  ".repeat(n);
    match v {
        Json::String(s) => quoted(s, out),
        Json::Array(items) if !items.is_empty() => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                pretty(item, indent + 1, out);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            let _ = write!(out, "{}]", pad(indent));
        }
        Json::Object(map) if !map.is_empty() => {
            out.push_str("{\n");
            for (i, (key, item)) in map.iter().enumerate() {
                out.push_str(&pad(indent + 1));
                quoted(key, out);
                out.push_str(": ");
                pretty(item, indent + 1, out);
                out.push_str(if i + 1 < map.len() { ",\n" } else { "\n" });
            }
            let _ = write!(out, "{}}}", pad(indent));
        }
        other => out.push_str(&other.to_string()),
    }
}

fn quoted(s: &str, out: &mut String) {
    let quote = if s.contains('"') { '\'' } else { '"' };
    out.push(quote);
    for c in s.chars() {
        if c.is_control() {
            out.push_str(&c.escape_default().to_string());
        } else if c == quote {
            out.push_str("''");
        } else {
            out.push(c);
        }
    }
    out.push(quote);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn layout_is_json_pretty_and_strings_are_shown_as_they_are() {
        let v = json!({"a": [1, {"b": null}], "c": {}, "d": [], "e": "it's", "expr": "x{topic=~\"a\\\\.b\"}'\n"});
        let mut out = String::new();
        pretty(&v, 0, &mut out);
        let plain = serde_json::to_string_pretty(&json!({"a": [1, {"b": null}], "c": {}, "d": []}))
            .unwrap();
        assert!(out.starts_with(&plain[..plain.len() - 2]), "{out}");
        assert!(
            out.ends_with("  \"e\": \"it's\",\n  \"expr\": 'x{topic=~\"a\\\\.b\"}''\\n'\n}"),
            "PromQL as written (`\\\\.`) in single quotes, a newline escaped: {out}"
        );
    }
}
