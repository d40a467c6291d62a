//! The webhook receiver both alerting systems page: records when the first
//! "firing" notification for each series arrived.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use serde_json::Value;

/// First arrival of a firing notification per (system, host, series).
pub type Arrivals = Arc<Mutex<HashMap<(&'static str, String, String), Instant>>>;

fn record(
    arrivals: &Arrivals,
    system: &'static str,
    alerts: &[Value],
    firing: impl Fn(&Value) -> bool,
) {
    let now = Instant::now();
    let mut map = arrivals.lock().unwrap();
    for a in alerts.iter().filter(|a| firing(a)) {
        let label = |k: &str| a["labels"][k].as_str().unwrap_or_default().to_owned();
        map.entry((system, label("host"), label("series")))
            .or_insert(now);
    }
}

async fn ours(State(arrivals): State<Arrivals>, Json(body): Json<Value>) {
    let alerts = body["alerts"].as_array().cloned().unwrap_or_default();
    record(&arrivals, "ours", &alerts, |a| a["event"] == "firing");
}

async fn peer(State(arrivals): State<Arrivals>, Json(body): Json<Value>) {
    let alerts = body["alerts"].as_array().cloned().unwrap_or_default();
    record(&arrivals, "peer", &alerts, |a| a["status"] == "firing");
}

/// Prometheus text exposition of the peer's series.
async fn metrics(State(state): State<Exposed>) -> String {
    let values = state.values.lock().unwrap().clone();
    let mut out = String::with_capacity(values.len() * 64);
    for (i, v) in values.iter().enumerate() {
        out.push_str(&format!(
            "bench_gauge_{}{{host=\"bench-{}\",series=\"s{}\"}} {v}\n",
            i % state.rules,
            i / state.per_host,
            i % state.per_host
        ));
    }
    out
}

#[derive(Clone)]
struct Exposed {
    values: Arc<Mutex<Vec<f64>>>,
    per_host: usize,
    rules: usize,
}

/// Like [`serve`], plus `GET /metrics` exposing `values` for Prometheus.
pub async fn serve_with_metrics(
    listener: tokio::net::TcpListener,
    arrivals: Arrivals,
    values: Arc<Mutex<Vec<f64>>>,
    per_host: usize,
    rules: usize,
) {
    let exposed = axum::Router::new()
        .route("/metrics", axum::routing::get(metrics))
        .with_state(Exposed {
            values,
            per_host,
            rules,
        });
    let app = axum::Router::new()
        .route("/ours", axum::routing::post(ours))
        .route("/peer", axum::routing::post(peer))
        .with_state(arrivals)
        .merge(exposed);
    axum::serve(listener, app).await.expect("receiver serves");
}
