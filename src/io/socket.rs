//! A frame reader's wake-up threshold on a TCP socket (`SO_RCVLOWAT`). A large frame
//! arrives as many segments (a 1 MiB one on loopback as some 40), and without a threshold
//! the reader is woken, and reads, at nearly every one; on two cores those wake-ups cost
//! more than the copy. With the threshold at the bytes the frame still owes, the kernel
//! wakes the reader once they are in. The simulator's sockets have no descriptor, so there
//! the threshold is left alone.

use std::io;

/// Below this many bytes still to come, a frame is read as its bytes arrive: one loopback
/// segment's worth.
pub const RCVLOWAT_BYTES_MIN: usize = 64 * 1024;

/// One frame's threshold on one socket: `expect` before each read of the frame's bytes,
/// `done` after the frame. It never asks for more than the frame still owes, so a reader
/// cannot wait for bytes that will not come, and `done` puts it back at 1, so the next
/// frame's size is read as soon as it arrives. Linux caps the threshold at half the
/// largest receive buffer and then wakes the reader at the cap.
pub struct FrameLowat {
    socket: Option<i32>,
    current: usize,
}

impl FrameLowat {
    /// `socket`: the descriptor of a TCP socket, or `None` to set nothing.
    pub fn new(socket: Option<i32>) -> FrameLowat {
        FrameLowat { socket, current: 1 }
    }

    /// Before reading `wanted` more bytes of the frame, all of which will come.
    pub fn expect(&mut self, wanted: usize) -> io::Result<()> {
        let threshold = if wanted >= RCVLOWAT_BYTES_MIN { wanted } else { 1 };
        self.set(threshold)
    }

    /// The frame is read: back to waking at the first byte.
    pub fn done(&mut self) -> io::Result<()> {
        self.set(1)
    }

    fn set(&mut self, threshold: usize) -> io::Result<()> {
        let Some(socket) = self.socket else {
            return Ok(());
        };
        if threshold != self.current {
            set_rcvlowat(socket, threshold)?;
            self.current = threshold;
        }
        Ok(())
    }
}

fn set_rcvlowat(socket: i32, bytes: usize) -> io::Result<()> {
    let value = bytes.min(i32::MAX as usize) as libc::c_int;
    // SAFETY: `socket` is an open descriptor its caller owns for the call, and the option
    // value is a c_int that outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            socket,
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The descriptor of a tokio TCP stream, for `FrameLowat`; `None` in the simulator.
pub fn tcp_descriptor(stream: &tokio::net::TcpStream) -> Option<i32> {
    #[cfg(not(madsim))]
    {
        Some(std::os::fd::AsRawFd::as_raw_fd(stream))
    }
    #[cfg(madsim)]
    {
        let _ = stream;
        None
    }
}

#[cfg(all(test, not(madsim)))]
mod tests {
    use super::*;

    fn rcvlowat(socket: i32) -> usize {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: an open socket, and a c_int with its length for the kernel to fill.
        let rc = unsafe {
            libc::getsockopt(
                socket,
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        value as usize
    }

    /// The threshold follows what the frame still owes (at most the kernel's cap), is 1
    /// for a small remainder, and is 1 again when the frame is done.
    #[tokio::test]
    async fn the_threshold_is_what_the_frame_still_owes_then_one() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let socket = tcp_descriptor(&stream).expect("a real socket");
        let mut lowat = FrameLowat::new(Some(socket));
        // (bytes the frame still owes, the threshold wanted; 0: the kernel's cap, below the ask)
        let cases = [
            (1 << 20, 1 << 20),
            (300_000, 300_000),
            (RCVLOWAT_BYTES_MIN, RCVLOWAT_BYTES_MIN),
            (RCVLOWAT_BYTES_MIN - 1, 1),
            (10, 1),
            (256 << 20, 0),
        ];
        for (owed, wanted) in cases {
            lowat.expect(owed).unwrap();
            let got = rcvlowat(socket);
            if wanted == 0 {
                assert!(got > 1 && got < owed, "{owed} owed: capped at {got}");
            } else {
                assert_eq!(got, wanted, "{owed} owed");
            }
            lowat.done().unwrap();
            assert_eq!(rcvlowat(socket), 1, "{owed} owed: back to 1");
        }
        // Without a socket nothing is set, and nothing fails.
        let mut none = FrameLowat::new(None);
        none.expect(1 << 20).unwrap();
        none.done().unwrap();
    }
}
