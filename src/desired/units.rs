//! Turning unit fields into values, with a diagnostic for each bad one.

use crate::config::Located;
use crate::config::namespace::ObjectLock;
use crate::config::units::{CronSchedule, Human, UnitKind};
use crate::diag::{Diagnostic, Span};

use super::model::ObjectLockState;

/// Parses an optional human-unit field; a malformed one is reported and yields `None`.
pub fn parse_unit<K: UnitKind>(
    field: Option<&Human<K>>,
    file: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<K::Value> {
    let field = field?;
    match field.parse() {
        Ok(v) => Some(v),
        Err(message) => {
            diags.push(
                Diagnostic::error(K::CODE, message)
                    .at(file, field.loc())
                    .hint(K::HINT),
            );
            None
        }
    }
}

/// Reports a zero where only a positive count makes sense.
pub fn nonzero<T: Copy + Into<u64>>(
    v: &Located<T>,
    field: &str,
    has_default: bool,
    file: &str,
    diags: &mut Vec<Diagnostic>,
) -> bool {
    if v.value.into() == 0 {
        let or = if has_default {
            ", or remove it to use the default"
        } else {
            ""
        };
        diags.push(
            Diagnostic::error("invalid-value", format!("`{field}` must be at least 1"))
                .at(file, v.loc)
                .hint(format!("set `{field}` to 1 or more{or}")),
        );
        return false;
    }
    true
}

/// An optional count with a default; a zero is reported and replaced by the default.
pub fn count<T: Copy + Into<u64>>(
    v: Option<&Located<T>>,
    default: T,
    field: &str,
    file: &str,
    diags: &mut Vec<Diagnostic>,
) -> T {
    match v {
        Some(v) if nonzero(v, field, true, file, diags) => v.value,
        _ => default,
    }
}

/// A cron schedule as written (trimmed), when it parses; a bad one is reported.
pub fn schedule(
    s: Option<&CronSchedule>,
    file: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<String> {
    s.and_then(|s| parse_unit(Some(s), file, diags).map(|_| s.text().trim().to_owned()))
}

/// Object-lock retention as declared; zero days are reported.
pub fn object_lock(
    l: Option<&ObjectLock>,
    file: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<ObjectLockState> {
    l.map(|l| {
        nonzero(&l.days, "object_lock.days", false, file, diags);
        ObjectLockState {
            mode: l.mode,
            days: l.days.value,
            source: Span::new(file, l.days.loc),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Loc;

    #[test]
    fn a_zero_is_told_to_go_only_where_a_default_takes_its_place() {
        let zero = Located::new(0u32, Loc::default());
        let hint = |has_default| {
            let mut diags = Vec::new();
            assert!(!nonzero(&zero, "days", has_default, "f.yaml", &mut diags));
            diags.pop().unwrap().hint.unwrap()
        };
        assert_eq!(hint(false), "set `days` to 1 or more");
        assert_eq!(
            hint(true),
            "set `days` to 1 or more, or remove it to use the default"
        );
    }
}
