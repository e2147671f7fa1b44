//! The newest complete backup run (one with a manifest) under each of a
//! bucket's namespace directories. While the bucket's listing is short, one
//! listing of all the directories answers. Once it runs past a few pages (a
//! long backup history: every segment is an object), the directories it has
//! not finished are answered from their runs, listed with a `/` delimiter,
//! and the manifests of the newest: a few requests a directory, whatever the
//! history holds.

use async_trait::async_trait;
use futures_util::{StreamExt, TryStreamExt};

use super::layout::{MANIFEST_FILE, complete_run, run_started_ms};
use crate::backend::BackendError;

/// Pages of the one listing before the directories are read by their runs.
pub(super) const SCAN_PAGES: usize = 2;

/// How many directories are read by their runs at once.
const DIRS_IN_FLIGHT: usize = 8;

/// One page of a listing.
#[derive(Debug, Default)]
pub(super) struct Page {
    /// Keys, with when each was last modified (seconds since the epoch).
    pub keys: Vec<(String, Option<i64>)>,
    /// With a delimiter: the prefixes one level down (`<prefix><run>/`).
    pub prefixes: Vec<String>,
    /// Where the next page starts, if there is one.
    pub next: Option<String>,
}

/// What [`newest`] asks of a bucket.
#[async_trait]
pub(super) trait Lister: Sync {
    /// A page of the keys under `prefix`, from `token`; with `delimited`,
    /// what lies below the next `/` is rolled up into [`Page::prefixes`].
    async fn page(
        &self,
        prefix: &str,
        delimited: bool,
        token: Option<String>,
    ) -> Result<Page, BackendError>;

    /// `None` when `key` does not exist; else when it was last modified.
    async fn modified(&self, key: &str) -> Result<Option<Option<i64>>, BackendError>;
}

/// When the newest complete run under each of `dirs` (`<prefix><namespace>/`)
/// started, in seconds since the epoch, in the order asked: the run's ID
/// says when, or for a run sluice did not name, its manifest's date.
pub(super) async fn newest(
    lister: &impl Lister,
    common: &str,
    dirs: &[&str],
) -> Result<Vec<Option<i64>>, BackendError> {
    let mut newest: Vec<Option<i64>> = vec![None; dirs.len()];
    let mut token = None;
    let mut last = String::new();
    for _ in 0..SCAN_PAGES {
        let page = lister.page(common, false, token.take()).await?;
        for (key, modified) in &page.keys {
            for (i, dir) in dirs.iter().enumerate() {
                if let Some(t) = complete_run(dir, key).and_then(|run| started(run, *modified)) {
                    newest[i] = newest[i].max(Some(t));
                }
            }
        }
        if let Some((key, _)) = page.keys.last() {
            last.clone_from(key);
        }
        match page.next {
            Some(next) => token = Some(next),
            None => return Ok(newest),
        }
    }
    // Every key of a directory sorts together: one that sorts wholly before
    // the last key listed was listed whole. The others are read by their runs.
    let unfinished = (0..dirs.len()).filter(|&i| !listed_whole(dirs[i], &last));
    let read: Vec<(usize, Option<i64>)> = futures_util::stream::iter(unfinished)
        .map(|i| async move { Ok::<_, BackendError>((i, by_runs(lister, dirs[i]).await?)) })
        .buffer_unordered(DIRS_IN_FLIGHT)
        .try_collect()
        .await?;
    for (i, found) in read {
        newest[i] = found;
    }
    Ok(newest)
}

/// When a run started: from its ID, or for a run sluice did not name, when
/// its manifest was written.
fn started(run: &str, modified: Option<i64>) -> Option<i64> {
    run_started_ms(run).map(|ms| ms / 1000).or(modified)
}

/// Whether every key under `dir` sorts before `last`.
fn listed_whole(dir: &str, last: &str) -> bool {
    last > dir && !last.starts_with(dir)
}

