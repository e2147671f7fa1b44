//! Tokens to an expression, by the grammar in the module's doc; the
//! checker judges names and dimensions as it goes.

use super::checker;
use super::lexer::Tok;
use super::{ArithOp, Condition, ConditionError, Dim, Expr, Scope, Unit};

pub(super) struct Parser<'s> {
    tokens: Vec<(usize, Tok)>,
    pos: usize,
    text: &'s str,
    scope: &'s Scope<'s>,
    /// Parentheses open around the current token: bounded, so that no input
    /// recurses deeper than [`MAX_DEPTH`].
    depth: usize,
}

/// How deep parentheses may nest.
pub(super) const MAX_DEPTH: usize = 16;

impl<'s> Parser<'s> {
    pub(super) fn new(tokens: Vec<(usize, Tok)>, text: &'s str, scope: &'s Scope<'s>) -> Self {
        Parser {
            tokens,
            pos: 0,
            text,
            scope,
            depth: 0,
        }
    }

    /// condition = expr compare expr, and nothing after it.
    pub(super) fn condition(&mut self) -> Result<Condition, ConditionError> {
        let (lhs, ldim, lstart) = self.expr()?;
        let op_at = self.offset();
        let op = match self.next() {
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
        let (rhs, rdim, rstart) = self.expr()?;
        if let Some(t) = self.peek() {
            return Err(ConditionError::new(
                self.offset(),
                format!("unexpected {} after the condition", t.describe()),
            )
            .hint("a condition has exactly one comparison"));
        }
        checker::condition(
            Condition { lhs, op, rhs },
            (ldim, lstart),
            (rdim, rstart),
            self.text,
        )
    }

    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }
    fn offset(&self) -> usize {
        self.tokens
            .get(self.pos)
            .map_or(self.text.len(), |(o, _)| *o)
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
            dim = checker::sum(dim, rdim, rstart)?;
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
            dim = checker::product(op, dim, rdim, rstart)?;
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
            Some(Tok::Name(name)) => checker::name(self.scope, name, at).map(|(e, d)| (e, d, at)),
            Some(Tok::Open) => {
                if self.depth >= MAX_DEPTH {
                    return Err(ConditionError::new(
                        at,
                        format!("parentheses nest more than {MAX_DEPTH} deep"),
                    )
                    .hint(
                        "write the condition flatter; a condition compares two short expressions",
                    ));
                }
                self.depth += 1;
                let inner = self.expr();
                self.depth -= 1;
                let (e, d, _) = inner?;
                match self.next() {
                    Some(Tok::Close) => Ok((e, d, at)),
                    _ => Err(ConditionError::new(
                        self.offset().min(self.text.len()),
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
}
