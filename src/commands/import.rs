//! `sluice import --env E --out DIR [--topics REGEX] [--namespace NS]`:
//! Namespace YAML from live state, into new files; `import --namespace NS
//! --merge` adds the live topics of a namespace its file does not declare.
//! Read-only against the live systems. Either way it then plans what it
//! wrote against what it read and says what the next plan would still change.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use regex::Regex;

use super::{Error, Exit, block_on, load_desired, print_diagnostics};
use crate::backend::Backend;
use crate::backend::etcd::{EtcdBackend, connect};
use crate::backend::kafka::KafkaBackend;
use crate::backend::s3::S3Backend;
use crate::cli::Cli;
use crate::config::namespace::dlq_name;
use crate::config::parse::parse_tree;
use crate::desired::{Environment, Overrides, applies};
use crate::engine::EngineError;
use crate::import::merge::{self, MergeError};
use crate::import::{Estate, group, namespaces};
use crate::plan::{Action, LiveResource, LiveState, PlanInput, diff};
use crate::records::{RecordKind, etcd_key};
use crate::resource::{Address, Record, Value};
use crate::source::{Origin, SourceFile, SourceTree};
use crate::state::Inventory;

const MODELINE: &str = "# yaml-language-server: $schema=../schemas/namespace.schema.json\n";

/// What `import` reads and writes.
pub struct Options<'a> {
    pub out: Option<&'a Path>,
    pub topics: Option<&'a str>,
    pub namespace: Option<&'a str>,
    pub merge: bool,
}

pub fn run(cli: &Cli, opts: &Options<'_>) -> Result<Exit, Error> {
    match (opts.merge, opts.namespace, opts.out) {
        (true, Some(ns), _) => run_merge(cli, ns),
        (false, _, Some(out)) => run_new(cli, out, opts),
        // clap requires `--out`, or `--merge` with `--namespace`.
        _ => unreachable!("import needs --out, or --merge with --namespace"),
    }
}

/// Writes a new file per namespace found live.
fn run_new(cli: &Cli, out: &Path, opts: &Options<'_>) -> Result<Exit, Error> {
    let pattern = opts
        .topics
        .map(Regex::new)
        .transpose()
        .map_err(Error::Pattern)?;
    let (tree, desired) = load_desired(cli, None)?;
    let (estate, live) = block_on(read_estate(
        &desired.environment,
        pattern.as_ref(),
        opts.namespace,
        cli.timeout,
    ))?;
    let docs = namespaces(&estate);
    if docs.is_empty() {
        eprintln!("Found no topics to import; nothing was written.");
        return Ok(Exit::Success);
    }
    let files: Vec<_> = docs
        .keys()
        .map(|ns| out.join(format!("{ns}.yaml")))
        .collect();
    let existing: Vec<String> = files
        .iter()
        .filter(|f| f.symlink_metadata().is_ok())
        .map(|f| f.display().to_string())
        .collect();
    if !existing.is_empty() {
        return Err(Error::Exists(existing));
    }
    let written: Vec<SourceFile> = docs
        .iter()
        .map(|(ns, doc)| SourceFile {
            path: format!("namespaces/{ns}.yaml"),
            text: format!(
                "{MODELINE}{}",
                serde_saphyr::to_string(doc).expect("a namespace document is YAML")
            ),
        })
        .collect();
    let write_error = |source| Error::Write {
        path: out.display().to_string(),
        source,
    };
    std::fs::create_dir_all(out).map_err(write_error)?;
    for (file, path) in written.iter().zip(&files) {
        crate::files::write_new(path, file.text.as_bytes()).map_err(|source| Error::Write {
            path: path.display().to_string(),
            source,
        })?;
    }
    eprintln!(
        "Wrote {} namespace(s) with {} topic(s) to {}. Check them with `sluice plan`: it should show no changes, and the next apply adopts them.",
        docs.len(),
        estate.topics.len(),
        out.display()
    );
    let left = leftovers(
        &tree.with_namespaces(written),
        &desired.environment.name,
        &live,
        |_| true,
    )?;
    warn_leftovers(&left);
    Ok(Exit::Success)
}

