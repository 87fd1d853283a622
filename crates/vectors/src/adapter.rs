//! The reference adapter (`e2ee-backup-vectors adapter`): answers the runner's requests with
//! this workspace's own crates. It is the example every other adapter can be compared with, and
//! the runner's own tests drive it. The protocol is that of the spec's test-vector conventions
//! (`spec/README.md`, "Test vectors") as written out in `test-vectors/README.md`.
//!
//! For those tests it can be told to misbehave on chosen cases: the environment variable
//! [`FAULT_ENV`] holds a comma-separated list of `KIND:ID`, where `ID` is a request's `id`
//! (`FAMILY/TCID`) and `KIND` is one of `wrong` (the opposite answer: an error for an ok, an
//! empty ok for an error), `garbage` (a line that is not JSON), `crash` (exit without
//! answering), `hang` (never answer) or `long` (an answer line of 2 MiB).

use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};
use std::time::Duration;

use e2ee_backup_crypt15::{KeyFileError, Variant, keyfile};
use e2ee_backup_kdf::BackupKey;
use e2ee_backup_kdf::digits::{self, KeyParseError};
use e2ee_backup_kdf::schedule::vault_wrapping_key;
use e2ee_backup_snapshot::blob::open_blob;
use e2ee_backup_snapshot::{
    AccountKeys, BlobName, Error as SnapshotError, Manifest, MediaKeys, MediaRootKey, open_manifest,
};
use e2ee_backup_vault::PinnedFleet;
use ed25519_dalek::VerifyingKey;
use serde_json::{Value, json};

use crate::hex_field;

/// The environment variable that makes the adapter misbehave on chosen cases (tests only).
pub const FAULT_ENV: &str = "E2EE_BACKUP_VECTORS_ADAPTER_FAULT";

/// Answers one request.
pub fn answer(request: &Value) -> Value {
    respond(request).unwrap_or_else(|message| json!({ "error": "bad-request", "message": message }))
}

fn respond(request: &Value) -> Result<Value, String> {
    let ok = |value: Value| Ok(json!({ "ok": value }));
    match request["op"].as_str() {
        Some("key-parse") => {
            let input = request["input"].as_str().ok_or("input is not a string")?;
            match digits::parse(input) {
                Ok(key) => ok(json!({
                    "key": *digits::to_hex(&key),
                    "display": *digits::to_display(&key),
                })),
                Err(KeyParseError::InvalidCharacter { position, .. }) => {
                    Ok(json!({ "error": "invalid-character", "position": position }))
                }
                Err(KeyParseError::WrongLength { found }) => {
                    Ok(json!({ "error": "wrong-length", "found": found }))
                }
            }
        }
        Some("file-keys") => {
            let key = BackupKey::from_bytes(bytes32(request, "key")?);
            ok(crate::key_schedule::derived_keys(&key, &bytes32(request, "salt")?))
        }
        Some("vault-wrapping-key") => {
            let wrapping = vault_wrapping_key(&hex_field(request, "exportKey")?);
            ok(json!({ "wrappingKey": hex::encode(*wrapping) }))
        }
        Some("fleet-bundle-verify") => {
            let pin = &request["pin"];
            let key = |field: &str| -> Result<VerifyingKey, String> {
                VerifyingKey::from_bytes(&bytes32(pin, field)?).map_err(|e| format!("{field}: {e}"))
            };
            let pin = PinnedFleet {
                fleet_id: hex_field(pin, "fleetId")?,
                authority: key("authority")?,
                auditor: if pin["auditor"].is_null() { None } else { Some(key("auditor")?) },
            };
            let now = request["now"].as_u64().ok_or("now is not an integer")?;
            let last_seen = match &request["lastSeenEpoch"] {
                Value::Null => None,
                other => Some(other.as_u64().ok_or("lastSeenEpoch is not an integer")?),
            };
            match pin.verify(&hex_field(request, "signed")?, now, last_seen) {
                Ok(bundle) => {
                    let keys: Vec<Value> = bundle
                        .keys
                        .iter()
                        .map(|(id, key)| json!({ "keyId": id, "publicKey": hex::encode(key.as_bytes()) }))
                        .collect();
                    ok(json!({ "epoch": bundle.epoch, "notAfter": bundle.not_after, "keys": keys }))
                }
                Err(e) => Ok(json!({ "error": e.code() })),
            }
        }
        Some("backup-decrypt") => {
            let key = BackupKey::from_bytes(bytes32(request, "key")?);
            match e2ee_backup_format::decrypt_to_vec(&key, &hex_field(request, "file")?) {
                Ok((metadata, plaintext)) => {
                    let fields: &BTreeMap<String, String> = &metadata.fields;
                    ok(json!({
                        "plaintext": hex::encode(plaintext),
                        "createdAt": metadata.created_at,
                        "plaintextLen": metadata.plaintext_len,
                        "fields": fields,
                    }))
                }
                Err(e) => Ok(json!({ "error": e.code() })),
            }
        }
        Some("crypt15-decrypt") => {
            let key = BackupKey::from_bytes(bytes32(request, "key")?);
            match e2ee_backup_crypt15::decrypt_to_vec(&key, &hex_field(request, "file")?) {
                Ok(decrypted) => {
                    let prefix = decrypted.header.prefix();
                    let info = prefix.info.clone().unwrap_or_default();
                    ok(json!({
                        "plaintext": hex::encode(&decrypted.plaintext),
                        "variant": match decrypted.variant {
                            Variant::SingleFile => "single-file",
                            Variant::MultiFile => "multi-file",
                        },
                        "prefix": hex::encode(decrypted.header.prefix_bytes()),
                        "iv": hex::encode(prefix.iv),
                        "appVersion": info.app_version,
                        "jidSuffix": info.jid_suffix,
                    }))
                }
                Err(e) => Ok(json!({ "error": e.code() })),
            }
        }
        Some("crypt15-key-file") => match keyfile::parse(&hex_field(request, "keyFile")?) {
            Ok(key) => ok(json!({ "key": hex::encode(key.expose_secret()) })),
            Err(KeyFileError::WrongLength { found, .. }) => {
                Ok(json!({ "error": "wrong-length", "found": found }))
            }
            Err(KeyFileError::WrongHeader { offset, .. }) => {
                Ok(json!({ "error": "wrong-header", "offset": offset }))
            }
            Err(other) => Err(format!("a key file error with no code: {other}")),
        },
        Some("snapshot-keys") => ok(crate::snapshot::derive(
            &bytes32(request, "key")?,
            &bytes32(request, "mediaRootKey")?,
        )),
        Some("blob-name") => ok(crate::snapshot::blob_name(
            &bytes32(request, "mediaRootKey")?,
            &hex_field(request, "content")?,
        )),
        Some("manifest-decode") => match Manifest::decode(&hex_field(request, "encoding")?) {
            Ok(manifest) => {
                let encoding = manifest.encode().map_err(|e| format!("re-encoding: {e}"))?;
                ok(json!({
                    "manifest": crate::snapshot::manifest_json(&manifest),
                    "encoding": hex::encode(encoding),
                }))
            }
            Err(e) => Ok(json!({ "error": e.code() })),
        },
        Some("blob-open") => {
            let keys =
                MediaKeys::derive(&MediaRootKey::from_bytes(bytes32(request, "mediaRootKey")?));
            let name = BlobName(bytes32(request, "name")?);
            match open_blob(&keys, &name, &hex_field(request, "file")?) {
                Ok(content) => ok(json!({ "content": hex::encode(content) })),
                Err(e) => Ok(snapshot_refusal(&e)),
            }
        }
        Some("manifest-open") => {
            let account = AccountKeys::derive(&BackupKey::from_bytes(bytes32(request, "key")?));
            let id = request["id"].as_str().ok_or("id is not a string")?;
            match open_manifest(&account, id, &hex_field(request, "file")?) {
                Ok(manifest) => {
                    ok(json!({ "manifest": crate::snapshot::manifest_json(&manifest) }))
                }
                Err(e) => Ok(snapshot_refusal(&e)),
            }
        }
        other => Err(format!("unknown op {other:?}")),
    }
}

