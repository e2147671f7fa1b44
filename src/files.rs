//! Files sluice writes, never through a symlink: a new file is created
//! exclusively (a link, even a dangling one, at its path is an error), and a
//! replaced file is written to a temporary of a random name in the same
//! directory, created exclusively, then renamed over the path (which
//! replaces a link there rather than writing to its target).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Writes a file that must not exist yet.
pub fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Replaces a file's content whole: readers see the old file or the new
/// one, never half of it.
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut aside = tempfile::Builder::new()
        .prefix(".sluice-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    // Readable as a file written the usual way is (a Prometheus of another
    // user reads the rules); a temporary starts owner-only.
    aside
        .as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    aside.write_all(bytes)?;
    aside.as_file().sync_all()?;
    aside.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_file_is_never_written_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        let link = dir.path().join("link.yaml");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        // Dangling: the target does not exist, and is not created.
        assert!(write_new(&link, b"x").is_err());
        assert!(!target.exists());
        std::fs::write(&target, b"theirs").unwrap();
        assert!(write_new(&link, b"x").is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"theirs");
    }

    #[test]
    fn a_replaced_file_replaces_a_link_not_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("secret");
        std::fs::write(&target, b"theirs").unwrap();
        let path = dir.path().join("rules.yml");
        std::os::unix::fs::symlink(&target, &path).unwrap();
        replace(&path, b"ours").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"theirs");
        assert_eq!(std::fs::read(&path).unwrap(), b"ours");
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(!meta.is_symlink());
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        // No temporary is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
