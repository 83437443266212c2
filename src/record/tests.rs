use super::*;

const LIMITS: ValidationLimits = ValidationLimits {
    decompressed_bytes_max: 1 << 20,
};

fn batch(codec: Compression, n: i32) -> Vec<u8> {
    let mut b = RecordBatchBuilder::new(codec);
    for i in 0..n {
        let value = format!("value-{i}");
        b.append(
            1_000 + i as i64,
            Some(b"key"),
            Some(value.as_bytes()),
            &[("h", Some(b"1")), ("h", Some(b"2"))],
        );
    }
    b.build().to_vec()
}

fn check(bytes: &[u8], origin: AppendOrigin, expected: Result<(), ErrorCode>) {
    let mut scratch = Vec::new();
    let result = validate_batch(bytes, origin, &LIMITS, &mut scratch);
    assert_eq!(result.as_ref().map(|_| ()).map_err(|e| e.code), expected, "{result:?}");
}

/// Rewrites a header field and fixes the CRC, so that validation reaches the field.
fn with_field(mut bytes: Vec<u8>, at: usize, value: &[u8]) -> Vec<u8> {
    bytes[at..at + value.len()].copy_from_slice(value);
    write_crc(&mut bytes);
    bytes
}

#[test]
fn valid_batches_of_every_codec() {
    for codec in Compression::ALL {
        let bytes = batch(codec, 10);
        let mut scratch = Vec::new();
        let summary = validate_batch(&bytes, AppendOrigin::Client, &LIMITS, &mut scratch).unwrap();
        assert_eq!(summary.header.records_count, 10, "{}", codec.name());
        assert_eq!(summary.header.compression(), Some(codec));
        assert_eq!(summary.max_timestamp, 1_009);
        assert_eq!(summary.offset_delta_of_max_timestamp, 9);
    }
}

#[test]
fn invalid_batches_get_kafka_codes() {
    let good = batch(Compression::None, 3);
    let mut bad_crc = good.clone();
    *bad_crc.last_mut().unwrap() ^= 1;
    let mut magic1 = good.clone();
    magic1[16] = 1;
    let cases: Vec<(&str, Vec<u8>, AppendOrigin, Result<(), ErrorCode>)> = vec![
        ("good", good.clone(), AppendOrigin::Client, Ok(())),
        ("bad crc", bad_crc, AppendOrigin::Client, Err(ErrorCode::CorruptMessage)),
        ("magic 1", magic1, AppendOrigin::Client, Err(ErrorCode::InvalidRecord)),
        (
            "short",
            good[..40].to_vec(),
            AppendOrigin::Client,
            Err(ErrorCode::CorruptMessage),
        ),
        (
            "truncated",
            good[..good.len() - 1].to_vec(),
            AppendOrigin::Client,
            Err(ErrorCode::CorruptMessage),
        ),
        (
            "count mismatch",
            with_field(good.clone(), 57, &4i32.to_be_bytes()),
            AppendOrigin::Client,
            Err(ErrorCode::InvalidRecord),
        ),
        (
            "delta mismatch",
            with_field(good.clone(), 23, &5i32.to_be_bytes()),
            AppendOrigin::Client,
            Err(ErrorCode::InvalidRecord),
        ),
        (
            "codec 7",
            with_field(good.clone(), 21, &7i16.to_be_bytes()),
            AppendOrigin::Client,
            Err(ErrorCode::CorruptMessage),
        ),
        (
            "gzip flag on plain records",
            with_field(good.clone(), 21, &1i16.to_be_bytes()),
            AppendOrigin::Client,
            Err(ErrorCode::CorruptMessage),
        ),
        (
            "transactional without producer",
            with_field(good.clone(), 21, &0x10i16.to_be_bytes()),
            AppendOrigin::Client,
            Err(ErrorCode::InvalidRecord),
        ),
        (
            "producer without sequence",
            with_field(good.clone(), 43, &7i64.to_be_bytes()),
            AppendOrigin::Client,
            Err(ErrorCode::InvalidRecord),
        ),
        (
            "control from client",
            control_batch(ControlRecordType::Commit, 1, 0, 0, 5).to_vec(),
            AppendOrigin::Client,
            Err(ErrorCode::InvalidRecord),
        ),
        (
            "offsets past i64::MAX",
            with_field(good.clone(), 0, &(i64::MAX - 1).to_be_bytes()),
            AppendOrigin::Replication,
            Err(ErrorCode::CorruptMessage),
        ),
        (
            "offsets up to i64::MAX - 1",
            with_field(good.clone(), 0, &(i64::MAX - 3).to_be_bytes()),
            AppendOrigin::Replication,
            Ok(()),
        ),
        (
            "control from coordinator",
            control_batch(ControlRecordType::Abort, 1, 0, 0, 5).to_vec(),
            AppendOrigin::Coordinator,
            Ok(()),
        ),
    ];
    for (name, bytes, origin, expected) in cases {
        let mut scratch = Vec::new();
        let result = validate_batch(&bytes, origin, &LIMITS, &mut scratch);
        assert_eq!(
            result.as_ref().map(|_| ()).map_err(|e| e.code),
            expected,
            "{name}: {result:?}"
        );
    }
}

