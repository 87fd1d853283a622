//! The key schedule (spec section 2.3).
//!
//! Every key used by e2ee-backups comes out of HKDF-SHA256 (RFC 5869) with its own label
//! (`info`). Labels start with `e2ee-backups/v1/`, so a later version changes every derived
//! key at once and no two purposes ever share an output.
//!
//! | label                                  | IKM        | salt        | bytes |
//! |----------------------------------------|------------|-------------|-------|
//! | `e2ee-backups/v1/key-id`               | K          | none        | 16    |
//! | `e2ee-backups/v1/file/header-mac-key`  | K          | file salt   | 32    |
//! | `e2ee-backups/v1/file/metadata-key`    | K          | file salt   | 32    |
//! | `e2ee-backups/v1/file/payload-key`     | K          | file salt   | 32    |
//! | `e2ee-backups/v1/file/nonce-base`      | K          | file salt   | 12    |
//! | `e2ee-backups/v1/vault/wrapping-key`   | export key | none        | 32    |
//!
//! "none" is HKDF's default salt, 32 zero bytes.

use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::BackupKey;

/// Label of the key identifier.
pub const KEY_ID_LABEL: &str = "e2ee-backups/v1/key-id";
/// Label of the per-file header MAC key, which is also the file's key commitment.
pub const HEADER_MAC_KEY_LABEL: &str = "e2ee-backups/v1/file/header-mac-key";
/// Label of the per-file metadata encryption key.
pub const METADATA_KEY_LABEL: &str = "e2ee-backups/v1/file/metadata-key";
/// Label of the per-file payload (chunk) encryption key.
pub const PAYLOAD_KEY_LABEL: &str = "e2ee-backups/v1/file/payload-key";
/// Label of the per-file chunk nonce base.
pub const NONCE_BASE_LABEL: &str = "e2ee-backups/v1/file/nonce-base";
/// Label of the vault wrapping key, derived from the OPAQUE export key.
pub const VAULT_WRAPPING_KEY_LABEL: &str = "e2ee-backups/v1/vault/wrapping-key";

/// Length of a per-file salt in bytes.
pub const SALT_LEN: usize = 32;
/// Length of a key identifier in bytes.
pub const KEY_ID_LEN: usize = 16;
/// Length of the chunk nonce base in bytes (the AES-GCM nonce length).
pub const NONCE_LEN: usize = 12;

/// A public identifier of K.
///
/// Written in clear in every backup header so that a reader can tell "this file was made with
/// another key" from "this file is damaged" before it decrypts anything. It reveals only
/// whether two files share a key, which the storage provider can guess anyway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyId(pub [u8; KEY_ID_LEN]);

impl KeyId {
    /// The identifier of `key`.
    pub fn of(key: &BackupKey) -> Self {
        let mut id = [0u8; KEY_ID_LEN];
        expand(None, key.expose_secret(), KEY_ID_LABEL, &mut id);
        Self(id)
    }
}

/// The keys of one backup file, derived from K and the file's random salt.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct FileKeys {
    /// HMAC-SHA256 key over the file header; the MAC doubles as the key commitment.
    pub header_mac_key: [u8; 32],
    /// AES-256-GCM key of the metadata block.
    pub metadata_key: [u8; 32],
    /// AES-256-GCM key of the payload chunks.
    pub payload_key: [u8; 32],
    /// Base from which each chunk's nonce is computed.
    pub nonce_base: [u8; NONCE_LEN],
}

impl FileKeys {
    /// Derives the keys of the file whose header holds `salt`.
    pub fn derive(key: &BackupKey, salt: &[u8; SALT_LEN]) -> Self {
        let prk = Hkdf::<Sha256>::new(Some(salt), key.expose_secret());
        let mut keys = Self {
            header_mac_key: [0; 32],
            metadata_key: [0; 32],
            payload_key: [0; 32],
            nonce_base: [0; NONCE_LEN],
        };
        let fill = |label: &str, out: &mut [u8]| {
            prk.expand(label.as_bytes(), out)
                .expect("lengths of at most 32 bytes are valid HKDF-SHA256 outputs");
        };
        fill(HEADER_MAC_KEY_LABEL, &mut keys.header_mac_key);
        fill(METADATA_KEY_LABEL, &mut keys.metadata_key);
        fill(PAYLOAD_KEY_LABEL, &mut keys.payload_key);
        fill(NONCE_BASE_LABEL, &mut keys.nonce_base);
        keys
    }
}

impl core::fmt::Debug for FileKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("FileKeys(<secret>)")
    }
}

/// The key that wraps K inside the Backup Key Vault, derived from the OPAQUE export key.
///
/// The vault protocol (spec chapter 4) seals K under this key; it is part of the key schedule
/// so that all labels live in one table.
pub fn vault_wrapping_key(export_key: &[u8]) -> zeroize::Zeroizing<[u8; 32]> {
    let mut out = zeroize::Zeroizing::new([0u8; 32]);
    expand(None, export_key, VAULT_WRAPPING_KEY_LABEL, out.as_mut());
    out
}

/// HKDF-SHA256 extract-then-expand of `ikm` with `salt` and the UTF-8 bytes of `label`.
pub(crate) fn expand(salt: Option<&[u8]>, ikm: &[u8], label: &str, out: &mut [u8]) {
    Hkdf::<Sha256>::new(salt, ikm)
        .expand(label.as_bytes(), out)
        .expect("every output length used in the key schedule is valid for HKDF-SHA256");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_and_versioned() {
        let labels = [
            KEY_ID_LABEL,
            HEADER_MAC_KEY_LABEL,
            METADATA_KEY_LABEL,
            PAYLOAD_KEY_LABEL,
            NONCE_BASE_LABEL,
            VAULT_WRAPPING_KEY_LABEL,
        ];
        for (i, a) in labels.iter().enumerate() {
            assert!(a.starts_with("e2ee-backups/v1/"));
            for b in &labels[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn salts_separate_files() {
        let key = BackupKey::from_bytes([7; 32]);
        let a = FileKeys::derive(&key, &[1; SALT_LEN]);
        let b = FileKeys::derive(&key, &[2; SALT_LEN]);
        assert_ne!(a.payload_key, b.payload_key);
        assert_ne!(a.nonce_base, b.nonce_base);
        assert_ne!(a.payload_key, a.metadata_key);
        assert_ne!(a.payload_key, a.header_mac_key);
    }

    #[test]
    fn key_id_depends_on_key_only() {
        let a = KeyId::of(&BackupKey::from_bytes([1; 32]));
        assert_eq!(a, KeyId::of(&BackupKey::from_bytes([1; 32])));
        assert_ne!(a, KeyId::of(&BackupKey::from_bytes([2; 32])));
    }
}
