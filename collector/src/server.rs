//! Runs the collector: opens storage, binds the listener, serves ingest and
//! query until SIGTERM or Ctrl-C, then drains in-flight requests.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use nightjar_proto::v1::ingest_service_server::IngestServiceServer;
use nightjar_proto::v1::query_service_server::QueryServiceServer;
use tokio_stream::wrappers::TcpListenerStream;

use crate::alert_api::AlertApi;
use crate::auth::{AuthLog, Authenticate, Role, TokenTable};
use crate::board::{BoardApi, ServiceCatalog};
use crate::config::Config;
use crate::ingest::IngestApi;
use crate::query::QueryApi;
use crate::status::CollectorStatus;
use crate::telemetry::IngestCounters;
use nightjar_alerting::alerter::{Alerter, now_ms};
use nightjar_model::limits::Limits;
use nightjar_model::model::SeriesKey;
use nightjar_proto::v1::alert_service_server::AlertServiceServer;
use nightjar_proto::v1::availability_service_server::AvailabilityServiceServer;
use nightjar_proto::v1::board_service_server::BoardServiceServer;
use nightjar_proto::v1::capacity_service_server::CapacityServiceServer;
use nightjar_proto::v1::incident_service_server::IncidentServiceServer;
use nightjar_storage::Storage;
use nightjar_storage::rocks::{
    MAX_OPEN, Recovery, ReopeningAlertStore, ReopeningStorage, RocksAlertStore, RocksStorage,
    system_clock,
};
use tonic::service::Routes;
use tonic::service::interceptor::InterceptedService;

/// Largest gRPC message accepted (a batch of a large host is well below).
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Runs the collector until a shutdown signal arrives.
/// Re-reads the configuration (file and flags), for SIGHUP.
pub type Reload = Box<dyn Fn() -> anyhow::Result<Config> + Send + Sync>;

