//! Vectors for the backup file format (spec chapter 3): `test-vectors/backup-format.json`.
//!
//! Valid files of several sizes around the chunk boundaries, with and without compression,
//! and invalid files made from them by each kind of damage the format must detect, with the
//! error code a reader reports.

use std::collections::BTreeMap;
use std::io::Write;

use e2ee_backup_format::chunks::RECORD_OVERHEAD;
use e2ee_backup_format::header::HEADER_LEN;
use e2ee_backup_format::{
    Compression, EncryptOptions, Encryptor, Metadata, decrypt_to_vec, read_header,
};
use e2ee_backup_kdf::BackupKey;
use serde_json::{Value, json};

use crate::{draw, draw32, envelope, expect_eq, hex_field, number};

/// The `algorithm` of the file.
pub const ALGORITHM: &str = "e2ee-backups backup format v1";

const NOTES: &[(&str, &str)] = &[
    ("ChunkBoundary", "The payload length is at or next to a multiple of the chunk size."),
    ("Empty", "An empty payload: a single empty last chunk."),
    (
        "Compressed",
        "The payload is zstd-compressed before encryption; the compressed bytes depend on the compressor (here the zstd library at level 3), so an implementation with another compressor checks decryption only.",
    ),
    ("UnknownLength", "The metadata does not record the plaintext length (a streaming writer)."),
    ("Fields", "The metadata carries application fields."),
    (
        "Truncation",
        "The file was cut short; the reader reports truncated, or chunk-modified when the cut is disguised by setting the last-chunk flag on the chunk before it.",
    ),
    ("Reordering", "Two chunks were swapped."),
    ("Duplication", "A chunk was repeated in place of another."),
    ("Splicing", "A chunk of another file made with the same key was put in."),
    ("TrailingData", "Bytes follow the last chunk."),
    ("WrongKey", "The file is opened with a key other than its own."),
    ("ModifiedHeader", "A header byte was changed."),
    ("ModifiedMetadata", "A byte of the metadata block was changed."),
    ("ModifiedCiphertext", "A byte of a record (clear fields, ciphertext or tag) was changed."),
];

/// Chunk size of most vectors: 64 bytes, so that boundaries stay small.
const SMALL_CHUNK_LOG2: u8 = 6;
const CREATED_AT: u64 = 1_764_000_000;

/// What a valid case is made from.
struct Inputs {
    key: [u8; 32],
    salt: [u8; 32],
    compression: Compression,
    chunk_size_log2: u8,
    record_length: bool,
    fields: BTreeMap<String, String>,
    plaintext: Vec<u8>,
}

impl Inputs {
    fn small(salt_label: &str, plaintext: Vec<u8>) -> Self {
        Inputs {
            key: draw32("backup-format/key"),
            salt: draw32(salt_label),
            compression: Compression::None,
            chunk_size_log2: SMALL_CHUNK_LOG2,
            record_length: true,
            fields: BTreeMap::new(),
            plaintext,
        }
    }

    fn encrypt(&self) -> Vec<u8> {
        let mut options = EncryptOptions::default().with_fixed_salt_for_test_vectors(self.salt);
        options.compression = self.compression;
        options.chunk_size_log2 = self.chunk_size_log2;
        options.metadata = Metadata {
            created_at: CREATED_AT,
            plaintext_len: self.record_length.then_some(self.plaintext.len() as u64),
            fields: self.fields.clone(),
        };
        let key = BackupKey::from_bytes(self.key);
        let mut encryptor =
            Encryptor::new(Vec::new(), &key, options).expect("vector options are valid");
        encryptor.write_all(&self.plaintext).expect("writing to memory");
        encryptor.finish().expect("writing to memory")
    }

