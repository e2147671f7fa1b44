//! sluice's own cost of a no-change plan at N topics, with the brokers out
//! of the picture: the same path as `sluice plan` (parse, resolve, expand,
//! plan, policies, text output) against the in-memory backends, loaded with
//! exactly what the desired state declares. Prints each phase, the CPU time
//! and the peak RSS of this process.
//!
//!   cargo bench --bench engine -- [TOPICS]      (default 100000)
//!
//! `scripts/bench-engine.sh` runs it at several sizes, one process each, and
//! prints how time and memory grow per topic.

use std::time::Instant;

use sluice::backend::fake::FakeBackend;
use sluice::desired::{Overrides, Selection};
use sluice::engine::{Clock, Target, plan};
use sluice::policy::Policies;
use sluice::resource::System;
use sluice::resource::expand::expand;
use sluice::source::{SourceFile, SourceTree};
use sluice::state::memory::MemoryState;
use sluice::state::{Inventory, InventoryEntry};

/// The estate of `scripts/bench-plan.sh`: five topics a namespace.
fn estate(topics: usize) -> SourceTree {
    let workspace =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/sluice.yaml"))
            .expect("examples/sluice.yaml")
            .replace(
                "protected_namespaces: [payments]",
                "protected_namespaces: []",
            )
            // A synthetic estate on one broker: above the guidance on purpose.
            .replace(
                "max_partitions_per_broker: 4000",
                "max_partitions_per_broker: 1000000000",
            );
    let namespaces = topics.div_ceil(5);
    let files = (0..namespaces)
        .map(|i| {
            let count = 5.min(topics - i * 5);
            let list: String = (0..count)
                .map(|j| format!("    - name: ns-{i:06}-t{j}\n      partitions: 1\n"))
                .collect();
            SourceFile {
                path: format!("namespaces/ns-{i:06}.yaml"),
                text: format!(
                    "apiVersion: sluice/v1\nkind: Namespace\nmetadata:\n  name: ns-{i:06}\n  owner: team-{:02}\nspec:\n  retention: {}d\n  topics:\n{list}  access:\n    - service: svc-{i:06}\n      permissions: [read, write]\n",
                    i % 40,
                    1 + i % 14
                ),
            }
        })
        .collect();
    SourceTree {
        workspace: Some(SourceFile {
            path: "sluice.yaml".into(),
            text: workspace,
        }),
        namespaces: files,
        ..SourceTree::default()
    }
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (100 a second on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() {
    let topics: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let tree = estate(topics);

    // The live systems hold exactly the desired state, and the inventory
    // records it: a plan with nothing to change. (Not timed.)
    let (desired, _) =
        sluice::desired::load(&tree, Selection::One(Some("local")), &Overrides::default());
    let desired = desired.into_iter().next().expect("the local environment");
    let kafka = FakeBackend::new(System::Kafka);
    let systems = [System::Etcd, System::S3, System::Prometheus];
    let others: Vec<FakeBackend> = systems.iter().map(|s| kafka.sharing(*s)).collect();
    let mut inventory = Inventory::default();
    for r in expand(&desired) {
        kafka.insert(r.address.clone(), r.value.clone());
        inventory
            .entries
            .insert(r.address.clone(), InventoryEntry::of(&r));
    }
    drop(desired);
    let mut backends: Vec<Box<dyn sluice::backend::Backend>> = vec![Box::new(kafka)];
    backends.extend(
        others
            .into_iter()
            .map(|b| Box::new(b) as Box<dyn sluice::backend::Backend>),
    );
    let target = Target {
        backends,
        state: Box::new(MemoryState::new("local", inventory)),
        catalog: None,
        cluster: None,
        clock: Clock::System,
    };
    let (rss_loaded, cpu_loaded) = (peak_rss_mib(), cpu_seconds());

    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let start = Instant::now();
    let (desired, diags) =
        sluice::desired::load(&tree, Selection::One(Some("local")), &Overrides::default());
    assert!(!diags.iter().any(|d| d.is_error()), "the estate is valid");
    let desired = desired.into_iter().next().expect("the local environment");
    let parsed = start.elapsed();
    let policies = Policies::load(&[]).expect("the built-in policies load");
    let planned = runtime
        .block_on(plan(&desired, None, &target, &policies))
        .expect("the plan");
    let planned_at = start.elapsed();
    let text = sluice::render::text::plan(&planned.plan, false);
    let total = start.elapsed();
    assert!(
        planned.plan.changes.is_empty(),
        "a no-change plan: {}",
        &text[..text.len().min(2000)]
    );
    let (rss, cpu) = (peak_rss_mib(), cpu_seconds() - cpu_loaded);
    // The policies alone, judged again: how much of the plan they are.
    let again = Instant::now();
    policies
        .evaluate(&desired, &planned.plan.changes)
        .expect("the policies");
    let judged = again.elapsed();
    println!(
        "topics {topics}: no-change plan {:.3} s (parse and resolve {:.3} s, plan and policies {:.3} s of which policies {:.3} s, output {:.3} s), CPU {cpu:.2} s, peak RSS {rss:.1} MiB (fakes loaded: {rss_loaded:.1} MiB)",
        total.as_secs_f64(),
        parsed.as_secs_f64(),
        (planned_at - parsed).as_secs_f64(),
        judged.as_secs_f64(),
        (total - planned_at).as_secs_f64(),
    );
}
