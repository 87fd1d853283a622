//! The bodies of the fuzz targets.
//!
//! Each function takes arbitrary bytes, must return normally whatever they are, and asserts
//! properties that hold for every input; a failed assertion is a bug found. The libFuzzer
//! harnesses in `fuzz/` are one-line wrappers around these functions, and the stable test
//! suite replays the seed corpora in `fuzz/corpus/` through them, so both run the same code.

use std::io::{Read, Write};
use std::ops::Range;
use std::sync::OnceLock;

use e2ee_backup_crypt15 as c15;
use e2ee_backup_format::header::{HEADER_LEN, MAGIC};
use e2ee_backup_format::{
    ChunkCipher, Compression, Decryptor, EncryptOptions, Encryptor, Error, Header, Metadata,
    RingGcm, RustCryptoGcm, encrypt_to_vec, read_header,
};
use e2ee_backup_kdf::digits::{self, DIGITS};
use e2ee_backup_kdf::{BackupKey, KeyParseError};
use sha2::{Digest, Sha256};

/// The key of every decrypting target. The seed files are encrypted under it, so the fuzzer
/// starts from inputs that get past the key check and the header MAC.
pub const FUZZ_KEY: [u8; 32] = [0x42; 32];
/// Chunk size of the seed files: 64 bytes, so that small files span several chunks.
pub const SEED_CHUNK_SIZE_LOG2: u8 = 6;
const SEED_CREATED_AT: u64 = 1_764_000_000;

/// Read sizes the decrypting targets cycle through: small and odd, to cross every boundary.
const SMALL_READS: &[usize] = &[1, 7, 3, 64, 13, 100];
/// One large read size, for the reference run.
const LARGE_READS: &[usize] = &[1 << 16];

/// The 64-digit key parser, fed the input as (lossily decoded) UTF-8.
///
/// An accepted key is exactly the input's hexadecimal digits and parses back from both of
/// its renderings. A rejection names the first character that is neither a digit nor a
/// separator, by its position among the characters, or else the true digit count.
pub fn key_digits(data: &[u8]) {
    let input = String::from_utf8_lossy(data);
    let chars: Vec<char> = input.chars().collect();
    let separator = |c: char| matches!(c, ' ' | '-' | '\n' | '\r');
    let allowed = |c: char| c.is_ascii_hexdigit() || separator(c);
    match digits::parse(&input) {
        Ok(key) => {
            let hex: String =
                chars.iter().filter(|c| !separator(**c)).map(char::to_ascii_lowercase).collect();
            assert_eq!(hex, digits::to_hex(&key).as_str(), "key is not the input's digits");
            let display = digits::to_display(&key);
            assert_eq!(display.len(), DIGITS + DIGITS / 4 - 1);
            for rendering in [display.as_str().to_owned(), digits::to_hex(&key).to_uppercase()] {
                assert_eq!(digits::parse(&rendering), Ok(key.clone()), "{rendering:?}");
            }
        }
        Err(KeyParseError::InvalidCharacter { position, character }) => {
            assert_eq!(chars.get(position), Some(&character), "wrong position");
            assert!(!allowed(character), "{character:?} is allowed in a key");
            assert!(
                chars[..position].iter().all(|&c| allowed(c)),
                "a bad character before position {position} was not reported"
            );
        }
        Err(KeyParseError::WrongLength { found }) => {
            assert!(chars.iter().all(|&c| allowed(c)), "a bad character was not reported");
            assert_eq!(found, chars.iter().filter(|c| c.is_ascii_hexdigit()).count());
            assert_ne!(found, DIGITS);
        }
    }
}

/// The header parser, on the first 96 bytes, and [`read_header`] on the whole input.
///
/// A header that parses encodes back to exactly the bytes it came from, so no two byte
/// strings mean the same header. `read_header` agrees with `Header::parse`, and on input
/// shorter than a header calls a foreign file not-a-backup and a cut-off one truncated.
pub fn header(data: &[u8]) {
    let read = read_header(&mut &data[..]);
    match data.first_chunk::<HEADER_LEN>() {
        Some(bytes) => {
            let parsed = Header::parse(bytes);
            if let Ok(header) = &parsed {
                assert_eq!(&header.encode(), bytes, "header does not re-encode");
                assert_eq!(header.file_id(), bytes[28..36]);
            }
            assert_eq!(read, parsed, "read_header and Header::parse disagree");
        }
        None => {
            let n = data.len().min(MAGIC.len());
            let expected = if data[..n] == MAGIC[..n] {
                Error::Truncated { file_len: data.len() as u64 }
            } else {
                Error::NotABackup
            };
            assert_eq!(read, Err(expected));
        }
    }
}

