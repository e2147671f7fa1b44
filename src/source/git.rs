//! Config files at a Git revision, read from the object database with git2:
//! no checkout, no working tree.

use std::path::{Path, PathBuf};

use git2::{ObjectType, Repository, TreeWalkMode, TreeWalkResult};

use super::{NAMESPACES_DIR, SourceError, SourceFile, SourceTree, WORKSPACE_FILE, is_yaml};

/// Reads the config files of `repo` (a local path or a URL) at `rev`. A URL is
/// fetched into a bare cache repository first.
pub fn load_git(repo: &str, rev: &str) -> Result<SourceTree, SourceError> {
    let (repository, remote) = open_or_fetch(repo)?;
    let commit = resolve(&repository, rev, remote)?;
    let tree = commit
        .tree()
        .map_err(git(format!("cannot read the tree of `{rev}`")))?;

    let workspace = match tree.get_path(Path::new(WORKSPACE_FILE)) {
        Ok(entry) => Some(blob_file(&repository, entry.id(), WORKSPACE_FILE)?),
        Err(_) => None,
    };

    let mut blobs = Vec::new();
    if let Ok(entry) = tree.get_path(Path::new(NAMESPACES_DIR))
        && entry.kind() == Some(ObjectType::Tree)
    {
        let ns_tree = repository
            .find_tree(entry.id())
            .map_err(git("cannot read `namespaces/`".into()))?;
        ns_tree
            .walk(TreeWalkMode::PreOrder, |dir, e| {
                let name = e.name().unwrap_or_default();
                if e.kind() == Some(ObjectType::Blob) && is_yaml(name) && !name.starts_with('.') {
                    blobs.push((format!("{NAMESPACES_DIR}/{dir}{name}"), e.id()));
                }
                TreeWalkResult::Ok
            })
            .map_err(git("cannot walk `namespaces/`".into()))?;
    }
    blobs.sort();
    let namespaces = blobs
        .into_iter()
        .map(|(path, id)| blob_file(&repository, id, &path))
        .collect::<Result<_, _>>()?;

    Ok(SourceTree {
        revision: Some(commit.id().to_string()),
        workspace,
        namespaces,
    })
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
