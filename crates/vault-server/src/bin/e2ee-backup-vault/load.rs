//! The load generator behind `e2ee-backup-vault load`: registers one account per client, runs
//! the clients' retrieval loops (log in and get K, spec section 4.11) against a server for a
//! bounded time, and measures the same retrieval through the in-process sans-IO core ([`MemoryVault`]) in the
//! same run, so that the cost of HTTP, the durable store and the scheduling shows as a ratio.
//!
//! [`bench_fleet`] (behind `e2ee-backup-vault bench-fleet`) runs the same load against a single
//! vault, a replicated fleet's leader and one of its followers, all started here.
//!
//! Over 700 lines, in one file because both commands share the clients, the in-process
//! baseline and the report; it lives in the binary, not the library, since nothing else runs
//! it.

use std::fmt;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_vault::{
    AccountId, Endpoint, FleetId, Hsm, HsmConfig, HsmSecrets, KsfProfile, Login, MemoryVault,
    PinnedFleet, drive,
};
use rand_core::{OsRng, RngCore as _};
use thiserror::Error;

use crate::account_id;
use crate::cluster::{self, FleetProcesses};
use e2ee_backup_vault_server::client::{self, HttpVault, JourneyError};
use e2ee_backup_vault_server::files::{FilesError, InitOptions, KsfName, unix_now};

/// The most clients a run may have.
pub const MAX_CLIENTS: usize = 256;
/// The longest run, in seconds.
pub const MAX_SECONDS: u64 = 600;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The server's base URL (`http://HOST:PORT`).
    pub url: String,
    /// The fleet the server must prove it is.
    pub pin: PinnedFleet,
    /// Concurrent clients (1 to 256), each with its own account and connection.
    pub clients: usize,
    /// Seconds of load (1 to 600).
    pub seconds: u64,
    /// Seconds of in-process measurement.
    pub in_process_seconds: u64,
}

/// Why the run failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LoadError {
    /// `clients` is out of range.
    #[error("invalid option: --clients must be 1 to {MAX_CLIENTS}")]
    Clients,
    /// `seconds` is out of range.
    #[error("invalid option: --seconds must be 1 to {MAX_SECONDS}")]
    Seconds,
    /// Setting up (fetching the bundle, registering) failed.
    #[error("setup failed: {0}")]
    Setup(#[from] JourneyError),
    /// A retrieval failed during the run.
    #[error("{failures} retrievals failed; first: {first}")]
    Retrieval {
        /// How many failed.
        failures: usize,
        /// The first failure.
        first: String,
    },
}

