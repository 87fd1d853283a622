//! The client state machine (spec sections 5.2 to 5.7).

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use e2ee_backup_format::{Compression, Decryptor, EncryptOptions, Encryptor, read_header};
use e2ee_backup_kdf::schedule::KeyId;
use e2ee_backup_kdf::{BackupKey, digits};
use e2ee_backup_vault::client::{
    AwaitingRegisterChallenge, ClientError, Endpoint, LoggedIn, Login, Registration,
};
use e2ee_backup_vault::messages::RefusalReason;
use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use rand_core::OsRng;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::faults::{self, FaultInjector, NoFaults};
use crate::pin::FleetPin;
use crate::scratch::TempFile;
use crate::state::{
    Before, Journal, Keystore, Mode, RestoredMode, RotatePhase, STATE_FORMAT, State, StateDir,
    VaultSettings, key_id_hex, sync_dir,
};
use crate::store::{self, BackupStore, Download, Upload};
use crate::transport::{HttpTransport, RetryNotice, RetryPolicy, VaultTransport};

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
    /// The vault transport; `None` builds an [`HttpTransport`] from the state's vault URL.
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
#[derive(Debug)]
pub enum Source<'a> {
    /// A file.
    Path(&'a Path),
    /// Bytes in memory.
    Bytes(&'a [u8]),
}

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
    /// once the old key is forgotten).
    pub damaged: Vec<String>,
}

