//! A TCP proxy on loopback that can turn into a blackhole: it stops
//! forwarding without closing anything, as a dead route or a NAT that lost
//! its table does. Connections open when the blackhole starts, and those
//! accepted during it, stay frozen for good (held open, never forwarded);
//! once it ends, new connections are forwarded again.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The proxy; it stops forwarding when dropped.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// The current generation; connections of an older one are frozen.
    generation: AtomicU64,
    blackhole: AtomicBool,
    stopped: AtomicBool,
    /// Every socket, so dropping the proxy closes them.
    sockets: Mutex<Vec<TcpStream>>,
}

impl Proxy {
    /// Forwards a free loopback port to `target`.
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy binds");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if state.stopped.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                state.keep(&client);
                if state.blackhole.load(Ordering::SeqCst) {
                    continue; // held open, never forwarded
                }
                let Ok(upstream) = TcpStream::connect(target) else {
                    continue;
                };
                state.keep(&upstream);
                let generation = state.generation.load(Ordering::SeqCst);
                for (from, to) in [
                    (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
                    (upstream, client),
                ] {
                    let state = state.clone();
                    std::thread::spawn(move || state.pump(from, to, generation));
                }
            }
        });
        Proxy { addr, shared }
    }

    /// Starts (true) or ends (false) the blackhole. Connections open when
    /// it starts stay frozen after it ends.
    pub fn set_blackhole(&self, on: bool) {
        if on {
            self.shared.generation.fetch_add(1, Ordering::SeqCst);
        }
        self.shared.blackhole.store(on, Ordering::SeqCst);
    }
}

impl Shared {
    fn keep(&self, socket: &TcpStream) {
        if let Ok(s) = socket.try_clone() {
            self.sockets.lock().unwrap().push(s);
        }
    }

    /// Copies `from` to `to` while the connection's generation is current.
    fn pump(&self, mut from: TcpStream, mut to: TcpStream, generation: u64) {
        let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
        let mut buf = [0u8; 16 * 1024];
        loop {
            if self.stopped.load(Ordering::SeqCst) {
                return;
            }
            if self.generation.load(Ordering::SeqCst) != generation {
                // Frozen: neither read nor closed.
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            match from.read(&mut buf) {
                Ok(0) => {
                    let _ = to.shutdown(Shutdown::Write);
                    return;
                }
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(_) => return,
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        for s in self.shared.sockets.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        // Wake the accept loop so it sees `stopped`.
        let _ = TcpStream::connect(self.addr);
    }
}
