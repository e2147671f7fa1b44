//! Where a plan was made: the systems of its environment as sluice reached
//! them, and the ID the Kafka cluster reported. Plan headers and the apply
//! prompt name them, so that nobody applies to a cluster by mistake. No
//! credentials: an endpoint's user information is masked.

use serde::{Deserialize, Serialize};

use crate::config::redact;
use crate::desired::Environment;

/// The endpoints of a plan's environment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Endpoints {
    /// Kafka bootstrap servers.
    pub kafka: Vec<String>,
    /// The ID the Kafka cluster reported; absent when it reported none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    pub etcd: Vec<String>,
    /// The etcd key prefix of everything sluice writes.
    pub etcd_prefix: String,
    /// The S3 endpoint; absent for AWS's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3_region: Option<String>,
    /// The Prometheus rules directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules_dir: Option<String>,
}

impl Endpoints {
    /// The endpoints of `env`, credentials masked, with the cluster ID found.
    pub fn of(env: &Environment, cluster_id: Option<String>) -> Self {
        let masked = |list: &[String]| list.iter().map(|e| redact::endpoint(e)).collect();
        Endpoints {
            kafka: masked(&env.kafka.bootstrap_servers.value),
            cluster_id,
            etcd: masked(&env.etcd.endpoints.value),
            etcd_prefix: env.etcd.prefix.clone(),
            s3_endpoint: env
                .s3
                .as_ref()
                .and_then(|s| s.endpoint.as_deref())
                .map(redact::endpoint),
            s3_region: env.s3.as_ref().map(|s| s.region.clone()),
            rules_dir: env.alerts.as_ref().map(|a| a.rules_dir.clone()),
        }
    }

    /// One `(system, where)` pair per system, for headers and prompts:
    /// `("Kafka", "b1:9092, b2:9092 (cluster `abc`)")`.
    pub fn lines(&self) -> Vec<(&'static str, String)> {
        let cluster = self.cluster_id.as_ref().map_or_else(
            || " (cluster ID unknown)".to_owned(),
            |id| format!(" (cluster `{id}`)"),
        );
        let mut out = vec![
            ("Kafka", format!("{}{cluster}", self.kafka.join(", "))),
            (
                "etcd",
                format!("{}, prefix `{}`", self.etcd.join(", "), self.etcd_prefix),
            ),
        ];
        if let Some(region) = &self.s3_region {
            let at = self.s3_endpoint.as_deref().unwrap_or("AWS");
            out.push(("S3", format!("{at}, region {region}")));
        }
        if let Some(dir) = &self.rules_dir {
            out.push(("rules", dir.clone()));
        }
        out
    }
}
