//! Changing a fleet's voters (spec section 7.9): the operator's sealed membership request to
//! any replica's peer address, followed to the leader, which adds a replica first as a learner
//! (it catches up) and then as a voter, or removes a voter.

use std::collections::BTreeSet;
use std::time::Duration;

use e2ee_backup_vault::peer;
use serde::{Deserialize, Serialize};

use super::Raft;
use super::network::peer_client;
use super::seal::PeerSeal;
use super::types::{Member, NodeId};
use crate::peer_tls::PeerTls;

/// Why a membership change was not made, or not confirmed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MembershipError {
    /// The HTTP client could not be built.
    #[error("the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The request did not reach `target`, or its answer did not arrive.
    #[error("{target}: {source}")]
    Unreachable {
        /// The peer address asked.
        target: String,
        /// The error.
        source: reqwest::Error,
    },
    /// `target` answered with an HTTP error status.
    #[error("{target} answered {status}")]
    Status {
        /// The peer address asked.
        target: String,
        /// The status.
        status: reqwest::StatusCode,
    },
    /// The replica asked does not lead and knows no leader.
    #[error("no leader is known; retry when the fleet has one")]
    NoLeader,
    /// The leader refused the change or it failed there (the leader's reason).
    #[error("{0}")]
    Refused(String),
    /// The answer of `target` does not open under the fleet's peer key.
    #[error("{target}: the answer does not open (another fleet?)")]
    DoesNotOpen {
        /// The peer address asked.
        target: String,
    },
    /// The request was passed on to a new leader too many times.
    #[error("the leader changed during the request; retry")]
    LeaderChanged,
}

/// An operator's membership change, sent to the leader's peer address (sealed like all peer
/// traffic, so only holders of the fleet secrets can send it).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum MembershipRequest {
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
pub(crate) enum MembershipAnswer {
    /// Done: the voters now.
    Done(Vec<NodeId>),
    /// This replica does not lead; ask the leader at this peer address (if known).
    NotLeader(Option<String>),
    /// Refused or failed.
    Failed(String),
}

pub(super) async fn change_members(raft: &Raft, request: MembershipRequest) -> MembershipAnswer {
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
pub(crate) async fn request_membership_change(
    seal: &PeerSeal,
    tls: Option<&PeerTls>,
    via: &str,
    request: &MembershipRequest,
) -> Result<Vec<NodeId>, MembershipError> {
    let (builder, scheme) = peer_client(tls);
    let http =
        builder.timeout(Duration::from_secs(120)).build().map_err(MembershipError::Client)?;
    let mut target = via.to_owned();
    for _ in 0..3 {
        let (body, outgoing) = seal.seal_request("members", peer::ANY_REPLICA, request);
        let answer = http
            .post(format!("{scheme}://{target}/raft/members"))
            .body(body)
            .send()
            .await
            .map_err(|source| MembershipError::Unreachable { target: target.clone(), source })?;
        if !answer.status().is_success() {
            return Err(MembershipError::Status { target, status: answer.status() });
        }
        let bytes = answer
            .bytes()
            .await
            .map_err(|source| MembershipError::Unreachable { target: target.clone(), source })?;
        match seal.open_reply::<MembershipAnswer>(&outgoing, &bytes) {
            Some(MembershipAnswer::Done(voters)) => return Ok(voters),
            Some(MembershipAnswer::NotLeader(Some(leader))) => target = leader,
            Some(MembershipAnswer::NotLeader(None)) => {
                return Err(MembershipError::NoLeader);
            }
            Some(MembershipAnswer::Failed(why)) => return Err(MembershipError::Refused(why)),
            None => return Err(MembershipError::DoesNotOpen { target }),
        }
    }
    Err(MembershipError::LeaderChanged)
}
