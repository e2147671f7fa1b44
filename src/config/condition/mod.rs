//! The alert condition language: `p99_latency > 50ms`, `error_rate > 1%`,
//! `write_rps > 0.9 * capacity`, `backup_age > rpo`.
//!
//! ```text
//! condition  = expr compare expr
//! compare    = ">" | ">=" | "<" | "<=" | "==" | "!="
//! expr       = term { ("+" | "-") term }
//! term       = factor { ("*" | "/") factor }
//! factor     = number [unit] | name | "(" expr ")"
//! number     = digits [ "." digits ]          (underscores allowed: 10_000)
//! unit       = "ms" | "s" | "m" | "h" | "d" | "%"
//! name       = a metric, or a reference to the namespace's own settings
//! ```
//!
//! Every value has a dimension: a plain number, a duration or a ratio. Both
//! sides of a comparison, and of `+`/`-`, must agree, so `p99_latency > 50`
//! (a latency against a bare number) is an error that asks for a unit.
//!
//! [`lexer`] splits the text into tokens, [`parser`] builds the expression
//! by the grammar, and [`checker`] says what names mean and which dimensions
//! agree. [`metrics`] is the vocabulary: each metric, what it measures, and
//! the PromQL it stands for by default.

mod checker;
mod lexer;
mod metrics;
mod parser;

use std::fmt;

use serde::{Serialize, Serializer};

pub use metrics::{METRICS, Metric, PLACEHOLDERS};

/// What a value measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    Number,
    Duration,
    Ratio,
    /// A workspace-defined metric: compatible with anything.
    Any,
}

/// Names that stand for the namespace's own settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reference {
    /// `capacity`: the write or read capacity, whichever rate the condition measures.
    Capacity,
    WriteCapacity,
    ReadCapacity,
    /// The DR policy's recovery point objective.
    Rpo,
}

impl Reference {
    fn parse(name: &str) -> Option<Reference> {
        Some(match name {
            "capacity" => Reference::Capacity,
            "write_capacity" => Reference::WriteCapacity,
            "read_capacity" => Reference::ReadCapacity,
            "rpo" => Reference::Rpo,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Reference::Capacity => "capacity",
            Reference::WriteCapacity => "write_capacity",
            Reference::ReadCapacity => "read_capacity",
            Reference::Rpo => "rpo",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Millis,
    Seconds,
    Minutes,
    Hours,
    Days,
    Percent,
}

impl Unit {
    fn parse(s: &str) -> Option<Unit> {
        Some(match s {
            "ms" => Unit::Millis,
            "s" => Unit::Seconds,
            "m" => Unit::Minutes,
            "h" => Unit::Hours,
            "d" => Unit::Days,
            "%" => Unit::Percent,
            _ => return None,
        })
    }

    fn symbol(self) -> &'static str {
        match self {
            Unit::Millis => "ms",
            Unit::Seconds => "s",
            Unit::Minutes => "m",
            Unit::Hours => "h",
            Unit::Days => "d",
            Unit::Percent => "%",
        }
    }

    /// The factor to the base unit: seconds for durations, a fraction for `%`.
    pub fn factor(self) -> f64 {
        match self {
            Unit::Millis => 0.001,
            Unit::Seconds => 1.0,
            Unit::Minutes => 60.0,
            Unit::Hours => 3600.0,
            Unit::Days => 86400.0,
            Unit::Percent => 0.01,
        }
    }

    fn dim(self) -> Dim {
        match self {
            Unit::Percent => Dim::Ratio,
            _ => Dim::Duration,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
        }
    }
}

/// An expression of the condition language.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// A number as written, with its unit ([`Unit::factor`] converts).
    Number {
        value: f64,
        unit: Option<Unit>,
    },
    Metric(String),
    Ref(Reference),
    Binary {
        op: ArithOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
}

impl Expr {
    fn visit_metrics<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Metric(m) => out.push(m),
            Expr::Binary { lhs, rhs, .. } => {
                lhs.visit_metrics(out);
                rhs.visit_metrics(out);
            }
            _ => {}
        }
    }
}

/// A parsed condition: two expressions compared.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub lhs: Expr,
    pub op: CmpOp,
    pub rhs: Expr,
}

impl Condition {
    /// The metric names the condition reads, in order.
    pub fn metrics(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.lhs.visit_metrics(&mut out);
        self.rhs.visit_metrics(&mut out);
        out
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Number { value, unit } => write!(f, "{value}{}", unit.map_or("", Unit::symbol)),
            Expr::Metric(m) => f.write_str(m),
            Expr::Ref(r) => f.write_str(r.name()),
            Expr::Binary { op, lhs, rhs } => {
                let sym = match op {
                    ArithOp::Add => "+",
                    ArithOp::Sub => "-",
                    ArithOp::Mul => "*",
                    ArithOp::Div => "/",
                };
                let wrap = |e: &Expr, f: &mut fmt::Formatter<'_>| match e {
                    Expr::Binary { .. } => write!(f, "({e})"),
                    _ => write!(f, "{e}"),
                };
                wrap(lhs, f)?;
                write!(f, " {sym} ")?;
                wrap(rhs, f)
            }
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.lhs, self.op.symbol(), self.rhs)
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What a condition may refer to in its namespace.
#[derive(Clone, Copy, Debug, Default)]
pub struct Scope<'a> {
    /// Workspace-defined metric names, beyond the built-in ones.
    pub custom_metrics: &'a [&'a str],
    pub has_capacity: bool,
    pub has_rpo: bool,
}

