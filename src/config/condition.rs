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

use std::fmt;

use serde::{Serialize, Serializer};

/// What a value measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    Number,
    Duration,
    Ratio,
    /// A workspace-defined metric: compatible with anything.
    Any,
}

impl Dim {
    fn compatible(self, other: Dim) -> bool {
        self == other || self == Dim::Any || other == Dim::Any
    }

    fn describe(self) -> &'static str {
        match self {
            Dim::Number => "a plain number",
            Dim::Duration => "a duration",
            Dim::Ratio => "a ratio",
            Dim::Any => "a value",
        }
    }
}

/// The built-in metrics and what they measure.
pub const METRICS: &[(&str, Dim)] = &[
    ("p50_latency", Dim::Duration),
    ("p95_latency", Dim::Duration),
    ("p99_latency", Dim::Duration),
    ("error_rate", Dim::Ratio),
    ("write_rps", Dim::Number),
    ("read_rps", Dim::Number),
    ("consumer_lag", Dim::Number),
    ("dlq_depth", Dim::Number),
    ("under_replicated_partitions", Dim::Number),
    ("backup_age", Dim::Duration),
];

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

/// Parses and checks a condition.
pub fn parse(text: &str, scope: &Scope<'_>) -> Result<Condition, ConditionError> {
    let tokens = lex(text)?;
    let mut p = Parser {
        tokens,
        pos: 0,
        end: text.len(),
        scope,
    };
    let (lhs, ldim, lstart) = p.expr()?;
    let op_at = p.offset();
    let op = match p.next() {
        Some(Tok::Cmp(op)) => op,
        Some(t) => {
            return Err(ConditionError::new(
                op_at,
                format!("expected a comparison, found {}", t.describe()),
            )
            .hint("a condition compares two values, such as `p99_latency > 50ms`"));
        }
        None => {
            return Err(
                ConditionError::new(op_at, "the condition has no comparison")
                    .hint("a condition compares two values, such as `p99_latency > 50ms`"),
            );
        }
    };
    let (rhs, rdim, rstart) = p.expr()?;
    if let Some(t) = p.peek() {
        return Err(ConditionError::new(
            p.offset(),
            format!("unexpected {} after the condition", t.describe()),
        )
        .hint("a condition has exactly one comparison"));
    }
    if !ldim.compatible(rdim) {
        return Err(mismatch(rstart, ldim, rdim));
    }
    let cond = Condition { lhs, op, rhs };
    let metrics = cond.metrics();
    if metrics.is_empty() {
        return Err(ConditionError::new(lstart, "the condition reads no metric")
            .hint(format!("compare a metric such as {}", metric_list())));
    }
    check_capacity(&cond, &metrics, text)?;
    Ok(cond)
}

/// `capacity` means the write or the read capacity; the condition must say which.
fn check_capacity(cond: &Condition, metrics: &[&str], text: &str) -> Result<(), ConditionError> {
    fn uses_capacity(e: &Expr) -> bool {
        match e {
            Expr::Ref(Reference::Capacity) => true,
            Expr::Binary { lhs, rhs, .. } => uses_capacity(lhs) || uses_capacity(rhs),
            _ => false,
        }
    }
    if !(uses_capacity(&cond.lhs) || uses_capacity(&cond.rhs)) {
        return Ok(());
    }
    let writes = metrics.contains(&"write_rps");
    let reads = metrics.contains(&"read_rps");
    if writes == reads {
        let at = text.find("capacity").unwrap_or(0);
        return Err(ConditionError::new(at, "`capacity` is ambiguous here")
            .hint("compare `write_rps` or `read_rps` with it, or write `write_capacity` or `read_capacity`"));
    }
    Ok(())
}

