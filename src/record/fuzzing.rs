//! What the `record_batch` fuzz target checks, callable from a unit test: record batch
//! framing, validation (every codec, decompression bounded) and record iteration never
//! panic, and agree with each other.
//!
//! A mutated batch almost never carries a matching CRC32C, so validation would stop at the
//! checksum and the codecs and the record parser would see nothing. Each batch is therefore
//! checked twice: as it came, and with its CRC set to match its bytes.

use super::{
    control_batch, for_each_record, for_each_record_validating, validate_batch, write_crc, AppendOrigin, BatchFrames,
    BatchHeader, Compression, ControlRecordType, RecordBatchBuilder, ValidationLimits, NO_TIMESTAMP,
    RECORD_BATCH_OVERHEAD,
};

/// The decompression bound the checks use: big enough for any seed, small enough that a
/// bomb (a 4 KiB input can inflate to megabytes) is cheap to refuse, so the fuzzer spends
/// its time on parsing rather than on inflating zeros.
const DECOMPRESSED_BYTES_MAX: usize = 64 << 10;

/// Walks the buffer's batches and checks each as it came and with a matching CRC.
pub fn check_batches(data: &[u8]) {
    let limits = ValidationLimits {
        decompressed_bytes_max: DECOMPRESSED_BYTES_MAX,
    };
    let mut scratch = Vec::new();
    let mut fixed = Vec::new();
    for (_, header, batch) in BatchFrames::new(data) {
        let valid_as_is = check_batch(batch, &header, &limits, &mut scratch);
        assert!(batch.len() >= RECORD_BATCH_OVERHEAD, "a framed batch holds its header");
        fixed.clear();
        fixed.extend_from_slice(batch);
        let crc = write_crc(&mut fixed);
        let valid_fixed = check_batch(&fixed, &BatchHeader { crc, ..header }, &limits, &mut scratch);
        if valid_as_is {
            assert_eq!(&fixed[..], batch, "a valid batch's CRC already matches");
            assert!(valid_fixed);
        }
    }
}

/// Validates one batch as a client's and as a replica's, then iterates its records, both
/// after validating and while validating (the consumer's one pass); all must agree. Returns
/// whether it validated as a replica's batch.
fn check_batch(batch: &[u8], framed: &BatchHeader, limits: &ValidationLimits, scratch: &mut Vec<u8>) -> bool {
    let client = validate_batch(batch, AppendOrigin::Client, limits, scratch);
    let replica = validate_batch(batch, AppendOrigin::Replication, limits, scratch);
    if client.is_ok() {
        assert!(replica.is_ok(), "a batch a client may write is one a replica may copy");
    }
    let Ok(summary) = replica else {
        assert!(
            for_each_record(batch, limits, scratch, |_, _| {}).is_err(),
            "iteration validates as a replica does"
        );
        assert!(
            for_each_record_validating(batch, limits, scratch, |_, _| {}).is_err(),
            "one-pass iteration validates as a replica does"
        );
        return false;
    };
    assert_eq!(
        &summary.header, framed,
        "validation reads the header the frame walk read"
    );
    let header = summary.header;
    let mut count = 0i32;
    let mut previous: Option<i64> = None;
    let mut max_timestamp = NO_TIMESTAMP;
    let mut keyless = false;
    let mut two_pass = Vec::new();
    let iterated = for_each_record(batch, limits, scratch, |offset, record| {
        assert!(previous.is_none_or(|p| offset > p), "offsets increase within a batch");
        assert!(offset >= header.base_offset, "a record lies within its batch's offsets");
        assert!(
            offset <= header.last_offset(),
            "a record lies within its batch's offsets"
        );
        if client.is_ok() {
            assert_eq!(offset, header.base_offset + count as i64, "a client's batch is dense");
        }
        assert_eq!(
            record.headers().count(),
            record.headers_count as usize,
            "a valid record's headers all parse"
        );
        previous = Some(offset);
        max_timestamp = max_timestamp.max(record.timestamp);
        keyless |= record.key.is_none();
        count += 1;
        two_pass.push((offset, record.timestamp, record.key.is_none()));
    });
    let iterated = iterated.expect("a batch that validates iterates");
    assert_eq!(iterated, header);
    let mut seen = Vec::new();
    let one_pass = for_each_record_validating(batch, limits, scratch, |offset, record| {
        seen.push((offset, record.timestamp, record.key.is_none()))
    });
    assert_eq!(one_pass.expect("a batch that validates iterates in one pass"), header);
    assert_eq!(seen, two_pass, "one pass yields the records two passes do");
    assert_eq!(count, header.records_count, "a valid batch yields its record count");
    assert_eq!(summary.max_timestamp, max_timestamp);
    assert_eq!(summary.has_keyless_record, keyless);
    true
}

