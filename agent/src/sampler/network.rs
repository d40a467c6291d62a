//! Network throughput per interface: `net_rx_bytes_per_sec` and
//! `net_tx_bytes_per_sec{interface}`, from the kernel's cumulative byte
//! counters (the RX/TX bytes of `ip -s link`) divided by the time between
//! two readings. The first reading of an interface gives no rate; a counter
//! that went backwards (reset, interface re-created) gives none either.

use std::collections::HashMap;
use std::time::Instant;

use crate::sample::Sample;

/// Cumulative counters of one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceCounters {
    /// Interface name.
    pub name: String,
    /// Bytes received since boot.
    pub rx_bytes: u64,
    /// Bytes sent since boot.
    pub tx_bytes: u64,
}

/// Turns successive counter readings into rates.
#[derive(Debug, Default)]
pub struct NetworkRates {
    previous: HashMap<String, (u64, u64)>,
    previous_at: Option<Instant>,
}

impl NetworkRates {
    /// Records a reading taken at `now`; returns rates against the last one.
    pub fn update(&mut self, now: Instant, readings: &[InterfaceCounters]) -> Vec<Sample> {
        let mut out = Vec::new();
        let elapsed = self
            .previous_at
            .map(|t| now.saturating_duration_since(t).as_secs_f64())
            .filter(|s| *s > 0.0);
        let mut current = HashMap::with_capacity(readings.len());
        for r in readings {
            if let (Some(secs), Some(&(rx0, tx0))) = (elapsed, self.previous.get(&r.name))
                && r.rx_bytes >= rx0
                && r.tx_bytes >= tx0
            {
                let rx = (r.rx_bytes - rx0) as f64 / secs;
                let tx = (r.tx_bytes - tx0) as f64 / secs;
                let rate =
                    |metric, value| Sample::labelled(metric, "interface", r.name.clone(), value);
                out.push(rate("net_rx_bytes_per_sec", rx));
                out.push(rate("net_tx_bytes_per_sec", tx));
            }
            current.insert(r.name.clone(), (r.rx_bytes, r.tx_bytes));
        }
        self.previous = current;
        self.previous_at = Some(now);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn c(name: &str, rx: u64, tx: u64) -> InterfaceCounters {
        InterfaceCounters {
            name: name.into(),
            rx_bytes: rx,
            tx_bytes: tx,
        }
    }

    fn show(samples: &[Sample]) -> Vec<String> {
        samples
            .iter()
            .map(|s| format!("{}{{{}}} {}", s.metric, s.labels[0].1, s.value))
            .collect()
    }

    #[test]
    fn rates_from_counters() {
        let t0 = Instant::now();
        let mut n = NetworkRates::default();
        assert!(
            n.update(t0, &[c("eth0", 1_000, 500)]).is_empty(),
            "first reading has no rate"
        );
        let got = n.update(
            t0 + Duration::from_secs(2),
            &[c("eth0", 3_000, 900), c("eth1", 5, 5)],
        );
        assert_eq!(
            show(&got),
            [
                "net_rx_bytes_per_sec{eth0} 1000",
                "net_tx_bytes_per_sec{eth0} 200"
            ]
        );
        // Counter reset: no rate, then rates resume from the new base.
        let t2 = t0 + Duration::from_secs(3);
        assert_eq!(
            show(&n.update(t2, &[c("eth0", 10, 10), c("eth1", 15, 5)])).len(),
            2
        );
        let got = n.update(t2 + Duration::from_secs(1), &[c("eth0", 20, 10)]);
        assert_eq!(
            show(&got),
            [
                "net_rx_bytes_per_sec{eth0} 10",
                "net_tx_bytes_per_sec{eth0} 0"
            ]
        );
    }
}
