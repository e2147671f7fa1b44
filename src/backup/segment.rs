//! Segment objects: Avro object container files, zstd-compressed, one Avro
//! record per Kafka record. Any Avro reader (avro-tools, fastavro, Spark,
//! DuckDB's avro extension) reads them; the schema travels in each file.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use apache_avro::Schema;
use sha2::{Digest, Sha256};

use super::avro::{self, Cursor};

/// The schema of every segment object (README "Backup format").
pub const SCHEMA: &str = r#"{
  "type": "record",
  "name": "KafkaRecord",
  "namespace": "dev.sluice.backup",
  "doc": "One Kafka record, as sluice backup read it",
  "fields": [
    {"name": "partition", "type": "int"},
    {"name": "offset", "type": "long"},
    {"name": "timestamp", "type": "long", "doc": "milliseconds since the epoch; -1 when the record has none"},
    {"name": "key", "type": ["null", "bytes"]},
    {"name": "value", "type": ["null", "bytes"]},
    {"name": "headers", "type": {"type": "array", "items": {
      "type": "record",
      "name": "Header",
      "fields": [
        {"name": "key", "type": "string"},
        {"name": "value", "type": ["null", "bytes"]}
      ]
    }}}
  ]
}"#;

/// The parsed [`SCHEMA`].
pub fn schema() -> &'static Schema {
    static SCHEMA_ONCE: OnceLock<Schema> = OnceLock::new();
    SCHEMA_ONCE.get_or_init(|| Schema::parse_str(SCHEMA).expect("the segment schema parses"))
}

/// Encoded record bytes per Avro block, each compressed on its own: zstd
/// over 1 MiB rather than apache-avro's default 16 KB starts fewer frames
/// and finds more to share.
const BLOCK_BYTES: usize = 1024 * 1024;

/// zstd's level for every block. Level 1: at the default level (3) zstd
/// took 57% of a backup's cycles (perf, 1 GiB of 1 KiB JSON-like values).
const ZSTD_LEVEL: i32 = 1;