/// Why `bench-fleet` failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BenchError {
    /// `--replicas` is out of range.
    #[error("--replicas must be 2 to 15")]
    Replicas,
    /// `--clients` is out of range.
    #[error("--clients must be 1 to {MAX_CLIENTS}")]
    Clients,
    /// `--seconds` is out of range.
    #[error("--seconds must be 1 to {MAX_SECONDS}")]
    Seconds,
    /// A directory or probe file could not be made or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A loopback port could not be bound.
    #[error("bind: {0}")]
    Bind(#[source] std::io::Error),
    /// No run of consecutive free loopback ports was found.
    #[error("found no {0} consecutive free loopback ports")]
    NoFreePorts(u16),
    /// `init` of a data directory failed.
    #[error("init {}: {source}", dir.display())]
    Init {
        /// The data directory.
        dir: PathBuf,
        /// The error.
        source: FilesError,
    },
    /// A server process did not start, or the fleet agreed on no leader.
    #[error(transparent)]
    Processes(#[from] cluster::ClusterError),
    /// The redb commit probe failed.
    #[error("redb probe: {0}")]
    RedbProbe(#[source] Box<redb::Error>),
    /// The load against `target` failed.
    #[error("{target}: {source}")]
    Run {
        /// The single vault, the fleet leader or the fleet follower.
        target: &'static str,
        /// The error.
        source: LoadError,
    },
}

/// Latency percentiles and throughput of one series.
#[derive(Debug, Clone)]
pub struct Series {
    /// Completed retrievals.
    pub count: usize,
    /// Wall time of the series.
    pub elapsed: Duration,
    /// Median latency.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

impl Series {
    pub(crate) fn new(mut latencies: Vec<Duration>, elapsed: Duration) -> Self {
        latencies.sort_unstable();
        let pick = |q: f64| {
            if latencies.is_empty() {
                return Duration::ZERO;
            }
            let index = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len());
            latencies[index - 1]
        };
        Self { count: latencies.len(), elapsed, p50: pick(0.50), p90: pick(0.90), p99: pick(0.99) }
    }

    /// Retrievals per second.
    pub fn rate(&self) -> f64 {
        self.count as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The figures of one run.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Clients.
    pub clients: usize,
    /// Cores of this machine (client and server share them on loopback).
    pub cores: usize,
    /// The stretching profile the server asked for.
    pub ksf_profile: u8,
    /// Over HTTP, against the server.
    pub http: Series,
    /// In process, one thread, through [`MemoryVault`].
    pub in_process: Series,
}

impl LoadReport {
    /// HTTP retrievals per second per core.
    pub fn http_per_core(&self) -> f64 {
        self.http.rate() / self.cores as f64
    }

    /// HTTP retrievals per second per core over in-process retrievals per second (one core).
    pub fn ratio(&self) -> f64 {
        self.http_per_core() / self.in_process.rate().max(1e-9)
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let profile = match KsfProfile::from_code(self.ksf_profile) {
            Some(KsfProfile::Fast) => "fast",
            Some(KsfProfile::Mobile) => "mobile",
            None => "unknown",
        };
        writeln!(
            f,
            "retrieval = KE1 (durable charge) + KE3 (durable restore) + opening K; ksf {profile}"
        )?;
        writeln!(
            f,
            "http:       {} clients, {} retrievals in {:.1} s = {:.1} retrievals/s, {:.1} per core \
             ({} cores, shared by clients and server); latency p50 {} p90 {} p99 {}",
            self.clients,
            self.http.count,
            self.http.elapsed.as_secs_f64(),
            self.http.rate(),
            self.http_per_core(),
            self.cores,
            ms(self.http.p50),
            ms(self.http.p90),
            ms(self.http.p99)
        )?;
        writeln!(
            f,
            "in-process: 1 thread, MemoryVault, {} retrievals in {:.1} s = {:.1} retrievals/s \
             (one core); latency p50 {} p90 {} p99 {}",
            self.in_process.count,
            self.in_process.elapsed.as_secs_f64(),
            self.in_process.rate(),
            ms(self.in_process.p50),
            ms(self.in_process.p90),
            ms(self.in_process.p99)
        )?;
        write!(
            f,
            "ratio:      http per core / in-process = {:.2} (overhead of HTTP, durable writes and \
             scheduling: x{:.2})",
            self.ratio(),
            1.0 / self.ratio().max(1e-9)
        )
    }
}

fn random_suffix() -> String {
    let mut bytes = [0u8; 6];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The in-process cost of one retrieval, client and vault on one thread.
fn in_process(ksf: KsfProfile, seconds: u64) -> Series {
    let fleet = FleetId::from_static(b"load.in-process");
    let secrets = HsmSecrets::generate(&mut OsRng, fleet);
    let (id, public) = secrets.public_keys()[0];
    let config = HsmConfig { ksf_profile: ksf, ..HsmConfig::default() };
    let hsm = Hsm::new(secrets, config).expect("a valid policy");
    let mut vault = MemoryVault::new(hsm, unix_now());
    let endpoint = Endpoint::new(fleet, id, public).accepting_fast_ksf();
    let (account, password, key) =
        (AccountId::from_static(b"in-process"), b"load password", BackupKey::generate());
    drive::register(&mut vault, &mut OsRng, &endpoint, account, password, &key)
        .expect("registered");

    let mut latencies = Vec::new();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        let t = Instant::now();
        let done = drive::login(&mut vault, &mut OsRng, &endpoint, account, password).expect("K");
        assert!(done.key() == &key, "the in-process vault returned another key");
        latencies.push(t.elapsed());
    }
    Series::new(latencies, started.elapsed())
}

/// Runs the load. Bounded by `seconds` and `clients`; stops by itself.
pub fn run(options: &LoadOptions) -> Result<LoadReport, LoadError> {
    if options.clients == 0 || options.clients > MAX_CLIENTS {
        return Err(LoadError::Clients);
    }
    if options.seconds == 0 || options.seconds > MAX_SECONDS {
        return Err(LoadError::Seconds);
    }
    let mut http = HttpVault::new(&options.url).map_err(JourneyError::from)?;
    let bundle = client::fetch_bundle(&mut http, &options.pin, unix_now(), None)?;
    let endpoint = Endpoint::from_bundle(&bundle).map_err(JourneyError::from)?.accepting_fast_ksf();

    // One account per client: two concurrent logins of one account would clear each other's
    // pending attempt (a success clears the others), which is right but not what we measure.
    let run_id = random_suffix();
    let mut accounts = Vec::with_capacity(options.clients);
    for i in 0..options.clients {
        let account = format!("load-{run_id}-{i}").into_bytes();
        let key = BackupKey::generate();
        client::register(&mut http, &endpoint, account_id(&account), b"load password", &key)?;
        accounts.push((account, key));
    }
    let ksf_profile = detect_profile(&mut http, &bundle, &accounts[0].0)?;

    let in_process = in_process(
        KsfProfile::from_code(ksf_profile).unwrap_or(KsfProfile::Fast),
        options.in_process_seconds.max(1),
    );

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(options.seconds);
    let threads: Vec<_> = accounts
        .into_iter()
        .map(|(account, key)| {
            let (url, endpoint, stop) = (options.url.clone(), endpoint.clone(), stop.clone());
            std::thread::spawn(move || -> Result<Vec<Duration>, String> {
                let mut http = HttpVault::new(&url).map_err(|e| e.to_string())?;
                let mut latencies = Vec::new();
                while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match client::login(
                        &mut http,
                        &endpoint,
                        account_id(&account),
                        b"load password",
                    ) {
                        Ok(done) if done.key() == &key => latencies.push(t.elapsed()),
                        Ok(_) => {
                            stop.store(true, Ordering::Relaxed);
                            return Err("the vault returned another key".into());
                        }
                        Err(e) => {
                            stop.store(true, Ordering::Relaxed);
                            return Err(e.to_string());
                        }
                    }
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    for thread in threads {
        match thread.join() {
            Ok(Ok(mut l)) => latencies.append(&mut l),
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push("a client thread panicked".into()),
        }
    }
    let elapsed = started.elapsed();
    if let Some(first) = failures.first() {
        return Err(LoadError::Retrieval { failures: failures.len(), first: first.clone() });
    }
    Ok(LoadReport {
        clients: options.clients,
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        ksf_profile,
        http: Series::new(latencies, elapsed),
        in_process,
    })
}

/// The profile the server asks for: a client that refuses the fast profile fails with
/// `WeakKsf(2)` exactly when the server uses it. The attempt this charges stays pending until the
/// account's next successful login clears it.
fn detect_profile(
    http: &mut HttpVault,
    bundle: &e2ee_backup_vault::FleetBundle,
    account: &[u8],
) -> Result<u8, LoadError> {
    let strict = Endpoint::from_bundle(bundle).map_err(JourneyError::from)?;
    let (state, request) = Login::start(&mut OsRng, &strict, account_id(account), b"load password")
        .map_err(JourneyError::from)?;
    let response = http.call(account, &request).map_err(JourneyError::from)?;
    match state.receive(&mut OsRng, &response) {
        Err(e2ee_backup_vault::ClientError::WeakKsf(code)) => Ok(code),
        Ok(_) => Ok(KsfProfile::Mobile.code()),
        Err(e) => Err(LoadError::Setup(e.into())),
    }
}

// ---------------------------------------------------------------------------------------------
// `e2ee-backup-vault bench-fleet`: the same load against a single vault and a replicated fleet.
// ---------------------------------------------------------------------------------------------

/// What `bench-fleet` runs.
#[derive(Debug, Clone)]
pub struct BenchFleetOptions {
    /// The `e2ee-backup-vault` binary to start the servers with.
    pub exe: PathBuf,
    /// Replicas of the fleet (2 to 15).
    pub replicas: u8,
    /// Concurrent clients of each run (1 to 256).
    pub clients: usize,
    /// Seconds of each run (1 to 600).
    pub seconds: u64,
    /// Where the data directories go (kept); `None` for a fresh temporary directory, removed at
    /// the end.
    pub dir: Option<PathBuf>,
}

/// One run of `bench-fleet`.
#[derive(Debug, Clone)]
pub struct BenchRun {
    /// `single node`, `fleet leader` or `fleet follower`.
    pub target: &'static str,
    /// The load run's figures.
    pub report: LoadReport,
    /// CPU time of this process (the clients) over the run, less the in-process measurement.
    pub client_cpu: Option<Duration>,
    /// CPU time of the target's server processes (all replicas for the fleet) over the run.
    pub server_cpu: Option<Duration>,
    /// Raft log entries the leader applied over the run (setup included); fleet runs only.
    pub log_entries: Option<u64>,
    /// Flushes the disk of the bench directory completed over the run (`/proc/diskstats`, the
    /// whole machine), less the background rate measured before the runs.
    pub disk_flushes: Option<f64>,
}

impl BenchRun {
    fn cpu_per_retrieval(&self, cpu: Option<Duration>) -> Option<f64> {
        let count = self.report.http.count.max(1) as f64;
        cpu.map(|c| c.as_secs_f64() * 1000.0 / count)
    }

    /// The share of all cores the clients and servers kept busy during the run.
    pub fn cpu_busy(&self) -> Option<f64> {
        let total = self.client_cpu?.as_secs_f64() + self.server_cpu?.as_secs_f64();
        let budget = self.report.cores as f64 * self.report.http.elapsed.as_secs_f64();
        Some(total / budget.max(1e-9))
    }
}

/// What `bench-fleet` measured.
#[derive(Debug, Clone)]
pub struct FleetBenchReport {
    /// Replicas of the fleet.
    pub replicas: u8,
    /// The single node, the fleet's leader, a follower.
    pub runs: Vec<BenchRun>,
    /// Durable-write costs in the bench directory, measured before the runs.
    pub durable: DurableCosts,
    /// Median of a loopback `GET /healthz` on a kept-alive connection.
    pub round_trip: Duration,
    /// The 1-minute load average of the machine before and after the runs (other processes
    /// compete for the same cores).
    pub load_average: (Option<f64>, Option<f64>),
    /// The bench directory, when kept.
    pub kept_dir: Option<PathBuf>,
}

/// Medians of durable writes in one directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct DurableCosts {
    /// A 4 KiB overwrite + `fdatasync` (the file does not grow).
    pub fsync: Duration,
    /// A one-row redb commit with `Durability::Immediate`, as the store and the raft log do.
    pub redb_commit: Duration,
}

impl fmt::Display for FleetBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(single) = self.runs.first() else { return write!(f, "no runs") };
        let r = &single.report;
        writeln!(
            f,
            "bench-fleet: single node vs. a fleet of {} replicas; {} clients, {:.0} s per target, \
             ksf fast, loopback, {} cores shared by clients and servers",
            self.replicas,
            r.clients,
            r.http.elapsed.as_secs_f64(),
            r.cores
        )?;
        writeln!(
            f,
            "retrieval = KE1 (durable charge) + KE3 (durable restore) + opening K: two durable \
             commits each"
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<15} {:>12} {:>9} {:>9} {:>9} {:>11} {:>11} {:>20} {:>8}",
            "target",
            "retrievals/s",
            "p50",
            "p90",
            "p99",
            "rate/single",
            "p50/single",
            "CPU ms/retr cli+srv",
            "CPU busy"
        )?;
        let base_rate = r.http.rate().max(1e-9);
        let base_p50 = r.http.p50.as_secs_f64().max(1e-9);
        for run in &self.runs {
            let s = &run.report.http;
            let cpu = match (
                run.cpu_per_retrieval(run.client_cpu),
                run.cpu_per_retrieval(run.server_cpu),
            ) {
                (Some(c), Some(s)) => format!("{c:.2} + {s:.2}"),
                _ => "n/a".into(),
            };
            let busy = run.cpu_busy().map_or("n/a".into(), |b| format!("{:.0} %", b * 100.0));
            writeln!(
                f,
                "{:<15} {:>12.1} {:>9} {:>9} {:>9} {:>11} {:>11} {:>20} {:>8}",
                run.target,
                s.rate(),
                ms(s.p50),
                ms(s.p90),
                ms(s.p99),
                format!("x{:.2}", s.rate() / base_rate),
                format!("x{:.2}", s.p50.as_secs_f64() / base_p50),
                cpu,
                busy
            )?;
        }
        writeln!(
            f,
            "{:<15} {:>12.1} {:>9} {:>9} {:>9}   (1 thread, MemoryVault, no HTTP, no disk)",
            "in-process",
            r.in_process.rate(),
            ms(r.in_process.p50),
            ms(r.in_process.p90),
            ms(r.in_process.p99)
        )?;
        writeln!(f)?;
        let rtt = self.round_trip.as_secs_f64();
        let per_retrieval = |run: &BenchRun, n: Option<f64>| {
            n.map_or("n/a".into(), |n| format!("{:.2}", n / run.report.http.count.max(1) as f64))
        };
        writeln!(
            f,
            "where the time goes: one fdatasync of 4 KiB {}, one redb durable commit {} (medians, \
             bench directory, before the runs); loopback HTTP round trip {}.",
            ms(self.durable.fsync),
            ms(self.durable.redb_commit),
            ms(self.round_trip)
        )?;
        let commits = 2.0 * r.http.rate();
        writeln!(
            f,
            "  single: 2 commits per retrieval through redb's one writer = {commits:.0} commits/s \
             = {} per commit if the writer never idles; disk flushes per retrieval: {} (2 = one \
             fsync per commit).",
            ms(Duration::from_secs_f64(1.0 / commits.max(1e-9))),
            per_retrieval(single, single.disk_flushes)
        )?;
        if let Some(leader) = self.runs.get(1) {
            writeln!(
                f,
                "  fleet: log entries per retrieval: {}; disk flushes per retrieval (all {} \
                 replicas share the disk): {} ({} without batching). A commit waits for the \
                 leader's fsync || one follower's fsync + 1 round trip, then the apply: floor per \
                 retrieval 2 x (commit + round trip) = {}, measured p50 {}.",
                per_retrieval(leader, leader.log_entries.map(|e| e as f64)),
                self.replicas,
                per_retrieval(leader, leader.disk_flushes),
                2 * u32::from(self.replicas),
                ms(Duration::from_secs_f64(2.0 * (self.durable.redb_commit.as_secs_f64() + rtt))),
                ms(leader.report.http.p50)
            )?;
        }
        if let Some(follower) = self.runs.get(2) {
            writeln!(
                f,
                "  follower: + 2 forwarded requests (KE1, KE3) per retrieval: p50 {} vs. leader {}; \
                 disk flushes per retrieval {}.",
                ms(follower.report.http.p50),
                self.runs.get(1).map_or("n/a".into(), |l| ms(l.report.http.p50)),
                per_retrieval(follower, follower.disk_flushes)
            )?;
        }
        let load = |l: Option<f64>| l.map_or("n/a".into(), |l| format!("{l:.2}"));
        write!(
            f,
            "  CPU busy = CPU of these clients and servers / ({} cores x run time); near 100 % the \
             cores bound the rate. Machine load average before/after: {} / {} (other processes \
             share the cores).",
            r.cores,
            load(self.load_average.0),
            load(self.load_average.1)
        )?;
        if let Some(dir) = &self.kept_dir {
            write!(f, "\ndata and serve.log files kept in {}", dir.display())?;
        }
        Ok(())
    }
}

/// The bench directory; removed on drop when temporary.
pub(crate) struct BenchDir {
    pub(crate) path: PathBuf,
    pub(crate) remove: bool,
}

impl BenchDir {
    /// `dir` (created if missing, kept), or a fresh temporary directory named after `prefix`
    /// (removed on drop).
    pub(crate) fn new(dir: Option<&Path>, prefix: &str) -> Result<Self, BenchError> {
        if let Some(dir) = dir {
            std::fs::create_dir_all(dir)
                .map_err(|source| BenchError::Io { path: dir.to_path_buf(), source })?;
            return Ok(Self { path: dir.to_path_buf(), remove: false });
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos:x}", std::process::id()));
        std::fs::create_dir(&path)
            .map_err(|source| BenchError::Io { path: path.clone(), source })?;
        Ok(Self { path, remove: true })
    }
}

impl Drop for BenchDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A single vault's `serve` process; stopped (SIGTERM, then SIGKILL after 5 s) on drop.
pub(crate) struct ServeProcess {
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
}

impl ServeProcess {
    pub(crate) fn start(exe: &Path, data_dir: &Path) -> Result<Self, BenchError> {
        let (child, addr) = cluster::spawn_serve(exe, data_dir, &["--listen", "127.0.0.1:0"], &[])?;
        Ok(Self { child, addr })
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        cluster::terminate(&mut self.child);
    }
}

/// The first of `n` consecutive loopback ports that were all free a moment ago (each bound to
/// `127.0.0.1` and released).
pub(crate) fn free_ports(n: u16) -> Result<u16, BenchError> {
    for _ in 0..100 {
        let first = TcpListener::bind(("127.0.0.1", 0)).map_err(BenchError::Bind)?;
        let base = first.local_addr().map_err(BenchError::Bind)?.port();
        if u32::from(base) + u32::from(n) > 65535 {
            continue;
        }
        let rest: Result<Vec<_>, _> =
            (1..n).map(|i| TcpListener::bind(("127.0.0.1", base + i))).collect();
        if rest.is_ok() {
            return Ok(base);
        }
    }
    Err(BenchError::NoFreePorts(n))
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// Flushes completed by the block device holding `dir` (`/proc/diskstats`, Linux 5.5 and
/// later; `None` elsewhere or for a device it does not list).
fn disk_flushes(dir: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt as _;
    let dev = std::fs::metadata(dir).ok()?.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let stats = std::fs::read_to_string("/proc/diskstats").ok()?;
    stats.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let same = fields.first()?.parse::<u64>().ok()? == major
            && fields.get(1)?.parse::<u64>().ok()? == minor;
        // major, minor, name, then 4 read, 4 write, 3 queue, 4 discard and 2 flush fields.
        if same { fields.get(18)?.parse().ok() } else { None }
    })
}

/// Durable-write costs in `dir`.
fn durable_write_costs(dir: &Path) -> Result<DurableCosts, BenchError> {
    const SAMPLES: usize = 100;
    let path = dir.join("fsync-probe.bin");
    let fsync = (|| -> std::io::Result<Duration> {
        let mut file = std::fs::File::create(&path)?;
        let block = [0x5au8; 4096];
        file.write_all(&[0x5au8; 65536])?;
        file.sync_all()?;
        let mut samples = Vec::with_capacity(SAMPLES);
        for _ in 0..SAMPLES {
            let t = Instant::now();
            std::os::unix::fs::FileExt::write_all_at(&file, &block, 0)?;
            file.sync_data()?;
            samples.push(t.elapsed());
        }
        Ok(median(samples))
    })();
    let _ = std::fs::remove_file(&path);
    let fsync = fsync.map_err(|source| BenchError::Io { path: path.clone(), source })?;

    const PROBE: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("probe");
    let path = dir.join("commit-probe.redb");
    let redb_commit = (|| -> Result<Duration, BenchError> {
        let e = |e: redb::Error| BenchError::RedbProbe(Box::new(e));
        let db = redb::Database::create(&path).map_err(|x| e(x.into()))?;
        let mut samples = Vec::with_capacity(SAMPLES);
        // The first commits grow the file; measure the steady state.
        for i in 0..(2 * SAMPLES) as u64 {
            let t = Instant::now();
            let mut txn = db.begin_write().map_err(|x| e(x.into()))?;
            txn.set_durability(redb::Durability::Immediate);
            {
                let mut table = txn.open_table(PROBE).map_err(|x| e(x.into()))?;
                table.insert(i % 16, &[0x5au8; 200][..]).map_err(|x| e(x.into()))?;
            }
            txn.commit().map_err(|x| e(x.into()))?;
            if i >= SAMPLES as u64 {
                samples.push(t.elapsed());
            }
        }
        Ok(median(samples))
    })();
    let _ = std::fs::remove_file(&path);
    let redb_commit = redb_commit?;
    Ok(DurableCosts { fsync, redb_commit })
}

/// The 1-minute load average (Linux).
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

/// Median of `GET /healthz` on one kept-alive loopback connection.
fn round_trip(addr: SocketAddr) -> Duration {
    let mut http = HttpVault::at(addr).with_timeout(Duration::from_secs(5));
    let _ = http.health();
    let samples = (0..200)
        .filter_map(|_| {
            let t = Instant::now();
            http.health().ok().map(|()| t.elapsed())
        })
        .collect();
    median(samples)
}

/// User + system CPU time of process `pid` (all its threads, exited ones included), from
/// `/proc` (Linux; `None` elsewhere).
fn process_cpu(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 1..)?.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux architecture.
    Some(Duration::from_millis(ticks * 10))
}

fn cpu_of(pids: &[String]) -> Option<Duration> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|p| process_cpu(p)).sum()
}

