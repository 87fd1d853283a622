//! Erasable storage (spec section 4.13.1): everything a replica writes to its database that
//! would let someone holding a copy of the data directory and the fleet secrets attack a
//! registration offline is sealed under a key kept outside the database, and that key is
//! destroyed when the registration must be gone.
//!
//! redb is copy-on-write: an overwritten or removed value stays readable in freed pages until
//! they are reused, and a replica's log keeps every `RegisterFinish` (with its registration
//! ticket) until it is purged. Erasing a value in the database does not erase its bytes;
//! destroying the key that sealed it does. Three kinds of value are sealed:
//!
//! * a **registered account record**, under a key of that registration (account and
//!   `record_version`), destroyed once the account's record is durably committed without that
//!   registration: lockout, delete, re-registration;
//! * a replica's **log entries**, under the current log key. Each purge of the log draws a new
//!   log key, re-seals the entries it keeps under it and destroys the older keys;
//! * a replica's **stored snapshot**, under a key of its own, destroyed when a newer snapshot
//!   replaces it.
//!
//! A replica that erases a registration also builds a snapshot and purges its log up to it, so
//! the `RegisterFinish` entry goes with the log key that sealed it.
//!
//! ```text
//! sealed   = "e2ar" || kind u8 || tag u64 || nonce [12] || u32(len) || ciphertext [len]
//! ciphertext = AES-256-GCM(key, nonce, value, aad)
//! aad      = "e2ee-backups/v1/vault-server/at-rest" || kind u8 || tag u64 || vec16(context)
//! kind     = 1 account record (tag: record_version, context: the account)
//!          | 2 log entry (tag: the log key's number, context empty)
//!          | 3 snapshot (tag: the snapshot key's number, context empty)
//! key file = u8(1) || u32(count) || count × (vec16(name) || key [32])
//! ```
//!
//! Keys live in `keys/` beside `vault.redb`: `keys/accounts-XX` (XX: the first byte of
//! SHA-256 of the account, two hex digits) holds registration keys named `account ||
//! u32(record_version)`; `keys/engine` holds log keys (`"log" || u64(number)`) and snapshot keys
//! (`"snapshot" || u64(number)`). A key file is replaced whole: written to a temporary file,
//! synced, renamed over the old one, directory synced; a file left without keys is removed. A
//! destroyed key is therefore in no file of the directory. (Blocks of the unlinked file may
//! survive on the device: a deployment that fears forensics below the file system keeps the
//! directory on storage it can crypto-shred.)
//!
//! Ordering keeps every stored value openable across crashes: a key is durable before any value
//! sealed under it is committed, and is destroyed only after the commit that stopped using it
//! is durable.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use aes_gcm_10::aead::{Aead, KeyInit, Payload};
use aes_gcm_10::{Aes256Gcm, Nonce};
use e2ee_backup_vault::{
    AccountRecord, AccountState,
    internal::{wire::Reader, wire::Writer},
};
use rand_core::{OsRng, RngCore as _};
use sha2::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::store::StoreError;

/// The directory of the keys, inside the data directory.
pub const KEYS_DIR: &str = "keys";
/// The first bytes of every sealed value.
pub const MAGIC: &[u8; 4] = b"e2ar";
/// The label that starts the associated data.
pub const AT_REST_LABEL: &str = "e2ee-backups/v1/vault-server/at-rest";
const KEY_FILE_VERSION: u8 = 1;
const ENGINE_SHELF: &str = "engine";
/// Header: magic, kind, tag, nonce, length.
const HEADER_LEN: usize = 4 + 1 + 8 + 12 + 4;
const TAG_LEN: usize = 16;

/// What a sealed value holds; its key and associated data follow from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A registered account record.
    Record,
    /// A log entry of a replica.
    LogEntry,
    /// A replica's stored snapshot.
    Snapshot,
}