fn metric_list() -> String {
    METRICS
        .iter()
        .map(|(m, _)| format!("`{m}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn mismatch(at: usize, want: Dim, got: Dim) -> ConditionError {
    let e = ConditionError::new(
        at,
        format!("{} is compared with {}", want.describe(), got.describe()),
    );
    match (want, got) {
        (Dim::Duration, Dim::Number) => {
            e.hint("give the number a time unit, such as `50ms`, `5m` or `1h`")
        }
        (Dim::Ratio, Dim::Number) => e.hint("write the ratio as a percentage, such as `1%`"),
        _ => e.hint("both sides must measure the same thing"),
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num { value: f64, unit: Option<Unit> },
    Name(String),
    Arith(ArithOp),
    Cmp(CmpOp),
    Open,
    Close,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Num { value, unit } => {
                format!("number `{value}{}`", unit.map_or("", Unit::symbol))
            }
            Tok::Name(n) => format!("`{n}`"),
            Tok::Arith(_) | Tok::Cmp(_) => "an operator".into(),
            Tok::Open => "`(`".into(),
            Tok::Close => "`)`".into(),
        }
    }
}

fn lex(text: &str) -> Result<Vec<(usize, Tok)>, ConditionError> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)) {
            while i < bytes.len()
                && (bytes[i].is_ascii_digit() || bytes[i] == b'.' || bytes[i] == b'_')
            {
                i += 1;
            }
            let digits = text[start..i].replace('_', "");
            let value: f64 = digits.parse().map_err(|_| {
                ConditionError::new(start, format!("`{}` is not a number", &text[start..i]))
            })?;
            let unit_start = i;
            while i < bytes.len() && (bytes[i].is_ascii_alphabetic() || bytes[i] == b'%') {
                i += 1;
            }
            let unit = match &text[unit_start..i] {
                "" => None,
                u => Some(Unit::parse(u).ok_or_else(|| {
                    ConditionError::new(unit_start, format!("unknown unit `{u}`"))
                        .hint("use `ms`, `s`, `m`, `h` or `d` for durations and `%` for ratios")
                })?),
            };
            out.push((start, Tok::Num { value, unit }));
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            out.push((start, Tok::Name(text[start..i].to_owned())));
            continue;
        }
        let two = text.get(i..i + 2).unwrap_or("");
        let (tok, len) = match (two, c) {
            (">=", _) => (Tok::Cmp(CmpOp::Ge), 2),
            ("<=", _) => (Tok::Cmp(CmpOp::Le), 2),
            ("==", _) => (Tok::Cmp(CmpOp::Eq), 2),
            ("!=", _) => (Tok::Cmp(CmpOp::Ne), 2),
            (_, '>') => (Tok::Cmp(CmpOp::Gt), 1),
            (_, '<') => (Tok::Cmp(CmpOp::Lt), 1),
            (_, '+') => (Tok::Arith(ArithOp::Add), 1),
            (_, '-') => (Tok::Arith(ArithOp::Sub), 1),
            (_, '*') => (Tok::Arith(ArithOp::Mul), 1),
            (_, '/') => (Tok::Arith(ArithOp::Div), 1),
            (_, '(') => (Tok::Open, 1),
            (_, ')') => (Tok::Close, 1),
            (_, '=') => {
                return Err(ConditionError::new(start, "`=` is not a comparison")
                    .hint("write `==` to compare for equality"));
            }
            _ => {
                let ch = text[start..].chars().next().unwrap_or(c);
                return Err(ConditionError::new(
                    start,
                    format!("unexpected character `{ch}`"),
                ));
            }
        };
        out.push((start, tok));
        i += len;
    }
    Ok(out)
}

