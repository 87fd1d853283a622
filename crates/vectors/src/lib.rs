//! The e2ee-backups conformance kit: the vectors of spec sections 2.2, 2.3, 2.4, 3.8, 4.14,
//! 6.9, 7.11 and 8.2, 8.5, 8.6, and the conventions of the spec's README ("Test vectors").
//!
//! - [`generate`] builds every file of `test-vectors/` from fixed seeds, so the published
//!   vectors can be regenerated and compared byte for byte ([`check_dir`]);
//! - [`verify`] replays one vector file against this implementation: every valid case must
//!   decrypt (or derive, or parse) to the recorded values, every invalid one must be rejected
//!   with the recorded error;
//! - [`runner`] drives another implementation, wrapped in an adapter program, through the
//!   stateless families (the protocol is in `test-vectors/README.md`); [`adapter`] is the
//!   reference adapter built on this workspace's crates;
//! - [`fuzz_targets`] holds the body of every fuzz target, so `fuzz/` and the stable test
//!   suite (which replays the seed corpora) run the same code.
#![forbid(unsafe_code)]

use std::fs;
use std::path::Path;

use e2ee_backup_vault::AccountId;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub mod adapter;
pub mod backup_format;
pub mod crypt15;
pub mod export;
pub mod fleet_bundle;
pub mod fuzz_targets;
pub mod key_encoding;
pub mod key_schedule;
pub mod replication;
pub mod runner;
pub mod snapshot;
pub mod vault;

/// An account id the generator chose, 1 to 64 bytes by construction.
pub(crate) fn account_id(bytes: &[u8]) -> AccountId<'_> {
    AccountId::new(bytes).expect("the generator's account ids are 1 to 64 bytes")
}

/// Version of the vector envelope, written into every file.
pub const SCHEMA_VERSION: u32 = 2;

/// One generated file: its path below the vectors directory and its exact contents.
pub struct VectorFile {
    /// Path relative to `test-vectors/`.
    pub path: String,
    /// The bytes to write.
    pub contents: String,
}

/// Every vector file and JSON Schema, in a fixed order.
pub fn generate() -> Vec<VectorFile> {
    let mut files = Vec::new();
    for (name, json, schema) in [
        (
            "key-encoding",
            key_encoding::generate(),
            include_str!("../schemas/key-encoding.schema.json"),
        ),
        (
            "key-schedule",
            key_schedule::generate(),
            include_str!("../schemas/key-schedule.schema.json"),
        ),
        (
            "backup-format",
            backup_format::generate(),
            include_str!("../schemas/backup-format.schema.json"),
        ),
        ("crypt15", crypt15::generate(), include_str!("../schemas/crypt15.schema.json")),
        ("vault", vault::generate(), include_str!("../schemas/vault.schema.json")),
        (
            "fleet-bundle",
            fleet_bundle::generate(),
            include_str!("../schemas/fleet-bundle.schema.json"),
        ),
        (
            "replication",
            replication::generate(),
            include_str!("../schemas/replication.schema.json"),
        ),
        ("snapshot", snapshot::generate(), include_str!("../schemas/snapshot.schema.json")),
    ] {
        files.push(VectorFile { path: format!("{name}.json"), contents: pretty(&json) });
        files.push(VectorFile {
            path: format!("schemas/{name}.schema.json"),
            contents: schema.to_owned(),
        });
    }
    files
}

/// Runs every case of a vector file (as parsed JSON) against this implementation; returns
/// how many cases passed or the first that did not.
pub fn verify(json: &Value) -> Result<usize, String> {
    let algorithm = json["algorithm"].as_str().ok_or("no algorithm field")?;
    let check: fn(&Value) -> Result<(), String> = match algorithm {
        key_encoding::ALGORITHM => key_encoding::verify_case,
        key_schedule::ALGORITHM => key_schedule::verify_case,
        backup_format::ALGORITHM => backup_format::verify_case,
        crypt15::ALGORITHM => crypt15::verify_case,
        vault::ALGORITHM => vault::verify_case,
        fleet_bundle::ALGORITHM => fleet_bundle::verify_case,
        replication::ALGORITHM => replication::verify_case,
        snapshot::ALGORITHM => snapshot::verify_case,
        other => return Err(format!("unknown algorithm {other:?}")),
    };
    let mut count = 0;
    for group in json["testGroups"].as_array().ok_or("no testGroups")? {
        for case in group["tests"].as_array().ok_or("a group without tests")? {
            check(case).map_err(|e| format!("{algorithm} tcId {}: {e}", case["tcId"]))?;
            count += 1;
        }
    }
    if json["numberOfTests"].as_u64() != Some(count as u64) {
        return Err(format!("{algorithm}: numberOfTests does not match the {count} tests"));
    }
    Ok(count)
}

