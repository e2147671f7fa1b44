//! sluice's own state in etcd: one inventory key per namespace, what an
//! older sluice's shards become, and staleness per namespace.

use std::collections::BTreeMap;

use etcd_client::GetOptions;
use git2::Repository;

use crate::common::{Run, TestRepo, commit_all};

pub(crate) fn ok(run: &Run) {
    assert_eq!(run.code, 0, "{}", run.all_output());
}

/// A `topics:` list of `<tag>-<name>` topics, for a namespace's spec.
pub(crate) fn topics(names: &[&str]) -> String {
    let mut spec = String::from("  topics:\n");
    for n in names {
        spec.push_str(&format!("    - name: {{tag}}-{n}\n"));
    }
    spec
}

/// The addresses a JSON plan changes.
pub(crate) fn addresses_of(plan: &serde_json::Value) -> Vec<String> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["address"].as_str().unwrap().to_owned())
        .collect()
}

/// Every key under the test's inventory, with its value and mod revision.
async fn inventory_keys(repo: &TestRepo) -> BTreeMap<String, (serde_json::Value, i64)> {
    let mut etcd = etcd_client::Client::connect([repo.services().etcd.as_str()], None)
        .await
        .unwrap();
    let prefix = format!("{}inventory/local/", repo.prefix());
    let got = etcd
        .get(prefix.as_str(), Some(GetOptions::new().with_prefix()))
        .await
        .unwrap();
    got.kvs()
        .iter()
        .map(|kv| {
            let key = kv
                .key_str()
                .unwrap()
                .strip_prefix(&prefix)
                .unwrap()
                .to_owned();
            let value = serde_json::from_slice(kv.value()).unwrap();
            (key, (value, kv.mod_revision()))
        })
        .collect()
}

#[tokio::test]
async fn the_inventory_is_a_key_per_namespace_and_an_older_layout_is_rewritten() {
    let repo = TestRepo::new();
    repo.namespace("a", &topics(&["a"]));
    repo.namespace("b", &topics(&["b"]));
    ok(&repo.run(&["apply", "--auto-approve"]));
    let keys = inventory_keys(&repo).await;
    let names: Vec<&str> = keys.keys().map(String::as_str).collect();
    let (a, b) = (
        format!("ns/{}", repo.name("a")),
        format!("ns/{}", repo.name("b")),
    );
    assert_eq!(names, [a.as_str(), b.as_str()]);
    for (key, (value, _)) in &keys {
        let namespace = key.strip_prefix("ns/").unwrap();
        let entries = value["entries"].as_object().unwrap();
        assert!(!entries.is_empty());
        assert!(
            entries.values().all(|e| e["namespace"] == namespace),
            "{value}"
        );
    }

    // The layout of an older sluice: every entry in shards by address.
    let mut etcd = etcd_client::Client::connect([repo.services().etcd.as_str()], None)
        .await
        .unwrap();
    let prefix = format!("{}inventory/local/", repo.prefix());
    let mut all = serde_json::Map::new();
    for (value, _) in keys.values() {
        all.extend(value["entries"].as_object().unwrap().clone());
    }
    etcd.delete(
        prefix.as_str(),
        Some(etcd_client::DeleteOptions::new().with_prefix()),
    )
    .await
    .unwrap();
    let shard = serde_json::json!({"format_version": 1, "entries": all});
    etcd.put(format!("{prefix}7"), shard.to_string(), None)
        .await
        .unwrap();
    ok(&repo.run(&["plan", "--detailed-exitcode"]));

    // The next apply writes every namespace and removes the shards, though
    // only `a` changes.
    repo.namespace("a", &topics(&["a", "a2"]));
    ok(&repo.run(&["apply", "--auto-approve"]));
    let keys = inventory_keys(&repo).await;
    let names: Vec<&str> = keys.keys().map(String::as_str).collect();
    assert_eq!(names, [a.as_str(), b.as_str()]);
    assert_eq!(
        keys[&a].0["entries"].as_object().unwrap().len(),
        all.len() / 2 + 1
    );
    ok(&repo.run(&["plan", "--detailed-exitcode"]));
}

/// An apply writes only the namespaces it changes, so a saved plan of one
/// namespace stays good after another namespace is applied.
#[tokio::test]
async fn a_plan_goes_stale_only_when_its_own_namespaces_are_written() {
    let repo = TestRepo::new();
    let git = Repository::init(repo.dir.path()).unwrap();
    repo.namespace("a", &topics(&["a"]));
    repo.namespace("b", &topics(&["b"]));
    let base = commit_all(&git, "two namespaces").to_string();
    ok(&repo.run(&["apply", "--auto-approve"]));

    repo.namespace("a", &topics(&["a", "a2"]));
    let saved = repo.dir.path().join("a.json");
    ok(&repo.run(&["plan", "--base", &base, "--out", saved.to_str().unwrap()]));

    // Meanwhile, `b` alone is changed and applied.
    let before = inventory_keys(&repo).await;
    repo.namespace("a", &topics(&["a"]));
    repo.namespace("b", &topics(&["b", "b2"]));
    ok(&repo.run(&["apply", "--auto-approve"]));
    let after = inventory_keys(&repo).await;
    let (a, b) = (
        format!("ns/{}", repo.name("a")),
        format!("ns/{}", repo.name("b")),
    );
    assert_eq!(after[&a].1, before[&a].1, "`a` was not written");
    assert!(after[&b].1 > before[&b].1, "`b` was written");

    repo.namespace("a", &topics(&["a", "a2"]));
    let applied = repo.run(&["apply", saved.to_str().unwrap(), "--auto-approve"]);
    ok(&applied);
    assert!(repo.has_topic("a2"));
    ok(&repo.run(&["plan", "--detailed-exitcode"]));
}

/// A resource recorded under a namespace outside the scope, taken over by
/// the change: the namespace it leaves is rewritten without it, so that it
/// is never recorded twice.
#[tokio::test]
async fn a_resource_taken_over_from_outside_the_scope_leaves_its_old_namespace() {
    let repo = TestRepo::new();
    let git = Repository::init(repo.dir.path()).unwrap();
    repo.namespace("a", &topics(&["a", "x"]));
    repo.namespace("b", &topics(&["b"]));
    commit_all(&git, "x in a");
    ok(&repo.run(&["apply", "--auto-approve"]));
    // `a` gives `x` up in a commit nobody applied; the change gives it to `b`.
    repo.namespace("a", &topics(&["a"]));
    let base = commit_all(&git, "a drops x").to_string();
    repo.namespace("b", &topics(&["b", "x"]));
    let saved = repo.dir.path().join("b.json");
    ok(&repo.run(&["plan", "--base", &base, "--out", saved.to_str().unwrap()]));
    ok(&repo.run(&["apply", saved.to_str().unwrap()]));

    let keys = inventory_keys(&repo).await;
    let x = format!("kafka.topic/{}", repo.name("x"));
    let holds = |short: &str| {
        keys[&format!("ns/{}", repo.name(short))].0["entries"]
            .as_object()
            .unwrap()
            .contains_key(&x)
    };
    assert!(holds("b"), "{keys:?}");
    assert!(!holds("a"), "`a` still records {x}: {keys:?}");
    assert!(repo.has_topic("x"));
    // A full plan leaves `x` alone (only `a`'s unapplied record is pending).
    let full = repo.run(&["plan", "--format", "json"]);
    ok(&full);
    let touched = addresses_of(&full.json());
    assert!(!touched.contains(&x), "{touched:?}");
}
