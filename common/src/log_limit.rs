//! Rate-limited logging: a log line that input can trigger per sample,
//! packet or request (a malformed statsd line, a rejected sample, a refused
//! token) is written at most once per interval, with the count of the
//! lines held back since the last one. Whatever is held back is still
//! counted by its caller's metrics; only the log is limited.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lets one line through per `EVERY_SECS` seconds. The interval is part of
/// the type so that a struct of counters holding one can derive `Default`.
#[derive(Debug, Default)]
pub struct RateLimitedLog<const EVERY_SECS: u64> {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last: Option<Instant>,
    suppressed: u64,
}

impl<const EVERY_SECS: u64> RateLimitedLog<EVERY_SECS> {
    /// The interval between two lines let through.
    pub const EVERY: Duration = Duration::from_secs(EVERY_SECS);

    /// A limiter letting the first line through at once, then one per
    /// interval. `const`, so it can be a `static` beside the code that logs.
    pub const fn new() -> RateLimitedLog<EVERY_SECS> {
        RateLimitedLog {
            state: Mutex::new(State {
                last: None,
                suppressed: 0,
            }),
        }
    }

    /// Whether to log now: `Some(n)` with the number of lines held back
    /// since the last one let through, or `None` (this one is held back
    /// and counted).
    pub fn due(&self) -> Option<u64> {
        self.due_at(Instant::now())
    }

    /// [`RateLimitedLog::due`] at a given instant (for tests).
    pub fn due_at(&self, now: Instant) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let due = state
            .last
            .is_none_or(|last| now.saturating_duration_since(last) >= Self::EVERY);
        if due {
            state.last = Some(now);
            Some(std::mem::take(&mut state.suppressed))
        } else {
            state.suppressed += 1;
            None
        }
    }

    /// Forgets the last line, so the next one is let through: for a
    /// condition that ended (a check that recovered) and may start again.
    pub fn reset(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.last = None;
        state.suppressed = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_held_back() {
        let log = RateLimitedLog::<10>::new();
        let t0 = Instant::now();
        assert_eq!(log.due_at(t0), Some(0), "the first line goes through");
        assert_eq!(log.due_at(t0 + Duration::from_secs(1)), None);
        assert_eq!(log.due_at(t0 + Duration::from_secs(9)), None);
        assert_eq!(
            log.due_at(t0 + Duration::from_secs(10)),
            Some(2),
            "after the interval, with the two held back"
        );
        assert_eq!(log.due_at(t0 + Duration::from_secs(11)), None);
        log.reset();
        assert_eq!(log.due_at(t0 + Duration::from_secs(12)), Some(0));
    }
}
