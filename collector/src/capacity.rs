//! Capacity (docs/capacity.md): the gRPC `CapacityService` (Forecast,
//! Capacity, Correlate) over the stored rollups, fitted with
//! `nightjar_model::capacity`; and the loop that computes what forecast
//! rules watch (`forecast_seconds_to_threshold`), stored and handed to the
//! alerter like any series.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use nightjar_alerting::alerter::{Alerter, now_ms};
use nightjar_model::alert::rules::{FORECAST_METRIC, ForecastSpec, NO_FORECAST_S, Rule};
use nightjar_model::capacity::correlate::{VolumeFit, correlate};
use nightjar_model::capacity::fit::{Crossing, FitKind, Limit, fit, undo_resets};
use nightjar_model::convert::{labels_to_wire, selector_from_wire};
use nightjar_model::model::{Batch, Labels, Point, Sample, SeriesKey, SharedKey};
use nightjar_model::selector::{Matcher, Selector};
use nightjar_proto::v1 as pb;
use nightjar_storage::rollup::Tier;
use nightjar_storage::{Storage, StorageError};
use tonic::{Request, Response, Status};

use crate::board::ServiceCatalog;
use nightjar_model::service::Layer;

/// Windows longer than this are fitted on the 1-hour rollups ...
const HOUR_TIER_OVER_MS: i64 = 3 * 86_400_000;
/// ... longer than this on the 1-minute rollups, shorter ones on raw points.
const MINUTE_TIER_OVER_MS: i64 = 2 * 3_600_000;
/// The shortest window that can be fitted.
pub const MIN_WINDOW_MS: i64 = 60_000;

/// A gauge with a declared limit, listed by `nightjar capacity`
/// (`[[capacity.limit]]`).
#[derive(Clone, Debug)]
pub struct CapacityLimit {
    pub name: String,
    pub selector: Selector,
    pub threshold: f64,
    pub limit: Limit,
}

/// The readings `nightjar capacity` always ranks: every filesystem,
/// memory and swap of every host, as percent used of 100.
fn built_in_limits() -> Vec<CapacityLimit> {
    let of = |name: &str, metric: &str| CapacityLimit {
        name: name.to_owned(),
        selector: Selector {
            metric: Some(metric.to_owned()),
            matchers: Vec::new(),
        },
        threshold: 100.0,
        limit: Limit::Upper,
    };
    vec![
        of("filesystem", "disk_used_percent"),
        of("memory", "memory_used_percent"),
        of("swap", "swap_used_percent"),
    ]
}

/// A series and its points as (time ms, value).
pub type SeriesPoints = (SharedKey, Vec<(i64, f64)>);

/// The points of each series `selector` matches in `[from, to]`, as
/// (time, value): the means of the 1-hour rollups for windows over three
/// days, of the 1-minute ones over two hours, raw points otherwise. A
/// rollup's time is its bucket's middle (the newest point's, for the
/// bucket still filling), so a trend is not shifted by half a bucket.
pub fn points_of<S: Storage + ?Sized>(
    storage: &S,
    selector: &Selector,
    from_ms: i64,
    to_ms: i64,
) -> Result<Vec<SeriesPoints>, StorageError> {
    let span = to_ms - from_ms;
    let tier = if span > HOUR_TIER_OVER_MS {
        Tier::Hour
    } else if span > MINUTE_TIER_OVER_MS {
        Tier::Minute
    } else {
        Tier::Raw
    };
    if tier == Tier::Raw {
        return Ok(storage
            .query_range(selector, from_ms, to_ms)?
            .into_iter()
            .map(|(k, pts)| {
                let pts = pts.iter().map(|p| (p.timestamp_ms, p.value)).collect();
                (k, pts)
            })
            .collect());
    }
    let half = tier.width_ms() / 2;
    Ok(storage
        .query_summaries(selector, tier, from_ms, to_ms)?
        .into_iter()
        .map(|(k, buckets)| {
            let pts = buckets
                .iter()
                .filter(|(_, s)| s.count > 0)
                .map(|(start, s)| ((start + half).min(s.last_ts), s.sum / s.count as f64))
                .collect();
            (k, pts)
        })
        .collect())
}

fn host_of(key: &SeriesKey) -> String {
    key.labels.get("host").unwrap_or_default().to_owned()
}