/// Runs the collector until a shutdown signal arrives. With `reload`,
/// SIGHUP re-reads the config: rules, hooks, routes and maintenance windows
/// apply at once; other changed keys are logged as needing a restart.
pub async fn run(config: Config, reload: Option<Reload>) -> anyhow::Result<()> {
    // Watch SIGHUP before anything else: unwatched, it would end the process.
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    // Services are checked before anything opens: a bad file is a start error.
    let catalog = Arc::new(
        ServiceCatalog::load(config.services.clone()).map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let data_dir = config.data_dir.clone();
    let retention = config.retention;
    // With endpoints, every stored batch also writes its forward record.
    let forwarding = !config.remote_write.is_empty();
    let storage = tokio::task::spawn_blocking(move || {
        let open = move || {
            let storage = RocksStorage::open_with(&data_dir, retention, system_clock())?;
            if forwarding {
                storage.with_forwarding()
            } else {
                // Records left from a config that had endpoints.
                storage.clear_forward_queue()?;
                Ok(storage)
            }
        };
        open().map(|storage| ReopeningStorage::new(storage, open))
    })
    .await
    .context("opening storage")??;
    let storage = Arc::new(storage);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local = listener.local_addr().context("reading the bound address")?;
    tracing::info!(
        listen = %local,
        data_dir = %config.data_dir.display(),
        tls = config.tls.is_some(),
        mtls = config.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
        tokens = config.tokens.as_ref().map_or(0, |t| t.len()),
        "collector ready"
    );
    nightjar_common::systemd::ready(&format!("listening on {local}"));

    let alert_dir = config.data_dir.join("alerts");
    let (rules, alerting) = (config.rules.clone(), config.alerting.clone());
    let (alerter, alert_store) = tokio::task::spawn_blocking(move || {
        let name = alert_dir.display().to_string();
        let store = RocksAlertStore::open(&alert_dir)?;
        let store = Arc::new(ReopeningAlertStore::new(store, name, move || {
            RocksAlertStore::open(&alert_dir)
        }));
        Alerter::open(store.clone(), rules, alerting).map(|alerter| (alerter, store))
    })
    .await
    .context("opening the alert store")??;
    let alerter = Arc::new(alerter);
    // Alerts are scoped into incidents by the services they hit.
    alerter.set_services(catalog.services().to_vec());
    let timeline: Arc<dyn nightjar_alerting::availability::TimelineStore> = alert_store.clone();
    tokio::spawn(recover_periodically(storage.clone(), alert_store));
    seed_alerter(&alerter, &*storage, &config.name, now_ms());
    tracing::info!(rules = alerter.rules().len(), "alert rules loaded");
    tokio::spawn(alerter.clone().run_dispatcher());
    let watchdog = nightjar_common::systemd::watchdog_timeout();
    let last_sweep_ms = Arc::new(std::sync::atomic::AtomicI64::new(0));
    tokio::spawn(sweep_periodically(
        alerter.clone(),
        watchdog.is_some(),
        last_sweep_ms.clone(),
    ));
    match hangup {
        Ok(hangup) => {
            tokio::spawn(reload_on_sighup(
                hangup,
                alerter.clone(),
                catalog.clone(),
                reload,
                config.clone(),
            ));
        }
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGHUP; reload rules with `nightjar rules reload`")
        }
    }

    let counters = Arc::new(IngestCounters::default());
    let senders = crate::remote_write::send::start(storage.clone(), config.remote_write.clone())
        .map_err(|e| anyhow::anyhow!(e))?;
    let _ = counters.remote_write.set(senders);
    let auth_log = Arc::new(AuthLog::default());
    let wiring = Wiring {
        storage: storage.clone(),
        alerter: alerter.clone(),
        counters: counters.clone(),
        limits: config.limits.clone(),
        auth_log: auth_log.clone(),
        tokens: config.tokens.clone(),
        mtls: config.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
        catalog: catalog.clone(),
        timeline: timeline.clone(),
        capacity_limits: config.capacity_limits.clone(),
        correlations: config.correlations.clone(),
    };
    tokio::spawn(crate::capacity::forecast_periodically(
        storage.clone(),
        alerter.clone(),
        config.name.clone(),
        config.forecast_interval,
    ));
    // Every service's state timeline, recorded as it happens.
    let recorder = Arc::new(nightjar_alerting::availability::Recorder::new(
        timeline,
        now_ms(),
    ));
    tokio::spawn(crate::availability::record_periodically(
        recorder,
        storage.clone(),
        alerter.clone(),
        catalog.clone(),
        config.name.clone(),
    ));
    if let Some(addr) = config.http_listen {
        let listener = nightjar_common::status_http::bind("http_listen", addr)
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
        let bound = listener
            .local_addr()
            .context("reading the HTTP status address")?;
        tracing::info!(http_listen = %bound, "HTTP status port (/healthz, /metrics, gRPC-web, the dashboard at /) ready");
        let source = Arc::new(CollectorStatus {
            name: config.name.clone(),
            storage: storage.clone(),
            counters: counters.clone(),
            alerter: alerter.clone(),
            auth_log: auth_log.clone(),
            last_sweep_ms: last_sweep_ms.clone(),
        });
        // The same services, with the same authentication, for browsers:
        // gRPC-web on the HTTP port (the dashboard reads through it).
        let grpc_web = wiring
            .routes()
            .into_axum_router()
            .layer(tonic_web::GrpcWebLayer::new())
            .merge(crate::dashboard::router())
            .merge(wiring.http_routes());
        tokio::spawn(nightjar_common::status_http::serve(
            listener,
            source,
            Some(grpc_web),
        ));
    }
    tokio::spawn(crate::self_metrics::run(
        config.name.clone(),
        config.self_metrics_interval,
        storage.clone(),
        counters.clone(),
        Some(alerter.clone()),
        auth_log.clone(),
    ));
    tokio::spawn(flush_heads_periodically(storage.clone()));
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &config.tls {
        builder = builder
            .tls_config(tls.config())
            .context("configuring TLS for the listener")?;
    }
    // grpc.health.v1: open to all (load balancers carry no token), "" and
    // the three services report SERVING while the collector runs.
    let (health, health_service) = tonic_health::server::health_reporter();
    for service in [
        "",
        "nightjar.v1.IngestService",
        "nightjar.v1.QueryService",
        "nightjar.v1.AlertService",
    ] {
        health
            .set_service_status(service, tonic_health::ServingStatus::Serving)
            .await;
    }
    let builder = builder
        .add_routes(wiring.routes())
        .add_service(health_service);
    let (stopping_tx, stopping_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = builder.serve_with_incoming_shutdown(incoming(listener), async {
        shutdown_signal().await;
        let _ = stopping_tx.send(());
    });
    // Graceful shutdown waits for clients to close their connections; one
    // that never does (idle, or gone without a FIN) must not keep the
    // collector from stopping. Nothing acked is at stake: acks follow
    // durable writes, and an unacked batch is resent by its agent.
    let drain_limit = async {
        if stopping_rx.await.is_ok() {
            tokio::time::sleep(DRAIN_LIMIT).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        served = serving => served.context("serving gRPC")?,
        () = drain_limit => tracing::warn!(
            limit = ?DRAIN_LIMIT,
            "connections still open after the drain limit; stopping anyway"
        ),
    }
    // In-flight batches are stored and acked by now; write the open chunks
    // so the next start has no ingest log to replay.
    let flushed = tokio::task::spawn_blocking(move || storage.flush_heads(Duration::ZERO)).await;
    match flushed {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::warn!(%error, "cannot write open chunks at shutdown; the next start replays the ingest log")
        }
        Err(error) => tracing::warn!(%error, "shutdown flush task failed"),
    }
    tracing::info!("collector stopped");
    Ok(())
}

/// What the collector's gRPC services are built from.
pub struct Wiring<S> {
    /// Series storage.
    pub storage: Arc<S>,
    /// The alerting system (ingest feeds it; the AlertService fronts it).
    pub alerter: Arc<Alerter>,
    /// Ingest counters (self-metrics, /metrics).
    pub counters: Arc<IngestCounters>,
    /// `[limits]`.
    pub limits: Limits,
    /// Where refusals are counted and logged.
    pub auth_log: Arc<AuthLog>,
    /// Bearer tokens, if `[auth]` is configured.
    pub tokens: Option<Arc<TokenTable>>,
    /// Whether agents must present a client certificate.
    pub mtls: bool,
    /// The declared services (the BoardService fronts them).
    pub catalog: Arc<ServiceCatalog>,
    /// The services' availability timelines (the AvailabilityService
    /// reports from them).
    pub timeline: Arc<dyn nightjar_alerting::availability::TimelineStore>,
    /// `[[capacity.limit]]` (the CapacityService ranks them).
    pub capacity_limits: Vec<crate::capacity::CapacityLimit>,
    /// `[[capacity.correlation]]` (the capacity report runs them).
    pub correlations: Vec<crate::capacity::DeclaredCorrelation>,
}

impl<S: Storage> Wiring<S> {
    /// Ingest, query and alerts, each behind its authentication: what the
    /// collector serves on its port (besides health), and what in-process
    /// tests serve over an in-memory connection.
    pub fn routes(&self) -> Routes {
        let authenticate = |role| Authenticate {
            table: self.tokens.clone(),
            role,
            log: self.auth_log.clone(),
            // mTLS is for agents; people's CLIs bring a read token instead.
            require_client_cert: self.mtls && role == Role::Agent,
        };
        let ingest = IngestServiceServer::new(
            IngestApi::new(
                self.storage.clone(),
                self.counters.clone(),
                self.limits.clone(),
            )
            .with_alerter(self.alerter.clone())
            .with_auth_log(self.auth_log.clone()),
        )
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let query = QueryServiceServer::new(QueryApi::new(self.storage.clone()));
        let alerts = AlertServiceServer::new(AlertApi::new(self.alerter.clone()));
        let board = BoardServiceServer::new(BoardApi::new(
            self.storage.clone(),
            self.alerter.clone(),
            self.catalog.clone(),
        ));
        let availability =
            AvailabilityServiceServer::new(crate::availability::AvailabilityApi::new(
                self.timeline.clone(),
                self.alerter.clone(),
                self.catalog.clone(),
            ));
        let incidents = IncidentServiceServer::new(crate::incident_api::IncidentApi::new(
            self.alerter.clone(),
            self.timeline.clone(),
            self.catalog.clone(),
        ));
        let capacity = CapacityServiceServer::new(crate::capacity::CapacityApi::new(
            self.storage.clone(),
            self.capacity_limits.clone(),
            self.correlations.clone(),
            self.catalog.clone(),
        ));
        Routes::new(InterceptedService::new(ingest, authenticate(Role::Agent)))
            .add_service(InterceptedService::new(query, authenticate(Role::Read)))
            .add_service(InterceptedService::new(alerts, authenticate(Role::Read)))
            .add_service(InterceptedService::new(board, authenticate(Role::Read)))
            .add_service(InterceptedService::new(
                availability,
                authenticate(Role::Read),
            ))
            .add_service(InterceptedService::new(incidents, authenticate(Role::Read)))
            .add_service(InterceptedService::new(capacity, authenticate(Role::Read)))
    }
}

impl<S: Storage> Wiring<S> {
    /// The Prometheus-ecosystem HTTP APIs of the HTTP port, each behind
    /// its token: the remote_write receiver (`write` tokens) and the
    /// Prometheus query API under `/api/v1/` (`read` tokens).
    pub fn http_routes(&self) -> axum::Router {
        let receiver = crate::remote_write::receive::Receiver {
            storage: self.storage.clone(),
            counters: self.counters.clone(),
            limits: Arc::new(self.limits.clone()),
            alerter: Some(self.alerter.clone()),
            auth: Authenticate {
                table: self.tokens.clone(),
                role: Role::Write,
                log: self.auth_log.clone(),
                require_client_cert: false,
            },
            store_lock: tokio::sync::Mutex::new(()),
        };
        let prometheus = crate::promql::api::PromApi {
            storage: self.storage.clone(),
            auth: Authenticate {
                table: self.tokens.clone(),
                role: Role::Read,
                log: self.auth_log.clone(),
                require_client_cert: false,
            },
        };
        crate::remote_write::receive::router(Arc::new(receiver))
            .merge(crate::promql::api::router(Arc::new(prometheus)))
    }
}

/// Makes the hosts and the absence-watched series in `storage` known to
/// the alerter, so that one that never reports again still fires, and
/// refills the windows of threshold rules with the stored points.
/// `own_host` (the collector's name) is left out.
pub fn seed_alerter<S: Storage>(alerter: &Alerter, storage: &S, own_host: &str, now: i64) {
    for host in storage.hosts() {
        if host.info.host != own_host {
            alerter.seed_host(
                &host.info.host,
                host.info.last_seen_ms,
                host.info.interval_ms,
                now,
            );
        }
    }
    for selector in alerter.absence_selectors() {
        match storage.latest(&selector) {
            Ok(latest) => {
                let keys: Vec<_> = latest
                    .into_iter()
                    .map(|(_, key, _)| SeriesKey::clone(&key))
                    .collect();
                alerter.seed_series(&keys, now);
            }
            Err(error) => tracing::warn!(%error, "cannot read series for absence rules"),
        }
    }
    for (selector, window_ms) in alerter.windowed_selectors() {
        match storage.query_range(&selector, now.saturating_sub(window_ms), now) {
            Ok(found) => {
                for (key, points) in found {
                    alerter.prime(&key, &points);
                }
            }
            Err(error) => tracing::warn!(%error, "cannot refill the windows of threshold rules"),
        }
    }
}

/// How often open chunks are checked for age and the ingest log truncated.
const FLUSH_EVERY: Duration = Duration::from_secs(10);

/// Writes chunks open longer than [`MAX_OPEN`] and truncates the ingest log,
/// every [`FLUSH_EVERY`].
async fn flush_heads_periodically(storage: Arc<ReopeningStorage>) {
    let mut ticker = tokio::time::interval(FLUSH_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let store = storage.clone();
        match tokio::task::spawn_blocking(move || store.flush_heads(MAX_OPEN)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "cannot write aged chunks"),
            Err(error) => tracing::warn!(%error, "flush task failed"),
        }
    }
}

