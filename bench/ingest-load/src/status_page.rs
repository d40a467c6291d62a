//! The collector's status page (`/metrics`), read over plain HTTP/1.0:
//! the remote_write sender's figures while a forwarding run is measured.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;

/// GET `path`: status and body.
pub fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr)?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no HTTP head")?;
    let head = String::from_utf8_lossy(&response[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    Ok((status, response[split + 4..].to_vec()))
}

/// The sum of the values of the lines starting with `prefix` on a
/// text-format page, None if there is none.
pub fn metric(page: &str, prefix: &str) -> Option<f64> {
    page.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .reduce(|a, b| a + b)
}

/// The sender's figures, summed over endpoints.
pub struct Figures {
    /// Samples stored and not yet sent.
    pub pending: u64,
    /// Samples dropped (every reason).
    pub dropped: u64,
}

/// The sender's figures now.
pub fn figures(addr: SocketAddr) -> anyhow::Result<Figures> {
    let (status, body) = get(addr, "/metrics")?;
    anyhow::ensure!(status == 200, "/metrics on {addr}: {status}");
    let page = String::from_utf8_lossy(&body);
    let value = |prefix| metric(&page, prefix).unwrap_or(0.0) as u64;
    Ok(Figures {
        pending: value("collector_remote_write_samples_pending{"),
        dropped: value("collector_remote_write_samples_dropped_total{"),
    })
}

/// Reads the figures every 250 ms on a thread, keeping the most pending.
pub struct Watch {
    stop: Arc<AtomicBool>,
    most_pending: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl Watch {
    /// Starts watching the collector whose status port is `addr`.
    pub fn start(addr: SocketAddr) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let most_pending = Arc::new(AtomicU64::new(0));
        let (s, m) = (stop.clone(), most_pending.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Ok(f) = figures(addr) {
                    m.fetch_max(f.pending, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        Watch {
            stop,
            most_pending,
            thread,
        }
    }

    /// Stops; the most samples pending seen.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        self.most_pending.load(Ordering::Relaxed)
    }
}
