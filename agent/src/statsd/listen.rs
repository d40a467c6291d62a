//! The statsd listeners: one thread reading UDP datagrams, one accepting
//! TCP connections (a thread each, newline-delimited lines). Both feed the
//! shared [`Aggregator`], locking it once per datagram or per read, not per
//! line. A malformed line is counted, logged (at most every 10 s) and
//! skipped; nothing a client sends can stop a listener.

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nightjar_common::log_limit::RateLimitedLog;

use super::aggregate::Aggregator;
use super::parse;
use crate::telemetry::AgentCounters;

/// Largest statsd datagram (the UDP maximum).
const MAX_DATAGRAM: usize = 65_535;
/// Longest TCP line; a longer one is counted malformed and skipped.
const MAX_TCP_LINE: usize = 64 * 1024;
/// Most TCP connections served at once; more are closed on accept.
const MAX_TCP_CONNECTIONS: usize = 256;
/// How often a reader checks whether to stop (rarely: an idle agent should
/// not wake up for it; at exit the threads end with the process anyway).
const POLL: Duration = Duration::from_secs(1);

/// What the listeners share.
pub struct Shared {
    /// The series.
    pub aggregator: Mutex<Aggregator>,
    /// Self-metrics.
    pub counters: Arc<AgentCounters>,
    /// Set to stop the listeners.
    pub stop: AtomicBool,
    /// Malformed lines are logged at most every 10 s.
    malformed_log: RateLimitedLog<10>,
}

impl Shared {
    /// Shared state around `aggregator`.
    pub fn new(aggregator: Aggregator, counters: Arc<AgentCounters>) -> Shared {
        Shared {
            aggregator: Mutex::new(aggregator),
            counters,
            stop: AtomicBool::new(false),
            malformed_log: RateLimitedLog::new(),
        }
    }

    /// Parses and aggregates every line of `data` (newline-separated).
    pub fn ingest(&self, data: &[u8], from: &str) {
        let mut metrics = 0;
        let mut malformed = 0;
        let mut first_bad: Option<(&[u8], &'static str)> = None;
        {
            let mut aggregator = self.aggregator.lock().expect("poisoned");
            for line in data.split(|&b| b == b'\n') {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if line.is_empty() {
                    continue;
                }
                let outcome = parse::parse_line(line)
                    .map_err(|m| m.reason())
                    .and_then(|l| aggregator.add(&l).map_err(|r| r.0));
                match outcome {
                    Ok(n) => metrics += n,
                    Err(reason) => {
                        malformed += 1;
                        first_bad.get_or_insert((line, reason));
                    }
                }
            }
        }
        self.counters
            .statsd_metrics
            .fetch_add(metrics, Ordering::Relaxed);
        if let Some((line, reason)) = first_bad {
            self.malformed(malformed, line, reason, from);
        }
    }

    /// Counts `count` malformed lines and logs one of them (rate-limited).
    pub fn malformed(&self, count: u64, line: &[u8], reason: &str, from: &str) {
        let total = self
            .counters
            .statsd_malformed
            .fetch_add(count, Ordering::Relaxed)
            + count;
        if self.malformed_log.due().is_some() {
            let shown = &line[..line.len().min(200)];
            tracing::warn!(
                from,
                line = %String::from_utf8_lossy(shown),
                reason,
                malformed_total = total,
                "statsd: skipped a malformed line (logged at most every 10 s)"
            );
        }
    }
}

/// Binds the UDP socket with a receive buffer of `read_buffer_bytes`: as
/// root (or with CAP_NET_ADMIN) exactly that, otherwise at most the
/// kernel's `net.core.rmem_max`. The buffer is what absorbs a burst while
/// the listener thread is descheduled. Logs the size it got.
pub fn bind_udp(addr: SocketAddr, read_buffer_bytes: usize) -> std::io::Result<UdpSocket> {
    use rustix::net::sockopt;
    let socket = UdpSocket::bind(addr)?;
    if sockopt::set_socket_recv_buffer_size_force(&socket, read_buffer_bytes).is_err()
        && let Err(error) = sockopt::set_socket_recv_buffer_size(&socket, read_buffer_bytes)
    {
        tracing::warn!(%error, "statsd: cannot set the UDP receive buffer size");
    }
    let got = sockopt::socket_recv_buffer_size(&socket).unwrap_or(0);
    // Linux reports double the size asked for (half is bookkeeping).
    if got / 2 < read_buffer_bytes {
        tracing::warn!(
            asked = read_buffer_bytes,
            got = got / 2,
            "statsd: UDP receive buffer capped by net.core.rmem_max; raise it (or run with CAP_NET_ADMIN) to absorb bursts"
        );
    }
    socket.set_read_timeout(Some(POLL))?;
    Ok(socket)
}

/// Reads datagrams until `shared.stop` is set.
pub fn serve_udp(socket: UdpSocket, shared: Arc<Shared>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    while !shared.stop.load(Ordering::Relaxed) {
        match socket.recv_from(&mut buf) {
            Ok((n, _peer)) => {
                shared
                    .counters
                    .statsd_packets
                    .fetch_add(1, Ordering::Relaxed);
                shared.ingest(&buf[..n], "udp");
            }
            Err(e) if is_read_timeout(&e) => {}
            Err(error) => {
                tracing::warn!(%error, "statsd: UDP receive failed");
                std::thread::sleep(POLL);
            }
        }
    }
}

/// A read that timed out (the `POLL` read timeout) or was interrupted:
/// nothing to do but check `stop` and read again.
fn is_read_timeout(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{Interrupted, TimedOut, WouldBlock};
    matches!(e.kind(), WouldBlock | TimedOut | Interrupted)
}

/// Binds the TCP listener.
pub fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
}

