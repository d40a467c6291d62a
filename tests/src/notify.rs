//! A NOTIFY_SOCKET the test creates, to observe the systemd service
//! protocol (READY=1, WATCHDOG=1, STOPPING=1) of a daemon it starts.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::DEADLINE;

/// The socket and the messages received on it.
pub struct NotifySocket {
    socket: UnixDatagram,
    /// Its path, for `NOTIFY_SOCKET`.
    pub path: String,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    /// A socket in a temp dir of its own.
    #[allow(clippy::new_without_default)]
    pub fn new() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        NotifySocket {
            socket,
            path: path.to_str().unwrap().to_owned(),
            _dir: dir,
        }
    }

    /// Drops the messages received so far.
    pub fn drain(&self) {
        let mut buf = [0u8; 4096];
        while self.socket.recv(&mut buf).is_ok() {}
    }

    /// Waits (up to DEADLINE) for a message containing `line` as one of its
    /// lines; returns the whole message.
    pub fn expect(&self, line: &str) -> String {
        let deadline = Instant::now() + DEADLINE;
        let mut buf = [0u8; 4096];
        loop {
            assert!(Instant::now() < deadline, "no {line} on NOTIFY_SOCKET");
            if let Ok(n) = self.socket.recv(&mut buf) {
                let msg = String::from_utf8_lossy(&buf[..n]).to_string();
                if msg.lines().any(|l| l == line) {
                    return msg;
                }
            }
        }
    }
}
