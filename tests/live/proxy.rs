//! A TCP proxy for fault injection: it sits between `sluice` and one server
//! and passes, delays, black-holes, drops or resets the connections. A test
//! switches modes itself, or when the proxy sees a byte pattern go to the
//! server (a protocol event, such as `PUT /bucket?versioning`), never on a
//! timer.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does with the bytes it is given.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Forwards everything.
    Pass,
    /// Forwards each chunk after a pause.
    Delay(Duration),
    /// Accepts connections and reads, but forwards nothing either way: a
    /// server that hangs.
    BlackHole,
    /// Closes every connection with FIN, and new ones at once.
    Drop,
    /// Closes every connection with RST, and new ones at once.
    Reset,
    /// Forwards what goes to the server, and nothing that comes back: a
    /// request lands, and its client waits for an answer that never comes.
    HoldReplies,
}

/// A switch to `then` when `pattern` is seen going to the server; the
/// chunk that holds it is already treated under `then`.
struct Trigger {
    pattern: Vec<u8>,
    then: Mode,
    seen: Sender<()>,
}

struct Shared {
    upstream: String,
    mode: Mutex<Mode>,
    /// Bumped by `Drop` and `Reset`: connections of an older generation close.
    generation: AtomicU64,
    triggers: Mutex<Vec<Trigger>>,
    stopped: AtomicBool,
}

impl Shared {
    fn mode(&self) -> Mode {
        *self.mode.lock().unwrap()
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
        if matches!(mode, Mode::Drop | Mode::Reset) {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Fires the triggers whose pattern `window` holds.
    fn inspect(&self, window: &[u8]) {
        let mut triggers = self.triggers.lock().unwrap();
        let mut fired = Vec::new();
        triggers.retain(|t| {
            let hit = window.windows(t.pattern.len()).any(|w| w == t.pattern);
            if hit {
                fired.push((t.then, t.seen.clone()));
            }
            !hit
        });
        drop(triggers);
        for (then, seen) in fired {
            self.set(then);
            let _ = seen.send(());
        }
    }
}

/// A running proxy; it stops accepting when dropped.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
}

impl Proxy {
    /// A proxy on a free loopback port in front of `upstream` (`host:port`,
    /// or a URL such as `http://127.0.0.1:4566`), passing everything.
    pub fn start(upstream: &str) -> Proxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            upstream,
            mode: Mutex::new(Mode::Pass),
            generation: AtomicU64::new(0),
            triggers: Mutex::new(Vec::new()),
            stopped: AtomicBool::new(false),
        });
        let accept = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if accept.stopped.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(client) = client {
                    connect(client, accept.clone());
                }
            }
        });
        Proxy { port, shared }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    pub fn set(&self, mode: Mode) {
        self.shared.set(mode);
    }

    /// Switches to `then` when `pattern` first goes to the server; the
    /// receiver hears of it.
    pub fn when_sent(&self, pattern: &str, then: Mode) -> Receiver<()> {
        let (seen, heard) = channel();
        self.shared.triggers.lock().unwrap().push(Trigger {
            pattern: pattern.as_bytes().to_vec(),
            then,
            seen,
        });
        heard
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::SeqCst);
        self.shared.set(Mode::Reset);
        // Wakes the accept loop so that it sees the stop.
        let _ = TcpStream::connect(self.addr());
    }
}

/// Closes with RST rather than FIN once every handle of it is gone.
fn linger_zero(s: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

fn connect(client: TcpStream, shared: Arc<Shared>) {
    match shared.mode() {
        Mode::Drop => return,
        Mode::Reset => return linger_zero(&client),
        _ => {}
    }
    let Ok(server) = TcpStream::connect(&shared.upstream) else {
        return linger_zero(&client);
    };
    let generation = shared.generation.load(Ordering::SeqCst);
    for (from, to, inspect) in [
        (
            client.try_clone().unwrap(),
            server.try_clone().unwrap(),
            true,
        ),
        (server, client, false),
    ] {
        let shared = shared.clone();
        std::thread::spawn(move || pump(from, to, inspect, generation, &shared));
    }
}

/// Copies `from` to `to` under the proxy's mode, until either side closes
/// or the connection's generation ends.
fn pump(mut from: TcpStream, mut to: TcpStream, inspect: bool, generation: u64, shared: &Shared) {
    // Reads wake up now and then to notice a Drop or Reset.
    from.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut tail: Vec<u8> = Vec::new();
    loop {
        if shared.generation.load(Ordering::SeqCst) != generation {
            if shared.mode() == Mode::Reset {
                linger_zero(&from);
                linger_zero(&to);
            } else {
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
            }
            return;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => {
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        };
        if inspect {
            // A pattern may straddle two reads: keep the end of the last one.
            tail.extend_from_slice(&buf[..n]);
            shared.inspect(&tail);
            let keep = tail.len().saturating_sub(256);
            tail.drain(..keep);
        }
        match shared.mode() {
            Mode::Pass => {}
            Mode::Delay(d) => std::thread::sleep(d),
            Mode::BlackHole => continue,
            Mode::HoldReplies if !inspect => continue,
            Mode::HoldReplies => {}
            Mode::Drop | Mode::Reset => continue, // closed at the next turn
        }
        if to.write_all(&buf[..n]).is_err() {
            let _ = from.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// The proxy itself, in front of an echo server: each mode does what it says.
#[test]
fn the_proxy_passes_delays_black_holes_drops_and_resets() {
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream = echo.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in echo.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut r = s.try_clone().unwrap();
                let _ = std::io::copy(&mut r, &mut &s);
            });
        }
    });
    let proxy = Proxy::start(&upstream);
    let connect = || {
        let s = TcpStream::connect(proxy.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        s
    };
    let round_trip = |s: &mut TcpStream| {
        s.write_all(b"ping").unwrap();
        let mut got = [0u8; 4];
        s.read_exact(&mut got).map(|()| got)
    };
    let mut s = connect();
    assert_eq!(round_trip(&mut s).unwrap(), *b"ping");
    proxy.set(Mode::Delay(Duration::from_millis(10)));
    assert_eq!(round_trip(&mut s).unwrap(), *b"ping");
    proxy.set(Mode::BlackHole);
    let hung = round_trip(&mut s).unwrap_err();
    assert!(
        matches!(hung.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{hung}"
    );

    proxy.set(Mode::Pass);
    let mut s = connect();
    let fired = proxy.when_sent("drop-me", Mode::Drop);
    s.write_all(b"drop-me").unwrap();
    fired.recv_timeout(Duration::from_secs(5)).unwrap();
    let mut rest = Vec::new();
    assert_eq!(s.read_to_end(&mut rest).unwrap(), 0, "closed with FIN");

    proxy.set(Mode::Pass);
    let mut s = connect();
    assert_eq!(round_trip(&mut s).unwrap(), *b"ping");
    proxy.set(Mode::Reset);
    let reset = round_trip(&mut s).unwrap_err();
    assert_eq!(reset.kind(), ErrorKind::ConnectionReset, "{reset}");
}
