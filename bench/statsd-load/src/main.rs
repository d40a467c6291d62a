//! statsd throughput: how many statsd metrics per second the agent
//! aggregates without dropping any, side by side in the same run with
//! Etsy's reference statsd daemon (node), both fed the same packet stream.
//!
//! Method: one packet stream is built up front (a realistic mix over
//! `--series` series: 60 % counters, some with sample rates, 20 % timers,
//! 10 % gauges, 5 % sets, 5 % histograms, a third with DogStatsD tags; one
//! metric per line, ~1,400-byte datagrams). Each daemon in turn is offered
//! the stream at increasing rates, each level for a few seconds; a level
//! passes when every metric sent was counted by the daemon (the agent's
//! `agent_statsd_metrics_total`, statsd's `statsd.metrics_received`). The
//! rates rise ×1.5 until a level drops metrics, then two bisection steps
//! narrow in. A daemon's figure is the highest rate it took with no drops.
//! Reported: `statsd: N metrics/s, reference M metrics/s, ratio R, dropped D`,
//! D the metrics lost at the agent's reported level (0 by construction,
//! printed so a reader sees it).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "statsd throughput: Nightjar's agent vs Etsy statsd")]
struct Args {
    /// Total seconds of load (split between the two daemons).
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Distinct series in the stream.
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    /// The agent binary.
    #[arg(long, default_value = "target/release/nightjar-agent")]
    agent: PathBuf,
    /// Etsy statsd's stats.js (installed by bench/statsd).
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Measure the agent only.
    #[arg(long)]
    no_peer: bool,
    /// The agent's `[statsd] read_buffer_bytes` (default: the agent's
    /// default, 8 MiB; Etsy statsd gets the kernel's default buffer, e.g.
    /// 212992, which this can match for a like-for-like run).
    #[arg(long)]
    agent_read_buffer: Option<u64>,
    /// Also time the agent's parser and aggregator alone, in this process
    /// (no sockets): the ceiling the listener works under.
    #[arg(long)]
    in_process: bool,
}

/// Lines per second the agent's parse + aggregate path takes on one core.
fn in_process(stream: &Stream, seconds: f64) -> f64 {
    use nightjar_agent::statsd::aggregate::Aggregator;
    use nightjar_agent::statsd::listen::Shared;
    let counters = std::sync::Arc::new(nightjar_agent::telemetry::AgentCounters::default());
    let shared = Shared::new(Aggregator::new(30), counters.clone());
    let started = Instant::now();
    let mut lines = 0u64;
    let mut i = 0;
    while started.elapsed().as_secs_f64() < seconds {
        let (packet, n) = &stream.packets[i % stream.packets.len()];
        shared.ingest(packet, "bench");
        lines += n;
        i += 1;
    }
    lines as f64 / started.elapsed().as_secs_f64()
}

/// Datagrams with how many metrics each holds.
struct Stream {
    packets: Vec<(Vec<u8>, u64)>,
}

fn build_stream(series: usize) -> Stream {
    let mut rng = fastrand::Rng::with_seed(7);
    let mut packets = Vec::new();
    let mut current = Vec::with_capacity(1500);
    let mut in_current = 0;
    // Enough lines that the stream repeats rarely within a level.
    for _ in 0..200_000 {
        let s = rng.usize(..series);
        let tags = if s.is_multiple_of(3) {
            format!("|#env:prod,shard:{}", s % 16)
        } else {
            String::new()
        };
        let line = match rng.u32(..100) {
            0..=49 => format!("app.requests.s{s}:1|c{tags}"),
            50..=59 => format!("app.sampled.s{s}:1|c|@0.1{tags}"),
            60..=79 => format!("app.latency.s{s}:{}|ms{tags}", rng.u32(1..2000)),
            80..=89 => format!("app.queue.s{s}:{}|g{tags}", rng.u32(..1000)),
            90..=94 => format!("app.users.s{s}:u{}|s{tags}", rng.u32(..500)),
            _ => format!("app.payload.s{s}:{}|h{tags}", rng.u32(..65536)),
        };
        if current.len() + line.len() + 1 > 1400 {
            packets.push((std::mem::take(&mut current), in_current));
            in_current = 0;
        }
        if !current.is_empty() {
            current.push(b'\n');
        }
        current.extend_from_slice(line.as_bytes());
        in_current += 1;
    }
    packets.push((current, in_current));
    Stream { packets }
}