/// Runs one load against `url`, measuring the CPU of this process and of `server_pids`.
fn bench_run(
    target: &'static str,
    options: &LoadOptions,
    server_pids: &[String],
) -> Result<BenchRun, BenchError> {
    eprintln!(
        "bench-fleet: {} clients for {} s against the {target} ({})",
        options.clients, options.seconds, options.url
    );
    let (client_before, server_before) = (process_cpu("self"), cpu_of(server_pids));
    let report = run(options).map_err(|source| BenchError::Run { target, source })?;
    let (client_after, server_after) = (process_cpu("self"), cpu_of(server_pids));
    let client_cpu = match (client_before, client_after) {
        // The in-process measurement ran one thread flat out inside this window.
        (Some(b), Some(a)) => Some(a.saturating_sub(b).saturating_sub(report.in_process.elapsed)),
        _ => None,
    };
    let server_cpu = match (server_before, server_after) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b)),
        _ => None,
    };
    Ok(BenchRun { target, report, client_cpu, server_cpu, log_entries: None, disk_flushes: None })
}

fn last_applied(fleet: &FleetProcesses, i: usize) -> Option<u64> {
    fleet.status(i)?["last_applied"].as_u64()
}

/// Runs `bench-fleet`: initialises (ksf fast, loopback) and starts a single vault and a fleet
/// of `replicas` as child processes of `exe`, runs the same load against the single vault, the
/// fleet's leader and one follower, then stops everything and removes the temporary directory
/// (also on error).
pub fn bench_fleet(options: &BenchFleetOptions) -> Result<FleetBenchReport, BenchError> {
    if options.replicas < 2 || options.replicas > 15 {
        return Err(BenchError::Replicas);
    }
    if options.clients == 0 || options.clients > MAX_CLIENTS {
        return Err(BenchError::Clients);
    }
    if options.seconds == 0 || options.seconds > MAX_SECONDS {
        return Err(BenchError::Seconds);
    }
    // Declared first, dropped last: the processes below stop before their files go.
    let dir = BenchDir::new(options.dir.as_deref(), "e2ee-bench-fleet")?;
    let single_dir = dir.path.join("single");
    let fleet_dir = dir.path.join("fleet");
    let n = u16::from(options.replicas);

    let single_port = free_ports(1)?;
    let single_init = e2ee_backup_vault_server::init(&InitOptions {
        replicas: 1,
        ksf: KsfName::Fast,
        listen: SocketAddr::from(([127, 0, 0, 1], single_port)),
        ..InitOptions::new(&single_dir, "bench.fleet")
    })
    .map_err(|source| BenchError::Init { dir: single_dir.clone(), source })?;
    let base = free_ports(2 * n)?;
    let fleet_init = e2ee_backup_vault_server::init(&InitOptions {
        replicas: options.replicas,
        ksf: KsfName::Fast,
        listen: SocketAddr::from(([127, 0, 0, 1], base)),
        peer_listen: SocketAddr::from(([127, 0, 0, 1], base + n)),
        ..InitOptions::new(&fleet_dir, "bench.fleet")
    })
    .map_err(|source| BenchError::Init { dir: fleet_dir.clone(), source })?;

    eprintln!("bench-fleet: starting a single vault and {n} replicas in {}", dir.path.display());
    let single = ServeProcess::start(&options.exe, &single_dir)?;
    let mut fleet = FleetProcesses::start(&options.exe, &fleet_dir, u64::from(n))?;
    let leader = fleet.wait_for_leader(Duration::from_secs(30))?;
    let follower = (leader + 1) % fleet.replicas.len();

    let load_before = load_average();
    let durable = durable_write_costs(&dir.path)?;
    let round_trip = round_trip(single.addr);

    let single_pids = vec![single.child.id().to_string()];
    let fleet_pids: Vec<String> = fleet.pids().iter().map(u32::to_string).collect();
    let load = |url: String, pin: &PinnedFleet, in_process_seconds| LoadOptions {
        url,
        pin: pin.clone(),
        clients: options.clients,
        seconds: options.seconds,
        in_process_seconds,
    };

    // The disk's background flush rate (other processes), to subtract from each run.
    let flushes_at = || disk_flushes(&dir.path);
    let background = {
        let (t, before) = (Instant::now(), flushes_at());
        std::thread::sleep(Duration::from_secs(1));
        before
            .zip(flushes_at())
            .map(|(b, a)| a.saturating_sub(b) as f64 / t.elapsed().as_secs_f64())
    };
    let measured = |run: &dyn Fn() -> Result<BenchRun, BenchError>| {
        let (t, before) = (Instant::now(), flushes_at());
        let mut result = run()?;
        result.disk_flushes = before.zip(flushes_at()).zip(background).map(|((b, a), rate)| {
            (a.saturating_sub(b) as f64 - rate * t.elapsed().as_secs_f64()).max(0.0)
        });
        Ok::<_, BenchError>(result)
    };

    let mut runs = Vec::with_capacity(3);
    let single_url = format!("http://{}", single.addr);
    runs.push(measured(&|| {
        bench_run("single node", &load(single_url.clone(), &single_init.pin.0, 2), &single_pids)
    })?);
    for (target, i) in [("fleet leader", leader), ("fleet follower", follower)] {
        let before = last_applied(&fleet, leader);
        let url = format!("http://{}", fleet.replicas[i].api);
        let mut run =
            measured(&|| bench_run(target, &load(url.clone(), &fleet_init.pin.0, 1), &fleet_pids))?;
        run.log_entries = match (before, last_applied(&fleet, leader)) {
            (Some(b), Some(a)) => Some(a.saturating_sub(b)),
            _ => None,
        };
        runs.push(run);
    }

    let load_after = load_average();
    eprintln!("bench-fleet: stopping the servers");
    fleet.stop();
    drop(single);
    Ok(FleetBenchReport {
        replicas: options.replicas,
        runs,
        durable,
        round_trip,
        load_average: (load_before, load_after),
        kept_dir: (!dir.remove).then(|| dir.path.clone()),
    })
}
