//! `e2ee-backup-vault bench-scale` (issue 15): a vault as its population grows, 1 k, 100 k and
//! 1 M accounts by default, made by [`crate::populate`], in one run. At each level it measures
//! a single vault and a 3-replica fleet: the size of the store, how long a server takes to
//! start, retrievals per second and their latency on random accounts, registration latency, and
//! each server's memory. At the last level it also times the snapshot a replica builds after a
//! deletion (spec sections 4.13.1 and 7.6) and a new replica catching up from nothing (section
//! 7.9).
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_vault::{Endpoint, PinnedFleet};
use rand_core::{OsRng, RngCore as _};
use thiserror::Error;

use crate::account_id;
use crate::cluster::{ClusterError, FleetProcesses};
use e2ee_backup_vault_server::at_rest::KEYS_DIR;
use e2ee_backup_vault_server::client::{self, HttpError, HttpVault, JourneyError};
use e2ee_backup_vault_server::files::{
    CONFIG_FILE, FilesError, InitOptions, KsfName, PIN_FILE, replica_dir, unix_now,
};
use e2ee_backup_vault_server::store::STORE_FILE;
use e2ee_backup_vault_server::{ConfigFile, FleetPin, StoreError};

use crate::load::{BenchDir, MAX_CLIENTS, MAX_SECONDS, Series, ServeProcess, free_ports};
use crate::populate::{
    MAX_ACCOUNTS, PopulateOptions, PopulateReport, account, backup_key, password, populate,
};

/// Registrations timed over HTTP at each level.
const REGISTRATIONS: usize = 50;
/// Times a retrieval answered `503` is tried again before the run fails.
const MAX_RETRIES: u32 = 50;