/// Sends the stream to `port` at `rate` metrics/s for `seconds`. Returns
/// metrics sent and the seconds it took.
fn offer(stream: &Stream, port: u16, rate: f64, seconds: f64) -> anyhow::Result<(u64, f64)> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(("127.0.0.1", port))?;
    let started = Instant::now();
    let total = (rate * seconds) as u64;
    let mut sent = 0u64;
    let mut i = 0;
    while sent < total {
        let (packet, n) = &stream.packets[i % stream.packets.len()];
        // A full receive buffer refuses nothing on UDP; a send error is ours.
        socket.send(packet).context("sending a datagram")?;
        sent += n;
        i += 1;
        if i % 16 == 0 {
            let due = Duration::from_secs_f64(sent as f64 / rate);
            let elapsed = started.elapsed();
            if due > elapsed + Duration::from_millis(1) {
                std::thread::sleep(due - elapsed);
            }
        }
    }
    Ok((sent, started.elapsed().as_secs_f64()))
}

/// A daemon under test: how to read its count of metrics received.
trait Daemon {
    fn name(&self) -> &str;
    fn port(&self) -> u16;
    fn received(&self) -> anyhow::Result<u64>;
}

struct Agent {
    port: u16,
    status: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Daemon for Agent {
    fn name(&self) -> &str {
        "nightjar-agent"
    }
    fn port(&self) -> u16 {
        self.port
    }
    fn received(&self) -> anyhow::Result<u64> {
        let mut conn = TcpStream::connect(("127.0.0.1", self.status))?;
        conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut text = String::new();
        conn.read_to_string(&mut text)?;
        text.lines()
            .find_map(|l| l.strip_prefix("agent_statsd_metrics_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
            .context("agent_statsd_metrics_total not in /metrics")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Reference {
    port: u16,
    mgmt: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Daemon for Reference {
    fn name(&self) -> &str {
        "etsy statsd"
    }
    fn port(&self) -> u16 {
        self.port
    }
    fn received(&self) -> anyhow::Result<u64> {
        let mut conn = TcpStream::connect(("127.0.0.1", self.mgmt))?;
        // The counters dump holds statsd.metrics_received (lines parsed).
        conn.write_all(b"counters\n")?;
        let mut reader = BufReader::new(conn);
        let pattern = regex::Regex::new(r"'statsd\.metrics_received': (\d+)")?;
        let mut text = String::new();
        loop {
            let mut l = String::new();
            if reader.read_line(&mut l)? == 0 {
                break;
            }
            text.push_str(&l);
            if l.starts_with("END") {
                break;
            }
        }
        pattern
            .captures(&text)
            .and_then(|c| c[1].parse().ok())
            .context("statsd.metrics_received not in the counters dump")
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{what} did not come up within 30 s")
}

fn start_agent(binary: &PathBuf, read_buffer: Option<u64>) -> anyhow::Result<Agent> {
    let dir = tempfile::tempdir()?;
    let (port, status) = (free_port()?, free_port()?);
    let config = dir.path().join("agent.toml");
    let buffer = read_buffer.map_or(String::new(), |b| format!("read_buffer_bytes = {b}\n"));
    std::fs::write(&config, format!("[statsd]\n{buffer}"))?;
    let child = Command::new(binary)
        .arg("--config")
        .arg(&config)
        .args(["--collector", "http://127.0.0.1:9", "--interval", "10s"])
        .args(["--host", "bench-statsd"])
        .arg("--state-dir")
        .arg(dir.path())
        .args(["--statsd", &format!("127.0.0.1:{port}")])
        .args(["--http-listen", &format!("127.0.0.1:{status}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    let agent = Agent {
        port,
        status,
        child,
        _dir: dir,
    };
    wait_for("the agent's status port", || agent.received().is_ok())?;
    Ok(agent)
}

fn start_reference(stats_js: &PathBuf) -> anyhow::Result<Reference> {
    let dir = tempfile::tempdir()?;
    let (port, mgmt) = (free_port()?, free_port()?);
    let config = dir.path().join("config.js");
    // No backends and a flush an hour away: it only counts and aggregates.
    std::fs::write(
        &config,
        format!(
            "{{ port: {port}, mgmt_port: {mgmt}, address: \"127.0.0.1\", mgmt_address: \"127.0.0.1\", \
             flushInterval: 3600000, backends: [] }}\n"
        ),
    )?;
    let child = Command::new("node")
        .arg(stats_js)
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting node (Etsy statsd)")?;
    let reference = Reference {
        port,
        mgmt,
        child,
        _dir: dir,
    };
    wait_for("Etsy statsd's management port", || {
        reference.received().is_ok()
    })?;
    Ok(reference)
}

/// Waits until the daemon's count stops moving (its socket buffer is
/// drained), then returns it.
fn settled(daemon: &dyn Daemon) -> anyhow::Result<u64> {
    let mut last = daemon.received()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = daemon.received()?;
        if now == last || Instant::now() > deadline {
            return Ok(now);
        }
        last = now;
    }
}

/// One level: (offered rate, metrics sent, received, seconds sending).
struct Level {
    sent: u64,
    received: u64,
    seconds: f64,
}

impl Level {
    fn dropped(&self) -> u64 {
        self.sent.saturating_sub(self.received)
    }
    fn rate(&self) -> f64 {
        self.received as f64 / self.seconds
    }
}

fn run_level(
    stream: &Stream,
    daemon: &dyn Daemon,
    rate: f64,
    seconds: f64,
) -> anyhow::Result<Level> {
    let before = settled(daemon)?;
    let (sent, took) = offer(stream, daemon.port(), rate, seconds)?;
    let after = settled(daemon)?;
    let level = Level {
        sent,
        received: after - before,
        seconds: took,
    };
    eprintln!(
        "  {}: offered {:>9.0}/s, achieved {:>9.0}/s, sent {}, dropped {}",
        daemon.name(),
        rate,
        level.rate(),
        sent,
        level.dropped()
    );
    Ok(level)
}

/// The highest drop-free rate, within `budget` seconds of sending.
fn max_rate(stream: &Stream, daemon: &dyn Daemon, budget: f64) -> anyhow::Result<Level> {
    let level_secs = (budget / 12.0).clamp(1.0, 10.0);
    let mut rate = 50_000.0;
    let mut best: Option<Level> = None;
    let mut failed_at = None;
    let mut spent = 0.0;
    while spent + level_secs <= budget {
        let level = run_level(stream, daemon, rate, level_secs)?;
        spent += level.seconds;
        // The sender could not offer more than this: the machine's limit.
        let sender_bound = level.sent > 0 && level.seconds > level_secs * 1.2;
        if level.dropped() == 0 {
            best = Some(level);
            if sender_bound {
                break;
            }
            rate *= 1.5;
        } else {
            failed_at = Some(rate);
            break;
        }
    }
    // Two bisection steps between the best pass and the first failure.
    if let (Some(fail), Some(_)) = (failed_at, &best) {
        let mut low = rate / 1.5;
        let mut high = fail;
        for _ in 0..2 {
            if spent + level_secs > budget * 1.3 {
                break;
            }
            let mid = (low + high) / 2.0;
            let level = run_level(stream, daemon, mid, level_secs)?;
            spent += level.seconds;
            if level.dropped() == 0 {
                low = mid;
                if best.as_ref().is_none_or(|b| level.rate() > b.rate()) {
                    best = Some(level);
                }
            } else {
                high = mid;
            }
        }
    }
    best.with_context(|| format!("{} dropped metrics even at 50,000/s", daemon.name()))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let stream = build_stream(args.series);
    let per_packet =
        stream.packets.iter().map(|p| p.1).sum::<u64>() as f64 / stream.packets.len() as f64;
    eprintln!(
        "stream: {} datagrams, {per_packet:.1} metrics each, {} series",
        stream.packets.len(),
        args.series
    );
    if args.in_process {
        eprintln!(
            "in process (parse + aggregate, one thread): {:.0} metrics/s",
            in_process(&stream, 3.0)
        );
    }
    let budget = if args.no_peer {
        args.duration as f64
    } else {
        args.duration as f64 / 2.0
    };

    let agent = start_agent(&args.agent, args.agent_read_buffer)?;
    eprintln!("nightjar-agent:");
    let ours = max_rate(&stream, &agent, budget)?;
    drop(agent);

    let reference = if args.no_peer {
        None
    } else {
        let stats_js = args
            .reference
            .clone()
            .context("--reference (Etsy statsd's stats.js) is needed unless --no-peer")?;
        let reference = start_reference(&stats_js)?;
        eprintln!("etsy statsd:");
        let level = max_rate(&stream, &reference, budget)?;
        Some(level.rate())
    };
    match reference {
        Some(theirs) => println!(
            "statsd: {:.0} metrics/s, reference {:.0} metrics/s, ratio {:.2}, dropped {}",
            ours.rate(),
            theirs,
            ours.rate() / theirs,
            ours.dropped()
        ),
        None => println!(
            "statsd: {:.0} metrics/s, reference n/a (--no-peer), ratio n/a, dropped {}",
            ours.rate(),
            ours.dropped()
        ),
    }
    Ok(())
}
