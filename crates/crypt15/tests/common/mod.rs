//! Shared helpers of the crypt15 integration tests.
#![allow(dead_code)]

use e2ee_backup_kdf::BackupKey;
use serde_json::Value;

/// Name of the fixture file, under the shared vectors directory.
pub const FIXTURES: &str = "wa-crypt-tools-generated/crypt15_fixtures.json";

pub use e2ee_backup_testkit::{hex_of, published_vectors};

/// The fixtures' root key K.
pub fn root_key(fixtures: &Value) -> BackupKey {
    let bytes: [u8; 32] = hex_of(&fixtures["root_key_hex"]).try_into().expect("32 bytes");
    BackupKey::from_bytes(bytes)
}

/// One fixture case, decoded.
pub struct Case {
    pub name: String,
    pub iv: [u8; 16],
    pub prefix: Vec<u8>,
    pub zlib: Vec<u8>,
    pub file: Vec<u8>,
}

/// Every case of the fixture file.
pub fn cases(fixtures: &Value) -> Vec<Case> {
    fixtures["cases"]
        .as_array()
        .expect("a cases array")
        .iter()
        .map(|case| Case {
            name: case["name"].as_str().expect("a name").to_owned(),
            iv: hex_of(&case["iv_hex"]).try_into().expect("a 16-byte IV"),
            prefix: hex_of(&case["prefix_hex"]),
            zlib: hex_of(&case["zlib_plaintext_hex"]),
            file: hex_of(&case["crypt15_hex"]),
        })
        .collect()
}
