//! The pull-request view of `plan --base`: the change against its base
//! revision, the namespaces it touches, and only the namespace files that
//! bear on them.

use std::collections::BTreeSet;

use super::{Error, load_policies, print_diagnostics, resolve_desired};
use crate::cli::Cli;
use crate::config::namespace::dlq_parent;
use crate::config::parse::parse_tree;
use crate::desired::{Desired, Environment, Overrides, connect_as_base};
use crate::diag::Diagnostic;
use crate::engine::{self, EngineError, Target};
use crate::policy::Policies;
use crate::resource::{Address, Kind, System};
use crate::source::related::naming;
use crate::source::{PullRequest, PullRequestRepo, SourceError, SourceFile, SourceTree, Unchanged};
use crate::state::{Inventory, StateStore, Stored};

/// What a pull request's plan is made from.
pub(super) struct Loaded {
    /// The files the plan was resolved from.
    pub tree: SourceTree,
    pub desired: Desired,
    /// The base revision's policies.
    pub policies: Policies,
    pub target: Target,
    /// sluice's state, when it had to be read to choose the files.
    pub stored: Option<Stored>,
    /// Connection settings the change sets, which the plan does not use.
    pub review: Vec<String>,
    /// Why every namespace is planned, when one is.
    pub widened: Option<String>,
}

/// Loads a pull request against `base` and connects with the base
/// revision's settings. A change to what every namespace resolves through
/// (the workspace, a policy) plans every namespace, and says why. Otherwise
/// the scope is the namespaces whose files it changed (those its changed
/// files declare now, and those they declared at the base: a deleted or
/// renamed namespace plans as deletes), and only the namespace files that
/// may bear on them are parsed: see [`Related`].
///
/// The base's workspace is read first, and sluice connects with it while
/// the change is read and checked: librdkafka's first Metadata request,
/// whose answer grows with the cluster on some brokers, is in flight
/// meanwhile. A problem in the change's files is still said first, even
/// when a system does not answer.
pub(super) async fn load(cli: &Cli, base: &str, env: Option<&str>) -> Result<Loaded, Error> {
    let started = std::time::Instant::now();
    let repo = PullRequestRepo::open(&cli.source.origin(), base)?;
    let base_workspace = repo.base_workspace()?;
    let (base_env, problems) = workspace_environment(cli, &base_workspace, env);
    if base_env.is_none() {
        // What is wrong with the base's file, said as validate says it.
        let errors: Vec<Diagnostic> = problems.into_iter().filter(Diagnostic::is_error).collect();
        print_diagnostics(&base_workspace, &errors);
    }
    let base_env = base_env.ok_or_else(|| {
        let base = base.to_owned();
        match (&base_workspace.workspace, base_workspace.links.is_empty()) {
            (None, true) => Error::BaseWorkspace {
                base,
                why: "no `sluice.yaml`",
            },
            (None, false) => Error::BaseWorkspace {
                base,
                why: "`sluice.yaml` as a symbolic link, which sluice never follows",
            },
            (Some(_), _) => Error::BaseEnvironment {
                env: env
                    .or(cli.env.as_deref())
                    .unwrap_or("the default")
                    .to_owned(),
                base,
            },
        }
    })?;
    let connecting = tokio::spawn({
        let (env, timeout) = (base_env.clone(), cli.timeout);
        async move { Target::connect(&env, timeout).await }
    });
    let connected = async || -> Result<Target, Error> {
        Ok(connecting.await.expect("connecting does not panic")?)
    };
    let (repo, pr) = tokio::task::spawn_blocking(move || repo.read().map(|pr| (repo, pr)))
        .await
        .expect("reading the change does not panic")?;
    tracing::debug!(took = ?started.elapsed(), "pull request read");
    let started = std::time::Instant::now();
    let policies = load_policies(&pr.base)?;
    tracing::debug!(took = ?started.elapsed(), "policies compiled");
    let widened = widened_by(&pr.base, &pr.head);
    // Nothing declared at all: plan everything, so that the guard against
    // deleting everything applies.
    if widened.is_some() || (pr.head.namespaces.is_empty() && pr.unchanged.is_empty()) {
        let mut namespaces = repo.read_unchanged(&pr.unchanged)?;
        namespaces.extend(pr.head.namespaces.iter().cloned());
        namespaces.sort_by(|a, b| a.path.cmp(&b.path));
        let head = SourceTree {
            partial: false,
            ..pr.head.with_namespaces(namespaces)
        };
        let (tree, mut desired) = resolve_desired(cli, head, env)?;
        // What it connects with is the base's, as `target` was connected.
        let review = connect_as_base(&mut desired.environment, &base_env);
        return Ok(Loaded {
            tree,
            desired,
            policies,
            target: connected().await?,
            stored: None,
            review,
            widened,
        });
    }
    load_scoped(cli, &repo, pr, env, &base_env, policies, connected).await
}

