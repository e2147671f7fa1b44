//! Topic-level configs of Apache Kafka 4.5.0-SNAPSHOT (trunk; 4.4 is branched,
//! 4.3.x is the newest release), with their types and the values Kafka accepts.
//! Source: apache/kafka trunk at d79bd502ec7fa49335afa422f442af80ed0ab8f6
//! (2026-08-23, read from the confluentinc/kafka mirror of trunk because the
//! apache/kafka snapshot here stops at 1eb7644 from 2024-10), files read:
//! gradle.properties,
//! clients/src/main/java/org/apache/kafka/common/config/TopicConfig.java,
//! clients/src/main/java/org/apache/kafka/common/config/ConfigDef.java (ValidList),
//! clients/src/main/java/org/apache/kafka/common/record/internal/CompressionType.java,
//! clients/src/main/java/org/apache/kafka/common/record/internal/Records.java,
//! storage/src/main/java/org/apache/kafka/storage/internals/log/LogConfig.java,
//! storage/src/main/java/org/apache/kafka/storage/internals/log/ThrottledReplicaListValidator.java,
//! storage/src/main/java/org/apache/kafka/server/log/remote/storage/RemoteLogManagerConfig.java,
//! server-common/src/main/java/org/apache/kafka/server/config/ServerLogConfigs.java,
//! server-common/src/main/java/org/apache/kafka/server/config/ServerTopicConfigSynonyms.java,
//! server-common/src/main/java/org/apache/kafka/server/config/QuotaConfig.java,
//! server-common/src/main/java/org/apache/kafka/server/record/BrokerCompressionType.java.

use schemars::{Schema, SchemaGenerator, json_schema};

/// What values a topic config takes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    /// `true` or `false`.
    Bool,
    /// A whole number in `min..=max`.
    Int { min: i64, max: i64 },
    /// Milliseconds, a whole number in `min..=max` (`-1` is allowed only where min is -1).
    Millis { min: i64, max: i64 },
    /// Bytes, a whole number in `min..=max`.
    Bytes { min: i64, max: i64 },
    /// A decimal number in `min..=max`.
    Ratio { min: f64, max: f64 },
    /// Exactly one of these words.
    OneOf(&'static [&'static str]),
    /// A comma-separated list of these words, at least one and each once
    /// (Kafka 4.2 also takes an empty `cleanup.policy`; older brokers do not).
    ListOf(&'static [&'static str]),
    /// Free text Kafka checks itself (e.g. throttled replica lists).
    Text,
}

pub struct Spec {
    pub key: &'static str,
    pub kind: Kind,
    /// The broker default, as Kafka documents it.
    pub default: &'static str,
    pub doc: &'static str,
}