    fn case(&self, comment: &str, flags: &[&str]) -> Value {
        json!({
            "comment": comment, "flags": flags, "result": "valid",
            "key": hex::encode(self.key),
            "salt": hex::encode(self.salt),
            "compression": self.compression.name(),
            "chunkSizeLog2": self.chunk_size_log2,
            "createdAt": CREATED_AT,
            "plaintextLen": if self.record_length { json!(self.plaintext.len()) } else { Value::Null },
            "fields": self.fields,
            "plaintext": hex::encode(&self.plaintext),
            "file": hex::encode(self.encrypt()),
        })
    }
}

/// A chat-like text payload: compressible, like a real message database.
fn chat_text(len: usize) -> Vec<u8> {
    let words = ["hello", "see you", "at", "8pm", "ok", "the", "photo", "is", "lovely", "\n"];
    let noise = draw("backup-format/chat", len);
    let mut out = Vec::with_capacity(len);
    for n in noise {
        out.extend_from_slice(words[usize::from(n) % words.len()].as_bytes());
        out.push(b' ');
        if out.len() >= len {
            break;
        }
    }
    out.truncate(len);
    out
}

/// Builds the vector file.
pub fn generate() -> Value {
    let chunk = 1usize << SMALL_CHUNK_LOG2;
    let mut valid = Vec::new();
    for (len, flags) in [
        (0, vec!["Empty", "ChunkBoundary"]),
        (1, vec![]),
        (chunk - 1, vec!["ChunkBoundary"]),
        (chunk, vec!["ChunkBoundary"]),
        (chunk + 1, vec!["ChunkBoundary"]),
        (2 * chunk, vec!["ChunkBoundary"]),
        (3 * chunk + 17, vec![]),
    ] {
        let inputs = Inputs::small(
            &format!("backup-format/salt/{len}"),
            draw(&format!("backup-format/plaintext/{len}"), len),
        );
        valid.push(inputs.case(&format!("{len} bytes in 64-byte chunks"), &flags));
    }
    let mut compressed = Inputs::small("backup-format/salt/zstd", chat_text(600));
    compressed.compression = Compression::Zstd;
    valid.push(compressed.case("600 bytes of chat text, zstd", &["Compressed"]));
    let mut compressed_empty = Inputs::small("backup-format/salt/zstd-empty", Vec::new());
    compressed_empty.compression = Compression::Zstd;
    valid.push(compressed_empty.case("empty payload, zstd", &["Compressed", "Empty"]));
    let mut streamed =
        Inputs::small("backup-format/salt/streamed", draw("backup-format/plaintext/streamed", 100));
    streamed.record_length = false;
    valid.push(streamed.case("plaintext length not recorded", &["UnknownLength"]));
    let mut default_chunks = Inputs::small("backup-format/salt/default", chat_text(300));
    default_chunks.chunk_size_log2 = 16;
    default_chunks.fields = BTreeMap::from([
        ("app.version".to_owned(), "2.26.11".to_owned()),
        ("device".to_owned(), "test phone".to_owned()),
    ]);
    valid.push(default_chunks.case("64 KiB chunks and two metadata fields", &["Fields"]));

    let mut groups = vec![
        json!({ "type": "BackupFileValid", "tests": valid }),
        json!({ "type": "BackupFileInvalid", "tests": invalid_cases() }),
    ];
    number(&mut groups);
    envelope(
        ALGORITHM,
        &[
            "Native backup files (spec chapter 3). A valid case decrypts to `plaintext` with the given metadata, and encrypting `plaintext` with the given key, salt and options gives `file`; for a `Compressed` case only with libzstd's streaming compressor and the source size unknown (spec section 3.5): another zstd encoder gives other, equally valid bytes.",
            "An invalid case must be rejected; `error` is the code of spec section 3.6 that a reader reports.",
        ],
        NOTES,
        groups,
    )
}

