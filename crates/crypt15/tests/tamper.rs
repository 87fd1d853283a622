//! Every single-bit flip and every truncation of a small file is rejected, each with the error
//! that names what happened; wrong keys, bad zlib streams and inputs that change between the
//! two passes are told apart too.

mod common;

use std::io::{self, Cursor, Read, Seek, SeekFrom};

use common::{FIXTURES, cases, published_vectors, root_key};
use e2ee_backup_crypt15::{
    Content, Decryptor, Error, FileHeader, Framing, HeaderOptions, Variant, decrypt_to_vec,
    encrypt_compressed, encrypt_to_vec,
};
use e2ee_backup_kdf::BackupKey;

fn key() -> BackupKey {
    BackupKey::from_bytes([0x42; 32])
}

fn header(framing: Framing) -> FileHeader {
    FileHeader::minimal(&HeaderOptions {
        iv: Some(*b"0123456789abcdef"),
        app_version: Some("2.24.1.6".into()),
        jid_suffix: Some("42".into()),
        framing,
    })
    .unwrap()
}

fn payload() -> Vec<u8> {
    (0..200u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// Where in a file a byte lies.
#[derive(Debug, PartialEq)]
enum Region {
    Lead,
    Iv,
    Prefix,
    Body,
    Md5,
}

fn region(header: &FileHeader, file_len: usize, variant: Variant, offset: usize) -> Region {
    let lead = header.len() - header.prefix_bytes().len();
    let iv_start = lead + find(header.prefix_bytes(), header.iv());
    if offset < lead {
        Region::Lead
    } else if (iv_start..iv_start + 16).contains(&offset) {
        Region::Iv
    } else if offset < header.len() {
        Region::Prefix
    } else if variant == Variant::SingleFile && offset >= file_len - 16 {
        Region::Md5
    } else {
        Region::Body
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).position(|w| w == needle).unwrap()
}

/// Flips every bit of a single-file backup and checks each error.
fn check_single_file_bit_flips(key: &BackupKey, file: &[u8], plaintext: &[u8]) {
    let header = FileHeader::parse(file).unwrap();
    assert_eq!(decrypt_to_vec(key, file).unwrap().plaintext, plaintext);
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    for offset in 0..file.len() {
        for bit in 0..8 {
            let mut bad = file.to_vec();
            bad[offset] ^= 1 << bit;
            let err = match decrypt_to_vec(key, &bad) {
                Ok(_) => panic!("flip of bit {bit} of byte {offset} went unnoticed"),
                Err(err) => err,
            };
            *seen.entry(err.code()).or_default() += 1;
            let place = region(&header, file.len(), Variant::SingleFile, offset);
            let fine = match place {
                Region::Lead => matches!(
                    err,
                    Error::Truncated { .. } | Error::MalformedHeader(_) | Error::Corrupt
                ),
                Region::Iv | Region::Body => err == Error::Corrupt,
                Region::Prefix => {
                    matches!(err, Error::MalformedHeader(_) | Error::ChecksumMismatch)
                }
                Region::Md5 => err == Error::ChecksumMismatch,
            };
            assert!(fine, "bit {bit} of byte {offset} ({place:?}): {err:?}");
        }
    }
    eprintln!("errors over {} flips: {seen:?}", file.len() * 8);
}

#[test]
fn every_bit_flip_of_a_small_single_file_backup_is_rejected() {
    for framing in [Framing::Varint, Framing::LengthByteAndFlag] {
        let file =
            encrypt_to_vec(&key(), &header(framing), Content::default(), &payload()).unwrap();
        check_single_file_bit_flips(&key(), &file, &payload());
    }
}

#[test]
fn every_bit_flip_of_the_small_fixture_is_rejected() {
    let fixtures = published_vectors(FIXTURES);
    let key = root_key(&fixtures);
    let plaintext = common::hex_of(&fixtures["plaintext_hex"]);
    let smallest = cases(&fixtures).into_iter().min_by_key(|c| c.file.len()).unwrap();
    check_single_file_bit_flips(&key, &smallest.file, &plaintext);
}

#[test]
fn bit_flips_of_a_multi_file_backup() {
    let zip = b"PK\x03\x04 a stand-in for the ZIP of a stickers backup".to_vec();
    let header = header(Framing::Varint);
    let file = encrypt_to_vec(&key(), &header, Content::MultiFileZip, &zip).unwrap();
    assert_eq!(file.len(), header.len() + zip.len() + 16);
    let out = decrypt_to_vec(&key(), &file).unwrap();
    assert_eq!((out.variant, out.plaintext.as_slice()), (Variant::MultiFile, zip.as_slice()));

    let mut unnoticed = 0;
    for offset in 0..file.len() {
        for bit in 0..8 {
            let mut bad = file.clone();
            bad[offset] ^= 1 << bit;
            let result = decrypt_to_vec(&key(), &bad);
            match region(&header, file.len(), Variant::MultiFile, offset) {
                Region::Lead => assert!(result.is_err(), "byte {offset}"),
                Region::Iv | Region::Body => {
                    assert_eq!(result.unwrap_err(), Error::Corrupt, "byte {offset}")
                }
                // The format's weakness: nothing authenticates a multi-file header. What gets
                // through still decrypts to the authentic ZIP.
                Region::Prefix => match result {
                    Ok(out) => {
                        assert_eq!(out.plaintext, zip);
                        unnoticed += 1;
                    }
                    Err(err) => assert!(matches!(err, Error::MalformedHeader(_)), "{err:?}"),
                },
                Region::Md5 => unreachable!("a multi-file backup has no MD5"),
            }
        }
    }
    assert!(unnoticed > 0, "header edits of a multi-file backup are expected to go unnoticed");
}

#[test]
fn every_truncation_and_extension_is_rejected() {
    for (content, variant) in
        [(Content::default(), Variant::SingleFile), (Content::MultiFileZip, Variant::MultiFile)]
    {
        let header = header(Framing::LengthByteAndFlag);
        let file = encrypt_to_vec(&key(), &header, content, &payload()).unwrap();
        assert_eq!(decrypt_to_vec(&key(), &file).unwrap().variant, variant);
        for len in 0..file.len() {
            let err = decrypt_to_vec(&key(), &file[..len]).unwrap_err();
            if variant == Variant::SingleFile && len == file.len() - 16 {
                // Without its MD5 a single-file backup has the multi-file layout; only its
                // zlib (not ZIP) plaintext gives it away.
                let Error::Truncated { part, needed, .. } = err else {
                    panic!("MD5 cut off: {err:?}");
                };
                assert_eq!((part, needed), ("MD5 trailer", file.len() as u64));
            } else if len < header.len() + 32 {
                let Error::Truncated { file_len, needed, part } = err else {
                    panic!("{variant:?} cut to {len}: {err:?}");
                };
                assert_eq!(file_len, len as u64, "{part}");
                assert!(needed > file_len, "{part}");
            } else {
                assert_eq!(err, Error::Corrupt, "{variant:?} cut to {len}");
            }
        }
        let mut longer = file.clone();
        longer.push(0);
        assert_eq!(decrypt_to_vec(&key(), &longer).unwrap_err(), Error::Corrupt);
    }
}

#[test]
fn truncation_errors_name_the_part() {
    let header = header(Framing::LengthByteAndFlag);
    let file = encrypt_to_vec(&key(), &header, Content::default(), &payload()).unwrap();
    let part = |len: usize| match decrypt_to_vec(&key(), &file[..len]).unwrap_err() {
        Error::Truncated { part, .. } => part,
        other => panic!("{other:?}"),
    };
    assert_eq!(part(0), "prefix length");
    assert_eq!(part(1), "BackupPrefix");
    assert_eq!(part(header.len() - 1), "BackupPrefix");
    assert_eq!(part(header.len()), "GCM tag and MD5 trailer");
}

#[test]
fn a_wrong_key_is_told_from_a_corrupt_file() {
    let other = BackupKey::from_bytes([0x43; 32]);
    let single =
        encrypt_to_vec(&key(), &header(Framing::Varint), Content::default(), &payload()).unwrap();
    assert_eq!(decrypt_to_vec(&other, &single).unwrap_err(), Error::WrongKey);
    // A multi-file backup has no MD5 to tell the two apart.
    let multi = encrypt_to_vec(&key(), &header(Framing::Varint), Content::MultiFileZip, &payload())
        .unwrap();
    assert_eq!(decrypt_to_vec(&other, &multi).unwrap_err(), Error::Corrupt);
}

#[test]
fn authentic_plaintext_that_is_not_zlib_is_a_decompression_error() {
    let header = header(Framing::Varint);
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut encoder, &payload()).unwrap();
    let zlib = encoder.finish().unwrap();
    let mut trailing = zlib.clone();
    trailing.push(b'x');
    let mut bad_checksum = zlib.clone();
    *bad_checksum.last_mut().unwrap() ^= 1;
    for (what, stream) in [
        ("garbage", b"not a zlib stream at all".to_vec()),
        ("empty", Vec::new()),
        ("cut short", zlib[..zlib.len() - 5].to_vec()),
        ("trailing data", trailing),
        ("bad adler32", bad_checksum),
    ] {
        let file = encrypt_compressed(&key(), &header, &stream).unwrap();
        let err = decrypt_to_vec(&key(), &file).unwrap_err();
        assert!(matches!(err, Error::Decompression(_)), "{what}: {err:?}");
        // The raw plaintext is still available, since it authenticated.
        let mut raw = Vec::new();
        Decryptor::new(&key(), Cursor::new(&file)).unwrap().decrypt_raw_to(&mut raw).unwrap();
        assert_eq!(raw, stream, "{what}");
    }
}

/// A seekable input that changes one byte once the first pass is over.
struct ChangesAfterFirstPass {
    inner: Cursor<Vec<u8>>,
    seeks: usize,
    at: usize,
}

impl Read for ChangesAfterFirstPass {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf)
    }
}