/// A finished disable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisableReport {
    /// Remote backup objects deleted.
    pub deleted_backups: usize,
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
    retry: RetryPolicy,
    on_retry: Option<RetryNotice>,
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
        if setup.account.is_empty() || setup.account.len() > 64 {
            return Err(Error::IllegalState {
                operation: "create a client",
                state: "the account identifier is not 1 to 64 bytes",
                hint: "give the account identifier, for example the phone number",
            });
        }
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
        .with_part_size(options.part_size);
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

    // ----- settings ------------------------------------------------------------------------

    /// Points the client at the backup store at `location` (a directory or an `object_store`
    /// URL), after checking it: the store must exist and list its backups. Returns how many
    /// backups are there. Nothing changes when the check fails. Refused while an interrupted
    /// key rotation or disable still has objects to handle in the current store.
    pub fn set_store(&mut self, location: &str) -> Result<usize> {
        const OP: &str = "change the backup store";
        if let Some(journal @ (Journal::Rotating { .. } | Journal::Disabling { .. })) =
            &self.state.journal
        {
            return Err(Error::PendingOperation { operation: OP, pending: journal.name() });
        }
        let location = store::canonical_location(location);
        let store = BackupStore::open(&location, &self.store_options)?
            .with_part_size(self.store.part_size());
        let count = store.list()?.len();
        self.commit_with(|s| s.store = location)?;
        self.store = store;
        Ok(count)
    }

    /// Points the client at the vault at `url`, pinned by `pin`, after checking it: the
    /// vault's fleet key bundle is fetched from `url` and must verify against `pin` (and, when
    /// the fleet stays the same, not be older than the highest epoch seen). Returns the
    /// bundle's epoch. Nothing changes when the check fails.
    ///
    /// Another fleet is refused while the backup key is sealed in the pinned one (password
    /// mode, or an interrupted vault record deletion): its vault could not open the record.
    pub fn set_vault(&mut self, url: &str, pin: FleetPin) -> Result<u64> {
        let pinned = pin.to_pinned()?;
        let current = self.state.vault.clone();
        let same_fleet = current.as_ref().is_some_and(|v| v.pin == pin);
        let sealed_here = matches!(self.state.mode, Mode::Password { .. })
            || matches!(
                self.state.journal,
                Some(Journal::DeletingVaultRecord | Journal::Disabling { vault_record: true })
            );
        if sealed_here && !same_fleet {
            return Err(Error::IllegalState {
                operation: "pin another vault fleet",
                state: "the backup key is sealed in the pinned fleet",
                hint: "only the vault's URL can change; to move to another fleet, switch to key \
                       mode (or turn backups off) first",
            });
        }
        // Built for the URL's check even when a transport was injected (tests).
        let mut http = self.http_transport(url)?;
        self.check("vault fleet-bundle")?;
        let signed = if self.transport_injected {
            self.transport.as_mut().ok_or(Error::NoVault)?.fleet_bundle()?
        } else {
            http.fleet_bundle()?
        };
        let last_seen = if same_fleet { current.and_then(|v| v.last_seen_epoch) } else { None };
        let bundle = pinned.verify(&signed, self.now(), last_seen)?;
        Endpoint::from_bundle(&bundle)?;
        let epoch = bundle.epoch.max(last_seen.unwrap_or(0));
        let url = url.to_owned();
        self.commit_with(|s| {
            s.vault = Some(VaultSettings { url, pin, last_seen_epoch: Some(epoch) });
        })?;
        if !self.transport_injected {
            self.transport = Some(Box::new(http));
        }
        self.endpoint = None;
        Ok(bundle.epoch)
    }

    /// Changes the account, which the vault keeps the sealed key under. Only where the vault
    /// holds nothing for this device: backups off, or key mode (which never tells the vault),
    /// with no interrupted operation; so that a key-mode client set up without an account can
    /// switch to password mode under the right one.
    pub fn set_account(&mut self, account: &str) -> Result<()> {
        const OP: &str = "change the account";
        self.no_journal(OP)?;
        if !matches!(self.state.mode, Mode::Off | Mode::Key { .. }) {
            return Err(self.illegal(OP, "the vault keeps the key under the account"));
        }
        if account.is_empty() || account.len() > 64 {
            return Err(Error::IllegalState {
                operation: OP,
                state: "the account given is not 1 to 64 bytes",
                hint: "give 1 to 64 bytes, for example the phone number",
            });
        }
        let account = account.to_owned();
        self.commit_with(|s| s.account = account)
    }

    // ----- persistence ---------------------------------------------------------------------

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

    // ----- vault ---------------------------------------------------------------------------

    fn http_transport(&self, url: &str) -> Result<HttpTransport> {
        Ok(HttpTransport::new(url)?.with_retry(self.retry, self.on_retry.clone()))
    }

    fn transport(&mut self) -> Result<&mut Box<dyn VaultTransport>> {
        if self.transport.is_none() {
            let url = self.state.vault.as_ref().ok_or(Error::NoVault)?.url.clone();
            self.transport = Some(Box::new(self.http_transport(&url)?));
        }
        self.transport.as_mut().ok_or(Error::NoVault)
    }

    /// The vault endpoint from a freshly verified fleet bundle; stores a higher epoch.
    fn endpoint(&mut self) -> Result<Endpoint> {
        if let Some(endpoint) = &self.endpoint {
            return Ok(endpoint.clone());
        }
        let settings = self.state.vault.clone().ok_or(Error::NoVault)?;
        let pinned = settings.pin.to_pinned()?;
        self.check("vault fleet-bundle")?;
        let signed = self.transport()?.fleet_bundle()?;
        let bundle = pinned.verify(&signed, self.now(), settings.last_seen_epoch)?;
        if settings.last_seen_epoch.is_none_or(|seen| bundle.epoch > seen) {
            self.commit_with(|s| {
                if let Some(v) = s.vault.as_mut() {
                    v.last_seen_epoch = Some(bundle.epoch);
                }
            })?;
        }
        let mut endpoint = Endpoint::from_bundle(&bundle)?;
        if self.accept_fast_ksf {
            endpoint = endpoint.accepting_fast_ksf();
        }
        self.endpoint = Some(endpoint.clone());
        Ok(endpoint)
    }

    fn call(&mut self, what: &str, envelope: &[u8]) -> Result<Vec<u8>> {
        self.check(&format!("vault send {what}"))?;
        let account = self.state.account.clone().into_bytes();
        let response = self.transport()?.call(&account, envelope)?;
        // A stop here is a crash after the vault acted but before the client saw the answer.
        self.check(&format!("vault reply {what}"))?;
        Ok(response)
    }

    fn login(&mut self, password: &str) -> Result<LoggedIn> {
        let endpoint = self.endpoint()?;
        let account = self.state.account.clone().into_bytes();
        let (state, envelope) = Login::start(&mut OsRng, &endpoint, &account, password.as_bytes())?;
        let response = self.call("login-start", &envelope)?;
        let (state, envelope) = state.receive(&mut OsRng, &response)?;
        let response = self.call("login-finish", &envelope)?;
        Ok(state.receive(&response)?)
    }

    /// Turns a failed login into the error to report, moving to locked out when the vault says
    /// its copy of K is gone.
    fn login_failed(&mut self, err: Error, held: Option<String>) -> Error {
        if !matches!(err, Error::LockedOut) {
            return err;
        }
        let journal = match &self.state.journal {
            Some(Journal::Disabling { .. }) => self.state.journal.clone(),
            _ => None,
        };
        match self.commit_with(|s| {
            s.mode = Mode::LockedOut { key_id: held };
            s.journal = journal;
        }) {
            Ok(()) => Error::LockedOut,
            Err(commit_error) => commit_error,
        }
    }

    fn register(&mut self, password: &str, key: &BackupKey) -> Result<()> {
        let endpoint = self.endpoint()?;
        let account = self.state.account.clone().into_bytes();
        let (state, envelope) =
            Registration::start(&mut OsRng, &endpoint, &account, password.as_bytes(), None)?;
        self.finish_registration(state, envelope, key)
    }

    fn finish_registration(
        &mut self,
        state: AwaitingRegisterChallenge,
        envelope: Vec<u8>,
        key: &BackupKey,
    ) -> Result<()> {
        let response = self.call("register-start", &envelope)?;
        let (state, envelope) = state.receive(&mut OsRng, &response, key)?;
        let response = self.call("register-finish", &envelope)?;
        state.receive(&response)?;
        Ok(())
    }

    fn delete_vault_record(&mut self, session: LoggedIn) -> Result<()> {
        let (state, envelope) = session.delete(&mut OsRng)?;
        let response = self.call("delete", &envelope)?;
        Ok(state.receive(&response)?)
    }

    // ----- enabling ------------------------------------------------------------------------

    /// Turns backups on in key mode: draws K (or, when locked out on a device that still holds
    /// K, keeps it) and returns the 64-digit key for the user to write down.
    pub fn enable_with_key(&mut self) -> Result<Zeroizing<String>> {
        const OP: &str = "enable backups with a key";
        self.no_journal(OP)?;
        let key_id = match &self.state.mode {
            Mode::LockedOut { key_id: Some(key_id) } => key_id.clone(),
            Mode::Off | Mode::LockedOut { key_id: None } => self.add_key(&BackupKey::generate())?,
            _ => return Err(self.illegal(OP, "backups are already on; rotate the key or disable")),
        };
        let key = self.key(&key_id)?;
        self.store.create()?;
        self.commit_with(|s| s.mode = Mode::Key { key_id })?;
        Ok(digits::to_display(&key))
    }

    /// Turns backups on in password mode: draws K, keeps it locally, then registers it in the
    /// vault behind `password`. Called again after an interruption, it registers the same K.
    pub fn enable_with_password(&mut self, password: &str) -> Result<()> {
        const OP: &str = "enable backups with a password";
        match (&self.state.mode, &self.state.journal) {
            (Mode::Off, None) => {
                if self.state.vault.is_none() {
                    return Err(Error::NoVault);
                }
                let key_id = self.add_key(&BackupKey::generate())?;
                self.commit_with(|s| s.journal = Some(Journal::Registering { key_id }))?;
            }
            (Mode::Off, Some(Journal::Registering { .. })) => {}
            (Mode::Off | Mode::Key { .. }, Some(journal)) => {
                return Err(Error::PendingOperation { operation: OP, pending: journal.name() });
            }
            (Mode::LockedOut { .. }, _) => {
                return Err(self.illegal(
                    OP,
                    "the vault refuses a locked account for good; use key mode instead",
                ));
            }
            _ => return Err(self.illegal(OP, "backups are already on")),
        }
        self.finish_registering(password)
    }

    /// Registers the key of the `Registering` journal and moves to password mode.
    fn finish_registering(&mut self, password: &str) -> Result<()> {
        let Some(Journal::Registering { key_id }) = self.state.journal.clone() else {
            return Ok(());
        };
        let key = self.key(&key_id)?;
        match self.register(password, &key) {
            Ok(()) => {}
            // The account already has a registration (ours, if an earlier run was cut off after
            // the vault stored it; or another device's): the vault registers again only after a
            // login (spec 4.10.2). Log in with the password; keep the registration if it seals
            // this K, else register this K with the login's token.
            Err(Error::Vault(ClientError::Refused {
                reason: RefusalReason::NotAuthorised,
                ..
            })) => {
                let held = Some(key_id.clone());
                let session = self.login(password).map_err(|e| self.login_failed(e, held))?;
                if session.key() != &key {
                    let (state, _, envelope) =
                        session.change_password(&mut OsRng, password.as_bytes(), Some(&key))?;
                    self.finish_registration(state, envelope, &key)?;
                }
            }
            Err(e) => return Err(e),
        }
        // Only now, so that a failed first registration leaves no empty store behind.
        self.store.create()?;
        self.commit_with(|s| {
            s.mode = Mode::Password { key_id };
            s.journal = None;
        })
    }

    /// Drops an interrupted operation where that is safe: a registration (the mode stays as it
    /// was; the vault may keep a record nobody uses), a vault record deletion (the record may
    /// stay), or a key rotation the vault has not confirmed (its copies are deleted, the new
    /// key forgotten, and the old key stays in force).
    ///
    /// A rotation whose request to seal the new key may have reached the vault needs
    /// `password` ([`Client::abort_needs_password`]): a login tells whether the vault still
    /// seals the old key (the rotation is dropped) or already the new one (it is refused: run
    /// [`Client::rotate_key`] again to finish it). So is a rotation that is deleting the old
    /// backups.
    pub fn abort_pending(&mut self, password: Option<&str>) -> Result<()> {
        const ROTATION: &str = "abort the interrupted key rotation";
        let Some(journal) = self.state.journal.clone() else { return Ok(()) };
        match journal {
            Journal::Registering { .. } | Journal::DeletingVaultRecord => {
                self.commit_with(|s| s.journal = None)
            }
            Journal::Rotating { phase: RotatePhase::Deleting, .. } => Err(Error::IllegalState {
                operation: ROTATION,
                state: "the old backups are being deleted",
                hint: "run the rotation again to finish it",
            }),
            Journal::Rotating { phase, sealing, old_key_id, new_key_id, copies, current } => {
                if phase == RotatePhase::Rewrapping && sealing {
                    let password = password.ok_or(Error::IllegalState {
                        operation: ROTATION,
                        state: "the vault may already seal the new key",
                        hint: "the password is needed to ask it, or run the rotation again to \
                               finish it",
                    })?;
                    let session = match self.login(password) {
                        Ok(session) => session,
                        Err(err) => return Err(self.login_failed(err, Some(old_key_id))),
                    };
                    if key_id_hex(session.key()) == new_key_id {
                        return Err(Error::IllegalState {
                            operation: ROTATION,
                            state: "the vault already seals the new key",
                            hint: "run the rotation again to finish it",
                        });
                    }
                }
                for (_, copy) in copies.iter().chain(current.iter()) {
                    self.store.delete(copy, self.faults.as_ref())?;
                }
                self.commit_with(|s| s.journal = None)
            }
            Journal::Disabling { .. } => Err(Error::IllegalState {
                operation: "abort the interrupted disable",
                state: "backups are being deleted",
                hint: "run the disable again to finish it",
            }),
        }
    }

    /// Whether [`Client::abort_pending`] needs the password: a key rotation was interrupted
    /// after its request to seal the new key may have reached the vault.
    pub fn abort_needs_password(&self) -> bool {
        matches!(
            self.state.journal,
            Some(Journal::Rotating { phase: RotatePhase::Rewrapping, sealing: true, .. })
        )
    }

    // ----- backups -------------------------------------------------------------------------

    /// The key backups are made with now. A pending key rotation does not block backups: until
    /// the old objects are being deleted they are made under the old key (and the rotation
    /// copies them when it resumes), from then on under the new key.
    fn current_key(&self, operation: &'static str) -> Result<BackupKey> {
        match (&self.state.mode, &self.state.journal) {
            (_, Some(journal @ Journal::Disabling { .. })) => {
                Err(Error::PendingOperation { operation, pending: journal.name() })
            }
            (
                Mode::Key { .. } | Mode::Password { .. },
                Some(Journal::Rotating { phase: RotatePhase::Deleting, new_key_id, .. }),
            ) => self.key(new_key_id),
            (Mode::Key { key_id } | Mode::Password { key_id }, _) => self.key(key_id),
            _ => Err(self.illegal(operation, "turn backups on first")),
        }
    }

    /// Encrypts `source` under K in the native format (zstd-compressed, `name` in the encrypted
    /// metadata) and uploads it as a new object. Nothing local changes.
    ///
    /// The source is encrypted as it is read, straight into the upload: memory stays within
    /// one upload part and the format's few chunks, whatever the backup's size. The object
    /// appears in the store only once whole (create-only, section 5.8).
    pub fn create_backup(&mut self, source: Source<'_>, name: &str) -> Result<BackupInfo> {
        let key = self.current_key("create a backup")?;
        let mut options = EncryptOptions::default();
        options.compression = Compression::Zstd;
        options.metadata.created_at = self.now();
        options.metadata.fields.insert("name".to_owned(), name.to_owned());
        let (mut input, source_path): (Box<dyn Read + '_>, PathBuf) = match source {
            Source::Bytes(bytes) => (Box::new(bytes), PathBuf::from("<backup source in memory>")),
            Source::Path(path) => {
                let io = |source| Error::Io { operation: "read", path: path.to_owned(), source };
                let file = fs::File::open(path).map_err(io)?;
                if file.metadata().map_err(io)?.is_dir() {
                    return Err(io(io::Error::new(
                        io::ErrorKind::IsADirectory,
                        "it is a directory, not a file",
                    )));
                }
                (Box::new(file), path.to_owned())
            }
        };
        // Strictly after the newest backup, so the newest is the last name even when two
        // backups fall in one second or this device's clock is behind another's.
        let names = self.store.list()?;
        self.check_newest_key(&names)?;
        let newest = names.last().and_then(|n| store::object_time(n));
        // What a killed backup left: best effort, the new backup matters more.
        let _ = self.store.remove_stale_staging();
        let time = newest.map_or(self.now(), |t| self.now().max(t.saturating_add(1)));
        let object = store::new_object_name(time);
        let mut upload = self.store.upload(&object, true, self.faults.as_ref())?;
        encrypt_into(&key, options, &mut *input, &source_path, &mut upload)?;
        let size = upload.finish()?;
        Ok(BackupInfo { object, size })
    }

    /// Refuses a backup when the store's newest readable backup was made under a key this
    /// device does not hold (spec section 5.3): another device rotated the key, and a backup
    /// under the old key would be skipped by every restore with the new one.
    fn check_newest_key(&self, names: &[String]) -> Result<()> {
        for name in names.iter().rev() {
            let head =
                self.store.get_range(name, 0..e2ee_backup_format::header::HEADER_LEN as u64)?;
            // A damaged header says nothing about keys: look at the one before it.
            let Ok(header) = read_header(&mut &head[..]) else { continue };
            let key_id = hex::encode(header.key_id.0);
            if self.keys.get(&key_id).is_some() {
                return Ok(());
            }
            return Err(Error::KeyRotatedElsewhere { object: name.clone(), key_id });
        }
        Ok(())
    }

    // ----- restoring -----------------------------------------------------------------------

    fn restore_start(&self, operation: &'static str, password_mode: bool) -> Result<Before> {
        self.no_journal(operation)?;
        // A mistyped store location is reported before a login is spent or anything saved.
        self.store.check_exists()?;
        match &self.state.mode {
            Mode::Off => Ok(Before::Off),
            Mode::LockedOut { key_id } if !password_mode => {
                Ok(Before::LockedOut { key_id: key_id.clone() })
            }
            Mode::LockedOut { .. } => Err(self.illegal(
                operation,
                "the vault destroyed the key; restore with the 64-digit key instead",
            )),
            // In place, on the device that makes the backups: the restored backup's key becomes
            // the one backups are made with (another device may have rotated it, 5.6.3).
            Mode::Key { key_id } => Ok(Before::Key { key_id: key_id.clone() }),
            Mode::Password { key_id } if password_mode => {
                Ok(Before::Password { key_id: key_id.clone() })
            }
            Mode::Password { .. } => Err(self
                .illegal(operation, "restore with the password here, or switch to key mode first")),
            Mode::Restoring { .. } => {
                Err(self.illegal(operation, "a restore is in progress; resume it"))
            }
        }
    }

    /// Restores the newest backup that the 64-digit key opens into `target` (written
    /// atomically), and enters key mode. Called while a restore is in progress, it resumes
    /// that restore with the key already held.
    pub fn restore_with_key(&mut self, digits: &str, target: &Path) -> Result<RestoreReport> {
        const OP: &str = "restore with the 64-digit key";
        if matches!(self.state.mode, Mode::Restoring { .. }) {
            return self.resume_restore();
        }
        let before = self.restore_start(OP, false)?;
        let key = digits::parse(digits)?;
        self.begin_restore(&key, RestoredMode::Key, target, before)
    }

    /// Logs in to the vault with `password`, gets K, restores the newest backup into `target`
    /// and enters password mode. Called while a restore is in progress, it resumes that
    /// restore without logging in again (no attempt is spent).
    pub fn restore_with_password(
        &mut self,
        password: &str,
        target: &Path,
    ) -> Result<RestoreReport> {
        const OP: &str = "restore with the password";
        if matches!(self.state.mode, Mode::Restoring { .. }) {
            return self.resume_restore();
        }
        let before = self.restore_start(OP, true)?;
        let session = match self.login(password) {
            Ok(session) => session,
            Err(err) => return Err(self.login_failed(err, None)),
        };
        let key = session.key().clone();
        drop(session);
        self.begin_restore(&key, RestoredMode::Password, target, before)
    }

    fn begin_restore(
        &mut self,
        key: &BackupKey,
        then: RestoredMode,
        target: &Path,
        before: Before,
    ) -> Result<RestoreReport> {
        let target = std::path::absolute(target).map_err(|source| Error::Io {
            operation: "resolve",
            path: target.to_owned(),
            source,
        })?;
        let key_id = self.add_key(key)?;
        self.commit_with(|s| s.mode = Mode::Restoring { key_id, then, target, before })?;
        self.resume_restore()
    }

    /// Finishes an interrupted restore.
    pub fn resume_restore(&mut self) -> Result<RestoreReport> {
        let Mode::Restoring { key_id, then, target, before } = self.state.mode.clone() else {
            return Err(self.illegal("resume a restore", "no restore is in progress"));
        };
        let key = self.key(&key_id)?;
        match self.download_and_write(&key, &target) {
            Ok(report) => {
                self.commit_with(|s| {
                    s.mode = match then {
                        RestoredMode::Key => Mode::Key { key_id },
                        RestoredMode::Password => Mode::Password { key_id },
                    }
                })?;
                Ok(report)
            }
            Err(
                err @ (Error::WrongKey | Error::NoBackupFound { .. } | Error::BackupCorrupt { .. }),
            ) => {
                // Nothing to restore with this key: back to where the restore started.
                self.commit_with(|s| s.mode = before.to_mode())?;
                Err(err)
            }
            Err(err) => Err(err),
        }
    }

    /// Picks the newest object `key` made, downloads, decrypts and writes it.
    fn download_and_write(&mut self, key: &BackupKey, target: &Path) -> Result<RestoreReport> {
        let names = self.store.list()?;
        if names.is_empty() {
            return Err(Error::NoBackupFound { location: self.state.store.clone() });
        }
        let id = KeyId::of(key);
        let mut skipped_other_key = 0;
        let mut damaged = None;
        let mut chosen = None;
        for name in names.iter().rev() {
            let head =
                self.store.get_range(name, 0..e2ee_backup_format::header::HEADER_LEN as u64)?;
            match read_header(&mut &head[..]) {
                Ok(header) if header.key_id == id => {
                    chosen = Some(name.clone());
                    break;
                }
                Ok(_) => skipped_other_key += 1,
                Err(reason) => {
                    damaged.get_or_insert((name.clone(), reason));
                }
            }
        }
        let Some(object) = chosen else {
            return Err(match damaged {
                Some((object, reason)) => Error::BackupCorrupt { object, reason },
                None => Error::WrongKey,
            });
        };
        let mut download = self.store.get(&object, self.faults.as_ref())?;
        let (bytes, name) = self.write_target(key, &object, &mut download, target)?;
        Ok(RestoreReport { object, bytes, name, skipped_other_key })
    }

    /// Decrypts the download as it arrives into a temporary file beside `target`, then renames
    /// it into place: the target never holds partial or unauthenticated plaintext.
    fn write_target(
        &self,
        key: &BackupKey,
        object: &str,
        download: &mut Download<'_>,
        target: &Path,
    ) -> Result<(u64, Option<String>)> {
        let corrupt = |reason| Error::BackupCorrupt { object: object.to_owned(), reason };
        let opened = Decryptor::new(&mut *download, key);
        let mut reader = match opened {
            Ok(reader) => reader,
            Err(reason) => {
                return Err(download.take_failure().unwrap_or_else(|| match damage(reason) {
                    Ok(reason) => corrupt(reason),
                    Err(source) => Error::Io { operation: "download", path: object.into(), source },
                }));
            }
        };
        let name = reader.metadata().fields.get("name").cloned();
        let dir = target.parent().map(Path::to_owned).unwrap_or_else(|| PathBuf::from("."));
        self.check("write restore target")?;
        let io_error = |operation, path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { operation, path, source }
        };
        fs::create_dir_all(&dir).map_err(io_error("create", &dir))?;
        // A fresh random name, created exclusively (never through a file or symlink someone
        // planted), readable by the owner only, locked while this process lives, removed if
        // anything below fails or a signal handler calls `scratch::remove_in_flight`; what a
        // killed restore left in this directory is removed first (spec section 5.5).
        let mut temp_file = TempFile::create_in(&dir).map_err(io_error("create", &dir))?;
        let temp = temp_file.path().to_owned();
        let copied = pump(&mut reader, temp_file.as_file_mut());
        drop(reader);
        let bytes = match copied {
            Ok(bytes) => bytes,
            Err(err) => {
                drop(temp_file);
                if let Some(failure) = download.take_failure() {
                    return Err(failure);
                }
                return Err(match err {
                    Pump::Read(err) => {
                        match damage(e2ee_backup_format::Error::from_io_error(err)) {
                            Ok(reason) => corrupt(reason),
                            Err(source) => {
                                Error::Io { operation: "download", path: object.into(), source }
                            }
                        }
                    }
                    Pump::Write(source) => Error::Io { operation: "write", path: temp, source },
                });
            }
        };
        temp_file.as_file().sync_all().map_err(io_error("sync", &temp))?;
        self.check("rename restore target")?;
        temp_file.persist(target, true).map_err(|source| Error::Io {
            operation: "rename",
            path: target.to_owned(),
            source,
        })?;
        sync_dir(&dir)?;
        Ok((bytes, name))
    }

    // ----- passwords and modes -------------------------------------------------------------

    fn password_key_id(&self, operation: &'static str, hint: &'static str) -> Result<String> {
        self.no_journal(operation)?;
        match &self.state.mode {
            Mode::Password { key_id } => Ok(key_id.clone()),
            _ => Err(self.illegal(operation, hint)),
        }
    }

    /// Logs in and checks that the vault seals this device's key.
    fn login_holding(&mut self, password: &str, key_id: &str) -> Result<LoggedIn> {
        let session = match self.login(password) {
            Ok(session) => session,
            Err(err) => return Err(self.login_failed(err, Some(key_id.to_owned()))),
        };
        if key_id_hex(session.key()) != key_id {
            return Err(Error::VaultKeyMismatch);
        }
        Ok(session)
    }

    /// Replaces the password (logging in with the old one); K is kept.
    pub fn change_password(&mut self, old: &str, new: &str) -> Result<()> {
        const OP: &str = "change the password";
        let key_id = self.password_key_id(OP, "there is no password to change")?;
        let session = self.login_holding(old, &key_id)?;
        let (state, key, envelope) = session.change_password(&mut OsRng, new.as_bytes(), None)?;
        self.finish_registration(state, envelope, &key)
    }

    /// Key mode to password mode: registers the K this device holds. Called again after an
    /// interruption, it registers again.
    pub fn switch_to_password(&mut self, password: &str) -> Result<()> {
        const OP: &str = "switch to password mode";
        match (&self.state.mode, &self.state.journal) {
            (Mode::Key { key_id }, None) => {
                if self.state.vault.is_none() {
                    return Err(Error::NoVault);
                }
                let key_id = key_id.clone();
                self.commit_with(|s| s.journal = Some(Journal::Registering { key_id }))?;
            }
            (Mode::Key { .. }, Some(Journal::Registering { .. })) => {}
            (_, Some(journal)) => {
                return Err(Error::PendingOperation { operation: OP, pending: journal.name() });
            }
            _ => return Err(self.illegal(OP, "only key mode switches to password mode")),
        }
        self.finish_registering(password)
    }

    /// Password mode to key mode: logs in, enters key mode, deletes the vault record, and
    /// returns the 64-digit key to show. Called again in key mode while the deletion is
    /// pending, it finishes the deletion.
    pub fn switch_to_key(&mut self, password: &str) -> Result<Zeroizing<String>> {
        const OP: &str = "switch to key mode";
        let key_id = match (&self.state.mode, &self.state.journal) {
            (Mode::Password { key_id }, None) => key_id.clone(),
            (Mode::Key { key_id }, Some(Journal::DeletingVaultRecord)) => key_id.clone(),
            (_, Some(journal)) => {
                return Err(Error::PendingOperation { operation: OP, pending: journal.name() });
            }
            _ => return Err(self.illegal(OP, "only password mode switches to key mode")),
        };
        let key = self.key(&key_id)?;
        let session = match self.login(password) {
            Ok(session) => session,
            Err(err) if matches!(self.state.mode, Mode::Password { .. }) => {
                return Err(self.login_failed(err, Some(key_id)));
            }
            Err(err) => return Err(err),
        };
        if key_id_hex(session.key()) != key_id {
            return Err(Error::VaultKeyMismatch);
        }
        if matches!(self.state.mode, Mode::Password { .. }) {
            self.commit_with(|s| {
                s.mode = Mode::Key { key_id };
                s.journal = Some(Journal::DeletingVaultRecord);
            })?;
        }
        self.delete_vault_record(session)?;
        self.commit_with(|s| s.journal = None)?;
        Ok(digits::to_display(&key))
    }

    // ----- rotation ------------------------------------------------------------------------

    /// Draws a new K and moves every backup to it: each backup of the old key is copied under
    /// the new key; in password mode the vault then seals the new key (`password` is needed
    /// there); then the old objects are deleted and the old key forgotten. Returns the new
    /// 64-digit key. Called again after an interruption, it resumes.
    ///
    /// In password mode the rotation first logs in and checks that the vault seals this
    /// device's key: a wrong password, an unreachable vault or another device's registration
    /// fails here, before anything is copied or recorded. Backups made while a rotation is
    /// pending ([`Client::create_backup`] is never blocked by one) are copied too.
    pub fn rotate_key(&mut self, password: Option<&str>) -> Result<RotateReport> {
        const OP: &str = "rotate the key";
        let password_mode = matches!(self.state.mode, Mode::Password { .. });
        match (&self.state.mode, &self.state.journal) {
            (Mode::Key { key_id } | Mode::Password { key_id }, None) => {
                let old_key_id = key_id.clone();
                if password_mode {
                    let password = password.ok_or_else(|| {
                        self.illegal(OP, "the password is needed to re-seal the key")
                    })?;
                    // Learn that the password is right (and the vault reachable, and sealing
                    // this key) before anything is copied.
                    drop(self.login_holding(password, &old_key_id)?);
                }
                let new_key_id = self.add_key(&BackupKey::generate())?;
                self.commit_with(|s| {
                    s.journal = Some(Journal::Rotating {
                        old_key_id,
                        new_key_id,
                        phase: RotatePhase::Copying,
                        copies: Vec::new(),
                        current: None,
                        sealing: false,
                    });
                })?;
            }
            (Mode::Key { .. } | Mode::Password { .. }, Some(Journal::Rotating { .. })) => {}
            (_, Some(journal)) => {
                return Err(Error::PendingOperation { operation: OP, pending: journal.name() });
            }
            _ => return Err(self.illegal(OP, "turn backups on first")),
        }
        let mut damaged = self.rotate_copy()?;
        if self.rotation()?.2 == RotatePhase::Copying {
            let next = if password_mode { RotatePhase::Rewrapping } else { RotatePhase::Deleting };
            self.commit_with(|s| {
                if let Some(Journal::Rotating { phase, current, .. }) = s.journal.as_mut() {
                    *phase = next;
                    *current = None;
                }
            })?;
        }
        self.rotate_rewrap(password)?;
        // Backups made while the rotation was pending are still under the old key: copy them
        // before the old key goes.
        for name in self.rotate_copy()? {
            if !damaged.contains(&name) {
                damaged.push(name);
            }
        }
        let reencrypted = self.rotate_delete()?;
        let (Mode::Key { key_id } | Mode::Password { key_id }) = &self.state.mode else {
            return Err(self.illegal(OP, "the rotation ended in an unexpected mode"));
        };
        let key = self.key(key_id)?;
        Ok(RotateReport { digits: digits::to_display(&key), reencrypted, damaged })
    }

    fn rotation(&self) -> Result<Rotation> {
        match &self.state.journal {
            Some(Journal::Rotating { old_key_id, new_key_id, phase, copies, .. }) => {
                Ok((old_key_id.clone(), new_key_id.clone(), *phase, copies.clone()))
            }
            _ => Err(self.illegal("rotate the key", "no rotation is in progress")),
        }
    }

    /// Copies every backup of the old key that has no copy yet under the new key, recording
    /// each copy in the journal. Returns the damaged ones (left as they are).
    fn rotate_copy(&mut self) -> Result<Vec<String>> {
        let (old_id, new_id, _, copies) = self.rotation()?;
        let (old_key, new_key) = (self.key(&old_id)?, self.key(&new_id)?);
        let old = KeyId::of(&old_key);
        let mut damaged = Vec::new();
        for name in self.store.list()? {
            if copies.iter().any(|(o, n)| *o == name || *n == name) {
                continue;
            }
            let head =
                self.store.get_range(&name, 0..e2ee_backup_format::header::HEADER_LEN as u64)?;
            match read_header(&mut &head[..]) {
                Ok(header) if header.key_id == old => {}
                Ok(_) => continue,
                Err(_) => {
                    damaged.push(name);
                    continue;
                }
            }
            // Name the copy before making it, so a crash leaves no unnamed orphan.
            let reuse = match &self.state.journal {
                Some(Journal::Rotating { current: Some((o, n)), .. }) if *o == name => {
                    Some(n.clone())
                }
                _ => None,
            };
            let copy = reuse.unwrap_or_else(|| store::copy_name(&name));
            let pair = (name.clone(), copy.clone());
            self.commit_with(|s| {
                if let Some(Journal::Rotating { current, .. }) = s.journal.as_mut() {
                    *current = Some(pair);
                }
            })?;
            let copied = {
                let mut download = self.store.get(&name, self.faults.as_ref())?;
                let faults = self.faults.as_ref();
                reencrypt(&old_key, &new_key, &mut download, &name, &self.store, &copy, faults)?
            };
            if !copied {
                damaged.push(name);
                continue;
            }
            self.commit_with(|s| {
                if let Some(Journal::Rotating { copies, current, .. }) = s.journal.as_mut() {
                    copies.push((name, copy));
                    *current = None;
                }
            })?;
        }
        Ok(damaged)
    }

    /// Password mode: makes the vault seal the new key.
    fn rotate_rewrap(&mut self, password: Option<&str>) -> Result<()> {
        let (old_id, new_id, phase, _) = self.rotation()?;
        if phase != RotatePhase::Rewrapping {
            return Ok(());
        }
        let password = password.ok_or(Error::IllegalState {
            operation: "rotate the key",
            state: "in password mode",
            hint: "the password is needed to re-seal the key",
        })?;
        let session = match self.login(password) {
            Ok(session) => session,
            Err(err) => return Err(self.login_failed(err, Some(old_id))),
        };
        let sealed = key_id_hex(session.key());
        if sealed == old_id {
            let new_key = self.key(&new_id)?;
            // From here the vault may hold the new key before this device hears of it.
            self.commit_with(|s| {
                if let Some(Journal::Rotating { sealing, .. }) = s.journal.as_mut() {
                    *sealing = true;
                }
            })?;
            let (state, key, envelope) =
                session.change_password(&mut OsRng, password.as_bytes(), Some(&new_key))?;
            self.finish_registration(state, envelope, &key)?;
        } else if sealed != new_id {
            // A crash after the vault stored the new key shows up here as the new key.
            return Err(Error::VaultKeyMismatch);
        }
        self.commit_with(|s| {
            s.mode = Mode::Password { key_id: new_id.clone() };
            if let Some(Journal::Rotating { phase, sealing, .. }) = s.journal.as_mut() {
                *phase = RotatePhase::Deleting;
                *sealing = false;
            }
        })
    }

    /// Deletes the old objects, then makes the new key the only one.
    fn rotate_delete(&mut self) -> Result<usize> {
        let (_, new_id, phase, copies) = self.rotation()?;
        if phase != RotatePhase::Deleting {
            return Err(self.illegal("rotate the key", "the rotation is not ready to delete"));
        }
        for (old, _) in &copies {
            self.store.delete(old, self.faults.as_ref())?;
        }
        self.commit_with(|s| {
            s.mode = match s.mode {
                Mode::Password { .. } => Mode::Password { key_id: new_id },
                _ => Mode::Key { key_id: new_id },
            };
            s.journal = None;
        })?;
        Ok(copies.len())
    }

    // ----- disabling -----------------------------------------------------------------------

    /// Turns backups off. **Remote backups are deleted**: with K forgotten they could only
    /// be read with a 64-digit key the user kept, and a backup service should not keep
    /// ciphertext its user turned off. In password mode `password` is needed to delete the
    /// vault record first; when resuming an interrupted disable, `None` leaves the record.
    pub fn disable(&mut self, password: Option<&str>) -> Result<DisableReport> {
        const OP: &str = "turn backups off";
        let mut vault_record_deleted = false;
        match (&self.state.mode, &self.state.journal) {
            (Mode::Password { key_id }, None) => {
                let password = password.ok_or(Error::IllegalState {
                    operation: OP,
                    state: "in password mode",
                    hint: "the password is needed to delete the key from the vault",
                })?;
                let key_id = key_id.clone();
                let session = self.login_holding(password, &key_id);
                match session {
                    Ok(session) => {
                        self.commit_with(|s| {
                            s.journal = Some(Journal::Disabling { vault_record: true });
                        })?;
                        self.delete_vault_record(session)?;
                        vault_record_deleted = true;
                    }
                    // The vault already destroyed its copy: nothing to delete there.
                    Err(Error::LockedOut) => {}
                    Err(err) => return Err(err),
                }
                self.commit_with(|s| s.journal = Some(Journal::Disabling { vault_record: false }))?;
            }
            (Mode::Key { .. } | Mode::LockedOut { .. }, None) => {
                self.commit_with(|s| s.journal = Some(Journal::Disabling { vault_record: false }))?;
            }
            (_, Some(Journal::Disabling { vault_record: true })) => {
                if let Some(password) = password {
                    let session = self.login(password)?;
                    self.delete_vault_record(session)?;
                    vault_record_deleted = true;
                }
                self.commit_with(|s| s.journal = Some(Journal::Disabling { vault_record: false }))?;
            }
            (_, Some(Journal::Disabling { vault_record: false })) => {}
            (_, Some(journal)) => {
                return Err(Error::PendingOperation { operation: OP, pending: journal.name() });
            }
            _ => return Err(self.illegal(OP, "backups are not on")),
        }
        let names = self.store.list()?;
        for name in &names {
            self.store.delete(name, self.faults.as_ref())?;
        }
        self.commit_with(|s| {
            s.mode = Mode::Off;
            s.journal = None;
        })?;
        Ok(DisableReport { deleted_backups: names.len(), vault_record_deleted })
    }
}

