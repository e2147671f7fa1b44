//! Config files from a directory on disk.

use std::fs;
use std::path::{Path, PathBuf};

use super::{NAMESPACES_DIR, SourceError, SourceFile, SourceTree, WORKSPACE_FILE, is_yaml};

/// Reads `sluice.yaml` and `namespaces/**/*.yaml` under `root`. Paths are shown
/// as `root` joined with the file, so people can open them from the shell.
pub fn load_dir(root: &Path) -> Result<SourceTree, SourceError> {
    if !root.is_dir() {
        return Err(SourceError::NoRepo(root.to_owned()));
    }
    let workspace_path = root.join(WORKSPACE_FILE);
    let workspace = if workspace_path.is_file() {
        Some(read(root, &workspace_path)?)
    } else {
        None
    };
    let mut paths = Vec::new();
    let ns_dir = root.join(NAMESPACES_DIR);
    if ns_dir.is_dir() {
        collect_yaml(&ns_dir, &mut paths)?;
    }
    paths.sort();
    let namespaces = paths
        .iter()
        .map(|p| read(root, p))
        .collect::<Result<_, _>>()?;
    Ok(SourceTree {
        revision: None,
        workspace,
        namespaces,
    })
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), SourceError> {
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
        if path.is_dir() {
            collect_yaml(&path, out)?;
        } else if is_yaml(&name) {
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
fn display_path(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    let shown = if root == Path::new(".") || root.as_os_str().is_empty() {
        rel.to_owned()
    } else {
        root.join(rel)
    };
    shown.to_string_lossy().replace('\\', "/")
}
