//! Where backups lie in their bucket (a namespace's directory is
//! [`crate::desired::BackupState::dir`]): its runs' manifests, and when a
//! run started (from its ID). The backup catalogue
//! reads it for DR compliance without fetching a manifest; `backup`
//! writes it.

/// The file name that marks a run as complete.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The run whose manifest `key` is (`<dir><run>/manifest.json`), if it is one.
pub fn complete_run<'a>(dir: &str, key: &'a str) -> Option<&'a str> {
    key.strip_prefix(dir)?
        .strip_suffix(MANIFEST_FILE)?
        .strip_suffix('/')
        .filter(|run| !run.is_empty() && !run.contains('/'))
}

/// When run `run` read the high watermarks, in milliseconds since the epoch,
/// from its ID (`20261207T083000.123Z-4711`: the start, then the process);
/// `None` for an ID sluice did not make.
pub fn run_started_ms(run: &str) -> Option<i64> {
    let (stamp, _pid) = run.rsplit_once('-')?;
    // 20261207T083000.123Z
    if stamp.len() != 20 || !stamp.is_ascii() {
        return None;
    }
    let text = format!(
        "{}-{}-{}T{}:{}:{}",
        &stamp[0..4],
        &stamp[4..6],
        &stamp[6..8],
        &stamp[9..11],
        &stamp[11..13],
        &stamp[13..]
    );
    let t = humantime::parse_rfc3339(&text).ok()?;
    let ms = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    i64::try_from(ms).ok()
}