/// [`load`] of a change to namespace files only.
async fn load_scoped(
    cli: &Cli,
    repo: &PullRequestRepo,
    pr: PullRequest,
    env: Option<&str>,
    base_env: &Environment,
    policies: Policies,
    connected: impl AsyncFnOnce() -> Result<Target, Error>,
) -> Result<Loaded, Error> {
    let PullRequest {
        head,
        base: base_tree,
        changed,
        unchanged,
        base_digest,
    } = pr;
    // The change's own files first: their problems are shown before any
    // system is reached.
    if engine::load_desired(
        &head,
        env.or(cli.env.as_deref()),
        &Overrides::from_process(),
    )
    .0
    .is_none()
    {
        // Prints its problems.
        return Err(resolve_desired(cli, head, env)
            .err()
            .unwrap_or(Error::Invalid(1)));
    }
    let mut scope = names_in(
        base_tree
            .namespaces
            .into_iter()
            .filter(|f| changed.before.contains(&f.path))
            .collect(),
    );
    scope.extend(names_in(head.namespaces.clone()));
    // The workspace is the base's: the change did not edit it.
    let target = connected().await?;
    let read_blobs = |files: &[Unchanged]| repo.read_unchanged(files);
    let total = head.namespaces.len() + unchanged.len();
    let mut others = Others {
        named: unchanged,
        read: Vec::new(),
        index: Some((target.state.as_ref(), base_digest.as_str())),
        reader: &read_blobs,
        reads: 0,
    };
    // The inventory of every namespace found, read again as more are.
    let mut related = Related::new(head.namespaces.clone(), &scope);
    let mut read = scope.clone();
    let stored = loop {
        let stored = target
            .state
            .load(Some(&read))
            .await
            .map_err(EngineError::from)?;
        let found = related.grow(&stored.inventory, &mut others).await?;
        if stored.covers(found) {
            break stored;
        }
        read.extend(found.iter().cloned());
    };
    let tree = related.tree(&head);
    tracing::debug!(
        files = tree.namespaces.len(),
        unchanged_read = others.reads,
        of = total,
        "namespace files read for the scope"
    );
    let (tree, mut desired) = resolve_desired(cli, tree, env)?;
    let review = connect_as_base(&mut desired.environment, base_env);
    desired.scope = Some(scope);
    Ok(Loaded {
        tree,
        desired,
        policies,
        target,
        stored: Some(stored),
        review,
        widened: None,
    })
}

/// The namespaces `files` declare; a file that does not parse names
/// nothing (a changed one's problems are shown before this).
fn names_in(files: Vec<SourceFile>) -> BTreeSet<String> {
    parse_files(files)
        .map(|ns| ns.metadata.name.value)
        .collect()
}

/// Reads unchanged namespace files.
type Reader<'a> = dyn Fn(&[Unchanged]) -> Result<Vec<SourceFile>, SourceError> + 'a;

/// The namespace files a pull request leaves as they are, not found yet:
/// looked up by name in the source index, and only those found read; or,
/// when the index is not of the base's files, all read and searched by
/// their text.
struct Others<'a> {
    /// Not read.
    named: Vec<Unchanged>,
    /// Read, once the index is found not to be of the base's files.
    read: Vec<SourceFile>,
    /// The store and the digest of the base's files.
    index: Option<(&'a dyn StateStore, &'a str)>,
    reader: &'a Reader<'a>,
    /// How many were read.
    reads: usize,
}

