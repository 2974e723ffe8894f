//! The one clock: wall time for leases, visibility timeouts, deduplication windows, TTLs and
//! cache freshness.
//!
//! Every component that needs the time takes a [`Clock`] (the ports carry one), so tests can
//! use [`Clock::manual`] and advance time instead of sleeping. Never used for anything that
//! lands in a report: reports take their time from the run (deterministic output).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of "now". Cheap to clone; clones of a manual clock share its time.
#[derive(Clone, Debug)]
pub struct Clock {
    manual: Option<Arc<AtomicI64>>,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::system()
    }
}

impl Clock {
    /// The machine's wall clock.
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock that stands still at `start_ms` (epoch millis) until [`Clock::advance`]d.
    pub fn manual(start_ms: i64) -> Clock {
        Clock {
            manual: Some(Arc::new(AtomicI64::new(start_ms))),
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match &self.manual {
            Some(ms) => ms.load(Ordering::SeqCst),
            None => system_now_ms(),
        }
    }

    /// Seconds since the Unix epoch.
    pub fn now_secs(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    /// Moves a manual clock forward. Returns `false` (and does nothing) on the system clock,
    /// whose time only passes.
    pub fn advance(&self, by: Duration) -> bool {
        match &self.manual {
            Some(ms) => {
                ms.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// Whether this clock is a manual one (tests).
    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }
}

fn system_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let clock = Clock::manual(1_000);
        let other = clock.clone();
        assert_eq!(clock.now_ms(), 1_000);
        assert!(other.advance(Duration::from_millis(2_500)));
        assert_eq!(clock.now_ms(), 3_500);
        assert_eq!(clock.now_secs(), 3);
    }

    #[test]
    fn system_clock_cannot_be_advanced() {
        let clock = Clock::system();
        let before = clock.now_ms();
        assert!(!clock.advance(Duration::from_secs(3600)));
        assert!(clock.now_ms() - before < 3_600_000);
    }
}
