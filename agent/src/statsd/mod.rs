//! The agent's statsd server: applications send counters, gauges, sets,
//! timers and histograms (statsd / DogStatsD lines) over UDP or TCP; the
//! agent aggregates them per flush and ships the results with its own
//! samples, timers and histograms as whole, mergeable histograms.
//!
//! `parse` reads lines, `aggregate` keeps the series, `listen` runs the
//! sockets; this module holds the config and the handle the sampling loop
//! flushes.

pub mod aggregate;
pub mod listen;
pub mod parse;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;

use crate::sample::AppSample;
use crate::telemetry::AgentCounters;
use aggregate::Aggregator;
use listen::Shared;

/// Default address of both listeners.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8125";
/// Default idle time after which a series is forgotten.
pub const DEFAULT_EXPIRE_AFTER: Duration = Duration::from_secs(300);
/// Default UDP receive buffer asked of the kernel.
pub const DEFAULT_READ_BUFFER_BYTES: u64 = 8 * 1024 * 1024;
/// Default bound of the series held.
pub const DEFAULT_MAX_SERIES: u64 = 100_000;

/// `[statsd]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatsd {
    /// UDP address, `IP:PORT` or "off". Default `127.0.0.1:8125`.
    pub udp: Option<String>,
    /// TCP address, `IP:PORT` or "off". Default `127.0.0.1:8125`.
    pub tcp: Option<String>,
    /// How often series are reported: a multiple of `interval`. Default:
    /// the sampling interval.
    pub flush_interval: Option<String>,
    /// Idle time after which a counter, gauge or set is forgotten. Default "5m".
    pub expire_after: Option<String>,
    /// UDP receive buffer asked of the kernel (capped at net.core.rmem_max).
    /// Default 8388608.
    pub read_buffer_bytes: Option<i64>,
    /// Most series held; lines that would add more are refused (counted as
    /// malformed). Default 100000.
    pub max_series: Option<i64>,
}

/// The validated `[statsd]` settings.
#[derive(Clone, Debug, PartialEq)]
pub struct StatsdConfig {
    /// UDP address, if on.
    pub udp: Option<SocketAddr>,
    /// TCP address, if on.
    pub tcp: Option<SocketAddr>,
    /// Flush every this many sampling intervals.
    pub flush_every: u64,
    /// Idle time before a series is forgotten.
    pub expire_after: Duration,
    /// UDP receive buffer size asked for.
    pub read_buffer_bytes: usize,
    /// Most series held.
    pub max_series: usize,
}

impl StatsdConfig {
    /// Validates `raw`; `flag` (`--statsd ADDR|off`) sets both addresses.
    /// Errors are (key, reason).
    pub fn build(
        raw: &RawStatsd,
        flag: Option<&str>,
        interval: Duration,
    ) -> Result<StatsdConfig, (String, String)> {
        let address =
            |key: &str, text: Option<&str>| -> Result<Option<SocketAddr>, (String, String)> {
                let text = flag.or(text).unwrap_or(DEFAULT_LISTEN);
                nightjar_common::status_http::parse_listen(text)
                    .map_err(|reason| (key.to_owned(), reason))
            };
        let udp = address("statsd.udp", raw.udp.as_deref())?;
        let tcp = address("statsd.tcp", raw.tcp.as_deref())?;
        let duration = |key: &str, text: &str| {
            nightjar_common::duration::parse(key, text).map_err(|e| {
                (
                    key.to_owned(),
                    format!("invalid duration {text:?} ({})", e.reason),
                )
            })
        };
        let flush_every = match &raw.flush_interval {
            None => 1,
            Some(text) => {
                let flush = duration("statsd.flush_interval", text)?;
                let (f, i) = (flush.as_millis(), interval.as_millis().max(1));
                if f == 0 || f % i != 0 {
                    return Err((
                        "statsd.flush_interval".into(),
                        format!(
                            "{text:?} is not a multiple of the sampling interval ({})",
                            nightjar_common::duration::format(interval)
                        ),
                    ));
                }
                (f / i) as u64
            }
        };
        let expire_after = match &raw.expire_after {
            None => DEFAULT_EXPIRE_AFTER,
            Some(text) => duration("statsd.expire_after", text)?,
        };
        let read_buffer_bytes = match raw.read_buffer_bytes {
            None => DEFAULT_READ_BUFFER_BYTES as usize,
            Some(n) if (4096..=1 << 30).contains(&n) => n as usize,
            Some(n) => {
                return Err((
                    "statsd.read_buffer_bytes".into(),
                    format!("{n} is outside 4096..=1073741824"),
                ));
            }
        };
        let max_series = match raw.max_series {
            None => DEFAULT_MAX_SERIES as usize,
            Some(n) if n >= 1 => n as usize,
            Some(n) => {
                return Err((
                    "statsd.max_series".into(),
                    format!("{n} is below the minimum of 1"),
                ));
            }
        };
        Ok(StatsdConfig {
            udp,
            tcp,
            flush_every,
            expire_after,
            read_buffer_bytes,
            max_series,
        })
    }
}