#[test]
fn non_contiguous_offset_deltas_are_invalid() {
    // Two records whose second offset delta is 2.
    let mut b = RecordBatchBuilder::new(Compression::None);
    b.append(1, None, Some(b"a"), &[]);
    b.append(1, None, Some(b"b"), &[]);
    let mut bytes = b.build().to_vec();
    // Record 2 starts after record 1: length varint, attributes, ts delta, then offset delta.
    let first_len = bytes[RECORD_BATCH_OVERHEAD] as usize / 2;
    let second = RECORD_BATCH_OVERHEAD + 1 + first_len;
    assert_eq!(bytes[second + 3], 2, "offset delta 1 zig-zags to 2");
    bytes[second + 3] = 4;
    write_crc(&mut bytes);
    check(&bytes, AppendOrigin::Client, Err(ErrorCode::InvalidRecord));
}

#[test]
fn decompression_bomb_is_corrupt_message() {
    let mut b = RecordBatchBuilder::new(Compression::Zstd);
    let zeros = vec![0u8; 512 * 1024];
    for _ in 0..4 {
        b.append(1, None, Some(&zeros), &[]);
    }
    check(&b.build(), AppendOrigin::Client, Err(ErrorCode::CorruptMessage));
}

#[test]
fn a_builder_counts_its_records_bytes_and_builds_the_same_batch_whatever_its_capacity() {
    // (codec, records, capacity)
    let cases = [
        (Compression::None, 1, 0),
        (Compression::None, 50, 0),
        (Compression::None, 50, 16_384),
        (Compression::None, 3, 10),
        (Compression::Gzip, 20, 0),
        (Compression::Zstd, 20, 1 << 20),
    ];
    for (codec, n, capacity) in cases {
        let mut b = RecordBatchBuilder::with_capacity(codec, capacity);
        assert_eq!(b.records_bytes(), 0);
        let mut records_bytes = 0;
        for i in 0..n {
            let value = format!("value-{i}");
            let before = b.records_bytes();
            b.append(1_000 + i as i64, Some(b"key"), Some(value.as_bytes()), &[]);
            records_bytes += b.records_bytes() - before;
        }
        let what = format!("{} x {n}, capacity {capacity}", codec.name());
        assert_eq!(b.records_bytes(), records_bytes, "{what}");
        let built = b.build();
        let mut reference = RecordBatchBuilder::new(codec);
        for i in 0..n {
            let value = format!("value-{i}");
            reference.append(1_000 + i as i64, Some(b"key"), Some(value.as_bytes()), &[]);
        }
        assert_eq!(built, reference.build(), "{what}");
        let header = BatchHeader::parse(&built).unwrap();
        assert_eq!(header.records_count, n, "{what}");
        assert!(crc_matches(&built), "{what}");
        if codec == Compression::None {
            // Uncompressed, the batch is the header and the records as appended.
            assert_eq!(built.len(), RECORD_BATCH_OVERHEAD + records_bytes, "{what}");
        }
        check(&built, AppendOrigin::Client, Ok(()));
    }
}

