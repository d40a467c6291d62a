//! Health of a host for `nightjar status`: the worst firing alert of the
//! host decides — critical is red, warning amber, none green. Pure.

/// The health of a host, worst first in `Ord`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// A critical alert fires (host_down included).
    Red,
    /// A warning alert fires.
    Amber,
    /// No alert fires.
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

/// The latest readings of one host, shown beside its health.
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

/// One alert of the host as `ListAlerts` reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct HostAlert<'a> {
    /// `pending`, `firing` or `flapping`.
    pub state: &'a str,
    /// `warning`, `critical` or "".
    pub severity: &'a str,
    /// The rule.
    pub rule: &'a str,
    /// The rendered summary.
    pub summary: &'a str,
}

/// Judges a host by its alerts; the reasons list the firing ones, worst
/// first.
pub fn judge(alerts: &[HostAlert<'_>]) -> (Health, Vec<String>) {
    let mut judged: Vec<(Health, String)> = alerts
        .iter()
        .filter(|a| a.state != "pending")
        .filter_map(|a| {
            let health = match a.severity {
                "critical" => Health::Red,
                "warning" => Health::Amber,
                _ => return None,
            };
            let text = if a.summary.is_empty() {
                a.rule.to_owned()
            } else {
                format!("{}: {}", a.rule, a.summary)
            };
            Some((health, text))
        })
        .collect();
    judged.sort();
    let health = judged.first().map_or(Health::Green, |(h, _)| *h);
    (health, judged.into_iter().map(|(_, t)| t).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert<'a>(state: &'a str, severity: &'a str, rule: &'a str) -> HostAlert<'a> {
        HostAlert {
            state,
            severity,
            rule,
            summary: "",
        }
    }

    #[test]
    fn worst_firing_alert_decides() {
        assert_eq!(judge(&[]).0, Health::Green);
        assert_eq!(judge(&[alert("pending", "", "cpu")]).0, Health::Green);
        assert_eq!(judge(&[alert("firing", "warning", "cpu")]).0, Health::Amber);
        let (health, reasons) = judge(&[
            alert("firing", "warning", "cpu"),
            alert("firing", "critical", "host_down"),
            alert("flapping", "warning", "disk"),
        ]);
        assert_eq!(health, Health::Red);
        assert_eq!(reasons, ["host_down", "cpu", "disk"]);
    }
}
