//! `sluice import --env E --out DIR [--topics REGEX]`: Namespace YAML from
//! live state. Read-only against the live systems; it writes only new files.

use std::path::Path;
use std::time::Duration;

use regex::Regex;

use super::{Error, Exit, block_on, load_desired};
use crate::backend::Backend;
use crate::backend::etcd::{EtcdBackend, connect};
use crate::backend::kafka::KafkaBackend;
use crate::backend::s3::S3Backend;
use crate::cli::Cli;
use crate::desired::Environment;
use crate::engine::EngineError;
use crate::import::{Estate, group, namespaces};
use crate::plan::LiveState;
use crate::records::etcd_key;
use crate::resource::{Address, Value};

const MODELINE: &str = "# yaml-language-server: $schema=../schemas/namespace.schema.json\n";

pub fn run(cli: &Cli, out: &Path, topics: Option<&str>) -> Result<Exit, Error> {
    let pattern = topics.map(Regex::new).transpose().map_err(Error::Pattern)?;
    let (_, desired) = load_desired(cli, None)?;
    let estate = block_on(read_estate(
        &desired.environment,
        pattern.as_ref(),
        cli.timeout,
    ))?;
    let docs = namespaces(&estate);
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
    let write_error = |source| Error::Write {
        path: out.display().to_string(),
        source,
    };
    std::fs::create_dir_all(out).map_err(write_error)?;
    for (doc, path) in docs.values().zip(&files) {
        let yaml = serde_saphyr::to_string(doc).expect("a namespace document is YAML");
        crate::files::write_new(path, format!("{MODELINE}{yaml}").as_bytes()).map_err(
            |source| Error::Write {
                path: path.display().to_string(),
                source,
            },
        )?;
    }
    eprintln!(
        "Wrote {} namespace(s) with {} topic(s) to {}. Check them with `sluice plan`: it should show no changes, and the next apply adopts them.",
        docs.len(),
        estate.topics.len(),
        out.display()
    );
    Ok(Exit::Success)
}

/// The live state import reads: the topics (those `pattern` matches), the
/// namespace records in etcd, and the buckets their DR records name.
async fn read_estate(
    env: &Environment,
    pattern: Option<&Regex>,
    timeout: Duration,
) -> Result<Estate, Error> {
    let kafka = KafkaBackend::connect(&env.kafka, timeout)?;
    let names: Vec<String> = kafka
        .topic_names()
        .await
        .map_err(EngineError::from)?
        .into_iter()
        .filter(|n| pattern.is_none_or(|p| p.is_match(n)))
        .collect();
    let addresses: Vec<Address> = names.iter().map(|n| Address::topic(n)).collect();
    let live = kafka.read(&addresses).await.map_err(EngineError::from)?;
    let mut estate = Estate::default();
    for (address, l) in live.resources {
        if let Value::Topic(t) = l.value {
            estate.topics.insert(address.name().to_owned(), t);
        }
    }
    let etcd = EtcdBackend::new(connect(&env.etcd, timeout).await?, &env.etcd.prefix);
    let root = etcd_key(&env.etcd.prefix, "");
    for (key, record) in etcd.records(&root).await.map_err(EngineError::from)? {
        let Some(rest) = key.strip_prefix(&root) else {
            continue;
        };
        // sluice's own state is not desired state, and a record that
        // does not read is left out, said once.
        let bytes = serde_json::to_vec(&record).expect("records are JSON");
        if let Err(e) = estate.add_record(rest, &bytes) {
            tracing::warn!("skipping the etcd record `{key}`, which does not read: {e}");
        }
    }
    // With `--topics`, only the namespaces of the chosen topics.
    if pattern.is_some() {
        let kept = group(&estate);
        estate.retain_namespaces(&kept);
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
    Ok(estate)
}
