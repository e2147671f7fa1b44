//! A bucket policy document, as far as sluice touches it: the statements
//! whose Sid it owns are parsed; everyone else's are kept as raw text and
//! written back byte for byte.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::resource::OWNED_PREFIX;

/// A bucket policy whose statements are kept as the exact text they were
/// read as, so that statements sluice does not own are written back
/// byte-for-byte.
#[derive(Debug, Default)]
pub struct Policy {
    version: Option<String>,
    id: Option<String>,
    statements: Vec<Box<RawValue>>,
}

#[derive(Deserialize)]
struct PolicyText<'a> {
    #[serde(rename = "Version", default)]
    version: Option<String>,
    #[serde(rename = "Id", default)]
    id: Option<String>,
    #[serde(rename = "Statement", borrow)]
    statement: &'a RawValue,
}

#[derive(Serialize)]
struct PolicyOut<'a> {
    #[serde(rename = "Version")]
    version: &'a str,
    #[serde(rename = "Id", skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "Statement")]
    statement: &'a [Box<RawValue>],
}

#[derive(Deserialize)]
struct SidOnly {
    #[serde(rename = "Sid", default)]
    sid: Option<String>,
}

impl Policy {
    pub fn parse(text: &str) -> Result<Policy, serde_json::Error> {
        let doc: PolicyText = serde_json::from_str(text)?;
        let raw = doc.statement.get().trim_start();
        // IAM allows one statement object in place of a list.
        let statements = if raw.starts_with('[') {
            serde_json::from_str::<Vec<Box<RawValue>>>(raw)?
        } else {
            vec![RawValue::from_string(raw.to_owned())?]
        };
        Ok(Policy {
            version: doc.version,
            id: doc.id,
            statements,
        })
    }

    fn sid(raw: &RawValue) -> Option<String> {
        serde_json::from_str::<SidOnly>(raw.get()).ok()?.sid
    }

    /// The statements sluice owns, by Sid, as JSON.
    pub fn owned(&self) -> impl Iterator<Item = (String, serde_json::Value)> + '_ {
        self.statements.iter().filter_map(|raw| {
            let sid = Self::sid(raw).filter(|s| s.starts_with(OWNED_PREFIX))?;
            Some((sid, serde_json::from_str(raw.get()).ok()?))
        })
    }

    /// Replaces, adds or (with `None`) removes the statement `sid`, in place.
    pub fn set(&mut self, sid: &str, statement: Option<&serde_json::Value>) {
        let at = self
            .statements
            .iter()
            .position(|raw| Self::sid(raw).as_deref() == Some(sid));
        let new = statement.map(|s| {
            RawValue::from_string(s.to_string()).expect("a JSON value is valid JSON text")
        });
        match (at, new) {
            (Some(i), Some(new)) => self.statements[i] = new,
            (Some(i), None) => {
                self.statements.remove(i);
            }
            (None, Some(new)) => self.statements.push(new),
            (None, None) => {}
        }
    }

    /// Whether it holds no statement at all, anyone's.
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    pub fn to_text(&self) -> String {
        serde_json::to_string(&PolicyOut {
            version: self.version.as_deref().unwrap_or("2012-10-17"),
            id: self.id.as_deref(),
            statement: &self.statements,
        })
        .expect("a policy is JSON")
    }

    /// The statement texts, as read: for tests that foreign ones survive.
    pub fn statement_texts(&self) -> impl Iterator<Item = &str> {
        self.statements.iter().map(|s| s.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_keeps_foreign_statements_byte_for_byte() {
        let text = r#"{"Version":"2012-10-17","Statement":[ {"Sid":"Theirs", "Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::b/*"} ,{"Sid":"sluice-a","Effect":"Deny"}]}"#;
        let mut p = Policy::parse(text).unwrap();
        let theirs = p.statement_texts().next().unwrap().to_owned();
        assert_eq!(
            p.owned().map(|(s, _)| s).collect::<Vec<_>>(),
            vec!["sluice-a"]
        );
        p.set("sluice-a", None);
        p.set("sluice-b", Some(&serde_json::json!({"Sid": "sluice-b"})));
        let again = Policy::parse(&p.to_text()).unwrap();
        let texts: Vec<&str> = again.statement_texts().collect();
        assert_eq!(texts, vec![theirs.as_str(), r#"{"Sid":"sluice-b"}"#]);
    }

    #[test]
    fn a_single_statement_object_is_a_policy_too() {
        let p = Policy::parse(r#"{"Statement":{"Sid":"sluice-x","Effect":"Deny"}}"#).unwrap();
        assert_eq!(p.owned().count(), 1);
        assert!(
            p.to_text()
                .starts_with(r#"{"Version":"2012-10-17","Statement":[{"#)
        );
    }
}
