//! `sluice destroy`: the plan that deletes everything sluice manages in an
//! environment, except what protected namespaces hold. It is applied like
//! any plan (the lock, the stale check, ordered batches, the inventory).

use std::collections::BTreeMap;

use super::{EngineError, Planned, Target};
use crate::desired::Desired;
use crate::plan::{PlanInput, diff};
use crate::policy::Policies;
use crate::state::Inventory;

/// A destroy plan, and what it keeps.
pub struct Destroy {
    pub planned: Planned,
    /// Per protected namespace, how many of its resources are kept.
    pub kept: BTreeMap<String, usize>,
}

/// Plans the deletion of every resource sluice's inventory holds in the
/// environment of `desired`, except those of protected namespaces (flagged
/// in the inventory, or listed in the workspace's guards); what is already
/// gone is forgotten. The YAML's namespaces play no part, but the policies
/// judge the plan, each namespace as deleted: one that refuses deletes
/// (the built-in guard of critical topics) refuses the destroy.
pub async fn plan(
    desired: &Desired,
    revision: Option<&str>,
    target: &Target,
    policies: &Policies,
) -> Result<Destroy, EngineError> {
    let stored = target.state.load(None).await?;
    let guards = &desired.guards;
    let (kept, doomed): (BTreeMap<_, _>, BTreeMap<_, _>) = stored
        .inventory
        .entries
        .clone()
        .into_iter()
        .partition(|(_, e)| e.protected || guards.protected_namespaces.contains(&e.namespace));
    let doomed = Inventory { entries: doomed };
    let live = target
        .read(&doomed.entries.keys().cloned().collect())
        .await?;
    let mut plan = diff(&PlanInput {
        environment: &desired.environment.name,
        revision,
        guards,
        desired: &[],
        live: &live,
        inventory: &doomed,
        inventory_revision: stored.revision_of(None),
        // Deleting everything is what was asked for, by name.
        partial: true,
    })?;
    plan.destroy = true;
    let gone = Desired {
        namespaces: Vec::new().into(),
        ..desired.clone()
    };
    plan.policy = policies.evaluate(&gone, &plan.changes)?;
    let mut per_namespace = BTreeMap::new();
    for entry in kept.values() {
        *per_namespace.entry(entry.namespace.clone()).or_insert(0) += 1;
    }
    Ok(Destroy {
        planned: Planned { plan, stored, live },
        kept: per_namespace,
    })
}

/// The namespaces a destroy plan keeps, for its summary.
pub fn kept_line(kept: &BTreeMap<String, usize>) -> Option<String> {
    if kept.is_empty() {
        return None;
    }
    let total: usize = kept.values().sum();
    Some(format!(
        "Kept: {total} resource(s) of protected namespace(s) {}; sluice never deletes them.",
        kept.keys()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}
