//! The client state machine (spec sections 5.2 to 5.7): the public types, setting a client
//! up and opening it, its status, and the persistence every journey shares (each step is
//! durable before the next, spec sections 5.4 and 5.6).
//!
//! Each journey is one file, an `impl Client` block of its own:
//!
//! * [`settings`]: the store, the vault and the account of an existing client (5.3);
//! * [`vault`]: the transport, the fleet bundle (5.3.1), logins and lockout (5.3.2);
//! * [`enable`]: turning backups on with a key or a password (5.3);
//! * [`abort`]: dropping an interrupted operation (5.6, 5.6.2);
//! * [`backup`]: making a backup (5.3, 5.6.3, 5.8);
//! * [`restore`]: restoring the newest backup (5.5);
//! * [`modes`]: changing the password and switching modes (5.3);
//! * [`rotate`]: key rotation (5.6.2);
//! * [`disable`]: turning backups off (5.3);
//! * [`snapshots`]: snapshots of whole directories (chapter 8);
//! * [`stream`]: the bounded-memory copy the backups, restores and rotations share (5.8).

mod abort;
mod backup;
mod disable;
mod enable;
mod modes;
mod restore;
mod rotate;
mod settings;
mod snapshots;
mod stream;
mod vault;

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_vault::{AccountId, Endpoint};
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::faults::{self, FaultInjector, NoFaults};
use crate::pin::FleetPin;
use crate::state::{Journal, Keystore, Mode, STATE_FORMAT, State, StateDir, VaultSettings};
use crate::store::{self, BackupStore};
use crate::transport::{RetryNotice, RetryPolicy, VaultTransport};

/// What a new client is set up with.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The account identifier (1 to 64 bytes, for example `+15551234567`).
    pub account: String,
    /// The backup store: a directory, or an `object_store` URL.
    pub store: String,
    /// The vault's base URL and fleet pin; `None` allows key mode only.
    pub vault: Option<(String, FleetPin)>,
}

/// How this process runs the client: nothing here is persisted.
pub struct Options {
    /// The vault transport; `None` builds an [`HttpTransport`](crate::transport::HttpTransport)
    /// from the state's vault URL.
    pub transport: Option<Box<dyn VaultTransport>>,
    /// An object store to use instead of opening the state's store location.
    pub store: Option<Arc<dyn ObjectStore>>,
    /// Options for `object_store::parse_url_opts` (credentials, region); never persisted.
    pub store_options: Vec<(String, String)>,
    /// Fault injection for crash tests.
    pub faults: Arc<dyn FaultInjector>,
    /// The Unix time to use instead of the system clock.
    pub now: Option<u64>,
    /// Accept the vault's fast stretching profile. Tests only.
    pub accept_fast_ksf: bool,
    /// The part size of uploads, which bounds the memory an upload buffers
    /// ([`store::DEFAULT_PART_SIZE`]; at least [`store::MIN_PART_SIZE`]).
    pub part_size: usize,
    /// How the HTTP transport retries a vault request that did nothing ([`RetryPolicy`]).
    pub retry: RetryPolicy,
    /// Told before each such retry (the CLI prints "retrying (2/5)").
    pub on_retry: Option<RetryNotice>,
    /// Told how far backups, restores and rotations have come.
    pub on_progress: Option<ProgressNotice>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            transport: None,
            store: None,
            store_options: Vec::new(),
            faults: Arc::new(NoFaults),
            now: None,
            accept_fast_ksf: false,
            part_size: store::DEFAULT_PART_SIZE,
            retry: RetryPolicy::default(),
            on_retry: None,
            on_progress: None,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("transport", &self.transport.is_some())
            .field("store", &self.store.is_some())
            .field("store_options", &self.store_options.iter().map(|o| &o.0).collect::<Vec<_>>())
            .field("now", &self.now)
            .field("accept_fast_ksf", &self.accept_fast_ksf)
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

/// What to back up.
pub enum Source<'a> {
    /// A file.
    Path(&'a Path),
    /// Bytes in memory.
    Bytes(&'a [u8]),
    /// A stream read to its end, such as standard input; its length is not known ahead.
    Reader(&'a mut dyn std::io::Read),
}

impl std::fmt::Debug for Source<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Path(path) => f.debug_tuple("Path").field(path).finish(),
            Source::Bytes(bytes) => write!(f, "Bytes({} bytes)", bytes.len()),
            Source::Reader(_) => f.write_str("Reader"),
        }
    }
}

