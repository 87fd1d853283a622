//! A replicated fleet of three real `e2ee-backup-vault serve` processes on loopback, under
//! faults: SIGKILL of the leader and of a follower (then restarts), SIGSTOP/SIGCONT of the
//! leader, a network partition isolating the leader, and finally all three replicas killed and
//! restarted, while attackers keep guessing passwords through random replicas.
//!
//! Each replica sends its peer traffic from its own loopback address (127.0.0.11, .12, .13) and
//! a `testkit` proxy sits in front of each replica's peer listener, so that source filtering on
//! the proxies partitions the fleet.
//!
//! Invariants: the attackers never get more KE2s for an account than its budget (each KE2's
//! `remaining` is distinct: no charge is spent twice), the account ends locked and stays locked
//! through a full restart, the honest account logs in with its password and gets back the key it
//! registered, and every acknowledged registration survives.

mod common;

use e2ee_backup_vault::{AccountId, ClientError, Endpoint, LoggedIn, Login};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use common::cluster::{FleetProcesses, Signal};
use e2ee_backup_kdf::BackupKey;
use e2ee_backup_testkit::proxy::Proxy;
use e2ee_backup_vault_server::client::{self, HttpError, HttpVault, JourneyError};
use e2ee_backup_vault_server::files::unix_now;
use e2ee_backup_vault_server::files::{CONFIG_FILE, ConfigFile, FleetPin, PIN_FILE, replica_dir};
use e2ee_backup_vault_server::{InitOptions, KsfName};
use rand_core::{OsRng, RngCore as _};

/// Set this variable to keep the fleet directory (configurations, stores, `serve.log`s).
const KEEP_ENV: &str = "E2EE_KEEP_FLEET_DIR";
const EXE: &str = env!("CARGO_BIN_EXE_e2ee-backup-vault");
const REPLICAS: usize = 3;
const BUDGET: u8 = 4;
/// Seconds a login ticket lives after KE2: charged attempts end (and the account locks) within
/// the test.
const SESSION_LIFETIME: u64 = 3;
/// Client timeout: above the server's commit timeout (5 s) plus its forwarding timeout (15 s),
/// so that a stalled request comes back as a 503 rather than as a client time-out (after which
/// a KE2 could have been sent without being counted).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(25);

/// Applied entries between snapshots (a run applies a few hundred).
const SNAPSHOT_AFTER: u64 = 40;

const HONEST: &[u8] = b"honest";
const HONEST_PASSWORD: &[u8] = b"correct horse battery staple";
/// Guessed slowly, so that its budget is spent across the faults.
const VICTIM: &[u8] = b"victim";
/// Guessed as fast as a thread can, so that it is locked early and must stay locked.
const HAMMERED: &[u8] = b"hammered";
/// Guessed as fast as two threads can from just before the leader is killed: charges in flight
/// when it dies.
const VICTIM_KILL: &[u8] = b"victim-kill";
/// Guessed as fast as two threads can while the leader is isolated: the isolated leader must not
/// release a KE2 on its own.
const VICTIM_PARTITION: &[u8] = b"victim-partition";
const VICTIMS: [&[u8]; 4] = [VICTIM, HAMMERED, VICTIM_KILL, VICTIM_PARTITION];

fn secs(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

/// The peer address (source of its outbound peer connections) of the replica at `position`.
fn peer_ip(position: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11 + position as u8))
}

