//! Golden plans on the fake backends: `tests/fixtures/plans/<case>/` holds
//! the state applied before (`applied/`, optional), edits to the live state
//! made behind sluice's back (`live.yaml`, optional), the desired state
//! (`desired/`), and the expected plan as text and JSON. One case per action
//! and per guard; each `README` says what it shows.
//!
//! `SLUICE_BLESS=1 cargo test --test it plans` rewrites the expected files;
//! review the diff before committing it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use sluice::backend::BackupCatalog;
use sluice::backend::fake::{FakeBackend, FakeCatalog};
use sluice::desired::{Desired, Overrides, Selection, load};
use sluice::engine::apply::{ApplyOptions, apply};
use sluice::engine::{self, Clock, Target};
use sluice::plan::Api;
use sluice::render;
use sluice::resource::{Address, System, TopicValue, Value};
use sluice::source::{SourceFile, load_dir};
use sluice::state::memory::MemoryState;
use sluice::state::{ApplyStatus, Holder, Inventory};

use crate::common::root;

/// Changes made to the live state outside sluice; `null` removes.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LiveEdits {
    #[serde(default)]
    topics: BTreeMap<String, Option<TopicValue>>,
    #[serde(default)]
    records: BTreeMap<String, Option<serde_json::Value>>,
    #[serde(default)]
    unsupported: Vec<Api>,
    /// Any other live resource (buckets, their rules and statements), by address.
    #[serde(default)]
    resources: BTreeMap<Address, Option<Value>>,
    /// The backup catalogue, for DR compliance: seconds since the newest
    /// complete run under each `bucket/<prefix><namespace>/` (`null`: none).
    /// Only cases that give it have DR checks.
    backups: Option<BTreeMap<String, Option<i64>>>,
}

/// The time of every golden plan, so that backup ages are exact.
const NOW: i64 = 1_800_000_000;

fn fixtures() -> PathBuf {
    root().join("tests/fixtures/plans")
}

/// One environment of a repository in a case, with the shared workspace
/// when the repository has none.
fn desired(dir: &Path) -> Desired {
    let mut tree = load_dir(dir).unwrap();
    if tree.workspace.is_none() {
        tree.workspace = Some(SourceFile {
            path: "sluice.yaml".into(),
            text: std::fs::read_to_string(fixtures().join("sluice.yaml")).unwrap(),
        });
    }
    let (mut envs, diags) = load(&tree, Selection::One(None), &Overrides::default());
    assert!(
        diags.iter().all(|d| !d.is_error()),
        "{}: {diags:#?}",
        dir.display()
    );
    envs.pop().unwrap()
}

fn options() -> ApplyOptions {
    ApplyOptions {
        allow_delete: true,
        lock_wait: Duration::ZERO,
        holder: Holder {
            user: "tests".into(),
            host: "fixtures".into(),
            pid: 1,
            since: "2026-01-01T00:00:00Z".into(),
        },
        cancel: Arc::default(),
        batch: sluice::engine::apply::BATCH,
        progress: Arc::new(sluice::engine::progress::Silent),
    }
}

/// The plan of a case, as text and JSON (or the error, as text).
async fn run_case(case: &Path) -> (String, Option<String>) {
    let edits: LiveEdits = std::fs::read_to_string(case.join("live.yaml"))
        .map(|text| serde_saphyr::from_str(&text).unwrap())
        .unwrap_or_default();
    let catalog = edits.backups.as_ref().map(|backups| {
        let catalog = FakeCatalog::default();
        for (at, age) in backups {
            let (bucket, prefix) = at.split_once('/').expect("backups are bucket/dir");
            if let Some(age) = age {
                catalog.backup(bucket, prefix, NOW - age);
            }
        }
        Arc::new(catalog) as Arc<dyn BackupCatalog>
    });
    let kafka = FakeBackend::new(System::Kafka);
    let etcd = kafka.sharing(System::Etcd);
    let s3 = kafka.sharing(System::S3);
    let state = MemoryState::new("dev", Inventory::default());
    let target = Target {
        backends: vec![
            Box::new(s3.clone()),
            Box::new(kafka.clone()),
            Box::new(etcd.clone()),
        ],
        state: Box::new(state.clone()),
        catalog,
        cluster: None,
        clock: Clock::Fixed(NOW),
    };

    if case.join("applied").is_dir() {
        let before = desired(&case.join("applied"));
        let planned = engine::plan(&before, None, &target, &builtin_policies())
            .await
            .unwrap();
        let outcome = apply(&planned.plan, &target, &options()).await.unwrap();
        assert_eq!(
            outcome.status(),
            ApplyStatus::Complete,
            "{}",
            case.display()
        );
        let again = engine::plan(&before, None, &target, &builtin_policies())
            .await
            .unwrap();
        assert!(
            again.plan.is_empty(),
            "{}: applying did not converge: {:#?}",
            case.display(),
            again.plan.changes
        );
    }

    {
        for (name, topic) in edits.topics {
            match topic {
                Some(t) => kafka.insert(Address::topic(&name), Value::Topic(t)),
                None => kafka.remove(&Address::topic(&name)),
            }
        }
        for (key, record) in edits.records {
            match record {
                Some(r) => etcd.insert(Address::etcd_key(&key), Value::Record(r.into())),
                None => etcd.remove(&Address::etcd_key(&key)),
            }
        }
        for (address, value) in edits.resources {
            match value {
                Some(v) => s3.insert(address, v),
                None => s3.remove(&address),
            }
        }
        kafka.set_unsupported(edits.unsupported);
    }

    let after = desired(&case.join("desired"));
    let prefix = format!("{}/", case.display());
    match engine::plan(&after, None, &target, &builtin_policies()).await {
        Ok(mut planned) => {
            // The plan judged its namespaces while it read, then again only
            // those its changes touch: the same as judging them all at once.
            let all = builtin_policies()
                .evaluate(&after, &planned.plan.changes)
                .unwrap();
            assert_eq!(planned.plan.policy, all, "{}", case.display());
            // Every case plans against the same made-up endpoints; the
            // header that names them has unit tests of its own.
            planned.plan.endpoints = None;
            let text = render::text::plan(&planned.plan, false).replace(&prefix, "");
            let json = serde_json::to_string_pretty(&planned.plan)
                .unwrap()
                .replace(&prefix, "")
                + "\n";
            (text, Some(json))
        }
        Err(e) => (format!("error: {e}\n"), None),
    }
}

#[tokio::test]
async fn golden_plans() {
    let bless = std::env::var_os("SLUICE_BLESS").is_some();
    let mut cases: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 20,
        "cases are missing from {}",
        fixtures().display()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let (text, json) = run_case(case).await;
        let outputs = [("expected.txt", Some(text)), ("expected.json", json)];
        for (file, got) in outputs {
            let path = case.join(file);
            match got {
                Some(got) if bless => std::fs::write(&path, got).unwrap(),
                Some(got) => {
                    let want = std::fs::read_to_string(&path).unwrap_or_default();
                    if want != got {
                        failures.push(format!(
                            "{name}/{file} differs:\n--- expected\n{want}\n--- got\n{got}"
                        ));
                    }
                }
                None => assert!(
                    !path.exists() || bless,
                    "{name}: {file} exists but the plan failed"
                ),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The built-in policies, as every plan is judged by them.
fn builtin_policies() -> sluice::policy::Policies {
    sluice::policy::Policies::load(&[]).expect("the built-in policies parse")
}
