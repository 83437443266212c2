//! Primitive encodings of the Kafka protocol, for the generated message codecs.
//!
//! Decoding reads from a [`Reader`] over one frame's `Bytes`: `bytes` and `records` fields
//! are zero-copy slices of the frame. No length is trusted: every length is checked against
//! the bytes left before anything is sliced or allocated, and arrays may not claim more
//! elements than bytes left.

use std::cell::RefCell;
use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::ErrorCode;

/// A tagged field the generated code does not know, kept to be written back unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaggedField {
    pub tag: u32,
    pub data: Bytes,
}

/// A 128-bit UUID (topic ids).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// URL-safe base64 without padding, as Kafka prints ids.
    pub fn to_base64(&self) -> String {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bits = u128::from_be_bytes(self.0);
        (0..22)
            .map(|i| {
                let shift = 128i32 - 6 * (i + 1);
                let index = if shift >= 0 {
                    (bits >> shift) & 63
                } else {
                    (bits << -shift) & 63
                };
                ALPHABET[index as usize] as char
            })
            .collect()
    }
}

impl fmt::Debug for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The frame ends before the field does.
    Truncated {
        needed: usize,
        remaining: usize,
    },
    /// A length or count that cannot be right.
    BadLength(i64),
    BadVarint,
    BadUtf8,
    /// A null where the version does not allow one.
    UnexpectedNull(&'static str),
    UnsupportedVersion {
        api_key: i16,
        version: i16,
    },
    /// Bytes left over after the message.
    TrailingBytes(usize),
    /// Tagged fields must come in strictly ascending tag order (KIP-482); this one did not.
    TagOutOfOrder(u32),
}

impl DecodeError {
    /// The Kafka error code a client gets for a request that fails to decode.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            DecodeError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            _ => ErrorCode::InvalidRequest,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for DecodeError {}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// A field set to a non-default value that the version cannot carry.
    FieldNotInVersion {
        field: &'static str,
        version: i16,
    },
    /// A null in a version where the field is not nullable.
    NullNotAllowed {
        field: &'static str,
        version: i16,
    },
    TooLong(usize),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl std::error::Error for EncodeError {}

/// A message of the protocol, with its generated codec.
pub trait Message: Sized + Default + Clone + fmt::Debug + PartialEq {
    const API_KEY: i16;
    const NAME: &'static str;
    const VERSION_MIN: i16;
    const VERSION_MAX: i16;
    /// The first flexible version, or `i16::MAX` if none is.
    const FLEXIBLE_MIN: i16;
    fn encode(&self, w: &mut BytesMut, version: i16) -> Result<(), EncodeError>;
    fn decode(r: &mut Reader, version: i16) -> Result<Self, DecodeError>;
    /// A value with random fields, every one of them valid in `version`.
    #[cfg(test)]
    fn random(rng: &mut crate::io::SimRng, version: i16) -> Self;
}

pub struct Reader {
    buf: Bytes,
    position: usize,
}

impl Reader {
    pub fn new(buf: Bytes) -> Reader {
        Reader { buf, position: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.position
    }

    pub fn position(&self) -> usize {
        self.position
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> Bytes {
        self.buf.slice(self.position..)
    }

    pub fn expect_end(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes(n)),
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated {
                needed: n,
                remaining: self.remaining(),
            });
        }
        let start = self.position;
        self.position += n;
        Ok(&self.buf[start..start + n])
    }

    pub fn slice(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        if n > self.remaining() {
            return Err(DecodeError::Truncated {
                needed: n,
                remaining: self.remaining(),
            });
        }
        let start = self.position;
        self.position += n;
        Ok(self.buf.slice(start..start + n))
    }

    pub fn read_i8(&mut self) -> Result<i8, DecodeError> {
        Ok(self.take(1)?[0] as i8)
    }

