//! The e2ee-backups native backup file format (spec chapter 3, `spec/03-backup-format.md`).
//!
//! A backup file is a fixed 96-byte [header] that is authenticated and commits to
//! the key, an encrypted [metadata] block, and the payload cut into
//! [chunks], each sealed with AES-256-GCM under a per-file key, with its index and an
//! end-of-stream flag bound into nonce and associated data.
//!
//! ```
//! use e2ee_backup_format::{decrypt_to_vec, encrypt_to_vec, EncryptOptions};
//! use e2ee_backup_kdf::BackupKey;
//!
//! let key = BackupKey::generate();
//! let file = encrypt_to_vec(&key, EncryptOptions::default(), b"chat history").unwrap();
//! let (metadata, plaintext) = decrypt_to_vec(&key, &file).unwrap();
//! assert_eq!(plaintext, b"chat history");
//! assert_eq!(metadata.plaintext_len, Some(12));
//! ```
//!
//! [`Encryptor`] and [`Decryptor`] are the streaming forms: memory stays within a few chunks
//! whatever the file size, and batches of chunks are sealed and opened on all cores.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod chunks;
pub mod cipher;
pub mod header;
pub mod metadata;

mod buffers;
mod decrypt;
mod encrypt;
mod error;

pub use cipher::{ChunkCipher, RingGcm, RustCryptoGcm};
pub use decrypt::{Decryptor, decrypt_into, decrypt_to_vec, read_header};
pub use encrypt::{EncryptOptions, Encryptor, encrypt_into, encrypt_to_vec};
pub use error::Error;
pub use header::{Compression, Header};
pub use metadata::Metadata;
