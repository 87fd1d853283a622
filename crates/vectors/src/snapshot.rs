//! Vectors for snapshots (spec sections 8.2, 8.5 and 8.6): `test-vectors/snapshot.json`.
//!
//! The keys derived from K and from the media root key, blob names, and the manifest encoding:
//! valid manifests with their structure and bytes, and invalid encodings, each breaking one
//! rule, with the word of section 8.5 a reader reports.

use e2ee_backup_format::EncryptOptions;
use e2ee_backup_kdf::BackupKey;
use e2ee_backup_snapshot::blob::{open_blob, seal_blob_with};
use e2ee_backup_snapshot::{
    AccountKeys, BlobName, BlobRef, Entry, EntryKind, Error, Manifest, MediaKeys, MediaRootKey,
    open_manifest, seal_manifest_with,
};
use serde_json::{Value, json};

use crate::{draw, draw32, envelope, expect_eq, hex_field, number};

/// The `algorithm` of the file.
pub const ALGORITHM: &str = "e2ee-backups snapshots";

const NOTES: &[(&str, &str)] = &[
    (
        "Keys",
        "K to the media-root wrapping key and the manifest key; the media root key to the blob-name key, the blob key and the chunking seed (8.2).",
    ),
    ("BlobName", "The media root key and a content to the blob's name and object name (8.6)."),
    ("WorkedExample", "The worked example of spec section 8.14."),
    (
        "Manifest",
        "A manifest's structure and its canonical encoding (8.5); a reader decodes the one to the other and a writer encodes the other to the one.",
    ),
    ("Links", "The manifest records links, one of whose targets a restore would not make (8.4)."),
    (
        "InvalidManifest",
        "An encoding a reader refuses, breaking the one rule the error names (8.5).",
    ),
    (
        "BlobFile",
        "A blob object (8.6): a native file under the blob key whose `blob` field names it; read as the blob `name`, it gives `content` or the error of the first failed check of 8.6, with the format's code as `cause` for blob-damaged.",
    ),
    (
        "ManifestFile",
        "A manifest object (8.5, Encryption): a zstd-compressed native file under the manifest key whose `snapshot` field is its id; read as snapshot `id`, it gives `manifest` or the error, with the format's code as `cause` for manifest-damaged. The compressed bytes depend on the compressor: only reading is required.",
    ),
];

fn worked_k() -> [u8; 32] {
    core::array::from_fn(|i| i as u8)
}

fn worked_mrk() -> [u8; 32] {
    core::array::from_fn(|i| 0x20 + i as u8)
}

const WORKED_CONTENT: &[u8] = b"e2ee-backups snapshot vector\n";

/// Builds the vector file.
pub fn generate() -> Value {
    let keys = |comment: &str, k: [u8; 32], mrk: [u8; 32], flags: &[&str]| {
        let mut case = derive(&k, &mrk);
        case["comment"] = json!(comment);
        case["flags"] = json!(flags);
        case
    };
    let key_tests = vec![
        keys(
            "K 00 01 .. 1f, MRK 20 21 .. 3f",
            worked_k(),
            worked_mrk(),
            &["Keys", "WorkedExample"],
        ),
        keys("all-zero K and MRK", [0; 32], [0; 32], &["Keys"]),
        keys("drawn K and MRK", draw32("snapshot/k/1"), draw32("snapshot/mrk/1"), &["Keys"]),
    ];
    let name = |comment: &str, mrk: [u8; 32], content: Vec<u8>, flags: &[&str]| {
        let mut case = blob_name(&mrk, &content);
        case["comment"] = json!(comment);
        case["flags"] = json!(flags);
        case
    };
    let name_tests = vec![
        name(
            "the worked example's content",
            worked_mrk(),
            WORKED_CONTENT.to_vec(),
            &["BlobName", "WorkedExample"],
        ),
        name("one byte", worked_mrk(), vec![0], &["BlobName"]),
        name(
            "the same byte under another media root key",
            draw32("snapshot/mrk/1"),
            vec![0],
            &["BlobName"],
        ),
        name("1000 drawn bytes", worked_mrk(), draw("snapshot/content/1", 1000), &["BlobName"]),
    ];
    let valid = |comment: &str, manifest: &Manifest, flags: &[&str]| {
        json!({
            "comment": comment, "flags": flags, "result": "valid",
            "manifest": manifest_json(manifest),
            "encoding": hex::encode(manifest.encode().expect("a valid manifest encodes")),
        })
    };
    let mut manifest_tests = vec![
        valid("the worked example", &worked_manifest(), &["Manifest", "WorkedExample"]),
        valid("no entry", &Manifest::default(), &["Manifest"]),
        valid(
            "odd names, an empty file, several blobs, links",
            &odd_manifest(),
            &["Manifest", "Links"],
        ),
    ];
    for (comment, bytes, error) in invalid_encodings() {
        manifest_tests.push(json!({
            "comment": comment, "flags": ["InvalidManifest"], "result": "invalid",
            "encoding": hex::encode(bytes), "error": error,
        }));
    }
    let mut groups = vec![
        json!({ "type": "Keys", "tests": key_tests }),
        json!({ "type": "BlobName", "tests": name_tests }),
        json!({ "type": "Manifest", "tests": manifest_tests }),
        json!({ "type": "BlobFile", "tests": blob_files() }),
        json!({ "type": "ManifestFile", "tests": manifest_files() }),
    ];
    number(&mut groups);
    envelope(
        ALGORITHM,
        &[
            "Snapshots of directories (spec chapter 8): the keys of K and of the media root key, blob names, and the manifest encoding.",
            "Blob and manifest files are native backup files (chapter 3) under the keys listed here; the BlobFile and ManifestFile groups check what a reader adds to chapter 3 (8.5, 8.6).",
        ],
        NOTES,
        groups,
    )
}

