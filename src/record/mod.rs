//! Record batches, magic 2 only: parse and validate without allocating per record, assign
//! offsets in place, build batches.
//!
//! Layout (big-endian): baseOffset i64, batchLength i32, partitionLeaderEpoch i32, magic i8,
//! crc u32, attributes i16, lastOffsetDelta i32, baseTimestamp i64, maxTimestamp i64,
//! producerId i64, producerEpoch i16, baseSequence i32, recordsCount i32, records. The
//! CRC32C covers attributes to the end, so the base offset and the leader epoch can be
//! rewritten without recomputing it.

mod builder;
pub mod compression;
pub mod fuzzing;
pub mod varint;

pub use builder::{control_batch, ControlRecordType, RecordBatchBuilder};
pub use compression::Compression;

use crate::error::{ErrorCode, KafkaError, KafkaResult};
use varint::{read_varint, read_varlong};

/// Bytes before the records of a batch.
pub const RECORD_BATCH_OVERHEAD: usize = 61;
/// The base offset and length fields: bytes not counted in `batchLength`.
pub const LOG_OVERHEAD: usize = 12;
pub const MAGIC_V2: i8 = 2;
pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_TIMESTAMP: i64 = -1;

const PARTITION_LEADER_EPOCH_OFFSET: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;
const MAX_TIMESTAMP_OFFSET: usize = 35;
const PRODUCER_ID_OFFSET: usize = 43;
const PRODUCER_EPOCH_OFFSET: usize = 51;
const BASE_SEQUENCE_OFFSET: usize = 53;
const RECORDS_COUNT_OFFSET: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
}

/// The fixed fields of a batch, read from its first 61 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

/// Why a buffer does not hold a next whole batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Fewer bytes than the header or the declared length: a torn tail.
    Truncated,
    /// The length field cannot be a batch's.
    BadLength(i32),
}

impl BatchHeader {
    /// Reads the header of the batch at the start of `buf`. Needs only the first
    /// 61 bytes; says nothing of the CRC or the records.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, FrameError> {
        if buf.len() < LOG_OVERHEAD {
            return Err(FrameError::Truncated);
        }
        let batch_length = be_i32(buf, 8);
        if (batch_length as i64) < (RECORD_BATCH_OVERHEAD - LOG_OVERHEAD) as i64 {
            return Err(FrameError::BadLength(batch_length));
        }
        if buf.len() < RECORD_BATCH_OVERHEAD {
            return Err(FrameError::Truncated);
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, 0),
            batch_length,
            partition_leader_epoch: be_i32(buf, 12),
            magic: buf[MAGIC_OFFSET] as i8,
            crc: be_i32(buf, CRC_OFFSET) as u32,
            attributes: be_i16(buf, ATTRIBUTES_OFFSET),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_OFFSET),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            records_count: be_i32(buf, 57),
        })
    }

    /// The whole batch's size in bytes, header included.
    pub fn size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    /// Saturates rather than overflows: a header read from damaged bytes (a walk that does
    /// not check CRCs) may carry any base offset, and the placement checks that follow
    /// refuse it. A batch that validates never saturates.
    pub fn last_offset(&self) -> i64 {
        self.base_offset.saturating_add(self.last_offset_delta as i64)
    }

    pub fn next_offset(&self) -> i64 {
        self.last_offset().saturating_add(1)
    }

    pub fn compression(&self) -> Option<Compression> {
        Compression::from_id((self.attributes & COMPRESSION_MASK) as u8)
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }
}

/// Walks the whole batches at the front of a buffer of concatenated batches, reading only
/// headers. Stops at the first incomplete batch; [`BatchFrames::rest`] then tells why.
pub struct BatchFrames<'a> {
    buf: &'a [u8],
    position: usize,
    stop: Option<FrameError>,
}

