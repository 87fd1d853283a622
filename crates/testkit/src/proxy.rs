//! A fault-injecting TCP proxy for process-level tests on loopback: test tooling, which no
//! section of the spec describes.
//!
//! [`Proxy::start`] listens on `127.0.0.1` and forwards each connection to a target. Its
//! [`Mode`] can be switched at any time to cut or stall traffic, simulating network partitions
//! between a client and a real server process.
//!
//! Independently of the mode, connections can be refused by source address
//! ([`Proxy::block_sources`]): with one proxy in front of each server of a fleet, and each server
//! connecting from its own loopback address (`127.0.0.11`, `127.0.0.12`, ...), blocking sources
//! cuts chosen links only, e.g. to isolate one server from the others.
//!
//! Each connection uses two threads that poll with short timeouts; dropping the [`Proxy`] closes
//! the listener and every connection, and all its threads end within a few tens of
//! milliseconds.

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How often idle threads look at the mode and the stop flag.
const POLL: Duration = Duration::from_millis(10);
/// Read and write timeout on proxied sockets, so pumps notice mode changes.
const IO_TIMEOUT: Duration = Duration::from_millis(20);
/// How long to wait for the target to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Forward bytes both ways (the initial mode).
    #[default]
    Pass,
    /// A partition that fails fast: live connections are closed at once and new ones are
    /// accepted and closed immediately, without contacting the target.
    Drop,
    /// A partition that hangs, like packets dropped on the floor: new connections are accepted
    /// (the kernel completes the handshake) but never answered, and live connections stop
    /// forwarding. Nothing is lost: switching back to [`Mode::Pass`] resumes them, and
    /// connections accepted meanwhile then reach the target.
    Blackhole,
}

impl Mode {
    fn from_u8(v: u8) -> Mode {
        match v {
            1 => Mode::Drop,
            2 => Mode::Blackhole,
            _ => Mode::Pass,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Mode::Pass => 0,
            Mode::Drop => 1,
            Mode::Blackhole => 2,
        }
    }
}

/// A running proxy from [`Proxy::addr`] to a target address. Dropping it stops it.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    target: SocketAddr,
    mode: AtomicU8,
    /// Set when the proxy is dropped.
    stop: AtomicBool,
    /// Bumped (under the `conns` lock) whenever all live connections are cut; a connection
    /// remembers the value it started under and ends when it changes.
    cuts: AtomicU64,
    conns: Mutex<Conns>,
    /// Background threads still running (for tests).
    threads: AtomicUsize,
}

#[derive(Debug, Default)]
struct Conns {
    next_id: u64,
    /// The live connections, to shut them down from outside.
    live: HashMap<u64, Live>,
    /// Source addresses whose connections are refused.
    blocked: HashSet<IpAddr>,
}

/// One live connection as seen from outside its threads.
#[derive(Debug)]
struct Live {
    /// The client's address.
    source: IpAddr,
    /// Set (under the `conns` lock) when this connection alone is cut.
    cut: Arc<AtomicBool>,
    /// Handles to its sockets.
    streams: Vec<TcpStream>,
}

impl Live {
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for stream in &self.streams {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Shared {
    fn mode(&self) -> Mode {
        Mode::from_u8(self.mode.load(Ordering::SeqCst))
    }

    fn conns(&self) -> MutexGuard<'_, Conns> {
        self.conns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Shuts down every live connection; the caller holds the `conns` lock.
    fn cut_all(&self, conns: &mut Conns) {
        self.cuts.fetch_add(1, Ordering::SeqCst);
        for live in conns.live.values() {
            live.cut();
        }
    }
}

/// Spawns a counted background thread.
fn spawn(shared: &Arc<Shared>, f: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    struct Count(Arc<Shared>);
    impl Drop for Count {
        fn drop(&mut self) {
            self.0.threads.fetch_sub(1, Ordering::SeqCst);
        }
    }
    shared.threads.fetch_add(1, Ordering::SeqCst);
    let count = Count(shared.clone());
    thread::Builder::new().name("testkit-proxy".into()).spawn(move || {
        let _count = count;
        f();
    })
}

impl Proxy {
    /// Starts a proxy on `127.0.0.1` (on a free port) forwarding to `target`, in [`Mode::Pass`].
    pub fn start(target: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            target,
            mode: AtomicU8::new(Mode::Pass.to_u8()),
            stop: AtomicBool::new(false),
            cuts: AtomicU64::new(0),
            conns: Mutex::new(Conns::default()),
            threads: AtomicUsize::new(0),
        });
        let acceptor = {
            let shared2 = shared.clone();
            spawn(&shared, move || accept_loop(&shared2, listener))?
        };
        Ok(Proxy { addr, shared, acceptor: Some(acceptor) })
    }

