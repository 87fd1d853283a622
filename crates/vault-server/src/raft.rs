//! The replicated vault on the `openraft` engine (spec chapter 7). Everything engine-specific
//! lives in this module, behind [`Replication`]; replacing the engine means replacing this file.
//!
//! * The log entries are [`Command`]s (spec section 7.3), stamped with the leader's clock.
//! * The state machine is the sans-IO core: applying an entry is [`Hsm::apply`] on the stored
//!   record, in the same `redb` transaction as the new "last applied" position. The decision
//!   goes back to the request that proposed the entry, on the leader, which only then seals
//!   the reply (and computes KE2).
//! * One `redb` file per replica (`vault.redb`) holds the account records, the log, the vote
//!   and the snapshot. Registered records, log entries and the stored snapshot are sealed under
//!   erasable keys outside the file ([`crate::at_rest`]); a replica that applies a lockout or a
//!   delete destroys the registration's key, then builds a snapshot and purges its log up to
//!   it, which rotates the log key (spec section 4.13.1). Log appends and votes are committed
//!   with `Durability::Immediate` (fsync) before they are acknowledged; state-machine writes
//!   are not synced on their own (they are redone from the durable log after a crash) unless
//!   they end a registration.
//! * Peers talk HTTP on a separate listener (`peer_listen`), each body a peer message of spec
//!   section 7.7: sealed under the fleet's peer key, bound to sender, receiver and time, each
//!   reply bound to the request it answers, each request accepted once ([`PeerSeal`]).

// openraft's storage traits fix the error type (`StorageError`, over 200 bytes); the helpers
// here return it as the traits do.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::io::Cursor;
use std::net::SocketAddr;
use std::ops::RangeBounds;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use e2ee_backup_vault::hsm::{Command, Decision, Hsm};
use e2ee_backup_vault::peer;
use e2ee_backup_vault::record::AccountRecord;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    AnyError, Entry, EntryPayload, LogId, LogState, RaftLogReader, RaftSnapshotBuilder,
    ServerState, Snapshot, SnapshotMeta, StorageError, StorageIOError, StoredMembership, Vote,
};
use rand_core::{OsRng, RngCore as _};
use redb::{Database, Durability, ReadableTable as _, TableDefinition};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::at_rest::{Keyring, Kind};
use crate::limits::{BodyBudget, BodyRefusal, Limits};
use crate::peer_tls::PeerTls;
use crate::replication::{BoxFuture, ReplicaStatus, Replication, ReplicationError};
use crate::store::{ACCOUNTS, StoreError, read_record, registered_version, write_change};

/// A replica's identity in the fleet: its node id.
pub type NodeId = u64;

/// Where a replica is reached: by clients (through the relay) and by its peers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Client (relay-facing) address, `HOST:PORT`.
    pub api: String,
    /// Peer address, `HOST:PORT`, on the replicas' private network.
    pub peer: String,
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "api {} peer {}", self.api, self.peer)
    }
}

/// A log entry's payload: a [`Command`] in its spec encoding.
#[derive(Clone)]
pub struct LogCommand(pub Command);

impl Debug for LogCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for LogCommand {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0.encode())
    }
}

impl<'de> Deserialize<'de> for LogCommand {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        Command::decode(&bytes).map(Self).map_err(serde::de::Error::custom)
    }
}

/// What applying an entry answers to the request that proposed it: a decision for a command,
/// nothing for the engine's own entries.
pub struct Applied(pub Option<Decision>);

impl Debug for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Applied {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let bytes = self.0.as_ref().map(|d| d.encode());
        bytes.as_ref().map(|b| serde_bytes::Bytes::new(b.as_slice())).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Applied {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = Option::<serde_bytes::ByteBuf>::deserialize(d)?;
        let decision = bytes.map(|b| Decision::decode(&b)).transpose();
        decision.map(Self).map_err(serde::de::Error::custom)
    }
}

