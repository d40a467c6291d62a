//! Health of a host for `nightjar status`: green, amber or red from simple
//! default thresholds (until alert rules exist) and from silence. Pure.

/// CPU usage at or above which a host is amber.
pub const CPU_AMBER: f64 = 80.0;
/// CPU usage at or above which a host is red.
pub const CPU_RED: f64 = 95.0;
/// Memory usage at or above which a host is amber.
pub const MEMORY_AMBER: f64 = 85.0;
/// Memory usage at or above which a host is red.
pub const MEMORY_RED: f64 = 95.0;
/// Fullest-disk usage at or above which a host is amber.
pub const DISK_AMBER: f64 = 85.0;
/// Fullest-disk usage at or above which a host is red.
pub const DISK_RED: f64 = 95.0;
/// A host is red after this many sampling intervals without a batch.
pub const SILENT_INTERVALS: u64 = 3;
/// Interval assumed when an agent did not report one.
pub const DEFAULT_INTERVAL_MS: u64 = 10_000;

/// The health of a host, worst first in `Ord`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Something is at or past a critical threshold, or the host is silent.
    Red,
    /// Something is at or past a warning threshold.
    Amber,
    /// All readings are below the warning thresholds.
    Green,
}

impl Health {
    /// The lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Red => "red",
            Health::Amber => "amber",
            Health::Green => "green",
        }
    }
}

/// The latest readings of one host.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HostReading {
    /// When the collector last heard from it (ms).
    pub last_seen_ms: i64,
    /// The agent's interval (ms), 0 if unknown.
    pub interval_ms: u64,
    /// `cpu_usage_percent{cpu="total"}`.
    pub cpu_percent: Option<f64>,
    /// `memory_used_percent`.
    pub memory_percent: Option<f64>,
    /// The highest `disk_used_percent` and its mountpoint.
    pub fullest_disk: Option<(f64, String)>,
}

/// Judges a host at `now_ms`; the reasons say what made it amber or red.
pub fn assess(r: &HostReading, now_ms: i64) -> (Health, Vec<String>) {
    let mut health = Health::Green;
    let mut reasons = Vec::new();
    let interval = if r.interval_ms == 0 {
        DEFAULT_INTERVAL_MS
    } else {
        r.interval_ms
    };
    let silent_ms = now_ms - r.last_seen_ms;
    if silent_ms > (SILENT_INTERVALS * interval) as i64 {
        health = Health::Red;
        reasons.push(format!("silent for {}s", silent_ms / 1000));
    }
    let mut judge = |what: &str, value: Option<f64>, amber: f64, red: f64| {
        let Some(v) = value else { return };
        let level = if v >= red {
            Health::Red
        } else if v >= amber {
            Health::Amber
        } else {
            return;
        };
        health = health.min(level);
        reasons.push(format!(
            "{what} {v:.0}% >= {:.0}%",
            if level == Health::Red { red } else { amber }
        ));
    };
    judge("cpu", r.cpu_percent, CPU_AMBER, CPU_RED);
    judge("memory", r.memory_percent, MEMORY_AMBER, MEMORY_RED);
    let disk = r.fullest_disk.as_ref();
    let disk_name = disk.map(|(_, m)| format!("disk {m}")).unwrap_or_default();
    judge(&disk_name, disk.map(|(v, _)| *v), DISK_AMBER, DISK_RED);
    (health, reasons)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(cpu: f64, mem: f64, disk: f64, silent_s: i64, expected: Health, reason: &str) {
        let now = 1_000_000;
        let r = HostReading {
            last_seen_ms: now - silent_s * 1000,
            interval_ms: 10_000,
            cpu_percent: Some(cpu),
            memory_percent: Some(mem),
            fullest_disk: Some((disk, "/var".into())),
        };
        let (health, reasons) = assess(&r, now);
        assert_eq!(health, expected, "{reasons:?}");
        assert_eq!(reasons.join("; "), reason);
    }

    #[test]
    fn thresholds_and_silence() {
        use Health::*;
        check(10.0, 20.0, 30.0, 1, Green, "");
        check(80.0, 20.0, 30.0, 1, Amber, "cpu 80% >= 80%");
        check(96.0, 20.0, 30.0, 1, Red, "cpu 96% >= 95%");
        check(10.0, 90.0, 30.0, 1, Amber, "memory 90% >= 85%");
        check(10.0, 20.0, 99.0, 1, Red, "disk /var 99% >= 95%");
        check(
            90.0,
            20.0,
            99.0,
            1,
            Red,
            "cpu 90% >= 80%; disk /var 99% >= 95%",
        );
        check(10.0, 20.0, 30.0, 30, Green, "");
        check(10.0, 20.0, 30.0, 31, Red, "silent for 31s");
    }

    #[test]
    fn missing_readings_are_not_alarming() {
        let r = HostReading {
            last_seen_ms: 0,
            interval_ms: 0,
            ..HostReading::default()
        };
        assert_eq!(assess(&r, 1_000).0, Health::Green);
    }
}