impl Others<'_> {
    /// Takes the files that may declare one of `words`.
    async fn take_naming(&mut self, words: &BTreeSet<String>) -> Result<Vec<SourceFile>, Error> {
        if let Some((state, digest)) = self.index {
            let blobs = state
                .index_lookup(digest, words)
                .await
                .map_err(EngineError::from)?;
            if let Some(blobs) = blobs {
                let (hits, rest) = std::mem::take(&mut self.named)
                    .into_iter()
                    .partition::<Vec<_>, _>(|u| blobs.contains(&u.blob.to_string()));
                self.named = rest;
                self.reads += hits.len();
                return Ok((self.reader)(&hits)?);
            }
            tracing::debug!("no source index of the base's namespace files: all are read");
            self.index = None;
            self.reads += self.named.len();
            self.read = (self.reader)(&std::mem::take(&mut self.named))?;
        }
        let hits: BTreeSet<usize> = naming(&self.read, words).into_iter().collect();
        let (hits, rest) = std::mem::take(&mut self.read)
            .into_iter()
            .enumerate()
            .partition::<Vec<_>, _>(|(i, _)| hits.contains(i));
        self.read = rest.into_iter().map(|(_, f)| f).collect();
        Ok(hits.into_iter().map(|(_, f)| f).collect())
    }
}

/// The namespace files a plan of `scope` needs: the changed ones, and every
/// other that declares a name they declare (a namespace, topic, group or
/// bucket that could collide or be shared) or a name the inventory records
/// under the scope (a resource handed over). The files found so pull in
/// those sharing a bucket with them, and so on, as [`engine::plan`] widens
/// the scope. Checks over every namespace (the partition budget) are
/// `validate`'s and apply's. The search grows as more of the inventory is
/// read, and never searches for a name twice.
struct Related {
    /// The files found, the changed ones first.
    picked: Vec<SourceFile>,
    /// The names to look for, and those looked for already.
    words: BTreeSet<String>,
    searched: BTreeSet<String>,
    /// The namespaces found, whose inventory the search should be given.
    found: BTreeSet<String>,
}

impl Related {
    fn new(changed: Vec<SourceFile>, scope: &BTreeSet<String>) -> Self {
        let words = parse_files(changed.clone())
            .flat_map(|ns| ns.names())
            .chain(scope.iter().cloned())
            .collect();
        Related {
            picked: changed,
            words,
            searched: BTreeSet::new(),
            found: scope.clone(),
        }
    }

    /// Searches `others` on with what `inventory` records under the
    /// namespaces found; returns every namespace found so far.
    async fn grow(
        &mut self,
        inventory: &Inventory,
        others: &mut Others<'_>,
    ) -> Result<&BTreeSet<String>, Error> {
        let recorded = |names: &BTreeSet<String>| -> Vec<String> {
            inventory
                .entries
                .iter()
                .filter(|(_, e)| names.contains(&e.namespace))
                .filter_map(|(a, _)| word_of(a))
                .flat_map(|word| {
                    // A dead-letter topic is declared as its topic's
                    // `dlq: true`, by the topic's name only.
                    let stem = dlq_parent(&word).map(str::to_owned);
                    std::iter::once(word).chain(stem)
                })
                .collect()
        };
        self.words.extend(recorded(&self.found));
        loop {
            let fresh: BTreeSet<String> = self.words.difference(&self.searched).cloned().collect();
            if fresh.is_empty() {
                break;
            }
            // A name searched for once has found every file that declares it.
            let hits = others.take_naming(&fresh).await?;
            self.searched.extend(fresh);
            let mut names = BTreeSet::new();
            for ns in parse_files(hits.clone()) {
                self.words.extend(ns.buckets());
                names.insert(ns.metadata.name.value);
            }
            self.words.extend(recorded(&names));
            self.found.extend(names);
            self.picked.extend(hits);
        }
        Ok(&self.found)
    }

