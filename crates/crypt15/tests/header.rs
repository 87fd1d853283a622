//! Malformed headers and key files give errors that name the field and the problem.

use e2ee_backup_crypt15::header::{BackupInfo, MAX_PREFIX_LEN};
use e2ee_backup_crypt15::keyfile::{self, KEY_FILE_HEADER, KEY_FILE_LEN};
use e2ee_backup_crypt15::{
    BackupPrefix, Error, FileHeader, Framing, HeaderError, HeaderOptions, HeaderProblem,
    KeyFileError,
};
use e2ee_backup_kdf::BackupKey;

const IV: [u8; 16] = [0xaa; 16];

/// Field 3 holding the IV.
fn iv_field() -> Vec<u8> {
    let mut out = vec![0x1a, 0x12, 0x0a, 0x10];
    out.extend_from_slice(&IV);
    out
}

fn parse_err(bytes: &[u8]) -> HeaderError {
    BackupPrefix::parse(bytes).unwrap_err()
}

fn err(field: &'static str, problem: HeaderProblem) -> HeaderError {
    HeaderError { field, problem }
}

fn with_info(info: &[u8]) -> Vec<u8> {
    let mut out = iv_field();
    out.push(0x22);
    out.push(info.len() as u8);
    out.extend_from_slice(info);
    out
}

#[test]
fn each_malformed_field_is_named() {
    let cases: Vec<(&str, Vec<u8>, HeaderError)> = vec![
        ("no IV at all", vec![0x08, 0x01], err("c15_iv (3)", HeaderProblem::Missing)),
        (
            "crypt14 key data instead of an IV",
            vec![0x08, 0x01, 0x12, 0x02, 0x0a, 0x00],
            err("wa_provided_key_data (2)", HeaderProblem::Crypt14),
        ),
        (
            "IV message without the IV",
            vec![0x1a, 0x00],
            err("c15_iv.iv (3.1)", HeaderProblem::Missing),
        ),
        (
            "IV of 2 bytes",
            vec![0x1a, 0x04, 0x0a, 0x02, 0xaa, 0xbb],
            err("c15_iv.iv (3.1)", HeaderProblem::WrongLength { found: 2, expected: 16 }),
        ),
        (
            "IV message cut short",
            vec![0x1a, 0x12, 0x0a, 0x10, 0xaa],
            err("c15_iv (3)", HeaderProblem::Truncated),
        ),
        (
            "IV inside its message cut short",
            vec![0x1a, 0x03, 0x0a, 0x10, 0xaa],
            err("c15_iv.iv (3.1)", HeaderProblem::Truncated),
        ),
        (
            "key type as a length-delimited field",
            [vec![0x0a, 0x00], iv_field()].concat(),
            err("key_type (1)", HeaderProblem::WrongWireType { found: 2, expected: 0 }),
        ),
        (
            "IV as a varint",
            vec![0x18, 0x01],
            err("c15_iv (3)", HeaderProblem::WrongWireType { found: 0, expected: 2 }),
        ),
        ("two IVs", [iv_field(), iv_field()].concat(), err("c15_iv (3)", HeaderProblem::Duplicate)),
        (
            "an 11-byte varint",
            [vec![0x08], vec![0xff; 10], vec![0x01]].concat(),
            err("key_type (1)", HeaderProblem::OverlongVarint { max: 10 }),
        ),
        (
            "a group",
            [vec![0x0b], iv_field()].concat(),
            err("BackupPrefix", HeaderProblem::UnsupportedWireType(3)),
        ),
        (
            "field number 0",
            [vec![0x00], iv_field()].concat(),
            err("BackupPrefix", HeaderProblem::InvalidFieldNumber { number: 0 }),
        ),
        (
            "unknown field cut short",
            [iv_field(), vec![0xf9, 0x01, 0x00]].concat(),
            err("BackupPrefix", HeaderProblem::Truncated),
        ),
        (
            "app version not UTF-8",
            with_info(&[0x0a, 0x01, 0xff]),
            err("info.app_version (4.1)", HeaderProblem::InvalidUtf8),
        ),
        (
            "phone suffix as a varint",
            with_info(&[0x18, 0x01]),
            err("info.jid_suffix (4.3)", HeaderProblem::WrongWireType { found: 0, expected: 2 }),
        ),
        (
            "backup version cut short",
            with_info(&[0x20]),
            err("info.backup_version (4.4)", HeaderProblem::Truncated),
        ),
        (
            "feature 5 as bytes",
            with_info(&[0x2a, 0x00]),
            err("info.feature_5 (4.5)", HeaderProblem::WrongWireType { found: 2, expected: 0 }),
        ),
        (
            "feature 39 twice",
            with_info(&[0xb8, 0x02, 0x01, 0xb8, 0x02, 0x00]),
            err("info.feature_39 (4.39)", HeaderProblem::Duplicate),
        ),
        (
            "info longer than the prefix",
            [iv_field(), vec![0x22, 0x05, 0x0a]].concat(),
            err("info (4)", HeaderProblem::Truncated),
        ),
    ];
    for (what, bytes, expected) in cases {
        assert_eq!(parse_err(&bytes), expected, "{what}");
        // The message names the field.
        assert!(expected.to_string().contains(expected.field), "{what}");
    }
}

