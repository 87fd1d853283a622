//! WhatsApp's Android `.crypt15` backups and their `encrypted_backup.key` files, read and
//! written, for compatibility only (spec chapter 6).
//!
//! A `.crypt15` file is:
//!
//! ```text
//! prefix length (varint) [0x01] BackupPrefix protobuf (key type, 16-byte IV, app info)
//! AES-256-GCM ciphertext, nonce = the IV, no associated data
//! 16-byte GCM tag
//! 16-byte MD5 of everything before it       (single-file backups only)
//! ```
//!
//! The GCM key is `HKDF-SHA256(salt none, IKM K, "backup encryption")`
//! ([`e2ee_backup_kdf::crypt15::Crypt15Keys`]). A single-file backup (a database) encrypts the
//! zlib-compressed database; a multi-file backup encrypts a ZIP and has no MD5 trailer.
//!
//! - [`keyfile`]: the `encrypted_backup.key` file (K, Java-serialised);
//! - [`header`]: the prefix length, the flag byte and the `BackupPrefix` protobuf;
//! - [`Decryptor`]: verifies a whole file (MD5 and tag) before it decrypts any of it, in
//!   bounded memory;
//! - [`Encryptor`]: writes a file as its content arrives, byte for byte as wa-crypt-tools and
//!   Python's zlib do for the same inputs.
//!
//! ```
//! use e2ee_backup_crypt15::{Content, FileHeader, HeaderOptions, decrypt_to_vec, encrypt_to_vec};
//! use e2ee_backup_kdf::BackupKey;
//!
//! let key = BackupKey::generate();
//! let header = FileHeader::minimal(&HeaderOptions::default()).unwrap();
//! let file = encrypt_to_vec(&key, &header, Content::default(), b"SQLite format 3\0").unwrap();
//! assert_eq!(decrypt_to_vec(&key, &file).unwrap().plaintext, b"SQLite format 3\0");
//! ```
//!
//! # Weaknesses of the format
//!
//! Kept here so that nobody mistakes this format for the native one, which fixes each:
//!
//! - **Unauthenticated header.** GCM is used with no associated data, so the prefix (key type,
//!   app version, phone-digit suffix, feature table, framing) is covered only by the MD5. In a
//!   multi-file backup, which has no MD5, it can be edited without any check failing.
//! - **Unkeyed MD5.** Anyone can recompute it after editing the file: it detects accidents,
//!   not tampering. Its one use here is telling a wrong key (MD5 right, tag wrong) from a
//!   corrupt file; a multi-file backup cannot even do that.
//! - **Phone-digit leak.** The last two digits of the phone number, the WhatsApp version and
//!   the database's feature table are in clear in every backup.
//! - **One key for every file.** The file key is derived from K with a fixed label and no
//!   salt: every backup an account ever makes, and every file of a multi-file backup, is
//!   encrypted under the same AES key, distinguished only by a random IV.
//! - **16-byte GCM nonce.** Not GCM's 12 bytes: the nonce is hashed with GHASH into the first
//!   counter block, which many AEAD APIs do not offer and whose bounds are weaker (counter
//!   blocks of different files can overlap). The tag covers a whole database, so no plaintext
//!   can be trusted before the last byte is read; there is no key commitment, no length and no
//!   end marker apart from the tag.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod header;
pub mod keyfile;

mod decrypt;
mod encrypt;
mod error;
mod gcm;
mod proto;

pub use decrypt::{
    Decrypted, Decryptor, MD5_LEN, MIN_BODY_LEN, Variant, decrypt_to_vec, decrypt_unseekable,
};
pub use encrypt::{Content, DEFAULT_LEVEL, Encryptor, encrypt_compressed, encrypt_to_vec};
pub use error::{Error, HeaderError, HeaderProblem, KeyFileError};
pub use gcm::{MAX_CIPHERTEXT_LEN, TAG_LEN};
pub use header::{
    BackupInfo, BackupPrefix, FeatureTable, FileHeader, Framing, HeaderOptions, IV_LEN,
};
