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

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::sync::Arc;

use regorus::languages::rego::compiler::Compiler;
use regorus::rvm::program::Program;
use regorus::rvm::vm::RegoVM;

use serde_json::{Value as Json, json};

use crate::desired::{Desired, NamespaceState};
use crate::diag::Diagnostic;
use crate::plan::{Change, Finding, Level};
use crate::records::RecordKind;
use crate::resource::{Kind, Value};
use crate::source::SourceFile;

/// The package of the generated module that runs every policy.
const DRIVER: &str = "sluice_driver";

/// Namespaces one interpreter judges before it is replaced by a fresh copy.
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
    /// Every policy and the driver, parsed once; the interpreter clones it
    /// when the driver could not be compiled.
    engine: regorus::Engine,
    /// The driver compiled to regorus' virtual machine: several times
    /// faster than its interpreter. `None` when a policy uses what the
    /// compiler lacks (`with`), and the interpreter judges instead.
    program: Option<Arc<Program>>,
    /// The file of each policy, by its index in the driver's findings.
    files: Vec<String>,
    /// The package of each policy, in the same order.
    packages: Vec<String>,
    /// Each policy's `hint`, when it has one, in the same order.
    hints: Vec<Option<String>>,
}

impl Policies {
    /// Parses the built-in policies and `user` ones into one engine, with a
    /// driver that gathers every policy's findings about one input, and
    /// compiles the driver. Every broken file is reported.
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
                    "\nfindings contains [{i}, \"{rule}\", msg] if {{\n\tsome msg in {package}.{rule}\n}}\n"
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
        let program = compile(&mut engine);
        Ok(Policies {
            engine,
            program,
            files,
            packages,
            hints,
        })
    }

    /// Whether the policies run compiled (false: interpreted).
    pub fn compiled(&self) -> bool {
        self.program.is_some()
    }

    /// One thread's judge: the compiled driver in a virtual machine of its
    /// own, else a copy of the interpreter.
    fn judge(&self) -> Judge {
        match &self.program {
            Some(program) => {
                let mut vm = RegoVM::new();
                vm.load_program(program.clone());
                // The VM stops at 25,000 instructions by default, which a
                // namespace of a few hundred topics passes; the interpreter
                // has no such limit, and neither has a judge here.
                vm.set_max_instructions(usize::MAX);
                Judge::Compiled(Box::new(vm))
            }
            None => Judge::Interpreted(Box::new(self.engine.clone())),
        }
    }

    /// A driver finding, `[policy, rule, message]`, about `judged`.
    fn finding(
        &self,
        f: &regorus::Value,
        judged: &Judged<'_>,
        environment: &str,
    ) -> Result<Finding, PolicyError> {
        let unexpected = || evaluation_error(format!("unexpected finding {f}"));
        let field = |i: usize| f.as_array().ok().and_then(|a| a.get(i));
        let p = field(0)
            .and_then(|v| v.as_u64().ok())
            .and_then(|n| usize::try_from(n).ok())
            .filter(|p| *p < self.packages.len())
            .ok_or_else(unexpected)?;
        let level = match field(1)
            .and_then(|v| v.as_string().ok())
            .map(|s| s.as_ref())
        {
            Some("deny") => Level::Deny,
            Some("warn") => Level::Warn,
            _ => return Err(unexpected()),
        };
        let message = match field(2).ok_or_else(unexpected)? {
            regorus::Value::String(m) => m.to_string(),
            other => serde_json::to_string(other).map_err(evaluation_error)?,
        };
        Ok(Finding {
            level,
            policy: self.packages[p].trim_start_matches("data.").to_owned(),
            file: self.files[p].clone(),
            namespace: judged.name.to_owned(),
            environment: environment.to_owned(),
            message,
            hint: self.hints[p].clone(),
            source: judged.declared.map(|ns| ns.source.clone()),
        })
    }

    /// Judges every namespace of `desired`, and every namespace `changes`
    /// delete entirely, against the policies; findings sorted.
    pub fn evaluate(
        &self,
        desired: &Desired,
        changes: &[Change],
    ) -> Result<Vec<Finding>, PolicyError> {
        self.evaluate_where(desired, changes, |_| true)
    }

    /// Judges every namespace of `desired` as if nothing changed, on a
    /// thread of its own: a plan starts this before its reads, and hands
    /// the findings to [`Policies::evaluate_changed`] once it has planned.
    pub fn judge_unchanged(&self, desired: &Desired) -> Unchanged {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let (policies, desired) = (self.clone(), desired.clone());
        std::thread::spawn(move || {
            let _ = sender.send(policies.evaluate(&desired, &[]));
        });
        Unchanged(receiver)
    }

    /// [`Policies::evaluate`] of `desired` and `changes`, given the findings
    /// of `desired` with no changes: a namespace the changes leave alone has
    /// the same input, so only those they touch are judged again.
    pub fn evaluate_changed(
        &self,
        unchanged: Vec<Finding>,
        desired: &Desired,
        changes: &[Change],
    ) -> Result<Vec<Finding>, PolicyError> {
        let touched: BTreeSet<&str> = changes.iter().map(|c| c.namespace.as_str()).collect();
        let mut findings: Vec<Finding> = unchanged
            .into_iter()
            .filter(|f| !touched.contains(f.namespace.as_str()))
            .collect();
        findings.extend(self.evaluate_where(desired, changes, |name| touched.contains(name))?);
        findings.sort();
        Ok(findings)
    }

    /// The findings about the namespaces of `desired` and `changes` whose
    /// names `only` takes, sorted.
    fn evaluate_where(
        &self,
        desired: &Desired,
        changes: &[Change],
        only: impl Fn(&str) -> bool,
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
        judged.retain(|j| only(j.name));
        // The input of a namespace, built just before it is judged.
        let input = |j: &Judged<'_>| {
            let namespace = match j.declared {
                Some(ns) => namespace_input(ns),
                None => json!({
                    "name": j.name,
                    "deleted": true,
                    "tier": last_tier(desired, j.name, &j.changes),
                }),
            };
            regorus::Value::from(json!({
                "namespace": namespace,
                "environment": environment,
                "changes": changes_input(&j.changes),
            }))
        };
        // Namespaces are judged independently, a share of them per core.
        let results = crate::par::map_chunks(&judged, 8, |part| {
            let mut judge = self.judge();
            let mut out = Vec::new();
            for (i, j) in part.iter().enumerate() {
                if i % CHUNK == 0 {
                    judge.refresh(self);
                }
                for f in judge.findings(input(j))? {
                    out.push(self.finding(&f, j, env_name)?);
                }
            }
            Ok::<_, PolicyError>(out)
        });
        let mut findings = Vec::new();
        for r in results {
            findings.extend(r?);
        }
        findings.sort();
        Ok(findings)
    }
}

