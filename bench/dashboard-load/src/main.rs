//! `nightjar-bench-dashboard`: the program behind `bench/dashboard` (run
//! that script; it builds the dashboard and this in release mode).
//!
//! 1. Starts the release collector with 100 services over 1,000 hosts (ten
//!    hosts each, three layers) and a CPU rule, so some tiles are amber and
//!    red.
//! 2. Sends 24 h of every host-page reading of `bench-0000` at 10 s, then
//!    keeps all 1,000 hosts live at a 10 s interval (8 series each, 45 for
//!    `bench-0000`) for the whole run.
//! 3. Runs `measure.mjs` in headless Chromium: the board's first render,
//!    the 24 h host page, and the collector's CPU with the board open
//!    against the same time with it closed (read from /proc here, so the
//!    browser's own CPU is not counted).
//!
//! Ends with one line:
//! `dashboard: board first render X ms, host 24h X ms, JS+CSS B bytes gzipped, open board X % of a core`

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use nightjar_proto::v1 as pb;
use pb::ingest_service_client::IngestServiceClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const HOSTS: usize = 1000;
const SERVICES: usize = 100;
const INTERVAL_MS: i64 = 10_000;
const DAY_MS: i64 = 86_400_000;

#[derive(Parser, Debug)]
#[command(about = "Nightjar dashboard benchmark (see bench/dashboard)")]
struct Args {
    /// Runs of each page measurement (the median is reported).
    #[arg(long, default_value_t = 9)]
    runs: usize,
    /// Seconds of collector CPU measured with the board closed, then open.
    #[arg(long, default_value_t = 60)]
    cpu_seconds: u64,
    /// The collector binary (default: next to this one).
    #[arg(long)]
    collector: Option<PathBuf>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn host_name(i: usize) -> String {
    format!("bench-{i:04}")
}

/// Service `s` covers hosts `bench-0{s:02}0` … `bench-0{s:02}9`.
fn services_file() -> String {
    let teams = ["payments", "search", "logistics", "identity", "catalogue"];
    let mut out = String::new();
    for s in 0..SERVICES {
        let hosts = format!("host=~bench-0{s:02}[0-9]");
        out.push_str(&format!(
            "[[service]]\nname = \"svc-{s:02}\"\ndescription = \"Benchmark service {s}\"\nteam = \"{}\"\n\n\
             [[service.contact]]\nteam = \"on call\"\nphone = \"+44 20 7946 00{s:02}\"\n\n\
             [[service.component]]\nname = \"hosts\"\nlayer = \"machine\"\nmatchers = [\"{hosts}\"]\n\n\
             [[service.component]]\nname = \"app\"\nlayer = \"application\"\nmetric = \"process_up\"\nmatchers = [\"{hosts}\", \"process=app\"]\n\n\
             [[service.component]]\nname = \"orders\"\nlayer = \"business\"\nmetric = \"bench_orders_per_minute\"\nmatchers = [\"{hosts}\"]\n\n",
            teams[s % teams.len()]
        ));
    }
    out
}

const RULES: &str = r#"
[[rule]]
name = "cpu_busy"
metric = "cpu_usage_percent"
match = { cpu = "total" }
warning = 90
critical = 97
summary = "CPU on {{host}} at {{value}}%"
"#;

/// A gauge sample.
fn sample(metric: &str, labels: &[(&str, &str)], host: &str, ts: i64, v: f64) -> pb::Sample {
    let mut labels: Vec<pb::Label> = labels
        .iter()
        .map(|(k, v)| pb::Label {
            name: (*k).into(),
            value: (*v).into(),
        })
        .collect();
    labels.push(pb::Label {
        name: "host".into(),
        value: host.into(),
    });
    pb::Sample {
        metric: metric.into(),
        labels,
        timestamp_ms: ts,
        value: Some(pb::sample::Value::Gauge(v)),
    }
}

/// The readings of host `i` at `ts`: the board's headline series for every
/// host; every host-page series for host 0.
fn readings(i: usize, ts: i64, rng: &mut fastrand::Rng) -> Vec<pb::Sample> {
    let host = host_name(i);
    let h = host.as_str();
    let wave = ((ts / 60_000) as f64 / 30.0).sin();
    // Hosts 0–19 run hot (amber), 20–29 hotter (red).
    let cpu = match i {
        20..=29 => 98.5,
        0..=19 => 93.0,
        _ => 30.0 + 10.0 * wave + rng.f64() * 5.0,
    };
    let mut out = vec![
        sample("cpu_usage_percent", &[("cpu", "total")], h, ts, cpu),
        sample("memory_used_percent", &[], h, ts, 55.0 + 5.0 * wave),
        sample(
            "disk_used_percent",
            &[("device", "vda1"), ("mountpoint", "/")],
            h,
            ts,
            41.5,
        ),
        sample("process_up", &[("process", "app")], h, ts, 1.0),
        sample("bench_orders_per_minute", &[], h, ts, 120.0 + 30.0 * wave),
    ];
    for (period, v) in [("1m", 1.2), ("5m", 1.0), ("15m", 0.9)] {
        out.push(sample(
            "load_average",
            &[("period", period)],
            h,
            ts,
            v + wave * 0.3,
        ));
    }
    if i == 0 {
        for (mode, share) in [
            ("user", 0.6),
            ("system", 0.25),
            ("iowait", 0.05),
            ("nice", 0.0),
            ("irq", 0.01),
            ("softirq", 0.04),
            ("steal", 0.05),
        ] {
            out.push(sample(
                "cpu_mode_percent",
                &[("cpu", "total"), ("mode", mode)],
                h,
                ts,
                cpu * share,
            ));
        }
        out.push(sample(
            "cpu_mode_percent",
            &[("cpu", "total"), ("mode", "idle")],
            h,
            ts,
            100.0 - cpu,
        ));
        let gib = 1024.0 * 1024.0 * 1024.0;
        for (m, v) in [
            ("memory_used_bytes", 9.0),
            ("memory_cached_bytes", 4.0),
            ("memory_buffers_bytes", 0.5),
            ("memory_available_bytes", 7.0),
        ] {
            out.push(sample(m, &[], h, ts, v * gib * (1.0 + 0.05 * wave)));
        }
        out.push(sample("swap_used_bytes", &[], h, ts, 0.2 * gib));
        out.push(sample("swap_in_pages_per_second", &[], h, ts, 0.0));
        out.push(sample("swap_out_pages_per_second", &[], h, ts, 0.0));
        out.push(sample(
            "disk_used_percent",
            &[("device", "vdb1"), ("mountpoint", "/var")],
            h,
            ts,
            63.0,
        ));
        for (m, v) in [
            ("diskio_read_bytes_per_second", 2.0e6),
            ("diskio_write_bytes_per_second", 5.0e6),
            ("diskio_util_percent", 12.0),
        ] {
            out.push(sample(
                m,
                &[("device", "vda")],
                h,
                ts,
                v * (1.0 + wave * 0.5),
            ));
        }
        for iface in ["eth0", "eth1"] {
            for (m, v) in [
                ("net_rx_bytes_per_second", 3.0e6),
                ("net_tx_bytes_per_second", 1.0e6),
                ("net_rx_errors_per_second", 0.0),
                ("net_tx_errors_per_second", 0.0),
                ("net_rx_drops_per_second", 0.1),
                ("net_tx_drops_per_second", 0.0),
            ] {
                out.push(sample(
                    m,
                    &[("interface", iface)],
                    h,
                    ts,
                    v * (1.0 + wave * 0.5),
                ));
            }
        }
        out.push(sample(
            "tcp_established_connections",
            &[],
            h,
            ts,
            340.0 + 40.0 * wave,
        ));
        out.push(sample("tcp_retransmits_per_second", &[], h, ts, 1.5));
        out.push(sample("tcp_listen_overflows_per_second", &[], h, ts, 0.0));
        for (p, c, r) in [("app", 35.0, 800.0e6), ("nginx", 5.0, 60.0e6)] {
            out.push(sample(
                "process_cpu_percent",
                &[("process", p)],
                h,
                ts,
                c * (1.0 + wave * 0.2),
            ));
            out.push(sample("process_rss_bytes", &[("process", p)], h, ts, r));
        }
    }
    out
}

/// One agent stream: sends each batch and waits for its ack.
struct Agent {
    tx: mpsc::Sender<pb::Batch>,
    acks: tonic::Streaming<pb::Ack>,
    host: String,
    seq: u64,
}

impl Agent {
    async fn open(channel: tonic::transport::Channel, host: String) -> anyhow::Result<Agent> {
        let (tx, rx) = mpsc::channel(2);
        let acks = IngestServiceClient::new(channel)
            .max_encoding_message_size(64 << 20)
            .stream(ReceiverStream::new(rx))
            .await
            .context("opening an ingest stream")?
            .into_inner();
        Ok(Agent {
            tx,
            acks,
            host,
            seq: 0,
        })
    }