/// Fits one series and says when it crosses `threshold`. Counters
/// (`*_total`) are fitted with their resets undone.
pub fn forecast_one(
    key: &SeriesKey,
    points: &[(i64, f64)],
    kind: FitKind,
    threshold: f64,
    limit: Limit,
) -> pb::SeriesForecast {
    let mut out = pb::SeriesForecast {
        metric: key.metric.clone(),
        labels: labels_to_wire(&key.labels),
        fit: kind.as_str().into(),
        threshold,
        points: points.len() as u32,
        host: host_of(key),
        ..pb::SeriesForecast::default()
    };
    let fixed;
    let points = if key.metric.ends_with("_total") {
        fixed = undo_resets(points);
        &fixed[..]
    } else {
        points
    };
    match fit(kind, points) {
        Err(e) => {
            out.crossing = "error".into();
            out.error = e.to_string();
            if let Some((t, v)) = points.iter().max_by_key(|(t, _)| *t) {
                out.last_ms = *t;
                out.last_value = *v;
            }
        }
        Ok(f) => {
            out.slope_per_day = f.slope_per_day();
            out.r_squared = f.r_squared;
            out.last_value = f.last_value;
            out.last_ms = f.last_ms;
            out.a = f.a;
            out.b = f.b;
            out.origin_ms = f.origin_ms;
            match f.crossing(threshold, limit) {
                Crossing::Already => out.crossing = "already".into(),
                Crossing::Never => out.crossing = "never".into(),
                Crossing::At {
                    eta_ms,
                    low_ms,
                    high_ms,
                } => {
                    out.crossing = "crossing".into();
                    out.eta_ms = eta_ms;
                    out.eta_low_ms = low_ms;
                    out.eta_high_ms = high_ms.unwrap_or(0);
                }
            }
        }
    }
    out
}

/// Soonest trouble first: crossed already, then by crossing time, then
/// not crossing, then the series that could not be fitted.
pub fn rank(rows: &mut [pb::SeriesForecast]) {
    let order = |r: &pb::SeriesForecast| match r.crossing.as_str() {
        "already" => (0, 0),
        "crossing" => (1, r.eta_ms),
        "never" => (2, 0),
        _ => (3, 0),
    };
    rows.sort_by(|a, b| {
        order(a)
            .cmp(&order(b))
            .then_with(|| b.last_value.total_cmp(&a.last_value))
            .then_with(|| a.host.cmp(&b.host))
    });
}

/// The seconds to each forecast rule's threshold, per watched series, as
/// a batch of the collector's own series: what the rules' threshold half
/// watches. A fit below the rule's R², or none, is [`NO_FORECAST_S`].
pub fn forecast_batch<S: Storage + ?Sized>(
    storage: &S,
    rules: &[Arc<Rule>],
    collector: &str,
    now: i64,
) -> Batch {
    let mut samples = Vec::new();
    for rule in rules {
        let Some(spec) = &rule.forecast else { continue };
        match points_of(storage, &spec.selector, now - spec.over_ms, now) {
            Ok(found) => {
                for (key, points) in found {
                    samples.push(forecast_sample(rule, spec, &key, &points, collector, now));
                }
            }
            Err(error) => {
                tracing::warn!(rule = %rule.name, %error, "cannot read the series of a forecast rule")
            }
        }
    }
    Batch {
        agent_id: format!("nightjar-collector/{collector}/forecast"),
        host: collector.to_owned(),
        // Taken once per (host, agent id, seq): ms rise across restarts.
        seq: now.max(1) as u64,
        interval_ms: 0,
        samples,
        histograms: Vec::new(),
    }
}

fn forecast_sample(
    rule: &Rule,
    spec: &ForecastSpec,
    key: &SeriesKey,
    points: &[(i64, f64)],
    collector: &str,
    now: i64,
) -> Sample {
    let row = forecast_one(key, points, spec.fit, spec.threshold, spec.limit);
    let seconds = match row.crossing.as_str() {
        "already" => 0.0,
        "crossing" if row.r_squared >= spec.min_r_squared => {
            ((row.eta_ms - now) as f64 / 1000.0).max(0.0)
        }
        _ => NO_FORECAST_S,
    };
    let mut pairs: Vec<(String, String)> = key
        .labels
        .iter()
        .filter(|(k, _)| *k != "rule" && *k != "metric")
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    if !pairs.iter().any(|(k, _)| k == "host") {
        pairs.push(("host".into(), collector.to_owned()));
    }
    pairs.push(("rule".into(), rule.name.clone()));
    pairs.push(("metric".into(), key.metric.clone()));
    Sample {
        series: SeriesKey {
            metric: FORECAST_METRIC.to_owned(),
            labels: Labels::from_pairs(pairs).expect("distinct label names"),
        },
        point: Point {
            timestamp_ms: now,
            value: seconds,
        },
    }
}

