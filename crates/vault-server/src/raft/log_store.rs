//! The log half of a replica's `redb` file (spec section 7.6): entries sealed under the
//! current log key, appends and votes committed with `Durability::Immediate` (fsync) before
//! they are acknowledged, and purges that rotate the log key so that purged entries open no
//! more (spec section 4.13.1).

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{Entry, LogId, LogState, RaftLogReader, Vote};
use redb::{Database, Durability, ReadableTable as _};
use zeroize::Zeroizing;

use super::storage::{LOG, META, StorageResult, decode, encode, get_meta, put_meta, storage_error};
use super::types::{NodeId, TypeConfig};
use crate::at_rest::{Keyring, Kind};

/// The log half of a replica's `redb` file.
#[derive(Clone)]
pub(crate) struct LogStore {
    db: Arc<Database>,
    keys: Arc<Keyring>,
    /// `Immediate`: an append or vote is acknowledged only once it is on disk.
    durability: Durability,
}

impl LogStore {
    /// The log of `db`, its entries sealed under `keys`' log key.
    pub(crate) fn new(db: Arc<Database>, keys: Arc<Keyring>) -> Self {
        Self { db, keys, durability: Durability::Immediate }
    }

    /// Broken variant `skip-fsync`: appends and votes acknowledged before they are on disk.
    #[cfg(feature = "broken-variants")]
    pub(super) fn without_fsync(db: Arc<Database>, keys: Arc<Keyring>) -> Self {
        Self { db, keys, durability: Durability::None }
    }

    fn seal_entry(
        &self,
        number: u64,
        entry: &Entry<TypeConfig>,
    ) -> StorageResult<Zeroizing<Vec<u8>>> {
        let plain = Zeroizing::new(encode(entry)?);
        self.keys.seal(Kind::LogEntry, number, b"", &plain).map_err(storage_error)
    }

    fn open_entry(&self, stored: &[u8]) -> StorageResult<Entry<TypeConfig>> {
        let plain = self.keys.unseal(b"", stored).map_err(storage_error)?;
        decode(&plain)
    }

    fn read_entries<RB: RangeBounds<u64>>(
        &self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        let txn = self.db.begin_read().map_err(storage_error)?;
        let table = match txn.open_table(LOG) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(storage_error(e)),
        };
        let mut entries = Vec::new();
        for item in table.range(range).map_err(storage_error)? {
            let (_, value) = item.map_err(storage_error)?;
            entries.push(self.open_entry(value.value())?);
        }
        Ok(entries)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> StorageResult<Vec<Entry<TypeConfig>>> {
        // A purge may re-seal the entries under a new log key and destroy the old one between
        // this read's snapshot of the table and its opening: read again, in a new transaction.
        match self.read_entries(range.clone()) {
            Ok(entries) => Ok(entries),
            Err(_) => self.read_entries(range),
        }
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> StorageResult<LogState<TypeConfig>> {
        let last_purged: Option<LogId<NodeId>> = get_meta(&self.db, "last_purged")?;
        let txn = self.db.begin_read().map_err(storage_error)?;
        let last = match txn.open_table(LOG) {
            Ok(table) => match table.last().map_err(storage_error)? {
                Some((_, value)) => Some(self.open_entry(value.value())?.log_id),
                None => None,
            },
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(storage_error(e)),
        };
        Ok(LogState { last_purged_log_id: last_purged, last_log_id: last.or(last_purged) })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StorageResult<()> {
        put_meta(&self.db, "vote", vote, self.durability)
    }

    async fn read_vote(&mut self) -> StorageResult<Option<Vote<NodeId>>> {
        get_meta(&self.db, "vote")
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StorageResult<()> {
        // A hint for a faster restart: not synced on its own.
        put_meta(&self.db, "committed", &committed, Durability::None)
    }

    async fn read_committed(&mut self) -> StorageResult<Option<LogId<NodeId>>> {
        Ok(get_meta::<Option<LogId<NodeId>>>(&self.db, "committed")?.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StorageResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let number = self.keys.current(Kind::LogEntry).map_err(storage_error)?;
        let mut txn = self.db.begin_write().map_err(storage_error)?;
        txn.set_durability(self.durability);
        {
            let mut table = txn.open_table(LOG).map_err(storage_error)?;
            for entry in entries {
                let bytes = self.seal_entry(number, &entry)?;
                table.insert(entry.log_id.index, bytes.as_slice()).map_err(storage_error)?;
            }
        }
        let result = txn.commit().map_err(|e| std::io::Error::other(e.to_string()));
        let failed = result.as_ref().err().map(storage_error);
        // The entries are durable (the commit returned): only now may they be acknowledged.
        callback.log_io_completed(result);
        failed.map_or(Ok(()), Err)
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let mut txn = self.db.begin_write().map_err(storage_error)?;
        txn.set_durability(self.durability);
        {
            let mut table = txn.open_table(LOG).map_err(storage_error)?;
            table.retain_in(log_id.index.., |_, _| false).map_err(storage_error)?;
        }
        txn.commit().map_err(storage_error)
    }

    /// Removes the entries up to `log_id` and rotates the log key: the entries kept are
    /// re-sealed under a new key in the same durable transaction, then every older key is
    /// destroyed, so the purged entries' bytes (in freed pages) open no more.
    async fn purge(&mut self, log_id: LogId<NodeId>) -> StorageResult<()> {
        let bytes = encode(&log_id)?;
        let number = self.keys.rotate(Kind::LogEntry).map_err(storage_error)?;
        let kept = self.read_entries(log_id.index + 1..)?;
        let mut txn = self.db.begin_write().map_err(storage_error)?;
        txn.set_durability(Durability::Immediate);
        {
            let mut meta = txn.open_table(META).map_err(storage_error)?;
            meta.insert("last_purged", bytes.as_slice()).map_err(storage_error)?;
            let mut table = txn.open_table(LOG).map_err(storage_error)?;
            table.retain_in(..=log_id.index, |_, _| false).map_err(storage_error)?;
            for entry in &kept {
                let sealed = self.seal_entry(number, entry)?;
                table.insert(entry.log_id.index, sealed.as_slice()).map_err(storage_error)?;
            }
        }
        txn.commit().map_err(storage_error)?;
        self.keys.destroy_before(Kind::LogEntry, number).map_err(storage_error)
    }
}
