//! The writing side of `sluice restore`: a verified object's records,
//! decoded a block at a time on one thread, into the producer, and waited
//! for until the broker acknowledges them.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use super::BackupError;
use super::manifest::SegmentObject;
use super::restore::Landed;
use super::resume::Skipper;
use super::segment::{BackedRecord, SegmentReader};

/// Decodes the objects of a restore, block by block, on one thread, at
/// most two blocks ahead of the producer. One thread for the whole restore
/// rather than a task per object: the memory of the records it decodes is
/// allocated by one thread and reused, not spread over the blocking pool.
pub(super) struct Decoder {
    objects: tokio::sync::mpsc::Sender<Vec<u8>>,
    /// Each object's blocks, then `None`.
    blocks: tokio::sync::mpsc::Receiver<Option<Result<Vec<BackedRecord>, String>>>,
}

impl Decoder {
    pub(super) fn start() -> Self {
        let (objects, mut incoming) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
        let (tx, blocks) = tokio::sync::mpsc::channel(2);
        // Ends when the restore drops its side of the channels.
        tokio::task::spawn_blocking(move || {
            while let Some(bytes) = incoming.blocking_recv() {
                match SegmentReader::open(&bytes) {
                    Err(e) => {
                        if tx.blocking_send(Some(Err(e))).is_err() {
                            return;
                        }
                    }
                    Ok(mut reader) => {
                        while let Some(block) = reader.next_block() {
                            let failed = block.is_err();
                            if tx.blocking_send(Some(block)).is_err() {
                                return;
                            }
                            if failed {
                                break;
                            }
                        }
                    }
                }
                if tx.blocking_send(None).is_err() {
                    return;
                }
            }
        });
        Decoder { objects, blocks }
    }
}

/// Sends the records of one verified object, as the decoder hands them
/// over.
pub(super) async fn send_object(
    bytes: Vec<u8>,
    decoder: &mut Decoder,
    writing: &mut Writing<'_>,
    skip: &mut Skipper,
    to_time_ms: Option<i64>,
    (bucket, object): (&str, &SegmentObject),
) -> Result<(), BackupError> {
    let gone = || BackupError::Kafka("the restore's decoding thread stopped".into());
    decoder.objects.send(bytes).await.map_err(|_| gone())?;
    loop {
        let block = match decoder.blocks.recv().await {
            Some(Some(block)) => block,
            Some(None) => return Ok(()),
            None => return Err(gone()),
        };
        let records = block.map_err(|message| BackupError::UnreadableBlock {
            bucket: bucket.to_owned(),
            key: object.key.clone(),
            message,
            written: 0,
        })?;
        let kept: Vec<&BackedRecord> = records
            .iter()
            .filter(|r| to_time_ms.is_none_or(|t| r.timestamp <= t))
            .collect();
        let kept = skip.rest(kept).map_err(|message| BackupError::Mismatch {
            topic: writing.topic.to_owned(),
            partition: writing.partition,
            message,
        })?;
        writing.send(&kept).await?;
    }
}

/// Records on their way to one partition: sent, and acknowledged so far.
pub(super) struct Writing<'a> {
    pub(super) producer: &'a FutureProducer,
    pub(super) topic: &'a str,
    pub(super) partition: i32,
    pub(super) pending: Vec<DeliveryFuture>,
    /// Acknowledged by the broker.
    pub(super) acked: u64,
    /// Written before this object, for the count errors give.
    pub(super) before: u64,
    /// Where the broker put what it acknowledged, in this partition.
    pub(super) landed: &'a mut Landed,
}

impl Writing<'_> {
    fn fail(&self, message: String) -> BackupError {
        BackupError::Write {
            topic: self.topic.to_owned(),
            partition: self.partition,
            message,
            written: self.before + self.acked,
        }
    }

    /// Hands `records` to the producer; when its queue is full, waits for
    /// what is in flight first.
    async fn send(&mut self, records: &[&BackedRecord]) -> Result<(), BackupError> {
        for r in records {
            let mut record: FutureRecord<'_, [u8], [u8]> =
                FutureRecord::to(self.topic).partition(self.partition);
            if let Some(k) = &r.key {
                record = record.key(k.as_slice());
            }
            if let Some(v) = &r.value {
                record = record.payload(v.as_slice());
            }
            if r.timestamp >= 0 {
                record = record.timestamp(r.timestamp);
            }
            if !r.headers.is_empty() {
                let mut headers = OwnedHeaders::new_with_capacity(r.headers.len());
                for (key, value) in &r.headers {
                    headers = headers.insert(Header {
                        key: key.as_str(),
                        value: value.as_deref(),
                    });
                }
                record = record.headers(headers);
            }
            loop {
                match self.producer.send_result(record) {
                    Ok(delivery) => {
                        self.pending.push(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        self.settle().await?;
                    }
                    Err((e, _)) => return Err(self.fail(e.to_string())),
                }
            }
        }
        Ok(())
    }

    /// Waits until everything sent is acknowledged.
    pub(super) async fn settle(&mut self) -> Result<(), BackupError> {
        let result = settle(&mut self.pending, self.landed).await;
        match result {
            Ok(n) => {
                self.acked += n;
                Ok(())
            }
            Err((n, message)) => {
                self.acked += n;
                Err(self.fail(message))
            }
        }
    }
}

/// Waits for every pending delivery, in order, noting where they landed;
/// how many succeeded, or the first failure with how many succeeded before
/// it.
async fn settle(
    pending: &mut Vec<DeliveryFuture>,
    landed: &mut Landed,
) -> Result<u64, (u64, String)> {
    let mut acked = 0;
    for delivery in pending.drain(..) {
        match delivery.await {
            Ok(Ok(d)) => {
                acked += 1;
                landed.first.get_or_insert(d.offset);
                landed.last = d.offset;
                landed.records += 1;
            }
            Ok(Err((e, _))) => return Err((acked, e.to_string())),
            Err(_) => {
                return Err((
                    acked,
                    "the producer went away before the broker answered".into(),
                ));
            }
        }
    }
    Ok(acked)
}
