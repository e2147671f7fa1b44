//! A namespace's own settings, read back from its topics: the retention,
//! compression and maximum message size every topic of a namespace gets
//! (`spec.retention`, `spec.compression`, `spec.max_message_bytes`), which
//! a DLQ gets and nothing else. Written at `spec` level, so that a DLQ keeps
//! them rather than falling back to the workspace's defaults.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value as Json, json};

use super::{Estate, duration};
use crate::config::namespace::{Compression, dlq_parent};
use crate::records::RegistryRecord;

/// The topic configs a namespace sets on each of its topics, and the `spec`
/// key each is written as.
const SETTINGS: [(&str, &str); 3] = [
    ("retention.ms", "retention"),
    ("compression.type", "compression"),
    ("max.message.bytes", "max_message_bytes"),
];

/// Whether `name` is the DLQ of another topic of the namespace: it is then
/// written as that topic's `dlq: true`.
pub(super) fn is_folded_dlq(name: &str, topics: &BTreeSet<String>) -> bool {
    dlq_parent(name).is_some_and(|base| topics.contains(base))
}

/// The namespace's settings, as topic config keys and values. Retention is
/// the registry record's, where there is one (the record holds the
/// namespace's). Otherwise a setting is what the namespace's DLQs all have,
/// as a DLQ has exactly the namespace's settings; without DLQs, what all its
/// topics share. A value the YAML cannot write (`compression.type` of
/// `lz4x`) is left to the topics' own configs.
pub(super) fn namespace_base(
    estate: &Estate,
    registry: Option<&RegistryRecord>,
    order: &[&str],
    topics: &BTreeSet<String>,
) -> BTreeMap<String, String> {
    let dlqs: Vec<&str> = order
        .iter()
        .copied()
        .filter(|t| is_folded_dlq(t, topics))
        .collect();
    let judged = if dlqs.is_empty() { order } else { &dlqs[..] };
    let mut base = BTreeMap::new();
    for (key, _) in SETTINGS {
        let value = match registry {
            Some(r) if key == "retention.ms" => r.retention_ms.map(|ms| ms.to_string()),
            _ => shared(estate, judged, key),
        };
        if let Some(v) = value.filter(|v| spec_value(key, v).is_some()) {
            base.insert(key.to_owned(), v);
        }
    }
    base
}

/// The value of `key` on every one of `topics`, when they all have the same.
fn shared(estate: &Estate, topics: &[&str], key: &str) -> Option<String> {
    let mut values = topics
        .iter()
        .map(|t| estate.topics.get(*t).and_then(|v| v.config.get(key)));
    let first = values.next()??;
    values.all(|v| v == Some(first)).then(|| first.clone())
}

/// The `spec` keys and values of a namespace's settings.
pub(super) fn spec_values(base: &BTreeMap<String, String>) -> Vec<(&'static str, Json)> {
    SETTINGS
        .iter()
        .filter_map(|(key, spec_key)| {
            let value = spec_value(key, base.get(*key)?)?;
            Some((*spec_key, value))
        })
        .collect()
}

/// A topic config value as its `spec` setting writes it (`604800000` is
/// `7d`, `uncompressed` is `none`, `2097152` is `2MiB`); `None` when the
/// setting cannot say it.
fn spec_value(key: &str, value: &str) -> Option<Json> {
    match key {
        "retention.ms" => match value.parse::<i64>().ok()? {
            -1 => Some(json!("infinite")),
            ms if ms > 0 => Some(json!(duration(ms.unsigned_abs()))),
            _ => None,
        },
        "compression.type" => {
            let c: Compression = serde_json::from_value(json!(match value {
                "uncompressed" => "none",
                other => other,
            }))
            .ok()?;
            (c.kafka_value() == value).then(|| json!(c))
        }
        "max.message.bytes" => {
            let bytes = value.parse::<u64>().ok().filter(|b| *b > 0)?;
            Some(size(bytes))
        }
        _ => None,
    }
}

/// A size as the YAML writes it: in MiB or KiB when exact, else in bytes.
fn size(bytes: u64) -> Json {
    for (unit, name) in [(1 << 20, "MiB"), (1 << 10, "KiB")] {
        if bytes.is_multiple_of(unit) {
            return json!(format!("{}{name}", bytes / unit));
        }
    }
    json!(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_written_as_the_yaml_reads_them() {
        assert_eq!(spec_value("retention.ms", "604800000"), Some(json!("7d")));
        assert_eq!(spec_value("retention.ms", "-1"), Some(json!("infinite")));
        assert_eq!(spec_value("retention.ms", "0"), None);
        assert_eq!(spec_value("compression.type", "lz4"), Some(json!("lz4")));
        assert_eq!(
            spec_value("compression.type", "uncompressed"),
            Some(json!("none"))
        );
        assert_eq!(spec_value("compression.type", "none"), None);
        assert_eq!(spec_value("compression.type", "brotli"), None);
        assert_eq!(
            spec_value("max.message.bytes", "2097152"),
            Some(json!("2MiB"))
        );
        assert_eq!(
            spec_value("max.message.bytes", "524288"),
            Some(json!("512KiB"))
        );
        assert_eq!(spec_value("max.message.bytes", "1000"), Some(json!(1000)));
    }
}