/// The findings of [`Policies::judge_unchanged`], once its thread is done.
pub struct Unchanged(tokio::sync::oneshot::Receiver<Result<Vec<Finding>, PolicyError>>);

impl Unchanged {
    pub async fn wait(self) -> Result<Vec<Finding>, PolicyError> {
        self.0
            .await
            .map_err(|_| evaluation_error("the policies' thread ended without an answer"))?
    }
}

/// What judges one input after another on one thread.
enum Judge {
    Compiled(Box<RegoVM>),
    Interpreted(Box<regorus::Engine>),
}

impl Judge {
    /// A fresh interpreter every [`CHUNK`] namespaces: one kept for all of
    /// them grew in memory and time with each evaluation.
    fn refresh(&mut self, policies: &Policies) {
        if let Judge::Interpreted(engine) = self {
            **engine = policies.engine.clone();
        }
    }

    /// Every policy's findings about `input`, as `[policy, rule, message]`.
    fn findings(&mut self, input: regorus::Value) -> Result<Vec<regorus::Value>, PolicyError> {
        let entry = format!("data.{DRIVER}.findings");
        let value = match self {
            Judge::Compiled(vm) => {
                vm.set_input(input);
                vm.execute_entry_point_by_name(&entry)
                    .map_err(evaluation_error)?
            }
            Judge::Interpreted(engine) => {
                engine.set_input(input);
                engine.eval_rule(entry).map_err(evaluation_error)?
            }
        };
        Ok(match value {
            regorus::Value::Array(findings) => findings.iter().cloned().collect(),
            regorus::Value::Set(findings) => findings.iter().cloned().collect(),
            _ => Vec::new(),
        })
    }
}

