//! Network interfaces from `/proc/net/dev` (the counters `ip -s link`
//! prints): per interface, bytes, packets, errors and drops per second for
//! each direction, and whether the link is up (`ip link`: state UP, or
//! UNKNOWN with the interface administratively up, as loopback is).
//! Rates come from the cumulative counters; the first reading of an
//! interface, and a counter that went backwards, give no rate.

use super::NameFilter;
use crate::procfs::NetDev;
use crate::sample::Sample;

use super::rates::Rates;

/// Samples for every interface the filter lets through. `link_up` answers
/// for an interface name, or None when unknown.
pub fn samples(
    devs: &[NetDev],
    filter: &NameFilter,
    link_up: impl Fn(&str) -> Option<bool>,
    rates: &mut Rates,
) -> Vec<Sample> {
    let mut out = Vec::with_capacity(devs.len() * 9);
    for d in devs.iter().filter(|d| filter.allows(&d.interface)) {
        let labelled =
            |metric, value| Sample::labelled(metric, "interface", d.interface.clone(), value);
        let counters = [
            ("net_rx_bytes_per_second", d.rx_bytes),
            ("net_tx_bytes_per_second", d.tx_bytes),
            ("net_rx_packets_per_second", d.rx_packets),
            ("net_tx_packets_per_second", d.tx_packets),
            ("net_rx_errors_per_second", d.rx_errors),
            ("net_tx_errors_per_second", d.tx_errors),
            ("net_rx_drops_per_second", d.rx_drops),
            ("net_tx_drops_per_second", d.tx_drops),
        ];
        for (metric, value) in counters {
            if let Some(r) = rates.rate(&format!("net/{}/{metric}", d.interface), value) {
                out.push(labelled(metric, r));
            }
        }
        if let Some(up) = link_up(&d.interface) {
            out.push(labelled("net_link_up", if up { 1.0 } else { 0.0 }));
        }
    }
    out
}

/// Whether a link is up given its `operstate` and `flags` from sysfs.
pub fn link_is_up(operstate: &str, flags: Option<u64>) -> bool {
    const IFF_UP: u64 = 0x1;
    match operstate.trim() {
        "up" => true,
        "unknown" => flags.is_some_and(|f| f & IFF_UP != 0),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::find;
    use std::time::{Duration, Instant};

    fn dev(name: &str, rx: u64, drops: u64) -> NetDev {
        NetDev {
            interface: name.into(),
            rx_bytes: rx,
            rx_drops: drops,
            ..NetDev::default()
        }
    }

    #[test]
    fn rates_link_state_and_filter() {
        let filter = NameFilter::new(&[], &["^lo$"]).unwrap();
        let t0 = Instant::now();
        let mut rates = Rates::default();
        rates.start(t0);
        let first = samples(
            &[dev("eth0", 1000, 0), dev("lo", 5, 0)],
            &filter,
            |_| Some(true),
            &mut rates,
        );
        assert_eq!(first.len(), 1, "first reading: only link state");
        rates.start(t0 + Duration::from_secs(2));
        let s = samples(
            &[dev("eth0", 3000, 4), dev("lo", 50, 0)],
            &filter,
            |_| Some(false),
            &mut rates,
        );
        assert_eq!(
            find(&s, "net_rx_bytes_per_second", &[("interface", "eth0")]),
            Some(1000.0)
        );
        assert_eq!(
            find(&s, "net_rx_drops_per_second", &[("interface", "eth0")]),
            Some(2.0)
        );
        assert_eq!(find(&s, "net_link_up", &[("interface", "eth0")]), Some(0.0));
        assert!(
            find(&s, "net_rx_bytes_per_second", &[("interface", "lo")]).is_none(),
            "lo is excluded"
        );
    }

    #[test]
    fn link_states() {
        assert!(link_is_up("up\n", None));
        assert!(link_is_up("unknown", Some(0x9)));
        assert!(!link_is_up("unknown", Some(0x8)));
        assert!(!link_is_up("down", Some(0x1)));
    }
}