/// The metadata decoder: whatever it accepts is the canonical encoding of what it returns,
/// so re-encoding gives back the input byte for byte.
pub fn metadata(data: &[u8]) {
    if let Ok(metadata) = Metadata::decode(data) {
        assert_eq!(metadata.encode().as_deref(), Ok(data), "accepted a non-canonical encoding");
    }
}

/// The streaming decryptor, under [`FUZZ_KEY`].
///
/// Reads the input once in small odd-sized reads with `ring` and once in large reads with
/// the pure-Rust AES-GCM: both must give the same plaintext or fail with the same error
/// code. An error must repeat on every later read, the end must repeat too, and a plaintext
/// must have the length the metadata records.
pub fn decrypting_reader(data: &[u8]) {
    let key = BackupKey::from_bytes(FUZZ_KEY);
    let small = decrypt_in_reads::<RingGcm>(data, &key, SMALL_READS);
    let large = decrypt_in_reads::<RustCryptoGcm>(data, &key, LARGE_READS);
    assert_eq!(small, large, "the outcome depends on the read size or the cipher");
}

/// Structure-aware companion of [`decrypting_reader`]: damages a valid file and checks that
/// the damage is caught.
///
/// `data[0]` picks one of the [`seed_files`], `data[1]` the kind of damage and the rest where
/// and how: cut the file short (must report truncated), append bytes (trailing-data), flip
/// bits, overwrite bytes, drop, repeat or swap records, or put in a record of another file.
/// Any file that differs from the original must be rejected; the original must decrypt.
pub fn mutated_backup(data: &[u8]) {
    let [pick, kind, rest @ ..] = data else {
        return;
    };
    let seeds = cached_seeds();
    let original = &seeds[usize::from(*pick) % seeds.len()].1;
    let other = &seeds[(usize::from(*pick) + 1) % seeds.len()].1;
    let word = |i: usize| usize::from(u16::from_be_bytes([byte(rest, i), byte(rest, i + 1)]));
    let ranges = records(original);
    let record = |i: usize| ranges[word(i) % ranges.len()].clone();

    let mut file = original.clone();
    let mut expected = None;
    match kind % 8 {
        0 => {
            file.truncate(word(0) % original.len());
            expected = Some("truncated");
        }
        1 => {
            let tail = rest.get(2..).filter(|t| !t.is_empty()).unwrap_or(&[0]);
            file.extend_from_slice(tail);
            expected = Some("trailing-data");
        }
        2 => file[word(0) % original.len()] ^= byte(rest, 2).max(1),
        3 => {
            let at = word(0) % original.len();
            let with = rest.get(2..).unwrap_or_default();
            let end = (at + with.len()).min(file.len());
            file[at..end].copy_from_slice(&with[..end - at]);
        }
        4 => {
            file.drain(record(0));
        }
        5 => {
            let r = record(0);
            file.splice(r.end..r.end, original[r].iter().copied());
        }
        6 => {
            let (a, b) = (record(0), record(2));
            let (first, second) = if a.start <= b.start { (a, b) } else { (b, a) };
            file.splice(second.clone(), original[first.clone()].iter().copied());
            file.splice(first, original[second].iter().copied());
        }
        _ => {
            // A record of another file made under the same key.
            let theirs = records(other);
            let source = &other[theirs[word(2) % theirs.len()].clone()];
            file.splice(record(0), source.iter().copied());
        }
    }

    let key = BackupKey::from_bytes(FUZZ_KEY);
    let outcome = decrypt_in_reads::<RingGcm>(&file, &key, SMALL_READS);
    if file == *original {
        assert!(outcome.is_ok(), "a seed file no longer decrypts: {outcome:?}");
    } else if let Some(code) = expected {
        assert_eq!(outcome.map(|_| ()), Err(code));
    } else {
        assert!(outcome.is_err(), "a damaged file decrypted");
    }
}

