//! `sluice status [NS]`: the operator's single view, read-only. The last
//! apply, drift, the health of every backend, consumer lag of the declared
//! groups, and DR compliance.

use comfy_table::presets::NOTHING;
use comfy_table::{Cell, Table};
use serde::Serialize;

use super::{Error, Exit, load_desired, load_policies, runtime};
use crate::backend::kafka::PartitionLag;
use crate::cli::{Cli, Format};
use crate::desired::Desired;
use crate::engine::compliance::human;
use crate::engine::{self, Target};
use crate::plan::DrReport;
use crate::plan::{Action, Cause};
use crate::policy::Policies;
use crate::resource::{Address, Value};
use crate::state::AppliedRecord;

#[derive(Debug, Serialize)]
pub struct Status {
    pub environment: String,
    pub namespace: Option<String>,
    pub last_apply: Option<AppliedRecord>,
    pub backends: Vec<Health>,
    /// `None` when the plan could not be made; `drift_error` says why.
    pub drift: Option<DriftCounts>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift_error: Option<String>,
    pub consumers: Vec<ConsumerStatus>,
    pub dr: Vec<DrReport>,
}

#[derive(Debug, Serialize)]
pub struct Health {
    pub system: &'static str,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Default, Serialize)]
pub struct DriftCounts {
    /// Changed outside sluice.
    pub drifted: usize,
    /// In Git, not applied yet.
    pub pending: usize,
    pub blocked: usize,
}

#[derive(Debug, Serialize)]
pub struct ConsumerStatus {
    pub namespace: String,
    pub group: String,
    pub max_lag: Option<u64>,
    /// Records behind, over the namespace's topics.
    pub lag: Option<i64>,
    pub partitions: Vec<PartitionLag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ConsumerStatus {
    fn over(&self) -> bool {
        matches!((self.lag, self.max_lag), (Some(l), Some(m)) if l > i64::try_from(m).unwrap_or(i64::MAX))
    }
}

pub fn run(cli: &Cli, namespace: Option<&str>, format: Format) -> Result<Exit, Error> {
    let (tree, desired) = load_desired(cli, None)?;
    if let Some(ns) = namespace
        && !desired.namespaces.iter().any(|n| n.name == ns)
    {
        return Err(Error::UnknownNamespace {
            name: ns.to_owned(),
            env: desired.environment.name.clone(),
        });
    }
    let policies = load_policies(&tree)?;
    let status = runtime().block_on(gather(
        &desired,
        tree.revision.as_deref(),
        &policies,
        namespace,
    ))?;
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&status).expect("status is JSON")
        ),
        Format::Text => print!("{}", text(&status)),
    }
    let unhealthy = status.backends.iter().any(|b| !b.ok) || status.drift.is_none();
    let attention = status
        .drift
        .as_ref()
        .is_some_and(|d| d.drifted + d.pending + d.blocked > 0)
        || status.dr.iter().any(|r| !r.violations.is_empty())
        || status.consumers.iter().any(ConsumerStatus::over);
    Ok(if unhealthy {
        Exit::Failure
    } else if attention {
        Exit::Changes
    } else {
        Exit::Success
    })
}

