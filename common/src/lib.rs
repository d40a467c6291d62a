//! Pieces every Nightjar binary needs in the same shape: logging set-up,
//! TOML config file loading with errors that name the file, and duration
//! parsing with errors that name the key, metric/label name syntax, and
//! rate-limited logging.

pub mod config_file;
pub mod duration;
pub mod in_process;
pub mod log_limit;
pub mod logging;
pub mod metric_help;
pub mod names;
pub mod status_http;
pub mod systemd;
pub mod tls;
pub mod token;
