//! The seal of the replicas' peer traffic (spec section 7.7).
//!
//! ```text
//! peer_key = HKDF(salt none, IKM = ticket_key, info = "e2ee-backups/v1/vault/peer", 32)
//! sealed   = nonce [12] || AES-256-GCM(peer_key, nonce, aad = route, message)
//! ```
//!
//! The key comes from [`HsmSecrets::peer_key`](crate::hsm::HsmSecrets::peer_key): only holders
//! of the fleet secrets can read or inject peer messages.

use aes_gcm_10::aead::{Aead, KeyInit, Payload};
use aes_gcm_10::{Aes256Gcm, Nonce};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

/// Length of the nonce that starts a sealed peer message.
pub const NONCE_LEN: usize = 12;

/// Seals `message` for the peer call `route` with a nonce from `rng`.
pub fn seal<R: RngCore + CryptoRng>(
    rng: &mut R,
    key: &[u8; 32],
    route: &str,
    message: &[u8],
) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    seal_with_nonce(key, nonce, route, message)
}

/// Seals `message` with the given nonce (vectors; a nonce must never repeat under one key).
pub fn seal_with_nonce(
    key: &[u8; 32],
    nonce: [u8; NONCE_LEN],
    route: &str,
    message: &[u8],
) -> Vec<u8> {
    let cipher = Aes256Gcm::new(key.into());
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: message, aad: route.as_bytes() })
        .expect("peer messages are far below AES-GCM's limit");
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    out
}

/// Opens a message sealed for `route`; `None` if it is too short or does not open.
pub fn open(key: &[u8; 32], route: &str, sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN + 16 {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let cipher = Aes256Gcm::new(key.into());
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad: route.as_bytes() })
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_opens_for_its_route_only() {
        let key = [7u8; 32];
        let sealed = seal_with_nonce(&key, [1; NONCE_LEN], "append", b"entries");
        assert_eq!(open(&key, "append", &sealed).unwrap().as_slice(), b"entries");
        assert!(open(&key, "vote", &sealed).is_none());
        assert!(open(&[8u8; 32], "append", &sealed).is_none());
        let mut flipped = sealed.clone();
        flipped[NONCE_LEN] ^= 1;
        assert!(open(&key, "append", &flipped).is_none());
        assert!(open(&key, "append", &sealed[..NONCE_LEN + 15]).is_none());
    }
}