/// One Kafka record as a segment keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackedRecord {
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch; -1 when the record has none.
    pub timestamp: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl BackedRecord {
    /// What a Kafka message carries, as a backup keeps it.
    pub fn of(m: &impl rdkafka::message::Message) -> Self {
        use rdkafka::message::Headers;
        BackedRecord {
            partition: m.partition(),
            offset: m.offset(),
            timestamp: timestamp_of(m),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The bytes it carries: what a segment's size is counted in.
    pub fn size(&self) -> usize {
        let len = |b: &Option<Vec<u8>>| b.as_ref().map_or(0, Vec::len);
        24 + len(&self.key)
            + len(&self.value)
            + self
                .headers
                .iter()
                .map(|(k, v)| k.len() + len(v))
                .sum::<usize>()
    }
}

/// A message's timestamp as a segment keeps it: -1 when it has none.
fn timestamp_of(m: &impl rdkafka::message::Message) -> i64 {
    m.timestamp().to_millis().unwrap_or(-1)
}

/// What one finished segment holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SegmentStats {
    pub records: u64,
    pub first_offset: i64,
    pub last_offset: i64,
    pub min_timestamp: Option<i64>,
    pub max_timestamp: Option<i64>,
}

/// A block's records, encoded and not yet compressed.
pub struct RawBlock {
    records: u64,
    data: Vec<u8>,
    sync: [u8; 16],
}

impl RawBlock {
    /// The block as the file stores it: compressed with zstd, framed by its
    /// record count, size and the file's sync marker. CPU-bound: the backup
    /// runs it on worker threads.
    pub fn compress(self) -> Result<Vec<u8>, String> {
        let data =
            zstd::bulk::compress(&self.data, ZSTD_LEVEL).map_err(|e| format!("zstd: {e}"))?;
        drop(self.data);
        Ok(avro::block(self.records, &data, &self.sync))
    }
}

/// A segment being written: records go in one at a time and come out as
/// [`RawBlock`]s of about 1 MiB, which the caller compresses (anywhere) and
/// stores after [`SegmentWriter::header`], in order.
pub struct SegmentWriter {
    sync: [u8; 16],
    block: Vec<u8>,
    block_records: u64,
    stats: SegmentStats,
    size: usize,
}

impl Default for SegmentWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl SegmentWriter {
    pub fn new() -> Self {
        SegmentWriter {
            sync: sync_marker(),
            block: Vec::with_capacity(BLOCK_BYTES + 64 * 1024),
            block_records: 0,
            stats: SegmentStats::default(),
            size: 0,
        }
    }

    /// The file's header: magic, schema, codec, sync marker.
    pub fn header(&self) -> Vec<u8> {
        avro::header(SCHEMA, "zstandard", &self.sync)
    }

    /// Adds a Kafka message (offsets come in increasing order); a full
    /// block when this one filled it.
    pub fn append_message(&mut self, m: &impl rdkafka::message::Message) -> Option<RawBlock> {
        use rdkafka::message::Headers;
        let headers = m.headers();
        let headers = headers
            .iter()
            .flat_map(|h| h.iter())
            .map(|h| (h.key, h.value));
        let headers: Vec<(&str, Option<&[u8]>)> = headers.collect();
        let size = 24
            + m.key().map_or(0, <[u8]>::len)
            + m.payload().map_or(0, <[u8]>::len)
            + headers
                .iter()
                .map(|(k, v)| k.len() + v.map_or(0, <[u8]>::len))
                .sum::<usize>();
        self.count(m.offset(), timestamp_of(m), size);
        avro::put_record(
            &mut self.block,
            (m.partition(), m.offset(), timestamp_of(m)),
            m.key(),
            m.payload(),
            headers.into_iter(),
        );
        self.block_full()
    }

    /// Adds a record (offsets come in increasing order); a full block when
    /// this one filled it.
    pub fn append(&mut self, r: &BackedRecord) -> Option<RawBlock> {
        self.count(r.offset, r.timestamp, r.size());
        avro::put_record(
            &mut self.block,
            (r.partition, r.offset, r.timestamp),
            r.key.as_deref(),
            r.value.as_deref(),
            r.headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())),
        );
        self.block_full()
    }

    fn count(&mut self, offset: i64, timestamp: i64, size: usize) {
        let s = &mut self.stats;
        if s.records == 0 {
            s.first_offset = offset;
        }
        s.records += 1;
        s.last_offset = offset;
        if timestamp >= 0 {
            s.min_timestamp = Some(s.min_timestamp.map_or(timestamp, |m| m.min(timestamp)));
            s.max_timestamp = Some(s.max_timestamp.map_or(timestamp, |m| m.max(timestamp)));
        }
        self.size += size;
        self.block_records += 1;
    }

    fn block_full(&mut self) -> Option<RawBlock> {
        if self.block.len() >= BLOCK_BYTES {
            self.take_block()
        } else {
            None
        }
    }

    /// The block being filled, when it holds records: the segment's last.
    pub fn take_block(&mut self) -> Option<RawBlock> {
        if self.block_records == 0 {
            return None;
        }
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK_BYTES + 64 * 1024));
        Some(RawBlock {
            records: std::mem::take(&mut self.block_records),
            data,
            sync: self.sync,
        })
    }

    /// The record bytes appended so far (before compression).
    pub fn size(&self) -> usize {
        self.size
    }

    pub fn records(&self) -> u64 {
        self.stats.records
    }

    pub fn stats(&self) -> &SegmentStats {
        &self.stats
    }
}

/// A whole segment of `records`, compressed on this thread.
pub fn write(records: &[BackedRecord]) -> Result<(Vec<u8>, SegmentStats), String> {
    let mut w = SegmentWriter::new();
    let mut bytes = w.header();
    for r in records {
        if let Some(b) = w.append(r) {
            bytes.extend(b.compress()?);
        }
    }
    if let Some(b) = w.take_block() {
        bytes.extend(b.compress()?);
    }
    Ok((bytes, w.stats))
}

/// A sync marker unlike any other segment's: 16 bytes of SHA-256 over the
/// time, the process and a counter (Avro asks for a random one; it only has
/// to be unlikely to occur in the data).
fn sync_marker() -> [u8; 16] {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut h = Sha256::new();
    h.update(now.to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    let digest = h.finalize();
    let mut sync = [0u8; 16];
    sync.copy_from_slice(&digest[..16]);
    sync
}

/// How a segment's blocks are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Codec {
    Null,
    Zstandard,
}

/// A segment object being read, block by block: only the block being
/// decoded is held decompressed.
pub struct SegmentReader<'a> {
    cursor: Cursor<'a>,
    sync: [u8; 16],
    codec: Codec,
    scratch: Vec<u8>,
}