/// Computes the forecast rules' series every `every`, stores them and
/// hands them to the alerter, until the process ends.
pub async fn forecast_periodically<S: Storage>(
    storage: Arc<S>,
    alerter: Arc<Alerter>,
    collector: String,
    every: Duration,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let rules: Vec<Arc<Rule>> = alerter
            .rules()
            .into_iter()
            .filter(|r| r.forecast.is_some())
            .collect();
        if rules.is_empty() {
            continue;
        }
        let (storage, alerter, collector) = (storage.clone(), alerter.clone(), collector.clone());
        let done = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            let batch = forecast_batch(&*storage, &rules, &collector, now);
            if batch.samples.is_empty() {
                return;
            }
            match storage.append(&batch, now) {
                Ok(_) => alerter.observe_own(&batch, now),
                Err(error) => tracing::warn!(%error, "cannot store the forecasts"),
            }
        })
        .await;
        if let Err(error) = done {
            tracing::error!(%error, "forecast task failed");
        }
    }
}

/// A declared volume-vs-KPI correlation (`[[capacity.correlation]]`),
/// reported by `nightjar report capacity`.
#[derive(Clone, Debug)]
pub struct DeclaredCorrelation {
    pub name: String,
    pub service: String,
    pub kpi: Selector,
    pub volume: Selector,
    pub fit: String,
    pub kpi_aggregation: String,
    pub what_if_growth: Option<f64>,
    pub sla: Option<f64>,
}

/// The capacity service.
pub struct CapacityApi<S> {
    storage: Arc<S>,
    limits: Arc<Vec<CapacityLimit>>,
    correlations: Arc<Vec<DeclaredCorrelation>>,
    catalog: Arc<ServiceCatalog>,
}

impl<S: Storage> CapacityApi<S> {
    /// The built-in resources and the declared limits.
    fn all_limits(&self) -> Vec<CapacityLimit> {
        built_in_limits()
            .into_iter()
            .chain(self.limits.iter().cloned())
            .collect()
    }

    /// Serves `storage`; `limits` and `correlations` are the declared
    /// ones; `catalog`'s services' business KPIs are reported.
    pub fn new(
        storage: Arc<S>,
        limits: Vec<CapacityLimit>,
        correlations: Vec<DeclaredCorrelation>,
        catalog: Arc<ServiceCatalog>,
    ) -> Self {
        CapacityApi {
            storage,
            limits: Arc::new(limits),
            correlations: Arc::new(correlations),
            catalog,
        }
    }
}

fn invalid(e: impl ToString) -> Status {
    Status::invalid_argument(e.to_string())
}

/// A request's window, checked: at least [`MIN_WINDOW_MS`].
fn window(from_ms: i64, to_ms: i64) -> Result<(i64, i64), Status> {
    let to = if to_ms == 0 { now_ms() } else { to_ms };
    if from_ms <= 0 {
        return Err(invalid("from_ms: give the window's start (epoch ms)"));
    }
    if to - from_ms < MIN_WINDOW_MS {
        return Err(invalid(format!(
            "window: {} s is too short to fit a trend; give at least 1m",
            (to - from_ms) / 1000
        )));
    }
    Ok((from_ms, to))
}

async fn blocking<S: Storage, T: Send + 'static>(
    storage: &Arc<S>,
    f: impl FnOnce(&S) -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    let storage = storage.clone();
    tokio::task::spawn_blocking(move || f(&storage))
        .await
        .map_err(|e| Status::internal(format!("capacity task failed: {e}")))?
}

fn storage_error(e: StorageError) -> Status {
    Status::internal(e.to_string())
}

