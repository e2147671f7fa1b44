//! The floors `scripts/bench-backup.sh` measures `sluice backup` and
//! `sluice restore` against: the same Kafka and S3 clients (rdkafka, and
//! sluice's own S3 client setup) doing the same reads and writes with none
//! of sluice's logic (no Avro, no zstd, no SHA-256, no manifest, no lock).
//!
//!   produce BOOTSTRAP TOPIC PARTITIONS MIB
//!       creates TOPIC (unless it exists) and writes records of realistic size (a 20-byte key,
//!       a 1 KiB JSON-like value, a trace header) round-robin over its
//!       partitions until MIB of record data are written: how the script
//!       fills the topic, and the floor of a restore (a plain producer
//!       writing the same records)
//!   read BOOTSTRAP TOPIC PARTITIONS S3_ENDPOINT BUCKET PREFIX OBJECT_BYTES
//!       reads every partition of TOPIC from its low to its high watermark
//!       and puts the records' bytes to S3, an object per OBJECT_BYTES of
//!       record data per partition: the floor of a backup
//!   delete BOOTSTRAP TOPIC
//!
//! Each prints one line: records, bytes, seconds, MB/s.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use sluice::backend::s3::S3Backend;
use sluice::config::workspace::S3Env;

const TIMEOUT: Duration = Duration::from_secs(30);
const VALUE_BYTES: usize = 1024;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    match args.as_slice() {
        ["produce", bootstrap, topic, partitions, mib] => runtime.block_on(produce(
            bootstrap,
            topic,
            partitions.parse().expect("PARTITIONS"),
            mib.parse::<u64>().expect("MIB") * 1024 * 1024,
        )),
        [
            "read",
            bootstrap,
            topic,
            partitions,
            endpoint,
            bucket,
            prefix,
            object_bytes,
        ] => {
            runtime.block_on(read(
                bootstrap,
                topic,
                partitions.parse().expect("PARTITIONS"),
                (endpoint, bucket, prefix),
                object_bytes.parse().expect("OBJECT_BYTES"),
            ));
        }
        ["delete", bootstrap, topic] => runtime.block_on(delete(bootstrap, topic)),
        _ => {
            eprintln!("usage: see benches/backup.rs");
            std::process::exit(2);
        }
    }
}

fn client(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

/// Record `n` of the topic (round-robin: partition `n % partitions`).
struct Generated {
    key: Vec<u8>,
    value: Vec<u8>,
    trace: Vec<u8>,
    timestamp: i64,
}

fn generate(n: u64, base: i64, state: &mut u64) -> Generated {
    let mut hex = |len: usize| -> Vec<u8> {
        (0..len)
            .map(|_| {
                // xorshift64: values compress about as much as real JSON does.
                *state ^= *state << 13;
                *state ^= *state >> 7;
                *state ^= *state << 17;
                b"0123456789abcdef"[(*state & 15) as usize]
            })
            .collect()
    };
    let mut value = format!(
        r#"{{"order_id":{n},"customer":"customer-{:08}","status":"shipped","currency":"EUR","amount_cents":{},"note":""#,
        n % 100_000,
        (n * 37) % 100_000
    )
    .into_bytes();
    let pad = VALUE_BYTES.saturating_sub(value.len() + 2);
    value.extend(hex(pad));
    value.extend(b"\"}");
    Generated {
        key: format!("order-{n:014}").into_bytes(),
        value,
        trace: hex(32),
        timestamp: base + i64::try_from(n).expect("fits"),
    }
}

struct Delivery {
    failed: AtomicU64,
    acked: AtomicU64,
}

impl ClientContext for Delivery {}

impl ProducerContext for Delivery {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.acked.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

async fn create(bootstrap: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = client(bootstrap).create().expect("admin");
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let made = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &opts,
        )
        .await
        .expect("CreateTopics");
    for r in made {
        match r {
            // Declared in the namespace and created by `sluice apply`.
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => panic!("creating {t}: {e}"),
        }
    }
    // Until the metadata shows every partition.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let seen = admin
            .inner()
            .fetch_metadata(Some(topic), TIMEOUT)
            .ok()
            .and_then(|m| m.topics().first().map(|t| t.partitions().len()));
        if seen == Some(partitions as usize) {
            break;
        }
        assert!(Instant::now() < deadline, "{topic} never showed");
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn produce(bootstrap: &str, topic: &str, partitions: i32, bytes: u64) {
    let started = Instant::now();
    create(bootstrap, topic, partitions).await;
    let producer: BaseProducer<Delivery> = client(bootstrap)
        .create_with_context(Delivery {
            failed: AtomicU64::new(0),
            acked: AtomicU64::new(0),
        })
        .expect("producer");
    let (mut written, mut n, mut state) = (0u64, 0u64, 0x9e37_79b9_7f4a_7c15u64);
    // Timestamps of now: within any retention the topic has.
    let base = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits");
    while written < bytes {
        let g = generate(n, base, &mut state);
        let partition = i32::try_from(n % partitions as u64).expect("fits");
        written += (g.key.len() + g.value.len() + "trace".len() + g.trace.len()) as u64;
        let mut record = BaseRecord::to(topic)
            .partition(partition)
            .key(&g.key)
            .payload(&g.value)
            .timestamp(g.timestamp)
            .headers(OwnedHeaders::new().insert(Header {
                key: "trace",
                value: Some(&g.trace),
            }));
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(10));
                }
                Err((e, _)) => panic!("producing: {e}"),
            }
        }
        producer.poll(Duration::ZERO);
        n += 1;
    }
    producer.flush(TIMEOUT * 4).expect("flush");
    let failed = producer.context().failed.load(Ordering::Relaxed);
    let acked = producer.context().acked.load(Ordering::Relaxed);
    assert_eq!(failed, 0, "{failed} record(s) were not delivered");
    assert_eq!(acked, n);
    report("produced", n, written, started.elapsed());
}

