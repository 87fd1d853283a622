//! Starving the server of connections, descriptors or memory, against the real binary (issue 10
//! finding 6, spec sections 4.15 and 7.7).
//!
//! - `stalled_requests_are_dropped_and_others_served`: 500 connections (from ten loopback
//!   sources, under the per-source cap) each send half a request head and stall, and 20 more
//!   send a head and a few bytes of a declared 8000-byte body; a legitimate client registers and
//!   logs in meanwhile, and the server closes every stalled connection within its header or body
//!   timeout (10 s each by default; the test allows 30 s).
//! - `idle_connections_cannot_exhaust_descriptors`: a server that may open 1024 files (the usual
//!   default soft limit; the test sets it with `ulimit -n` for the server only) gets 1124 idle
//!   connections from 127.0.0.1; a legitimate client at 127.0.0.2 still registers and logs in,
//!   and the server never holds more descriptors than its limit allows.
//! - `slow_peer_uploads_do_not_grow_memory`: eight connections to a replica's peer port, from
//!   eight sources, each declare the largest body (64 MiB), send 56 MiB and stall; the replica's
//!   resident memory grows by less than 256 MiB (without the body budget: 8 × 56 MiB), and the
//!   fleet still serves.
//!
//! Timings are never pass criteria except as generous upper bounds.
//!
//! `STARVATION_SERVER_BIN=/path/to/e2ee-backup-vault` runs the servers from another build (the
//! tests were checked to fail against the server built before these limits existed).

mod common;

use e2ee_backup_vault::{AccountId, Endpoint};
use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::cluster::FleetProcesses;
use common::{BIN, endpoint, free_loopback, init_dir, place_replicas};
use e2ee_backup_kdf::BackupKey;
use e2ee_backup_vault_server::client::{self, HttpVault};
use e2ee_backup_vault_server::files::{FleetPin, PIN_FILE, unix_now};
use e2ee_backup_vault_server::limits::Limits;
use e2ee_backup_vault_server::{InitOptions, KsfName};

/// The server binary: this build's, unless `STARVATION_SERVER_BIN` names another.
fn server_bin() -> PathBuf {
    std::env::var_os("STARVATION_SERVER_BIN").map_or_else(|| PathBuf::from(BIN), PathBuf::from)
}

const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long past its timeout the server may take to close a stalled connection.
const CLOSE_SLACK: Duration = Duration::from_secs(20);

fn loopback(a: u8, b: u8, c: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, a, b, c))
}

/// A TCP connection to `to` from the local address `from`.
fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(from, 0).into())?;
    socket.connect_timeout(&to.into(), Duration::from_secs(10))?;
    Ok(socket.into())
}

/// Registers and logs in `account` from `source`.
fn journey(addr: SocketAddr, source: IpAddr, endpoint: &Endpoint, account: &[u8]) {
    let mut http = HttpVault::at(addr).with_timeout(CLIENT_TIMEOUT).with_source(source);
    let key = BackupKey::generate();
    let granted = client::register(
        &mut http,
        endpoint,
        AccountId::new(account).unwrap(),
        b"a password",
        &key,
    )
    .expect("the legitimate client registers");
    assert!(granted > 0);
    let session =
        client::login(&mut http, endpoint, AccountId::new(account).unwrap(), b"a password")
            .expect("and logs in");
    assert_eq!(session.key(), &key);
}

