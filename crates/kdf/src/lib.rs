//! The backup key K and everything derived from it.
//!
//! This crate implements chapter 2 of the e2ee-backups specification
//! (`spec/02-keys.md`):
//!
//! - [`BackupKey`]: the 256-bit key K, drawn from the operating system's CSPRNG;
//! - [`digits`]: K written as the "64-digit key" (64 hexadecimal characters) and read back;
//! - [`schedule`]: the HKDF-SHA256 key schedule, with one versioned label per derived key;
//! - [`io_bridge`]: how the format and crypt15 crates carry their errors through `std::io`;
//! - [`crypt15`]: the derivation WhatsApp's Android `.crypt15` files use, kept for
//!   compatibility only.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod crypt15;
pub mod digits;
pub mod io_bridge;
pub mod schedule;

mod key;

pub use digits::KeyParseError;
pub use key::{BackupKey, KEY_LEN};