    pub fn read_bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.take(1)?[0] != 0)
    }

    pub fn read_i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }

    pub fn read_u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }

    pub fn read_i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    pub fn read_u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    pub fn read_i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    pub fn read_f64(&mut self) -> Result<f64, DecodeError> {
        Ok(f64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    pub fn read_uuid(&mut self) -> Result<Uuid, DecodeError> {
        Ok(Uuid(self.take(16)?.try_into().expect("16 bytes")))
    }

    /// An unsigned varint of at most 5 bytes (compact lengths and tags).
    pub fn read_uvarint(&mut self) -> Result<u32, DecodeError> {
        let mut value: u64 = 0;
        for i in 0..5 {
            let byte = self.take(1)?[0];
            value |= ((byte & 0x7f) as u64) << (7 * i);
            if byte & 0x80 == 0 {
                return u32::try_from(value).map_err(|_| DecodeError::BadVarint);
            }
        }
        Err(DecodeError::BadVarint)
    }

    /// A length: compact (uvarint of length + 1, 0 for null) or classic (`wide` selects
    /// i32 over i16; -1 for null). `None` is null.
    fn read_length(&mut self, compact: bool, wide: bool) -> Result<Option<usize>, DecodeError> {
        let n: i64 = if compact {
            self.read_uvarint()? as i64 - 1
        } else if wide {
            self.read_i32()? as i64
        } else {
            self.read_i16()? as i64
        };
        match n {
            -1 => Ok(None),
            n if n < -1 => Err(DecodeError::BadLength(n)),
            n if n as usize > self.remaining() => Err(DecodeError::BadLength(n)),
            n => Ok(Some(n as usize)),
        }
    }

    pub fn read_nullable_string(&mut self, compact: bool) -> Result<Option<String>, DecodeError> {
        let Some(n) = self.read_length(compact, false)? else {
            return Ok(None);
        };
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes)
            .map(|s| Some(s.to_string()))
            .map_err(|_| DecodeError::BadUtf8)
    }

    pub fn read_string(&mut self, compact: bool, field: &'static str) -> Result<String, DecodeError> {
        self.read_nullable_string(compact)?
            .ok_or(DecodeError::UnexpectedNull(field))
    }

    pub fn read_nullable_bytes(&mut self, compact: bool) -> Result<Option<Bytes>, DecodeError> {
        let Some(n) = self.read_length(compact, true)? else {
            return Ok(None);
        };
        self.slice(n).map(Some)
    }

    pub fn read_bytes(&mut self, compact: bool, field: &'static str) -> Result<Bytes, DecodeError> {
        self.read_nullable_bytes(compact)?
            .ok_or(DecodeError::UnexpectedNull(field))
    }

    /// An array's element count; `None` for null. A count larger than the bytes left
    /// cannot be honest (no element is smaller than a byte), so it is an error before any
    /// allocation.
    pub fn read_array_len(&mut self, compact: bool) -> Result<Option<usize>, DecodeError> {
        self.read_length(compact, true)
    }

    pub fn read_nullable_array<T>(
        &mut self,
        compact: bool,
        mut element: impl FnMut(&mut Reader, usize) -> Result<T, DecodeError>,
    ) -> Result<Option<Vec<T>>, DecodeError> {
        let Some(n) = self.read_array_len(compact)? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(n.min(64));
        for i in 0..n {
            out.push(element(self, i)?);
        }
        Ok(Some(out))
    }

    pub fn read_array<T>(
        &mut self,
        compact: bool,
        field: &'static str,
        element: impl FnMut(&mut Reader, usize) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        self.read_nullable_array(compact, element)?
            .ok_or(DecodeError::UnexpectedNull(field))
    }

    /// The tagged fields section of a flexible struct: (tag, data), in strictly ascending
    /// tag order as KIP-482 requires (anything else is malformed: it could not be written
    /// back as it came, and a repeated tag would make a field ambiguous). Found by the
    /// request_decoder fuzz target.
    pub fn read_tagged_fields(&mut self) -> Result<Vec<TaggedField>, DecodeError> {
        let n = self.read_uvarint()? as usize;
        if n > self.remaining() {
            return Err(DecodeError::BadLength(n as i64));
        }
        let mut out = Vec::with_capacity(n.min(16));
        for _ in 0..n {
            let tag = self.read_uvarint()?;
            if out.last().is_some_and(|last: &TaggedField| last.tag >= tag) {
                return Err(DecodeError::TagOutOfOrder(tag));
            }
            let size = self.read_uvarint()? as usize;
            out.push(TaggedField {
                tag,
                data: self.slice(size)?,
            });
        }
        Ok(out)
    }
}

pub fn write_uvarint(w: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        w.put_u8((value as u8) | 0x80);
        value >>= 7;
    }
    w.put_u8(value as u8);
}

