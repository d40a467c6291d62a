//! `nightjar-bench-ingest`: the program behind `bench/ingest` (run that
//! script; it builds this in release mode and installs Prometheus' tools).
//!
//! 1. End to end: starts the release `nightjar-collector` on a loopback
//!    port, sends 24 h of one series, then runs N agent streams of M series
//!    each as fast as acks allow (a bounded window of unacked batches per
//!    stream, like an agent replaying its spool) and reports samples/s
//!    acked, ack latency, the collector's CPU and RSS, query latencies and
//!    bytes per sample on disk after the collector wrote its heads and the
//!    data was compacted.
//! 2. Engine only: our storage engine, in process, against `promtool tsdb
//!    bench write` on the same generated series file and sample count.
//!
//! Ends with one line:
//! `ingest: N samples/s acked, ack p99 X ms, B bytes/sample, engine E samples/s, promtool M samples/s, ratio R, query24h X ms, latest10k X ms`

mod engine;
mod hostload;
mod load;
mod procstat;
mod promql;
mod promtool;
mod queries;
mod scale;
mod sink;
mod status_page;
mod wire;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use nightjar_storage::Storage as _;
use nightjar_storage::rocks::RocksStorage;
use tonic::transport::{Channel, Endpoint};

/// The collector's allocator, so the in-process engine phase allocates as
/// the engine does in the collector.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(about = "Nightjar ingest benchmark (see bench/ingest)")]
struct Args {
    /// Seconds of measured end-to-end load (after a warm-up of a sixth of it).
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Concurrent agent streams.
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// Series per agent (a multiple of 10).
    #[arg(long, default_value_t = 1000)]
    series: usize,
    /// Batches a stream may have unacked.
    #[arg(long, default_value_t = 4)]
    window: usize,
    /// Skip the end-to-end phase.
    #[arg(long)]
    engine_only: bool,
    /// Series in the engine comparison (promtool's --metrics).
    #[arg(long, default_value_t = 10_000)]
    metrics: usize,
    /// Scrapes in the engine comparison (promtool's --scrapes).
    #[arg(long, default_value_t = 3_000)]
    scrapes: usize,
    /// Threads appending in the engine comparison; 0 (the default) is one
    /// per shard of 1000 series, as promtool runs a goroutine per shard.
    #[arg(long, default_value_t = 0)]
    engine_threads: usize,
    /// Run only our engine in the comparison, not promtool (for profiling
    /// our side; the ratio is then not printed).
    #[arg(long)]
    no_promtool: bool,
    /// The collector binary (default: next to this one).
    #[arg(long)]
    collector: Option<PathBuf>,
    /// Also run the end-to-end load with the collector forwarding every
    /// stored sample by remote_write to a receiver in this process, and
    /// compare with the run without (skips the engine comparison).
    #[arg(long)]
    remote_write: bool,
    /// Only PromQL `query_range` over 1,000 series × 24 h, beside a real
    /// Prometheus holding the same samples (bench/ingest-load/src/promql.rs).
    #[arg(long)]
    promql: bool,
    /// Only the scaling curve (bench/scale; bench/ingest-load/src/scale.rs):
    /// the collector at each of `--scale-series` active series, beside
    /// promtool's peak RSS at the same counts.
    #[arg(long)]
    scale: bool,
    /// Series counts of the scaling curve (multiples of 1000).
    #[arg(long, value_delimiter = ',', default_value = "10000,100000,1000000")]
    scale_series: Vec<usize>,
    /// Samples per series in the scaling curve (promtool's --scrapes).
    #[arg(long, default_value_t = 30)]
    scale_rounds: u64,
}