/// A problem in a condition, at a byte offset of its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionError {
    pub offset: usize,
    pub message: String,
    pub hint: Option<String>,
}

impl ConditionError {
    fn new(offset: usize, message: impl Into<String>) -> Self {
        ConditionError {
            offset,
            message: message.into(),
            hint: None,
        }
    }
    fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

/// The longest condition, in bytes.
pub const MAX_LENGTH: usize = 512;

/// Parses and checks a condition.
pub fn parse(text: &str, scope: &Scope<'_>) -> Result<Condition, ConditionError> {
    // Bounded input, bounded work: every step after this is linear or
    // recurses at most as deep as the text is long.
    if text.len() > MAX_LENGTH {
        return Err(ConditionError::new(
            MAX_LENGTH,
            format!("the condition is longer than {MAX_LENGTH} characters"),
        )
        .hint("a condition compares two short expressions, such as `p99_latency > 50ms`"));
    }
    let tokens = lexer::lex(text)?;
    parser::Parser::new(tokens, text, scope).condition()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: Scope<'static> = Scope {
        custom_metrics: &["queue_depth"],
        has_capacity: true,
        has_rpo: true,
    };

    fn ok(text: &str) -> Condition {
        parse(text, &FULL).unwrap_or_else(|e| panic!("{text}: {e:?}"))
    }
    fn err(text: &str) -> ConditionError {
        parse(text, &FULL).expect_err(text)
    }

    #[test]
    fn the_operators_examples_parse() {
        assert_eq!(ok("p99_latency > 50ms").to_string(), "p99_latency > 50ms");
        assert_eq!(
            ok("error_rate > 1%").rhs,
            Expr::Number {
                value: 1.0,
                unit: Some(Unit::Percent)
            }
        );
        assert_eq!(
            ok("write_rps > 0.9 * capacity").to_string(),
            "write_rps > 0.9 * capacity"
        );
        assert_eq!(
            ok("consumer_lag > 10_000").rhs,
            Expr::Number {
                value: 10000.0,
                unit: None
            }
        );
        assert_eq!(ok("dlq_depth>100").op, CmpOp::Gt);
        assert_eq!(ok("backup_age > rpo").rhs, Expr::Ref(Reference::Rpo));
        assert_eq!(
            ok("(read_rps + write_rps) / 2 >= 0.5 * read_capacity").metrics(),
            vec!["read_rps", "write_rps"]
        );
        assert_eq!(ok("queue_depth > 5").metrics(), vec!["queue_depth"]);
        assert_eq!(
            ok("error_rate > 0.5%").rhs,
            Expr::Number {
                value: 0.5,
                unit: Some(Unit::Percent)
            }
        );
        assert_eq!(50.0 * Unit::Millis.factor(), 0.05);
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = err("p99_latncy > 50ms");
        assert_eq!(
            (e.offset, e.hint.as_deref()),
            (0, Some("did you mean `p99_latency`?"))
        );
        assert_eq!(err("p99_latency > 50").offset, 14);
        assert!(err("p99_latency > 50").hint.unwrap().contains("time unit"));
        assert!(
            err("error_rate > 0.01")
                .hint
                .unwrap()
                .contains("percentage")
        );
        assert_eq!(err("p99_latency > 50 parsecs").offset, 17);
        assert_eq!(
            err("p99_latency 50ms").message,
            "expected a comparison, found number `50ms`"
        );
        assert_eq!(err("p99_latency = 50ms").offset, 12);
        assert_eq!(err("p99_latency >").message, "the condition ends too early");
        assert_eq!(err("1 > 2").message, "the condition reads no metric");
        assert_eq!(err("p99_latency > 5ms > 1ms").offset, 18);
        assert!(err("consumer_lag > capacity").message.contains("ambiguous"));
        assert_eq!(err("(write_rps > 1").message, "missing `)`");
        assert!(
            err("p99_latency * error_rate > 1")
                .message
                .contains("cannot combine")
        );
    }

    /// One bad commit took down every watcher: 10,000 nested parentheses
    /// overflowed the stack, and a sum of 20,000 terms took seconds.
    #[test]
    fn deep_or_long_conditions_are_errors_not_aborts() {
        let deep = format!(
            "{}p99_latency{} > 50ms",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        assert!(err(&deep).message.contains("longer than"));
        let nested = format!("{}p99_latency{} > 50ms", "(".repeat(17), ")".repeat(17));
        let e = err(&nested);
        assert!(e.message.contains("nest more than 16 deep"), "{e:?}");
        assert_eq!(e.offset, 16);
        let sum = format!("write_rps{} > 1", " + write_rps".repeat(20_000));
        assert!(err(&sum).message.contains("longer than"));
        // Within the limits, the longest sum still parses.
        let terms = (MAX_LENGTH - 20) / 12;
        let long = format!("write_rps{} > 1", " + write_rps".repeat(terms));
        assert!(long.len() <= MAX_LENGTH);
        assert_eq!(ok(&long).metrics().len(), terms + 1);
        let ok16 = format!("{}p99_latency{} > 50ms", "(".repeat(16), ")".repeat(16));
        ok(&ok16);
    }

    #[test]
    fn references_need_their_settings() {
        let bare = Scope::default();
        assert!(
            parse("backup_age > rpo", &bare)
                .unwrap_err()
                .message
                .contains("disaster_recovery.rpo")
        );
        assert!(
            parse("write_rps > capacity", &bare)
                .unwrap_err()
                .message
                .contains("capacity")
        );
        assert!(
            parse("queue_depth > 1", &bare)
                .unwrap_err()
                .message
                .contains("unknown metric")
        );
    }
}
