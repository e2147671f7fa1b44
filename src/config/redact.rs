//! One redaction path for secrets, by value: the YAML is read as events
//! (whatever its shape: block scalars, flow mappings, quoted values, keys
//! misspelt), every scalar in a secret-bearing field is found by its span,
//! and snippets show `****` there. The same values are then scrubbed from
//! every message, so a value quoted back by an error does not leak either.
//!
//! A value that is exactly one reference (`${env:NAME}`, `${file:PATH}`) is
//! no secret and stays readable.

use std::borrow::Cow;
use std::collections::BTreeSet;

use granit_parser::{Event, Parser};

use super::secret::{is_secret_key, parse_reference};

/// What replaces a secret.
pub const MASK: &str = "****";

/// Fields whose every value is secret-bearing, whatever their keys: the
/// free-form client properties (`sasl.oauthbearer.config` holds a secret
/// without saying so).
const SECRET_SECTIONS: &[&str] = &["properties"];

/// Field names that hold credentials without saying so.
const CREDENTIAL_KEYS: &[&str] = &["access_key_id", "secret_access_key", "session_token"];

/// Whether a value under `path` (its keys, outermost first) is secret-bearing.
fn secret_bearing(path: &[String]) -> bool {
    path.iter().any(|k| {
        let k = k.to_ascii_lowercase();
        is_secret_key(&k) || near_secret(&k) || SECRET_SECTIONS.contains(&k.as_str())
    }) || path
        .last()
        .is_some_and(|k| CREDENTIAL_KEYS.contains(&k.to_ascii_lowercase().as_str()))
}

/// A key spelt almost like a secret one (`pasword`, `passwrd`, `secert`):
/// a typo must not be what shows the value.
fn near_secret(key: &str) -> bool {
    ["password", "secret", "token", "passphrase"]
        .iter()
        .any(|w| strsim::jaro_winkler(key, w) > 0.88)
}

/// Whether a namespace file could hold a secret-bearing field at all: most
/// cannot, and need not be read as events a second time. (The workspace,
/// where secrets live, is always read.)
pub fn may_hold_secrets(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    [
        "pas",
        "sec",
        "token",
        "jaas",
        "credential",
        "private",
        "properties",
        "key",
    ]
    .iter()
    .any(|w| lower.contains(w))
}

/// Where secrets are in one file's text: byte ranges, and the values.
#[derive(Debug, Default)]
pub struct Secrets {
    spans: Vec<(usize, usize)>,
    pub values: BTreeSet<String>,
}

/// One open collection while walking the events.
enum Frame {
    /// A mapping; the key of the value that comes next, once read.
    Map(Option<String>),
    Seq,
}

/// Finds every secret-bearing scalar of a YAML text. A text that stops
/// parsing is read up to the error; the line after it is masked by the
/// fallback in [`mask`].
pub fn find(text: &str) -> Secrets {
    let mut out = Secrets::default();
    let mut stack: Vec<Frame> = Vec::new();
    // The keys of the open mappings, outermost first (for sequences, the
    // key the sequence is under).
    let mut path: Vec<String> = Vec::new();
    for next in Parser::new_from_str(text) {
        let Ok((event, span)) = next else { break };
        match event {
            Event::MappingStart(..) => {
                stack.push(Frame::Map(None));
            }
            Event::SequenceStart(..) => stack.push(Frame::Seq),
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
                end_value(&mut stack, &mut path);
            }
            Event::Scalar(value, ..) => {
                // A key: remembered until its value ends.
                if let Some(Frame::Map(key @ None)) = stack.last_mut() {
                    *key = Some(value.to_string());
                    path.push(value.to_string());
                    continue;
                }
                let full = parse_reference(value.trim()).is_some() && is_one_reference(&value);
                if secret_bearing(&path) && !value.trim().is_empty() && !full {
                    if let (Some(a), Some(b)) = (span.start.byte_offset(), span.end.byte_offset()) {
                        out.spans.push((a, b));
                    }
                    out.values.insert(value.to_string());
                }
                end_value(&mut stack, &mut path);
            }
            _ => {}
        }
    }
    out
}

/// `${env:A}` alone, not `${env:A} and more`.
fn is_one_reference(value: &str) -> bool {
    let v = value.trim();
    v.starts_with("${") && v.ends_with('}') && v.matches("${").count() == 1
}

/// A value ended: in a mapping, its key is done.
fn end_value(stack: &mut [Frame], path: &mut Vec<String>) {
    if let Some(Frame::Map(key)) = stack.last_mut()
        && key.take().is_some()
    {
        path.pop();
    }
}

/// An endpoint as it may be shown: credentials before an `@` masked
/// (`http://****@etcd:2379`), and a query or fragment, which may carry a
/// token, left out.
pub fn endpoint(text: &str) -> String {
    let (scheme, rest) = match text.find("://") {
        Some(i) => text.split_at(i + 3),
        None => ("", text),
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}{MASK}{}", &rest[at..]),
        None => format!("{scheme}{rest}"),
    }
}

/// The text with every secret masked, line breaks kept so that lines and
/// columns of diagnostics still point where they did. Lines the event
/// reader could not reach (after a syntax error) are masked line by line.
pub fn mask(text: &str) -> String {
    let secrets = find(text);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    let mut spans = secrets.spans.clone();
    spans.sort();
    for (a, b) in spans {
        if a < at || b > text.len() || !text.is_char_boundary(a) || !text.is_char_boundary(b) {
            continue;
        }
        out.push_str(&text[at..a]);
        // Each line of a value becomes `****`; its line breaks stay.
        let lines: Vec<&str> = text[a..b].split('\n').collect();
        for (i, _) in lines.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            if i == 0 || !lines[i].trim().is_empty() {
                out.push_str(MASK);
            }
        }
        at = b;
    }
    out.push_str(&text[at..]);
    let scrubbed = scrub(&out, &secrets.values);
    scrubbed
        .split_inclusive('\n')
        .map(mask_line)
        .collect::<String>()
}

