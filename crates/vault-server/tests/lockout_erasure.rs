//! Lockout erases every copy (spec section 4.13.1, issue 10 finding 4), against real
//! `e2ee-backup-vault serve` processes: a single vault and a fleet of three replicas.
//!
//! The attacker copies a replica's whole data directory, fleet secrets and key files included,
//! at any moment, and reads every byte of every file (freed database pages too): in the clear,
//! and through every sealed value the copied keys open. Before the lockout such a copy yields
//! the victim's registration (the record with its registration ticket, which the fleet secrets
//! open to the OPRF seed: an offline dictionary attack). After the lockout is acknowledged,
//! within a bounded time (the replicas' snapshot and log purge), no copy yields any of the
//! registration's bytes: its key is destroyed and the log key that sealed its `RegisterFinish`
//! has been rotated away. Before this rule, the registration ticket and the sealed K stayed in
//! `vault.redb` in the clear (freed pages, and every replica's log) indefinitely.
//!
//! A bystander's registration survives the erasure and a restart of every process.

use e2ee_backup_vault::{AccountId, AccountRecord, AccountState, ClientError, Endpoint, Login};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::cluster::{FleetProcesses, Signal};
use e2ee_backup_kdf::BackupKey;
use e2ee_backup_vault_server::at_rest::Keyring;
use e2ee_backup_vault_server::client::{self, HttpVault};
use e2ee_backup_vault_server::files::{
    CONFIG_FILE, ConfigFile, FleetPin, PIN_FILE, replica_dir, unix_now,
};
use rand_core::OsRng;

mod common;

use common::{Served, free_loopback, init_dir, init_fleet, place_replicas};

const EXE: &str = env!("CARGO_BIN_EXE_e2ee-backup-vault");
const BUDGET: u8 = 3;
const VICTIM: &[u8] = b"victim";
const BYSTANDER: &[u8] = b"bystander";
const PASSWORD: &[u8] = b"correct horse battery staple";
/// How long the replicas may take to snapshot and purge after acknowledging the lockout.
const ERASURE_BOUND: Duration = Duration::from_secs(30);

/// Every regular file under `dir`, read now (the copy an attacker takes).
fn copy_dir(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).expect("the directory lists") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                pending.push(path);
            } else if path.is_file()
                && let Ok(bytes) = std::fs::read(&path)
            {
                files.push((path, bytes));
            }
        }
    }
    files
}

/// Writes a copy to `to` (so that the copied key files can be opened as a keyring).
fn materialise(from: &Path, files: &[(PathBuf, Vec<u8>)], to: &Path) {
    for (path, bytes) in files {
        let target = to.join(path.strip_prefix(from).expect("inside the directory"));
        std::fs::create_dir_all(target.parent().expect("a parent")).expect("created");
        std::fs::write(target, bytes).expect("written");
    }
}

/// Everything the attacker reads in a copy of `dir`: the raw files, and every plaintext the
/// copied keys open anywhere in them.
struct Loot {
    raw: Vec<Vec<u8>>,
    opened: Vec<Vec<u8>>,
}