/// The KPI and volume per bucket: the KPI's series combined (their mean,
/// or a percentile of their merged histograms), the volume's summed.
fn aligned<S: Storage + ?Sized>(
    storage: &S,
    kpi: &Selector,
    volume: &Selector,
    from: i64,
    to: i64,
    step: i64,
    kpi_agg: &str,
) -> Result<BTreeMap<i64, (f64, f64)>, Status> {
    let bucket = |t: i64| t.div_euclid(step) * step;
    let mut vol: BTreeMap<i64, BTreeMap<String, (f64, u64)>> = BTreeMap::new();
    for (key, pts) in points_of(storage, volume, from, to).map_err(storage_error)? {
        for (t, v) in pts {
            let e = vol
                .entry(bucket(t))
                .or_default()
                .entry(key.to_string())
                .or_default();
            e.0 += v;
            e.1 += 1;
        }
    }
    let mut kpis: BTreeMap<i64, (f64, u64)> = BTreeMap::new();
    if kpi_agg == "avg" {
        for (_, pts) in points_of(storage, kpi, from, to).map_err(storage_error)? {
            for (t, v) in pts {
                let e = kpis.entry(bucket(t)).or_default();
                e.0 += v;
                e.1 += 1;
            }
        }
    } else {
        let q = match kpi_agg {
            "p50" => 0.5,
            "p90" => 0.9,
            "p95" => 0.95,
            "p99" => 0.99,
            other => {
                return Err(invalid(format!(
                    "kpi_aggregation: {other:?} is not avg, p50, p90, p95 or p99"
                )));
            }
        };
        let tier = if to - from > HOUR_TIER_OVER_MS {
            Tier::Hour
        } else if to - from > MINUTE_TIER_OVER_MS {
            Tier::Minute
        } else {
            Tier::Raw
        };
        let mut merged: BTreeMap<i64, nightjar_model::histogram::Histogram> = BTreeMap::new();
        for (_, hs) in storage
            .query_histograms(kpi, tier, from, to)
            .map_err(storage_error)?
        {
            for (t, h) in hs {
                match merged.entry(bucket(t)) {
                    std::collections::btree_map::Entry::Vacant(e) => {
                        e.insert(h);
                    }
                    std::collections::btree_map::Entry::Occupied(mut e) => {
                        let _ = e.get_mut().merge(&h);
                    }
                }
            }
        }
        for (b, h) in merged {
            if h.count() > 0 {
                kpis.insert(b, (h.quantile(q), 1));
            }
        }
    }
    let mut out = BTreeMap::new();
    for (b, (sum, n)) in kpis {
        if let Some(series) = vol.get(&b) {
            // Each volume series' mean over the bucket, summed over series.
            let total: f64 = series.values().map(|(s, c)| s / *c as f64).sum();
            out.insert(b, (total, sum / n as f64));
        }
    }
    Ok(out)
}

#[tonic::async_trait]
impl<S: Storage> pb::capacity_service_server::CapacityService for CapacityApi<S> {
    async fn forecast(
        &self,
        request: Request<pb::ForecastRequest>,
    ) -> Result<Response<pb::ForecastResponse>, Status> {
        let req = request.into_inner();
        let selector = selector_from_wire(req.selector).map_err(invalid)?;
        if selector.metric.is_none() {
            return Err(invalid("selector: name the metric to forecast"));
        }
        let (from, to) = window(req.from_ms, req.to_ms)?;
        if !req.threshold.is_finite() {
            return Err(invalid("threshold: must be a finite number"));
        }
        let kind = FitKind::parse(if req.fit.is_empty() {
            "linear"
        } else {
            &req.fit
        })
        .map_err(invalid)?;
        let limit = if req.lower_limit {
            Limit::Lower
        } else {
            Limit::Upper
        };
        let threshold = req.threshold;
        let mut series = blocking(&self.storage, move |s| {
            points_of(s, &selector, from, to).map_err(storage_error)
        })
        .await?
        .into_iter()
        .map(|(key, pts)| forecast_one(&key, &pts, kind, threshold, limit))
        .collect::<Vec<_>>();
        rank(&mut series);
        Ok(Response::new(pb::ForecastResponse { series }))
    }

    async fn capacity(
        &self,
        request: Request<pb::CapacityRequest>,
    ) -> Result<Response<pb::CapacityResponse>, Status> {
        let req = request.into_inner();
        let (from, to) = window(req.from_ms, req.to_ms)?;
        let limits = self.all_limits();
        let host = req.host;
        let mut resources = blocking(&self.storage, move |s| {
            resources_of(s, &limits, &host, from, to)
        })
        .await?;
        rank(&mut resources);
        Ok(Response::new(pb::CapacityResponse { resources }))
    }