/// The refusal a case expects (`None`: it reads): the error's code and the format's under it.
type Refusal = Option<(&'static str, Option<&'static str>)>;

/// The outcome of reading: the code of the error, and the format's code under it.
pub(crate) fn refusal(err: &Error) -> (&'static str, Option<&'static str>) {
    match err {
        Error::BlobDamaged { source, .. } | Error::ManifestDamaged { source, .. } => {
            (err.code(), Some(source.code()))
        }
        _ => (err.code(), None),
    }
}

/// Blob objects read under a name: the blob, another's (swapped, renamed), a content that is
/// not the name's, another media root key's, a damaged one.
fn blob_files() -> Vec<Value> {
    let mrk = worked_mrk();
    let keys = MediaKeys::derive(&MediaRootKey::from_bytes(mrk));
    let content = WORKED_CONTENT.to_vec();
    let name = keys.blob_name(&content);
    let other = b"another blob".to_vec();
    let other_name = keys.blob_name(&other);
    let seal = |keys: &MediaKeys, name: &BlobName, content: &[u8], label: &str| {
        let options = EncryptOptions::default()
            .with_fixed_salt_for_test_vectors(draw32(&format!("snapshot/blob-salt/{label}")));
        seal_blob_with(keys, name, content, options).expect("a blob seals")
    };
    let file = seal(&keys, &name, &content, "worked");
    let mut damaged = file.clone();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    let stranger = MediaKeys::derive(&MediaRootKey::from_bytes(draw32("snapshot/mrk/1")));
    let cases: [(&str, &BlobName, Vec<u8>, Refusal); 5] = [
        ("the worked example's blob", &name, file.clone(), None),
        (
            "read as another blob's name: moved or swapped",
            &other_name,
            file,
            Some(("blob-renamed", None)),
        ),
        (
            "its field names it, but its content has another name (only a holder of MRK makes this)",
            &name,
            seal(&keys, &name, &other, "mismatch"),
            Some(("blob-content-mismatch", None)),
        ),
        (
            "sealed under another media root key",
            &name,
            seal(&stranger, &name, &content, "stranger"),
            Some(("blob-damaged", Some("wrong-key"))),
        ),
        (
            "its last tag byte changed",
            &name,
            damaged,
            Some(("blob-damaged", Some("chunk-modified"))),
        ),
    ];
    cases
        .into_iter()
        .map(|(comment, read_as, file, expected)| {
            let outcome = open_blob(&keys, read_as, &file);
            let mut case = json!({
                "comment": comment, "flags": ["BlobFile"],
                "mediaRootKey": hex::encode(mrk), "name": read_as.to_hex(), "file": hex::encode(&file),
            });
            match (outcome, expected) {
                (Ok(found), None) => {
                    case["result"] = json!("valid");
                    case["content"] = json!(hex::encode(found));
                }
                (Err(err), Some((error, cause))) => {
                    assert_eq!(refusal(&err), (error, cause), "{comment}: spec 8.6 says otherwise");
                    case["result"] = json!("invalid");
                    case["error"] = json!(error);
                    case["cause"] = json!(cause);
                }
                (outcome, expected) => panic!("{comment}: {:?} but spec 8.6 gives {expected:?}", outcome.map(|_| ())),
            }
            case
        })
        .collect()
}

