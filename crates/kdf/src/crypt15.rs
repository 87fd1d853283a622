//! The key derivation of WhatsApp's Android `.crypt15` backups (spec section 2.4).
//!
//! Kept for compatibility only: it has no per-file salt, so every backup of an account is
//! encrypted under the same key. New files use [`crate::schedule`].

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::BackupKey;
use crate::schedule::expand;

/// Label of the crypt15 backup file key.
pub const BACKUP_ENCRYPTION_LABEL: &str = "backup encryption";
/// Label of the crypt15 Drive metadata encryption key.
pub const METADATA_ENCRYPTION_LABEL: &str = "metadata encryption";
/// Label of the crypt15 Drive metadata authentication key.
pub const METADATA_AUTHENTICATION_LABEL: &str = "metadata authentication";

/// The three keys crypt15 derives from K, each HKDF-SHA256(salt none, IKM K, info label, 32).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Crypt15Keys {
    /// AES-256-GCM key of the backup file.
    pub backup_encryption: [u8; 32],
    /// Key that encrypts the Google Drive metadata.
    pub metadata_encryption: [u8; 32],
    /// Key that authenticates the Google Drive metadata.
    pub metadata_authentication: [u8; 32],
}

impl Crypt15Keys {
    /// Derives the crypt15 keys of `key`.
    pub fn derive(key: &BackupKey) -> Self {
        let mut keys = Self {
            backup_encryption: [0; 32],
            metadata_encryption: [0; 32],
            metadata_authentication: [0; 32],
        };
        let ikm = key.expose_secret();
        expand(None, ikm, BACKUP_ENCRYPTION_LABEL, &mut keys.backup_encryption);
        expand(None, ikm, METADATA_ENCRYPTION_LABEL, &mut keys.metadata_encryption);
        expand(None, ikm, METADATA_AUTHENTICATION_LABEL, &mut keys.metadata_authentication);
        keys
    }
}

impl core::fmt::Debug for Crypt15Keys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Crypt15Keys(<secret>)")
    }
}
