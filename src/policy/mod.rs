//! Policy guardrails in Rego, evaluated in-process with regorus.
//!
//! The built-in policies (the project's `policies/`, embedded in the binary)
//! and the config repository's own `policies/**/*.rego` are judged per
//! namespace. The input is
//!
//! ```json
//! {"namespace":   {...the resolved namespace..., "deleted": false},
//!  "environment": {"name": "prod", "stage": "prod"},
//!  "changes":     [{"address", "kind", "name", "action", "cause", "fields"}, ...]}
//! ```
//!
//! `changes` is empty for `validate`, which plans nothing. A namespace whose
//! file was removed is judged by its planned deletes, with `deleted: true`
//! and the tier its registry record last had. Every `deny` message fails
//! validate and plan; `warn` messages are printed. A policy may define
//! `hint := "..."`: how to meet it, shown with each of its messages.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::{Value as Json, json};

use crate::desired::{Desired, NamespaceState};
use crate::diag::Diagnostic;
use crate::plan::{Change, Finding, Level};
use crate::records::RecordKind;
use crate::resource::{Kind, Value};
use crate::source::SourceFile;

/// The package of the generated module that runs every policy.
const DRIVER: &str = "sluice_driver";

/// Namespaces judged in one evaluation: enough to amortize it, few enough
/// to keep the input document small.
const CHUNK: usize = 32;

/// The built-in guardrails, as shipped in `policies/`.
pub const BUILT_IN: &[(&str, &str)] = &[
    (
        "policies/critical_dr.rego",
        include_str!("../../policies/critical_dr.rego"),
    ),
    (
        "policies/replication_factor.rego",
        include_str!("../../policies/replication_factor.rego"),
    ),
    (
        "policies/critical_deletes.rego",
        include_str!("../../policies/critical_deletes.rego"),
    ),
    (
        "policies/wildcard_grants.rego",
        include_str!("../../policies/wildcard_grants.rego"),
    ),
    (
        "policies/retention.rego",
        include_str!("../../policies/retention.rego"),
    ),
    (
        "policies/critical_alerts.rego",
        include_str!("../../policies/critical_alerts.rego"),
    ),
    (
        "policies/repartition.rego",
        include_str!("../../policies/repartition.rego"),
    ),
    (
        "policies/retention_shrink.rego",
        include_str!("../../policies/retention_shrink.rego"),
    ),
];

/// A policy that could not be loaded or evaluated.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("policy {file}: {message}")]
pub struct PolicyError {
    pub file: String,
    pub message: String,
}

impl PolicyError {
    pub fn to_diagnostic(&self) -> Diagnostic {
        Diagnostic::error("invalid-policy", self.to_string())
            .hint("policies are Rego v1 (OPA 1.0 syntax: `deny contains msg if { ... }`)")
    }
}

/// The policies one evaluation runs: the built-in ones and the repository's.
#[derive(Clone, Debug)]
pub struct Policies {
    /// Every policy and the driver, parsed once; each evaluation clones it.
    engine: regorus::Engine,
    /// The file of each policy, by its index in the driver's findings.
    files: Vec<String>,
    /// The package of each policy, in the same order.
    packages: Vec<String>,
    /// Each policy's `hint`, when it has one, in the same order.
    hints: Vec<Option<String>>,
}

