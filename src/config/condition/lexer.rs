//! Condition text to tokens, each with its byte offset.

use super::{ArithOp, CmpOp, ConditionError, Unit};

#[derive(Clone, Debug, PartialEq)]
pub(super) enum Tok {
    Num { value: f64, unit: Option<Unit> },
    Name(String),
    Arith(ArithOp),
    Cmp(CmpOp),
    Open,
    Close,
}

impl Tok {
    pub(super) fn describe(&self) -> String {
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

pub(super) fn lex(text: &str) -> Result<Vec<(usize, Tok)>, ConditionError> {
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