pub const CATALOG: &[Spec] = &[
    Spec {
        key: "cleanup.policy",
        kind: Kind::ListOf(&["compact", "delete"]),
        default: "delete",
        doc: "How old segments are cleaned up: `delete` drops them past the retention limits, `compact` keeps only the latest record per key, and both may be listed (since 4.2 an empty list means never clean up).",
    },
    Spec {
        key: "compression.gzip.level",
        kind: Kind::OneOf(&["-1", "1", "2", "3", "4", "5", "6", "7", "8", "9"]),
        default: "-1",
        doc: "The gzip level used when compression.type is gzip: 1 to 9, or -1 for the codec's default (0 is rejected).",
    },
    Spec {
        key: "compression.lz4.level",
        kind: Kind::Int { min: 1, max: 17 },
        default: "9",
        doc: "The lz4 level used when compression.type is lz4.",
    },
    Spec {
        key: "compression.type",
        kind: Kind::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        default: "producer",
        doc: "The codec the broker stores the topic's batches in, where `producer` keeps whatever the producer used and `uncompressed` stores them uncompressed.",
    },
    Spec {
        key: "compression.zstd.level",
        kind: Kind::Int {
            min: -131072,
            max: 22,
        },
        default: "3",
        doc: "The zstd level used when compression.type is zstd.",
    },
    Spec {
        key: "delete.retention.ms",
        kind: Kind::Millis {
            min: 0,
            max: i64::MAX,
        },
        default: "86400000",
        doc: "How long tombstones are kept in a compacted topic, which bounds how long a consumer reading from the start may take to see a consistent snapshot.",
    },
    Spec {
        key: "errors.deadletterqueue.group.enable",
        kind: Kind::Bool,
        default: "false",
        doc: "Whether share groups may use this topic as their dead-letter queue for undeliverable records (new in Kafka 4.4).",
    },
    Spec {
        key: "file.delete.delay.ms",
        kind: Kind::Millis {
            min: 0,
            max: i64::MAX,
        },
        default: "60000",
        doc: "How long the broker waits before removing a deleted segment's files from disk.",
    },
    Spec {
        key: "flush.messages",
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
        },
        default: "9223372036854775807",
        doc: "Forces an fsync after this many messages; best left alone in favour of replication and the OS page cache.",
    },
    Spec {
        key: "flush.ms",
        kind: Kind::Millis {
            min: 0,
            max: i64::MAX,
        },
        default: "9223372036854775807",
        doc: "Forces an fsync once this much time has passed since the last one, checked as often as the broker's log.flush.scheduler.interval.ms.",
    },
    Spec {
        key: "follower.replication.throttled.replicas",
        kind: Kind::Text,
        default: "",
        doc: "Replicas whose follower-side replication is throttled, as `partition:broker` pairs separated by commas, or `*` for all.",
    },
    Spec {
        key: "index.interval.bytes",
        kind: Kind::Bytes {
            min: 0,
            max: i32::MAX as i64,
        },
        default: "4096",
        doc: "How many bytes of log go between entries in the offset index, trading index size for seek precision.",
    },
    Spec {
        key: "leader.replication.throttled.replicas",
        kind: Kind::Text,
        default: "",
        doc: "Replicas whose leader-side replication is throttled, as `partition:broker` pairs separated by commas, or `*` for all.",
    },
    Spec {
        key: "local.retention.bytes",
        kind: Kind::Bytes {
            min: -2,
            max: i64::MAX,
        },
        default: "-2",
        doc: "With tiered storage, how large a partition's local segments may grow before the oldest are deleted locally; -2 means use retention.bytes and -1 means no limit.",
    },
    Spec {
        key: "local.retention.ms",
        kind: Kind::Millis {
            min: -2,
            max: i64::MAX,
        },
        default: "-2",
        doc: "With tiered storage, how long segments stay on local disk; -2 means use retention.ms and -1 means no limit.",
    },
    Spec {
        key: "max.compaction.lag.ms",
        kind: Kind::Millis {
            min: 1,
            max: i64::MAX,
        },
        default: "9223372036854775807",
        doc: "The longest a record may stay ineligible for compaction, which also caps how long the active segment of a compacted topic stays open.",
    },
    Spec {
        key: "max.message.bytes",
        kind: Kind::Bytes {
            min: 0,
            max: i32::MAX as i64,
        },
        default: "1048588",
        doc: "The largest record batch the topic accepts, measured after compression.",
    },
    Spec {
        key: "message.timestamp.after.max.ms",
        kind: Kind::Millis {
            min: 0,
            max: i64::MAX,
        },
        default: "3600000",
        doc: "With CreateTime, how far a record's timestamp may lie ahead of the broker's clock before the record is rejected.",
    },
    Spec {
        key: "message.timestamp.before.max.ms",
        kind: Kind::Millis {
            min: 0,
            max: i64::MAX,
        },
        default: "9223372036854775807",
        doc: "With CreateTime, how far a record's timestamp may lie behind the broker's clock before the record is rejected.",
    },
    Spec {
        key: "message.timestamp.type",
        kind: Kind::OneOf(&["CreateTime", "LogAppendTime"]),
        default: "CreateTime",
        doc: "Whether record timestamps are the producer's creation time or the time the broker appended them.",
    },
    Spec {
        key: "min.cleanable.dirty.ratio",
        kind: Kind::Ratio { min: 0.0, max: 1.0 },
        default: "0.5",
        doc: "The share of uncompacted log needed before the cleaner compacts it, weighed together with the min and max compaction lags.",
    },
    Spec {
        key: "min.compaction.lag.ms",
        kind: Kind::Millis {
            min: 0,
            max: i64::MAX,
        },
        default: "0",
        doc: "The shortest time a record stays uncompacted in a compacted topic.",
    },
    Spec {
        key: "min.insync.replicas",
        kind: Kind::Int {
            min: 1,
            max: i32::MAX as i64,
        },
        default: "1",
        doc: "How many in-sync replicas, leader included, must exist for an acks=all write to succeed.",
    },
    Spec {
        key: "preallocate",
        kind: Kind::Bool,
        default: "false",
        doc: "Whether the broker preallocates the file on disk when it creates a new segment.",
    },
    Spec {
        key: "remote.copy.lag.bytes",
        kind: Kind::Bytes {
            min: -1,
            max: i64::MAX,
        },
        default: "-1",
        doc: "With tiered storage, how many bytes of newer local data a closed segment waits behind before upload, where 0 uploads at once and -1 derives the value from local retention (new in Kafka 4.4).",
    },
    Spec {
        key: "remote.copy.lag.ms",
        kind: Kind::Millis {
            min: -1,
            max: i64::MAX,
        },
        default: "0",
        doc: "With tiered storage, how long after its newest record a closed segment waits before upload, where 0 uploads at once and -1 derives the value from local retention (new in Kafka 4.4).",
    },
    Spec {
        key: "remote.log.copy.disable",
        kind: Kind::Bool,
        default: "false",
        doc: "Makes a tiered topic's remote data read-only, so nothing more is uploaded and the topic-wide retention settings govern expiry.",
    },
    Spec {
        key: "remote.log.delete.on.disable",
        kind: Kind::Bool,
        default: "false",
        doc: "Whether remote data is deleted when tiered storage is turned off for the topic, which must be true to set remote.storage.enable back to false.",
    },
    Spec {
        key: "remote.storage.enable",
        kind: Kind::Bool,
        default: "false",
        doc: "Turns on tiered storage for the topic, which needs cluster-wide tiered storage and a cleanup.policy of delete (or empty).",
    },
    Spec {
        key: "retention.bytes",
        kind: Kind::Bytes {
            min: i64::MIN,
            max: i64::MAX,
        },
        default: "-1",
        doc: "The most bytes a partition may hold under the delete policy before its oldest segments go, where a negative value means no size limit.",
    },
    Spec {
        key: "retention.ms",
        kind: Kind::Millis {
            min: -1,
            max: i64::MAX,
        },
        default: "604800000",
        doc: "How long records are kept under the delete policy before their segments go, where -1 means no time limit.",
    },
    Spec {
        key: "segment.bytes",
        kind: Kind::Bytes {
            min: 1048576,
            max: i32::MAX as i64,
        },
        default: "1073741824",
        doc: "The size at which the active segment is rolled, and so the unit in which retention and compaction work.",
    },
    Spec {
        key: "segment.index.bytes",
        kind: Kind::Bytes {
            min: 4,
            max: i32::MAX as i64,
        },
        default: "10485760",
        doc: "The preallocated size of each segment's offset index, rarely worth changing.",
    },
    Spec {
        key: "segment.jitter.ms",
        kind: Kind::Millis {
            min: 0,
            max: i64::MAX,
        },
        default: "0",
        doc: "The most random time taken off the scheduled roll time, so that many segments do not roll at once.",
    },
    Spec {
        key: "segment.ms",
        kind: Kind::Millis {
            min: 1,
            max: i64::MAX,
        },
        default: "604800000",
        doc: "How long before the active segment is rolled even if not full, so that retention and compaction can reach its records.",
    },
    Spec {
        key: "unclean.leader.election.enable",
        kind: Kind::Bool,
        default: "false",
        doc: "Whether a replica outside the ISR may become leader as a last resort, at the risk of losing data.",
    },
];