impl<'a> BatchFrames<'a> {
    pub fn new(buf: &'a [u8]) -> BatchFrames<'a> {
        BatchFrames {
            buf,
            position: 0,
            stop: None,
        }
    }

    /// Where the walk stopped, and why, if it did not reach the end of the buffer cleanly.
    pub fn rest(&self) -> (usize, Option<FrameError>) {
        (self.position, self.stop.clone())
    }
}

impl<'a> Iterator for BatchFrames<'a> {
    /// The batch's position in the buffer, its header and its bytes.
    type Item = (usize, BatchHeader, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.stop.is_some() || self.position == self.buf.len() {
            return None;
        }
        let rest = &self.buf[self.position..];
        match BatchHeader::parse(rest) {
            Err(e) => {
                self.stop = Some(e);
                None
            }
            Ok(header) if header.size() > rest.len() => {
                self.stop = Some(FrameError::Truncated);
                None
            }
            Ok(header) => {
                let position = self.position;
                self.position += header.size();
                Some((position, header, &rest[..header.size()]))
            }
        }
    }
}

/// The CRC32C a batch's bytes should carry.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_OFFSET..])
}

/// Computes the CRC32C of a whole batch and writes it into the header; returns it.
pub fn write_crc(batch: &mut [u8]) -> u32 {
    let crc = compute_crc(batch);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    crc
}

/// Whether a batch's stored CRC matches its bytes. `batch` must be one whole batch.
pub fn crc_matches(batch: &[u8]) -> bool {
    batch.len() >= RECORD_BATCH_OVERHEAD && be_i32(batch, CRC_OFFSET) as u32 == compute_crc(batch)
}

/// Bounds for validation.
#[derive(Clone, Copy, Debug)]
pub struct ValidationLimits {
    /// Largest decompressed records section accepted (a decompression bomb past it is an error).
    pub decompressed_bytes_max: usize,
}

/// Who wrote the batch: clients may not write control batches; the coordinators may.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendOrigin {
    Client,
    Coordinator,
    Replication,
}

/// What validation learned of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSummary {
    pub header: BatchHeader,
    /// The largest record timestamp, computed from the records.
    pub max_timestamp: i64,
    /// The offset delta of the first record with that timestamp.
    pub offset_delta_of_max_timestamp: i32,
    /// Total bytes of the records once decompressed.
    pub uncompressed_bytes: usize,
    /// Some record has a null key (a compacted topic refuses the batch).
    pub has_keyless_record: bool,
}

/// Fully validates one whole magic-2 batch: header fields, CRC32C, record framing,
/// contiguous offset deltas, control batches and producer fields. Compressed records are
/// decompressed into `scratch`, within `limits`; nothing else is allocated.
pub fn validate_batch(
    batch: &[u8],
    origin: AppendOrigin,
    limits: &ValidationLimits,
    scratch: &mut Vec<u8>,
) -> KafkaResult<BatchSummary> {
    validate_batch_visiting(batch, origin, limits, scratch, |_, _| {})
}

