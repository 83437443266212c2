//! Entry points for the fuzz targets (`fuzz/`): the property each one checks, kept in the
//! library so that a crash found by the fuzzer becomes a plain unit test here.

use bytes::{Bytes, BytesMut};

use super::codec::{Message, Reader};
use super::messages::{self, *};

/// How many message types [`decode_round_trip`] chooses among.
pub fn message_count() -> u16 {
    let mut n = 0u16;
    macro_rules! count {
        ($($m:ident,)*) => { $( let _ = stringify!($m); n += 1; )* };
    }
    messages::with_all_messages!(count);
    n
}

/// Decodes `body` as message number `selector` (modulo [`message_count`]) in a version
/// chosen by `version` (folded into the message's range). Whatever decodes must encode,
/// and decode again to the same value; nothing may panic or allocate past the input.
/// Returns the message's name and whether it decoded.
pub fn decode_round_trip(selector: u16, version: i16, body: &[u8]) -> (&'static str, bool) {
    let target = selector % message_count();
    let mut i = 0u16;
    let mut result = ("", false);
    macro_rules! each {
        ($($m:ident,)*) => { $( if i == target { result = check::<$m>(version, body); } i += 1; )* };
    }
    messages::with_all_messages!(each);
    let _ = i;
    result
}

/// A seed corpus for the request_decoder target: every message in every version, its
/// default value encoded and prefixed with the selector and version the target reads (the
/// shape of each message; the fuzzer fills it in).
pub fn seed_corpus() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut selector = 0u16;
    macro_rules! each {
        ($($m:ident,)*) => { $( seeds::<$m>(selector, &mut out); selector += 1; )* };
    }
    messages::with_all_messages!(each);
    let _ = selector;
    out
}