/// Writes every generated file into `dir`; returns the number of files.
pub fn write_all(dir: &Path) -> Result<usize, String> {
    let files = generate();
    for file in &files {
        let path = dir.join(&file.path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        fs::write(&path, &file.contents).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(files.len())
}

/// The subdirectory of the vector directory that holds published vectors copied in (sources and
/// licences in its `README.md`): the generator neither writes nor checks it.
pub const PUBLISHED: &str = "published/";

/// The hand-written guide at the top of the vector directory (the runner's protocol among
/// others): the generator neither writes nor checks it.
pub const GUIDE: &str = "README.md";

/// Fails unless `dir` holds exactly the generated files, byte for byte, and every vector
/// file verifies.
pub fn check_dir(dir: &Path) -> Result<usize, String> {
    let files = generate();
    for file in &files {
        let path = dir.join(&file.path);
        let found = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if found != file.contents {
            return Err(format!(
                "{} differs from what the generator writes; run `cargo run -p e2ee-backup-vectors -- generate`",
                path.display()
            ));
        }
        if file.path.ends_with(".json") && !file.path.starts_with("schemas/") {
            let json: Value =
                serde_json::from_str(&found).map_err(|e| format!("{}: {e}", path.display()))?;
            verify(&json)?;
        }
    }
    let mut extra = Vec::new();
    list_files(dir, dir, &mut extra)?;
    // `published/` holds vectors copied from their publishers, not generated here, and the
    // guide is written by hand.
    extra
        .retain(|p| !p.starts_with(PUBLISHED) && p != GUIDE && !files.iter().any(|f| &f.path == p));
    if !extra.is_empty() {
        return Err(format!("files the generator does not write: {extra:?}"));
    }
    Ok(files.len())
}

fn list_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), String> {
    for entry in fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            list_files(root, &path, out)?;
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

/// The common Wycheproof-like envelope.
pub(crate) fn envelope(
    algorithm: &str,
    header: &[&str],
    notes: &[(&str, &str)],
    groups: Vec<Value>,
) -> Value {
    let count: usize = groups.iter().map(|g| g["tests"].as_array().map_or(0, Vec::len)).sum();
    let notes: serde_json::Map<String, Value> = notes
        .iter()
        .map(|(flag, text)| (flag.to_string(), json!({ "description": text })))
        .collect();
    json!({
        "algorithm": algorithm,
        "schemaVersion": SCHEMA_VERSION,
        "generator": concat!("e2ee-backup-vectors ", env!("CARGO_PKG_VERSION")),
        "header": header,
        "notes": notes,
        "numberOfTests": count,
        "testGroups": groups,
    })
}

/// Numbers the tests of every group from 1 in file order.
pub(crate) fn number(groups: &mut [Value]) {
    let mut id = 0;
    for group in groups {
        for test in group["tests"].as_array_mut().into_iter().flatten() {
            id += 1;
            test["tcId"] = json!(id);
        }
    }
}

/// Deterministic bytes for a named draw: SHA-256 in counter mode over the label. Every
/// "random" value in the vectors comes from here, so the files never change by accident.
pub(crate) fn draw(label: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut counter = 0u32;
    while out.len() < len {
        let block = Sha256::new()
            .chain_update(b"e2ee-backups test vectors\0")
            .chain_update(label.as_bytes())
            .chain_update(counter.to_be_bytes())
            .finalize();
        out.extend_from_slice(&block);
        counter += 1;
    }
    out.truncate(len);
    out
}

pub(crate) fn draw32(label: &str) -> [u8; 32] {
    draw(label, 32).try_into().expect("32 bytes")
}

pub(crate) fn hex_field(case: &Value, field: &str) -> Result<Vec<u8>, String> {
    let text = case[field].as_str().ok_or_else(|| format!("missing field {field}"))?;
    hex::decode(text).map_err(|e| format!("field {field}: {e}"))
}

pub(crate) fn expect_eq<T: PartialEq + std::fmt::Debug>(
    what: &str,
    found: T,
    expected: T,
) -> Result<(), String> {
    if found == expected {
        Ok(())
    } else {
        Err(format!("{what}: found {found:?}, expected {expected:?}"))
    }
}

fn pretty(json: &Value) -> String {
    let mut text = serde_json::to_string_pretty(json).expect("JSON values always serialise");
    text.push('\n');
    text
}
