//! The replicas' peer messages (spec section 7.7).
//!
//! Every peer message is sealed under the fleet's peer key and bound, in the clear header that
//! the seal authenticates, to its direction, its sender, its receiver and a fresh message id; a
//! reply is moreover bound to the exact bytes of the request it answers:
//!
//! ```text
//! header  = direction [1] || from [8] || to [8] || sent_at_ms [8] || message_id [16]
//! aad     = "e2ee-backups/v1/vault/peer-message" || 0x00 || len(route) [1] || route
//!           || header || binding
//! binding = empty (a request) | SHA-256(sealed request) (a reply)
//! sealed  = header || nonce [12] || AES-256-GCM-Seal(peer_key, nonce, aad, message)
//! ```
//!
//! A receiver ([`Receiver`]) refuses a request that is not addressed to it, that is older or
//! newer than [`REPLAY_WINDOW_MS`], or whose `(from, message_id)` it has already accepted; a
//! requester ([`Outgoing`]) accepts only the reply to the request it sent. Someone on the peer
//! network without the fleet secrets can therefore neither replay an acknowledgement nor
//! reflect a request to another replica.
//!
//! The key comes from [`HsmSecrets::peer_key`](crate::HsmSecrets::peer_key).

use std::collections::HashMap;

use aes_gcm_10::aead::{Aead, KeyInit, Payload};
use aes_gcm_10::{Aes256Gcm, Nonce};
use rand_core::{CryptoRng, RngCore};
use sha2_10::{Digest, Sha256};
use zeroize::Zeroizing;

/// The label that starts every peer message's associated data.
pub const LABEL: &str = "e2ee-backups/v1/vault/peer-message";
/// Length of the clear header that starts a sealed peer message.
pub const HEADER_LEN: usize = 1 + 8 + 8 + 8 + MESSAGE_ID_LEN;
/// Length of a message id.
pub const MESSAGE_ID_LEN: usize = 16;
/// Length of the nonce that follows the header.
pub const NONCE_LEN: usize = 12;
/// Length of the AES-GCM tag that ends a sealed peer message.
pub const TAG_LEN: usize = 16;
/// The shortest sealed peer message: a header, a nonce and a tag.
pub const MIN_SEALED_LEN: usize = HEADER_LEN + NONCE_LEN + TAG_LEN;
/// The node id of an operator's tool (`member add` / `remove`): never a replica's.
pub const OPERATOR: u64 = 0;
/// The `to` of an operator's `members` request: whichever replica answers.
pub const ANY_REPLICA: u64 = 0;
/// How far a request's `sent_at_ms` may lie from the receiver's clock, either way; the
/// receiver remembers accepted message ids for as long.
pub const REPLAY_WINDOW_MS: u64 = 60_000;
/// How many accepted message ids a receiver remembers at most; beyond that it refuses.
pub const MAX_REMEMBERED: usize = 1 << 16;

/// Which way a message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From the replica (or operator) that calls to the one that answers: code 1.
    Request,
    /// The answer: code 2.
    Reply,
}

impl Direction {
    /// The wire code.
    pub fn code(self) -> u8 {
        match self {
            Direction::Request => 1,
            Direction::Reply => 2,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Direction::Request),
            2 => Some(Direction::Reply),
            _ => None,
        }
    }
}

/// The clear, authenticated header of a peer message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Request or reply.
    pub direction: Direction,
    /// The sender's node id ([`OPERATOR`] for an operator's tool).
    pub from: u64,
    /// The receiver's node id ([`ANY_REPLICA`] only for an operator's `members` request).
    pub to: u64,
    /// The sender's clock, in milliseconds since the Unix epoch.
    pub sent_at_ms: u64,
    /// Fresh random for a request; the request's own for a reply.
    pub message_id: [u8; MESSAGE_ID_LEN],
}

impl Header {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = self.direction.code();
        out[1..9].copy_from_slice(&self.from.to_be_bytes());
        out[9..17].copy_from_slice(&self.to.to_be_bytes());
        out[17..25].copy_from_slice(&self.sent_at_ms.to_be_bytes());
        out[25..].copy_from_slice(&self.message_id);
        out
    }

    /// Reads the header at the start of a sealed message.
    pub fn decode(sealed: &[u8]) -> Result<Self, PeerError> {
        let bytes: &[u8; HEADER_LEN] = sealed.first_chunk().ok_or(PeerError::Malformed)?;
        let u64_at = |at: usize| {
            u64::from_be_bytes(bytes[at..at + 8].try_into().expect("eight bytes of the header"))
        };
        Ok(Header {
            direction: Direction::from_code(bytes[0]).ok_or(PeerError::Malformed)?,
            from: u64_at(1),
            to: u64_at(9),
            sent_at_ms: u64_at(17),
            message_id: bytes[25..].try_into().expect("sixteen bytes of the header"),
        })
    }
}

