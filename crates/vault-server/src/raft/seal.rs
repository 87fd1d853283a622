//! The peer seal (spec section 7.7): every peer message, the engine's messages in `postcard`,
//! sealed under the fleet's peer key, bound to sender, receiver and time, each reply bound to
//! the request it answers, and each request accepted once (the node's replay memory).

use std::sync::Arc;

use e2ee_backup_vault::peer;
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::types::NodeId;

/// Seals and opens this node's peer messages (spec section 7.7): the vault's bound peer
/// messages around the engine's messages in `postcard`, with the node's replay memory.
#[derive(Clone)]
pub(crate) struct PeerSeal {
    key: Arc<Zeroizing<[u8; 32]>>,
    /// This node's id (also held by `receiver`, read here without its lock).
    me: NodeId,
    receiver: Arc<std::sync::Mutex<peer::Receiver>>,
    /// Broken variant: replies bound to nothing but their route and header.
    #[cfg(feature = "broken-variants")]
    pub(super) unbound_replies: bool,
}

/// Milliseconds since the Unix epoch: the `sent_at_ms` of peer messages.
pub(super) fn now_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl PeerSeal {
    /// The seal of node `me` ([`peer::OPERATOR`] for an operator's tool) in the fleet whose
    /// peer key is `key`.
    pub(crate) fn new(key: Zeroizing<[u8; 32]>, me: NodeId) -> Self {
        Self {
            key: Arc::new(key),
            me,
            receiver: Arc::new(std::sync::Mutex::new(peer::Receiver::new(me))),
            #[cfg(feature = "broken-variants")]
            unbound_replies: false,
        }
    }

    /// Seals the request `message` on `route` for node `to`; the body and what opens the reply.
    pub(crate) fn seal_request<T: Serialize>(
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
    pub(crate) fn open_reply<T: for<'de> Deserialize<'de>>(
        &self,
        outgoing: &peer::Outgoing,
        sealed: &[u8],
    ) -> Option<T> {
        #[cfg(feature = "broken-variants")]
        if self.unbound_replies {
            return super::broken::open_unbound_reply(&self.key, outgoing, sealed);
        }
        let plain = outgoing.open_reply(&self.key, sealed).ok()?;
        postcard::from_bytes(&plain).ok()
    }

    /// Opens a request on `route` addressed to this node (or, if `any_replica`, to any
    /// replica), within the replay window and not seen before.
    pub(crate) fn open_request<T: for<'de> Deserialize<'de>>(
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
    pub(crate) fn seal_reply<T: Serialize>(
        &self,
        incoming: &peer::Incoming,
        message: &T,
    ) -> Vec<u8> {
        let body = Zeroizing::new(postcard::to_stdvec(message).expect("peer messages serialise"));
        #[cfg(feature = "broken-variants")]
        if self.unbound_replies {
            return super::broken::seal_unbound_reply(&self.key, self.me, incoming, &body);
        }
        incoming.seal_reply(&mut OsRng, &self.key, now_ms(), &body)
    }
}