fn write_length(w: &mut BytesMut, len: Option<usize>, compact: bool, wide: bool) -> Result<(), EncodeError> {
    match (len, compact) {
        (None, true) => write_uvarint(w, 0),
        (None, false) if wide => w.put_i32(-1),
        (None, false) => w.put_i16(-1),
        (Some(n), true) => write_uvarint(w, u32::try_from(n + 1).map_err(|_| EncodeError::TooLong(n))?),
        (Some(n), false) if wide => w.put_i32(i32::try_from(n).map_err(|_| EncodeError::TooLong(n))?),
        (Some(n), false) => w.put_i16(i16::try_from(n).map_err(|_| EncodeError::TooLong(n))?),
    }
    Ok(())
}

pub fn write_nullable_string(w: &mut BytesMut, s: Option<&str>, compact: bool) -> Result<(), EncodeError> {
    write_length(w, s.map(str::len), compact, false)?;
    if let Some(s) = s {
        w.put_slice(s.as_bytes());
    }
    Ok(())
}

pub fn write_string(w: &mut BytesMut, s: &str, compact: bool) -> Result<(), EncodeError> {
    write_nullable_string(w, Some(s), compact)
}

pub fn write_nullable_bytes(w: &mut BytesMut, b: Option<&[u8]>, compact: bool) -> Result<(), EncodeError> {
    write_length(w, b.map(<[u8]>::len), compact, true)?;
    if let Some(b) = b {
        w.put_slice(b);
    }
    Ok(())
}

thread_local! {
    /// While [`encode_noting_records`] runs on this thread: where each records field it
    /// wrote starts, in the order written.
    static RECORDS_POSITIONS: RefCell<Option<Vec<usize>>> = const { RefCell::new(None) };
}

/// A field of the `records` type (Produce's and Fetch's record batches).
pub fn write_records(w: &mut BytesMut, b: Option<&[u8]>, compact: bool) -> Result<(), EncodeError> {
    RECORDS_POSITIONS.with(|positions| {
        if let Some(positions) = positions.borrow_mut().as_mut() {
            positions.push(w.len());
        }
    });
    write_nullable_bytes(w, b, compact)
}

/// Encodes `message` at the end of `w` and returns where each of its records fields starts
/// in `w` (at its length prefix), in the order they were written. A response whose records
/// stay in files (zero-copy Fetch) is encoded with those records empty; the caller then
/// splices the file ranges in at these positions. Encoding is synchronous, so the positions
/// noted are this message's own, and nothing is left behind for the next one.
pub fn encode_noting_records<M: Message>(
    message: &M,
    w: &mut BytesMut,
    version: i16,
) -> Result<Vec<usize>, EncodeError> {
    struct Stop;
    impl Drop for Stop {
        fn drop(&mut self) {
            RECORDS_POSITIONS.with(|positions| positions.borrow_mut().take());
        }
    }
    RECORDS_POSITIONS.with(|positions| *positions.borrow_mut() = Some(Vec::new()));
    let stop = Stop;
    message.encode(w, version)?;
    let positions = RECORDS_POSITIONS.with(|positions| positions.borrow_mut().take());
    drop(stop);
    Ok(positions.expect("set above and taken only here or at the stop"))
}

/// The length prefix of a records field holding `len` bytes.
pub fn records_length_prefix(len: usize, compact: bool) -> Result<BytesMut, EncodeError> {
    let mut w = BytesMut::with_capacity(5);
    write_length(&mut w, Some(len), compact, true)?;
    Ok(w)
}

pub fn write_bytes(w: &mut BytesMut, b: &[u8], compact: bool) -> Result<(), EncodeError> {
    write_nullable_bytes(w, Some(b), compact)
}

pub fn write_array_len(w: &mut BytesMut, len: Option<usize>, compact: bool) -> Result<(), EncodeError> {
    write_length(w, len, compact, true)
}

pub fn write_uuid(w: &mut BytesMut, u: &Uuid) {
    w.put_slice(&u.0);
}

