//! Capacity arithmetic (docs/capacity.md), pure: least-squares fits of a
//! series against time and when they cross a threshold (`fit.rs`), and
//! the regression of a KPI on the volume that drives it, with its
//! elasticity and what-if (`correlate.rs`). The collector's
//! `CapacityService` feeds them stored rollups.

pub mod correlate;
pub mod fit;
