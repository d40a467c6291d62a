//! Nightjar's alerting: rules evaluated as samples arrive, a pure state
//! machine per (rule, series), routes, silences and maintenance windows,
//! notification payloads and the hooks that page people (webhook,
//! PagerDuty, Slack, exec), a bounded durable outbox with its dispatcher,
//! and backtests. It persists through the [`store::AlertStore`] trait and
//! names no storage engine.
//!
//! Data flow: the collector's ingest stores a batch, then hands it to
//! [`alerter::Alerter::observe`]; the [`engine::Engine`] updates windows and
//! [`state::AlertState`]s and returns transitions; the alerter writes state,
//! history and outbox entries in one synced write through the store; the
//! dispatcher delivers the [`outbox`] through [`hooks`]. A sweep every
//! second handles what no sample triggers: `for` timers, absence,
//! host_down, repeats and escalation.

pub mod alerter;
pub mod availability;
pub mod backtest;
pub mod config;
pub mod engine;
pub mod hooks;
pub mod incident;
pub mod incident_report;
pub mod notify;
pub mod outbox;
pub mod route;
pub mod services;
pub mod silence;
pub mod store;
pub mod window;

// Rule files and the state machine are pure and read operator input: they
// live in nightjar-model (fuzzed without storage), under the same paths.
pub use nightjar_model::alert::{HOST_DOWN_RULE, rules, state};
