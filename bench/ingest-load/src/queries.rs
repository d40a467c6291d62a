//! Query latencies against the loaded collector, over gRPC: the median of
//! several runs of each dashboard-like query.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use nightjar_proto::v1 as pb;
use pb::query_service_client::QueryServiceClient;
use tonic::transport::Channel;

/// Runs per query; the median is reported.
const RUNS: usize = 15;

/// Median latencies, and how much each query returned (to show it did work).
pub struct QueryResult {
    /// 24 h of one series at a 1 min step.
    pub day_one_series: (Duration, usize),
    /// Latest of every `bench_used_bytes` series (agents × series / 10).
    pub latest: (Duration, usize),
    /// avg of cpu_usage_percent{cpu="0"} across all hosts over 1 h at 1 min.
    pub avg_cpu_hour: (Duration, usize),
}

fn equal(name: &str, value: &str) -> pb::LabelMatcher {
    pb::LabelMatcher {
        name: name.into(),
        op: pb::MatchOp::Equal as i32,
        value: value.into(),
    }
}

/// The median time of [`RUNS`] runs of `f`, and what the last returned.
pub async fn median<F, Fut>(mut f: F) -> anyhow::Result<(Duration, usize)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<usize>>,
{
    let mut times = Vec::with_capacity(RUNS);
    let mut size = 0;
    for _ in 0..RUNS {
        let t = Instant::now();
        size = f().await?;
        times.push(t.elapsed());
    }
    times.sort();
    Ok((times[RUNS / 2], size))
}

/// Runs the three queries.
pub async fn run(channel: Channel, now_ms: i64) -> anyhow::Result<QueryResult> {
    let client = QueryServiceClient::new(channel).max_decoding_message_size(256 << 20);
    let day_one_series = median(|| {
        let mut c = client.clone();
        async move {
            let r = c
                .query_range(pb::QueryRangeRequest {
                    selector: Some(pb::Selector {
                        metric: "bench_history_value".into(),
                        matchers: vec![equal("host", "bench-history")],
                    }),
                    start_ms: now_ms - 24 * 3_600_000,
                    end_ms: now_ms,
                    step_ms: 60_000,
                    aggregation: pb::Aggregation::Avg as i32,
                    group: None,
                })
                .await
                .context("24 h query")?
                .into_inner();
            Ok(r.series.iter().map(|s| s.points.len()).sum())
        }
    })
    .await?;
    let latest = median(|| {
        let mut c = client.clone();
        async move {
            let r = c
                .latest(pb::LatestRequest {
                    selector: Some(pb::Selector {
                        metric: "bench_used_bytes".into(),
                        matchers: vec![],
                    }),
                })
                .await
                .context("latest query")?
                .into_inner();
            Ok(r.series.len())
        }
    })
    .await?;
    let avg_cpu_hour = median(|| {
        let mut c = client.clone();
        async move {
            let r = c
                .query_range(pb::QueryRangeRequest {
                    selector: Some(pb::Selector {
                        metric: "cpu_usage_percent".into(),
                        matchers: vec![equal("cpu", "0"), equal("env", "bench")],
                    }),
                    start_ms: now_ms - 3_600_000,
                    end_ms: now_ms,
                    step_ms: 60_000,
                    aggregation: pb::Aggregation::Avg as i32,
                    group: Some(pb::Grouping { by: vec![] }),
                })
                .await
                .context("avg cpu query")?
                .into_inner();
            Ok(r.series.iter().map(|s| s.points.len()).sum())
        }
    })
    .await?;
    Ok(QueryResult {
        day_one_series,
        latest,
        avg_cpu_hour,
    })
}
