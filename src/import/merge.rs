//! `import --namespace NS --merge`: live topics of a namespace that its file
//! does not declare (a topic someone made by hand), added to the end of its
//! `spec.topics` list as text, so that every other byte of the file, its
//! comments included, stays as it was. The place comes from the parser's
//! spans; the result is parsed again and must read as the old file plus the
//! new entries, or nothing is written.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

use super::{Estate, TopicEntry, group, topic_spec};
use crate::config::Namespace;
use crate::config::parse::{Doc, parse_documents, split_documents};
use crate::desired::NamespaceState;
use crate::source::SourceFile;

/// Why topics cannot be added to a namespace file.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// The config was read from Git, where there is no file to edit.
    #[error(
        "`--merge` edits a namespace file in a working tree (`--repo`), not one read with `--git`"
    )]
    NotWorkingTree,
    /// No document declares the namespace for the environment.
    #[error("no namespace file declares `{0}` for this environment")]
    NotDeclared(String),
    /// The namespace has no `spec.topics` list to add to.
    #[error(
        "`{file}`: namespace `{namespace}` has no `spec.topics` list to add to; add `topics:` with its own topic (`- name: {namespace}`) and merge again"
    )]
    NoTopicsList { file: String, namespace: String },
    /// The list is not written one `- ` entry per line, so where an entry
    /// ends cannot be told from the text.
    #[error(
        "`{file}` line {line}: the topics of `{namespace}` are not a block list (one `- name: …` entry per line), so sluice cannot add to it without rewriting it; write the list in block style and merge again"
    )]
    Shape {
        file: String,
        namespace: String,
        line: u32,
    },
    /// The edited file does not read back as the old one plus the new
    /// entries: nothing is written.
    #[error(
        "`{file}`: adding the topics would not leave the rest of the file as it is ({why}); nothing was written. Add them by hand"
    )]
    Verify { file: String, why: String },
}

/// The settings a namespace gives each topic, as topic configs: what a new
/// entry need not repeat.
pub fn base_of(ns: &NamespaceState) -> BTreeMap<String, String> {
    let mut base = BTreeMap::new();
    if let Some(ms) = ns.retention_ms {
        base.insert("retention.ms".to_owned(), ms.to_string());
    }
    if let Some(c) = ns.compression {
        base.insert("compression.type".to_owned(), c.kafka_value().to_owned());
    }
    if let Some(b) = ns.max_message_bytes {
        base.insert("max.message.bytes".to_owned(), b.to_string());
    }
    base
}

/// The `spec.topics` entries of the live topics of namespace `ns` (by its
/// registry record, or by name) that no namespace declares: a DLQ folds into
/// its topic's `dlq: true` when both are new.
pub fn new_topics(
    estate: &Estate,
    ns: &str,
    declared: &BTreeSet<String>,
    base: &BTreeMap<String, String>,
) -> Vec<TopicEntry> {
    let mine: BTreeSet<String> = group(estate)
        .remove(ns)
        .unwrap_or_default()
        .into_iter()
        .filter(|t| !declared.contains(t))
        .collect();
    mine.iter()
        .filter(|t| !super::settings::is_folded_dlq(t, &mine))
        .map(|t| topic_spec(t, &estate.topics[t], &mine, base))
        .collect()
}

