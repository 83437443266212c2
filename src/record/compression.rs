//! The four codecs of the record format, with a bound on decompressed size so that a
//! decompression bomb is an error and not an out-of-memory.

use std::io::{self, Read, Write};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Compression {
    pub fn from_id(id: u8) -> Option<Compression> {
        match id {
            0 => Some(Compression::None),
            1 => Some(Compression::Gzip),
            2 => Some(Compression::Snappy),
            3 => Some(Compression::Lz4),
            4 => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// Kafka's `compression.type` names.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }

    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];
}

/// Why decompression failed.
#[derive(Debug)]
pub enum DecompressError {
    /// The output would pass `bytes_max`.
    TooLarge,
    Corrupt(String),
}

/// The xerial snappy-java stream header that Kafka's Java client writes.
const XERIAL_MAGIC: [u8; 8] = [0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];
const XERIAL_HEADER_BYTES: usize = 16;
const XERIAL_BLOCK_BYTES: usize = 32 * 1024;

pub fn compress(codec: Compression, data: &[u8]) -> Vec<u8> {
    match codec {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(data).expect("writing to a Vec cannot fail");
            encoder.finish().expect("writing to a Vec cannot fail")
        }
        Compression::Snappy => {
            let mut out = Vec::with_capacity(XERIAL_HEADER_BYTES + data.len());
            out.extend_from_slice(&XERIAL_MAGIC);
            out.extend_from_slice(&1i32.to_be_bytes()); // version
            out.extend_from_slice(&1i32.to_be_bytes()); // compatible version
            let mut encoder = snap::raw::Encoder::new();
            for block in data.chunks(XERIAL_BLOCK_BYTES) {
                let compressed = encoder.compress_vec(block).expect("a block under 4 GiB compresses");
                out.extend_from_slice(&(compressed.len() as i32).to_be_bytes());
                out.extend_from_slice(&compressed);
            }
            out
        }
        Compression::Lz4 => {
            let mut encoder = lz4_flex::frame::FrameEncoder::new(Vec::new());
            encoder.write_all(data).expect("writing to a Vec cannot fail");
            encoder.finish().expect("writing to a Vec cannot fail")
        }
        Compression::Zstd => zstd::bulk::compress(data, 3).expect("zstd compresses into a Vec"),
    }
}

/// Decompresses `data` into `out` (cleared first), failing once the output passes `bytes_max`.
pub fn decompress(codec: Compression, data: &[u8], bytes_max: usize, out: &mut Vec<u8>) -> Result<(), DecompressError> {
    out.clear();
    match codec {
        Compression::None => {
            if data.len() > bytes_max {
                return Err(DecompressError::TooLarge);
            }
            out.extend_from_slice(data);
            Ok(())
        }
        Compression::Gzip => read_bounded(flate2::read::GzDecoder::new(data), bytes_max, out),
        Compression::Snappy => snappy_decompress(data, bytes_max, out),
        Compression::Lz4 => read_bounded(lz4_flex::frame::FrameDecoder::new(data), bytes_max, out),
        Compression::Zstd => {
            let decoder =
                zstd::stream::read::Decoder::with_buffer(data).map_err(|e| DecompressError::Corrupt(e.to_string()))?;
            read_bounded(decoder, bytes_max, out)
        }
    }
}

fn read_bounded(reader: impl Read, bytes_max: usize, out: &mut Vec<u8>) -> Result<(), DecompressError> {
    let mut limited = reader.take(bytes_max as u64 + 1);
    limited
        .read_to_end(out)
        .map_err(|e: io::Error| DecompressError::Corrupt(e.to_string()))?;
    if out.len() > bytes_max {
        return Err(DecompressError::TooLarge);
    }
    Ok(())
}

fn snappy_decompress(data: &[u8], bytes_max: usize, out: &mut Vec<u8>) -> Result<(), DecompressError> {
    if !data.starts_with(&XERIAL_MAGIC) {
        // Not framed: snappy-java reads a plain raw block as it is.
        return snappy_block(data, bytes_max, out);
    }
    if data.len() < XERIAL_HEADER_BYTES {
        return Err(DecompressError::Corrupt("short xerial snappy header".into()));
    }
    let mut rest = &data[XERIAL_HEADER_BYTES..];
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(DecompressError::Corrupt("short xerial snappy block length".into()));
        }
        let len = i32::from_be_bytes(rest[..4].try_into().expect("4 bytes"));
        let len = usize::try_from(len).map_err(|_| DecompressError::Corrupt("negative snappy block length".into()))?;
        let block = rest
            .get(4..4 + len)
            .ok_or_else(|| DecompressError::Corrupt("truncated snappy block".into()))?;
        snappy_block(block, bytes_max, out)?;
        rest = &rest[4 + len..];
    }
    Ok(())
}

/// Appends one raw snappy block to `out`, checking the bound before allocating.
fn snappy_block(block: &[u8], bytes_max: usize, out: &mut Vec<u8>) -> Result<(), DecompressError> {
    let len = snap::raw::decompress_len(block).map_err(|e| DecompressError::Corrupt(e.to_string()))?;
    if out.len() + len > bytes_max {
        return Err(DecompressError::TooLarge);
    }
    let start = out.len();
    out.resize(start + len, 0);
    snap::raw::Decoder::new()
        .decompress(block, &mut out[start..])
        .map_err(|e| DecompressError::Corrupt(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for codec in Compression::ALL {
            let compressed = compress(codec, &data);
            let mut out = Vec::new();
            decompress(codec, &compressed, data.len(), &mut out).unwrap();
            assert_eq!(out, data, "{}", codec.name());
        }
    }

    #[test]
    fn bombs_are_errors() {
        let zeros = vec![0u8; 10 * 1024 * 1024];
        for codec in Compression::ALL {
            let compressed = compress(codec, &zeros);
            let mut out = Vec::new();
            let result = decompress(codec, &compressed, 1024 * 1024, &mut out);
            assert!(matches!(result, Err(DecompressError::TooLarge)), "{}", codec.name());
            assert!(
                out.capacity() <= 4 * 1024 * 1024,
                "{} allocated {}",
                codec.name(),
                out.capacity()
            );
        }
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        let cases: [&[u8]; 4] = [
            b"",
            b"\x00\x01\x02",
            &XERIAL_MAGIC,
            b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01\xff\xff\xff\xff",
        ];
        for codec in [
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            for case in cases {
                let mut out = Vec::new();
                let _ = decompress(codec, case, 1024, &mut out);
            }
        }
    }

    #[test]
    fn raw_snappy_without_xerial_frame() {
        let data = b"hello hello hello hello".to_vec();
        let raw = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        let mut out = Vec::new();
        decompress(Compression::Snappy, &raw, 1024, &mut out).unwrap();
        assert_eq!(out, data);
    }
}
