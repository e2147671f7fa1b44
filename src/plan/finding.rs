//! What the policies said about a plan. The policy engine produces the
//! findings; the plan carries them, and any `deny` refuses it.

use serde::{Deserialize, Serialize};

use crate::diag::{Diagnostic, Span};

/// How hard a policy message bites.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Fails validate and plan; apply refuses the plan.
    Deny,
    /// Printed, and carried in the plan.
    Warn,
}

/// One message of one policy about one namespace.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Finding {
    pub level: Level,
    /// The package, such as `sluice.critical_dr`.
    pub policy: String,
    /// The file the policy came from.
    pub file: String,
    pub namespace: String,
    pub environment: String,
    pub message: String,
    /// How to meet the policy, as the policy's `hint` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// Where the namespace is declared, when it still is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Span>,
}

impl Finding {
    pub fn to_diagnostic(&self) -> Diagnostic {
        let text = format!(
            "policy `{}` {} namespace `{}` in environment `{}`: {}",
            self.policy,
            match self.level {
                Level::Deny => "denies",
                Level::Warn => "warns about",
            },
            self.namespace,
            self.environment,
            self.message
        );
        let how = match (&self.hint, self.file.ends_with("(built-in)")) {
            (Some(h), _) => h.clone(),
            (None, true) => format!(
                "`{}` is built in and cannot be changed or turned off: change the namespace to meet it",
                self.policy
            ),
            (None, false) => format!(
                "change the namespace to meet the policy, or change the policy in {}",
                self.file
            ),
        };
        let d = match self.level {
            Level::Deny => Diagnostic::error("policy-deny", text).hint(how),
            Level::Warn => Diagnostic::warning("policy-warn", text),
        };
        match &self.source {
            Some(span) => d.at_span(span),
            None => d,
        }
    }
}
