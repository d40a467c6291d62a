//! The shipped deployment files: systemd units pass `systemd-analyze
//! verify` (with a private root holding the unit, stand-in binaries and the
//! host's system units, so the check needs no installation).

use std::path::Path;
use std::process::Command;

fn repo() -> std::path::PathBuf {
    Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("..")
}

#[test]
fn systemd_units_pass_systemd_analyze_verify() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for dir in ["usr/bin", "bin", "etc/systemd/system", "usr/lib/systemd"] {
        std::fs::create_dir_all(r.join(dir)).unwrap();
    }
    // The system units (sysinit.target and friends) the units hang off.
    let status = Command::new("cp")
        .args(["-r", "/lib/systemd/system"])
        .arg(r.join("usr/lib/systemd/"))
        .status()
        .expect("cp runs");
    assert!(status.success());
    for bin in ["nightjar-agent", "nightjar-collector"] {
        std::fs::copy("/bin/true", r.join("usr/bin").join(bin)).unwrap();
    }
    std::fs::copy("/bin/kill", r.join("bin/kill")).unwrap();
    let mut units = Vec::new();
    for unit in ["nightjar-agent.service", "nightjar-collector.service"] {
        std::fs::copy(
            repo().join("deploy/systemd").join(unit),
            r.join("etc/systemd/system").join(unit),
        )
        .unwrap();
        units.push(format!("/etc/systemd/system/{unit}"));
    }
    let out = Command::new("systemd-analyze")
        .arg(format!("--root={}", r.display()))
        .arg("verify")
        .args(&units)
        .output()
        .expect("systemd-analyze is installed (Debian package systemd; .ci/run installs it)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // verify exits 0 on directives it ignores, so any message is a failure.
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}