/// Why `populate` or `bench-scale` failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ScaleError {
    /// An option is out of range.
    #[error("invalid option: {0}")]
    Option(&'static str),
    /// A data directory's files could not be read or made.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// The store of a data directory failed (a server still running on it, among others).
    #[error("{}: {source}", dir.display())]
    Store {
        /// The data directory.
        dir: PathBuf,
        /// The error.
        source: StoreError,
    },
    /// The data directories are not of one fleet.
    #[error("{} holds other fleet secrets than {}", other.display(), first.display())]
    OtherFleet {
        /// The first data directory.
        first: PathBuf,
        /// The one that differs.
        other: PathBuf,
    },
    /// A registration through the in-process core failed.
    #[error("registering {account} in process: {message}")]
    Register {
        /// The account.
        account: String,
        /// What failed.
        message: String,
    },
    /// A journey against a server failed.
    #[error("{what}: {source}")]
    Journey {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: JourneyError,
    },
    /// A server process did not start, or the fleet agreed on no leader.
    #[error(transparent)]
    Processes(#[from] ClusterError),
    /// Setting up the bench (directories, ports) failed.
    #[error(transparent)]
    Bench(#[from] crate::load::BenchError),
    /// A server did not reach the state it was waited for.
    #[error("{what}: not within {within:?}")]
    Timeout {
        /// What was waited for.
        what: &'static str,
        /// How long.
        within: Duration,
    },
    /// A retrieval gave back another key than the account's.
    #[error("account scale-{0:07} gave back another key")]
    WrongKey(u64),
    /// A client thread panicked.
    #[error("a client thread panicked")]
    ClientPanicked,
    /// The runtime of the membership change could not start.
    #[error("cannot start a runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// Adding the fourth replica failed.
    #[error("adding replica 4: {0}")]
    AddReplica(#[source] e2ee_backup_vault_server::members::MemberError),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct BenchScaleOptions {
    /// This program, to start the servers with.
    pub exe: PathBuf,
    /// Populations to measure, ascending.
    pub levels: Vec<u64>,
    /// Concurrent clients of each load run.
    pub clients: usize,
    /// Seconds of each load run.
    pub seconds: u64,
    /// Where to put the data directories (kept); default a temporary directory, removed.
    pub dir: Option<PathBuf>,
}

/// One server's figures at one level.
#[derive(Debug, Clone)]
pub struct ServerFigures {
    /// From starting `serve` until it listens (for the fleet: until a leader is agreed).
    pub start: Duration,
    /// Retrievals over the run.
    pub retrievals: Series,
    /// Tries again after a `503` (counted in the retrieval's latency).
    pub retries: u64,
    /// Sequential registrations over HTTP.
    pub registrations: Series,
    /// Peak resident memory of each server process, in bytes.
    pub peak_memory: Vec<u64>,
}

/// The figures of one level.
#[derive(Debug, Clone)]
pub struct Level {
    /// Accounts stored.
    pub accounts: u64,
    /// How the population was made.
    pub populate: PopulateReport,
    /// Bytes of the single vault's `vault.redb` and `keys/`.
    pub store_bytes: (u64, u64),
    /// The single vault.
    pub single: ServerFigures,
    /// The fleet, against its leader.
    pub fleet: ServerFigures,
}

/// The snapshot and catch-up figures at the last level.
#[derive(Debug, Clone)]
pub struct CatchUp {
    /// From a deletion's reply until each replica's stored snapshot covers it (includes the
    /// 100 ms a replica waits to gather erasures).
    pub snapshot: Vec<Duration>,
    /// From `member add` of an empty replica until it is a voter that applied the leader's
    /// last entry.
    pub catch_up: Duration,
    /// Peak resident memory of the replicas (the new one last), bytes.
    pub peak_memory: Vec<u64>,
}

/// What `bench-scale` measured.
#[derive(Debug, Clone)]
pub struct ScaleReport {
    /// Clients of each load run.
    pub clients: usize,
    /// One entry per level.
    pub levels: Vec<Level>,
    /// At the last level.
    pub catch_up: CatchUp,
    /// The bench directory, when kept.
    pub kept_dir: Option<PathBuf>,
}

/// Peak resident memory of a process (`VmHWM` in `/proc/PID/status`), bytes.
fn peak_memory(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn bytes_under(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| bytes_under(&e.path())).sum())
        .unwrap_or(0)
}

/// A connection to the server at `url`, and its endpoint, the bundle checked against `pin`.
fn connect(url: &str, pin: &PinnedFleet) -> Result<(HttpVault, Endpoint), ScaleError> {
    let mut http = HttpVault::new(url).map_err(|e| journey("connecting")(e.into()))?;
    let bundle = client::fetch_bundle(&mut http, pin, unix_now(), None)
        .map_err(journey("fetching the bundle"))?;
    let endpoint = Endpoint::from_bundle(&bundle)
        .map_err(|e| journey("reading the bundle")(e.into()))?
        .accepting_fast_ksf();
    Ok((http, endpoint))
}

/// Retrievals (login, then K) on random scale accounts below `accounts` for `seconds`, by
/// `clients` threads: client `c` takes the accounts `i` with `i % clients == c`, so two
/// clients never log in to one account at once (a success clears the other's attempt).
fn retrievals(
    url: &str,
    pin: &PinnedFleet,
    accounts: u64,
    clients: usize,
    seconds: u64,
) -> Result<(Series, u64), ScaleError> {
    let (_, endpoint) = connect(url, pin)?;
    let clients = clients.min(usize::try_from(accounts).unwrap_or(usize::MAX)).max(1);
    let stop = AtomicBool::new(false);
    let retried = AtomicU64::new(0);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let results: Vec<Result<Vec<Duration>, ScaleError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients as u64)
            .map(|c| {
                let (endpoint, stop, retried) = (&endpoint, &stop, &retried);
                scope.spawn(move || {
                    let mut http =
                        HttpVault::new(url).map_err(|e| journey("connecting")(e.into()))?;
                    let mine = (accounts - c).div_ceil(clients as u64);
                    let mut latencies = Vec::new();
                    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                        let i = c + (OsRng.next_u64() % mine) * clients as u64;
                        let t = Instant::now();
                        let mut outcome;
                        let mut tries = 0;
                        loop {
                            outcome = client::login(
                                &mut http,
                                endpoint,
                                account_id(&account(i)),
                                &password(i),
                            );
                            if tries == MAX_RETRIES || !busy(&outcome) {
                                break;
                            }
                            tries += 1;
                            retried.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(20));
                        }
                        match outcome {
                            Ok(done) if done.key() == &backup_key(i) => latencies.push(t.elapsed()),
                            Ok(_) => {
                                stop.store(true, Ordering::Relaxed);
                                return Err(ScaleError::WrongKey(i));
                            }
                            Err(e) => {
                                stop.store(true, Ordering::Relaxed);
                                return Err(journey("a retrieval")(e));
                            }
                        }
                    }
                    Ok(latencies)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(Err(ScaleError::ClientPanicked))).collect()
    });
    let elapsed = started.elapsed();
    let mut latencies = Vec::new();
    for result in results {
        latencies.extend(result?);
    }
    Ok((Series::new(latencies, elapsed), retried.into_inner()))
}