/// Accepts connections (blocking: no wake-ups while idle) until
/// `shared.stop` is set; each is read on its own thread.
pub fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    let open = Arc::new(AtomicUsize::new(0));
    while !shared.stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, peer)) => {
                if open.load(Ordering::Relaxed) >= MAX_TCP_CONNECTIONS {
                    tracing::warn!(%peer, "statsd: too many TCP connections; closing a new one");
                    continue;
                }
                open.fetch_add(1, Ordering::Relaxed);
                let (shared, open) = (shared.clone(), open.clone());
                let spawned =
                    std::thread::Builder::new()
                        .name("statsd-tcp".into())
                        .spawn(move || {
                            read_tcp(stream, &shared);
                            open.fetch_sub(1, Ordering::Relaxed);
                        });
                if let Err(error) = spawned {
                    tracing::warn!(%error, "statsd: cannot start a TCP reader thread");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "statsd: TCP accept failed");
                std::thread::sleep(POLL);
            }
        }
    }
}

/// Reads newline-delimited lines from one connection until it closes.
fn read_tcp(stream: TcpStream, shared: &Shared) {
    if stream.set_read_timeout(Some(POLL)).is_err() {
        return;
    }
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut line = Vec::with_capacity(1024);
    loop {
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        // Reads up to the newline; a timeout keeps what was read so far.
        match (&mut reader)
            .take((MAX_TCP_LINE + 1 - line.len().min(MAX_TCP_LINE)) as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) => {
                if !line.is_empty() {
                    shared.ingest(&line, "tcp");
                }
                return;
            }
            Ok(_) if line.ends_with(b"\n") || line.len() > MAX_TCP_LINE => {
                if line.len() > MAX_TCP_LINE && !line.ends_with(b"\n") {
                    // Too long: count it as malformed and skip to its end.
                    shared.malformed(1, &line, "line longer than 64 KiB", "tcp");
                    line.clear();
                    let _ = skip_line(&mut reader);
                } else {
                    shared.ingest(&line, "tcp");
                    line.clear();
                }
            }
            Ok(_) => {}
            Err(e) if is_read_timeout(&e) => {}
            Err(_) => return,
        }
    }
}

/// Discards input up to and including the next newline.
fn skip_line(reader: &mut BufReader<TcpStream>) -> std::io::Result<()> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(());
            }
            None => {
                let n = buf.len();
                reader.consume(n);
            }
        }
    }
}
