//! Listeners and connections. A connection reads one request frame at a time, answers it,
//! then reads the next (Kafka mutes a connection while a request is in flight), so
//! responses go out in request order however many requests a client pipelines.

use std::io;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::handlers::{self, Reply, ResponsePart};
use super::Broker;
use crate::io::{Storage, StorageFile};

/// Bytes read from a socket at a time while a frame arrives, so that a frame's claimed
/// size never allocates more than what was sent plus this.
const FRAME_CHUNK_BYTES: usize = 1 << 20;

/// The connection tasks of one listener; dropping it (when `serve` is aborted at shutdown)
/// closes them all, so that no request is served once the broker has shut down.
struct Connections(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Connections {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Accepts connections up to `max.connections`; the one past it is closed at once.
pub async fn serve<S: Storage>(broker: Arc<Broker<S>>, listener: TcpListener) -> io::Result<()> {
    let permits = Arc::new(tokio::sync::Semaphore::new(broker.config.connections_max));
    let mut connections = Connections(Vec::new());
    loop {
        let (stream, _) = listener.accept().await?;
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let broker = broker.clone();
        connections.0.retain(|task| !task.is_finished());
        connections.0.push(tokio::spawn(async move {
            let _ = connection(broker, stream).await;
            drop(permit);
        }));
    }
}

async fn connection<S: Storage>(broker: Arc<Broker<S>>, mut stream: TcpStream) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    let idle = std::time::Duration::from_millis(broker.config.connection_idle_ms_max);
    let peer = stream.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default();
    loop {
        let mut size = [0u8; 4];
        // `connections.max.idle.ms`: a client that stays silent, or stops inside a frame,
        // does not hold a connection forever.
        match tokio::time::timeout(idle, stream.read_exact(&mut size)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => return Ok(()),
        }
        let size = i32::from_be_bytes(size);
        // A frame holds at least the api key, version and correlation id.
        if size < 8 || size as usize > broker.config.socket_request_max_bytes {
            return Ok(());
        }
        let Ok(frame) = tokio::time::timeout(idle, read_frame(&mut stream, size as usize)).await else {
            return Ok(());
        };
        let frame = frame?.freeze();
        let (api_key, version) = (
            i16::from_be_bytes([frame[0], frame[1]]),
            i16::from_be_bytes([frame[2], frame[3]]),
        );
        match handlers::handle(&broker, frame, &peer).await {
            Reply::Respond(bytes) => {
                stream.write_all(&bytes).await?;
                stream.flush().await?;
            }
            Reply::RespondWithFiles(parts) => {
                for part in parts {
                    match part {
                        ResponsePart::Bytes(bytes) => stream.write_all(&bytes).await?,
                        ResponsePart::File(range) => range.file.send_to(&mut stream, range.position, range.len).await?,
                    }
                }
                stream.flush().await?;
            }
            Reply::Silent => {}
            Reply::Close(why) => {
                eprintln!("klamm: closing the connection from {peer}: api key {api_key} v{version}: {why}");
                return Ok(());
            }
        }
    }
}

async fn read_frame(stream: &mut TcpStream, size: usize) -> io::Result<BytesMut> {
    let mut buf = BytesMut::with_capacity(size.min(FRAME_CHUNK_BYTES));
    while buf.len() < size {
        let want = (size - buf.len()).min(FRAME_CHUNK_BYTES);
        buf.reserve(want);
        let n = (&mut *stream).take(want as u64).read_buf(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a frame",
            ));
        }
    }
    Ok(buf)
}