/// A journey's error, saying what was being done.
fn journey(what: &'static str) -> impl FnOnce(JourneyError) -> ScaleError {
    move |source| ScaleError::Journey { what, source }
}

/// Whether `outcome` is a `503` (busy, or unconfirmed while a fleet changes leader), which a
/// client retries.
fn busy<T>(outcome: &Result<T, JourneyError>) -> bool {
    matches!(outcome, Err(JourneyError::Http(HttpError::Server { status: 503, .. })))
}

/// `REGISTRATIONS` new accounts registered one after another; their latency.
fn registrations(url: &str, pin: &PinnedFleet, tag: &str) -> Result<Series, ScaleError> {
    let (mut http, endpoint) = connect(url, pin)?;
    let run = OsRng.next_u32();
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(REGISTRATIONS);
    for j in 0..REGISTRATIONS {
        let id = format!("extra-{tag}-{run:08x}-{j}").into_bytes();
        let t = Instant::now();
        client::register(
            &mut http,
            &endpoint,
            account_id(&id),
            b"extra password",
            &BackupKey::generate(),
        )
        .map_err(journey("a registration"))?;
        latencies.push(t.elapsed());
    }
    Ok(Series::new(latencies, started.elapsed()))
}

fn wait_until(
    what: &'static str,
    within: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<(), ScaleError> {
    let deadline = Instant::now() + within;
    while !done() {
        if Instant::now() > deadline {
            return Err(ScaleError::Timeout { what, within });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Runs `bench-scale`.
pub fn bench_scale(
    options: &BenchScaleOptions,
    log: &mut dyn FnMut(&str),
) -> Result<ScaleReport, ScaleError> {
    if options.levels.is_empty()
        || options.levels.windows(2).any(|w| w[0] >= w[1])
        || options.levels[0] == 0
        || *options.levels.last().expect("not empty") > MAX_ACCOUNTS
    {
        return Err(ScaleError::Option("--levels must ascend, from 1 to 10000000"));
    }
    if options.clients == 0 || options.clients > MAX_CLIENTS {
        return Err(ScaleError::Option("--clients must be 1 to 256"));
    }
    if options.seconds == 0 || options.seconds > MAX_SECONDS {
        return Err(ScaleError::Option("--seconds must be 1 to 600"));
    }
    let dir = BenchDir::new(options.dir.as_deref(), "e2ee-bench-scale")?;
    let fleet_dir = dir.path.join("fleet");
    let single_dir = dir.path.join("single");
    if fleet_dir.join("replica-4").exists() {
        return Err(ScaleError::Option(
            "--dir holds a finished run (fleet/replica-4); use another",
        ));
    }
    // A directory of an earlier run that stopped short is used again, with its population.
    if ConfigFile::read(&replica_dir(&fleet_dir, 1).join(CONFIG_FILE)).is_err() {
        // Client ports base..base+2, peer ports base+3..base+5.
        let base = free_ports(6)?;
        let loopback = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
        e2ee_backup_vault_server::init(&InitOptions {
            replicas: 3,
            ksf: KsfName::Fast,
            listen: loopback(base),
            peer_listen: loopback(base + 3),
            ..InitOptions::new(&fleet_dir, "scale.bench")
        })?;
        make_single_of(&replica_dir(&fleet_dir, 1), &single_dir)?;
    }
    let pin = FleetPin::read(&fleet_dir.join(PIN_FILE))?.0;
    let replicas: Vec<PathBuf> = (1..=3).map(|n| replica_dir(&fleet_dir, n)).collect();
    let mut dirs = vec![single_dir.clone()];
    dirs.extend(replicas.iter().cloned());

    let mut levels = Vec::new();
    let mut running: Option<(FleetProcesses, usize)> = None;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for &accounts in &options.levels {
        if let Some((mut fleet, _)) = running.take() {
            fleet.stop();
        }
        log(&format!("populating {accounts} accounts"));
        let mut last = Instant::now();
        let populate = populate(
            &PopulateOptions { dirs: dirs.clone(), accounts, threads },
            &mut |done, to_do| {
                if last.elapsed() > Duration::from_secs(10) || done == to_do {
                    last = Instant::now();
                    log(&format!("  {done} / {to_do}"));
                }
            },
        )?;
        log(&format!("  {populate}"));
        let store_bytes =
            (bytes_under(&single_dir.join(STORE_FILE)), bytes_under(&single_dir.join(KEYS_DIR)));

        log("single vault");
        let started = Instant::now();
        let single = ServeProcess::start(&options.exe, &single_dir)?;
        let start = started.elapsed();
        let pids = [single.child.id()];
        let single_figures = measure(options, &pin, accounts, "single", single.addr, start, &pids)?;
        drop(single);

        log("3-replica fleet");
        let started = Instant::now();
        let fleet = FleetProcesses::start(&options.exe, &fleet_dir, 3)?;
        let leader = fleet.wait_for_leader(Duration::from_secs(120))?;
        let start = started.elapsed();
        let leader_id = fleet.replicas[leader].node_id;
        wait_until("every replica naming the leader", Duration::from_secs(60), || {
            (0..3).all(|i| status_u64(&fleet, i, "leader") == Some(leader_id))
        })?;
        let api = fleet.replicas[leader].api;
        let fleet_figures = measure(options, &pin, accounts, "fleet", api, start, &fleet.pids())?;
        let level =
            Level { accounts, populate, store_bytes, single: single_figures, fleet: fleet_figures };
        log(&format!("{HEADER}\n{level}"));
        levels.push(level);
        running = Some((fleet, leader));
    }
    let (mut fleet, leader) = running.expect("at least one level");
    log("snapshot after a deletion, and a new replica catching up");
    let catch_up = snapshot_and_catch_up(&mut fleet, leader, &pin, &fleet_dir)?;
    fleet.stop();
    Ok(ScaleReport {
        clients: options.clients,
        levels,
        catch_up,
        kept_dir: (!dir.remove).then(|| dir.path.clone()),
    })
}

/// Retrievals, then registrations, against the server at `api`, and the peak memory of its
/// processes `pids` (started in `start`).
fn measure(
    options: &BenchScaleOptions,
    pin: &PinnedFleet,
    accounts: u64,
    name: &str,
    api: std::net::SocketAddr,
    start: Duration,
    pids: &[u32],
) -> Result<ServerFigures, ScaleError> {
    let url = format!("http://{api}");
    let (retrievals, retries) = retrievals(&url, pin, accounts, options.clients, options.seconds)?;
    let registrations = registrations(&url, pin, &format!("{name}-{accounts}"))?;
    let peak_memory = pids.iter().copied().filter_map(peak_memory).collect();
    Ok(ServerFigures { start, retrievals, retries, registrations, peak_memory })
}

/// A single vault's data directory with the fleet secrets, bundle and pin of `replica` (so one
/// population fits both), its configuration without the `[replica]` section.
fn make_single_of(replica: &Path, single: &Path) -> Result<(), ScaleError> {
    use e2ee_backup_vault_server::files::{BUNDLE_FILE, PIN_FILE, SECRETS_FILE};
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| crate::load::BenchError::Io { path, source }
    };
    std::fs::create_dir_all(single).map_err(io(single))?;
    for name in [SECRETS_FILE, BUNDLE_FILE, PIN_FILE] {
        std::fs::copy(replica.join(name), single.join(name)).map_err(io(&single.join(name)))?;
    }
    let mut config = ConfigFile::read(&replica.join(CONFIG_FILE))?;
    config.replica = None;
    std::fs::write(single.join(CONFIG_FILE), config.render())
        .map_err(io(&single.join(CONFIG_FILE)))?;
    Ok(())
}

fn status_u64(fleet: &FleetProcesses, i: usize, field: &str) -> Option<u64> {
    fleet.status(i)?[field].as_u64()
}

/// Registers and deletes one account through the leader, waits for every replica's snapshot
/// to cover the deletion, then adds an empty fourth replica and waits for it to catch up.
fn snapshot_and_catch_up(
    fleet: &mut FleetProcesses,
    leader: usize,
    pin: &PinnedFleet,
    fleet_dir: &Path,
) -> Result<CatchUp, ScaleError> {
    let (mut http, endpoint) = connect(&format!("http://{}", fleet.replicas[leader].api), pin)?;
    let id = format!("erased-{:08x}", OsRng.next_u32()).into_bytes();
    let (id, secret) = (id.as_slice(), b"erased password".as_slice());
    client::register(&mut http, &endpoint, account_id(id), secret, &BackupKey::generate())
        .map_err(journey("registering the account to delete"))?;
    let session = client::login(&mut http, &endpoint, account_id(id), secret)
        .map_err(journey("logging in to the account to delete"))?;
    client::delete(&mut http, session, account_id(id)).map_err(journey("deleting the account"))?;
    let deleted_at = Instant::now();
    let index = status_u64(fleet, leader, "last_applied").unwrap_or(0);
    let mut snapshot = vec![Duration::ZERO; fleet.replicas.len()];
    let mut pending: Vec<usize> = (0..fleet.replicas.len()).collect();
    wait_until("the snapshots after the deletion", Duration::from_secs(600), || {
        pending.retain(|&i| {
            let done = status_u64(fleet, i, "snapshot").is_some_and(|s| s >= index);
            if done {
                snapshot[i] = deleted_at.elapsed();
            }
            !done
        });
        pending.is_empty()
    })?;

    let new_dir = fleet_dir.join("replica-4");
    let ports = free_ports(2)?;
    let loopback = |port| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    e2ee_backup_vault_server::members::prepare(
        &fleet.replicas[0].data_dir,
        &new_dir,
        4,
        loopback(ports),
        loopback(ports + 1),
    )?;
    let peer_of_leader = {
        let config = ConfigFile::read(&fleet.replicas[leader].data_dir.join(CONFIG_FILE))?;
        let replica = config.replica.ok_or(ScaleError::Option("the leader is not a replica"))?;
        replica.peer_listen.to_string()
    };
    let position = fleet.launch(4, &new_dir)?;
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ScaleError::Runtime)?;
    runtime
        .block_on(e2ee_backup_vault_server::members::add(&new_dir, &peer_of_leader))
        .map_err(ScaleError::AddReplica)?;
    let target = status_u64(fleet, leader, "last_applied").unwrap_or(0);
    wait_until("replica 4 catching up", Duration::from_secs(600), || {
        status_u64(fleet, position, "last_applied").is_some_and(|a| a >= target)
    })?;
    let catch_up = started.elapsed();
    Ok(CatchUp {
        snapshot,
        catch_up,
        peak_memory: fleet.pids().into_iter().filter_map(peak_memory).collect(),
    })
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn mibs(all: &[u64]) -> String {
    all.iter().map(|b| mib(*b)).collect::<Vec<_>>().join(", ")
}

/// The columns of a level's rows.
const HEADER: &str = "accounts  vault.redb  keys/  target  retrievals/s  p50  p99  register p50  \
                      start, peak memory";

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, s) in [("single", &self.single), ("fleet", &self.fleet)] {
            writeln!(
                f,
                "{}  {}  {}  {name}  {:.0}  {}  {}  {}  {:.2} s, {}{}",
                self.accounts,
                mib(self.store_bytes.0),
                mib(self.store_bytes.1),
                s.retrievals.rate(),
                ms(s.retrievals.p50),
                ms(s.retrievals.p99),
                ms(s.registrations.p50),
                s.start.as_secs_f64(),
                mibs(&s.peak_memory),
                match s.retries {
                    0 => String::new(),
                    n => format!(" ({n} tries again after a 503)"),
                }
            )?;
        }
        write!(f, "{}  populate: {}", self.accounts, self.populate)
    }
}