/// Damaged files, each from a valid file of four full 64-byte chunks and a short last one.
fn invalid_cases() -> Vec<Value> {
    let base =
        Inputs::small("backup-format/salt/base", draw("backup-format/plaintext/base", 4 * 64 + 10));
    let file = base.encrypt();
    let other = Inputs::small(
        "backup-format/salt/other",
        draw("backup-format/plaintext/other", 4 * 64 + 10),
    )
    .encrypt();
    let records = HEADER_LEN + metadata_len(&file);
    let record = 64 + RECORD_OVERHEAD;
    let at = |i: usize| records + i * record;
    let key = hex::encode(base.key);

    let mut cases = Vec::new();
    let mut add = |comment: &str, flag: &str, damaged: Vec<u8>, error: &str| {
        cases.push(json!({
            "comment": comment, "flags": [flag], "result": "invalid",
            "key": key, "file": hex::encode(damaged), "error": error,
        }));
    };
    let edit = |offset: usize, xor: u8| {
        let mut f = file.clone();
        f[offset] ^= xor;
        f
    };
    let swap = |i: usize, j: usize| {
        let mut f = file.clone();
        f[at(i)..at(i) + record].copy_from_slice(&file[at(j)..at(j) + record]);
        f[at(j)..at(j) + record].copy_from_slice(&file[at(i)..at(i) + record]);
        f
    };

    for (comment, len) in [
        ("empty file", 0),
        ("inside the header", 50),
        ("after the header", HEADER_LEN),
        ("inside the metadata block", HEADER_LEN + 10),
        ("at a record boundary: no last chunk", at(2)),
        ("inside a record header", at(2) + 7),
        ("inside a chunk", at(2) + 40),
        ("last byte missing", file.len() - 1),
    ] {
        add(&format!("truncated {comment}"), "Truncation", file[..len].to_vec(), "truncated");
    }
    add("chunks 1 and 2 swapped", "Reordering", swap(1, 2), "chunk-out-of-order");
    let mut repeated = file.clone();
    repeated[at(2)..at(2) + record].copy_from_slice(&file[at(1)..at(1) + record]);
    add("chunk 1 repeated at position 2", "Duplication", repeated, "chunk-out-of-order");
    let mut spliced = file.clone();
    spliced[at(3)..at(3) + record].copy_from_slice(&other[at(3)..at(3) + record]);
    add(
        "chunk 3 from another file under the same key",
        "Splicing",
        spliced.clone(),
        "chunk-from-other-file",
    );
    spliced[at(3)..at(3) + 8].copy_from_slice(&file[at(3)..at(3) + 8]);
    add("spliced chunk relabelled with this file's id", "Splicing", spliced, "chunk-modified");
    let mut longer = file.clone();
    longer.push(0);
    add("one zero byte appended", "TrailingData", longer, "trailing-data");
    let mut twice = file.clone();
    twice.extend_from_slice(&file[at(4)..]);
    add("last record appended again", "TrailingData", twice, "trailing-data");
    let mut wrong = Inputs::small("backup-format/salt/base", base.plaintext.clone());
    wrong.key = draw32("backup-format/other-key");
    add("made with another key", "WrongKey", wrong.encrypt(), "wrong-key");
    for (comment, offset, xor, error) in [
        ("magic changed", 0, 0x01, "not-a-backup"),
        ("version 2", 8, 0x03, "unsupported-version"),
        ("compression switched on", 9, 0x01, "header-modified"),
        ("compression 2 unknown", 9, 0x02, "invalid-header"),
        ("chunk size doubled", 10, 0x01, "header-modified"),
        ("reserved byte set", 11, 0x80, "invalid-header"),
        ("key id changed", 12, 0x01, "wrong-key"),
        ("salt changed", 40, 0x01, "header-modified"),
        ("metadata length changed", 63, 0x01, "header-modified"),
        ("MAC changed", 95, 0x80, "header-modified"),
    ] {
        add(comment, "ModifiedHeader", edit(offset, xor), error);
    }
    add(
        "metadata ciphertext changed",
        "ModifiedMetadata",
        edit(HEADER_LEN + 3, 0x01),
        "metadata-modified",
    );
    add("metadata tag changed", "ModifiedMetadata", edit(records - 1, 0x01), "metadata-modified");
    add("ciphertext bit flipped", "ModifiedCiphertext", edit(at(1) + 20, 0x10), "chunk-modified");
    add("tag bit flipped", "ModifiedCiphertext", edit(at(2) - 1, 0x01), "chunk-modified");
    add(
        "last-chunk flag set on a full chunk",
        "ModifiedCiphertext",
        edit(at(1) + 12, 0x80),
        "chunk-modified",
    );
    add(
        "chunk length changed",
        "ModifiedCiphertext",
        edit(at(1) + 15, 0x01),
        "invalid-chunk-length",
    );
    let mut index_hidden = swap(1, 2);
    index_hidden[at(1) + 11] ^= 0x03;
    add(
        "swapped chunk relabelled with its new index",
        "Reordering",
        index_hidden,
        "chunk-modified",
    );
    let mut early_end = file[..at(2)].to_vec();
    early_end[at(1) + 12] |= 0x80;
    add(
        "cut after chunk 1, which is relabelled as last",
        "Truncation",
        early_end,
        "chunk-modified",
    );
    // metadata_len (34 in this file) moved to and beyond its bounds (34 ..= 65552, spec 3.2):
    // out of range is refused by the header's form, before its MAC; in range, the MAC no
    // longer verifies.
    for (comment, len, error) in [
        ("metadata length 33, below the smallest", 33u32, "invalid-header"),
        ("metadata length 35 instead of 34, in range", 35, "header-modified"),
        ("metadata length 65552, the largest", 65552, "header-modified"),
        ("metadata length 65553, above the largest", 65553, "invalid-header"),
    ] {
        assert_eq!(metadata_len(&file), 34);
        let mut f = file.clone();
        f[60..64].copy_from_slice(&len.to_be_bytes());
        add(comment, "ModifiedHeader", f, error);
    }
    cases
}

