//! One connection to one broker: frames, correlation ids, and the API versions both sides
//! support (ApiVersions first, as every Kafka client does).

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use super::ClientError;
use crate::io::socket::{self, FrameLowat};
use crate::protocol::codec::{encode_noting_records, records_length_prefix, Message, Reader};
use crate::protocol::messages::{ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader};

/// The largest response frame the client reads.
pub const RESPONSE_BYTES_MAX: usize = 256 * 1024 * 1024;

pub struct Connection {
    stream: TcpStream,
    client_id: String,
    correlation_id: i32,
    /// api key -> (min, max) the broker supports.
    versions: BTreeMap<i16, (i16, i16)>,
    timeout: Duration,
}

impl Connection {
    pub async fn connect(address: &str, client_id: &str, timeout: Duration) -> Result<Connection, ClientError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| ClientError::Timeout(format!("connecting to {address}")))??;
        let _ = stream.set_nodelay(true);
        let mut connection = Connection {
            stream,
            client_id: client_id.to_string(),
            correlation_id: 0,
            versions: BTreeMap::new(),
            timeout,
        };
        let request = ApiVersionsRequest {
            client_software_name: "klamm".into(),
            client_software_version: env!("CARGO_PKG_VERSION").into(),
            ..Default::default()
        };
        let response: ApiVersionsResponse = connection.request_at(&request, 3).await?;
        if response.error_code != 0 {
            return Err(ClientError::Kafka(response.error_code, "ApiVersions".into()));
        }
        connection.versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(connection)
    }

    /// The highest version both sides support.
    pub fn version<M: Message>(&self) -> Result<i16, ClientError> {
        version::<M>(&self.versions)
    }

    /// Splits the connection for pipelining: the writer frames and writes requests, the
    /// reader reads their responses, which come back in the order the requests went out.
    pub fn split(self) -> (RequestWriter, ResponseReader) {
        let (read, write) = tokio::io::split(self.stream);
        let writer = RequestWriter {
            half: write,
            client_id: self.client_id,
            correlation_id: self.correlation_id,
            versions: self.versions,
        };
        (writer, ResponseReader { half: read })
    }

    pub async fn request<Req: Message, Resp: Message>(&mut self, request: &Req) -> Result<(Resp, i16), ClientError> {
        let version = self.version::<Req>()?;
        Ok((self.request_at(request, version).await?, version))
    }

    /// Writes a request without waiting for its answer, which `receive` reads later. Until
    /// then the connection carries nothing else.
    pub async fn send<Req: Message>(&mut self, request: &Req) -> Result<(i32, i16), ClientError> {
        let version = self.version::<Req>()?;
        let frame = self.frame(request, version)?;
        let correlation_id = self.correlation_id;
        tokio::time::timeout(self.timeout, self.write_frame(&frame))
            .await
            .map_err(|_| ClientError::Timeout(Req::NAME.to_string()))??;
        Ok((correlation_id, version))
    }

    /// The answer to a request written with `send`.
    pub async fn receive<Req: Message, Resp: Message>(
        &mut self,
        correlation_id: i32,
        version: i16,
    ) -> Result<Resp, ClientError> {
        tokio::time::timeout(self.timeout, async {
            let body = self.read_frame().await?;
            decode_response::<Req, Resp>(body, version, correlation_id)
        })
        .await
        .map_err(|_| ClientError::Timeout(Req::NAME.to_string()))?
    }

    pub async fn request_at<Req: Message, Resp: Message>(
        &mut self,
        request: &Req,
        version: i16,
    ) -> Result<Resp, ClientError> {
        let frame = self.frame(request, version)?;
        let correlation_id = self.correlation_id;
        tokio::time::timeout(self.timeout, async {
            self.write_frame(&frame).await?;
            let body = self.read_frame().await?;
            decode_response::<Req, Resp>(body, version, correlation_id)
        })
        .await
        .map_err(|_| ClientError::Timeout(Req::NAME.to_string()))?
    }

    fn frame<Req: Message>(&mut self, request: &Req, version: i16) -> Result<Bytes, ClientError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        frame(&self.client_id, self.correlation_id, request, version)
    }

    async fn write_frame(&mut self, frame: &[u8]) -> Result<(), ClientError> {
        self.stream.write_all(frame).await?;
        self.stream.flush().await?;
        Ok(())
    }

    async fn read_frame(&mut self) -> Result<Bytes, ClientError> {
        let socket = socket::tcp_descriptor(&self.stream);
        read_frame(&mut self.stream, socket).await
    }
}

/// The writing half of a split connection.
pub struct RequestWriter {
    half: WriteHalf<TcpStream>,
    client_id: String,
    correlation_id: i32,
    versions: BTreeMap<i16, (i16, i16)>,
}

