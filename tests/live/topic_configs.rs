//! The topic-config catalog against the broker sluice tests with: a topic is
//! created with each key set to a valid value other than Kafka's default, and
//! DescribeConfigs must answer that value. tansu stores and echoes any key and
//! value (it took `maybe` for a boolean when tried), so this shows every key
//! reaches the broker and comes back unchanged, not that Kafka would accept
//! the value: that rests on the catalog, read from Kafka's source.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use sluice::config::topic_catalog::{CATALOG, Kind, Spec};

use crate::common::unique;
use crate::servers::services;

/// Keys tansu refuses, and why. Empty while it accepts them all.
const REJECTED_BY_TANSU: &[(&str, &str)] = &[];

/// A value in the key's range that differs from Kafka's default.
fn sample(spec: &Spec) -> String {
    let differs = |candidates: &[String]| {
        candidates
            .iter()
            .find(|c| *c != spec.default)
            .cloned()
            .expect("two candidates cannot both be the default")
    };
    let whole = |min: i64, max: i64| {
        let a = min.max(0).saturating_add(1).min(max);
        differs(&[a.to_string(), (a - 1).max(min).to_string()])
    };
    match spec.kind {
        Kind::Bool => differs(&["true".into(), "false".into()]),
        Kind::Int { min, max } | Kind::Millis { min, max } | Kind::Bytes { min, max } => {
            whole(min, max)
        }
        Kind::Ratio { .. } => differs(&["0.25".into(), "0.75".into()]),
        Kind::OneOf(words) | Kind::ListOf(words) => differs(&[words[0].into(), words[1].into()]),
        Kind::Text => "*".into(),
    }
}

#[tokio::test]
async fn every_catalog_key_is_accepted_by_the_broker() {
    let s = services();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &s.kafka)
        .create()
        .expect("a Kafka admin client");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let mut refused = Vec::new();
    let mut wrong = Vec::new();
    for spec in CATALOG {
        let value = sample(spec);
        let topic = unique(&format!("catalog-{}", spec.key.replace('.', "-")));
        let new = NewTopic::new(&topic, 1, TopicReplication::Fixed(1)).set(spec.key, &value);
        let created = admin
            .create_topics(&[new], &opts)
            .await
            .expect("CreateTopics answers");
        if let Err((_, code)) = &created[0] {
            refused.push(format!("{}={value}: {code:?}", spec.key));
            continue;
        }
        let described = admin
            .describe_configs(&[ResourceSpecifier::Topic(&topic)], &opts)
            .await
            .expect("DescribeConfigs answers");
        let resource = described[0].as_ref().expect("the topic's configs");
        let got = resource.get(spec.key).and_then(|e| e.value.clone());
        if got.as_deref() != Some(value.as_str()) {
            wrong.push(format!("{}: set {value}, described {got:?}", spec.key));
        }
        admin
            .delete_topics(&[&topic], &opts)
            .await
            .expect("DeleteTopics answers");
    }
    let expected: Vec<&str> = REJECTED_BY_TANSU.iter().map(|(k, _)| *k).collect();
    let refused_keys: Vec<&str> = refused
        .iter()
        .map(|r| r.split('=').next().unwrap())
        .collect();
    assert_eq!(
        refused_keys, expected,
        "keys the broker refused: {refused:#?}"
    );
    assert!(
        wrong.is_empty(),
        "the broker answered other values: {wrong:#?}"
    );
}
