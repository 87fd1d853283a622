//! The AEAD seam: AES-256-GCM with 96-bit nonces and detached 128-bit tags (spec sections
//! 3.3 and 3.4).
//!
//! Two implementations pass the same vectors: [`RingGcm`] (the `ring` crate, assembly, the
//! default because it is the fastest here) and [`RustCryptoGcm`] (the pure-Rust `aes-gcm`
//! crate). Every type in this crate that encrypts takes the implementation as a type
//! parameter, defaulting to [`RingGcm`].

use aes_gcm::aead::{AeadInOut, KeyInit};

/// Length of an AES-GCM nonce in bytes.
pub const NONCE_LEN: usize = 12;
/// Length of an AES-GCM tag in bytes.
pub const TAG_LEN: usize = 16;

/// The tag did not verify: the key, nonce, associated data or ciphertext is not the one sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthenticationFailed;

/// AES-256-GCM, in place, with the tag kept apart from the text.
pub trait ChunkCipher: Send + Sync + Sized {
    /// A short name for benchmarks and diagnostics.
    const NAME: &'static str;

    /// Expands a 256-bit key.
    fn new(key: &[u8; 32]) -> Self;

    /// Encrypts `in_out` in place and returns the tag.
    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], in_out: &mut [u8]) -> [u8; TAG_LEN];

    /// Checks `tag` and decrypts `in_out` in place. On failure the content of `in_out` is
    /// unspecified and must not be used.
    fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), AuthenticationFailed>;
}

/// AES-256-GCM from `ring`.
pub struct RingGcm(ring::aead::LessSafeKey);

impl ChunkCipher for RingGcm {
    const NAME: &'static str = "ring";

    fn new(key: &[u8; 32]) -> Self {
        let key = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, key)
            .expect("a 32-byte key is valid for AES-256-GCM");
        Self(ring::aead::LessSafeKey::new(key))
    }

    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], in_out: &mut [u8]) -> [u8; TAG_LEN] {
        let tag = self
            .0
            .seal_in_place_separate_tag(
                ring::aead::Nonce::assume_unique_for_key(*nonce),
                ring::aead::Aad::from(aad),
                in_out,
            )
            .expect("chunks are far below AES-GCM's 64 GiB message limit");
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        out
    }

    fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), AuthenticationFailed> {
        let tag = ring::aead::Tag::from(*tag);
        self.0
            .open_in_place_separate_tag(
                ring::aead::Nonce::assume_unique_for_key(*nonce),
                ring::aead::Aad::from(aad),
                tag,
                in_out,
                0..,
            )
            .map(|_| ())
            .map_err(|_| AuthenticationFailed)
    }
}

/// AES-256-GCM from the pure-Rust `aes-gcm` crate.
pub struct RustCryptoGcm(aes_gcm::Aes256Gcm);

impl ChunkCipher for RustCryptoGcm {
    const NAME: &'static str = "aes-gcm";

    fn new(key: &[u8; 32]) -> Self {
        Self(aes_gcm::Aes256Gcm::new(key.into()))
    }

    fn seal(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], in_out: &mut [u8]) -> [u8; TAG_LEN] {
        self.0
            .encrypt_inout_detached(nonce.into(), aad, in_out.into())
            .expect("chunks are far below AES-GCM's 64 GiB message limit")
            .into()
    }

    fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        in_out: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), AuthenticationFailed> {
        self.0
            .decrypt_inout_detached(nonce.into(), aad, in_out.into(), tag.into())
            .map_err(|_| AuthenticationFailed)
    }
}
