//! The gRPC `QueryService`: ListHosts, ListSeries, QueryRange, Latest.
//!
//! API boundary: requests are validated and converted here; storage and
//! aggregation see only domain types.

pub mod aggregate;
pub mod histogram;
pub mod latest;

use std::collections::BTreeMap;
use std::sync::Arc;

use nightjar_proto::v1 as pb;
use tonic::{Request, Response, Status};

use aggregate::Aggregation;
use histogram::Figure;
use nightjar_model::api_args::{check_range, whole_buckets};
use nightjar_model::convert::{labels_to_wire, selector_from_wire, series_to_wire};
use nightjar_model::model::{Labels, Point, SeriesKey, SharedKey};
use nightjar_model::selector::Selector;
use nightjar_storage::{Storage, StorageError, Tier};

pub use nightjar_model::api_args::MAX_BUCKETS;

/// The query service over a storage.
pub struct QueryApi<S> {
    storage: Arc<S>,
    latest_labels: latest::EncodedLabels,
}

impl<S: Storage> QueryApi<S> {
    /// A query service reading from `storage`.
    pub fn new(storage: Arc<S>) -> Self {
        QueryApi {
            storage,
            latest_labels: latest::EncodedLabels::default(),
        }
    }

    /// Runs a blocking storage call off the async runtime.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&S) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, Status> {
        let storage = self.storage.clone();
        tokio::task::spawn_blocking(move || f(&storage))
            .await
            .map_err(|e| Status::internal(format!("query task failed: {e}")))?
            .map_err(|e| {
                tracing::error!(error = %e, "query failed");
                Status::internal(e.to_string())
            })
    }

    /// A QueryRange over plain series: raw points, or step buckets read
    /// from raw points or the coarsest rollup tier that tiles the step.
    async fn query_points(
        &self,
        selector: Selector,
        start: i64,
        end: i64,
        step: i64,
        agg: Aggregation,
        by: Option<&[String]>,
    ) -> Result<Vec<pb::Series>, Status> {
        if step == 0 {
            return Ok(self
                .blocking(move |s| s.query_range(&selector, start, end))
                .await?
                .iter()
                .map(|(key, points)| series_to_wire(key, points))
                .collect());
        }
        let (start, end) = whole_buckets(start, end, step);
        Ok(match Tier::for_step(step) {
            Tier::Raw => {
                let found = self
                    .blocking(move |s| s.query_range(&selector, start, end))
                    .await?;
                bucket_groups(found, by, |members| {
                    aggregate::bucket(members.iter().map(Vec::as_slice), step, agg)
                })
            }
            tier => {
                let found = self
                    .blocking(move |s| s.query_summaries(&selector, tier, start, end))
                    .await?;
                bucket_groups(found, by, |members| {
                    aggregate::rebucket(members.iter().map(Vec::as_slice), step, agg)
                })
            }
        })
    }

    /// A QueryRange over histogram series: each histogram (step 0) or the
    /// merge of each step bucket's histograms, read from the raw
    /// histograms or the coarsest rollup tier that tiles the step.
    async fn query_histograms(
        &self,
        selector: Selector,
        start: i64,
        end: i64,
        step: i64,
        figure: Figure,
        by: Option<&[String]>,
    ) -> Result<Vec<pb::Series>, Status> {
        let (start, end) = if step == 0 {
            (start, end)
        } else {
            whole_buckets(start, end, step)
        };
        let tier = Tier::for_step(step);
        let found = self
            .blocking(move |s| s.query_histograms(&selector, tier, start, end))
            .await?;
        Ok(bucket_groups(found, by, |members| {
            histogram::bucket(members.iter().map(Vec::as_slice), step, figure)
        }))
    }
}

fn invalid(e: impl std::fmt::Display) -> Status {
    Status::invalid_argument(e.to_string())
}