    async fn correlate(
        &self,
        request: Request<pb::CorrelateRequest>,
    ) -> Result<Response<pb::CorrelateResponse>, Status> {
        let req = request.into_inner();
        let kpi = selector_from_wire(req.kpi.clone()).map_err(invalid)?;
        let volume = selector_from_wire(req.volume.clone()).map_err(invalid)?;
        let (from, to) = window(req.from_ms, req.to_ms)?;
        let out = blocking(&self.storage, move |s| {
            correlation(s, &kpi, &volume, from, to, &req)
        })
        .await?;
        Ok(Response::new(out))
    }

    async fn report(
        &self,
        request: Request<pb::CapacityReportRequest>,
    ) -> Result<Response<pb::CapacityReportResponse>, Status> {
        let req = request.into_inner();
        let (from, to) = window(req.from_ms, req.to_ms)?;
        let limits = self.all_limits();
        let services = self.catalog.services();
        let declared = self.correlations.clone();
        let out = blocking(&self.storage, move |s| {
            let mut resources = resources_of(s, &limits, "", from, to)?;
            rank(&mut resources);
            let mut kpis = Vec::new();
            for svc in services.iter() {
                for c in svc
                    .components
                    .iter()
                    .filter(|c| c.layer == Layer::Business && c.selector.metric.is_some())
                {
                    let mut series: Vec<pb::SeriesForecast> = points_of(s, &c.selector, from, to)
                        .map_err(storage_error)?
                        .into_iter()
                        .map(|(key, pts)| {
                            forecast_one(&key, &pts, FitKind::Linear, f64::INFINITY, Limit::Upper)
                        })
                        .collect();
                    for row in &mut series {
                        // A trend, not a forecast: no threshold.
                        row.threshold = 0.0;
                        if row.crossing == "never" {
                            row.crossing = "trend".into();
                        }
                    }
                    kpis.push(pb::ServiceKpi {
                        service: svc.name.clone(),
                        component: c.name.clone(),
                        series,
                    });
                }
            }
            let mut correlations = Vec::new();
            for d in declared.iter() {
                let req = pb::CorrelateRequest {
                    fit: d.fit.clone(),
                    kpi_aggregation: d.kpi_aggregation.clone(),
                    what_if_growth: d.what_if_growth,
                    sla: d.sla,
                    ..pb::CorrelateRequest::default()
                };
                let (result, error) = match correlation(s, &d.kpi, &d.volume, from, to, &req) {
                    Ok(r) => (Some(r), String::new()),
                    Err(status) => (None, status.message().to_owned()),
                };
                correlations.push(pb::NamedCorrelation {
                    name: d.name.clone(),
                    service: d.service.clone(),
                    kpi: d.kpi.metric.clone().unwrap_or_default(),
                    volume: d.volume.metric.clone().unwrap_or_default(),
                    result,
                    error,
                });
            }
            Ok(pb::CapacityReportResponse {
                resources,
                kpis,
                correlations,
            })
        })
        .await?;
        Ok(Response::new(out))
    }
}

/// Every host's resources of `limits` (only `host`'s, unless empty).
fn resources_of<S: Storage + ?Sized>(
    s: &S,
    limits: &[CapacityLimit],
    host: &str,
    from: i64,
    to: i64,
) -> Result<Vec<pb::SeriesForecast>, Status> {
    let mut rows = Vec::new();
    for l in limits {
        let mut selector = l.selector.clone();
        if !host.is_empty() {
            selector
                .matchers
                .push(Matcher::parse(&format!("host={host}")).map_err(invalid)?);
        }
        for (key, pts) in points_of(s, &selector, from, to).map_err(storage_error)? {
            // No swap at all is not a resource running out.
            if l.name == "swap" && pts.iter().all(|(_, v)| *v == 0.0) {
                continue;
            }
            let mut row = forecast_one(&key, &pts, FitKind::Linear, l.threshold, l.limit);
            row.resource = match key.labels.get("mountpoint") {
                Some(m) if l.name == "filesystem" => format!("filesystem {m}"),
                _ => l.name.clone(),
            };
            rows.push(row);
        }
    }
    Ok(rows)
}

