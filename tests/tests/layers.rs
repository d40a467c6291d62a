//! The crate layers of ARCHITECTURE.md, checked on the real dependency
//! graph (`cargo tree`) and sources: the CLI builds without RocksDB, only
//! the storage crate depends on RocksDB and only its `rocks` module names
//! it, and the engines (storage, alerting) depend on no wire crate directly.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("..")
}

/// The packages in `package`'s normal (non-dev, non-build) dependency
/// tree, or only its direct dependencies with `direct`.
fn dependencies(package: &str, direct: bool) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec![
        "tree",
        "--locked",
        "--offline",
        "-e",
        "normal",
        "--prefix",
        "none",
    ];
    if direct {
        args.extend(["--depth", "1"]);
    }
    let out = Command::new(cargo)
        .current_dir(repo())
        .args(args)
        .args(["-p", package])
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

fn normal_dependencies(package: &str) -> Vec<String> {
    dependencies(package, false)
}

#[test]
fn the_cli_and_the_alerting_engine_build_without_rocksdb() {
    for package in [
        "nightjar-cli",
        "nightjar-alerting",
        "nightjar-agent",
        "nightjar-model",
    ] {
        let deps = normal_dependencies(package);
        assert!(deps.iter().any(|d| d == package), "{package}: {deps:?}");
        for heavy in ["librocksdb-sys", "rocksdb", "nightjar-storage"] {
            assert!(
                !deps.iter().any(|d| d == heavy),
                "{package} depends on {heavy}"
            );
        }
    }
    let collector = normal_dependencies("nightjar-collector");
    assert!(
        collector.iter().any(|d| d == "librocksdb-sys"),
        "the check sees RocksDB where it is"
    );
}

/// Wire types become domain types in the model crate (`convert.rs`); the
/// engines use only the domain types.
#[test]
fn the_engines_take_no_wire_types() {
    for package in ["nightjar-storage", "nightjar-alerting"] {
        let deps = dependencies(package, true);
        assert!(
            deps.iter().any(|d| d == "nightjar-model"),
            "{package}: {deps:?}"
        );
        for wire in ["nightjar-proto", "tonic", "prost"] {
            assert!(
                !deps.iter().any(|d| d == wire),
                "{package} depends on {wire} directly"
            );
        }
    }
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !["target", "fuzz", "node_modules", ".git"].contains(&name.as_str()) {
                sources(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn only_the_storage_rocks_module_names_rocksdb() {
    let root = repo().canonicalize().unwrap();
    let mut files = Vec::new();
    sources(&root, &mut files);
    assert!(files.len() > 50, "found the sources: {}", files.len());
    let allowed = root.join("storage/src/rocks");
    // Spelled in pieces so that this file does not name it.
    let (path, import) = (["rocks", "db::"].concat(), ["use rocks", "db"].concat());
    let mut naming = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        if text.contains(&path) || text.contains(&import) {
            naming.push(file.clone());
        }
    }
    assert!(
        naming.iter().any(|f| f.starts_with(&allowed)),
        "the check finds the RocksDB module"
    );
    let outside: Vec<_> = naming.iter().filter(|f| !f.starts_with(&allowed)).collect();
    assert!(
        outside.is_empty(),
        "RocksDB named outside storage/src/rocks: {outside:?}"
    );
}