fn loot(dir: &Path, account: &[u8]) -> Loot {
    let files = copy_dir(dir);
    let copy = tempfile::tempdir().expect("a temporary directory");
    materialise(dir, &files, copy.path());
    let keys = Keyring::open(copy.path()).expect("the copied keys open");
    let opened = files
        .iter()
        .flat_map(|(_, bytes)| keys.recover(bytes, account))
        .map(|p| p.to_vec())
        .collect();
    Loot { raw: files.into_iter().map(|(_, bytes)| bytes).collect(), opened }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

impl Loot {
    /// The victim's registered record, if the copy yields one.
    fn registration(&self) -> Option<AccountRecord> {
        self.opened
            .iter()
            .filter_map(|p| AccountRecord::decode(p).ok())
            .find(|r| r.state == AccountState::Registered)
    }

    /// Where the copy still holds `secret`: in the clear, or under a key it holds.
    fn holds(&self, secret: &[u8]) -> (bool, bool) {
        (
            self.raw.iter().any(|f| contains(f, secret)),
            self.opened.iter().any(|p| contains(p, secret)),
        )
    }
}

/// The secrets of the victim's registration, taken from a copy made before the lockout.
struct Registration {
    account: &'static [u8],
    ticket: Vec<u8>,
    registration: Vec<u8>,
    sealed_key: Vec<u8>,
}

impl Registration {
    fn from_copy(dir: &Path, account: &'static [u8]) -> Registration {
        let loot = loot(dir, account);
        let record = loot.registration().expect("a copy taken before the lockout opens the record");
        let found = Registration {
            account,
            ticket: record.oprf_ticket.clone(),
            registration: record.registration.clone(),
            sealed_key: record.sealed_key.clone(),
        };
        for secret in found.secrets() {
            assert!(!loot.holds(secret).0, "nothing of a registration is on disk in the clear");
        }
        found
    }

    fn secrets(&self) -> [&[u8]; 3] {
        [&self.ticket, &self.registration, &self.sealed_key]
    }

    /// Whether a copy of `dir` taken now still yields any of it.
    fn leaks_from(&self, dir: &Path) -> Option<String> {
        let loot = loot(dir, self.account);
        for (name, secret) in ["ticket", "registration", "sealed K"].iter().zip(self.secrets()) {
            match loot.holds(secret) {
                (true, _) => return Some(format!("the {name} is in the clear")),
                (_, true) => return Some(format!("the {name} opens under a copied key")),
                _ => {}
            }
        }
        None
    }
}

/// Waits (bounded) until no copy of any of `dirs` yields the registration.
fn assert_erased(registration: &Registration, dirs: &[PathBuf]) -> Duration {
    let start = Instant::now();
    loop {
        let leaks: Vec<_> = dirs
            .iter()
            .filter_map(|d| registration.leaks_from(d).map(|why| format!("{}: {why}", d.display())))
            .collect();
        if leaks.is_empty() {
            return start.elapsed();
        }
        assert!(start.elapsed() < ERASURE_BOUND, "still recoverable after the lockout: {leaks:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Attempts stay open this long (seconds): the vault locks an account only once no charged
/// attempt can still succeed.
const SESSION_LIFETIME: u64 = 2;

/// Shortens the attempts' lifetime in the configuration of `data_dir`.
fn short_sessions(data_dir: &Path) {
    let path = data_dir.join(CONFIG_FILE);
    let mut config = ConfigFile::read(&path).expect("the configuration");
    config.session_lifetime = SESSION_LIFETIME;
    std::fs::write(&path, config.render()).expect("written");
}

#[derive(Debug, PartialEq, Eq)]
enum Guess {
    Ke2(u8),
    Exhausted,
    Locked,
    /// 503: no decision (a fleet between leaders); nothing was charged that was answered.
    Unavailable,
}

/// One wrong guess.
fn guess(http: &mut HttpVault, endpoint: &Endpoint) -> Guess {
    let (state, ke1) =
        Login::start(&mut OsRng, endpoint, AccountId::from_static(VICTIM), b"a wrong guess")
            .expect("KE1");
    let response = match http.call(VICTIM, &ke1) {
        Ok(response) => response,
        Err(client::HttpError::Server { status: 503, .. }) => return Guess::Unavailable,
        Err(e) => panic!("a guess: {e}"),
    };
    match state.receive(&mut OsRng, &response) {
        Err(ClientError::WrongPassword { remaining }) => Guess::Ke2(remaining),
        Err(ClientError::Exhausted) => Guess::Exhausted,
        Err(ClientError::Locked) => Guess::Locked,
        other => panic!("a wrong guess answered {:?}", other.map(|_| "a login")),
    }
}

/// Spends the victim's budget through `http`, then asks until the vault answers `locked` (once
/// the charged attempts have expired); the `remaining` of each KE2.
fn lock_out(http: &mut HttpVault, endpoint: &Endpoint) -> Vec<u8> {
    let (mut seen, mut waits) = (Vec::new(), 0);
    loop {
        match guess(http, endpoint) {
            Guess::Ke2(remaining) => seen.push(remaining),
            Guess::Exhausted | Guess::Unavailable => {
                waits += 1;
                assert!(waits < 40, "the account never locked");
                std::thread::sleep(Duration::from_millis(500));
            }
            Guess::Locked => return seen,
        }
        assert!(seen.len() <= usize::from(BUDGET), "more KE2s than the budget: {seen:?}");
    }
}

#[test]
fn a_single_vault_erases_a_locked_registration() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    init_dir(dir.path(), "fleet.erasure", BUDGET);
    short_sessions(dir.path());
    let served = Served::start(dir.path(), "serve.log");
    let mut http = served.http();
    let endpoint = common::endpoint(&mut http, dir.path());
    for account in [VICTIM, BYSTANDER] {
        client::register(
            &mut http,
            &endpoint,
            AccountId::new(account).unwrap(),
            PASSWORD,
            &BackupKey::generate(),
        )
        .expect("registered");
    }
    let registration = Registration::from_copy(dir.path(), VICTIM);

    assert_eq!(lock_out(&mut http, &endpoint), vec![2, 1, 0]);
    let took = assert_erased(&registration, &[dir.path().to_path_buf()]);
    eprintln!("single vault: nothing recoverable {took:?} after the lockout");

    // The bystander is untouched, also after a crash and a restart (the key sweep at start).
    client::login(&mut http, &endpoint, AccountId::from_static(BYSTANDER), PASSWORD)
        .expect("the bystander logs in");
    let addr = served.addr;
    served.kill();
    let served = Served::start_at(dir.path(), "serve-2.log", addr);
    let mut http = served.http();
    let session = client::login(&mut http, &endpoint, AccountId::from_static(BYSTANDER), PASSWORD)
        .expect("and after a restart");
    assert_eq!(guess(&mut http, &endpoint), Guess::Locked, "the victim stays locked");

    // Delete ends a registration too.
    let bystander = Registration::from_copy(dir.path(), BYSTANDER);
    client::delete(&mut http, session, AccountId::from_static(BYSTANDER)).expect("deleted");
    let took = assert_erased(&bystander, &[dir.path().to_path_buf()]);
    eprintln!("single vault: nothing recoverable {took:?} after the delete");
}

/// Runs `journey` against the fleet's leader, again (bounded) while the fleet answers 503 (a
/// leader still being elected, an election after start).
fn at_leader<T>(
    procs: &FleetProcesses,
    apis: &[std::net::SocketAddr],
    what: &str,
    mut journey: impl FnMut(&mut HttpVault) -> Result<T, client::JourneyError>,
) -> T {
    for attempt in 1.. {
        let leader = procs.wait_for_leader(Duration::from_secs(30)).expect("a leader");
        let mut http = HttpVault::at(apis[leader]).with_timeout(Duration::from_secs(25));
        match journey(&mut http) {
            Ok(value) => return value,
            Err(e) if attempt < 20 => eprintln!("{what}: {e}; retrying"),
            Err(e) => panic!("{what}: {e}"),
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    unreachable!()
}

#[test]
fn every_replica_erases_a_locked_registration() {
    const REPLICAS: usize = 3;
    let root = tempfile::tempdir().expect("a temporary directory");
    let dir = root.path().join("fleet");
    let apis: Vec<_> = (0..REPLICAS).map(|_| free_loopback()).collect();
    let peers: Vec<_> = (0..REPLICAS).map(|_| free_loopback()).collect();
    init_fleet(&dir, "fleet.erasure", BUDGET, &apis, &peers);
    place_replicas(&dir, &apis, &peers, &peers);
    for node in 1..=REPLICAS as u64 {
        short_sessions(&replica_dir(&dir, node));
    }
    let mut procs = FleetProcesses::start(Path::new(EXE), &dir, REPLICAS as u64).expect("started");
    let pin = FleetPin::read(&dir.join(PIN_FILE)).expect("the pin");
    let bundle = at_leader(&procs, &apis, "the bundle", |http| {
        client::fetch_bundle(http, &pin.0, unix_now(), None)
    });
    let endpoint = Endpoint::from_bundle(&bundle).expect("the bundle").accepting_fast_ksf();
    for account in [VICTIM, BYSTANDER] {
        at_leader(&procs, &apis, "register", |http| {
            client::register(
                http,
                &endpoint,
                AccountId::new(account).unwrap(),
                PASSWORD,
                &BackupKey::generate(),
            )
        });
    }
    // Logins commit more entries: every replica has applied both registrations, and its
    // state-machine writes have reached the file with a later durable commit.
    for _ in 0..3 {
        at_leader(&procs, &apis, "login", |http| {
            client::login(http, &endpoint, AccountId::from_static(BYSTANDER), PASSWORD)
        });
    }
    let replica_dirs: Vec<PathBuf> = procs.replicas.iter().map(|r| r.data_dir.clone()).collect();
    let registrations: Vec<_> =
        replica_dirs.iter().map(|d| Registration::from_copy(d, VICTIM)).collect();
    for other in &registrations[1..] {
        assert_eq!(other.ticket, registrations[0].ticket, "one registration on every replica");
    }

    let leader = procs.wait_for_leader(Duration::from_secs(30)).expect("a leader");
    let mut http = HttpVault::at(apis[leader]).with_timeout(Duration::from_secs(25));
    assert_eq!(lock_out(&mut http, &endpoint), vec![2, 1, 0]);
    let took = assert_erased(&registrations[0], &replica_dirs);
    eprintln!("fleet: nothing recoverable on any replica {took:?} after the lockout");

    at_leader(&procs, &apis, "login", |http| {
        client::login(http, &endpoint, AccountId::from_static(BYSTANDER), PASSWORD)
    });
    for i in 0..REPLICAS {
        procs.signal(i, Signal::Kill).expect("killed");
    }
    for i in 0..REPLICAS {
        procs.restart(i).expect("restarted");
    }
    at_leader(&procs, &apis, "login after a restart of every replica", |http| {
        client::login(http, &endpoint, AccountId::from_static(BYSTANDER), PASSWORD)
    });
    let leader = procs.wait_for_leader(Duration::from_secs(30)).expect("a leader");
    let mut http = HttpVault::at(apis[leader]).with_timeout(Duration::from_secs(25));
    assert_eq!(guess(&mut http, &endpoint), Guess::Locked, "the victim stays locked");
    procs.stop();
}