/// `file`'s text with `entries` appended to the `spec.topics` list of
/// `doc`, checked by parsing it again.
pub fn insert_topics(
    file: &SourceFile,
    doc: &Doc<Namespace>,
    entries: &[TopicEntry],
) -> Result<String, MergeError> {
    let namespace = doc.value.metadata.name.value.clone();
    let shape = |line| MergeError::Shape {
        file: file.path.clone(),
        namespace: namespace.clone(),
        line,
    };
    let topics = match &doc.value.spec.topics {
        None => {
            return Err(MergeError::NoTopicsList {
                file: file.path.clone(),
                namespace,
            });
        }
        Some(t) => t,
    };
    let last = topics
        .last()
        .ok_or_else(|| shape(doc.value.metadata.name.loc.line))?;
    let lines: Vec<&str> = file.text.split_inclusive('\n').collect();
    let at = last.loc.line as usize;
    let dash = lines
        .get(at.wrapping_sub(1))
        .and_then(|l| dash_column(l, last.loc.column as usize))
        .ok_or_else(|| shape(last.loc.line))?;
    let end = item_end(&lines, at, dash).ok_or_else(|| shape(last.loc.line))?;
    let offset: usize = lines[..end].iter().map(|l| l.len()).sum();
    let newline = if file.text.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let mut inserted = String::new();
    if !file.text[..offset].ends_with('\n') {
        inserted.push_str(newline);
    }
    for entry in entries {
        let yaml = serde_saphyr::to_string(&[entry]).expect("an entry is YAML");
        for line in yaml.lines() {
            inserted.push_str(&" ".repeat(dash));
            inserted.push_str(line);
            inserted.push_str(newline);
        }
    }
    let text = format!("{}{inserted}{}", &file.text[..offset], &file.text[offset..]);
    verify(file, &text, &namespace, entries)?;
    Ok(text)
}

/// The 0-based column of the `-` that opens a block sequence entry whose
/// content the parser places at 1-based `column` of `line`: `- name: x`,
/// with only spaces before the dash.
fn dash_column(line: &str, column: usize) -> Option<usize> {
    let before: String = line.chars().take(column.saturating_sub(1)).collect();
    let trimmed = before.trim_end_matches(' ');
    let (indent, rest) = trimmed.split_at(trimmed.len() - trimmed.trim_start_matches(' ').len());
    if rest == "-" && trimmed.len() < before.len() {
        return Some(indent.len());
    }
    // The parser placed the entry at its dash.
    let here = line.chars().nth(column.saturating_sub(1))?;
    (here == '-' && before.chars().all(|c| c == ' ')).then_some(before.len())
}

/// The line after the last one of the entry starting at 1-based line `at`:
/// its lines are those indented past its dash (and blank ones between
/// them). `None` where the indentation cannot be read (a tab).
fn item_end(lines: &[&str], at: usize, dash: usize) -> Option<usize> {
    let mut end = at;
    for (i, line) in lines.iter().enumerate().skip(at) {
        let body = line.trim_end_matches(['\n', '\r']);
        if body.trim().is_empty() {
            continue;
        }
        let indent = body.len() - body.trim_start_matches([' ', '\t']).len();
        if body[..indent].contains('\t') {
            return None;
        }
        if indent <= dash {
            break;
        }
        end = i + 1;
    }
    Some(end)
}

