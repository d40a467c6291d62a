//! `nightjar`: the command-line client of the collector.

use std::process::ExitCode;

use clap::Parser;
use nightjar_cli::{self as cli, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("nightjar: error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("nightjar: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
