//! `e2ee-backup-vault populate` (issue 15): registers accounts `scale-0000000`,
//! `scale-0000001`, ... with the real registration journey (spec section 4.11: RegisterStart,
//! RegisterFinish, each sealed to the fleet key and opened by the HSM core) through the
//! in-process vault ([`MemoryVault`]) built on the data directory's own fleet secrets and
//! policy, on every core. It then writes the records the HSM decided into `vault.redb`, sealed
//! under fresh registration keys (spec section 4.13.1), in transactions of [`BATCH`] records, to
//! one or more data directories of one fleet (the replicas of a fleet hold the same records).
//! The records are what a server would have stored; only the path differs: no HTTP, no
//! consensus log, one commit per batch instead of one per request. Account `i` has the password
//! `scale password i` and the backup key SHA-256(`"e2ee-backups scale key"` || u64(i)), so a
//! load generator can log in to any of them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_vault::{
    AccountRecord, Endpoint, Hsm, HsmConfig, HsmSecrets, KsfProfile, MemoryVault, RecordChange,
    drive,
};
use rand_core::OsRng;
use sha2::{Digest as _, Sha256};

use e2ee_backup_vault_server::at_rest::Keyring;
use e2ee_backup_vault_server::files::{CONFIG_FILE, unix_now};
use e2ee_backup_vault_server::store;
use e2ee_backup_vault_server::{ConfigFile, RecordStore as _, RedbStore, StoreError};

use crate::account_id;
use crate::scale::ScaleError;

/// Records written per transaction.
pub const BATCH: usize = 20_000;
/// Accounts one worker registers before handing their records over.
const CHUNK: usize = 500;
/// The most accounts `populate` makes (ids have seven digits).
pub const MAX_ACCOUNTS: u64 = 10_000_000;
/// The account id of scale account `i`.
pub fn account(i: u64) -> Vec<u8> {
    format!("scale-{i:07}").into_bytes()
}

pub(crate) fn password(i: u64) -> Vec<u8> {
    format!("scale password {i}").into_bytes()
}

pub(crate) fn backup_key(i: u64) -> BackupKey {
    let digest =
        Sha256::new().chain_update(b"e2ee-backups scale key").chain_update(i.to_be_bytes());
    BackupKey::from_bytes(digest.finalize().into())
}

fn store_err(dir: &Path) -> impl FnOnce(StoreError) -> ScaleError + '_ {
    move |source| ScaleError::Store { dir: dir.to_path_buf(), source }
}

/// What to populate.
#[derive(Debug, Clone)]
pub struct PopulateOptions {
    /// Data directories of one fleet (a single vault, or replicas), none served meanwhile.
    pub dirs: Vec<PathBuf>,
    /// Accounts `scale-0000000` up to this many (exclusive) are made; those present are kept.
    pub accounts: u64,
    /// Registration threads.
    pub threads: usize,
}

/// What `populate` did.
#[derive(Debug, Clone, Copy)]
pub struct PopulateReport {
    /// Accounts registered now.
    pub added: u64,
    /// Accounts that were there already.
    pub present: u64,
    /// Wall time.
    pub elapsed: Duration,
}

impl fmt::Display for PopulateReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rate = self.added as f64 / self.elapsed.as_secs_f64().max(1e-9);
        write!(
            f,
            "registered {} accounts in {:.1} s ({rate:.0}/s); {} were there already",
            self.added,
            self.elapsed.as_secs_f64(),
            self.present
        )
    }
}

/// Accounts and the records the HSM decided for them.
type Records = Vec<(Vec<u8>, AccountRecord)>;

/// One data directory's store, and its keys (registration keys are made durable per batch).
struct Target {
    dir: PathBuf,
    keys: Arc<Keyring>,
    store: RedbStore,
}

impl Target {
    fn open(dir: &Path) -> Result<Self, ScaleError> {
        let keys = Arc::new(Keyring::open(dir).map_err(store_err(dir))?);
        let db = store::open_database(dir).map_err(store_err(dir))?;
        let store = RedbStore::new(db, keys.clone()).map_err(store_err(dir))?;
        Ok(Self { dir: dir.to_path_buf(), keys, store })
    }

    /// Writes `records` in one transaction, their keys first (one write of each key file).
    fn write(&self, records: &[(Vec<u8>, AccountRecord)]) -> Result<(), ScaleError> {
        self.keys
            .prepare_registrations(records.iter().map(|(a, r)| (a.as_slice(), r.record_version)))
            .map_err(store_err(&self.dir))?;
        let changes: Vec<_> =
            records.iter().map(|(a, r)| (a.as_slice(), RecordChange::Put(r.clone()))).collect();
        let refs: Vec<_> = changes.iter().map(|(a, c)| (*a, c)).collect();
        for result in self.store.apply_all(&refs) {
            result.map_err(store_err(&self.dir))?;
        }
        Ok(())
    }
}

