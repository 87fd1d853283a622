//! Round trips of random content, the streaming GCM checked against `aes-gcm`, files far larger
//! than the buffers, and arbitrary input that must never panic.

use std::io::{Cursor, Write};

use aes_gcm::AesGcm;
use aes_gcm::aead::consts::U16;
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::aes::Aes256;
use e2ee_backup_crypt15::{
    BackupPrefix, Content, Decryptor, Encryptor, Error, FileHeader, Framing, HeaderOptions,
    Variant, decrypt_to_vec, encrypt_to_vec, keyfile,
};
use e2ee_backup_kdf::BackupKey;
use e2ee_backup_kdf::crypt15::Crypt15Keys;
use proptest::prelude::*;

/// AES-256-GCM with crypt15's 16-byte nonce, from `aes-gcm`, held whole in memory.
type Gcm16 = AesGcm<Aes256, U16>;

/// The start of a ZIP, padded to the 22 bytes of the smallest one.
const ZIP_MAGIC: &[u8] = b"PK\x03\x04 stand-in ZIP head ";

fn oracle_seal(key: &BackupKey, iv: &[u8; 16], data: &[u8]) -> (Vec<u8>, [u8; 16]) {
    let file_key = Crypt15Keys::derive(key).backup_encryption;
    let cipher = Gcm16::new((&file_key).into());
    let mut buf = data.to_vec();
    let tag = cipher.encrypt_inout_detached(iv.into(), b"", buf.as_mut_slice().into()).unwrap();
    (buf, tag.into())
}

fn framing() -> impl Strategy<Value = Framing> {
    prop_oneof![Just(Framing::Varint), Just(Framing::LengthByteAndFlag)]
}

fn options() -> impl Strategy<Value = HeaderOptions> {
    (
        any::<[u8; 16]>(),
        proptest::option::of("[0-9.]{1,20}"),
        proptest::option::of("[0-9]{2}"),
        framing(),
    )
        .prop_map(|(iv, app_version, jid_suffix, framing)| HeaderOptions {
            iv: Some(iv),
            app_version,
            jid_suffix,
            framing,
        })
}

fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..3000),
        proptest::collection::vec(0u8..4, 0..3000),
    ]
}

