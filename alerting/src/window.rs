//! The sliding window a threshold rule aggregates over: the points of one
//! series whose timestamps lie within `window` of the newest. Pure.

use std::collections::VecDeque;

use super::rules::WindowAgg;
use nightjar_model::model::Point;

/// Points of one series inside the rule's window.
#[derive(Clone, Debug, Default)]
pub struct Window {
    points: VecDeque<Point>,
}

impl Window {
    /// Adds a point (older or equal timestamps than the newest are ignored)
    /// and drops those that fell out of `window_ms`. Returns whether it was
    /// taken.
    pub fn push(&mut self, p: Point, window_ms: i64) -> bool {
        if self
            .points
            .back()
            .is_some_and(|b| b.timestamp_ms >= p.timestamp_ms)
        {
            return false;
        }
        self.points.push_back(p);
        while self
            .points
            .front()
            .is_some_and(|f| f.timestamp_ms <= p.timestamp_ms - window_ms)
        {
            self.points.pop_front();
        }
        if self.points.is_empty() {
            self.points.push_back(p);
        }
        true
    }

    /// The aggregate of the points in the window (NaN points skipped); NaN
    /// when there is none.
    pub fn value(&self, agg: WindowAgg) -> f64 {
        let values = self.points.iter().map(|p| p.value).filter(|v| !v.is_nan());
        match agg {
            WindowAgg::Last => self.points.back().map_or(f64::NAN, |p| p.value),
            WindowAgg::Min => values.fold(f64::NAN, f64::min),
            WindowAgg::Max => values.fold(f64::NAN, f64::max),
            WindowAgg::Avg => {
                let (sum, n) = values.fold((0.0, 0u32), |(s, n), v| (s + v, n + 1));
                if n == 0 { f64::NAN } else { sum / f64::from(n) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_window_and_aggregates() {
        let mut w = Window::default();
        for (t, v) in [(0, 10.0), (20_000, 20.0), (40_000, 30.0), (60_000, 60.0)] {
            assert!(w.push(Point::new(t, v), 60_000));
        }
        // 0 fell out: the window is (0, 60s].
        assert_eq!(w.value(WindowAgg::Avg), 110.0 / 3.0);
        assert_eq!(w.value(WindowAgg::Min), 20.0);
        assert_eq!(w.value(WindowAgg::Max), 60.0);
        assert_eq!(w.value(WindowAgg::Last), 60.0);
        assert!(
            !w.push(Point::new(60_000, 1.0), 60_000),
            "equal timestamp refused"
        );
    }

    #[test]
    fn zero_window_is_the_newest_point() {
        let mut w = Window::default();
        w.push(Point::new(0, 5.0), 0);
        w.push(Point::new(1, 7.0), 0);
        assert_eq!(w.value(WindowAgg::Avg), 7.0);
    }
}