/// Valid files under [`FUZZ_KEY`], as (name, bytes): a few small payloads, stored and
/// zstd-compressed, with 64-byte chunks, a fixed creation time and a salt derived from the
/// name, so the same files come out every time.
pub fn seed_files() -> Vec<(String, Vec<u8>)> {
    let key = BackupKey::from_bytes(FUZZ_KEY);
    let pattern = |len: usize| -> Vec<u8> { (0..len).map(|i| (i * 37 % 251) as u8).collect() };
    let payloads = [
        ("empty", Vec::new()),
        ("short", b"hello, fuzzer".to_vec()),
        ("one-chunk", pattern(64)),
        ("four-chunks", pattern(200)),
    ];
    let mut seeds = Vec::new();
    for compression in [Compression::None, Compression::Zstd] {
        for (label, payload) in &payloads {
            let name = format!("seed-{}-{label}", compression.name());
            let options = seed_options(&name, compression);
            let file = encrypt_to_vec(&key, options, payload).expect("seed files encrypt");
            seeds.push((name, file));
        }
        // A streamed file: no recorded length, and metadata fields.
        let name = format!("seed-{}-streamed-fields", compression.name());
        let mut options = seed_options(&name, compression);
        options.metadata.fields =
            [("app", "fuzz"), ("device", "none")].map(|(k, v)| (k.to_owned(), v.to_owned())).into();
        let mut encryptor = Encryptor::new(Vec::new(), &key, options).expect("valid options");
        encryptor.write_all(&pattern(100)).expect("writes to a Vec");
        seeds.push((name, encryptor.finish().expect("seed files encrypt")));
    }
    seeds
}

fn seed_options(name: &str, compression: Compression) -> EncryptOptions {
    let salt = Sha256::digest(format!("e2ee-backups fuzz seed {name}")).into();
    let mut options = EncryptOptions::default().with_fixed_salt_for_test_vectors(salt);
    options.compression = compression;
    options.chunk_size_log2 = SEED_CHUNK_SIZE_LOG2;
    options.metadata.created_at = SEED_CREATED_AT;
    options
}

fn cached_seeds() -> &'static [(String, Vec<u8>)] {
    static SEEDS: OnceLock<Vec<(String, Vec<u8>)>> = OnceLock::new();
    SEEDS.get_or_init(seed_files)
}

fn byte(bytes: &[u8], i: usize) -> u8 {
    bytes.get(i).copied().unwrap_or(0)
}

/// The byte ranges of the records of a seed file.
fn records(file: &[u8]) -> Vec<Range<usize>> {
    let header = read_header(&mut &file[..]).expect("seed files have a valid header");
    let record_len = header.chunk_size() + 32;
    let mut start = HEADER_LEN + header.metadata_len as usize;
    let mut out = Vec::new();
    while start < file.len() {
        let end = (start + record_len).min(file.len());
        out.push(start..end);
        start = end;
    }
    out
}

/// What decrypting gave: the plaintext, or the code of the first error.
type Outcome = Result<Vec<u8>, &'static str>;

/// Decrypts `file`, cycling through `reads` as read sizes, and checks how the reader behaves
/// around its end and its errors.
fn decrypt_in_reads<C: ChunkCipher>(file: &[u8], key: &BackupKey, reads: &[usize]) -> Outcome {
    let mut decryptor = Decryptor::<_, C>::with_cipher(file, key).map_err(|e| e.code())?;
    let recorded = decryptor.metadata().plaintext_len;
    let mut buf = vec![0u8; reads.iter().copied().max().unwrap_or(1)];
    let mut plaintext = Vec::new();
    for &size in reads.iter().cycle() {
        match decryptor.read(&mut buf[..size]) {
            Ok(0) => {
                assert_eq!(decryptor.read(&mut buf[..size]).ok(), Some(0), "end not sticky");
                if let Some(len) = recorded {
                    assert_eq!(plaintext.len() as u64, len, "plaintext length not checked");
                }
                return Ok(plaintext);
            }
            Ok(n) => plaintext.extend_from_slice(&buf[..n]),
            Err(err) => {
                let first = Error::from_io_error(err);
                for again in [1, size, 0] {
                    let later = decryptor.read(&mut buf[..again]).map(|_| ());
                    assert_eq!(later.map_err(Error::from_io_error), Err(first.clone()));
                }
                return Err(first.code());
            }
        }
    }
    unreachable!("`reads` is never empty")
}

