//! The config model as users write it, and its parsing from YAML.
//!
//! These types mirror the YAML one to one (and generate `schemas/`). They keep
//! the text and location of every value a semantic check may need to point at;
//! [`crate::desired`] validates them and resolves the values later stages use.

pub mod condition;
pub mod located;
pub mod namespace;
pub mod parse;
pub mod redact;
pub mod scalar;
pub mod secret;
pub mod shape;
pub mod topic_catalog;
pub mod units;
pub mod workspace;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use located::{Loc, Located};
pub use namespace::Namespace;
pub use workspace::Workspace;

/// The only config version so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub enum ApiVersion {
    #[serde(rename = "sluice/v1")]
    V1,
}

/// String labels or annotations.
pub type Labels = BTreeMap<String, String>;
