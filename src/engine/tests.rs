//! The engine's semantics on the fakes: order, guards, staleness, the lock,
//! failures, interrupts and failed reads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::apply::{ApplyError, ApplyOptions, apply};
use super::{EngineError, Known, Planned, Target, plan_resources};
use crate::backend::BackendError;
use crate::backend::fake::FakeBackend;
use crate::config::workspace::Guards;
use crate::plan::Plan;
use crate::resource::{Address, Resource, System, TopicValue, Value};
use crate::state::memory::MemoryState;
use crate::state::{ApplyStatus, Holder, Inventory, StateError, StateStore};

pub(super) struct World {
    pub kafka: FakeBackend,
    pub etcd: FakeBackend,
    pub state: MemoryState,
    pub target: Target,
}

pub(super) fn world() -> World {
    let kafka = FakeBackend::new(System::Kafka);
    let etcd = kafka.sharing(System::Etcd);
    let state = MemoryState::new("dev", Inventory::default());
    let target = Target {
        backends: vec![Box::new(kafka.clone()), Box::new(etcd.clone())],
        state: Box::new(state.clone()),
        catalog: None,
        cluster: None,
        clock: crate::engine::Clock::System,
    };
    World {
        kafka,
        etcd,
        state,
        target,
    }
}

fn resource(address: Address, namespace: &str, value: Value) -> Resource {
    Resource {
        address,
        namespace: namespace.into(),
        value,
        partitions_floor: false,
        protected: false,
        source: None,
        requires: Vec::new(),
    }
}

pub(super) fn topic(name: &str, partitions: u32) -> Resource {
    let value = TopicValue {
        partitions,
        replication_factor: 1,
        config: crate::resource::Configs::from_iter([(
            "retention.ms".to_owned(),
            "1000".to_owned(),
        )]),
    };
    resource(Address::topic(name), name, Value::Topic(value))
}

pub(super) fn record(name: &str) -> Resource {
    resource(
        Address::etcd_key(&format!("/sluice/namespaces/{name}")),
        name,
        Value::Record(json!({"name": name}).into()),
    )
}

pub(super) fn holder() -> Holder {
    Holder {
        user: "tests".into(),
        host: "here".into(),
        pid: 7,
        since: "2026-01-01T00:00:00Z".into(),
    }
}

pub(super) fn options(allow_delete: bool) -> ApplyOptions {
    ApplyOptions {
        allow_delete,
        lock_wait: Duration::ZERO,
        holder: holder(),
        cancel: Arc::default(),
        batch: crate::engine::apply::BATCH,
        progress: Arc::new(crate::engine::progress::Silent),
    }
}

pub(super) async fn plan(
    w: &World,
    desired: &[Resource],
    guards: &Guards,
) -> Result<Planned, EngineError> {
    let mut desired = desired.to_vec();
    desired.sort_by(|a, b| a.address.cmp(&b.address));
    plan_resources(
        "dev",
        None,
        guards,
        &desired,
        None,
        &w.target,
        Known::Nothing,
    )
    .await
}

/// A plan of `desired` scoped to one namespace, as `plan --base` makes it.
async fn scoped(w: &World, desired: &[Resource], namespace: &str) -> Plan {
    let scope = std::collections::BTreeSet::from([namespace.to_owned()]);
    let guards = Guards::default();
    let planned = plan_resources(
        "dev",
        None,
        &guards,
        desired,
        Some(&scope),
        &w.target,
        Known::Nothing,
    );
    planned.await.unwrap().plan
}

async fn converge(w: &World, desired: &[Resource]) -> Plan {
    let p = plan(w, desired, &Guards::default()).await.unwrap().plan;
    let outcome = apply(&p, &w.target, &options(true)).await.unwrap();
    assert_eq!(outcome.status(), ApplyStatus::Complete);
    p
}

