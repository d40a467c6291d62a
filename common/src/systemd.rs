//! The systemd service protocol (`sd_notify(3)`): readiness, stopping and
//! watchdog pings. Every call is a no-op when the process was not started
//! by systemd (no `NOTIFY_SOCKET`), so the daemons call them unconditionally.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(state: &[NotifyState<'_>]) {
    // A failed notification must not stop the daemon; systemd will act on
    // the missing message (start timeout, watchdog) and say so in its log.
    if let Err(error) = sd_notify::notify(false, state) {
        tracing::warn!(%error, "cannot notify the service manager");
    }
}

/// Start-up is complete (`READY=1`), with a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Shutting down (`STOPPING=1`).
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

/// The main loop is alive (`WATCHDOG=1`).
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// The watchdog timeout systemd set (`WatchdogSec=`), if any: from
/// `WATCHDOG_USEC`, unless `WATCHDOG_PID` names another process (as
/// libsystemd's `sd_watchdog_enabled`; systemd sets both).
pub fn watchdog_timeout() -> Option<Duration> {
    watchdog_from(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn watchdog_from(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|u| *u > 0)?;
    match pid.map(|p| p.trim().parse::<u32>()) {
        Some(Ok(p)) if p != own_pid => None,
        Some(Err(_)) => None,
        _ => Some(Duration::from_micros(usec)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_needs_a_timeout_and_our_pid_if_any() {
        let two = Some(Duration::from_secs(2));
        assert_eq!(watchdog_from(Some("2000000"), None, 7), two);
        assert_eq!(watchdog_from(Some("2000000"), Some("7"), 7), two);
        assert_eq!(watchdog_from(Some("2000000"), Some("8"), 7), None);
        assert_eq!(watchdog_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_from(Some("soon"), None, 7), None);
        assert_eq!(watchdog_from(None, Some("7"), 7), None);
    }
}
