//! `nightjar-bench-alert`: the program behind `bench/alert-latency` (run
//! that script; it builds this in release mode).
//!
//! Ours: starts the release `nightjar-collector` with 50 threshold rules
//! and a webhook hook to a receiver in this process, streams 10,000 series
//! (10 hosts × 1,000) once a second over gRPC like agents, and every second
//! makes a few random series cross their rule's threshold for one sample.
//! Latency = webhook arrival − the moment the batch with the crossing was
//! handed to gRPC.
//!
//! Peer, in the same run (unless `--no-peer`): Debian's Prometheus 2.42
//! scrapes the same 10,000 series from this process's `/metrics`, evaluates
//! the same 50 rules and sends to Alertmanager 0.25, which posts to the same
//! receiver; timing as packaged (scrape and evaluation every 15 s,
//! group_wait 30 s), every alert in its own group so the first-notification
//! path is what is measured. A peer crossing holds until it is paged.
//!
//! Ends with one line: `alert-latency: p50 X ms, p99 Y ms, N notifications`.

mod peer;
mod receiver;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Parser;
use hdrhistogram::Histogram;
use nightjar_proto::v1 as pb;
use receiver::Arrivals;

#[derive(Parser, Debug)]
#[command(about = "Nightjar alert latency benchmark (see bench/alert-latency)")]
struct Args {
    /// Seconds of crossings.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Hosts (one gRPC stream each).
    #[arg(long, default_value_t = 10)]
    hosts: usize,
    /// Series per host.
    #[arg(long, default_value_t = 1000)]
    series: usize,
    /// Rules (metric i % rules per series).
    #[arg(long, default_value_t = 50)]
    rules: usize,
    /// Series made to cross per second.
    #[arg(long, default_value_t = 5)]
    crossings: usize,
    /// Skip Prometheus + Alertmanager.
    #[arg(long)]
    no_peer: bool,
    /// The collector binary (default: next to this one).
    #[arg(long)]
    collector: Option<PathBuf>,
}

/// Threshold every rule uses; the normal value is below, a crossing above.
const THRESHOLD: f64 = 50.0;
const NORMAL: f64 = 10.0;
const CROSSED: f64 = 90.0;

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Host and series label of global series `i`.
fn names(i: usize, per_host: usize) -> (String, String) {
    (
        format!("bench-{}", i / per_host),
        format!("s{}", i % per_host),
    )
}