/// How far a long copy has come (a backup's upload, a restore's download, a rotation's
/// re-encryption): told after every buffer of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// `"backup"`, `"restore"` or `"rotate"`.
    pub operation: &'static str,
    /// Plaintext bytes copied so far.
    pub done: u64,
    /// The plaintext length, when known ahead: a file's size for a backup, the length a
    /// backup's metadata records for a restore; `None` for a stream, and for backups whose
    /// metadata records none (the client's own do not: a live database may grow meanwhile).
    pub total: Option<u64>,
}

/// Told the [`Progress`] of long copies (the CLI draws a bar on a terminal).
pub type ProgressNotice = Arc<dyn Fn(Progress) + Send + Sync>;

/// A backup that was uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// The object's name in the store.
    pub object: String,
    /// The encrypted size.
    pub size: u64,
}

/// A finished restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// The object restored (the newest one the key opens).
    pub object: String,
    /// Bytes written to the target.
    pub bytes: u64,
    /// The backup's name, from its encrypted metadata.
    pub name: Option<String>,
    /// Newer objects skipped because another key made them.
    pub skipped_other_key: usize,
}

/// A finished key rotation.
#[derive(Debug)]
pub struct RotateReport {
    /// The new 64-digit key, in display form.
    pub digits: Zeroizing<String>,
    /// Backups re-encrypted under the new key.
    pub reencrypted: usize,
    /// Backups of the old key that are damaged: they were left as they are (and are unreadable
    /// once the old key is forgotten), and snapshot objects that open under neither key.
    pub damaged: Vec<String>,
    /// Snapshot manifests re-encrypted under the new key (spec 8.11).
    pub snapshots_rekeyed: u64,
    /// With `full`: snapshot blobs re-encrypted under the new media root key (spec 8.11,
    /// "Full re-keying"); 0 otherwise.
    pub blobs_rekeyed: u64,
}

/// A finished disable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisableReport {
    /// Remote backup objects deleted.
    pub deleted_backups: usize,
    /// Snapshots of directories deleted, with their blobs (spec 8.12).
    pub deleted_snapshots: u64,
    /// Whether the vault record was deleted.
    pub vault_record_deleted: bool,
}

/// The client's state, as `status` reports it. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The mode.
    pub mode: Mode,
    /// The interrupted operation, if any.
    pub pending: Option<&'static str>,
    /// The account.
    pub account: String,
    /// The backup store location.
    pub store: String,
    /// The vault URL, if any.
    pub vault_url: Option<String>,
    /// The highest fleet bundle epoch accepted.
    pub last_seen_epoch: Option<u64>,
}

/// The phone-side client. Every operation is a transition of the state machine of spec
/// chapter 5; it persists each step before the next one, so that a crash anywhere leaves a
/// state from which the same operation, called again, finishes the work.
pub struct Client {
    dir: StateDir,
    state: State,
    keys: Keystore,
    store: BackupStore,
    transport: Option<Box<dyn VaultTransport>>,
    /// Whether `transport` came from [`Options::transport`] (kept when the vault URL changes).
    transport_injected: bool,
    store_options: Vec<(String, String)>,
    endpoint: Option<Endpoint>,
    faults: Arc<dyn FaultInjector>,
    now: Option<u64>,
    accept_fast_ksf: bool,
    /// How the HTTP transport retries; only the `http` feature has one.
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    retry: RetryPolicy,
    #[cfg_attr(not(feature = "http"), allow(dead_code))]
    on_retry: Option<RetryNotice>,
    on_progress: Option<ProgressNotice>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("dir", &self.dir.path())
            .field("state", &self.state)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

fn mode_name(mode: &Mode) -> &'static str {
    match mode {
        Mode::Off => "backups are off",
        Mode::Key { .. } => "in key mode",
        Mode::Password { .. } => "in password mode",
        Mode::Restoring { .. } => "a restore is in progress",
        Mode::LockedOut { .. } => "locked out of the vault",
    }
}