fn metadata_len(file: &[u8]) -> usize {
    u32::from_be_bytes(file[60..64].try_into().expect("4 bytes")) as usize
}

/// Checks one case.
pub fn verify_case(case: &Value) -> Result<(), String> {
    let key = BackupKey::from_bytes(
        hex_field(case, "key")?.try_into().map_err(|_| "key is not 32 bytes")?,
    );
    let file = hex_field(case, "file")?;
    let outcome = decrypt_to_vec(&key, &file);
    match (case["result"].as_str(), outcome) {
        (Some("valid"), Ok((metadata, plaintext))) => {
            expect_eq("plaintext", &plaintext, &hex_field(case, "plaintext")?)?;
            expect_eq("createdAt", Some(metadata.created_at), case["createdAt"].as_u64())?;
            expect_eq("plaintextLen", metadata.plaintext_len, case["plaintextLen"].as_u64())?;
            let fields: BTreeMap<String, String> =
                serde_json::from_value(case["fields"].clone()).map_err(|e| e.to_string())?;
            expect_eq("fields", &metadata.fields, &fields)?;
            let header = read_header(&mut &file[..]).map_err(|e| e.to_string())?;
            let recorded = case["compression"].as_str().unwrap_or_default();
            expect_eq("compression", header.compression.name(), recorded)?;
            let inputs = Inputs {
                key: *key.expose_secret(),
                salt: hex_field(case, "salt")?.try_into().map_err(|_| "salt is not 32 bytes")?,
                compression: header.compression,
                chunk_size_log2: case["chunkSizeLog2"].as_u64().unwrap_or_default() as u8,
                record_length: metadata.plaintext_len.is_some(),
                fields,
                plaintext,
            };
            expect_eq("re-encrypted file", hex::encode(inputs.encrypt()), hex::encode(&file))
        }
        (Some("invalid"), Err(err)) => {
            expect_eq("error", err.code(), case["error"].as_str().unwrap_or_default())
        }
        (result, outcome) => Err(format!(
            "result {result:?} but decryption gave {:?}",
            outcome.map(|_| "a plaintext")
        )),
    }
}
