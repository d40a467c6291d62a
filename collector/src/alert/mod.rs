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
pub mod rules;
pub mod service;
pub mod silence;
pub mod state;
pub mod store;
pub mod window;

/// The built-in rule that fires when a host stops sending.
pub const HOST_DOWN_RULE: &str = "host_down";
