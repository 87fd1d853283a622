//! AES-256-GCM with crypt15's 16-byte nonce and no associated data, as a stream (spec
//! section 6.4.3).
//!
//! `aes_gcm::AesGcm<Aes256, U16>` computes the same function, but only over a buffer held whole
//! in memory. A crypt15 file carries one tag for the whole database, so bounded memory needs
//! GCM taken apart: CTR (`ctr::Ctr32BE`, GCM's 32-bit counter) and GHASH (`ghash`), here fed
//! piece by piece. The tests check this against `aes-gcm` on many lengths.
//!
//! NIST SP 800-38D, for a nonce that is not 96 bits long:
//! `H = AES_K(0^128)`, `J0 = GHASH_H(IV || 0^64 || [128]_64)`, the keystream starts at
//! `inc32(J0)`, and `tag = GHASH_H(C || pad || [0]_64 || [8 len(C)]_64) XOR AES_K(J0)`.

use aes_gcm::aes::Aes256;
use aes_gcm::aes::cipher::{BlockCipherEncrypt, KeyInit};
use ctr::cipher::{InnerIvInit, StreamCipher};
use ghash::GHash;
use ghash::universal_hash::UniversalHash;

use crate::error::Error;
use crate::header::IV_LEN;

/// Length of the GCM tag.
pub const TAG_LEN: usize = 16;
/// Longest ciphertext GCM allows: 2^32 - 2 blocks.
pub const MAX_CIPHERTEXT_LEN: u64 = (1 << 36) - 32;

/// Encrypts, decrypts or only authenticates one GCM message, piece by piece.
pub(crate) struct GcmStream {
    ctr: ctr::Ctr32BE<Aes256>,
    ghash: GHash,
    /// Bytes of the current GHASH block not yet absorbed.
    partial: [u8; 16],
    partial_len: usize,
    /// Ciphertext bytes absorbed so far.
    len: u64,
    /// `AES_K(J0)`.
    mask: [u8; TAG_LEN],
}

impl GcmStream {
    pub(crate) fn new(key: &[u8; 32], iv: &[u8; IV_LEN]) -> Self {
        let aes = Aes256::new(key.into());
        let mut h = ghash::Key::default();
        aes.encrypt_block(&mut h);
        let ghash = GHash::new(&h);
        h.fill(0);

        let mut j0_hash = ghash.clone();
        j0_hash.update_padded(iv);
        let mut lengths = ghash::Block::default();
        lengths[8..].copy_from_slice(&((IV_LEN as u64) * 8).to_be_bytes());
        j0_hash.update(&[lengths]);
        let j0 = j0_hash.finalize();

        let mut ctr = ctr::Ctr32BE::<Aes256>::from_core(ctr::CtrCore::inner_iv_init(aes, &j0));
        let mut mask = [0u8; TAG_LEN];
        ctr.apply_keystream(&mut mask);
        Self { ctr, ghash, partial: [0; 16], partial_len: 0, len: 0, mask }
    }

    fn reserve(&mut self, n: usize) -> Result<(), Error> {
        let len = self.len.saturating_add(n as u64);
        if len > MAX_CIPHERTEXT_LEN {
            return Err(Error::TooLarge { len });
        }
        self.len = len;
        Ok(())
    }

    /// Encrypts `buf` in place and authenticates the result.
    pub(crate) fn encrypt(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        self.reserve(buf.len())?;
        self.ctr.try_apply_keystream(buf).map_err(|_| Error::TooLarge { len: self.len })?;
        self.hash(buf);
        Ok(())
    }

    /// Authenticates `buf` and decrypts it in place.
    pub(crate) fn decrypt(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        self.reserve(buf.len())?;
        self.hash(buf);
        self.ctr.try_apply_keystream(buf).map_err(|_| Error::TooLarge { len: self.len })
    }

    /// Authenticates ciphertext without decrypting it.
    pub(crate) fn authenticate(&mut self, ciphertext: &[u8]) -> Result<(), Error> {
        self.reserve(ciphertext.len())?;
        self.hash(ciphertext);
        Ok(())
    }

    fn hash(&mut self, mut data: &[u8]) {
        if self.partial_len > 0 {
            let take = (16 - self.partial_len).min(data.len());
            self.partial[self.partial_len..self.partial_len + take].copy_from_slice(&data[..take]);
            self.partial_len += take;
            data = &data[take..];
            if self.partial_len < 16 {
                return;
            }
            self.ghash.update(&[self.partial.into()]);
            self.partial_len = 0;
        }
        let (blocks, rest) = ghash::Block::slice_as_chunks(data);
        self.ghash.update(blocks);
        self.partial[..rest.len()].copy_from_slice(rest);
        self.partial_len = rest.len();
    }

    /// The tag of the ciphertext absorbed so far; more may be absorbed afterwards.
    pub(crate) fn tag(&self) -> [u8; TAG_LEN] {
        let mut ghash = self.ghash.clone();
        if self.partial_len > 0 {
            ghash.update_padded(&self.partial[..self.partial_len]);
        }
        let mut lengths = ghash::Block::default();
        lengths[8..].copy_from_slice(&(self.len * 8).to_be_bytes());
        ghash.update(&[lengths]);
        let mut tag: [u8; TAG_LEN] = ghash.finalize().into();
        for (t, m) in tag.iter_mut().zip(self.mask.iter()) {
            *t ^= m;
        }
        tag
    }
}

impl Drop for GcmStream {
    fn drop(&mut self) {
        self.partial.fill(0);
    }
}
