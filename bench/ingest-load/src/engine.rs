//! The in-process phase: our storage engine appending the same generated
//! series file, sample count and values as `promtool tsdb bench write`
//! (each series a counter starting at 123456789 and growing by 1000 per
//! scrape, scrapes 30 s apart, shards of 1000 series), through the same
//! write path as `Storage::append` the collector uses — each append a
//! synced, durable write — with series references resolved once, as
//! promtool's appenders keep theirs (`RocksStorage::append_refs`).

use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use nightjar_model::model::{Labels, Point, SeriesKey};
use nightjar_storage::Storage as _;
use nightjar_storage::rocks::{RefBatch, RocksStorage};

use crate::hostload::METRICS;

/// One series of the file: metric name and labels.
pub type SeriesDef = (String, Vec<(String, String)>);

/// Writes `n` host-metric-like series in promtool's series-file format (one
/// `{"__name__":…,"label":"value"}` per line) and returns them.
pub fn write_series_file(path: &Path, n: usize) -> anyhow::Result<Vec<SeriesDef>> {
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let metric = METRICS[i % METRICS.len()].0.to_owned();
        let labels = vec![
            ("instance".to_owned(), format!("host-{}", i / 100)),
            ("idx".to_owned(), ((i % 100) / 10).to_string()),
        ];
        writeln!(
            file,
            "{{\"__name__\":\"{metric}\",\"instance\":\"{}\",\"idx\":\"{}\"}}",
            labels[0].1, labels[1].1
        )?;
        out.push((metric, labels));
    }
    file.flush()?;
    Ok(out)
}

/// What the engine phase measured.
pub struct EngineResult {
    /// Samples appended.
    pub samples: u64,
    /// Appended samples per second (wall clock, all threads).
    pub samples_per_second: f64,
    /// Raw-tier bytes per sample after writing the heads and compacting.
    pub raw_bytes_per_sample: f64,
    /// Rollup (1m + 1h) bytes per sample, same moment.
    pub rollup_bytes_per_sample: f64,
    /// Threads that appended.
    pub threads: usize,
    /// Wall-clock seconds of the appends.
    pub seconds: f64,
    /// CPU seconds this process used during the appends (RocksDB's own
    /// background threads included).
    pub cpu_seconds: f64,
}

const SHARD: usize = 1000;
const SCRAPE_MS: i64 = 30_000;

/// Appends `scrapes` scrapes of `series` with `threads` threads (0: one
/// per shard) into a fresh storage under `dir`.
pub fn run(
    series: &[SeriesDef],
    scrapes: usize,
    threads: usize,
    dir: &Path,
) -> anyhow::Result<EngineResult> {
    let storage = RocksStorage::open(dir).context("opening the engine's storage")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    // Recent timestamps (promtool starts at 0): retention must keep them.
    let base = (now - scrapes as i64 * SCRAPE_MS) / SCRAPE_MS * SCRAPE_MS;
    let shards: Vec<Vec<SeriesKey>> = series
        .chunks(SHARD)
        .map(|chunk| {
            chunk
                .iter()
                .map(|(metric, labels)| SeriesKey {
                    metric: metric.clone(),
                    labels: Labels::from_pairs(labels.clone()).expect("distinct names"),
                })
                .collect()
        })
        .collect();
    let threads = if threads == 0 { shards.len() } else { threads };
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (storage, shards) = (&storage, &shards);
                scope.spawn(move || -> anyhow::Result<()> {
                    // As promtool's appenders keep each series' ref after
                    // its first append: the keys are resolved once.
                    let mut batches = Vec::new();
                    for (i, keys) in shards.iter().enumerate().filter(|(i, _)| i % threads == t) {
                        let refs = storage.series_refs(keys)?;
                        batches.push(RefBatch {
                            agent_id: format!("engine-shard-{i}"),
                            host: format!("engine-shard-{i}"),
                            seq: 0,
                            interval_ms: SCRAPE_MS as u64,
                            samples: refs
                                .into_iter()
                                .map(|r| {
                                    (
                                        r,
                                        Point {
                                            timestamp_ms: 0,
                                            value: 0.0,
                                        },
                                    )
                                })
                                .collect(),
                        });
                    }
                    for scrape in 1..=scrapes {
                        let ts = base + scrape as i64 * SCRAPE_MS;
                        let value = 123_456_789.0 + 1000.0 * scrape as f64;
                        for batch in &mut batches {
                            batch.seq = scrape as u64;
                            for (_, point) in &mut batch.samples {
                                *point = Point {
                                    timestamp_ms: ts,
                                    value,
                                };
                            }
                            storage.append_refs(batch, now)?;
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("engine thread panicked"))
    })?;
    let elapsed = started.elapsed();
    let cpu = cpu_seconds() - cpu_before;
    let samples = (series.len() * scrapes) as u64;
    storage.flush_heads(Duration::ZERO)?;
    storage.compact();
    let stats = storage.stats();
    let [raw, minute, hour] = stats.tier_disk_bytes;
    Ok(EngineResult {
        samples,
        samples_per_second: samples as f64 / elapsed.as_secs_f64(),
        raw_bytes_per_sample: raw as f64 / samples as f64,
        rollup_bytes_per_sample: (minute + hour) as f64 / samples as f64,
        threads,
        seconds: elapsed.as_secs_f64(),
        cpu_seconds: cpu,
    })
}

/// This process' CPU seconds so far (all threads).
fn cpu_seconds() -> f64 {
    crate::procstat::cpu_seconds(std::process::id()).unwrap_or(f64::NAN)
}
