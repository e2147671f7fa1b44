//! The source index in etcd, under `<prefix>index/<env>/`:
//!
//! - `digest`: the digest of the files indexed, present only while every
//!   one of them is;
//! - `blob/<id>`: a file's names, written after its words' keys and
//!   removed before them, so that a blob key means its words are whole;
//! - `word/<name>/<id>`: empty, one per name a blob declares, read by
//!   prefix.

use std::collections::{BTreeMap, BTreeSet};

use etcd_client::{Client, Compare, CompareOp, GetOptions, Txn, TxnOp, TxnOpResponse};

use super::{EtcdLock, StateKeys, TXN_OPS, unreachable};
use crate::state::{SourceIndex, StateError};

impl StateKeys {
    fn index_digest(&self) -> String {
        format!("{}digest", self.index)
    }

    fn index_blobs(&self) -> String {
        format!("{}blob/", self.index)
    }

    fn index_word(&self, word: &str) -> String {
        format!("{}word/{word}/", self.index)
    }
}

/// [`crate::state::StateStore::index_lookup`]: one transaction per
/// [`TXN_OPS`] names, each read only while the digest is `digest`.
pub(super) async fn lookup(
    client: &Client,
    keys: &StateKeys,
    digest: &str,
    words: &BTreeSet<String>,
) -> Result<Option<BTreeSet<String>>, StateError> {
    let words: Vec<&String> = words.iter().filter(|w| !w.is_empty()).collect();
    let mut found = BTreeSet::new();
    // An empty list still asks whether the index is there.
    let chunks: Vec<&[&String]> = if words.is_empty() {
        vec![&[]]
    } else {
        words.chunks(TXN_OPS).collect()
    };
    for chunk in chunks {
        let gets: Vec<TxnOp> = chunk
            .iter()
            .map(|w| {
                TxnOp::get(
                    keys.index_word(w),
                    Some(GetOptions::new().with_prefix().with_keys_only()),
                )
            })
            .collect();
        let txn = Txn::new()
            .when([Compare::value(
                keys.index_digest(),
                CompareOp::Equal,
                digest,
            )])
            .and_then(gets);
        let resp = client.clone().txn(txn).await.map_err(unreachable)?;
        if !resp.succeeded() {
            return Ok(None);
        }
        for op in resp.op_responses() {
            let TxnOpResponse::Get(get) = op else {
                continue;
            };
            // A name with a `/` in it may match deeper keys: a blob too many
            // is read for nothing, never one too few.
            found.extend(get.kvs().iter().filter_map(|kv| {
                let key = String::from_utf8_lossy(kv.key());
                key.rsplit('/').next().map(str::to_owned)
            }));
        }
    }
    Ok(Some(found))
}

/// [`crate::state::Lock::save_index`]: the digest is removed first and
/// written last; in between, blobs no longer there go, and new ones come.
/// Nothing is written when the index is already of these files.
pub(super) async fn save(lock: &EtcdLock, index: &SourceIndex) -> Result<(), StateError> {
    let keys = &lock.keys;
    let mut client = lock.client.clone();
    let digest = client
        .get(keys.index_digest(), None)
        .await
        .map_err(unreachable)?;
    if digest
        .kvs()
        .first()
        .is_some_and(|kv| kv.value() == index.digest.as_bytes())
    {
        return Ok(());
    }
    let listed = client
        .get(keys.index_blobs(), Some(GetOptions::new().with_prefix()))
        .await
        .map_err(unreachable)?;
    // A blob key whose value does not read is rewritten: its words are
    // then written again, and an old word too many only costs a read.
    let indexed: BTreeMap<String, Option<BTreeSet<String>>> = listed
        .kvs()
        .iter()
        .map(|kv| {
            let key = String::from_utf8_lossy(kv.key());
            let blob = key.trim_start_matches(&keys.index_blobs()).to_owned();
            (blob, serde_json::from_slice(kv.value()).ok())
        })
        .collect();
    let mut batch = Batch::new(lock);
    batch.push(TxnOp::delete(keys.index_digest(), None)).await?;
    batch.flush().await?;
    for (blob, words) in &index.blobs {
        // Names another sluice wrote (or a value that reads as other
        // names) are written again, and those no longer said go.
        let stale = match indexed.get(blob) {
            Some(Some(said)) if said == words => continue,
            Some(Some(said)) => said.difference(words).collect(),
            _ => Vec::new(),
        };
        for word in stale.into_iter().filter(|w| !w.is_empty()) {
            let key = format!("{}{blob}", keys.index_word(word));
            batch.push(TxnOp::delete(key, None)).await?;
        }
        for word in words.iter().filter(|w| !w.is_empty()) {
            let key = format!("{}{blob}", keys.index_word(word));
            batch.push(TxnOp::put(key, "", None)).await?;
        }
        let value = serde_json::to_vec(words).expect("names are JSON");
        let key = format!("{}{blob}", keys.index_blobs());
        batch.push(TxnOp::put(key, value, None)).await?;
    }
    for (blob, words) in &indexed {
        if index.blobs.contains_key(blob) {
            continue;
        }
        let key = format!("{}{blob}", keys.index_blobs());
        batch.push(TxnOp::delete(key, None)).await?;
        for word in words.iter().flatten().filter(|w| !w.is_empty()) {
            let key = format!("{}{blob}", keys.index_word(word));
            batch.push(TxnOp::delete(key, None)).await?;
        }
    }
    batch
        .push(TxnOp::put(keys.index_digest(), index.digest.as_str(), None))
        .await?;
    batch.flush().await
}

/// Operations sent in fenced transactions of up to [`TXN_OPS`], in order.
struct Batch<'l> {
    lock: &'l EtcdLock,
    ops: Vec<TxnOp>,
}

impl<'l> Batch<'l> {
    fn new(lock: &'l EtcdLock) -> Self {
        Batch {
            lock,
            ops: Vec::new(),
        }
    }

    async fn push(&mut self, op: TxnOp) -> Result<(), StateError> {
        self.ops.push(op);
        if self.ops.len() >= TXN_OPS {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), StateError> {
        if self.ops.is_empty() {
            return Ok(());
        }
        self.lock.fenced(std::mem::take(&mut self.ops)).await
    }
}