/// Manifest objects read as a snapshot: its own, under another id (moved or replayed),
/// another K's.
fn manifest_files() -> Vec<Value> {
    let k = worked_k();
    let account = AccountKeys::derive(&BackupKey::from_bytes(k));
    let id = "00001780000000000000-0123456789abcdef";
    let other_id = "00001780000000000001-fedcba9876543210";
    let manifest = worked_manifest();
    let seal = |account: &AccountKeys, label: &str| {
        let options = EncryptOptions::default()
            .with_fixed_salt_for_test_vectors(draw32(&format!("snapshot/manifest-salt/{label}")));
        seal_manifest_with(account, id, &manifest, options).expect("a manifest seals")
    };
    let file = seal(&account, "worked");
    let stranger = AccountKeys::derive(&BackupKey::from_bytes(draw32("snapshot/k/1")));
    let cases: [(&str, &str, Vec<u8>, Refusal); 3] = [
        ("the worked example's manifest as its snapshot", id, file.clone(), None),
        (
            "read as another snapshot: moved or replayed",
            other_id,
            file,
            Some(("manifest-renamed", None)),
        ),
        (
            "sealed under another K's manifest key",
            id,
            seal(&stranger, "stranger"),
            Some(("manifest-damaged", Some("wrong-key"))),
        ),
    ];
    cases
        .into_iter()
        .map(|(comment, read_as, file, expected)| {
            let mut case = json!({
                "comment": comment, "flags": ["ManifestFile"],
                "key": hex::encode(k), "id": read_as, "file": hex::encode(&file),
            });
            match (open_manifest(&account, read_as, &file), expected) {
                (Ok(found), None) => {
                    case["result"] = json!("valid");
                    case["manifest"] = manifest_json(&found);
                }
                (Err(err), Some((error, cause))) => {
                    assert_eq!(refusal(&err), (error, cause), "{comment}: spec 8.5 says otherwise");
                    case["result"] = json!("invalid");
                    case["error"] = json!(error);
                    case["cause"] = json!(cause);
                }
                (outcome, expected) => {
                    panic!("{comment}: {:?} but spec 8.5 gives {expected:?}", outcome.map(|_| ()))
                }
            }
            case
        })
        .collect()
}

/// Checks a blob or manifest object case.
fn verify_file(case: &Value) -> Result<(), String> {
    let file = hex_field(case, "file")?;
    let outcome = if case.get("mediaRootKey").is_some() {
        let mrk = hex_field(case, "mediaRootKey")?.try_into().map_err(|_| "MRK is not 32 bytes")?;
        let keys = MediaKeys::derive(&MediaRootKey::from_bytes(mrk));
        let name: [u8; 32] =
            hex_field(case, "name")?.try_into().map_err(|_| "name is not 32 bytes")?;
        open_blob(&keys, &BlobName(name), &file)
            .map(|content| ("content", json!(hex::encode(content))))
    } else {
        let k = hex_field(case, "key")?.try_into().map_err(|_| "key is not 32 bytes")?;
        let account = AccountKeys::derive(&BackupKey::from_bytes(k));
        let id = case["id"].as_str().ok_or("no id")?;
        open_manifest(&account, id, &file).map(|m| ("manifest", manifest_json(&m)))
    };
    match (case["result"].as_str(), outcome) {
        (Some("valid"), Ok((field, found))) => expect_eq(field, &found, &case[field]),
        (Some("invalid"), Err(err)) => {
            let (error, cause) = refusal(&err);
            expect_eq("error", Some(error), case["error"].as_str())?;
            expect_eq("cause", cause, case["cause"].as_str())
        }
        (result, outcome) => {
            Err(format!("expected {result:?}, got {:?}", outcome.map(|(field, _)| field)))
        }
    }
}