/// Waits until the server closes `stream` (end of file or reset, whatever it sent before), or
/// `deadline` passes; whether it closed.
fn closed_by(mut stream: &TcpStream, deadline: Instant) -> bool {
    let mut buffer = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// The tests here open hundreds of connections (each takes an ephemeral port) while others
/// pick free ports for their servers: run one at a time, so that no test's client socket takes
/// the port another test just chose for a listener.
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn stalled_requests_are_dropped_and_others_served() {
    let _alone = one_at_a_time();
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), "starvation.fleet", 5);
    let (mut child, addr) = serve(dir.path(), None);
    let served = Killed(&mut child);
    let endpoint = endpoint(&mut HttpVault::at(addr), dir.path());

    let started = Instant::now();
    let mut stalled = Vec::new();
    for i in 0..500 {
        let mut stream = connect_from(loopback(0, 2, 1 + (i % 10) as u8), addr).unwrap();
        // Half a head, never finished.
        stream.write_all(b"POST /v1/vault/0102 HTTP/1.1\r\nHost: vault\r\nContent-Le").unwrap();
        stalled.push(stream);
    }
    let mut slow_bodies = Vec::new();
    for _ in 0..20 {
        let mut stream = connect_from(loopback(0, 2, 11), addr).unwrap();
        let head = "POST /v1/vault/0102 HTTP/1.1\r\nHost: vault\r\nContent-Type: \
                    application/octet-stream\r\nContent-Length: 8000\r\n\r\n0123456789";
        stream.write_all(head.as_bytes()).unwrap();
        slow_bodies.push(stream);
    }

    // A legitimate client is served while they are open.
    let journey_started = Instant::now();
    journey(addr, loopback(0, 0, 1), &endpoint, b"legitimate");
    eprintln!("the legitimate journey took {:?}", journey_started.elapsed());

    let limits = Limits::DEFAULT;
    let deadline = started + Duration::from_secs(limits.header_timeout_secs) + CLOSE_SLACK;
    let open = stalled.iter().filter(|s| !closed_by(s, deadline)).count();
    eprintln!("stalled heads closed within {:?}", started.elapsed());
    assert_eq!(open, 0, "stalled heads still open {:?} after they started", started.elapsed());
    let deadline = started + Duration::from_secs(limits.body_timeout_secs) + CLOSE_SLACK;
    let open = slow_bodies.iter().filter(|s| !closed_by(s, deadline)).count();
    assert_eq!(open, 0, "slow bodies still open {:?} after they started", started.elapsed());
    eprintln!("all stalled connections closed within {:?}", started.elapsed());

    // And the server still serves.
    journey(addr, loopback(0, 0, 1), &endpoint, b"afterwards");
    drop(served);
}

/// Kills a server process when dropped (also when an assertion fails).
struct Killed<'a>(&'a mut Child);

