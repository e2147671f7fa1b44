//! The plan as a value: what would change, why, and the fingerprints of every
//! live resource it was computed from. [`diff`] computes it without I/O.

mod applied;
mod compare;
mod diff;
pub mod dr;
pub mod endpoints;
pub mod field;
pub mod finding;
pub mod live;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::workspace::Guards;
use crate::diag::Span;
use crate::resource::{Address, Value};
use crate::state::InventoryEntry;

pub use diff::{PlanError, PlanInput, diff};
pub use dr::{Check, DrReport, Violation};
pub use endpoints::Endpoints;
pub use field::Field;
pub use finding::{Finding, Level};
pub use live::{ABSENT, Api, LiveResource, LiveState};

/// The version of the plan JSON (`plan --format json`, `plan --out`).
pub const FORMAT_VERSION: u32 = 2;

/// What a change does.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Create,
    Update,
    Delete,
    /// Asked for, but impossible or forbidden; the reasons say why.
    Blocked,
}

impl Action {
    pub fn symbol(self) -> char {
        match self {
            Action::Create => '+',
            Action::Update => '~',
            Action::Delete => '-',
            Action::Blocked => '!',
        }
    }
}

/// Why a change is there.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Cause {
    /// The desired state changed in Git and is not applied yet.
    Pending,
    /// The live state changed behind Git's back since sluice applied it.
    Drift,
}

/// One field, before and after (`None`: absent, or reset to the default),
/// each a JSON value of its own type: a topic config is a string (Kafka's
/// configs are), a partition count a number, a bucket setting a boolean.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FieldChange {
    pub field: Field,
    /// Left out when absent (or reset), so that a JSON `null` is a value.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub before: Option<serde_json::Value>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub after: Option<serde_json::Value>,
}

/// A field that is there holds a value, `null` included.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

impl FieldChange {
    /// A value as a reviewer reads it: a topic's settings bare (`lz4`, `3`),
    /// a record's or a bucket's as JSON (`"GOVERNANCE"`, `true`).
    pub fn show(&self, v: &serde_json::Value) -> String {
        match (&self.field, v) {
            (Field::Path(_), v) => v.to_string(),
            (_, serde_json::Value::String(s)) => s.clone(),
            (_, v) => v.to_string(),
        }
    }

    /// The value to set, as the text a Kafka topic config carries.
    pub fn after_text(&self) -> Option<String> {
        self.after.as_ref().map(|v| match v {
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        })
    }
}

/// A change to one resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Change {
    pub address: Address,
    pub namespace: String,
    pub action: Action,
    pub cause: Cause,
    /// Set on a pending change to a resource that also changed outside
    /// sluice since it last applied it: drift all the same, which the
    /// cause, being `pending`, does not say.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drifted: bool,
    pub fields: Vec<FieldChange>,
    /// Why it is blocked, or what to know about it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// Where the desired state asks for it.
    pub source: Option<Span>,
    /// The value to write, for creates and updates.
    pub desired: Option<Value>,
    /// The live value, as far as sluice compares it, for updates and deletes.
    pub live: Option<Value>,
    /// What the inventory records once the change is applied.
    pub inventory: Option<InventoryEntry>,
}

impl Change {
    /// Whether the live resource changed outside sluice, whatever else is
    /// pending on it.
    pub fn is_drift(&self) -> bool {
        self.cause == Cause::Drift || self.drifted
    }
}

#[cfg(test)]
impl Change {
    /// A change with no fields, values, reasons or inventory entry, for tests.
    pub(crate) fn bare(address: Address, namespace: &str, action: Action, cause: Cause) -> Self {
        Change {
            address,
            namespace: namespace.to_owned(),
            action,
            cause,
            drifted: false,
            fields: Vec::new(),
            reasons: Vec::new(),
            source: None,
            desired: None,
            live: None,
            inventory: None,
        }
    }
}

/// Counts of a plan, for the closing line and the tables.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    pub blocked: usize,
    /// Changes caused by drift, counted also under their action.
    pub drift: usize,
}

impl Summary {
    pub fn of<'a>(changes: impl IntoIterator<Item = &'a Change>) -> Self {
        let mut s = Summary::default();
        for c in changes {
            match c.action {
                Action::Create => s.create += 1,
                Action::Update => s.update += 1,
                Action::Delete => s.delete += 1,
                Action::Blocked => s.blocked += 1,
            }
            if c.cause == Cause::Drift {
                s.drift += 1;
            }
        }
        s
    }

    pub fn is_empty(&self) -> bool {
        self.create + self.update + self.delete + self.blocked == 0
    }
}

impl fmt::Display for Summary {
    /// `Plan: 3 to create, 2 to update, 1 to delete.` plus what is blocked or drifted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Plan: {} to create, {} to update, {} to delete.",
            self.create, self.update, self.delete
        )?;
        if self.blocked > 0 {
            write!(f, " {} blocked.", self.blocked)?;
        }
        if self.drift > 0 {
            write!(f, " {} from drift.", self.drift)?;
        }
        Ok(())
    }
}

