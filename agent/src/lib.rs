//! Nightjar's host agent: samples the host on an interval and streams the
//! samples to the collector, keeping every batch until it is acked.
//!
//! Data flow: `sampler` → `pipeline` (labels, seq, `convert`) → `spool` (a `queue::BatchQueue`) →
//! `transport` → collector. See ARCHITECTURE.md at the repository root.

pub mod backoff;
pub mod checks;
pub mod config;
pub mod convert;
pub mod exposition;
pub mod pipeline;
pub mod procfs;
pub mod queue;
pub mod sample;
pub mod sampler;
pub mod spool;
pub mod state;
pub mod statsd;
pub mod status;
pub mod systemd_units;
pub mod telemetry;
pub mod transport;
