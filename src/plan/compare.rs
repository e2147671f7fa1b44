//! Two plans side by side: the one reviewed (or saved) and the one made now.
//! They agree when they make the same changes, to the same addresses, with
//! the same actions and values, and record the same in the inventory.
//! Where the desired state was declared, and why, may differ.

use std::collections::{BTreeMap, BTreeSet};

use super::{Change, FieldChange, Plan};
use crate::resource::Address;

pub(super) fn differences(reviewed: &Plan, fresh: &Plan) -> Vec<String> {
    let by_address = |p: &'_ Plan| -> BTreeMap<Address, Change> {
        p.changes
            .iter()
            .map(|c| (c.address.clone(), c.clone()))
            .collect()
    };
    let (before, now) = (by_address(reviewed), by_address(fresh));
    let mut out: Vec<String> = other_cluster(reviewed, fresh).into_iter().collect();
    for (address, c) in &now {
        match before.get(address) {
            None => out.push(format!(
                "new: {} {address} is not in the reviewed plan",
                c.action.symbol()
            )),
            Some(r) => out.extend(change_differences(r, c)),
        }
    }
    for (address, r) in &before {
        if !now.contains_key(address) {
            out.push(format!(
                "missing: {} {address} is no longer planned",
                r.action.symbol()
            ));
        }
    }
    let keys = |m: &BTreeMap<Address, _>| m.keys().cloned().collect::<BTreeSet<_>>();
    for a in keys(&fresh.adopt).symmetric_difference(&keys(&reviewed.adopt)) {
        out.push(format!("inventory: {a} is adopted by one plan only"));
    }
    for (a, entry) in &fresh.adopt {
        if let Some(r) = reviewed.adopt.get(a)
            && (&r.namespace, r.protected) != (&entry.namespace, entry.protected)
        {
            out.push(format!(
                "inventory: {a} is adopted into namespace `{}` (protected: {}), reviewed into `{}` (protected: {})",
                entry.namespace, entry.protected, r.namespace, r.protected
            ));
        }
    }
    let forgotten = |p: &Plan| p.forget.iter().cloned().collect::<BTreeSet<_>>();
    for a in forgotten(fresh).symmetric_difference(&forgotten(reviewed)) {
        out.push(format!("inventory: {a} is forgotten by one plan only"));
    }
    out
}

/// When both plans know the Kafka cluster they were made against and it is
/// not the same one: the same creates would land on another cluster.
fn other_cluster(reviewed: &Plan, fresh: &Plan) -> Option<String> {
    let id = |p: &Plan| p.endpoints.as_ref().and_then(|e| e.cluster_id.clone());
    match (id(reviewed), id(fresh)) {
        (Some(r), Some(f)) if r != f => Some(format!(
            "cluster: the plan was made against Kafka cluster `{r}`; the environment's brokers now report `{f}`"
        )),
        _ => None,
    }
}

/// Action, fields and values of one address in both plans.
fn change_differences(reviewed: &Change, fresh: &Change) -> Vec<String> {
    let a = &fresh.address;
    let mut out = Vec::new();
    if reviewed.action != fresh.action {
        out.push(format!(
            "changed: {a} was {:?}, is now {:?}",
            reviewed.action, fresh.action
        ));
    }
    let fields = |c: &Change| -> BTreeMap<String, FieldChange> {
        c.fields
            .iter()
            .map(|f| (f.field.to_string(), f.clone()))
            .collect()
    };
    let (before, now) = (fields(reviewed), fields(fresh));
    for name in before.keys().chain(now.keys()).collect::<BTreeSet<_>>() {
        let (r, f) = (before.get(name), now.get(name));
        if r.map(|v| &v.after) != f.map(|v| &v.after) {
            let show = |v: Option<&FieldChange>| {
                v.and_then(|v| v.after.as_ref().map(|a| v.show(a)))
                    .unwrap_or_else(|| "(unset)".into())
            };
            out.push(format!(
                "changed: {a} {name}: reviewed `{}`, now `{}`",
                show(r),
                show(f)
            ));
        }
    }
    let recorded = |c: &Change| {
        c.inventory
            .as_ref()
            .map(|e| (e.namespace.clone(), e.protected))
    };
    if recorded(reviewed) != recorded(fresh) {
        out.push(format!(
            "changed: {a}: recorded as {:?}, reviewed as {:?} (namespace, protected)",
            recorded(fresh),
            recorded(reviewed)
        ));
    }
    if out.is_empty() && reviewed.desired != fresh.desired {
        out.push(format!("changed: {a}: the value to write differs"));
    }
    out
}