impl Policies {
    /// Parses the built-in policies and `user` ones into one engine, with a
    /// driver that judges all inputs in one evaluation: each policy's rules
    /// run once per namespace, `with` that namespace's input. Every broken
    /// file is reported.
    pub fn load(user: &[SourceFile]) -> Result<Policies, Vec<PolicyError>> {
        let built_in = BUILT_IN.iter().map(|(path, text)| SourceFile {
            path: format!("{path} (built-in)"),
            text: (*text).to_owned(),
        });
        let mut engine = regorus::Engine::new();
        let (mut files, mut packages, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        for s in built_in.chain(user.iter().cloned()) {
            match engine.add_policy(s.path.clone(), s.text) {
                Ok(package) => {
                    files.push(s.path);
                    packages.push(package);
                }
                Err(e) => errors.push(PolicyError {
                    file: s.path,
                    message: e.to_string(),
                }),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut driver = format!("package {DRIVER}\n");
        for (i, package) in packages.iter().enumerate() {
            for rule in ["deny", "warn"] {
                let _ = write!(
                    driver,
                    "\nfindings contains [n, {i}, \"{rule}\", msg] if {{\n\tsome n, item in input.items\n\tmsgs := {package}.{rule} with input as item\n\tsome msg in msgs\n}}\n"
                );
            }
        }
        engine
            .add_policy("(sluice policy driver)".into(), driver)
            .map_err(|e| {
                vec![PolicyError {
                    file: "(sluice policy driver)".into(),
                    message: e.to_string(),
                }]
            })?;
        // A policy's `hint` (a string rule, optional) says how to meet it.
        let hints = packages
            .iter()
            .map(|p| match engine.eval_rule(format!("{p}.hint")) {
                Ok(regorus::Value::String(h)) => Some(h.to_string()),
                _ => None,
            })
            .collect();
        Ok(Policies {
            engine,
            files,
            packages,
            hints,
        })
    }

    /// Runs the driver on `items`: findings as `[index in items, policy,
    /// rule, message]`. The input goes to regorus as values, not JSON text.
    fn run(
        engine: &mut regorus::Engine,
        items: Vec<Json>,
    ) -> Result<Vec<regorus::Value>, PolicyError> {
        let mut input = BTreeMap::new();
        input.insert(
            regorus::Value::from("items"),
            regorus::Value::from(Json::Array(items)),
        );
        engine.set_input(regorus::Value::from(input));
        let value = engine
            .eval_rule(format!("data.{DRIVER}.findings"))
            .map_err(evaluation_error)?;
        Ok(match value {
            regorus::Value::Array(findings) => findings.iter().cloned().collect(),
            regorus::Value::Set(findings) => findings.iter().cloned().collect(),
            _ => Vec::new(),
        })
    }

    /// A driver finding about one of `judged` as a [`Finding`].
    fn finding(
        &self,
        f: &regorus::Value,
        judged: &[Judged<'_>],
        environment: &str,
    ) -> Result<Finding, PolicyError> {
        let unexpected = || evaluation_error(format!("unexpected finding {f}"));
        let field = |i: usize| f.as_array().ok().and_then(|a| a.get(i));
        let index = |i: usize| {
            field(i)
                .and_then(|v| v.as_u64().ok())
                .and_then(|n| usize::try_from(n).ok())
        };
        let j = index(0)
            .and_then(|n| judged.get(n))
            .ok_or_else(unexpected)?;
        let p = index(1)
            .filter(|p| *p < self.packages.len())
            .ok_or_else(unexpected)?;
        let level = match field(2)
            .and_then(|v| v.as_string().ok())
            .map(|s| s.as_ref())
        {
            Some("deny") => Level::Deny,
            Some("warn") => Level::Warn,
            _ => return Err(unexpected()),
        };
        let message = match field(3).ok_or_else(unexpected)? {
            regorus::Value::String(m) => m.to_string(),
            other => serde_json::to_string(other).map_err(evaluation_error)?,
        };
        Ok(Finding {
            level,
            policy: self.packages[p].trim_start_matches("data.").to_owned(),
            file: self.files[p].clone(),
            namespace: j.name.to_owned(),
            environment: environment.to_owned(),
            message,
            hint: self.hints[p].clone(),
            source: j.declared.map(|ns| ns.source.clone()),
        })
    }

    /// Judges every namespace of `desired`, and every namespace `changes`
    /// delete entirely, against the policies; findings sorted.
    pub fn evaluate(
        &self,
        desired: &Desired,
        changes: &[Change],
    ) -> Result<Vec<Finding>, PolicyError> {
        let env_name = desired.environment.name.as_str();
        let environment = json!({
            "name": env_name,
            "stage": desired.environment.stage,
        });
        let mut by_namespace: BTreeMap<&str, Vec<&Change>> = BTreeMap::new();
        for c in changes {
            by_namespace.entry(&c.namespace).or_default().push(c);
        }
        // Every namespace declared, then those only the changes name: their
        // files were removed.
        let mut judged: Vec<Judged<'_>> = desired
            .namespaces
            .iter()
            .map(|ns| Judged {
                name: &ns.name,
                declared: Some(ns),
                changes: by_namespace.remove(ns.name.as_str()).unwrap_or_default(),
            })
            .collect();
        judged.extend(by_namespace.into_iter().map(|(name, changes)| Judged {
            name,
            declared: None,
            changes,
        }));
        // The input of a namespace, built when its chunk is judged.
        let input = |j: &Judged<'_>| {
            let namespace = match j.declared {
                Some(ns) => namespace_input(ns),
                None => json!({
                    "name": j.name,
                    "deleted": true,
                    "tier": last_tier(desired, j.name, &j.changes),
                }),
            };
            json!({
                "namespace": namespace,
                "environment": environment,
                "changes": changes_input(&j.changes),
            })
        };
        // Namespaces are judged independently: each core takes the next
        // chunk until none is left.
        let chunks: Vec<&[Judged<'_>]> = judged.chunks(CHUNK).collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let threads = std::thread::available_parallelism()
            .map_or(1, usize::from)
            .min(chunks.len());
        let work = || -> Result<Vec<Finding>, PolicyError> {
            let mut out = Vec::new();
            while let Some(part) =
                chunks.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
            {
                // A fresh engine per chunk: one kept for every chunk grew in
                // memory and time per evaluation (superlinear in namespaces).
                let mut engine = self.engine.clone();
                let items: Vec<Json> = part.iter().map(input).collect();
                for f in Self::run(&mut engine, items)? {
                    out.push(self.finding(&f, part, env_name)?);
                }
            }
            Ok(out)
        };
        let results: Vec<Result<Vec<Finding>, PolicyError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads).map(|_| scope.spawn(work)).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("policy evaluation does not panic"))
                .collect()
        });
        let mut findings = Vec::new();
        for r in results {
            findings.extend(r?);
        }
        findings.sort();
        Ok(findings)
    }
}

