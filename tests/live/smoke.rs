//! The client stack against the real local servers: etcd, S3 (moto) and
//! Kafka (tansu), with the bundled librdkafka. These prove a fresh machine can
//! build and talk to everything later features need.

use std::time::Duration;

use crate::common::unique;
use crate::servers::services;

#[tokio::test]
async fn etcd_put_get_and_lease() {
    let s = services();
    let mut client = etcd_client::Client::connect([s.etcd.as_str()], None)
        .await
        .expect("etcd answers");
    let key = format!("/sluice-smoke/{}", unique("key"));

    client.put(key.as_str(), "v1", None).await.unwrap();
    let got = client.get(key.as_str(), None).await.unwrap();
    assert_eq!(got.kvs()[0].value_str().unwrap(), "v1");

    let lease = client.lease_grant(30, None).await.unwrap();
    let leased = format!("{key}/leased");
    client
        .put(
            leased.as_str(),
            "held",
            Some(etcd_client::PutOptions::new().with_lease(lease.id())),
        )
        .await
        .unwrap();
    assert_eq!(
        client.get(leased.as_str(), None).await.unwrap().kvs()[0].lease(),
        lease.id()
    );
    client.lease_revoke(lease.id()).await.unwrap();
    assert!(
        client
            .get(leased.as_str(), None)
            .await
            .unwrap()
            .kvs()
            .is_empty(),
        "revoking the lease removes its key"
    );

    client.delete(key.as_str(), None).await.unwrap();
}

#[tokio::test]
async fn s3_create_and_list_a_bucket() {
    let client = crate::servers::s3_client(&services().s3);
    let bucket = unique("smoke");
    client
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("moto creates the bucket");
    let listed = client.list_buckets().send().await.unwrap();
    assert!(
        listed
            .buckets()
            .iter()
            .any(|b| b.name() == Some(bucket.as_str())),
        "{listed:?}"
    );
    client.delete_bucket().bucket(&bucket).send().await.unwrap();
}

#[tokio::test]
async fn kafka_metadata_and_a_topic_with_config() {
    use rdkafka::admin::{
        AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication,
    };
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;

    let s = services();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &s.kafka)
        .create()
        .expect("the bundled librdkafka creates a client");
    let (_, version) = rdkafka::util::get_rdkafka_version();
    assert!(
        !version.starts_with("2.0."),
        "linked to librdkafka {version}: Debian's 2.0 cannot talk to tansu; use the bundled one"
    );

    let metadata = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .expect("tansu answers Metadata");
    assert!(!metadata.brokers().is_empty());

    let topic = unique("smoke");
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let created = admin
        .create_topics(
            &[NewTopic::new(&topic, 2, TopicReplication::Fixed(1)).set("retention.ms", "3600000")],
            &opts,
        )
        .await
        .unwrap();
    assert!(created[0].is_ok(), "{created:?}");

    let described = admin
        .describe_configs(&[ResourceSpecifier::Topic(&topic)], &opts)
        .await
        .unwrap();
    let resource = described[0].as_ref().expect("DescribeConfigs answers");
    let retention = resource.get("retention.ms").and_then(|e| e.value.clone());
    assert_eq!(retention.as_deref(), Some("3600000"));

    let metadata = admin
        .inner()
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .unwrap();
    assert_eq!(metadata.topics()[0].partitions().len(), 2);

    let deleted = admin.delete_topics(&[&topic], &opts).await.unwrap();
    assert!(deleted[0].is_ok(), "{deleted:?}");
}

/// The ACL calls go through sluice's own rdkafka-sys wrappers. tansu answers
/// DescribeAcls without storing anything and lacks DeleteAcls, which still
/// runs the request, result parsing, freeing and error paths. CreateAcls is
/// not sent: tansu's answer makes librdkafka 2.12 abort the process (its
/// CreateAcls parser reports success on a result-count mismatch and then
/// asserts), and librdkafka's mock cluster has no ACL handlers.
#[test]
fn acl_calls_through_librdkafka() {
    use rdkafka::admin::AdminClient;
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;
    use sluice::backend::kafka::sys::{delete_acls, describe_acls};
    use sluice::resource::{AclBinding, AclOperation, AclResource};

    let s = services();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &s.kafka)
        .create()
        .unwrap();
    let admin = std::sync::Arc::new(admin);
    let timeout = Duration::from_secs(10);
    let described = describe_acls(&admin, timeout).expect("DescribeAcls answers");
    assert!(described.is_empty(), "tansu keeps no ACLs: {described:?}");
    let binding = AclBinding {
        principal: "User:smoke".into(),
        resource: AclResource::Topic,
        resource_name: unique("smoke"),
        operation: AclOperation::Read,
    };
    let deleted = delete_acls(&admin, &[binding], timeout);
    assert!(
        deleted.is_err() || deleted.as_ref().unwrap().iter().all(Result::is_err),
        "tansu lacks DeleteAcls: {deleted:?}"
    );
}