/// What a QueryRange asks of plain series and of histogram series: a
/// plain aggregation asks both (histograms through
/// [`Figure::for_aggregation`]), a percentile only histograms.
fn aggregation_from_wire(value: i32) -> Result<(Option<Aggregation>, Option<Figure>), Status> {
    let plain = |agg| (Some(agg), Figure::for_aggregation(agg));
    let percentile = |q| (None, Some(Figure::Quantile(q)));
    Ok(match pb::Aggregation::try_from(value) {
        Ok(pb::Aggregation::Avg) => plain(Aggregation::Avg),
        Ok(pb::Aggregation::Min) => plain(Aggregation::Min),
        Ok(pb::Aggregation::Max) => plain(Aggregation::Max),
        Ok(pb::Aggregation::Sum) => plain(Aggregation::Sum),
        Ok(pb::Aggregation::Count) => plain(Aggregation::Count),
        Ok(pb::Aggregation::Last) => plain(Aggregation::Last),
        Ok(pb::Aggregation::P50) => percentile(0.5),
        Ok(pb::Aggregation::P90) => percentile(0.9),
        Ok(pb::Aggregation::P95) => percentile(0.95),
        Ok(pb::Aggregation::P99) => percentile(0.99),
        Ok(pb::Aggregation::P999) => percentile(0.999),
        Err(_) => return Err(invalid(format!("aggregation: unknown value {value}"))),
    })
}

/// Groups series by the values of `by`; the group's metric is the common
/// metric name of its members, or empty when they differ.
fn group_series<T>(
    found: Vec<(SharedKey, Vec<T>)>,
    by: &[String],
) -> Vec<(SeriesKey, Vec<Vec<T>>)> {
    /// A group: its members' common metric (None once they differ) and data.
    type Group<T> = (Option<String>, Vec<Vec<T>>);
    let mut groups: BTreeMap<Vec<(String, String)>, Group<T>> = BTreeMap::new();
    for (key, points) in found {
        let group_labels: Vec<(String, String)> = by
            .iter()
            .filter_map(|name| key.labels.get(name).map(|v| (name.clone(), v.to_owned())))
            .collect();
        let entry = groups
            .entry(group_labels)
            .or_insert_with(|| (Some(key.metric.clone()), Vec::new()));
        if entry.0.as_deref() != Some(key.metric.as_str()) {
            entry.0 = None;
        }
        entry.1.push(points);
    }
    groups
        .into_iter()
        .map(|(labels, (metric, members))| {
            let key = SeriesKey {
                metric: metric.unwrap_or_default(),
                labels: Labels::from_pairs(labels).unwrap_or_default(),
            };
            (key, members)
        })
        .collect()
}

/// Buckets each series (no grouping) or each group of series with `bucket`.
fn bucket_groups<T>(
    found: Vec<(SharedKey, Vec<T>)>,
    by: Option<&[String]>,
    bucket: impl Fn(&[Vec<T>]) -> Vec<Point>,
) -> Vec<pb::Series> {
    match by {
        None => found
            .into_iter()
            .map(|(key, data)| series_to_wire(&key, &bucket(&[data])))
            .collect(),
        Some(by) => group_series(found, by)
            .iter()
            .map(|(key, members)| series_to_wire(key, &bucket(members)))
            .collect(),
    }
}

#[tonic::async_trait]
impl<S: Storage> pb::query_service_server::QueryService for QueryApi<S> {
    async fn list_hosts(
        &self,
        _request: Request<pb::ListHostsRequest>,
    ) -> Result<Response<pb::ListHostsResponse>, Status> {
        let hosts = self
            .storage
            .hosts()
            .into_iter()
            .map(|h| pb::HostInfo {
                host: h.info.host,
                last_seen_ms: h.info.last_seen_ms,
                interval_ms: h.info.interval_ms,
                series_count: h.series_count,
            })
            .collect();
        Ok(Response::new(pb::ListHostsResponse { hosts }))
    }

    async fn list_series(
        &self,
        request: Request<pb::ListSeriesRequest>,
    ) -> Result<Response<pb::ListSeriesResponse>, Status> {
        let selector = selector_from_wire(request.into_inner().selector).map_err(invalid)?;
        let series = self
            .storage
            .series(&selector)
            .into_iter()
            .map(|k| pb::SeriesInfo {
                labels: labels_to_wire(&k.labels),
                metric: k.metric,
            })
            .collect();
        Ok(Response::new(pb::ListSeriesResponse { series }))
    }

