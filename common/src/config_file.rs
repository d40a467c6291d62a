//! Loading a TOML config file into a raw serde struct. Errors name the file,
//! and toml's message names the key, line and column.

use std::path::{Path, PathBuf};

/// A config file that could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file could not be read.
    #[error("config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this config (syntax, unknown key, type).
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's description, with key, line and column.
        message: String,
    },
}

/// Reads and deserializes `path`.
pub fn load<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ConfigFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigFileError::Parse {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })
}