/// A plan for one environment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Plan {
    pub format_version: u32,
    pub environment: String,
    /// The Git commit of the desired state, when read from Git.
    pub revision: Option<String>,
    pub guards: Guards,
    pub summary: Summary,
    /// Sorted in apply order.
    pub changes: Vec<Change>,
    /// Resources that need no change.
    pub unchanged: usize,
    /// Unchanged resources whose inventory entry an apply writes or refreshes
    /// (adopted identical resources, or ones last applied from other YAML).
    pub adopt: BTreeMap<Address, InventoryEntry>,
    /// Inventory entries of resources already gone, which an apply forgets.
    pub forget: Vec<Address>,
    /// Every live resource read, and `absent` for those that do not exist:
    /// an apply refuses a plan when any differs.
    pub fingerprints: BTreeMap<Address, String>,
    /// The inventory's revision when planned: an apply refuses a plan made
    /// before another apply.
    pub inventory_revision: i64,
    /// DR compliance of each namespace with a backup: checks, not changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dr: Vec<DrReport>,
    /// What the policies said about the plan; any `deny` refuses it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policy: Vec<Finding>,
    /// The namespaces a partial plan covers (`plan --base`); absent when it
    /// covers the whole desired state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Vec<String>>,
    /// Why a pull request's plan covers every namespace: the change touches
    /// what every namespace resolves through (the workspace, a policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widened: Option<String>,
    /// What a reviewer must look at that the plan does not use: the
    /// connection settings a pull request changes (the plan connected with
    /// the base revision's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub review: Vec<String>,
    /// The environment's systems as the plan reached them, and the Kafka
    /// cluster's ID; absent in a plan made without them (tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,
    /// The namespaces `--namespace` named; `scope` adds those sharing a
    /// bucket with them. Empty for a full plan and for `plan --base`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<String>,
    /// A `sluice destroy` plan: it deletes every resource of the inventory
    /// except those of protected namespaces. The environment's name, typed
    /// to confirm it, is its permission: `allow_delete` and `max_deletes`
    /// do not bound it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub destroy: bool,
    /// The digest of everything above, in a saved plan (`plan --out`): an
    /// apply refuses a file whose content does not match it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

#[cfg(test)]
impl Plan {
    /// A plan of `changes` and nothing else, for tests.
    pub(crate) fn of_changes(environment: &str, changes: Vec<Change>) -> Self {
        Plan {
            format_version: FORMAT_VERSION,
            environment: environment.to_owned(),
            revision: None,
            guards: Guards::default(),
            summary: Summary::of(&changes),
            changes,
            unchanged: 0,
            adopt: BTreeMap::new(),
            forget: Vec::new(),
            fingerprints: BTreeMap::new(),
            inventory_revision: 0,
            dr: Vec::new(),
            policy: Vec::new(),
            scope: None,
            widened: None,
            review: Vec::new(),
            endpoints: None,
            targets: Vec::new(),
            destroy: false,
            digest: None,
        }
    }
}

impl Plan {
    /// Whether applying the plan would change anything live or in the inventory.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.adopt.is_empty() && self.forget.is_empty()
    }

    /// A digest of the plan's content (its own `digest` field left out),
    /// recorded with each apply and in a saved plan.
    pub fn digest(&self) -> String {
        let mut json = serde_json::to_value(self).expect("a plan is JSON");
        if let Some(m) = json.as_object_mut() {
            m.remove("digest");
        }
        crate::resource::digest(&serde_json::to_vec(&json).expect("a plan is JSON"))
    }

    /// What moved since this plan was made: the resources it or `fresh`
    /// (planned now) changes, adopts or forgets whose live fingerprint
    /// differs. Resources neither touches (an unrelated apply's) do not
    /// make it stale.
    pub fn moved(&self, fresh: &Plan) -> Vec<String> {
        let touched = |p: &'_ Plan| -> Vec<Address> {
            p.changes
                .iter()
                .map(|c| c.address.clone())
                .chain(p.adopt.keys().cloned())
                .chain(p.forget.iter().cloned())
                .collect()
        };
        let mut addresses: Vec<Address> = touched(self);
        addresses.extend(touched(fresh));
        addresses.sort();
        addresses.dedup();
        addresses
            .into_iter()
            .filter(|a| self.fingerprints.get(a) != fresh.fingerprints.get(a))
            .map(|a| a.to_string())
            .collect()
    }

    /// How `fresh` (planned now) differs from this plan, as a reviewer reads
    /// it: changes that are new, changes that are gone, and changes whose
    /// action or values moved; and what either records in the inventory
    /// that the other does not. Empty when they make the same changes.
    pub fn differences(&self, fresh: &Plan) -> Vec<String> {
        compare::differences(self, fresh)
    }

    pub fn violations(&self) -> impl Iterator<Item = (&str, &Violation)> {
        self.dr
            .iter()
            .flat_map(|r| r.violations.iter().map(|v| (r.namespace.as_str(), v)))
    }

    /// The policy messages that refuse the plan.
    pub fn denials(&self) -> impl Iterator<Item = &Finding> {
        self.policy.iter().filter(|f| f.level == Level::Deny)
    }

    pub fn drift(&self) -> impl Iterator<Item = &Change> {
        self.changes.iter().filter(|c| c.cause == Cause::Drift)
    }
}