/// Adds the namespace's undeclared live topics to its file, in place.
fn run_merge(cli: &Cli, ns: &str) -> Result<Exit, Error> {
    let Origin::Dir(repo) = cli.source.origin() else {
        return Err(MergeError::NotWorkingTree.into());
    };
    let (tree, desired) = load_desired(cli, None)?;
    let env = &desired.environment;
    let state = desired
        .namespaces
        .iter()
        .find(|n| n.name == ns)
        .ok_or_else(|| Error::UnknownNamespace {
            names: vec![format!("`{ns}`")],
            env: env.name.clone(),
        })?;
    let (estate, live) = block_on(read_estate(env, None, None, cli.timeout))?;
    let declared: BTreeSet<String> = desired.topics().map(|t| t.name.clone()).collect();
    let new = merge::new_topics(&estate, ns, &declared, &merge::base_of(state));
    if new.is_empty() {
        eprintln!("Nothing to add: every live topic of namespace `{ns}` is declared.");
        return Ok(Exit::Success);
    }
    let parsed = parse_tree(&tree, &mut Vec::new());
    let doc = parsed
        .namespaces
        .iter()
        .find(|d| d.value.metadata.name.value == ns && applies(&d.value, &env.name))
        .ok_or_else(|| MergeError::NotDeclared(ns.to_owned()))?;
    let file = tree
        .namespaces
        .iter()
        .find(|f| f.path == doc.file)
        .ok_or_else(|| MergeError::NotDeclared(ns.to_owned()))?;
    let text = merge::insert_topics(file, doc, &new)?;

    let mut files = tree.namespaces.clone();
    for f in &mut files {
        if f.path == file.path {
            f.text = text.clone();
        }
    }
    let names: Vec<&str> = new.iter().map(|e| e.name.as_str()).collect();
    let adopted: BTreeSet<Address> = names
        .iter()
        .flat_map(|n| [Address::topic(n), Address::topic(&dlq_name(n))])
        .collect();
    let left = leftovers(&tree.with_namespaces(files), &env.name, &live, |a| {
        adopted.contains(a)
    })?;
    let path = repo.join(&file.path);
    crate::files::replace(&path, text.as_bytes()).map_err(|source| Error::Write {
        path: path.display().to_string(),
        source,
    })?;
    eprintln!(
        "Added {} topic(s) to {}: {}. Review the change, then `sluice plan`: it adopts them and updates the namespace's records.",
        names.len(),
        file.path,
        names.join(", ")
    );
    warn_leftovers(&left);
    Ok(Exit::Success)
}

/// The changes a plan of `tree` would make to live resources (`live`, as
/// import read them) that `wanted` picks: what the written YAML cannot say
/// as they are. One compact line each.
fn leftovers(
    tree: &SourceTree,
    env: &str,
    live: &LiveState,
    wanted: impl Fn(&Address) -> bool,
) -> Result<Vec<String>, Error> {
    let (desired, diags) = crate::engine::load_desired(tree, Some(env), &Overrides::from_process());
    let Some(desired) = desired else {
        // What import writes must validate: say where it does not.
        return Err(Error::Invalid(print_diagnostics(tree, &diags).max(1)));
    };
    let resources = crate::resource::expand::expand(&desired);
    let plan = diff(&PlanInput {
        environment: env,
        revision: None,
        guards: &desired.guards,
        desired: &resources,
        live,
        inventory: &Inventory::default(),
        inventory_revision: 0,
        partial: true,
    })
    .map_err(EngineError::from)?;
    Ok(plan
        .changes
        .iter()
        .filter(|c| matches!(c.action, Action::Update | Action::Blocked))
        .filter(|c| live.resources.contains_key(&c.address) && wanted(&c.address))
        .map(crate::render::compact_line)
        .collect())
}