/// Why a peer message is refused, in the order the checks run (spec section 7.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// Shorter than a header, nonce and tag, or an unknown direction code.
    #[error("malformed peer message")]
    Malformed,
    /// A reply where a request was expected, or the other way round.
    #[error("peer message in the wrong direction")]
    WrongDirection,
    /// Not addressed to this node.
    #[error("peer message for another node")]
    WrongReceiver,
    /// A reply from another node than the one asked, or for another request.
    #[error("peer reply to another request")]
    WrongRequest,
    /// The seal does not open under the peer key with this route, header and binding.
    #[error("peer message does not open")]
    DoesNotOpen,
    /// A request sent more than the replay window away from the receiver's clock.
    #[error("peer request outside the replay window")]
    Stale,
    /// A request whose `(from, message_id)` was already accepted.
    #[error("replayed peer request")]
    Replayed,
    /// The receiver remembers too many message ids to accept another now.
    #[error("too many peer requests in the replay window")]
    Busy,
}

impl PeerError {
    /// The error's name in the vectors and the spec.
    pub fn code(self) -> &'static str {
        match self {
            PeerError::Malformed => "malformed",
            PeerError::WrongDirection => "wrong-direction",
            PeerError::WrongReceiver => "wrong-receiver",
            PeerError::WrongRequest => "wrong-request",
            PeerError::DoesNotOpen => "does-not-open",
            PeerError::Stale => "stale",
            PeerError::Replayed => "replayed",
            PeerError::Busy => "busy",
        }
    }
}

/// The associated data of a peer message.
fn aad(route: &str, header: &[u8; HEADER_LEN], binding: &[u8]) -> Vec<u8> {
    let route_len = u8::try_from(route.len()).expect("routes are short ASCII names");
    let mut aad = Vec::with_capacity(LABEL.len() + 2 + route.len() + HEADER_LEN + binding.len());
    aad.extend_from_slice(LABEL.as_bytes());
    aad.push(0);
    aad.push(route_len);
    aad.extend_from_slice(route.as_bytes());
    aad.extend_from_slice(header);
    aad.extend_from_slice(binding);
    aad
}

/// Seals `message` with an explicit header, binding and nonce: the primitive under
/// [`seal_request`] and [`Incoming::seal_reply`] (vectors; a nonce must never repeat under one
/// key).
pub fn seal_with(
    key: &[u8; 32],
    route: &str,
    header: &Header,
    binding: &[u8],
    nonce: [u8; NONCE_LEN],
    message: &[u8],
) -> Vec<u8> {
    let header = header.encode();
    let cipher = Aes256Gcm::new(key.into());
    let sealed = cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload { msg: message, aad: &aad(route, &header, binding) },
        )
        .expect("peer messages are far below AES-GCM's limit");
    let mut out = Vec::with_capacity(HEADER_LEN + NONCE_LEN + sealed.len());
    out.extend_from_slice(&header);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

/// Opens a sealed message under `route` and `binding`, whatever its header says (the callers
/// check the header first); its header and plaintext.
pub fn open_with(
    key: &[u8; 32],
    route: &str,
    binding: &[u8],
    sealed: &[u8],
) -> Result<(Header, Zeroizing<Vec<u8>>), PeerError> {
    if sealed.len() < MIN_SEALED_LEN {
        return Err(PeerError::Malformed);
    }
    let header = Header::decode(sealed)?;
    let (clear, rest) = sealed.split_at(HEADER_LEN);
    let (nonce, body) = rest.split_at(NONCE_LEN);
    let clear: &[u8; HEADER_LEN] = clear.try_into().expect("split at the header's length");
    let cipher = Aes256Gcm::new(key.into());
    let plain = cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad: &aad(route, clear, binding) })
        .map_err(|_| PeerError::DoesNotOpen)?;
    Ok((header, Zeroizing::new(plain)))
}

fn digest(sealed: &[u8]) -> [u8; 32] {
    Sha256::digest(sealed).into()
}

