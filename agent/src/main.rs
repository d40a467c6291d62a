//! `nightjar-agent`: samples this host and streams to the collector.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use nightjar_agent::checks::Checks;
use nightjar_agent::config::{Config, Overrides, RawConfig};
use nightjar_agent::convert::BatchHeader;
use nightjar_agent::pipeline::{Reload, SamplingLoop};
use nightjar_agent::queue::BatchQueue;
use nightjar_agent::sample::AppSource;
use nightjar_agent::sampler::{self, HostSampler, Selection};
use nightjar_agent::spool::Spool;
use nightjar_agent::state::{self, AgentState};
use nightjar_agent::statsd::Statsd;
use nightjar_agent::status::AgentStatus;
use nightjar_agent::systemd_units::SystemdUnits;
use nightjar_agent::telemetry::AgentCounters;
use nightjar_agent::transport;
use nightjar_common::{config_file, logging};

/// How long the agent waits at shutdown for the collector to ack what is
/// spooled (what is left is sent after the next start).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Nightjar's host agent: samples CPU, memory, disks, network and load and
/// streams them to a Nightjar collector.
#[derive(Debug, Parser)]
#[command(name = "nightjar-agent", version)]
struct Args {
    /// TOML config file; flags override its keys.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Collector URL [default: http://127.0.0.1:7070].
    #[arg(long, value_name = "URL")]
    collector: Option<String>,
    /// Sampling interval, e.g. 10s or 1m [default: 10s].
    #[arg(long, value_name = "DURATION")]
    interval: Option<String>,
    /// Host name for the `host` label [default: the system host name].
    #[arg(long, value_name = "NAME")]
    host: Option<String>,
    /// Directory for the agent id and sequence state [default: ./nightjar-agent-state].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// HTTP status address (/healthz, /metrics), or "off" [default: 127.0.0.1:9465].
    #[arg(long, value_name = "ADDR")]
    http_listen: Option<String>,
    /// statsd address for both UDP and TCP, or "off" [default: 127.0.0.1:8125].
    #[arg(long, value_name = "ADDR")]
    statsd: Option<String>,
    /// Log line format.
    #[arg(long, value_enum, default_value_t)]
    log_format: logging::LogFormat,
}