#[test]
fn unknown_fields_are_skipped_and_kept_in_the_raw_bytes() {
    let mut bytes = vec![0x08, 0x01];
    bytes.extend_from_slice(&iv_field());
    bytes.extend_from_slice(&[0xf8, 0x01, 0x05]); // field 31, varint
    bytes.extend_from_slice(&[0xc1, 0x03, 1, 2, 3, 4, 5, 6, 7, 8]); // field 56, fixed64
    bytes.extend_from_slice(&[0xcd, 0x03, 1, 2, 3, 4]); // field 57, fixed32
    bytes.extend_from_slice(&[0x32, 0x02, 0x08, 0x01]); // field 6, key_type_new
    bytes.extend_from_slice(&with_info(&[0x0a, 0x01, b'v', 0xc0, 0x02, 0x01])[iv_field().len()..]);
    let prefix = BackupPrefix::parse(&bytes).unwrap();
    assert_eq!(prefix.iv, IV);
    let info = prefix.info.as_ref().unwrap();
    assert_eq!(info.app_version.as_deref(), Some("v"));
    // The canonical encoding drops the unknown fields; the header keeps them.
    assert_ne!(prefix.encode(), bytes);
    let header = FileHeader::from_prefix_bytes(&bytes, Framing::Varint).unwrap();
    assert_eq!(header.prefix_bytes(), bytes.as_slice());
    assert_eq!(FileHeader::parse(&header.to_bytes()).unwrap(), header);
}

#[test]
fn non_canonical_fields_survive_a_file_header_round_trip() {
    // Fields out of order, a non-minimal varint, a bool encoded as 2.
    let mut bytes = iv_field();
    bytes.extend_from_slice(&[0x08, 0x81, 0x00]); // key_type 1 as a two-byte varint
    bytes.extend_from_slice(&[0x22, 0x02, 0x28, 0x02]); // feature 5 = 2, read as true
    let prefix = BackupPrefix::parse(&bytes).unwrap();
    assert_eq!(prefix.key_type, Some(1));
    assert_eq!(prefix.info.as_ref().unwrap().features.get(5), Some(true));
    let header = FileHeader::from_prefix_bytes(&bytes, Framing::LengthByteAndFlag).unwrap();
    let again = FileHeader::parse(&header.to_bytes()).unwrap();
    assert_eq!(again.to_bytes(), header.to_bytes());
    assert_eq!(again.prefix_bytes(), bytes.as_slice());
}

#[test]
fn the_prefix_length_is_checked() {
    let truncated = |bytes: &[u8]| match FileHeader::parse(bytes).unwrap_err() {
        Error::Truncated { part, file_len, needed } => (part, file_len, needed),
        other => panic!("{other:?}"),
    };
    assert_eq!(truncated(&[]), ("prefix length", 0, 1));
    assert_eq!(truncated(&[0x85]), ("prefix length", 1, 2));
    assert_eq!(truncated(&[0x28]), ("BackupPrefix", 1, 41));
    assert_eq!(truncated(&[0x28, 0x01]), ("BackupPrefix", 2, 42));
    assert_eq!(truncated(&[0x28, 0x01, 0x08, 0x01]), ("BackupPrefix", 4, 42));
    assert_eq!(
        FileHeader::parse(&[0x80, 0x80, 0x80, 0x01]).unwrap_err(),
        Error::MalformedHeader(err("prefix length", HeaderProblem::OverlongVarint { max: 3 }))
    );
    assert_eq!(
        FileHeader::parse(&[0xff, 0xff, 0x07]).unwrap_err(),
        Error::MalformedHeader(err(
            "prefix length",
            HeaderProblem::TooLong { len: (1 << 17) - 1, max: MAX_PREFIX_LEN as u64 }
        ))
    );
    // An empty prefix has no IV.
    assert_eq!(
        FileHeader::parse(&[0x00, 0x01, 0x02]).unwrap_err(),
        Error::MalformedHeader(err("c15_iv (3)", HeaderProblem::Missing))
    );
}

