//! Alert conditions compiled to PromQL.
//!
//! Each metric of the condition language maps to a PromQL template; the
//! workspace overrides any of them under `spec.metrics`, and adds its own.
//! Templates name the namespace's subjects with placeholders:
//!
//! | Placeholder    | Becomes                                             |
//! |----------------|-----------------------------------------------------|
//! | `$namespace`   | the namespace name                                  |
//! | `$topics`      | a regex matching every topic of the namespace       |
//! | `$dlq_topics`  | a regex matching its dead-letter topics             |
//! | `$groups`      | a regex matching its declared consumer groups       |
//!
//! Durations compile to seconds and percentages to ratios, as Prometheus
//! measures them; `capacity` and `rpo` become the namespace's own numbers.

use std::collections::BTreeMap;

use crate::config::condition::{ArithOp, Condition, Expr, METRICS, PLACEHOLDERS, Reference};

/// Labels sluice sets on every rule; an alert's own labels may not replace them.
pub const RESERVED_LABELS: &[&str] = &["namespace", "owner", "severity", "tier"];

/// A valid Prometheus label (and metric) name: `[a-zA-Z_][a-zA-Z0-9_]*`,
/// which is also how the condition language spells a metric.
pub fn is_prometheus_name(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What a namespace's templates are filled with.
#[derive(Clone, Debug, Default)]
pub struct Subjects<'a> {
    pub namespace: &'a str,
    pub topics: Vec<&'a str>,
    pub dlq_topics: Vec<&'a str>,
    pub groups: Vec<&'a str>,
}

/// The namespace's own numbers that `capacity`, `rpo` and friends stand for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Refs {
    pub write_capacity: Option<u64>,
    pub read_capacity: Option<u64>,
    pub rpo_ms: Option<u64>,
}

/// Why a condition cannot be compiled for its namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompileError {
    pub message: String,
    pub hint: String,
}

/// A placeholder a template uses that does not exist, at a byte offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub placeholder: String,
}

/// The placeholders of a template, with their offsets.
fn placeholders(template: &str) -> impl Iterator<Item = (usize, &str)> {
    template.match_indices('$').map(move |(at, _)| {
        let rest = &template[at + 1..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        (at, &rest[..len])
    })
}

/// Checks that a template only uses known placeholders.
pub fn check_template(template: &str) -> Result<(), TemplateError> {
    match placeholders(template).find(|(_, p)| !PLACEHOLDERS.contains(p)) {
        Some((offset, p)) => Err(TemplateError {
            offset,
            placeholder: p.to_owned(),
        }),
        None => Ok(()),
    }
}

/// The template of a metric: the workspace's, else the built-in one.
pub fn template<'a>(metric: &str, overrides: &'a BTreeMap<String, String>) -> Option<&'a str> {
    overrides
        .get(metric)
        .map(String::as_str)
        .or_else(|| METRICS.iter().find(|m| m.name == metric).map(|m| m.promql))
}

/// A regex alternation matching exactly `names`, as the inside of a PromQL
/// string: regex metacharacters escaped (`.` in topic names), with the
/// backslash doubled for the string.
fn alternation(names: &[&str]) -> String {
    let mut out = String::new();
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            out.push('|');
        }
        for c in name.chars() {
            if r"\.+*?()|[]{}^$".contains(c) {
                out.push_str("\\\\");
            }
            out.push(c);
        }
    }
    out
}

/// Fills a metric's template; a placeholder whose set is empty is an error,
/// since the expression would silently match nothing.
fn fill(metric: &str, template: &str, s: &Subjects<'_>) -> Result<String, CompileError> {
    let mut out = String::with_capacity(template.len());
    let mut last = 0;
    for (at, p) in placeholders(template) {
        let (set, what) = match p {
            // An exact-match label value: namespace names need no escaping.
            "namespace" => {
                out.push_str(&template[last..at]);
                out.push_str(s.namespace);
                last = at + 1 + p.len();
                continue;
            }
            "topics" => (s.topics.clone(), "topics"),
            "dlq_topics" => (s.dlq_topics.clone(), "dead-letter topics"),
            "groups" => (s.groups.clone(), "consumer groups"),
            _ => continue,
        };
        if set.is_empty() {
            return Err(CompileError {
                message: format!(
                    "`{metric}` reads the namespace's {what}, and namespace `{}` has none",
                    s.namespace
                ),
                hint: match p {
                    "dlq_topics" => "set `dlq: true` on a topic, or alert on another metric".into(),
                    "groups" => "declare the groups under `spec.consumers`".into(),
                    _ => "declare a topic under `spec.topics`".into(),
                },
            });
        }
        out.push_str(&template[last..at]);
        out.push_str(&alternation(&set));
        last = at + 1 + p.len();
    }
    out.push_str(&template[last..]);
    Ok(out)
}