impl Kind {
    fn code(self) -> u8 {
        match self {
            Self::Record => 1,
            Self::LogEntry => 2,
            Self::Snapshot => 3,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Record),
            2 => Some(Self::LogEntry),
            3 => Some(Self::Snapshot),
            _ => None,
        }
    }

    fn engine_label(self) -> &'static [u8] {
        match self {
            Self::Record => b"record",
            Self::LogEntry => b"log",
            Self::Snapshot => b"snapshot",
        }
    }
}

type Key = Zeroizing<[u8; 32]>;
type Shelf = BTreeMap<Vec<u8>, Key>;

fn keys_err(step: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
    move |e| StoreError::Keys { step, message: e.to_string() }
}

fn account_shelf(account: &[u8]) -> String {
    format!("accounts-{:02x}", Sha256::digest(account)[0])
}

fn record_key_name(account: &[u8], record_version: u32) -> Vec<u8> {
    let mut name = account.to_vec();
    name.extend_from_slice(&record_version.to_be_bytes());
    name
}

fn engine_key_name(kind: Kind, number: u64) -> Vec<u8> {
    let mut name = kind.engine_label().to_vec();
    name.extend_from_slice(&number.to_be_bytes());
    name
}

/// Where the key of a sealed value lives: its shelf and its name there.
fn locate(kind: Kind, tag: u64, context: &[u8]) -> Option<(String, Vec<u8>)> {
    match kind {
        Kind::Record => {
            let version = u32::try_from(tag).ok()?;
            Some((account_shelf(context), record_key_name(context, version)))
        }
        Kind::LogEntry | Kind::Snapshot => {
            Some((ENGINE_SHELF.to_string(), engine_key_name(kind, tag)))
        }
    }
}

fn aad(kind: Kind, tag: u64, context: &[u8]) -> Vec<u8> {
    let mut w = Writer::new();
    w.bytes(AT_REST_LABEL.as_bytes()).u8(kind.code()).u64(tag).vec16(context);
    w.finish()
}

/// The header of a sealed value that starts `bytes`, and the length of the whole value.
fn parse_header(bytes: &[u8]) -> Option<(Kind, u64, [u8; 12], usize)> {
    let mut r = Reader::new(bytes);
    if r.bytes(4, "magic").ok()? != MAGIC {
        return None;
    }
    let kind = Kind::from_code(r.u8("kind").ok()?)?;
    let tag = r.u64("tag").ok()?;
    let nonce = r.array::<12>("nonce").ok()?;
    let len = usize::try_from(r.u32("length").ok()?).ok()?;
    (len >= TAG_LEN && bytes.len() - HEADER_LEN >= len).then_some((
        kind,
        tag,
        nonce,
        HEADER_LEN + len,
    ))
}

