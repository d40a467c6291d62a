//! Pieces every Nightjar binary needs in the same shape: logging set-up,
//! TOML config file loading with errors that name the file, and duration
//! parsing with errors that name the key, and metric/label name syntax.

pub mod config_file;
pub mod duration;
pub mod logging;
pub mod names;
pub mod status_http;
pub mod systemd;
pub mod tls;
pub mod token;