/// What a requester keeps of a request it sent, to open the reply.
#[derive(Clone, Debug)]
pub struct Outgoing {
    route: String,
    header: Header,
    request_digest: [u8; 32],
}

/// Seals the request `message` on `route` from node `from` to node `to` at `now_ms`, with a
/// fresh message id and nonce from `rng`; the sealed bytes and what opens the reply.
pub fn seal_request<R: RngCore + CryptoRng>(
    rng: &mut R,
    key: &[u8; 32],
    route: &str,
    (from, to): (u64, u64),
    now_ms: u64,
    message: &[u8],
) -> (Vec<u8>, Outgoing) {
    let mut message_id = [0u8; MESSAGE_ID_LEN];
    rng.fill_bytes(&mut message_id);
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let header = Header { direction: Direction::Request, from, to, sent_at_ms: now_ms, message_id };
    let sealed = seal_with(key, route, &header, &[], nonce, message);
    let outgoing = Outgoing { route: route.to_owned(), header, request_digest: digest(&sealed) };
    (sealed, outgoing)
}

impl Outgoing {
    /// What opens the reply to the sealed request `sealed` on `route` (for a request sealed
    /// elsewhere, e.g. by [`seal_with`]).
    pub fn for_request(route: &str, sealed: &[u8]) -> Result<Self, PeerError> {
        let header = Header::decode(sealed)?;
        if header.direction != Direction::Request {
            return Err(PeerError::WrongDirection);
        }
        Ok(Outgoing { route: route.to_owned(), header, request_digest: digest(sealed) })
    }

    /// Opens the reply to this request: a reply, from the node asked (any node if the request
    /// went to [`ANY_REPLICA`]), to this sender, with this request's message id, sealed over
    /// this request's digest.
    pub fn open_reply(
        &self,
        key: &[u8; 32],
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, PeerError> {
        if sealed.len() < MIN_SEALED_LEN {
            return Err(PeerError::Malformed);
        }
        let header = Header::decode(sealed)?;
        if header.direction != Direction::Reply {
            return Err(PeerError::WrongDirection);
        }
        if header.to != self.header.from {
            return Err(PeerError::WrongReceiver);
        }
        let from_asked = self.header.to == ANY_REPLICA || header.from == self.header.to;
        if !from_asked || header.message_id != self.header.message_id {
            return Err(PeerError::WrongRequest);
        }
        open_with(key, &self.route, &self.request_digest, sealed).map(|(_, plain)| plain)
    }

    /// The request's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The request's route.
    pub fn route(&self) -> &str {
        &self.route
    }
}

/// What a receiver keeps of a request it accepted, to seal the reply.
#[derive(Clone, Debug)]
pub struct Incoming {
    route: String,
    request: Header,
    me: u64,
    request_digest: [u8; 32],
}

impl Incoming {
    /// The request's header (its `from` is the requester).
    pub fn header(&self) -> &Header {
        &self.request
    }

    /// The request's route.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// Seals the reply `message` at `now_ms` with a nonce from `rng`.
    pub fn seal_reply<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        key: &[u8; 32],
        now_ms: u64,
        message: &[u8],
    ) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let header = Header {
            direction: Direction::Reply,
            from: self.me,
            to: self.request.from,
            sent_at_ms: now_ms,
            message_id: self.request.message_id,
        };
        seal_with(key, &self.route, &header, &self.request_digest, nonce, message)
    }
}

/// A node's receiving side: its id and the message ids it accepted within the window.
#[derive(Debug)]
pub struct Receiver {
    me: u64,
    /// `(from, message_id)` of accepted requests, with their `sent_at_ms`.
    seen: HashMap<(u64, [u8; MESSAGE_ID_LEN]), u64>,
}

impl Receiver {
    /// The receiving side of node `me`.
    pub fn new(me: u64) -> Self {
        Self { me, seen: HashMap::new() }
    }

    /// This node's id.
    pub fn me(&self) -> u64 {
        self.me
    }

