//! The files made by wa-crypt-tools (and an independent Python encoder) in
//! `test-vectors/published/wa-crypt-tools-generated/crypt15_fixtures.json`: each decrypts to its
//! plaintext, and each is written again byte for byte from the same inputs.

mod common;

use std::io::{Cursor, Seek, SeekFrom, Write};

use common::{Case, FIXTURES, cases, hex_of, published_vectors, root_key};
use e2ee_backup_crypt15::{
    BackupInfo, BackupPrefix, Content, Decryptor, Encryptor, FileHeader, Framing, HeaderOptions,
    Variant, decrypt_to_vec, decrypt_unseekable, encrypt_compressed, encrypt_to_vec, keyfile,
};
use e2ee_backup_kdf::crypt15::Crypt15Keys;

/// The zlib level each known case was compressed with.
fn expected_level(name: &str) -> Option<u32> {
    match name {
        // waencrypt: zlib.compress(data, 1).
        "waencrypt-output" => Some(1),
        // Python's zlib.compress default.
        "independent-minimal-header" => Some(6),
        _ => None,
    }
}

#[test]
fn the_fixture_file_holds_the_cases_this_test_knows() {
    let fixtures = published_vectors(FIXTURES);
    let names: Vec<String> = cases(&fixtures).into_iter().map(|c| c.name).collect();
    for known in ["waencrypt-output", "independent-minimal-header"] {
        assert!(names.iter().any(|n| n == known), "case {known} is gone: {names:?}");
    }
    let format = fixtures["format"].as_str().unwrap();
    assert!(format.contains("16-byte MD5"), "{format}");
    assert!(format.contains("0x01 feature-table flag, optional"), "{format}");
}

#[test]
fn key_file_and_key_derivation_match() {
    let fixtures = published_vectors(FIXTURES);
    let key = root_key(&fixtures);
    let file = hex_of(&fixtures["encrypted_backup_key_file_hex"]);
    assert_eq!(keyfile::parse(&file).unwrap(), key);
    assert_eq!(keyfile::encode(&key).as_slice(), file.as_slice());
    assert_eq!(&file[..27], &keyfile::KEY_FILE_HEADER);
    assert_eq!(
        Crypt15Keys::derive(&key).backup_encryption.as_slice(),
        hex_of(&fixtures["backup_key_hex"]).as_slice()
    );
}

#[test]
fn every_fixture_decrypts_to_its_plaintext() {
    let fixtures = published_vectors(FIXTURES);
    let key = root_key(&fixtures);
    let plaintext = hex_of(&fixtures["plaintext_hex"]);
    assert_eq!(plaintext.len(), 1024);
    for case in cases(&fixtures) {
        let name = &case.name;
        let out = decrypt_to_vec(&key, &case.file).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(out.plaintext, plaintext, "{name}");
        assert_eq!(out.variant, Variant::SingleFile, "{name}");
        assert_eq!(out.header.iv(), &case.iv, "{name}");
        assert_eq!(out.header.prefix_bytes(), case.prefix.as_slice(), "{name}");
        assert_eq!(out.header.to_bytes(), case.file[..out.header.len()], "{name}");

        // The stored plaintext is the case's zlib stream.
        let decryptor = Decryptor::new(&key, Cursor::new(&case.file)).unwrap();
        assert_eq!(decryptor.ciphertext_len(), case.zlib.len() as u64, "{name}");
        let mut raw = Vec::new();
        decryptor.decrypt_raw_to(&mut raw).unwrap();
        assert_eq!(raw, case.zlib, "{name}");

        // From a position inside a larger stream, and from a stream that cannot seek.
        let mut shifted = Cursor::new([b"junk".as_slice(), &case.file].concat());
        shifted.seek(SeekFrom::Start(4)).unwrap();
        let mut out = Vec::new();
        Decryptor::new(&key, shifted).unwrap().decrypt_to(&mut out).unwrap();
        assert_eq!(out, plaintext, "{name}");
        let mut out = Vec::new();
        let (header, variant, written) =
            decrypt_unseekable(&key, case.file.as_slice(), Cursor::new(Vec::new()), &mut out)
                .unwrap();
        assert_eq!((out.len() as u64, variant), (written, Variant::SingleFile));
        assert_eq!(out, plaintext, "{name}");
        assert_eq!(header.iv(), &case.iv);
    }
}