#[tokio::test]
async fn applies_in_order_then_converges() {
    let w = world();
    let desired = [
        record("orders"),
        topic("orders", 3),
        record("billing"),
        topic("billing", 1),
    ];
    converge(&w, &desired).await;
    // Each system reads its own addresses, at plan time and again under the
    // lock; then topics are created before etcd records, one batch per kind.
    assert_eq!(
        w.kafka.calls(),
        [
            "read Kafka 2",
            "read etcd 2",
            "read Kafka 2",
            "read etcd 2",
            "create kafka.topic/billing",
            "create kafka.topic/orders",
            "create etcd.key//sluice/namespaces/billing",
            "create etcd.key//sluice/namespaces/orders",
        ]
    );
    let again = plan(&w, &desired, &Guards::default()).await.unwrap().plan;
    assert!(again.is_empty(), "{:#?}", again.changes);
    assert_eq!(w.state.snapshot().inventory.entries.len(), 4);
    assert_eq!(
        w.state.snapshot().applied.unwrap().status,
        ApplyStatus::Complete
    );
}

#[tokio::test]
async fn deletes_need_permission_stay_under_the_limit_and_run_in_reverse() {
    let w = world();
    converge(
        &w,
        &[
            topic("orders", 3),
            record("orders"),
            topic("billing", 1),
            record("billing"),
        ],
    )
    .await;
    let p = plan(
        &w,
        &[topic("orders", 3), record("orders")],
        &Guards::default(),
    )
    .await
    .unwrap()
    .plan;
    assert_eq!(p.summary.delete, 2);

    let refused = apply(&p, &w.target, &options(false)).await.unwrap_err();
    assert!(
        matches!(refused, ApplyError::DeletesNotAllowed(2)),
        "{refused}"
    );
    let limited = Plan {
        guards: Guards {
            max_deletes: 1,
            ..Guards::default()
        },
        ..p.clone()
    };
    assert!(matches!(
        apply(&limited, &w.target, &options(true)).await,
        Err(ApplyError::TooManyDeletes { count: 2, max: 1 })
    ));
    assert!(
        w.kafka.resources().contains_key(&Address::topic("billing")),
        "nothing was deleted"
    );

    apply(&p, &w.target, &options(true)).await.unwrap();
    let deletes: Vec<String> = w
        .kafka
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("delete"))
        .collect();
    assert_eq!(
        deletes,
        [
            "delete etcd.key//sluice/namespaces/billing",
            "delete kafka.topic/billing"
        ]
    );
    assert!(
        !w.state
            .snapshot()
            .inventory
            .entries
            .contains_key(&Address::topic("billing"))
    );
}

#[tokio::test]
async fn a_stale_plan_changes_nothing() {
    let w = world();
    converge(&w, &[topic("orders", 3)]).await;
    let p = plan(
        &w,
        &[topic("orders", 6), topic("billing", 1)],
        &Guards::default(),
    )
    .await
    .unwrap()
    .plan;
    // Someone changes the topic between plan and apply.
    w.kafka
        .insert(Address::topic("orders"), topic("orders", 4).value);
    let err = apply(&p, &w.target, &options(false)).await.unwrap_err();
    assert!(
        matches!(&err, ApplyError::Stale(s) if s == &["kafka.topic/orders".to_owned()]),
        "{err}"
    );
    assert!(
        !w.kafka
            .calls()
            .iter()
            .any(|c| c.starts_with("create") && c.contains("billing"))
    );

    // Another apply between plan and apply makes the plan stale too.
    let p = plan(
        &w,
        &[topic("orders", 4), topic("billing", 1)],
        &Guards::default(),
    )
    .await
    .unwrap()
    .plan;
    converge(&w, &[topic("orders", 4), record("orders")]).await;
    assert!(matches!(
        apply(&p, &w.target, &options(false)).await,
        Err(ApplyError::Stale(_))
    ));
}

