//! Nightjar's collector: gRPC ingest with acknowledgements, time series in
//! an embedded RocksDB, the query API, and the `nightjar` CLI.
//!
//! See ARCHITECTURE.md at the repository root for the data flow and the
//! invariants.

pub mod alert;
pub mod auth;
pub mod cli;
pub mod config;
pub mod convert;
pub mod ingest;
pub mod limits;
pub mod model;
pub mod query;
pub mod selector;
pub mod self_metrics;
pub mod server;
pub mod status;
pub mod storage;
pub mod telemetry;
pub mod validate;
