//! The state directory (spec sections 5.4 and 5.5): `state.json`, the `keystore`, and their
//! atomic replacement.
//!
//! `state.json` holds everything but key material: the mode, the account, the backup store and
//! vault locations, the fleet pin with the highest bundle epoch seen, and the journal of an
//! interrupted operation. Keys are referenced by their public key identifier (spec section
//! 2.3). The keys themselves live in `keystore`, a file of mode 0600 that stands for the
//! phone's hardware-backed keystore: one line `key_id_hex K_hex` per key.
//!
//! Both files are replaced atomically: a temporary file in the same directory, written and
//! fsynced, renamed over the old one, then the directory fsynced. Two rules make the pair
//! consistent at every instant: a key is added to the keystore before `state.json` names it,
//! and dropped from the keystore only after `state.json` no longer names it.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_kdf::schedule::KeyId;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::faults::{self, FaultInjector};
use crate::pin::FleetPin;

/// The state file's name.
pub const STATE_FILE: &str = "state.json";
/// The keystore file's name.
pub const KEYSTORE_FILE: &str = "keystore";
/// The snapshot files cache (spec 8.7.1): which files the last directory backup here read.
/// Local only; deleted when backups are turned off.
pub const FILES_CACHE_FILE: &str = "files.cache";
/// The version of the state file layout.
pub const STATE_FORMAT: u32 = 1;

/// Everything the client persists except keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Layout version, [`STATE_FORMAT`].
    pub format: u32,
    /// The account identifier (for example the phone number in E.164 form).
    pub account: String,
    /// Where backups are stored: a directory path or an `object_store` URL.
    pub store: String,
    /// The vault, when password mode is possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault: Option<VaultSettings>,
    /// The client's mode.
    pub mode: Mode,
    /// The interrupted operation, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub journal: Option<Journal>,
}

/// Where the vault is and which fleet the client trusts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultSettings {
    /// Base URL of the vault's HTTP binding (spec section 4.15).
    pub url: String,
    /// The pinned fleet.
    pub pin: FleetPin,
    /// The highest fleet bundle epoch accepted so far (rollback protection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen_epoch: Option<u64>,
}

/// The client's mode (spec section 5.2). Key identifiers are hexadecimal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum Mode {
    /// Backups are off; no key is held.
    Off,
    /// K is held locally; the user was shown the 64-digit key.
    Key {
        /// K's identifier.
        key_id: String,
    },
    /// K is held locally, and a sealed copy is in the vault.
    Password {
        /// K's identifier.
        key_id: String,
    },
    /// A restore is in progress: K is known, the backup is not yet written.
    Restoring {
        /// K's identifier.
        key_id: String,
        /// The mode once the restore is done.
        then: RestoredMode,
        /// Where the restored payload goes.
        target: PathBuf,
        /// The mode to go back to if the restore cannot succeed.
        before: Before,
    },
    /// The vault destroyed its copy of K. Password restore is impossible.
    LockedOut {
        /// K's identifier, when this device still holds K.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_id: Option<String>,
    },
}

/// The mode a restore ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestoredMode {
    /// Restored with the 64-digit key.
    Key,
    /// Restored with the password.
    Password,
}

impl RestoredMode {
    /// The mode a restore that succeeded enters, with the restored backup's key.
    pub fn mode(self, key_id: String) -> Mode {
        match self {
            RestoredMode::Key => Mode::Key { key_id },
            RestoredMode::Password => Mode::Password { key_id },
        }
    }
}

/// The mode a failed restore returns to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum Before {
    /// Backups off.
    Off,
    /// Locked out, possibly holding a key.
    LockedOut {
        /// The key still held.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_id: Option<String>,
    },
    /// Key mode: a restore on the device that makes the backups.
    Key {
        /// The key backups were made with.
        key_id: String,
    },
    /// Password mode: a restore on the device that makes the backups.
    Password {
        /// The key backups were made with.
        key_id: String,
    },
}

impl Before {
    /// The mode itself.
    pub fn to_mode(&self) -> Mode {
        match self {
            Before::Off => Mode::Off,
            Before::LockedOut { key_id } => Mode::LockedOut { key_id: key_id.clone() },
            Before::Key { key_id } => Mode::Key { key_id: key_id.clone() },
            Before::Password { key_id } => Mode::Password { key_id: key_id.clone() },
        }
    }
}

