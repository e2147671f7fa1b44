//! The pull-request view of `plan --base`: the change against its base
//! revision, the namespaces it touches, and only the namespace files that
//! bear on them.

use std::collections::BTreeSet;

use super::{Error, load_policies, print_diagnostics, resolve_desired};
use crate::cli::Cli;
use crate::config::parse::parse_tree;
use crate::desired::{Desired, Environment, Overrides, connect_as_base};
use crate::diag::Diagnostic;
use crate::engine::{self, EngineError, Target};
use crate::policy::Policies;
use crate::resource::{Address, Kind, System};
use crate::source::related::naming;
use crate::source::{PullRequest, PullRequestRepo, SourceFile, SourceTree};
use crate::state::{Inventory, Stored};

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
    let pr = tokio::task::spawn_blocking(move || repo.read())
        .await
        .expect("reading the change does not panic")?;
    tracing::debug!(took = ?started.elapsed(), "pull request read");
    let started = std::time::Instant::now();
    let policies = load_policies(&pr.base)?;
    tracing::debug!(took = ?started.elapsed(), "policies compiled");
    let widened = widened_by(&pr.base, &pr.head);
    // Nothing declared at all: plan everything, so that the guard against
    // deleting everything applies.
    if widened.is_some() || pr.head.namespaces.is_empty() {
        let (tree, mut desired) = resolve_desired(cli, pr.head, env)?;
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
    load_scoped(cli, pr, env, &base_env, policies, connected).await
}

