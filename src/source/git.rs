//! Config files at a Git revision, read from the object database with git2:
//! no checkout, no working tree.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use git2::{ObjectType, Repository, TreeWalkMode, TreeWalkResult};

use super::dir::{display_path, load_dir_only};
use super::{
    NAMESPACES_DIR, Origin, POLICIES_DIR, SourceError, SourceFile, SourceTree, WORKSPACE_FILE,
    is_ignored_yaml, is_policy, is_sluice_yaml, is_yaml, may_be_stray,
};

/// Reads the config files of `repo` (a local path or a URL) at `rev`. A URL is
/// fetched into a bare cache repository first.
pub fn load_git(repo: &str, rev: &str) -> Result<SourceTree, SourceError> {
    let (repository, remote) = open_or_fetch(repo)?;
    let commit = resolve(&repository, rev, remote)?;
    let tree = commit
        .tree()
        .map_err(git(format!("cannot read the tree of `{rev}`")))?;
    read_tree(&repository, &tree, Some(commit.id().to_string()))
}

/// The config of the source at another revision: with `--git`, in that
/// repository; with `--repo DIR`, in the Git repository that holds DIR,
/// from the object database (the working tree is not read).
pub fn load_revision(origin: &Origin, rev: &str) -> Result<SourceTree, SourceError> {
    match origin {
        Origin::Git { repo, .. } => load_git(repo, rev),
        Origin::Dir(dir) => {
            let (repository, sub) = discover(dir)?;
            let commit = resolve(&repository, rev, false)?;
            let tree = commit
                .tree()
                .map_err(git(format!("cannot read the tree of `{rev}`")))?;
            read_subtree(
                &repository,
                &tree,
                &sub,
                Some(commit.id().to_string()),
                &|_| true,
            )
        }
    }
}

/// A pull request's view of the config: the source as it is, the config at
/// the base revision, and the namespace files that differ between them.
/// Of the namespace files, only the changed ones are read.
#[derive(Clone, Debug)]
pub struct PullRequest {
    /// The source as it is; of its namespace files, those in `changed.now`.
    pub head: SourceTree,
    /// The base's workspace and policies, and of its namespace files only
    /// those in `changed.before`.
    pub base: SourceTree,
    pub changed: Changed,
    /// The source's other namespace files, the same as at the base: named,
    /// not read ([`PullRequestRepo::read_unchanged`] reads them).
    pub unchanged: Vec<Unchanged>,
    /// The [`blob_digest`] of every namespace file of the base.
    pub base_digest: String,
}

/// A namespace file the pull request does not change.
#[derive(Clone, Debug)]
pub struct Unchanged {
    /// As the source shows it.
    pub path: String,
    /// Its Git blob id.
    pub blob: git2::Oid,
}

/// The Git blob id of a file's bytes: the same whether the file was read
/// from a tree or from disk (unless Git filters it on checkout).
pub fn blob_id(bytes: &[u8]) -> String {
    git2::Oid::hash_object(ObjectType::Blob, bytes)
        .expect("hashing bytes does not fail")
        .to_string()
}

/// Which names the source index holds of a file: bump it whenever
/// [`crate::config::Namespace::names`] gives other names, so that an index
/// written by a sluice that gave the old ones is of no revision's files.
const INDEX_NAMES: &str = "sluice source index: names v1";

/// One id for a set of blob ids (the namespace files of a revision), in
/// whatever order and repetition they come, and for [`INDEX_NAMES`].
pub fn blob_digest<'a>(ids: impl IntoIterator<Item = &'a str>) -> String {
    let ids: BTreeSet<&str> = ids.into_iter().collect();
    let listing: String = std::iter::once(INDEX_NAMES)
        .chain(ids)
        .flat_map(|id| [id, "\n"])
        .collect();
    blob_id(listing.as_bytes())
}