/// Writes a tagged fields section: the known fields (already encoded) and the unknown
/// ones kept from decoding, in ascending tag order.
pub fn write_tagged_fields(
    w: &mut BytesMut,
    known: Vec<TaggedField>,
    unknown: &[TaggedField],
) -> Result<(), EncodeError> {
    let mut all: Vec<&TaggedField> = known.iter().chain(unknown.iter()).collect();
    all.sort_by_key(|t| t.tag);
    write_uvarint(w, all.len() as u32);
    for field in all {
        write_uvarint(w, field.tag);
        write_uvarint(
            w,
            u32::try_from(field.data.len()).map_err(|_| EncodeError::TooLong(field.data.len()))?,
        );
        w.put_slice(&field.data);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_checked_before_slicing() {
        let cases: [(&[u8], bool); 6] = [
            (&[0x00, 0x05, b'a'], false),                  // string of 5 with 1 byte
            (&[0x7f, 0xff], false),                        // string of 32767 with none
            (&[0xff, 0xff, 0xff, 0xff, 0x0f], true),       // compact length past u32
            (&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], true), // varint too long
            (&[0xff, 0xfe], false),                        // length -2
            (&[0x10, b'a'], true),                         // compact length 15 with 1 byte
        ];
        for (bytes, compact) in cases {
            let mut r = Reader::new(Bytes::copy_from_slice(bytes));
            assert!(r.read_nullable_string(compact).is_err(), "{bytes:?}");
        }
        let mut r = Reader::new(Bytes::from_static(&[0x7f, 0xff, 0xff, 0xff]));
        assert_eq!(r.read_array_len(false), Err(DecodeError::BadLength(i32::MAX as i64)));
    }

    #[test]
    fn nulls_and_round_trips() {
        for compact in [false, true] {
            let mut w = BytesMut::new();
            write_nullable_string(&mut w, None, compact).unwrap();
            write_string(&mut w, "héllo", compact).unwrap();
            write_nullable_bytes(&mut w, None, compact).unwrap();
            write_bytes(&mut w, b"xyz", compact).unwrap();
            write_array_len(&mut w, None, compact).unwrap();
            let mut r = Reader::new(w.freeze());
            assert_eq!(r.read_nullable_string(compact).unwrap(), None);
            assert_eq!(r.read_string(compact, "s").unwrap(), "héllo");
            assert_eq!(r.read_bytes(compact, "b"), Err(DecodeError::UnexpectedNull("b")));
            assert_eq!(&r.read_bytes(compact, "b").unwrap()[..], b"xyz");
            assert_eq!(r.read_array_len(compact).unwrap(), None);
            r.expect_end().unwrap();
        }
    }

    #[test]
    fn uuids_print_as_kafka_does() {
        // Kafka's Uuid.toString of 0x0123...ef, 0xfedc...10 (Base64 URL-safe, no padding).
        let uuid = Uuid([
            0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10,
        ]);
        assert_eq!(uuid.to_base64(), "ASNFZ4mrze_-3LqYdlQyEA");
        assert_eq!(Uuid::default().to_base64(), "AAAAAAAAAAAAAAAAAAAAAA");
    }

    #[test]
    fn tagged_fields_out_of_order_or_repeated_are_malformed() {
        // (tags as sent, accepted?)
        let cases: &[(&[u32], bool)] = &[(&[0, 1, 192], true), (&[192, 0], false), (&[3, 3], false), (&[], true)];
        for (tags, ok) in cases {
            let mut w = BytesMut::new();
            write_uvarint(&mut w, tags.len() as u32);
            for &tag in *tags {
                write_uvarint(&mut w, tag);
                write_uvarint(&mut w, 0);
            }
            let got = Reader::new(w.freeze()).read_tagged_fields();
            assert_eq!(got.is_ok(), *ok, "{tags:?}: {got:?}");
        }
    }

    #[test]
    fn tagged_fields_are_sorted_and_kept() {
        let mut w = BytesMut::new();
        let unknown = [TaggedField {
            tag: 7,
            data: Bytes::from_static(b"u"),
        }];
        write_tagged_fields(
            &mut w,
            vec![TaggedField {
                tag: 2,
                data: Bytes::from_static(b"kk"),
            }],
            &unknown,
        )
        .unwrap();
        assert_eq!(&w[..], &[2, 2, 2, b'k', b'k', 7, 1, b'u']);
        let mut r = Reader::new(w.freeze());
        let fields = r.read_tagged_fields().unwrap();
        assert_eq!(fields.iter().map(|f| f.tag).collect::<Vec<_>>(), vec![2, 7]);
    }
}
