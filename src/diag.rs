//! Problems found in the config, with where they are and what to do about them.
//!
//! Every check adds to one list instead of stopping at the first problem; the
//! command renders them all, as text (through miette, with the offending line)
//! or as JSON. The sources handed to the renderer are already masked
//! ([`crate::config::redact::mask`]): diagnostics know nothing of secrets.

use std::collections::HashMap;
use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};
use serde::Serialize;

/// A 1-based line and column in a source file; `0:0` when unknown.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Loc {
    pub line: u32,
    pub column: u32,
}

impl Loc {
    pub const UNKNOWN: Loc = Loc { line: 0, column: 0 };
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// How bad a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
}

/// A place in a config file.
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
pub struct Span {
    pub file: String,
    pub line: u32,
    pub column: u32,
}

impl Span {
    pub fn new(file: &str, loc: Loc) -> Self {
        Span {
            file: file.to_owned(),
            line: loc.line,
            column: loc.column,
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}:{}", self.file, self.line, self.column)
        } else {
            f.write_str(&self.file)
        }
    }
}

/// Another place that explains a problem, such as the first of two duplicates.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Related {
    #[serde(flatten)]
    pub span: Span,
    pub message: String,
}

/// One problem.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Diagnostic {
    #[serde(flatten)]
    pub span: Option<Span>,
    pub level: Level,
    /// A stable kebab-case name of the problem class, for scripts.
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<Related>,
}

impl Diagnostic {
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            span: None,
            level: Level::Error,
            code,
            message: message.into(),
            hint: None,
            related: Vec::new(),
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            level: Level::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn at(mut self, file: &str, loc: Loc) -> Self {
        self.span = Some(Span::new(file, loc));
        self
    }

    pub fn at_span(mut self, span: &Span) -> Self {
        self.span = Some(span.clone());
        self
    }

    pub fn related_span(mut self, span: &Span, message: impl Into<String>) -> Self {
        self.related.push(Related {
            span: span.clone(),
            message: message.into(),
        });
        self
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn related(self, file: &str, loc: Loc, message: impl Into<String>) -> Self {
        self.related_span(&Span::new(file, loc), message)
    }

    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }
}

/// Sorts by place and drops exact repeats (a check run once per environment
/// finds the same problem in each).
pub fn normalize(diags: &mut Vec<Diagnostic>) {
    diags.sort();
    diags.dedup();
}

/// Renders problems for a person, each with its offending line. `sources` maps
/// a file as named in the spans to its text.
pub fn render_text(diags: &[Diagnostic], sources: &HashMap<String, String>, color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::none()
    };
    let handler = GraphicalReportHandler::new_themed(theme).with_context_lines(1);
    let mut out = String::new();
    for d in diags {
        let shown = Shown::new(d, sources);
        if handler.render_report(&mut out, &shown).is_err() {
            out.push_str(&format!("{}\n", d.message));
        }
    }
    out
}

/// A diagnostic prepared for miette: its source and labels.
#[derive(Debug)]
struct Shown<'a> {
    diag: &'a Diagnostic,
    source: Option<NamedSource<String>>,
    labels: Vec<LabeledSpan>,
    help: Option<String>,
}

impl<'a> Shown<'a> {
    fn new(diag: &'a Diagnostic, sources: &HashMap<String, String>) -> Self {
        let mut help = diag.hint.clone();
        let mut notes = Vec::new();
        let mut labels = Vec::new();
        let mut source = None;
        if let Some(span) = diag.span.as_ref().filter(|s| s.line > 0)
            && let Some(text) = sources.get(&span.file)
        {
            let masked = text.clone();
            labels.push(LabeledSpan::new_primary_with_span(
                None,
                token_span(&masked, span.line, span.column),
            ));
            for r in &diag.related {
                if r.span.file == span.file && r.span.line > 0 {
                    labels.push(LabeledSpan::new_with_span(
                        Some(r.message.clone()),
                        token_span(&masked, r.span.line, r.span.column),
                    ));
                } else {
                    notes.push(format!("{} at {}", r.message, r.span));
                }
            }
            source = Some(NamedSource::new(&span.file, masked).with_language("yaml"));
        } else {
            if let Some(span) = &diag.span {
                notes.insert(0, format!("in {span}"));
            }
            notes.extend(
                diag.related
                    .iter()
                    .map(|r| format!("{} at {}", r.message, r.span)),
            );
        }
        if !notes.is_empty() {
            let joined = notes.join("; ");
            help = Some(match help {
                Some(h) => format!("{h}\n{joined}"),
                None => joined,
            });
        }
        Shown {
            diag,
            source,
            labels,
            help,
        }
    }
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diag.message)
    }
}

impl std::error::Error for Shown<'_> {}

impl miette::Diagnostic for Shown<'_> {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diag.level {
            Level::Error => miette::Severity::Error,
            Level::Warning => miette::Severity::Warning,
        })
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.clone().into_iter()))
        }
    }
}

/// The span of the token at a 1-based line and (character) column: a quoted
/// string up to its closing quote, or a plain value up to a comment or the end
/// of the line.
fn token_span(text: &str, line: u32, column: u32) -> SourceSpan {
    let Some((line_start, line_text)) = text
        .split_inclusive('\n')
        .scan(0usize, |offset, l| {
            let start = *offset;
            *offset += l.len();
            Some((start, l))
        })
        .nth(line.saturating_sub(1) as usize)
    else {
        return SourceSpan::from((text.len(), 0));
    };
    let line_text = line_text.trim_end_matches(['\n', '\r']);
    let col = line_text
        .char_indices()
        .nth(column.saturating_sub(1) as usize)
        .map_or(line_text.len(), |(i, _)| i);
    let rest = &line_text[col..];
    let len = match rest.chars().next() {
        Some(q @ ('"' | '\'')) => rest[1..].find(q).map_or(rest.len(), |i| i + 2),
        _ => {
            let end = rest.find(" #").unwrap_or(rest.len());
            rest[..end].trim_end().len()
        }
    };
    SourceSpan::from((line_start + col, len.max(1)))
}

/// An error and its causes, on one line.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Names in backticks, separated by commas: `` `a`, `b` ``.
pub fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_spans_cover_the_value() {
        let text = "a: 1\nname: \"orders\" # c\nretention: 7dd   # typo\n";
        assert_eq!(token_span(text, 2, 7), SourceSpan::from((11, 8)));
        assert_eq!(token_span(text, 3, 12), SourceSpan::from((35, 3)));
    }

    #[test]
    fn rendered_text_names_the_place_and_the_hint() {
        let mut sources = HashMap::new();
        sources.insert("ns.yaml".to_owned(), "spec:\n  retention: 7dd\n".to_owned());
        let d = Diagnostic::error("duration", "invalid duration `7dd`")
            .at(
                "ns.yaml",
                Loc {
                    line: 2,
                    column: 14,
                },
            )
            .hint("write `7d`");
        let out = render_text(&[d], &sources, false);
        assert!(out.contains("ns.yaml:2:14"), "{out}");
        assert!(out.contains("retention: 7dd"), "{out}");
        assert!(out.contains("write `7d`"), "{out}");
    }
}