/// Namespace files a pull request touches, each path as its tree shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changed {
    /// Added or modified: paths of `head`.
    pub now: BTreeSet<String>,
    /// Modified or deleted: paths of `base`.
    pub before: BTreeSet<String>,
}

/// A pull request's repository, opened (a URL fetched) and its base
/// revision resolved, before any of the change is read: the base's
/// workspace can be read alone first, to connect while the rest is read.
pub struct PullRequestRepo {
    repository: Repository,
    /// Whether it was fetched (its branches live under `origin/`).
    remote: bool,
    /// Where the config is inside the repository (empty at its root).
    sub: PathBuf,
    base: git2::Oid,
    base_name: String,
    origin: Origin,
}

impl PullRequestRepo {
    /// Opens the repository of `origin` (a URL is fetched, once) and
    /// resolves `base` in it.
    pub fn open(origin: &Origin, base: &str) -> Result<Self, SourceError> {
        let (repository, remote, sub) = match origin {
            Origin::Git { repo, .. } => {
                let (repository, remote) = open_or_fetch(repo)?;
                (repository, remote, PathBuf::new())
            }
            Origin::Dir(dir) => {
                let (repository, sub) = discover(dir)?;
                (repository, false, sub)
            }
        };
        let base_id = resolve(&repository, base, remote)?.id();
        Ok(PullRequestRepo {
            repository,
            remote,
            sub,
            base: base_id,
            base_name: base.to_owned(),
            origin: origin.clone(),
        })
    }

