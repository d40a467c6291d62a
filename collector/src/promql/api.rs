//! The Prometheus HTTP API (read side) on the collector's HTTP port, under
//! `/api/v1/`: `query`, `query_range`, `series`, `labels`,
//! `label/<name>/values`, `metadata`, `status/buildinfo`, GET or POST
//! (form-encoded) as Prometheus takes them, answering in its JSON format,
//! behind the `read` token. Grafana's Prometheus data source and
//! `promtool query` are the clients it is tested with.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use nightjar_model::selector::Selector;
use nightjar_storage::{Storage, Tier};
use serde_json::{Value as Json, json};

use super::eval::{EvalError, HistogramSeries, Source, Steps, evaluate};
use super::value::{LabelSet, NAME, RawSeries, Value, format_value};
use crate::auth::Authenticate;

/// What the API needs.
pub struct PromApi<S> {
    /// The series.
    pub storage: Arc<S>,
    /// The `read` token check.
    pub auth: Authenticate,
}

/// The routes, to merge into the HTTP port's router.
pub fn router<S: Storage>(api: Arc<PromApi<S>>) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route("/api/v1/query", get(query::<S>).post(query::<S>))
        .route(
            "/api/v1/query_range",
            get(query_range::<S>).post(query_range::<S>),
        )
        .route("/api/v1/series", get(series::<S>).post(series::<S>))
        .route("/api/v1/labels", get(labels::<S>).post(labels::<S>))
        .route("/api/v1/label/{name}/values", get(label_values::<S>))
        .route("/api/v1/metadata", get(metadata::<S>))
        .route("/api/v1/status/buildinfo", get(buildinfo::<S>))
        .with_state(api)
}

/// A refusal in Prometheus' error format.
struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn bad_data(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "bad_data",
            message: message.into(),
        }
    }
}

impl From<EvalError> for ApiError {
    fn from(e: EvalError) -> ApiError {
        match e {
            EvalError::Unsupported(_) => ApiError::bad_data(e.to_string()),
            EvalError::Execution(_) => ApiError {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                kind: "execution",
                message: e.to_string(),
            },
            EvalError::Storage(_) => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                kind: "unavailable",
                message: e.to_string(),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(json!({"status": "error", "errorType": self.kind, "error": self.message})),
        )
            .into_response()
    }
}

fn success(data: Json) -> Response {
    axum::Json(json!({"status": "success", "data": data})).into_response()
}

/// The request's parameters: the query string and, for a form POST, the body.
struct Params(Vec<(String, String)>);

impl Params {
    fn of(query: Option<String>, headers: &HeaderMap, body: &Bytes) -> Params {
        let mut pairs: Vec<(String, String)> =
            form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if form {
            pairs.extend(
                form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())),
            );
        }
        Params(pairs)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A time parameter (Unix seconds, fractions allowed, or RFC 3339) in ms.
    fn time(&self, name: &str, default: i64) -> Result<i64, ApiError> {
        match self.get(name) {
            None | Some("") => Ok(default),
            Some(text) => parse_time(text).ok_or_else(|| {
                ApiError::bad_data(format!(
                    "invalid parameter {name:?}: cannot parse {text:?} to a valid timestamp"
                ))
            }),
        }
    }
}

/// Unix seconds (float) or RFC 3339, to ms.
pub fn parse_time(text: &str) -> Option<i64> {
    if let Ok(secs) = text.parse::<f64>() {
        return secs.is_finite().then(|| (secs * 1000.0).round() as i64);
    }
    text.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// A step: float seconds or a Prometheus duration, to ms.
fn parse_step(text: &str) -> Option<i64> {
    if let Ok(secs) = text.parse::<f64>() {
        return (secs.is_finite() && secs > 0.0).then(|| (secs * 1000.0).round() as i64);
    }
    promql_parser::util::duration::parse_duration(text)
        .ok()
        .map(|d| d.as_millis() as i64)
        .filter(|ms| *ms > 0)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Checks the read token; the refusal as Prometheus would word it.
fn authorize<S>(api: &PromApi<S>, peer: SocketAddr, headers: &HeaderMap) -> Result<(), ApiError> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    api.auth
        .check_bearer(&peer.to_string(), authorization)
        .map(|_| ())
        .map_err(|status| ApiError {
            status: if status.code() == tonic::Code::PermissionDenied {
                StatusCode::FORBIDDEN
            } else {
                StatusCode::UNAUTHORIZED
            },
            kind: "unauthorized",
            message: status.message().to_owned(),
        })
}

/// The storage as the evaluator's source.
struct StorageSource<'a, S>(&'a S);

fn labels_of(key: &nightjar_model::model::SeriesKey) -> LabelSet {
    let mut labels: LabelSet = key
        .labels
        .iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    labels.insert(NAME.to_owned(), key.metric.clone());
    labels
}

