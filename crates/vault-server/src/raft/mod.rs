//! The replicated vault on the `openraft` engine (spec chapter 7): the replication front,
//! [`RaftReplication`], which starts a replica and submits commands through the engine
//! (spec sections 7.2 and 7.5). Everything engine-specific lives in this module and its files,
//! behind [`Replication`]; replacing the engine means replacing this folder.
//!
//! * `types`: node ids, members, the log entries ([`Command`]s, spec section
//!   7.3, stamped with the leader's clock) and what applying one answers.
//! * `storage`, `log_store`, `state_machine` and `snapshot`: one `redb` file per replica
//!   (`vault.redb`) holds the account records, the log, the vote and the snapshot. Applying an
//!   entry is [`Hsm::apply`] on the stored record, in the same transaction as the new "last
//!   applied" position (spec section 7.4); the decision goes back to the request that proposed
//!   the entry, on the leader, which only then seals the reply (and computes KE2). Log appends
//!   and votes are committed with `Durability::Immediate` (fsync) before they are
//!   acknowledged; state-machine writes are not synced on their own (they are redone from the
//!   durable log after a crash) unless they end a registration (spec section 7.6).
//! * `erasure`: registered records, log entries and the stored snapshot are sealed under
//!   erasable keys outside the file ([`crate::at_rest`]); a replica that applies a lockout or
//!   a delete destroys the registration's key, then builds a snapshot and purges its log up
//!   to it, which rotates the log key (spec section 4.13.1).
//! * `seal` and `network`: peers talk HTTP on a separate listener (`peer_listen`), each body a
//!   peer message of spec section 7.7: sealed under the fleet's peer key, bound to sender,
//!   receiver and time, each reply bound to the request it answers, each request accepted
//!   once.
//! * `membership`: an operator's change of the voters (spec section 7.9).
//! * `broken` (feature `broken-variants`, tests only): the deliberately broken variants.

// openraft's storage traits fix the error type (`StorageError`, over 200 bytes); the helpers
// here return it as the traits do.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use e2ee_backup_vault::{Command, Decision, Hsm};
use openraft::error::{Fatal, InitializeError, RaftError};
use openraft::network::RaftNetworkFactory;
use openraft::{ConfigError, ServerState, StorageError};
use redb::Database;
use serde::{Deserialize, Serialize};

use crate::at_rest::Keyring;
use crate::replication::{
    BoxFuture, ReplicaStatus, Replication, ReplicationError, Stopped, Unconfirmed,
};
use crate::store::StoreError;

#[cfg(feature = "broken-variants")]
mod broken;
mod erasure;
mod log_store;
mod membership;
mod network;
mod seal;
mod snapshot;
mod state_machine;
mod storage;
mod types;

#[cfg(feature = "broken-variants")]
pub use broken::Broken;
use erasure::{compact_after_erasure, sweep_engine_keys};
use log_store::LogStore;
pub use membership::MembershipError;
pub(crate) use membership::{MembershipRequest, request_membership_change};
pub(crate) use network::{HttpNetwork, serve_peers};
pub use network::{http_client, peer_client};
pub(crate) use seal::PeerSeal;
use state_machine::StateMachine;
pub use types::{Applied, LogCommand, Member, NodeId, Raft, TypeConfig};

/// A replica's storage: its database and the erasable keys that seal what it holds.
pub type Stores = (Arc<Database>, Arc<Keyring>);

