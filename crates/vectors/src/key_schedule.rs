//! Vectors for the key schedule (spec sections 2.3 and 2.4): `test-vectors/key-schedule.json`.

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_kdf::crypt15::Crypt15Keys;
use e2ee_backup_kdf::schedule::{FileKeys, KeyId, vault_wrapping_key};
use serde_json::{Value, json};

use crate::{draw, draw32, envelope, expect_eq, hex_field, number};

/// The `algorithm` of the file.
pub const ALGORITHM: &str = "e2ee-backups key schedule";

const NOTES: &[(&str, &str)] = &[
    (
        "FileKeys",
        "K and a file salt to the key id and the four per-file values, and K to the three crypt15 keys.",
    ),
    ("VaultWrappingKey", "An OPAQUE export key to the vault wrapping key."),
    ("EdgeValue", "An all-zero or all-one input."),
];

/// Builds the vector file.
pub fn generate() -> Value {
    let case = |comment: &str, key: [u8; 32], salt: [u8; 32], flags: &[&str]| {
        let mut case = derive(&BackupKey::from_bytes(key), &salt);
        case["comment"] = json!(comment);
        case["flags"] = json!(flags);
        case
    };
    let edge = ["FileKeys", "EdgeValue"];
    let mut file_tests = vec![
        case("all-zero key and salt", [0; 32], [0; 32], &edge),
        case("all-one key and salt", [0xff; 32], [0xff; 32], &edge),
        case(
            "key 00 01 .. 1f, the root key of the crypt15 fixtures",
            core::array::from_fn(|i| i as u8),
            draw32("key-schedule/salt/0"),
            &["FileKeys"],
        ),
    ];
    for i in 1..=3 {
        let key = draw32(&format!("key-schedule/key/{i}"));
        let salt = draw32(&format!("key-schedule/salt/{i}"));
        file_tests.push(case(&format!("drawn key and salt {i}"), key, salt, &["FileKeys"]));
    }
    let wrap_tests: Vec<Value> = [
        ("all-zero export key", vec![0u8; 64]),
        ("drawn export key", draw("key-schedule/export-key", 64)),
    ]
    .into_iter()
    .map(|(comment, export_key)| {
        json!({
            "comment": comment, "flags": ["VaultWrappingKey"], "result": "valid",
            "exportKey": hex::encode(&export_key),
            "wrappingKey": hex::encode(*vault_wrapping_key(&export_key)),
        })
    })
    .collect();
    let mut groups = vec![
        json!({ "type": "FileKeys", "tests": file_tests }),
        json!({ "type": "VaultWrappingKey", "tests": wrap_tests }),
    ];
    number(&mut groups);
    envelope(
        ALGORITHM,
        &["HKDF-SHA256 derivations from the backup key K (spec sections 2.3 and 2.4)."],
        NOTES,
        groups,
    )
}

fn derive(key: &BackupKey, salt: &[u8; 32]) -> Value {
    let mut case = json!({
        "result": "valid",
        "key": hex::encode(key.expose_secret()),
        "salt": hex::encode(salt),
    });
    if let (Value::Object(case), Value::Object(keys)) = (&mut case, derived_keys(key, salt)) {
        case.extend(keys);
    }
    case
}

/// The eight keys a case lists (spec sections 2.3 and 2.4), as the vector and the runner's
/// reference adapter write them.
pub(crate) fn derived_keys(key: &BackupKey, salt: &[u8; 32]) -> Value {
    let file = FileKeys::derive(key, salt);
    let crypt15 = Crypt15Keys::derive(key);
    json!({
        "keyId": hex::encode(KeyId::of(key).0),
        "headerMacKey": hex::encode(file.header_mac_key),
        "metadataKey": hex::encode(file.metadata_key),
        "payloadKey": hex::encode(file.payload_key),
        "nonceBase": hex::encode(file.nonce_base),
        "crypt15BackupEncryption": hex::encode(crypt15.backup_encryption),
        "crypt15MetadataEncryption": hex::encode(crypt15.metadata_encryption),
        "crypt15MetadataAuthentication": hex::encode(crypt15.metadata_authentication),
    })
}

/// Checks one case.
pub fn verify_case(case: &Value) -> Result<(), String> {
    if case.get("exportKey").is_some() {
        let wrapped = vault_wrapping_key(&hex_field(case, "exportKey")?);
        return expect_eq("wrappingKey", wrapped.to_vec(), hex_field(case, "wrappingKey")?);
    }
    let key: [u8; 32] = hex_field(case, "key")?.try_into().map_err(|_| "key is not 32 bytes")?;
    let salt: [u8; 32] = hex_field(case, "salt")?.try_into().map_err(|_| "salt is not 32 bytes")?;
    let mut found = derive(&BackupKey::from_bytes(key), &salt);
    for field in ["tcId", "comment", "flags"] {
        found[field] = case[field].clone();
    }
    expect_eq("derived keys", &found, case)
}