/// How often failing databases are probed (and reopened if need be).
const RECOVER_EVERY: Duration = Duration::from_secs(2);

/// Brings the databases back after failing writes (a full disk that was
/// freed), without a restart: `rocks/reopen.rs` says why that takes a
/// reopen.
async fn recover_periodically(storage: Arc<ReopeningStorage>, alerts: Arc<ReopeningAlertStore>) {
    let mut ticker = tokio::time::interval(RECOVER_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let (storage, alerts) = (storage.clone(), alerts.clone());
        let recovered =
            tokio::task::spawn_blocking(move || (storage.recover(), alerts.recover())).await;
        if let Ok((series, alert_store)) = recovered
            && [&series, &alert_store]
                .iter()
                .any(|r| **r == Recovery::Reopened)
        {
            tracing::info!(
                ?series,
                ?alert_store,
                "storage recovered from failing writes"
            );
        }
    }
}

/// How long SIGTERM waits for clients to close their connections.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// How often the alert sweep runs (`for` timers, absence, host_down,
/// repeats, escalation).
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// How often alert history past its retention is deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Runs the alert sweep every [`SWEEP_EVERY`].
/// With `watchdog`, pings systemd after every completed sweep: a sweep that
/// hangs (storage or alert engine stuck) stops the pings and systemd
/// restarts the collector.
async fn sweep_periodically(
    alerter: Arc<Alerter>,
    watchdog: bool,
    last_sweep_ms: Arc<std::sync::atomic::AtomicI64>,
) {
    let mut ticker = tokio::time::interval(SWEEP_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune = tokio::time::Instant::now();
    loop {
        ticker.tick().await;
        let a = alerter.clone();
        let prune = last_prune.elapsed() >= PRUNE_EVERY;
        if prune {
            last_prune = tokio::time::Instant::now();
        }
        let swept = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            a.sweep(now);
            if prune {
                a.prune(now);
            }
        })
        .await;
        if swept.is_ok() {
            last_sweep_ms.store(now_ms(), std::sync::atomic::Ordering::Relaxed);
        }
        match swept {
            Ok(()) if watchdog => nightjar_common::systemd::watchdog(),
            Ok(()) => {}
            Err(error) => tracing::error!(%error, "alert sweep failed"),
        }
    }
}

