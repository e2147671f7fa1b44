//! YAML text to typed documents, strictly: unknown fields, duplicate keys and
//! wrong types are problems with a location. A broken document is reported and
//! skipped; the other documents and files are still read, so one run reports
//! everything.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_saphyr::MessageFormatter;

use super::{Loc, Namespace, Workspace, shape};
use crate::diag::Diagnostic;
use crate::source::{SourceFile, SourceTree, WORKSPACE_FILE};

/// A document, the file it came from and that file's text.
#[derive(Clone, Debug)]
pub struct Doc<T> {
    pub file: String,
    pub text: Arc<str>,
    pub value: T,
}

impl<T> Doc<T> {
    /// The 1-based column of byte `offset` inside the scalar that starts at
    /// `loc`, stepping over an opening quote.
    pub fn column_in_value(&self, loc: Loc, offset: usize) -> Loc {
        let Some(line) = self.text.lines().nth(loc.line.saturating_sub(1) as usize) else {
            return loc;
        };
        let rest: String = line
            .chars()
            .skip(loc.column.saturating_sub(1) as usize)
            .collect();
        let quoted = rest.starts_with(['"', '\'']);
        let body = &rest[usize::from(quoted)..];
        let chars = body
            .get(..offset.min(body.len()))
            .map_or(0, |s| s.chars().count());
        Loc {
            line: loc.line,
            column: loc.column + u32::from(quoted) + u32::try_from(chars).unwrap_or(0),
        }
    }
}

/// Every document that parsed.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    pub workspace: Option<Doc<Workspace>>,
    pub namespaces: Vec<Doc<Namespace>>,
    /// From only some namespace files ([`SourceTree::partial`]).
    pub partial: bool,
}

/// Parses the workspace and every namespace document, adding a diagnostic for
/// each document that does not parse.
pub fn parse_tree(tree: &SourceTree, diags: &mut Vec<Diagnostic>) -> Parsed {
    let mut parsed = Parsed {
        partial: tree.partial,
        ..Parsed::default()
    };
    for link in &tree.links {
        diags.push(
            Diagnostic::error(
                "symlink",
                format!(
                    "`{link}` is a symbolic link; sluice never follows links in a config repository"
                ),
            )
            .at(link, Loc::UNKNOWN)
            .hint("replace the link with the file (or directory) itself"),
        );
    }
    let workspace_is_a_link = tree.links.iter().any(|l| l.ends_with(WORKSPACE_FILE));
    match &tree.workspace {
        None if workspace_is_a_link => {}
        None => diags.push(
            Diagnostic::error("no-workspace", format!("no `{WORKSPACE_FILE}` found"))
                .hint("run sluice at the root of a config repository (or pass `--repo DIR`); it needs a `sluice.yaml` with `kind: Workspace`"),
        ),
        Some(file) => {
            let mut docs = parse_documents::<Workspace>(file, diags).into_iter();
            parsed.workspace = docs.next();
            if docs.next().is_some() {
                diags.push(
                    Diagnostic::error("several-workspaces", format!("`{}` holds more than one document", file.path))
                        .hint("keep exactly one `kind: Workspace` document in sluice.yaml"),
                );
            }
        }
    }
    let (namespaces, found) = parse_namespaces(&tree.namespaces);
    parsed.namespaces = namespaces;
    diags.extend(found);
    for path in &tree.ignored {
        diags.push(
            Diagnostic::warning(
                "ignored-file",
                format!("`{path}` is not read: sluice reads namespace files ending in `.yaml` or `.yml`, in lower case"),
            )
            .at(path, Loc::UNKNOWN)
            .hint("rename it to end in `.yaml`, or move it out of `namespaces/`"),
        );
    }
    for path in &tree.stray {
        diags.push(
            Diagnostic::warning(
                "ignored-file",
                format!("`{path}` is not read: sluice reads `sluice.yaml` and the files under `namespaces/`"),
            )
            .at(path, Loc::UNKNOWN)
            .hint("move a namespace file under `namespaces/`; the workspace is `sluice.yaml` at the root"),
        );
    }
    parsed
}

