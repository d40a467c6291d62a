//! The daemons' HTTP status port: `GET /healthz` (200 "ok", or 503 with
//! the reason) and `GET /metrics` (the process's own metrics in the
//! Prometheus text exposition format). Separate from the gRPC port so that
//! load balancers and Prometheus can reach it without gRPC, TLS or tokens;
//! keep it on a trusted address.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

/// One metric line: name, labels, value.
pub type MetricLine = (String, Vec<(String, String)>, f64);

/// What the status port asks the daemon.
pub trait StatusSource: Send + Sync + 'static {
    /// Ok, or why the daemon is not healthy.
    fn health(&self) -> Result<(), String>;
    /// The process's own metrics now.
    fn metrics(&self) -> Vec<MetricLine>;
    /// The `# HELP` text of metric family `name`, if the daemon has one.
    fn help(&self, _name: &str) -> Option<&'static str> {
        None
    }
}

/// Escapes a label value for the text format.
fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// Renders metrics in the Prometheus text exposition format (version
/// 0.0.4): per metric name a `# HELP` line where `help` knows one and a
/// `# TYPE` line (`_total` → counter, else gauge), then its lines, grouped
/// by name in first-seen order.
pub fn render(metrics: &[MetricLine], help: impl Fn(&str) -> Option<&'static str>) -> String {
    let mut names: Vec<&str> = Vec::new();
    for (name, _, _) in metrics {
        if !names.contains(&name.as_str()) {
            names.push(name);
        }
    }
    let mut out = String::new();
    for name in names {
        let kind = if name.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        if let Some(text) = help(name) {
            // The text format escapes only backslash and newline in HELP.
            let text = text.replace('\\', r"\\").replace('\n', r"\n");
            let _ = writeln!(out, "# HELP {name} {text}");
        }
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (_, labels, value) in metrics.iter().filter(|(n, _, _)| n == name) {
            out.push_str(name);
            if !labels.is_empty() {
                let inner: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let _ = write!(out, "{{{}}}", inner.join(","));
            }
            let v = if value.is_nan() {
                "NaN".to_owned()
            } else if value.is_infinite() {
                if *value > 0.0 {
                    "+Inf".into()
                } else {
                    "-Inf".into()
                }
            } else {
                value.to_string()
            };
            let _ = writeln!(out, " {v}");
        }
    }
    out
}

async fn healthz(State(source): State<Arc<dyn StatusSource>>) -> impl IntoResponse {
    match tokio::task::spawn_blocking(move || source.health()).await {
        Ok(Ok(())) => (StatusCode::OK, "ok\n".to_owned()),
        Ok(Err(why)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: {why}\n"),
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("health check failed: {e}\n"),
        ),
    }
}

async fn metrics(State(source): State<Arc<dyn StatusSource>>) -> impl IntoResponse {
    match tokio::task::spawn_blocking(move || render(&source.metrics(), |n| source.help(n))).await {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("metrics failed: {e}\n"),
        ),
    }
}

/// Parses an `http_listen` value: `IP:PORT`, or "off" for no status port.
/// The error says what was written and how to write it.
pub fn parse_listen(text: &str) -> Result<Option<SocketAddr>, String> {
    if text.trim() == "off" {
        return Ok(None);
    }
    text.trim()
        .parse()
        .map(Some)
        .map_err(|e| format!("invalid address {text:?} ({e}); write it as IP:PORT or \"off\""))
}

/// Binds `addr`; the error names the key and the address.
pub async fn bind(key: &str, addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("{key}: cannot listen on {addr}: {e}"))
}

/// Serves `/healthz` and `/metrics` on `listener` until the process ends,
/// and the routes of `extra` beside them (the collector's gRPC-web API).
pub async fn serve(
    listener: tokio::net::TcpListener,
    source: Arc<dyn StatusSource>,
    extra: Option<axum::Router>,
) {
    let mut app = axum::Router::new()
        .route("/healthz", axum::routing::get(healthz))
        .route("/metrics", axum::routing::get(metrics))
        .with_state(source);
    if let Some(extra) = extra {
        // The gRPC router's fallback answers in gRPC terms; any other
        // path of this port is plainly not found.
        app = app
            .merge(extra)
            .fallback(|| async { axum::http::StatusCode::NOT_FOUND });
    }
    // With the peer's address, for the logs of refused requests.
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    if let Err(error) = axum::serve(listener, app).await {
        tracing::error!(%error, "the HTTP status port stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_is_an_address_or_off() {
        assert_eq!(parse_listen("off"), Ok(None));
        assert_eq!(
            parse_listen("127.0.0.1:9465"),
            Ok(Some(([127, 0, 0, 1], 9465).into()))
        );
        assert!(
            parse_listen("9465")
                .unwrap_err()
                .contains("write it as IP:PORT or \"off\"")
        );
    }

    #[test]
    fn renders_the_text_format() {
        let text = render(
            &[
                ("up_total".into(), vec![], 3.0),
                (
                    "queue".into(),
                    vec![("name".into(), "a\"b\\c\nd".into())],
                    1.5,
                ),
                (
                    "up_total".into(),
                    vec![("x".into(), "y".into())],
                    f64::INFINITY,
                ),
            ],
            |name| (name == "up_total").then_some("Times up, a\\b\nc."),
        );
        assert_eq!(
            text,
            "# HELP up_total Times up, a\\\\b\\nc.\n# TYPE up_total counter\nup_total 3\nup_total{x=\"y\"} +Inf\n# TYPE queue gauge\nqueue{name=\"a\\\"b\\\\c\\nd\"} 1.5\n"
        );
    }
}
