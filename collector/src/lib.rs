//! Nightjar's collector daemon: the wiring of the gRPC ingest, query and
//! alert APIs over the storage (`nightjar-storage`) and alerting
//! (`nightjar-alerting`) crates, with auth, self-metrics and the HTTP
//! status port.
//!
//! See ARCHITECTURE.md at the repository root for the data flow and the
//! invariants.

pub mod alert_api;
pub mod auth;
pub mod availability;
pub mod board;
pub mod capacity;
pub mod config;
pub mod dashboard;
pub mod incident_api;
pub mod ingest;
pub mod promql;
pub mod query;
pub mod remote_write;
pub mod self_metrics;
pub mod server;
pub mod status;
pub mod telemetry;
#[cfg(test)]
mod testing;