    /// `head` with the files found only.
    fn tree(&self, head: &SourceTree) -> SourceTree {
        let mut files = self.picked.clone();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        head.with_namespaces(files)
    }
}

/// The namespace documents of `files` that parse.
fn parse_files(files: Vec<SourceFile>) -> impl Iterator<Item = crate::config::Namespace> {
    let only = SourceTree {
        namespaces: files,
        ..SourceTree::default()
    };
    parse_tree(&only, &mut Vec::new())
        .namespaces
        .into_iter()
        .map(|d| d.value)
}

/// The name by which a namespace file would declare what `address` is: a
/// topic's, an ACL's topic or group, a bucket. Records and rule files are
/// the namespace's own, found by its name.
fn word_of(address: &Address) -> Option<String> {
    match address.kind() {
        Kind::KafkaTopic => Some(address.name().to_owned()),
        Kind::KafkaAcl => {
            let (_, rest) = address.name().split_once('/')?;
            let (resource, _) = rest.rsplit_once('/')?;
            resource.split_once(':').map(|(_, name)| name.to_owned())
        }
        k if k.system() == System::S3 => Some(address.bucket_and_id().0.to_owned()),
        _ => None,
    }
}

/// What a pull request changes outside `namespaces/` that every namespace
/// resolves or is judged through.
fn widened_by(base: &SourceTree, head: &SourceTree) -> Option<String> {
    let text = |f: &Option<SourceFile>| f.as_ref().map(|f| f.text.clone());
    if text(&base.workspace) != text(&head.workspace) {
        return Some("the change edits the workspace file (`sluice.yaml`)".into());
    }
    let policies = |t: &SourceTree| -> Vec<(String, String)> {
        let mut p: Vec<_> = t
            .policies
            .iter()
            .map(|f| (f.path.clone(), f.text.clone()))
            .collect();
        p.sort();
        p
    };
    if policies(base) != policies(head) {
        return Some("the change edits a policy (`policies/`)".into());
    }
    None
}

