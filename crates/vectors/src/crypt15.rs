//! Vectors for WhatsApp's `.crypt15` files (spec chapter 6): `test-vectors/crypt15.json`.
//!
//! Valid single-file backups (zlib at several levels, both framings of the prefix length,
//! with and without the phone-digit suffix, a full feature table), multi-file backups holding
//! a small stored ZIP written here by hand, key files, and files damaged in each way the
//! crate tells apart, with the error code a reader reports.
//!
//! One file, though over 700 lines: the cases are built from one base file by the same small
//! editors (prefix, protobuf field, trailer), which the verifier does not need. The header-rule
//! cases, added later in groups of their own, are in `rules`.

use std::io::Cursor;

use e2ee_backup_crypt15::header::{BackupInfo, BackupPrefix, FileHeader, Framing};
use e2ee_backup_crypt15::keyfile::{self, KEY_FILE_HEADER};
use e2ee_backup_crypt15::{
    Content, Decryptor, Error, IV_LEN, KeyFileError, MD5_LEN, TAG_LEN, Variant, decrypt_to_vec,
    encrypt_compressed, encrypt_to_vec,
};
use e2ee_backup_kdf::BackupKey;
use serde_json::{Value, json};

use crate::{draw, draw32, envelope, expect_eq, hex_field, number};

mod rules;

/// The `algorithm` of the file.
pub const ALGORITHM: &str = "WhatsApp crypt15 (compatibility)";

const NOTES: &[(&str, &str)] = &[
    (
        "SingleFile",
        "A database backup: zlib-compressed plaintext, GCM tag, then the MD5 of all preceding bytes.",
    ),
    (
        "MultiFile",
        "A multi-file backup: the plaintext is a ZIP (here a stored ZIP written by the generator) and the GCM tag ends the file; there is no MD5.",
    ),
    (
        "FlagByte",
        "The prefix length is one byte followed by the 0x01 flag byte, as wa-crypt-tools writes it.",
    ),
    (
        "LongPrefix",
        "The BackupPrefix is 128 bytes or longer, so its length takes two varint bytes (for 128 to 255 bytes these are also the length byte and 0x01 of wa-crypt-tools).",
    ),
    ("PhoneSuffix", "The prefix records the last two digits of the phone number, in clear."),
    (
        "FeatureTable",
        "The prefix carries a backup version and a table of feature booleans, false ones written too (explicit presence).",
    ),
    (
        "ZlibLevel",
        "The database is compressed at a zlib level other than 1 (the level of wa-crypt-tools' waencrypt).",
    ),
    ("Empty", "An empty database."),
    (
        "UnauthenticatedHeader",
        "A header field of a multi-file backup was changed after encryption; nothing covers it, so the file is still accepted.",
    ),
    (
        "KeyFile",
        "An encrypted_backup.key file: the 27-byte Java serialisation header of a byte[32], then K.",
    ),
    ("WrongKey", "The file is opened with a key other than its own."),
    ("ModifiedCiphertext", "A byte of the ciphertext or of the GCM tag was changed."),
    ("ModifiedChecksum", "A byte of the MD5 trailer was changed."),
    (
        "ModifiedHeader",
        "A byte of the prefix length, the flag byte or the BackupPrefix was changed.",
    ),
    (
        "Truncation",
        "The file was cut short, or made longer (the cases that append bytes carry this flag too): crypt15 records no length, so a cut inside the body reads as corrupt and only a cut inside the header, below tag and MD5, or exactly at the MD5 is reported as truncated.",
    ),
    ("BadCompression", "The plaintext authenticates but is not a single complete zlib stream."),
    (
        "UnknownFields",
        "The BackupPrefix, c15_iv or info holds fields the reader does not know, which it skips (spec 6.4.2 rule 6).",
    ),
    (
        "NonMinimalVarint",
        "A varint of the header takes more bytes than its value needs, or all ten bytes; readers accept it (spec 6.4.1 step 1, 6.4.2 rule 2).",
    ),
    (
        "ReaderOnly",
        "The lead is of no framing a writer may write (`framing` is null): a reader MUST accept the file; no writer is asked to produce it.",
    ),
    (
        "PrefixLength",
        "The lead: its number of bytes (at most 3) or the prefix length it gives (at most 65536), spec 6.4.1.",
    ),
    (
        "WireType",
        "A field of wire type 3, 4, 6 or 7, or a known field of another wire type than its own (spec 6.4.2 rules 3 and 5).",
    ),
    ("FieldNumber", "A field number at or beyond the bounds 1 and 2^29 - 1 (spec 6.4.2 rule 3)."),
    ("RepeatedField", "A known field appears twice, with equal values (spec 6.4.2 rule 5)."),
    (
        "OverlongVarint",
        "A varint of more than ten bytes, or whose tenth byte is above 01 (spec 6.4.2 rule 2).",
    ),
    (
        "Overrun",
        "A varint, fixed64, fixed32 or length-delimited value runs past the end of its message, the BackupPrefix or a nested one (spec 6.4.2 rules 1, 2 and 4).",
    ),
    ("InvalidUtf8", "A string field of info is not UTF-8 (spec 6.4.2 rule 7)."),
    ("MissingField", "c15_iv or its field 1 is missing (spec 6.4.2 rule 8)."),
    (
        "PresetDictionary",
        "The zlib header sets FDICT, asking for a preset dictionary that crypt15 never names (spec 6.6, requirement 3).",
    ),
];