impl Seek for ChangesAfterFirstPass {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.seeks += 1;
        // Decryptor::new seeks three times (position, end, back); the fourth starts pass two.
        if self.seeks == 4 {
            self.inner.get_mut()[self.at] ^= 0x80;
        }
        self.inner.seek(pos)
    }
}

#[test]
fn an_input_that_changes_between_the_passes_is_reported() {
    let header = header(Framing::Varint);
    for content in [Content::default(), Content::MultiFileZip] {
        let file = encrypt_to_vec(&key(), &header, content, &payload()).unwrap();
        let input =
            ChangesAfterFirstPass { inner: Cursor::new(file), seeks: 0, at: header.len() + 3 };
        let decryptor = Decryptor::new(&key(), input).unwrap();
        let err = decryptor.decrypt_to(io::sink()).unwrap_err();
        assert_eq!(err, Error::InputChanged, "{content:?}");
    }
}

#[test]
fn no_plaintext_is_written_when_verification_fails() {
    let file =
        encrypt_to_vec(&key(), &header(Framing::Varint), Content::default(), &payload()).unwrap();
    let mut bad = file.clone();
    bad[file.len() - 20] ^= 1;
    // Verification happens in Decryptor::new, before any output exists.
    assert_eq!(Decryptor::new(&key(), Cursor::new(&bad)).err(), Some(Error::Corrupt));
}