#[test]
fn duplicate_header_keys_are_kept_in_order() {
    let bytes = batch(Compression::Lz4, 1);
    let header = BatchHeader::parse(&bytes).unwrap();
    let mut scratch = Vec::new();
    compression::decompress(Compression::Lz4, &bytes[RECORD_BATCH_OVERHEAD..], 1 << 20, &mut scratch).unwrap();
    let mut records = Records::new(&scratch, header.base_timestamp);
    let record = records.next_record().unwrap().unwrap();
    let headers: Vec<_> = record.headers().collect();
    assert_eq!(
        headers,
        vec![(&b"h"[..], Some(&b"1"[..])), (&b"h"[..], Some(&b"2"[..]))]
    );
    assert_eq!(record.key, Some(&b"key"[..]));
    assert_eq!(record.value, Some(&b"value-0"[..]));
    assert!(records.next_record().unwrap().is_none());
}

#[test]
fn offsets_and_epoch_are_stamped_without_touching_the_crc() {
    let mut bytes = batch(Compression::Gzip, 4);
    let crc_before = BatchHeader::parse(&bytes).unwrap().crc;
    set_base_offset(&mut bytes, 1234);
    set_partition_leader_epoch(&mut bytes, 7);
    let header = BatchHeader::parse(&bytes).unwrap();
    assert_eq!(
        (header.base_offset, header.last_offset(), header.partition_leader_epoch),
        (1234, 1237, 7)
    );
    assert_eq!(header.crc, crc_before);
    assert!(crc_matches(&bytes));
    set_max_timestamp(&mut bytes, TimestampType::LogAppendTime, 99);
    let header = BatchHeader::parse(&bytes).unwrap();
    assert_eq!(header.timestamp_type(), TimestampType::LogAppendTime);
    assert_eq!(header.max_timestamp, 99);
    assert_ne!(header.crc, crc_before);
    assert!(crc_matches(&bytes));
}

#[test]
fn frames_stop_at_a_torn_tail() {
    let one = batch(Compression::None, 2);
    let mut buf = one.clone();
    buf.extend_from_slice(&one);
    buf.extend_from_slice(&one[..30]);
    let mut frames = BatchFrames::new(&buf);
    assert_eq!(frames.by_ref().count(), 2);
    assert_eq!(frames.rest(), (2 * one.len(), Some(FrameError::Truncated)));
    let zeros = vec![0u8; 100];
    let mut frames = BatchFrames::new(&zeros);
    assert_eq!(frames.by_ref().count(), 0);
    assert_eq!(frames.rest(), (0, Some(FrameError::BadLength(0))));
}

proptest::proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
        let mut scratch = Vec::new();
        let _ = validate_batch(&bytes, AppendOrigin::Client, &LIMITS, &mut scratch);
        for _ in BatchFrames::new(&bytes) {}
    }

    #[test]
    fn flipped_bits_never_validate(n in 1i32..20, at in 0usize..10_000, bit in 0u8..8) {
        let mut bytes = batch(Compression::None, n);
        let at = 17 + at % (bytes.len() - 17); // from the CRC on: base offset, length, epoch and magic lie outside it
        bytes[at] ^= 1 << bit;
        let mut scratch = Vec::new();
        proptest::prop_assert!(validate_batch(&bytes, AppendOrigin::Client, &LIMITS, &mut scratch).is_err());
    }
}

/// A header read without validation (a walk over damaged bytes) may carry any base offset:
/// its last and next offsets saturate rather than overflow.
#[test]
fn unvalidated_header_offsets_saturate() {
    let mut bytes = batch(Compression::None, 3);
    bytes[..8].copy_from_slice(&(i64::MAX - 1).to_be_bytes());
    let header = BatchHeader::parse(&bytes).unwrap();
    assert_eq!(header.last_offset(), i64::MAX);
    assert_eq!(header.next_offset(), i64::MAX);
}
