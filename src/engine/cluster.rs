//! The Kafka cluster a plan reaches: its ID, shown in the plan's header and
//! held against the environment's `kafka.cluster_id` pin, so that a
//! workspace is never planned or applied against the wrong cluster.

use super::{EngineError, Target};
use crate::desired::Environment;
use crate::plan::Endpoints;

/// The ID the environment's Kafka cluster reports: asked when the
/// environment pins one, or when the plan reads Kafka anyway.
pub(super) async fn cluster_id(
    env: &Environment,
    target: &Target,
    reads_kafka: bool,
) -> Option<String> {
    let probe = target.cluster.as_ref()?;
    if env.kafka.cluster_id.is_none() && !reads_kafka {
        return None;
    }
    probe.cluster_id().await
}

/// The cluster ID `found`, refused when the environment pins another (or
/// pins one and none was found).
pub(super) fn pinned(
    env: &Environment,
    found: Option<String>,
) -> Result<Option<String>, EngineError> {
    let Some(expected) = env.kafka.cluster_id.as_ref().map(|p| &p.value) else {
        return Ok(found);
    };
    let servers = Endpoints::of(env, None).kafka.join(", ");
    match found {
        Some(id) if id == *expected => Ok(Some(id)),
        Some(id) => Err(EngineError::OtherCluster {
            env: env.name.clone(),
            expected: expected.clone(),
            found: id,
            servers,
        }),
        None => Err(EngineError::ClusterUnknown {
            env: env.name.clone(),
            expected: expected.clone(),
            servers,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::workspace::Stage;

    /// An environment whose brokers carry credentials in their addresses.
    fn env(pin: Option<&str>) -> Environment {
        let pin = pin.map_or_else(String::new, |p| format!("cluster_id: {p}\n"));
        let kafka =
            format!("bootstrap_servers: [\"u:secret@b1:9092\", \"b2:9092\"]\nbrokers: 1\n{pin}");
        Environment {
            name: "prod".into(),
            stage: Stage::Prod,
            kafka: serde_saphyr::from_str(&kafka).unwrap(),
            s3: None,
            etcd: serde_saphyr::from_str("endpoints: [\"http://etcd:2379\"]").unwrap(),
            alerts: None,
            state_backup: None,
            overridden_by: Vec::new(),
        }
    }

    #[test]
    fn a_pin_refuses_another_cluster_and_an_unknown_one() {
        let found = |id: &str| Some(id.to_owned());
        // Unpinned, whatever is found is only shown.
        assert_eq!(pinned(&env(None), found("x")).unwrap(), found("x"));
        assert_eq!(pinned(&env(None), None).unwrap(), None);
        assert_eq!(
            pinned(&env(Some("abc")), found("abc")).unwrap(),
            found("abc")
        );

        let other = pinned(&env(Some("abc")), found("xyz")).unwrap_err();
        assert!(!other.is_transient());
        let message = other.to_string();
        for part in [
            "`prod`",
            "`abc`",
            "`xyz`",
            "****@b1:9092, b2:9092",
            "nothing was planned or changed",
        ] {
            assert!(message.contains(part), "{part}: {message}");
        }
        assert!(!message.contains("secret"), "{message}");

        let unknown = pinned(&env(Some("abc")), None).unwrap_err();
        assert!(matches!(unknown, EngineError::ClusterUnknown { .. }));
        assert!(unknown.is_transient(), "the brokers may answer next time");
    }
}