fn main() -> ExitCode {
    let args = Args::parse();
    logging::init(args.log_format);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("nightjar-agent: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the config file (if any) and merges the flags.
fn load_config(args: &Args) -> anyhow::Result<Config> {
    let file = match &args.config {
        Some(path) => Some((path.as_path(), config_file::load::<RawConfig>(path)?)),
        None => None,
    };
    Ok(Config::build(
        file,
        Overrides {
            collector: args.collector.clone(),
            interval: args.interval.clone(),
            host: args.host.clone(),
            state_dir: args.state_dir.clone(),
            http_listen: args.http_listen.clone(),
            statsd: args.statsd.clone(),
        },
        sampler::host_name,
    )?)
}

/// On SIGHUP: re-reads the config; labels, disks, interfaces and watched
/// processes go to the sampling loop, other changed keys are logged as
/// needing a restart. A bad file changes nothing.
async fn reload_on_sighup(
    mut hup: tokio::signal::unix::Signal,
    args: Args,
    mut current: Config,
    reloads: std::sync::mpsc::Sender<Reload>,
) {
    while hup.recv().await.is_some() {
        let next = match load_config(&args) {
            Ok(c) => c,
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "SIGHUP: config not reloaded; the running settings stay");
                continue;
            }
        };
        let restart_needed: Vec<&str> = [
            ("collector", current.collector != next.collector),
            ("interval", current.interval != next.interval),
            ("host", current.host != next.host),
            ("state_dir", current.state_dir != next.state_dir),
            (
                "spool_max_bytes",
                current.spool_max_bytes != next.spool_max_bytes,
            ),
            (
                "spool_fsync",
                format!("{:?}", current.spool_fsync) != format!("{:?}", next.spool_fsync),
            ),
            ("systemd_units", current.systemd_units != next.systemd_units),
            ("http_listen", current.http_listen != next.http_listen),
            (
                "tls",
                format!("{:?}", current.tls) != format!("{:?}", next.tls),
            ),
            ("token_file", current.token != next.token),
            ("statsd", current.statsd != next.statsd),
            ("check", current.checks != next.checks),
        ]
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect();
        if !restart_needed.is_empty() {
            tracing::warn!(keys = %restart_needed.join(", "), "SIGHUP: these changes take effect after a restart");
        }
        let reload = Reload {
            labels: next.labels.clone(),
            selection: Selection {
                disks: next.disks.clone(),
                network: next.network.clone(),
                watch: next.watch.clone(),
            },
        };
        if reloads.send(reload).is_err() {
            return;
        }
        tracing::info!(
            "SIGHUP: config reloaded; labels, disks, interfaces and watched processes apply from the next sample"
        );
        current = next;
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let config = load_config(&args)?;
    let state = AgentState::open(&config.state_dir, &state::machine_origin(&config.host))?;
    let identity = state.identity();
    let sampler = HostSampler::new(Selection {
        disks: config.disks.clone(),
        network: config.network.clone(),
        watch: config.watch.clone(),
    })?;
    let mut endpoint = transport::endpoint(&config.collector)
        .with_context(|| format!("collector: invalid URL {:?}", config.collector))?;
    if let Some(tls) = &config.tls {
        endpoint = endpoint
            .tls_config(tls.config())
            .context("tls: cannot configure TLS to the collector")?;
    }

    let counters = Arc::new(AgentCounters::default());
    let spool = Spool::open(
        &config.state_dir.join("spool"),
        config.spool_max_bytes,
        config.spool_fsync,
        counters.clone(),
    )?;
    let queue: Arc<dyn BatchQueue> = Arc::new(spool);
    let header = BatchHeader {
        agent_id: identity.current(),
        host: config.host.clone(),
        interval_ms: config.interval.as_millis() as u64,
        labels: config.labels.clone(),
    };
    tracing::info!(
        agent_id = %header.agent_id,
        host = %config.host,
        collector = %config.collector,
        interval = %nightjar_common::duration::format(config.interval),
        "agent starting"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    // Watch SIGHUP from the start: unwatched, it would end the process.
    let hangup = {
        let _context = runtime.enter();
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
    };
    // Bound before sampling starts: a taken port is a start-up error.
    let status_listener = match config.http_listen {
        Some(addr) => {
            let listener = runtime
                .block_on(nightjar_common::status_http::bind("http_listen", addr))
                .map_err(|e| anyhow::anyhow!(e))?;
            let bound = listener
                .local_addr()
                .context("reading the HTTP status address")?;
            tracing::info!(http_listen = %bound, "HTTP status port (/healthz, /metrics) ready");
            Some(listener)
        }
        None => None,
    };

    // Bound before sampling starts too: a taken statsd port is a start-up error.
    let statsd = Statsd::start(&config.statsd, config.interval, counters.clone())?;
    let checks = Checks::new(config.checks.clone())?;
    let mut app_sources: Vec<Arc<dyn AppSource>> = Vec::new();
    if let Some(statsd) = &statsd {
        app_sources.push(statsd.clone());
    }
    if !checks.is_empty() {
        app_sources.push(checks.clone());
    }

    let (stop_tx, stop_rx) = std::sync::mpsc::channel();
    let (reload_tx, reload_rx) = std::sync::mpsc::channel();
    let latest = Arc::new(nightjar_agent::exposition::LatestHostSamples::default());
    let sampling = SamplingLoop {
        sampler,
        state,
        header,
        interval: config.interval,
        queue: queue.clone(),
        counters: counters.clone(),
        systemd: SystemdUnits::start(config.systemd_units.clone(), config.interval),
        watchdog: watchdog(config.interval),
        reloads: reload_rx,
        app_sources,
        latest: latest.clone(),
    };
    let sampling_thread = std::thread::Builder::new()
        .name("sampler".into())
        .spawn(move || sampling.run(stop_rx))
        .context("starting the sampling thread")?;

    runtime.block_on(async {
        checks.spawn();
        if let Some(listener) = status_listener {
            let source = Arc::new(AgentStatus {
                counters: counters.clone(),
                queue: queue.clone(),
                interval: config.interval,
                latest,
            });
            tokio::spawn(nightjar_common::status_http::serve(listener, source, None));
        }
        match hangup {
            Ok(hup) => {
                tokio::spawn(reload_on_sighup(hup, args, config.clone(), reload_tx));
            }
            Err(error) => tracing::warn!(%error, "cannot watch SIGHUP; restart to apply config changes"),
        }
        let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
        let transport = tokio::spawn(transport::run(
            endpoint,
            config.token.clone(),
            identity,
            queue.clone(),
            counters,
            shutdown_rx,
        ));
        wait_for_signal().await;
        nightjar_common::systemd::stopping();
        drop(stop_tx);
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while queue.size().0 > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (unacked, _) = queue.size();
        if unacked > 0 {
            tracing::warn!(
                unacked_batches = unacked,
                "stopping with unacked batches; they stay in the spool and are sent after the next start"
            );
        }
        let _ = shutdown_tx.send(true);
        let _ = transport.await;
    });
    if let Some(statsd) = &statsd {
        statsd.stop();
    }
    let _ = sampling_thread.join();
    // Sampling and sending have stopped: fsync the spool and write its ack
    // index, so the next start resends nothing already acked.
    queue.flush();
    tracing::info!("agent stopped");
    Ok(())
}

/// systemd's watchdog timeout; warns when it is too short for the interval
/// (a sample may legitimately take a good part of an interval).
fn watchdog(interval: Duration) -> Option<Duration> {
    let timeout = nightjar_common::systemd::watchdog_timeout()?;
    if timeout < interval * 3 {
        tracing::warn!(
            watchdog = %nightjar_common::duration::format(timeout),
            interval = %nightjar_common::duration::format(interval),
            "WatchdogSec is below 3 sampling intervals; a slow sample may get the agent restarted"
        );
    }
    Some(timeout)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: stopping"),
        },
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGTERM; stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