proptest! {
    #[test]
    fn databases_round_trip(
        options in options(),
        data in payload(),
        level in 0u32..=9,
        key in any::<[u8; 32]>(),
    ) {
        let key = BackupKey::from_bytes(key);
        let header = FileHeader::minimal(&options).unwrap();
        let file = encrypt_to_vec(&key, &header, Content::Database { level }, &data).unwrap();
        let out = decrypt_to_vec(&key, &file).unwrap();
        prop_assert_eq!(out.plaintext, data);
        prop_assert_eq!(out.variant, Variant::SingleFile);
        prop_assert_eq!(&out.header, &header);
        let info = out.header.prefix().info.clone().unwrap_or_default();
        prop_assert_eq!(info.jid_suffix, options.jid_suffix);
        prop_assert_eq!(info.app_version, options.app_version);
    }

    #[test]
    fn multi_file_backups_round_trip(
        options in options(),
        data in payload(),
        key in any::<[u8; 32]>(),
    ) {
        let key = BackupKey::from_bytes(key);
        let zip = [ZIP_MAGIC, &data].concat();
        let header = FileHeader::minimal(&options).unwrap();
        let file = encrypt_to_vec(&key, &header, Content::MultiFileZip, &zip).unwrap();
        prop_assert_eq!(file.len(), header.len() + zip.len() + 16);
        let out = decrypt_to_vec(&key, &file).unwrap();
        prop_assert_eq!(out.plaintext, zip);
        prop_assert_eq!(out.variant, Variant::MultiFile);
    }

    /// The streaming GCM equals `aes-gcm`'s one-shot GCM, for every length and every way of
    /// cutting the writes.
    #[test]
    fn streaming_gcm_matches_aes_gcm(
        iv in any::<[u8; 16]>(),
        data in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(1usize..70, 1..12),
    ) {
        let key = BackupKey::from_bytes([3; 32]);
        let zip = [ZIP_MAGIC, &data].concat();
        let header = FileHeader::new(BackupPrefix::minimal(iv), Framing::Varint).unwrap();
        let (ciphertext, tag) = oracle_seal(&key, &iv, &zip);
        let expected = [header.to_bytes(), ciphertext, tag.to_vec()].concat();

        let mut encryptor =
            Encryptor::new(&key, &header, Content::MultiFileZip, Vec::new()).unwrap();
        let mut rest = zip.as_slice();
        for cut in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let n = (*cut).min(rest.len());
            encryptor.write_all(&rest[..n]).unwrap();
            rest = &rest[n..];
        }
        prop_assert_eq!(encryptor.finish().unwrap(), expected.clone());
        prop_assert_eq!(decrypt_to_vec(&key, &expected).unwrap().plaintext, zip);
    }

    /// Compressing in pieces gives the same zlib stream as compressing at once.
    #[test]
    fn streamed_databases_equal_one_shot_ones(
        data in payload(),
        level in 0u32..=9,
        cuts in proptest::collection::vec(1usize..400, 1..10),
    ) {
        let key = BackupKey::from_bytes([4; 32]);
        let header = FileHeader::minimal(&HeaderOptions {
            iv: Some([5; 16]),
            ..HeaderOptions::default()
        })
        .unwrap();
        let content = Content::Database { level };
        let whole = encrypt_to_vec(&key, &header, content, &data).unwrap();
        let mut encryptor = Encryptor::new(&key, &header, content, Vec::new()).unwrap();
        let mut rest = data.as_slice();
        for cut in cuts.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let n = (*cut).min(rest.len());
            encryptor.write_all(&rest[..n]).unwrap();
            rest = &rest[n..];
        }
        prop_assert_eq!(encryptor.finish().unwrap(), whole);
    }

    #[test]
    fn arbitrary_files_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let key = BackupKey::from_bytes([6; 32]);
        let _ = decrypt_to_vec(&key, &bytes);
        let _ = keyfile::parse(&bytes);
        if let Ok(header) = FileHeader::parse(&bytes) {
            prop_assert_eq!(header.to_bytes(), bytes[..header.len()].to_vec());
        }
        if let Ok(prefix) = BackupPrefix::parse(&bytes) {
            prop_assert_eq!(BackupPrefix::parse(&prefix.encode()).unwrap(), prefix);
        }
    }

    #[test]
    fn arbitrary_bodies_behind_a_valid_header_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..400),
        framing in framing(),
    ) {
        let key = BackupKey::from_bytes([6; 32]);
        let header = FileHeader::new(BackupPrefix::minimal([1; 16]), framing).unwrap();
        let file = [header.to_bytes(), body.clone()].concat();
        let err = decrypt_to_vec(&key, &file).unwrap_err();
        if body.len() < 32 {
            let is_truncated = matches!(err, Error::Truncated { .. });
            prop_assert!(is_truncated, "{:?}", err);
        } else {
            prop_assert_eq!(err, Error::Corrupt);
        }
    }

    #[test]
    fn arbitrary_prefixes_in_a_file_never_panic(
        prefix in proptest::collection::vec(any::<u8>(), 0..200),
        flag in any::<bool>(),
    ) {
        let key = BackupKey::from_bytes([6; 32]);
        let mut file = vec![prefix.len() as u8];
        if flag {
            file.push(1);
        }
        file.extend_from_slice(&prefix);
        file.extend_from_slice(&[0u8; 48]);
        prop_assert!(decrypt_to_vec(&key, &file).is_err());
    }
}