fn warn_leftovers(left: &[String]) {
    if left.is_empty() {
        return;
    }
    eprintln!(
        "warning: the next plan will still change {} resource(s), whose live settings the YAML cannot say as they are:",
        left.len()
    );
    for line in left {
        eprintln!("  {line}");
    }
    eprintln!(
        "hint: a DLQ (`dlq: true`) has exactly its namespace's retention, compression and maximum message size, and a topic gets the namespace's (or the workspace's) settings it does not set itself (README, Known limits); edit the YAML, or let the next apply make the change"
    );
}

/// The live state import reads: the topics (those `pattern` matches, or of
/// namespace `only`), the namespace records in etcd, and the buckets their
/// DR records name; and all of it as a plan reads it.
async fn read_estate(
    env: &Environment,
    pattern: Option<&Regex>,
    only: Option<&str>,
    timeout: Duration,
) -> Result<(Estate, LiveState), Error> {
    let kafka = KafkaBackend::connect(&env.kafka, timeout)?;
    let names: Vec<String> = kafka
        .topic_names()
        .await
        .map_err(EngineError::from)?
        .into_iter()
        .filter(|n| pattern.is_none_or(|p| p.is_match(n)))
        .collect();
    let addresses: Vec<Address> = names.iter().map(|n| Address::topic(n)).collect();
    let mut live = kafka.read(&addresses).await.map_err(EngineError::from)?;
    let mut estate = Estate::default();
    for (address, l) in &live.resources {
        if let Value::Topic(t) = &l.value {
            estate.topics.insert(address.name().to_owned(), t.clone());
        }
    }
    let etcd = EtcdBackend::new(connect(&env.etcd, timeout).await?, &env.etcd.prefix);
    let root = etcd_key(&env.etcd.prefix, "");
    let records = etcd.records(&root).await.map_err(EngineError::from)?;
    for (key, record) in &records {
        let Some(rest) = key.strip_prefix(&root) else {
            continue;
        };
        // sluice's own state is not desired state, and a record that
        // does not read is left out, said once.
        let bytes = serde_json::to_vec(record).expect("records are JSON");
        if let Err(e) = estate.add_record(rest, &bytes) {
            tracing::warn!("skipping the etcd record `{key}`, which does not read: {e}");
        }
    }
    // With `--topics` or `--namespace`, only the namespaces of those topics.
    if pattern.is_some() || only.is_some() {
        let mut kept = group(&estate);
        if let Some(ns) = only {
            kept.retain(|name, _| name == ns);
        }
        estate
            .topics
            .retain(|t, _| kept.values().any(|ts| ts.contains(t)));
        estate.retain_namespaces(&kept);
    }
    live.resources
        .retain(|a, _| estate.topics.contains_key(a.name()));
    let namespaces: BTreeSet<&String> = estate
        .registry
        .keys()
        .chain(estate.grants.keys())
        .chain(estate.alerts.keys())
        .chain(estate.dr.keys())
        .collect();
    for ns in namespaces {
        for kind in RecordKind::ALL {
            let key = kind.key(&env.etcd.prefix, ns);
            if let Some(value) = records.get(&key) {
                live.resources.insert(
                    Address::etcd_key(&key),
                    LiveResource {
                        value: Value::Record(Record::new(value)),
                        fingerprint: String::new(),
                    },
                );
            }
        }
    }
    let dr = estate.dr_addresses();
    estate.s3 = match &env.s3 {
        Some(s3) if !dr.is_empty() => S3Backend::connect(s3, timeout)
            .await?
            .read(&dr)
            .await
            .map_err(EngineError::from)?,
        _ => LiveState::default(),
    };
    live.merge(estate.s3.clone());
    Ok((estate, live))
}