    fn base_tree(&self) -> Result<git2::Tree<'_>, SourceError> {
        self.repository
            .find_commit(self.base)
            .and_then(|c| c.tree())
            .map_err(git(format!("cannot read the tree of `{}`", self.base_name)))
    }

    /// The base revision's workspace file alone (none when it is missing
    /// or a symbolic link, which is then in `links`), in a tree of its own.
    pub fn base_workspace(&self) -> Result<SourceTree, SourceError> {
        let tree = self.base_tree()?;
        let mut links = Vec::new();
        let at = self.sub.join(WORKSPACE_FILE);
        let workspace = workspace_file(&self.repository, &tree, &at, &mut links)?;
        Ok(SourceTree {
            revision: Some(self.base.to_string()),
            workspace,
            links,
            ..SourceTree::default()
        })
    }

    /// Reads the source and its config at the base, and finds the namespace
    /// files that differ with a git2 tree diff: with `--git`, of the base's
    /// tree against `rev`'s; with `--repo DIR`, of the base's tree against
    /// the working tree (untracked files included), in the repository
    /// holding DIR.
    pub fn read(&self) -> Result<PullRequest, SourceError> {
        let (repository, sub, base) = (&self.repository, &self.sub, &self.base_name);
        let base_tree = self.base_tree()?;
        let mut opts = git2::DiffOptions::new();
        opts.include_untracked(true)
            .recurse_untracked_dirs(true)
            // The path as it is: a directory named `c[1]` is not a pattern
            // (which would match `c1/` and miss every change under it).
            .disable_pathspec_match(true)
            .pathspec(sub.join(NAMESPACES_DIR).to_string_lossy().as_ref());
        let (head_tree, diff) = match &self.origin {
            Origin::Git { rev, .. } => {
                let commit = resolve(repository, rev, self.remote)?;
                let tree = commit
                    .tree()
                    .map_err(git(format!("cannot read the tree of `{rev}`")))?;
                let diff =
                    repository.diff_tree_to_tree(Some(&base_tree), Some(&tree), Some(&mut opts));
                (Some((commit.id(), tree)), diff)
            }
            Origin::Dir(_) => (
                None,
                repository.diff_tree_to_workdir_with_index(Some(&base_tree), Some(&mut opts)),
            ),
        };
        let diff = diff.map_err(git(format!("cannot diff against `{base}`")))?;

        // Diff paths are relative to the repository; trees show them relative to
        // the config root, and a directory's files under the directory as given.
        let relative = |p: Option<&Path>| {
            p.and_then(|p| p.strip_prefix(sub).ok())
                .map(|p| p.to_string_lossy().replace('\\', "/"))
                .filter(|p| is_yaml(p))
        };
        let mut changed = Changed::default();
        for delta in diff.deltas() {
            if let Some(now) = relative(delta.new_file().path())
                && delta.status() != git2::Delta::Deleted
            {
                changed.now.insert(self.shown(now));
            }
            if let Some(before) = relative(delta.old_file().path())
                && !matches!(delta.status(), git2::Delta::Added | git2::Delta::Untracked)
            {
                changed.before.insert(before);
            }
        }
        // Git takes a file its index marks assume-unchanged or
        // skip-worktree at its word, and diffs it not: on disk, it counts.
        if let Origin::Dir(_) = &self.origin {
            for rel in unwatched(repository, sub)? {
                changed.now.insert(self.shown(rel.clone()));
                changed.before.insert(rel);
            }
        }
        let base_files = self.base_namespace_blobs(&base_tree)?;
        let base_ids: Vec<String> = base_files.iter().map(|(_, id)| id.to_string()).collect();
        let base_digest = blob_digest(base_ids.iter().map(String::as_str));
        let unchanged: Vec<Unchanged> = base_files
            .into_iter()
            .filter(|(rel, _)| !changed.before.contains(rel))
            .map(|(rel, blob)| Unchanged {
                path: self.shown(rel),
                blob,
            })
            .filter(|u| !changed.now.contains(&u.path))
            .collect();
        // Of the namespace files, only those the diff does not show to be
        // the base's are read: the changed ones, and on disk also those Git
        // lists not at all (ignored, in a nested repository, removed from
        // its index), which a plan of the directory reads all the same.
        let same: BTreeSet<&str> = unchanged.iter().map(|u| u.path.as_str()).collect();
        let now = |path: &str| !same.contains(path);
        let mut head = match (&self.origin, head_tree) {
            (Origin::Dir(dir), _) => load_dir_only(dir, &now)?,
            (Origin::Git { .. }, tree) => {
                let (id, tree) = tree.expect("a Git source's revision was read");
                read_tree_only(repository, &tree, Some(id.to_string()), &now)?
            }
        };
        head.partial = true;
        changed
            .now
            .extend(head.namespaces.iter().map(|f| f.path.clone()));
        let base_config = read_subtree(
            repository,
            &base_tree,
            sub,
            Some(self.base.to_string()),
            &|path| changed.before.contains(path),
        )?;
        Ok(PullRequest {
            head,
            base: base_config,
            changed,
            unchanged,
            base_digest,
        })
    }

    /// A path relative to the config root as the source shows it.
    fn shown(&self, rel: String) -> String {
        match &self.origin {
            Origin::Dir(dir) => display_path(dir, &dir.join(&rel)),
            Origin::Git { .. } => rel,
        }
    }

    /// Every namespace file of the base, relative to the config root, with
    /// its blob id; none is read.
    fn base_namespace_blobs(
        &self,
        base_tree: &git2::Tree<'_>,
    ) -> Result<Vec<(String, git2::Oid)>, SourceError> {
        match subtree(&self.repository, base_tree, &self.sub)? {
            Some(root) => walk_blobs(
                &self.repository,
                &root,
                NAMESPACES_DIR,
                is_yaml,
                &mut Vec::new(),
            ),
            None => Ok(Vec::new()),
        }
    }

    /// The unchanged namespace files `files`, read from the base (where
    /// they are the same as in the source).
    pub fn read_unchanged<'u>(
        &self,
        files: impl IntoIterator<Item = &'u Unchanged>,
    ) -> Result<Vec<SourceFile>, SourceError> {
        files
            .into_iter()
            .map(|u| blob_file(&self.repository, u.blob, &u.path))
            .collect()
    }
}

