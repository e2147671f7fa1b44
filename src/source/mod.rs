//! Where desired state comes from: a directory, or a Git revision read without
//! a checkout. Both yield the same [`SourceTree`].

mod dir;
mod git;
pub mod related;

use std::path::PathBuf;

pub use dir::load_dir;
pub use git::{
    Changed, PullRequest, PullRequestRepo, Unchanged, blob_digest, blob_id, load_git, load_revision,
};

/// The workspace file at the root of a config repository.
pub const WORKSPACE_FILE: &str = "sluice.yaml";
/// The folder whose `**/*.yaml` files hold namespaces.
pub const NAMESPACES_DIR: &str = "namespaces";
pub const POLICIES_DIR: &str = "policies";

/// One config file: its path as shown to people, and its text.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

/// The config files of one repository at one revision.
#[derive(Clone, Debug, Default)]
pub struct SourceTree {
    /// The commit the files were read at, when read from Git.
    pub revision: Option<String>,
    pub workspace: Option<SourceFile>,
    /// Namespace files, sorted by path.
    pub namespaces: Vec<SourceFile>,
    /// The repository's own Rego policies, `policies/**/*.rego`.
    pub policies: Vec<SourceFile>,
    /// Symbolic links where config files would be, by path: never followed
    /// (a pull request could point one at any file the runner can read),
    /// and each an error.
    pub links: Vec<String>,
    /// Files under `namespaces/` that look like YAML but are not read (an
    /// upper-case `.YAML`), by path: each gets a warning.
    pub ignored: Vec<String>,
    /// Files outside `namespaces/` (at the root, or one directory down),
    /// other than `sluice.yaml`, that hold sluice documents: never parsed,
    /// each warned about.
    pub stray: Vec<String>,
    /// Only some of the namespace files, those a scoped plan needs: checks
    /// over every namespace (the partition budget, that protected names are
    /// declared) are left to `validate` and apply.
    pub partial: bool,
}

impl SourceTree {
    /// This tree with only `namespaces` of its namespace files.
    pub fn with_namespaces(&self, namespaces: Vec<SourceFile>) -> SourceTree {
        SourceTree {
            revision: self.revision.clone(),
            workspace: self.workspace.clone(),
            namespaces,
            policies: self.policies.clone(),
            links: self.links.clone(),
            ignored: self.ignored.clone(),
            stray: self.stray.clone(),
            partial: true,
        }
    }

    /// Every file, the workspace first.
    pub fn files(&self) -> impl Iterator<Item = &SourceFile> {
        self.workspace.iter().chain(&self.namespaces)
    }
}

/// Where to read a config repository from.
#[derive(Clone, Debug)]
pub enum Origin {
    Dir(PathBuf),
    Git { repo: String, rev: String },
}

impl Origin {
    pub fn load(&self) -> Result<SourceTree, SourceError> {
        match self {
            Origin::Dir(dir) => load_dir(dir),
            Origin::Git { repo, rev } => load_git(repo, rev),
        }
    }
}

/// Whether a file name is a YAML document.
fn is_yaml(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

/// YAML by its extension in any case, but not read: `orders.YAML`.
fn is_ignored_yaml(name: &str) -> bool {
    !is_yaml(name) && is_any_yaml(name)
}

/// YAML by its extension in any case.
fn is_any_yaml(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".yaml") || lower.ends_with(".yml")
}

/// Whether `path` (relative to the root, one or two levels deep) may be a
/// YAML file sluice does not read although it was meant for it.
fn may_be_stray(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    is_any_yaml(name)
        && path != WORKSPACE_FILE
        && !path.starts_with(&format!("{NAMESPACES_DIR}/"))
        && !path.split('/').any(|p| p.starts_with('.'))
}

/// Files larger than this are not looked into for [`is_sluice_yaml`].
const STRAY_MAX_BYTES: usize = 1 << 20;

/// Whether a file's bytes hold a sluice document (`apiVersion: sluice/…`,
/// `kind: Namespace` or `kind: Workspace` at the start of a line), so that
/// CI workflows and other YAML beside the config are not warned about.
fn is_sluice_yaml(bytes: &[u8]) -> bool {
    bytes.len() <= STRAY_MAX_BYTES
        && String::from_utf8_lossy(bytes).lines().any(|l| {
            let l = l.trim_end();
            let kind = l
                .strip_prefix("kind:")
                .map(|k| k.trim().trim_matches(['"', '\'']));
            l.starts_with("apiVersion: sluice/") || matches!(kind, Some("Namespace" | "Workspace"))
        })
}

fn is_policy(name: &str) -> bool {
    name.ends_with(".rego") && !name.ends_with("_test.rego")
}

/// Why the config repository could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The repository directory does not exist.
    #[error("config repository `{0}` does not exist")]
    NoRepo(PathBuf),
    /// A file or directory could not be read.
    #[error("cannot read `{path}`")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A config file is not UTF-8 text.
    #[error("`{0}` is not UTF-8 text")]
    NotUtf8(String),
    /// Git could not open, fetch or resolve.
    #[error("{context}")]
    Git {
        context: String,
        #[source]
        source: ::git2::Error,
    },
}

impl SourceError {
    /// I/O and Git (a fetch, a remote) may recover; a missing repository or a
    /// file that is not text stays until someone fixes it.
    pub fn is_transient(&self) -> bool {
        matches!(self, SourceError::Io { .. } | SourceError::Git { .. })
    }
}