#[tokio::test]
async fn a_held_lock_fails_fast_naming_its_holder() {
    let w = world();
    let p = plan(&w, &[topic("orders", 3)], &Guards::default())
        .await
        .unwrap()
        .plan;
    let other = Holder {
        user: "alice".into(),
        ..holder()
    };
    let lock = w.state.lock(&other, Duration::ZERO).await.unwrap();
    let err = apply(&p, &w.target, &options(false)).await.unwrap_err();
    assert!(
        matches!(&err, ApplyError::State(StateError::Locked { holder, .. }) if holder.starts_with("alice@here")),
        "{err}"
    );
    assert!(w.kafka.resources().is_empty());
    lock.release().await.unwrap();
    apply(&p, &w.target, &options(false)).await.unwrap();
    // The lock is released after an apply: another can take it.
    w.state.lock(&holder(), Duration::ZERO).await.unwrap();
}

#[tokio::test]
async fn a_blocked_plan_is_refused() {
    let w = world();
    converge(&w, &[topic("orders", 6)]).await;
    let p = plan(&w, &[topic("orders", 3)], &Guards::default())
        .await
        .unwrap()
        .plan;
    assert_eq!(p.summary.blocked, 1);
    assert!(matches!(
        apply(&p, &w.target, &options(true)).await,
        Err(ApplyError::Blocked(1))
    ));
}

#[tokio::test]
async fn a_failure_stops_the_apply_and_records_what_landed() {
    let w = world();
    w.etcd.refuse(record("orders").address);
    let p = plan(
        &w,
        &[topic("orders", 3), record("orders")],
        &Guards::default(),
    )
    .await
    .unwrap()
    .plan;
    let outcome = apply(&p, &w.target, &options(false)).await.unwrap();
    assert_eq!(outcome.status(), ApplyStatus::Failed);
    assert_eq!(outcome.applied, [Address::topic("orders")]);
    let stored = w.state.snapshot();
    assert!(
        stored
            .inventory
            .entries
            .contains_key(&Address::topic("orders"))
    );
    assert!(
        !stored
            .inventory
            .entries
            .contains_key(&record("orders").address),
        "a record is made in one request or not at all: no intent"
    );
    let applied = stored.applied.unwrap();
    assert_eq!(
        (applied.status, applied.applied, applied.failed),
        (ApplyStatus::Failed, 1, 1)
    );
    assert!(
        applied.errors[0].contains("refused"),
        "{:?}",
        applied.errors
    );
}

#[tokio::test]
async fn an_interrupt_starts_nothing_new_and_releases_the_lock() {
    let w = world();
    let p = plan(
        &w,
        &[topic("orders", 3), record("orders")],
        &Guards::default(),
    )
    .await
    .unwrap()
    .plan;
    let opts = options(false);
    opts.cancel.trigger();
    let outcome = apply(&p, &w.target, &opts).await.unwrap();
    assert!(outcome.interrupted);
    assert_eq!(outcome.not_attempted, 2);
    assert!(w.kafka.resources().is_empty());
    assert_eq!(
        w.state.snapshot().applied.unwrap().status,
        ApplyStatus::Interrupted
    );
    w.state.lock(&holder(), Duration::ZERO).await.unwrap();
}

#[tokio::test]
async fn a_failed_read_fails_the_plan_and_never_becomes_deletes() {
    let w = world();
    converge(&w, &[topic("orders", 3), record("orders")]).await;
    w.kafka.fail_reads(true);
    let err = plan(&w, &[record("orders")], &Guards::default())
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            EngineError::Backend(BackendError::Read {
                system: System::Kafka,
                ..
            })
        ),
        "{err}"
    );
}

#[tokio::test]
async fn an_empty_desired_state_never_deletes_everything() {
    let w = world();
    converge(&w, &[topic("orders", 3)]).await;
    let err = plan(&w, &[], &Guards::default()).await.err().unwrap();
    assert!(
        err.to_string().contains("refusing to plan their deletion"),
        "{err}"
    );
}

/// A world with S3 too.
fn with_s3() -> (World, FakeBackend) {
    let mut w = world();
    let s3 = w.kafka.sharing(System::S3);
    w.target.backends.push(Box::new(s3.clone()));
    (w, s3)
}

