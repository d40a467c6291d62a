//! Prometheus remote_write, both ways: the sender (every stored sample to
//! each `[[remote_write]]` endpoint, from the storage's durable forward
//! queue), the receiver (`POST /api/v1/write` on the HTTP port), and the
//! wire format they share. Docs: docs/prometheus.md.

pub mod config;
pub mod receive;
pub mod send;
pub mod wire;
