//! Alerting: rules evaluated as samples arrive, a pure state machine per
//! (rule, series), durable state and outbox in RocksDB, and hooks that page
//! people (webhook, PagerDuty, Slack, exec).
//!
//! Data flow: `ingest` stores a batch, then hands it to
//! [`service::Alerter::observe`]; the [`engine::Engine`] updates windows and
//! [`state::AlertState`]s and returns transitions; the alerter writes state,
//! history and outbox entries in one synced RocksDB write; the dispatcher
//! delivers the outbox through [`hooks`]. A sweep every second handles what
//! no sample triggers: `for` timers, absence, host_down, repeats and
//! escalation.

pub mod api;
pub mod backtest;
pub mod config;
pub mod engine;
pub mod hooks;
pub mod notify;
pub mod route;
pub mod service;
pub mod silence;
pub mod store;
pub mod window;

// Rule files and the state machine are pure and read operator input: they
// live in nightjar-model (fuzzed without storage), under the same paths.
pub use nightjar_model::alert::{HOST_DOWN_RULE, rules, state};
