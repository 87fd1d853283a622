//! Helpers shared by the integration tests: the real binary, a data directory, a server process.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use e2ee_backup_vault::Endpoint;
use e2ee_backup_vault_server::client::{self, HttpVault};
use e2ee_backup_vault_server::files::{
    CONFIG_FILE, ConfigFile, FleetPin, PIN_FILE, replica_dir, unix_now,
};

/// The fleet launcher of `e2ee-backup-vault cluster`, compiled from the binary's source.
#[path = "../../src/bin/e2ee-backup-vault/cluster.rs"]
pub mod cluster;

pub const BIN: &str = env!("CARGO_BIN_EXE_e2ee-backup-vault");

/// `e2ee-backup-vault init` with the fast profile and `budget`.
pub fn init_dir(dir: &Path, fleet_id: &str, budget: u8) {
    let output = Command::new(BIN)
        .args(["init", "--data-dir"])
        .arg(dir)
        .args(["--fleet-id", fleet_id, "--ksf", "fast", "--budget", &budget.to_string()])
        .output()
        .expect("the binary runs");
    assert!(output.status.success(), "init failed: {}", String::from_utf8_lossy(&output.stderr));
}

/// A `serve` process on 127.0.0.1:0; killed (SIGKILL) when dropped if still running.
pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Served {
    pub fn start(dir: &Path, log_name: &str) -> Self {
        Self::start_listening(dir, log_name, "127.0.0.1:0")
    }

    /// Restarts on a known address (after a kill, the port is free again).
    pub fn start_at(dir: &Path, log_name: &str, addr: SocketAddr) -> Self {
        Self::start_listening(dir, log_name, &addr.to_string())
    }

    fn start_listening(dir: &Path, log_name: &str, listen: &str) -> Self {
        let log = dir.join(log_name);
        let log_file = std::fs::File::create(&log).unwrap();
        let mut child = Command::new(BIN)
            .args(["serve", "--data-dir"])
            .arg(dir)
            .args(["--listen", listen])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("the binary starts");
        let mut line = String::new();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        stdout.read_line(&mut line).unwrap();
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            panic!("serve did not start: {line:?}\n{}", std::fs::read_to_string(&log).unwrap());
        };
        let addr = addr.parse().expect("a socket address");
        Self { child, addr, log }
    }

    pub fn http(&self) -> HttpVault {
        HttpVault::at(self.addr)
    }

    /// SIGKILL: no chance to flush or clean up anything.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits; returns whether the process exited successfully.
    pub fn terminate(mut self) -> bool {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        self.child.wait().unwrap().success()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Fetches the bundle over HTTP, verifies it against the data directory's pin, and builds an
/// endpoint that accepts the fast profile.
pub fn endpoint(http: &mut HttpVault, dir: &Path) -> Endpoint {
    let pin = FleetPin::read(&dir.join(PIN_FILE)).unwrap();
    let bundle = client::fetch_bundle(http, &pin.0, unix_now(), None).unwrap();
    Endpoint::from_bundle(&bundle).unwrap().accepting_fast_ksf()
}

/// A loopback address with a free port for a replica to listen on later.
///
/// A port the kernel gives out for `bind(0)` is released at once and can be handed to the next
/// `bind(0)` or outgoing connection of any test running meanwhile (a relay, a client), which
/// made a replica fail to start now and then. So the ports come from below the kernel's
/// ephemeral range (32768 and up on Linux), which it never assigns on its own: a start that
/// depends on the process id spreads test binaries apart, and a counter keeps the choices of
/// one test binary (whose tests run in parallel threads) apart from each other.
pub fn free_loopback() -> SocketAddr {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    for _ in 0..SPAN {
        let port = FIRST + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % SPAN;
        let addr = SocketAddr::from(([127, 0, 0, 1], port as u16));
        if std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
    panic!("no free loopback port between {FIRST} and {}", FIRST + SPAN)
}

/// Rewrites the configurations of the replicas of fleet directory `dir` (made by `init`):
/// replica `i` listens for clients on `apis[i]` and for peers on `peer_listen[i]`, and every
/// member `j` is announced at `apis[j]` and `announced_peers[j]` (a relay or a proxy in front of
/// its peer listener, or the listener itself).
pub fn place_replicas(
    dir: &Path,
    apis: &[SocketAddr],
    peer_listen: &[SocketAddr],
    announced_peers: &[SocketAddr],
) {
    for (i, (api, peer)) in apis.iter().zip(peer_listen).enumerate() {
        let path = replica_dir(dir, i as u64 + 1).join(CONFIG_FILE);
        let mut config = ConfigFile::read(&path).expect("the configuration");
        config.listen = *api;
        let replica = config.replica.as_mut().expect("a [replica] section");
        replica.peer_listen = *peer;
        for member in &mut replica.members {
            let j = (member.id - 1) as usize;
            member.api = apis[j].to_string();
            member.peer = announced_peers[j].to_string();
        }
        std::fs::write(&path, config.render()).expect("the configuration is written");
    }
}

/// `init` of a fleet of `apis.len()` replicas in `dir` (fast profile, `budget`), replica 1 on
/// `apis[0]` and `peers[0]`; place the others with [`place_replicas`].
pub fn init_fleet(
    dir: &Path,
    fleet_id: &str,
    budget: u8,
    apis: &[SocketAddr],
    peers: &[SocketAddr],
) {
    let options = e2ee_backup_vault_server::InitOptions {
        replicas: apis.len() as u8,
        ksf: e2ee_backup_vault_server::KsfName::Fast,
        budget,
        listen: apis[0],
        peer_listen: peers[0],
        ..e2ee_backup_vault_server::InitOptions::new(dir, fleet_id)
    };
    e2ee_backup_vault_server::init(&options).expect("init");
}
