//! Tests against the real local servers (etcd, moto, tansu, Prometheus and
//! promtool) that `scripts/services.sh up` starts. Built only with the `live`
//! feature, which `scripts/test.sh` turns on; a missing server fails them.

#[path = "../common/mod.rs"]
mod common;
mod servers;

mod adopt;
mod alerts;
mod backup;
mod dr;
mod drill;
mod env_file;
mod faults;
mod import;
mod operator;
mod plan_schema;
mod policies;
mod progress;
mod proxy;
mod pull_request;
mod reconcile;
mod smoke;
mod snapshot;
mod state;
mod topic_configs;
mod untrusted;
mod watch;
mod workflow;