/// The erasable keys of one data directory (or of memory, for simulated replicas).
pub struct Keyring {
    dir: Option<PathBuf>,
    shelves: Mutex<BTreeMap<String, Shelf>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Keyring {
    /// Opens (or creates, 0700) `data_dir/keys` and reads every key file; a temporary file left
    /// by an interrupted write is removed.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let dir = data_dir.join(KEYS_DIR);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(keys_err("creating the key directory"))?;
        let mut shelves = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).map_err(keys_err("listing the keys"))? {
            let entry = entry.map_err(keys_err("listing the keys"))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                std::fs::remove_file(entry.path()).map_err(keys_err("removing a temporary"))?;
                continue;
            }
            let bytes =
                Zeroizing::new(std::fs::read(entry.path()).map_err(keys_err("reading keys"))?);
            let shelf = decode_shelf(&bytes).ok_or(StoreError::Keys {
                step: "reading keys",
                message: format!("{} is not a key file", entry.path().display()),
            })?;
            shelves.insert(name, shelf);
        }
        Ok(Self { dir: Some(dir), shelves: Mutex::new(shelves) })
    }

    /// Keys held in memory only (the in-process fleet simulation, whose disks are simulated).
    pub fn in_memory() -> Self {
        Self { dir: None, shelves: Mutex::new(BTreeMap::new()) }
    }

    fn shelves(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Shelf>> {
        self.shelves.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes `shelf` whole (or removes its file when it holds no key).
    fn persist(&self, name: &str, shelf: &Shelf) -> Result<(), StoreError> {
        let Some(dir) = &self.dir else { return Ok(()) };
        let path = dir.join(name);
        if shelf.is_empty() {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(keys_err("removing a key file")(e)),
            }
        } else {
            let temp = dir.join(format!("{name}.tmp"));
            let bytes = encode_shelf(shelf);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temp)
                .map_err(keys_err("writing a key file"))?;
            file.write_all(&bytes).map_err(keys_err("writing a key file"))?;
            file.sync_all().map_err(keys_err("syncing a key file"))?;
            std::fs::rename(&temp, &path).map_err(keys_err("replacing a key file"))?;
        }
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(keys_err("syncing the key directory"))
    }

    fn key(&self, shelf: &str, name: &[u8]) -> Option<Key> {
        self.shelves().get(shelf).and_then(|s| s.get(name)).cloned()
    }

    /// Makes sure every `(account, record_version)` has a durable key, writing each touched
    /// key file once.
    pub fn prepare_registrations<'a>(
        &self,
        registrations: impl IntoIterator<Item = (&'a [u8], u32)>,
    ) -> Result<(), StoreError> {
        let mut shelves = self.shelves();
        let mut touched = std::collections::BTreeSet::new();
        for (account, version) in registrations {
            let shelf_name = account_shelf(account);
            let shelf = shelves.entry(shelf_name.clone()).or_default();
            shelf.entry(record_key_name(account, version)).or_insert_with(|| {
                touched.insert(shelf_name);
                fresh_key()
            });
        }
        for name in touched {
            self.persist(&name, &shelves[&name])?;
        }
        Ok(())
    }

    /// The bytes to store for `record`: sealed under its registration's key (drawn and made
    /// durable first if new) when it is registered, its plain encoding otherwise (phantoms,
    /// tombstones and locked records hold no secret).
    pub fn seal_record(
        &self,
        account: &[u8],
        record: &AccountRecord,
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let encoded = Zeroizing::new(record.encode());
        if record.state != AccountState::Registered {
            return Ok(encoded);
        }
        self.prepare_registrations([(account, record.record_version)])?;
        self.seal(Kind::Record, u64::from(record.record_version), account, &encoded)
    }

    /// Reads stored record bytes of `account` (sealed or plain).
    pub fn open_record(&self, account: &[u8], stored: &[u8]) -> Result<AccountRecord, StoreError> {
        if !stored.starts_with(MAGIC) {
            return Ok(AccountRecord::decode(stored)?);
        }
        let plain = self.unseal(account, stored)?;
        Ok(AccountRecord::decode(&plain)?)
    }

    /// The registration version a stored record's bytes are sealed under, if sealed.
    pub fn sealed_version(stored: &[u8]) -> Option<u32> {
        match Self::sealed_under(stored)? {
            (Kind::Record, tag) => u32::try_from(tag).ok(),
            _ => None,
        }
    }

    /// The kind and key number a sealed value's bytes name, if they are one.
    pub fn sealed_under(stored: &[u8]) -> Option<(Kind, u64)> {
        parse_header(stored).map(|(kind, tag, _, _)| (kind, tag))
    }

    /// Whether `account` has a registration key other than `keep`'s.
    pub fn holds_other(&self, account: &[u8], keep: Option<u32>) -> bool {
        let shelves = self.shelves();
        shelves.get(&account_shelf(account)).is_some_and(|s| !others(s, account, keep).is_empty())
    }

    /// Destroys every registration key of `account` but `keep`'s. Call only once the record
    /// that no longer uses them is durable. Returns whether a key was destroyed.
    pub fn retain_registration(
        &self,
        account: &[u8],
        keep: Option<u32>,
    ) -> Result<bool, StoreError> {
        let shelf_name = account_shelf(account);
        let mut shelves = self.shelves();
        let Some(shelf) = shelves.get_mut(&shelf_name) else { return Ok(false) };
        let doomed = others(shelf, account, keep);
        if doomed.is_empty() {
            return Ok(false);
        }
        for name in doomed {
            shelf.remove(&name);
        }
        let shelf = shelf.clone();
        self.persist(&shelf_name, &shelf)?;
        if shelf.is_empty() {
            shelves.remove(&shelf_name);
        }
        Ok(true)
    }

    /// Every account that holds a registration key.
    pub fn accounts(&self) -> Vec<Vec<u8>> {
        let shelves = self.shelves();
        let accounts: std::collections::BTreeSet<Vec<u8>> = shelves
            .iter()
            .filter(|(name, _)| name.as_str() != ENGINE_SHELF)
            .flat_map(|(_, shelf)| shelf.keys())
            .filter_map(|name| name.get(..name.len().checked_sub(4)?).map(<[u8]>::to_vec))
            .collect();
        accounts.into_iter().collect()
    }

    /// The number of the newest engine key of `kind` (drawing key 1 if there is none).
    pub fn current(&self, kind: Kind) -> Result<u64, StoreError> {
        match self.newest(kind) {
            Some(number) => Ok(number),
            None => self.rotate(kind),
        }
    }

    fn newest(&self, kind: Kind) -> Option<u64> {
        let shelves = self.shelves();
        let label = kind.engine_label();
        shelves.get(ENGINE_SHELF)?.keys().rev().find_map(|name| {
            let number = name.strip_prefix(label)?;
            Some(u64::from_be_bytes(number.try_into().ok()?))
        })
    }

    /// Draws engine key `newest + 1` of `kind`, durable when this returns.
    pub fn rotate(&self, kind: Kind) -> Result<u64, StoreError> {
        let number = self.newest(kind).map_or(1, |n| n + 1);
        let mut shelves = self.shelves();
        let shelf = shelves.entry(ENGINE_SHELF.to_string()).or_default();
        shelf.insert(engine_key_name(kind, number), fresh_key());
        let shelf = shelf.clone();
        self.persist(ENGINE_SHELF, &shelf)?;
        Ok(number)
    }

    /// Destroys the engine keys of `kind` numbered below `number`.
    pub fn destroy_before(&self, kind: Kind, number: u64) -> Result<(), StoreError> {
        let mut shelves = self.shelves();
        let Some(shelf) = shelves.get_mut(ENGINE_SHELF) else { return Ok(()) };
        let label = kind.engine_label();
        let before = shelf.len();
        shelf.retain(|name, _| {
            name.strip_prefix(label)
                .and_then(|n| <[u8; 8]>::try_from(n).ok())
                .is_none_or(|n| u64::from_be_bytes(n) >= number)
        });
        if shelf.len() != before {
            let shelf = shelf.clone();
            self.persist(ENGINE_SHELF, &shelf)?;
        }
        Ok(())
    }

    /// Seals `value` as a `kind` value numbered `tag` (the key must exist).
    pub fn seal(
        &self,
        kind: Kind,
        tag: u64,
        context: &[u8],
        value: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let missing = || StoreError::Sealed("no key to seal under");
        let (shelf, name) = locate(kind, tag, context).ok_or_else(missing)?;
        let key = self.key(&shelf, &name).ok_or_else(missing)?;
        let len =
            u32::try_from(value.len() + TAG_LEN).map_err(|_| StoreError::Sealed("too long"))?;
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let cipher = Aes256Gcm::new_from_slice(key.as_ref()).expect("a 32-byte key");
        let aad = aad(kind, tag, context);
        let ciphertext = cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: value, aad: &aad })
            .map_err(|_| StoreError::Sealed("sealing failed"))?;
        let mut out = Zeroizing::new(Vec::with_capacity(HEADER_LEN + ciphertext.len()));
        out.extend_from_slice(MAGIC);
        out.push(kind.code());
        out.extend_from_slice(&tag.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    /// Opens a sealed value (its whole bytes). `context` is the account for a record, empty
    /// otherwise. Fails with [`StoreError::Sealed`] when the key is gone or the bytes were
    /// altered.
    pub fn unseal(&self, context: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let (kind, tag, nonce, total) =
            parse_header(sealed).ok_or(StoreError::Sealed("not a sealed value"))?;
        if total != sealed.len() {
            return Err(StoreError::Sealed("bytes after the sealed value"));
        }
        self.open_parsed(kind, tag, &nonce, context, &sealed[HEADER_LEN..total])
            .ok_or(StoreError::Sealed("the key is gone or the value was altered"))
    }

    fn open_parsed(
        &self,
        kind: Kind,
        tag: u64,
        nonce: &[u8; 12],
        context: &[u8],
        ciphertext: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        let (shelf, name) = locate(kind, tag, context)?;
        let key = self.key(&shelf, &name)?;
        let cipher = Aes256Gcm::new_from_slice(key.as_ref()).expect("a 32-byte key");
        let aad = aad(kind, tag, context);
        cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: &aad })
            .ok()
            .map(Zeroizing::new)
    }

    /// What someone holding these keys recovers from `bytes` (any file of a data directory, or
    /// a copy of one, freed pages included): every sealed value found anywhere in it that
    /// opens, records tried as `account`'s. The erasure tests run it as the attacker would.
    pub fn recover(&self, bytes: &[u8], account: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
        let mut found = Vec::new();
        let mut at = 0;
        while let Some(offset) = bytes[at..].windows(MAGIC.len()).position(|w| w == MAGIC) {
            let start = at + offset;
            if let Some((kind, tag, nonce, total)) = parse_header(&bytes[start..]) {
                let context = if kind == Kind::Record { account } else { &[][..] };
                let ciphertext = &bytes[start + HEADER_LEN..start + total];
                if let Some(plain) = self.open_parsed(kind, tag, &nonce, context, ciphertext) {
                    found.push(plain);
                }
            }
            at = start + 1;
        }
        found
    }
}