fn metric(i: usize, rules: usize) -> String {
    format!("bench_gauge_{}", i % rules)
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_collector(
    args: &Args,
    dir: &std::path::Path,
    receiver_port: u16,
) -> anyhow::Result<(Killed, String)> {
    let mut rules = String::new();
    for r in 0..args.rules {
        rules.push_str(&format!(
            "[[rule]]\nname = \"bench_{r}\"\nmetric = \"bench_gauge_{r}\"\nwarning = {THRESHOLD}\nsummary = \"{{{{host}}}} {{{{labels.series}}}} at {{{{value}}}}\"\n\n"
        ));
    }
    std::fs::write(dir.join("rules.toml"), rules)?;
    let config = format!(
        "rules = [\"rules.toml\"]\n\n[alerting]\nhost_down_after = 0\n\n[[alerting.hook]]\nname = \"bench\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{receiver_port}/ours\"\n"
    );
    std::fs::write(dir.join("collector.toml"), config)?;
    let port = free_port()?;
    let exe = match &args.collector {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("nightjar-collector"),
    };
    let child = Command::new(&exe)
        .arg("--config")
        .arg(dir.join("collector.toml"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(["--http-listen", "off"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    Ok((Killed(child), format!("http://127.0.0.1:{port}")))
}

async fn connect(url: &str) -> anyhow::Result<tonic::transport::Channel> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match tonic::transport::Endpoint::from_shared(url.to_owned())?
            .connect()
            .await
        {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() > deadline => {
                return Err(e).context("collector never listened");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// One agent-like stream per host.
struct Streams {
    senders: Vec<tokio::sync::mpsc::Sender<pb::Batch>>,
    seq: u64,
}

impl Streams {
    async fn open(channel: tonic::transport::Channel, hosts: usize) -> anyhow::Result<Streams> {
        let mut senders = Vec::new();
        for _ in 0..hosts {
            let (tx, rx) = tokio::sync::mpsc::channel(16);
            let mut client = pb::ingest_service_client::IngestServiceClient::new(channel.clone())
                .max_decoding_message_size(64 << 20);
            let mut acks = client
                .stream(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await?
                .into_inner();
            tokio::spawn(async move { while let Ok(Some(_)) = acks.message().await {} });
            senders.push(tx);
        }
        Ok(Streams { senders, seq: 0 })
    }

    /// Sends host `h`'s values at `ts`.
    async fn send(
        &mut self,
        h: usize,
        per_host: usize,
        rules: usize,
        values: &[f64],
        ts: i64,
    ) -> anyhow::Result<()> {
        self.seq += 1;
        let host = format!("bench-{h}");
        let samples = (0..per_host)
            .map(|s| {
                let i = h * per_host + s;
                pb::Sample {
                    metric: metric(i, rules),
                    labels: vec![
                        pb::Label {
                            name: "host".into(),
                            value: host.clone(),
                        },
                        pb::Label {
                            name: "series".into(),
                            value: format!("s{s}"),
                        },
                    ],
                    timestamp_ms: ts,
                    value: Some(pb::sample::Value::Gauge(values[i])),
                }
            })
            .collect();
        let batch = pb::Batch {
            agent_id: format!("bench-agent-{h}"),
            host,
            seq: self.seq,
            samples,
            interval_ms: 1000,
        };
        self.senders[h].send(batch).await.context("stream closed")
    }
}

fn percentiles(latencies_ms: &[f64]) -> (f64, f64) {
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    for l in latencies_ms {
        h.record((l * 1000.0).max(1.0) as u64).expect("in range");
    }
    (
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let total = args.hosts * args.series;
    let arrivals: Arrivals = Arc::default();
    let peer_values: Arc<Mutex<Vec<f64>>> = Arc::new(Mutex::new(vec![NORMAL; total]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let receiver_port = listener.local_addr()?.port();
    tokio::spawn(receiver::serve_with_metrics(
        listener,
        arrivals.clone(),
        peer_values.clone(),
        args.series,
        args.rules,
    ));

    let (_collector, url) = start_collector(&args, dir.path(), receiver_port)?;
    let channel = connect(&url).await?;
    let mut streams = Streams::open(channel, args.hosts).await?;

    let peer = if args.no_peer {
        None
    } else {
        Some(peer::Peer::start(dir.path(), receiver_port, args.rules)?)
    };

    let mut values = vec![NORMAL; total];
    let mut sent: HashMap<(String, String), Instant> = HashMap::new();
    let mut peer_crossed: HashMap<(String, String), (Instant, usize)> = HashMap::new();
    let mut used = std::collections::HashSet::new();
    let warmup = 3;
    let ticks = warmup + args.duration;
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    let mut rng = fastrand::Rng::with_seed(7);
    for tick in 0..ticks {
        ticker.tick().await;
        values.iter_mut().for_each(|v| *v = NORMAL);
        let mut crossing_hosts = vec![Vec::new(); args.hosts];
        if tick >= warmup {
            for _ in 0..args.crossings {
                // A series crosses at most once, so flap damping never applies.
                let i = loop {
                    let i = rng.usize(..total);
                    if used.insert(i) {
                        break i;
                    }
                };
                values[i] = CROSSED;
                crossing_hosts[i / args.series].push(i);
            }
            // The peer: one new held crossing every 5 s.
            if peer.is_some() && (tick - warmup) % 5 == 0 {
                let i = loop {
                    let i = rng.usize(..total);
                    if used.insert(i) {
                        break i;
                    }
                };
                peer_values.lock().unwrap()[i] = CROSSED;
                peer_crossed.insert(names(i, args.series), (Instant::now(), i));
            }
        }
        let ts = now_ms();
        for (h, crossing) in crossing_hosts.iter().enumerate() {
            let at = Instant::now();
            for &i in crossing {
                sent.insert(names(i, args.series), at);
            }
            streams
                .send(h, args.series, args.rules, &values, ts)
                .await?;
        }
        // Release peer crossings that were paged.
        let got = arrivals.lock().unwrap().clone();
        let mut pv = peer_values.lock().unwrap();
        for (key, (_, i)) in &peer_crossed {
            if got.contains_key(&("peer", key.0.clone(), key.1.clone())) {
                pv[*i] = NORMAL;
            }
        }
    }
    // Let the last crossings arrive (ours within seconds; the peer's within
    // its scrape + evaluation + group_wait, about a minute).
    let wait_until = Instant::now()
        + if peer.is_some() {
            Duration::from_secs(100)
        } else {
            Duration::from_secs(10)
        };
    loop {
        let got = arrivals.lock().unwrap().clone();
        let ours_done = sent
            .keys()
            .all(|k| got.contains_key(&("ours", k.0.clone(), k.1.clone())));
        let peer_done = peer_crossed
            .keys()
            .all(|k| got.contains_key(&("peer", k.0.clone(), k.1.clone())));
        if (ours_done && peer_done) || Instant::now() > wait_until {
            break;
        }
        // Keep our streams alive (no host_down here, but agents would send).
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let got = arrivals.lock().unwrap().clone();
    let latency = |system: &'static str,
                   sent: &mut dyn Iterator<Item = (&(String, String), Instant)>| {
        let mut out = Vec::new();
        let mut missing = 0;
        for (k, at) in sent {
            match got.get(&(system, k.0.clone(), k.1.clone())) {
                Some(arrived) => out.push(arrived.duration_since(at).as_secs_f64() * 1000.0),
                None => missing += 1,
            }
        }
        (out, missing)
    };
    let (ours, ours_missing) = latency("ours", &mut sent.iter().map(|(k, v)| (k, *v)));
    if let Some(peer) = &peer {
        let (theirs, missing) = latency(
            "peer",
            &mut peer_crossed.iter().map(|(k, (at, _))| (k, *at)),
        );
        let (p50, p99) = if theirs.is_empty() {
            (f64::NAN, f64::NAN)
        } else {
            percentiles(&theirs)
        };
        println!(
            "peer {}: p50 {:.1} s, p99 {:.1} s, {} notifications, {} crossings not paged in time",
            peer.describe(),
            p50 / 1000.0,
            p99 / 1000.0,
            theirs.len(),
            missing
        );
        if !ours.is_empty() && !theirs.is_empty() {
            println!(
                "ratio (peer p50 / ours p50): {:.0}",
                p50 / percentiles(&ours).0
            );
        }
    }
    if ours_missing > 0 {
        println!("WARNING: {ours_missing} of our crossings were not paged within the wait");
    }
    anyhow::ensure!(!ours.is_empty(), "no notification arrived");
    let (p50, p99) = percentiles(&ours);
    println!(
        "alert-latency: p50 {p50:.1} ms, p99 {p99:.1} ms, {} notifications",
        ours.len()
    );
    Ok(())
}
