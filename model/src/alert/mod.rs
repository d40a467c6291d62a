//! The pure parts of alerting that read operator input: rule files
//! (`rules`) and the per-(rule, series) state machine (`state`). The
//! collector's `alert` module re-exports both.

pub mod rules;
pub mod state;

/// The built-in rule that fires when a host stops sending.
pub const HOST_DOWN_RULE: &str = "host_down";
