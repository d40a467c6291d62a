//! `--scale`: how the collector's cost grows with the number of active
//! series, beside Prometheus' TSDB at the same series counts.
//!
//! For each count N (10 k, 100 k and 1 M by default) a fresh release
//! collector on loopback gets:
//! 1. 24 h of 100 history series at 10 s (`bench_history_value`, 8,640
//!    points each), for the 24 h range query at 1 and at 100 series;
//! 2. `--scale-rounds` rounds of N host-metric-like series
//!    (`hostload.rs`) from 100 agent streams of N / 100 series each, one
//!    batch per stream per round, at most 4 unacked per stream. Every
//!    series gets one sample per round, so after R rounds each holds R
//!    samples, as promtool's series do after R scrapes.
//!
//! Measured for each N: samples/s acked over the rounds (series creation
//! in the first round included), the collector's CPU and its samples/s per
//! core of CPU used, this process's own CPU over the same window (the load
//! generator, on the same two cores), the collector's peak RSS (`VmHWM`)
//! after the load and per series, query medians, and raw-tier bytes/sample
//! after SIGTERM and a full compaction. Then `promtool tsdb bench write
//! --metrics=N --scrapes=R` on a series file of the same N series, its
//! peak RSS polled from /proc every 20 ms.

use std::collections::VecDeque;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nightjar_proto::v1 as pb;
use nightjar_storage::Storage as _;
use nightjar_storage::rocks::RocksStorage;
use pb::query_service_client::QueryServiceClient;
use tokio::sync::{Mutex, Semaphore, mpsc};

use crate::hostload::HostLoad;
use crate::load::open_stream;
use crate::queries::median;
use crate::wire::{self, Encoded};
use crate::{KillOnDrop, connect, ms, now_ms, procstat};

/// Agent streams the load is split over.
const AGENTS: usize = 100;
/// Unacked batches per stream.
const WINDOW: usize = 4;
/// History series for the 24 h query, and their spacing.
const HISTORY_SERIES: usize = 100;
const HISTORY_INTERVAL_MS: i64 = 10_000;

/// What one series count measured.
pub struct Point {
    series: usize,
    samples_per_second: f64,
    collector_cores: f64,
    generator_cores: f64,
    peak_rss: u64,
    raw_bytes_per_sample: f64,
    latest: (Duration, usize),
    day_one: Duration,
    day_hundred: Duration,
    promtool_peak_rss: Option<u64>,
}

/// Runs every count in `counts` and prints a line each, then the table.
pub async fn run(
    collector_bin: &Path,
    work: &Path,
    counts: &[usize],
    rounds: u64,
) -> anyhow::Result<()> {
    let mut points = Vec::new();
    for &n in counts {
        anyhow::ensure!(
            n % (AGENTS * 10) == 0 && n > 0,
            "--scale-series: {n} is not a positive multiple of {}",
            AGENTS * 10
        );
        let mut p = collector_at(collector_bin, work, n, rounds).await?;
        p.promtool_peak_rss = promtool_peak_rss(work, n, rounds)?;
        let per = |b: u64| b as f64 / n as f64;
        println!(
            "scale: {n} series × {rounds} rounds: {:.0} samples/s acked; collector {:.0}% CPU, {:.0} samples/s per core; load generator {:.0}% CPU; collector peak RSS {:.0} MiB ({:.0} bytes/series); promtool peak RSS {} ({} bytes/series); raw {:.2} bytes/sample; Latest {:.2} ms ({} series); 24 h at 1 min: 1 series {:.2} ms, 100 series {:.2} ms",
            p.samples_per_second,
            p.collector_cores * 100.0,
            p.samples_per_second / p.collector_cores,
            p.generator_cores * 100.0,
            p.peak_rss as f64 / (1 << 20) as f64,
            per(p.peak_rss),
            p.promtool_peak_rss.map_or("-".to_owned(), |b| format!(
                "{:.0} MiB",
                b as f64 / (1 << 20) as f64
            )),
            p.promtool_peak_rss
                .map_or("-".to_owned(), |b| format!("{:.0}", per(b))),
            p.raw_bytes_per_sample,
            ms(p.latest.0),
            p.latest.1,
            ms(p.day_one),
            ms(p.day_hundred),
        );
        points.push(p);
    }
    // Growth between consecutive counts: cost per added series, and how
    // each figure grew against the series count.
    for w in points.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let grow = b.series as f64 / a.series as f64;
        println!(
            "scale: {} → {} series (× {grow:.0}): peak RSS × {:.2} ({:.0} bytes per added series; promtool {}), Latest × {:.2}, samples/s per core × {:.2}, raw bytes/sample × {:.2}",
            a.series,
            b.series,
            b.peak_rss as f64 / a.peak_rss as f64,
            (b.peak_rss as f64 - a.peak_rss as f64) / (b.series - a.series) as f64,
            match (a.promtool_peak_rss, b.promtool_peak_rss) {
                (Some(pa), Some(pb)) => format!(
                    "{:.0}",
                    (pb as f64 - pa as f64) / (b.series - a.series) as f64
                ),
                _ => "-".to_owned(),
            },
            b.latest.0.as_secs_f64() / a.latest.0.as_secs_f64(),
            (b.samples_per_second / b.collector_cores) / (a.samples_per_second / a.collector_cores),
            b.raw_bytes_per_sample / a.raw_bytes_per_sample,
        );
    }
    Ok(())
}