/// The environment as `tree`'s workspace declares it (for a pull request,
/// the base revision's: its plan connects with that, never with the
/// change's settings).
fn workspace_environment(
    cli: &Cli,
    tree: &SourceTree,
    env: Option<&str>,
) -> (Option<Environment>, Vec<Diagnostic>) {
    let workspace_only = SourceTree {
        workspace: tree.workspace.clone(),
        ..SourceTree::default()
    };
    let (desired, diags) = engine::load_desired(
        &workspace_only,
        env.or(cli.env.as_deref()),
        &Overrides::from_process(),
    );
    (desired.map(|d| d.environment), diags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resource::Address;
    use crate::state::InventoryEntry;
    use crate::state::memory::MemoryState;

    fn file(name: &str, body: &str) -> SourceFile {
        SourceFile {
            path: format!("namespaces/{name}.yaml"),
            text: format!(
                "apiVersion: sluice/v1\nkind: Namespace\nmetadata:\n  name: {name}\nspec:\n{body}"
            ),
        }
    }

    /// An inventory recording topic `topic` under `alpha`.
    fn recorded_under_alpha(topic: &str) -> Inventory {
        let entry = InventoryEntry {
            namespace: "alpha".into(),
            digest: String::new(),
            protected: false,
            keys: Vec::new(),
            creating: false,
        };
        Inventory {
            entries: [(Address::topic(topic), entry)].into(),
        }
    }

    fn backup(bucket: &str) -> String {
        format!("  disaster_recovery:\n    backup:\n      bucket: {bucket}\n")
    }

    /// `alpha` changed; the others as they are.
    fn estate() -> (SourceFile, Vec<SourceFile>, Inventory) {
        let alpha = file(
            "alpha",
            &format!("  topics:\n    - name: orders\n{}", backup("shared")),
        );
        let others = vec![
            // Shares a bucket with `alpha`, and replicates into `far`.
            file(
                "bravo",
                &format!(
                    "{}    replication:\n      bucket: far\n      region: eu-west-1\n",
                    backup("shared")
                ),
            ),
            // Shares `far` with `bravo`: pulled in through it.
            file("charlie", &backup("far")),
            // Would collide with `alpha`'s dead-letter topic.
            file("delta", "  topics:\n    - name: orders.dlq\n"),
            // May spell anything to a text search: an escape.
            file("echo", "  topics:\n    - name: \"ord\\x65rs-x\"\n"),
            // Declares what the inventory records under `alpha`.
            file("foxtrot", "  topics:\n    - name: legacy\n"),
            // Unrelated.
            file(
                "golf",
                &format!("  topics:\n    - name: payments\n{}", backup("other")),
            ),
        ];
        let inventory = recorded_under_alpha("legacy");
        (alpha, others, inventory)
    }

    fn named(files: &[SourceFile]) -> Vec<Unchanged> {
        files
            .iter()
            .map(|f| Unchanged {
                path: f.path.clone(),
                blob: git2::Oid::from_str(&crate::source::blob_id(f.text.as_bytes())).unwrap(),
            })
            .collect()
    }

    /// What a search from `alpha` finds with `state`'s index (the base's
    /// files are `alpha` and the others), given one inventory after another:
    /// the namespaces, the files picked, and the unchanged files read.
    async fn search(
        state: &dyn StateStore,
        inventories: &[&Inventory],
    ) -> Vec<(BTreeSet<String>, Vec<String>, Vec<String>)> {
        let (alpha, others, _) = estate();
        let digest = crate::source::blob_digest(
            named(&others)
                .iter()
                .map(|u| u.blob.to_string())
                .chain([crate::source::blob_id(alpha.text.as_bytes())])
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str),
        );
        let reads = std::sync::Mutex::new(Vec::new());
        let read = |files: &[Unchanged]| {
            let mut reads = reads.lock().unwrap();
            reads.extend(files.iter().map(|u| u.path.clone()));
            Ok(others
                .iter()
                .filter(|f| files.iter().any(|u| u.path == f.path))
                .cloned()
                .collect())
        };
        let mut others_left = Others {
            named: named(&others),
            read: Vec::new(),
            index: Some((state, digest.as_str())),
            reader: &read,
            reads: 0,
        };
        let scope = ["alpha".to_owned()].into_iter().collect();
        let mut related = Related::new(vec![alpha], &scope);
        let mut out = Vec::new();
        for inventory in inventories {
            let found = related
                .grow(inventory, &mut others_left)
                .await
                .unwrap()
                .clone();
            let tree = related.tree(&SourceTree::default());
            let paths = tree.namespaces.iter().map(|f| f.path.clone()).collect();
            assert!(tree.partial);
            let mut reads = std::mem::take(&mut *reads.lock().unwrap());
            reads.sort();
            out.push((found, paths, reads));
        }
        out
    }

    fn paths(names: &[&str]) -> Vec<String> {
        names
            .iter()
            .map(|n| format!("namespaces/{n}.yaml"))
            .collect()
    }

    #[tokio::test]
    async fn without_an_index_every_file_is_read_and_those_that_spell_a_name_are_picked() {
        let (_, _, inventory) = estate();
        let state = MemoryState::default();
        let steps = search(&state, &[&Inventory::default(), &inventory]).await;
        // All six unchanged files are read once, at the first search.
        let (found, picked, reads) = &steps[0];
        assert_eq!(reads.len(), 6);
        // The escape may spell `orders`: it is picked, not guessed.
        assert_eq!(
            picked,
            &paths(&["alpha", "bravo", "charlie", "delta", "echo"])
        );
        assert_eq!(found.len(), 5, "{found:?}");
        // Once the inventory records `legacy` under `alpha`, the search finds
        // `foxtrot`, with nothing read again.
        let (found, picked, reads) = &steps[1];
        assert!(reads.is_empty());
        assert!(found.contains("foxtrot"));
        assert_eq!(picked.len(), 6);
    }

    #[tokio::test]
    async fn with_the_index_of_the_base_only_the_files_found_are_read() {
        let (alpha, others, inventory) = estate();
        let state = MemoryState::default();
        let mut all = others.clone();
        all.push(alpha);
        let index = crate::state::SourceIndex::of(&SourceTree {
            namespaces: all,
            ..SourceTree::default()
        })
        .unwrap();
        let lock = state
            .lock(&crate::state::Holder::current(), std::time::Duration::ZERO)
            .await
            .unwrap();
        lock.save_index(&index).await.unwrap();
        let steps = search(&state, &[&Inventory::default(), &inventory]).await;
        // The escape spells `orders-x`, which the index knows: not read.
        let (found, picked, reads) = &steps[0];
        assert_eq!(reads, &paths(&["bravo", "charlie", "delta"]));
        assert_eq!(picked, &paths(&["alpha", "bravo", "charlie", "delta"]));
        assert_eq!(found.len(), 4, "{found:?}");
        let (found, picked, reads) = &steps[1];
        assert_eq!(reads, &paths(&["foxtrot"]));
        assert!(found.contains("foxtrot"));
        assert_eq!(picked.len(), 5);

        // An index of other files is not used: every file is read.
        let mut other = index.clone();
        other.digest = "of-another-revision".into();
        lock.save_index(&other).await.unwrap();
        let steps = search(&state, &[&inventory]).await;
        assert_eq!(steps[0].2.len(), 6);
        assert_eq!(steps[0].1.len(), 6);
    }

    /// The inventory records `hand.dlq` under `alpha`, and `bravo` now
    /// makes it with `dlq: true` on `hand` (a file that spells `hand.dlq`
    /// nowhere): `bravo` is found, with the index and without (else the
    /// scoped plan deletes `hand.dlq`, which the full plan hands over).
    #[tokio::test]
    async fn a_dead_letter_topic_recorded_under_the_scope_finds_the_file_whose_dlq_makes_it() {
        let alpha = file("alpha", "  topics:\n    - name: orders\n");
        let others = vec![
            file("bravo", "  topics:\n    - name: hand\n      dlq: true\n"),
            file("charlie", "  topics:\n    - name: other\n"),
        ];
        let inventory = recorded_under_alpha("hand.dlq");
        let mut all = others.clone();
        all.push(alpha.clone());
        let tree = SourceTree {
            namespaces: all,
            ..SourceTree::default()
        };
        let digest = crate::state::SourceIndex::digest_of(&tree);
        let read = |files: &[Unchanged]| {
            Ok(others
                .iter()
                .filter(|f| files.iter().any(|u| u.path == f.path))
                .cloned()
                .collect())
        };
        for indexed in [false, true] {
            let state = MemoryState::default();
            if indexed {
                let lock = state
                    .lock(&crate::state::Holder::current(), std::time::Duration::ZERO)
                    .await
                    .unwrap();
                let index = crate::state::SourceIndex::of(&tree).unwrap();
                lock.save_index(&index).await.unwrap();
            }
            let mut left = Others {
                named: named(&others),
                read: Vec::new(),
                index: Some((&state, digest.as_str())),
                reader: &read,
                reads: 0,
            };
            let scope = ["alpha".to_owned()].into_iter().collect();
            let mut related = Related::new(vec![alpha.clone()], &scope);
            let found = related.grow(&inventory, &mut left).await.unwrap();
            assert!(found.contains("bravo"), "indexed: {indexed}, {found:?}");
            assert!(!found.contains("charlie"), "indexed: {indexed}, {found:?}");
            assert_eq!(left.reads, if indexed { 1 } else { 2 });
        }
    }

    #[test]
    fn an_acl_or_bucket_address_gives_the_name_a_file_would_spell() {
        let acl = Address::try_from("kafka.acl/User:svc/topic:orders/read".to_owned()).unwrap();
        assert_eq!(word_of(&acl).as_deref(), Some("orders"));
        let rule = Address::in_bucket(Kind::S3Lifecycle, "shared", "sluice-a");
        assert_eq!(word_of(&rule).as_deref(), Some("shared"));
        assert_eq!(word_of(&Address::etcd_key("/sluice/registry/a")), None);
    }
}
