//! JSON Schemas generated from the types: both config kinds, the etcd
//! records the data plane reads, and the plan.

use std::path::Path;

use crate::config::{Namespace, Workspace};
use crate::plan::Plan;
use crate::records::EtcdRecord;

/// The kinds a schema is generated for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Workspace,
    Namespace,
    /// The etcd records sluice writes for the data plane.
    Records,
    /// A plan, as `plan --format json` and `plan --out` write it.
    Plan,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Workspace, Kind::Namespace, Kind::Records, Kind::Plan];

    /// The file name under `schemas/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Kind::Workspace => "workspace.schema.json",
            Kind::Namespace => "namespace.schema.json",
            Kind::Records => "records.schema.json",
            Kind::Plan => "plan.schema.json",
        }
    }

    /// The schema as pretty JSON, ending in a newline.
    pub fn render(self) -> String {
        let schema = match self {
            Kind::Workspace => schemars::schema_for!(Workspace),
            Kind::Namespace => schemars::schema_for!(Namespace),
            Kind::Records => schemars::schema_for!(EtcdRecord),
            Kind::Plan => schemars::schema_for!(Plan),
        };
        let mut text = serde_json::to_string_pretty(&schema).expect("a schema is always JSON");
        text.push('\n');
        text
    }
}

/// The schema files under `dir` that are missing or differ from the types.
pub fn stale(dir: &Path) -> Vec<String> {
    Kind::ALL
        .iter()
        .filter(|k| std::fs::read_to_string(dir.join(k.file_name())).ok() != Some(k.render()))
        .map(|k| k.file_name().to_owned())
        .collect()
}
