//! Erasure of what the engine holds (spec section 4.13.1): after a replica applies an entry
//! that ends a registration, it builds a snapshot past the entry and purges its log up to it,
//! which rotates the log key; at start, log and snapshot keys that nothing stored uses any more
//! (left by a crash between a purge and the destruction that follows it) are destroyed.

use std::time::Duration;

use redb::{Database, ReadableTable as _};

use super::Raft;
use super::storage::{LOG, StorageResult, read_meta, storage_error};
use crate::at_rest::{Keyring, Kind};

/// Destroys the log and snapshot keys that nothing stored uses any more: left by a crash
/// between a purge (or a new snapshot) and the destruction that follows it. Log keys older than
/// the oldest one an entry names go (the newest is kept for appends); snapshot keys other than
/// the stored snapshot's go.
pub(super) fn sweep_engine_keys(db: &Database, keys: &Keyring) -> StorageResult<()> {
    let txn = db.begin_read().map_err(storage_error)?;
    let oldest_log_key = match txn.open_table(LOG) {
        Ok(table) => {
            let mut oldest = None::<u64>;
            for item in table.iter().map_err(storage_error)? {
                let (_, value) = item.map_err(storage_error)?;
                if let Some((Kind::LogEntry, number)) = Keyring::sealed_under(value.value()) {
                    oldest = Some(oldest.map_or(number, |o| o.min(number)));
                }
            }
            oldest
        }
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(storage_error(e)),
    };
    let newest_log_key = keys.current(Kind::LogEntry).map_err(storage_error)?;
    keys.destroy_before(Kind::LogEntry, oldest_log_key.unwrap_or(newest_log_key))
        .map_err(storage_error)?;
    let snapshot_key = read_meta::<serde_bytes::ByteBuf>(&txn, "snapshot")?
        .and_then(|sealed| Keyring::sealed_under(&sealed))
        .map(|(_, number)| number);
    if let Some(number) = snapshot_key {
        keys.destroy_before(Kind::Snapshot, number).map_err(storage_error)?;
    }
    Ok(())
}

/// After this replica applies an entry that ends a registration, its log still holds the
/// registration's `RegisterFinish` (and its snapshot the record): build a snapshot past the
/// entry, then purge the log up to that snapshot, which rotates the log key (spec 4.13.1).
/// openraft defers a leader's purge while a follower still needs the entries.
pub(super) async fn compact_after_erasure(
    raft: Raft,
    mut erased: tokio::sync::watch::Receiver<u64>,
) {
    while erased.changed().await.is_ok() {
        // Gather the erasures of a burst into one snapshot.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let index = *erased.borrow_and_update();
        if raft.trigger().snapshot().await.is_err() {
            return;
        }
        let built = raft
            .wait(Some(Duration::from_secs(30)))
            .metrics(|m| m.snapshot.is_some_and(|s| s.index >= index), "snapshot after erasure")
            .await;
        let Ok(metrics) = built else { continue };
        if let Some(snapshot) = metrics.snapshot
            && raft.trigger().purge_log(snapshot.index).await.is_err()
        {
            return;
        }
    }
}