/// The namespace files, relative to `sub`, that the repository's index
/// marks assume-unchanged or skip-worktree: Git's diff trusts them to be
/// the same as in the index, whatever is on disk.
fn unwatched(repository: &Repository, sub: &Path) -> Result<Vec<String>, SourceError> {
    // libgit2's GIT_INDEX_ENTRY_VALID and GIT_INDEX_ENTRY_SKIP_WORKTREE.
    const ASSUME_UNCHANGED: u16 = 1 << 15;
    const SKIP_WORKTREE: u16 = 1 << 14;
    let index = repository
        .index()
        .map_err(git("cannot read the repository's index".to_owned()))?;
    Ok(index
        .iter()
        .filter(|e| e.flags & ASSUME_UNCHANGED != 0 || e.flags_extended & SKIP_WORKTREE != 0)
        .filter_map(|e| {
            let path = PathBuf::from(String::from_utf8_lossy(&e.path).into_owned());
            let rel = path
                .strip_prefix(sub)
                .ok()?
                .to_string_lossy()
                .replace('\\', "/");
            (rel.starts_with(&format!("{NAMESPACES_DIR}/")) && is_yaml(&rel)).then_some(rel)
        })
        .collect())
}

/// The config in subdirectory `sub` of a tree (empty when it is not there).
fn read_subtree(
    repository: &Repository,
    tree: &git2::Tree<'_>,
    sub: &Path,
    revision: Option<String>,
    only: &dyn Fn(&str) -> bool,
) -> Result<SourceTree, SourceError> {
    match subtree(repository, tree, sub)? {
        Some(subtree) => read_tree_only(repository, &subtree, revision, only),
        None => Ok(SourceTree {
            revision,
            ..SourceTree::default()
        }),
    }
}

/// The tree of subdirectory `sub` of `tree` (`tree` itself when `sub` is
/// empty; none when `sub` is not a directory there).
fn subtree<'r>(
    repository: &'r Repository,
    tree: &git2::Tree<'r>,
    sub: &Path,
) -> Result<Option<git2::Tree<'r>>, SourceError> {
    if sub.as_os_str().is_empty() {
        return Ok(Some(tree.clone()));
    }
    match tree.get_path(sub) {
        Ok(entry) if entry.kind() == Some(ObjectType::Tree) => repository
            .find_tree(entry.id())
            .map(Some)
            .map_err(git(format!("cannot read `{}`", sub.display()))),
        _ => Ok(None),
    }
}

/// The Git repository holding `dir`, and where `dir` is inside it.
fn discover(dir: &Path) -> Result<(Repository, PathBuf), SourceError> {
    let repository = Repository::discover(dir).map_err(git(format!(
        "`{}` is not in a Git repository",
        dir.display()
    )))?;
    let sub = subdirectory(&repository, dir);
    Ok((repository, sub))
}

/// Where `dir` is inside the repository's work tree (empty at its root).
fn subdirectory(repository: &Repository, dir: &Path) -> PathBuf {
    let workdir = repository.workdir().unwrap_or(Path::new("."));
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_owned());
    canonical(dir)
        .strip_prefix(canonical(workdir))
        .map(Path::to_owned)
        .unwrap_or_default()
}

/// The workspace, namespace files and policies of a tree.
fn read_tree(
    repository: &Repository,
    tree: &git2::Tree<'_>,
    revision: Option<String>,
) -> Result<SourceTree, SourceError> {
    read_tree_only(repository, tree, revision, &|_| true)
}

