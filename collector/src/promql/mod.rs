//! PromQL over Nightjar's storage, for the Prometheus HTTP API on the
//! collector's HTTP port (`api.rs`): Grafana (or `promtool`) can use a
//! collector as a Prometheus data source. Docs: docs/prometheus.md.

pub mod api;
pub mod eval;
pub mod value;