/// The account identifier, refused unless it is 1 to 64 bytes, the vault's limit.
fn check_account(account: &str) -> Result<AccountId<'_>> {
    AccountId::try_from(account).map_err(|e| Error::InvalidAccount { len: e.length() })
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Client {
    /// Sets up a new client in the empty (or absent) directory `dir`, with backups off.
    pub fn create(dir: &Path, setup: Setup, options: Options) -> Result<Self> {
        let state_dir = StateDir::new(dir);
        if state_dir.exists() {
            return Err(Error::AlreadyInitialised { path: dir.to_owned() });
        }
        check_account(&setup.account)?;
        let store = crate::store::canonical_location(&setup.store);
        let vault = match setup.vault {
            Some((url, pin)) => {
                pin.to_pinned()?;
                Some(VaultSettings { url, pin, last_seen_epoch: None })
            }
            None => None,
        };
        let state = State {
            format: STATE_FORMAT,
            account: setup.account,
            store,
            vault,
            mode: Mode::Off,
            journal: None,
        };
        state_dir.write_state(&state, options.faults.as_ref())?;
        Self::open(dir, options)
    }

    /// Opens the client in `dir`, as a crash may have left it.
    pub fn open(dir: &Path, options: Options) -> Result<Self> {
        let state_dir = StateDir::new(dir);
        let (state, mut keys) = state_dir.load()?;
        let store = match options.store {
            Some(store) => BackupStore::with_store(store, ObjectPath::default())?,
            None => BackupStore::open(&state.store, &options.store_options)?,
        }
        .with_part_size(options.part_size)
        .with_retry(options.retry, options.on_retry.clone());
        // Keys a crash left unreferenced were never used outside this device: drop them.
        state_dir.prune(&mut keys, &state, options.faults.as_ref())?;
        Ok(Self {
            dir: state_dir,
            state,
            keys,
            store,
            transport_injected: options.transport.is_some(),
            transport: options.transport,
            store_options: options.store_options,
            endpoint: None,
            faults: options.faults,
            now: options.now,
            accept_fast_ksf: options.accept_fast_ksf,
            retry: options.retry,
            on_retry: options.on_retry,
            on_progress: options.on_progress,
        })
    }

    /// The current state. Holds no secret.
    pub fn status(&self) -> Status {
        Status {
            mode: self.state.mode.clone(),
            pending: self.state.journal.as_ref().map(Journal::name),
            account: self.state.account.clone(),
            store: self.state.store.clone(),
            vault_url: self.state.vault.as_ref().map(|v| v.url.clone()),
            last_seen_epoch: self.state.vault.as_ref().and_then(|v| v.last_seen_epoch),
        }
    }

    /// The backup objects in the store, oldest first.
    pub fn list_backups(&self) -> Result<Vec<String>> {
        self.store.list()
    }

    fn now(&self) -> u64 {
        self.now.unwrap_or_else(unix_now)
    }

    fn check(&self, point: &str) -> Result<()> {
        faults::check(self.faults.as_ref(), point)
    }

    /// Makes `state` durable, then drops keys it no longer names. Dropping is cleanup: if it
    /// fails, the state is still committed, and [`Client::open`] drops the keys next time.
    fn commit(&mut self, state: State) -> Result<()> {
        self.dir.write_state(&state, self.faults.as_ref())?;
        self.state = state;
        let _ = self.dir.prune(&mut self.keys, &self.state, self.faults.as_ref());
        Ok(())
    }

    fn commit_with(&mut self, f: impl FnOnce(&mut State)) -> Result<()> {
        let mut next = self.state.clone();
        f(&mut next);
        self.commit(next)
    }

    fn add_key(&mut self, key: &BackupKey) -> Result<String> {
        self.dir.add_key(&mut self.keys, key, self.faults.as_ref())
    }

    fn key(&self, key_id: &str) -> Result<BackupKey> {
        self.keys.get(key_id).cloned().ok_or_else(|| Error::CorruptState {
            path: self.dir.path().to_owned(),
            why: format!("the keystore lacks key {key_id}"),
        })
    }

    fn illegal(&self, operation: &'static str, hint: &'static str) -> Error {
        Error::IllegalState { operation, state: mode_name(&self.state.mode), hint }
    }

    fn no_journal(&self, operation: &'static str) -> Result<()> {
        match &self.state.journal {
            Some(journal) => Err(Error::PendingOperation { operation, pending: journal.name() }),
            None => Ok(()),
        }
    }
}
