//! Whether a live resource is still what sluice last applied, for a change
//! the desired state asks for anyway: a pending change on a resource that
//! also moved outside sluice is drift as well, and the watcher's
//! `sluice_drifted_resources` must count it whatever else is pending.
//!
//! The inventory keeps only a digest of the value sluice applied, so the
//! live value is brought to the shape that was digested and compared.

use super::live::LiveResource;
use super::{Action, Cause, Change};
use crate::resource::{TopicValue, Value};
use crate::state::InventoryEntry;

/// The most partition counts tried for a topic whose count grew (see
/// [`topic_as_applied`]), so that a plan of many drifted topics stays quick:
/// one grown by more, with nothing else changed, reads as drifted.
const MOST_TRIED: u32 = 1_024;

/// Whether the live resource of a pending change moved since sluice last
/// applied it. Buckets are not judged: what sluice compares of them depends
/// on what the desired state asks, which is what moved.
pub(super) fn drifted(
    change: &Change,
    live: Option<&LiveResource>,
    inv: Option<&InventoryEntry>,
) -> bool {
    let Some(inv) = inv.filter(|i| !i.creating && !i.digest.is_empty()) else {
        return false;
    };
    if change.cause != Cause::Pending || change.action == Action::Delete {
        return false;
    }
    match live.map(|l| &l.value) {
        // Applied once, and gone since.
        None => true,
        Some(Value::Topic(t)) => !topic_as_applied(t, inv),
        Some(Value::Bucket(_) | Value::Acl(_)) => false,
        Some(v) => v.digest() != inv.digest,
    }
}

/// Whether a live topic is the one sluice applied: the same replication
/// factor and, of the configs sluice set, the same values; the same
/// partition count, or fewer applied. A derived count is only a floor, so a
/// topic may rightly have grown past it; the digest does not say what the
/// applied count was, so the counts below the live one are tried.
fn topic_as_applied(t: &TopicValue, inv: &InventoryEntry) -> bool {
    let mut applied = TopicValue {
        config: t
            .config
            .iter()
            .filter(|(k, _)| inv.keys.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ..t.clone()
    };
    let lowest = t.partitions.saturating_sub(MOST_TRIED).max(1);
    (lowest..=t.partitions).rev().any(|p| {
        applied.partitions = p;
        Value::Topic(applied.clone()).digest() == inv.digest
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Address;

    fn topic(partitions: u32, config: &[(&str, &str)]) -> TopicValue {
        TopicValue {
            partitions,
            replication_factor: 3,
            config: config
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    fn entry(applied: &TopicValue) -> InventoryEntry {
        InventoryEntry {
            namespace: "orders".into(),
            digest: Value::Topic(applied.clone()).digest(),
            protected: false,
            keys: applied.config.keys().cloned().collect(),
            creating: false,
        }
    }

    fn pending() -> Change {
        Change::bare(
            Address::topic("orders"),
            "orders",
            Action::Blocked,
            Cause::Pending,
        )
    }

    fn live(t: TopicValue) -> LiveResource {
        LiveResource {
            value: Value::Topic(t),
            fingerprint: String::new(),
        }
    }

    #[test]
    fn a_topic_moved_outside_sluice_is_drift_under_a_pending_change() {
        let applied = topic(6, &[("retention.ms", "604800000")]);
        let inv = entry(&applied);
        let c = pending();
        // As applied, with a key sluice does not set: no drift.
        let same = topic(6, &[("retention.ms", "604800000"), ("segment.ms", "1")]);
        assert!(!drifted(&c, Some(&live(same)), Some(&inv)));
        // Grown past a derived count: no drift.
        let grown = topic(9, &[("retention.ms", "604800000")]);
        assert!(!drifted(&c, Some(&live(grown)), Some(&inv)));
        // A config sluice set, changed by hand; or removed; or gone.
        let changed = topic(6, &[("retention.ms", "1000")]);
        assert!(drifted(&c, Some(&live(changed)), Some(&inv)));
        assert!(drifted(&c, Some(&live(topic(6, &[]))), Some(&inv)));
        assert!(drifted(&c, None, Some(&inv)));
        // Never applied, or only meant to be: nothing to compare with.
        assert!(!drifted(&c, None, None));
        let intent = inv.intent();
        assert!(!drifted(&c, None, Some(&intent)));
    }

    #[test]
    fn a_record_is_compared_whole() {
        let applied = Value::Record(serde_json::json!({"owner": "a"}).into());
        let inv = InventoryEntry {
            namespace: "orders".into(),
            digest: applied.digest(),
            protected: false,
            keys: Vec::new(),
            creating: false,
        };
        let at = |v: serde_json::Value| LiveResource {
            value: Value::Record(v.into()),
            fingerprint: String::new(),
        };
        let c = pending();
        assert!(!drifted(
            &c,
            Some(&at(serde_json::json!({"owner": "a"}))),
            Some(&inv)
        ));
        assert!(drifted(
            &c,
            Some(&at(serde_json::json!({"owner": "b"}))),
            Some(&inv)
        ));
        let drift = Change {
            cause: Cause::Drift,
            ..pending()
        };
        assert!(
            !drifted(&drift, None, Some(&inv)),
            "a drift change says so already"
        );
    }
}