/// [`read_tree`], reading only the namespace files whose paths `only` accepts.
fn read_tree_only(
    repository: &Repository,
    tree: &git2::Tree<'_>,
    revision: Option<String>,
    only: &dyn Fn(&str) -> bool,
) -> Result<SourceTree, SourceError> {
    let mut links = Vec::new();
    let workspace = workspace_file(repository, tree, Path::new(WORKSPACE_FILE), &mut links)?;
    let namespaces = walk_blobs(repository, tree, NAMESPACES_DIR, is_yaml, &mut links)?
        .into_iter()
        .filter(|(path, _)| only(path))
        .map(|(path, id)| blob_file(repository, id, &path))
        .collect::<Result<_, _>>()?;
    let policies = walk(repository, tree, POLICIES_DIR, is_policy, &mut links)?;
    // Only named, never read: such a file may hold anything.
    let ignored = walk_blobs(
        repository,
        tree,
        NAMESPACES_DIR,
        is_ignored_yaml,
        &mut Vec::new(),
    )?
    .into_iter()
    .map(|(path, _)| path)
    .collect();
    Ok(SourceTree {
        revision,
        workspace,
        namespaces,
        policies,
        links,
        ignored,
        stray: stray(repository, tree),
        partial: false,
    })
}

/// YAML blobs at the root and one tree down that are not read.
fn stray(repository: &Repository, tree: &git2::Tree<'_>) -> Vec<String> {
    let file = |e: &git2::TreeEntry<'_>| e.kind() == Some(ObjectType::Blob) && e.filemode() != LINK;
    let mut out = Vec::new();
    for entry in tree.iter() {
        let name = entry.name().unwrap_or_default();
        if file(&entry) {
            out.push((name.to_owned(), entry.id()));
        } else if entry.kind() == Some(ObjectType::Tree)
            && name != NAMESPACES_DIR
            && !name.starts_with('.')
            && let Ok(sub) = repository.find_tree(entry.id())
        {
            out.extend(
                sub.iter()
                    .filter(file)
                    .map(|e| (format!("{name}/{}", e.name().unwrap_or_default()), e.id())),
            );
        }
    }
    out.retain(|(p, id)| {
        may_be_stray(p)
            && repository
                .find_blob(*id)
                .is_ok_and(|b| is_sluice_yaml(b.content()))
    });
    let mut out: Vec<String> = out.into_iter().map(|(p, _)| p).collect();
    out.sort();
    out
}

/// Git's file mode of a symbolic link.
const LINK: i32 = 0o120_000;

/// The files under `dir` whose names `keep` accepts, sorted by path; the
/// links among them are added to `links`, never read.
fn walk(
    repository: &Repository,
    tree: &git2::Tree<'_>,
    dir: &str,
    keep: impl Fn(&str) -> bool,
    links: &mut Vec<String>,
) -> Result<Vec<SourceFile>, SourceError> {
    walk_blobs(repository, tree, dir, keep, links)?
        .into_iter()
        .map(|(path, id)| blob_file(repository, id, &path))
        .collect()
}

/// [`walk`], naming the blobs without reading them.
fn walk_blobs(
    repository: &Repository,
    tree: &git2::Tree<'_>,
    dir: &str,
    keep: impl Fn(&str) -> bool,
    links: &mut Vec<String>,
) -> Result<Vec<(String, git2::Oid)>, SourceError> {
    let mut blobs = Vec::new();
    let entry = tree.get_path(Path::new(dir));
    // The folder itself a link: named, as from a directory.
    if entry.as_ref().is_ok_and(|e| e.filemode() == LINK) {
        links.push(dir.to_owned());
    }
    if let Ok(entry) = entry
        && entry.kind() == Some(ObjectType::Tree)
    {
        let sub = repository
            .find_tree(entry.id())
            .map_err(git(format!("cannot read `{dir}/`")))?;
        sub.walk(TreeWalkMode::PreOrder, |path, e| {
            let name = e.name().unwrap_or_default();
            if name.starts_with('.') {
                return TreeWalkResult::Skip;
            }
            if e.filemode() == LINK {
                links.push(format!("{dir}/{path}{name}"));
            } else if e.kind() == Some(ObjectType::Blob) && keep(name) {
                blobs.push((format!("{dir}/{path}{name}"), e.id()));
            }
            TreeWalkResult::Ok
        })
        .map_err(git(format!("cannot walk `{dir}/`")))?;
    }
    blobs.sort();
    Ok(blobs)
}

fn git(context: String) -> impl FnOnce(git2::Error) -> SourceError {
    move |source| SourceError::Git { context, source }
}

