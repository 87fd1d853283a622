//! The load generator behind `e2ee-backup-vault load`: registers one account per client, runs
//! the clients' retrieval loops (log in, get K) against a server for a bounded time, and
//! measures the same retrieval through the in-process sans-IO core ([`MemoryVault`]) in the
//! same run, so that the cost of HTTP, the durable store and the scheduling shows as a ratio.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_vault::client::{Endpoint, Login, Registration};
use e2ee_backup_vault::fleet::PinnedFleet;
use e2ee_backup_vault::hsm::{Hsm, HsmConfig, HsmSecrets};
use e2ee_backup_vault::memory::MemoryVault;
use e2ee_backup_vault::suite::KsfProfile;
use rand_core::{OsRng, RngCore as _};
use thiserror::Error;

use crate::client::{self, HttpVault, JourneyError};
use crate::files::unix_now;

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
    /// An option is out of range.
    #[error("invalid option: {0}")]
    Option(String),
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
    fn new(mut latencies: Vec<Duration>, elapsed: Duration) -> Self {
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
    let fleet = b"load.in-process";
    let secrets = HsmSecrets::generate(&mut OsRng, fleet);
    let (id, public) = secrets.public_keys()[0];
    let config = HsmConfig { ksf_profile: ksf, ..HsmConfig::default() };
    let hsm = Hsm::new(secrets, config).expect("a valid policy");
    let mut vault = MemoryVault::new(hsm, unix_now());
    let endpoint = Endpoint::new(fleet, id, public).accepting_fast_ksf();
    let (account, password, key) =
        (b"in-process".as_slice(), b"load password", BackupKey::generate());
    let (state, request) =
        Registration::start(&mut OsRng, &endpoint, account, password, None).expect("register");
    let response = vault.call(&mut OsRng, &request).expect("opens");
    let (state, request) = state.receive(&mut OsRng, &response, &key).expect("register");
    state.receive(&vault.call(&mut OsRng, &request).expect("opens")).expect("registered");

    let mut latencies = Vec::new();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        let t = Instant::now();
        let (state, request) = Login::start(&mut OsRng, &endpoint, account, password).unwrap();
        let response = vault.call(&mut OsRng, &request).expect("opens");
        let (state, request) = state.receive(&mut OsRng, &response).expect("right password");
        let done = state.receive(&vault.call(&mut OsRng, &request).expect("opens")).expect("K");
        assert!(done.key() == &key, "the in-process vault returned another key");
        latencies.push(t.elapsed());
    }
    Series::new(latencies, started.elapsed())
}

/// Runs the load. Bounded by `seconds` and `clients`; stops by itself.
pub fn run(options: &LoadOptions) -> Result<LoadReport, LoadError> {
    if options.clients == 0 || options.clients > MAX_CLIENTS {
        return Err(LoadError::Option(format!("--clients must be 1 to {MAX_CLIENTS}")));
    }
    if options.seconds == 0 || options.seconds > MAX_SECONDS {
        return Err(LoadError::Option(format!("--seconds must be 1 to {MAX_SECONDS}")));
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
        client::register(&mut http, &endpoint, &account, b"load password", &key)?;
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
                    match client::login(&mut http, &endpoint, &account, b"load password") {
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
    bundle: &e2ee_backup_vault::fleet::FleetBundle,
    account: &[u8],
) -> Result<u8, LoadError> {
    let strict = Endpoint::from_bundle(bundle).map_err(JourneyError::from)?;
    let (state, request) =
        Login::start(&mut OsRng, &strict, account, b"load password").map_err(JourneyError::from)?;
    let response = http.call(account, &request).map_err(JourneyError::from)?;
    match state.receive(&mut OsRng, &response) {
        Err(e2ee_backup_vault::client::ClientError::WeakKsf(code)) => Ok(code),
        Ok(_) => Ok(KsfProfile::Mobile.code()),
        Err(e) => Err(LoadError::Setup(e.into())),
    }
}