/// [`validate_batch`], calling `visit` with each record's offset and the record as the walk
/// validates it: one pass over the records, not two. A batch that turns out invalid has
/// shown `visit` some of its records first, so the caller must drop what it got on `Err`.
fn validate_batch_visiting(
    batch: &[u8],
    origin: AppendOrigin,
    limits: &ValidationLimits,
    scratch: &mut Vec<u8>,
    mut visit: impl FnMut(i64, &Record<'_>),
) -> KafkaResult<BatchSummary> {
    let header = BatchHeader::parse(batch).map_err(|e| corrupt(format!("bad batch frame: {e:?}")))?;
    if header.size() != batch.len() {
        return Err(corrupt(format!(
            "batch length {} does not match its {} bytes",
            header.size(),
            batch.len()
        )));
    }
    if header.magic != MAGIC_V2 {
        return Err(KafkaError::new(
            ErrorCode::InvalidRecord,
            format!(
                "only record batches with magic version 2 are allowed, not {}",
                header.magic
            ),
        ));
    }
    if !crc_matches(batch) {
        return Err(corrupt(format!(
            "batch at offset {} has a bad CRC32C",
            header.base_offset
        )));
    }
    let codec = header
        .compression()
        .ok_or_else(|| corrupt(format!("unknown compression id {}", header.attributes & 7)))?;
    // Clients and coordinators write dense batches. A log's batches (what replication and
    // readers see) may have lost records to compaction: the cleaner keeps the base offset
    // and lastOffsetDelta of a batch, as Kafka's does, and drops records in between.
    let dense = origin != AppendOrigin::Replication;
    let count_ok = if dense {
        header.last_offset_delta as i64 + 1 == header.records_count as i64
    } else {
        header.last_offset_delta >= 0 && header.records_count as i64 <= header.last_offset_delta as i64 + 1
    };
    if header
        .base_offset
        .checked_add(header.last_offset_delta as i64 + 1)
        .is_none()
    {
        return Err(corrupt(format!(
            "base offset {} and lastOffsetDelta {} overflow",
            header.base_offset, header.last_offset_delta
        )));
    }
    if header.records_count < 0 || !count_ok {
        return Err(invalid(format!(
            "record count {} does not match lastOffsetDelta {}",
            header.records_count, header.last_offset_delta
        )));
    }
    if origin == AppendOrigin::Client && header.records_count == 0 {
        return Err(invalid("a batch from a client must hold records".into()));
    }
    if header.is_control() {
        if origin == AppendOrigin::Client {
            return Err(invalid("clients are not allowed to write control records".into()));
        }
        if header.records_count != 1 {
            return Err(invalid("a control batch holds exactly one record".into()));
        }
    }
    if header.is_transactional() && header.producer_id < 0 {
        return Err(invalid("a transactional batch needs a producer id".into()));
    }
    if header.producer_id >= 0 && !header.is_control() && header.base_sequence < 0 {
        return Err(invalid(format!(
            "invalid sequence number {} for producer {}",
            header.base_sequence, header.producer_id
        )));
    }
    let raw = &batch[RECORD_BATCH_OVERHEAD..];
    let records: &[u8] = if codec == Compression::None {
        raw
    } else {
        compression::decompress(codec, raw, limits.decompressed_bytes_max, scratch).map_err(|e| match e {
            compression::DecompressError::TooLarge => corrupt(format!(
                "records decompress to over {} bytes",
                limits.decompressed_bytes_max
            )),
            compression::DecompressError::Corrupt(why) => {
                corrupt(format!("{} records do not decompress: {why}", codec.name()))
            }
        })?;
        scratch
    };
    let (max_timestamp, offset_delta_of_max_timestamp, has_keyless_record) =
        validate_records(&header, records, dense, &mut visit)?;
    Ok(BatchSummary {
        header,
        max_timestamp,
        offset_delta_of_max_timestamp,
        uncompressed_bytes: records.len(),
        has_keyless_record,
    })
}

/// Walks the records, checking framing and offset deltas; returns the max timestamp, the
/// offset delta of the first record carrying it, and whether a record has no key.
///
/// Dense batches number their records 0, 1, 2...; compacted ones (`dense` false) need only
/// increasing deltas within lastOffsetDelta.
fn validate_records(
    header: &BatchHeader,
    records: &[u8],
    dense: bool,
    visit: &mut impl FnMut(i64, &Record<'_>),
) -> KafkaResult<(i64, i32, bool)> {
    let mut max = (NO_TIMESTAMP, 0);
    let mut keyless = false;
    let mut iter = Records::new(records, header.base_timestamp);
    let mut expected_delta = 0i32;
    let mut previous_delta = -1i32;
    while let Some(record) = iter.next_record()? {
        let in_order = if dense {
            record.offset_delta == expected_delta
        } else {
            record.offset_delta > previous_delta && record.offset_delta <= header.last_offset_delta
        };
        if !in_order {
            return Err(invalid(format!(
                "inner offsets are not sequential: record {expected_delta} has offset delta {}",
                record.offset_delta
            )));
        }
        previous_delta = record.offset_delta;
        keyless |= record.key.is_none();
        if header.is_control() {
            let key = record
                .key
                .ok_or_else(|| invalid("a control record needs a key".into()))?;
            if key.len() < 4 {
                return Err(invalid("a control record key is version and type".into()));
            }
        }
        if record.timestamp > max.0 {
            max = (record.timestamp, record.offset_delta);
        }
        visit(header.base_offset + record.offset_delta as i64, &record);
        expected_delta += 1;
    }
    if expected_delta != header.records_count {
        return Err(invalid(format!(
            "batch declares {} records and holds {expected_delta}",
            header.records_count
        )));
    }
    Ok((max.0, max.1, keyless))
}

/// Calls `f` with the offset and the record, for every record of one whole batch, after
/// validating it. Compressed records are decompressed into `scratch`.
pub fn for_each_record<'s>(
    batch: &'s [u8],
    limits: &ValidationLimits,
    scratch: &'s mut Vec<u8>,
    mut f: impl FnMut(i64, &Record<'_>),
) -> KafkaResult<BatchHeader> {
    let summary = validate_batch(batch, AppendOrigin::Replication, limits, scratch)?;
    let header = summary.header;
    let records = if header.compression() == Some(Compression::None) {
        &batch[RECORD_BATCH_OVERHEAD..]
    } else {
        &scratch[..]
    };
    let mut iter = Records::new(records, header.base_timestamp);
    while let Some(record) = iter.next_record()? {
        f(header.base_offset + record.offset_delta as i64, &record);
    }
    Ok(header)
}

/// Like [`for_each_record`], in one pass instead of two: `f` sees each record as it is
/// validated, so when the batch turns out invalid `f` has seen some of its records, and the
/// caller must drop whatever it made of them on `Err` (the consumer does: it fails the
/// whole fetch). For readers that only collect records; anything that acts on a record at
/// once uses `for_each_record`.
pub fn for_each_record_validating<'s>(
    batch: &'s [u8],
    limits: &ValidationLimits,
    scratch: &'s mut Vec<u8>,
    f: impl FnMut(i64, &Record<'_>),
) -> KafkaResult<BatchHeader> {
    Ok(validate_batch_visiting(batch, AppendOrigin::Replication, limits, scratch, f)?.header)
}

/// One record, borrowed from the batch's (decompressed) records section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    pub timestamp: i64,
    pub offset_delta: i32,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers_count: i32,
    /// The encoded headers, in order; duplicate keys are kept as they came.
    pub headers: &'a [u8],
}

impl<'a> Record<'a> {
    /// The headers in order, as (key, value).
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        let mut rest = self.headers;
        (0..self.headers_count).map_while(move |_| {
            let key = read_bytes(&mut rest).ok()??;
            let value = read_bytes(&mut rest).ok()?;
            Some((key, value))
        })
    }
}

