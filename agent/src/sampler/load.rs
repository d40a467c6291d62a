//! Load averages: `load_average{period="1m"|"5m"|"15m"}`, as in `uptime`
//! and `/proc/loadavg`.

use crate::sample::Sample;

/// The three load averages.
pub fn samples(one: f64, five: f64, fifteen: f64) -> Vec<Sample> {
    vec![
        Sample::labelled("load_average", "period", "1m", one),
        Sample::labelled("load_average", "period", "5m", five),
        Sample::labelled("load_average", "period", "15m", fifteen),
    ]
}
