//! Prometheus' side: `promtool tsdb bench write` (in-process appends into
//! Prometheus' TSDB), then a Prometheus server opened on its output until
//! its head is compacted into blocks, for bytes per sample.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// What Prometheus measured.
pub struct PromResult {
    /// promtool's "samples/sec".
    pub samples_per_second: f64,
    /// Bytes of compacted blocks per sample in them, if Prometheus ran and
    /// wrote blocks (its head is compacted once it spans over 3 h).
    pub bytes_per_sample: Option<f64>,
}

/// Runs promtool on `series_file` with `metrics` series and `scrapes`.
pub fn run(
    series_file: &Path,
    metrics: usize,
    scrapes: usize,
    dir: &Path,
) -> anyhow::Result<PromResult> {
    let out = Command::new("promtool")
        .args(["tsdb", "bench", "write"])
        .arg(format!("--out={}", dir.display()))
        .arg(format!("--metrics={metrics}"))
        .arg(format!("--scrapes={scrapes}"))
        .arg(series_file)
        .output()
        .context("running promtool (Debian package prometheus)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "promtool failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples_per_second = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("> samples/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .with_context(|| format!("no samples/sec in promtool's output: {stdout}"))?;
    let bytes_per_sample = compacted_bytes_per_sample(&dir.join("storage"))?;
    Ok(PromResult {
        samples_per_second,
        bytes_per_sample,
    })
}

/// Opens Prometheus on `storage` until its blocks stop changing, then
/// divides their size by their sample count. `None` without a prometheus
/// binary.
fn compacted_bytes_per_sample(storage: &Path) -> anyhow::Result<Option<f64>> {
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        return Ok(None);
    }
    let config = storage.with_extension("yml");
    std::fs::write(&config, "global:\n  scrape_interval: 1h\n")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", storage.display()))
        // promtool writes from timestamp 0: keep it all.
        .arg("--storage.tsdb.retention.time=100y")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting prometheus")?;
    let started = Instant::now();
    let mut last = (0u64, 0u64);
    let mut stable_since = Instant::now();
    while started.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_secs(2));
        let now = blocks(storage);
        if now != last {
            last = now;
            stable_since = Instant::now();
        } else if now.1 > 0 && stable_since.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let (bytes, samples) = last;
    Ok((samples > 0).then(|| bytes as f64 / samples as f64))
}

/// (bytes, samples) of the complete blocks under `storage`.
fn blocks(storage: &Path) -> (u64, u64) {
    let mut bytes = 0;
    let mut samples = 0;
    for entry in std::fs::read_dir(storage).into_iter().flatten().flatten() {
        let meta = entry.path().join("meta.json");
        let Ok(text) = std::fs::read_to_string(&meta) else {
            continue;
        };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        samples += json["stats"]["numSamples"].as_u64().unwrap_or(0);
        bytes += dir_size(&entry.path());
    }
    (bytes, samples)
}

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
