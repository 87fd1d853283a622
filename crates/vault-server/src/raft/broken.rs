//! Deliberately broken variants of the replicated vault (feature `broken-variants`; never in a
//! build that serves accounts), for the tests that must show they can fail. Each breaks one
//! rule of spec chapter 7: a reply sent before its command commits or decided on a local read
//! (section 7.5), appends and votes acknowledged before they are durable (section 7.6), and
//! peer replies not bound to the request they answer (section 7.7).

use std::collections::BTreeMap;
use std::sync::Arc;

use e2ee_backup_vault::{Command, Decision, Hsm, peer};
use openraft::network::RaftNetworkFactory;
use rand_core::{OsRng, RngCore as _};
use redb::Database;
use serde::Deserialize;

use super::log_store::LogStore;
use super::seal::{PeerSeal, now_ms};
use super::types::{LogCommand, Member, NodeId, TypeConfig};
use super::{RaftReplication, StartError, Stores, Tuning};
use crate::at_rest::Keyring;
use crate::replication::{ReplicationError, Unconfirmed};
use crate::store::{ACCOUNTS, read_record};

/// Deliberately broken variants, for the tests that must show they can fail (feature
/// `broken-variants`; never in a build that serves accounts).
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

impl RaftReplication {
    /// As [`RaftReplication::start`], in one of the deliberately broken variants.
    pub async fn start_broken<N: RaftNetworkFactory<TypeConfig>>(
        id: NodeId,
        (db, keys): Stores,
        hsm: Arc<Hsm>,
        network: N,
        tuning: Tuning,
        bootstrap: Option<BTreeMap<NodeId, Member>>,
        broken: Broken,
    ) -> Result<Self, StartError> {
        let log = |db, keys| match broken {
            Broken::SkipFsync => LogStore::without_fsync(db, keys),
            _ => LogStore::new(db, keys),
        };
        let stores = (db.clone(), keys.clone());
        let mut replication =
            Self::start_with(id, stores, hsm.clone(), network, tuning, bootstrap, log).await?;
        replication.broken = Some((broken, hsm, (db, keys)));
        Ok(replication)
    }

    /// The broken variants: decide on the local copy of the record (no log round first),
    /// then answer at once and commit in the background, or answer once the command commits.
    pub(super) async fn propose_broken(
        &self,
        broken: Broken,
        hsm: &Hsm,
        (db, keys): (&Database, &Keyring),
        command: Command,
    ) -> Result<Decision, ReplicationError> {
        let unconfirmed = |e: Box<dyn std::error::Error + Send + Sync>| {
            ReplicationError::Unconfirmed(Unconfirmed::Engine(e))
        };
        let record = {
            let txn = db.begin_read().map_err(|e| unconfirmed(e.into()))?;
            let table = txn.open_table(ACCOUNTS).map_err(|e| unconfirmed(e.into()))?;
            read_record(&table, keys, command.account()).map_err(|e| unconfirmed(e.into()))?
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

impl PeerSeal {
    /// Broken variant: replies bound only to their route and header, so that a captured reply
    /// answers any later request (the peer seal before spec 7.7 bound messages).
    pub(crate) fn with_unbound_replies(mut self) -> Self {
        self.unbound_replies = true;
        self
    }
}

/// Opens a reply bound only to the route of `outgoing` (variant `unbound-peer-replies`).
pub(super) fn open_unbound_reply<T: for<'de> Deserialize<'de>>(
    key: &[u8; 32],
    outgoing: &peer::Outgoing,
    sealed: &[u8],
) -> Option<T> {
    let (_, plain) = peer::open_with(key, outgoing.route(), &[], sealed).ok()?;
    postcard::from_bytes(&plain).ok()
}

/// Seals the reply `body` of node `me` to `incoming`, bound only to its route and header
/// (variant `unbound-peer-replies`).
pub(super) fn seal_unbound_reply(
    key: &[u8; 32],
    me: NodeId,
    incoming: &peer::Incoming,
    body: &[u8],
) -> Vec<u8> {
    let request = incoming.header();
    let header = peer::Header {
        direction: peer::Direction::Reply,
        from: me,
        to: request.from,
        sent_at_ms: now_ms(),
        message_id: request.message_id,
    };
    let mut nonce = [0u8; peer::NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let route = incoming.route();
    peer::seal_with(key, route, &header, &[], nonce, body)
}