const APP_VERSION: &str = "2.24.11.79";

/// What a valid case is made from.
struct Inputs {
    key: [u8; 32],
    /// The protobuf bytes of the BackupPrefix.
    prefix: Vec<u8>,
    framing: Framing,
    /// zlib level of a single-file backup; `None` for a multi-file one.
    level: Option<u32>,
    plaintext: Vec<u8>,
}

impl Inputs {
    fn header(&self) -> FileHeader {
        FileHeader::from_prefix_bytes(&self.prefix, self.framing).expect("vector prefixes parse")
    }

    fn content(&self) -> Content {
        match self.level {
            Some(level) => Content::Database { level },
            None => Content::MultiFileZip,
        }
    }

    fn encrypt(&self) -> Vec<u8> {
        let key = BackupKey::from_bytes(self.key);
        encrypt_to_vec(&key, &self.header(), self.content(), &self.plaintext)
            .expect("vector inputs encrypt")
    }

    fn case(&self, comment: &str, flags: &[&str]) -> Value {
        let file = self.encrypt();
        let key = BackupKey::from_bytes(self.key);
        let prefix = BackupPrefix::parse(&self.prefix).expect("vector prefixes parse");
        let info = prefix.info.clone().unwrap_or_default();
        let compressed = self.level.map(|_| hex::encode(raw_plaintext(&key, &file)));
        json!({
            "comment": comment, "flags": flags, "result": "valid",
            "key": hex::encode(self.key),
            "variant": if self.level.is_some() { "single-file" } else { "multi-file" },
            "framing": framing_name(self.framing),
            "iv": hex::encode(prefix.iv),
            "appVersion": info.app_version,
            "jidSuffix": info.jid_suffix,
            "prefix": hex::encode(&self.prefix),
            "zlibLevel": self.level,
            "plaintext": hex::encode(&self.plaintext),
            "compressed": compressed,
            "file": hex::encode(file),
        })
    }
}

fn framing_name(framing: Framing) -> &'static str {
    match framing {
        Framing::Varint => "varint",
        Framing::LengthByteAndFlag => "length-byte-and-flag",
    }
}

/// The GCM plaintext of a valid file: a single-file backup's zlib stream, or the ZIP.
fn raw_plaintext(key: &BackupKey, file: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    Decryptor::new(key, Cursor::new(file))
        .and_then(|d| d.decrypt_raw_to(&mut out))
        .expect("a valid file");
    out
}

fn iv(label: &str) -> [u8; IV_LEN] {
    draw(label, IV_LEN).try_into().expect("16 bytes")
}

