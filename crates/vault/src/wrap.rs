//! Wrapping K under the OPAQUE export key (spec section 4.6).
//!
//! The client derives the wrapping key from the export key through the key schedule
//! (`e2ee-backups/v1/vault/wrapping-key`) and seals K with AES-256-GCM. The associated data names
//! the account and the record version, so a sealed K cannot be moved to another account or served
//! from an older registration. The vault stores the sealed K and never sees the export key.
//!
//! ```text
//! sealed_key = version (0x01) || nonce [12] || AES-256-GCM(wrapping_key, nonce, K, aad)   (61 bytes)
//! aad        = "e2ee-backups/v1/vault/sealed-key" || 0x00 || vec16(account) || u32(record_version)
//! ```

use e2ee_backup_kdf::{BackupKey, schedule::vault_wrapping_key};
use rand_core::{CryptoRng, RngCore};

use crate::aead::{self, NONCE_LEN, TAG_LEN};
use crate::wire::Writer;

/// Length of a sealed K: version, nonce, K, tag.
pub const SEALED_KEY_LEN: usize = 1 + NONCE_LEN + 32 + TAG_LEN;
/// The version byte of a sealed K.
const SEALED_KEY_VERSION: u8 = 1;
/// The label that starts the associated data.
pub const SEALED_KEY_LABEL: &str = "e2ee-backups/v1/vault/sealed-key";

fn aad(account: &[u8], record_version: u32) -> Vec<u8> {
    let mut w = Writer::new();
    w.bytes(SEALED_KEY_LABEL.as_bytes()).u8(0).vec16(account).u32(record_version);
    w.finish()
}

/// Seals K for `account` at `record_version`, with a fresh nonce from `rng`.
pub fn seal_key<R: RngCore + CryptoRng>(
    rng: &mut R,
    export_key: &[u8],
    account: &[u8],
    record_version: u32,
    key: &BackupKey,
) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    seal_key_with_nonce(&nonce, export_key, account, record_version, key)
}

/// [`seal_key`] with the nonce given: for test vectors.
#[doc(hidden)] // reproducing test vectors only: never a fixed draw in production
pub fn seal_key_with_nonce(
    nonce: &[u8; NONCE_LEN],
    export_key: &[u8],
    account: &[u8],
    record_version: u32,
    key: &BackupKey,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(SEALED_KEY_LEN);
    out.push(SEALED_KEY_VERSION);
    let wrapping_key = vault_wrapping_key(export_key);
    aead::seal_into(
        &mut out,
        &wrapping_key,
        nonce,
        &aad(account, record_version),
        key.expose_secret(),
    );
    out
}

/// Opens a sealed K. `None` when it does not open: another export key (so another password or
/// registration), another account or record version, or damaged bytes.
pub fn open_key(
    export_key: &[u8],
    account: &[u8],
    record_version: u32,
    sealed: &[u8],
) -> Option<BackupKey> {
    if sealed.len() != SEALED_KEY_LEN || sealed[0] != SEALED_KEY_VERSION {
        return None;
    }
    let wrapping_key = vault_wrapping_key(export_key);
    let plain = aead::open(&wrapping_key, &aad(account, record_version), &sealed[1..])?;
    let bytes: [u8; 32] = plain.as_slice().try_into().ok()?;
    Some(BackupKey::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_for_its_account_version_and_export_key() {
        let key = BackupKey::from_bytes([7; 32]);
        let export = [1u8; 64];
        let sealed = seal_key_with_nonce(&[9; 12], &export, b"alice", 3, &key);
        assert_eq!(sealed.len(), SEALED_KEY_LEN);
        assert_eq!(open_key(&export, b"alice", 3, &sealed), Some(key));
        assert!(open_key(&export, b"bob", 3, &sealed).is_none());
        assert!(open_key(&export, b"alice", 2, &sealed).is_none());
        assert!(open_key(&[2u8; 64], b"alice", 3, &sealed).is_none());
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 1;
            assert!(open_key(&export, b"alice", 3, &bad).is_none(), "flip in byte {i}");
        }
    }
}
