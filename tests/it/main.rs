//! Integration tests: the `sluice` binary on fixtures and examples, Git
//! sources, schemas, and the client stack against the real local servers.

mod adopt;
mod alerts;
mod common;
mod dr;
mod git_source;
mod plans;
mod policies;
mod pull_request;
mod reconcile;
mod schema;
mod smoke;
mod validate;
mod watch;
