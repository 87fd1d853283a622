//! Durable account records: one `redb` file, `vault.redb`, with one table `accounts` that maps
//! the account identifier's bytes to the record: [`AccountRecord::encode`] bytes, sealed under
//! the registration's erasable key when the account is registered ([`crate::at_rest`], spec
//! section 4.13.1). A change that ends a registration (lockout, delete, re-registration)
//! destroys its key once the change is durable, so no copy of the file opens it afterwards.
//!
//! Every change is committed with redb's default durability ([`redb::Durability::Immediate`]:
//! the commit returns only once the data and the new root are flushed to disk), inside
//! [`Decided::persist`](e2ee_backup_vault::Decided::persist), so the
//! reply (a KE2 among others) is sealed only after its record change survives a crash.

use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use e2ee_backup_vault::{AccountRecord, RecordChange};
use std::sync::Arc;

use crate::at_rest::Keyring;
use redb::{Database, TableDefinition};
use thiserror::Error;
use zeroize::Zeroizing;

/// The file name of the store inside the data directory.
pub const STORE_FILE: &str = "vault.redb";

pub(crate) const ACCOUNTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("accounts");

/// Why a record could not be read or written. No variant carries record bytes.
#[derive(Debug, Clone, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database reported an error (I/O, corruption, a failed commit).
    #[error("storage error while {step}: {message}")]
    Database {
        /// What the store was doing.
        step: &'static str,
        /// The database's message.
        message: String,
    },
    /// A stored record does not decode.
    #[error("the stored record does not decode: {0}")]
    CorruptRecord(#[from] e2ee_backup_vault::WireError),
    /// A store that refuses on purpose (tests of the failure path).
    #[error("storage unavailable: {0}")]
    Unavailable(&'static str),
    /// The erasable keys could not be read or written (spec section 4.13.1).
    #[error("key storage error while {step}: {message}")]
    Keys {
        /// What the store was doing.
        step: &'static str,
        /// The system's message.
        message: String,
    },
    /// A sealed stored value does not open (its key is gone, or the bytes were altered).
    #[error("a sealed stored value does not open: {0}")]
    Sealed(&'static str),
}

fn db_err(step: &'static str) -> impl FnOnce(redb::Error) -> StoreError {
    move |e| StoreError::Database { step, message: e.to_string() }
}

/// Where account records live. Implementations must make [`RecordStore::apply`] return only once
/// the change is durable.
pub trait RecordStore: Send + Sync + 'static {
    /// The stored record of `account`, if any.
    fn load(&self, account: &[u8]) -> Result<Option<AccountRecord>, StoreError>;
    /// Makes `change` to `account`'s record durable.
    fn apply(&self, account: &[u8], change: &RecordChange) -> Result<(), StoreError>;
    /// Makes the changes of distinct accounts durable, in one transaction where the store has
    /// them ([`RedbStore`] does); returns one result per change, in order, and only an `Ok`
    /// change may be acted on. A failed transaction fails every change in it; what a store does
    /// for one account after the commit fails that account's change alone. By default, one
    /// [`RecordStore::apply`] each.
    fn apply_all(&self, changes: &[(&[u8], &RecordChange)]) -> Vec<Result<(), StoreError>> {
        changes.iter().map(|(account, change)| self.apply(account, change)).collect()
    }
}

/// The redb-backed store.
pub struct RedbStore {
    db: Database,
    keys: Arc<Keyring>,
}

impl std::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStore").finish_non_exhaustive()
    }
}

/// Opens (or creates) `data_dir/vault.redb` and makes sure the accounts table exists. redb
/// recovers an interrupted commit on open: the file reflects the last durable commit.
pub fn open_database(data_dir: &Path) -> Result<Database, StoreError> {
    let path = data_dir.join(STORE_FILE);
    // Created private (0600) before redb initialises it; an existing file is left as is.
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| StoreError::Database { step: "creating the store", message: e.to_string() })?;
    let db = Database::create(&path).map_err(|e| db_err("opening the store")(e.into()))?;
    create_tables(&db)?;
    Ok(db)
}

/// Makes sure `db` holds the accounts table (a database on another backend, as in the
/// in-process fleet tests).
pub fn create_tables(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write().map_err(|e| db_err("creating the table")(e.into()))?;
    txn.open_table(ACCOUNTS).map_err(|e| db_err("creating the table")(e.into()))?;
    txn.commit().map_err(|e| db_err("creating the table")(e.into()))
}

/// Destroys every registration key that no durable record of `db` is sealed under: keys left
/// by a crash between a commit and the destruction that follows it, and keys drawn for a
/// registration whose commit did not survive (a replica redoes it from its log). Run before
/// anything else uses the store.
pub fn sweep_keys(db: &Database, keys: &Keyring) -> Result<(), StoreError> {
    let txn = db.begin_read().map_err(|e| db_err("sweeping keys")(e.into()))?;
    let table = txn.open_table(ACCOUNTS).map_err(|e| db_err("sweeping keys")(e.into()))?;
    for account in keys.accounts() {
        let stored =
            table.get(account.as_slice()).map_err(|e| db_err("sweeping keys")(e.into()))?;
        let keep = stored.and_then(|v| Keyring::sealed_version(v.value()));
        keys.retain_registration(&account, keep)?;
    }
    Ok(())
}