/// A snapshot reader's refusal as an answer: its code, and for a `-damaged` one the format's
/// code as `cause` (the same split the vectors record, [`crate::snapshot::refusal`]).
fn snapshot_refusal(err: &SnapshotError) -> Value {
    match crate::snapshot::refusal(err) {
        (error, Some(cause)) => json!({ "error": error, "cause": cause }),
        (error, None) => json!({ "error": error }),
    }
}

fn bytes32(value: &Value, field: &str) -> Result<[u8; 32], String> {
    hex_field(value, field)?.try_into().map_err(|_| format!("{field} is not 32 bytes"))
}

/// Serves requests from `input` until it ends, one answer line per request line.
pub fn serve(input: impl BufRead, mut output: impl Write) -> io::Result<()> {
    let faults = std::env::var(FAULT_ENV).unwrap_or_default();
    let fault_for = |id: &str| -> Option<String> {
        faults.split(',').find_map(|f| {
            let (kind, target) = f.trim().split_once(':')?;
            (target == id).then(|| kind.to_owned())
        })
    };
    for line in input.lines() {
        let line = line?;
        let answer = match serde_json::from_str::<Value>(&line) {
            Ok(request) => {
                let mut answer = answer(&request);
                match fault_for(request["id"].as_str().unwrap_or_default()).as_deref() {
                    None => {}
                    Some("wrong") => {
                        answer = if answer.get("ok").is_some() {
                            json!({ "error": "wrong-key" })
                        } else {
                            json!({ "ok": {} })
                        };
                    }
                    Some("garbage") => {
                        writeln!(output, "this is not JSON")?;
                        output.flush()?;
                        continue;
                    }
                    Some("crash") => std::process::exit(3),
                    Some("hang") => {
                        std::thread::sleep(Duration::from_secs(3600));
                        continue;
                    }
                    Some("long") => {
                        writeln!(output, "{}", "x".repeat(2 << 20))?;
                        output.flush()?;
                        continue;
                    }
                    Some(other) => {
                        answer =
                            json!({ "error": "bad-request", "message": format!("fault {other}") });
                    }
                }
                answer
            }
            Err(e) => json!({ "error": "bad-request", "message": format!("not JSON: {e}") }),
        };
        writeln!(output, "{answer}")?;
        output.flush()?;
    }
    Ok(())
}
