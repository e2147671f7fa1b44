//! Kafka topic configs as users write them under `topics[].config`, checked
//! against the catalog of Kafka's own topic-level configs: types, allowed
//! words and ranges, with human units for milliseconds and bytes.

use crate::config::Located;
use crate::config::parse::suggest_among;
use crate::config::scalar::Scalar;
use crate::config::units::{DurationUnit, SizeUnit, UnitKind, millis};
use crate::diag::Diagnostic;

pub use crate::config::topic_catalog::{CATALOG, Kind, NO_LIMIT, REMOVED_KEYS, Spec};

/// The catalog entry of `key`.
pub fn spec(key: &str) -> Option<&'static Spec> {
    CATALOG.iter().find(|s| s.key == key)
}

/// Warns about a key Kafka does not know (with the closest known one), or
/// one current Kafka no longer accepts.
pub fn check_key(key: &str, value: &Located<Scalar>, file: &str, diags: &mut Vec<Diagnostic>) {
    if spec(key).is_some() {
        return;
    }
    if let Some((_, version)) = REMOVED_KEYS.iter().find(|(k, _)| *k == key) {
        diags.push(
            Diagnostic::warning(
                "unknown-topic-config",
                format!("`{key}` was removed in Kafka {version}; brokers since then reject it"),
            )
            .at(file, value.loc)
            .hint("remove it unless every cluster this namespace reaches runs an older Kafka"),
        );
        return;
    }
    let keys: Vec<&str> = CATALOG.iter().map(|s| s.key).collect();
    let hint = suggest_among(key, &keys).unwrap_or_else(|| {
        "sluice passes it on as written; README lists the topic configs Kafka documents".into()
    });
    diags.push(
        Diagnostic::warning(
            "unknown-topic-config",
            format!("`{key}` is not a Kafka topic config"),
        )
        .at(file, value.loc)
        .hint(hint),
    );
}

