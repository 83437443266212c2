//! Builds magic-2 batches: for the client, the coordinators (control batches) and tests.

use bytes::BytesMut;

use super::compression::{compress, Compression};
use super::varint::{varint_size, varlong_size, write_varint, write_varlong};
use super::{write_crc, MAGIC_V2, NO_PRODUCER_ID, RECORD_BATCH_OVERHEAD};

/// The control record types Kafka defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlRecordType {
    Abort = 0,
    Commit = 1,
}

pub struct RecordBatchBuilder {
    compression: Compression,
    base_timestamp: Option<i64>,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    transactional: bool,
    control: bool,
    count: i32,
    /// The batch header's room (`RECORD_BATCH_OVERHEAD` bytes, filled in by `build`), then
    /// the records: an uncompressed batch is built in place, without a copy.
    records: Vec<u8>,
}

impl RecordBatchBuilder {
    pub fn new(compression: Compression) -> RecordBatchBuilder {
        RecordBatchBuilder::with_capacity(compression, 0)
    }

    /// A builder with room for `records_bytes` of records before it grows.
    pub fn with_capacity(compression: Compression, records_bytes: usize) -> RecordBatchBuilder {
        RecordBatchBuilder::with_buffer(compression, Vec::new(), records_bytes)
    }

    /// A builder that writes into `buffer` (its contents are discarded), grown if needed to
    /// hold `records_bytes` of records: for a producer recycling its batches' memory.
    pub fn with_buffer(compression: Compression, mut records: Vec<u8>, records_bytes: usize) -> RecordBatchBuilder {
        records.clear();
        records.reserve(RECORD_BATCH_OVERHEAD + records_bytes);
        records.resize(RECORD_BATCH_OVERHEAD, 0);
        RecordBatchBuilder {
            compression,
            base_timestamp: None,
            max_timestamp: -1,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: -1,
            base_sequence: -1,
            transactional: false,
            control: false,
            count: 0,
            records,
        }
    }

    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> RecordBatchBuilder {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    pub fn transactional(mut self, transactional: bool) -> RecordBatchBuilder {
        self.transactional = transactional;
        self
    }

    pub fn len(&self) -> i32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Bytes of the records so far, before compression.
    pub fn records_bytes(&self) -> usize {
        self.records.len() - RECORD_BATCH_OVERHEAD
    }

    pub fn append(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) {
        let base = *self.base_timestamp.get_or_insert(timestamp);
        let timestamp_delta = timestamp - base;
        let offset_delta = self.count;
        let mut body_len = 1 + varlong_size(timestamp_delta) + varint_size(offset_delta);
        body_len += bytes_size(key) + bytes_size(value) + varint_size(headers.len() as i32);
        for (k, v) in headers {
            body_len += bytes_size(Some(k.as_bytes())) + bytes_size(*v);
        }
        let out = &mut self.records;
        write_varint(out, body_len as i32);
        let start = out.len();
        out.push(0);
        write_varlong(out, timestamp_delta);
        write_varint(out, offset_delta);
        write_bytes(out, key);
        write_bytes(out, value);
        write_varint(out, headers.len() as i32);
        for (k, v) in headers {
            write_bytes(out, Some(k.as_bytes()));
            write_bytes(out, *v);
        }
        assert_eq!(out.len() - start, body_len);
        self.count += 1;
        self.max_timestamp = self.max_timestamp.max(timestamp);
    }

    /// The batch with base offset 0 and leader epoch -1; the log assigns both.
    pub fn build(self) -> BytesMut {
        self.build_releasing_buffer().0
    }

    /// `build`, and for a compressed batch also the buffer the records were gathered in,
    /// which the batch no longer needs: a producer recycles it at once.
    pub fn build_releasing_buffer(self) -> (BytesMut, Option<Vec<u8>>) {
        assert!(self.count > 0, "a batch holds at least one record");
        let (mut batch, released) = if self.compression == Compression::None {
            (self.records, None)
        } else {
            let compressed = compress(self.compression, &self.records[RECORD_BATCH_OVERHEAD..]);
            let mut batch = Vec::with_capacity(RECORD_BATCH_OVERHEAD + compressed.len());
            batch.resize(RECORD_BATCH_OVERHEAD, 0);
            batch.extend_from_slice(&compressed);
            (batch, Some(self.records))
        };
        let mut attributes = self.compression as i16;
        if self.transactional {
            attributes |= 0x10;
        }
        if self.control {
            attributes |= 0x20;
        }
        let records_len = batch.len() - RECORD_BATCH_OVERHEAD;
        let mut out = Vec::with_capacity(RECORD_BATCH_OVERHEAD);
        out.extend_from_slice(&0i64.to_be_bytes());
        out.extend_from_slice(&((RECORD_BATCH_OVERHEAD - 12 + records_len) as i32).to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes());
        out.extend_from_slice(&[MAGIC_V2 as u8]);
        out.extend_from_slice(&0u32.to_be_bytes());
        out.extend_from_slice(&attributes.to_be_bytes());
        out.extend_from_slice(&(self.count - 1).to_be_bytes());
        out.extend_from_slice(&self.base_timestamp.unwrap_or(-1).to_be_bytes());
        out.extend_from_slice(&self.max_timestamp.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&self.count.to_be_bytes());
        assert_eq!(out.len(), RECORD_BATCH_OVERHEAD);
        batch[..RECORD_BATCH_OVERHEAD].copy_from_slice(&out);
        let mut batch = BytesMut::from(bytes::Bytes::from(batch));
        write_crc(&mut batch);
        (batch, released)
    }
}

/// A transaction marker: a control batch of one record (key: version, type; value:
/// version, coordinator epoch).
pub fn control_batch(
    kind: ControlRecordType,
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    timestamp: i64,
) -> BytesMut {
    let mut builder = RecordBatchBuilder::new(Compression::None)
        .producer(producer_id, producer_epoch, -1)
        .transactional(true);
    builder.control = true;
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&(kind as i16).to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    builder.append(timestamp, Some(&key), Some(&value), &[]);
    builder.build()
}

fn bytes_size(bytes: Option<&[u8]>) -> usize {
    match bytes {
        None => varint_size(-1),
        Some(b) => varint_size(b.len() as i32) + b.len(),
    }
}

fn write_bytes(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => write_varint(out, -1),
        Some(b) => {
            write_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}