/// A BackupPrefix: key type 1, the IV, and `info` when any of its parts is given.
fn prefix(iv_label: &str, app_version: Option<&str>, jid_suffix: Option<&str>) -> Vec<u8> {
    let mut prefix = BackupPrefix::minimal(iv(iv_label));
    if app_version.is_some() || jid_suffix.is_some() {
        prefix.info = Some(BackupInfo {
            app_version: app_version.map(str::to_owned),
            jid_suffix: jid_suffix.map(str::to_owned),
            ..BackupInfo::default()
        });
    }
    prefix.encode()
}

/// A prefix like a msgstore backup's: app version, suffix, backup version 1 and every
/// feature field 5 to 39 present, most true, some false.
fn full_prefix(iv_label: &str) -> Vec<u8> {
    let mut info = BackupInfo {
        app_version: Some(APP_VERSION.to_owned()),
        jid_suffix: Some("42".to_owned()),
        backup_version: Some(1),
        ..BackupInfo::default()
    };
    for field in 5..=39 {
        info.features.set(field, Some(field % 7 != 0)).expect("fields 5 to 39");
    }
    let mut prefix = BackupPrefix::minimal(iv(iv_label));
    prefix.info = Some(info);
    prefix.encode()
}

/// `len` bytes of chat-like text: compressible, as a message database is.
fn chat_text(label: &str, len: usize) -> Vec<u8> {
    let words = ["hello", "see you", "at", "8pm", "ok", "the", "photo", "is", "lovely", "\n"];
    let mut out = Vec::with_capacity(len + 8);
    for n in draw(label, len) {
        if out.len() >= len {
            break;
        }
        out.extend_from_slice(words[usize::from(n) % words.len()].as_bytes());
        out.push(b' ');
    }
    out.truncate(len);
    out
}