fn report(what: &str, records: u64, bytes: u64, took: Duration) {
    let s = took.as_secs_f64();
    println!(
        "{what} {records} records, {bytes} bytes in {s:.3} s: {:.1} MB/s",
        bytes as f64 / 1e6 / s
    );
}

/// A partition's record bytes, on their way to S3.
struct Object {
    key: String,
    bytes: Vec<u8>,
}

async fn read(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    (endpoint, bucket, prefix): (&str, &str, &str),
    object_bytes: usize,
) {
    let started = Instant::now();
    let env: S3Env = serde_json::from_value(serde_json::json!({
        "region": "us-east-1", "endpoint": endpoint, "path_style": true,
    }))
    .expect("an S3 env");
    let s3 = S3Backend::connect(&env, TIMEOUT).await.expect("S3");
    let objects = s3.objects(bucket).await.expect("the bucket");

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Object>(1);
    let (topic_owned, prefix) = (topic.to_owned(), prefix.to_owned());
    let config = client(bootstrap);
    let records = Arc::new(AtomicU64::new(0));
    let counted = records.clone();
    // As sluice reads: one consumer on a thread, the uploads on the runtime,
    // a channel of one between them.
    let reader = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config
            .clone()
            .set("group.id", "bench-floor")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("queued.max.messages.kbytes", "16384")
            .create()
            .expect("consumer");
        let topic = topic_owned;
        let mut ends = BTreeMap::new();
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            let (low, high) = consumer
                .fetch_watermarks(&topic, p, TIMEOUT)
                .expect("watermarks");
            if low < high {
                ends.insert(p, high);
                tpl.add_partition_offset(&topic, p, Offset::Offset(low))
                    .expect("assign");
            }
        }
        consumer.assign(&tpl).expect("assign");
        let mut buffers: BTreeMap<i32, (i64, Vec<u8>)> = BTreeMap::new();
        let send = |p: i32, first: i64, bytes: Vec<u8>| {
            tx.blocking_send(Object {
                key: format!("{prefix}{topic}/{p}/{first:020}"),
                bytes,
            })
            .expect("the uploader runs");
        };
        let mut last = Instant::now();
        while !ends.is_empty() {
            let m = match consumer.poll(Duration::from_millis(200)) {
                None => {
                    assert!(last.elapsed() < TIMEOUT, "no record for {TIMEOUT:?}");
                    continue;
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    ends.remove(&p);
                    continue;
                }
                Some(Err(e)) => panic!("reading: {e}"),
                Some(Ok(m)) => m,
            };
            last = Instant::now();
            let (p, offset) = (m.partition(), m.offset());
            let Some(end) = ends.get(&p).copied() else {
                continue;
            };
            let (_, buf) = buffers
                .entry(p)
                .or_insert_with(|| (offset, Vec::with_capacity(object_bytes + 4096)));
            buf.extend_from_slice(m.key().unwrap_or_default());
            buf.extend_from_slice(m.payload().unwrap_or_default());
            if let Some(h) = m.headers() {
                for h in h.iter() {
                    buf.extend_from_slice(h.key.as_bytes());
                    buf.extend_from_slice(h.value.unwrap_or_default());
                }
            }
            counted.fetch_add(1, Ordering::Relaxed);
            if buf.len() >= object_bytes {
                let (first, buf) = buffers.remove(&p).expect("just used");
                send(p, first, buf);
            }
            if offset + 1 >= end {
                ends.remove(&p);
            }
        }
        for (p, (first, buf)) in std::mem::take(&mut buffers) {
            send(p, first, buf);
        }
    });
    let mut bytes = 0u64;
    let mut count = 0;
    while let Some(o) = rx.recv().await {
        bytes += o.bytes.len() as u64;
        count += 1;
        objects.put(&o.key, o.bytes).await.expect("PutObject");
    }
    reader.await.expect("the reader");
    report(
        &format!("read and put ({count} objects)"),
        records.load(Ordering::Relaxed),
        bytes,
        started.elapsed(),
    );
}

async fn delete(bootstrap: &str, topic: &str) {
    let admin: AdminClient<DefaultClientContext> = client(bootstrap).create().expect("admin");
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    for r in admin
        .delete_topics(&[topic], &opts)
        .await
        .expect("DeleteTopics")
    {
        r.unwrap_or_else(|(t, e)| panic!("deleting {t}: {e}"));
    }
}
