//! Silences (matchers, a time range, author, comment) and recurring
//! maintenance windows. A silenced alert still changes state and is
//! recorded; only its notifications are held back. Pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use nightjar_model::selector::Matcher;

/// A silence as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// Id (`nightjar silence expire ID`).
    pub id: String,
    /// Matchers on alert labels (`alertname`, `host`, rule labels, ...), as
    /// written: `k=v`, `k!=v`, `k=~re`, `k!~re`.
    pub matchers: Vec<String>,
    /// From (ms).
    pub starts_ms: i64,
    /// Until (ms).
    pub ends_ms: i64,
    /// Who.
    pub author: String,
    /// Why.
    pub comment: String,
    /// When it was made.
    pub created_ms: i64,
}

/// Compiles matcher texts; the error names the matcher.
pub fn compile(texts: &[String]) -> Result<Vec<Matcher>, String> {
    texts.iter().map(|t| Matcher::parse(t)).collect()
}

fn all_match(matchers: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
    matchers
        .iter()
        .all(|m| m.matches(labels.get(&m.name).map(String::as_str)))
}

impl Silence {
    /// Whether it is in force at `now`.
    pub fn is_active(&self, now: i64) -> bool {
        self.starts_ms <= now && now < self.ends_ms
    }

    /// Whether it silences an alert with `labels` at `now`.
    pub fn silences(&self, labels: &BTreeMap<String, String>, now: i64) -> bool {
        self.is_active(now) && compile(&self.matchers).is_ok_and(|m| all_match(&m, labels))
    }
}

/// A weekly maintenance window from the config: on the given weekdays,
/// from `start` (minutes after midnight UTC) for `duration`.
#[derive(Clone, Debug)]
pub struct Maintenance {
    /// Its name, for logs and history.
    pub name: String,
    /// Matchers on alert labels.
    pub matchers: Vec<Matcher>,
    /// Weekdays, 0 = Monday.
    pub weekdays: Vec<u8>,
    /// Start, minutes after midnight UTC.
    pub start_minute: u32,
    /// Length (ms).
    pub duration_ms: i64,
    /// A one-off window from this time (epoch ms) for `duration_ms`,
    /// instead of a weekly one.
    pub once_from_ms: Option<i64>,
}

const DAY_MS: i64 = 86_400_000;

impl Maintenance {
    /// Whether the window is open at `now`.
    pub fn is_open(&self, now: i64) -> bool {
        if let Some(from) = self.once_from_ms {
            return from <= now && now < from + self.duration_ms;
        }
        // A window may run past midnight: check windows starting today and
        // on the previous days it could still cover.
        let days_back = (self.duration_ms / DAY_MS) + 1;
        let today = now.div_euclid(DAY_MS);
        (0..=days_back).any(|back| {
            let day = today - back;
            // 1970-01-01 was a Thursday (weekday 3).
            let weekday = (day + 3).rem_euclid(7) as u8;
            let start = day * DAY_MS + i64::from(self.start_minute) * 60_000;
            self.weekdays.contains(&weekday) && start <= now && now < start + self.duration_ms
        })
    }

    /// The times it is open within `[from_ms, to_ms)`, sorted (a window
    /// running past midnight included from the day it starts).
    pub fn intervals(&self, from_ms: i64, to_ms: i64) -> Vec<(i64, i64)> {
        if let Some(start) = self.once_from_ms {
            let (a, b) = (start.max(from_ms), (start + self.duration_ms).min(to_ms));
            return if a < b { vec![(a, b)] } else { Vec::new() };
        }
        let days_back = (self.duration_ms / DAY_MS) + 1;
        let first = from_ms.div_euclid(DAY_MS) - days_back;
        let last = to_ms.div_euclid(DAY_MS);
        (first..=last)
            .filter(|day| self.weekdays.contains(&((day + 3).rem_euclid(7) as u8)))
            .filter_map(|day| {
                let start = day * DAY_MS + i64::from(self.start_minute) * 60_000;
                let (a, b) = (start.max(from_ms), (start + self.duration_ms).min(to_ms));
                (a < b).then_some((a, b))
            })
            .collect()
    }

    /// Whether it covers an alert with `labels` at `now`.
    pub fn covers(&self, labels: &BTreeMap<String, String>, now: i64) -> bool {
        self.is_open(now) && all_match(&self.matchers, labels)
    }
}

/// Parses a weekday name (`mon`..`sun`, or full names).
pub fn weekday(name: &str) -> Option<u8> {
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let lower = name.to_ascii_lowercase();
    days.iter()
        .position(|d| lower.starts_with(d))
        .map(|p| p as u8)
}

/// Parses `HH:MM` into minutes after midnight.
pub fn clock_time(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn silence_matches_labels_within_its_time() {
        let s = Silence {
            id: "s1".into(),
            matchers: vec!["host=~db-.*".into(), "alertname=disk_full".into()],
            starts_ms: 100,
            ends_ms: 200,
            author: "ann".into(),
            comment: "resizing".into(),
            created_ms: 100,
        };
        let l = labels(&[("host", "db-1"), ("alertname", "disk_full")]);
        assert!(s.silences(&l, 150));
        assert!(!s.silences(&l, 200));
        assert!(!s.silences(&l, 99));
        assert!(!s.silences(
            &labels(&[("host", "web-1"), ("alertname", "disk_full")]),
            150
        ));
    }

    #[test]
    fn maintenance_window_recurs_weekly_and_crosses_midnight() {
        // Saturdays 23:00 for 2 h (UTC). 1970-01-03 was a Saturday.
        let m = Maintenance {
            name: "patching".into(),
            matchers: vec![],
            weekdays: vec![weekday("sat").unwrap()],
            start_minute: clock_time("23:00").unwrap(),
            duration_ms: 2 * 3_600_000,
            once_from_ms: None,
        };
        let sat = 2 * DAY_MS;
        // As intervals: the Saturday night and the next one, cut to the range.
        assert_eq!(
            m.intervals(sat, sat + 8 * DAY_MS),
            [
                (sat + 23 * 3_600_000, sat + 25 * 3_600_000),
                (sat + 7 * DAY_MS + 23 * 3_600_000, sat + 8 * DAY_MS)
            ]
        );
        assert_eq!(
            m.intervals(sat + DAY_MS, sat + 2 * DAY_MS),
            [(sat + DAY_MS, sat + 25 * 3_600_000)],
            "Sunday starts inside Saturday's window"
        );
        let once = Maintenance {
            once_from_ms: Some(1_000),
            duration_ms: 500,
            weekdays: vec![],
            ..m.clone()
        };
        assert!(once.is_open(1_200) && !once.is_open(1_500) && !once.is_open(999));
        assert_eq!(once.intervals(0, 1_300), [(1_000, 1_300)]);
        assert!(!m.is_open(sat + 22 * 3_600_000));
        assert!(m.is_open(sat + 23 * 3_600_000));
        assert!(
            m.is_open(sat + 24 * 3_600_000 + 59 * 60_000),
            "Sunday 00:59"
        );
        assert!(!m.is_open(sat + 25 * 3_600_000), "Sunday 01:00");
        assert!(
            m.is_open(sat + 7 * DAY_MS + 23 * 3_600_000 + 1),
            "next Saturday"
        );
        assert!(
            !m.is_open(sat + DAY_MS + 23 * 3_600_000),
            "not Sunday 23:00"
        );
        assert_eq!(weekday("Monday"), Some(0));
        assert_eq!(clock_time("24:00"), None);
    }
}