impl Drop for Killed<'_> {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The soft limit on open files of process `pid`.
fn open_files_limit(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    line["Max open files".len()..].split_whitespace().next().unwrap().parse().unwrap()
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// `serve` on 127.0.0.1:0, with a soft limit of `files` open files if given (set by the shell,
/// for the server only).
fn serve(dir: &Path, files: Option<u64>) -> (Child, SocketAddr) {
    let log = std::fs::File::create(dir.join("serve.log")).unwrap();
    let ulimit = files.map(|files| format!("ulimit -S -n {files} && ")).unwrap_or_default();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("{ulimit}exec \"$0\" \"$@\""))
        .arg(server_bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let addr = line.trim().strip_prefix("listening on ").expect("serve starts").parse().unwrap();
    (child, addr)
}

#[test]
fn idle_connections_cannot_exhaust_descriptors() {
    let _alone = one_at_a_time();
    let own_limit = open_files_limit(std::process::id());
    // The server gets the usual default of 1024 unless this process may not open enough
    // connections to exceed that; then it gets half of what this process may open.
    let server_files = if own_limit >= 1024 + 300 { 1024 } else { own_limit / 2 };
    let idle = server_files as usize + 100;
    eprintln!("server limit {server_files} files, {idle} idle connections (own limit {own_limit})");

    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), "idle.fleet", 5);
    let (mut child, addr) = serve(dir.path(), Some(server_files));
    assert_eq!(open_files_limit(child.id()), server_files);
    let endpoint = endpoint(&mut HttpVault::at(addr).with_timeout(CLIENT_TIMEOUT), dir.path());

    let mut held = Vec::new();
    let mut most_files = 0;
    for _ in 0..idle {
        match connect_from(loopback(0, 0, 1), addr) {
            Ok(stream) => held.push(stream),
            Err(e) => eprintln!("connect: {e}"),
        }
        most_files = most_files.max(open_files(child.id()));
    }
    assert!(held.len() >= idle - 10, "only {} idle connections opened", held.len());
    std::thread::sleep(Duration::from_millis(500));
    most_files = most_files.max(open_files(child.id()));

    // From another source, a legitimate client is served while they are open.
    let result = std::panic::catch_unwind(|| journey(addr, loopback(0, 0, 2), &endpoint, b"b"));
    most_files = most_files.max(open_files(child.id()));
    let alive = matches!(child.try_wait(), Ok(None));
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default();
    assert!(result.is_ok(), "the legitimate client was not served");
    assert!(alive, "the server died");
    assert!(most_files < server_files as usize, "the server held {most_files} files");
    assert!(!log.contains("Too many open files"), "the server ran out of descriptors");
    eprintln!("the server held at most {most_files} files");
    drop(held);
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line["VmRSS:".len()..].split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn slow_peer_uploads_do_not_grow_memory() {
    let _alone = one_at_a_time();
    const DECLARED: usize = 64 * 1024 * 1024;
    const SENT_MIB: usize = 56;
    const UPLOADS: u8 = 8;

    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("fleet");
    let options = InitOptions {
        replicas: 3,
        ksf: KsfName::Fast,
        budget: 5,
        ..InitOptions::new(&dir, "peer-memory.fleet")
    };
    e2ee_backup_vault_server::init(&options).unwrap();
    let apis: Vec<SocketAddr> = (0..3).map(|_| free_loopback()).collect();
    let peers: Vec<SocketAddr> = (0..3).map(|_| free_loopback()).collect();
    place_replicas(&dir, &apis, &peers, &peers);
    let procs = FleetProcesses::start(&server_bin(), &dir, 3).unwrap();
    let leader = procs.wait_for_leader(Duration::from_secs(30)).unwrap();
    // A follower's peer port: the one attacked.
    let target = (leader + 1) % 3;
    let pid = procs.pids()[target];
    let peer = peers[target];
    std::thread::sleep(Duration::from_secs(1));
    let before = resident_kib(pid);

    let uploads: Vec<_> = (0..UPLOADS)
        .map(|i| {
            std::thread::spawn(move || {
                let Ok(mut stream) = connect_from(loopback(0, 3, 1 + i), peer) else {
                    return None;
                };
                stream.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
                let head = format!(
                    "POST /raft/append HTTP/1.1\r\nHost: peer\r\nContent-Length: {DECLARED}\r\n\r\n"
                );
                let chunk = vec![0x5a_u8; 1024 * 1024];
                let mut sent = stream.write_all(head.as_bytes()).map(|_| 0);
                for _ in 0..SENT_MIB {
                    sent = sent.and_then(|n| stream.write_all(&chunk).map(|_| n + 1));
                }
                // Stalls with the connection open until the test ends.
                Some((stream, sent.ok()))
            })
        })
        .collect();
    let mut streams = Vec::new();
    let mut most = before;
    for upload in uploads {
        let outcome = upload.join().unwrap();
        most = most.max(resident_kib(pid));
        if let Some((stream, sent)) = outcome {
            eprintln!("upload: {sent:?} MiB written");
            streams.push(stream);
        }
    }
    let sample_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < sample_until {
        most = most.max(resident_kib(pid));
        std::thread::sleep(Duration::from_millis(50));
    }
    let grown_mib = most.saturating_sub(before) / 1024;
    eprintln!("replica resident memory: {} MiB before, {} MiB at most", before / 1024, most / 1024);
    assert!(grown_mib < 256, "the replica grew by {grown_mib} MiB");

    // The fleet still serves, through the attacked replica as well.
    let pin = FleetPin::read(&dir.join(PIN_FILE)).unwrap();
    let mut http = HttpVault::at(apis[target]).with_timeout(CLIENT_TIMEOUT);
    let bundle = client::fetch_bundle(&mut http, &pin.0, unix_now(), None).unwrap();
    let endpoint = Endpoint::from_bundle(&bundle).unwrap().accepting_fast_ksf();
    let leader = procs.wait_for_leader(Duration::from_secs(30)).unwrap();
    journey(apis[leader], loopback(0, 0, 1), &endpoint, b"after the uploads");
    drop(streams);
}
