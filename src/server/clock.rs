//! The shell's one clock: wall time in milliseconds since the Unix epoch, for record
//! timestamps, retention and segment rolls. Cores take it as `now`. Under madsim this reads
//! the simulated clock.

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The monotonic clock, for deadlines (tokio's, which madsim simulates).
pub fn monotonic() -> tokio::time::Instant {
    tokio::time::Instant::now()
}
