//! The gRPC contract of Nightjar (protobuf package `nightjar.v1`).
//!
//! API boundary: these generated types travel on the wire only. The agent and
//! the collector convert them to their own domain types at the edge
//! (`convert.rs` in each crate).

/// Generated messages and services of `nightjar/v1/nightjar.proto`.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("nightjar.v1");
    pub use crate::latest::LatestResponse;
}

pub mod latest;
