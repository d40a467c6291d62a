//! Runs the collector: opens storage, binds the listener, serves ingest and
//! query until SIGTERM or Ctrl-C, then drains in-flight requests.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use nightjar_proto::v1::ingest_service_server::IngestServiceServer;
use nightjar_proto::v1::query_service_server::QueryServiceServer;
use tokio_stream::wrappers::TcpListenerStream;

use crate::config::Config;
use crate::ingest::IngestApi;
use crate::query::QueryApi;
use crate::storage::rocks::{MAX_OPEN, RocksStorage, system_clock};
use crate::telemetry::IngestCounters;

/// Largest gRPC message accepted (a batch of a large host is well below).
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Runs the collector until a shutdown signal arrives.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let data_dir = config.data_dir.clone();
    let retention = config.retention;
    let storage = tokio::task::spawn_blocking(move || {
        RocksStorage::open_with(&data_dir, retention, system_clock())
    })
    .await
    .context("opening storage")??;
    let storage = Arc::new(storage);
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let local = listener.local_addr().context("reading the bound address")?;
    tracing::info!(listen = %local, data_dir = %config.data_dir.display(), "collector ready");

    let counters = Arc::new(IngestCounters::default());
    tokio::spawn(crate::self_metrics::run(
        config.name.clone(),
        config.self_metrics_interval,
        storage.clone(),
        counters.clone(),
    ));
    let ingest = IngestServiceServer::new(IngestApi::new(
        storage.clone(),
        counters,
        config.limits.clone(),
    ))
    .max_decoding_message_size(MAX_MESSAGE_BYTES);
    tokio::spawn(flush_heads_periodically(storage.clone()));
    let query = QueryServiceServer::new(QueryApi::new(storage.clone()));
    tonic::transport::Server::builder()
        .add_service(ingest)
        .add_service(query)
        .serve_with_incoming_shutdown(incoming(listener), shutdown_signal())
        .await
        .context("serving gRPC")?;
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

/// How often open chunks are checked for age and the ingest log truncated.
const FLUSH_EVERY: Duration = Duration::from_secs(10);

/// Writes chunks open longer than [`MAX_OPEN`] and truncates the ingest log,
/// every [`FLUSH_EVERY`].
async fn flush_heads_periodically(storage: Arc<RocksStorage>) {
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
}