impl<'a> SegmentReader<'a> {
    /// Checks the header: an Avro object container file with this schema
    /// and a codec sluice reads.
    pub fn open(bytes: &'a [u8]) -> Result<Self, String> {
        let mut cursor = Cursor { rest: bytes };
        if cursor.take(4).ok() != Some(avro::MAGIC.as_slice()) {
            return Err("it is not an Avro object container file (no `Obj` magic)".into());
        }
        let meta = cursor.metadata().map_err(|e| format!("its header: {e}"))?;
        let get = |k: &str| meta.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_slice());
        let codec = match get("avro.codec") {
            None | Some(b"null") => Codec::Null,
            Some(b"zstandard") => Codec::Zstandard,
            Some(other) => {
                return Err(format!(
                    "its codec `{}` is not one sluice reads (zstandard or null)",
                    String::from_utf8_lossy(other)
                ));
            }
        };
        let text = get("avro.schema").ok_or("its header has no schema")?;
        let theirs = std::str::from_utf8(text)
            .ok()
            .and_then(|t| Schema::parse_str(t).ok())
            .ok_or("its schema does not parse")?;
        if theirs.canonical_form() != schema().canonical_form() {
            return Err("its schema is not sluice's segment schema".into());
        }
        let sync: [u8; 16] = cursor
            .take(16)
            .map_err(|e| format!("its header: {e}"))?
            .try_into()
            .expect("16 bytes");
        Ok(SegmentReader {
            cursor,
            sync,
            codec,
            scratch: Vec::new(),
        })
    }

    /// Walks every block's framing (counts, sizes, sync markers) without
    /// decompressing: a file cut short or spliced fails here, before any of
    /// its records is used.
    pub fn check_framing(&self) -> Result<u64, String> {
        let mut c = Cursor {
            rest: self.cursor.rest,
        };
        let mut records = 0u64;
        let mut n = 0;
        while !c.rest.is_empty() {
            let (count, _) = self.frame(&mut c).map_err(|e| format!("block {n}: {e}"))?;
            records = records.saturating_add(count);
            n += 1;
        }
        Ok(records)
    }

    fn frame(&self, c: &mut Cursor<'a>) -> Result<(u64, &'a [u8]), String> {
        let count = c.long()?;
        let count =
            u64::try_from(count).map_err(|_| format!("a negative record count ({count})"))?;
        let data = c.bytes()?;
        if c.take(16)? != self.sync {
            return Err("its sync marker is not the file's".into());
        }
        Ok((count, data))
    }

    /// The records of the next block; `None` after the last.
    pub fn next_block(&mut self) -> Option<Result<Vec<BackedRecord>, String>> {
        if self.cursor.rest.is_empty() {
            return None;
        }
        Some(self.decode_block())
    }

    fn decode_block(&mut self) -> Result<Vec<BackedRecord>, String> {
        let mut c = Cursor {
            rest: self.cursor.rest,
        };
        let (count, data) = self.frame(&mut c)?;
        self.cursor = c;
        let plain = match self.codec {
            Codec::Null => data,
            Codec::Zstandard => {
                avro::decompress_zstd(data, &mut self.scratch)?;
                &self.scratch
            }
        };
        let mut records = Cursor { rest: plain };
        // Each record takes at least 6 bytes: no allocation beyond the data.
        let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0).min(plain.len() / 6));
        for _ in 0..count {
            out.push(records.record()?);
        }
        if !records.rest.is_empty() {
            return Err(format!(
                "a block holds {} byte(s) after its {count} record(s)",
                records.rest.len()
            ));
        }
        Ok(out)
    }
}

