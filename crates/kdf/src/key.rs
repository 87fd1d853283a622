//! The backup key K (spec section 2.1): 32 random bytes, zeroized on drop, never printed.

use core::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of K in bytes.
pub const KEY_LEN: usize = 32;

/// The backup key K: 32 uniformly random bytes that protect every backup of one account.
///
/// The bytes are wiped when the value is dropped, `Debug` prints no byte of them, and
/// equality is decided in constant time.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct BackupKey([u8; KEY_LEN]);

impl BackupKey {
    /// Draws a fresh key from the operating system's CSPRNG.
    ///
    /// # Panics
    /// If the operating system cannot provide random bytes; no key may be made then.
    pub fn generate() -> Self {
        let mut key = [0u8; KEY_LEN];
        getrandom::fill(&mut key).expect("the operating system's random source failed");
        Self(key)
    }

    /// Wraps 32 bytes the caller already holds (a key read back from storage, a test vector).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// The raw key bytes. Every use is a place where the secret leaves this type: keep it short.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BackupKey(<secret>)")
    }
}

impl PartialEq for BackupKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for BackupKey {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_prints_no_key_byte() {
        let key = BackupKey::from_bytes([0xab; KEY_LEN]);
        let shown = format!("{key:?}");
        assert!(!shown.to_lowercase().contains("ab"), "{shown}");
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(BackupKey::generate(), BackupKey::generate());
    }
}