/// [`load`] of a change to namespace files only.
async fn load_scoped(
    cli: &Cli,
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
    } = pr;
    let is_changed = |f: &SourceFile| changed.now.contains(&f.path);
    // The change's own files first: their problems are shown before any
    // system is reached.
    let own = head.with_namespaces(
        head.namespaces
            .iter()
            .filter(|f| is_changed(f))
            .cloned()
            .collect(),
    );
    if engine::load_desired(&own, env.or(cli.env.as_deref()), &Overrides::from_process())
        .0
        .is_none()
    {
        // Prints its problems.
        return Err(resolve_desired(cli, own, env)
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
    scope.extend(names_in(own.namespaces));
    // The workspace is the base's: the change did not edit it.
    let target = connected().await?;
    // The inventory of every namespace found, read again as more are.
    let mut related = Related::new(&head, &changed.now, &scope);
    let mut read = scope.clone();
    let stored = loop {
        let stored = target
            .state
            .load(Some(&read))
            .await
            .map_err(EngineError::from)?;
        let found = related.grow(&stored.inventory);
        if stored.covers(found) {
            break stored;
        }
        read.extend(found.iter().cloned());
    };
    let tree = related.tree(&head);
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

/// The namespace files of `head` a plan of `scope` needs: the `changed`
/// ones, and every other that spells a name they declare (a namespace,
/// topic, group or bucket that could collide or be shared) or a name the
/// inventory records under the scope (a resource handed over). The files
/// found so pull in those sharing a bucket with them, and so on, as
/// [`engine::plan`] widens the scope. Checks over every namespace (the
/// partition budget) are `validate`'s and apply's. The search grows as
/// more of the inventory is read, and never searches for a name twice.
struct Related<'a> {
    files: &'a [SourceFile],
    /// The files found, by index.
    picked: BTreeSet<usize>,
    /// The names to look for, and those looked for already.
    words: BTreeSet<String>,
    searched: BTreeSet<String>,
    /// The namespaces found, whose inventory the search should be given.
    found: BTreeSet<String>,
}

impl<'a> Related<'a> {
    fn new(head: &'a SourceTree, changed: &BTreeSet<String>, scope: &BTreeSet<String>) -> Self {
        let files = &head.namespaces;
        let picked: BTreeSet<usize> = (0..files.len())
            .filter(|&i| changed.contains(&files[i].path))
            .collect();
        let words = parse_files(Self::at(files, &picked))
            .flat_map(|ns| ns.names())
            .chain(scope.iter().cloned())
            .collect();
        Related {
            files,
            picked,
            words,
            searched: BTreeSet::new(),
            found: scope.clone(),
        }
    }

    fn at(files: &[SourceFile], indices: &BTreeSet<usize>) -> Vec<SourceFile> {
        indices.iter().map(|&i| files[i].clone()).collect()
    }

    /// Searches on with what `inventory` records under the namespaces found;
    /// returns every namespace found so far.
    fn grow(&mut self, inventory: &Inventory) -> &BTreeSet<String> {
        let recorded = |names: &BTreeSet<String>| -> Vec<String> {
            inventory
                .entries
                .iter()
                .filter(|(_, e)| names.contains(&e.namespace))
                .filter_map(|(a, _)| word_of(a))
                .collect()
        };
        self.words.extend(recorded(&self.found));
        loop {
            let fresh: BTreeSet<String> = self.words.difference(&self.searched).cloned().collect();
            // A name searched for once has found every file that spells it.
            let hits: BTreeSet<usize> = naming(self.files, &self.picked, &fresh)
                .into_iter()
                .collect();
            self.searched.extend(fresh);
            if hits.is_empty() {
                break;
            }
            let mut names = BTreeSet::new();
            for ns in parse_files(Self::at(self.files, &hits)) {
                self.words.extend(ns.buckets());
                names.insert(ns.metadata.name.value);
            }
            self.words.extend(recorded(&names));
            self.found.extend(names);
            self.picked.extend(hits);
        }
        &self.found
    }

    /// `head` with the files found only.
    fn tree(&self, head: &SourceTree) -> SourceTree {
        tracing::debug!(
            files = self.picked.len(),
            of = self.files.len(),
            "namespace files read for the scope"
        );
        head.with_namespaces(Self::at(self.files, &self.picked))
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

    fn file(name: &str, body: &str) -> SourceFile {
        SourceFile {
            path: format!("namespaces/{name}.yaml"),
            text: format!(
                "apiVersion: sluice/v1\nkind: Namespace\nmetadata:\n  name: {name}\nspec:\n{body}"
            ),
        }
    }

    fn backup(bucket: &str) -> String {
        format!("  disaster_recovery:\n    backup:\n      bucket: {bucket}\n")
    }

    #[test]
    fn reads_the_changed_files_and_those_that_name_what_they_declare() {
        let files = vec![
            file(
                "alpha",
                &format!("  topics:\n    - name: orders\n{}", backup("shared")),
            ),
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
            // May spell anything: an escape.
            file("echo", "  topics:\n    - name: \"ord\\x65rs-x\"\n"),
            // Declares what the inventory records under `alpha`.
            file("foxtrot", "  topics:\n    - name: legacy\n"),
            // Unrelated.
            file(
                "golf",
                &format!("  topics:\n    - name: payments\n{}", backup("other")),
            ),
        ];
        let head = SourceTree {
            namespaces: files,
            ..SourceTree::default()
        };
        let mut inventory = Inventory::default();
        inventory.entries.insert(
            Address::topic("legacy"),
            InventoryEntry {
                namespace: "alpha".into(),
                digest: String::new(),
                protected: false,
                keys: Vec::new(),
                creating: false,
            },
        );
        let changed = ["namespaces/alpha.yaml".to_owned()].into_iter().collect();
        let scope = ["alpha".to_owned()].into_iter().collect();
        let mut related = Related::new(&head, &changed, &scope);
        let found = related.grow(&inventory).clone();
        let tree = related.tree(&head);
        let paths: Vec<&str> = tree.namespaces.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"]
                .map(|n| format!("namespaces/{n}.yaml"))
        );
        assert!(tree.partial);
        assert_eq!(found.len(), 6, "{found:?}");
        // With nothing recorded, `foxtrot` bears on nothing; once the
        // inventory read later records `legacy`, the search finds it.
        let mut related = Related::new(&head, &changed, &scope);
        related.grow(&Inventory::default());
        let foxtrot = |t: &SourceTree| {
            t.namespaces
                .iter()
                .any(|f| f.path.ends_with("/foxtrot.yaml"))
        };
        assert!(!foxtrot(&related.tree(&head)));
        assert!(related.grow(&inventory).contains("foxtrot"));
        assert!(foxtrot(&related.tree(&head)));
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