pub(crate) fn derive(k: &[u8; 32], mrk: &[u8; 32]) -> Value {
    let account = AccountKeys::derive(&BackupKey::from_bytes(*k));
    let media = MediaKeys::derive(&MediaRootKey::from_bytes(*mrk));
    json!({
        "result": "valid",
        "key": hex::encode(k),
        "mediaRootKey": hex::encode(mrk),
        "mediaRootWrapKey": hex::encode(account.media_root_wrap.expose_secret()),
        "manifestKey": hex::encode(account.manifest.expose_secret()),
        "blobNameKey": hex::encode(media.blob_name_key_for_test_vectors()),
        "blobKey": hex::encode(media.blob.expose_secret()),
        "chunkingSeed": hex::encode(media.chunking_seed().to_be_bytes()),
    })
}

pub(crate) fn blob_name(mrk: &[u8; 32], content: &[u8]) -> Value {
    let name = MediaKeys::derive(&MediaRootKey::from_bytes(*mrk)).blob_name(content);
    json!({
        "result": "valid",
        "mediaRootKey": hex::encode(mrk),
        "content": hex::encode(content),
        "name": name.to_hex(),
        "object": name.object_name(),
    })
}

fn worked_manifest() -> Manifest {
    let name = MediaKeys::derive(&MediaRootKey::from_bytes(worked_mrk())).blob_name(WORKED_CONTENT);
    let len = WORKED_CONTENT.len() as u32;
    Manifest {
        created_at: 1_764_000_000,
        new_blobs: 1,
        new_bytes: u64::from(len),
        entries: vec![
            entry("Databases", EntryKind::Dir, 0o755, 1_764_000_000),
            entry(
                "Databases/msgstore.db",
                EntryKind::File { blobs: vec![BlobRef { name, len }] },
                0o600,
                1_764_000_001,
            ),
            entry(
                "db link",
                EntryKind::Symlink { target: "Databases/msgstore.db".into() },
                0o777,
                -1,
            ),
        ],
    }
}

fn odd_manifest() -> Manifest {
    let blob = |label: &str, len: u32| BlobRef { name: BlobName(draw32(label)), len };
    Manifest {
        created_at: 1_800_000_000,
        new_blobs: 2,
        new_bytes: 1_048_576 + 17,
        entries: vec![
            entry("Media", EntryKind::Dir, 0o700, 1_799_999_000),
            entry("Media/WhatsApp Images", EntryKind::Dir, 0o755, 1_799_999_001),
            entry(
                "Media/WhatsApp Images/IMG été 🙂.jpg",
                EntryKind::File {
                    blobs: vec![blob("snapshot/blob/1", 1_048_576), blob("snapshot/blob/2", 17)],
                },
                0o644,
                1_799_999_002,
            ),
            entry("Media/empty", EntryKind::File { blobs: Vec::new() }, 0o444, 0),
            entry("Media/up", EntryKind::Symlink { target: "../../etc/passwd".into() }, 0o777, 5),
            entry("empty dir", EntryKind::Dir, 0o755, i64::MIN),
            entry("日本語", EntryKind::Symlink { target: "Media/empty".into() }, 0o777, i64::MAX),
        ],
    }
}

fn entry(path: &str, kind: EntryKind, mode: u32, mtime: i64) -> Entry {
    let size = match &kind {
        EntryKind::File { blobs } => blobs.iter().map(|b| u64::from(b.len)).sum(),
        _ => 0,
    };
    Entry { path: path.into(), kind, mode, mtime, size }
}

/// The manifest as the vector writes it: `kind` is `file`, `dir` or `symlink`; a file has
/// `blobs`, a link `target`.
pub(crate) fn manifest_json(manifest: &Manifest) -> Value {
    let entries: Vec<Value> = manifest
        .entries
        .iter()
        .map(|e| {
            let mut out =
                json!({ "path": e.path, "mode": e.mode, "mtime": e.mtime, "size": e.size });
            match &e.kind {
                EntryKind::File { blobs } => {
                    out["kind"] = json!("file");
                    out["blobs"] = blobs
                        .iter()
                        .map(|b| json!({ "name": b.name.to_hex(), "length": b.len }))
                        .collect();
                }
                EntryKind::Dir => out["kind"] = json!("dir"),
                EntryKind::Symlink { target } => {
                    out["kind"] = json!("symlink");
                    out["target"] = json!(target);
                }
            }
            out
        })
        .collect();
    json!({
        "createdAt": manifest.created_at, "newBlobs": manifest.new_blobs,
        "newBytes": manifest.new_bytes, "entries": entries,
    })
}