/// An interrupted operation (spec section 5.6).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "operation", rename_all = "kebab-case")]
pub enum Journal {
    /// Registering K in the vault (enable with password from off, or switch from key mode).
    Registering {
        /// The key being registered.
        key_id: String,
    },
    /// Key mode is in force; the vault record of the former password mode is still to delete.
    DeletingVaultRecord,
    /// Rotating K.
    Rotating {
        /// The key every backup was under.
        old_key_id: String,
        /// The key every backup is moving to.
        new_key_id: String,
        /// How far the rotation got.
        phase: RotatePhase,
        /// Re-encrypted backups: (old object, new object).
        copies: Vec<(String, String)>,
        /// The copy being made: the new object may or may not exist.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        current: Option<(String, String)>,
        /// Password mode, `rewrapping`: the request to seal the new key may have reached the
        /// vault, so only a login tells whether the vault seals the old key or the new one.
        /// Before it is set, the vault certainly still seals the old key.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        sealing: bool,
        /// A full rotation (`rotate-key --full`, spec 8.11): the snapshots' media root key is
        /// replaced too, and every blob re-encrypted under it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        full: bool,
    },
    /// Turning backups off.
    Disabling {
        /// Whether the vault record is still to be deleted.
        vault_record: bool,
    },
}

impl Journal {
    /// The operation's name.
    pub fn name(&self) -> &'static str {
        match self {
            Journal::Registering { .. } => "password registration",
            Journal::DeletingVaultRecord => "vault record deletion",
            Journal::Rotating { .. } => "key rotation",
            Journal::Disabling { .. } => "disable",
        }
    }
}

/// Phases of a key rotation, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RotatePhase {
    /// Uploading a copy of every backup under the new key; the old objects stay.
    Copying,
    /// Every copy is uploaded; the vault still seals the old key (password mode only).
    Rewrapping,
    /// The new key is in force everywhere; the old objects are being deleted.
    Deleting,
}

impl State {
    /// Every key identifier the state names: the keys the keystore must keep.
    pub fn referenced_keys(&self) -> Vec<&str> {
        let mut ids = Vec::new();
        match &self.mode {
            Mode::Off | Mode::LockedOut { key_id: None } => {}
            Mode::Key { key_id } | Mode::Password { key_id } => ids.push(key_id.as_str()),
            Mode::LockedOut { key_id: Some(key_id) } => ids.push(key_id.as_str()),
            Mode::Restoring { key_id, before, .. } => {
                ids.push(key_id.as_str());
                match before {
                    Before::LockedOut { key_id: Some(old) }
                    | Before::Key { key_id: old }
                    | Before::Password { key_id: old } => ids.push(old.as_str()),
                    Before::Off | Before::LockedOut { key_id: None } => {}
                }
            }
        }
        match &self.journal {
            Some(Journal::Registering { key_id }) => ids.push(key_id.as_str()),
            Some(Journal::Rotating { old_key_id, new_key_id, .. }) => {
                ids.push(old_key_id.as_str());
                ids.push(new_key_id.as_str());
            }
            _ => {}
        }
        ids.sort_unstable();
        ids.dedup();
        ids
    }
}

/// The hexadecimal key identifier of `key`.
pub fn key_id_hex(key: &BackupKey) -> String {
    hex::encode(KeyId::of(key).0)
}

/// The keys of the keystore, by identifier.
#[derive(Default)]
pub struct Keystore {
    keys: BTreeMap<String, BackupKey>,
}

impl std::fmt::Debug for Keystore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keystore").field("key_ids", &self.keys.keys()).finish()
    }
}

impl Keystore {
    /// The key with this identifier.
    pub fn get(&self, key_id: &str) -> Option<&BackupKey> {
        self.keys.get(key_id)
    }

    /// Whether the keystore holds exactly these identifiers.
    fn holds_exactly(&self, ids: &[&str]) -> bool {
        self.keys.len() == ids.len() && ids.iter().all(|id| self.keys.contains_key(*id))
    }

    fn encode(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::new());
        for (id, key) in &self.keys {
            out.push_str(id);
            out.push(' ');
            out.push_str(&e2ee_backup_kdf::digits::to_hex(key));
            out.push('\n');
        }
        out
    }

    fn decode(text: &str) -> Option<Self> {
        let mut keys = BTreeMap::new();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (id, hex_key) = line.split_once(' ')?;
            let mut bytes = Zeroizing::new([0u8; 32]);
            hex::decode_to_slice(hex_key.trim(), bytes.as_mut()).ok()?;
            let key = BackupKey::from_bytes(*bytes);
            if key_id_hex(&key) != id {
                return None;
            }
            keys.insert(id.to_owned(), key);
        }
        Some(Self { keys })
    }
}

