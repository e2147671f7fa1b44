//! What ends a watcher cycle early, and the policy for it: each error says
//! whether waiting helps. A transient one is retried with backoff; a
//! permanent one is reported once per commit and waits for the next.

use super::metrics::Reconciled;
use crate::backend::ConnectError;
use crate::engine::EngineError;
use crate::engine::apply::ApplyError;
use crate::source::SourceError;

/// Why a cycle could not do its work. Each error says whether waiting
/// helps ([`CycleError::is_transient`]): a transient one is retried with
/// backoff; a permanent one is reported once per commit and waits for the
/// next.
#[derive(Debug, thiserror::Error)]
pub(super) enum CycleError {
    /// The desired state could not be read.
    #[error("cannot read the desired state")]
    Source(#[from] SourceError),
    /// The config has errors (their text, each at its place).
    #[error("the config is invalid: {0}")]
    Invalid(String),
    /// The environment's systems could not be set up.
    #[error("cannot connect to the environment")]
    Connect(#[from] ConnectError),
    /// The plan could not be made.
    #[error("cannot plan")]
    Engine(#[from] EngineError),
    /// A remediation refused to start or failed.
    #[error("remediation failed")]
    Apply(#[from] ApplyError),
}

impl CycleError {
    pub(super) fn is_transient(&self) -> bool {
        match self {
            CycleError::Source(e) => e.is_transient(),
            CycleError::Invalid(_) => false,
            CycleError::Connect(e) => e.is_transient(),
            CycleError::Engine(e) => e.is_transient(),
            CycleError::Apply(e) => e.is_transient(),
        }
    }

    /// The result label of the cycle it ended.
    pub(super) fn result(&self) -> Reconciled {
        match self {
            CycleError::Invalid(_) => Reconciled::Invalid,
            _ => Reconciled::Error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::chain;

    /// One case per kind of error a cycle can end in: whether it is retried
    /// with backoff (transient) or reported once per commit (permanent), and
    /// the result label it counts as. A table, so longer than a function
    /// should be: one row per kind.
    #[test]
    fn each_kind_of_error_is_retried_or_waits_for_the_next_commit() {
        use crate::backend::BackendError;
        use crate::config::secret::SecretError;
        use crate::plan::{Api, PlanError};
        use crate::policy::PolicyError;
        use crate::resource::System;
        use crate::state::StateError;

        let etcd_down = || etcd_client::Error::InvalidArgs("connection refused".into());
        let read = || BackendError::Read {
            system: System::Kafka,
            message: "timed out".into(),
        };
        let corrupt = StateError::Corrupt {
            key: "/sluice/inventory/prod/ns/orders".into(),
            source: serde_json::from_str::<u8>("x").unwrap_err(),
        };
        let cases: Vec<(CycleError, bool, Reconciled)> = vec![
            (
                SourceError::NoRepo("/nowhere".into()).into(),
                false,
                Reconciled::Error,
            ),
            (
                SourceError::Io {
                    path: "/repo".into(),
                    source: std::io::Error::other("busy"),
                }
                .into(),
                true,
                Reconciled::Error,
            ),
            (
                CycleError::Invalid("1 error(s)".into()),
                false,
                Reconciled::Invalid,
            ),
            (
                ConnectError::Secret(SecretError::MissingEnv {
                    field: "kafka.sasl.password".into(),
                    reference: "${env:PASS}".into(),
                })
                .into(),
                false,
                Reconciled::Error,
            ),
            (
                ConnectError::Etcd {
                    endpoints: "http://etcd:2379".into(),
                    cause: etcd_down(),
                }
                .into(),
                true,
                Reconciled::Error,
            ),
            (
                EngineError::Plan(PlanError::EmptyDesired {
                    env: "prod".into(),
                    managed: 3,
                })
                .into(),
                false,
                Reconciled::Error,
            ),
            (EngineError::Backend(read()).into(), true, Reconciled::Error),
            (
                EngineError::Backend(BackendError::Unsupported(Api::CreatePartitions)).into(),
                false,
                Reconciled::Error,
            ),
            (
                EngineError::State(StateError::Unreachable(etcd_down())).into(),
                true,
                Reconciled::Error,
            ),
            (EngineError::State(corrupt).into(), false, Reconciled::Error),
            (
                EngineError::Policy(PolicyError {
                    file: "policies/x.rego".into(),
                    message: "undefined".into(),
                })
                .into(),
                false,
                Reconciled::Error,
            ),
            (ApplyError::Blocked(1).into(), false, Reconciled::Error),
            (
                ApplyError::DeletesNotAllowed(2).into(),
                false,
                Reconciled::Error,
            ),
            (
                ApplyError::TooManyDeletes { count: 9, max: 1 }.into(),
                false,
                Reconciled::Error,
            ),
            (
                ApplyError::Stale(vec!["kafka.topic/a".into()]).into(),
                true,
                Reconciled::Error,
            ),
            (
                ApplyError::State(StateError::Locked {
                    env: "prod".into(),
                    holder: "ci".into(),
                })
                .into(),
                true,
                Reconciled::Error,
            ),
            (
                ApplyError::Backend(BackendError::Rejected("invalid config".into())).into(),
                false,
                Reconciled::Error,
            ),
        ];
        for (e, transient, result) in cases {
            assert_eq!(e.is_transient(), transient, "{}", chain(&e));
            assert_eq!(e.result(), result, "{}", chain(&e));
        }
    }
}