impl<S: Storage> Source for StorageSource<'_, S> {
    fn floats(&self, selector: &Selector, start: i64, end: i64) -> Result<Vec<RawSeries>, String> {
        Ok(self
            .0
            .query_range(selector, start, end)
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|(_, points)| !points.is_empty())
            .map(|(key, points)| RawSeries {
                labels: labels_of(&key),
                points: points
                    .into_iter()
                    .map(|p| (p.timestamp_ms, p.value))
                    .collect(),
            })
            .collect())
    }

    fn histograms(
        &self,
        selector: &Selector,
        start: i64,
        end: i64,
    ) -> Result<Vec<HistogramSeries>, String> {
        Ok(self
            .0
            .query_histograms(selector, Tier::Raw, start, end)
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|(_, h)| !h.is_empty())
            .map(|(key, h)| (labels_of(&key), h))
            .collect())
    }
}

/// A sample as Prometheus writes it: `[unix seconds, "value"]`.
fn sample(t: i64, v: f64) -> Json {
    json!([t as f64 / 1000.0, format_value(v)])
}

async fn evaluate_blocking<S: Storage>(
    api: &Arc<PromApi<S>>,
    text: &str,
    steps: Steps,
) -> Result<Value, ApiError> {
    let expr = promql_parser::parser::parse(text)
        .map_err(|e| ApiError::bad_data(format!("invalid parameter \"query\": {e}")))?;
    let storage = api.storage.clone();
    tokio::task::spawn_blocking(move || evaluate(&expr, steps, &StorageSource(&*storage)))
        .await
        .map_err(|e| ApiError::bad_data(format!("query task failed: {e}")))?
        .map_err(ApiError::from)
}