/// The number of account records in `db`.
pub fn count_records(db: &Database) -> Result<u64, StoreError> {
    use redb::ReadableTableMetadata as _;
    let txn = db.begin_read().map_err(|e| db_err("counting records")(e.into()))?;
    let table = txn.open_table(ACCOUNTS).map_err(|e| db_err("counting records")(e.into()))?;
    table.len().map_err(|e| db_err("counting records")(e.into()))
}

impl RedbStore {
    /// Opens (or creates) `data_dir/vault.redb` (see [`open_database`]) and its keys.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::new(open_database(data_dir)?, Arc::new(Keyring::open(data_dir)?))
    }

    /// The store over an open database (which must hold the accounts table) and its keys.
    pub fn new(db: Database, keys: Arc<Keyring>) -> Result<Self, StoreError> {
        sweep_keys(&db, &keys)?;
        Ok(Self { db, keys })
    }

    /// The number of stored records.
    pub fn len(&self) -> Result<u64, StoreError> {
        count_records(&self.db)
    }

    /// Whether `account` has a stored record (without opening it).
    pub fn contains(&self, account: &[u8]) -> Result<bool, StoreError> {
        let txn = self.db.begin_read().map_err(|e| db_err("reading a record")(e.into()))?;
        let table = txn.open_table(ACCOUNTS).map_err(|e| db_err("reading a record")(e.into()))?;
        let found = table.get(account).map_err(|e| db_err("reading a record")(e.into()))?;
        Ok(found.is_some())
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
}

impl RecordStore for RedbStore {
    fn load(&self, account: &[u8]) -> Result<Option<AccountRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| db_err("reading a record")(e.into()))?;
        let table = txn.open_table(ACCOUNTS).map_err(|e| db_err("reading a record")(e.into()))?;
        read_record(&table, &self.keys, account)
    }

    fn apply(&self, account: &[u8], change: &RecordChange) -> Result<(), StoreError> {
        self.apply_all(&[(account, change)]).pop().expect("one result per change")
    }

    fn apply_all(&self, changes: &[(&[u8], &RecordChange)]) -> Vec<Result<(), StoreError>> {
        let keeps = match self.commit(changes) {
            Ok(keeps) => keeps,
            Err(err) => return vec![Err(err); changes.len()],
        };
        // Only now may a registration a record no longer holds lose its key. A failure here
        // leaves that key for the sweep at the next start, and fails that account's change.
        changes
            .iter()
            .zip(keeps)
            .map(|((account, _), keep)| self.keys.retain_registration(account, keep).map(drop))
            .collect()
    }
}

impl RedbStore {
    /// Writes `changes` in one durable transaction; returns the registration each record keeps.
    fn commit(&self, changes: &[(&[u8], &RecordChange)]) -> Result<Vec<Option<u32>>, StoreError> {
        let txn = self.db.begin_write().map_err(|e| db_err("writing a record")(e.into()))?;
        let keep = {
            let mut table =
                txn.open_table(ACCOUNTS).map_err(|e| db_err("writing a record")(e.into()))?;
            changes
                .iter()
                .map(|(account, change)| write_change(&mut table, &self.keys, account, change))
                .collect::<Result<Vec<_>, _>>()?
        };
        // Default durability: Immediate. The commit returns once every change is on disk.
        txn.commit().map_err(|e| db_err("committing a record")(e.into()))?;
        Ok(keep)
    }
}

/// The stored record of `account` in `table`, opened under `keys` (the one place a record is
/// read from redb).
pub fn read_record(
    table: &impl redb::ReadableTable<&'static [u8], &'static [u8]>,
    keys: &Keyring,
    account: &[u8],
) -> Result<Option<AccountRecord>, StoreError> {
    let Some(value) = table.get(account).map_err(|e| db_err("reading a record")(e.into()))? else {
        return Ok(None);
    };
    let bytes = Zeroizing::new(value.value().to_vec());
    Ok(Some(keys.open_record(account, &bytes)?))
}

/// Writes `change` to `account`'s record in `table`, sealed under `keys` (the one place a
/// record is written to redb). Returns the registration the record keeps: once the write is
/// durable, the account's other registration keys may go ([`Keyring::retain_registration`]).
pub fn write_change(
    table: &mut redb::Table<'_, &'static [u8], &'static [u8]>,
    keys: &Keyring,
    account: &[u8],
    change: &RecordChange,
) -> Result<Option<u32>, StoreError> {
    match change {
        RecordChange::Put(record) => {
            let bytes = keys.seal_record(account, record)?;
            table
                .insert(account, bytes.as_slice())
                .map_err(|e| db_err("writing a record")(e.into()))?;
            Ok(registered_version(record))
        }
        RecordChange::Delete => {
            table.remove(account).map_err(|e| db_err("erasing a record")(e.into()))?;
            Ok(None)
        }
    }
}

/// The registration a record holds, if it holds one: the key it is sealed under.
pub fn registered_version(record: &AccountRecord) -> Option<u32> {
    (record.state == e2ee_backup_vault::AccountState::Registered).then_some(record.record_version)
}