/// Compiles a condition to a PromQL alert expression.
pub fn compile(
    cond: &Condition,
    overrides: &BTreeMap<String, String>,
    subjects: &Subjects<'_>,
    refs: &Refs,
) -> Result<String, CompileError> {
    let metrics = cond.metrics();
    let cx = Cx {
        overrides,
        subjects,
        refs,
        // `capacity` was checked to be unambiguous when the condition was parsed.
        capacity: if metrics.contains(&"read_rps") && !metrics.contains(&"write_rps") {
            refs.read_capacity
        } else {
            refs.write_capacity
        },
    };
    let lhs = cx.side(&cond.lhs)?;
    let rhs = cx.side(&cond.rhs)?;
    Ok(format!("{lhs} {} {rhs}", cond.op.symbol()))
}

struct Cx<'a> {
    overrides: &'a BTreeMap<String, String>,
    subjects: &'a Subjects<'a>,
    refs: &'a Refs,
    capacity: Option<u64>,
}

/// A compiled expression, and whether it needs parentheses inside arithmetic.
struct Compiled {
    text: String,
    compound: bool,
}

impl Cx<'_> {
    /// One side of the comparison: arithmetic binds tighter than comparisons,
    /// so only a template with its own comparison or set operator is wrapped.
    fn side(&self, e: &Expr) -> Result<String, CompileError> {
        let c = self.expr(e)?;
        Ok(match e {
            Expr::Metric(_) if has_top_level_comparison(&c.text) => format!("({})", c.text),
            _ => c.text,
        })
    }

    fn expr(&self, e: &Expr) -> Result<Compiled, CompileError> {
        if let Some(v) = self.constant(e) {
            return Ok(Compiled {
                text: number(v),
                compound: false,
            });
        }
        match e {
            Expr::Metric(m) => {
                let template = template(m, self.overrides).unwrap_or_default();
                let text = fill(m, template, self.subjects)?;
                Ok(Compiled {
                    compound: has_top_level_operator(&text),
                    text,
                })
            }
            Expr::Binary { op, lhs, rhs } => {
                let wrap = |c: Compiled| {
                    if c.compound {
                        format!("({})", c.text)
                    } else {
                        c.text
                    }
                };
                let l = wrap(self.expr(lhs)?);
                let r = wrap(self.expr(rhs)?);
                Ok(Compiled {
                    text: format!("{l} {} {r}", arith_symbol(*op)),
                    compound: true,
                })
            }
            // A reference whose setting did not parse (reported there) has no value.
            Expr::Ref(r) => Err(CompileError {
                message: format!("`{}` has no valid value to compare with", r.name()),
                hint: "fix the setting it stands for (`spec.capacity`, `disaster_recovery.rpo`)"
                    .into(),
            }),
            Expr::Number { .. } => unreachable!("numbers are constants"),
        }
    }

    /// The value of an expression without metrics, in Prometheus units.
    fn constant(&self, e: &Expr) -> Option<f64> {
        Some(match e {
            Expr::Number { value, unit } => unit.map_or(*value, |u| value * u.factor()),
            Expr::Ref(r) => match r {
                Reference::Capacity => self.capacity? as f64,
                Reference::WriteCapacity => self.refs.write_capacity? as f64,
                Reference::ReadCapacity => self.refs.read_capacity? as f64,
                Reference::Rpo => self.refs.rpo_ms? as f64 / 1000.0,
            },
            Expr::Metric(_) => return None,
            Expr::Binary { op, lhs, rhs } => {
                let (l, r) = (self.constant(lhs)?, self.constant(rhs)?);
                match op {
                    ArithOp::Add => l + r,
                    ArithOp::Sub => l - r,
                    ArithOp::Mul => l * r,
                    ArithOp::Div => l / r,
                }
            }
        })
    }
}

fn arith_symbol(op: ArithOp) -> &'static str {
    match op {
        ArithOp::Add => "+",
        ArithOp::Sub => "-",
        ArithOp::Mul => "*",
        ArithOp::Div => "/",
    }
}