fn evaluation_error(message: impl ToString) -> PolicyError {
    PolicyError {
        file: "(evaluation)".into(),
        message: message.to_string(),
    }
}

/// A namespace to judge: declared, or only named by the changes.
struct Judged<'a> {
    name: &'a str,
    declared: Option<&'a NamespaceState>,
    changes: Vec<&'a Change>,
}

/// The resolved namespace, as policies see it.
fn namespace_input(ns: &NamespaceState) -> Json {
    let mut value = serde_json::to_value(ns).expect("namespaces are JSON");
    if let Some(map) = value.as_object_mut() {
        map.insert("deleted".into(), Json::Bool(false));
    }
    value
}

fn changes_input(changes: &[&Change]) -> Json {
    changes
        .iter()
        .map(|c| {
            json!({
                "address": c.address,
                "kind": c.address.kind(),
                "name": c.address.name(),
                "action": c.action,
                "cause": c.cause,
                "fields": c.fields,
            })
        })
        .collect()
}

/// The tier a removed namespace last had: its registry record says.
fn last_tier(desired: &Desired, name: &str, changes: &[&Change]) -> Json {
    let registry = RecordKind::Registry.key(&desired.environment.etcd.prefix, name);
    changes
        .iter()
        .filter(|c| c.address.kind() == Kind::EtcdKey && c.address.name() == registry)
        .find_map(|c| match &c.live {
            Some(Value::Record(r)) => r.get("tier").cloned(),
            _ => None,
        })
        .unwrap_or(Json::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_policies_parse() {
        let p = Policies::load(&[]).unwrap();
        assert_eq!(p.packages.len(), BUILT_IN.len());
        assert!(p.packages.iter().all(|p| p.starts_with("data.sluice.")));
    }

    #[test]
    fn a_policy_hint_goes_with_its_findings_and_built_ins_say_they_are_built_in() {
        let user = SourceFile {
            path: "policies/naming.rego".into(),
            text: "package naming\nhint := \"prefix it with the team\"\n".into(),
        };
        let p = Policies::load(&[user]).unwrap();
        let hint_of = |package: &str| {
            let i = p.packages.iter().position(|x| x == package).unwrap();
            p.hints[i].clone()
        };
        assert!(
            hint_of("data.sluice.critical_deletes")
                .unwrap()
                .contains("metadata.tier: standard")
        );
        assert!(
            hint_of("data.sluice.repartition")
                .unwrap()
                .contains("allow_repartition: true")
        );
        assert!(
            hint_of("data.sluice.retention_shrink")
                .unwrap()
                .contains("at most half")
        );
        assert_eq!(
            hint_of("data.naming").as_deref(),
            Some("prefix it with the team")
        );
        assert_eq!(hint_of("data.sluice.critical_alerts"), None);

        let finding = |file: &str, hint: Option<&str>| Finding {
            level: Level::Deny,
            policy: "sluice.critical_alerts".into(),
            file: file.into(),
            namespace: "pay".into(),
            environment: "prod".into(),
            message: "m".into(),
            hint: hint.map(str::to_owned),
            source: None,
        };
        let shown = |f: Finding| f.to_diagnostic().hint.unwrap();
        assert!(
            shown(finding("policies/critical_alerts.rego (built-in)", None))
                .contains("cannot be changed")
        );
        assert!(shown(finding("policies/mine.rego", None)).contains("policies/mine.rego"));
        assert_eq!(shown(finding("policies/mine.rego", Some("do x"))), "do x");
    }

    #[test]
    fn a_broken_policy_is_reported_with_its_file() {
        let broken = SourceFile {
            path: "policies/broken.rego".into(),
            text: "package x\ndeny contains msg if {".into(),
        };
        let errors = Policies::load(&[broken]).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].file, "policies/broken.rego");
    }
}
