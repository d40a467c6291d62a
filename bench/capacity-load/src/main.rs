//! `nightjar-bench-capacity`: the program behind `bench/capacity`.
//!
//! 1. Writes 90 days of hourly `disk_used_percent` readings for 200 hosts ×
//!    5 filesystems (1,000 series, 2,160 points each) into a collector data
//!    directory through the collector's own storage (`RocksStorage`), each
//!    a trend with scatter: some fill, some stay flat, some drain.
//! 2. Starts the release collector on that directory and times, end to
//!    end through the release CLI, `nightjar capacity --since 90d --json`
//!    (every filesystem, memory and swap fitted and ranked) and `nightjar
//!    forecast disk_used_percent --threshold 100 --since 90d --json`.
//!
//! Ends with one line:
//! `capacity: 1000 series × 2160 points (90 d hourly): capacity median X ms, forecast median Y ms (runs: …)`

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use nightjar_model::model::{Batch, Labels, Point, Sample, SeriesKey};
use nightjar_storage::Storage as _;
use nightjar_storage::rocks::RocksStorage;

#[derive(Parser, Debug)]
#[command(about = "Nightjar capacity forecast benchmark (see bench/capacity)")]
struct Args {
    /// Timed runs of each command (the median is reported).
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Hosts (five filesystems each).
    #[arg(long, default_value_t = 200)]
    hosts: usize,
    /// Days of hourly history.
    #[arg(long, default_value_t = 90)]
    days: i64,
}

const HOUR: i64 = 3_600_000;
const MOUNTS: [&str; 5] = ["/", "/var", "/srv", "/home", "/tmp"];

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn median(times: &[f64]) -> f64 {
    let mut sorted = times.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let me = std::env::current_exe()?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let now = now_ms();
    let hours = args.days * 24;
    let start = now - hours * HOUR;
    {
        let storage = RocksStorage::open(&data).context("opening the series storage")?;
        let mut rng = fastrand::Rng::with_seed(17);
        for h in 0..args.hosts {
            let host = format!("host-{h:04}");
            let trends: Vec<(f64, f64)> = MOUNTS
                .iter()
                .map(|_| (rng.f64() * 60.0, (rng.f64() - 0.3) * 0.5))
                .collect();
            // A day of readings per batch, in time order.
            for day in 0..args.days {
                let mut samples = Vec::new();
                for hour in day * 24..(day + 1) * 24 {
                    let t = start + hour * HOUR;
                    for (m, (base, per_day)) in MOUNTS.iter().zip(&trends) {
                        let v = base + per_day * hour as f64 / 24.0 + rng.f64() * 2.0;
                        samples.push(Sample {
                            series: SeriesKey {
                                metric: "disk_used_percent".into(),
                                labels: Labels::from_pairs(vec![
                                    ("host".into(), host.clone()),
                                    ("mountpoint".into(), (*m).into()),
                                ])
                                .expect("labels"),
                            },
                            point: Point::new(t, v.clamp(0.0, 100.0)),
                        });
                    }
                }
                storage.append(
                    &Batch {
                        agent_id: format!("bench-{host}"),
                        host: host.clone(),
                        seq: day as u64 + 1,
                        interval_ms: HOUR as u64,
                        samples,
                        histograms: Vec::new(),
                    },
                    now,
                )?;
            }
        }
    }
    let series = args.hosts * MOUNTS.len();
    eprintln!("capacity bench: {series} series × {hours} points written; starting the collector");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut collector = Command::new(me.with_file_name("nightjar-collector"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--http-listen",
            "off",
        ])
        .arg("--data-dir")
        .arg(&data)
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the release collector")?;
    let url = format!("http://127.0.0.1:{port}");
    let cli = me.with_file_name("nightjar");
    let since = format!("{}d", args.days);
    let run = |extra: &[&str]| {
        Command::new(&cli)
            .args(["--collector", &url, "--json"])
            .args(extra)
            .output()
    };
    let capacity = ["capacity", "--since", since.as_str()];
    let forecast = [
        "forecast",
        "disk_used_percent",
        "--threshold",
        "100",
        "--since",
        since.as_str(),
    ];
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if run(&capacity).is_ok_and(|o| o.status.success()) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the collector did not answer");
        std::thread::sleep(Duration::from_millis(200));
    }
    let time = |what: &[&str]| -> anyhow::Result<(Vec<f64>, serde_json::Value)> {
        let mut times = Vec::new();
        let mut answer = serde_json::Value::Null;
        for _ in 0..args.runs {
            let t = Instant::now();
            let out = run(what)?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(
                out.status.success(),
                "{what:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            answer = serde_json::from_slice(&out.stdout)?;
        }
        Ok((times, answer))
    };
    let (cap_times, cap) = time(&capacity)?;
    let (fc_times, fc) = time(&forecast)?;
    let _ = collector.kill();
    let _ = collector.wait();
    let rows = cap.as_array().map_or(0, Vec::len);
    anyhow::ensure!(rows == series, "capacity listed {rows} of {series} series");
    let points = fc[0]["points"].as_u64().unwrap_or(0);
    let crossing = fc
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["crossing"] == "crossing")
        .count();
    let list = |t: &[f64]| {
        t.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "capacity: {series} series × {points} points ({} d hourly), {crossing} crossing: capacity median {:.0} ms (runs: {}), forecast median {:.0} ms (runs: {})",
        args.days,
        median(&cap_times),
        list(&cap_times),
        median(&fc_times),
        list(&fc_times),
    );
    Ok(())
}