    /// Opens a request on `route` at `now_ms`. `to` must be this node, or [`ANY_REPLICA`] if
    /// `any_replica` (the `members` route); the request must open, lie within the replay window
    /// and not have been accepted before. Its plaintext and what seals the reply.
    pub fn open_request(
        &mut self,
        key: &[u8; 32],
        route: &str,
        sealed: &[u8],
        now_ms: u64,
        any_replica: bool,
    ) -> Result<(Zeroizing<Vec<u8>>, Incoming), PeerError> {
        if sealed.len() < MIN_SEALED_LEN {
            return Err(PeerError::Malformed);
        }
        let header = Header::decode(sealed)?;
        if header.direction != Direction::Request {
            return Err(PeerError::WrongDirection);
        }
        if header.to != self.me && !(any_replica && header.to == ANY_REPLICA) {
            return Err(PeerError::WrongReceiver);
        }
        let (_, plain) = open_with(key, route, &[], sealed)?;
        if header.sent_at_ms.abs_diff(now_ms) > REPLAY_WINDOW_MS {
            return Err(PeerError::Stale);
        }
        let id = (header.from, header.message_id);
        if self.seen.contains_key(&id) {
            return Err(PeerError::Replayed);
        }
        if self.seen.len() >= MAX_REMEMBERED {
            // Forget what the window already refuses as stale.
            self.seen.retain(|_, sent_at| sent_at.saturating_add(REPLAY_WINDOW_MS) >= now_ms);
            if self.seen.len() >= MAX_REMEMBERED {
                return Err(PeerError::Busy);
            }
        }
        self.seen.insert(id, header.sent_at_ms);
        let incoming = Incoming {
            route: route.to_owned(),
            request: header,
            me: self.me,
            request_digest: digest(sealed),
        };
        Ok((plain, incoming))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    const KEY: [u8; 32] = [7; 32];
    const NOW: u64 = 1_800_000_000_000;

    fn request(from: u64, to: u64, route: &str) -> (Vec<u8>, Outgoing) {
        seal_request(&mut OsRng, &KEY, route, (from, to), NOW, b"entries")
    }

    #[test]
    fn a_request_and_its_reply_open() {
        let (sealed, outgoing) = request(1, 2, "append");
        let mut two = Receiver::new(2);
        let (plain, incoming) = two.open_request(&KEY, "append", &sealed, NOW + 5, false).unwrap();
        assert_eq!(plain.as_slice(), b"entries");
        assert_eq!(incoming.header().from, 1);
        let reply = incoming.seal_reply(&mut OsRng, &KEY, NOW + 6, b"success");
        assert_eq!(outgoing.open_reply(&KEY, &reply).unwrap().as_slice(), b"success");
    }

    #[test]
    fn a_request_opens_once_for_its_receiver_route_and_window_only() {
        let (sealed, _) = request(1, 2, "append");
        assert_eq!(
            Receiver::new(3).open_request(&KEY, "append", &sealed, NOW, false).unwrap_err(),
            PeerError::WrongReceiver
        );
        assert_eq!(
            Receiver::new(1).open_request(&KEY, "append", &sealed, NOW, false).unwrap_err(),
            PeerError::WrongReceiver
        );
        let mut two = Receiver::new(2);
        assert_eq!(
            two.open_request(&KEY, "vote", &sealed, NOW, false).unwrap_err(),
            PeerError::DoesNotOpen
        );
        assert_eq!(
            two.open_request(&[8; 32], "append", &sealed, NOW, false).unwrap_err(),
            PeerError::DoesNotOpen
        );
        let late = NOW + REPLAY_WINDOW_MS + 1;
        assert_eq!(
            two.open_request(&KEY, "append", &sealed, late, false).unwrap_err(),
            PeerError::Stale
        );
        let early = NOW - REPLAY_WINDOW_MS - 1;
        assert_eq!(
            two.open_request(&KEY, "append", &sealed, early, false).unwrap_err(),
            PeerError::Stale
        );
        assert!(two.open_request(&KEY, "append", &sealed, NOW + REPLAY_WINDOW_MS, false).is_ok());
        assert_eq!(
            two.open_request(&KEY, "append", &sealed, NOW, false).unwrap_err(),
            PeerError::Replayed
        );
        // Every header byte is authenticated.
        let (sealed, _) = request(1, 2, "append");
        for at in 0..HEADER_LEN {
            let mut changed = sealed.clone();
            changed[at] ^= 1;
            let opened = Receiver::new(2).open_request(&KEY, "append", &changed, NOW, false);
            assert!(opened.is_err(), "header byte {at} is not bound");
        }
        let (sealed, _) = request(1, 2, "append");
        assert_eq!(
            two.open_request(
                &KEY,
                "append",
                &sealed[..HEADER_LEN + NONCE_LEN + TAG_LEN - 1],
                NOW,
                false
            )
            .unwrap_err(),
            PeerError::Malformed
        );
    }

    #[test]
    fn a_reply_opens_for_its_own_request_only() {
        let (first, first_out) = request(1, 2, "append");
        let (second, second_out) = request(1, 2, "append");
        let mut two = Receiver::new(2);
        let (_, first_in) = two.open_request(&KEY, "append", &first, NOW, false).unwrap();
        let (_, second_in) = two.open_request(&KEY, "append", &second, NOW, false).unwrap();
        let first_reply = first_in.seal_reply(&mut OsRng, &KEY, NOW, b"success");
        // A captured reply does not answer a later request.
        assert_eq!(second_out.open_reply(&KEY, &first_reply).unwrap_err(), PeerError::WrongRequest);
        // Nor a request made to look like its own: the digest binds the request's bytes.
        let mut forged = first_reply.clone();
        forged[25..HEADER_LEN].copy_from_slice(&second_out.header().message_id);
        assert_eq!(second_out.open_reply(&KEY, &forged).unwrap_err(), PeerError::DoesNotOpen);
        assert!(first_out.open_reply(&KEY, &first_reply).is_ok());
        let _ = second_in;
        // A request reflected as a reply, and a reply replayed as a request.
        assert_eq!(first_out.open_reply(&KEY, &first).unwrap_err(), PeerError::WrongDirection);
        assert_eq!(
            Receiver::new(1).open_request(&KEY, "append", &first_reply, NOW, false).unwrap_err(),
            PeerError::WrongDirection
        );
        // A reply from another node than the one asked.
        let mut three = Receiver::new(3);
        let (to_three, out_three) = request(1, 3, "append");
        let (_, in_three) = three.open_request(&KEY, "append", &to_three, NOW, false).unwrap();
        let reply_three = in_three.seal_reply(&mut OsRng, &KEY, NOW, b"success");
        assert_eq!(first_out.open_reply(&KEY, &reply_three).unwrap_err(), PeerError::WrongRequest);
        assert!(out_three.open_reply(&KEY, &reply_three).is_ok());
    }

    #[test]
    fn an_operator_request_may_go_to_any_replica_on_the_members_route() {
        let (sealed, outgoing) = request(OPERATOR, ANY_REPLICA, "members");
        assert_eq!(
            Receiver::new(2).open_request(&KEY, "members", &sealed, NOW, false).unwrap_err(),
            PeerError::WrongReceiver
        );
        let (_, incoming) =
            Receiver::new(2).open_request(&KEY, "members", &sealed, NOW, true).unwrap();
        let reply = incoming.seal_reply(&mut OsRng, &KEY, NOW, b"done");
        assert_eq!(outgoing.open_reply(&KEY, &reply).unwrap().as_slice(), b"done");
    }

    #[test]
    fn arbitrary_bytes_are_refused_without_panic() {
        let (sealed, outgoing) = request(1, 2, "append");
        let mut two = Receiver::new(2);
        let mut bytes = [0u8; 128];
        for len in 0..bytes.len() {
            OsRng.fill_bytes(&mut bytes);
            bytes[0] = 1 + (len % 2) as u8;
            assert!(two.open_request(&KEY, "append", &bytes[..len], NOW, true).is_err());
            assert!(outgoing.open_reply(&KEY, &bytes[..len]).is_err());
            assert!(
                Outgoing::for_request("append", &bytes[..len]).is_ok()
                    == (len >= HEADER_LEN && bytes[0] == 1)
            );
        }
        assert!(two.open_request(&KEY, "append", &sealed, NOW, false).is_ok());
    }

    #[test]
    fn the_replay_memory_is_bounded() {
        let mut two = Receiver::new(2);
        let expired = NOW - 2 * REPLAY_WINDOW_MS;
        two.seen.extend((0..MAX_REMEMBERED as u64).map(|i| ((i + 10, [1; 16]), expired)));
        let (sealed, _) = request(1, 2, "append");
        assert!(two.open_request(&KEY, "append", &sealed, NOW, false).is_ok(), "not pruned");
        assert_eq!(two.seen.len(), 1);
        two.seen.extend((0..MAX_REMEMBERED as u64).map(|i| ((i + 10, [1; 16]), NOW)));
        let (sealed, _) = request(1, 2, "append");
        assert_eq!(
            two.open_request(&KEY, "append", &sealed, NOW, false).unwrap_err(),
            PeerError::Busy
        );
    }
}