/// Parses each document of a (possibly multi-document) file on its own, so a
/// broken document does not hide problems in the next one.
pub fn parse_documents<T: DeserializeOwned + JsonSchema>(
    file: &SourceFile,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Doc<T>> {
    let shared: Arc<str> = Arc::from(file.text.as_str());
    let mut docs = Vec::new();
    for chunk in split_documents(&file.text) {
        if is_blank(&file.text[chunk.clone()]) {
            continue;
        }
        // Blank lines in front keep the parser's line numbers those of the file.
        let lines_before = file.text[..chunk.start].matches('\n').count();
        let mut text = "\n".repeat(lines_before);
        text.push_str(&file.text[chunk]);
        let options = serde_saphyr::options! { with_snippet: false };
        match serde_saphyr::from_str_with_options::<T>(&text, options) {
            Ok(value) => docs.push(Doc {
                file: file.path.clone(),
                text: shared.clone(),
                value,
            }),
            Err(err) => {
                let first = tab_problem(&file.path, &file.text, &err)
                    .unwrap_or_else(|| yaml_problem(&file.path, &err));
                // Serde stops at its first problem; the schema finds them all.
                let all = shape::problems::<T>(&file.path, &text);
                // Serde and the schema place one problem differently: a missing
                // field at the last key read or at its mapping, a wrong type at
                // the key or at the value. Keep the schema's, which names more.
                let line = |d: &Diagnostic| d.span.as_ref().map(|s| s.line);
                let same = |d: &Diagnostic| {
                    d.span == first.span
                        || (d.code == first.code
                            && (d.message == first.message || line(d) == line(&first)))
                };
                if !all.iter().any(same) {
                    diags.push(first);
                }
                diags.extend(all);
            }
        }
    }
    docs
}

/// The namespace documents of `files` and their diagnostics, in file order;
/// the files are split among the cores.
pub fn parse_namespaces(files: &[SourceFile]) -> (Vec<Doc<Namespace>>, Vec<Diagnostic>) {
    let parse = |files: &[SourceFile]| {
        let (mut docs, mut diags) = (Vec::new(), Vec::new());
        for file in files {
            // A file of nothing is ignored, and says so: with an inventory, a
            // namespace whose file was emptied becomes planned deletes.
            if is_blank(&file.text) {
                diags.push(
                    Diagnostic::warning(
                        "empty-file",
                        format!("`{}` holds no document; it is ignored", file.path),
                    )
                    .at(&file.path, Loc::UNKNOWN)
                    .hint("write a `kind: Namespace` document in it, or delete the file"),
                );
                continue;
            }
            docs.extend(parse_documents::<Namespace>(file, &mut diags));
        }
        (docs, diags)
    };
    let (mut docs, mut diags) = (Vec::new(), Vec::new());
    for (d, g) in crate::par::map_chunks(files, 64, parse) {
        docs.extend(d);
        diags.extend(g);
    }
    (docs, diags)
}

/// Byte ranges of the documents of a YAML stream: each `---` at the start of
/// a line begins one. (A `---` line cannot occur inside a block scalar, which
/// is indented, nor inside a flow scalar, where YAML forbids it.)
pub(crate) fn split_documents(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut starts = vec![0];
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let marker = line
            .strip_prefix("---")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']));
        if marker && offset > 0 {
            starts.push(offset);
        }
        offset += line.len();
    }
    let mut ranges: Vec<_> = starts.windows(2).map(|w| w[0]..w[1]).collect();
    ranges.push(*starts.last().unwrap_or(&0)..text.len());
    ranges
}

/// Whether a document holds nothing but markers, comments and blank lines.
fn is_blank(doc: &str) -> bool {
    doc.lines().all(|l| {
        let l = l.trim();
        l.is_empty() || l.starts_with('#') || l == "---" || l == "..." || l.starts_with("--- #")
    })
}

/// A diagnostic for a document serde-saphyr rejected, with a hint by kind.
/// A tab where YAML wants spaces, at the tab itself: the parser reports the
/// place it noticed, which may be a column or a line past it.
fn tab_problem(file: &str, text: &str, err: &serde_saphyr::Error) -> Option<Diagnostic> {
    if !err.to_string().contains("tab") {
        return None;
    }
    let at = err.location().map(Loc::from)?;
    let lines: Vec<&str> = text.lines().collect();
    let reported = at.line.checked_sub(1)? as usize;
    // The reported line first, then the one before it, then the one after.
    let tab = [Some(reported), reported.checked_sub(1), Some(reported + 1)]
        .into_iter()
        .flatten()
        .find_map(|n| {
            let column = lines.get(n)?.find('\t')?;
            Some(Loc {
                line: n as u32 + 1,
                column: lines[n][..column].chars().count() as u32 + 1,
            })
        })?;
    Some(
        Diagnostic::error("yaml-syntax", "a tab character where YAML allows only spaces")
            .at(file, tab)
            .hint(format!(
                "YAML indents with spaces only: replace the tab at line {}, column {} with spaces (editors may show it as spaces)",
                tab.line, tab.column
            )),
    )
}

