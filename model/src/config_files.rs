//! What rule files and service files share: the files a list of paths
//! names (a directory stands for its `*.toml`, sorted), and the line of a
//! byte offset, for errors that name `file:line`.

use std::path::{Path, PathBuf};

/// The files of `paths`: each file as given, each directory's `*.toml`
/// files sorted by name. Err: the path that cannot be read, and why.
pub fn toml_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, (PathBuf, std::io::Error)> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let entries = std::fs::read_dir(path).map_err(|e| (path.clone(), e))?;
            let mut inside: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            inside.sort();
            files.extend(inside);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// The 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count()
        + 1
}

/// Reads `path` as text, naming it in the error.
pub fn read(path: &Path) -> Result<String, (PathBuf, std::io::Error)> {
    std::fs::read_to_string(path).map_err(|e| (path.to_owned(), e))
}
