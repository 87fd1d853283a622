//! Snapshots of the state machine (spec sections 7.6 and 4.13.1): every account record at one
//! log position, built when the log grows or a registration ends, installed on a replica that
//! lags, and stored sealed under a snapshot key of its own that is rotated with each new
//! snapshot, so that an older snapshot's bytes open no more.

use std::io::Cursor;

use e2ee_backup_vault::AccountRecord;
use openraft::{LogId, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StoredMembership};
use rand_core::{OsRng, RngCore as _};
use redb::{Durability, ReadableTable as _};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::state_machine::StateMachine;
use super::storage::{META, StorageResult, decode, encode, get_meta, read_meta, storage_error};
use super::types::{Member, NodeId, TypeConfig};
use crate::at_rest::Kind;
use crate::store::{ACCOUNTS, registered_version};

/// A snapshot as sent: every account record at one log position, in the clear (the receiver
/// seals them under its own keys; the transport is sealed, spec 7.7). Stored, it is sealed under
/// a snapshot key of its own ([`Kind::Snapshot`]).
#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    accounts: Vec<(serde_bytes::ByteBuf, serde_bytes::ByteBuf)>,
}

/// The stored current snapshot: its metadata and body.
#[derive(Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, Member>,
    data: serde_bytes::ByteBuf,
}

/// A [`StoredSnapshot`] to write, borrowing the body (the same bytes).
#[derive(Serialize)]
struct StoredSnapshotOf<'a> {
    meta: &'a SnapshotMeta<NodeId, Member>,
    data: &'a serde_bytes::Bytes,
}

impl StateMachine {
    /// The snapshot stored in `db`, opened.
    fn stored_snapshot(&self) -> StorageResult<Option<StoredSnapshot>> {
        let _held = self.hold_stored();
        let Some(sealed) = get_meta::<serde_bytes::ByteBuf>(&self.db, "snapshot")? else {
            return Ok(None);
        };
        let plain = self.keys.unseal(b"", &sealed).map_err(storage_error)?;
        decode(&plain).map(Some)
    }

    /// The hold on the stored snapshot ([`StateMachine::stored`]).
    fn hold_stored(&self) -> std::sync::MutexGuard<'_, ()> {
        self.stored.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Seals the snapshot `meta` and `data` under a new snapshot key (durable before the
    /// commit that stores it).
    fn seal_snapshot(
        &self,
        meta: &SnapshotMeta<NodeId, Member>,
        data: &[u8],
    ) -> StorageResult<(u64, Zeroizing<Vec<u8>>)> {
        let number = self.keys.rotate(Kind::Snapshot).map_err(storage_error)?;
        let sealed = {
            let stored = StoredSnapshotOf { meta, data: serde_bytes::Bytes::new(data) };
            let plain = Zeroizing::new(encode(&stored)?);
            self.keys.seal(Kind::Snapshot, number, b"", &plain).map_err(storage_error)?
        };
        Ok((number, Zeroizing::new(encode(&serde_bytes::Bytes::new(&sealed))?)))
    }

    /// The stored current snapshot, for openraft.
    pub(super) fn current_snapshot(&self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let stored = self.stored_snapshot()?;
        Ok(stored
            .map(|s| Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(s.data.into_vec())) }))
    }

    /// Installs the snapshot `meta` with body `data` received from the leader: the records
    /// replace the state machine's, sealed under this replica's keys, and registrations the
    /// snapshot does not hold lose their keys.
    pub(super) fn install(
        &self,
        meta: &SnapshotMeta<NodeId, Member>,
        data: Zeroizing<Vec<u8>>,
    ) -> StorageResult<()> {
        let body: SnapshotBody = decode(&data)?;
        let mut records = Vec::with_capacity(body.accounts.len());
        for (account, value) in &body.accounts {
            let record = AccountRecord::decode(value).map_err(storage_error)?;
            records.push((account.as_slice(), record));
        }
        // One write per key file for every registration the snapshot brings.
        self.keys
            .prepare_registrations(
                records.iter().filter_map(|(a, r)| Some((*a, registered_version(r)?))),
            )
            .map_err(storage_error)?;
        let held = self.hold_stored();
        let (number, sealed) = self.seal_snapshot(meta, &data)?;
        let mut txn = self.db.begin_write().map_err(storage_error)?;
        txn.set_durability(Durability::Immediate);
        {
            let mut accounts = txn.open_table(ACCOUNTS).map_err(storage_error)?;
            accounts.retain(|_, _| false).map_err(storage_error)?;
            for (account, record) in &records {
                let bytes = self.keys.seal_record(account, record).map_err(storage_error)?;
                accounts.insert(*account, bytes.as_slice()).map_err(storage_error)?;
            }
            let mut table = txn.open_table(META).map_err(storage_error)?;
            table
                .insert("applied", encode(&meta.last_log_id)?.as_slice())
                .map_err(storage_error)?;
            table
                .insert("membership", encode(&meta.last_membership)?.as_slice())
                .map_err(storage_error)?;
            table.insert("snapshot", sealed.as_slice()).map_err(storage_error)?;
        }
        txn.commit().map_err(storage_error)?;
        self.keys.destroy_before(Kind::Snapshot, number).map_err(storage_error)?;
        drop(held);
        // Registrations the snapshot does not hold lose their keys.
        crate::store::sweep_keys(&self.db, &self.keys).map_err(storage_error)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    /// Reads every record: seconds for a million accounts, so on a blocking thread, not one of
    /// the runtime's few workers that serve requests meanwhile.
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.build_now()).await.map_err(storage_error)?
    }
}