/// Checks that `text` reads as `file` with `entries` at the end of the
/// namespace's topics: the same documents, the same values elsewhere, and
/// a namespace that still validates.
fn verify(
    file: &SourceFile,
    text: &str,
    namespace: &str,
    entries: &[TopicEntry],
) -> Result<(), MergeError> {
    let entries: Vec<Json> = entries
        .iter()
        .map(|e| serde_json::to_value(e).expect("an entry is JSON"))
        .collect();
    let fail = |why: String| MergeError::Verify {
        file: file.path.clone(),
        why,
    };
    let docs = |text: &str| -> Result<Vec<Json>, String> {
        split_documents(text)
            .into_iter()
            .map(|r| &text[r])
            .filter(|d| !d.trim().is_empty())
            .map(|d| serde_saphyr::from_str::<Option<Json>>(d).map(Option::unwrap_or_default))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())
    };
    let before = docs(&file.text).map_err(&fail)?;
    let mut after = docs(text).map_err(&fail)?;
    if before.len() != after.len() {
        return Err(fail("the number of documents changed".into()));
    }
    let mut found = false;
    for (old, new) in before.iter().zip(&mut after) {
        if old["metadata"]["name"] == namespace && old["kind"] == "Namespace" {
            let list = new["spec"]["topics"].as_array_mut();
            let added =
                list.and_then(|l| l.len().checked_sub(entries.len()).map(|n| l.split_off(n)));
            if added.as_deref() != Some(&entries[..]) {
                return Err(fail("the new entries do not read back as written".into()));
            }
            found = true;
        }
        if old != new {
            return Err(fail("other values changed".into()));
        }
    }
    if !found {
        return Err(fail(format!("no document of namespace `{namespace}`")));
    }
    let mut diags = Vec::new();
    let edited = SourceFile {
        path: file.path.clone(),
        text: text.to_owned(),
    };
    parse_documents::<Namespace>(&edited, &mut diags);
    match diags.iter().find(|d| d.is_error()) {
        Some(d) => Err(fail(d.message.clone())),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> (SourceFile, Doc<Namespace>) {
        let file = SourceFile {
            path: "namespaces/shop.yaml".into(),
            text: text.into(),
        };
        let mut diags = Vec::new();
        let mut docs = parse_documents::<Namespace>(&file, &mut diags);
        assert!(diags.iter().all(|d| !d.is_error()), "{diags:#?}");
        let doc = docs
            .drain(..)
            .find(|d| d.value.metadata.name.value == "shop")
            .unwrap();
        (file, doc)
    }

    fn entry(name: &str) -> TopicEntry {
        TopicEntry {
            name: name.into(),
            partitions: 2,
            replication_factor: 1,
            config: [("retention.ms".to_owned(), "86400000".to_owned())].into(),
            dlq: false,
        }
    }

    const FILE: &str = "\
# The shop's namespace. Keep this comment.
apiVersion: sluice/v1
kind: Namespace
metadata:
  name: shop   # inline comment
spec:
  retention: 7d
  topics:
    # orders first
    - name: shop.orders
      partitions: 3   # three

    - name: shop.state
      config:
        cleanup.policy: compact
      # a comment inside the last entry
  # a comment after the list, before consumers
  consumers:
    - group: fulfilment
---
apiVersion: sluice/v1
kind: Namespace
metadata:
  name: other
";

    #[test]
    fn an_entry_goes_after_the_last_topic_and_every_other_byte_stays() {
        let (file, doc) = doc(FILE);
        let text = insert_topics(&file, &doc, &[entry("shop.manual")]).unwrap();
        let at = FILE.find("  # a comment after the list").unwrap();
        assert_eq!(&text[..at], &FILE[..at], "the text before stays");
        assert!(text.ends_with(&FILE[at..]), "the text after stays:\n{text}");
        let added = &text[at..text.len() - (FILE.len() - at)];
        assert_eq!(
            added,
            "    - name: shop.manual\n      partitions: 2\n      replication_factor: 1\n      config:\n        retention.ms: \"86400000\"\n",
            "{text}"
        );
    }

    #[test]
    fn a_flow_list_or_no_list_is_refused() {
        let flow = "apiVersion: sluice/v1\nkind: Namespace\nmetadata:\n  name: shop\nspec:\n  topics: [{name: a}, {name: b}]\n";
        let (file, d) = doc(flow);
        let err = insert_topics(&file, &d, &[entry("shop.manual")]).unwrap_err();
        assert!(matches!(err, MergeError::Shape { .. }), "{err}");
        let none = "apiVersion: sluice/v1\nkind: Namespace\nmetadata:\n  name: shop\n";
        let (file, d) = doc(none);
        let err = insert_topics(&file, &d, &[entry("shop.manual")]).unwrap_err();
        assert!(err.to_string().contains("add `topics:`"), "{err}");
    }

    #[test]
    fn crlf_files_and_a_missing_last_newline_stay_as_they_are() {
        let text = "apiVersion: sluice/v1\r\nkind: Namespace\r\nmetadata:\r\n  name: shop\r\nspec:\r\n  topics:\r\n  - name: a";
        let (file, d) = doc(text);
        let out = insert_topics(&file, &d, &[entry("b")]).unwrap();
        assert_eq!(
            out,
            format!(
                "{text}\r\n  - name: b\r\n    partitions: 2\r\n    replication_factor: 1\r\n    config:\r\n      retention.ms: \"86400000\"\r\n"
            )
        );
    }
}
