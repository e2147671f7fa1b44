//! The Avro binary encoding of segment objects, written and read directly
//! (no `apache_avro::Value` per record): an object container file's header
//! and blocks, and [`super::segment::SCHEMA`]'s records.
//!
//! apache-avro's `Writer` builds a `Value` tree per record and compresses
//! each block on the thread that appends: a backup spent most of its time
//! there. Encoding the fixed schema by hand is a few copies per record, and
//! blocks come out as separate pieces that worker threads compress while
//! the next ones are read. The bytes are the same Avro (the tests read them
//! with apache-avro's `Reader`, and this reader reads what its `Writer`
//! wrote).

use std::io::Read;

/// The magic bytes that open an object container file.
pub const MAGIC: &[u8; 4] = b"Obj\x01";

/// The largest decompressed block a reader accepts: sluice writes blocks of
/// about 1 MiB; this bounds what a hostile or damaged object can make a
/// restore allocate.
pub const MAX_BLOCK_BYTES: usize = 64 * 1024 * 1024;

/// Appends `n` as an Avro `long` (zig-zag, then variable-length).
pub fn put_long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Appends Avro `bytes` (or `string`): the length, then the bytes.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_long(out, i64::try_from(b.len()).unwrap_or(i64::MAX));
    out.extend_from_slice(b);
}

/// Appends a `["null", "bytes"]` union.
pub fn put_nullable(out: &mut Vec<u8>, b: Option<&[u8]>) {
    match b {
        None => put_long(out, 0),
        Some(b) => {
            put_long(out, 1);
            put_bytes(out, b);
        }
    }
}

/// Appends one `KafkaRecord`, fields in the schema's order.
pub fn put_record<'a>(
    out: &mut Vec<u8>,
    (partition, offset, timestamp): (i32, i64, i64),
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: impl ExactSizeIterator<Item = (&'a str, Option<&'a [u8]>)>,
) {
    put_long(out, i64::from(partition));
    put_long(out, offset);
    put_long(out, timestamp);
    put_nullable(out, key);
    put_nullable(out, value);
    let n = headers.len();
    if n > 0 {
        put_long(out, i64::try_from(n).unwrap_or(i64::MAX));
        for (k, v) in headers {
            put_bytes(out, k.as_bytes());
            put_nullable(out, v);
        }
    }
    put_long(out, 0);
}

/// An object container file's header: magic, metadata (schema and codec),
/// sync marker.
pub fn header(schema: &str, codec: &str, sync: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(schema.len() + 64);
    out.extend_from_slice(MAGIC);
    put_long(&mut out, 2);
    put_bytes(&mut out, b"avro.schema");
    put_bytes(&mut out, schema.as_bytes());
    put_bytes(&mut out, b"avro.codec");
    put_bytes(&mut out, codec.as_bytes());
    put_long(&mut out, 0);
    out.extend_from_slice(sync);
    out
}

/// One block as it is stored: record count, size, the (compressed) data
/// and the sync marker.
pub fn block(records: u64, data: &[u8], sync: &[u8; 16]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 36);
    put_long(&mut out, i64::try_from(records).unwrap_or(i64::MAX));
    put_bytes(&mut out, data);
    out.extend_from_slice(sync);
    out
}

/// Reads Avro values off the front of a byte slice.
pub struct Cursor<'a> {
    pub rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn long(&mut self) -> Result<i64, String> {
        let mut z: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self.rest.split_first().ok_or("it ends inside a number")?;
            self.rest = rest;
            z |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
            }
        }
        Err("a number is longer than 10 bytes".into())
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.rest.len() {
            return Err(format!(
                "it ends early: {n} byte(s) expected, {} left",
                self.rest.len()
            ));
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.long()?;
        let n = usize::try_from(n).map_err(|_| format!("a negative length ({n})"))?;
        self.take(n)
    }

    pub fn nullable(&mut self) -> Result<Option<&'a [u8]>, String> {
        match self.long()? {
            0 => Ok(None),
            1 => self.bytes().map(Some),
            i => Err(format!("union branch {i} of [\"null\", \"bytes\"]")),
        }
    }

    /// One `KafkaRecord`.
    pub fn record(&mut self) -> Result<super::segment::BackedRecord, String> {
        let partition = self.long()?;
        let partition =
            i32::try_from(partition).map_err(|_| format!("partition {partition} is not an int"))?;
        let offset = self.long()?;
        let timestamp = self.long()?;
        let key = self.nullable()?.map(<[u8]>::to_vec);
        let value = self.nullable()?.map(<[u8]>::to_vec);
        let mut headers = Vec::new();
        loop {
            let mut count = self.long()?;
            if count == 0 {
                break;
            }
            if count < 0 {
                // A negative count is followed by the block's size in bytes.
                count = count
                    .checked_neg()
                    .ok_or("a header block count overflows")?;
                self.long()?;
            }
            for _ in 0..count {
                let k = std::str::from_utf8(self.bytes()?)
                    .map_err(|e| format!("a header key is not UTF-8: {e}"))?
                    .to_owned();
                let v = self.nullable()?.map(<[u8]>::to_vec);
                headers.push((k, v));
            }
        }
        Ok(super::segment::BackedRecord {
            partition,
            offset,
            timestamp,
            key,
            value,
            headers,
        })
    }

    /// The header's metadata map, as (key, value) pairs.
    pub fn metadata(&mut self) -> Result<Vec<(String, Vec<u8>)>, String> {
        let mut out = Vec::new();
        loop {
            let mut count = self.long()?;
            if count == 0 {
                return Ok(out);
            }
            if count < 0 {
                count = count.checked_neg().ok_or("a metadata count overflows")?;
                self.long()?;
            }
            for _ in 0..count {
                let k = String::from_utf8(self.bytes()?.to_vec())
                    .map_err(|e| format!("a metadata key is not UTF-8: {e}"))?;
                out.push((k, self.bytes()?.to_vec()));
            }
        }
    }
}

/// A block's data decompressed into `out` (cleared first), at most
/// [`MAX_BLOCK_BYTES`].
pub fn decompress_zstd(data: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
    out.clear();
    let decoder =
        zstd::stream::read::Decoder::with_buffer(data).map_err(|e| format!("zstd: {e}"))?;
    decoder
        .take(MAX_BLOCK_BYTES as u64 + 1)
        .read_to_end(out)
        .map_err(|e| format!("zstd: {e}"))?;
    if out.len() > MAX_BLOCK_BYTES {
        return Err(format!(
            "a block decompresses to more than {MAX_BLOCK_BYTES} bytes"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longs_round_trip_at_their_edges() {
        for n in [0, 1, -1, 63, -64, 64, 300, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            put_long(&mut out, n);
            let mut c = Cursor { rest: &out };
            assert_eq!(c.long().unwrap(), n, "{n}");
            assert!(c.rest.is_empty());
        }
        // Avro's own examples (specification, "Binary encoding").
        let mut out = Vec::new();
        put_long(&mut out, -64);
        put_long(&mut out, 64);
        assert_eq!(out, [0x7f, 0x80, 0x01]);
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut c = Cursor { rest: &[0x80] };
        assert!(c.long().is_err());
        let mut c = Cursor {
            rest: &[0x08, b'a'],
        };
        assert!(c.bytes().is_err());
        let mut c = Cursor { rest: &[0x01] };
        assert!(c.bytes().is_err(), "a negative length");
        let mut c = Cursor { rest: &[0x04] };
        assert!(c.nullable().is_err(), "union branch 2");
    }
}
