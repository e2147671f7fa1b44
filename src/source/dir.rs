//! Config files from a directory on disk.

use std::fs;
use std::path::{Path, PathBuf};

use super::{
    NAMESPACES_DIR, POLICIES_DIR, SourceError, SourceFile, SourceTree, WORKSPACE_FILE,
    is_ignored_yaml, is_policy, is_sluice_yaml, is_yaml, may_be_stray,
};

/// Reads `sluice.yaml`, `namespaces/**/*.yaml` and `policies/**/*.rego` under `root`. Paths are shown
/// as `root` joined with the file, so people can open them from the shell.
pub fn load_dir(root: &Path) -> Result<SourceTree, SourceError> {
    load_dir_only(root, &|_| true)
}

/// [`load_dir`], reading only the namespace files whose shown paths `only`
/// accepts (the others are not opened).
pub(super) fn load_dir_only(
    root: &Path,
    only: &dyn Fn(&str) -> bool,
) -> Result<SourceTree, SourceError> {
    if !root.is_dir() {
        return Err(SourceError::NoRepo(root.to_owned()));
    }
    let mut links = Vec::new();
    let workspace_path = root.join(WORKSPACE_FILE);
    let workspace = match fs::symlink_metadata(&workspace_path) {
        Ok(m) if m.file_type().is_symlink() => {
            links.push(display_path(root, &workspace_path));
            None
        }
        Ok(m) if m.is_file() => Some(read(root, &workspace_path)?),
        _ => None,
    };
    let namespaces = read_all(root, NAMESPACES_DIR, &is_yaml, only, &mut links)?;
    let policies = read_all(root, POLICIES_DIR, &is_policy, &|_| true, &mut links)?;
    // Only named, never read: such a file may hold anything.
    let mut ignored = Vec::new();
    let dir = root.join(NAMESPACES_DIR);
    if dir.is_dir() && !dir.is_symlink() {
        collect(&dir, &is_ignored_yaml, &mut ignored, &mut Vec::new())?;
    }
    ignored.sort();
    let ignored = ignored.iter().map(|p| display_path(root, p)).collect();
    Ok(SourceTree {
        revision: None,
        workspace,
        namespaces,
        policies,
        links,
        ignored,
        stray: stray(root),
        partial: false,
    })
}

/// YAML files at the root and one directory down that are not read.
fn stray(root: &Path) -> Vec<String> {
    // Links are not followed (nor files: a link is not a file here).
    let names = |dir: &Path| -> Vec<(String, bool, bool)> {
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let kind = e.file_type().ok()?;
                let name = e.file_name().to_string_lossy().into_owned();
                Some((name, kind.is_dir(), kind.is_file()))
            })
            .collect()
    };
    let mut out = Vec::new();
    for (name, is_dir, is_file) in names(root) {
        if is_file {
            out.push(name);
        } else if is_dir && !name.starts_with('.') && name != NAMESPACES_DIR {
            let sub = names(&root.join(&name));
            out.extend(
                sub.into_iter()
                    .filter(|e| e.2)
                    .map(|e| format!("{name}/{}", e.0)),
            );
        }
    }
    out.retain(|p| may_be_stray(p) && fs::read(root.join(p)).is_ok_and(|b| is_sluice_yaml(&b)));
    out.sort();
    out.iter()
        .map(|p| display_path(root, Path::new(p)))
        .collect()
}

/// The files under `root/dir` whose names `keep` and shown paths `only`
/// accept, sorted by path; the links met on the way are added to `links`,
/// not followed.
fn read_all(
    root: &Path,
    dir: &str,
    keep: &dyn Fn(&str) -> bool,
    only: &dyn Fn(&str) -> bool,
    links: &mut Vec<String>,
) -> Result<Vec<SourceFile>, SourceError> {
    let mut paths = Vec::new();
    let mut found = Vec::new();
    let dir = root.join(dir);
    match fs::symlink_metadata(&dir) {
        Ok(m) if m.file_type().is_symlink() => found.push(dir.clone()),
        Ok(m) if m.is_dir() => collect(&dir, keep, &mut paths, &mut found)?,
        _ => {}
    }
    paths.retain(|p| only(&display_path(root, p)));
    paths.sort();
    found.sort();
    links.extend(found.iter().map(|p| display_path(root, p)));
    // Read on every core: a large repository is thousands of small files.
    crate::par::map_chunks(&paths, 256, |part| {
        part.iter()
            .map(|p| read(root, p))
            .collect::<Result<Vec<_>, _>>()
    })
    .into_iter()
    .collect::<Result<Vec<_>, _>>()
    .map(|parts| parts.into_iter().flatten().collect())
}

fn collect(
    dir: &Path,
    keep: &dyn Fn(&str) -> bool,
    out: &mut Vec<PathBuf>,
    links: &mut Vec<PathBuf>,
) -> Result<(), SourceError> {
    let io = |source| SourceError::Io {
        path: dir.to_owned(),
        source,
    };
    for entry in fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // The entry's own type: a link is not followed, to a file or a directory.
        let kind = entry.file_type().map_err(io)?;
        if kind.is_symlink() {
            links.push(path);
        } else if kind.is_dir() {
            collect(&path, keep, out, links)?;
        } else if keep(&name) {
            out.push(path);
        }
    }
    Ok(())
}

fn read(root: &Path, path: &Path) -> Result<SourceFile, SourceError> {
    let bytes = fs::read(path).map_err(|source| SourceError::Io {
        path: path.to_owned(),
        source,
    })?;
    let shown = display_path(root, path);
    let text = String::from_utf8(bytes).map_err(|_| SourceError::NotUtf8(shown.clone()))?;
    Ok(SourceFile { path: shown, text })
}

/// `namespaces/a.yaml` for `--repo .`, `examples/namespaces/a.yaml` for `--repo examples`.
pub(super) fn display_path(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let shown = if root == Path::new(".") || root.as_os_str().is_empty() {
        rel.to_owned()
    } else {
        root.join(rel)
    };
    shown.to_string_lossy().replace('\\', "/")
}