/// The crypt15 header parser, [`c15::FileHeader::parse`], on the whole input.
///
/// A header that parses is a prefix of the input and gives back exactly its bytes; its parsed
/// prefix is what its protobuf bytes parse to, and the canonical encoding of that prefix parses
/// back to it. When the length was written as a framing writes it (the shortest varint; or,
/// below 128 bytes, the length byte and the `0x01` flag byte), framing the same protobuf bytes
/// again gives the header's bytes. A truncated header reports the input's length and needs more.
pub fn crypt15_header(data: &[u8]) {
    match c15::FileHeader::parse(data) {
        Ok(header) => {
            let bytes = header.to_bytes();
            assert_eq!(bytes.len(), header.len());
            assert!(data.starts_with(&bytes), "header bytes are not the input's");
            let prefix = header.prefix();
            assert_eq!(c15::BackupPrefix::parse(header.prefix_bytes()).as_ref(), Ok(prefix));
            assert_eq!(&prefix.iv, header.iv());
            let canonical = prefix.encode();
            assert_eq!(c15::BackupPrefix::parse(&canonical).as_ref(), Ok(prefix), "re-encoding");
            let framing = if header.has_flag_byte() {
                c15::Framing::LengthByteAndFlag
            } else {
                c15::Framing::Varint
            };
            let prefix_len = header.prefix_bytes().len();
            let mut lead = Vec::new();
            let mut len = prefix_len;
            while len >= 0x80 {
                lead.push(len as u8 | 0x80);
                len >>= 7;
            }
            lead.push(len as u8);
            // A flag byte after a length of 128 or more is read, but no framing writes it.
            if header.has_flag_byte() && prefix_len < 0x80 {
                lead.push(0x01);
            }
            if bytes.starts_with(&lead) && bytes.len() == lead.len() + prefix_len {
                let framed = c15::FileHeader::from_prefix_bytes(header.prefix_bytes(), framing)
                    .expect("a parsed prefix frames");
                assert_eq!(framed.to_bytes(), bytes, "canonical header does not re-frame");
                assert_eq!(framed.prefix(), prefix);
            }
        }
        Err(c15::Error::Truncated { file_len, needed, .. }) => {
            assert_eq!(file_len, data.len() as u64, "truncated reports another length");
            assert!(needed > file_len);
        }
        Err(c15::Error::MalformedHeader(_)) => {}
        Err(other) => panic!("unexpected header error {other:?}"),
    }
}

/// The `encrypted_backup.key` parser: an accepted file is exactly the encoding of its key; a
/// wrong header byte is the first byte that differs from the Java serialisation header; a
/// wrong length comes only after a right header and names the input's length.
pub fn crypt15_keyfile(data: &[u8]) {
    use c15::keyfile::{KEY_FILE_HEADER, KEY_FILE_LEN};
    match c15::keyfile::parse(data) {
        Ok(key) => assert_eq!(&c15::keyfile::encode(&key)[..], data, "key file re-encoding"),
        Err(c15::KeyFileError::WrongHeader { offset, found, expected, .. }) => {
            assert_eq!(data.get(offset), Some(&found));
            assert_eq!(KEY_FILE_HEADER[offset], expected);
            assert_ne!(found, expected);
            assert_eq!(data[..offset], KEY_FILE_HEADER[..offset], "an earlier wrong byte");
        }
        Err(c15::KeyFileError::WrongLength { found, expected }) => {
            assert_eq!((found, expected), (data.len(), KEY_FILE_LEN));
            assert_ne!(found, KEY_FILE_LEN);
            let n = data.len().min(KEY_FILE_HEADER.len());
            assert_eq!(data[..n], KEY_FILE_HEADER[..n], "a wrong header byte not reported");
        }
        Err(other) => panic!("unexpected key file error {other:?}"),
    }
}