/// The state directory on disk.
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// The directory `dir` (not read yet).
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_owned() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Whether a state file exists.
    pub fn exists(&self) -> bool {
        self.dir.join(STATE_FILE).exists()
    }

    /// Reads both files, removing temporary files a crash left behind.
    pub fn load(&self) -> Result<(State, Keystore)> {
        self.remove_stray_temporaries()?;
        let path = self.dir.join(STATE_FILE);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotInitialised { path: self.dir.clone() });
            }
            Err(source) => return Err(Error::Io { operation: "read", path, source }),
        };
        let state: State =
            serde_json::from_slice(&bytes).map_err(|e| self.corrupt(e.to_string()))?;
        if state.format != STATE_FORMAT {
            return Err(self.corrupt(format!("unknown state format {}", state.format)));
        }
        let keystore_path = self.dir.join(KEYSTORE_FILE);
        let keystore = match fs::read(&keystore_path) {
            Ok(bytes) => {
                let text = Zeroizing::new(
                    String::from_utf8(bytes).map_err(|_| self.corrupt("keystore is not text"))?,
                );
                Keystore::decode(&text).ok_or_else(|| self.corrupt("keystore is malformed"))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Keystore::default(),
            Err(source) => {
                return Err(Error::Io { operation: "read", path: keystore_path, source });
            }
        };
        for id in state.referenced_keys() {
            if keystore.get(id).is_none() {
                return Err(
                    self.corrupt(format!("the keystore lacks key {id}, which the state names"))
                );
            }
        }
        Ok((state, keystore))
    }

    fn corrupt(&self, why: impl Into<String>) -> Error {
        Error::CorruptState { path: self.dir.clone(), why: why.into() }
    }

    fn remove_stray_temporaries(&self) -> Result<()> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => {
                return Err(Error::Io { operation: "list", path: self.dir.clone(), source });
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().ends_with(".tmp") {
                let path = entry.path();
                fs::remove_file(&path).map_err(|source| Error::Io {
                    operation: "remove",
                    path,
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// Replaces `state.json`.
    pub fn write_state(&self, state: &State, faults: &dyn FaultInjector) -> Result<()> {
        let json = serde_json::to_vec_pretty(state).map_err(|e| self.corrupt(e.to_string()))?;
        self.write_atomic(STATE_FILE, &json, faults)
    }

    /// Replaces the keystore with the keys of `keystore`.
    pub fn write_keystore(&self, keystore: &Keystore, faults: &dyn FaultInjector) -> Result<()> {
        let text = keystore.encode();
        self.write_atomic(KEYSTORE_FILE, text.as_bytes(), faults)
    }

    fn write_atomic(&self, name: &str, bytes: &[u8], faults: &dyn FaultInjector) -> Result<()> {
        faults::check(faults, &format!("write {name}"))?;
        fs::create_dir_all(&self.dir).map_err(|source| Error::Io {
            operation: "create",
            path: self.dir.clone(),
            source,
        })?;
        let temp = self.dir.join(format!(".{name}.tmp"));
        let io = |operation, path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { operation, path, source }
        };
        let mut file = open_private(&temp).map_err(io("create", &temp))?;
        file.write_all(bytes).map_err(io("write", &temp))?;
        file.sync_all().map_err(io("sync", &temp))?;
        drop(file);
        faults::check(faults, &format!("rename {name}"))?;
        let target = self.dir.join(name);
        fs::rename(&temp, &target).map_err(io("rename", &target))?;
        sync_dir(&self.dir)
    }

    /// Adds `key` to `keystore` and writes it, unless already there. Returns its identifier.
    pub fn add_key(
        &self,
        keystore: &mut Keystore,
        key: &BackupKey,
        faults: &dyn FaultInjector,
    ) -> Result<String> {
        let id = key_id_hex(key);
        if keystore.get(&id).is_none() {
            keystore.keys.insert(id.clone(), key.clone());
            if let Err(err) = self.write_keystore(keystore, faults) {
                keystore.keys.remove(&id);
                return Err(err);
            }
        }
        Ok(id)
    }

    /// Drops every key `state` does not name, and writes the keystore if that changed it.
    pub fn prune(
        &self,
        keystore: &mut Keystore,
        state: &State,
        faults: &dyn FaultInjector,
    ) -> Result<()> {
        let keep = state.referenced_keys();
        if keystore.holds_exactly(&keep) {
            return Ok(());
        }
        keystore.keys.retain(|id, _| keep.contains(&id.as_str()));
        self.write_keystore(keystore, faults)
    }
}

/// Creates (or truncates) `path` readable and writable by the owner only.
pub(crate) fn open_private(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Makes a rename in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir).and_then(|d| d.sync_all()).map_err(|source| Error::Io {
            operation: "sync",
            path: dir.to_owned(),
            source,
        })?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
