//! sluice: a declarative GitOps reconciler for streaming-platform namespaces.
//!
//! The pipeline, one module each: [`source`] (files from a directory or Git)
//! → [`config`] (the YAML model, parsed strictly) → [`desired`] (validated and
//! resolved per environment) → [`resource`] (what it becomes live) →
//! [`backend`] (the live systems) and [`state`] (sluice's own, in etcd) →
//! [`plan`] (a pure diff) → [`engine`] (plan and apply) → [`render`], with
//! [`commands`] wiring it to the command line. [`import`] runs the other way:
//! live state back to namespace YAML. [`backup`] copies a namespace's topic
//! data to S3 and back, [`snapshot`] the environment's etcd. [`policy`] judges namespaces and plans
//! with Rego. Each module imports only from those before it in this list, and
//! a test keeps it so.

// mimalloc: policy evaluation and YAML parsing spend about a third of their
// time in glibc's malloc and free (perf, `validate` of 5,000 files). Set in
// the library, so that the binary, the benches and the tests share it. The
// `system-allocator` feature leaves glibc's, which heap profilers see.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod backend;
pub mod backup;
pub mod cli;
pub mod commands;
pub mod config;
pub mod desired;
pub mod diag;
pub mod drill;
pub mod engine;
pub mod files;
pub mod import;
pub mod par;
pub mod plan;
pub mod policy;
pub mod records;
pub mod render;
pub mod resource;
pub mod schema;
pub mod snapshot;
pub mod source;
pub mod state;
pub mod watch;
