//! `nightjar-collector`: gRPC ingest, RocksDB storage and the query API.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use nightjar_collector::config::{Config, Overrides, RawConfig};
use nightjar_common::{config_file, logging};

/// Ingest allocates and frees a few strings per sample on every core;
/// glibc's malloc spent a third of the collector's CPU there under load
/// (perf, bench/ingest), mimalloc a fraction of it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Nightjar's collector: receives samples from agents, stores them in an
/// embedded RocksDB and answers queries.
#[derive(Debug, Parser)]
#[command(name = "nightjar-collector", version)]
struct Args {
    /// TOML config file; flags override its keys.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// gRPC listen address [default: 127.0.0.1:7070].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Data directory [default: ./nightjar-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// HTTP status address (/healthz, /metrics), or "off" [default: 127.0.0.1:7071].
    #[arg(long, value_name = "ADDR")]
    http_listen: Option<String>,
    /// Log line format.
    #[arg(long, value_enum, default_value_t)]
    log_format: logging::LogFormat,
}

fn main() -> ExitCode {
    // No transparent huge pages for this process. mimalloc asks for them on
    // its arenas (madvise) and hands freed memory back to the kernel a
    // second later, so every reuse faults in and zeroes whole 2 MiB pages:
    // a Latest over 10 k series spent most of its 25 ms in the kernel
    // clearing pages, and peak RSS was 16 % higher (bench/ingest,
    // docs/benchmarks.md). Set before anything large is allocated; a
    // kernel without THP refuses the call, which changes nothing.
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let args = Args::parse();
    logging::init(args.log_format);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("nightjar-collector: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Reads the config file (if any) and merges the flags.
fn load_config(args: &Args) -> anyhow::Result<Config> {
    let file = match &args.config {
        Some(path) => Some((path.as_path(), config_file::load::<RawConfig>(path)?)),
        None => None,
    };
    Ok(Config::build(
        file,
        Overrides {
            listen: args.listen.clone(),
            data_dir: args.data_dir.clone(),
            http_listen: args.http_listen.clone(),
        },
    )?)
}

fn run(args: Args) -> anyhow::Result<()> {
    let config = load_config(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let reload: nightjar_collector::server::Reload = Box::new(move || load_config(&args));
    runtime.block_on(nightjar_collector::server::run(config, Some(reload)))
}