fn manifest_from_json(value: &Value) -> Result<Manifest, String> {
    let number = |v: &Value, field: &str| v[field].as_u64().ok_or(format!("no {field}"));
    let mut entries = Vec::new();
    for e in value["entries"].as_array().ok_or("no entries")? {
        let kind = match e["kind"].as_str() {
            Some("file") => {
                let mut blobs = Vec::new();
                for b in e["blobs"].as_array().ok_or("a file without blobs")? {
                    let name =
                        hex_field(b, "name")?.try_into().map_err(|_| "a name of 32 bytes")?;
                    let len = u32::try_from(number(b, "length")?).map_err(|e| e.to_string())?;
                    blobs.push(BlobRef { name: BlobName(name), len });
                }
                EntryKind::File { blobs }
            }
            Some("dir") => EntryKind::Dir,
            Some("symlink") => {
                EntryKind::Symlink { target: e["target"].as_str().ok_or("no target")?.into() }
            }
            other => return Err(format!("kind {other:?}")),
        };
        entries.push(Entry {
            path: e["path"].as_str().ok_or("no path")?.into(),
            kind,
            mode: u32::try_from(number(e, "mode")?).map_err(|e| e.to_string())?,
            mtime: e["mtime"].as_i64().ok_or("no mtime")?,
            size: number(e, "size")?,
        });
    }
    Ok(Manifest {
        created_at: number(value, "createdAt")?,
        new_blobs: number(value, "newBlobs")?,
        new_bytes: number(value, "newBytes")?,
        entries,
    })
}

/// One entry written as raw fields, so that invalid ones can be made.
struct Raw<'a> {
    path: &'a [u8],
    kind: u8,
    mode: u32,
    size: u64,
    body: Vec<u8>,
}

fn dir(path: &str) -> Raw<'_> {
    Raw { path: path.as_bytes(), kind: 2, mode: 0o755, size: 0, body: Vec::new() }
}

fn file<'a>(path: &'a str, lengths: &[u32], size: u64) -> Raw<'a> {
    let mut body = (lengths.len() as u32).to_be_bytes().to_vec();
    for (i, len) in lengths.iter().enumerate() {
        body.extend_from_slice(&draw32(&format!("snapshot/raw-blob/{i}")));
        body.extend_from_slice(&len.to_be_bytes());
    }
    Raw { path: path.as_bytes(), kind: 1, mode: 0o644, size, body }
}