    /// The address clients should connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address traffic is forwarded to.
    pub fn target(&self) -> SocketAddr {
        self.shared.target
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.shared.mode()
    }

    /// Switches the mode; it applies to live connections too. Switching to [`Mode::Drop`]
    /// closes every live connection before returning.
    pub fn set_mode(&self, mode: Mode) {
        let mut conns = self.shared.conns();
        self.shared.mode.store(mode.to_u8(), Ordering::SeqCst);
        if mode == Mode::Drop {
            self.shared.cut_all(&mut conns);
        }
    }

    /// Refuses connections from `sources` (in addition to those already blocked): live ones
    /// from these addresses are closed before this returns, new ones are accepted and closed at
    /// once without contacting the target. Independent of the [`Mode`].
    pub fn block_sources(&self, sources: &[IpAddr]) {
        let mut conns = self.shared.conns();
        conns.blocked.extend(sources.iter().copied());
        cut_blocked(&mut conns);
    }

    /// Blocks exactly the addresses of `blocked` (closing live connections from them) and
    /// unblocks all others.
    pub fn set_blocked(&self, blocked: HashSet<IpAddr>) {
        let mut conns = self.shared.conns();
        conns.blocked = blocked;
        cut_blocked(&mut conns);
    }

    /// Accepts connections from every source again.
    pub fn unblock_all(&self) {
        self.shared.conns().blocked.clear();
    }

    /// The blocked source addresses.
    pub fn blocked(&self) -> HashSet<IpAddr> {
        self.shared.conns().blocked.clone()
    }

    /// The number of connections currently open through the proxy.
    pub fn connections(&self) -> usize {
        self.shared.conns().live.len()
    }
}

/// Closes the live connections whose source is blocked; the caller holds the `conns` lock.
fn cut_blocked(conns: &mut Conns) {
    for live in conns.live.values().filter(|l| conns.blocked.contains(&l.source)) {
        live.cut();
    }
}

impl Drop for Proxy {
    /// Closes the listener and every connection; the proxy's threads end shortly after.
    fn drop(&mut self) {
        {
            let mut conns = self.shared.conns();
            self.shared.stop.store(true, Ordering::SeqCst);
            self.shared.cut_all(&mut conns);
        }
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: TcpListener) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, peer)) => admit(shared, client, peer.ip()),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            // WouldBlock, or a transient failure such as running out of descriptors.
            Err(_) => thread::sleep(POLL),
        }
    }
}

/// Registers a new client connection and starts its thread, or closes it in [`Mode::Drop`] or
/// when its source is blocked.
fn admit(shared: &Arc<Shared>, client: TcpStream, source: IpAddr) {
    let registered = (|| {
        client.set_nonblocking(false)?;
        let _ = client.set_nodelay(true);
        let handle = client.try_clone()?;
        let mut conns = shared.conns();
        if shared.stop.load(Ordering::SeqCst)
            || shared.mode() == Mode::Drop
            || conns.blocked.contains(&source)
        {
            return Ok(None);
        }
        let id = conns.next_id;
        conns.next_id += 1;
        let cut = Arc::new(AtomicBool::new(false));
        conns.live.insert(id, Live { source, cut: cut.clone(), streams: vec![handle] });
        Ok::<_, io::Error>(Some((id, shared.cuts.load(Ordering::SeqCst), cut)))
    })();
    let Ok(Some((id, epoch, cut))) = registered else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let conn = Arc::new(Conn { id, epoch, cut, shared: shared.clone() });
    let _ = spawn(shared, move || connect(conn, client));
}

/// One proxied connection; dropped when both directions are done, which unregisters it.
struct Conn {
    id: u64,
    /// The cut count it started under.
    epoch: u64,
    /// Set when this connection alone is cut (its source was blocked).
    cut: Arc<AtomicBool>,
    shared: Arc<Shared>,
}

impl Conn {
    /// Whether the connection must end now: the proxy stops, every connection was cut since
    /// it started, or this one was.
    fn is_cut(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst)
            || self.shared.cuts.load(Ordering::SeqCst) != self.epoch
            || self.cut.load(Ordering::SeqCst)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(live) = self.shared.conns().live.remove(&self.id) {
            live.cut();
        }
    }
}