async fn gather(
    desired: &Desired,
    revision: Option<&str>,
    policies: &Policies,
    only: Option<&str>,
) -> Result<Status, Error> {
    let target = Target::connect(&desired.environment).await?;
    let mut backends = Vec::new();
    let kafka = target.kafka.as_ref().expect("a connected target has Kafka");
    let kafka_ok = match kafka.brokers().await {
        Ok(brokers) => {
            backends.push(Health {
                system: "Kafka",
                ok: true,
                detail: format!("{} broker(s): {}", brokers.len(), brokers.join(", ")),
            });
            true
        }
        Err(e) => {
            backends.push(Health {
                system: "Kafka",
                ok: false,
                detail: e,
            });
            false
        }
    };
    let stored = target.state.load().await;
    backends.push(Health {
        system: "etcd",
        ok: stored.is_ok(),
        detail: match &stored {
            Ok(s) => format!(
                "{} resource(s) in sluice's inventory",
                s.inventory.entries.len()
            ),
            Err(e) => e.to_string(),
        },
    });
    if let Some(s3) = &target.s3 {
        let health = s3.health().await;
        backends.push(Health {
            system: "S3",
            ok: health.is_ok(),
            detail: match health {
                Ok(n) => format!("{n} bucket(s) visible"),
                Err(e) => e,
            },
        });
    }
    let mut status = Status {
        environment: desired.environment.name.clone(),
        namespace: only.map(str::to_owned),
        last_apply: stored.ok().and_then(|s| s.applied),
        backends,
        drift: None,
        drift_error: None,
        consumers: Vec::new(),
        dr: Vec::new(),
    };
    if !status.backends.iter().all(|b| b.ok) {
        status.drift_error = Some("a backend is down; drift is unknown".into());
        return Ok(status);
    }
    let planned = match engine::plan(desired, revision, &target, policies).await {
        Ok(p) => p,
        Err(e) => {
            status.drift_error = Some(e.to_string());
            return Ok(status);
        }
    };
    let mine = |ns: &str| only.is_none_or(|o| o == ns);
    let mut counts = DriftCounts::default();
    for c in planned.plan.changes.iter().filter(|c| mine(&c.namespace)) {
        match (c.action, c.cause) {
            (Action::Blocked, _) => counts.blocked += 1,
            (_, Cause::Drift) => counts.drifted += 1,
            (_, Cause::Pending) => counts.pending += 1,
        }
    }
    status.drift = Some(counts);
    status.dr = planned
        .plan
        .dr
        .into_iter()
        .filter(|r| mine(&r.namespace))
        .collect();
    if kafka_ok {
        for ns in desired.namespaces.iter().filter(|n| mine(&n.name)) {
            // Only topics that exist, with the partition counts the plan read.
            let topics: Vec<(String, u32)> = ns
                .topics
                .iter()
                .filter_map(|t| {
                    match planned
                        .live
                        .resources
                        .get(&Address::topic(&t.name))
                        .map(|l| &l.value)
                    {
                        Some(Value::Topic(live)) => Some((t.name.clone(), live.partitions)),
                        _ => None,
                    }
                })
                .collect();
            let groups: Vec<String> = ns.consumers.iter().map(|c| c.group.clone()).collect();
            let answers = kafka.consumer_lag(groups, topics).await;
            for (c, answer) in ns.consumers.iter().zip(answers) {
                let (lag, partitions, error) = match answer {
                    Ok(parts) => (Some(parts.iter().map(|p| p.lag).sum()), parts, None),
                    Err(e) => (None, Vec::new(), Some(e)),
                };
                status.consumers.push(ConsumerStatus {
                    namespace: ns.name.clone(),
                    group: c.group.clone(),
                    max_lag: c.max_lag,
                    lag,
                    partitions,
                    error,
                });
            }
        }
    }
    Ok(status)
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(NOTHING)
        .set_header(header.iter().map(Cell::new));
    t
}

fn text(s: &Status) -> String {
    let mut out = format!("sluice status for environment `{}`", s.environment);
    if let Some(ns) = &s.namespace {
        out.push_str(&format!(", namespace `{ns}`"));
    }
    out.push_str("\n\n");
    out.push_str(&match &s.last_apply {
        Some(a) => format!(
            "Last apply: {} at {} by {}, {}; {} applied, {} failed.\n",
            serde_json::to_value(a.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            a.time,
            a.user,
            a.commit
                .as_deref()
                .map_or("from a working tree".to_owned(), |c| format!(
                    "commit {}",
                    &c[..c.len().min(12)]
                )),
            a.applied,
            a.failed
        ),
        None => "Last apply: never.\n".into(),
    });
    let mut t = table(&["backend", "", "detail"]);
    for b in &s.backends {
        t.add_row(vec![
            b.system.to_owned(),
            if b.ok { "ok" } else { "DOWN" }.to_owned(),
            b.detail.clone(),
        ]);
    }
    out.push_str(&format!("\n{t}\n\n"));
    match (&s.drift, &s.drift_error) {
        (Some(d), _) => out.push_str(&format!(
            "Drift: {} changed outside sluice, {} pending, {} blocked.\n",
            d.drifted, d.pending, d.blocked
        )),
        (None, Some(e)) => out.push_str(&format!("Drift: unknown ({e}).\n")),
        (None, None) => {}
    }
    if !s.consumers.is_empty() {
        let mut t = table(&["namespace", "group", "lag", "max lag", ""]);
        for c in &s.consumers {
            t.add_row(vec![
                c.namespace.clone(),
                c.group.clone(),
                c.lag.map_or("?".into(), |l| l.to_string()),
                c.max_lag.map_or("-".into(), |m| m.to_string()),
                match (&c.error, c.over()) {
                    (Some(e), _) => e.clone(),
                    (None, true) => "over max lag".into(),
                    (None, false) => "ok".into(),
                },
            ]);
        }
        out.push_str(&format!("\nConsumer lag:\n{t}\n"));
    }
    if !s.dr.is_empty() {
        let age = |secs: Option<u64>| secs.map_or("none".into(), human);
        let mut t = table(&["namespace", "backups", "newest", "rpo", ""]);
        for r in &s.dr {
            t.add_row(vec![
                r.namespace.clone(),
                r.backups.clone(),
                age(r.backup_age_s),
                age(r.rpo_s),
                if r.violations.is_empty() {
                    "compliant".into()
                } else {
                    r.violations
                        .iter()
                        .map(|v| v.message.clone())
                        .collect::<Vec<_>>()
                        .join("; ")
                },
            ]);
        }
        out.push_str(&format!("\nDisaster recovery:\n{t}\n"));
    }
    out
}
