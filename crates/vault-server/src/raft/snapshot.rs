//! Snapshots of the state machine (spec sections 7.6 and 4.13.1): every account record at one
//! log position, built when the log grows or a registration ends, installed on a replica that
//! lags, and stored sealed under a snapshot key of its own that is rotated with each new
//! snapshot, so that an older snapshot's bytes open no more.

use std::io::Cursor;

use e2ee_backup_vault::record::AccountRecord;
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
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, Member>,
    data: serde_bytes::ByteBuf,
}

impl StateMachine {
    /// The snapshot stored in `db`, opened.
    fn stored_snapshot(&self) -> StorageResult<Option<StoredSnapshot>> {
        let Some(sealed) = get_meta::<serde_bytes::ByteBuf>(&self.db, "snapshot")? else {
            return Ok(None);
        };
        let plain = self.keys.unseal(b"", &sealed).map_err(storage_error)?;
        decode(&plain).map(Some)
    }

    /// Seals the snapshot `meta` and `data` under a new snapshot key (durable before the
    /// commit that stores it).
    fn seal_snapshot(
        &self,
        meta: &SnapshotMeta<NodeId, Member>,
        data: &[u8],
    ) -> StorageResult<(u64, Zeroizing<Vec<u8>>)> {
        let number = self.keys.rotate(Kind::Snapshot).map_err(storage_error)?;
        let stored = StoredSnapshot { meta: meta.clone(), data: serde_bytes::ByteBuf::from(data) };
        let plain = Zeroizing::new(encode(&stored)?);
        let sealed = self.keys.seal(Kind::Snapshot, number, b"", &plain).map_err(storage_error)?;
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
        // Registrations the snapshot does not hold lose their keys.
        crate::store::sweep_keys(&self.db, &self.keys).map_err(storage_error)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> StorageResult<Snapshot<TypeConfig>> {
        // One read transaction: the records, the position and the membership of one moment
        // (entries may be applied meanwhile).
        let txn = self.db.begin_read().map_err(storage_error)?;
        let last_applied: Option<LogId<NodeId>> = read_meta(&txn, "applied")?.flatten();
        let membership: StoredMembership<NodeId, Member> =
            read_meta(&txn, "membership")?.unwrap_or_default();
        let mut accounts = Vec::new();
        if let Ok(table) = txn.open_table(ACCOUNTS) {
            for item in table.iter().map_err(storage_error)? {
                let (key, value) = item.map_err(storage_error)?;
                let record =
                    self.keys.open_record(key.value(), value.value()).map_err(storage_error)?;
                accounts.push((
                    serde_bytes::ByteBuf::from(key.value().to_vec()),
                    serde_bytes::ByteBuf::from(record.encode()),
                ));
            }
        }
        let data = Zeroizing::new(encode(&SnapshotBody { accounts })?);
        let snapshot_id = match last_applied {
            Some(id) => format!("{}-{}-{}", id.leader_id.term, id.index, OsRng.next_u32()),
            None => format!("empty-{}", OsRng.next_u32()),
        };
        let meta =
            SnapshotMeta { last_log_id: last_applied, last_membership: membership, snapshot_id };
        let (number, sealed) = self.seal_snapshot(&meta, &data)?;
        let mut txn = self.db.begin_write().map_err(storage_error)?;
        txn.set_durability(Durability::Immediate);
        {
            let mut table = txn.open_table(META).map_err(storage_error)?;
            table.insert("snapshot", sealed.as_slice()).map_err(storage_error)?;
        }
        txn.commit().map_err(storage_error)?;
        self.keys.destroy_before(Kind::Snapshot, number).map_err(storage_error)?;
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data.to_vec())) })
    }
}