/// The collector's side for `n` series.
async fn collector_at(
    collector_bin: &Path,
    work: &Path,
    n: usize,
    rounds: u64,
) -> anyhow::Result<Point> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let data = work.join(format!("scale-{n}"));
    let _ = std::fs::remove_dir_all(&data);
    let config = work.join("scale.toml");
    // The defaults (10 k series per host, 1 M in all) would refuse the
    // largest load.
    std::fs::write(
        &config,
        "[limits]\nmax_series_per_host = 1000000\nmax_series_total = 10000000\n",
    )?;
    let mut collector = KillOnDrop(
        Command::new(collector_bin)
            .arg("--config")
            .arg(&config)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--http-listen", "off"])
            .arg("--data-dir")
            .arg(&data)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", collector_bin.display()))?,
    );
    let pid = collector.0.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "collector did not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let now = now_ms();
    send_history(&url, now).await?;

    let own = std::process::id();
    let (collector_before, generator_before) = (
        procstat::cpu_seconds(pid).unwrap_or(0.0),
        procstat::cpu_seconds(own).unwrap_or(0.0),
    );
    let started = Instant::now();
    let samples = send_rounds(&url, n / AGENTS, rounds, now - rounds as i64 * 1_000).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let collector_cores = (procstat::cpu_seconds(pid).unwrap_or(0.0) - collector_before) / elapsed;
    let generator_cores = (procstat::cpu_seconds(own).unwrap_or(0.0) - generator_before) / elapsed;
    let peak_rss = procstat::peak_rss_bytes(pid).unwrap_or(0);

    let client = QueryServiceClient::new(connect(&url).await?).max_decoding_message_size(1 << 30);
    let latest = median(|| {
        let mut c = client.clone();
        async move {
            let r = c
                .latest(pb::LatestRequest {
                    selector: Some(selector("bench_used_bytes", &[])),
                })
                .await
                .context("latest query")?
                .into_inner();
            Ok(r.series.len())
        }
    })
    .await?;
    let day = |matchers: &'static [(&'static str, &'static str)]| {
        let client = client.clone();
        async move {
            median(|| {
                let mut c = client.clone();
                async move {
                    let r = c
                        .query_range(pb::QueryRangeRequest {
                            selector: Some(selector("bench_history_value", matchers)),
                            start_ms: now - 24 * 3_600_000,
                            end_ms: now,
                            step_ms: 60_000,
                            aggregation: pb::Aggregation::Avg as i32,
                            group: None,
                        })
                        .await
                        .context("24 h query")?
                        .into_inner();
                    Ok(r.series.len())
                }
            })
            .await
        }
    };
    let day_one = day(&[("idx", "0")]).await?;
    let day_hundred = day(&[]).await?;
    anyhow::ensure!(
        latest.1 == n / 10 && day_one.1 == 1 && day_hundred.1 == HISTORY_SERIES,
        "queries answered {} / {} / {} series, not {} / 1 / {HISTORY_SERIES}",
        latest.1,
        day_one.1,
        day_hundred.1,
        n / 10
    );

    let _ = Command::new("kill").arg(pid.to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(120);
    while collector.0.try_wait()?.is_none() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "collector did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let storage = RocksStorage::open(&data)?;
    storage.compact();
    let [raw, _, _] = storage.stats().tier_disk_bytes;
    let stored = samples + (HISTORY_SERIES as u64) * (24 * 3_600_000 / HISTORY_INTERVAL_MS) as u64;
    drop(storage);
    let _ = std::fs::remove_dir_all(&data);
    Ok(Point {
        series: n,
        samples_per_second: samples as f64 / elapsed,
        collector_cores,
        generator_cores,
        peak_rss,
        raw_bytes_per_sample: raw as f64 / stored as f64,
        latest: (latest.0, latest.1),
        day_one: day_one.0,
        day_hundred: day_hundred.0,
        promtool_peak_rss: None,
    })
}

fn selector(metric: &str, matchers: &[(&str, &str)]) -> pb::Selector {
    pb::Selector {
        metric: metric.into(),
        matchers: std::iter::once(("host", "bench-history"))
            .filter(|_| metric == "bench_history_value")
            .chain(matchers.iter().copied())
            .map(|(name, value)| pb::LabelMatcher {
                name: name.into(),
                op: pb::MatchOp::Equal as i32,
                value: value.into(),
            })
            .collect(),
    }
}