/// The value Kafka is given for `key`, or an error where it was written.
pub fn value(
    key: &str,
    value: &Located<Scalar>,
    file: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<String> {
    let text = value.value.0.trim();
    let checked = match spec(key) {
        Some(s) => check(s.kind, text, NO_LIMIT.contains(&key)),
        None => unlisted(key, text),
    };
    match checked {
        Ok(v) => Some(v),
        Err((message, hint)) => {
            diags.push(
                Diagnostic::error("invalid-topic-config", format!("`{key}`: {message}"))
                    .at(file, value.loc)
                    .hint(hint),
            );
            None
        }
    }
}

type Problem = (String, String);

/// A value of a known kind, in Kafka's form; `no_limit` says `-1` means
/// unlimited, so `infinite` may be written for it.
fn check(kind: Kind, text: &str, no_limit: bool) -> Result<String, Problem> {
    if no_limit && text == "infinite" {
        return Ok("-1".into());
    }
    match kind {
        Kind::Bool => match text {
            "true" | "false" => Ok(text.to_owned()),
            _ => Err((
                format!("expected `true` or `false`, not `{text}`"),
                "write `true` or `false`".into(),
            )),
        },
        Kind::Int { min, max } => {
            let n = text.parse::<i64>().map_err(|_| {
                (
                    format!("expected a whole number, not `{text}`"),
                    "write a whole number".to_owned(),
                )
            })?;
            within(n, (min, max), &n.to_string(), no_limit)
        }
        Kind::Millis { min, max } => {
            let n = text.parse::<i64>().or_else(|_| {
                DurationUnit::parse(text)
                    .map(|d| i64::try_from(millis(d)).unwrap_or(i64::MAX))
                    .map_err(|e| (e, DurationUnit::HINT.to_owned()))
            })?;
            within(n, (min, max), text, no_limit)
        }
        Kind::Bytes { min, max } => {
            let n = text.parse::<i64>().or_else(|_| {
                SizeUnit::parse(text)
                    .map(|b| i64::try_from(b).unwrap_or(i64::MAX))
                    .map_err(|e| (e, SizeUnit::HINT.to_owned()))
            })?;
            within(n, (min, max), text, no_limit)
        }
        Kind::Ratio { min, max } => match text.parse::<f64>() {
            Ok(x) if (min..=max).contains(&x) => Ok(text.to_owned()),
            _ => Err((
                format!("expected a number from {min} to {max}, not `{text}`"),
                format!("write a number from {min} to {max}, such as `0.5`"),
            )),
        },
        Kind::OneOf(words) => match words.contains(&text) {
            true => Ok(text.to_owned()),
            false => Err(unknown_word(text, words)),
        },
        Kind::ListOf(words) => list_of(text, words),
        Kind::Text => Ok(text.to_owned()),
    }
}

/// A comma-separated list of `words`, each at most once, in Kafka's form.
fn list_of(text: &str, words: &[&str]) -> Result<String, Problem> {
    let listed = words.join("`, `");
    if text.is_empty() {
        return Err((
            "an empty list is not accepted".into(),
            format!(
                "write one or more of `{listed}`; to keep data forever, set retention: infinite"
            ),
        ));
    }
    let items: Vec<&str> = text.split(',').map(str::trim).collect();
    if let Some(bad) = items.iter().find(|i| !words.contains(i)) {
        return Err(unknown_word(bad, words));
    }
    let repeat = items
        .iter()
        .enumerate()
        .find(|(i, w)| items[..*i].contains(w));
    if let Some((_, twice)) = repeat {
        return Err((
            format!("`{twice}` is listed twice"),
            format!("list each of `{listed}` at most once"),
        ));
    }
    Ok(items.join(","))
}

/// `n` in `min..=max`; `written` is what the user wrote, for the message.
fn within(
    n: i64,
    (min, max): (i64, i64),
    written: &str,
    no_limit: bool,
) -> Result<String, Problem> {
    if (min..=max).contains(&n) {
        return Ok(n.to_string());
    }
    let range = match (min, max) {
        (-1, i64::MAX) if no_limit => "-1 (no limit) or at least 0".to_owned(),
        (_, max) if max >= i64::from(i32::MAX) => format!("at least {min}"),
        _ => format!("from {min} to {max}"),
    };
    let shown = if written == n.to_string() {
        written.to_owned()
    } else {
        format!("{written} ({n})")
    };
    Err((
        format!("{shown} is out of range: Kafka takes {range}"),
        format!("use a value {}", range.replace("at least", "of at least")),
    ))
}

fn unknown_word(text: &str, words: &[&str]) -> Problem {
    let listed = words
        .iter()
        .map(|w| format!("`{w}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let hint = suggest_among(text, words).unwrap_or_else(|| format!("write one of {listed}"));
    (
        format!("unknown value `{text}`, expected one of {listed}"),
        hint,
    )
}

/// A key outside the catalog: `*.ms` and `*.bytes` values may still be
/// human units; anything else passes as written.
fn unlisted(key: &str, text: &str) -> Result<String, Problem> {
    let (min, max) = (i64::MIN, i64::MAX);
    match key.rsplit('.').next() {
        _ if text.parse::<i64>().is_ok() => Ok(text.to_owned()),
        Some("ms") => check(Kind::Millis { min, max }, text, false),
        Some("bytes") => check(Kind::Bytes { min, max }, text, false),
        _ => Ok(text.to_owned()),
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

    fn ok(key: &str, text: &str) -> String {
        let (out, diags) = v(key, text);
        out.unwrap_or_else(|| panic!("{key}: {text}: {diags:?}"))
    }

    fn err(key: &str, text: &str) -> String {
        let (out, diags) = v(key, text);
        assert!(out.is_none(), "{key}: {text} was accepted");
        assert_eq!(diags[0].code, "invalid-topic-config");
        format!(
            "{} / {}",
            diags[0].message,
            diags[0].hint.clone().unwrap_or_default()
        )
    }

    #[test]
    fn human_units_convert_for_ms_and_bytes_keys() {
        assert_eq!(ok("retention.ms", "7d"), "604800000");
        assert_eq!(ok("retention.ms", "-1"), "-1");
        assert_eq!(ok("retention.ms", "infinite"), "-1");
        assert_eq!(ok("segment.bytes", "1GiB"), "1073741824");
        assert!(err("segment.ms", "soon").contains("duration"));
    }

    #[test]
    fn values_are_checked_against_the_catalog() {
        assert_eq!(ok("cleanup.policy", "compact, delete"), "compact,delete");
        assert!(err("cleanup.policy", "bogus").contains("`compact`"));
        assert!(err("cleanup.policy", "compact,delte").contains("did you mean `delete`?"));
        assert_eq!(ok("compression.type", "zstd"), "zstd");
        assert!(err("compression.type", "zip").contains("unknown value `zip`"));
        assert!(err("message.timestamp.type", "EventTime").contains("CreateTime"));
        assert_eq!(ok("unclean.leader.election.enable", "false"), "false");
        assert!(err("preallocate", "yes").contains("`true` or `false`"));
        assert!(err("min.insync.replicas", "0").contains("at least 1"));
        assert!(err("min.insync.replicas", "two").contains("whole number"));
        assert_eq!(ok("min.cleanable.dirty.ratio", "0.5"), "0.5");
        assert!(err("min.cleanable.dirty.ratio", "1.5").contains("from 0 to 1"));
        assert!(err("retention.ms", "-2").contains("out of range"));
        assert!(err("segment.bytes", "1KiB").contains("1KiB (1024) is out of range"));
        assert!(err("compression.gzip.level", "0").contains("unknown value `0`"));
        assert!(err("cleanup.policy", "").contains("empty list"));
        assert!(err("cleanup.policy", "compact,compact").contains("listed twice"));
        assert_eq!(ok("local.retention.ms", "infinite"), "-1");
        assert!(err("remote.copy.lag.ms", "infinite").contains("duration"));
        assert!(err("remote.copy.lag.ms", "-2").contains("at least -1"));
    }

    #[test]
    fn every_catalog_entry_is_sorted_unique_and_has_a_valid_default() {
        let keys: Vec<&str> = CATALOG.iter().map(|s| s.key).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(keys, sorted, "the catalog is sorted by key, each once");
        for s in CATALOG {
            assert!(!s.doc.is_empty(), "{}", s.key);
            let default = check(s.kind, s.default, NO_LIMIT.contains(&s.key));
            assert!(
                default.is_ok(),
                "{}: default {}: {default:?}",
                s.key,
                s.default
            );
            assert!(
                REMOVED_KEYS.iter().all(|(k, _)| *k != s.key),
                "{} is both current and removed",
                s.key
            );
        }
    }

    #[test]
    fn unknown_keys_warn_with_a_suggestion_and_removed_ones_say_when() {
        let warn = |key: &str| {
            let mut diags = Vec::new();
            check_key(
                key,
                &Located::new(Scalar("x".into()), Loc::UNKNOWN),
                "f",
                &mut diags,
            );
            assert!(!diags[0].is_error());
            diags.remove(0)
        };
        assert_eq!(
            warn("cleanup.polcy").hint.as_deref(),
            Some("did you mean `cleanup.policy`?")
        );
        if let Some((removed, version)) = REMOVED_KEYS.first() {
            assert!(
                warn(removed)
                    .message
                    .contains(&format!("removed in Kafka {version}"))
            );
        }
    }
}
