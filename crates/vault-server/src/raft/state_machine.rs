//! The state-machine half of a replica (spec sections 7.4 and 7.6): applying a committed entry
//! is the sans-IO core's [`Hsm::apply`] on the stored record, in the same `redb` transaction as
//! the new "last applied" position; the decision goes back to the request that proposed the
//! entry. The writes are not synced on their own (a crash redoes them from the durable log)
//! unless they end a registration, whose key is then destroyed (spec section 4.13.1).
//! Snapshots of the state machine are in [`super::snapshot`].

use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::Arc;

use e2ee_backup_vault::Hsm;
use openraft::storage::RaftStateMachine;
use openraft::{Entry, EntryPayload, LogId, Snapshot, SnapshotMeta, StoredMembership};
use redb::{Database, Durability};
use zeroize::Zeroizing;

use super::storage::{META, StorageResult, encode, read_meta, storage_error};
use super::types::{Applied, LogCommand, Member, NodeId, TypeConfig};
use crate::at_rest::Keyring;
use crate::store::{ACCOUNTS, StoreError, read_record, write_change};

/// The state-machine half of a replica: the sans-IO vault core over the account records.
#[derive(Clone)]
pub(crate) struct StateMachine {
    pub(super) db: Arc<Database>,
    hsm: Arc<Hsm>,
    pub(super) keys: Arc<Keyring>,
    /// The index of the last applied entry that ended a registration: the replica then builds
    /// a snapshot and purges its log up to it ([`super::erasure::compact_after_erasure`]).
    erased: Arc<tokio::sync::watch::Sender<u64>>,
    /// Held while the stored snapshot is read and opened, and while it is replaced and the
    /// keys of the one before destroyed: a snapshot being sent to a lagging replica while a
    /// new one is built must not lose its key between the two (found by `bench-scale`: the
    /// leader's engine stopped on a snapshot that no longer opened).
    pub(super) stored: Arc<std::sync::Mutex<()>>,
}

impl StateMachine {
    /// The state machine of `db`, deciding with `hsm`, records sealed under `keys` (keys no
    /// durable record uses are destroyed first, [`crate::store::sweep_keys`]).
    pub(crate) fn new(
        db: Arc<Database>,
        hsm: Arc<Hsm>,
        keys: Arc<Keyring>,
    ) -> Result<(Self, tokio::sync::watch::Receiver<u64>), crate::store::StoreError> {
        crate::store::sweep_keys(&db, &keys)?;
        let (erased, watch) = tokio::sync::watch::channel(0);
        Ok((Self { db, hsm, keys, erased: Arc::new(erased), stored: Arc::default() }, watch))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> StorageResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, Member>)> {
        let txn = self.db.begin_read().map_err(storage_error)?;
        let applied = read_meta::<Option<LogId<NodeId>>>(&txn, "applied")?.flatten();
        let membership = read_meta(&txn, "membership")?.unwrap_or_default();
        Ok((applied, membership))
    }

    async fn apply<I>(&mut self, entries: I) -> StorageResult<Vec<Applied>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let mut replies = Vec::new();
        // Accounts whose registration ended in this batch: the registration each keeps.
        let mut ended: BTreeMap<Vec<u8>, Option<u32>> = BTreeMap::new();
        let mut last_index = 0;
        let mut txn = self.db.begin_write().map_err(storage_error)?;
        {
            let mut accounts = txn.open_table(ACCOUNTS).map_err(storage_error)?;
            let mut meta = txn.open_table(META).map_err(storage_error)?;
            for entry in entries {
                last_index = entry.log_id.index;
                let applied = encode(&Some(entry.log_id))?;
                meta.insert("applied", applied.as_slice()).map_err(storage_error)?;
                match entry.payload {
                    EntryPayload::Blank => replies.push(Applied(None)),
                    EntryPayload::Membership(membership) => {
                        let stored = StoredMembership::new(Some(entry.log_id), membership);
                        meta.insert("membership", encode(&stored)?.as_slice())
                            .map_err(storage_error)?;
                        replies.push(Applied(None));
                    }
                    EntryPayload::Normal(LogCommand(command)) => {
                        let account = command.account();
                        let record =
                            read_record(&accounts, &self.keys, account).map_err(storage_error)?;
                        let decided = self.hsm.apply(&command, record);
                        // The registration the account keeps, when the entry changed it.
                        let mut keep = None;
                        // Durable with the log: a crash redoes this write from the entry.
                        let decision = decided.persist(|change| {
                            keep = Some(write_change(&mut accounts, &self.keys, account, change)?);
                            Ok::<_, StoreError>(())
                        });
                        let decision = decision.map_err(storage_error)?;
                        if let Some(keep) = keep
                            && (self.keys.holds_other(account, keep) || ended.contains_key(account))
                        {
                            ended.insert(account.to_vec(), keep);
                        }
                        replies.push(Applied(Some(decision)));
                    }
                }
            }
        }
        // Redone from the durable log after a crash, so no fsync of its own, unless it ends a
        // registration: its key is destroyed next, and a redo must never meet a record sealed
        // under a destroyed key.
        txn.set_durability(if ended.is_empty() { Durability::None } else { Durability::Immediate });
        txn.commit().map_err(storage_error)?;
        if !ended.is_empty() {
            for (account, keep) in &ended {
                self.keys.retain_registration(account, *keep).map_err(storage_error)?;
            }
            self.erased.send_replace(last_index);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StorageResult<Box<Cursor<Vec<u8>>>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Member>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> StorageResult<()> {
        // Writes every record: seconds for a million accounts, so on a blocking thread.
        let (this, meta) = (self.clone(), meta.clone());
        tokio::task::spawn_blocking(move || {
            this.install(&meta, Zeroizing::new(snapshot.into_inner()))
        })
        .await
        .map_err(storage_error)?
    }

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        self.current_snapshot()
    }
}
