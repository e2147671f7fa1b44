//! What a condition's names mean and which of its dimensions agree: the
//! checks the parser calls as it builds the expression, and those on the
//! whole condition.

use super::{Condition, ConditionError, Dim, Expr, METRICS, Reference, Scope};

impl Dim {
    pub(super) fn compatible(self, other: Dim) -> bool {
        self == other || self == Dim::Any || other == Dim::Any
    }

    pub(super) fn describe(self) -> &'static str {
        match self {
            Dim::Number => "a plain number",
            Dim::Duration => "a duration",
            Dim::Ratio => "a ratio",
            Dim::Any => "a value",
        }
    }
}

/// The expression and dimension of a name: a built-in or workspace metric,
/// or a reference to a setting the namespace has.
pub(super) fn name(
    scope: &Scope<'_>,
    name: String,
    at: usize,
) -> Result<(Expr, Dim), ConditionError> {
    if let Some(m) = METRICS.iter().find(|m| m.name == name) {
        return Ok((Expr::Metric(name), m.dim));
    }
    if scope.custom_metrics.contains(&name.as_str()) {
        return Ok((Expr::Metric(name), Dim::Any));
    }
    if let Some(r) = Reference::parse(&name) {
        return match r {
            Reference::Rpo if !scope.has_rpo => Err(ConditionError::new(
                at,
                "`rpo` is used but the namespace sets no `disaster_recovery.rpo`",
            )
            .hint("set `spec.disaster_recovery.rpo`, or compare with a duration such as `1h`")),
            Reference::Rpo => Ok((Expr::Ref(r), Dim::Duration)),
            _ if !scope.has_capacity => Err(ConditionError::new(
                at,
                format!("`{name}` is used but the namespace sets no `capacity`"),
            )
            .hint("set `spec.capacity`, or compare with a number")),
            _ => Ok((Expr::Ref(r), Dim::Number)),
        };
    }
    let known = METRICS
        .iter()
        .map(|m| m.name)
        .chain(scope.custom_metrics.iter().copied());
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

/// The dimension of `a + b` or `a - b`, which must agree.
pub(super) fn sum(dim: Dim, rdim: Dim, rstart: usize) -> Result<Dim, ConditionError> {
    if !dim.compatible(rdim) {
        return Err(mismatch(rstart, dim, rdim));
    }
    Ok(if dim == Dim::Any { rdim } else { dim })
}

/// The dimension of `a * b` or `a / b`: a value scaled by a plain number, or
/// the ratio of two alike.
pub(super) fn product(
    op: super::ArithOp,
    dim: Dim,
    rdim: Dim,
    rstart: usize,
) -> Result<Dim, ConditionError> {
    use super::ArithOp;
    Ok(match (op, dim, rdim) {
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
    })
}

/// The checks of a whole condition: both sides alike, a metric read, and
/// `capacity` unambiguous.
pub(super) fn condition(
    cond: Condition,
    (ldim, lstart): (Dim, usize),
    (rdim, rstart): (Dim, usize),
    text: &str,
) -> Result<Condition, ConditionError> {
    if !ldim.compatible(rdim) {
        return Err(mismatch(rstart, ldim, rdim));
    }
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
        .map(|m| format!("`{}`", m.name))
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