/// Keys whose `-1` means no limit, so `infinite` may be written.
pub const NO_LIMIT: &[&str] = &[
    "local.retention.bytes",
    "local.retention.ms",
    "retention.bytes",
    "retention.ms",
];

/// Keys current Kafka no longer accepts, with the version that removed them.
pub const REMOVED_KEYS: &[(&str, &str)] = &[
    ("message.downconversion.enable", "4.0"),
    ("message.format.version", "4.0"),
    ("message.timestamp.difference.max.ms", "4.0"),
];

/// The JSON Schema of `topics[].config`: every catalog key with its
/// documentation, for editors; values are checked by `sluice validate`.
pub fn schema(_: &mut SchemaGenerator) -> Schema {
    let scalar = serde_json::json!({ "type": ["string", "integer", "number", "boolean"] });
    let properties: serde_json::Map<String, serde_json::Value> = CATALOG
        .iter()
        .map(|s| {
            let mut entry = scalar.clone();
            entry["description"] = format!("{} Kafka's default: `{}`.", s.doc, s.default).into();
            (s.key.to_owned(), entry)
        })
        .collect();
    json_schema!({
        "type": "object",
        "properties": properties,
        "additionalProperties": scalar,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds(min: i64, max: i64) -> String {
        let lo = match min {
            i64::MIN => "any".to_owned(),
            m => format!("≥ {m}"),
        };
        match max {
            i64::MAX => lo,
            m if m == i64::from(i32::MAX) => format!("{lo}, ≤ 2³¹−1"),
            m => format!("{min} … {m}"),
        }
    }

    fn words(w: &[&str]) -> String {
        w.iter()
            .map(|w| format!("`{w}`"))
            .collect::<Vec<_>>()
            .join(" \\| ")
    }

    fn kind(k: Kind, key: &str) -> String {
        let unlimited = if NO_LIMIT.contains(&key) {
            "; `infinite` = -1"
        } else {
            ""
        };
        match k {
            Kind::Bool => "`true` \\| `false`".into(),
            Kind::Int { min, max } => format!("integer, {}", bounds(min, max)),
            Kind::Millis { min, max } => format!("ms or duration, {}{unlimited}", bounds(min, max)),
            Kind::Bytes { min, max } => format!("bytes or size, {}{unlimited}", bounds(min, max)),
            Kind::Ratio { min, max } => format!("number, {min} … {max}"),
            Kind::OneOf(w) => words(w),
            Kind::ListOf(w) => format!("list of {}", words(w)),
            Kind::Text => "text (checked by Kafka)".into(),
        }
    }

    /// The README table of the catalog, so the two never drift apart.
    fn markdown_table() -> String {
        let mut out =
            String::from("| Key | Values | Kafka's default | What it does |\n|---|---|---|---|\n");
        for s in CATALOG {
            let default = if s.default.is_empty() {
                "(none)"
            } else {
                s.default
            };
            out += &format!(
                "| `{}` | {} | `{default}` | {} |\n",
                s.key,
                kind(s.kind, s.key),
                s.doc
            );
        }
        out
    }

    #[test]
    fn readme_lists_the_catalog() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
        let table = markdown_table();
        assert!(
            readme.contains(&table),
            "README.md must hold this table:\n{table}"
        );
    }
}
