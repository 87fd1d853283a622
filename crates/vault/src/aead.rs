//! The one AES-256-GCM layout the vault's own objects share (spec sections 4.6 and 4.9):
//!
//! ```text
//! sealed = nonce [12] || AES-256-GCM-Seal(key, nonce, aad, plaintext)    (plaintext + 28 bytes)
//! ```
//!
//! Login tickets, registration tickets and the sealed K all use it; the sealed K puts a version
//! byte in front. The request channel (4.4) and peer messages (7.7) carry headers of their own
//! and seal in their own modules.

use aes_gcm_10::aead::{Aead, KeyInit, Payload};
use aes_gcm_10::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

/// Length of the nonce that starts every sealed object.
pub const NONCE_LEN: usize = 12;
/// Length of the AES-GCM tag that ends it.
pub const TAG_LEN: usize = 16;

/// `nonce || ciphertext || tag`, appended to `out`.
pub(crate) fn seal_into(
    out: &mut Vec<u8>,
    key: &[u8; 32],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) {
    let sealed = Aes256Gcm::new(key.into())
        .encrypt(Nonce::from_slice(nonce), Payload { msg: plaintext, aad })
        .expect("AES-GCM seals every message shorter than 64 GiB");
    out.reserve(NONCE_LEN + sealed.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&sealed);
}

/// Opens `nonce || ciphertext || tag`; `None` if it is too short or does not open under `key`
/// and `aad`.
pub(crate) fn open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    Aes256Gcm::new(key.into())
        .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_what_it_sealed_under_the_same_key_and_aad() {
        let mut sealed = Vec::new();
        seal_into(&mut sealed, &[1; 32], &[2; NONCE_LEN], b"aad", b"plain");
        assert_eq!(sealed.len(), NONCE_LEN + 5 + TAG_LEN);
        assert_eq!(&sealed[..NONCE_LEN], &[2; NONCE_LEN]);
        assert_eq!(
            open(&[1; 32], b"aad", &sealed).as_deref().map(Vec::as_slice),
            Some(&b"plain"[..])
        );
        assert!(open(&[3; 32], b"aad", &sealed).is_none());
        assert!(open(&[1; 32], b"aae", &sealed).is_none());
        assert!(open(&[1; 32], b"aad", &sealed[..NONCE_LEN + TAG_LEN - 1]).is_none());
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x80;
            assert!(open(&[1; 32], b"aad", &bad).is_none(), "flip in byte {i}");
        }
    }
}