#[test]
fn fixture_headers_round_trip_byte_for_byte() {
    let fixtures = published_vectors(FIXTURES);
    for Case { name, prefix, file, .. } in cases(&fixtures) {
        let parsed = BackupPrefix::parse(&prefix).unwrap();
        assert_eq!(parsed.encode(), prefix, "{name}: canonical encoding");
        let header = FileHeader::parse(&file).unwrap();
        assert_eq!(header.prefix(), &parsed, "{name}");
        assert_eq!(header.to_bytes(), file[..header.len()], "{name}");
        // wa-crypt-tools' framing reproduces every fixture's lead bytes.
        let rebuilt = FileHeader::new(parsed.clone(), Framing::LengthByteAndFlag).unwrap();
        assert_eq!(rebuilt.to_bytes(), header.to_bytes(), "{name}");
        let kept = FileHeader::from_prefix_bytes(&prefix, Framing::LengthByteAndFlag).unwrap();
        assert_eq!(kept, header, "{name}");
        // The first byte is the length; 0x01 follows it in both.
        assert_eq!(usize::from(file[0]), prefix.len(), "{name}");
        assert_eq!(file[1], 0x01, "{name}");
        // Below 128 bytes the 0x01 is a separate flag byte; from 128 on it reads as the
        // second byte of a varint length, and both framings give the same bytes.
        assert_eq!(header.has_flag_byte(), prefix.len() < 128, "{name}");
        if prefix.len() >= 128 {
            let varint = FileHeader::new(parsed, Framing::Varint).unwrap();
            assert_eq!(varint.to_bytes(), header.to_bytes(), "{name}");
        }
    }
}

#[test]
fn fixture_headers_hold_what_their_producers_wrote() {
    let fixtures = published_vectors(FIXTURES);
    for case in cases(&fixtures) {
        let prefix = BackupPrefix::parse(&case.prefix).unwrap();
        assert_eq!(prefix.key_type, Some(1), "{}", case.name);
        assert_eq!(prefix.iv, case.iv, "{}", case.name);
        let info = prefix.info.as_ref().unwrap();
        assert_eq!(info.app_version.as_deref(), Some("2.23.18.12"));
        assert_eq!(info.jid_suffix.as_deref(), Some("00"));
        match case.name.as_str() {
            "waencrypt-output" => {
                assert_eq!(info.backup_version, Some(0));
                for field in 5..=39 {
                    let expected = match field {
                        34 => Some(false),
                        38 => None,
                        _ => Some(true),
                    };
                    assert_eq!(info.features.get(field), expected, "feature {field}");
                }
            }
            "independent-minimal-header" => {
                assert_eq!(info.backup_version, None);
                assert!(info.features.is_empty());
            }
            other => eprintln!("no header expectations for case {other}"),
        }
    }
}

#[test]
fn files_written_from_the_same_inputs_equal_the_fixtures() {
    let fixtures = published_vectors(FIXTURES);
    let key = root_key(&fixtures);
    let plaintext = hex_of(&fixtures["plaintext_hex"]);
    for case in cases(&fixtures) {
        let name = &case.name;
        let header =
            FileHeader::from_prefix_bytes(&case.prefix, Framing::LengthByteAndFlag).unwrap();

        // The fixture's own zlib stream, encrypted as it is.
        assert_eq!(encrypt_compressed(&key, &header, &case.zlib).unwrap(), case.file, "{name}");

        // Compressed here: some zlib level must give the same stream.
        let levels: Vec<u32> = (0..=9)
            .filter(|&level| {
                encrypt_to_vec(&key, &header, Content::Database { level }, &plaintext).unwrap()
                    == case.file
            })
            .collect();
        assert!(!levels.is_empty(), "{name}: no zlib level reproduces the file");
        if let Some(level) = expected_level(name) {
            assert!(levels.contains(&level), "{name}: level {level} not among {levels:?}");

            // Streaming, in small uneven writes.
            let mut encryptor =
                Encryptor::new(&key, &header, Content::Database { level }, Vec::new()).unwrap();
            for piece in plaintext.chunks(7) {
                encryptor.write_all(piece).unwrap();
            }
            assert_eq!(encryptor.finish().unwrap(), case.file, "{name}: streamed");
        }
    }
}

#[test]
fn headers_built_from_scratch_equal_the_fixtures() {
    let fixtures = published_vectors(FIXTURES);
    let key = root_key(&fixtures);
    let plaintext = hex_of(&fixtures["plaintext_hex"]);
    for case in cases(&fixtures) {
        let header = match case.name.as_str() {
            "independent-minimal-header" => FileHeader::minimal(&HeaderOptions {
                iv: Some(case.iv),
                app_version: Some("2.23.18.12".into()),
                jid_suffix: Some("00".into()),
                framing: Framing::LengthByteAndFlag,
            })
            .unwrap(),
            "waencrypt-output" => {
                let mut info = BackupInfo {
                    app_version: Some("2.23.18.12".into()),
                    jid_suffix: Some("00".into()),
                    backup_version: Some(0),
                    ..BackupInfo::default()
                };
                for field in (5..=37).chain([39]) {
                    info.features.set(field, Some(field != 34)).unwrap();
                }
                let mut prefix = BackupPrefix::minimal(case.iv);
                prefix.info = Some(info);
                FileHeader::new(prefix, Framing::Varint).unwrap()
            }
            _ => continue,
        };
        let level = expected_level(&case.name).unwrap();
        let file = encrypt_to_vec(&key, &header, Content::Database { level }, &plaintext).unwrap();
        assert_eq!(file, case.file, "{}", case.name);
    }
}