fn bucket(name: &str, versioning: bool) -> Resource {
    let value = crate::resource::BucketValue {
        region: "us-east-1".into(),
        versioning,
        object_lock_enabled: false,
        object_lock: None,
        public_access_blocked: true,
        default_encryption: true,
        tags: BTreeMap::new(),
    };
    resource(Address::bucket(name), "backups", Value::Bucket(value))
}

#[tokio::test]
async fn a_bucket_half_made_by_a_failed_create_is_owned_and_finished_by_the_next_apply() {
    let (w, s3) = with_s3();
    let wanted = bucket("b", true);
    s3.refuse(wanted.address.clone());
    let p = plan(&w, std::slice::from_ref(&wanted), &Guards::default())
        .await
        .unwrap()
        .plan;
    let outcome = apply(&p, &w.target, &options(false)).await.unwrap();
    assert_eq!(outcome.status(), ApplyStatus::Failed);
    assert!(w.state.snapshot().inventory.entries[&wanted.address].creating);
    // Half made: it exists, without the settings sluice was about to send.
    s3.insert(wanted.address.clone(), bucket("b", false).value);
    let next = plan(&w, std::slice::from_ref(&wanted), &Guards::default())
        .await
        .unwrap()
        .plan;
    assert_eq!(next.summary.blocked, 0, "{:#?}", next.changes);
    assert_eq!(next.summary.update, 1, "{:#?}", next.changes);
    // The next apply finishes it and records it as made.
    s3.clear_refusals();
    let outcome = apply(&next, &w.target, &options(false)).await.unwrap();
    assert_eq!(outcome.status(), ApplyStatus::Complete);
    assert!(!w.state.snapshot().inventory.entries[&wanted.address].creating);
    assert!(
        plan(&w, &[wanted], &Guards::default())
            .await
            .unwrap()
            .plan
            .is_empty()
    );
}

#[tokio::test]
async fn a_create_never_sent_leaves_no_intent_and_an_unconfirmed_one_is_never_deleted() {
    let (w, s3) = with_s3();
    s3.refuse(Address::bucket("a"));
    let p = plan(
        &w,
        &[bucket("a", true), bucket("b", true)],
        &Guards::default(),
    )
    .await
    .unwrap()
    .plan;
    let mut opts = options(false);
    opts.batch = 1;
    let outcome = apply(&p, &w.target, &opts).await.unwrap();
    assert_eq!(outcome.not_attempted, 1);
    let entries = w.state.snapshot().inventory.entries;
    assert!(entries[&Address::bucket("a")].creating);
    assert!(!entries.contains_key(&Address::bucket("b")));

    // Someone makes `a` by hand and the YAML drops it: sluice forgets its
    // intent and deletes nothing.
    s3.insert(Address::bucket("a"), bucket("a", true).value);
    let p = plan(&w, &[topic("orders", 1)], &Guards::default())
        .await
        .unwrap()
        .plan;
    assert_eq!(p.summary.delete, 0, "{:#?}", p.changes);
    assert_eq!(p.forget, [Address::bucket("a")]);
}

/// Topic `orders` applied in protected namespace `payments`, and the same
/// topic declared in unprotected `scratch`.
async fn applied_in_payments_then_moved(w: &World) -> (Resource, Resource) {
    let mut guarded = topic("orders", 1);
    guarded.namespace = "payments".into();
    guarded.protected = true;
    converge(w, std::slice::from_ref(&guarded)).await;
    let mut moved = guarded.clone();
    moved.namespace = "scratch".into();
    moved.protected = false;
    (guarded, moved)
}