/// The config keys whose change needs a restart, of those that differ.
fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    let differs =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    [
        ("listen", old.listen != new.listen),
        ("data_dir", old.data_dir != new.data_dir),
        ("name", old.name != new.name),
        ("http_listen", old.http_listen != new.http_listen),
        (
            "self_metrics_interval",
            old.self_metrics_interval != new.self_metrics_interval,
        ),
        ("limits", differs(&old.limits, &new.limits)),
        ("retention", differs(&old.retention, &new.retention)),
        ("tls", differs(&old.tls, &new.tls)),
        // Turning tokens on or off; a changed token file applies at once.
        ("auth", old.tokens.is_some() != new.tokens.is_some()),
        (
            "remote_write",
            differs(&old.remote_write, &new.remote_write),
        ),
        (
            "alerting.host_down_after",
            old.alerting.host_down_after != new.alerting.host_down_after,
        ),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect()
}

/// On SIGHUP: re-reads the config (hooks, routes, maintenance windows and
/// the rule files apply at once; other changes are named as needing a
/// restart) and reloads the rules. A broken config or rule file keeps what
/// runs.
async fn reload_on_sighup(
    mut hup: tokio::signal::unix::Signal,
    alerter: Arc<Alerter>,
    catalog: Arc<ServiceCatalog>,
    reload: Option<Reload>,
    mut current: Config,
) {
    while hup.recv().await.is_some() {
        if let Some(reload) = &reload {
            match reload() {
                Ok(mut next) => {
                    let keys = restart_needed(&current, &next);
                    if let (Some(live), Some(read)) = (&current.tokens, &next.tokens) {
                        let (added, removed) = live.replace_with(read);
                        tracing::info!(
                            tokens = live.len(),
                            added,
                            removed,
                            "SIGHUP: token file reloaded"
                        );
                        // The services hold `live`; keep it.
                        next.tokens = current.tokens.clone();
                    }
                    if !keys.is_empty() {
                        tracing::warn!(keys = %keys.join(", "), "SIGHUP: these changes take effect after a restart");
                    }
                    alerter.set_config(next.alerting.clone());
                    alerter.set_rule_source(next.rules.clone());
                    tracing::info!(
                        hooks = next.alerting.hooks.len(),
                        "SIGHUP: hooks, routes and maintenance windows reloaded"
                    );
                    current = next;
                }
                Err(error) => tracing::error!(
                    error = %format!("{error:#}"),
                    "SIGHUP: config not reloaded; the running settings stay"
                ),
            }
        }
        let a = alerter.clone();
        match tokio::task::spawn_blocking(move || a.reload_rules(now_ms())).await {
            Ok(Ok(n)) => tracing::info!(rules = n, "SIGHUP: alert rules reloaded"),
            Ok(Err(error)) => {
                tracing::error!(%error, "SIGHUP: alert rules not reloaded; the previous rules stay in force")
            }
            Err(error) => tracing::error!(%error, "SIGHUP: reload task failed"),
        }
        let (c, paths) = (catalog.clone(), current.services.clone());
        match tokio::task::spawn_blocking(move || c.reload(paths)).await {
            Ok(Ok(n)) => {
                alerter.set_services(catalog.services().to_vec());
                tracing::info!(services = n, "SIGHUP: services reloaded")
            }
            Ok(Err(error)) => {
                tracing::error!(%error, "SIGHUP: services not reloaded; the previous services stay")
            }
            Err(error) => tracing::error!(%error, "SIGHUP: reload task failed"),
        }
    }
}