/// A rotation's old key id, new key id, phase and (old, new) copies.
type Rotation = (String, String, RotatePhase, Vec<(String, String)>);

/// Where a [`pump`] failed.
enum Pump {
    /// Reading its input.
    Read(io::Error),
    /// Writing its output.
    Write(io::Error),
}

/// Copies `input` to `output` through a buffer of [`PUMP_BUFFER`] bytes.
fn pump(input: &mut dyn Read, output: &mut dyn Write) -> std::result::Result<u64, Pump> {
    let mut buffer = vec![0u8; PUMP_BUFFER];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buffer) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(Pump::Read(err)),
        };
        output.write_all(&buffer[..n]).map_err(Pump::Write)?;
        total += n as u64;
    }
}

/// The buffer of [`pump`].
const PUMP_BUFFER: usize = 64 * 1024;

/// A decryption failure that shows the backup is damaged, or (`Err`) an I/O failure that does
/// not: reading the download failed, which is retryable and says nothing about the backup.
fn damage(
    reason: e2ee_backup_format::Error,
) -> std::result::Result<e2ee_backup_format::Error, io::Error> {
    match reason {
        e2ee_backup_format::Error::Io { kind, message } => Err(io::Error::new(kind, message)),
        reason => Ok(reason),
    }
}

/// Encrypts everything `input` (read from `source`) yields into `upload` (not finished: the
/// caller finishes it).
fn encrypt_into(
    key: &BackupKey,
    options: EncryptOptions,
    input: &mut dyn Read,
    source: &Path,
    upload: &mut Upload<'_>,
) -> Result<()> {
    let pumped = (|| {
        let mut writer = Encryptor::new(&mut *upload, key, options)
            .map_err(|e| Pump::Write(io::Error::other(e)))?;
        pump(input, &mut writer)?;
        writer.finish().map_err(|e| Pump::Write(io::Error::other(e)))?;
        Ok(())
    })();
    match pumped {
        Ok(()) => Ok(()),
        Err(err) => Err(upload.take_failure().unwrap_or_else(|| match err {
            Pump::Read(err) => {
                Error::Io { operation: "read", path: source.to_owned(), source: err }
            }
            Pump::Write(err) => {
                Error::Io { operation: "encrypt", path: source.to_owned(), source: err }
            }
        })),
    }
}