fn encode_raw(version: u8, entries: &[Raw<'_>]) -> Vec<u8> {
    let mut out = vec![version];
    out.extend_from_slice(&1_764_000_000u64.to_be_bytes());
    out.extend_from_slice(&[0; 16]);
    out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for e in entries {
        out.extend_from_slice(&(e.path.len() as u16).to_be_bytes());
        out.extend_from_slice(e.path);
        out.push(e.kind);
        out.extend_from_slice(&e.mode.to_be_bytes());
        out.extend_from_slice(&1_764_000_000i64.to_be_bytes());
        out.extend_from_slice(&e.size.to_be_bytes());
        out.extend_from_slice(&e.body);
    }
    out
}

fn invalid_encodings() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let worked = worked_manifest().encode().expect("valid");
    let mut version = worked.clone();
    version[0] = 2;
    let mut longer = worked.clone();
    longer.push(0);
    let symlink = |target: &[u8]| {
        let mut body = (target.len() as u16).to_be_bytes().to_vec();
        body.extend_from_slice(target);
        Raw { path: b"link", kind: 3, mode: 0o777, size: 0, body }
    };
    let mut bad_mode = dir("a");
    bad_mode.mode = 0o10000;
    let mut bad_kind = dir("a");
    bad_kind.kind = 4;
    let mut sized_dir = dir("a");
    sized_dir.size = 1;
    vec![
        ("version 02", version, "unsupported-version"),
        ("the last byte cut off", worked[..worked.len() - 1].to_vec(), "truncated"),
        (
            "an entry count above the entries",
            encode_raw(1, &[]).iter().copied().take(25).chain(2u32.to_be_bytes()).collect(),
            "truncated",
        ),
        ("a byte after the last entry", longer, "trailing-bytes"),
        ("a path that climbs out: ../x", encode_raw(1, &[dir("../x")]), "unsafe-path"),
        (
            "a path inside that climbs out: a/../../x",
            encode_raw(1, &[dir("a/../../x")]),
            "unsafe-path",
        ),
        ("an absolute path", encode_raw(1, &[dir("/etc")]), "unsafe-path"),
        ("an empty path", encode_raw(1, &[dir("")]), "unsafe-path"),
        ("an empty component", encode_raw(1, &[dir("a//b")]), "unsafe-path"),
        ("a . component", encode_raw(1, &[dir("a/./b")]), "unsafe-path"),
        ("a trailing slash", encode_raw(1, &[dir("a/")]), "unsafe-path"),
        ("a backslash", encode_raw(1, &[dir("a\\b")]), "unsafe-path"),
        ("a NUL", encode_raw(1, &[dir("a\0b")]), "unsafe-path"),
        (
            "a path that is not UTF-8",
            encode_raw(1, &[Raw { path: b"a\xff", ..dir("") }]),
            "unsafe-path",
        ),
        ("paths out of order", encode_raw(1, &[dir("b"), dir("a")]), "unsorted"),
        ("a path repeated", encode_raw(1, &[dir("a"), dir("a")]), "unsorted"),
        (
            "a child before its directory: a/b then a",
            encode_raw(1, &[dir("a/b"), dir("a")]),
            "unsorted",
        ),
        ("kind 04", encode_raw(1, &[bad_kind]), "invalid-value"),
        ("mode above 0o7777", encode_raw(1, &[bad_mode]), "invalid-value"),
        ("a directory of size 1", encode_raw(1, &[sized_dir]), "invalid-value"),
        (
            "a file whose size is not its blobs' sum",
            encode_raw(1, &[file("f", &[5, 6], 12)]),
            "invalid-value",
        ),
        ("a blob of length 0", encode_raw(1, &[file("f", &[0], 0)]), "invalid-value"),
        (
            "a blob above 16 MiB",
            encode_raw(1, &[file("f", &[(1 << 24) + 1], (1 << 24) + 1)]),
            "invalid-value",
        ),
        ("an empty link target", encode_raw(1, &[symlink(b"")]), "invalid-value"),
        ("a link target with NUL", encode_raw(1, &[symlink(b"a\0")]), "invalid-value"),
        ("a link target that is not UTF-8", encode_raw(1, &[symlink(b"\xc3")]), "invalid-value"),
    ]
}

/// Checks one case.
pub fn verify_case(case: &Value) -> Result<(), String> {
    if case.get("file").is_some() {
        return verify_file(case);
    }
    if case.get("manifestKey").is_some() {
        let k = hex_field(case, "key")?.try_into().map_err(|_| "key is not 32 bytes")?;
        let mrk = hex_field(case, "mediaRootKey")?.try_into().map_err(|_| "MRK is not 32 bytes")?;
        let mut found = derive(&k, &mrk);
        for field in ["tcId", "comment", "flags"] {
            found[field] = case[field].clone();
        }
        return expect_eq("derived keys", &found, case);
    }
    if case.get("name").is_some() {
        let mrk = hex_field(case, "mediaRootKey")?.try_into().map_err(|_| "MRK is not 32 bytes")?;
        let mut found = blob_name(&mrk, &hex_field(case, "content")?);
        for field in ["tcId", "comment", "flags"] {
            found[field] = case[field].clone();
        }
        return expect_eq("blob name", &found, case);
    }
    let encoding = hex_field(case, "encoding")?;
    match case["result"].as_str() {
        Some("valid") => {
            let manifest = manifest_from_json(&case["manifest"])?;
            let decoded = Manifest::decode(&encoding).map_err(|e| format!("decoding: {e}"))?;
            expect_eq("decoded manifest", &decoded, &manifest)?;
            let encoded = manifest.encode().map_err(|e| format!("encoding: {e}"))?;
            expect_eq("encoding", encoded, encoding)
        }
        _ => {
            let found = match Manifest::decode(&encoding) {
                Ok(_) => "accepted",
                Err(e) => e.code(),
            };
            expect_eq("error", found, case["error"].as_str().ok_or("no error")?)
        }
    }
}
