//! How a command becomes durable: the seam between the HTTP server and the vault's state
//! (spec section 7.2).
//!
//! The server opens a request, turns it into a [`Command`] stamped with the time, and hands it to
//! a [`Replication`]. The replication applies the command to the account's record, in one total
//! order with every other command of the fleet, makes the change durable, and only then returns
//! the [`Decision`] the server seals (KE2 is computed then). Two implementations:
//!
//! * [`SingleNode`]: one `redb` file, commands of one account serialised by a striped lock,
//!   changes of many accounts made durable together ([`crate::group_commit`]).
//! * [`crate::raft::RaftReplication`]: a replicated log (openraft); the decision is made when a
//!   majority has the command in its log and the leader applies it.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::BuildHasher as _;
use std::pin::Pin;
use std::sync::Arc;

use e2ee_backup_vault::{Command, Decision, Hsm};
use serde::Serialize;
use tokio::sync::Mutex;

use crate::group_commit::GroupCommit;
use crate::store::{RecordStore, StoreError};

/// A boxed future, for the object-safe [`Replication`] trait.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a command got no decision. In every case nothing may be sent but an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplicationError {
    /// The command may or may not have been applied (a time-out, a leadership lost or never
    /// held, a failed write on a replica): the client must treat the attempt as possibly
    /// charged and retry. Route requests with [`Replication::forward_to`] first.
    #[error("the command may have been applied but was not confirmed: {0}")]
    Unconfirmed(#[source] Unconfirmed),
    /// The record could not be read or written durably; nothing was applied.
    #[error(transparent)]
    Storage(#[from] StoreError),
}

/// Why a command that may have been applied was not confirmed (a
/// [`ReplicationError::Unconfirmed`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Unconfirmed {
    /// The task that applies the command failed (it panicked or was cancelled).
    #[error("the apply task failed: {0}")]
    ApplyTask(#[from] tokio::task::JoinError),
    /// The command's entry was applied but made no decision.
    #[error("the entry applied without a decision")]
    NoDecision,
    /// The command did not commit and apply within the commit time-out.
    #[error("the commit timed out")]
    TimedOut,
    /// The engine failed the command: this replica does not lead (any more), or a write on a
    /// replica failed.
    #[error(transparent)]
    Engine(Box<dyn std::error::Error + Send + Sync>),
}

/// Where a replica stands, for `GET /v1/cluster` and the operator.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicaStatus {
    /// This replica's node id (0 for a single node).
    pub node_id: u64,
    /// The leader's node id, if known.
    pub leader: Option<u64>,
    /// The leader's client address, if known.
    pub leader_api: Option<String>,
    /// The current term (0 for a single node).
    pub term: u64,
    /// Index of the last applied log entry (0 for a single node).
    pub last_applied: u64,
    /// Index of the last log entry the replica's stored snapshot covers (null for none, and
    /// for a single node).
    pub snapshot: Option<u64>,
    /// Node ids of the voting members.
    pub voters: Vec<u64>,
    /// `leader`, `follower`, `candidate`, `learner`, `shutdown` or `single`.
    pub role: String,
}

/// Orders, applies and makes durable the commands of one vault fleet.
pub trait Replication: Send + Sync + 'static {
    /// Applies `command` once it is durable where it must be, and returns the decision. An
    /// error means the decision must not be acted on (see [`ReplicationError`]).
    fn submit(&self, command: Command) -> BoxFuture<'_, Result<Decision, ReplicationError>>;

    /// The client address of the leader when it is another replica (requests are forwarded
    /// there), `None` when this replica may take the request itself.
    fn forward_to(&self) -> Option<String>;

    /// Where the replica stands.
    fn status(&self) -> ReplicaStatus;

    /// Stops the engine (the server has stopped taking requests).
    fn shutdown(&self) -> BoxFuture<'_, ()>;

    /// Resolves, with the cause, once the engine has stopped for good on its own (a replica
    /// whose log store failed): from then on every request would fail, so the server stops
    /// and exits for its supervisor to restart it. A single vault never stops this way.
    fn stopped(&self) -> BoxFuture<'_, Stopped> {
        Box::pin(std::future::pending())
    }
}

/// Why a replica's engine stopped on its own.
#[derive(Debug, thiserror::Error)]
#[error("the replica's consensus engine stopped: {0}")]
pub struct Stopped(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// Number of per-account lock stripes of [`SingleNode`].
const STRIPES: usize = 1024;

/// One vault, one store: each account's commands run one at a time, from reading the record to
/// the durable write (spec section 4.10.2); different accounts run in parallel.
///
/// Changes are made durable by one committer ([`GroupCommit`]): the changes of different
/// accounts that wait together share one transaction, and each command still waits for its own.
pub struct SingleNode {
    hsm: Arc<Hsm>,
    store: Arc<dyn RecordStore>,
    commits: Arc<GroupCommit>,
    stripes: Vec<Arc<Mutex<()>>>,
    stripe_hasher: RandomState,
}

impl SingleNode {
    /// A single vault over `store`; starts its committer thread.
    pub fn new(hsm: Arc<Hsm>, store: Arc<dyn RecordStore>) -> std::io::Result<Self> {
        Ok(Self {
            hsm,
            commits: Arc::new(GroupCommit::start(store.clone())?),
            store,
            stripes: (0..STRIPES).map(|_| Arc::new(Mutex::new(()))).collect(),
            stripe_hasher: RandomState::new(),
        })
    }

    fn stripe(&self, account: &[u8]) -> Arc<Mutex<()>> {
        let index = (self.stripe_hasher.hash_one(account) as usize) % self.stripes.len();
        self.stripes[index].clone()
    }
}

impl Replication for SingleNode {
    fn submit(&self, command: Command) -> BoxFuture<'_, Result<Decision, ReplicationError>> {
        Box::pin(async move {
            let guard = self.stripe(command.account()).lock_owned().await;
            let (hsm, store, commits) =
                (self.hsm.clone(), self.store.clone(), self.commits.clone());
            tokio::task::spawn_blocking(move || {
                let record = store.load(command.account())?;
                let decided = hsm.apply(&command, record);
                let decision =
                    decided.persist(|change| commits.apply(command.account(), change))?;
                drop(guard);
                Ok(decision)
            })
            .await
            .map_err(|e| ReplicationError::Unconfirmed(Unconfirmed::ApplyTask(e)))?
        })
    }

    fn forward_to(&self) -> Option<String> {
        None
    }

    fn status(&self) -> ReplicaStatus {
        ReplicaStatus {
            node_id: 0,
            leader: None,
            leader_api: None,
            term: 0,
            last_applied: 0,
            snapshot: None,
            voters: Vec::new(),
            role: "single".into(),
        }
    }

    fn shutdown(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}
