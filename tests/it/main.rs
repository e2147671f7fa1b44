//! Tests that need no server, run by a plain `cargo test`: the `sluice`
//! binary on fixtures and examples, golden plans on the in-memory backends,
//! Git sources, schemas, alerts, policies and the example workflow.
//! The tests against the real servers are in `tests/live/`.

#[path = "../common/mod.rs"]
mod common;

mod alerts;
mod exit_codes;
mod fuzz;
mod git_source;
mod layers;
mod operator;
mod plans;
mod policies;
mod schema;
mod untrusted;
mod validate;
mod workflow;