#[test]
fn gcm_matches_aes_gcm_across_buffer_boundaries() {
    let key = BackupKey::from_bytes([8; 32]);
    let iv = [0xfe; 16];
    let header = FileHeader::new(BackupPrefix::minimal(iv), Framing::Varint).unwrap();
    for len in [0, 1, 15, 16, 17, 65_535, 65_536, 65_537, 200_000] {
        let zip: Vec<u8> = ZIP_MAGIC
            .iter()
            .copied()
            .chain((0..len as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8))
            .collect();
        let (ciphertext, tag) = oracle_seal(&key, &iv, &zip);
        let expected = [header.to_bytes(), ciphertext, tag.to_vec()].concat();
        let file = encrypt_to_vec(&key, &header, Content::MultiFileZip, &zip).unwrap();
        assert!(file == expected, "length {len}");
        assert!(decrypt_to_vec(&key, &file).unwrap().plaintext == zip, "length {len}");
    }
}

#[test]
fn single_file_ciphertext_and_tag_match_aes_gcm() {
    let key = BackupKey::from_bytes([9; 32]);
    let header = FileHeader::minimal(&HeaderOptions::default()).unwrap();
    let data = b"SQLite format 3\0".repeat(1000);
    let file = encrypt_to_vec(&key, &header, Content::default(), &data).unwrap();
    let mut zlib = Vec::new();
    let decryptor = Decryptor::new(&key, Cursor::new(&file)).unwrap();
    decryptor.decrypt_raw_to(&mut zlib).unwrap();
    let (ciphertext, tag) = oracle_seal(&key, header.iv(), &zlib);
    let body = &file[header.len()..file.len() - 16];
    assert_eq!(body, [ciphertext, tag.to_vec()].concat().as_slice());
}

#[test]
fn large_files_stream_through_small_buffers() {
    let key = BackupKey::generate();
    let header = FileHeader::minimal(&HeaderOptions {
        jid_suffix: Some("99".into()),
        ..HeaderOptions::default()
    })
    .unwrap();
    // 3 MiB, partly compressible, far beyond the 64 KiB buffers.
    let data: Vec<u8> = (0..3u32 << 20)
        .map(|i| if i % 3 == 0 { (i.wrapping_mul(2_654_435_761) >> 24) as u8 } else { b'a' })
        .collect();
    let mut encryptor = Encryptor::new(&key, &header, Content::default(), Vec::new()).unwrap();
    for piece in data.chunks(100_000) {
        encryptor.write_all(piece).unwrap();
    }
    let file = encryptor.finish().unwrap();
    let decryptor = Decryptor::new(&key, Cursor::new(&file)).unwrap();
    assert_eq!(decryptor.variant(), Variant::SingleFile);
    let mut out = Vec::new();
    let written = decryptor.decrypt_to(&mut out).unwrap();
    assert_eq!(written, data.len() as u64);
    assert!(out == data);
}

#[test]
fn zlib_looking_content_is_refused_as_a_multi_file_backup() {
    let key = BackupKey::from_bytes([1; 32]);
    let header = FileHeader::minimal(&HeaderOptions::default()).unwrap();
    let err = encrypt_to_vec(&key, &header, Content::MultiFileZip, b"\x78\x9c rest").unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    // Also when the two bytes arrive in separate writes.
    let mut encryptor = Encryptor::new(&key, &header, Content::MultiFileZip, Vec::new()).unwrap();
    encryptor.write_all(b"\x78").unwrap();
    let err = encryptor.write_all(b"\x01").unwrap_err();
    assert!(matches!(Error::from_io(&err), Some(Error::InvalidInput(_))), "{err:?}");
}

#[test]
fn multi_file_content_shorter_than_a_zip_is_refused() {
    let key = BackupKey::from_bytes([1; 32]);
    let header = FileHeader::minimal(&HeaderOptions::default()).unwrap();
    let err = encrypt_to_vec(&key, &header, Content::MultiFileZip, b"PK\x05\x06").unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
}

#[test]
fn zlib_levels_above_9_are_refused() {
    let key = BackupKey::from_bytes([1; 32]);
    let header = FileHeader::minimal(&HeaderOptions::default()).unwrap();
    let err = encrypt_to_vec(&key, &header, Content::Database { level: 10 }, b"x").unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)));
}