async fn query<S: Storage>(
    State(api): State<Arc<PromApi<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        authorize(&api, peer, &headers)?;
        let params = Params::of(raw, &headers, &body);
        let text = params
            .get("query")
            .ok_or_else(|| ApiError::bad_data("invalid parameter \"query\": missing"))?;
        let t = params.time("time", now_ms())?;
        let value = evaluate_blocking(&api, text, Steps::instant(t)).await?;
        Ok::<_, ApiError>(success(match value {
            Value::Scalar(v) => json!({"resultType": "scalar", "result": sample(t, v[0])}),
            Value::String(s) => json!({"resultType": "string", "result": [t as f64 / 1000.0, s]}),
            Value::Vector(series) => json!({
                "resultType": "vector",
                "result": series
                    .into_iter()
                    .filter_map(|s| Some(json!({"metric": s.labels, "value": sample(t, s.values[0]?)})))
                    .collect::<Vec<_>>(),
            }),
            Value::Matrix(series) => json!({
                "resultType": "matrix",
                "result": series
                    .into_iter()
                    .map(|s| json!({
                        "metric": s.labels,
                        "values": s.points.iter().map(|(t, v)| sample(*t, *v)).collect::<Vec<_>>(),
                    }))
                    .collect::<Vec<_>>(),
            }),
        }))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// Most steps a range query may have (Prometheus' limit).
const MAX_STEPS: i64 = 11_000;

async fn query_range<S: Storage>(
    State(api): State<Arc<PromApi<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = async {
        authorize(&api, peer, &headers)?;
        let params = Params::of(raw, &headers, &body);
        let text = params
            .get("query")
            .ok_or_else(|| ApiError::bad_data("invalid parameter \"query\": missing"))?;
        let start = params
            .get("start")
            .ok_or_else(|| ApiError::bad_data("invalid parameter \"start\": missing"))
            .and_then(|_| params.time("start", 0))?;
        let end = params
            .get("end")
            .ok_or_else(|| ApiError::bad_data("invalid parameter \"end\": missing"))
            .and_then(|_| params.time("end", 0))?;
        let step_text = params
            .get("step")
            .ok_or_else(|| ApiError::bad_data("invalid parameter \"step\": missing"))?;
        let step = parse_step(step_text).ok_or_else(|| {
            ApiError::bad_data(format!("invalid parameter \"step\": cannot parse {step_text:?} to a valid duration; zero or negative query resolution step widths are not accepted"))
        })?;
        if end < start {
            return Err(ApiError::bad_data(
                "invalid parameter \"end\": end timestamp must not be before start time",
            ));
        }
        if (end - start) / step > MAX_STEPS {
            return Err(ApiError::bad_data(format!(
                "exceeded maximum resolution of {MAX_STEPS} points per timeseries. Try decreasing the query resolution (?step=XX)"
            )));
        }
        let steps = Steps { start, end, step };
        let times: Vec<i64> = (0..)
            .map(|i| start + i * step)
            .take_while(|t| *t <= end)
            .collect();
        let value = evaluate_blocking(&api, text, steps).await?;
        let rows = |values: &[Option<f64>]| -> Vec<Json> {
            times
                .iter()
                .zip(values)
                .filter_map(|(t, v)| v.map(|v| sample(*t, v)))
                .collect()
        };
        let result = match value {
            Value::Scalar(v) => vec![json!({
                "metric": {},
                "values": rows(&v.into_iter().map(Some).collect::<Vec<_>>()),
            })],
            Value::Vector(series) => series
                .into_iter()
                .map(|s| json!({"metric": s.labels, "values": rows(&s.values)}))
                .collect(),
            Value::Matrix(_) | Value::String(_) => {
                return Err(ApiError::bad_data(
                    "invalid expression type for range query, must be Scalar or instant Vector",
                ));
            }
        };
        Ok(success(json!({"resultType": "matrix", "result": result})))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// The selectors of the `match[]` parameters.
fn matchers(params: &Params) -> Result<Vec<Selector>, ApiError> {
    params
        .all("match[]")
        .into_iter()
        .map(|text| {
            let expr = promql_parser::parser::parse(text)
                .map_err(|e| ApiError::bad_data(format!("invalid parameter \"match[]\": {e}")))?;
            match expr {
                promql_parser::parser::Expr::VectorSelector(vs) => {
                    super::eval::selector(&vs).map_err(ApiError::from)
                }
                _ => Err(ApiError::bad_data(format!(
                    "invalid parameter \"match[]\": {text:?} is not a series selector"
                ))),
            }
        })
        .collect()
}

/// Every series matching any of `selectors` (all with none), deduplicated.
fn matching<S: Storage>(storage: &S, selectors: &[Selector]) -> BTreeSet<LabelSet> {
    let all = [Selector::default()];
    let selectors = if selectors.is_empty() {
        &all[..]
    } else {
        selectors
    };
    selectors
        .iter()
        .flat_map(|s| storage.series(s))
        .map(|key| labels_of(&key))
        .collect()
}

async fn series<S: Storage>(
    State(api): State<Arc<PromApi<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = || {
        authorize(&api, peer, &headers)?;
        let params = Params::of(raw, &headers, &body);
        let selectors = matchers(&params)?;
        if selectors.is_empty() {
            return Err(ApiError::bad_data("no match[] parameter provided"));
        }
        Ok(success(json!(matching(&*api.storage, &selectors))))
    };
    run().unwrap_or_else(IntoResponse::into_response)
}

async fn labels<S: Storage>(
    State(api): State<Arc<PromApi<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let run = || {
        authorize(&api, peer, &headers)?;
        let params = Params::of(raw, &headers, &body);
        let names: BTreeSet<String> = matching(&*api.storage, &matchers(&params)?)
            .into_iter()
            .flat_map(|l| l.into_keys())
            .collect();
        Ok::<_, ApiError>(success(json!(names)))
    };
    run().unwrap_or_else(IntoResponse::into_response)
}

async fn label_values<S: Storage>(
    State(api): State<Arc<PromApi<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(name): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    let run = || {
        authorize(&api, peer, &headers)?;
        let params = Params::of(raw, &headers, &Bytes::new());
        let values: BTreeSet<String> = matching(&*api.storage, &matchers(&params)?)
            .into_iter()
            .filter_map(|mut l| l.remove(&name))
            .collect();
        Ok::<_, ApiError>(success(json!(values)))
    };
    run().unwrap_or_else(IntoResponse::into_response)
}

async fn metadata<S: Storage>(
    State(api): State<Arc<PromApi<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let run = || {
        authorize(&api, peer, &headers)?;
        let names: BTreeSet<String> = api
            .storage
            .series(&Selector::default())
            .into_iter()
            .map(|k| k.metric.clone())
            .collect();
        let out: BTreeMap<String, Json> = names
            .into_iter()
            .map(|name| {
                let kind = if name.ends_with("_total") {
                    "counter"
                } else {
                    "gauge"
                };
                let help = nightjar_common::metric_help::help(&name).unwrap_or("");
                let entry = json!([{"type": kind, "help": help, "unit": ""}]);
                (name, entry)
            })
            .collect();
        Ok::<_, ApiError>(success(json!(out)))
    };
    run().unwrap_or_else(IntoResponse::into_response)
}

/// Grafana picks its features by the Prometheus version a data source
/// reports: the PromQL implemented here is that of 2.42.
async fn buildinfo<S: Storage>(
    State(api): State<Arc<PromApi<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    match authorize(&api, peer, &headers) {
        Err(e) => e.into_response(),
        Ok(()) => success(json!({
            "version": "2.42.0",
            "revision": concat!("nightjar-", env!("CARGO_PKG_VERSION")),
            "branch": "",
            "buildUser": "",
            "buildDate": "",
            "goVersion": "",
            "application": concat!("nightjar-collector ", env!("CARGO_PKG_VERSION")),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_steps_parse_as_prometheus_takes_them() {
        assert_eq!(parse_time("1700000000.5"), Some(1_700_000_000_500));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Some(1_700_000_000_000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_step("15"), Some(15_000));
        assert_eq!(parse_step("1m30s"), Some(90_000));
        assert_eq!(parse_step("0"), None);
    }
}
