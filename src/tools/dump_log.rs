//! `klamm dump-log --files F [--print-data-log]`: prints the batches of segment files in the
//! shape of Kafka's DumpLogSegments, and says where a file stops being valid.

use std::fmt::Write;

use crate::record::{self, BatchFrames, ValidationLimits};

/// Renders the batches of one `.log` file's bytes.
pub fn dump_segment(name: &str, bytes: &[u8], print_data: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Dumping {name}");
    if let Some((base, _)) = crate::log::parse_file_name(name.rsplit('/').next().unwrap_or(name)) {
        let _ = writeln!(out, "Log starting offset: {base}");
    }
    let limits = ValidationLimits {
        decompressed_bytes_max: 64 * 1024 * 1024,
    };
    let mut scratch = Vec::new();
    let mut frames = BatchFrames::new(bytes);
    for (position, h, batch) in frames.by_ref() {
        let valid = record::crc_matches(batch);
        let last_sequence = if h.base_sequence < 0 {
            -1
        } else {
            h.base_sequence.wrapping_add(h.last_offset_delta)
        };
        let time_kind = match h.timestamp_type() {
            record::TimestampType::CreateTime => "CreateTime",
            record::TimestampType::LogAppendTime => "LogAppendTime",
        };
        let codec = h.compression().map(|c| c.name()).unwrap_or("unknown");
        let _ = writeln!(
            out,
            "baseOffset: {} lastOffset: {} count: {} baseSequence: {} lastSequence: {last_sequence} producerId: {} producerEpoch: {} partitionLeaderEpoch: {} isTransactional: {} isControl: {} position: {position} {time_kind}: {} size: {} magic: {} compresscodec: {codec} crc: {} isvalid: {valid}",
            h.base_offset, h.last_offset(), h.records_count, h.base_sequence, h.producer_id, h.producer_epoch,
            h.partition_leader_epoch, h.is_transactional(), h.is_control(), h.max_timestamp, h.size(), h.magic, h.crc,
        );
        if print_data && valid {
            let result = record::for_each_record(batch, &limits, &mut scratch, |offset, r| {
                let headers: Vec<String> = r
                    .headers()
                    .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
                    .collect();
                let _ = writeln!(
                    out,
                    "| offset: {offset} {time_kind}: {} keySize: {} valueSize: {} headerKeys: [{}] key: {} payload: {}",
                    r.timestamp,
                    r.key.map_or(-1, |k| k.len() as i64),
                    r.value.map_or(-1, |v| v.len() as i64),
                    headers.join(","),
                    r.key.map_or("null".into(), |k| String::from_utf8_lossy(k).into_owned()),
                    r.value
                        .map_or("null".into(), |v| String::from_utf8_lossy(v).into_owned()),
                );
            });
            if let Err(e) = result {
                let _ = writeln!(out, "| invalid records: {e}");
            }
        }
    }
    let (end, _) = frames.rest();
    if end < bytes.len() {
        let _ = writeln!(
            out,
            "Found {} invalid bytes at the end of {name}, from position {end}",
            bytes.len() - end
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::dump_segment;
    use crate::record::{set_base_offset, Compression, RecordBatchBuilder};

    #[test]
    fn dumps_batches_records_and_a_torn_tail() {
        let mut b = RecordBatchBuilder::new(Compression::Lz4);
        b.append(1000, Some(b"k"), Some(b"hello"), &[("h", Some(b"1"))]);
        b.append(1001, None, None, &[]);
        let mut bytes = b.build().to_vec();
        set_base_offset(&mut bytes, 5);
        let whole = bytes.len();
        bytes.extend_from_slice(&[0, 0, 0]);
        let out = dump_segment("00000000000000000005.log", &bytes, true);
        let want = [
            "Dumping 00000000000000000005.log",
            "Log starting offset: 5",
            "baseOffset: 5 lastOffset: 6 count: 2 ",
            " compresscodec: lz4 ",
            "isvalid: true",
            "| offset: 5 CreateTime: 1000 keySize: 1 valueSize: 5 headerKeys: [h] key: k payload: hello",
            "| offset: 6 CreateTime: 1001 keySize: -1 valueSize: -1 headerKeys: [] key: null payload: null",
        ];
        for line in want {
            assert!(out.contains(line), "missing {line:?} in\n{out}");
        }
        assert!(
            out.contains(&format!(
                "Found 3 invalid bytes at the end of 00000000000000000005.log, from position {whole}"
            )),
            "{out}"
        );
    }
}