/// A volume-vs-KPI regression over `[from, to]` as `req` asks (fit,
/// aggregation, step, what-if, SLA).
fn correlation<S: Storage + ?Sized>(
    s: &S,
    kpi: &Selector,
    volume: &Selector,
    from: i64,
    to: i64,
    req: &pb::CorrelateRequest,
) -> Result<pb::CorrelateResponse, Status> {
    if kpi.metric.is_none() || volume.metric.is_none() {
        return Err(invalid("kpi, volume: name both metrics"));
    }
    let step = match req.step_ms {
        0 if to - from > 2 * 86_400_000 => 3_600_000,
        0 => 60_000,
        s if s < 1_000 => return Err(invalid("step_ms: at least 1000")),
        s => s,
    };
    let fit = VolumeFit::parse(if req.fit.is_empty() {
        "linear"
    } else {
        &req.fit
    })
    .map_err(invalid)?;
    let agg = if req.kpi_aggregation.is_empty() {
        "avg"
    } else {
        req.kpi_aggregation.as_str()
    };
    if let Some(g) = req.what_if_growth
        && (!g.is_finite() || g <= -1.0)
    {
        return Err(invalid(format!(
            "what_if_growth: {g} must be above -1 (-100 %)"
        )));
    }
    let buckets = aligned(s, kpi, volume, from, to, step, agg)?;
    let pairs: Vec<(f64, f64)> = buckets.values().copied().collect();
    let volume_now = pairs.last().map_or(0.0, |p| p.0);
    let c = correlate(fit, &pairs, volume_now).map_err(|e| {
        Status::failed_precondition(format!(
            "{e} (buckets of {} s with both a KPI and a volume)",
            step / 1000
        ))
    })?;
    let mut out = pb::CorrelateResponse {
        fit: fit.as_str().into(),
        a: c.a,
        b: c.b,
        buckets: c.n as u32,
        r_squared: c.r_squared,
        r: c.r,
        volume_now,
        kpi_now: c.kpi_now(),
        elasticity_percent: c.elasticity_percent(),
        points: buckets
            .iter()
            .map(|(b, (v, k))| pb::VolumeKpi {
                bucket_ms: *b,
                volume: *v,
                kpi: *k,
            })
            .collect(),
        ..pb::CorrelateResponse::default()
    };
    if let Some(g) = req.what_if_growth {
        out.has_what_if = true;
        out.what_if_volume = volume_now * (1.0 + g);
        out.what_if_kpi = c.what_if(g);
        if let Some(sla) = req.sla {
            out.has_sla = true;
            out.sla = sla;
            out.within_sla = out.what_if_kpi <= sla;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nightjar_storage::memory::MemoryStorage;

    fn feed(storage: &MemoryStorage, host: &str, metric: &str, points: &[(i64, f64)]) {
        let samples = points
            .iter()
            .map(|(t, v)| Sample {
                series: SeriesKey {
                    metric: metric.into(),
                    labels: Labels::from_pairs(vec![("host".into(), host.into())]).unwrap(),
                },
                point: Point::new(*t, *v),
            })
            .collect();
        storage
            .append(
                &Batch {
                    agent_id: format!("a-{host}-{metric}"),
                    host: host.into(),
                    seq: 1,
                    interval_ms: 10_000,
                    samples,
                    histograms: Vec::new(),
                },
                now_ms(),
            )
            .unwrap();
    }

    #[test]
    fn a_ramp_is_forecast_to_its_threshold_and_a_flat_series_never() {
        let storage = MemoryStorage::default();
        let now = now_ms();
        let ramp: Vec<(i64, f64)> = (0..60)
            .map(|i| (now - 600_000 + i * 10_000, 10.0 + i as f64))
            .collect();
        let flat: Vec<(i64, f64)> = (0..60).map(|i| (now - 600_000 + i * 10_000, 5.0)).collect();
        feed(&storage, "a", "queue", &ramp);
        feed(&storage, "b", "queue", &flat);
        let selector = Selector {
            metric: Some("queue".into()),
            matchers: Vec::new(),
        };
        let found = points_of(&storage, &selector, now - 700_000, now).unwrap();
        let mut rows: Vec<_> = found
            .iter()
            .map(|(k, p)| forecast_one(k, p, FitKind::Linear, 100.0, Limit::Upper))
            .collect();
        rank(&mut rows);
        assert_eq!(
            (rows[0].host.as_str(), rows[0].crossing.as_str()),
            ("a", "crossing")
        );
        // 1 per 10 s from 10 at now−600 s: 100 at now + 300 s.
        assert!(
            (rows[0].eta_ms - (now + 300_000)).abs() < 1_000,
            "{:?}",
            rows[0]
        );
        assert_eq!(rows[1].crossing, "never");
    }
}
