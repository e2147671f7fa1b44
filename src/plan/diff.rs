//! Desired state, live state and inventory in; a plan out. No I/O.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as J;

use super::live::{ABSENT, Api, LiveResource, LiveState};
use super::{Action, Cause, Change, FORMAT_VERSION, Field, FieldChange, Plan, Summary};
use crate::config::workspace::Guards;
use crate::resource::{Address, BucketValue, Kind, Resource, TopicValue, Value};
use crate::state::{Inventory, InventoryEntry};

/// Everything a plan is computed from.
pub struct PlanInput<'a> {
    pub environment: &'a str,
    pub revision: Option<&'a str>,
    pub guards: &'a Guards,
    /// Sorted by address, unique.
    pub desired: &'a [Resource],
    pub live: &'a LiveState,
    pub inventory: &'a Inventory,
    pub inventory_revision: i64,
    /// The desired state covers some namespaces only (`plan --base`): an
    /// empty one is no sign of a wrong `--repo`.
    pub partial: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Planning would delete everything sluice manages: almost always a wrong
    /// `--repo` or `--env`, never what anyone wants from one plan.
    #[error(
        "the desired state of environment `{env}` is empty, but sluice manages {managed} resource(s) there; refusing to plan their deletion"
    )]
    EmptyDesired { env: String, managed: usize },
}

/// Computes the plan: creates, updates, deletes and blocked changes, each
/// with its cause, sorted in apply order.
pub fn diff(input: &PlanInput<'_>) -> Result<Plan, PlanError> {
    if input.desired.is_empty() && !input.inventory.entries.is_empty() && !input.partial {
        return Err(PlanError::EmptyDesired {
            env: input.environment.to_owned(),
            managed: input.inventory.entries.len(),
        });
    }
    let desired: BTreeMap<&Address, &Resource> =
        input.desired.iter().map(|r| (&r.address, r)).collect();
    let addresses: BTreeSet<&Address> = desired
        .keys()
        .copied()
        .chain(input.inventory.entries.keys())
        .collect();

    let mut plan = Plan {
        format_version: FORMAT_VERSION,
        environment: input.environment.to_owned(),
        revision: input.revision.map(str::to_owned),
        guards: input.guards.clone(),
        summary: Summary::default(),
        changes: Vec::new(),
        unchanged: 0,
        adopt: BTreeMap::new(),
        forget: Vec::new(),
        fingerprints: BTreeMap::new(),
        inventory_revision: input.inventory_revision,
        dr: Vec::new(),
        policy: Vec::new(),
        scope: None,
        widened: None,
        review: Vec::new(),
        endpoints: None,
        targets: Vec::new(),
        destroy: false,
        digest: None,
    };

    for address in addresses {
        let live = input.live.resources.get(address);
        plan.fingerprints.insert(
            address.clone(),
            live.map_or_else(|| ABSENT.to_owned(), |l| l.fingerprint.clone()),
        );
        let d = desired.get(address).copied();
        if let Some(mut change) = change_of(address, d, live, input, &mut plan) {
            change.drifted =
                super::applied::drifted(&change, live, input.inventory.entries.get(address));
            if let Some(d) = d {
                block(&mut change, unmet_requirements(d, &desired, input.live));
            }
            let missing = required_apis(&change)
                .into_iter()
                .filter(|api| input.live.unsupported.contains(api))
                .map(|api| format!("not supported by this broker ({api})"))
                .collect();
            block(&mut change, missing);
            plan.changes.push(change);
        }
    }
    plan.changes.sort_by_key(apply_order);
    plan.summary = Summary::of(&plan.changes);
    Ok(plan)
}

/// The change one address needs, if any; an unchanged resource is counted,
/// and adopted into the inventory, or forgotten when it is gone.
fn change_of(
    address: &Address,
    desired: Option<&Resource>,
    live: Option<&LiveResource>,
    input: &PlanInput<'_>,
    plan: &mut Plan,
) -> Option<Change> {
    let inv = input.inventory.entries.get(address);
    match (desired, live) {
        (Some(d), None) => Some(create(d, inv)),
        (Some(d), Some(l)) => {
            if let Some(reason) = unprotects(d, inv, input) {
                let mut c = update(d, &l.value, inv).unwrap_or_else(|| {
                    let mut c = change(d, Action::Update, Cause::Pending, Vec::new());
                    c.live = Some(l.value.clone());
                    c
                });
                block(&mut c, vec![reason]);
                return Some(c);
            }
            let c = update(d, &l.value, inv);
            if c.is_none() {
                plan.unchanged += 1;
                let entry = InventoryEntry::of(d);
                if inv != Some(&entry) {
                    plan.adopt.insert(address.clone(), entry);
                }
            }
            c
        }
        // A create sluice never confirmed may have met a resource someone
        // else made: it is forgotten, never deleted.
        (None, Some(_)) if inv.is_some_and(|i| i.creating) => {
            plan.forget.push(address.clone());
            None
        }
        (None, Some(l)) => inv.map(|inv| delete(address, &l.value, inv, input.guards)),
        (None, None) => {
            plan.forget.push(address.clone());
            None
        }
    }
}

