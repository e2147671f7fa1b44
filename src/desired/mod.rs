//! The desired model: parsed config, validated and resolved per environment.
//!
//! Every check adds to one list of diagnostics; nothing stops at the first
//! problem. The resolved [`Desired`] holds plain values (milliseconds, bytes,
//! partition counts, Kafka config strings) for the later stages.

pub mod env;
pub mod model;
mod namespace;
pub mod promql;
mod topic_config;
mod units;

use std::collections::BTreeMap;

use std::collections::HashMap;

use crate::config::condition::METRICS;
use crate::config::parse::{Doc, Parsed};
use crate::config::{Loc, Workspace};
use crate::diag::{Diagnostic, Span};
use crate::source::SourceTree;

pub use env::{Overrides, connect_as_base, select_env};
pub use model::*;
pub use namespace::applies;

/// Which environments to resolve.
#[derive(Clone, Copy, Debug)]
pub enum Selection<'a> {
    /// The one asked for, else every environment (what `validate` checks).
    AllUnless(Option<&'a str>),
    /// Exactly one: the one asked for, else the only or `default` one.
    One(Option<&'a str>),
}

/// Parses, validates and resolves a source tree: the resolved environments,
/// and every problem found, sorted.
pub fn load(
    tree: &SourceTree,
    selection: Selection<'_>,
    overrides: &Overrides,
) -> (Vec<Desired>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let started = std::time::Instant::now();
    let parsed = crate::config::parse::parse_tree(tree, &mut diags);
    tracing::debug!(took = ?started.elapsed(), "config parsed");
    let started = std::time::Instant::now();
    if let Some(file) = &tree.workspace
        && parsed.workspace.is_none()
        && !diags.iter().any(Diagnostic::is_error)
    {
        diags.push(
            Diagnostic::error("empty-workspace", "the workspace file holds no `kind: Workspace` document")
                .at(&file.path, Loc::UNKNOWN)
                .hint("declare at least one environment; `sluice schema workspace` prints the format, and README's Workspace section has an example to start from"),
        );
    }
    let desired = resolve(&parsed, selection, overrides, &mut diags);
    tracing::debug!(took = ?started.elapsed(), "config resolved");
    crate::diag::normalize(&mut diags);
    (desired, diags)
}

/// The environment a command selects, resolved from the workspace file
/// alone when it holds no problem: a plan connects with it while the
/// namespace files still parse. `None` whenever anything is amiss: [`load`]
/// then says what, and nothing has connected.
pub fn environment(
    tree: &SourceTree,
    requested: Option<&str>,
    overrides: &Overrides,
) -> Option<Environment> {
    let file = tree.workspace.as_ref().filter(|_| tree.links.is_empty())?;
    let mut diags = Vec::new();
    let mut docs = crate::config::parse::parse_documents::<Workspace>(file, &mut diags).into_iter();
    let ws = docs.next().filter(|_| docs.next().is_none())?;
    let name = select_env(&ws.value, requested.or(overrides.env.as_deref())).ok()?;
    check_workspace(&ws, &mut diags);
    let (environment, _) =
        env::resolve_environment(&ws.value, &ws.file, &name, Some(overrides), &mut diags);
    (!diags.iter().any(Diagnostic::is_error)).then_some(environment)
}

/// Where a mapping key first appears in a file's text (1-based), for a
/// problem with a value that carries no place of its own.
fn key_loc(text: &str, key: &str) -> Loc {
    text.lines()
        .enumerate()
        .find_map(|(n, line)| {
            let body = line.trim_start();
            body.strip_prefix(key)?.trim_start().strip_prefix(':')?;
            Some(Loc {
                line: n as u32 + 1,
                column: (line.len() - body.len()) as u32 + 1,
            })
        })
        .unwrap_or(Loc::UNKNOWN)
}

/// Resolves the parsed config for the selected environments. Problems are
/// added to `diags`; a `Desired` is returned for every environment resolved,
/// and is complete only when no error was added.
pub fn resolve(
    parsed: &Parsed,
    selection: Selection<'_>,
    overrides: &Overrides,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Desired> {
    let Some(ws) = &parsed.workspace else {
        return Vec::new();
    };
    let (requested, every) = match selection {
        Selection::AllUnless(r) => (r, true),
        Selection::One(r) => (r, false),
    };
    if ws.value.spec.environments.is_empty() {
        diags.push(
            Diagnostic::error("empty-workspace", "the workspace declares no environment")
                .at(&ws.file, key_loc(&ws.text, "environments"))
                .hint("declare at least one under `spec.environments`, with its Kafka and etcd; `sluice schema workspace` prints the format"),
        );
        return Vec::new();
    }
    let requested = requested.or(overrides.env.as_deref());
    // `SLUICE_*` endpoint overrides apply to the environment a command would select.
    let selected = select_env(&ws.value, requested);
    let envs: Vec<String> = if every && requested.is_none() {
        ws.value.spec.environments.keys().cloned().collect()
    } else {
        match &selected {
            Ok(name) => vec![name.clone()],
            Err(d) => {
                diags.push(d.as_ref().clone().at(&ws.file, Loc::UNKNOWN));
                return Vec::new();
            }
        }
    };

    check_workspace(ws, diags);
    check_namespace_environments(ws, parsed, diags);

    let metrics: BTreeMap<String, String> = ws
        .value
        .spec
        .metrics
        .iter()
        .map(|(m, t)| (m.clone(), t.value.clone()))
        .collect();
    envs.iter()
        .map(|name| {
            let overrides = (selected.as_ref().is_ok_and(|s| s == name)).then_some(overrides);
            resolve_env(ws, parsed, name, &metrics, overrides, diags)
        })
        .collect()
}

/// One environment: its settings, then every namespace that applies to it.
fn resolve_env(
    ws: &Doc<Workspace>,
    parsed: &Parsed,
    name: &str,
    metrics: &BTreeMap<String, String>,
    overrides: Option<&Overrides>,
    diags: &mut Vec<Diagnostic>,
) -> Desired {
    let (environment, defaults) =
        env::resolve_environment(&ws.value, &ws.file, name, overrides, diags);
    let custom_metrics: Vec<&str> = metrics
        .keys()
        .map(String::as_str)
        .filter(|m| !METRICS.iter().any(|b| b.name == *m))
        .collect();
    let cx = namespace::Ctx {
        env: name,
        brokers: *ws.value.spec.environments[name].kafka.brokers,
        defaults: &defaults,
        guards: &ws.value.spec.guards,
        custom_metrics: &custom_metrics,
        metrics,
        catalog: ws.value.spec.disaster_recovery.as_ref(),
        ws_file: &ws.file,
    };
    let namespaces: Vec<NamespaceState> = parsed
        .namespaces
        .iter()
        .filter(|doc| namespace::applies(&doc.value, name))
        .map(|doc| namespace::resolve(doc, &cx, diags))
        .collect();
    check_unique(&namespaces, diags);
    if !parsed.partial {
        check_partitions_per_broker(ws, name, &namespaces, diags);
    }
    check_dr_targets(&environment, &namespaces, diags);
    check_rules_dir(&environment, &namespaces, diags);
    Desired {
        environment,
        guards: ws.value.spec.guards.clone(),
        metrics: metrics.clone(),
        buckets: ws
            .value
            .spec
            .disaster_recovery
            .iter()
            .flat_map(|c| &c.buckets)
            .map(|(name, b)| (name.clone(), b.region.value.clone()))
            .collect(),
        namespaces: namespaces.into(),
        scope: None,
    }
}

/// The partition replicas of an environment's topics, spread over its
/// brokers, within `guards.max_partitions_per_broker`; the arithmetic and
/// the largest topics are in the message.
fn check_partitions_per_broker(
    ws: &Doc<Workspace>,
    env: &str,
    namespaces: &[NamespaceState],
    diags: &mut Vec<Diagnostic>,
) {
    let brokers = &ws.value.spec.environments[env].kafka.brokers;
    let max = u64::from(ws.value.spec.guards.max_partitions_per_broker);
    // A topic over the per-topic limit is an error of its own already.
    let (per_topic, _) = namespace::partition_limit(&ws.value.spec.guards);
    let mut topics: Vec<(u64, &str)> = namespaces
        .iter()
        .flat_map(|ns| &ns.topics)
        .filter(|t| t.partitions <= per_topic)
        .map(|t| {
            (
                u64::from(t.partitions) * u64::from(t.replication_factor),
                t.name.as_str(),
            )
        })
        .collect();
    let replicas: u64 = topics.iter().map(|t| t.0).sum();
    let per_broker = replicas.div_ceil(u64::from(brokers.value.max(1)));
    if per_broker <= max {
        return;
    }
    topics.sort_by(|a, b| b.cmp(a));
    let largest: Vec<String> = topics
        .iter()
        .take(3)
        .map(|(n, t)| format!("`{t}` {n}"))
        .collect();
    diags.push(
        Diagnostic::error(
            "too-many-partitions",
            format!(
                "environment `{env}` would hold {replicas} partition replicas on {} broker(s): {per_broker} per broker, above `guards.max_partitions_per_broker` ({max})",
                brokers.value,
            ),
        )
        .at(&ws.file, brokers.loc)
        .hint(format!(
            "the largest topics, in replicas: {}; lower partitions or replication factors, add brokers, or raise `guards.max_partitions_per_broker` once the cluster is sized for it",
            largest.join(", ")
        )),
    );
}

/// Alerts become rule files only where the environment has a rules directory;
/// their etcd records are written regardless.
fn check_rules_dir(env: &Environment, namespaces: &[NamespaceState], diags: &mut Vec<Diagnostic>) {
    if env.alerts.is_some() {
        return;
    }
    if let Some(a) = namespaces.iter().flat_map(|ns| &ns.alerts).next() {
        let count = namespaces.iter().filter(|ns| !ns.alerts.is_empty()).count();
        diags.push(
            Diagnostic::warning(
                "alerts-without-rules-dir",
                format!(
                    "{count} namespace(s) declare alerts, but environment `{}` has no `alerts.rules_dir`: no rule files are written there",
                    env.name
                ),
            )
            .at_span(&a.source)
            .hint(format!(
                "add `alerts: {{rules_dir: ...}}` to `spec.environments.{}`, or set SLUICE_RULES_DIR",
                env.name
            )),
        );
    }
}

/// DR needs S3 in the environment, and replication needs the role S3
/// replicates with.
fn check_dr_targets(env: &Environment, namespaces: &[NamespaceState], diags: &mut Vec<Diagnostic>) {
    for ns in namespaces {
        let Some(dr) = &ns.disaster_recovery else {
            continue;
        };
        let Some(s3) = &env.s3 else {
            let at = dr
                .backup
                .as_ref()
                .map(|b| &b.source)
                .or(dr.replication.as_ref().map(|r| &r.source));
            if let Some(at) = at {
                diags.push(
                    Diagnostic::error(
                        "dr-without-s3",
                        format!(
                            "namespace `{}` has a DR policy, but environment `{}` has no `s3` settings",
                            ns.name, env.name
                        ),
                    )
                    .at_span(at)
                    .hint(format!(
                        "add `s3:` (region, and endpoint for S3-compatible servers) to `spec.environments.{}`, or limit the namespace's `environments`",
                        env.name
                    )),
                );
            }
            continue;
        };
        if let Some(replica) = &dr.replication
            && s3.replication_role.is_none()
        {
            diags.push(
                Diagnostic::error(
                    "replication-without-role",
                    format!(
                        "namespace `{}` replicates its backups, but environment `{}` names no replication role",
                        ns.name, env.name
                    ),
                )
                .at_span(&replica.source)
                .hint(format!(
                    "set `spec.environments.{}.s3.replication_role` to the IAM role S3 replicates with",
                    env.name
                )),
            );
        }
    }
}

/// Workspace-level consistency: declared buckets in declared regions.
fn check_workspace(ws: &Doc<Workspace>, diags: &mut Vec<Diagnostic>) {
    check_metric_templates(ws, diags);
    let Some(catalog) = &ws.value.spec.disaster_recovery else {
        return;
    };
    if catalog.regions.is_empty() {
        return;
    }
    for (bucket, decl) in &catalog.buckets {
        if !catalog.regions.iter().any(|r| r.value == decl.region.value) {
            diags.push(
                Diagnostic::error(
                    "undeclared-region",
                    format!(
                        "bucket `{bucket}` is in region `{}`, which is not declared",
                        decl.region.value
                    ),
                )
                .at(&ws.file, decl.region.loc)
                .hint("add the region to `spec.disaster_recovery.regions`"),
            );
        }
    }
}

/// Metric names must be names the condition language can read, and their
/// templates may only use the known placeholders.
fn check_metric_templates(ws: &Doc<Workspace>, diags: &mut Vec<Diagnostic>) {
    for (metric, template) in &ws.value.spec.metrics {
        if !promql::is_prometheus_name(metric) {
            diags.push(
                Diagnostic::error(
                    "invalid-metric",
                    format!("`{metric}` cannot be used in a condition"),
                )
                .at(&ws.file, template.loc)
                .hint("metric names use letters, digits and `_`, such as `queue_depth`"),
            );
        }
        if let Err(e) = promql::check_template(&template.value) {
            diags.push(
                Diagnostic::error(
                    "unknown-placeholder",
                    format!(
                        "the PromQL of `{metric}` uses `${}`, which is not a placeholder",
                        e.placeholder
                    ),
                )
                .at(&ws.file, ws.column_in_value(template.loc, e.offset))
                .hint(format!(
                    "placeholders are {}",
                    crate::config::condition::PLACEHOLDERS
                        .iter()
                        .map(|p| format!("`${p}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            );
        }
    }
}

/// Namespaces may only name declared environments; protected names should exist.
fn check_namespace_environments(ws: &Doc<Workspace>, parsed: &Parsed, diags: &mut Vec<Diagnostic>) {
    let declared = &ws.value.spec.environments;
    for doc in &parsed.namespaces {
        let Some(envs) = &doc.value.metadata.environments else {
            continue;
        };
        if envs.is_empty() {
            diags.push(
                Diagnostic::warning(
                    "no-environment",
                    format!(
                        "namespace `{}` applies to no environment",
                        doc.value.metadata.name.value
                    ),
                )
                .at(&doc.file, doc.value.metadata.name.loc)
                .hint("list its environments, or remove `environments` to apply it everywhere"),
            );
        }
        for e in envs {
            if !declared.contains_key(&e.value) {
                let names: Vec<_> = declared.keys().map(|n| format!("`{n}`")).collect();
                diags.push(
                    Diagnostic::error(
                        "unknown-environment",
                        format!("environment `{}` is not declared in the workspace", e.value),
                    )
                    .at(&doc.file, e.loc)
                    .hint(format!("declared environments: {}", names.join(", "))),
                );
            }
        }
    }
    check_environment_names(ws, diags);
    check_apply_order(ws, diags);
    if parsed.partial {
        return;
    }
    for name in &ws.value.spec.guards.protected_namespaces {
        if !parsed
            .namespaces
            .iter()
            .any(|d| &d.value.metadata.name.value == name)
        {
            diags.push(
                Diagnostic::warning("unknown-namespace", format!("protected namespace `{name}` is not declared"))
                    .at(&ws.file, Loc::UNKNOWN)
                    .hint("it stays protected if sluice already manages it; otherwise remove it from `guards.protected_namespaces`"),
            );
        }
    }
}

/// Whether `name` is a name sluice puts in keys and labels: lowercase
/// letters, digits and the `separators`, at most `max` bytes, starting and
/// ending with a letter or digit.
pub(crate) fn is_name(name: &str, max: usize, separators: &[u8]) -> bool {
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = name.as_bytes();
    name.len() <= max
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes.iter().all(|b| alnum(b) || separators.contains(b))
}

/// Longest environment name: like a namespace's, it becomes part of etcd
/// keys, metric labels and rule group names.
const MAX_ENV_NAME: usize = 63;

/// An environment's name is a segment of sluice's etcd keys
/// (`<prefix>inventory/<env>/…`): a `/` in it would put one environment's
/// state inside another's, so names are checked like namespaces'.
fn check_environment_names(ws: &Doc<Workspace>, diags: &mut Vec<Diagnostic>) {
    for (name, env) in &ws.value.spec.environments {
        if !is_name(name, MAX_ENV_NAME, b"-_") {
            diags.push(
                Diagnostic::error(
                    "invalid-name",
                    format!("`{name}` is not a valid environment name"),
                )
                // The map's keys carry no place: its servers are just below.
                .at(&ws.file, env.kafka.bootstrap_servers.loc)
                .hint(format!("use lowercase letters, digits, `-` and `_`, at most {MAX_ENV_NAME} characters, starting and ending with a letter or digit")),
            );
        }
    }
}

/// `apply_order`, when given, names each declared environment exactly once.
fn check_apply_order(ws: &Doc<Workspace>, diags: &mut Vec<Diagnostic>) {
    let declared = &ws.value.spec.environments;
    let mut ordered = Vec::new();
    for name in &ws.value.spec.apply_order {
        let problem = if !declared.contains_key(&name.value) {
            "is not declared in the workspace"
        } else if ordered.contains(&&name.value) {
            "is listed twice"
        } else {
            ordered.push(&name.value);
            continue;
        };
        diags.push(
            Diagnostic::error(
                "unknown-environment",
                format!("`apply_order`: environment `{}` {problem}", name.value),
            )
            .at(&ws.file, name.loc)
            .hint("list each declared environment once, in the order changes reach them"),
        );
    }
    // Once given, the order is whole: an environment left out would be
    // applied in an order nobody chose.
    if let Some(first) = ws.value.spec.apply_order.first() {
        for name in declared.keys().filter(|n| !ordered.contains(n)) {
            diags.push(
                Diagnostic::error(
                    "unknown-environment",
                    format!("`apply_order` leaves out environment `{name}`"),
                )
                .at(&ws.file, first.loc)
                .hint("list every declared environment, in the order changes reach them"),
            );
        }
    }
}

/// Namespace and topic names are unique within an environment (topics are
/// cluster-wide); a DLQ must not take a declared topic's name.
fn check_unique(namespaces: &[NamespaceState], diags: &mut Vec<Diagnostic>) {
    let mut seen_ns: HashMap<&str, &Span> = HashMap::new();
    let mut unique = Vec::new();
    for ns in namespaces {
        match seen_ns.insert(&ns.name, &ns.source) {
            None => unique.push(ns),
            Some(first) => {
                diags.push(
                Diagnostic::error("duplicate-namespace", format!("namespace `{}` is declared twice", ns.name))
                    .at_span(&ns.source)
                    .related_span(first, "first declared here")
                    .hint("merge the two declarations, or give each a distinct `metadata.environments`"),
                );
            }
        }
    }
    // A duplicated namespace's topics would all repeat; its error says enough.
    let mut seen_topics: HashMap<&str, &TopicState> = HashMap::new();
    let mut topics: Vec<&TopicState> = unique.iter().flat_map(|n| &n.topics).collect();
    topics.sort_by_key(|t| t.dlq_of.is_some());
    for t in topics {
        let Some(first) = seen_topics.insert(&t.name, t) else {
            continue;
        };
        let d = match (&first.dlq_of, &t.dlq_of) {
            (None, Some(parent)) => Diagnostic::error(
                "dlq-collision",
                format!(
                    "the dead-letter topic `{}` of `{parent}` collides with a declared topic",
                    t.name
                ),
            )
            .at_span(&first.source)
            .related_span(&t.source, "`dlq: true` here")
            .hint(format!(
                "rename the declared topic, or drop `dlq: true` from `{parent}`"
            )),
            _ => Diagnostic::error(
                "duplicate-topic",
                format!(
                    "topic `{}` is declared twice (in namespaces `{}` and `{}`)",
                    t.name, first.namespace, t.namespace
                ),
            )
            .at_span(&t.source)
            .related_span(&first.source, "first declared here")
            .hint("Kafka topic names are cluster-wide: rename one of them"),
        };
        diags.push(d);
    }
}