/// Registers the missing accounts of `options` in process and writes them to every directory;
/// `progress(done, to_do)` after each batch.
pub fn populate(
    options: &PopulateOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<PopulateReport, ScaleError> {
    let first = options.dirs.first().ok_or(ScaleError::Option("no --data-dir"))?;
    if options.accounts > MAX_ACCOUNTS {
        return Err(ScaleError::Option("--accounts must be at most 10000000"));
    }
    let started = Instant::now();
    let secrets = e2ee_backup_vault_server::files::read_secrets(first)?.to_bytes();
    for other in &options.dirs[1..] {
        if e2ee_backup_vault_server::files::read_secrets(other)?.to_bytes() != secrets {
            return Err(ScaleError::OtherFleet { first: first.clone(), other: other.clone() });
        }
    }
    let policy = ConfigFile::read(&first.join(CONFIG_FILE))?.policy();
    let targets =
        options.dirs.iter().map(|dir| Target::open(dir)).collect::<Result<Vec<_>, _>>()?;
    let mut missing = Vec::new();
    for i in 0..options.accounts {
        if !targets[0].store.contains(&account(i)).map_err(store_err(first))? {
            missing.push(i);
        }
    }
    let to_do = missing.len() as u64;
    let threads = options.threads.max(1);

    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = sync_channel::<Result<Records, ScaleError>>(threads * 2);
    let written = std::thread::scope(|scope| {
        for _ in 0..threads {
            let tx = tx.clone();
            let (missing, next, stop, secrets) = (&missing, &next, &stop, &secrets);
            scope.spawn(move || {
                let outcome = register_chunks(secrets, policy, missing, next, stop, &tx);
                if let Err(e) = outcome {
                    let _ = tx.send(Err(e));
                }
            });
        }
        drop(tx);
        let mut batch = Vec::with_capacity(BATCH + CHUNK);
        let mut done = 0u64;
        let mut write = |batch: &mut Records| {
            for target in &targets {
                target.write(batch)?;
            }
            done += batch.len() as u64;
            batch.clear();
            progress(done, to_do);
            Ok::<_, ScaleError>(done)
        };
        let outcome = (|| {
            for records in &rx {
                batch.extend(records?);
                if batch.len() >= BATCH {
                    write(&mut batch)?;
                }
            }
            write(&mut batch)
        })();
        stop.store(true, Ordering::Relaxed);
        drop(rx);
        outcome
    })?;
    Ok(PopulateReport {
        added: written,
        present: options.accounts - to_do,
        elapsed: started.elapsed(),
    })
}

/// One registration thread: its own in-process vault on the fleet secrets, taking chunks of
/// `missing` until none is left (or `stop`).
fn register_chunks(
    secrets: &[u8],
    policy: HsmConfig,
    missing: &[u64],
    next: &AtomicUsize,
    stop: &AtomicBool,
    tx: &std::sync::mpsc::SyncSender<Result<Records, ScaleError>>,
) -> Result<(), ScaleError> {
    let invalid = |message: String| ScaleError::Register { account: "-".into(), message };
    let secrets = HsmSecrets::from_bytes(secrets).map_err(|e| invalid(e.to_string()))?;
    let (key_id, public) = secrets.public_keys()[0];
    let mut endpoint = Endpoint::new(secrets.fleet_id(), key_id, public);
    let hsm = Hsm::new(secrets, policy).map_err(|e| invalid(e.to_string()))?;
    let mut vault = MemoryVault::new(hsm, unix_now());
    if policy.ksf_profile == KsfProfile::Fast {
        endpoint = endpoint.accepting_fast_ksf();
    }
    while !stop.load(Ordering::Relaxed) {
        let start = next.fetch_add(CHUNK, Ordering::Relaxed);
        let Some(chunk) = missing.get(start..missing.len().min(start + CHUNK)) else { break };
        if chunk.is_empty() {
            break;
        }
        for &i in chunk {
            let id = account(i);
            drive::register(
                &mut vault,
                &mut OsRng,
                &endpoint,
                account_id(&id),
                &password(i),
                &backup_key(i),
            )
            .map_err(|e| ScaleError::Register {
                account: String::from_utf8_lossy(&id).into_owned(),
                message: e.to_string(),
            })?;
        }
        if tx.send(Ok(vault.drain_records().collect())).is_err() {
            break;
        }
    }
    Ok(())
}
