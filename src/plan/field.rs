//! Which part of a resource a change touches: the contract between the diff
//! and the backends, which send only what changed. Plans show and store it
//! as text (`partitions`, `config.retention.ms`, `capacity.write_rps`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A field of a resource.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum Field {
    /// A topic's partition count.
    Partitions,
    /// A topic's replication factor.
    ReplicationFactor,
    /// A topic config key, such as `retention.ms`.
    Config(String),
    /// A rule file, compared by the digest of its text.
    Digest,
    /// A leaf of a JSON document (records, buckets, rules and statements in
    /// shared documents): `capacity.write_rps`, `topics[0].name`.
    Path(String),
}

const CONFIG: &str = "config.";

/// In JSON, a field is its text.
impl schemars::JsonSchema for Field {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Field".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "`partitions`, `replication_factor`, `config.<key>`, `digest`, or a dotted JSON path"
        })
    }
}

impl Field {
    /// The topic config key this field sets, if it is one.
    pub fn config_key(&self) -> Option<&str> {
        match self {
            Field::Config(key) => Some(key),
            _ => None,
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Partitions => f.write_str("partitions"),
            Field::ReplicationFactor => f.write_str("replication_factor"),
            Field::Config(key) => write!(f, "{CONFIG}{key}"),
            Field::Digest => f.write_str("digest"),
            Field::Path(path) => f.write_str(path),
        }
    }
}

impl From<Field> for String {
    fn from(f: Field) -> String {
        f.to_string()
    }
}

/// Read back from a saved plan. A document leaf that happens to be spelt
/// like a topic field reads back as that field; it displays the same.
impl From<String> for Field {
    fn from(s: String) -> Field {
        match s.as_str() {
            "partitions" => Field::Partitions,
            "replication_factor" => Field::ReplicationFactor,
            "digest" => Field::Digest,
            _ => match s.strip_prefix(CONFIG) {
                Some(key) => Field::Config(key.to_owned()),
                None => Field::Path(s),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_back_as_written() {
        for f in [
            Field::Partitions,
            Field::ReplicationFactor,
            Field::Config("retention.ms".into()),
            Field::Digest,
            Field::Path("topics[0].name".into()),
        ] {
            assert_eq!(Field::from(f.to_string()), f);
        }
        assert_eq!(Field::Config("a.b".into()).to_string(), "config.a.b");
    }
}