/// The names of `account`'s registration keys in `shelf` other than `keep`'s.
fn others(shelf: &Shelf, account: &[u8], keep: Option<u32>) -> Vec<Vec<u8>> {
    shelf
        .range::<[u8], _>((std::ops::Bound::Included(account), std::ops::Bound::Unbounded))
        .map(|(name, _)| name)
        .take_while(|name| name.starts_with(account))
        .filter(|name| {
            name.len() == account.len() + 4
                && keep.is_none_or(|v| name[account.len()..] != v.to_be_bytes())
        })
        .cloned()
        .collect()
}

fn fresh_key() -> Key {
    let mut key = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(key.as_mut());
    key
}

fn encode_shelf(shelf: &Shelf) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(5 + shelf.len() * 48));
    out.push(KEY_FILE_VERSION);
    out.extend_from_slice(&(shelf.len() as u32).to_be_bytes());
    for (name, key) in shelf {
        out.extend_from_slice(&(name.len() as u16).to_be_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(key.as_ref());
    }
    out
}

fn decode_shelf(bytes: &[u8]) -> Option<Shelf> {
    let mut r = Reader::new(bytes);
    if r.u8("version").ok()? != KEY_FILE_VERSION {
        return None;
    }
    let count = r.u32("count").ok()?;
    let mut shelf = Shelf::new();
    for _ in 0..count {
        let name = r.vec16(usize::from(u16::MAX), "name").ok()?.to_vec();
        let key = Zeroizing::new(r.array::<32>("key").ok()?);
        shelf.insert(name, key);
    }
    r.finish().ok()?;
    Some(shelf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered(version: u32) -> AccountRecord {
        let mut record = AccountRecord::phantom(5, 1, version);
        record.state = AccountState::Registered;
        record.registration = vec![7; e2ee_backup_vault::internal::record::REGISTRATION_LEN];
        record.sealed_key = vec![9; 61];
        record.oprf_ticket = vec![3; 100];
        record
    }

    #[test]
    fn a_destroyed_registration_key_opens_nothing_it_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let ring = Keyring::open(dir.path()).unwrap();
        let stored = ring.seal_record(b"alice", &registered(1)).unwrap();
        assert!(!stored.windows(100).any(|w| w == [3; 100]), "the ticket is not in the clear");
        assert_eq!(ring.open_record(b"alice", &stored).unwrap(), registered(1));
        assert!(ring.open_record(b"bob", &stored).is_err(), "bound to its account");
        // Reopened from disk: the key survived.
        let reopened = Keyring::open(dir.path()).unwrap();
        assert_eq!(reopened.open_record(b"alice", &stored).unwrap(), registered(1));
        assert_eq!(reopened.recover(&stored, b"alice").len(), 1);
        assert!(!reopened.retain_registration(b"alice", Some(1)).unwrap());
        assert!(reopened.retain_registration(b"alice", None).unwrap());
        assert!(reopened.open_record(b"alice", &stored).is_err());
        let again = Keyring::open(dir.path()).unwrap();
        assert!(again.open_record(b"alice", &stored).is_err(), "the key is gone from disk");
        assert!(again.recover(&stored, b"alice").is_empty());
        assert!(std::fs::read_dir(dir.path().join(KEYS_DIR)).unwrap().next().is_none());
    }

    #[test]
    fn engine_keys_rotate_and_older_ones_go() {
        let ring = Keyring::in_memory();
        assert_eq!(ring.current(Kind::LogEntry).unwrap(), 1);
        let old = ring.seal(Kind::LogEntry, 1, b"", b"entry").unwrap();
        assert_eq!(ring.rotate(Kind::LogEntry).unwrap(), 2);
        assert_eq!(ring.current(Kind::Snapshot).unwrap(), 1, "kinds are numbered apart");
        ring.destroy_before(Kind::LogEntry, 2).unwrap();
        assert!(ring.unseal(b"", &old).is_err());
        assert_eq!(ring.current(Kind::LogEntry).unwrap(), 2);
        assert_eq!(ring.current(Kind::Snapshot).unwrap(), 1, "other kinds stay");
    }

    proptest::proptest! {
        /// Whatever bytes a copied file holds, scanning and opening them never panics nor
        /// reads out of bounds; the same holds for a key file's bytes.
        #[test]
        fn any_bytes_are_refused_without_panic(
            mut bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256),
            at in 0usize..256,
            kind in 0u8..5,
        ) {
            let ring = Keyring::in_memory();
            ring.rotate(Kind::LogEntry).unwrap();
            // Plant a header start somewhere, so the parser gets past the magic.
            let at = at.min(bytes.len());
            bytes.splice(at..at, MAGIC.iter().copied().chain([kind]));
            let _ = ring.recover(&bytes, b"account");
            let _ = ring.unseal(b"", &bytes[at..]);
            let _ = ring.open_record(b"account", &bytes[at..]);
            let _ = Keyring::sealed_version(&bytes[at..]);
            let _ = decode_shelf(&bytes);
        }
    }

    #[test]
    fn a_damaged_key_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(KEYS_DIR)).unwrap();
        std::fs::write(dir.path().join(KEYS_DIR).join(ENGINE_SHELF), [1, 0, 0, 0, 9, 0]).unwrap();
        assert!(matches!(Keyring::open(dir.path()), Err(StoreError::Keys { .. })));
    }

    #[test]
    fn headers_from_untrusted_bytes_never_overrun() {
        let ring = Keyring::in_memory();
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0, 1]);
        bytes.extend_from_slice(&[0; 12]);
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(ring.recover(&bytes, b"").is_empty());
        assert!(ring.unseal(b"", &bytes).is_err());
        assert!(decode_shelf(&[1, 0xff, 0xff, 0xff, 0xff]).is_none());
    }
}
