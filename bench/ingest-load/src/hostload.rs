//! What one simulated agent sends: 10 metrics × (series / 10) series of
//! host-metric-like values — counters turned into per-second rates
//! (integers), slowly varying gauges (two decimals), and constants.

use crate::wire;

/// The metrics of a simulated host, by kind.
pub const METRICS: [(&str, Kind); 10] = [
    ("bench_rx_bytes_per_second", Kind::Rate(2_000_000)),
    ("bench_tx_bytes_per_second", Kind::Rate(500_000)),
    ("bench_requests_per_second", Kind::Rate(300)),
    ("bench_errors_per_second", Kind::Rate(2)),
    ("cpu_usage_percent", Kind::Gauge(35.0)),
    ("bench_used_bytes", Kind::Gauge(4.0e9)),
    ("bench_temperature_celsius", Kind::Gauge(48.0)),
    ("bench_queue_depth", Kind::Gauge(12.0)),
    ("bench_total_bytes", Kind::Constant(16.0e9)),
    ("bench_up", Kind::Constant(1.0)),
];

/// How a series' values move.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A counter's per-second rate around this mean: whole numbers.
    Rate(u64),
    /// A random walk in steps of 0.01 from this start.
    Gauge(f64),
    /// Never changes.
    Constant(f64),
}

/// One simulated host's series and their current values.
pub struct HostLoad {
    /// `bench-<n>`.
    pub host: String,
    heads: Vec<Vec<u8>>,
    kinds: Vec<Kind>,
    values: Vec<f64>,
    rng: fastrand::Rng,
}

impl HostLoad {
    /// Host `n` with `series` series (a multiple of 10).
    pub fn new(n: usize, series: usize) -> HostLoad {
        let host = format!("bench-{n}");
        let mut heads = Vec::with_capacity(series);
        let mut kinds = Vec::with_capacity(series);
        for k in 0..series {
            let (metric, kind) = METRICS[k % METRICS.len()];
            let index_label = if metric == "cpu_usage_percent" {
                "cpu"
            } else {
                "idx"
            };
            let labels = [
                ("host", host.clone()),
                ("env", "bench".to_owned()),
                (index_label, (k / METRICS.len()).to_string()),
            ];
            heads.push(wire::series_head(metric, &labels));
            kinds.push(kind);
        }
        let values = kinds
            .iter()
            .map(|k| match *k {
                Kind::Rate(mean) => mean as f64,
                Kind::Gauge(start) | Kind::Constant(start) => start,
            })
            .collect();
        HostLoad {
            host,
            heads,
            kinds,
            values,
            rng: fastrand::Rng::with_seed(n as u64),
        }
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.heads.len()
    }

    /// Advances every value one interval and encodes the batch.
    pub fn next_batch(&mut self, agent_id: &str, seq: u64, ts: i64, out: &mut Vec<u8>) {
        for (v, kind) in self.values.iter_mut().zip(&self.kinds) {
            match *kind {
                Kind::Rate(mean) => {
                    let spread = (mean / 5).max(1);
                    *v = (mean - spread / 2 + self.rng.u64(0..=spread)) as f64;
                }
                Kind::Gauge(_) => *v = ((*v * 100.0).round() + self.rng.i32(-3..=3) as f64) / 100.0,
                Kind::Constant(_) => {}
            }
        }
        wire::batch(
            agent_id,
            &self.host,
            seq,
            1_000,
            self.heads
                .iter()
                .zip(&self.values)
                .map(|(h, v)| (h.as_slice(), ts, *v)),
            out,
        );
    }
}