/// The running statsd server.
pub struct Statsd {
    shared: Arc<Shared>,
    flush_every: u64,
    ticks: AtomicU64,
}

impl Statsd {
    /// Binds the configured sockets (an address in use is a start-up error
    /// naming it) and starts the listener threads. None when both are off.
    pub fn start(
        config: &StatsdConfig,
        interval: Duration,
        counters: Arc<AgentCounters>,
    ) -> anyhow::Result<Option<Arc<Statsd>>> {
        use anyhow::Context as _;
        if config.udp.is_none() && config.tcp.is_none() {
            return Ok(None);
        }
        let flush = interval * config.flush_every as u32;
        let expire_flushes = config
            .expire_after
            .as_millis()
            .div_ceil(flush.as_millis().max(1));
        let shared = Arc::new(Shared::new(
            Aggregator::new(expire_flushes as u64).with_max_series(config.max_series),
            counters,
        ));
        if let Some(addr) = config.udp {
            let socket = listen::bind_udp(addr, config.read_buffer_bytes)
                .with_context(|| format!("statsd.udp: cannot listen on UDP {addr}"))?;
            tracing::info!(udp = %socket.local_addr()?, "statsd listening");
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("statsd-udp".into())
                .spawn(move || listen::serve_udp(socket, shared))
                .context("starting the statsd UDP thread")?;
        }
        if let Some(addr) = config.tcp {
            let listener = listen::bind_tcp(addr)
                .with_context(|| format!("statsd.tcp: cannot listen on TCP {addr}"))?;
            tracing::info!(tcp = %listener.local_addr()?, "statsd listening");
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("statsd-tcp-accept".into())
                .spawn(move || listen::serve_tcp(listener, shared))
                .context("starting the statsd TCP thread")?;
        }
        Ok(Some(Arc::new(Statsd {
            shared,
            flush_every: config.flush_every,
            ticks: AtomicU64::new(0),
        })))
    }

    /// Stops the listener threads (within their poll interval).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
    }
}

impl crate::sample::AppSource for Statsd {
    /// On every `flush_every`-th tick, the series aggregated since the last flush.
    fn collect(&self, interval: Duration) -> Vec<AppSample> {
        let tick = self.ticks.fetch_add(1, Ordering::Relaxed) + 1;
        if !tick.is_multiple_of(self.flush_every) {
            return Vec::new();
        }
        let seconds = interval.as_secs_f64() * self.flush_every as f64;
        // Held only to move the figures out: the listeners wait on it.
        let (flushed, series) = {
            let mut aggregator = self.shared.aggregator.lock().expect("poisoned");
            (aggregator.flush(), aggregator.series())
        };
        self.shared
            .counters
            .statsd_series
            .store(series as u64, Ordering::Relaxed);
        flushed.into_samples(seconds)
    }
}