impl RequestWriter {
    /// The highest version both sides support.
    pub fn version<M: Message>(&self) -> Result<i16, ClientError> {
        version::<M>(&self.versions)
    }

    /// Writes one request whose records fields are all empty, with `records` in their
    /// places, in the order the request encodes its records fields; the records are not
    /// copied into the frame (a vectored write).
    pub async fn write_with_records<Req: Message>(
        &mut self,
        request: &Req,
        version: i16,
        records: &[Bytes],
    ) -> Result<i32, ClientError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let parts = frame_with_records(&self.client_id, self.correlation_id, request, version, records)?;
        write_parts(&mut self.half, &parts).await?;
        self.half.flush().await?;
        Ok(self.correlation_id)
    }
}

/// Writes `parts` one after another with vectored writes, however few bytes each write
/// takes.
async fn write_parts<W: AsyncWrite + Unpin>(writer: &mut W, parts: &[Bytes]) -> Result<(), ClientError> {
    let mut at = 0;
    let mut offset = 0;
    while at < parts.len() {
        let slices: Vec<std::io::IoSlice<'_>> = std::iter::once(&parts[at][offset..])
            .chain(parts[at + 1..].iter().map(|p| &p[..]))
            .map(std::io::IoSlice::new)
            .collect();
        let mut written = writer.write_vectored(&slices).await?;
        if written == 0 {
            return Err(ClientError::Protocol("connection closed while writing".into()));
        }
        while at < parts.len() && written >= parts[at].len() - offset {
            written -= parts[at].len() - offset;
            at += 1;
            offset = 0;
        }
        offset += written;
    }
    Ok(())
}

/// A request frame in parts: the encoded request, cut where each (empty) records field
/// was, with each of `records` and its length prefix in between.
pub fn frame_with_records<Req: Message>(
    client_id: &str,
    correlation_id: i32,
    request: &Req,
    version: i16,
    records: &[Bytes],
) -> Result<Vec<Bytes>, ClientError> {
    let mut w = frame_head::<Req>(client_id, correlation_id, version)?;
    let positions = encode_noting_records(request, &mut w, version)?;
    if positions.len() != records.len() {
        return Err(ClientError::Protocol(format!(
            "{} records fields for {} records",
            positions.len(),
            records.len()
        )));
    }
    let compact = version >= Req::FLEXIBLE_MIN;
    let empty = records_length_prefix(0, compact)?.len();
    let mut prefixes = Vec::with_capacity(records.len());
    let mut size = w.len() - 4;
    for (&at, r) in positions.iter().zip(records) {
        if w.get(at..at + empty) != Some(&records_length_prefix(0, compact)?[..]) {
            return Err(ClientError::Protocol("a records field to fill is not empty".into()));
        }
        let prefix = records_length_prefix(r.len(), compact)?.freeze();
        size = size - empty + prefix.len() + r.len();
        prefixes.push(prefix);
    }
    let size = i32::try_from(size).map_err(|_| ClientError::Protocol(format!("a request of {size} bytes")))?;
    w[..4].copy_from_slice(&size.to_be_bytes());
    let head = w.freeze();
    let mut parts = Vec::with_capacity(3 * records.len() + 1);
    let mut last = 0;
    for ((&at, r), prefix) in positions.iter().zip(records).zip(prefixes) {
        parts.push(head.slice(last..at));
        parts.push(prefix);
        parts.push(r.clone());
        last = at + empty;
    }
    parts.push(head.slice(last..));
    parts.retain(|p| !p.is_empty());
    Ok(parts)
}

/// The reading half of a split connection.
pub struct ResponseReader {
    half: ReadHalf<TcpStream>,
}

impl ResponseReader {
    /// Reads the next response, which must answer the request with `correlation_id`.
    pub async fn read<Req: Message, Resp: Message>(
        &mut self,
        version: i16,
        correlation_id: i32,
    ) -> Result<Resp, ClientError> {
        // Produce responses are small: no wake-up threshold to set.
        let body = read_frame(&mut self.half, None).await?;
        decode_response::<Req, Resp>(body, version, correlation_id)
    }
}

fn version<M: Message>(versions: &BTreeMap<i16, (i16, i16)>) -> Result<i16, ClientError> {
    let (min, max) = versions
        .get(&M::API_KEY)
        .copied()
        .ok_or(ClientError::Unsupported(M::NAME))?;
    let version = max.min(M::VERSION_MAX);
    if version < min.max(M::VERSION_MIN) {
        return Err(ClientError::Unsupported(M::NAME));
    }
    Ok(version)
}