/// CRC-32 (ISO-HDLC, as ZIP uses it), bit by bit.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// A ZIP archive that stores (method 0) each file as it is, with a fixed date, written by
/// hand so that the vectors do not depend on a ZIP library. It starts with `PK`.
pub fn stored_zip(files: &[(&str, &[u8])]) -> Vec<u8> {
    const DOS_TIME: u16 = 0;
    const DOS_DATE: u16 = (2025 - 1980) << 9 | 1 << 5 | 1;
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in files {
        let offset = out.len() as u32;
        let (crc, size) = (crc32(data), data.len() as u32);
        let common = |v: &mut Vec<u8>| {
            v.extend_from_slice(&20u16.to_le_bytes()); // version needed
            v.extend_from_slice(&0u16.to_le_bytes()); // flags
            v.extend_from_slice(&0u16.to_le_bytes()); // method: stored
            v.extend_from_slice(&DOS_TIME.to_le_bytes());
            v.extend_from_slice(&DOS_DATE.to_le_bytes());
            v.extend_from_slice(&crc.to_le_bytes());
            v.extend_from_slice(&size.to_le_bytes()); // compressed size
            v.extend_from_slice(&size.to_le_bytes()); // size
            v.extend_from_slice(&(name.len() as u16).to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes()); // extra length
        };
        out.extend_from_slice(b"PK\x03\x04");
        common(&mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(b"PK\x01\x02");
        central.extend_from_slice(&20u16.to_le_bytes()); // version made by
        common(&mut central);
        central.extend_from_slice(&[0; 8]); // comment length, disk, internal attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let (cd_offset, cd_len, count) = (out.len() as u32, central.len() as u32, files.len() as u16);
    out.extend_from_slice(&central);
    out.extend_from_slice(b"PK\x05\x06");
    out.extend_from_slice(&[0; 4]); // disk numbers
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&cd_len.to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // comment length
    out
}

fn valid_cases() -> Vec<Value> {
    let key = draw32("crypt15/key");
    let single = |pre: Vec<u8>, framing, level, plaintext| Inputs {
        key,
        prefix: pre,
        framing,
        level: Some(level),
        plaintext,
    };
    let mut valid = Vec::new();
    for (len, framing, flags) in [
        (0, Framing::Varint, vec!["SingleFile", "Empty"]),
        (1, Framing::LengthByteAndFlag, vec!["SingleFile", "FlagByte"]),
        (200, Framing::Varint, vec!["SingleFile"]),
        (3000, Framing::LengthByteAndFlag, vec!["SingleFile", "FlagByte"]),
    ] {
        let label = format!("crypt15/iv/{len}");
        let inputs = single(
            prefix(&label, None, None),
            framing,
            1,
            chat_text(&format!("crypt15/chat/{len}"), len),
        );
        valid.push(
            inputs.case(&format!("{len} bytes of chat text, zlib level 1, minimal prefix"), &flags),
        );
    }
    for (framing, mut flags) in
        [(Framing::Varint, vec![]), (Framing::LengthByteAndFlag, vec!["FlagByte"])]
    {
        let label = format!("crypt15/iv/suffix/{}", framing_name(framing));
        let inputs = single(
            prefix(&label, Some(APP_VERSION), Some("07")),
            framing,
            1,
            chat_text("crypt15/chat/suffix", 500),
        );
        flags.extend(["SingleFile", "PhoneSuffix"]);
        valid.push(inputs.case(
            &format!("app version and phone suffix 07, {} framing", framing_name(framing)),
            &flags,
        ));
    }
    for level in [0, 6, 9] {
        let label = format!("crypt15/iv/level/{level}");
        let inputs = single(
            prefix(&label, Some(APP_VERSION), None),
            Framing::Varint,
            level,
            chat_text("crypt15/chat/levels", 1000),
        );
        valid.push(inputs.case(
            &format!("1000 bytes of chat text, zlib level {level}"),
            &["SingleFile", "ZlibLevel"],
        ));
    }
    let full = single(
        full_prefix("crypt15/iv/features"),
        Framing::LengthByteAndFlag,
        1,
        chat_text("crypt15/chat/features", 300),
    );
    assert!((128..=255).contains(&full.prefix.len()));
    valid.push(full.case(
        "msgstore-like prefix with a feature table, written as wa-crypt-tools does",
        &["SingleFile", "LongPrefix", "FeatureTable", "PhoneSuffix", "FlagByte"],
    ));
    let long_version = "2.24.11.79-".repeat(30);
    let long = single(
        prefix("crypt15/iv/long", Some(&long_version), None),
        Framing::Varint,
        1,
        chat_text("crypt15/chat/long", 100),
    );
    assert!(long.prefix.len() > 255);
    valid.push(long.case(
        "a prefix longer than 255 bytes: varint framing only",
        &["SingleFile", "LongPrefix"],
    ));

    for (name, zip, framing, suffix) in [
        ("empty ZIP", stored_zip(&[]), Framing::Varint, None),
        (
            "ZIP of one sticker",
            stored_zip(&[("sticker.webp", &draw("crypt15/zip/sticker", 40))]),
            Framing::LengthByteAndFlag,
            Some("07"),
        ),
        (
            "ZIP of two files",
            stored_zip(&[
                ("wallpaper.jpg", &draw("crypt15/zip/wallpaper", 120)),
                ("notes.txt", b"multi-file backup\n"),
            ]),
            Framing::Varint,
            None,
        ),
    ] {
        let label = format!("crypt15/iv/multi/{name}");
        let inputs = Inputs {
            key,
            prefix: prefix(&label, suffix.map(|_| APP_VERSION), suffix),
            framing,
            level: None,
            plaintext: zip,
        };
        let mut flags = vec!["MultiFile"];
        if framing == Framing::LengthByteAndFlag {
            flags.push("FlagByte");
        }
        if suffix.is_some() {
            flags.push("PhoneSuffix");
        }
        valid.push(inputs.case(&format!("multi-file backup: {name}"), &flags));
    }
    // A multi-file backup whose phone suffix was rewritten after encryption: still accepted.
    let label = "crypt15/iv/multi/edited";
    let mut edited = Inputs {
        key,
        prefix: prefix(label, Some(APP_VERSION), Some("07")),
        framing: Framing::Varint,
        level: None,
        plaintext: stored_zip(&[("a.txt", b"a")]),
    };
    let original = edited.encrypt();
    edited.prefix = prefix(label, Some(APP_VERSION), Some("99"));
    let changed = edited.encrypt();
    assert_eq!(original.len(), changed.len());
    assert_eq!(
        original.iter().zip(&changed).filter(|(a, b)| a != b).count(),
        2,
        "only the two digits differ"
    );
    valid.push(edited.case(
        "multi-file backup whose phone suffix 07 was edited to 99 after encryption: accepted",
        &["MultiFile", "PhoneSuffix", "UnauthenticatedHeader"],
    ));
    valid
}

fn key_file_cases() -> Vec<Value> {
    let mut cases = Vec::new();
    for (comment, key) in [
        ("key 00 01 .. 1f", core::array::from_fn(|i| i as u8)),
        ("drawn key", draw32("crypt15/keyfile/key")),
        ("all-zero key", [0u8; 32]),
    ] {
        cases.push(json!({
            "comment": comment, "flags": ["KeyFile"], "result": "valid",
            "key": hex::encode(key),
            "keyFile": hex::encode(*keyfile::encode(&BackupKey::from_bytes(key))),
        }));
    }
    let good = keyfile::encode(&BackupKey::from_bytes(draw32("crypt15/keyfile/key"))).to_vec();
    let mut invalid = |comment: &str, bytes: Vec<u8>| {
        let error = key_file_error(&bytes).expect("an invalid key file");
        let mut case = json!({
            "comment": comment, "flags": ["KeyFile"], "result": "invalid",
            "keyFile": hex::encode(&bytes),
        });
        merge(&mut case, error);
        cases.push(case);
    };
    invalid("empty file", Vec::new());
    invalid("header only", KEY_FILE_HEADER.to_vec());
    invalid("last key byte missing", good[..good.len() - 1].to_vec());
    let mut longer = good.clone();
    longer.push(0x0a);
    invalid("a line feed appended", longer);
    invalid("the 64 hex digits of K as text", hex::encode(&good[27..]).into_bytes());
    for (offset, what) in [
        (0, "stream magic"),
        (3, "stream version"),
        (9, "class name"),
        (26, "array length (32 to 33)"),
    ] {
        let mut bytes = good.clone();
        bytes[offset] ^= 0x01;
        invalid(&format!("{what} changed"), bytes);
    }
    cases
}

/// The error a key file gives, as vector fields, or `None` if it parses.
fn key_file_error(bytes: &[u8]) -> Option<Value> {
    match keyfile::parse(bytes) {
        Ok(_) => None,
        Err(KeyFileError::WrongLength { found, .. }) => {
            Some(json!({ "error": "wrong-length", "found": found }))
        }
        Err(KeyFileError::WrongHeader { offset, .. }) => {
            Some(json!({ "error": "wrong-header", "offset": offset }))
        }
        Err(other) => Some(json!({ "error": format!("{other:?}") })),
    }
}

fn merge(case: &mut Value, fields: Value) {
    if let (Some(case), Value::Object(fields)) = (case.as_object_mut(), fields) {
        case.extend(fields);
    }
}

fn invalid_cases() -> Vec<Value> {
    let key = draw32("crypt15/key");
    let base = Inputs {
        key,
        prefix: prefix("crypt15/iv/base", Some(APP_VERSION), Some("07")),
        framing: Framing::LengthByteAndFlag,
        level: Some(1),
        plaintext: chat_text("crypt15/chat/base", 400),
    };
    let file = base.encrypt();
    let header_len = base.header().len();
    let md5_at = file.len() - MD5_LEN;
    let tag_at = md5_at - TAG_LEN;
    let multi = Inputs {
        key,
        prefix: prefix("crypt15/iv/multi-base", None, None),
        framing: Framing::Varint,
        level: None,
        plaintext: stored_zip(&[("sticker.webp", &draw("crypt15/zip/base", 64))]),
    };
    let multi_file = multi.encrypt();
    let multi_header_len = multi.header().len();
    let other_key = draw32("crypt15/other-key");
    let hex_key = hex::encode(key);

    let mut cases = Vec::new();
    let mut add = |comment: &str, flag: &str, case_key: &str, damaged: Vec<u8>, error: &str| {
        let found = decrypt_to_vec(&key_of(case_key), &damaged)
            .map(|_| "no error")
            .unwrap_or_else(|e| e.code());
        assert_eq!(found, error, "generator expectation for {comment:?}");
        cases.push(json!({
            "comment": comment, "flags": [flag], "result": "invalid",
            "key": case_key, "file": hex::encode(damaged), "error": error,
        }));
    };
    let edit = |f: &[u8], offset: usize, xor: u8| {
        let mut f = f.to_vec();
        f[offset] ^= xor;
        f
    };

    let mut wrong = Inputs { key: other_key, ..base };
    wrong.prefix = prefix("crypt15/iv/base", Some(APP_VERSION), Some("07"));
    add(
        "single-file backup made with another key",
        "WrongKey",
        &hex_key,
        wrong.encrypt(),
        "wrong-key",
    );
    add(
        "single-file backup opened with another key",
        "WrongKey",
        &hex::encode(other_key),
        file.clone(),
        "wrong-key",
    );
    add(
        "multi-file backup opened with another key: no MD5, so indistinguishable from corruption",
        "WrongKey",
        &hex::encode(other_key),
        multi_file.clone(),
        "corrupt",
    );

    add(
        "first ciphertext byte changed",
        "ModifiedCiphertext",
        &hex_key,
        edit(&file, header_len, 0x01),
        "corrupt",
    );
    add(
        "last ciphertext byte changed",
        "ModifiedCiphertext",
        &hex_key,
        edit(&file, tag_at - 1, 0x80),
        "corrupt",
    );
    add(
        "tag byte changed",
        "ModifiedCiphertext",
        &hex_key,
        edit(&file, tag_at + 3, 0x01),
        "corrupt",
    );
    add(
        "multi-file ciphertext byte changed",
        "ModifiedCiphertext",
        &hex_key,
        edit(&multi_file, multi_header_len + 5, 0x01),
        "corrupt",
    );
    add(
        "multi-file tag byte changed",
        "ModifiedCiphertext",
        &hex_key,
        edit(&multi_file, multi_file.len() - 1, 0x01),
        "corrupt",
    );

    add(
        "first MD5 byte changed",
        "ModifiedChecksum",
        &hex_key,
        edit(&file, md5_at, 0x01),
        "checksum-mismatch",
    );
    add(
        "last MD5 byte changed",
        "ModifiedChecksum",
        &hex_key,
        edit(&file, file.len() - 1, 0x80),
        "checksum-mismatch",
    );

    let find = |needle: &[u8]| {
        file.windows(needle.len()).position(|w| w == needle).expect("present in the header")
    };
    let suffix_at = find(b"07");
    let version_at = find(APP_VERSION.as_bytes());
    let iv_at = find(&iv("crypt15/iv/base"));
    assert_eq!((file[0] as usize, file[1]), (header_len - 2, 0x01));
    add(
        "phone suffix 07 changed to 06: only the MD5 notices",
        "ModifiedHeader",
        &hex_key,
        edit(&file, suffix_at + 1, 0x01),
        "checksum-mismatch",
    );
    add(
        "app version digit changed",
        "ModifiedHeader",
        &hex_key,
        edit(&file, version_at, 0x01),
        "checksum-mismatch",
    );
    add(
        "key type 1 changed to 0",
        "ModifiedHeader",
        &hex_key,
        edit(&file, 3, 0x01),
        "checksum-mismatch",
    );
    add(
        "IV byte changed: the tag no longer verifies",
        "ModifiedHeader",
        &hex_key,
        edit(&file, iv_at, 0x01),
        "corrupt",
    );
    add(
        "flag byte 0x01 changed to 0x00: it is read as the first protobuf byte",
        "ModifiedHeader",
        &hex_key,
        edit(&file, 1, 0x01),
        "malformed-header",
    );
    add(
        "prefix length one less",
        "ModifiedHeader",
        &hex_key,
        edit(&file, 0, 0x01),
        "malformed-header",
    );
    add(
        "prefix length with its continuation bit set",
        "ModifiedHeader",
        &hex_key,
        edit(&file, 0, 0x80),
        "malformed-header",
    );
    add(
        "IV field length 16 changed to 17",
        "ModifiedHeader",
        &hex_key,
        edit(&file, iv_at - 1, 0x01),
        "malformed-header",
    );
    add(
        "IV field number 3 changed to 2 (crypt14 key data)",
        "ModifiedHeader",
        &hex_key,
        edit(&file, iv_at - 4, 0x18 ^ 0x10),
        "malformed-header",
    );

    for (comment, len, error) in [
        ("empty file", 0, "truncated"),
        ("only the prefix length", 1, "truncated"),
        ("inside the BackupPrefix", header_len - 3, "truncated"),
        ("right after the header", header_len, "truncated"),
        ("31 bytes after the header: shorter than tag and MD5", header_len + 31, "truncated"),
        ("inside the ciphertext", header_len + 40, "corrupt"),
        ("inside the tag", tag_at + 8, "corrupt"),
        (
            "MD5 trailer cut off: authentic, but a zlib stream, so not a multi-file backup",
            md5_at,
            "truncated",
        ),
        ("last MD5 byte missing", file.len() - 1, "corrupt"),
    ] {
        add(&format!("truncated: {comment}"), "Truncation", &hex_key, file[..len].to_vec(), error);
    }
    add(
        "multi-file backup without its last byte",
        "Truncation",
        &hex_key,
        multi_file[..multi_file.len() - 1].to_vec(),
        "corrupt",
    );
    let mut longer = file.clone();
    longer.push(0);
    add("one zero byte appended", "Truncation", &hex_key, longer, "corrupt");
    let mut md5_twice = file.clone();
    md5_twice.extend_from_slice(&file[md5_at..]);
    add("MD5 trailer appended again", "Truncation", &hex_key, md5_twice, "corrupt");

    let k = BackupKey::from_bytes(key);
    let header =
        FileHeader::from_prefix_bytes(&prefix("crypt15/iv/bad-zlib", None, None), Framing::Varint)
            .expect("parses");
    let zlib_then_junk = {
        let mut stream = raw_plaintext(&k, &file);
        stream.extend_from_slice(b"junk");
        stream
    };
    let mut zlib_cut = raw_plaintext(&k, &file);
    zlib_cut.truncate(zlib_cut.len() - 4);
    for (comment, stream) in [
        ("plaintext is not zlib", b"SQLite format 3\0".to_vec()),
        ("bytes follow the zlib stream", zlib_then_junk),
        ("zlib stream without its Adler-32", zlib_cut),
    ] {
        add(
            comment,
            "BadCompression",
            &hex_key,
            encrypt_compressed(&k, &header, &stream).expect("encrypts"),
            "decompression",
        );
    }
    cases
}

fn key_of(hex_key: &str) -> BackupKey {
    BackupKey::from_bytes(hex::decode(hex_key).expect("hex").try_into().expect("32 bytes"))
}

/// Builds the vector file.
pub fn generate() -> Value {
    let mut groups = vec![
        json!({ "type": "Crypt15FileValid", "tests": valid_cases() }),
        json!({ "type": "Crypt15FileInvalid", "tests": invalid_cases() }),
        json!({ "type": "Crypt15KeyFile", "tests": key_file_cases() }),
        // Added later, in groups of their own so that the tcIds above stay as they were.
        json!({ "type": "Crypt15FileValid", "tests": rules::rule_valid_cases() }),
        json!({ "type": "Crypt15FileInvalid", "tests": rules::rule_invalid_cases() }),
    ];
    number(&mut groups);
    envelope(
        ALGORITHM,
        &[
            "WhatsApp Android .crypt15 backups and encrypted_backup.key files (spec chapter 6), for compatibility only.",
            "A valid file decrypts under `key` to `plaintext` (the database, or the ZIP of a multi-file backup); encrypting `plaintext` behind the header made of `prefix` and `framing`, with C zlib at `zlibLevel` (or as it is, for a multi-file backup), gives `file`, and so does encrypting `compressed` (the GCM plaintext) as it is.",
            "An invalid file must be rejected with `error`, the code of spec section 6.6. A key file test gives the key file and its key, or the error of section 6.2.",
        ],
        NOTES,
        groups,
    )
}

/// Checks one case.
pub fn verify_case(case: &Value) -> Result<(), String> {
    if case.get("keyFile").is_some() {
        return verify_key_file(case);
    }
    let key = key_of_field(case)?;
    let file = hex_field(case, "file")?;
    let outcome = decrypt_to_vec(&key, &file);
    match (case["result"].as_str(), outcome) {
        (Some("valid"), Ok(decrypted)) => {
            expect_eq(
                "plaintext",
                hex::encode(&decrypted.plaintext),
                hex::encode(hex_field(case, "plaintext")?),
            )?;
            let variant = match decrypted.variant {
                Variant::SingleFile => "single-file",
                Variant::MultiFile => "multi-file",
            };
            expect_eq("variant", Some(variant), case["variant"].as_str())?;
            let prefix = decrypted.header.prefix();
            expect_eq("iv", hex::encode(prefix.iv), hex::encode(hex_field(case, "iv")?))?;
            let info = prefix.info.clone().unwrap_or_default();
            expect_eq("appVersion", info.app_version.as_deref(), case["appVersion"].as_str())?;
            expect_eq("jidSuffix", info.jid_suffix.as_deref(), case["jidSuffix"].as_str())?;
            expect_eq(
                "prefix",
                hex::encode(decrypted.header.prefix_bytes()),
                hex::encode(hex_field(case, "prefix")?),
            )?;
            let framing = match case["framing"].as_str() {
                Some("varint") => Framing::Varint,
                Some("length-byte-and-flag") => Framing::LengthByteAndFlag,
                None if case["framing"].is_null() => {
                    // A lead no writer may write: readers only. The GCM plaintext is still
                    // checked; no writer is asked to reproduce the file.
                    return expect_eq(
                        "compressed",
                        hex::encode(raw_plaintext(&key, &file)),
                        hex::encode(hex_field(case, "compressed")?),
                    );
                }
                other => return Err(format!("unknown framing {other:?}")),
            };
            let inputs = Inputs {
                key: *key.expose_secret(),
                prefix: hex_field(case, "prefix")?,
                framing,
                level: case["zlibLevel"].as_u64().map(|l| l as u32),
                plaintext: decrypted.plaintext,
            };
            expect_eq("header", inputs.header(), decrypted.header)?;
            expect_eq("re-encrypted file", hex::encode(inputs.encrypt()), hex::encode(&file))?;
            if inputs.level.is_some() {
                let compressed = hex_field(case, "compressed")?;
                expect_eq(
                    "compressed",
                    hex::encode(raw_plaintext(&key, &file)),
                    hex::encode(&compressed),
                )?;
                let again = encrypt_compressed(&key, &inputs.header(), &compressed)
                    .map_err(|e| e.to_string())?;
                expect_eq(
                    "file re-encrypted from the compressed plaintext",
                    hex::encode(again),
                    hex::encode(&file),
                )?;
            }
            Ok(())
        }
        (Some("invalid"), Err(err)) => {
            expect_eq("error", err.code(), case["error"].as_str().unwrap_or_default())
        }
        (result, outcome) => Err(format!(
            "result {result:?} but decryption gave {:?}",
            outcome.map(|_| "a plaintext").map_err(|e: Error| e.code())
        )),
    }
}

fn key_of_field(case: &Value) -> Result<BackupKey, String> {
    Ok(BackupKey::from_bytes(
        hex_field(case, "key")?.try_into().map_err(|_| "key is not 32 bytes")?,
    ))
}

fn verify_key_file(case: &Value) -> Result<(), String> {
    let bytes = hex_field(case, "keyFile")?;
    match case["result"].as_str() {
        Some("valid") => {
            let key = keyfile::parse(&bytes).map_err(|e| e.to_string())?;
            expect_eq(
                "key",
                hex::encode(key.expose_secret()),
                hex::encode(hex_field(case, "key")?),
            )?;
            expect_eq("encoded key file", hex::encode(*keyfile::encode(&key)), hex::encode(&bytes))
        }
        Some("invalid") => {
            let found = key_file_error(&bytes).ok_or("the key file parses")?;
            for field in ["error", "found", "offset"] {
                expect_eq(field, &found[field], &case[field])?;
            }
            Ok(())
        }
        other => Err(format!("unknown result {other:?}")),
    }
}