/// Valid buffers of batches for the fuzzer to start from: every codec, keys, null keys and
/// values, duplicate header keys, producer and transactional fields, a control batch, and
/// buffers of several batches.
pub fn seed_corpus() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for codec in Compression::ALL {
        let mut one = RecordBatchBuilder::new(codec);
        one.append(1_700_000_000_000, Some(b"k"), Some(b"v"), &[]);
        seeds.push(one.build().to_vec());

        let mut many = RecordBatchBuilder::new(codec).producer(7, 1, 0);
        for i in 0..12u8 {
            let value = vec![b'a' + i; 3 + 40 * i as usize];
            let key = [b'k', i];
            match i % 4 {
                0 => many.append(1_700_000_000_000 + i as i64, Some(&key), Some(&value), &[]),
                1 => many.append(1_700_000_000_000 - i as i64, None, Some(&value), &[("h", Some(b"1"))]),
                2 => many.append(
                    1_700_000_000_000,
                    Some(&key),
                    None,
                    &[("dup", Some(b"1")), ("dup", None), ("dup", Some(b"2"))],
                ),
                _ => many.append(-5, Some(&key), Some(&value), &[("", Some(b""))]),
            }
        }
        seeds.push(many.build().to_vec());

        let mut transactional = RecordBatchBuilder::new(codec).producer(9, 0, 5).transactional(true);
        transactional.append(3, Some(b"t"), Some(b"x"), &[]);
        transactional.append(4, Some(b"t"), Some(b"y"), &[]);
        let mut two = transactional.build().to_vec();
        two.extend_from_slice(&control_batch(ControlRecordType::Commit, 9, 0, 3, 5));
        seeds.push(two);
    }
    seeds.push(control_batch(ControlRecordType::Abort, 1, 2, 3, 4).to_vec());
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::SimRng;

    #[test]
    fn seeds_validate() {
        let seeds = seed_corpus();
        assert!(seeds.len() >= 16, "{} seeds", seeds.len());
        let limits = ValidationLimits {
            decompressed_bytes_max: DECOMPRESSED_BYTES_MAX,
        };
        let mut scratch = Vec::new();
        let mut batches = 0;
        for seed in &seeds {
            let mut frames = BatchFrames::new(seed);
            for (_, header, batch) in frames.by_ref() {
                let origin = if header.is_control() {
                    AppendOrigin::Coordinator
                } else {
                    AppendOrigin::Client
                };
                validate_batch(batch, origin, &limits, &mut scratch).expect("a seed batch validates");
                batches += 1;
            }
            assert_eq!(frames.rest(), (seed.len(), None), "a seed frames whole");
            check_batches(seed);
        }
        assert!(batches > seeds.len());
    }

    /// The fuzz target's check on mutated seeds: flipped bits, overwritten bytes, cuts
    /// and splices, 20,000 inputs from the seeds.
    #[test]
    fn mutated_batches_never_panic_and_agree() {
        let seeds = seed_corpus();
        let mut rng = SimRng::new(0x5eed);
        for _ in 0..20_000 {
            let mut data = seeds[rng.below(seeds.len() as u64) as usize].clone();
            for _ in 0..1 + rng.below(4) {
                let at = rng.below(data.len() as u64) as usize;
                match rng.below(5) {
                    0 => data[at] ^= 1 << rng.below(8),
                    // Base offsets at the ends of the range: offsets must not overflow.
                    4 if data.len() >= 8 => {
                        let base = [i64::MAX - rng.below(3) as i64, i64::MIN, -1][rng.below(3) as usize];
                        data[..8].copy_from_slice(&base.to_be_bytes());
                    }
                    1 => data[at] = rng.next_u64() as u8,
                    2 => data.truncate(at.max(1)),
                    _ => {
                        let other = &seeds[rng.below(seeds.len() as u64) as usize];
                        let from = rng.below(other.len() as u64) as usize;
                        data.extend_from_slice(&other[from..]);
                    }
                }
                if data.is_empty() {
                    break;
                }
            }
            check_batches(&data);
        }
    }
}