/// Why a replica's engine did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The engine configuration made from the [`Tuning`] is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The engine's keys could not be swept: its tables do not read.
    #[error("the store did not open: {0}")]
    EngineStore(#[source] Box<StorageError<NodeId>>),
    /// The account records or their keys did not open.
    #[error("the store did not open: {0}")]
    Records(#[source] StoreError),
    /// The consensus engine did not start.
    #[error("the consensus engine did not start: {0}")]
    Engine(#[source] Box<Fatal<NodeId>>),
    /// The consensus engine stopped while the replica started.
    #[error(transparent)]
    Stopped(Box<Fatal<NodeId>>),
    /// The fleet could not be initialised with the bootstrap members.
    #[error("the fleet could not be initialised: {0}")]
    Initialize(#[source] Box<RaftError<NodeId, InitializeError<NodeId, Member>>>),
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
    /// Entries applied since the last snapshot that trigger a new one, at least; a replica
    /// that holds more records waits for as many entries as it holds records
    /// (`snapshot_as_the_log_grows`). The log up to a snapshot is then purged,
    /// keeping `snapshot_after / 10` entries for followers that lag.
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
fn engine_config(tuning: Tuning) -> openraft::Config {
    openraft::Config {
        cluster_name: "e2ee-backup-vault".into(),
        heartbeat_interval: tuning.heartbeat_ms,
        election_timeout_min: tuning.election_min_ms,
        election_timeout_max: tuning.election_max_ms,
        // Snapshots are asked for by `snapshot_as_the_log_grows` and after an erasure.
        snapshot_policy: openraft::SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: tuning.snapshot_after / 10,
        // The last chunk of a snapshot is answered once the replica installed it: seconds for
        // a million accounts (the default, 200 ms, made the leader resend it forever).
        install_snapshot_timeout: 60_000,
        ..Default::default()
    }
}

/// A replicated vault: [`Replication`] on an openraft node.
pub struct RaftReplication {
    raft: Raft,
    id: NodeId,
    /// How long a command may take to commit and apply before it counts as unconfirmed.
    pub(crate) commit_timeout: Duration,
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
    ) -> Result<Self, StartError> {
        Self::start_with(id, (db, keys), hsm, network, tuning, bootstrap, LogStore::new).await
    }

    async fn start_with<N: RaftNetworkFactory<TypeConfig>>(
        id: NodeId,
        (db, keys): Stores,
        hsm: Arc<Hsm>,
        network: N,
        tuning: Tuning,
        bootstrap: Option<BTreeMap<NodeId, Member>>,
        log: impl FnOnce(Arc<Database>, Arc<Keyring>) -> LogStore,
    ) -> Result<Self, StartError> {
        let config = engine_config(tuning).validate()?;
        sweep_engine_keys(&db, &keys).map_err(|e| StartError::EngineStore(Box::new(e)))?;
        let (machine, erased) = StateMachine::new(db.clone(), hsm.clone(), keys.clone())
            .map_err(StartError::Records)?;
        let raft = Raft::new(id, Arc::new(config), network, log(db.clone(), keys), machine)
            .await
            .map_err(|e| StartError::Engine(Box::new(e)))?;
        tokio::spawn(compact_after_erasure(raft.clone(), erased));
        tokio::spawn(snapshot::snapshot_as_the_log_grows(
            raft.clone(),
            db.clone(),
            tuning.snapshot_after,
        ));
        if let Some(members) = bootstrap
            && !raft.is_initialized().await.map_err(|e| StartError::Stopped(Box::new(e)))?
        {
            match raft.initialize(members).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(StartError::Initialize(Box::new(e))),
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
        applied.0.ok_or(ReplicationError::Unconfirmed(Unconfirmed::NoDecision))
    }

    /// Appends `command`, waits (bounded) until a majority has it and the leader applied it.
    async fn commit(&self, command: Command) -> Result<Applied, ReplicationError> {
        let write = self.raft.client_write(LogCommand(command));
        match tokio::time::timeout(self.commit_timeout, write).await {
            Ok(Ok(response)) => Ok(response.data),
            // Not the leader (any more): the entry may still have been proposed before the
            // leadership moved, so this is unconfirmed like any other failure.
            Ok(Err(e)) => Err(ReplicationError::Unconfirmed(Unconfirmed::Engine(Box::new(e)))),
            Err(_) => Err(ReplicationError::Unconfirmed(Unconfirmed::TimedOut)),
        }
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
            snapshot: metrics.snapshot.map(|s| s.index),
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

    fn stopped(&self) -> BoxFuture<'_, Stopped> {
        Box::pin(async {
            let mut metrics = self.raft.metrics();
            loop {
                if let Err(fatal) = &metrics.borrow_and_update().running_state {
                    return Stopped(Box::new(fatal.clone()));
                }
                if metrics.changed().await.is_err() {
                    return Stopped("its metrics ended".into());
                }
            }
        })
    }
}