/// The records of a segment object, in order.
pub fn read(bytes: &[u8]) -> Result<Vec<BackedRecord>, String> {
    let mut reader = SegmentReader::open(bytes)?;
    let mut out = Vec::new();
    while let Some(block) = reader.next_block() {
        out.extend(block?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::types::Value;

    fn record(offset: i64, key: Option<&[u8]>, value: Option<&[u8]>) -> BackedRecord {
        BackedRecord {
            partition: 2,
            offset,
            timestamp: 1_700_000_000_000 + offset,
            key: key.map(<[u8]>::to_vec),
            value: value.map(<[u8]>::to_vec),
            headers: vec![
                ("trace".into(), Some(vec![0, 255, 7])),
                ("empty".into(), None),
            ],
        }
    }

    /// Enough records of 2 KiB for several blocks.
    fn many(n: i64) -> Vec<BackedRecord> {
        (0..n)
            .map(|i| {
                let mut r = record(i, Some(format!("k{i}").as_bytes()), Some(&[0u8; 2048]));
                r.value.as_mut().unwrap()[..8].copy_from_slice(&i.to_le_bytes());
                if i % 3 == 0 {
                    r.headers.clear();
                }
                r
            })
            .collect()
    }

    fn nullable(b: Option<Vec<u8>>) -> Value {
        match b {
            None => Value::Union(0, Box::new(Value::Null)),
            Some(b) => Value::Union(1, Box::new(Value::Bytes(b))),
        }
    }

    /// A record as apache-avro's `Value`: what other Avro tools see.
    fn as_value(r: &BackedRecord) -> Value {
        let headers = r
            .headers
            .iter()
            .map(|(k, v)| {
                Value::Record(vec![
                    ("key".to_owned(), Value::String(k.clone())),
                    ("value".to_owned(), nullable(v.clone())),
                ])
            })
            .collect();
        Value::Record(vec![
            ("partition".to_owned(), Value::Int(r.partition)),
            ("offset".to_owned(), Value::Long(r.offset)),
            ("timestamp".to_owned(), Value::Long(r.timestamp)),
            ("key".to_owned(), nullable(r.key.clone())),
            ("value".to_owned(), nullable(r.value.clone())),
            ("headers".to_owned(), Value::Array(headers)),
        ])
    }

    #[test]
    fn a_segment_gives_back_every_record_byte_for_byte() {
        let records = vec![
            record(5, Some(b"k1"), Some(b"v1")),
            record(6, None, Some(&[0u8, 1, 2, 255])),
            record(7, Some(b""), None),
        ];
        let (bytes, stats) = write(&records).unwrap();
        assert_eq!(read(&bytes).unwrap(), records);
        assert_eq!(
            stats,
            SegmentStats {
                records: 3,
                first_offset: 5,
                last_offset: 7,
                min_timestamp: Some(1_700_000_000_005),
                max_timestamp: Some(1_700_000_000_007),
            }
        );
        // An Avro object container file, compressed with zstd.
        assert_eq!(&bytes[..4], b"Obj\x01");
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            text.contains("zstandard"),
            "the codec is named in the header"
        );
    }

    #[test]
    fn apache_avro_reads_what_sluice_writes_block_after_block() {
        let records = many(2000);
        let (bytes, stats) = write(&records).unwrap();
        assert_eq!(stats.records, 2000);
        let reader = SegmentReader::open(&bytes).unwrap();
        assert_eq!(reader.check_framing().unwrap(), 2000);
        let mut blocks = 0;
        let mut reader = SegmentReader::open(&bytes).unwrap();
        while let Some(b) = reader.next_block() {
            b.unwrap();
            blocks += 1;
        }
        assert!(
            blocks > 2,
            "4 MiB of records make several blocks ({blocks})"
        );
        let theirs: Vec<Value> = apache_avro::Reader::new(&bytes[..])
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let ours: Vec<Value> = records.iter().map(as_value).collect();
        assert_eq!(theirs, ours);
    }

    #[test]
    fn sluice_reads_what_apache_avros_writer_wrote() {
        // Segments written before the hand encoder, by apache-avro's Writer
        // (zstd level 1, 1 MiB blocks), and files with its defaults.
        let records = many(1000);
        for (codec, block) in [
            (
                apache_avro::Codec::Zstandard(apache_avro::ZstandardSettings::new(1)),
                1024 * 1024,
            ),
            (apache_avro::Codec::Null, 16_000),
        ] {
            let mut w = apache_avro::Writer::builder()
                .schema(schema())
                .writer(Vec::new())
                .codec(codec)
                .block_size(block)
                .build()
                .unwrap();
            for r in &records {
                w.append_value(as_value(r)).unwrap();
            }
            let bytes = w.into_inner().unwrap();
            assert_eq!(read(&bytes).unwrap(), records);
        }
    }

    #[test]
    fn a_damaged_segment_does_not_read() {
        let records: Vec<BackedRecord> = (0..100)
            .map(|i| record(i, Some(b"key"), Some(&[7u8; 300])))
            .collect();
        let (bytes, _) = write(&records).unwrap();
        // The block's closing sync marker: the last 16 bytes.
        let mut damaged = bytes.clone();
        let at = damaged.len() - 5;
        damaged[at] ^= 0xff;
        assert!(read(&damaged).is_err());
        let framing = SegmentReader::open(&damaged).unwrap().check_framing();
        assert!(framing.unwrap_err().contains("sync marker"));
        // Cut short: the framing check fails before any block is decoded.
        let cut = &bytes[..bytes.len() - 40];
        assert!(SegmentReader::open(cut).unwrap().check_framing().is_err());
        // Another schema, another codec, not Avro: refused at the header.
        assert!(SegmentReader::open(b"PAR1").is_err());
        let other = avro::header(r#"{"type": "string"}"#, "zstandard", &[0; 16]);
        let refused = SegmentReader::open(&other).err().unwrap();
        assert!(refused.contains("schema"), "{refused}");
        let other = avro::header(SCHEMA, "snappy", &[0; 16]);
        let refused = SegmentReader::open(&other).err().unwrap();
        assert!(refused.contains("snappy"), "{refused}");
    }
}