/// A request frame's size (0 until the caller knows it) and its header.
fn frame_head<Req: Message>(client_id: &str, correlation_id: i32, version: i16) -> Result<BytesMut, ClientError> {
    let mut w = BytesMut::with_capacity(256);
    w.put_i32(0);
    let header = RequestHeader {
        request_api_key: Req::API_KEY,
        request_api_version: version,
        correlation_id,
        client_id: Some(client_id.to_string()),
        ..Default::default()
    };
    header.encode(&mut w, if version >= Req::FLEXIBLE_MIN { 2 } else { 1 })?;
    Ok(w)
}

fn frame<Req: Message>(
    client_id: &str,
    correlation_id: i32,
    request: &Req,
    version: i16,
) -> Result<Bytes, ClientError> {
    let mut w = frame_head::<Req>(client_id, correlation_id, version)?;
    request.encode(&mut w, version)?;
    let size = (w.len() - 4) as i32;
    w[..4].copy_from_slice(&size.to_be_bytes());
    Ok(w.freeze())
}

/// One response frame's body; its size is checked against `RESPONSE_BYTES_MAX` and the
/// buffer grows with the bytes that arrive, never ahead of them by more than 1 MiB. With
/// `socket`, the descriptor of the TCP socket under `stream`, a large frame is read with
/// a wake-up threshold (`io::socket::FrameLowat`).
async fn read_frame<R: AsyncRead + Unpin>(stream: &mut R, socket: Option<i32>) -> Result<Bytes, ClientError> {
    let mut size = [0u8; 4];
    stream.read_exact(&mut size).await?;
    let size = i32::from_be_bytes(size);
    if size < 4 || size as usize > RESPONSE_BYTES_MAX {
        return Err(ClientError::Protocol(format!("response frame of {size} bytes")));
    }
    let mut body = BytesMut::with_capacity((size as usize).min(1 << 20));
    let mut lowat = FrameLowat::new(socket);
    while body.len() < size as usize {
        let want = (size as usize - body.len()).min(1 << 20);
        lowat.expect(want)?;
        body.reserve(want);
        if (&mut *stream).take(want as u64).read_buf(&mut body).await? == 0 {
            return Err(ClientError::Protocol("connection closed inside a response".into()));
        }
    }
    lowat.done()?;
    Ok(body.freeze())
}