/// Iterates the records of a records section without allocating.
pub struct Records<'a> {
    rest: &'a [u8],
    base_timestamp: i64,
}

impl<'a> Records<'a> {
    pub fn new(records: &'a [u8], base_timestamp: i64) -> Records<'a> {
        Records {
            rest: records,
            base_timestamp,
        }
    }

    /// The next record, `None` at the end, or the framing error.
    pub fn next_record(&mut self) -> KafkaResult<Option<Record<'a>>> {
        Ok(self.next_with_bytes()?.map(|(_, record)| record))
    }

    /// The next record with its encoded bytes (length prefix included), which a batch of
    /// the same base offset and base timestamp can carry unchanged.
    pub fn next_with_bytes(&mut self) -> KafkaResult<Option<(&'a [u8], Record<'a>)>> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let whole = self.rest;
        let (length, n) = read_varint(self.rest).ok_or_else(|| corrupt("bad record length varint".into()))?;
        let length = usize::try_from(length).map_err(|_| corrupt(format!("negative record length {length}")))?;
        let body = self
            .rest
            .get(n..n + length)
            .ok_or_else(|| corrupt("record overruns its batch".into()))?;
        self.rest = &self.rest[n + length..];
        let record = parse_record(body, self.base_timestamp)?;
        Ok(Some((&whole[..n + length], record)))
    }
}

fn parse_record(body: &[u8], base_timestamp: i64) -> KafkaResult<Record<'_>> {
    let mut rest = body;
    let _attributes = *rest.first().ok_or_else(|| corrupt("empty record".into()))?;
    rest = &rest[1..];
    let timestamp_delta = take_varlong(&mut rest)?;
    let offset_delta = take_varint(&mut rest)?;
    let key = read_bytes(&mut rest)?;
    let value = read_bytes(&mut rest)?;
    let headers_count = take_varint(&mut rest)?;
    if headers_count < 0 {
        return Err(corrupt(format!("negative header count {headers_count}")));
    }
    let headers = rest;
    for _ in 0..headers_count {
        let key = read_bytes(&mut rest)?.ok_or_else(|| corrupt("a header key may not be null".into()))?;
        std::str::from_utf8(key).map_err(|_| corrupt("a header key must be UTF-8".into()))?;
        read_bytes(&mut rest)?;
    }
    if !rest.is_empty() {
        return Err(corrupt(format!("{} bytes left over after a record", rest.len())));
    }
    Ok(Record {
        timestamp: base_timestamp.wrapping_add(timestamp_delta),
        offset_delta,
        key,
        value,
        headers_count,
        headers,
    })
}

