//! Turns cumulative kernel counters into per-second rates and per-interval
//! deltas. One `Rates` lives across sampling passes; each pass calls
//! [`Rates::start`] and then reads counters by key. A key seen for the first
//! time, or whose counter went backwards (reboot, wrap, device re-created),
//! gives no value this pass.

use std::collections::HashMap;
use std::time::Instant;

/// Counter memory between passes.
#[derive(Debug, Default)]
pub struct Rates {
    previous: HashMap<String, u64>,
    current: HashMap<String, u64>,
    last_at: Option<Instant>,
    elapsed_secs: Option<f64>,
}

impl Rates {
    /// Begins a pass at `now`: the values recorded in the last pass become
    /// the baseline.
    pub fn start(&mut self, now: Instant) {
        self.elapsed_secs = self
            .last_at
            .map(|t| now.saturating_duration_since(t).as_secs_f64())
            .filter(|s| *s > 0.0);
        self.last_at = Some(now);
        self.previous = std::mem::take(&mut self.current);
    }

    /// Records `value` for `key` and returns its increase since the last pass.
    pub fn delta(&mut self, key: &str, value: u64) -> Option<u64> {
        self.current.insert(key.to_owned(), value);
        let prev = *self.previous.get(key)?;
        value.checked_sub(prev)
    }

    /// Records `value` for `key` and returns its increase per second.
    pub fn rate(&mut self, key: &str, value: u64) -> Option<f64> {
        let delta = self.delta(key, value)?;
        Some(delta as f64 / self.elapsed_secs?)
    }

    /// Seconds since the previous pass, if there was one.
    pub fn elapsed_secs(&self) -> Option<f64> {
        self.elapsed_secs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rates_deltas_and_resets() {
        let t0 = Instant::now();
        let mut r = Rates::default();
        r.start(t0);
        assert_eq!(r.rate("a", 100), None, "no baseline yet");
        r.start(t0 + Duration::from_secs(2));
        assert_eq!(r.rate("a", 300), Some(100.0));
        assert_eq!(r.delta("b", 5), None, "new key");
        r.start(t0 + Duration::from_secs(3));
        assert_eq!(r.rate("a", 50), None, "counter went backwards");
        assert_eq!(r.delta("b", 9), Some(4));
        r.start(t0 + Duration::from_secs(4));
        assert_eq!(
            r.rate("a", 60),
            Some(10.0),
            "rates resume from the new base"
        );
        r.start(t0 + Duration::from_secs(5));
        assert_eq!(
            r.delta("b", 10),
            None,
            "a key missing for a pass starts over"
        );
    }
}