/// A response frame's body (after the size): its header, whose correlation id must be the
/// request's, and the response to `Req` in `version`. The bytes come from whatever is at
/// the other end, so nothing here may panic (the `client_response` fuzz target).
pub fn decode_response<Req: Message, Resp: Message>(
    body: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<Resp, ClientError> {
    let mut r = Reader::new(body);
    // ApiVersions answers with a v0 header whatever its version (KIP-511).
    let flexible = version >= Req::FLEXIBLE_MIN && Req::API_KEY != ApiVersionsRequest::API_KEY;
    let header = ResponseHeader::decode(&mut r, if flexible { 1 } else { 0 })?;
    if header.correlation_id != correlation_id {
        return Err(ClientError::Protocol(format!(
            "correlation id {} for request {correlation_id}",
            header.correlation_id
        )));
    }
    Ok(Resp::decode(&mut r, version)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::messages::{produce_request, ProduceRequest};

    /// Frames of every size around the wake-up threshold (and past the kernel's cap on it),
    /// written in uneven pieces with pauses, one at a time, each read whole: the reader never
    /// waits for bytes a frame does not owe, and a small frame after a large one is not
    /// held back. A hang fails on the timeout.
    #[cfg(not(madsim))]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn frames_arriving_in_pieces_are_read_whole_whatever_their_size() {
        let sizes = [
            4,
            1_000,
            socket::RCVLOWAT_BYTES_MIN - 1,
            socket::RCVLOWAT_BYTES_MIN,
            200_000,
            1 << 20,
            (1 << 20) + 1,
            5 << 20,
            12,
            3 << 20,
            4,
        ];
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        // As a broker answers requests: the next frame only once the last one is read, so
        // nothing after a frame's bytes could wake a reader that waits for too many.
        let (read_tx, mut read_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
        let writer = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut piece = 1_000usize;
            for (n, size) in sizes.into_iter().enumerate() {
                if n > 0 {
                    assert_eq!(read_rx.recv().await, Some(n - 1));
                }
                let mut frame = (size as i32).to_be_bytes().to_vec();
                frame.extend((0..size).map(|i| (i * 7 + n) as u8));
                for chunk in frame.chunks(piece) {
                    stream.write_all(chunk).await.unwrap();
                    stream.flush().await.unwrap();
                    if chunk.len() % 3 == 0 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                piece = piece * 5 % 700_001 + 1;
            }
            stream
        });
        let mut stream = TcpStream::connect(address).await.unwrap();
        let socket = socket::tcp_descriptor(&stream);
        for (n, size) in sizes.into_iter().enumerate() {
            let body = tokio::time::timeout(Duration::from_secs(20), read_frame(&mut stream, socket))
                .await
                .unwrap_or_else(|_| panic!("frame {n} of {size} bytes: the reader hung"))
                .unwrap();
            assert_eq!(body.len(), size, "frame {n}");
            assert!(
                body.iter().enumerate().all(|(i, &b)| b == (i * 7 + n) as u8),
                "frame {n}: its own bytes, in order"
            );
            let _ = read_tx.send(n); // the writer is gone after the last frame
        }
        drop(writer.await.unwrap());
    }

    /// A produce request with these (topic, partitions' records) and the same request
    /// with its records fields empty.
    fn requests(topics: &[(&str, &[&[u8]])]) -> (ProduceRequest, ProduceRequest, Vec<Bytes>) {
        let request = |fill: bool| ProduceRequest {
            acks: -1,
            timeout_ms: 30_000,
            topic_data: topics
                .iter()
                .map(|(name, partitions)| produce_request::TopicProduceData {
                    name: name.to_string(),
                    partition_data: partitions
                        .iter()
                        .enumerate()
                        .map(|(i, r)| produce_request::PartitionProduceData {
                            index: i as i32,
                            records: Some(if fill { Bytes::copy_from_slice(r) } else { Bytes::new() }),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let records = topics
            .iter()
            .flat_map(|(_, p)| p.iter().map(|r| Bytes::copy_from_slice(r)))
            .collect();
        (request(true), request(false), records)
    }

    #[test]
    fn a_frame_in_parts_is_the_frame_with_the_records_copied_in() {
        let big = vec![7u8; 70_000];
        let cases: &[&[(&str, &[&[u8]])]] = &[
            &[("t", &[b"batch"])],
            &[("t", &[b"one", b"two", b"three"])],
            &[("a", &[b"x"]), ("b", &[b"", b"yy"]), ("c", &[&big])],
            &[("t", &[&big, &big])],
        ];
        for topics in cases {
            for version in [3, 8, 9, 11] {
                let (full, empty, records) = requests(topics);
                let want = frame("c", 42, &full, version).unwrap();
                let parts = frame_with_records("c", 42, &empty, version, &records).unwrap();
                let got: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
                assert_eq!(got, &want[..], "v{version} {topics:?}");
                // The records are the caller's buffers, not copies.
                for r in records.iter().filter(|r| !r.is_empty()) {
                    assert!(parts.iter().any(|p| p.as_ptr() == r.as_ptr()), "v{version}");
                }
            }
        }
        // A count of records that does not match the request's records fields.
        let (_, empty, records) = requests(&[("t", &[b"a", b"b"])]);
        assert!(frame_with_records("c", 1, &empty, 9, &records[..1]).is_err());
        // A records field that is not empty.
        let (full, _, records) = requests(&[("t", &[b"a"])]);
        assert!(frame_with_records("c", 1, &full, 9, &records).is_err());
    }

    /// A writer that takes at most `step` bytes a call, from the first non-empty slice
    /// only, as a socket with a nearly full buffer does; with a `step` of 0, nothing.
    struct Trickle {
        written: Vec<u8>,
        step: usize,
        calls: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let n = buf.len().min(self.step);
            self.written.extend_from_slice(&buf[..n]);
            self.calls += 1;
            std::task::Poll::Ready(Ok(n))
        }

        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }

        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[test]
    fn parts_are_written_whole_and_in_order_however_short_the_writes() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        let parts: Vec<Bytes> = [&b"head"[..], b"", b"x", b"a longer part of the frame", b"yz"]
            .iter()
            .map(|p| Bytes::copy_from_slice(p))
            .collect();
        let want: Vec<u8> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        for step in [1, 2, 3, 4, 5, 7, 26, 27, 1000] {
            let mut writer = Trickle {
                written: Vec::new(),
                step,
                calls: 0,
            };
            runtime.block_on(write_parts(&mut writer, &parts)).expect("written");
            assert_eq!(writer.written, want, "{step} bytes a write");
            assert!(writer.calls >= want.len().div_ceil(step), "{step} bytes a write");
        }
        // A writer that takes nothing is a closed connection, not a loop.
        let mut closed = Trickle {
            written: Vec::new(),
            step: 0,
            calls: 0,
        };
        assert!(runtime.block_on(write_parts(&mut closed, &parts)).is_err());
        assert_eq!(closed.calls, 1);
    }
}