/// Why `d` may not move where the YAML puts it: out of a namespace that is
/// protected (now, or when sluice last applied it) into one that is not.
/// Protection follows the resource until the old namespace is unprotected in
/// an applied change.
fn unprotects(d: &Resource, inv: Option<&InventoryEntry>, input: &PlanInput<'_>) -> Option<String> {
    let inv = inv?;
    let by_guard = input.guards.protected_namespaces.contains(&inv.namespace);
    if inv.namespace == d.namespace || d.protected || !(inv.protected || by_guard) {
        return None;
    }
    let from = input
        .desired
        .iter()
        .find(|r| r.namespace == inv.namespace)
        .and_then(|r| r.source.as_ref())
        .map_or_else(
            || "no longer declared".to_owned(),
            |s| format!("declared at {s}"),
        );
    let to = d
        .source
        .as_ref()
        .map_or_else(String::new, |s| format!(" at {s}"));
    let how = if by_guard {
        "remove it from `guards.protected_namespaces`"
    } else {
        "set `metadata.protected: false` on it"
    };
    Some(format!(
        "it moves from protected namespace `{}` ({from}) to `{}`{to}, which is not protected: protection follows the resource. Protect `{}`, or unprotect `{}` first ({how}) and apply that change on its own",
        inv.namespace, d.namespace, d.namespace, inv.namespace
    ))
}

/// Blocks a change for these reasons, if there are any: it then records
/// nothing in the inventory.
fn block(change: &mut Change, reasons: Vec<String>) {
    if !reasons.is_empty() {
        change.action = Action::Blocked;
        change.inventory = None;
        change.reasons.extend(reasons);
    }
}

/// Why what `d` needs is not there: a required resource that is neither
/// desired nor live, or a bucket sluice does not manage that is not versioned.
fn unmet_requirements(
    d: &Resource,
    desired: &BTreeMap<&Address, &Resource>,
    live: &LiveState,
) -> Vec<String> {
    let mut reasons = Vec::new();
    for required in d.requires.iter().filter(|r| !desired.contains_key(r)) {
        let name = required.name();
        reasons.push(match live.resources.get(required).map(|l| &l.value) {
            None if required.kind() == Kind::S3Bucket => format!(
                "bucket `{name}` does not exist and is not declared in the workspace's `disaster_recovery.buckets`, so sluice will not create it: create it, or declare it"
            ),
            None => format!("`{required}` does not exist"),
            Some(Value::Bucket(b)) if !b.versioning => format!(
                "bucket `{name}` is not versioned; S3 replicates only into versioned buckets"
            ),
            Some(_) => continue,
        });
    }
    reasons
}

/// Creates and updates run kind by kind; deletes after them, in reverse.
fn apply_order(c: &Change) -> (bool, usize, Address) {
    let rank = Kind::ALL
        .iter()
        .position(|k| *k == c.address.kind())
        .unwrap_or(0);
    let delete = c.action == Action::Delete;
    (
        delete,
        if delete { Kind::ALL.len() - rank } else { rank },
        c.address.clone(),
    )
}

/// The requests a change needs from its server.
fn required_apis(change: &Change) -> Vec<Api> {
    match (change.address.kind(), change.action) {
        (Kind::KafkaTopic, Action::Create) => vec![Api::CreateTopics],
        (Kind::KafkaTopic, Action::Delete) => vec![Api::DeleteTopics],
        (Kind::KafkaTopic, Action::Update) => {
            let mut apis = BTreeSet::new();
            for f in &change.fields {
                match f.field {
                    Field::Partitions => apis.insert(Api::CreatePartitions),
                    Field::Config(_) => apis.insert(Api::IncrementalAlterConfigs),
                    _ => false,
                };
            }
            apis.into_iter().collect()
        }
        // An ACL sluice could not delete again could never be revoked.
        (Kind::KafkaAcl, Action::Create) => vec![Api::CreateAcls, Api::DeleteAcls],
        (Kind::KafkaAcl, Action::Delete) => vec![Api::DeleteAcls],
        _ => Vec::new(),
    }
}

