//! Vectors for the backup file format (spec chapter 3): `test-vectors/backup-format.json`.
//!
//! Valid files of several sizes around the chunk boundaries, with and without compression,
//! and invalid files made from them by each kind of damage the format must detect, with the
//! error code a reader reports.

use std::collections::BTreeMap;
use std::io::Write;

use e2ee_backup_format::chunks::RECORD_OVERHEAD;
use e2ee_backup_format::header::{HEADER_LEN, MAGIC};
use e2ee_backup_format::{
    Compression, EncryptOptions, Encryptor, Metadata, decrypt_to_vec, read_header,
};
use e2ee_backup_kdf::BackupKey;
use serde_json::{Value, json};

use crate::{draw, draw32, envelope, expect_eq, hex_field, number};

mod hand_built;

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
    (
        "HandBuilt",
        "The file was built byte by byte from the spec, with a metadata encoding or a payload the reference writer does not make (several zstd frames, skippable frames, a Dictionary_ID field, a content checksum, hand-made raw blocks); a reader checks decryption only.",
    ),
    ("ManyChunks", "More than 256 chunks: record indexes use more than one byte."),
    ("LargestChunks", "chunk_size_log2 22, the largest chunk size (4 MiB)."),
    (
        "NameOrder",
        "Field names ordered by their UTF-8 bytes (spec 3.3), which differs from UTF-16 order for a name above U+FFFF beside one in U+E000 to U+FFFF.",
    ),
    (
        "InvalidMetadata",
        "The metadata block opens but its encoding breaks a decoding rule of spec 3.3.",
    ),
    ("LengthMismatch", "The recorded plaintext length differs from the plaintext's."),
    (
        "Decompression",
        "The zstd payload is not a valid sequence of frames for this format (spec 3.5).",
    ),
    ("ShortFile", "A file shorter than the 96-byte header."),
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

    // The groups added later come after the first two, so that earlier tcIds stay.
    let (more_valid, more_invalid) = more_cases();
    let mut groups = vec![
        json!({ "type": "BackupFileValid", "tests": valid }),
        json!({ "type": "BackupFileInvalid", "tests": invalid_cases() }),
        json!({ "type": "BackupFileValid", "tests": more_valid }),
        json!({ "type": "BackupFileInvalid", "tests": more_invalid }),
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

/// The rules the first groups left without a vector (spec README, coverage): boundaries of
/// the chunk layout, the metadata decoding rules, length-mismatch and the zstd payload rules.
fn more_cases() -> (Vec<Value>, Vec<Value>) {
    let mut valid = Vec::new();
    let mut many = Inputs::small(
        "backup-format/salt/many",
        draw("backup-format/plaintext/many", 300 * 64 + 5),
    );
    many.compression = Compression::None;
    valid.push(many.case("301 chunks of 64 bytes: indexes above 255", &["ManyChunks"]));
    let mut largest = Inputs::small("backup-format/salt/largest", chat_text(100));
    largest.chunk_size_log2 = 22;
    valid.push(largest.case("chunk_size_log2 22: one chunk of 100 bytes", &["LargestChunks"]));
    let mut order = Inputs::small("backup-format/salt/order", chat_text(50));
    order.fields = BTreeMap::from([
        ("\u{FF61}".to_owned(), "halfwidth ideographic full stop, EF BD A1".to_owned()),
        ("\u{1F600}".to_owned(), "grinning face, F0 9F 98 80".to_owned()),
    ]);
    valid.push(order.case("U+FF61 written before U+1F600 (UTF-8 order)", &["Fields", "NameOrder"]));

    // The second writer, written from the spec, must give the reference's bytes first.
    let key = BackupKey::from_bytes(draw32("backup-format/key"));
    let base =
        Inputs::small("backup-format/salt/base", draw("backup-format/plaintext/base", 4 * 64 + 10));
    let fields: Vec<(&[u8], &[u8])> = Vec::new();
    let m = hand_built::metadata(CREATED_AT, Some(base.plaintext.len() as u64), 0, &fields);
    let build = |salt: [u8; 32], compression: u8, m: &[u8], payload: &[u8]| {
        hand_built::build(&hand_built::Parts {
            key: &key,
            salt,
            compression,
            chunk_size_log2: SMALL_CHUNK_LOG2,
            metadata: m,
            payload,
        })
    };
    assert_eq!(build(base.salt, 0, &m, &base.plaintext), base.encrypt(), "the second writer");

    let key_hex = hex::encode(base.key);
    let mut hand_valid = |comment: &str,
                          label: &str,
                          m_fields: &[(&[u8], &[u8])],
                          plaintext: &[u8],
                          payload: &[u8]| {
        let salt = draw32(&format!("backup-format/salt/{label}"));
        let m = hand_built::metadata(
            CREATED_AT,
            Some(plaintext.len() as u64),
            m_fields.len() as u16,
            m_fields,
        );
        let fields: BTreeMap<String, String> = m_fields
            .iter()
            .map(|(n, v)| {
                (
                    String::from_utf8(n.to_vec()).expect("UTF-8"),
                    String::from_utf8(v.to_vec()).expect("UTF-8"),
                )
            })
            .collect();
        valid.push(json!({
            "comment": comment, "flags": ["HandBuilt", "Compressed"], "result": "valid",
            "key": key_hex, "salt": hex::encode(salt), "compression": "zstd",
            "chunkSizeLog2": SMALL_CHUNK_LOG2, "createdAt": CREATED_AT,
            "plaintextLen": plaintext.len(), "fields": fields,
            "plaintext": hex::encode(plaintext), "file": hex::encode(build(salt, 1, &m, payload)),
        }));
    };
    let (hello, world) = (b"hello, ".as_slice(), b"world".as_slice());
    let window = |content: &[u8]| {
        hand_built::frame(content, hand_built::FrameHeader { window_log: 17, ..Default::default() })
    };
    let two = [window(hello), window(world)].concat();
    hand_valid("two zstd frames", "two-frames", &[], b"hello, world", &two);
    let skipped =
        [hand_built::skippable(b"ignored"), window(hello), hand_built::skippable(b"")].concat();
    hand_valid("skippable frames around a zstd frame", "skippable", &[], hello, &skipped);
    let only = [hand_built::skippable(b"nothing"), hand_built::skippable(b"at all")].concat();
    hand_valid("only skippable frames: an empty plaintext", "only-skippable", &[], b"", &only);
    let no_dictionary =
        hand_built::FrameHeader { window_log: 17, dictionary_id: Some(0), checksum: None };
    hand_valid(
        "a Dictionary_ID field of 0 (no dictionary)",
        "dictionary-0",
        &[],
        hello,
        &hand_built::frame(hello, no_dictionary),
    );
    let checked = hand_built::FrameHeader {
        window_log: 17,
        dictionary_id: None,
        checksum: Some(xxh64_low(hello)),
    };
    hand_valid(
        "a content checksum that matches",
        "checksum",
        &[],
        hello,
        &hand_built::frame(hello, checked),
    );
    hand_valid(
        "metadata written by hand, with two fields in order",
        "by-hand",
        &[(b"a", b"1"), (b"b", b"")],
        hello,
        &window(hello),
    );

    let mut invalid = Vec::new();
    let mut add = |comment: &str, flag: &str, file: Vec<u8>, error: &str| {
        invalid.push(json!({
            "comment": comment, "flags": [flag], "result": "invalid",
            "key": key_hex, "file": hex::encode(file), "error": error,
        }));
    };
    let file = base.encrypt();
    for (value, comment) in [
        (5u8, "chunk_size_log2 5, below the smallest"),
        (23, "chunk_size_log2 23, above the largest"),
    ] {
        let mut f = file.clone();
        f[10] = value;
        add(comment, "ModifiedHeader", f, "invalid-header");
    }
    add(
        "16 bytes that begin a SQLite database",
        "ShortFile",
        b"SQLite format 3\0".to_vec(),
        "not-a-backup",
    );
    add("the first 5 bytes of the magic only", "ShortFile", MAGIC[..5].to_vec(), "truncated");
    // The last record (chunk 4, 10 bytes) with its length raised and lowered by one.
    let last = HEADER_LEN + metadata_len(&file) + 4 * (64 + RECORD_OVERHEAD);
    for (delta, comment, error) in
        [(1i32, "raised", "truncated"), (-1, "lowered", "chunk-modified")]
    {
        let mut f = file.clone();
        let length = u32::from_be_bytes(f[last + 12..last + 16].try_into().expect("4 bytes"));
        assert_eq!(length, (1 << 31) | 10);
        f[last + 12..last + 16].copy_from_slice(&length.wrapping_add_signed(delta).to_be_bytes());
        add(&format!("the last record's length {comment} by one"), "ModifiedCiphertext", f, error);
    }

    // Metadata that opens but does not decode (3.3, each rule of "Decoding").
    let salt = draw32("backup-format/salt/metadata");
    let with_m = |m: Vec<u8>| build(salt, 0, &m, &base.plaintext);
    let n = Some(base.plaintext.len() as u64);
    for (comment, count, fields) in [
        ("field_count 257", 257u16, vec![(b"a".as_slice(), b"1".as_slice())]),
        (
            "a field_count of 3 with 2 fields written: M ends before name_len",
            3,
            vec![(b"a", b"1"), (b"b", b"2")],
        ),
        ("an empty name", 1, vec![(b"", b"1")]),
        ("a name that is not UTF-8", 1, vec![(b"\xFFa", b"1")]),
        ("a value that is not UTF-8", 1, vec![(b"a", b"\xC3")]),
        ("names out of order", 2, vec![(b"b", b"1"), (b"a", b"2")]),
        ("a name repeated", 2, vec![(b"a", b"1"), (b"a", b"2")]),
        (
            "a field_count of 1 with 2 fields written: bytes after the last field",
            1,
            vec![(b"a", b"1"), (b"b", b"2")],
        ),
    ] {
        add(
            &format!("metadata: {comment}"),
            "InvalidMetadata",
            with_m(hand_built::metadata(CREATED_AT, n, count, &fields)),
            "invalid-metadata",
        );
    }
    let mut cut = hand_built::metadata(CREATED_AT, n, 1, &[(b"abc", b"1")]);
    cut.truncate(20); // name_len 3, then one byte of the name
    add("metadata: M ends inside a name", "InvalidMetadata", with_m(cut), "invalid-metadata");
    let mut short = hand_built::metadata(CREATED_AT, n, 0, &[]);
    short.truncate(17);
    add(
        "metadata: 17 bytes, so metadata_len 33: the header refuses it before the block opens",
        "InvalidMetadata",
        with_m(short),
        "invalid-header",
    );

    // A recorded length the plaintext does not have (3.6 step 5).
    for (len, comment) in [
        (base.plaintext.len() as u64 + 1, "one more"),
        (base.plaintext.len() as u64 - 1, "one less"),
    ] {
        let m = hand_built::metadata(CREATED_AT, Some(len), 0, &[]);
        add(
            &format!("recorded plaintext length {comment} than the plaintext"),
            "LengthMismatch",
            build(salt, 0, &m, &base.plaintext),
            "length-mismatch",
        );
    }

    // zstd payloads a reader refuses (3.5; 3.6 step 5).
    let zstd_file = |payload: &[u8], len: u64| {
        build(salt, 1, &hand_built::metadata(CREATED_AT, Some(len), 0, &[]), payload)
    };
    let good = window(hello);
    let five = hello.len() as u64;
    let big_window = hand_built::FrameHeader { window_log: 24, ..Default::default() };
    let dictionary =
        hand_built::FrameHeader { window_log: 17, dictionary_id: Some(7), checksum: None };
    let bad_checksum = hand_built::FrameHeader {
        window_log: 17,
        dictionary_id: None,
        checksum: Some(xxh64_low(hello) ^ 1),
    };
    for (comment, payload, len) in [
        ("an empty payload: no frame", Vec::new(), 0),
        ("bytes that are no frame", b"not a zstd frame".to_vec(), 16),
        ("a frame cut before its end", good[..good.len() - 2].to_vec(), five),
        (
            "a frame followed by a cut frame header",
            [good.clone(), good[..6].to_vec()].concat(),
            five,
        ),
        ("a window of 2^24 bytes", hand_built::frame(hello, big_window), five),
        ("a Dictionary_ID of 7", hand_built::frame(hello, dictionary), five),
        ("a content checksum that does not match", hand_built::frame(hello, bad_checksum), five),
    ] {
        add(
            &format!("zstd: {comment}"),
            "Decompression",
            zstd_file(&payload, len),
            "decompression",
        );
    }
    (valid, invalid)
}

/// The low 32 bits of the XXH64 of `content`: the content checksum libzstd writes.
fn xxh64_low(content: &[u8]) -> u32 {
    let mut encoder = zstd::stream::Encoder::new(Vec::new(), 3).expect("a zstd encoder");
    encoder.include_checksum(true).expect("the checksum flag");
    encoder.write_all(content).expect("writing to memory");
    let frame = encoder.finish().expect("writing to memory");
    u32::from_le_bytes(frame[frame.len() - 4..].try_into().expect("4 bytes"))
}

fn metadata_len(file: &[u8]) -> usize {
    u32::from_be_bytes(file[60..64].try_into().expect("4 bytes")) as usize
}

fn flagged(case: &Value, flag: &str) -> bool {
    case["flags"].as_array().is_some_and(|flags| flags.iter().any(|f| f == flag))
}

/// Checks one case.
pub fn verify_case(case: &Value) -> Result<(), String> {
    let key = BackupKey::from_bytes(
        hex_field(case, "key")?.try_into().map_err(|_| "key is not 32 bytes")?,
    );
    let file = hex_field(case, "file")?;
    let outcome = decrypt_to_vec(&key, &file);
    match (case["result"].as_str(), outcome) {
        (Some("valid"), Ok((metadata, plaintext))) if flagged(case, "HandBuilt") => {
            expect_eq("plaintext", &plaintext, &hex_field(case, "plaintext")?)?;
            expect_eq("plaintextLen", metadata.plaintext_len, case["plaintextLen"].as_u64())
        }
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