    async fn query_range(
        &self,
        request: Request<pb::QueryRangeRequest>,
    ) -> Result<Response<pb::QueryRangeResponse>, Status> {
        let req = request.into_inner();
        let selector = selector_from_wire(req.selector).map_err(invalid)?;
        let (agg, figure) = aggregation_from_wire(req.aggregation)?;
        let (start, end, step) = (req.start_ms, req.end_ms, req.step_ms);
        check_range(start, end, step, req.group.is_some()).map_err(invalid)?;
        let by = req.group.map(|g| g.by);
        let mut series = match agg {
            Some(agg) => {
                self.query_points(selector.clone(), start, end, step, agg, by.as_deref())
                    .await?
            }
            None => Vec::new(),
        };
        if let Some(figure) = figure {
            // Histogram series answer too; a series (or group) that has
            // plain points in the range keeps those.
            let histograms = self
                .query_histograms(selector, start, end, step, figure, by.as_deref())
                .await?;
            let answered: std::collections::HashSet<(String, Vec<pb::Label>)> = series
                .iter()
                .map(|s| (s.metric.clone(), s.labels.clone()))
                .collect();
            series.extend(
                histograms
                    .into_iter()
                    .filter(|s| !answered.contains(&(s.metric.clone(), s.labels.clone()))),
            );
        }
        Ok(Response::new(pb::QueryRangeResponse { series }))
    }

    async fn latest(
        &self,
        request: Request<pb::LatestRequest>,
    ) -> Result<Response<pb::LatestResponse>, Status> {
        let selector = selector_from_wire(request.into_inner().selector).map_err(invalid)?;
        let started = std::time::Instant::now();
        let found = self.blocking(move |s| s.latest(&selector)).await?;
        let read = started.elapsed();
        let response = self.latest_labels.response(&found);
        tracing::debug!(
            series = found.len(),
            read_ms = read.as_secs_f64() * 1e3,
            total_ms = started.elapsed().as_secs_f64() * 1e3,
            "latest answered"
        );
        Ok(Response::new(response))
    }
}

#[cfg(test)]
mod tests {
    use nightjar_proto::v1 as pb;

    use crate::auth::hash_token;
    use crate::testing::{Options, TestCollector, now_ms, send, wire_batch};

    /// Two hosts' `cpu` and one host's `mem`, every 20 s over 2 minutes
    /// from a minute boundary, through the real ingest stream.
    async fn loaded() -> (TestCollector, i64) {
        let c = TestCollector::start().await;
        let now = now_ms();
        let t0 = now - now.rem_euclid(60_000) - 120_000;
        for (agent, host, base) in [("a1", "web-1", 10.0), ("a2", "web-2", 30.0)] {
            let batches = (0..6)
                .map(|i| {
                    let t = t0 + i * 20_000;
                    let v = base + i as f64;
                    let mut samples = vec![("cpu", t, v)];
                    if host == "web-1" {
                        samples.push(("mem", t, 50.0));
                    }
                    wire_batch(agent, host, i as u64 + 1, &samples)
                })
                .collect();
            let acks = send(&c, None, batches).await;
            assert!(acks.iter().all(|a| a.is_ok()), "{acks:?}");
        }
        (c, t0)
    }

    fn cpu() -> Option<pb::Selector> {
        Some(pb::Selector {
            metric: "cpu".into(),
            matchers: Vec::new(),
        })
    }

    fn values(series: &pb::Series) -> Vec<(i64, f64)> {
        series
            .points
            .iter()
            .map(|p| (p.timestamp_ms, p.value))
            .collect()
    }