    async fn send(&mut self, samples: Vec<pb::Sample>) -> anyhow::Result<()> {
        self.seq += 1;
        self.tx
            .send(pb::Batch {
                agent_id: format!("bench-agent-{}", self.host),
                host: self.host.clone(),
                seq: self.seq,
                samples,
                interval_ms: INTERVAL_MS as u64,
            })
            .await
            .context("stream closed")?;
        let ack = self.acks.message().await?.context("stream closed")?;
        anyhow::ensure!(ack.acked_through == self.seq, "not acked: {ack:?}");
        anyhow::ensure!(
            ack.rejected_samples == 0,
            "rejected: {}",
            ack.first_rejection
        );
        Ok(())
    }
}

fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = &stat[stat.rfind(')').context("stat")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f[11].parse::<f64>()? + f[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let me = std::env::current_exe()?;
    let collector_bin = args
        .collector
        .unwrap_or_else(|| me.with_file_name("nightjar-collector"));
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("services.toml"), services_file())?;
    std::fs::write(dir.path().join("rules.toml"), RULES)?;
    std::fs::write(
        dir.path().join("collector.toml"),
        "services = [\"services.toml\"]\nrules = [\"rules.toml\"]\n\n[limits]\nmax_sample_age = \"2d\"\n",
    )?;
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let http_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let mut collector = Command::new(&collector_bin)
        .arg("--config")
        .arg(dir.path().join("collector.toml"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--http-listen", &format!("127.0.0.1:{http_port}")])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", collector_bin.display()))?;
    let pid = collector.id();
    let url = format!("http://127.0.0.1:{port}");
    let channel = {
        let mut tries = 0;
        loop {
            match tonic::transport::Endpoint::from_shared(url.clone())?
                .connect()
                .await
            {
                Ok(c) => break c,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => return Err(e).context("connecting to the collector"),
            }
        }
    };

    // 24 h of bench-0000's readings, an hour per batch.
    let now = now_ms();
    let start = (now - DAY_MS) / INTERVAL_MS * INTERVAL_MS;
    let mut rng = fastrand::Rng::with_seed(7);
    let mut history = Agent::open(channel.clone(), host_name(0)).await?;
    let mut ts = start;
    let mut sent = 0usize;
    while ts < now - INTERVAL_MS {
        let mut batch = Vec::new();
        let hour_end = (ts + 3_600_000).min(now - INTERVAL_MS);
        while ts < hour_end {
            batch.extend(readings(0, ts, &mut rng));
            ts += INTERVAL_MS;
        }
        sent += batch.len();
        history.send(batch).await?;
    }
    eprintln!("dashboard bench: sent 24 h of bench-0000 ({sent} samples)");

    // Every host live, each on its own stream, from now on.
    let mut live = Vec::new();
    let mut history = Some(history);
    for i in 0..HOSTS {
        let mut agent = match history.take() {
            Some(h) => h,
            None => Agent::open(channel.clone(), host_name(i)).await?,
        };
        // Spread the hosts over the interval, as real agents are.
        let offset = (i as i64 * INTERVAL_MS) / HOSTS as i64;
        live.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(i as u64);
            let mut tick = (now_ms() / INTERVAL_MS) * INTERVAL_MS + offset;
            if i == 0 {
                tick = ts;
            }
            loop {
                agent.send(readings(i, tick, &mut rng)).await?;
                tick += INTERVAL_MS;
                let wait = tick - now_ms();
                if wait > 0 {
                    tokio::time::sleep(Duration::from_millis(wait as u64)).await;
                }
            }
            #[allow(unreachable_code)]
            Ok::<(), anyhow::Error>(())
        }));
    }
    // Let one full interval of every host arrive and the rules fire.
    tokio::time::sleep(Duration::from_millis(2 * INTERVAL_MS as u64)).await;
    eprintln!("dashboard bench: {HOSTS} hosts live, {SERVICES} services");

    let script = std::env::var_os("NIGHTJAR_BENCH_DASHBOARD_JS")
        .map(PathBuf::from)
        .context("NIGHTJAR_BENCH_DASHBOARD_JS must name measure.mjs (bench/dashboard sets it)")?;
    let mut node = tokio::process::Command::new("node")
        .arg(&script)
        .args([
            format!("http://127.0.0.1:{http_port}"),
            host_name(0),
            args.runs.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("starting node measure.mjs")?;
    use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
    let mut lines = tokio::io::BufReader::new(node.stdout.take().context("stdout")?).lines();
    let mut stdin = node.stdin.take().context("stdin")?;
    let mut results = serde_json::Value::Null;
    let mut cpu_closed = 0.0;
    let mut cpu_open = 0.0;
    // The script says "closed" and "open" when the board is closed or open
    // and waits for our "next" after each CPU window.
    while let Some(line) = lines.next_line().await? {
        let window = Duration::from_secs(args.cpu_seconds);
        match line.as_str() {
            "closed" | "open" => {
                let c0 = cpu_seconds(pid)?;
                tokio::time::sleep(window).await;
                let used = (cpu_seconds(pid)? - c0) / window.as_secs_f64();
                if line == "closed" {
                    cpu_closed = used;
                } else {
                    cpu_open = used;
                }
                eprintln!(
                    "dashboard bench: collector CPU with the board {line}: {:.2} % of a core",
                    used * 100.0
                );
                stdin.write_all(b"next\n").await?;
            }
            json if json.starts_with('{') => {
                results = serde_json::from_str(json)?;
                break;
            }
            other => eprintln!("{other}"),
        }
    }
    anyhow::ensure!(node.wait().await?.success(), "measure.mjs failed");
    for task in &live {
        task.abort();
    }
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = collector.wait();
    println!("{}", serde_json::to_string_pretty(&results)?);
    println!(
        "dashboard: board first render {} ms, host 24h {} ms, JS+CSS {} bytes gzipped, open board {:.2} % of a core (closed {:.2} %, open {:.2} %)",
        results["boardMedianMs"],
        results["hostMedianMs"],
        results["assetBytes"],
        (cpu_open - cpu_closed) * 100.0,
        cpu_closed * 100.0,
        cpu_open * 100.0
    );
    Ok(())
}
