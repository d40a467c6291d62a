//! The collector's data model and the code that judges what arrives on the
//! wire: `convert` (protobuf → domain, per-sample validation), `validate`
//! (names, rejection reasons), `limits`, `selector`, `histogram` (mergeable HdrHistograms), `api_args` (the bounds of query and alert API arguments). Pure and free of
//! storage, so the fuzz targets build without RocksDB. `alert` holds the
//! rule-file parser and the alert state machine. The collector re-exports
//! these modules under the same names.

pub mod alert;
pub mod api_args;
pub mod availability;
pub mod capacity;
pub mod config_files;
pub mod convert;
pub mod histogram;
pub mod limits;
pub mod model;
pub mod selector;
pub mod service;
pub mod validate;
