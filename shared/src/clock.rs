//! Wall-clock time for leases, TTLs and cache freshness.
//!
//! Never used for anything that lands in a report: reports take their time from the run
//! (DESIGN.md §5, deterministic output).

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    now_ms() / 1000
}
