//! sluice: a declarative GitOps reconciler for streaming-platform namespaces.
//!
//! The pipeline, one module each: [`source`] (files from a directory or Git)
//! → [`config`] (the YAML model, parsed strictly) → [`desired`] (validated and
//! resolved per environment) → live backends, plan, apply, drift (later) →
//! rendering, in [`commands`] and [`diag`].

pub mod cli;
pub mod commands;
pub mod config;
pub mod desired;
pub mod diag;
pub mod schema;
pub mod source;
