//! Secret references: `${env:NAME}` or `${file:PATH}`, never the secret itself.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize, Serializer};

use super::located::{Loc, Located};
use super::scalar::Scalar;

/// Where a secret is read from at connection time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

/// A field that must hold a reference to a secret. Whatever was written, it
/// never prints, serializes or debug-formats an inline value.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct SecretRef(Located<Scalar>);

/// Shown instead of a value that should have been a reference.
pub const REDACTED: &str = "<redacted>";

impl SecretRef {
    pub fn loc(&self) -> Loc {
        self.0.loc
    }

    /// The reference, or `None` when the field holds an inline value.
    pub fn source(&self) -> Option<SecretSource> {
        parse_reference(&self.0.value.0)
    }

    /// The reference as written, or [`REDACTED`] for an inline value.
    pub fn display(&self) -> &str {
        match self.source() {
            Some(_) => &self.0.value.0,
            None => REDACTED,
        }
    }
}

/// Whether a key (a config field or a client property) names a secret, so
/// that an inline value under it must be a reference, and is never shown.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "jaas",
        "credential",
        "private",
    ]
    .iter()
    .any(|w| k.contains(w))
        || k.ends_with("key.pem")
}

/// Parses `${env:NAME}` or `${file:PATH}`.
pub fn parse_reference(text: &str) -> Option<SecretSource> {
    let inner = text.trim().strip_prefix("${")?.strip_suffix('}')?;
    let (scheme, rest) = inner.split_once(':')?;
    if rest.is_empty() {
        return None;
    }
    match scheme {
        "env" if rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            Some(SecretSource::Env(rest.to_owned()))
        }
        "file" => Some(SecretSource::File(PathBuf::from(rest))),
        _ => None,
    }
}

/// A secret reference that could not be read. Names the reference, never a value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// A secret-bearing field holds a value instead of a reference.
    #[error("`{field}` holds an inline secret; write `${{env:NAME}}` or `${{file:PATH}}`")]
    Inline { field: String },
    /// `${env:NAME}` names a variable that is not set.
    #[error("secret `{reference}` for `{field}`: the environment variable is not set")]
    MissingEnv { field: String, reference: String },
    /// `${file:PATH}` names a file that cannot be read.
    #[error("secret `{reference}` for `{field}`: cannot read the file")]
    File {
        field: String,
        reference: String,
        #[source]
        source: std::io::Error,
    },
}

impl SecretRef {
    /// Reads the secret, when connecting. `field` names it in errors.
    pub fn resolve(&self, field: &str) -> Result<String, SecretError> {
        resolve(&self.0.value.0, field)?.ok_or_else(|| SecretError::Inline {
            field: field.to_owned(),
        })
    }
}

/// Reads the secret a value refers to; `None` when the value is no reference.
pub fn resolve(value: &str, field: &str) -> Result<Option<String>, SecretError> {
    let reference = value.trim().to_owned();
    match parse_reference(value) {
        None => Ok(None),
        Some(SecretSource::Env(name)) => {
            std::env::var(&name)
                .map(Some)
                .map_err(|_| SecretError::MissingEnv {
                    field: field.to_owned(),
                    reference,
                })
        }
        Some(SecretSource::File(path)) => std::fs::read_to_string(&path)
            .map(|s| Some(s.trim_end_matches(['\n', '\r']).to_owned()))
            .map_err(|source| SecretError::File {
                field: field.to_owned(),
                reference,
                source,
            }),
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretRef({})", self.display())
    }
}

impl Serialize for SecretRef {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.display())
    }
}

impl JsonSchema for SecretRef {
    fn schema_name() -> Cow<'static, str> {
        "SecretRef".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": r"^\$\{(env:[A-Za-z0-9_]+|file:.+)\}$",
            "description": "A reference to a secret, `${env:NAME}` or `${file:PATH}`; inline secrets are rejected."
        })
    }
}

/// The problem of a secret written inline at `field` (a dotted path); the
/// value itself is never quoted.
pub fn inline_secret(field: &str) -> crate::diag::Diagnostic {
    crate::diag::Diagnostic::error("inline-secret", format!("`{field}` holds an inline secret"))
        .hint("secrets are never written in the config: store it in an environment variable or a file and write `${env:NAME}` or `${file:PATH}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(text: &str) -> SecretRef {
        SecretRef(Located::new(Scalar(text.into()), Loc::UNKNOWN))
    }

    #[test]
    fn references_parse() {
        assert_eq!(
            parse_reference("${env:KAFKA_PASSWORD}"),
            Some(SecretSource::Env("KAFKA_PASSWORD".into()))
        );
        assert_eq!(
            parse_reference("${file:/run/secrets/etcd}"),
            Some(SecretSource::File("/run/secrets/etcd".into()))
        );
        assert_eq!(parse_reference("${env:}"), None);
        assert_eq!(parse_reference("${env:A-B}"), None);
        assert_eq!(parse_reference("${vault:x}"), None);
        assert_eq!(parse_reference("hunter2"), None);
    }

    #[test]
    fn references_resolve_at_connection_time() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "from-file\n").unwrap();
        let by_file = secret(&format!("${{file:{}}}", file.display()));
        assert_eq!(by_file.resolve("etcd.password").unwrap(), "from-file");
        let missing = secret("${env:SLUICE_TEST_SURELY_UNSET}")
            .resolve("kafka.sasl.password")
            .unwrap_err();
        assert_eq!(
            missing.to_string(),
            "secret `${env:SLUICE_TEST_SURELY_UNSET}` for `kafka.sasl.password`: the environment variable is not set"
        );
        assert!(
            !secret("hunter2")
                .resolve("x")
                .unwrap_err()
                .to_string()
                .contains("hunter2")
        );
        assert_eq!(resolve("plain", "x").unwrap(), None);
    }

    #[test]
    fn inline_values_never_print() {
        let s = secret("hunter2");
        assert_eq!(s.display(), REDACTED);
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!serde_json::to_string(&s).unwrap().contains("hunter2"));
        assert_eq!(secret("${env:X}").display(), "${env:X}");
    }
}
