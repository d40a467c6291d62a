//! The end-to-end phase: N agent streams against a real collector process
//! on loopback, each sending back-to-back batches (as an agent replaying its
//! spool does) with a bounded number awaiting their ack.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use nightjar_proto::v1 as pb;
use tokio::sync::{Mutex, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

use crate::hostload::HostLoad;
use crate::wire::{self, Encoded};

/// What the load phase measured.
pub struct LoadResult {
    /// Samples acked per second over the measured window.
    pub samples_per_second: f64,
    /// Samples acked in total (warm-up included).
    pub samples_acked: u64,
    /// Ack latency (send → ack) in microseconds.
    pub latency_us: Histogram<u64>,
}

/// Opens `IngestService.Stream` with pre-encoded batches.
pub async fn open_stream(
    channel: Channel,
    rx: mpsc::Receiver<Encoded>,
) -> anyhow::Result<tonic::Streaming<pb::Ack>> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.context("collector not ready")?;
    let codec = tonic_prost::ProstCodec::<Encoded, pb::Ack>::default();
    let path = PathAndQuery::from_static("/nightjar.v1.IngestService/Stream");
    let response = grpc
        .streaming(tonic::Request::new(ReceiverStream::new(rx)), path, codec)
        .await
        .context("opening the ingest stream")?;
    Ok(response.into_inner())
}

/// Sends 24 h of one series at 1 s (`bench_history_value{host="bench-history"}`)
/// for the 24 h query, in batches of one hour.
pub async fn send_history(url: &str, now_ms: i64) -> anyhow::Result<()> {
    let channel = crate::connect(url).await?;
    let (tx, rx) = mpsc::channel(4);
    let mut acks = open_stream(channel, rx).await?;
    let head = wire::series_head(
        "bench_history_value",
        &[("host", "bench-history".to_owned())],
    );
    let start = now_ms - 24 * 3_600_000;
    let mut rng = fastrand::Rng::with_seed(1);
    let mut v = 50.0;
    for hour in 0..24u64 {
        let points: Vec<(i64, f64)> = (0..3600)
            .map(|s| {
                v = ((v * 100.0f64).round() + rng.i32(-3..=3) as f64) / 100.0;
                (start + (hour as i64 * 3600 + s) * 1000, v)
            })
            .collect();
        let mut out = Vec::new();
        wire::batch(
            "bench-history",
            "bench-history",
            hour + 1,
            1_000,
            points.iter().map(|&(t, v)| (head.as_slice(), t, v)),
            &mut out,
        );
        tx.send(Encoded(out)).await.context("sending history")?;
        let ack = acks.message().await?.context("stream closed")?;
        anyhow::ensure!(
            ack.acked_through == hour + 1,
            "history batch not acked: {ack:?}"
        );
    }
    Ok(())
}

/// Runs `agents` streams of `series` series each for `duration`, counting
/// acks after `warmup`.
pub async fn run(
    url: &str,
    agents: usize,
    series: usize,
    window: usize,
    warmup: Duration,
    duration: Duration,
    start_ms: i64,
) -> anyhow::Result<LoadResult> {
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let measured = Arc::new(AtomicU64::new(0));
    let total = Arc::new(AtomicU64::new(0));
    let latency = Arc::new(std::sync::Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("bounds"),
    ));
    let mut tasks = Vec::new();
    let mut unacked = Vec::new();
    for n in 0..agents {
        let channel = crate::connect(url).await?;
        let (tx, rx) = mpsc::channel::<Encoded>(window);
        let mut acks = open_stream(channel, rx).await?;
        let permits = Arc::new(Semaphore::new(window));
        let sent: Arc<Mutex<VecDeque<(u64, Instant)>>> = Arc::default();
        unacked.push(sent.clone());
        let mut load = HostLoad::new(n, series);
        let samples = load.len() as u64;
        let agent_id = format!("bench-agent-{n}");

        let (stop_s, permits_s, sent_s) = (stop.clone(), permits.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let mut seq = 0u64;
            while !stop_s.load(Ordering::Relaxed) {
                permits_s.acquire().await.expect("never closed").forget();
                seq += 1;
                let mut out = Vec::with_capacity(64 * 1024);
                load.next_batch(&agent_id, seq, start_ms + seq as i64 * 1_000, &mut out);
                sent_s.lock().await.push_back((seq, Instant::now()));
                if tx.send(Encoded(out)).await.is_err() {
                    break;
                }
            }
            anyhow::Ok(())
        }));

        let (measuring, measured, total, latency) = (
            measuring.clone(),
            measured.clone(),
            total.clone(),
            latency.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while let Some(ack) = acks.message().await? {
                anyhow::ensure!(
                    ack.rejected_samples == 0,
                    "collector rejected samples: {ack:?}"
                );
                let now = Instant::now();
                let mut sent = sent.lock().await;
                let mut done = 0;
                while sent.front().is_some_and(|(s, _)| *s <= ack.acked_through) {
                    let (_, at) = sent.pop_front().expect("checked");
                    let us = now.duration_since(at).as_micros() as u64;
                    latency
                        .lock()
                        .expect("poisoned")
                        .saturating_record(us.max(1));
                    done += 1;
                }
                drop(sent);
                total.fetch_add(done * samples, Ordering::Relaxed);
                if measuring.load(Ordering::Relaxed) {
                    measured.fetch_add(done * samples, Ordering::Relaxed);
                }
                permits.add_permits(done as usize);
            }
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(warmup).await;
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    // Drain: wait (up to a minute) until every batch sent has been acked,
    // so nothing is still being ingested when queries are timed.
    let drain_deadline = Instant::now() + Duration::from_secs(60);
    'drain: while Instant::now() < drain_deadline {
        for queue in &unacked {
            if !queue.lock().await.is_empty() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue 'drain;
            }
        }
        break;
    }
    for t in &tasks {
        t.abort();
    }
    let latency_us = latency.lock().expect("poisoned").clone();
    Ok(LoadResult {
        samples_per_second: measured.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        samples_acked: total.load(Ordering::Relaxed),
        latency_us,
    })
}
