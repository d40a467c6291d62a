//! systemd unit state: `systemd_unit_active{unit,state}` is 1 when the
//! unit's ActiveState is `active`, else 0; `state` carries the ActiveState
//! (`active`, `inactive`, `failed`, `activating`, ...), as
//! `systemctl is-active UNIT` prints it.
//!
//! Read with one `systemctl show UNIT... --property=Id,ActiveState` per
//! interval, on a thread of its own with a timeout, so a stuck D-Bus can
//! never delay sampling: the sampler takes the latest result. A host
//! without systemd (containers, PID 1 not systemd, no systemctl) is not an
//! error: it is logged once and nothing is reported.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sample::Sample;

/// Longest one `systemctl show` may take before it is killed.
const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(5);

/// (unit, ActiveState) pairs from `systemctl show --property=Id,ActiveState`
/// output: one block of `Key=Value` lines per unit, blocks separated by a
/// blank line.
pub fn parse_show(text: &str) -> Vec<(String, String)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut id = None;
            let mut state = None;
            for line in block.lines() {
                match line.split_once('=') {
                    Some(("Id", v)) => id = Some(v.trim().to_owned()),
                    Some(("ActiveState", v)) => state = Some(v.trim().to_owned()),
                    _ => {}
                }
            }
            Some((id?, state?))
        })
        .collect()
}

/// Samples for parsed unit states.
pub fn samples(states: &[(String, String)]) -> Vec<Sample> {
    states
        .iter()
        .map(|(unit, state)| {
            let active = if state == "active" { 1.0 } else { 0.0 };
            Sample::labelled("systemd_unit_active", "unit", unit.clone(), active)
                .with("state", state.clone())
        })
        .collect()
}

/// Polls unit states on its own thread; the sampler reads the latest.
pub struct SystemdUnits {
    latest: Arc<Mutex<Vec<(String, String)>>>,
}

impl SystemdUnits {
    /// Starts polling `units` every `interval`. With no units, starts nothing.
    pub fn start(units: Vec<String>, interval: Duration) -> SystemdUnits {
        let latest = Arc::new(Mutex::new(Vec::new()));
        if !units.is_empty() {
            let shared = latest.clone();
            let spawned = std::thread::Builder::new()
                .name("systemd-units".into())
                .spawn(move || poll_loop(&units, interval, &shared));
            if let Err(error) = spawned {
                tracing::warn!(%error, "cannot start the systemd unit thread; unit states are not reported");
            }
        }
        SystemdUnits { latest }
    }

    /// Samples of the latest known states.
    pub fn samples(&self) -> Vec<Sample> {
        samples(&self.latest.lock().expect("poisoned"))
    }
}

fn poll_loop(units: &[String], interval: Duration, latest: &Mutex<Vec<(String, String)>>) {
    loop {
        let started = Instant::now();
        match show(units) {
            Ok(states) => *latest.lock().expect("poisoned") = states,
            Err(reason) => {
                tracing::info!(%reason, "systemd is not available here; systemd unit states are not reported");
                latest.lock().expect("poisoned").clear();
                return;
            }
        }
        std::thread::sleep(interval.saturating_sub(started.elapsed()));
    }
}

/// Runs `systemctl show` with a timeout.
fn show(units: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut child = Command::new("systemctl")
        .arg("show")
        .args(units)
        .arg("--property=Id,ActiveState")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run systemctl: {e}"))?;
    let deadline = Instant::now() + SYSTEMCTL_TIMEOUT;
    while child.try_wait().map_err(|e| e.to_string())?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "systemctl show took longer than {SYSTEMCTL_TIMEOUT:?}"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    let states = parse_show(&text);
    if states.is_empty() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(stderr
            .lines()
            .next()
            .unwrap_or("systemctl show printed nothing")
            .to_owned());
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_blocks_and_maps_states() {
        let text = "Id=nginx.service\nActiveState=active\n\nId=backup.service\nActiveState=failed\n\nId=broken\n";
        let states = parse_show(text);
        assert_eq!(
            states,
            vec![
                ("nginx.service".to_string(), "active".to_string()),
                ("backup.service".to_string(), "failed".to_string())
            ]
        );
        let s = samples(&states);
        assert_eq!(s[0].value, 1.0);
        assert_eq!(s[1].value, 0.0);
        assert_eq!(
            s[1].labels,
            vec![
                ("unit", "backup.service".to_string()),
                ("state", "failed".to_string())
            ]
        );
        assert!(parse_show("System has not been booted with systemd").is_empty());
    }
}
