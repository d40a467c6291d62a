//! Nightjar's collector: gRPC ingest with acknowledgements, time series in
//! an embedded RocksDB, the query API, and the `nightjar` CLI.
//!
//! See ARCHITECTURE.md at the repository root for the data flow and the
//! invariants.

pub mod alert;
pub mod auth;
pub mod cli;
pub mod config;
pub mod ingest;
pub mod query;
pub mod self_metrics;
pub mod server;
pub mod status;
pub mod storage;
pub mod telemetry;

// The data model and input validation live in their own crate (no
// storage), so fuzzing and their tests build fast; same paths as before.
pub use nightjar_model::{convert, histogram, limits, model, selector, validate};
