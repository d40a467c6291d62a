//! A real HTTP receiver for webhooks on a loopback port (axum on its own
//! runtime thread): records every request and answers with a status (and
//! after a delay) the test can change, to play a paging service that is up
//! or down, or a service a synthetic check probes (GET or POST, body
//! [`BODY`]).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Received {
    /// The path after the host (e.g. `/ops`).
    pub path: String,
    /// The request headers.
    pub headers: HeaderMap,
    /// The raw body.
    pub body: Vec<u8>,
    /// The status answered.
    pub status: u16,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("webhook body is JSON")
    }
}

/// The body of every answer.
pub const BODY: &str = "nightjar test receiver: ok";

#[derive(Default)]
struct Shared {
    /// Requests as they arrive, before the delay and the answer (status 0).
    arrived: Mutex<Vec<Received>>,
    received: Mutex<Vec<Received>>,
    status: AtomicU16,
    delay_ms: AtomicU64,
}

/// The receiver; it stops when dropped.
pub struct Receiver {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

async fn record(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    shared.arrived.lock().unwrap().push(Received {
        path: format!("/{path}"),
        headers: headers.clone(),
        body: body.to_vec(),
        status: 0,
    });
    let delay = shared.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let status = shared.status.load(Ordering::SeqCst);
    shared.received.lock().unwrap().push(Received {
        path: format!("/{path}"),
        headers,
        body: body.to_vec(),
        status,
    });
    (StatusCode::from_u16(status).unwrap(), BODY)
}

impl Receiver {
    /// Starts a receiver answering 200 on `port`.
    pub fn start(port: u16) -> Receiver {
        let shared = Arc::new(Shared {
            arrived: Mutex::new(Vec::new()),
            received: Mutex::new(Vec::new()),
            status: AtomicU16::new(200),
            delay_ms: AtomicU64::new(0),
        });
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let state = shared.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let app = axum::Router::new()
                    .route("/{*path}", axum::routing::post(record).get(record))
                    .with_state(state);
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .expect("receiver binds");
                ready_tx.send(()).unwrap();
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
                    .unwrap();
            });
        });
        ready_rx.recv().expect("receiver started");
        Receiver {
            addr,
            shared,
            _shutdown: tx,
        }
    }

    /// `http://addr/path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers every further request with `status`.
    pub fn set_status(&self, status: u16) {
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// Answers every further request after `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.shared
            .delay_ms
            .store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Every request that arrived on `path`, answered or not yet (a held
    /// response: [`Receiver::set_delay`]).
    pub fn arrived(&self, path: &str) -> Vec<Received> {
        self.shared
            .arrived
            .lock()
            .unwrap()
            .iter()
            .filter(|r| path.is_empty() || r.path == path)
            .cloned()
            .collect()
    }

    /// Everything received so far on `path` (all paths with "").
    pub fn received(&self, path: &str) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| path.is_empty() || r.path == path)
            .cloned()
            .collect()
    }

    /// The accepted (2xx) requests on `path`, as JSON.
    pub fn accepted(&self, path: &str) -> Vec<serde_json::Value> {
        self.received(path)
            .iter()
            .filter(|r| (200..300).contains(&r.status))
            .map(Received::json)
            .collect()
    }
}
