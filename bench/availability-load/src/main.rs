//! `nightjar-bench-availability`: the program behind `bench/availability`.
//!
//! 1. Writes 30 days of state timelines for 100 services of 20 components
//!    each into a collector data directory, through the same store the
//!    collector records with (`RocksAlertStore`'s timeline column family):
//!    every component fails about three times a day for 1–30 minutes,
//!    some for one region of three, some at a partial impact; each service's
//!    state is judged with `availability::judge` at every change.
//! 2. Starts the release collector on that directory with the 100 services
//!    declared and times `nightjar report availability --window 30d
//!    --json` (all services, with the combined figures), end to end.
//!
//! Ends with one line:
//! `availability: 100 services × 20 components, 30 days, C changes: report median X ms (runs: …)`

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use nightjar_alerting::availability::{Change, TimelineStore as _};
use nightjar_model::availability::timeline::{ComponentNow, Judged, Users, judge};
use nightjar_storage::rocks::RocksAlertStore;

#[derive(Parser, Debug)]
#[command(about = "Nightjar availability report benchmark (see bench/availability)")]
struct Args {
    /// Timed reports (the median is reported).
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Services.
    #[arg(long, default_value_t = 100)]
    services: usize,
    /// Components per service.
    #[arg(long, default_value_t = 20)]
    components: usize,
    /// Days of history.
    #[arg(long, default_value_t = 30)]
    days: i64,
}

const REGIONS: [&str; 3] = ["AMRS", "EMEA", "APAC"];
const MIN: i64 = 60_000;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn services_file(services: usize, components: usize) -> String {
    let mut out = String::new();
    for s in 0..services {
        out.push_str(&format!(
            "[[service]]\nname = \"svc-{s:03}\"\navailability_target = 99.9\nusers = {{ label = \"region\", shares = {{ AMRS = 0.5, EMEA = 0.4, APAC = 0.1 }} }}\n"
        ));
        for c in 0..components {
            out.push_str(&format!(
                "[[service.component]]\nname = \"c{c:02}\"\nlayer = \"application\"\nmetric = \"bench_up\"\nmatchers = [\"service=svc-{s:03}\", \"component=c{c:02}\"]\nimpact = {}\n",
                if c % 4 == 0 { 0.3 } else { 1.0 }
            ));
        }
    }
    out
}

/// A component starts failing (impact, the region hit or all) or recovers.
type Failing = Option<(f64, Option<&'static str>)>;
/// (time, component, what happens).
type Event = (i64, usize, Failing);

/// One service's 30 days: component outages as (start, end, impact,
/// segment), judged into the service's changes.
fn timeline(rng: &mut fastrand::Rng, from: i64, to: i64, components: usize) -> Vec<(i64, Judged)> {
    let users = Users {
        label: "region".into(),
        shares: [("AMRS", 0.5), ("EMEA", 0.4), ("APAC", 0.1)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    };
    let mut events: Vec<Event> = Vec::new();
    for c in 0..components {
        let impact = if c % 4 == 0 { 0.3 } else { 1.0 };
        let mut t = from + rng.i64(0..8 * 60 * MIN);
        while t < to {
            let length = rng.i64(1..=30) * MIN;
            let segment = (rng.u8(0..3) > 0).then(|| REGIONS[rng.usize(0..3)]);
            events.push((t, c, Some((impact, segment))));
            events.push(((t + length).min(to), c, None));
            t += length + rng.i64(2 * 60 * MIN..14 * 60 * MIN);
        }
    }
    events.sort_by_key(|e| e.0);
    let mut now: Vec<ComponentNow> = (0..components)
        .map(|_| ComponentNow {
            impact: 0.0,
            unknown: false,
            segments: vec![],
        })
        .collect();
    let mut out = vec![(from, Judged::UP)];
    for (t, c, failing) in events {
        now[c] = match failing {
            Some((impact, segment)) => ComponentNow {
                impact,
                unknown: false,
                segments: segment.map(|s| vec![s.to_owned()]).unwrap_or_default(),
            },
            None => ComponentNow {
                impact: 0.0,
                unknown: false,
                segments: vec![],
            },
        };
        let j = judge(Some(&users), &now);
        if out.last().is_some_and(|(_, last)| *last != j) {
            out.push((t, j));
        }
    }
    out
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let me = std::env::current_exe()?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let now = now_ms();
    let from = now - args.days * 86_400_000;
    let mut changes = 0usize;
    {
        std::fs::create_dir_all(&data)?;
        let store =
            RocksAlertStore::open(&data.join("alerts")).context("opening the alert store")?;
        let mut rng = fastrand::Rng::with_seed(15);
        for s in 0..args.services {
            let name = format!("svc-{s:03}");
            let t = timeline(&mut rng, from, now, args.components);
            changes += t.len();
            let rows: Vec<(String, Change)> = t
                .into_iter()
                .map(|(at_ms, judged)| {
                    (
                        name.clone(),
                        Change {
                            at_ms,
                            judged,
                            alerts: Vec::new(),
                        },
                    )
                })
                .collect();
            store.record(&rows)?;
        }
        store.judged_through(from, now)?;
    }
    eprintln!(
        "availability bench: {changes} changes over {} days for {} services",
        args.days, args.services
    );
    std::fs::write(
        dir.path().join("services.toml"),
        services_file(args.services, args.components),
    )?;
    std::fs::write(
        dir.path().join("collector.toml"),
        "services = [\"services.toml\"]\n",
    )?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut collector = Command::new(me.with_file_name("nightjar-collector"))
        .arg("--config")
        .arg(dir.path().join("collector.toml"))
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
    let report = || {
        Command::new(&cli)
            .args([
                "--collector",
                &url,
                "--json",
                "report",
                "availability",
                "--window",
                &format!("{}d", args.days),
            ])
            .output()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if report().is_ok_and(|o| o.status.success()) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "the collector did not answer");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut times = Vec::new();
    let mut answer = serde_json::Value::Null;
    for _ in 0..args.runs {
        let t = Instant::now();
        let out = report()?;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        anyhow::ensure!(
            out.status.success(),
            "report failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        answer = serde_json::from_slice(&out.stdout)?;
    }
    let _ = collector.kill();
    let _ = collector.wait();
    let services = answer["services"].as_array().map_or(0, Vec::len);
    anyhow::ensure!(
        services == args.services,
        "the report has {services} services"
    );
    let outages: usize = answer["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["outages"].as_array().map_or(0, Vec::len))
        .sum();
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "availability: {} services × {} components, {} days, {changes} changes, {outages} outages: report median {:.0} ms (runs: {}); mean {:.3} %, all of them {:.3} %",
        args.services,
        args.components,
        args.days,
        sorted[sorted.len() / 2],
        times
            .iter()
            .map(|t| format!("{t:.0}"))
            .collect::<Vec<_>>()
            .join(", "),
        answer["mean_percent"].as_f64().unwrap_or(0.0),
        answer["all_of_percent"].as_f64().unwrap_or(0.0),
    );
    Ok(())
}
