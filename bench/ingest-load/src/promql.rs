//! `--promql`: PromQL `query_range` latency over 1,000 series × 24 h, the
//! collector beside a real Prometheus 2.42 holding the same samples.
//!
//! The release collector takes 24 h of 10 hosts × 100 series at 10 s
//! (8.64 M samples; half counters, half gauges) over gRPC and forwards them
//! with its remote_write sender to Prometheus (started with an
//! out-of-order window of 25 h so that it takes a day of history) — which
//! also measures forwarding into a real peer. Once both hold everything,
//! each query runs 5 times on each, alternating, over HTTP as Grafana
//! would ask it (24 h, step 60 s: 1,441 steps), and the medians are
//! compared.

use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::mpsc;

use crate::status_page::{get, metric};
use crate::wire::{self, Encoded};
use crate::{KillOnDrop, now_ms};

const HOSTS: usize = 10;
const SERIES_PER_HOST: usize = 100;
const INTERVAL_MS: i64 = 10_000;
const POINTS: usize = 8_640;

/// The queries timed (Grafana-style panels over a day).
const QUERIES: &[&str] = &[
    "sum(rate(bench_requests_total[5m]))",
    "sum by (host) (rate(bench_requests_total[5m]))",
    "avg by (host) (bench_latency_ms)",
    "max_over_time(bench_latency_ms{host=\"h0\"}[10m])",
    "topk(5, bench_latency_ms)",
];

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn wait_port(addr: SocketAddr, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(addr).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "{what} did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs the comparison; prints its lines.
pub async fn run(collector_bin: &std::path::Path, work: &std::path::Path) -> anyhow::Result<()> {
    let prom_addr = free_addr()?;
    let prom_dir = work.join("prometheus");
    std::fs::create_dir_all(&prom_dir)?;
    std::fs::write(
        prom_dir.join("prometheus.yml"),
        "global:\n  scrape_interval: 1m\nstorage:\n  tsdb:\n    out_of_order_time_window: 25h\n",
    )?;
    let _prometheus = KillOnDrop(
        Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                prom_dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                prom_dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={prom_addr}"))
            .arg("--web.enable-remote-write-receiver")
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("starting prometheus (apt-get install prometheus)")?,
    );
    wait_port(prom_addr, "prometheus")?;

    let grpc = free_addr()?;
    let http = free_addr()?;
    let config = work.join("promql-collector.toml");
    std::fs::write(
        &config,
        format!(
            "[[remote_write]]\nname = \"prometheus\"\nurl = \"http://{prom_addr}/api/v1/write\"\nexclude = [\"collector_.*\"]\nshards = 4\nmax_samples_per_send = 5000\n"
        ),
    )?;
    let _collector = KillOnDrop(
        Command::new(collector_bin)
            .arg("--config")
            .arg(&config)
            .args(["--listen", &grpc.to_string()])
            .args(["--http-listen", &http.to_string()])
            .arg("--data-dir")
            .arg(work.join("promql-data"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("starting the collector")?,
    );
    wait_port(grpc, "the collector")?;
    wait_port(http, "the collector's HTTP port")?;

    // A day ending a minute ago, oldest first, one stream per host.
    let end = (now_ms() - 60_000) / INTERVAL_MS * INTERVAL_MS;
    let start = end - (POINTS as i64 - 1) * INTERVAL_MS;
    let url = format!("http://{grpc}");
    let sending = Instant::now();
    let mut tasks = Vec::new();
    for h in 0..HOSTS {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let host = format!("h{h}");
            let heads: Vec<(Vec<u8>, bool)> = (0..SERIES_PER_HOST)
                .map(|s| {
                    let counter = s % 2 == 0;
                    let metric = if counter {
                        "bench_requests_total"
                    } else {
                        "bench_latency_ms"
                    };
                    let head = wire::series_head(
                        metric,
                        &[("host", host.clone()), ("path", format!("/p{}", s / 2))],
                    );
                    (head, counter)
                })
                .collect();
            let channel = crate::connect(&url).await?;
            let (tx, rx) = mpsc::channel(16);
            let mut acks = crate::load::open_stream(channel, rx).await?;
            let reader = tokio::spawn(async move {
                while let Some(ack) = acks.message().await? {
                    if ack.acked_through == POINTS as u64 {
                        return Ok(());
                    }
                }
                anyhow::bail!("stream ended before the last ack")
            });
            let mut rng = fastrand::Rng::with_seed(h as u64);
            let mut counters = vec![0.0f64; SERIES_PER_HOST];
            for i in 0..POINTS {
                let t = start + i as i64 * INTERVAL_MS;
                let values: Vec<f64> = heads
                    .iter()
                    .enumerate()
                    .map(|(s, (_, counter))| {
                        if *counter {
                            counters[s] += f64::from(rng.u32(0..200));
                            counters[s]
                        } else {
                            f64::from(rng.u32(50..500)) / 10.0
                        }
                    })
                    .collect();
                let mut out = Vec::new();
                wire::batch(
                    &format!("bench-promql-{h}"),
                    &host,
                    i as u64 + 1,
                    INTERVAL_MS as u64,
                    heads
                        .iter()
                        .zip(&values)
                        .map(|((head, _), v)| (head.as_slice(), t, *v)),
                    &mut out,
                );
                tx.send(Encoded(out)).await.context("sending")?;
            }
            reader.await?
        }));
    }
    for t in tasks {
        t.await??;
    }
    let total = (HOSTS * SERIES_PER_HOST * POINTS) as f64;
    let sent_secs = sending.elapsed().as_secs_f64();
    println!(
        "promql data: {} series × {POINTS} points ({total:.0} samples) acked in {sent_secs:.1} s",
        HOSTS * SERIES_PER_HOST
    );

    // Forwarding into the real Prometheus, until it holds every sample.
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let (_, page) = get(http, "/metrics")?;
        let page = String::from_utf8_lossy(&page);
        let sent = metric(&page, "collector_remote_write_samples_sent_total{").unwrap_or(0.0);
        if sent >= total {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "forwarded {sent} of {total} in 900 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let forwarded_secs = sending.elapsed().as_secs_f64();
    println!(
        "remote_write into prometheus 2.42: all {total:.0} samples taken {forwarded_secs:.1} s after the first was sent ({:.0} samples/s)",
        total / forwarded_secs
    );
    let count = format!(
        "/api/v1/query?query={}&time={}",
        // Per metric: count_over_time drops the name, and the two metrics
        // share their label sets.
        encode(
            "sum(count_over_time(bench_requests_total[1d])) + sum(count_over_time(bench_latency_ms[1d]))"
        ),
        end / 1000 + 1
    );
    let (_, body) = get(prom_addr, &count)?;
    let body = String::from_utf8_lossy(&body);
    anyhow::ensure!(
        body.contains(&format!("\"{total:.0}\"")),
        "prometheus does not hold every sample: {body}"
    );

    let mut lines = Vec::new();
    for q in QUERIES {
        let path = format!(
            "/api/v1/query_range?query={}&start={}&end={}&step=60",
            encode(q),
            start / 1000,
            end / 1000
        );
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        let mut sizes = (0, 0);
        for _ in 0..5 {
            for (addr, times, size) in [
                (http, &mut ours, &mut sizes.0),
                (prom_addr, &mut theirs, &mut sizes.1),
            ] {
                let t = Instant::now();
                let (status, body) = get(addr, &path)?;
                times.push(t.elapsed());
                anyhow::ensure!(
                    status == 200,
                    "{q} on {addr}: {status} {}",
                    String::from_utf8_lossy(&body)
                );
                *size = body.len();
            }
        }
        let (a, b) = (median(ours), median(theirs));
        let line = format!(
            "{q}: nightjar {:.1} ms ({} KB), prometheus {:.1} ms ({} KB), ratio {:.2}",
            a.as_secs_f64() * 1000.0,
            sizes.0 / 1024,
            b.as_secs_f64() * 1000.0,
            sizes.1 / 1024,
            a.as_secs_f64() / b.as_secs_f64()
        );
        println!("query_range 24 h, step 60 s (median of 5): {line}");
        lines.push(a.as_secs_f64() * 1000.0);
    }
    println!(
        "promql: query_range over 1000 series × 24 h, medians {:?} ms",
        lines
            .iter()
            .map(|v| (v * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
    Ok(())
}