struct Parser<'s> {
    tokens: Vec<(usize, Tok)>,
    pos: usize,
    end: usize,
    scope: &'s Scope<'s>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }
    fn offset(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.end, |(o, _)| *o)
    }
    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.pos).map(|(_, t)| t.clone());
        self.pos += 1;
        t
    }

    /// expr = term { ("+" | "-") term }; returns the expression, its dimension and start.
    fn expr(&mut self) -> Result<(Expr, Dim, usize), ConditionError> {
        let (mut lhs, mut dim, start) = self.term()?;
        while let Some(Tok::Arith(op @ (ArithOp::Add | ArithOp::Sub))) = self.peek().cloned() {
            self.pos += 1;
            let (rhs, rdim, rstart) = self.term()?;
            if !dim.compatible(rdim) {
                return Err(mismatch(rstart, dim, rdim));
            }
            dim = if dim == Dim::Any { rdim } else { dim };
            lhs = Expr::Binary {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
        }
        Ok((lhs, dim, start))
    }

    /// term = factor { ("*" | "/") factor }
    fn term(&mut self) -> Result<(Expr, Dim, usize), ConditionError> {
        let (mut lhs, mut dim, start) = self.factor()?;
        while let Some(Tok::Arith(op @ (ArithOp::Mul | ArithOp::Div))) = self.peek().cloned() {
            self.pos += 1;
            let (rhs, rdim, rstart) = self.factor()?;
            dim = match (op, dim, rdim) {
                (_, Dim::Any, _) | (_, _, Dim::Any) => Dim::Any,
                (ArithOp::Mul, Dim::Number, d) | (_, d, Dim::Number) => d,
                (ArithOp::Div, a, b) if a == b => Dim::Number,
                _ => {
                    return Err(ConditionError::new(
                        rstart,
                        format!(
                            "cannot combine {} with {} here",
                            dim.describe(),
                            rdim.describe()
                        ),
                    )
                    .hint("scale a value by a plain number, such as `0.9 * capacity`"));
                }
            };
            lhs = Expr::Binary {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            };
        }
        Ok((lhs, dim, start))
    }

    /// factor = number [unit] | name | "(" expr ")"
    fn factor(&mut self) -> Result<(Expr, Dim, usize), ConditionError> {
        let at = self.offset();
        match self.next() {
            Some(Tok::Num { value, unit }) => Ok((
                Expr::Number { value, unit },
                unit.map_or(Dim::Number, Unit::dim),
                at,
            )),
            Some(Tok::Name(name)) => self.name(name, at).map(|(e, d)| (e, d, at)),
            Some(Tok::Open) => {
                let (e, d, _) = self.expr()?;
                match self.next() {
                    Some(Tok::Close) => Ok((e, d, at)),
                    _ => Err(ConditionError::new(
                        self.offset().min(self.end),
                        "missing `)`",
                    )),
                }
            }
            Some(t) => Err(ConditionError::new(
                at,
                format!("expected a metric or a number, found {}", t.describe()),
            )),
            None => Err(ConditionError::new(at, "the condition ends too early")
                .hint("a condition compares two values, such as `p99_latency > 50ms`")),
        }
    }

    fn name(&self, name: String, at: usize) -> Result<(Expr, Dim), ConditionError> {
        if let Some((_, dim)) = METRICS.iter().find(|(m, _)| *m == name) {
            return Ok((Expr::Metric(name), *dim));
        }
        if self.scope.custom_metrics.contains(&name.as_str()) {
            return Ok((Expr::Metric(name), Dim::Any));
        }
        if let Some(r) = Reference::parse(&name) {
            return match r {
                Reference::Rpo if !self.scope.has_rpo => Err(ConditionError::new(
                    at,
                    "`rpo` is used but the namespace sets no `disaster_recovery.rpo`",
                )
                .hint("set `spec.disaster_recovery.rpo`, or compare with a duration such as `1h`")),
                Reference::Rpo => Ok((Expr::Ref(r), Dim::Duration)),
                _ if !self.scope.has_capacity => Err(ConditionError::new(
                    at,
                    format!("`{name}` is used but the namespace sets no `capacity`"),
                )
                .hint("set `spec.capacity`, or compare with a number")),
                _ => Ok((Expr::Ref(r), Dim::Number)),
            };
        }
        let known = METRICS
            .iter()
            .map(|(m, _)| *m)
            .chain(self.scope.custom_metrics.iter().copied());
        let best = known
            .map(|m| (strsim::jaro_winkler(&name, m), m))
            .filter(|(s, _)| *s > 0.85)
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let e = ConditionError::new(at, format!("unknown metric `{name}`"));
        Err(match best {
            Some((_, m)) => e.hint(format!("did you mean `{m}`?")),
            None => e.hint(format!(
                "known metrics are {}; a workspace adds more under `spec.metrics`",
                metric_list()
            )),
        })
    }
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
