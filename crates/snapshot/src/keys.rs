//! The snapshot keys (spec section 8.2).
//!
//! Two keys come from K, four from the media root key MRK, each by HKDF-SHA256 with salt none
//! and its own label:
//!
//! | label                                          | IKM | bytes | use                                  |
//! |------------------------------------------------|-----|-------|--------------------------------------|
//! | `e2ee-backups/v1/snapshot/media-root-wrap-key` | K   | 32    | the format key of the wrapped MRK    |
//! | `e2ee-backups/v1/snapshot/manifest-key`        | K   | 32    | the format key of every manifest     |
//! | `e2ee-backups/v1/snapshot/blob-name-key`       | MRK | 32    | HMAC key that names blobs            |
//! | `e2ee-backups/v1/snapshot/blob-key`            | MRK | 32    | the format key of every blob         |
//! | `e2ee-backups/v1/snapshot/chunking-seed`       | MRK | 8     | seed of the content-defined chunker  |
//! | `e2ee-backups/v1/snapshot/prune-key`           | MRK | 32    | the format key of the prune records  |

use core::fmt;

use e2ee_backup_kdf::BackupKey;
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Label of the key under which the media root key is stored, derived from K.
pub const MEDIA_ROOT_WRAP_KEY_LABEL: &str = "e2ee-backups/v1/snapshot/media-root-wrap-key";
/// Label of the key under which manifests are encrypted, derived from K.
pub const MANIFEST_KEY_LABEL: &str = "e2ee-backups/v1/snapshot/manifest-key";
/// Label of the HMAC key that names blobs, derived from the media root key.
pub const BLOB_NAME_KEY_LABEL: &str = "e2ee-backups/v1/snapshot/blob-name-key";
/// Label of the key under which blobs are encrypted, derived from the media root key.
pub const BLOB_KEY_LABEL: &str = "e2ee-backups/v1/snapshot/blob-key";
/// Label of the chunker's seed, derived from the media root key.
pub const CHUNKING_SEED_LABEL: &str = "e2ee-backups/v1/snapshot/chunking-seed";

/// Label of the key under which the prune records are encrypted (candidates, holds, sweeps),
/// derived from the media root key.
pub const PRUNE_KEY_LABEL: &str = "e2ee-backups/v1/snapshot/prune-key";

/// Length of the media root key in bytes.
pub const MEDIA_ROOT_KEY_LEN: usize = 32;

fn expand(ikm: &[u8], label: &str, out: &mut [u8]) {
    Hkdf::<Sha256>::new(None, ikm)
        .expand(label.as_bytes(), out)
        .expect("outputs of at most 32 bytes are valid HKDF-SHA256 lengths");
}

fn derive_format_key(ikm: &[u8], label: &str) -> BackupKey {
    let mut out = Zeroizing::new([0u8; 32]);
    expand(ikm, label, out.as_mut());
    BackupKey::from_bytes(*out)
}

/// The keys a snapshot store derives from K: they open the wrapped media root key and the
/// manifests. Zeroized on drop (each is a [`BackupKey`]); `Debug` shows no byte.
#[derive(Clone)]
pub struct AccountKeys {
    /// The format key of `keys/media-root.e2ee`.
    pub media_root_wrap: BackupKey,
    /// The format key of every manifest.
    pub manifest: BackupKey,
}

impl AccountKeys {
    /// Derives the keys of K.
    pub fn derive(k: &BackupKey) -> Self {
        Self {
            media_root_wrap: derive_format_key(k.expose_secret(), MEDIA_ROOT_WRAP_KEY_LABEL),
            manifest: derive_format_key(k.expose_secret(), MANIFEST_KEY_LABEL),
        }
    }
}

impl fmt::Debug for AccountKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccountKeys(<secret>)")
    }
}

/// The media root key MRK: 32 random bytes per store, from which blob names and blob keys
/// come. Zeroized on drop; `Debug` shows no byte.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MediaRootKey([u8; MEDIA_ROOT_KEY_LEN]);

/// In constant time, as [`BackupKey`] compares.
impl PartialEq for MediaRootKey {
    fn eq(&self, other: &Self) -> bool {
        subtle::ConstantTimeEq::ct_eq(&self.0[..], &other.0[..]).into()
    }
}