impl fmt::Display for ScaleReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} clients per load run, random accounts, --ksf fast, loopback",
            self.clients
        )?;
        writeln!(f, "{HEADER}")?;
        for level in &self.levels {
            writeln!(f, "{level}")?;
        }
        let first = &self.levels[0];
        let last = self.levels.last().expect("at least one level");
        for (name, a, b) in
            [("single", &first.single, &last.single), ("fleet", &first.fleet, &last.fleet)]
        {
            writeln!(
                f,
                "{name}: retrievals/s at {} over at {}: {:.2}; p50 {:.2}x; p99 {:.2}x",
                last.accounts,
                first.accounts,
                b.retrievals.rate() / a.retrievals.rate().max(1e-9),
                b.retrievals.p50.as_secs_f64() / a.retrievals.p50.as_secs_f64().max(1e-9),
                b.retrievals.p99.as_secs_f64() / a.retrievals.p99.as_secs_f64().max(1e-9),
            )?;
        }
        let c = &self.catch_up;
        let snapshots: Vec<_> =
            c.snapshot.iter().map(|d| format!("{:.2} s", d.as_secs_f64())).collect();
        writeln!(
            f,
            "at {} accounts: snapshot after a deletion {}; an empty replica caught up in {:.2} s; \
             peak memory of the replicas {}",
            last.accounts,
            snapshots.join(", "),
            c.catch_up.as_secs_f64(),
            mibs(&c.peak_memory)
        )?;
        if let Some(dir) = &self.kept_dir {
            write!(f, "data and serve.log files kept in {}", dir.display())?;
        }
        Ok(())
    }
}