/// The driver compiled for regorus' virtual machine, or `None` (logged)
/// when the compiler cannot take a policy.
fn compile(engine: &mut regorus::Engine) -> Option<Arc<Program>> {
    let entry: regorus::Rc<str> = format!("data.{DRIVER}.findings").into();
    let compiled = engine
        .compile_with_entrypoint(&entry)
        .map_err(|e| e.to_string());
    match compiled.and_then(|c| {
        Compiler::compile_from_policy(&c, &[entry.as_ref()]).map_err(|e| e.to_string())
    }) {
        Ok(program) => Some(program),
        Err(e) => {
            tracing::debug!(error = %e, "policies interpreted: the compiler cannot take them");
            None
        }
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
            Some(Value::Record(r)) => r.json().get("tier").cloned(),
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
    fn the_built_in_policies_are_compiled_and_with_falls_back_to_the_interpreter() {
        assert!(Policies::load(&[]).unwrap().compiled());
        let with = SourceFile {
            path: "policies/with.rego".into(),
            text: "package with_user\ndeny contains \"x\" if { input.namespace.tier == \"a\" with input.namespace.tier as \"a\" }\n".into(),
        };
        let p = Policies::load(&[with]).unwrap();
        assert!(!p.compiled());
        let findings = p.judge().findings(regorus::Value::from(json!({
            "namespace": {"name": "n", "tier": "b", "topics": [], "access": [], "alerts": []},
            "environment": {"name": "e", "stage": "dev"},
            "changes": [],
        })));
        assert!(
            findings
                .unwrap()
                .iter()
                .any(|f| f.to_string().contains("\"x\""))
        );
    }

    /// Inputs that make every built-in policy deny or warn, and pass.
    fn inputs() -> Vec<Json> {
        let topic = |name: &str, rf: u16, config: Json| json!({"name": name, "partitions": 3, "replication_factor": rf, "config": config});
        let change = |name: &str, action: &str, field: &str, before: Json, after: Json| {
            json!({"kind": "kafka.topic", "name": name, "action": action,
                   "fields": [{"field": field, "before": before, "after": after}]})
        };
        let namespaces = [
            json!({"tier": "critical", "alerts": [], "topics": [topic("a", 1, json!({}))]}),
            json!({"tier": "critical", "alerts": [{}], "disaster_recovery": {"rpo_ms": 3600000},
                   "topics": [topic("a", 3, json!({"retention.ms": "-1"}))]}),
            json!({"tier": "critical", "alerts": [{}], "disaster_recovery": {},
                   "topics": [topic("c", 3, json!({"cleanup.policy": "compact"}))]}),
            json!({"tier": "standard", "alerts": [],
                   "access": [{"principal": "service:*", "permissions": ["read"]}],
                   "topics": [topic("a", 3, json!({"retention.ms": "3000000000"})),
                              topic("c", 3, json!({"cleanup.policy": "compact", "retention.ms": "-1"}))]}),
            json!({"tier": "best-effort", "alerts": [], "topics": [topic("a", 2, json!({"retention.ms": "3600000"}))]}),
        ];
        let changes = [
            json!([]),
            json!([change("a", "delete", "partitions", json!(3), json!(null))]),
            json!([
                change("c", "update", "partitions", json!(3), json!(6)),
                change(
                    "a",
                    "update",
                    "config.retention.ms",
                    json!("-1"),
                    json!("86400000")
                )
            ]),
            json!([
                change("a", "update", "partitions", json!(3), json!(4)),
                change(
                    "a",
                    "update",
                    "config.retention.ms",
                    json!("604800000"),
                    json!("90000000")
                )
            ]),
        ];
        let mut out = Vec::new();
        for ns in &namespaces {
            for stage in ["dev", "prod"] {
                for c in &changes {
                    let mut ns = ns.clone();
                    let map = ns.as_object_mut().unwrap();
                    map.insert("name".into(), json!("n"));
                    map.insert("deleted".into(), json!(false));
                    map.entry("access").or_insert(json!([]));
                    out.push(json!({"namespace": ns, "environment": {"name": "e", "stage": stage}, "changes": c}));
                }
            }
        }
        out
    }

    #[test]
    fn the_compiled_policies_find_what_the_interpreter_finds() {
        let compiled = Policies::load(&[]).unwrap();
        let interpreted = Policies {
            program: None,
            ..compiled.clone()
        };
        let (mut vm, mut engine) = (compiled.judge(), interpreted.judge());
        let mut seen = 0;
        for input in inputs() {
            let input = regorus::Value::from(input);
            let mut a = vm.findings(input.clone()).unwrap();
            let mut b = engine.findings(input).unwrap();
            a.sort();
            b.sort();
            assert_eq!(a, b);
            seen += a.len();
        }
        // Every built-in policy found something on these inputs.
        assert!(seen > 40, "{seen}");
    }

    #[test]
    fn a_namespace_of_thousands_of_topics_is_judged() {
        let topics: Vec<Json> = (0..5000)
            .map(|i| {
                json!({"name": format!("t{i}"), "partitions": 1, "replication_factor": 1,
                            "config": {"retention.ms": "-1"}})
            })
            .collect();
        let input = json!({
            "namespace": {"name": "n", "tier": "standard", "deleted": false, "topics": topics,
                          "access": [], "alerts": []},
            "environment": {"name": "e", "stage": "prod"},
            "changes": [],
        });
        let p = Policies::load(&[]).unwrap();
        assert!(p.compiled());
        let findings = p.judge().findings(regorus::Value::from(input)).unwrap();
        // Each topic: too few replicas, and infinite retention outside critical.
        assert_eq!(findings.len(), 10_000);
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