impl Eq for MediaRootKey {}

impl MediaRootKey {
    /// Draws a fresh key from the operating system's CSPRNG.
    ///
    /// # Panics
    /// If the operating system cannot provide random bytes.
    pub fn generate() -> Self {
        let mut bytes = [0u8; MEDIA_ROOT_KEY_LEN];
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        Self(bytes)
    }

    /// Wraps bytes the caller holds (a key read back from the store, a test vector).
    pub fn from_bytes(bytes: [u8; MEDIA_ROOT_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw bytes. Keep every use short.
    pub fn expose_secret(&self) -> &[u8; MEDIA_ROOT_KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for MediaRootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MediaRootKey(<secret>)")
    }
}

/// The keys derived from the media root key. Zeroized on drop; `Debug` shows no byte.
#[derive(Clone)]
pub struct MediaKeys {
    name_key: Zeroizing<[u8; 32]>,
    /// The format key of every blob.
    pub blob: BackupKey,
    /// The format key of the prune records (spec section 8.12.2).
    pub prune: BackupKey,
    chunking_seed: Zeroizing<[u8; 8]>,
}

impl MediaKeys {
    /// Derives the keys of `mrk`.
    pub fn derive(mrk: &MediaRootKey) -> Self {
        let mut name_key = Zeroizing::new([0u8; 32]);
        expand(mrk.expose_secret(), BLOB_NAME_KEY_LABEL, name_key.as_mut());
        let mut chunking_seed = Zeroizing::new([0u8; 8]);
        expand(mrk.expose_secret(), CHUNKING_SEED_LABEL, chunking_seed.as_mut());
        Self {
            name_key,
            blob: derive_format_key(mrk.expose_secret(), BLOB_KEY_LABEL),
            prune: derive_format_key(mrk.expose_secret(), PRUNE_KEY_LABEL),
            chunking_seed,
        }
    }

    /// The name of a blob that holds `content`: `HMAC-SHA256(blob-name-key, content)`.
    pub fn blob_name(&self, content: &[u8]) -> crate::BlobName {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.name_key.as_ref())
            .expect("HMAC takes keys of any length");
        mac.update(content);
        crate::BlobName(mac.finalize().into_bytes().into())
    }

    /// The seed of the content-defined chunker: `be64` of the 8-byte HKDF output.
    pub fn chunking_seed(&self) -> u64 {
        u64::from_be_bytes(*self.chunking_seed)
    }

    /// The blob-name key, for test vectors only.
    #[doc(hidden)] // reproducing test vectors only: never a fixed draw in production
    pub fn blob_name_key_for_test_vectors(&self) -> &[u8; 32] {
        &self.name_key
    }
}

impl fmt::Debug for MediaKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MediaKeys(<secret>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct_and_versioned() {
        let labels = [
            MEDIA_ROOT_WRAP_KEY_LABEL,
            MANIFEST_KEY_LABEL,
            BLOB_NAME_KEY_LABEL,
            BLOB_KEY_LABEL,
            CHUNKING_SEED_LABEL,
            PRUNE_KEY_LABEL,
        ];
        for (i, a) in labels.iter().enumerate() {
            assert!(a.starts_with("e2ee-backups/v1/snapshot/"));
            for b in &labels[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn debug_prints_no_key_byte() {
        let mrk = MediaRootKey::from_bytes([0xab; 32]);
        let media = MediaKeys::derive(&mrk);
        let account = AccountKeys::derive(&BackupKey::from_bytes([0xab; 32]));
        for shown in [format!("{mrk:?}"), format!("{media:?}"), format!("{account:?}")] {
            assert!(!shown.to_lowercase().contains("ab"), "{shown}");
        }
    }

    #[test]
    fn names_differ_across_accounts() {
        let a = MediaKeys::derive(&MediaRootKey::from_bytes([1; 32]));
        let b = MediaKeys::derive(&MediaRootKey::from_bytes([2; 32]));
        assert_ne!(a.blob_name(b"same photo"), b.blob_name(b"same photo"));
        assert_eq!(a.blob_name(b"same photo"), a.blob_name(b"same photo"));
    }
}
