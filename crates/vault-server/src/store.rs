//! Durable account records: one `redb` file, `vault.redb`, with one table `accounts` that maps
//! the account identifier's bytes to [`AccountRecord::encode`] bytes.
//!
//! Every change is committed with redb's default durability ([`redb::Durability::Immediate`]:
//! the commit returns only once the data and the new root are flushed to disk), inside
//! [`PersistThenReply::persist`](e2ee_backup_vault::hsm::PersistThenReply::persist), so the
//! reply (a KE2 among others) is sealed only after its record change survives a crash.

use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use e2ee_backup_vault::hsm::RecordChange;
use e2ee_backup_vault::record::AccountRecord;
use redb::{Database, TableDefinition};
use thiserror::Error;
use zeroize::Zeroizing;

/// The file name of the store inside the data directory.
pub const STORE_FILE: &str = "vault.redb";

pub(crate) const ACCOUNTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("accounts");

/// Why a record could not be read or written. No variant carries record bytes.
#[derive(Debug, Error)]
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
    CorruptRecord(#[from] e2ee_backup_vault::wire::WireError),
    /// A store that refuses on purpose (tests of the failure path).
    #[error("storage unavailable: {0}")]
    Unavailable(&'static str),
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
}

/// The redb-backed store.
pub struct RedbStore {
    db: Database,
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

impl RedbStore {
    /// Opens (or creates) `data_dir/vault.redb` (see [`open_database`]).
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Ok(Self { db: open_database(data_dir)? })
    }

    /// The store over an open database (which must hold the accounts table).
    pub fn new(db: Database) -> Self {
        Self { db }
    }

    /// The number of stored records.
    pub fn len(&self) -> Result<u64, StoreError> {
        use redb::ReadableTableMetadata as _;
        let txn = self.db.begin_read().map_err(|e| db_err("counting records")(e.into()))?;
        let table = txn.open_table(ACCOUNTS).map_err(|e| db_err("counting records")(e.into()))?;
        table.len().map_err(|e| db_err("counting records")(e.into()))
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
        let Some(value) = table.get(account).map_err(|e| db_err("reading a record")(e.into()))?
        else {
            return Ok(None);
        };
        let bytes = Zeroizing::new(value.value().to_vec());
        Ok(Some(AccountRecord::decode(&bytes)?))
    }

    fn apply(&self, account: &[u8], change: &RecordChange) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| db_err("writing a record")(e.into()))?;
        {
            let mut table =
                txn.open_table(ACCOUNTS).map_err(|e| db_err("writing a record")(e.into()))?;
            match change {
                RecordChange::Put(record) => {
                    let bytes = Zeroizing::new(record.encode());
                    table
                        .insert(account, bytes.as_slice())
                        .map_err(|e| db_err("writing a record")(e.into()))?;
                }
                RecordChange::Delete => {
                    table.remove(account).map_err(|e| db_err("erasing a record")(e.into()))?;
                }
            }
        }
        // Default durability: Immediate. The commit returns once the change is on disk.
        txn.commit().map_err(|e| db_err("committing a record")(e.into()))
    }
}
