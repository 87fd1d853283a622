//! The engine's tables in a replica's `redb` file (spec section 7.6): the log and the engine
//! metadata (vote, committed, last purged, last applied, membership, snapshot), with the
//! postcard encoding and the error type openraft's storage traits fix. The log
//! ([`super::log_store`]) and the state machine ([`super::state_machine`]) share them.

use openraft::{AnyError, StorageError, StorageIOError};
use redb::{Database, Durability, TableDefinition};
use serde::{Deserialize, Serialize};

use super::types::NodeId;

/// What openraft's storage traits return.
pub(super) type StorageResult<T> = Result<T, StorageError<NodeId>>;

/// The log, keyed by index; each value is a postcard-encoded openraft entry, sealed under the
/// replica's current log key ([`crate::at_rest::Kind::LogEntry`]).
pub(super) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// Engine metadata: vote, committed, last purged, last applied, membership, snapshot.
pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");

/// Any failure of the store, as openraft's storage error.
pub(super) fn storage_error(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write(AnyError::error(e.to_string())).into()
}

/// A value in the engine's stored encoding (postcard).
pub(super) fn encode<T: Serialize>(value: &T) -> StorageResult<Vec<u8>> {
    postcard::to_stdvec(value).map_err(storage_error)
}

/// A value from the engine's stored encoding (postcard).
pub(super) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> StorageResult<T> {
    postcard::from_bytes(bytes).map_err(storage_error)
}

/// Reads a metadata value in a transaction of its own.
pub(super) fn get_meta<T: for<'de> Deserialize<'de>>(
    db: &Database,
    key: &str,
) -> StorageResult<Option<T>> {
    let txn = db.begin_read().map_err(storage_error)?;
    read_meta(&txn, key)
}

/// Reads a metadata value inside `txn`, so that it fits the other tables read there.
pub(super) fn read_meta<T: for<'de> Deserialize<'de>>(
    txn: &redb::ReadTransaction,
    key: &str,
) -> StorageResult<Option<T>> {
    let table = match txn.open_table(META) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(storage_error(e)),
    };
    match table.get(key).map_err(storage_error)? {
        Some(value) => decode(value.value()).map(Some),
        None => Ok(None),
    }
}

/// Writes a metadata value in a transaction of its own, committed with `durability`.
pub(super) fn put_meta<T: Serialize>(
    db: &Database,
    key: &str,
    value: &T,
    durability: Durability,
) -> StorageResult<()> {
    let bytes = encode(value)?;
    let mut txn = db.begin_write().map_err(storage_error)?;
    txn.set_durability(durability);
    {
        let mut table = txn.open_table(META).map_err(storage_error)?;
        table.insert(key, bytes.as_slice()).map_err(storage_error)?;
    }
    txn.commit().map_err(storage_error)
}