fn blob_file(repo: &Repository, id: git2::Oid, path: &str) -> Result<SourceFile, SourceError> {
    let blob = repo
        .find_blob(id)
        .map_err(git(format!("cannot read `{path}`")))?;
    let text = String::from_utf8(blob.content().to_vec())
        .map_err(|_| SourceError::NotUtf8(path.to_owned()))?;
    Ok(SourceFile {
        path: path.to_owned(),
        text,
    })
}

/// The workspace file at `at` in `tree` (none when it is missing); a
/// symbolic link is never read, only named in `links`.
fn workspace_file(
    repository: &Repository,
    tree: &git2::Tree<'_>,
    at: &Path,
    links: &mut Vec<String>,
) -> Result<Option<SourceFile>, SourceError> {
    match tree.get_path(at) {
        Ok(entry) if entry.filemode() == LINK => {
            links.push(WORKSPACE_FILE.to_owned());
            Ok(None)
        }
        Ok(entry) => Ok(Some(blob_file(repository, entry.id(), WORKSPACE_FILE)?)),
        Err(_) => Ok(None),
    }
}

/// Whether `repo` names a remote rather than a local path.
fn is_remote(repo: &str) -> bool {
    !Path::new(repo).exists() && (repo.contains("://") || repo.contains('@'))
}

/// Opens a local repository, or fetches a remote one into the cache. Returns
/// whether it is a remote (whose branches live under `origin/`).
fn open_or_fetch(repo: &str) -> Result<(Repository, bool), SourceError> {
    if !is_remote(repo) {
        let r =
            Repository::open(repo).map_err(git(format!("cannot open Git repository `{repo}`")))?;
        return Ok((r, false));
    }
    let cache = cache_dir(repo);
    let r = match Repository::open_bare(&cache) {
        Ok(r) => r,
        Err(_) => Repository::init_bare(&cache)
            .map_err(git(format!("cannot create cache `{}`", cache.display())))?,
    };
    fetch(&r, repo)?;
    Ok((r, true))
}

/// Fetches every branch and tag, and the remote's HEAD, of `url` into `repo`.
pub(crate) fn fetch(repo: &Repository, url: &str) -> Result<(), SourceError> {
    let mut remote = repo
        .remote_anonymous(url)
        .map_err(git(format!("invalid Git remote `{url}`")))?;
    remote
        .fetch(
            &[
                "+refs/heads/*:refs/remotes/origin/*",
                "+refs/tags/*:refs/tags/*",
                "+HEAD:refs/remotes/origin/HEAD",
            ],
            None,
            None,
        )
        .map_err(git(format!("cannot fetch `{url}`")))
}

/// Where a remote is cached: `$SLUICE_CACHE_DIR`, else `~/.cache/sluice`, under `git/`.
fn cache_dir(url: &str) -> PathBuf {
    let base = std::env::var_os("SLUICE_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("sluice")))
        .or_else(|| std::env::var_os("HOME").map(|d| PathBuf::from(d).join(".cache/sluice")))
        .unwrap_or_else(|| std::env::temp_dir().join("sluice"));
    let name: String = url
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    base.join("git").join(name)
}

fn resolve<'r>(
    repo: &'r Repository,
    rev: &str,
    remote: bool,
) -> Result<git2::Commit<'r>, SourceError> {
    let mut candidates = Vec::new();
    if remote {
        candidates.push(format!("refs/remotes/origin/{rev}"));
    }
    candidates.push(rev.to_owned());
    let mut last = None;
    for c in &candidates {
        match repo.revparse_single(c).and_then(|o| o.peel_to_commit()) {
            Ok(commit) => return Ok(commit),
            Err(e) => last = Some(e),
        }
    }
    Err(SourceError::Git {
        context: format!("cannot resolve revision `{rev}`"),
        source: last.unwrap_or_else(|| git2::Error::from_str("no candidates")),
    })
}