impl StateMachine {
    fn build_now(&self) -> StorageResult<Snapshot<TypeConfig>> {
        // One read transaction: the records, the position and the membership of one moment
        // (entries may be applied meanwhile).
        let txn = self.db.begin_read().map_err(storage_error)?;
        let last_applied: Option<LogId<NodeId>> = read_meta(&txn, "applied")?.flatten();
        let membership: StoredMembership<NodeId, Member> =
            read_meta(&txn, "membership")?.unwrap_or_default();
        let data = match txn.open_table(ACCOUNTS) {
            // Encoded straight from the table, one record at a time: a million records are
            // hundreds of megabytes, held once.
            Ok(table) => Zeroizing::new(encode(&BodyOf { table: &table, keys: &self.keys })?),
            Err(_) => Zeroizing::new(encode(&SnapshotBody { accounts: Vec::new() })?),
        };
        let snapshot_id = match last_applied {
            Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, OsRng.next_u32()),
            None => format!("empty-{}", OsRng.next_u32()),
        };
        let meta =
            SnapshotMeta { last_log_id: last_applied, last_membership: membership, snapshot_id };
        let held = self.hold_stored();
        let (number, sealed) = self.seal_snapshot(&meta, &data)?;
        let mut txn = self.db.begin_write().map_err(storage_error)?;
        txn.set_durability(Durability::Immediate);
        {
            let mut table = txn.open_table(META).map_err(storage_error)?;
            table.insert("snapshot", sealed.as_slice()).map_err(storage_error)?;
        }
        txn.commit().map_err(storage_error)?;
        self.keys.destroy_before(Kind::Snapshot, number).map_err(storage_error)?;
        drop(held);
        // openraft takes the bytes (the copy it sends from is not zeroized either).
        let mut data = data;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(std::mem::take(&mut *data))) })
    }
}

/// Asks for a snapshot once the entries applied since the last one reach the larger of
/// `snapshot_after` and the number of records the replica holds (spec section 7.6). A build
/// reads every record, so waiting for as many entries as there are records keeps its cost at
/// about one record read per entry, and the log no larger than about one snapshot, whatever
/// the population (`bench-scale`: with a fixed 10 000, a fleet of a million accounts under
/// load built snapshots back to back, each taking seconds on every replica).
pub(super) async fn snapshot_as_the_log_grows(
    raft: super::Raft,
    db: std::sync::Arc<redb::Database>,
    snapshot_after: u64,
) {
    let mut metrics = raft.metrics();
    let mut threshold = snapshot_after;
    loop {
        let (applied, covered) = {
            let m = metrics.borrow_and_update();
            (m.last_applied.map_or(0, |l| l.index), m.snapshot.map_or(0, |s| s.index))
        };
        if applied.saturating_sub(covered) >= threshold {
            // A store that cannot be counted keeps the policy's floor.
            let records = crate::store::count_records(&db).unwrap_or(0);
            threshold = snapshot_after.max(records);
            if applied.saturating_sub(covered) >= threshold {
                if raft.trigger().snapshot().await.is_err() {
                    return;
                }
                // One request per build: wait until it (or another) is stored.
                let _ = raft
                    .wait(Some(std::time::Duration::from_secs(600)))
                    .metrics(|m| m.snapshot.is_some_and(|s| s.index > covered), "a new snapshot")
                    .await;
                threshold = snapshot_after;
                continue;
            }
        }
        if metrics.changed().await.is_err() {
            return;
        }
    }
}

/// The [`SnapshotBody`] of an accounts table, serialised as it is read (the same bytes).
struct BodyOf<'a> {
    table: &'a redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    keys: &'a crate::at_rest::Keyring,
}

impl Serialize for BodyOf<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut body = serializer.serialize_struct("SnapshotBody", 1)?;
        body.serialize_field("accounts", &Accounts(self))?;
        body.end()
    }
}

struct Accounts<'a, 'b>(&'b BodyOf<'a>);

impl Serialize for Accounts<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use redb::ReadableTableMetadata as _;
        use serde::ser::{Error as _, SerializeSeq as _};
        let BodyOf { table, keys } = self.0;
        let len = table.len().map_err(S::Error::custom)?;
        let len = usize::try_from(len).map_err(S::Error::custom)?;
        let mut seq = serializer.serialize_seq(Some(len))?;
        for item in table.iter().map_err(S::Error::custom)? {
            let (key, value) = item.map_err(S::Error::custom)?;
            let record = keys.open_record(key.value(), value.value()).map_err(S::Error::custom)?;
            let encoded = Zeroizing::new(record.encode());
            seq.serialize_element(&(
                serde_bytes::Bytes::new(key.value()),
                serde_bytes::Bytes::new(&encoded),
            ))?;
        }
        seq.end()
    }
}
