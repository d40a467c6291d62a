//! Prometheus remote_write, both ways: the receiver (`POST /api/v1/write`
//! on the HTTP port) and the wire format. Docs: docs/prometheus.md.

pub mod receive;
pub mod wire;