/// Every occurrence of these values replaced by the mask, longest first.
fn scrub<'a>(text: &'a str, values: &BTreeSet<String>) -> Cow<'a, str> {
    let mut values: Vec<&String> = values.iter().filter(|v| v.trim().len() >= 3).collect();
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let mut out = Cow::Borrowed(text);
    for v in values {
        if out.contains(v.as_str()) {
            out = Cow::Owned(out.replace(v.as_str(), MASK));
        }
        // A block scalar's value is its lines; each is scrubbed too.
        for line in v.lines().filter(|l| l.trim().len() >= 3) {
            if out.contains(line) {
                out = Cow::Owned(out.replace(line, MASK));
            }
        }
    }
    out
}

/// The fallback for text the event reader did not reach: `key: value` on
/// one line under a secret-looking key.
fn mask_line(line: &str) -> String {
    let body = line.trim_start().trim_start_matches("- ").trim_start();
    let Some(colon) = body.find(':') else {
        return line.to_owned();
    };
    let key = body[..colon]
        .trim()
        .trim_matches(['"', '\''])
        .to_ascii_lowercase();
    let value = body[colon + 1..].trim();
    let unquoted = value.trim_matches(['"', '\'']);
    if !(is_secret_key(&key) || near_secret(&key))
        || value.is_empty()
        || value.starts_with(['|', '>', '{', '['])
        || unquoted == MASK
        || is_one_reference(unquoted)
    {
        return line.to_owned();
    }
    let value_start = line.len() - body.len() + colon + 1;
    let newline = if line.ends_with('\n') { "\n" } else { "" };
    format!("{} {MASK}{newline}", &line[..value_start])
}

/// The secret values of a set of files, to scrub from any message.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    values: BTreeSet<String>,
}

impl Redactor {
    pub fn of<'a>(texts: impl IntoIterator<Item = &'a str>) -> Self {
        Redactor {
            values: texts.into_iter().flat_map(|t| find(t).values).collect(),
        }
    }

    /// The text with every secret value masked.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        scrub(text, &self.values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANARY: &str = "CANARY-x9";

    fn assert_masked(text: &str) {
        let masked = mask(text);
        assert!(!masked.contains(CANARY), "{text}\n--- masked:\n{masked}");
        assert_eq!(
            masked.lines().count(),
            text.lines().count(),
            "lines moved:\n{masked}"
        );
    }

    #[test]
    fn every_shape_of_a_secret_is_masked() {
        for text in [
            "sasl:\n  password: CANARY-x9\n",
            "sasl:\n  password: |\n    CANARY-x9\n  username: u\n",
            "sasl:\n  password: >-\n    CANARY-x9\n    more\n",
            "kafka: {sasl: {mechanism: PLAIN, password: CANARY-x9}}\n",
            "s3:\n  access_key_id: CANARY-x9\n",
            "s3:\n  secret_access_key: \"CANARY-x9\"\n",
            "sasl:\n  password: \"${env:X} CANARY-x9\"\n",
            "etcd:\n  pasword: CANARY-x9\n",
            "kafka:\n  properties:\n    sasl.oauthbearer.config: CANARY-x9\n",
            "kafka:\n  properties:\n    client.dns.lookup: CANARY-x9\n",
            "tls:\n  key_password: 'CANARY-x9'\n",
            "items:\n  - token: CANARY-x9\n",
            // A syntax error before it: the line fallback still masks.
            "a: [\nsasl:\n  password: CANARY-x9\n",
        ] {
            assert_masked(text);
        }
    }

    #[test]
    fn endpoints_show_no_credentials_nor_queries() {
        for (given, shown) in [
            ("http://etcd:2379", "http://etcd:2379"),
            (
                "http://root:hunter2@etcd:2379/v3",
                "http://****@etcd:2379/v3",
            ),
            (
                "https://u:p@w@s3.local/?token=abc#x",
                "https://****@s3.local/",
            ),
            ("user:secret@broker:9092", "****@broker:9092"),
            ("broker:9092", "broker:9092"),
            ("http://s3/path@not-userinfo", "http://s3/path@not-userinfo"),
        ] {
            assert_eq!(super::endpoint(given), shown, "{given}");
        }
    }

    #[test]
    fn masks_inline_secrets_and_keeps_references() {
        let text = "sasl:\n  password: hunter2\n  username: app\n  - ssl.keystore.password: \"s3cret\" # x\ntoken: ${env:TOKEN}\n";
        let masked = mask(text);
        assert!(!masked.contains("hunter2"), "{masked}");
        assert!(!masked.contains("s3cret"), "{masked}");
        assert!(masked.contains("  password: ****\n"), "{masked}");
        assert!(masked.contains("username: app"));
        assert!(masked.contains("token: ${env:TOKEN}"));
        assert_eq!(masked.lines().count(), text.lines().count());
    }

    #[test]
    fn references_and_other_values_stay_readable() {
        let text = "sasl:\n  password: ${env:KAFKA_PASSWORD}\nbrokers: 3\nretention: 7d\n";
        assert_eq!(mask(text), text);
    }

    #[test]
    fn a_value_quoted_back_in_a_message_is_scrubbed() {
        let r = Redactor::of(["sasl:\n  password: CANARY-x9\n"]);
        assert_eq!(
            r.redact("invalid type: string \"CANARY-x9\", expected a reference"),
            "invalid type: string \"****\", expected a reference"
        );
    }
}