/// Accepted connections with Nagle's algorithm off: a response of several
/// segments must not wait for the client's delayed ACK (~40 ms each).
fn incoming(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt as _;
    TcpListenerStream::new(listener).map(|accepted| {
        if let Ok(stream) = &accepted
            && let Err(error) = stream.set_nodelay(true)
        {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        accepted
    })
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(error) => {
            tracing::warn!(%error, "cannot watch SIGTERM; stop with Ctrl-C");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
    }
    nightjar_common::systemd::stopping();
}

#[cfg(test)]
mod tests {
    use super::seed_alerter;
    use nightjar_alerting::alerter::{Alerter, RuleSource, now_ms};
    use nightjar_alerting::config::Alerting;
    use nightjar_alerting::rules::parse_rules;
    use nightjar_alerting::store::MemoryAlertStore;
    use nightjar_model::model::{Batch, Labels, Point, Sample, SeriesKey};
    use nightjar_storage::Storage;
    use nightjar_storage::memory::MemoryStorage;
    use std::sync::Arc;

    fn batch(seq: u64, points: &[(i64, f64)]) -> Batch {
        let series = SeriesKey {
            metric: "temp".into(),
            labels: Labels::from_pairs(vec![("host".into(), "web-1".into())]).unwrap(),
        };
        Batch {
            agent_id: "a1".into(),
            host: "web-1".into(),
            seq,
            interval_ms: 60_000,
            samples: points
                .iter()
                .map(|&(t, v)| Sample {
                    series: series.clone(),
                    point: Point::new(t, v),
                })
                .collect(),
            histograms: Vec::new(),
        }
    }

    #[test]
    fn a_restart_refills_rule_windows_from_storage() {
        let storage = MemoryStorage::new();
        let now = now_ms();
        // Four minutes of a cool series, stored before the "restart".
        let old: Vec<(i64, f64)> = (1..=4).map(|m| (now - m * 60_000, 10.0)).collect();
        storage.append(&batch(1, &old), now).unwrap();
        let rules = parse_rules(
            "rules.toml",
            "[[rule]]\nname = \"hot\"\nmetric = \"temp\"\nwindow = \"5m\"\nwarning = 50\n",
        )
        .unwrap();
        let alerter = Alerter::open(
            Arc::new(MemoryAlertStore::new()),
            RuleSource::Given(rules),
            Alerting::default(),
        )
        .unwrap();
        seed_alerter(&alerter, &storage, "collector", now);
        // One hot point: the 5-minute average is (4 × 10 + 90) / 5 = 26,
        // below 50. Judged on the one point alone it would fire.
        alerter.observe(&batch(2, &[(now, 90.0)]), now);
        let active = alerter.active(now);
        assert!(
            active.is_empty(),
            "judged over the refilled window, nothing fires: {active:?}"
        );
    }
}
