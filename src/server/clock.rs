//! The shell's one clock: wall time in milliseconds since the Unix epoch, for record
//! timestamps, retention and segment rolls. Cores take it as `now`. Under madsim this reads
//! the simulated clock.

pub fn now_ms() -> i64 {
    // `clock_gettime` itself rather than `SystemTime::now().duration_since(UNIX_EPOCH)`:
    // the producer stamps every record with this, and the conversions and checks cost as
    // much as the read. madsim overrides this very symbol, so the simulator still sees
    // its own clock.
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is a valid, writable timespec for the call's duration.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
    assert_eq!(rc, 0, "CLOCK_REALTIME is always readable");
    now.tv_sec * 1000 + now.tv_nsec / 1_000_000
}

/// The monotonic clock, for deadlines (tokio's, which madsim simulates).
pub fn monotonic() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

#[cfg(test)]
mod tests {
    #[test]
    fn now_ms_is_the_system_clock_in_milliseconds() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let now = super::now_ms();
        let after = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        assert!(before <= now && now <= after, "{before} <= {now} <= {after}");
    }
}