/// crypt15 decryption under [`FUZZ_KEY`] with [`c15::decrypt_to_vec`].
///
/// Never panics, and fails only with a code that describes a file (no I/O, no input-changed,
/// no invalid-input). A file that decrypts re-verifies: decrypting it again gives the same
/// result, and encrypting its GCM plaintext (the zlib stream, or the ZIP) behind its own header
/// gives back the file byte for byte. Besides, if the input parses as a header, a small
/// database encrypted behind that header must decrypt to itself.
pub fn crypt15_decrypt(data: &[u8]) {
    let key = BackupKey::from_bytes(FUZZ_KEY);
    match c15::decrypt_to_vec(&key, data) {
        Ok(decrypted) => {
            let again = c15::decrypt_to_vec(&key, data).expect("a file decrypts twice");
            assert_eq!(again.plaintext, decrypted.plaintext);
            let mut raw = Vec::new();
            c15::Decryptor::new(&key, std::io::Cursor::new(data))
                .and_then(|d| d.decrypt_raw_to(&mut raw))
                .expect("a decrypted file decrypts raw");
            let content = match decrypted.variant {
                c15::Variant::SingleFile => c15::Content::Compressed,
                c15::Variant::MultiFile => c15::Content::MultiFileZip,
            };
            if decrypted.variant == c15::Variant::MultiFile {
                assert_eq!(raw, decrypted.plaintext, "a ZIP is not inflated");
            }
            match c15::encrypt_to_vec(&key, &decrypted.header, content, &raw) {
                Ok(file) => assert!(file == data, "re-encryption differs from the file"),
                // The reader accepts any authentic multi-file content that is not zlib; the
                // writer refuses content shorter than the smallest ZIP.
                Err(c15::Error::InvalidInput(_))
                    if decrypted.variant == c15::Variant::MultiFile && raw.len() < 22 => {}
                Err(err) => panic!("a decrypted file does not re-encrypt: {err:?}"),
            }
        }
        Err(err) => {
            let allowed = [
                "truncated",
                "malformed-header",
                "wrong-key",
                "checksum-mismatch",
                "corrupt",
                "decompression",
            ];
            assert!(allowed.contains(&err.code()), "unexpected error {err:?}");
            if let c15::Error::Truncated { file_len, needed, .. } = err {
                assert_eq!(file_len, data.len() as u64);
                assert!(needed > file_len);
            }
        }
    }
    if let Ok(header) = c15::FileHeader::parse(data) {
        let database = &data[header.len()..];
        let file = c15::encrypt_to_vec(&key, &header, c15::Content::default(), database)
            .expect("any parsed header encrypts");
        let decrypted = c15::decrypt_to_vec(&key, &file).expect("a fresh file decrypts");
        assert_eq!(decrypted.plaintext, database);
        assert_eq!(decrypted.header, header);
        assert_eq!(decrypted.variant, c15::Variant::SingleFile);
    }
}

/// Valid crypt15 files under [`FUZZ_KEY`], as (name, bytes): single-file backups of a few
/// sizes and framings, one with a feature table, multi-file backups, and a single-file
/// backup cut at its MD5 trailer. Fixed IVs, so the same files come out every time.
pub fn crypt15_seed_files() -> Vec<(String, Vec<u8>)> {
    use c15::header::{BackupInfo, BackupPrefix, FileHeader, Framing};
    let key = BackupKey::from_bytes(FUZZ_KEY);
    let iv = |name: &str| -> [u8; c15::IV_LEN] {
        Sha256::digest(format!("e2ee-backups crypt15 fuzz seed {name}"))[..16]
            .try_into()
            .expect("16 bytes")
    };
    let header = |name: &str, info: Option<BackupInfo>, framing| {
        let mut prefix = BackupPrefix::minimal(iv(name));
        prefix.info = info;
        FileHeader::new(prefix, framing).expect("seed headers frame")
    };
    let suffix = BackupInfo {
        app_version: Some("2.24.11.79".into()),
        jid_suffix: Some("07".into()),
        ..BackupInfo::default()
    };
    let mut features = BackupInfo { backup_version: Some(1), ..suffix.clone() };
    for field in 5..=39 {
        features.features.set(field, Some(field % 3 != 0)).expect("fields 5 to 39");
    }
    let text = |len: usize| -> Vec<u8> {
        b"see you at 8pm ok ".iter().copied().cycle().take(len).collect()
    };
    let zip = crate::crypt15::stored_zip(&[("sticker.webp", b"RIFF\0\0\0\0WEBP")]);
    let mut seeds = Vec::new();
    for (name, info, framing, content, payload) in [
        ("empty", None, Framing::Varint, c15::Content::default(), Vec::new()),
        ("short", None, Framing::LengthByteAndFlag, c15::Content::default(), b"hello".to_vec()),
        ("text", Some(suffix.clone()), Framing::Varint, c15::Content::default(), text(300)),
        ("stored", None, Framing::Varint, c15::Content::Database { level: 0 }, text(100)),
        ("features", Some(features), Framing::LengthByteAndFlag, c15::Content::default(), text(50)),
        ("multi", None, Framing::Varint, c15::Content::MultiFileZip, zip.clone()),
        ("multi-suffix", Some(suffix), Framing::LengthByteAndFlag, c15::Content::MultiFileZip, zip),
    ] {
        let name = format!("crypt15-{name}");
        let header = header(&name, info, framing);
        let file = c15::encrypt_to_vec(&key, &header, content, &payload).expect("seeds encrypt");
        seeds.push((name, file));
    }
    let stripped = seeds[2].1[..seeds[2].1.len() - c15::MD5_LEN].to_vec();
    seeds.push(("crypt15-text-without-md5".into(), stripped));
    seeds
}
