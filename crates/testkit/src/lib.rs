//! Helpers shared by the test suites of the e2ee-backups crates.
//!
//! The published vectors (RFC 9807, RFC 9180, RFC 5869, Wycheproof, crypt15 fixtures) live in
//! `../shared/vectors` beside the workspace and are read from there, never copied in.
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

/// The directory of the published vectors: `$E2EE_SHARED_VECTORS`, or `../shared/vectors`
/// beside the workspace root.
pub fn shared_vectors_dir() -> PathBuf {
    std::env::var_os("E2EE_SHARED_VECTORS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors")
    })
}

/// One published vector file, parsed as JSON, by its path under [`shared_vectors_dir`].
///
/// Absent, this says so loudly on stderr and returns `None` so the calling test can skip, except
/// when `$CI` is set: there an absent file is a failure.
pub fn shared_vectors(file: &str) -> Option<Value> {
    let path = shared_vectors_dir().join(file);
    match std::fs::read_to_string(&path) {
        Ok(text) => Some(serde_json::from_str(&text).expect("shared vector files are JSON")),
        Err(err) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but the shared vector file {} cannot be read: {err}", path.display())
        }
        Err(err) => {
            eprintln!(
                "SKIPPED: shared vector file {} not readable ({err}); set E2EE_SHARED_VECTORS",
                path.display()
            );
            None
        }
    }
}

/// The bytes of a JSON string of hex digits. Panics (failing the test) on anything else.
pub fn hex_of(value: &Value) -> Vec<u8> {
    hex::decode(value.as_str().expect("a hex string")).expect("valid hex")
}
