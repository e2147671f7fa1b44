//! Kafka topic configs as users write them under `topics[].config`.

use crate::config::Located;
use crate::config::scalar::Scalar;
use crate::config::units::{DurationUnit, SizeUnit, UnitKind, millis};
use crate::diag::Diagnostic;

/// Topic-level configs of Kafka 3.x and 4.x.
const KNOWN_KEYS: &[&str] = &[
    "cleanup.policy",
    "compression.gzip.level",
    "compression.lz4.level",
    "compression.type",
    "compression.zstd.level",
    "delete.retention.ms",
    "file.delete.delay.ms",
    "flush.messages",
    "flush.ms",
    "follower.replication.throttled.replicas",
    "index.interval.bytes",
    "leader.replication.throttled.replicas",
    "local.retention.bytes",
    "local.retention.ms",
    "max.compaction.lag.ms",
    "max.message.bytes",
    "message.downconversion.enable",
    "message.format.version",
    "message.timestamp.after.max.ms",
    "message.timestamp.before.max.ms",
    "message.timestamp.difference.max.ms",
    "message.timestamp.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "min.insync.replicas",
    "preallocate",
    "remote.log.copy.disable",
    "remote.log.delete.on.disable",
    "remote.storage.enable",
    "retention.bytes",
    "retention.ms",
    "segment.bytes",
    "segment.index.bytes",
    "segment.jitter.ms",
    "segment.ms",
    "unclean.leader.election.enable",
];

/// Warns about a key Kafka does not know, with the closest known one.
pub fn check_key(key: &str, value: &Located<Scalar>, file: &str, diags: &mut Vec<Diagnostic>) {
    if KNOWN_KEYS.contains(&key) {
        return;
    }
    let best = KNOWN_KEYS
        .iter()
        .map(|k| (strsim::jaro_winkler(key, k), *k))
        .filter(|(s, _)| *s > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let hint = match best {
        Some((_, k)) => format!("did you mean `{k}`?"),
        None => "sluice passes it on as written; check the key against your Kafka version's topic configs".into(),
    };
    diags.push(
        Diagnostic::warning(
            "unknown-topic-config",
            format!("`{key}` is not a Kafka topic config"),
        )
        .at(file, value.loc)
        .hint(hint),
    );
}

/// The value Kafka is given for `key`. Values of `*.ms` and `*.bytes` keys may
/// be human units (`7d`, `1GiB`), converted here; other values pass as written.
pub fn value(
    key: &str,
    value: &Located<Scalar>,
    file: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<String> {
    let text = value.value.0.trim();
    let integer = text.parse::<i64>().is_ok();
    let converted = if integer {
        Ok(text.to_owned())
    } else if key.ends_with(".ms") {
        DurationUnit::parse(text).map(|d| millis(d).to_string())
    } else if key.ends_with(".bytes") {
        SizeUnit::parse(text).map(|b| b.to_string())
    } else if key.ends_with(".messages") || key == "min.insync.replicas" {
        Err(format!("`{key}` must be an integer, not `{text}`"))
    } else {
        Ok(text.to_owned())
    };
    match converted {
        Ok(v) => Some(v),
        Err(message) => {
            let hint = if key.ends_with(".ms") {
                "write milliseconds as an integer, or a duration such as `7d`"
            } else if key.ends_with(".bytes") {
                "write bytes as an integer, or a size such as `1GiB`"
            } else {
                "write an integer"
            };
            diags.push(
                Diagnostic::error("invalid-topic-config", message)
                    .at(file, value.loc)
                    .hint(hint),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Loc;

    fn v(key: &str, text: &str) -> (Option<String>, Vec<Diagnostic>) {
        let mut diags = Vec::new();
        let out = value(
            key,
            &Located::new(Scalar(text.into()), Loc::UNKNOWN),
            "f",
            &mut diags,
        );
        (out, diags)
    }

    #[test]
    fn human_units_convert_for_ms_and_bytes_keys() {
        assert_eq!(v("retention.ms", "7d").0.as_deref(), Some("604800000"));
        assert_eq!(v("retention.ms", "-1").0.as_deref(), Some("-1"));
        assert_eq!(v("segment.bytes", "1GiB").0.as_deref(), Some("1073741824"));
        assert_eq!(
            v("cleanup.policy", "compact,delete").0.as_deref(),
            Some("compact,delete")
        );
        let (out, diags) = v("min.insync.replicas", "two");
        assert!(out.is_none() && diags[0].message.contains("integer"));
        assert!(v("segment.ms", "soon").1[0].code == "invalid-topic-config");
    }

    #[test]
    fn unknown_keys_warn_with_a_suggestion() {
        let mut diags = Vec::new();
        check_key(
            "cleanup.polcy",
            &Located::new(Scalar("compact".into()), Loc::UNKNOWN),
            "f",
            &mut diags,
        );
        assert_eq!(
            diags[0].hint.as_deref(),
            Some("did you mean `cleanup.policy`?")
        );
        assert!(!diags[0].is_error());
    }
}