#[test]
fn both_framings_are_read() {
    let prefix = BackupPrefix::minimal(IV);
    let encoded = prefix.encode();
    let plain = [vec![encoded.len() as u8], encoded.clone()].concat();
    let flagged = [vec![encoded.len() as u8, 0x01], encoded.clone()].concat();
    for (bytes, framing, flag) in
        [(plain, Framing::Varint, false), (flagged, Framing::LengthByteAndFlag, true)]
    {
        let header = FileHeader::parse(&bytes).unwrap();
        assert_eq!(header.prefix(), &prefix);
        assert_eq!(header.has_flag_byte(), flag);
        assert_eq!(header.len(), bytes.len());
        assert_eq!(FileHeader::new(prefix.clone(), framing).unwrap(), header);
    }
}

#[test]
fn long_prefixes_need_the_varint_framing() {
    let mut prefix = BackupPrefix::minimal(IV);
    prefix.info = Some(BackupInfo { app_version: Some("v".repeat(300)), ..BackupInfo::default() });
    let len = prefix.encode().len() as u64;
    assert_eq!(
        FileHeader::new(prefix.clone(), Framing::LengthByteAndFlag).unwrap_err(),
        err("prefix length", HeaderProblem::TooLong { len, max: 255 })
    );
    let header = FileHeader::new(prefix.clone(), Framing::Varint).unwrap();
    assert_eq!(header.len() as u64, len + 2);
    assert_eq!(FileHeader::parse(&header.to_bytes()).unwrap().prefix(), &prefix);
}

#[test]
fn minimal_headers_record_only_what_is_given() {
    let bare = FileHeader::minimal(&HeaderOptions::default()).unwrap();
    assert_eq!(bare.prefix().key_type, Some(1));
    assert_eq!(bare.prefix().info, None);
    assert_eq!(bare.len(), 1 + 2 + 20);
    let other = FileHeader::minimal(&HeaderOptions::default()).unwrap();
    assert_ne!(bare.iv(), other.iv(), "IVs are drawn fresh");

    let with_suffix = FileHeader::minimal(&HeaderOptions {
        jid_suffix: Some("07".into()),
        ..HeaderOptions::default()
    })
    .unwrap();
    let info = with_suffix.prefix().info.as_ref().unwrap();
    assert_eq!((info.app_version.as_deref(), info.jid_suffix.as_deref()), (None, Some("07")));

    for bad in ["7", "123", "ab", "٠٧"] {
        let options = HeaderOptions { jid_suffix: Some(bad.into()), ..HeaderOptions::default() };
        assert!(matches!(FileHeader::minimal(&options), Err(Error::InvalidInput(_))), "{bad}");
    }
}

#[test]
fn feature_fields_outside_5_to_39_are_refused() {
    let mut info = BackupInfo::default();
    assert!(info.features.set(4, Some(true)).is_err());
    assert!(info.features.set(40, Some(true)).is_err());
    info.features.set(39, Some(false)).unwrap();
    assert_eq!(info.features.iter().collect::<Vec<_>>(), vec![(39, false)]);
}

#[test]
fn key_file_errors_name_what_is_wrong() {
    let key = BackupKey::from_bytes([5; 32]);
    let good = keyfile::encode(&key);
    assert_eq!(good.len(), KEY_FILE_LEN);
    assert_eq!(keyfile::parse(&good[..]).unwrap(), key);

    for len in [0, 27, 58] {
        assert_eq!(
            keyfile::parse(&good[..len]).unwrap_err(),
            KeyFileError::WrongLength { found: len, expected: 59 }
        );
    }
    let longer = [&good[..], &[0]].concat();
    assert_eq!(
        keyfile::parse(&longer).unwrap_err(),
        KeyFileError::WrongLength { found: 60, expected: 59 }
    );
    for (offset, part) in [
        (0, "stream magic"),
        (3, "stream version"),
        (4, "TC_ARRAY marker"),
        (9, "class name \"[B\""),
        (12, "serialVersionUID of byte[]"),
        (26, "array length (32)"),
    ] {
        let mut bad = *good;
        bad[offset] ^= 0x01;
        assert_eq!(
            keyfile::parse(&bad).unwrap_err(),
            KeyFileError::WrongHeader {
                offset,
                part,
                found: KEY_FILE_HEADER[offset] ^ 0x01,
                expected: KEY_FILE_HEADER[offset],
            }
        );
    }
    // A 64-digit hex key pasted into the file is not a key file.
    let hex_text = "00".repeat(32);
    assert!(matches!(
        keyfile::parse(hex_text.as_bytes()),
        Err(KeyFileError::WrongHeader { offset: 0, .. })
    ));
}