#[tokio::test]
async fn moving_a_topic_out_of_a_protected_namespace_is_blocked_until_it_is_unprotected() {
    let w = world();
    let (guarded, moved) = applied_in_payments_then_moved(&w).await;
    let p = plan(&w, std::slice::from_ref(&moved), &Guards::default())
        .await
        .unwrap()
        .plan;
    assert_eq!(p.summary.blocked, 1, "{:#?}", p.changes);
    let reason = &p.changes[0].reasons[0];
    assert!(
        reason.contains("protected namespace `payments`"),
        "{reason}"
    );
    assert!(p.adopt.is_empty(), "a blocked move records nothing");

    // Unprotected in an applied change of its own, it may move.
    let mut unprotected = guarded.clone();
    unprotected.protected = false;
    converge(&w, &[unprotected]).await;
    let p = plan(&w, &[moved], &Guards::default()).await.unwrap().plan;
    assert_eq!(p.summary.blocked, 0, "{:#?}", p.changes);
    assert_eq!(p.adopt[&Address::topic("orders")].namespace, "scratch");
}

#[tokio::test]
async fn a_scoped_plan_still_sees_the_protection_of_a_resource_moving_in_from_outside_it() {
    let w = world();
    // A pull request touching only `scratch` declares the topic there.
    let (_, moved) = applied_in_payments_then_moved(&w).await;
    let p = scoped(&w, &[moved], "scratch").await;
    assert_eq!(p.summary.blocked, 1, "{:#?}", p.changes);
    assert!(p.adopt.is_empty(), "{:?}", p.adopt);
}

#[tokio::test]
async fn a_scoped_plan_hands_a_shared_bucket_over_instead_of_deleting_it() {
    let (w, _s3) = with_s3();
    let mut shared = bucket("x", true);
    shared.namespace = "alpha".into();
    converge(&w, std::slice::from_ref(&shared)).await;

    // `alpha` stops using the bucket in a pull request touching only it;
    // `beta`, outside the scope, still uses it.
    let mut kept = shared.clone();
    kept.namespace = "beta".into();
    let p = scoped(&w, &[kept], "alpha").await;
    assert_eq!(p.summary.delete, 0, "{:#?}", p.changes);
    assert_eq!(p.scope, Some(vec!["alpha".to_owned(), "beta".to_owned()]));
    assert_eq!(p.adopt[&Address::bucket("x")].namespace, "beta");
}

/// A full plan that reads sluice's state and the inventory's resources while
/// its YAML still parses ([`super::prefetch`]).
async fn prefetched(w: &World, desired: &[Resource]) -> Result<Planned, EngineError> {
    let mut desired = desired.to_vec();
    desired.sort_by(|a, b| a.address.cmp(&b.address));
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let _ = sender.send(super::prefetch(&w.target).await);
    let guards = Guards::default();
    let known = Known::Reading(receiver);
    plan_resources("dev", None, &guards, &desired, None, &w.target, known).await
}

#[tokio::test]
async fn a_prefetched_plan_reads_the_inventory_then_only_what_the_yaml_adds() {
    let w = world();
    converge(
        &w,
        &[topic("orders", 3), record("orders"), topic("billing", 1)],
    )
    .await;
    let desired = [topic("orders", 5), record("orders"), topic("audit", 1)];
    let before = w.kafka.calls().len();
    let early = prefetched(&w, &desired).await.unwrap().plan;
    // The inventory's three resources first, then the one topic it lacks
    // (each system is asked, with nothing to read it makes no request).
    assert_eq!(
        w.kafka.calls()[before..],
        ["read Kafka 2", "read etcd 1", "read Kafka 1", "read etcd 0"]
    );
    let late = plan(&w, &desired, &Guards::default()).await.unwrap().plan;
    assert_eq!(
        serde_json::to_value(&early).unwrap(),
        serde_json::to_value(&late).unwrap()
    );
    let actions: Vec<String> = early
        .changes
        .iter()
        .map(|c| format!("{:?} {}", c.action, c.address))
        .collect();
    assert_eq!(
        actions,
        [
            "Create kafka.topic/audit",
            "Update kafka.topic/orders",
            "Delete kafka.topic/billing"
        ]
    );
    // A failed read of the inventory's resources fails the plan: never deletes.
    w.kafka.fail_reads(true);
    let err = prefetched(&w, &desired).await.err().unwrap();
    assert!(
        matches!(err, EngineError::Backend(BackendError::Read { .. })),
        "{err}"
    );
}