fn change(d: &Resource, action: Action, cause: Cause, fields: Vec<FieldChange>) -> Change {
    Change {
        address: d.address.clone(),
        namespace: d.namespace.clone(),
        action,
        cause,
        drifted: false,
        fields,
        reasons: Vec::new(),
        source: d.source.clone(),
        desired: Some(d.value.clone()),
        live: None,
        inventory: Some(InventoryEntry::of(d)),
    }
}

/// Drift when the desired value is the one sluice last applied: then only
/// the live side can have moved.
fn cause(d: &Resource, inv: Option<&InventoryEntry>) -> Cause {
    match inv {
        Some(i) if i.digest == d.value.digest() => Cause::Drift,
        _ => Cause::Pending,
    }
}

fn create(d: &Resource, inv: Option<&InventoryEntry>) -> Change {
    let fields = fields_of(&d.value)
        .into_iter()
        .map(|(field, after)| FieldChange {
            field,
            before: None,
            after: Some(after),
        })
        .collect();
    let mut c = change(d, Action::Create, cause(d, inv), fields);
    if c.cause == Cause::Drift {
        c.reasons.push("deleted outside sluice".into());
    }
    c
}

fn update(d: &Resource, live: &Value, inv: Option<&InventoryEntry>) -> Option<Change> {
    // The common case, cheaply: what is live is exactly what is wanted.
    if d.value == *live {
        return None;
    }
    let (fields, reasons, shown) = match (&d.value, live) {
        (Value::Topic(want), Value::Topic(have)) => {
            let managed: BTreeSet<&String> = want
                .config
                .keys()
                .chain(inv.into_iter().flat_map(|i| &i.keys))
                .collect();
            let (fields, reasons) = compare_topic(want, have, &managed, d.partitions_floor);
            let shown = TopicValue {
                config: have
                    .config
                    .iter()
                    .filter(|(k, _)| managed.contains(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                ..have.clone()
            };
            (fields, reasons, Value::Topic(shown))
        }
        (Value::Bucket(want), Value::Bucket(have)) => {
            let (fields, reasons, shown) = compare_bucket(want, have);
            (fields, reasons, Value::Bucket(shown))
        }
        (want, have) => (
            diff_fields(&fields_of(want), &fields_of(have)),
            Vec::new(),
            have.clone(),
        ),
    };
    if fields.is_empty() && reasons.is_empty() {
        return None;
    }
    let mut c = change(d, Action::Update, cause(d, inv), fields);
    c.live = Some(shown);
    if inv.is_none() {
        c.reasons.push(
            "it exists, sluice did not create it, and it differs from the desired state: adopt it with `sluice import`, or make the YAML match it".into(),
        );
    }
    c.reasons.extend(reasons);
    if !c.reasons.is_empty() {
        c.action = Action::Blocked;
        c.inventory = None;
    }
    Some(c)
}

fn compare_topic(
    want: &TopicValue,
    have: &TopicValue,
    managed: &BTreeSet<&String>,
    floor: bool,
) -> (Vec<FieldChange>, Vec<String>) {
    let mut fields = Vec::new();
    let mut reasons = Vec::new();
    let text = |v: Option<&String>| v.map(|v| J::String(v.clone()));
    let field = |name: Field, before: Option<J>, after: Option<J>| FieldChange {
        field: name,
        before,
        after,
    };
    if want.partitions > have.partitions {
        fields.push(field(
            Field::Partitions,
            Some(have.partitions.into()),
            Some(want.partitions.into()),
        ));
    } else if want.partitions < have.partitions && !floor {
        reasons.push(format!(
            "partition count cannot shrink: live {}, desired {}",
            have.partitions, want.partitions
        ));
        fields.push(field(
            Field::Partitions,
            Some(have.partitions.into()),
            Some(want.partitions.into()),
        ));
    }
    if want.replication_factor != have.replication_factor {
        reasons.push(format!(
            "replication factor cannot change in place: live {}, desired {} (it needs a partition reassignment)",
            have.replication_factor, want.replication_factor
        ));
        fields.push(field(
            Field::ReplicationFactor,
            Some(have.replication_factor.into()),
            Some(want.replication_factor.into()),
        ));
    }
    for key in managed {
        let (w, h) = (want.config.get(*key), have.config.get(*key));
        // A key sluice set before and no longer wants is reset to the default.
        if w != h && (w.is_some() || h.is_some()) {
            fields.push(field(Field::Config((*key).clone()), text(h), text(w)));
        }
    }
    (fields, reasons)
}

/// A bucket's settings: only what sluice sets is compared, and what S3
/// cannot do in place is blocked.
fn compare_bucket(
    want: &BucketValue,
    have: &BucketValue,
) -> (Vec<FieldChange>, Vec<String>, BucketValue) {
    let mut reasons = Vec::new();
    // What the live bucket looks like to sluice: settings it does not ask
    // for are not compared.
    let shown = BucketValue {
        object_lock: want.object_lock.as_ref().and(have.object_lock.clone()),
        object_lock_enabled: have.object_lock_enabled,
        tags: have
            .tags
            .iter()
            .filter(|(k, _)| want.tags.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ..have.clone()
    };
    let mut compared = want.clone();
    if !want.object_lock_enabled {
        compared.object_lock_enabled = have.object_lock_enabled;
    }
    if want.region != have.region {
        reasons.push(format!(
            "a bucket cannot move: it is in `{}`, the workspace says `{}`",
            have.region, want.region
        ));
    }
    if want.object_lock_enabled && !have.object_lock_enabled {
        reasons.push(
            "object lock can only be enabled when a bucket is created, and this bucket was created without it: back up to a new bucket, or drop `object_lock`".into(),
        );
    }
    if !want.versioning && have.versioning {
        reasons.push(
            "turning versioning off would lose the point-in-time history; sluice never does it"
                .into(),
        );
    }
    // An empty tag map is no field of its own: its tags are.
    let fields = diff_fields(
        &fields_of(&Value::Bucket(compared)),
        &fields_of(&Value::Bucket(shown.clone())),
    )
    .into_iter()
    .filter(|f| f.field != Field::Path("tags".into()))
    .collect();
    (fields, reasons, shown)
}

fn delete(address: &Address, live: &Value, inv: &InventoryEntry, guards: &Guards) -> Change {
    let protected = inv.protected || guards.protected_namespaces.contains(&inv.namespace);
    let mut c = Change {
        address: address.clone(),
        namespace: inv.namespace.clone(),
        action: Action::Delete,
        cause: Cause::Pending,
        drifted: false,
        fields: Vec::new(),
        reasons: Vec::new(),
        source: None,
        desired: None,
        live: Some(live.clone()),
        inventory: None,
    };
    if protected {
        c.action = Action::Blocked;
        c.reasons.push(format!(
            "namespace `{}` is protected: sluice never deletes its resources",
            inv.namespace
        ));
    }
    c
}

/// The fields that differ, in the desired order, then those only the live side has.
fn diff_fields(want: &[(Field, J)], have: &[(Field, J)]) -> Vec<FieldChange> {
    let (wm, hm): (BTreeMap<_, _>, BTreeMap<_, _>) = (
        want.iter().cloned().collect(),
        have.iter().cloned().collect(),
    );
    want.iter()
        .map(|(k, _)| k)
        .chain(have.iter().map(|(k, _)| k).filter(|k| !wm.contains_key(*k)))
        .filter(|k| wm.get(*k) != hm.get(*k))
        .map(|k| FieldChange {
            field: k.clone(),
            before: hm.get(k).cloned(),
            after: wm.get(k).cloned(),
        })
        .collect()
}

/// The fields of a value as `(name, text)`, for creates and record diffs:
/// a topic's partitions and replication factor first, then its configs.
fn fields_of(value: &Value) -> Vec<(Field, J)> {
    match value {
        Value::Topic(t) => [
            (Field::Partitions, t.partitions.into()),
            (Field::ReplicationFactor, t.replication_factor.into()),
        ]
        .into_iter()
        .chain(
            t.config
                .iter()
                .map(|(k, v)| (Field::Config(k.clone()), J::String(v.clone()))),
        )
        .collect(),
        Value::Acl(_) => Vec::new(),
        // The text renders as a unified diff; bots get the digest.
        Value::Rules(text) => vec![(
            Field::Digest,
            J::String(crate::resource::digest(text.as_bytes())),
        )],
        _ => {
            let mut out = Vec::new();
            flatten("", &value.inner_json(), &mut out);
            out
        }
    }
}

/// JSON leaves as dotted paths (`capacity.write_rps`, `topics[0].name`), in
/// document order: keys sorted, array items in sequence.
fn flatten(path: &str, v: &J, out: &mut Vec<(Field, J)>) {
    let join = |k: &str| {
        if path.is_empty() {
            k.to_owned()
        } else {
            format!("{path}.{k}")
        }
    };
    match v {
        J::Object(m) if !m.is_empty() => m.iter().for_each(|(k, x)| flatten(&join(k), x, out)),
        J::Array(a) if !a.is_empty() => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| flatten(&format!("{path}[{i}]"), x, out)),
        leaf => out.push((Field::Path(path.to_owned()), leaf.clone())),
    }
}