    #[tokio::test]
    async fn raw_points_and_minute_averages_per_series_and_per_group() {
        let (c, t0) = loaded().await;
        let mut q = c.query();
        let raw = q
            .query_range(pb::QueryRangeRequest {
                selector: cpu(),
                start_ms: t0,
                end_ms: t0 + 40_000,
                step_ms: 0,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(raw.series.len(), 2);
        assert_eq!(
            values(&raw.series[0]),
            vec![(t0, 10.0), (t0 + 20_000, 11.0), (t0 + 40_000, 12.0)],
            "range bounds are inclusive"
        );
        let minutes = q
            .query_range(pb::QueryRangeRequest {
                selector: cpu(),
                start_ms: t0,
                end_ms: t0 + 119_999,
                step_ms: 60_000,
                aggregation: pb::Aggregation::Avg as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            values(&minutes.series[1]),
            vec![(t0, 31.0), (t0 + 60_000, 34.0)]
        );
        let total = q
            .query_range(pb::QueryRangeRequest {
                selector: cpu(),
                start_ms: t0,
                end_ms: t0 + 119_999,
                step_ms: 60_000,
                aggregation: pb::Aggregation::Sum as i32,
                group: Some(pb::Grouping { by: Vec::new() }),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(total.series.len(), 1, "one group of all series");
        // Minute 1: 10+11+12 + 30+31+32; minute 2: 13+14+15 + 33+34+35.
        assert_eq!(
            values(&total.series[0]),
            vec![(t0, 126.0), (t0 + 60_000, 144.0)]
        );
    }

    #[tokio::test]
    async fn latest_hosts_and_series_answer_what_was_ingested() {
        let (c, t0) = loaded().await;
        let mut q = c.query();
        let latest = q
            .latest(pb::LatestRequest { selector: cpu() })
            .await
            .unwrap()
            .into_inner();
        let newest: Vec<(i64, f64)> = latest.series.iter().flat_map(values).collect();
        assert_eq!(newest, vec![(t0 + 100_000, 15.0), (t0 + 100_000, 35.0)]);
        let hosts = q
            .list_hosts(pb::ListHostsRequest {})
            .await
            .unwrap()
            .into_inner()
            .hosts;
        let summary: Vec<(String, u64)> = hosts
            .into_iter()
            .map(|h| (h.host, h.series_count))
            .collect();
        assert_eq!(summary, vec![("web-1".into(), 2), ("web-2".into(), 1)]);
        let series = q
            .list_series(pb::ListSeriesRequest {
                selector: Some(pb::Selector {
                    metric: String::new(),
                    matchers: vec![pb::LabelMatcher {
                        name: "host".into(),
                        op: pb::MatchOp::Regex as i32,
                        value: "web-1".into(),
                    }],
                }),
            })
            .await
            .unwrap()
            .into_inner()
            .series;
        let metrics: Vec<&str> = series.iter().map(|s| s.metric.as_str()).collect();
        assert_eq!(metrics, vec!["cpu", "mem"]);
    }

    #[tokio::test]
    async fn bad_requests_are_refused_with_the_field_named() {
        let (c, t0) = loaded().await;
        let mut q = c.query();
        let ask = |start_ms: i64, end_ms: i64, step_ms: i64| pb::QueryRangeRequest {
            selector: cpu(),
            start_ms,
            end_ms,
            step_ms,
            ..Default::default()
        };
        for (request, field) in [
            (ask(t0, t0 - 1, 0), "end_ms"),
            (ask(t0, t0 + 1, -5), "step_ms"),
            (ask(0, 100 * 86_400_000, 1_000), "step_ms"),
            (ask(i64::MIN, i64::MAX, 1), "step_ms"),
            (ask(i64::MIN, i64::MAX, 0), "step_ms 0"),
        ] {
            let status = q.query_range(request).await.unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert!(status.message().contains(field), "{}", status.message());
        }
        let bad_regex = q
            .list_series(pb::ListSeriesRequest {
                selector: Some(pb::Selector {
                    metric: "cpu".into(),
                    matchers: vec![pb::LabelMatcher {
                        name: "host".into(),
                        op: pb::MatchOp::Regex as i32,
                        value: "(".into(),
                    }],
                }),
            })
            .await
            .unwrap_err();
        assert_eq!(bad_regex.code(), tonic::Code::InvalidArgument);
    }

    #[tokio::test]
    async fn queries_need_a_read_token_when_tokens_are_on() {
        let c = TestCollector::with(Options {
            tokens: Some(format!(
                "agent web-1 {}\nread grafana {}\n",
                hash_token("agent-secret"),
                hash_token("read-secret")
            )),
            ..Options::default()
        })
        .await;
        let mut q = c.query();
        let anonymous = q.list_hosts(pb::ListHostsRequest {}).await.unwrap_err();
        assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);
        let mut agent = tonic::Request::new(pb::ListHostsRequest {});
        agent
            .metadata_mut()
            .insert("authorization", "Bearer agent-secret".parse().unwrap());
        assert_eq!(
            q.list_hosts(agent).await.unwrap_err().code(),
            tonic::Code::PermissionDenied
        );
        let mut reader = tonic::Request::new(pb::ListHostsRequest {});
        reader
            .metadata_mut()
            .insert("authorization", "Bearer read-secret".parse().unwrap());
        assert!(q.list_hosts(reader).await.is_ok());
    }
}
