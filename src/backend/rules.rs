//! The Prometheus rules directory: one rule file per namespace with alerts.
//!
//! The files sluice owns (its inventory holds them) are its live state; any
//! other file in the directory is never read or touched. Files are replaced
//! atomically (written aside, then renamed), and after a change the
//! environment's reload URL is POSTed so Prometheus picks them up.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use http_body_util::Empty;
use hyper::body::Bytes;

use super::{Backend, BackendError};
use crate::config::workspace::AlertsEnv;
use crate::plan::{Action, Change, LiveResource, LiveState};
use crate::resource::{Address, System, Value, digest};
use crate::state::Fence;

/// How long Prometheus may take to answer a reload.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

pub struct RulesBackend {
    dir: PathBuf,
    reload_url: Option<String>,
}

impl RulesBackend {
    /// A relative `rules_dir` is relative to the working directory.
    pub fn new(env: &AlertsEnv) -> Self {
        RulesBackend {
            dir: PathBuf::from(&env.rules_dir),
            reload_url: env.reload_url.clone(),
        }
    }

    /// The file of an address; names that could leave the directory are refused.
    fn path(&self, address: &Address) -> Result<PathBuf, String> {
        let name = address.name();
        if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
            return Err(format!("`{name}` is not a rule file name"));
        }
        Ok(self.dir.join(name))
    }

    /// A link in place of the file is never read through: it reads as an
    /// empty file, which the next apply replaces.
    fn read_one(&self, address: &Address) -> Result<Option<LiveResource>, String> {
        let path = self.path(address)?;
        if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Ok(Some(LiveResource {
                fingerprint: "symlink".into(),
                value: Value::Rules(String::new()),
            }));
        }
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(LiveResource {
                fingerprint: digest(text.as_bytes()),
                value: Value::Rules(text),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("cannot read {}: {e}", path.display())),
        }
    }

    fn write(&self, change: &Change) -> Result<(), String> {
        let path = self.path(&change.address)?;
        match (change.action, &change.desired) {
            (Action::Create | Action::Update, Some(Value::Rules(text))) => {
                std::fs::create_dir_all(&self.dir)
                    .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
                crate::files::replace(&path, text.as_bytes())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))
            }
            (Action::Delete, _) => match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(format!("cannot delete {}: {e}", path.display()))
                }
                _ => Ok(()),
            },
            _ => Err(format!("{} is not a rule file change", change.address)),
        }
    }
}

/// POSTs Prometheus's reload endpoint (`/-/reload`, which needs
/// `--web.enable-lifecycle`).
pub async fn reload(url: &str) -> Result<(), String> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Empty<Bytes>>();
    let request = hyper::Request::post(url)
        .body(Empty::new())
        .map_err(|e| format!("`{url}` is not a reload URL: {e}"))?;
    let response = tokio::time::timeout(RELOAD_TIMEOUT, client.request(request))
        .await
        .map_err(|_| format!("POST {url} timed out"))?
        .map_err(|e| format!("POST {url} failed: {e}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("POST {url} answered {}", response.status()))
    }
}

#[async_trait]
impl Backend for RulesBackend {
    fn system(&self) -> System {
        System::Prometheus
    }

    async fn read(&self, wanted: &[Address]) -> Result<LiveState, BackendError> {
        let mut live = LiveState::default();
        for address in wanted {
            let found = self
                .read_one(address)
                .map_err(|message| BackendError::Read {
                    system: System::Prometheus,
                    message,
                })?;
            if let Some(resource) = found {
                live.resources.insert(address.clone(), resource);
            }
        }
        Ok(live)
    }