/// Decrypts `download` (of `object`) with `old` and uploads it encrypted again under `new` as
/// `copy`, keeping its metadata and compression, streaming both ways. `Ok(false)`: the backup
/// is damaged, and nothing was stored (the upload, never finished, is aborted). The copy is
/// completed only after the whole backup decrypted, its last chunk verified.
fn reencrypt(
    old: &BackupKey,
    new: &BackupKey,
    download: &mut Download<'_>,
    object: &str,
    store: &BackupStore,
    copy: &str,
    faults: &dyn FaultInjector,
) -> Result<bool> {
    let read_failed = |download: &mut Download<'_>, reason| {
        download.take_failure().map_or_else(
            || match damage(reason) {
                Ok(_) => Ok(false),
                Err(source) => {
                    Err(Error::Io { operation: "download", path: object.into(), source })
                }
            },
            Err,
        )
    };
    let opened = Decryptor::new(&mut *download, old);
    let mut reader = match opened {
        Ok(reader) => reader,
        Err(reason) => return read_failed(download, reason),
    };
    let mut options = EncryptOptions::default();
    options.compression = reader.header().compression;
    options.metadata = reader.metadata().clone();
    let mut upload = store.upload(copy, false, faults)?;
    let pumped = (|| {
        let mut writer = Encryptor::new(&mut upload, new, options)
            .map_err(|e| Pump::Write(io::Error::other(e)))?;
        pump(&mut reader, &mut writer)?;
        writer.finish().map_err(|e| Pump::Write(io::Error::other(e)))?;
        Ok(())
    })();
    drop(reader);
    match pumped {
        Ok(()) => upload.finish().map(|_| true),
        Err(err) => {
            if let Some(failure) = upload.take_failure() {
                return Err(failure);
            }
            match err {
                Pump::Read(err) => {
                    read_failed(download, e2ee_backup_format::Error::from_io_error(err))
                }
                // The encryptor refused what the old key's backup holds: leave it, as damaged.
                Pump::Write(_) => Ok(false),
            }
        }
    }
}
