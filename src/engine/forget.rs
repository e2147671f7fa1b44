//! `sluice forget`: stop managing resources without touching them. Their
//! inventory entries are dropped under the apply lock, in one fenced write
//! with the applied record; the resources live on, and sluice neither
//! changes nor deletes them again (unless the YAML still declares them and
//! a plan adopts them anew).

use std::collections::BTreeMap;

use crate::config::parse::closest_among;
use crate::config::workspace::Guards;
use crate::resource::Address;
use crate::state::{
    AppliedRecord, ApplyStatus, Inventory, InventoryEntry, Lock, Operation, StateError, StateStore,
    now,
};

/// Why nothing was forgotten.
#[derive(Debug, thiserror::Error)]
pub enum ForgetError {
    /// Addresses the inventory does not hold, each with the closest it does.
    #[error(
        "sluice's inventory of environment `{env}` holds no {}; nothing was forgotten",
        .unknown.join(", ")
    )]
    Unknown { env: String, unknown: Vec<String> },
    /// Entries of protected namespaces, without `--force`.
    #[error(
        "refusing to forget {}: sluice remembers a protected namespace's resources as protected in its inventory, and forgetting drops that; nothing was forgotten",
        .0.join(", ")
    )]
    Protected(Vec<String>),
    /// sluice's state could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
}

/// What to forget, and who asks.
pub struct Forget<'a> {
    /// Addresses as plans print them.
    pub addresses: &'a [String],
    /// The workspace's guards: its protected namespaces count as protected.
    pub guards: &'a Guards,
    /// Forget entries of protected namespaces too.
    pub force: bool,
    pub user: &'a str,
    pub environment: &'a str,
}

/// Drops the entries of `what.addresses` from the inventory under `lock`,
/// and records it as a forget in the applied record. Returns the entries
/// dropped. Every address must be in the inventory, and none protected
/// unless forced: otherwise nothing is written.
pub async fn forget(
    state: &dyn StateStore,
    lock: &dyn Lock,
    what: &Forget<'_>,
) -> Result<BTreeMap<Address, InventoryEntry>, ForgetError> {
    let stored = state.load(None).await?;
    let held: BTreeMap<String, &Address> = stored
        .inventory
        .entries
        .keys()
        .map(|a| (a.to_string(), a))
        .collect();
    let unknown: Vec<String> = what
        .addresses
        .iter()
        .filter(|a| !held.contains_key(*a))
        .map(|a| match closest(a, held.keys()) {
            Some(near) => format!("`{a}` (did you mean `{near}`?)"),
            None => format!("`{a}`"),
        })
        .collect();
    if !unknown.is_empty() {
        return Err(ForgetError::Unknown {
            env: what.environment.to_owned(),
            unknown,
        });
    }
    let dropped: BTreeMap<Address, InventoryEntry> = what
        .addresses
        .iter()
        .map(|a| held[a])
        .map(|a| (a.clone(), stored.inventory.entries[a].clone()))
        .collect();
    let protected: Vec<String> = dropped
        .iter()
        .filter(|(_, e)| e.protected || what.guards.protected_namespaces.contains(&e.namespace))
        .map(|(a, e)| format!("`{a}` (protected namespace `{}`)", e.namespace))
        .collect();
    if !protected.is_empty() && !what.force {
        return Err(ForgetError::Protected(protected));
    }
    let mut after = stored.inventory.clone();
    for address in dropped.keys() {
        after.entries.remove(address);
    }
    // An older sluice's layout is rewritten whole, as an apply does.
    let before = if stored.legacy {
        Inventory::default()
    } else {
        stored.inventory
    };
    let forgotten: Vec<String> = dropped.keys().map(ToString::to_string).collect();
    let record = AppliedRecord {
        operation: Operation::Forget,
        status: ApplyStatus::Complete,
        commit: None,
        plan_digest: crate::resource::digest(
            &serde_json::to_vec(&forgotten).expect("addresses are JSON"),
        ),
        time: now(),
        started: None,
        user: what.user.to_owned(),
        applied: forgotten.len(),
        failed: 0,
        planned: 0,
        done: BTreeMap::new(),
        last: None,
        lock: lock.fence().revision,
        errors: Vec::new(),
        forgotten,
    };
    lock.save(&before, &after, &record).await?;
    Ok(dropped)
}