/// A free port on `ip`, as the kernel hands it out (it may be taken again before use: the
/// caller retries the whole setup once).
fn free_port(ip: IpAddr) -> Result<u16, String> {
    let listener = TcpListener::bind((ip, 0)).map_err(|e| format!("binding {ip}:0: {e}"))?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// A three-replica fleet with a proxy in front of each peer listener.
struct Fleet {
    root: tempfile::TempDir,
    dir: PathBuf,
    procs: FleetProcesses,
    proxies: Vec<Proxy>,
    apis: Vec<SocketAddr>,
    endpoint: Endpoint,
}

impl Fleet {
    fn start() -> Result<Fleet, String> {
        let root = tempfile::tempdir().map_err(|e| e.to_string())?;
        let dir = root.path().join("fleet");
        let mut apis = Vec::new();
        let mut peers = Vec::new();
        for i in 0..REPLICAS {
            apis.push(SocketAddr::new(
                Ipv4Addr::LOCALHOST.into(),
                free_port(Ipv4Addr::LOCALHOST.into())?,
            ));
            peers.push(SocketAddr::new(peer_ip(i), free_port(peer_ip(i))?));
        }
        let options = InitOptions {
            replicas: REPLICAS as u8,
            ksf: KsfName::Fast,
            budget: BUDGET,
            listen: apis[0],
            peer_listen: peers[0],
            ..InitOptions::new(&dir, "fleet.processes")
        };
        e2ee_backup_vault_server::init(&options).map_err(|e| format!("init: {e}"))?;
        let mut proxies = Vec::new();
        for peer in &peers {
            proxies.push(Proxy::start(*peer).map_err(|e| format!("proxy: {e}"))?);
        }
        for i in 0..REPLICAS {
            let path = replica_dir(&dir, i as u64 + 1).join(CONFIG_FILE);
            let mut config = ConfigFile::read(&path).map_err(|e| e.to_string())?;
            config.listen = apis[i];
            config.session_lifetime = SESSION_LIFETIME;
            let replica = config.replica.as_mut().ok_or("no [replica] section")?;
            replica.peer_listen = peers[i];
            // Snapshots and log compaction happen several times in the run, so that restarted
            // replicas start from a snapshot and lagging ones may be sent one.
            replica.snapshot_after = SNAPSHOT_AFTER;
            for member in &mut replica.members {
                let j = (member.id - 1) as usize;
                member.api = apis[j].to_string();
                member.peer = proxies[j].addr().to_string();
            }
            std::fs::write(&path, config.render()).map_err(|e| e.to_string())?;
        }
        let procs = FleetProcesses::start(Path::new(EXE), &dir, REPLICAS as u64)
            .map_err(|e| e.to_string())?;
        let leader = procs.wait_for_leader(Duration::from_secs(20)).map_err(|e| e.to_string())?;
        eprintln!("fleet up: apis {apis:?}, peers {peers:?}, leader node {}", leader + 1);

        let pin = FleetPin::read(&dir.join(PIN_FILE)).map_err(|e| e.to_string())?;
        let mut http = HttpVault::at(apis[0]).with_timeout(CLIENT_TIMEOUT);
        let bundle = client::fetch_bundle(&mut http, &pin.0, unix_now(), None)
            .map_err(|e| format!("fetching the bundle: {e}"))?;
        let endpoint =
            Endpoint::from_bundle(&bundle).map_err(|e| e.to_string())?.accepting_fast_ksf();
        Ok(Fleet { root, dir, procs, proxies, apis, endpoint })
    }

    /// Cuts replica `i` off from its peers, both ways.
    fn isolate(&self, i: usize) {
        let all: Vec<IpAddr> = (0..REPLICAS).map(peer_ip).collect();
        for (j, proxy) in self.proxies.iter().enumerate() {
            if j == i {
                proxy.block_sources(&all);
            } else {
                proxy.block_sources(&[peer_ip(i)]);
            }
        }
    }

    fn heal(&self) {
        for proxy in &self.proxies {
            proxy.unblock_all();
        }
    }

    fn statuses(&self) -> Vec<Option<serde_json::Value>> {
        (0..REPLICAS)
            .map(|i| if self.procs.is_running(i) { self.procs.status(i) } else { None })
            .collect()
    }

    fn describe(&self) -> String {
        let mut out = String::new();
        for (i, status) in self.statuses().iter().enumerate() {
            match status {
                Some(s) => out.push_str(&format!(
                    " [node {}: {} leader={} term={} applied={}]",
                    i + 1,
                    s["role"],
                    s["leader"],
                    s["term"],
                    s["last_applied"]
                )),
                None => out.push_str(&format!(" [node {}: no answer]", i + 1)),
            }
        }
        out
    }

    /// Waits until one of `among` leads and another of them agrees (a majority of three).
    fn leader_among(&self, among: &[usize], within: Duration) -> Result<usize, String> {
        let deadline = Instant::now() + within;
        loop {
            let statuses: Vec<(usize, serde_json::Value)> =
                among.iter().filter_map(|&i| self.procs.status(i).map(|s| (i, s))).collect();
            for (i, status) in &statuses {
                if status["role"] == "leader" {
                    let agree =
                        statuses.iter().filter(|(_, s)| s["leader"] == status["node_id"]).count();
                    if agree * 2 > REPLICAS {
                        return Ok(*i);
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no leader among {among:?} within {within:?}:{}",
                    self.describe()
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until every replica answers, names the same leader and applied the same entries.
    fn converged(&self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        loop {
            let statuses = self.statuses();
            if statuses.iter().all(Option::is_some) {
                let first = statuses[0].as_ref().expect("checked");
                let same = statuses.iter().flatten().all(|s| {
                    s["leader"] == first["leader"]
                        && !first["leader"].is_null()
                        && s["last_applied"] == first["last_applied"]
                });
                if same {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("the replicas did not converge:{}", self.describe()));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of every replica's `serve.log`.
    fn log_tails(dir: &Path) -> String {
        let mut out = String::new();
        for id in 1..=REPLICAS as u64 {
            let path = replica_dir(dir, id).join("serve.log");
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| format!("({e})"));
            // The engine's own INFO lines are many; warnings and errors are kept.
            let lines: Vec<&str> =
                text.lines().filter(|l| !l.contains(" INFO openraft::")).collect();
            let tail = &lines[lines.len().saturating_sub(40)..];
            out.push_str(&format!(
                "\n----- {} (last {} lines) -----\n",
                path.display(),
                tail.len()
            ));
            out.push_str(&tail.join("\n"));
        }
        out
    }
}

/// The error kind of a client time-out: the vault may have sent a KE2 the attacker never saw,
/// so the count would be too low to prove anything.
const TIMEOUT: &str = "client timeout";

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)
}

/// Whether an HTTP failure is one a client retries (nothing was sent, or the fleet is busy).
fn retryable(e: &HttpError) -> bool {
    match e {
        HttpError::Io { .. } => true,
        HttpError::Server { status, .. } => *status == 503,
        _ => false,
    }
}

fn random_below(n: usize) -> usize {
    (OsRng.next_u32() as usize) % n
}

fn random_ms(low: u64, high: u64) -> Duration {
    Duration::from_millis(low + u64::from(OsRng.next_u32()) % (high - low))
}

/// Logs in through the replicas in turn, retrying on retryable failures until `within`.
fn login_retrying(
    fleet: &Fleet,
    account: &[u8],
    password: &[u8],
    within: Duration,
) -> Result<LoggedIn, String> {
    let deadline = Instant::now() + within;
    let mut attempt = random_below(REPLICAS);
    loop {
        attempt += 1;
        let mut http = HttpVault::at(fleet.apis[attempt % REPLICAS]).with_timeout(CLIENT_TIMEOUT);
        match client::login(&mut http, &fleet.endpoint, AccountId::new(account).unwrap(), password)
        {
            Ok(session) => return Ok(session),
            Err(JourneyError::Http(e)) if retryable(&e) && Instant::now() < deadline => {
                eprintln!("  login {}: {e}; retrying", String::from_utf8_lossy(account));
                thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(format!("login {}: {e}", String::from_utf8_lossy(account))),
        }
    }
}

/// Registers through replica `i`, retrying a few times on retryable failures.
fn register_retrying(
    fleet: &Fleet,
    i: usize,
    account: &[u8],
    password: &[u8],
    key: &BackupKey,
) -> Result<(), String> {
    let name = String::from_utf8_lossy(account);
    for attempt in 1.. {
        let mut http = HttpVault::at(fleet.apis[i]).with_timeout(CLIENT_TIMEOUT);
        match client::register(
            &mut http,
            &fleet.endpoint,
            AccountId::new(account).unwrap(),
            password,
            key,
        ) {
            Ok(_) => return Ok(()),
            Err(JourneyError::Http(e)) if retryable(&e) && attempt < 10 => {
                eprintln!("  register {name} through node {}: {e}; retrying", i + 1);
                thread::sleep(Duration::from_millis(200));
            }
            Err(e) => return Err(format!("register {name} through node {}: {e}", i + 1)),
        }
    }
    unreachable!()
}

/// What the attackers of one account saw.
#[derive(Debug, Default)]
struct Tally {
    /// `remaining` of each KE2 released for a wrong guess.
    ke2: Vec<u8>,
    exhausted: u64,
    locked: u64,
    /// Retryable failures by kind.
    errors: BTreeMap<String, u64>,
    /// Anything else (a failure of the test).
    unexpected: Vec<String>,
}

/// Shared state of the background clients.
struct Background {
    stop: Arc<AtomicBool>,
    phase: Arc<Mutex<&'static str>>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Background {
    /// Stops the clients, also when the scenario fails half-way.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One attacker thread: wrong guesses on `account`, each with a fresh KE1.
struct Attack {
    account: &'static [u8],
    /// Milliseconds to wait before each guess, drawn from this range.
    pause: (u64, u64),
    /// The positions of the replicas it sends to, one at random per guess.
    targets: Vec<usize>,
    /// Whether it stops once the account answered `locked` three times (else it goes on until
    /// the clients are stopped).
    stop_when_locked: bool,
}

fn spawn_attacker(
    fleet: &Fleet,
    bg: &mut Background,
    attack: Attack,
    tally: Arc<Mutex<Tally>>,
    start: Instant,
) {
    let (apis, endpoint) = (fleet.apis.clone(), fleet.endpoint.clone());
    let (stop, phase) = (bg.stop.clone(), bg.phase.clone());
    let Attack { account, pause, targets, stop_when_locked } = attack;
    let name = String::from_utf8_lossy(account).into_owned();
    bg.threads.push(thread::spawn(move || {
        let mut n = 0u64;
        loop {
            thread::sleep(random_ms(pause.0, pause.1));
            if stop.load(Ordering::SeqCst) {
                break;
            }
            n += 1;
            let replica = targets[random_below(targets.len())];
            let guess = format!("wrong guess {n} {}", OsRng.next_u64());
            let started = match Login::start(&mut OsRng, &endpoint, AccountId::new(account).unwrap(), guess.as_bytes()) {
                Ok(started) => started,
                Err(e) => {
                    tally.lock().unwrap().unexpected.push(format!("Login::start: {e}"));
                    break;
                }
            };
            let (state, ke1) = started;
            let mut http = HttpVault::at(apis[replica]).with_timeout(CLIENT_TIMEOUT);
            let answer = http.call(account, &ke1);
            let phase = *phase.lock().unwrap();
            let mut tally = tally.lock().unwrap();
            match answer {
                Ok(response) => match state.receive(&mut OsRng, &response) {
                    Err(ClientError::WrongPassword { remaining }) => {
                        eprintln!(
                            "  [{:6.2}s] {name}: KE2 #{} (remaining {remaining}) via node {} during {phase}",
                            secs(start),
                            tally.ke2.len() + 1,
                            replica + 1,
                        );
                        tally.ke2.push(remaining);
                    }
                    Err(ClientError::Exhausted) => tally.exhausted += 1,
                    Err(ClientError::Locked) => tally.locked += 1,
                    Ok(_) => tally.unexpected.push(format!("{name}: a wrong guess logged in")),
                    Err(e) => tally.unexpected.push(format!("{name}: {e}")),
                },
                Err(e) if retryable(&e) => {
                    let kind = match &e {
                        HttpError::Server { code, .. } => format!("503 {code}"),
                        HttpError::Io { source, .. } if is_timeout(source) => TIMEOUT.to_owned(),
                        _ => "io".to_owned(),
                    };
                    *tally.errors.entry(kind).or_default() += 1;
                }
                Err(e) => tally.unexpected.push(format!("{name} via node {}: {e}", replica + 1)),
            }
            if stop_when_locked && tally.locked >= 3 {
                break;
            }
        }
    }));
}

/// Registers new accounts one after the other through random replicas; the acknowledged ones.
type Acknowledged = Arc<Mutex<Vec<(Vec<u8>, Vec<u8>, BackupKey)>>>;

fn spawn_registrar(
    fleet: &Fleet,
    bg: &mut Background,
    acked: Acknowledged,
    failures: Arc<Mutex<Tally>>,
) {
    let (apis, endpoint) = (fleet.apis.clone(), fleet.endpoint.clone());
    let stop = bg.stop.clone();
    bg.threads.push(thread::spawn(move || {
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            n += 1;
            let account = format!("registered-{n}").into_bytes();
            let password = format!("password {n}").into_bytes();
            let key = BackupKey::generate();
            let replica = random_below(REPLICAS);
            let mut http = HttpVault::at(apis[replica]).with_timeout(CLIENT_TIMEOUT);
            match client::register(
                &mut http,
                &endpoint,
                AccountId::new(&account).unwrap(),
                &password,
                &key,
            ) {
                Ok(_) => acked.lock().unwrap().push((account, password, key)),
                Err(JourneyError::Http(e)) if retryable(&e) => {
                    *failures.lock().unwrap().errors.entry(e.to_string()).or_default() += 1;
                }
                Err(e) => failures.lock().unwrap().unexpected.push(format!("register: {e}")),
            }
            thread::sleep(random_ms(200, 500));
        }
    }));
}

fn check_tally(name: &str, tally: &Tally) -> Result<(), String> {
    eprintln!("{name}: {tally:?}");
    if !tally.unexpected.is_empty() {
        return Err(format!("{name}: unexpected answers: {:?}", tally.unexpected));
    }
    if tally.ke2.len() > usize::from(BUDGET) {
        return Err(format!(
            "{name}: {} KE2s for a budget of {BUDGET}: {:?}",
            tally.ke2.len(),
            tally.ke2
        ));
    }
    let mut remaining = tally.ke2.clone();
    remaining.sort_unstable();
    remaining.dedup();
    if remaining.len() != tally.ke2.len() || remaining.iter().any(|r| *r >= BUDGET) {
        return Err(format!("{name}: a charge was spent twice: remaining {:?}", tally.ke2));
    }
    if tally.errors.contains_key(TIMEOUT) {
        return Err(format!("{name}: a request timed out; a KE2 may have gone uncounted"));
    }
    if tally.locked == 0 {
        return Err(format!("{name}: never seen locked"));
    }
    Ok(())
}

fn scenario(fleet: &mut Fleet, start: Instant) -> Result<(), String> {
    // Setup: the honest account, through a follower (once every replica knows the leader);
    // the victims.
    fleet.converged(Duration::from_secs(10))?;
    let leader = fleet.procs.wait_for_leader(Duration::from_secs(10)).map_err(|e| e.to_string())?;
    let follower = (leader + 1) % REPLICAS;
    let honest_key = BackupKey::generate();
    register_retrying(fleet, follower, HONEST, HONEST_PASSWORD, &honest_key)?;
    for victim in VICTIMS {
        let key = BackupKey::generate();
        register_retrying(fleet, follower, victim, b"the victim's password", &key)?;
    }
    eprintln!("[{:6.2}s] registered through follower node {}", secs(start), follower + 1);

    let mut bg = Background {
        stop: Arc::new(AtomicBool::new(false)),
        phase: Arc::new(Mutex::new("warm-up")),
        threads: Vec::new(),
    };
    let tallies: Vec<Arc<Mutex<Tally>>> =
        VICTIMS.iter().map(|_| Arc::new(Mutex::new(Tally::default()))).collect();
    let [victim, hammered, victim_kill, victim_partition] = &tallies[..] else { unreachable!() };
    let registrations = Arc::new(Mutex::new(Tally::default()));
    let acked: Acknowledged = Arc::new(Mutex::new(Vec::new()));
    let all: Vec<usize> = (0..REPLICAS).collect();
    for _ in 0..2 {
        let attack = Attack {
            account: VICTIM,
            pause: (2500, 4500),
            targets: all.clone(),
            stop_when_locked: false,
        };
        spawn_attacker(fleet, &mut bg, attack, victim.clone(), start);
    }
    let attack = Attack {
        account: HAMMERED,
        pause: (10, 40),
        targets: all.clone(),
        stop_when_locked: false,
    };
    spawn_attacker(fleet, &mut bg, attack, hammered.clone(), start);
    spawn_registrar(fleet, &mut bg, acked.clone(), registrations.clone());
    let current_phase = bg.phase.clone();
    let set_phase = |phase: &'static str| {
        *current_phase.lock().unwrap() = phase;
        eprintln!("[{:6.2}s] phase: {phase}", secs(start));
    };
    thread::sleep(Duration::from_millis(1500));

    // a1: SIGKILL the leader, wait for another, restart it.
    set_phase("kill-leader");
    let leader = fleet.procs.wait_for_leader(Duration::from_secs(10)).map_err(|e| e.to_string())?;
    for _ in 0..2 {
        let attack = Attack {
            account: VICTIM_KILL,
            pause: (1, 15),
            targets: all.clone(),
            stop_when_locked: true,
        };
        spawn_attacker(fleet, &mut bg, attack, victim_kill.clone(), start);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while victim_kill.lock().unwrap().ke2.is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(2));
    }
    eprintln!("  killing leader node {}", leader + 1);
    fleet.procs.signal(leader, Signal::Kill).map_err(|e| e.to_string())?;
    let others: Vec<usize> = (0..REPLICAS).filter(|&i| i != leader).collect();
    let new = fleet.leader_among(&others, Duration::from_secs(10))?;
    eprintln!(
        "[{:6.2}s]   new leader node {}; restarting node {}",
        secs(start),
        new + 1,
        leader + 1
    );
    thread::sleep(Duration::from_millis(500));
    fleet.procs.restart(leader).map_err(|e| e.to_string())?;
    let leader = fleet.procs.wait_for_leader(Duration::from_secs(10)).map_err(|e| e.to_string())?;
    eprintln!("[{:6.2}s]   leader node {}:{}", secs(start), leader + 1, fleet.describe());
    thread::sleep(Duration::from_millis(1000));

    // a2: SIGSTOP the leader for ~2 s.
    set_phase("stop-leader");
    let leader = fleet.procs.wait_for_leader(Duration::from_secs(10)).map_err(|e| e.to_string())?;
    eprintln!("  stopping leader node {}", leader + 1);
    let stopped_at = Instant::now();
    fleet.procs.signal(leader, Signal::Stop).map_err(|e| e.to_string())?;
    let others: Vec<usize> = (0..REPLICAS).filter(|&i| i != leader).collect();
    let new = fleet.leader_among(&others, Duration::from_secs(10));
    if let Some(rest) = Duration::from_secs(2).checked_sub(stopped_at.elapsed()) {
        thread::sleep(rest);
    }
    fleet.procs.signal(leader, Signal::Continue).map_err(|e| e.to_string())?;
    let new = new?;
    eprintln!(
        "[{:6.2}s]   node {} led while node {} was stopped; continued",
        secs(start),
        new + 1,
        leader + 1
    );
    let leader = fleet.procs.wait_for_leader(Duration::from_secs(10)).map_err(|e| e.to_string())?;
    eprintln!("[{:6.2}s]   leader node {}:{}", secs(start), leader + 1, fleet.describe());
    thread::sleep(Duration::from_millis(1000));

    // a3: SIGKILL a follower, restart it.
    set_phase("kill-follower");
    let leader = fleet.procs.wait_for_leader(Duration::from_secs(10)).map_err(|e| e.to_string())?;
    let follower = (leader + 1 + random_below(2)) % REPLICAS;
    eprintln!("  killing follower node {} (leader node {})", follower + 1, leader + 1);
    fleet.procs.signal(follower, Signal::Kill).map_err(|e| e.to_string())?;
    thread::sleep(Duration::from_millis(1000));
    fleet.procs.restart(follower).map_err(|e| e.to_string())?;
    let leader = fleet.procs.wait_for_leader(Duration::from_secs(10)).map_err(|e| e.to_string())?;
    eprintln!(
        "[{:6.2}s]   restarted; leader node {}:{}",
        secs(start),
        leader + 1,
        fleet.describe()
    );
    thread::sleep(Duration::from_millis(1000));

    // a4: partition the leader away for ~2 s, then heal.
    set_phase("partition-leader");
    let leader = fleet.procs.wait_for_leader(Duration::from_secs(10)).map_err(|e| e.to_string())?;
    eprintln!("  isolating leader node {}", leader + 1);
    let isolated_at = Instant::now();
    fleet.isolate(leader);
    // Two attackers go through any replica: those that reach the isolated leader (directly,
    // or forwarded by a follower that has not yet heard of the election) wait there and must
    // fail. Once the majority has a leader, a third goes through the majority side only and
    // gets KE2s during the partition.
    for _ in 0..2 {
        let attack = Attack {
            account: VICTIM_PARTITION,
            pause: (5, 30),
            targets: all.clone(),
            stop_when_locked: true,
        };
        spawn_attacker(fleet, &mut bg, attack, victim_partition.clone(), start);
    }
    let others: Vec<usize> = (0..REPLICAS).filter(|&i| i != leader).collect();
    let new = fleet.leader_among(&others, Duration::from_secs(10));
    if new.is_ok() {
        let attack = Attack {
            account: VICTIM_PARTITION,
            pause: (5, 30),
            targets: others,
            stop_when_locked: true,
        };
        spawn_attacker(fleet, &mut bg, attack, victim_partition.clone(), start);
    }
    if let Some(rest) = Duration::from_secs(2).checked_sub(isolated_at.elapsed()) {
        thread::sleep(rest);
    }
    eprintln!("[{:6.2}s]   while isolated:{}", secs(start), fleet.describe());
    fleet.heal();
    let new = new?;
    eprintln!("[{:6.2}s]   node {} led the majority; healed", secs(start), new + 1);
    let leader = fleet.procs.wait_for_leader(Duration::from_secs(10)).map_err(|e| e.to_string())?;
    eprintln!("[{:6.2}s]   leader node {}:{}", secs(start), leader + 1, fleet.describe());

    // The attackers go on until the slow victim is locked (its charged sessions expire).
    set_phase("after-faults");
    let deadline = Instant::now() + Duration::from_secs(25);
    while tallies.iter().any(|t| t.lock().unwrap().locked == 0) {
        if Instant::now() > deadline {
            let tallies: Vec<_> =
                tallies.iter().map(|t| format!("{:?}", t.lock().unwrap())).collect();
            return Err(format!("the victims were not locked in time: {tallies:?}"));
        }
        thread::sleep(Duration::from_millis(100));
    }
    bg.stop.store(true, Ordering::SeqCst);
    for thread in bg.threads.drain(..) {
        thread.join().map_err(|_| "a client thread panicked".to_owned())?;
    }
    eprintln!("[{:6.2}s] clients stopped", secs(start));
    let failures: Vec<String> = VICTIMS
        .iter()
        .zip(&tallies)
        .filter_map(|(account, tally)| {
            check_tally(&String::from_utf8_lossy(account), &tally.lock().unwrap()).err()
        })
        .collect();
    if !failures.is_empty() {
        return Err(failures.join("\n"));
    }
    let registrations = registrations.lock().unwrap();
    eprintln!("registrations: failures {:?}", registrations.errors);
    if !registrations.unexpected.is_empty() {
        return Err(format!("registrations: {:?}", registrations.unexpected));
    }

    // The honest account and every acknowledged registration.
    let session = login_retrying(fleet, HONEST, HONEST_PASSWORD, Duration::from_secs(20))?;
    if session.key() != &honest_key {
        return Err("the honest account got another key back".into());
    }
    let acked = acked.lock().unwrap();
    for (account, password, key) in acked.iter() {
        let session = login_retrying(fleet, account, password, Duration::from_secs(20))?;
        if session.key() != key {
            return Err(format!("{} got another key back", String::from_utf8_lossy(account)));
        }
    }
    eprintln!(
        "[{:6.2}s] honest login and {} acknowledged registrations OK",
        secs(start),
        acked.len()
    );

    // b: all three replicas SIGKILLed and restarted.
    set_phase("kill-all");
    for i in 0..REPLICAS {
        fleet.procs.signal(i, Signal::Kill).map_err(|e| e.to_string())?;
    }
    for i in 0..REPLICAS {
        fleet.procs.restart(i).map_err(|e| e.to_string())?;
    }
    let leader = fleet.procs.wait_for_leader(Duration::from_secs(15)).map_err(|e| e.to_string())?;
    eprintln!("[{:6.2}s]   restarted all; leader node {}", secs(start), leader + 1);
    let session = login_retrying(fleet, HONEST, HONEST_PASSWORD, Duration::from_secs(20))?;
    if session.key() != &honest_key {
        return Err("after the restart the honest account got another key back".into());
    }
    for (account, password, key) in acked.iter() {
        let session = login_retrying(fleet, account, password, Duration::from_secs(20))?;
        if session.key() != key {
            return Err(format!("{} got another key back", String::from_utf8_lossy(account)));
        }
    }
    for victim in VICTIMS {
        for password in [b"one more guess".as_slice(), b"the victim's password"] {
            match login_retrying(fleet, victim, password, Duration::from_secs(20)) {
                Err(e) if e.ends_with(&ClientError::Locked.to_string()) => {}
                Err(e) => return Err(format!("after the restart: {e}")),
                Ok(_) => return Err("after the restart a locked victim logged in".into()),
            }
        }
    }
    fleet.converged(Duration::from_secs(10))?;
    eprintln!(
        "[{:6.2}s] after the full restart: honest login OK, victims locked:{}",
        secs(start),
        fleet.describe()
    );
    Ok(())
}

#[test]
fn faults_never_release_more_than_the_budget_and_lose_no_registration() {
    let start = Instant::now();
    let mut fleet = match Fleet::start() {
        Ok(fleet) => fleet,
        Err(e) => {
            eprintln!("setup failed ({e}); once more on new ports");
            Fleet::start().unwrap_or_else(|e| panic!("setup failed twice: {e}"))
        }
    };
    let dir = fleet.dir.clone();
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| scenario(&mut fleet, start)));
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e),
        Err(panic) => Some(
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic".to_owned()),
        ),
    };
    fleet.heal();
    fleet.procs.stop();
    if std::env::var_os(KEEP_ENV).is_some() {
        let Fleet { root, .. } = fleet;
        eprintln!("{KEEP_ENV} is set: the fleet directory stays at {}", root.keep().display());
    }
    if let Some(failure) = failure {
        panic!("{failure}\n{}", Fleet::log_tails(&dir));
    }
    eprintln!("done in {:.1}s", secs(start));
}