fn take_varint(rest: &mut &[u8]) -> KafkaResult<i32> {
    let (v, n) = read_varint(rest).ok_or_else(|| corrupt("bad varint in record".into()))?;
    *rest = &rest[n..];
    Ok(v)
}

fn take_varlong(rest: &mut &[u8]) -> KafkaResult<i64> {
    let (v, n) = read_varlong(rest).ok_or_else(|| corrupt("bad varlong in record".into()))?;
    *rest = &rest[n..];
    Ok(v)
}

/// A varint length then that many bytes; -1 is null.
fn read_bytes<'a>(rest: &mut &'a [u8]) -> KafkaResult<Option<&'a [u8]>> {
    let len = take_varint(rest)?;
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| corrupt(format!("bad field length {len}")))?;
    let bytes = rest
        .get(..len)
        .ok_or_else(|| corrupt("field overruns its record".into()))?;
    *rest = &rest[len..];
    Ok(Some(bytes))
}

/// A batch with `header`'s fields (base offset, lastOffsetDelta, timestamps, producer) that
/// holds `records`, `count` encoded records from the original, uncompressed: what the log
/// cleaner writes for a batch that lost records. The CRC is computed anew.
pub fn batch_with_records(header: &[u8], records: &[u8], count: i32) -> Vec<u8> {
    assert!(header.len() >= RECORD_BATCH_OVERHEAD);
    let mut batch = Vec::with_capacity(RECORD_BATCH_OVERHEAD + records.len());
    batch.extend_from_slice(&header[..RECORD_BATCH_OVERHEAD]);
    batch.extend_from_slice(records);
    let length = (batch.len() - LOG_OVERHEAD) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    // Uncompressed, whatever the original was.
    let attributes = be_i16(&batch, ATTRIBUTES_OFFSET) & !COMPRESSION_MASK;
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[RECORDS_COUNT_OFFSET..RECORDS_COUNT_OFFSET + 4].copy_from_slice(&count.to_be_bytes());
    write_crc(&mut batch);
    batch
}

/// Rewrites the base offset. Outside the CRC, so the CRC stays valid.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Stamps the partition leader epoch. Outside the CRC, so the CRC stays valid.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[PARTITION_LEADER_EPOCH_OFFSET..PARTITION_LEADER_EPOCH_OFFSET + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Sets the timestamp type and max timestamp, recomputing the CRC only if they change.
pub fn set_max_timestamp(batch: &mut [u8], timestamp_type: TimestampType, max_timestamp: i64) {
    let attributes = be_i16(batch, ATTRIBUTES_OFFSET);
    let new_attributes = match timestamp_type {
        TimestampType::CreateTime => attributes & !TIMESTAMP_TYPE_BIT,
        TimestampType::LogAppendTime => attributes | TIMESTAMP_TYPE_BIT,
    };
    if new_attributes == attributes && be_i64(batch, MAX_TIMESTAMP_OFFSET) == max_timestamp {
        return;
    }
    batch[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2].copy_from_slice(&new_attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_OFFSET..MAX_TIMESTAMP_OFFSET + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    write_crc(batch);
}

/// Stamps an idempotent producer's id, epoch and base sequence on a whole batch, and its
/// CRC (the fields lie inside it). The client does this when it first sends a batch.
pub fn set_producer(batch: &mut [u8], producer_id: i64, producer_epoch: i16, base_sequence: i32) {
    batch[PRODUCER_ID_OFFSET..PRODUCER_ID_OFFSET + 8].copy_from_slice(&producer_id.to_be_bytes());
    batch[PRODUCER_EPOCH_OFFSET..PRODUCER_EPOCH_OFFSET + 2].copy_from_slice(&producer_epoch.to_be_bytes());
    batch[BASE_SEQUENCE_OFFSET..BASE_SEQUENCE_OFFSET + 4].copy_from_slice(&base_sequence.to_be_bytes());
    write_crc(batch);
}

fn corrupt(message: String) -> KafkaError {
    KafkaError::new(ErrorCode::CorruptMessage, message)
}

fn invalid(message: String) -> KafkaError {
    KafkaError::new(ErrorCode::InvalidRecord, message)
}

fn be_i16(buf: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(buf[at..at + 2].try_into().expect("2 bytes"))
}

fn be_i32(buf: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes"))
}

fn be_i64(buf: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(buf[at..at + 8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests;