/// The address of `held` closest to `address`: among those of its kind,
/// by name (every topic address starts `kafka.topic/`, which would make
/// any two look alike), else among all.
fn closest<'a>(address: &str, held: impl Iterator<Item = &'a String>) -> Option<&'a String> {
    let split = |a: &'a str| a.split_once('/').unwrap_or(("", a));
    let (kind, name) = address.split_once('/').unwrap_or(("", address));
    let held: Vec<&String> = held.collect();
    let same: Vec<&String> = held
        .iter()
        .copied()
        .filter(|h| split(h).0 == kind)
        .collect();
    let pool = if same.is_empty() { held } else { same };
    let names: Vec<&str> = pool.iter().map(|h| split(h).1).collect();
    let near = closest_among(name, &names)?;
    pool.into_iter().find(|h| split(h).1 == near)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Holder;
    use crate::state::memory::MemoryState;

    fn entry(namespace: &str, protected: bool) -> InventoryEntry {
        InventoryEntry {
            namespace: namespace.into(),
            digest: "d".into(),
            protected,
            keys: Vec::new(),
            creating: false,
        }
    }

    fn state() -> MemoryState {
        let mut inventory = Inventory::default();
        inventory
            .entries
            .insert(Address::topic("orders"), entry("shop", false));
        inventory
            .entries
            .insert(Address::topic("ledger"), entry("bank", true));
        inventory
            .entries
            .insert(Address::topic("audit"), entry("vault", false));
        MemoryState::new("prod", inventory)
    }

    async fn run(state: &MemoryState, addresses: &[&str], force: bool) -> Result<usize, String> {
        let lock = state
            .lock(&Holder::current(), std::time::Duration::ZERO)
            .await
            .unwrap();
        let addresses: Vec<String> = addresses.iter().map(|a| (*a).to_owned()).collect();
        let guards = Guards {
            protected_namespaces: vec!["vault".into()],
            ..Guards::default()
        };
        let what = Forget {
            addresses: &addresses,
            guards: &guards,
            force,
            user: "ops",
            environment: "prod",
        };
        let result = forget(state, lock.as_ref(), &what).await;
        lock.release().await.unwrap();
        result.map(|d| d.len()).map_err(|e| e.to_string())
    }

    #[tokio::test]
    async fn forgets_entries_and_records_it_as_a_forget() {
        let state = state();
        assert_eq!(run(&state, &["kafka.topic/orders"], false).await, Ok(1));
        let stored = state.snapshot();
        assert!(
            !stored
                .inventory
                .entries
                .contains_key(&Address::topic("orders"))
        );
        assert_eq!(stored.inventory.entries.len(), 2);
        let record = stored.applied.unwrap();
        assert_eq!(record.operation, Operation::Forget);
        assert_eq!(record.user, "ops");
        assert_eq!(record.forgotten, ["kafka.topic/orders"]);
    }

    #[tokio::test]
    async fn an_unknown_address_is_named_with_the_closest_and_nothing_is_forgotten() {
        let state = state();
        let err = run(&state, &["kafka.topic/orders", "kafka.topic/ordres"], false)
            .await
            .unwrap_err();
        assert!(
            err.contains("`kafka.topic/ordres` (did you mean `kafka.topic/orders`?)"),
            "{err}"
        );
        assert_eq!(state.snapshot().inventory.entries.len(), 3);
        assert!(state.snapshot().applied.is_none());
        // Compared by name within a kind: a shared `kafka.topic/` is no likeness.
        let err = run(&state, &["kafka.topic/zzz"], false).await.unwrap_err();
        assert!(!err.contains("did you mean"), "{err}");
    }

    #[tokio::test]
    async fn protected_entries_need_force() {
        let state = state();
        for protected in ["kafka.topic/ledger", "kafka.topic/audit"] {
            let err = run(&state, &[protected], false).await.unwrap_err();
            assert!(err.contains("protected namespace"), "{err}");
            assert_eq!(state.snapshot().inventory.entries.len(), 3);
        }
        assert_eq!(
            run(&state, &["kafka.topic/ledger", "kafka.topic/audit"], true).await,
            Ok(2)
        );
        assert_eq!(state.snapshot().inventory.entries.len(), 1);
    }
}