fn yaml_problem(file: &str, err: &serde_saphyr::Error) -> Diagnostic {
    let err = err.without_snippet();
    let message = serde_saphyr::UserMessageFormatter
        .format_message(err)
        .escape_debug()
        .to_string();
    let loc = err.location().map(Loc::from).unwrap_or(Loc::UNKNOWN);
    let syntax = matches!(err, serde_saphyr::Error::ExternalMessage { source, .. }
        if matches!(**source, serde_saphyr::ExternalMessageSource::Parser(_)));
    let (code, message, hint) = if syntax {
        (
            "yaml-syntax",
            message,
            "this is not valid YAML: check quotes, brackets and indentation here".to_owned(),
        )
    } else {
        classify(message)
    };
    Diagnostic::error(code, message).at(file, loc).hint(hint)
}

/// The problem class, a message and a hint, from serde's and serde-saphyr's wording.
fn classify(message: String) -> (&'static str, String, String) {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let hint = suggest(
            rest,
            "remove it, or check its spelling; `sluice schema namespace` (or `workspace`) lists every field",
        );
        return ("unknown-field", message, hint);
    }
    if message.starts_with("unknown variant `Workspace`") {
        let hint = "a Workspace belongs in `sluice.yaml` at the repository root; files under `namespaces/` hold `kind: Namespace`";
        return ("wrong-kind", message, hint.into());
    }
    if message.starts_with("unknown variant `Namespace`") {
        let hint = "namespaces belong in `namespaces/**/*.yaml`; `sluice.yaml` holds the one `kind: Workspace`";
        return ("wrong-kind", message, hint.into());
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let hint = suggest(rest, "use one of the listed values");
        return ("unknown-value", message, hint);
    }
    if message.starts_with("missing field") {
        return (
            "missing-field",
            message,
            "add the field; `sluice schema namespace` (or `workspace`) lists what each kind needs"
                .into(),
        );
    }
    if message.contains("duplicate") {
        return (
            "duplicate-key",
            message,
            "a key may appear only once in a mapping; remove or merge the repeats".into(),
        );
    }
    // serde-saphyr says `invalid u64` where people want to read what was expected.
    let plain = match message
        .strip_prefix("invalid ")
        .map(|t| t.trim_end_matches(':'))
    {
        Some("u8" | "u16" | "u32" | "u64" | "i32" | "i64") => Some("a whole number"),
        Some("f32" | "f64") => Some("a number"),
        Some("bool" | "boolean") => Some("`true` or `false`"),
        _ => None,
    };
    match plain {
        Some(want) => (
            "wrong-type",
            format!("expected {want}"),
            format!("this field takes {want}"),
        ),
        None => (
            "wrong-type",
            message,
            "check the value against `sluice schema namespace` (or `workspace`)".into(),
        ),
    }
}

/// "did you mean `x`?" for "`typo`, expected one of a, b" (names may be in backticks).
fn suggest(rest: &str, fallback: &str) -> String {
    let Some((got, tail)) = rest.split_once('`') else {
        return fallback.into();
    };
    let Some((_, expected)) = tail.split_once("expected") else {
        return fallback.into();
    };
    let candidates: Vec<&str> = expected
        .trim_start_matches(" one of")
        .split([',', ' ', '`'])
        .filter(|c| !c.is_empty() && *c != "or")
        .collect();
    suggest_among(got, &candidates).unwrap_or_else(|| fallback.into())
}

/// "did you mean `x`?" for the candidate closest to `got`, if one is close.
pub fn suggest_among(got: &str, candidates: &[impl AsRef<str>]) -> Option<String> {
    closest_among(got, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// The candidate closest to `got`, if one is close.
pub fn closest_among<'a>(got: &str, candidates: &'a [impl AsRef<str>]) -> Option<&'a str> {
    // Case is ignored: `GZIP` is a typo of `gzip`.
    let got = got.to_lowercase();
    candidates
        .iter()
        .map(|c| {
            (
                strsim::jaro_winkler(&got, &c.as_ref().to_lowercase()),
                c.as_ref(),
            )
        })
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_at_markers_only() {
        let text = "a: 1\n---\nb: |\n  ---\n--- # c\nc: 3\n";
        let docs: Vec<_> = split_documents(text)
            .into_iter()
            .map(|r| &text[r])
            .collect();
        assert_eq!(
            docs,
            vec!["a: 1\n", "---\nb: |\n  ---\n", "--- # c\nc: 3\n"]
        );
        assert_eq!(split_documents("---\na: 1\n").len(), 1);
    }

    #[test]
    fn suggests_the_closest_field() {
        assert_eq!(
            suggest("retension`, expected one of `capacity`, `retention`", "x"),
            "did you mean `retention`?"
        );
        assert_eq!(
            suggest(
                "retension`, expected one of capacity, retention, topics",
                "x"
            ),
            "did you mean `retention`?"
        );
        assert_eq!(
            suggest("zzz`, expected one of `capacity`", "fallback"),
            "fallback"
        );
    }
}
