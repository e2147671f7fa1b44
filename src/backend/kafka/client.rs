//! An environment's Kafka settings as librdkafka's: bootstrap servers,
//! security protocol, SASL and TLS (secrets resolved from their
//! references), and the extra client properties.

use rdkafka::config::ClientConfig;

use super::TlsFiles;
use crate::backend::ConnectError;
use crate::config::secret::resolve;
use crate::config::workspace::{KafkaEnv, SecurityProtocol};

/// The librdkafka settings of an environment, and the TLS files for the
/// ApiVersions probe.
pub(super) fn client_config(
    kafka: &KafkaEnv,
) -> Result<(ClientConfig, Option<TlsFiles>), ConnectError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", kafka.bootstrap_servers.join(","))
        .set("security.protocol", protocol(kafka.security_protocol))
        .set("client.id", "sluice");
    if let Some(sasl) = &kafka.sasl {
        let mechanism = serde_json::to_value(sasl.mechanism).unwrap_or_default();
        config
            .set("sasl.mechanism", mechanism.as_str().unwrap_or_default())
            .set(
                "sasl.username",
                resolve(&sasl.username, "kafka.sasl.username")?
                    .unwrap_or_else(|| sasl.username.clone()),
            )
            .set(
                "sasl.password",
                sasl.password.resolve("kafka.sasl.password")?,
            );
    }
    let mut tls = None;
    if let Some(t) = &kafka.tls {
        for (key, value) in [
            ("ssl.ca.location", &t.ca),
            ("ssl.certificate.location", &t.cert),
            ("ssl.key.location", &t.key),
        ] {
            if let Some(v) = value {
                config.set(key, v);
            }
        }
        if let Some(p) = &t.key_password {
            config.set("ssl.key.password", p.resolve("kafka.tls.key_password")?);
        }
        tls = Some(TlsFiles {
            ca: t.ca.clone(),
            cert: t.cert.clone(),
            key: t.key.clone(),
        });
    }
    if matches!(
        kafka.security_protocol,
        SecurityProtocol::Ssl | SecurityProtocol::SaslSsl
    ) && tls.is_none()
    {
        tls = Some(TlsFiles::default());
    }
    for (key, value) in &kafka.properties {
        let field = format!("kafka.properties.{key}");
        let v = resolve(&value.value.0, &field)?.unwrap_or_else(|| value.value.0.clone());
        config.set(key, v);
    }
    // The admin client is a producer underneath, which would let a Metadata
    // request of a missing topic create it: reading must never create.
    config.set("allow.auto.create.topics", "false");
    Ok((config, tls))
}

fn protocol(p: SecurityProtocol) -> &'static str {
    match p {
        SecurityProtocol::Plaintext => "plaintext",
        SecurityProtocol::Ssl => "ssl",
        SecurityProtocol::SaslPlaintext => "sasl_plaintext",
        SecurityProtocol::SaslSsl => "sasl_ssl",
    }
}