/// Connects a gRPC channel to `url`.
pub async fn connect(url: &str) -> anyhow::Result<Channel> {
    Endpoint::from_shared(url.to_owned())?
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The end-to-end figures for the final line.
struct EndToEnd {
    /// Forwarded samples/s during the load and seconds to drain after it.
    forwarding: Option<(f64, f64)>,
    samples_per_second: f64,
    p99_ms: f64,
    bytes_per_sample: f64,
    query24h_ms: f64,
    latest_ms: f64,
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn end_to_end(
    args: &Args,
    work: &std::path::Path,
    forward_to: Option<(std::net::SocketAddr, std::sync::Arc<sink::Counts>)>,
) -> anyhow::Result<EndToEnd> {
    let collector_bin = match &args.collector {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("nightjar-collector"),
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    // Forwarding runs watch the sender's figures on the status port.
    let http = match forward_to {
        Some(_) => Some(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?),
        None => None,
    };
    let data = work.join("collector-data");
    let _ = std::fs::remove_dir_all(&data);
    let config = work.join("collector.toml");
    std::fs::write(
        &config,
        match &forward_to {
            None => String::new(),
            Some((addr, _)) => format!(
                "[[remote_write]]\nurl = \"http://{addr}/api/v1/write\"\nexclude = [\"collector_.*\"]\n"
            ),
        },
    )?;
    let mut collector = KillOnDrop(
        Command::new(&collector_bin)
            .arg("--config")
            .arg(&config)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args([
                "--http-listen",
                &http.map_or_else(|| "off".to_owned(), |a| a.to_string()),
            ])
            .arg("--data-dir")
            .arg(&data)
            .env(
                "RUST_LOG",
                std::env::var("NIGHTJAR_BENCH_COLLECTOR_LOG").unwrap_or_else(|_| "warn".into()),
            )
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
    load::send_history(&url, now).await?;
    let warmup = Duration::from_secs((args.duration / 6).max(1));
    let duration = Duration::from_secs(args.duration);
    let watch = http.map(status_page::Watch::start);
    let cpu_before = procstat::cpu_seconds(pid).unwrap_or(0.0);
    // This process is the load generator, on the same two cores.
    let own = std::process::id();
    let own_before = procstat::cpu_seconds(own).unwrap_or(0.0);
    let load_start = Instant::now();
    let start_ms = (now - 3_600_000) / 1000 * 1000;
    let result = load::run(
        &url,
        args.agents,
        args.series,
        args.window,
        warmup,
        duration,
        start_ms,
    )
    .await?;
    let cpu = procstat::cpu_seconds(pid).unwrap_or(0.0) - cpu_before;
    let own_cpu = procstat::cpu_seconds(own).unwrap_or(0.0) - own_before;
    let load_seconds = load_start.elapsed().as_secs_f64();
    let cpu_percent = cpu / load_seconds * 100.0;
    let mut forwarding = None;
    if let (Some((_, counts)), Some(watch)) = (&forward_to, watch) {
        // Everything stored goes out (the history and every acked sample),
        // but for what the queue's bound dropped, which is counted.
        let received = || counts.samples.load(std::sync::atomic::Ordering::Relaxed);
        let at_end = received();
        let want = result.samples_acked + 24 * 3600;
        let most_pending = watch.stop();
        let drain_started = Instant::now();
        let deadline = drain_started + Duration::from_secs(600);
        let mut dropped = 0;
        while received() + dropped < want {
            anyhow::ensure!(
                Instant::now() < deadline,
                "the receiver got {} of {want} samples within 600 s ({dropped} dropped)",
                received()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
            dropped = status_page::figures(http.expect("watched")).map_or(dropped, |f| f.dropped);
        }
        let drain = drain_started.elapsed().as_secs_f64();
        let requests = counts.requests.load(std::sync::atomic::Ordering::Relaxed);
        println!(
            "remote_write: {:.0} samples/s forwarded during the load ({at_end} of {want} by its end); at most {most_pending} samples pending during it; the rest forwarded {drain:.1} s after it; {dropped} dropped by the queue's bound; {requests} requests",
            at_end as f64 / load_seconds,
        );
        forwarding = Some((at_end as f64 / load_seconds, drain));
    }
    let rss = procstat::peak_rss_bytes(pid).unwrap_or(0);
    let lat = &result.latency_us;
    println!(
        "end to end: {} agents × {} series, window {}: {:.0} samples/s acked over {} s; ack latency p50 {:.1} ms, p99 {:.1} ms; {} samples acked in all",
        args.agents,
        args.series,
        args.window,
        result.samples_per_second,
        args.duration,
        lat.value_at_quantile(0.5) as f64 / 1000.0,
        lat.value_at_quantile(0.99) as f64 / 1000.0,
        result.samples_acked,
    );
    println!(
        "collector: {cpu_percent:.0}% CPU (of one core) during the load, {:.0} samples/s acked per core used; peak RSS {:.0} MiB; load generator {:.0}% CPU",
        // Samples acked over the whole load (warm-up and drain included)
        // per CPU second, the same window as the CPU figure.
        result.samples_acked as f64 / cpu,
        rss as f64 / (1 << 20) as f64,
        own_cpu / load_seconds * 100.0,
    );

    // Dashboards are timed on a settled collector: every batch is acked,
    // and wait (up to 60 s) until it used under a tenth of a core for two
    // seconds running, i.e. flushes and compactions after the load are done.
    let settle_deadline = Instant::now() + Duration::from_secs(60);
    let settle_started = Instant::now();
    let mut quiet_seconds = 0;
    while quiet_seconds < 2 && Instant::now() < settle_deadline {
        let before = procstat::cpu_seconds(pid).unwrap_or(0.0);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let used = procstat::cpu_seconds(pid).unwrap_or(0.0) - before;
        quiet_seconds = if used < 0.1 { quiet_seconds + 1 } else { 0 };
    }
    println!(
        "collector settled {:.0} s after the load",
        settle_started.elapsed().as_secs_f64()
    );
    let q = queries::run(connect(&url).await?, now_ms()).await?;
    println!(
        "queries (median of 15): 24 h of one series at 1 min: {:.2} ms ({} points); Latest of bench_used_bytes: {:.2} ms ({} series); avg cpu_usage_percent across hosts, 1 h at 1 min: {:.2} ms ({} points)",
        ms(q.day_one_series.0),
        q.day_one_series.1,
        ms(q.latest.0),
        q.latest.1,
        ms(q.avg_cpu_hour.0),
        q.avg_cpu_hour.1
    );

    // SIGTERM: the collector writes its open chunks; then compact and weigh.
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(60);
    while collector.0.try_wait()?.is_none() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "collector did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let storage = RocksStorage::open(&data)?;
    storage.compact();
    let stats = storage.stats();
    let samples = result.samples_acked + 24 * 3600;
    let [raw, minute, hour] = stats.tier_disk_bytes;
    let per = |b: u64| b as f64 / samples as f64;
    println!(
        "disk after compaction: raw {:.2} bytes/sample, rollups 1m {:.2} + 1h {:.2}, whole data dir {:.2} bytes/sample",
        per(raw),
        per(minute),
        per(hour),
        per(stats.disk_bytes)
    );
    Ok(EndToEnd {
        forwarding,
        samples_per_second: result.samples_per_second,
        p99_ms: lat.value_at_quantile(0.99) as f64 / 1000.0,
        bytes_per_sample: per(raw),
        query24h_ms: ms(q.day_one_series.0),
        latest_ms: ms(q.latest.0),
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // As the collector runs (collector/src/main.rs says why).
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    anyhow::ensure!(
        args.series % 10 == 0 && args.series > 0,
        "--series must be a positive multiple of 10"
    );
    let work = tempfile::tempdir()?;
    if args.promql {
        let collector = match &args.collector {
            Some(p) => p.clone(),
            None => std::env::current_exe()?.with_file_name("nightjar-collector"),
        };
        let rt = tokio::runtime::Runtime::new()?;
        return rt.block_on(promql::run(&collector, work.path()));
    }
    if args.scale {
        let collector = match &args.collector {
            Some(p) => p.clone(),
            None => std::env::current_exe()?.with_file_name("nightjar-collector"),
        };
        let rt = tokio::runtime::Runtime::new()?;
        return rt.block_on(scale::run(
            &collector,
            work.path(),
            &args.scale_series,
            args.scale_rounds,
        ));
    }
    if args.remote_write {
        let rt = tokio::runtime::Runtime::new()?;
        return rt.block_on(async {
            let without = end_to_end(&args, work.path(), None).await?;
            let sink = sink::start().await?;
            let with = end_to_end(&args, work.path(), Some(sink)).await?;
            let (rate, drain) = with.forwarding.expect("forwarding measured");
            println!(
                "remote_write forwarding: ingest {:.0} samples/s with, {:.0} without (ratio {:.2}); forwarded {rate:.0} samples/s during the load; drained {drain:.1} s after it",
                with.samples_per_second,
                without.samples_per_second,
                with.samples_per_second / without.samples_per_second,
            );
            Ok(())
        });
    }
    let e2e = if args.engine_only {
        None
    } else {
        let rt = tokio::runtime::Runtime::new()?;
        Some(rt.block_on(end_to_end(&args, work.path(), None))?)
    };

    let series_file = work.path().join("series.json");
    let series = engine::write_series_file(&series_file, args.metrics)?;
    let prom = if args.no_promtool {
        None
    } else {
        Some(promtool::run(
            &series_file,
            args.metrics,
            args.scrapes,
            &work.path().join("promtool"),
        )?)
    };
    let ours = engine::run(
        &series,
        args.scrapes,
        args.engine_threads,
        &work.path().join("engine"),
    )?;
    println!(
        "engine: {} threads, {:.1} s, {:.0} % CPU ({:.0} ns of CPU per sample)",
        ours.threads,
        ours.seconds,
        ours.cpu_seconds / ours.seconds * 100.0,
        ours.cpu_seconds / ours.samples as f64 * 1e9
    );
    let Some(prom) = prom else {
        println!(
            "engine, {} series × {} scrapes ({} samples): nightjar {:.0} samples/s (every append fsynced); raw {:.2} bytes/sample (+ rollups {:.2})",
            args.metrics,
            args.scrapes,
            ours.samples,
            ours.samples_per_second,
            ours.raw_bytes_per_sample,
            ours.rollup_bytes_per_sample
        );
        return Ok(());
    };
    let ratio = ours.samples_per_second / prom.samples_per_second;
    println!(
        "engine, {} series × {} scrapes ({} samples), same series file: nightjar {:.0} samples/s ({} threads, every append fsynced), promtool {:.0} samples/s, ratio {ratio:.2}",
        args.metrics,
        args.scrapes,
        ours.samples,
        ours.samples_per_second,
        ours.threads,
        prom.samples_per_second
    );
    println!(
        "engine bytes/sample after compaction: nightjar raw {:.2} (+ rollups {:.2}), prometheus blocks {}",
        ours.raw_bytes_per_sample,
        ours.rollup_bytes_per_sample,
        prom.bytes_per_sample.map_or_else(
            || "n/a (no prometheus binary, or no block written: fewer than ~400 scrapes)"
                .to_owned(),
            |b| format!("{b:.2}")
        )
    );

    let f = |v: Option<f64>, digits: usize| {
        v.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
    };
    println!(
        "ingest: {} samples/s acked, ack p99 {} ms, {} bytes/sample, engine {:.0} samples/s, promtool {:.0} samples/s, ratio {ratio:.2}, query24h {} ms, latest10k {} ms",
        f(e2e.as_ref().map(|e| e.samples_per_second), 0),
        f(e2e.as_ref().map(|e| e.p99_ms), 1),
        f(
            e2e.as_ref()
                .map(|e| e.bytes_per_sample)
                .or(Some(ours.raw_bytes_per_sample)),
            2
        ),
        ours.samples_per_second,
        prom.samples_per_second,
        f(e2e.as_ref().map(|e| e.query24h_ms), 2),
        f(e2e.as_ref().map(|e| e.latest_ms), 2),
    );
    Ok(())
}