/// Waits out a blackhole, connects to the target and pumps both ways.
fn connect(conn: Arc<Conn>, client: TcpStream) {
    let shared = &conn.shared;
    loop {
        if conn.is_cut() {
            return;
        }
        if shared.mode() == Mode::Pass {
            break;
        }
        thread::sleep(POLL);
    }
    let Ok(server) = TcpStream::connect_timeout(&shared.target, CONNECT_TIMEOUT) else {
        return;
    };
    let _ = server.set_nodelay(true);
    let handles =
        (|| Ok::<_, io::Error>((server.try_clone()?, client.try_clone()?, server.try_clone()?)))();
    let Ok((handle, client2, server2)) = handles else {
        return;
    };
    {
        let mut conns = shared.conns();
        if conn.is_cut() {
            return;
        }
        if let Some(live) = conns.live.get_mut(&conn.id) {
            live.streams.push(handle);
        }
    }
    let back = conn.clone();
    if spawn(shared, move || pump(&back, server2, client2)).is_err() {
        return;
    }
    pump(&conn, client, server);
}

/// Copies `from` to `to` until EOF, an error, or a cut; pauses while in [`Mode::Blackhole`].
fn pump(conn: &Conn, mut from: TcpStream, mut to: TcpStream) {
    let shared = &conn.shared;
    let _ = from.set_read_timeout(Some(IO_TIMEOUT));
    let _ = to.set_write_timeout(Some(IO_TIMEOUT));
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if conn.is_cut() {
            break;
        }
        if shared.mode() != Mode::Pass {
            thread::sleep(POLL);
            continue;
        }
        match from.read(&mut buf) {
            Ok(0) => {
                // Pass the half-close on; the other direction may still carry data.
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if write_fully(conn, &mut to, &buf[..n]).is_err() {
                    break;
                }
            }
            Err(err) if is_timeout(&err) => {}
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// Writes all of `data`, retrying on timeouts and holding it while in [`Mode::Blackhole`].
fn write_fully(conn: &Conn, to: &mut TcpStream, mut data: &[u8]) -> io::Result<()> {
    let shared = &conn.shared;
    while !data.is_empty() {
        if conn.is_cut() {
            return Err(io::Error::other("connection cut"));
        }
        if shared.mode() != Mode::Pass {
            thread::sleep(POLL);
            continue;
        }
        match to.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(err) if is_timeout(&err) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::io::{self, BufRead, BufReader, Read, Write};
    use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
    use std::sync::atomic::Ordering;
    use std::thread;
    use std::time::{Duration, Instant};

    use super::{Mode, Proxy};

    /// A line echo server on loopback, running until the test process ends.
    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                thread::spawn(move || {
                    let _ = io::copy(&mut &stream, &mut &stream);
                });
            }
        });
        addr
    }

    fn client(proxy: &Proxy) -> BufReader<TcpStream> {
        let stream = TcpStream::connect(proxy.addr()).unwrap();
        stream.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        BufReader::new(stream)
    }

    /// Sends a line and reads the answer line.
    fn echo(conn: &mut BufReader<TcpStream>, line: &str) -> io::Result<String> {
        conn.get_mut().write_all(format!("{line}\n").as_bytes())?;
        let mut answer = String::new();
        if conn.read_line(&mut answer)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(answer.trim_end().to_owned())
    }

    /// Whether reading from `conn` ends with EOF or a reset (not a timeout), and how fast.
    fn reads_closed(conn: &mut BufReader<TcpStream>) -> (bool, Duration) {
        let start = Instant::now();
        let mut byte = [0u8; 1];
        let closed = match conn.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(err) => !matches!(err.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut),
        };
        (closed, start.elapsed())
    }

    fn is_timeout(result: &io::Result<String>) -> bool {
        matches!(result, Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut))
    }

    #[test]
    fn pass_drop_blackhole_pass() {
        let proxy = Proxy::start(echo_server()).unwrap();
        assert_eq!(proxy.mode(), Mode::Pass);
        let mut a = client(&proxy);
        assert_eq!(echo(&mut a, "hello").unwrap(), "hello");

        // Drop: the live connection is closed, a new one too.
        proxy.set_mode(Mode::Drop);
        let (closed, took) = reads_closed(&mut a);
        assert!(closed && took < Duration::from_millis(100), "live: {closed} after {took:?}");
        let (closed, took) = reads_closed(&mut client(&proxy));
        assert!(closed && took < Duration::from_millis(100), "new: {closed} after {took:?}");

        // Pass again, then Blackhole: a live connection and a new one both hang.
        proxy.set_mode(Mode::Pass);
        let mut b = client(&proxy);
        assert_eq!(echo(&mut b, "again").unwrap(), "again");
        proxy.set_mode(Mode::Blackhole);
        assert!(is_timeout(&echo(&mut b, "lost")));
        let mut c = client(&proxy);
        assert!(is_timeout(&echo(&mut c, "unanswered")));

        // Pass: new connections work; the stalled ones resume where they were.
        proxy.set_mode(Mode::Pass);
        assert_eq!(echo(&mut client(&proxy), "healed").unwrap(), "healed");
        assert_eq!(echo(&mut c, "resumed").unwrap(), "unanswered");
    }

    #[test]
    fn dropping_the_proxy_closes_everything_and_ends_its_threads() {
        let proxy = Proxy::start(echo_server()).unwrap();
        let addr = proxy.addr();
        let mut a = client(&proxy);
        assert_eq!(echo(&mut a, "x").unwrap(), "x");
        let mut stalled = client(&proxy);
        proxy.set_mode(Mode::Blackhole);
        let mut waiting = client(&proxy);
        thread::sleep(Duration::from_millis(50));
        assert_eq!(proxy.connections(), 3);

        let shared = proxy.shared.clone();
        assert!(shared.threads.load(Ordering::SeqCst) >= 4);
        drop(proxy);
        let start = Instant::now();
        while shared.threads.load(Ordering::SeqCst) > 0 {
            assert!(start.elapsed() < Duration::from_millis(200), "proxy threads still running");
            thread::sleep(Duration::from_millis(5));
        }
        for conn in [&mut a, &mut stalled, &mut waiting] {
            assert!(reads_closed(conn).0);
        }
        assert!(TcpStream::connect(addr).is_err(), "the listener is closed");
    }

    #[test]
    fn large_transfers_pass_intact() {
        let proxy = Proxy::start(echo_server()).unwrap();
        let stream = TcpStream::connect(proxy.addr()).unwrap();
        let data: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let mut writer = stream.try_clone().unwrap();
        let sender = thread::spawn(move || {
            writer.write_all(&sent).unwrap();
            writer.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let mut back = Vec::new();
        (&stream).read_to_end(&mut back).unwrap();
        sender.join().unwrap();
        assert!(back == data, "echoed {} of {} bytes", back.len(), data.len());
    }

    #[test]
    fn blocked_sources_are_cut_and_refused_whatever_the_mode() {
        let proxy = Proxy::start(echo_server()).unwrap();
        let local: IpAddr = Ipv4Addr::LOCALHOST.into();
        let other: IpAddr = Ipv4Addr::new(127, 0, 0, 2).into();
        let mut a = client(&proxy);
        assert_eq!(echo(&mut a, "before").unwrap(), "before");

        // Blocking another source leaves this one alone, live and new connections alike.
        proxy.block_sources(&[other]);
        assert_eq!(proxy.blocked(), HashSet::from([other]));
        assert_eq!(echo(&mut a, "still").unwrap(), "still");
        assert_eq!(echo(&mut client(&proxy), "new").unwrap(), "new");

        // Blocking this source (the clients here all connect from 127.0.0.1) closes the live
        // connection at once, and new ones, even in Pass mode.
        let mut stalled = client(&proxy);
        assert_eq!(echo(&mut stalled, "x").unwrap(), "x");
        proxy.set_mode(Mode::Blackhole);
        proxy.block_sources(&[local]);
        assert_eq!(proxy.blocked(), HashSet::from([other, local]));
        for conn in [&mut a, &mut stalled] {
            let (closed, took) = reads_closed(conn);
            assert!(closed && took < Duration::from_millis(100), "live: {closed} after {took:?}");
        }
        proxy.set_mode(Mode::Pass);
        let (closed, took) = reads_closed(&mut client(&proxy));
        assert!(closed && took < Duration::from_millis(100), "new: {closed} after {took:?}");
        thread::sleep(Duration::from_millis(50));
        assert_eq!(proxy.connections(), 0);

        // Unblocked, the source gets through again.
        proxy.unblock_all();
        assert!(proxy.blocked().is_empty());
        assert_eq!(echo(&mut client(&proxy), "healed").unwrap(), "healed");

        // set_blocked replaces the set: cut again, then a set without it lets it through.
        let mut b = client(&proxy);
        assert_eq!(echo(&mut b, "b").unwrap(), "b");
        proxy.set_blocked(HashSet::from([local]));
        assert!(reads_closed(&mut b).0);
        proxy.set_blocked(HashSet::from([other]));
        assert_eq!(echo(&mut client(&proxy), "again").unwrap(), "again");
    }

    #[test]
    fn an_unreachable_target_closes_the_client() {
        let dead = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap();
        let proxy = Proxy::start(dead).unwrap();
        assert_eq!(proxy.target(), dead);
        assert!(reads_closed(&mut client(&proxy)).0);
    }
}
