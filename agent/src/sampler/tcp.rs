//! TCP health from `/proc/net/snmp` and `/proc/net/netstat`:
//! established connections (`ss -t state established | wc -l`, `netstat -s`
//! "connections established"), segments retransmitted per second and listen
//! queue overflows per second (`nstat TcpExtListenOverflows`).

use std::collections::HashMap;

use crate::sample::Sample;

use super::rates::Rates;

/// TCP samples from the parsed snmp and netstat tables.
pub fn samples(snmp: &HashMap<(String, String), i64>, rates: &mut Rates) -> Vec<Sample> {
    let get =
        |section: &str, field: &str| snmp.get(&(section.to_owned(), field.to_owned())).copied();
    let mut out = Vec::with_capacity(3);
    if let Some(v) = get("Tcp", "CurrEstab") {
        out.push(Sample::new("tcp_established_connections", v as f64));
    }
    let counters = [
        ("tcp_retransmits_per_second", get("Tcp", "RetransSegs")),
        (
            "tcp_listen_overflows_per_second",
            get("TcpExt", "ListenOverflows"),
        ),
    ];
    for (metric, value) in counters {
        if let Some(r) = value.and_then(|v| rates.rate(metric, v.max(0) as u64)) {
            out.push(Sample::new(metric, r));
        }
    }
    out
}