/// 24 h of `bench_history_value{host="bench-history",idx=…}` at 10 s, one
/// batch per series.
async fn send_history(url: &str, now: i64) -> anyhow::Result<()> {
    let (tx, rx) = mpsc::channel(WINDOW);
    let mut acks = open_stream(connect(url).await?, rx).await?;
    let points = 24 * 3_600_000 / HISTORY_INTERVAL_MS;
    let start = now - points * HISTORY_INTERVAL_MS;
    let mut rng = fastrand::Rng::with_seed(7);
    let sender = tokio::spawn(async move {
        for i in 0..HISTORY_SERIES {
            let head = wire::series_head(
                "bench_history_value",
                &[("host", "bench-history".to_owned()), ("idx", i.to_string())],
            );
            let mut v = 50.0;
            let values: Vec<(i64, f64)> = (0..points)
                .map(|k| {
                    v = ((v * 100.0f64).round() + rng.i32(-3..=3) as f64) / 100.0;
                    (start + k * HISTORY_INTERVAL_MS, v)
                })
                .collect();
            let mut out = Vec::new();
            wire::batch(
                "bench-history",
                "bench-history",
                i as u64 + 1,
                HISTORY_INTERVAL_MS as u64,
                values.iter().map(|&(t, v)| (head.as_slice(), t, v)),
                &mut out,
            );
            if tx.send(Encoded(out)).await.is_err() {
                break;
            }
        }
    });
    while let Some(ack) = acks.message().await? {
        anyhow::ensure!(ack.rejected_samples == 0, "history rejected: {ack:?}");
        if ack.acked_through == HISTORY_SERIES as u64 {
            break;
        }
    }
    sender.await?;
    Ok(())
}

/// `rounds` batches from each of the agent streams, `series` series each;
/// returns the samples acked once every batch is.
async fn send_rounds(url: &str, series: usize, rounds: u64, start_ms: i64) -> anyhow::Result<u64> {
    let acked = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for n in 0..AGENTS {
        let (tx, rx) = mpsc::channel::<Encoded>(WINDOW);
        let mut acks = open_stream(connect(url).await?, rx).await?;
        let permits = Arc::new(Semaphore::new(WINDOW));
        let sent: Arc<Mutex<VecDeque<u64>>> = Arc::default();
        let mut load = HostLoad::new(n, series);
        let agent_id = format!("bench-agent-{n}");
        let (permits_s, sent_s) = (permits.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            for seq in 1..=rounds {
                permits_s.acquire().await.expect("never closed").forget();
                let mut out = Vec::with_capacity(series * 64);
                load.next_batch(&agent_id, seq, start_ms + seq as i64 * 1_000, &mut out);
                sent_s.lock().await.push_back(seq);
                if tx.send(Encoded(out)).await.is_err() {
                    break;
                }
            }
            anyhow::Ok(())
        }));
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            while let Some(ack) = acks.message().await? {
                anyhow::ensure!(
                    ack.rejected_samples == 0,
                    "collector rejected samples: {ack:?}"
                );
                let mut sent = sent.lock().await;
                let mut done = 0;
                while sent.front().is_some_and(|s| *s <= ack.acked_through) {
                    sent.pop_front();
                    done += 1;
                }
                drop(sent);
                acked.fetch_add(done * series as u64, Ordering::Relaxed);
                permits.add_permits(done as usize);
                if ack.acked_through == rounds {
                    break;
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let acked = acked.load(Ordering::Relaxed);
    anyhow::ensure!(
        acked == (AGENTS * series) as u64 * rounds,
        "{acked} samples acked, not {}",
        (AGENTS * series) as u64 * rounds
    );
    Ok(acked)
}

/// Peak RSS of `promtool tsdb bench write --metrics=n --scrapes=rounds`
/// on a series file of `n` series (`None` without promtool).
fn promtool_peak_rss(work: &Path, n: usize, rounds: u64) -> anyhow::Result<Option<u64>> {
    if Command::new("promtool").arg("--version").output().is_err() {
        return Ok(None);
    }
    let file = work.join(format!("scale-series-{n}.json"));
    crate::engine::write_series_file(&file, n)?;
    let out = work.join(format!("scale-promtool-{n}"));
    let mut child = KillOnDrop(
        Command::new("promtool")
            .args(["tsdb", "bench", "write"])
            .arg(format!("--out={}", out.display()))
            .arg(format!("--metrics={n}"))
            .arg(format!("--scrapes={rounds}"))
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("running promtool (Debian package prometheus)")?,
    );
    let pid = child.0.id();
    let mut peak = 0;
    let status = loop {
        if let Some(status) = child.0.try_wait()? {
            break status;
        }
        peak = peak.max(procstat::peak_rss_bytes(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(20));
    };
    anyhow::ensure!(
        status.success(),
        "promtool tsdb bench write failed: {status}"
    );
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_file(&file);
    Ok(Some(peak))
}