openraft::declare_raft_types!(
    /// The vault's openraft configuration.
    pub TypeConfig:
        D = LogCommand,
        R = Applied,
        NodeId = NodeId,
        Node = Member,
        Entry = Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The openraft handle of one replica.
pub type Raft = openraft::Raft<TypeConfig>;

type StorageResult<T> = Result<T, StorageError<NodeId>>;

/// A replica's storage: its database and the erasable keys that seal what it holds.
pub type Stores = (Arc<Database>, Arc<Keyring>);

/// The log, keyed by index; each value is a postcard-encoded openraft entry, sealed under the
/// replica's current log key ([`Kind::LogEntry`]).
const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_log");
/// Engine metadata: vote, committed, last purged, last applied, membership, snapshot.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("raft_meta");

fn storage_error(e: impl std::fmt::Display) -> StorageError<NodeId> {
    StorageIOError::write(AnyError::error(e.to_string())).into()
}

fn encode<T: Serialize>(value: &T) -> StorageResult<Vec<u8>> {
    postcard::to_stdvec(value).map_err(storage_error)
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> StorageResult<T> {
    postcard::from_bytes(bytes).map_err(storage_error)
}

/// Deliberately broken variants, for the tests that must show they can fail (feature
/// `broken-variants`; never in a build that serves accounts).
#[cfg(feature = "broken-variants")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// The leader decides on its local copy of the record and sends the reply before the
    /// command commits.
    Ke2BeforeCommit,
    /// The leader decides on its local copy of the record (a lease read: no log round before
    /// the decision) and acts on that decision once the command commits.
    LeaseRead,
    /// Log appends and votes are acknowledged without fsync.
    SkipFsync,
    /// Peer replies are bound to their route and header only, not to the request they answer
    /// (spec section 7.7): a captured acknowledgement can be replayed.
    UnboundPeerReplies,
}

#[cfg(feature = "broken-variants")]
impl Broken {
    /// The variant `E2EE_VAULT_BROKEN` names (`ke2-before-commit`, `lease-read`, `skip-fsync`,
    /// `unbound-peer-replies`).
    pub fn from_env() -> Option<Self> {
        match std::env::var("E2EE_VAULT_BROKEN").ok()?.as_str() {
            "ke2-before-commit" => Some(Self::Ke2BeforeCommit),
            "lease-read" => Some(Self::LeaseRead),
            "skip-fsync" => Some(Self::SkipFsync),
            "unbound-peer-replies" => Some(Self::UnboundPeerReplies),
            _ => None,
        }
    }
}

fn get_meta<T: for<'de> Deserialize<'de>>(db: &Database, key: &str) -> StorageResult<Option<T>> {
    let txn = db.begin_read().map_err(storage_error)?;
    read_meta(&txn, key)
}

/// Reads a metadata value inside `txn`, so that it fits the other tables read there.
fn read_meta<T: for<'de> Deserialize<'de>>(
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

fn put_meta<T: Serialize>(
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

/// The log half of a replica's `redb` file.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    keys: Arc<Keyring>,
    /// `Immediate`: an append or vote is acknowledged only once it is on disk.
    durability: Durability,
}

impl LogStore {
    /// The log of `db`, its entries sealed under `keys`' log key.
    pub fn new(db: Arc<Database>, keys: Arc<Keyring>) -> Self {
        Self { db, keys, durability: Durability::Immediate }
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

/// The state-machine half of a replica: the sans-IO vault core over the account records.
#[derive(Clone)]
pub struct StateMachine {
    db: Arc<Database>,
    hsm: Arc<Hsm>,
    keys: Arc<Keyring>,
    /// The index of the last applied entry that ended a registration: the replica then builds
    /// a snapshot and purges its log up to it ([`RaftReplication`]).
    erased: Arc<tokio::sync::watch::Sender<u64>>,
}

impl StateMachine {
    /// The state machine of `db`, deciding with `hsm`, records sealed under `keys` (keys no
    /// durable record uses are destroyed first, [`crate::store::sweep_keys`]).
    pub fn new(
        db: Arc<Database>,
        hsm: Arc<Hsm>,
        keys: Arc<Keyring>,
    ) -> Result<(Self, tokio::sync::watch::Receiver<u64>), crate::store::StoreError> {
        crate::store::sweep_keys(&db, &keys)?;
        let (erased, watch) = tokio::sync::watch::channel(0);
        Ok((Self { db, hsm, keys, erased: Arc::new(erased) }, watch))
    }

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
        let data = Zeroizing::new(snapshot.into_inner());
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

    async fn get_current_snapshot(&mut self) -> StorageResult<Option<Snapshot<TypeConfig>>> {
        let stored = self.stored_snapshot()?;
        Ok(stored
            .map(|s| Snapshot { meta: s.meta, snapshot: Box::new(Cursor::new(s.data.into_vec())) }))
    }
}

/// Seals and opens this node's peer messages (spec section 7.7): the vault's bound peer
/// messages around the engine's messages in `postcard`, with the node's replay memory.
#[derive(Clone)]
pub struct PeerSeal {
    key: Arc<Zeroizing<[u8; 32]>>,
    /// This node's id (also held by `receiver`, read here without its lock).
    me: NodeId,
    receiver: Arc<std::sync::Mutex<peer::Receiver>>,
    /// Broken variant: replies bound to nothing but their route and header.
    #[cfg(feature = "broken-variants")]
    unbound_replies: bool,
}

/// Milliseconds since the Unix epoch: the `sent_at_ms` of peer messages.
fn now_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl PeerSeal {
    /// The seal of node `me` ([`peer::OPERATOR`] for an operator's tool) in the fleet whose
    /// peer key is `key`.
    pub fn new(key: Zeroizing<[u8; 32]>, me: NodeId) -> Self {
        Self {
            key: Arc::new(key),
            me,
            receiver: Arc::new(std::sync::Mutex::new(peer::Receiver::new(me))),
            #[cfg(feature = "broken-variants")]
            unbound_replies: false,
        }
    }

    /// Broken variant: replies bound only to their route and header, so that a captured reply
    /// answers any later request (the peer seal before spec 7.7 bound messages).
    #[cfg(feature = "broken-variants")]
    pub fn with_unbound_replies(mut self) -> Self {
        self.unbound_replies = true;
        self
    }

    /// Seals the request `message` on `route` for node `to`; the body and what opens the reply.
    pub fn seal_request<T: Serialize>(
        &self,
        route: &str,
        to: NodeId,
        message: &T,
    ) -> (Vec<u8>, peer::Outgoing) {
        let body = Zeroizing::new(postcard::to_stdvec(message).expect("peer messages serialise"));
        peer::seal_request(&mut OsRng, &self.key, route, (self.me, to), now_ms(), &body)
    }

    /// Opens the reply to the request `outgoing`; `None` if it is not that request's reply or
    /// does not decode.
    pub fn open_reply<T: for<'de> Deserialize<'de>>(
        &self,
        outgoing: &peer::Outgoing,
        sealed: &[u8],
    ) -> Option<T> {
        #[cfg(feature = "broken-variants")]
        if self.unbound_replies {
            let (_, plain) = peer::open_with(&self.key, outgoing.route(), &[], sealed).ok()?;
            return postcard::from_bytes(&plain).ok();
        }
        let plain = outgoing.open_reply(&self.key, sealed).ok()?;
        postcard::from_bytes(&plain).ok()
    }

    /// Opens a request on `route` addressed to this node (or, if `any_replica`, to any
    /// replica), within the replay window and not seen before.
    pub fn open_request<T: for<'de> Deserialize<'de>>(
        &self,
        route: &str,
        sealed: &[u8],
        any_replica: bool,
    ) -> Result<(T, peer::Incoming), peer::PeerError> {
        let opened = self
            .receiver
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .open_request(&self.key, route, sealed, now_ms(), any_replica)?;
        let (plain, incoming) = opened;
        let message = postcard::from_bytes(&plain).map_err(|_| peer::PeerError::Malformed)?;
        Ok((message, incoming))
    }

    /// Seals the reply `message` to the request `incoming`.
    pub fn seal_reply<T: Serialize>(&self, incoming: &peer::Incoming, message: &T) -> Vec<u8> {
        let body = Zeroizing::new(postcard::to_stdvec(message).expect("peer messages serialise"));
        #[cfg(feature = "broken-variants")]
        if self.unbound_replies {
            let request = incoming.header();
            let header = peer::Header {
                direction: peer::Direction::Reply,
                from: self.me,
                to: request.from,
                sent_at_ms: now_ms(),
                message_id: request.message_id,
            };
            let mut nonce = [0u8; peer::NONCE_LEN];
            OsRng.fill_bytes(&mut nonce);
            let route = incoming.route();
            return peer::seal_with(&self.key, route, &header, &[], nonce, &body);
        }
        incoming.seal_reply(&mut OsRng, &self.key, now_ms(), &body)
    }
}

/// The HTTP peer network: one reqwest client, bodies sealed with the peer key.
#[derive(Clone)]
pub struct HttpNetwork {
    http: reqwest::Client,
    seal: PeerSeal,
    /// `https` inside the fleet's mutual TLS, else `http`.
    scheme: &'static str,
}

impl HttpNetwork {
    /// A network sealing with `seal`, connecting from `local` (the replica's peer address, so
    /// that its peers and firewalls see one source per replica) when given, inside mutual TLS
    /// when `tls` is given (spec 7.7.1).
    pub fn new(seal: PeerSeal, local: Option<std::net::IpAddr>, tls: Option<&PeerTls>) -> Self {
        let (builder, scheme) = peer_client(tls);
        let http = builder
            .local_address(local)
            .connect_timeout(Duration::from_millis(500))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("the peer HTTP client builds");
        Self { http, seal, scheme }
    }
}

/// A reqwest builder for the peer network and the URL scheme to use: `https` inside the
/// fleet's mutual TLS when `tls` is given, else `http`.
pub fn peer_client(tls: Option<&PeerTls>) -> (reqwest::ClientBuilder, &'static str) {
    match tls {
        Some(tls) => (http_client().use_preconfigured_tls((*tls.client).clone()), "https"),
        None => (http_client(), "http"),
    }
}

/// A reqwest builder for plain HTTP between replicas.
pub fn http_client() -> reqwest::ClientBuilder {
    // reqwest wants a TLS provider whenever its rustls feature is on somewhere in the build.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// One peer's connection.
pub struct HttpPeer {
    network: HttpNetwork,
    target: NodeId,
    url: String,
}

impl HttpPeer {
    async fn call<Req, Resp, E>(
        &self,
        route: &str,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, Member, E>>
    where
        Req: Serialize,
        Resp: for<'de> Deserialize<'de>,
        E: std::error::Error + for<'de> Deserialize<'de>,
    {
        let (body, outgoing) = self.network.seal.seal_request(route, self.target, request);
        let sent = self
            .network
            .http
            .post(format!("{}/raft/{route}", self.url))
            .timeout(option.hard_ttl())
            .body(body)
            .send()
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        if !sent.status().is_success() {
            let e = std::io::Error::other(format!("peer answered {}", sent.status()));
            return Err(RPCError::Network(NetworkError::new(&e)));
        }
        let bytes = sent.bytes().await.map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let opened = self.network.seal.open_reply(&outgoing, &bytes);
        let answer: Result<Resp, E> = opened.ok_or_else(|| {
            let e = std::io::Error::other("the peer's answer is not the reply to this request");
            RPCError::Network(NetworkError::new(&e))
        })?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetworkFactory<TypeConfig> for HttpNetwork {
    type Network = HttpPeer;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Self::Network {
        let scheme = self.scheme;
        HttpPeer { network: self.clone(), target, url: format!("{scheme}://{}", node.peer) }
    }
}

impl RaftNetwork<TypeConfig> for HttpPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        self.call("append", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Member, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call("snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        self.call("vote", &rpc, &option).await
    }
}

/// The largest sealed peer message accepted: bounded, as every untrusted length.
pub const MAX_PEER_BODY: usize = 64 * 1024 * 1024;

/// How long a peer body waits for room in the body budget before it is refused with `503`.
const PEER_BODY_WAIT: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct PeerState {
    raft: Raft,
    seal: PeerSeal,
    /// Bounds the unauthenticated bytes buffered at once and how long each body may take.
    bodies: BodyBudget,
}

async fn peer_rpc(
    State(state): State<PeerState>,
    UrlPath(route): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // The seal covers the whole body, so it is buffered before it can be checked: within the
    // budget's room and time (spec section 7.7), the reservation held until the answer.
    let (body, _reserved) = match state.bodies.read(&headers, body).await {
        Ok(read) => read,
        Err(refusal) => {
            tracing::debug!(route, ?refusal, "did not read a peer message");
            let status = match refusal {
                BodyRefusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                BodyRefusal::Busy => StatusCode::SERVICE_UNAVAILABLE,
                BodyRefusal::TimedOut => StatusCode::REQUEST_TIMEOUT,
                BodyRefusal::Failed => StatusCode::BAD_REQUEST,
            };
            return (status, "the message is refused").into_response();
        }
    };
    let seal = &state.seal;
    let answer = match route.as_str() {
        "append" => {
            match seal.open_request::<AppendEntriesRequest<TypeConfig>>("append", &body, false) {
                Ok((rpc, incoming)) => {
                    seal.seal_reply(&incoming, &state.raft.append_entries(rpc).await)
                }
                Err(e) => return refuse(&route, e),
            }
        }
        "vote" => match seal.open_request::<VoteRequest<NodeId>>("vote", &body, false) {
            Ok((rpc, incoming)) => seal.seal_reply(&incoming, &state.raft.vote(rpc).await),
            Err(e) => return refuse(&route, e),
        },
        "snapshot" => {
            match seal.open_request::<InstallSnapshotRequest<TypeConfig>>("snapshot", &body, false)
            {
                Ok((rpc, incoming)) => {
                    seal.seal_reply(&incoming, &state.raft.install_snapshot(rpc).await)
                }
                Err(e) => return refuse(&route, e),
            }
        }
        "members" => match seal.open_request::<MembershipRequest>("members", &body, true) {
            Ok((request, incoming)) => {
                seal.seal_reply(&incoming, &change_members(&state.raft, request).await)
            }
            Err(e) => return refuse(&route, e),
        },
        _ => return (StatusCode::NOT_FOUND, "no such peer route").into_response(),
    };
    ([(axum::http::header::CONTENT_TYPE, "application/octet-stream")], answer).into_response()
}

/// The `400` for a peer message that is refused (spec section 7.7); the reason is logged, not
/// sent.
fn refuse(route: &str, why: peer::PeerError) -> Response {
    tracing::debug!(route, %why, "refused a peer message");
    (StatusCode::BAD_REQUEST, "the message is refused").into_response()
}

/// An operator's membership change, sent to the leader's peer address (sealed like all peer
/// traffic, so only holders of the fleet secrets can send it).
#[derive(Debug, Serialize, Deserialize)]
pub enum MembershipRequest {
    /// Add a replica: first as a learner (it catches up), then as a voter.
    Add {
        /// Its new, never used node id.
        id: NodeId,
        /// Where it is reached.
        member: Member,
    },
    /// Remove a voter (a lost or retired replica).
    Remove {
        /// Its node id.
        id: NodeId,
    },
}

/// The answer to a [`MembershipRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub enum MembershipAnswer {
    /// Done: the voters now.
    Done(Vec<NodeId>),
    /// This replica does not lead; ask the leader at this peer address (if known).
    NotLeader(Option<String>),
    /// Refused or failed.
    Failed(String),
}

async fn change_members(raft: &Raft, request: MembershipRequest) -> MembershipAnswer {
    let (leader, me, membership) = {
        let metrics = raft.metrics();
        let metrics = metrics.borrow();
        (metrics.current_leader, metrics.id, metrics.membership_config.membership().clone())
    };
    if leader != Some(me) {
        let peer = leader.and_then(|l| membership.get_node(&l).map(|m| m.peer.clone()));
        return MembershipAnswer::NotLeader(peer);
    }
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let next = match request {
        MembershipRequest::Add { id, member } => {
            if membership.get_node(&id).is_some() {
                return MembershipAnswer::Failed(format!(
                    "node id {id} is in use; a new or rebuilt replica needs a new node id"
                ));
            }
            if let Err(e) = raft.add_learner(id, member, true).await {
                return MembershipAnswer::Failed(format!("adding node {id} as a learner: {e}"));
            }
            voters.iter().copied().chain([id]).collect::<BTreeSet<_>>()
        }
        MembershipRequest::Remove { id } => {
            if !voters.contains(&id) {
                return MembershipAnswer::Failed(format!("node {id} is not a voter"));
            }
            if voters.len() == 1 {
                return MembershipAnswer::Failed("the last voter cannot be removed".into());
            }
            voters.iter().copied().filter(|v| *v != id).collect::<BTreeSet<_>>()
        }
    };
    match raft.change_membership(next.clone(), false).await {
        Ok(_) => MembershipAnswer::Done(next.into_iter().collect()),
        Err(e) => MembershipAnswer::Failed(format!("changing the voters: {e}")),
    }
}

/// Sends `request` to the peer address `via`, sealed with `seal`, following the answer to the
/// leader once; the voters after the change.
pub async fn request_membership_change(
    seal: &PeerSeal,
    tls: Option<&PeerTls>,
    via: &str,
    request: &MembershipRequest,
) -> Result<Vec<NodeId>, String> {
    let (builder, scheme) = peer_client(tls);
    let http = builder
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| format!("the HTTP client: {e}"))?;
    let mut target = via.to_owned();
    for _ in 0..3 {
        let (body, outgoing) = seal.seal_request("members", peer::ANY_REPLICA, request);
        let answer = http
            .post(format!("{scheme}://{target}/raft/members"))
            .body(body)
            .send()
            .await
            .map_err(|e| format!("{target}: {e}"))?;
        if !answer.status().is_success() {
            return Err(format!("{target} answered {}", answer.status()));
        }
        let bytes = answer.bytes().await.map_err(|e| format!("{target}: {e}"))?;
        match seal.open_reply::<MembershipAnswer>(&outgoing, &bytes) {
            Some(MembershipAnswer::Done(voters)) => return Ok(voters),
            Some(MembershipAnswer::NotLeader(Some(leader))) => target = leader,
            Some(MembershipAnswer::NotLeader(None)) => {
                return Err("no leader is known; retry when the fleet has one".into());
            }
            Some(MembershipAnswer::Failed(why)) => return Err(why),
            None => return Err(format!("{target}: the answer does not open (another fleet?)")),
        }
    }
    Err("the leader changed during the request; retry".into())
}

/// The router of the peer listener, buffering bodies within `limits`.
pub fn peer_router(raft: Raft, seal: PeerSeal, limits: &Limits) -> Router {
    let bodies = BodyBudget::new(
        limits.peer_body_budget_mib,
        MAX_PEER_BODY,
        PEER_BODY_WAIT,
        Duration::from_secs(limits.peer_body_timeout_secs),
    );
    Router::new()
        .route("/raft/{route}", post(peer_rpc))
        .layer(DefaultBodyLimit::max(MAX_PEER_BODY))
        .with_state(PeerState { raft, seal, bodies })
}

/// How the engine runs: its timing and how often it compacts the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tuning {
    /// Milliseconds between leader heartbeats.
    pub heartbeat_ms: u64,
    /// Lower bound of the election timeout, milliseconds.
    pub election_min_ms: u64,
    /// Upper bound of the election timeout, milliseconds.
    pub election_max_ms: u64,
    /// Entries applied since the last snapshot that trigger a new one (after which the log
    /// up to it is purged, keeping `snapshot_after / 10` entries for followers that lag).
    pub snapshot_after: u64,
}

impl Tuning {
    /// Loopback and one data centre: 50 ms heartbeats, elections after 300 to 600 ms, a
    /// snapshot every 10 000 entries.
    pub const LOCAL: Tuning = Tuning {
        heartbeat_ms: 50,
        election_min_ms: 300,
        election_max_ms: 600,
        snapshot_after: 10_000,
    };
}

/// Builds an openraft configuration with `tuning`.
pub fn engine_config(tuning: Tuning) -> openraft::Config {
    openraft::Config {
        cluster_name: "e2ee-backup-vault".into(),
        heartbeat_interval: tuning.heartbeat_ms,
        election_timeout_min: tuning.election_min_ms,
        election_timeout_max: tuning.election_max_ms,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(tuning.snapshot_after),
        max_in_snapshot_log_to_keep: tuning.snapshot_after / 10,
        ..Default::default()
    }
}

/// Destroys the log and snapshot keys that nothing stored uses any more: left by a crash
/// between a purge (or a new snapshot) and the destruction that follows it. Log keys older than
/// the oldest one an entry names go (the newest is kept for appends); snapshot keys other than
/// the stored snapshot's go.
fn sweep_engine_keys(db: &Database, keys: &Keyring) -> StorageResult<()> {
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
async fn compact_after_erasure(raft: Raft, mut erased: tokio::sync::watch::Receiver<u64>) {
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

/// A replicated vault: [`Replication`] on an openraft node.
pub struct RaftReplication {
    raft: Raft,
    id: NodeId,
    /// How long a command may take to commit and apply before it counts as unconfirmed.
    pub commit_timeout: Duration,
    /// The variant, its HSM, its database and keys (it reads records outside the log).
    #[cfg(feature = "broken-variants")]
    broken: Option<(Broken, Arc<Hsm>, Stores)>,
}

impl RaftReplication {
    /// Starts replica `id` on `db` (its erasable keys in `keys`) with `network`; with
    /// `bootstrap`, a pristine replica initialises the fleet with `members` (every replica may
    /// be started with the same list; a fleet that exists ignores it).
    pub async fn start<N: RaftNetworkFactory<TypeConfig>>(
        id: NodeId,
        (db, keys): Stores,
        hsm: Arc<Hsm>,
        network: N,
        tuning: Tuning,
        bootstrap: Option<BTreeMap<NodeId, Member>>,
    ) -> Result<Self, String> {
        Self::start_with(id, (db, keys), hsm, network, tuning, bootstrap, LogStore::new).await
    }

    /// As [`RaftReplication::start`], in one of the deliberately broken variants.
    #[cfg(feature = "broken-variants")]
    pub async fn start_broken<N: RaftNetworkFactory<TypeConfig>>(
        id: NodeId,
        (db, keys): Stores,
        hsm: Arc<Hsm>,
        network: N,
        tuning: Tuning,
        bootstrap: Option<BTreeMap<NodeId, Member>>,
        broken: Broken,
    ) -> Result<Self, String> {
        let log = |db, keys| match broken {
            Broken::SkipFsync => LogStore { db, keys, durability: Durability::None },
            _ => LogStore::new(db, keys),
        };
        let stores = (db.clone(), keys.clone());
        let mut replication =
            Self::start_with(id, stores, hsm.clone(), network, tuning, bootstrap, log).await?;
        replication.broken = Some((broken, hsm, (db, keys)));
        Ok(replication)
    }

    async fn start_with<N: RaftNetworkFactory<TypeConfig>>(
        id: NodeId,
        (db, keys): Stores,
        hsm: Arc<Hsm>,
        network: N,
        tuning: Tuning,
        bootstrap: Option<BTreeMap<NodeId, Member>>,
        log: impl FnOnce(Arc<Database>, Arc<Keyring>) -> LogStore,
    ) -> Result<Self, String> {
        let config = engine_config(tuning).validate().map_err(|e| e.to_string())?;
        sweep_engine_keys(&db, &keys).map_err(|e| format!("the store did not open: {e}"))?;
        let (machine, erased) = StateMachine::new(db.clone(), hsm.clone(), keys.clone())
            .map_err(|e| format!("the store did not open: {e}"))?;
        let raft = Raft::new(id, Arc::new(config), network, log(db.clone(), keys), machine)
            .await
            .map_err(|e| format!("the consensus engine did not start: {e}"))?;
        tokio::spawn(compact_after_erasure(raft.clone(), erased));
        if let Some(members) = bootstrap
            && !raft.is_initialized().await.map_err(|e| e.to_string())?
        {
            match raft.initialize(members).await {
                Ok(())
                | Err(RaftError::APIError(openraft::error::InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(format!("the fleet could not be initialised: {e}")),
            }
        }
        Ok(Self {
            raft,
            id,
            commit_timeout: Duration::from_secs(5),
            #[cfg(feature = "broken-variants")]
            broken: None,
        })
    }

    /// The openraft handle (peer routes, membership, tests).
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Commits `command` and returns the decision its apply made on the leader.
    async fn propose(&self, command: Command) -> Result<Decision, ReplicationError> {
        #[cfg(feature = "broken-variants")]
        if let Some((broken @ (Broken::Ke2BeforeCommit | Broken::LeaseRead), hsm, (db, keys))) =
            &self.broken
        {
            return self.propose_broken(*broken, hsm, (db, keys), command).await;
        }
        let applied = self.commit(command).await?;
        applied.0.ok_or_else(|| {
            ReplicationError::Unconfirmed("the entry applied without a decision".into())
        })
    }

    /// Appends `command`, waits (bounded) until a majority has it and the leader applied it.
    async fn commit(&self, command: Command) -> Result<Applied, ReplicationError> {
        let write = self.raft.client_write(LogCommand(command));
        match tokio::time::timeout(self.commit_timeout, write).await {
            Ok(Ok(response)) => Ok(response.data),
            // Not the leader (any more): the entry may still have been proposed before the
            // leadership moved, so this is unconfirmed like any other failure.
            Ok(Err(e)) => Err(ReplicationError::Unconfirmed(e.to_string())),
            Err(_) => Err(ReplicationError::Unconfirmed("the commit timed out".into())),
        }
    }

    /// The broken variants: decide on the local copy of the record (no log round first),
    /// then answer at once and commit in the background, or answer once the command commits.
    #[cfg(feature = "broken-variants")]
    async fn propose_broken(
        &self,
        broken: Broken,
        hsm: &Hsm,
        (db, keys): (&Database, &Keyring),
        command: Command,
    ) -> Result<Decision, ReplicationError> {
        let unconfirmed = |e: &dyn std::fmt::Display| ReplicationError::Unconfirmed(e.to_string());
        let record = {
            let txn = db.begin_read().map_err(|e| unconfirmed(&e))?;
            let table = txn.open_table(ACCOUNTS).map_err(|e| unconfirmed(&e))?;
            read_record(&table, keys, command.account()).map_err(|e| unconfirmed(&e))?
        };
        // Deliberately wrong: the decision of a local read, released without any write.
        let decision = match hsm.apply(&command, record).persist(|_| Ok::<_, ()>(())) {
            Ok(decision) => decision,
            Err(()) => unreachable!("the write above cannot fail"),
        };
        if broken == Broken::Ke2BeforeCommit {
            let raft = self.raft.clone();
            tokio::spawn(async move {
                let _ = raft.client_write(LogCommand(command)).await;
            });
            return Ok(decision);
        }
        self.commit(command).await.map(|_| decision)
    }
}

impl Replication for RaftReplication {
    fn submit(&self, command: Command) -> BoxFuture<'_, Result<Decision, ReplicationError>> {
        Box::pin(self.propose(command))
    }

    fn forward_to(&self) -> Option<String> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        match metrics.current_leader {
            Some(leader) if leader == self.id => None,
            Some(leader) => {
                metrics.membership_config.membership().get_node(&leader).map(|m| m.api.clone())
            }
            None => None,
        }
    }

    fn status(&self) -> ReplicaStatus {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow();
        let leader_api = metrics.current_leader.and_then(|l| {
            metrics.membership_config.membership().get_node(&l).map(|m| m.api.clone())
        });
        ReplicaStatus {
            node_id: self.id,
            leader: metrics.current_leader,
            leader_api,
            term: metrics.current_term,
            last_applied: metrics.last_applied.map_or(0, |l| l.index),
            voters: metrics.membership_config.voter_ids().collect(),
            role: match metrics.state {
                ServerState::Leader => "leader",
                ServerState::Follower => "follower",
                ServerState::Candidate => "candidate",
                ServerState::Learner => "learner",
                ServerState::Shutdown => "shutdown",
            }
            .into(),
        }
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {
            let _ = self.raft.shutdown().await;
        })
    }
}

/// Binds the peer listener at `addr` and serves the peer routes within `limits` (the peer
/// caps, the header timeout and the body budget) until `shutdown` resolves.
pub async fn serve_peers(
    addr: SocketAddr,
    raft: Raft,
    seal: PeerSeal,
    limits: &Limits,
    tls: Option<&PeerTls>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = peer_router(raft, seal, limits);
    let acceptor = tls.map(|tls| tokio_rustls::TlsAcceptor::from(tls.server.clone()));
    let serving = crate::limits::serve(listener, app, limits.peer_listener(), acceptor, shutdown);
    let task = tokio::spawn(serving);
    tracing::info!(tls = tls.is_some(), "peer transport");
    tracing::info!(
        max_connections = limits.peer_max_connections,
        max_connections_per_source = limits.peer_max_connections_per_source,
        body_budget_mib = limits.peer_body_budget_mib,
        body_timeout_secs = limits.peer_body_timeout_secs,
        "peer limits"
    );
    Ok((bound, task))
}