/// A number as PromQL reads it: the shortest form, without floating-point
/// noise (`0.1 * 1%` is `0.001`, not `0.0010000000000000002`).
fn number(v: f64) -> String {
    let rounded: f64 = format!("{v:.12e}").parse().unwrap_or(v);
    format!("{rounded}")
}

/// The text of a template outside parentheses, brackets, braces and strings.
fn top_level(text: &str) -> String {
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut out = String::new();
    for c in text.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Whether a template has a binary operator outside any grouping.
fn has_top_level_operator(text: &str) -> bool {
    let top = top_level(text);
    top.contains(['+', '-', '*', '/', '%', '^']) || has_comparison(&top)
}

fn has_top_level_comparison(text: &str) -> bool {
    has_comparison(&top_level(text))
}

fn has_comparison(top: &str) -> bool {
    top.contains(['<', '>', '='])
        || top.contains("!=")
        || top
            .split_whitespace()
            .any(|w| matches!(w, "and" | "or" | "unless"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::condition::{Scope, parse};

    const SCOPE: Scope<'static> = Scope {
        custom_metrics: &["queue_depth"],
        has_capacity: true,
        has_rpo: true,
    };

    fn subjects() -> Subjects<'static> {
        Subjects {
            namespace: "orders",
            topics: vec!["orders", "orders.dlq"],
            dlq_topics: vec!["orders.dlq"],
            groups: vec!["fulfillment"],
        }
    }

    const REFS: Refs = Refs {
        write_capacity: Some(5000),
        read_capacity: Some(8000),
        rpo_ms: Some(900_000),
    };

    fn compile_with(text: &str, overrides: &BTreeMap<String, String>) -> String {
        let cond = parse(text, &SCOPE).unwrap();
        compile(&cond, overrides, &subjects(), &REFS).unwrap()
    }

    #[test]
    fn numbers_have_no_floating_point_noise() {
        assert_eq!(number(0.1 * 0.01), "0.001");
        assert_eq!(number(0.9 * 5000.0), "4500");
        assert_eq!(number(50.0 * 0.001), "0.05");
        assert_eq!(number(1e-7), "0.0000001");
    }

    #[test]
    fn topics_become_an_escaped_alternation() {
        assert_eq!(
            alternation(&["orders", "orders.dlq"]),
            r"orders|orders\\.dlq"
        );
    }

    #[test]
    fn templates_name_only_known_placeholders() {
        assert!(check_template(r#"sum(x{topic=~"$topics"})"#).is_ok());
        assert_eq!(
            check_template(r#"sum(x{ns="$namspace"})"#),
            Err(TemplateError {
                offset: 10,
                placeholder: "namspace".into()
            })
        );
    }

    #[test]
    fn an_empty_subject_set_is_an_error() {
        let cond = parse("dlq_depth > 100", &SCOPE).unwrap();
        let mut s = subjects();
        s.dlq_topics.clear();
        let e = compile(&cond, &BTreeMap::new(), &s, &REFS).unwrap_err();
        assert!(e.message.contains("dead-letter topics"), "{e:?}");
    }

    #[test]
    fn a_reference_without_a_value_is_an_error() {
        let cond = parse("backup_age > rpo", &SCOPE).unwrap();
        let refs = Refs {
            rpo_ms: None,
            ..REFS
        };
        let e = compile(&cond, &BTreeMap::new(), &subjects(), &refs).unwrap_err();
        assert!(e.message.contains("`rpo` has no valid value"), "{e:?}");
    }

    #[test]
    fn composite_templates_are_wrapped_in_arithmetic() {
        let mut overrides = BTreeMap::new();
        overrides.insert("queue_depth".to_owned(), "a - b".to_owned());
        assert_eq!(
            compile_with("queue_depth * 2 > 10", &overrides),
            "(a - b) * 2 > 10"
        );
        assert_eq!(compile_with("queue_depth > 10", &overrides), "a - b > 10");
        overrides.insert("queue_depth".to_owned(), "a > 3".to_owned());
        assert_eq!(compile_with("queue_depth > 10", &overrides), "(a > 3) > 10");
        overrides.insert("queue_depth".to_owned(), r#"x{a!="-"}"#.to_owned());
        assert_eq!(
            compile_with("queue_depth + 1 > 10", &overrides),
            r#"x{a!="-"} + 1 > 10"#
        );
    }
}