    async fn apply(&self, changes: &[&Change], _fence: &Fence) -> Vec<Result<(), BackendError>> {
        let mut results: Vec<Result<(), BackendError>> = changes
            .iter()
            .map(|c| self.write(c).map_err(BackendError::Rejected))
            .collect();
        if let Some(url) = &self.reload_url
            && results.iter().any(Result::is_ok)
            && let Err(e) = reload(url).await
        {
            // The files are written, but Prometheus does not run them yet.
            for r in results.iter_mut().filter(|r| r.is_ok()) {
                *r = Err(BackendError::Rejected(format!(
                    "written, but Prometheus was not reloaded: {e}; POST {url} again, or restart Prometheus"
                )));
            }
        }
        results
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Cause;

    fn change(action: Action, name: &str, text: Option<&str>) -> Change {
        Change {
            address: Address::new(crate::resource::Kind::RuleFile, name),
            namespace: "orders".into(),
            action,
            cause: Cause::Pending,
            drifted: false,
            fields: Vec::new(),
            reasons: Vec::new(),
            source: None,
            desired: text.map(|t| Value::Rules(t.into())),
            live: None,
            inventory: None,
        }
    }

    #[tokio::test]
    async fn files_are_written_read_and_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let rules = RulesBackend::new(&AlertsEnv {
            rules_dir: dir.path().join("nested").display().to_string(),
            reload_url: None,
        });
        let fence = Fence {
            key: "k".into(),
            revision: 1,
            held: Default::default(),
        };
        let a = Address::new(crate::resource::Kind::RuleFile, "sluice-orders.yml");
        assert!(
            rules
                .read(std::slice::from_ref(&a))
                .await
                .unwrap()
                .resources
                .is_empty()
        );
        let create = change(Action::Create, "sluice-orders.yml", Some("groups: []\n"));
        assert!(rules.apply(&[&create], &fence).await[0].is_ok());
        let live = rules.read(std::slice::from_ref(&a)).await.unwrap();
        assert_eq!(
            live.resources[&a].value,
            Value::Rules("groups: []\n".into())
        );
        let delete = change(Action::Delete, "sluice-orders.yml", None);
        assert!(rules.apply(&[&delete], &fence).await[0].is_ok());
        assert!(
            rules.apply(&[&delete], &fence).await[0].is_ok(),
            "deleting what is gone succeeds"
        );
        assert!(rules.read(&[a]).await.unwrap().resources.is_empty());
        let escape = change(Action::Create, "../x.yml", Some(""));
        assert!(rules.apply(&[&escape], &fence).await[0].is_err());
    }

    #[tokio::test]
    async fn a_failed_reload_fails_the_changes() {
        let dir = tempfile::tempdir().unwrap();
        let rules = RulesBackend::new(&AlertsEnv {
            rules_dir: dir.path().display().to_string(),
            reload_url: Some("http://127.0.0.1:1/-/reload".into()),
        });
        let fence = Fence {
            key: "k".into(),
            revision: 1,
            held: Default::default(),
        };
        let create = change(Action::Create, "sluice-orders.yml", Some("groups: []\n"));
        let result = rules.apply(&[&create], &fence).await.remove(0);
        let message = result.unwrap_err().to_string();
        assert!(message.contains("not reloaded"), "{message}");
        assert!(dir.path().join("sluice-orders.yml").exists());
    }

    /// The rules directory's temporary file followed links: one planted at
    /// its fixed name made apply overwrite the link's target.
    #[tokio::test]
    async fn a_link_planted_in_the_rules_directory_is_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "theirs").unwrap();
        let rules_dir = dir.path().join("rules");
        std::fs::create_dir(&rules_dir).unwrap();
        // Where the old code wrote its temporary, and the file itself.
        for name in [".sluice-orders.yml.sluice-tmp", "sluice-orders.yml"] {
            std::os::unix::fs::symlink(&victim, rules_dir.join(name)).unwrap();
        }
        let rules = RulesBackend::new(&AlertsEnv {
            rules_dir: rules_dir.display().to_string(),
            reload_url: None,
        });
        // Reading does not follow the link either: its target never shows.
        let a = Address::new(crate::resource::Kind::RuleFile, "sluice-orders.yml");
        let live = rules.read(std::slice::from_ref(&a)).await.unwrap();
        assert_eq!(live.resources[&a].value, Value::Rules(String::new()));
        let fence = Fence {
            key: "k".into(),
            revision: 1,
            held: Default::default(),
        };
        let create = change(Action::Create, "sluice-orders.yml", Some("groups: []\n"));
        assert!(rules.apply(&[&create], &fence).await[0].is_ok());
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "theirs");
        assert_eq!(
            std::fs::read_to_string(rules_dir.join("sluice-orders.yml")).unwrap(),
            "groups: []\n"
        );
    }
}