/// A request_decoder input from a request frame a real client sent (the frame without its
/// size prefix): the request header is read and dropped, and the body kept with the
/// selector and folded version of its request message. `None` for an API key with no
/// request message here, a version outside its range, or a header that does not decode.
/// `tests/clients.rs` records kcat's, confluent-kafka's, kafka-python's and kafkajs's
/// requests through a proxy and seeds the corpus with them.
pub fn corpus_entry_from_request(frame: &[u8]) -> Option<Vec<u8>> {
    if frame.len() < 4 {
        return None;
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let mut found = None;
    let mut selector = 0u16;
    macro_rules! each {
        ($($m:ident,)*) => { $(
            if found.is_none() && <$m>::API_KEY == api_key && <$m>::NAME.ends_with("Request")
                && (<$m>::VERSION_MIN..=<$m>::VERSION_MAX).contains(&version)
            {
                found = Some((selector, version - <$m>::VERSION_MIN, version >= <$m>::FLEXIBLE_MIN));
            }
            selector += 1;
        )* };
    }
    messages::with_all_messages!(each);
    let _ = selector;
    let (selector, folded, flexible) = found?;
    let mut r = Reader::new(Bytes::copy_from_slice(frame));
    messages::RequestHeader::decode(&mut r, if flexible { 2 } else { 1 }).ok()?;
    let header_bytes = frame.len() - r.remaining();
    let mut entry = Vec::with_capacity(4 + frame.len() - header_bytes);
    entry.extend_from_slice(&selector.to_be_bytes());
    entry.extend_from_slice(&folded.to_be_bytes());
    entry.extend_from_slice(&frame[header_bytes..]);
    Some(entry)
}

fn seeds<M: Message + Default>(selector: u16, out: &mut Vec<Vec<u8>>) {
    for version in M::VERSION_MIN..=M::VERSION_MAX {
        let mut w = BytesMut::new();
        w.extend_from_slice(&selector.to_be_bytes());
        // The target folds the version into the range from the minimum.
        w.extend_from_slice(&(version - M::VERSION_MIN).to_be_bytes());
        if M::default().encode(&mut w, version).is_ok() {
            out.push(w.to_vec());
        }
    }
}

fn check<M: Message>(version: i16, body: &[u8]) -> (&'static str, bool) {
    let span = M::VERSION_MAX - M::VERSION_MIN + 1;
    let version = M::VERSION_MIN + version.rem_euclid(span);
    let mut r = Reader::new(Bytes::copy_from_slice(body));
    let Ok(value) = M::decode(&mut r, version) else {
        return (M::NAME, false);
    };
    let mut w = BytesMut::new();
    value
        .encode(&mut w, version)
        .unwrap_or_else(|e| panic!("{} v{version}: a decoded value does not encode: {e}", M::NAME));
    let again = M::decode(&mut Reader::new(w.freeze()), version)
        .unwrap_or_else(|e| panic!("{} v{version}: a re-encoded value does not decode: {e}", M::NAME));
    // Compared through Debug, which prints every field: a float64 that decoded as NaN
    // (DescribeClientQuotas, AlterClientQuotas) is not equal to itself, yet it survived.
    // Found by the request_decoder fuzz target in CI.
    if again != value {
        assert_eq!(
            format!("{again:?}"),
            format!("{value:?}"),
            "{} v{version}: the round trip changed the value",
            M::NAME
        );
    }
    (M::NAME, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_is_reachable_and_short_inputs_do_not_panic() {
        let n = message_count();
        assert!(n > 100, "{n} messages");
        for selector in 0..n {
            for version in 0..4 {
                for body in [&[][..], &[0], &[0xff; 7], &[0, 0, 0, 1, 0x61, 0, 0, 0, 0]] {
                    decode_round_trip(selector, version, body);
                }
            }
        }
    }

    /// Every seed decodes as the message it was made from, and survives the round trip.
    #[test]
    fn a_request_frame_becomes_a_corpus_entry() {
        use crate::protocol::messages::{MetadataRequest, RequestHeader};
        for version in [1i16, 9, 12] {
            let flexible = version >= MetadataRequest::FLEXIBLE_MIN;
            let mut frame = BytesMut::new();
            let header = RequestHeader {
                request_api_key: MetadataRequest::API_KEY,
                request_api_version: version,
                correlation_id: 7,
                client_id: Some("rdkafka".into()),
                ..Default::default()
            };
            header.encode(&mut frame, if flexible { 2 } else { 1 }).unwrap();
            MetadataRequest::default().encode(&mut frame, version).unwrap();
            let entry = corpus_entry_from_request(&frame).expect("an entry");
            let selector = u16::from_be_bytes([entry[0], entry[1]]);
            let folded = i16::from_be_bytes([entry[2], entry[3]]);
            assert_eq!(
                decode_round_trip(selector, folded, &entry[4..]),
                ("MetadataRequest", true)
            );
        }
        assert_eq!(
            corpus_entry_from_request(&[0, 3, 0x7f, 0]),
            None,
            "a version out of range"
        );
        assert_eq!(corpus_entry_from_request(&[0x7f, 0, 0, 0]), None, "an unknown API key");
    }

    #[test]
    fn seed_corpus_decodes() {
        let seeds = seed_corpus();
        assert!(seeds.len() > 400, "{} seeds", seeds.len());
        for seed in &seeds {
            let selector = u16::from_be_bytes([seed[0], seed[1]]);
            let version = i16::from_be_bytes([seed[2], seed[3]]);
            let (name, decoded) = decode_round_trip(selector, version, &seed[4..]);
            assert!(decoded, "a seed of {name} v{version} does not decode");
        }
    }

    /// Inputs the request_decoder fuzz target crashed on, kept after the fix: tagged fields
    /// out of order decoded, then re-encoded sorted, so the round trip changed the value.
    #[test]
    fn fuzz_regressions() {
        let cases: &[&[u8]] = &[
            &[160, 248, 2, 2, 2, 2, 2, 2, 59, 0, 58, 2, 2, 1],
            &[121, 8, 0, 2, 4, 74, 36, 61, 3, 192, 1, 0, 0, 0, 1, 0, 249, 0, 1],
        ];
        for data in cases {
            let selector = u16::from_be_bytes([data[0], data[1]]);
            let version = i16::from_be_bytes([data[2], data[3]]);
            decode_round_trip(selector, version, &data[4..]);
        }
        // AlterClientQuotas v0: one entry, no entity, one op setting "k" to NaN.
        let nan: &[u8] = &[
            0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, b'k', 0x7f, 0xf8, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(
            check::<AlterClientQuotasRequest>(0, nan),
            ("AlterClientQuotasRequest", true)
        );
    }
}
