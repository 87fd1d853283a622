//! Shared helpers of the crypt15 integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use e2ee_backup_kdf::BackupKey;
use serde_json::Value;

/// Name of the fixture file, under the shared vectors directory.
pub const FIXTURES: &str = "wa-crypt-tools-generated/crypt15_fixtures.json";

/// `../shared/vectors` beside the workspace, or `$E2EE_SHARED_VECTORS`. Absent, the test is
/// skipped loudly, except under CI (`$CI` set), where that is a failure.
pub fn shared_vectors(file: &str) -> Option<Value> {
    let dir = std::env::var_os("E2EE_SHARED_VECTORS").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors")
    });
    let path = dir.join(file);
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

/// The bytes of a hex string field.
pub fn hex_of(value: &Value) -> Vec<u8> {
    hex::decode(value.as_str().expect("a hex string")).expect("valid hex")
}

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