/// The newest complete run under `dir`, from its runs: the runs sluice named
/// newest first, until one has a manifest; every other run's manifest, for
/// its date.
async fn by_runs(lister: &impl Lister, dir: &str) -> Result<Option<i64>, BackendError> {
    let mut runs = Vec::new();
    let mut token = None;
    loop {
        let page = lister.page(dir, true, token.take()).await?;
        runs.extend(page.prefixes.iter().filter_map(|p| {
            let run = p.strip_prefix(dir)?.strip_suffix('/')?;
            (!run.is_empty()).then(|| run.to_owned())
        }));
        match page.next {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    let manifest = |run: &str| format!("{dir}{run}/{MANIFEST_FILE}");
    let (mut named, other): (Vec<_>, Vec<_>) = runs
        .into_iter()
        .map(|run| (run_started_ms(&run), run))
        .partition(|(ms, _)| ms.is_some());
    named.sort_by(|a, b| b.cmp(a));
    let mut newest = None;
    for (ms, run) in named {
        if lister.modified(&manifest(&run)).await?.is_some() {
            newest = ms.map(|ms| ms / 1000);
            break;
        }
    }
    for (_, run) in other {
        if let Some(modified) = lister.modified(&manifest(&run)).await? {
            newest = newest.max(modified);
        }
    }
    Ok(newest)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;

    /// A bucket in memory, listed `size` keys a page, that counts requests.
    struct Bucket {
        keys: BTreeMap<String, Option<i64>>,
        size: usize,
        requests: Mutex<usize>,
    }

    #[async_trait]
    impl Lister for Bucket {
        async fn page(
            &self,
            prefix: &str,
            delimited: bool,
            token: Option<String>,
        ) -> Result<Page, BackendError> {
            *self.requests.lock().unwrap() += 1;
            // Every entry of the listing, in order; a page is `size` of them,
            // and its token the index where the next starts.
            let mut entries: Vec<(String, Option<Option<i64>>)> = Vec::new();
            for (key, modified) in self.keys.range(prefix.to_owned()..) {
                let Some(rest) = key.strip_prefix(prefix) else {
                    break;
                };
                match rest.find('/').filter(|_| delimited) {
                    Some(slash) => {
                        let rolled = format!("{prefix}{}", &rest[..=slash]);
                        if entries.last().map(|(e, _)| e) != Some(&rolled) {
                            entries.push((rolled, None));
                        }
                    }
                    None => entries.push((key.clone(), Some(*modified))),
                }
            }
            let from: usize = token.map_or(0, |t| t.parse().unwrap());
            let mut page = Page::default();
            for (entry, modified) in entries.iter().skip(from).take(self.size) {
                match modified {
                    Some(m) => page.keys.push((entry.clone(), *m)),
                    None => page.prefixes.push(entry.clone()),
                }
            }
            let to = from + self.size;
            page.next = (to < entries.len()).then(|| to.to_string());
            Ok(page)
        }

        async fn modified(&self, key: &str) -> Result<Option<Option<i64>>, BackendError> {
            *self.requests.lock().unwrap() += 1;
            Ok(self.keys.get(key).copied())
        }
    }

    fn bucket(keys: &[(&str, Option<i64>)], size: usize) -> Bucket {
        Bucket {
            keys: keys.iter().map(|(k, m)| ((*k).to_owned(), *m)).collect(),
            size,
            requests: Mutex::new(0),
        }
    }

    /// 2026-12-07T08:30:00Z and an hour later, as run IDs and in seconds.
    const EARLY: (&str, i64) = ("20261207T083000.000Z-1", 1_796_632_200);
    const LATE: (&str, i64) = ("20261207T093000.000Z-2", 1_796_635_800);

    #[tokio::test]
    async fn a_long_listing_answers_the_same_from_the_runs_in_fewer_requests() {
        let (early, late) = (EARLY.0, LATE.0);
        let mut keys: Vec<(String, Option<i64>)> = Vec::new();
        let mut add = |k: String, m: Option<i64>| keys.push((k, m));
        // `a`: the newest run is unfinished (no manifest); the one before it is whole.
        add(format!("p/a/{early}/manifest.json"), Some(1));
        add(format!("p/b/{early}/manifest.json"), Some(1));
        add(format!("p/b/{late}/manifest.json"), Some(1));
        // `c`: runs sluice did not name count by their manifest's date.
        add("p/c/hand-made/manifest.json".into(), Some(1_700_000_000));
        add("p/c/other/manifest.json".into(), Some(1_700_000_500));
        add("p/c/no-manifest/x.avro".into(), Some(1_800_000_000));
        // `d`: a manifest directly under the directory is no run.
        add("p/d/manifest.json".into(), Some(1));
        // `e`: nothing complete.
        for n in 0..40 {
            add(format!("p/a/{late}/t/0/{n:020}.avro"), Some(1));
            add(format!("p/e/{early}/t/{n}/x.avro"), Some(1));
        }
        let keys: Vec<(&str, Option<i64>)> = keys.iter().map(|(k, m)| (k.as_str(), *m)).collect();
        let dirs = ["p/a/", "p/b/", "p/c/", "p/d/", "p/e/", "p/f/"];
        let expected = vec![
            Some(EARLY.1),
            Some(LATE.1),
            Some(1_700_000_500),
            None,
            None,
            None,
        ];
        // Listed whole, in one page.
        let short = bucket(&keys, 1000);
        assert_eq!(newest(&short, "p/", &dirs).await.unwrap(), expected);
        // Listed a few keys a page: two pages, then each unfinished
        // directory by its runs; the same answer, for every page size.
        for size in [1, 2, 3, 5, 8, 13, 40] {
            let long = bucket(&keys, size);
            assert_eq!(
                newest(&long, "p/", &dirs).await.unwrap(),
                expected,
                "{size} keys a page"
            );
        }
        // 87 keys, 5 a page: a whole listing is 18 requests; two pages, then
        // the runs and manifests of the six directories take fewer.
        let long = bucket(&keys, 5);
        newest(&long, "p/", &dirs).await.unwrap();
        assert!(*long.requests.lock().unwrap() < 18);
    }

    #[test]
    fn a_directory_is_listed_whole_once_a_later_key_is_seen() {
        assert!(listed_whole("p/a/", "p/b/x"));
        assert!(!listed_whole("p/a/", "p/a/x"));
        assert!(!listed_whole("p/b/", "p/a/x"));
        // '-' sorts before '/': `p/a-b/x` comes before every key of `p/a/`.
        assert!(!listed_whole("p/a/", "p/a-b/x"));
    }
}
