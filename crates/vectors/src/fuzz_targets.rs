//! The bodies of the fuzz targets: every decoder of spec chapters 2 (2.2), 3 (3.2-3.6), 4
//! (4.2-4.4, 4.7, 4.8, 4.10.1) and 6 (6.2-6.6).
//!
//! Each function takes arbitrary bytes, must return normally whatever they are, and asserts
//! properties that hold for every input; a failed assertion is a bug found. The libFuzzer
//! harnesses in `fuzz/` are one-line wrappers around these functions, and the stable test
//! suite replays the seed corpora in `fuzz/corpus/` through them, so both run the same code.
//!
//! One file, though over 700 lines: one short function per target, all using the helpers at
//! the top; the fuzz harnesses name them by path from here.

use crate::account_id;
use e2ee_backup_vault::{
    AccountRecord, AccountState, Auditor, ChannelError, Command, Endpoint, FleetAuthority,
    FleetBundle, FleetId, FleetPublicKey, FleetSecretKey, Hsm, HsmConfig, HsmError, HsmSecrets,
    KsfProfile, Login, MemoryVault, PinnedFleet, RecordChange, RefusalReason, Registration,
    Request, Response, UNCHARGED_REMAINING,
    envelope::{self, RequestEnvelope},
    internal::{record::REGISTRATION_LEN, wire::Writer, wrap::SEALED_KEY_LEN},
    peer,
};
use std::io::{Read, Write};
use std::ops::Range;
use std::sync::{Mutex, OnceLock, PoisonError};

use e2ee_backup_crypt15 as c15;
use e2ee_backup_format::header::{HEADER_LEN, MAGIC};
use e2ee_backup_format::{
    ChunkCipher, Compression, Decryptor, EncryptOptions, Encryptor, Error, Header, Metadata,
    RingGcm, RustCryptoGcm, encrypt_to_vec, read_header,
};
use e2ee_backup_kdf::digits::{self, DIGITS};
use e2ee_backup_kdf::{BackupKey, KeyParseError};
use rand_core::{CryptoRng, RngCore};
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

// The Backup Key Vault: its decoders, its channel, and its HSM behind the in-memory driver.

/// The fleet of the vault targets' HSM.
pub const VAULT_FLEET: &[u8] = b"fleet.fuzz";
/// The account the vault targets register, log in to and send requests for.
pub const VAULT_ACCOUNT: &[u8] = b"fuzz-account";
/// An account nobody registered: the HSM-plaintext target sends every request to it too.
pub const VAULT_GHOST: &[u8] = b"fuzz-ghost";
/// The vault's clock, in Unix seconds.
pub const VAULT_NOW: u64 = 1_800_000_000;
/// The guess budget of the vault targets' HSM.
pub const VAULT_BUDGET: u8 = 3;
const VAULT_PASSWORD: &[u8] = b"fuzz password";
/// The epoch the fleet-bundle target's client has already accepted.
const FLEET_LAST_SEEN: u64 = 7;
const FLEET_AUTHORITY_SEED: [u8; 32] = [0xa1; 32];
const FLEET_AUDITOR_SEED: [u8; 32] = [0xa2; 32];

/// A deterministic generator: SHA-256 in counter mode over a label.
///
/// The vault takes its randomness from a `CryptoRng`; the vault targets need the same keys,
/// nonces and tickets on every run, so that the seed corpora stay valid and a crash replays.
/// It is predictable by design: for fuzzing and seed generation only, never for keys.
pub struct FuzzRng {
    seed: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl FuzzRng {
    /// The generator named `label`.
    pub fn new(label: &str) -> Self {
        let seed = Sha256::digest(format!("e2ee-backups vault fuzz generator {label}")).into();
        Self { seed, counter: 0, block: [0; 32], used: 32 }
    }
}

impl RngCore for FuzzRng {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }

    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for byte in dest {
            if self.used == self.block.len() {
                let mut hash = Sha256::new();
                hash.update(self.seed);
                hash.update(self.counter.to_be_bytes());
                self.block = hash.finalize().into();
                self.counter += 1;
                self.used = 0;
            }
            *byte = self.block[self.used];
            self.used += 1;
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for FuzzRng {}

/// [`Request::decode`]: what it accepts is the canonical encoding of what it returns.
pub fn vault_request(data: &[u8]) {
    if let Ok(request) = Request::decode(data) {
        assert!(request.encode() == data, "{request:?}: accepted a non-canonical encoding");
    }
}

/// [`Response::decode`]: what it accepts is the canonical encoding of what it returns.
pub fn vault_response(data: &[u8]) {
    if let Ok(response) = Response::decode(data) {
        assert!(response.encode() == data, "{response:?}: accepted a non-canonical encoding");
    }
}

/// [`AccountRecord::decode`]: what it accepts re-encodes to the input and keeps the record's
/// invariants (a budget of at least 1 that bounds what remains and what is pending; a
/// registration and a sealed K exactly when registered). Locking it gives a record that is
/// stored and read back unchanged.
pub fn vault_record(data: &[u8]) {
    let Ok(record) = AccountRecord::decode(data) else {
        return;
    };
    assert!(record.encode() == data, "{record:?}: accepted a non-canonical encoding");
    check_record(&record);
    let mut locked = record.clone();
    locked.lock();
    assert_eq!(locked.state, AccountState::Locked);
    assert_eq!(AccountRecord::decode(&locked.encode()).as_ref(), Ok(&locked), "locked record");
}

/// What every stored record satisfies.
fn check_record(record: &AccountRecord) {
    assert!(record.budget >= 1 && record.remaining <= record.budget, "{record:?}");
    assert!(record.pending.len() <= usize::from(record.budget), "{record:?}");
    let registered = record.state == AccountState::Registered;
    assert_eq!(record.registration.len(), if registered { REGISTRATION_LEN } else { 0 });
    assert_eq!(record.sealed_key.len(), if registered { SEALED_KEY_LEN } else { 0 });
}

/// The request envelope, as the relay and the HSM read it.
///
/// [`RequestEnvelope::parse`] accepts exactly the concatenation of its fields, within their
/// bounds. The HSM of [`vault_fixture`] opens the input only if it is one of the envelopes
/// the fixture sealed (any other byte string, a copy of one with a bit changed included, must
/// not open), and otherwise fails with the parser's error, an unknown key id or "does not
/// open". The in-memory driver answers exactly the envelopes the HSM opens.
pub fn vault_envelope(data: &[u8]) {
    let fixture = vault_fixture();
    let parsed = RequestEnvelope::parse(data);
    if let Ok(envelope) = &parsed {
        let account = envelope.account_id();
        assert!((1..=e2ee_backup_vault::MAX_ID_LEN).contains(&account.len()));
        let ciphertext = envelope.ciphertext();
        let bounds = envelope::TAG_LEN..=envelope::MAX_PLAINTEXT_LEN + envelope::TAG_LEN;
        assert!(bounds.contains(&ciphertext.len()));
        let rebuilt = Writer::new()
            .u8(envelope::VERSION)
            .u8(envelope.key_id())
            .vec16(account)
            .bytes(envelope.enc())
            .bytes(ciphertext)
            .finish();
        assert!(rebuilt == data, "an envelope is not the concatenation of its fields");
    }
    let sealed_by_fixture = fixture.envelopes.iter().any(|(_, envelope)| envelope == data);
    match (fixture.hsm.open(data), &parsed) {
        (Ok(opened), Ok(envelope)) => {
            assert!(sealed_by_fixture, "an envelope nobody sealed opened");
            assert_eq!(opened.account(), envelope.account_id());
        }
        (Ok(_), Err(err)) => panic!("an envelope that does not parse ({err}) opened"),
        (Err(HsmError::Channel(err)), Err(parse_err)) => assert_eq!(&err, parse_err),
        (Err(HsmError::Channel(err)), Ok(_)) => {
            assert!(!sealed_by_fixture, "a sealed envelope does not open: {err}");
            assert!(
                matches!(err, ChannelError::UnknownKeyId(_) | ChannelError::RequestDoesNotOpen),
                "unexpected error {err:?}"
            );
        }
        (Err(other), _) => panic!("unexpected error {other:?}"),
    }
    // Only envelopes that open change the driver's records, and those are the fixture's, so
    // sharing one vault between inputs changes no outcome checked here.
    let mut vault = fixture.envelope_vault.lock().unwrap_or_else(PoisonError::into_inner);
    let answer = vault.call(&mut FuzzRng::new("envelope driver"), data);
    assert_eq!(answer.is_ok(), sealed_by_fixture, "the driver disagrees with the HSM");
}

/// The fleet key bundle: [`FleetBundle::decode`] on the input and on the body inside it, and
/// [`PinnedFleet::verify`] of the input as a signed bundle, pinned to a fixed authority, with
/// and without a fixed auditor, at [`VAULT_NOW`], after epoch 7.
///
/// A decoded body re-encodes to its bytes. An accepted bundle is the signed body, of the
/// pinned fleet, not expired, not rolled back. Pinning the auditor only ever turns an
/// acceptance into a rejection. The auditor countersigns exactly the bundles the authority
/// signed with a body that decodes, and a countersigned bundle verifies with the auditor
/// pinned exactly as the original does without it.
pub fn vault_fleet_bundle(data: &[u8]) {
    let pins = fleet_pins();
    let body = data
        .first_chunk::<2>()
        .and_then(|len| data.get(2..2 + usize::from(u16::from_be_bytes(*len))));
    for bytes in [Some(data), body].into_iter().flatten() {
        if let Ok(bundle) = FleetBundle::decode(bytes) {
            assert_eq!(bundle.encode().as_deref(), Ok(bytes), "accepted a non-canonical body");
        }
    }
    let verified = pins.authority_only.verify(data, VAULT_NOW, Some(FLEET_LAST_SEEN));
    if let Ok(bundle) = &verified {
        assert_eq!(bundle.encode().ok().as_deref(), body, "the bundle is not the signed body");
        assert_eq!(bundle.fleet_id, VAULT_FLEET);
        assert!(VAULT_NOW <= bundle.not_after && bundle.epoch >= FLEET_LAST_SEEN);
    }
    let audited = pins.audited.verify(data, VAULT_NOW, Some(FLEET_LAST_SEEN));
    if audited.is_ok() {
        assert_eq!(audited, verified, "the auditor pin accepted what the authority pin did not");
    }
    match pins.auditor.countersign(&pins.authority_only.authority, data) {
        Ok(countersigned) => {
            let again = pins.audited.verify(&countersigned, VAULT_NOW, Some(FLEET_LAST_SEEN));
            assert_eq!(again, verified, "countersigning changed the verdict");
        }
        Err(err) => assert!(verified.is_err(), "countersigning a verified bundle failed: {err}"),
    }
}

/// The input as a request plaintext, sealed through the channel to the HSM of
/// [`vault_fixture`] and answered by a fresh in-memory vault, for [`VAULT_ACCOUNT`] and then
/// for [`VAULT_GHOST`].
///
/// Before the input, the vault replays the fixture's setup: the account is registered, has
/// logged in once (so it holds a token, which the `delete` seed carries) and has one attempt
/// pending (whose ticket and KE3 the `login-finish` seed carries). The HSM must answer every
/// input with a sealed response that opens and decodes, refuse a plaintext that is not a
/// request as invalid, and keep the accounting: a stored record stays valid, attempts left
/// never grow but through a login that succeeds or a registration, each answer fits its
/// request, and the account nobody registered never logs in.
pub fn vault_hsm_plaintext(data: &[u8]) {
    let fixture = vault_fixture();
    let mut rng = FuzzRng::new("plaintext driver");
    let mut vault = fixture.set_up_vault(&mut rng);
    let request = Request::decode(data);
    for account in [VAULT_ACCOUNT, VAULT_GHOST] {
        let before = vault.record(account).cloned();
        let Some(response) = fixture.ask(&mut vault, &mut rng, account, data) else {
            assert!(data.len() > envelope::MAX_PLAINTEXT_LEN, "a short plaintext does not seal");
            return;
        };
        let after = vault.record(account);
        check_answer(request.as_ref().ok(), &response, before.as_ref(), after);
        if account == VAULT_GHOST {
            assert!(
                !matches!(response, Response::LoginSucceeded { .. } | Response::Deleted),
                "{response:?} for an account nobody registered"
            );
        }
    }
}

/// A replicated vault's command (spec section 7.3), as every replica decodes and applies it.
///
/// [`Command::decode`] accepts only canonical encodings; applying any command that decodes to
/// the fixture's registered record, and to no record, leaves a valid record.
pub fn vault_command(data: &[u8]) {
    let Ok(command) = Command::decode(data) else {
        return;
    };
    assert!(command.encode() == data, "{command:?}: accepted a non-canonical encoding");
    let fixture = vault_fixture();
    for record in [Some(fixture.record.clone()), None] {
        let stored = fixture.hsm.apply(&command, record).persist(|change| {
            if let RecordChange::Put(record) = change {
                check_record(record);
            }
            Ok::<(), std::convert::Infallible>(())
        });
        let Ok(_decision) = stored;
    }
}

/// The peer key of the peer-message target's fleet.
const PEER_KEY: [u8; 32] = [0x70; 32];
/// The time (ms) at which the peer-message target receives.
const PEER_NOW_MS: u64 = 1_780_000_000_000;

/// The request the peer-message target's node 1 sends node 2 on `append`, and what opens its
/// reply (the same every time).
fn peer_request() -> (Vec<u8>, peer::Outgoing) {
    let mut rng = FuzzRng::new("peer request");
    peer::seal_request(&mut rng, &PEER_KEY, "append", (1, 2), PEER_NOW_MS, b"entries")
}

/// Peer-message seeds: the request, its reply, and each one change away.
fn peer_seeds() -> Vec<(String, Vec<u8>)> {
    let (request, _) = peer_request();
    let (_, incoming) = peer::Receiver::new(2)
        .open_request(&PEER_KEY, "append", &request, PEER_NOW_MS, false)
        .expect("the seed request opens");
    let mut rng = FuzzRng::new("peer reply");
    let reply = incoming.seal_reply(&mut rng, &PEER_KEY, PEER_NOW_MS, b"ok");
    let changed = |bytes: &[u8], at: usize| {
        let mut out = bytes.to_vec();
        out[at] ^= 1;
        out
    };
    vec![
        ("request".to_owned(), request.clone()),
        ("reply".to_owned(), reply.clone()),
        ("request-other-receiver".to_owned(), changed(&request, 16)),
        ("request-flipped-tag".to_owned(), changed(&request, request.len() - 1)),
        ("reply-flipped-id".to_owned(), changed(&reply, peer::HEADER_LEN - 1)),
        ("header-only".to_owned(), request[..peer::HEADER_LEN].to_vec()),
        ("empty".to_owned(), Vec::new()),
    ]
}

/// A sealed peer message (spec 7.7) as node 2 receives it on `append`, and as node 1 takes it
/// for the reply to its request: refused with a typed error unless it is exactly the message
/// sealed for that purpose, never a panic; a request opens once only.
pub fn vault_peer_message(data: &[u8]) {
    let (request, outgoing) = peer_request();
    let mut receiver = peer::Receiver::new(2);
    match receiver.open_request(&PEER_KEY, "append", data, PEER_NOW_MS, false) {
        Ok((plain, incoming)) => {
            assert!(data == request.as_slice(), "a request nobody sealed opened");
            assert_eq!(plain.as_slice(), b"entries");
            assert_eq!((incoming.header().from, incoming.header().to), (1, 2));
            let again = receiver.open_request(&PEER_KEY, "append", data, PEER_NOW_MS, false);
            assert_eq!(again.err(), Some(peer::PeerError::Replayed));
        }
        Err(e) => assert!(!e.code().is_empty()),
    }
    if let Ok(plain) = outgoing.open_reply(&PEER_KEY, data) {
        assert_eq!(plain.as_slice(), b"ok", "a reply nobody sealed opened");
    }
    // The header parses from any 41 bytes whose first byte names a direction, and re-encodes.
    if let Ok(header) = peer::Header::decode(data) {
        assert!(header.encode().as_slice() == &data[..peer::HEADER_LEN]);
    }
}

/// Checks that `response` fits `request` (`None`: not a request) and what it did to the
/// record, from `before` to `after`.
fn check_answer(
    request: Option<&Request>,
    response: &Response,
    before: Option<&AccountRecord>,
    after: Option<&AccountRecord>,
) {
    if let Some(record) = after {
        check_record(record);
        assert_eq!(AccountRecord::decode(&record.encode()).as_ref(), Ok(record), "record");
        // Each pending attempt names its own earlier charge.
        for (i, attempt) in record.pending.iter().enumerate() {
            assert!(attempt.serial < record.charges, "{record:?}: a serial from the future");
            assert!(
                record.pending[..i].iter().all(|a| a.id != attempt.id && a.serial < attempt.serial)
            );
        }
    }
    let remaining = |record: Option<&AccountRecord>| record.map_or(VAULT_BUDGET, |r| r.remaining);
    let kind = request.map(Request::name);
    match response {
        Response::RegisterChallenge { .. } => {
            assert_eq!(kind, Some("RegisterStart"));
            assert!(after == before, "a registration challenge changed the record");
        }
        Response::Registered { budget } => {
            assert_eq!(kind, Some("RegisterFinish"));
            let record = after.expect("a registration is stored");
            assert_eq!((record.state, record.budget), (AccountState::Registered, *budget));
            assert!(record.pending.is_empty() && record.token.is_none(), "{record:?}");
        }
        Response::LoginChallenge { remaining: left, ksf_profile, .. } => {
            assert_eq!(kind, Some("LoginStart"));
            let record = after.expect("a charged attempt is stored");
            assert_eq!((record.remaining, record.ksf_profile), (*left, *ksf_profile));
            assert!(*left < remaining(before) || after == before, "KE2 without a charge");
        }
        Response::LoginSucceeded { sealed_key, record_version, token, remaining: left } => {
            assert_eq!(kind, Some("LoginFinish"));
            let record = after.expect("a login is stored");
            assert_eq!(record.state, AccountState::Registered);
            assert_eq!((record.remaining, record.budget), (*left, *left));
            assert_eq!(
                (&record.sealed_key[..], record.record_version),
                (&sealed_key[..], *record_version)
            );
            assert!(record.token.as_ref().is_some_and(|t| t.admits(token, VAULT_NOW)), "token");
            assert!(record.pending.is_empty(), "a login left attempts pending");
        }
        Response::Deleted => {
            assert_eq!(kind, Some("Delete"));
            // Spec 4.10.2: a deletion leaves a tombstone (a phantom that keeps the version
            // and the charges), never an empty slot a replayed registration could refill.
            let tombstone = after.expect("a deletion leaves a tombstone");
            assert_eq!(tombstone.state, AccountState::Phantom, "a deleted record is still there");
            let kept = before.expect("only a registered account deletes");
            assert_eq!(
                (tombstone.record_version, tombstone.charges),
                (kept.record_version, kept.charges),
                "a tombstone forgot the version or the charges"
            );
        }
        Response::Refused { reason, remaining: left } => {
            if request.is_none() {
                assert_eq!(*reason, RefusalReason::InvalidRequest);
            }
            if *reason == RefusalReason::Locked {
                assert_eq!(after.map(|r| r.state), Some(AccountState::Locked));
            } else if let Some(record) = after {
                assert_ne!(record.state, AccountState::Locked, "locked, but refused {reason:?}");
                // Spec 4.10.2: a refusal that used up a charged attempt (its record changed)
                // tells what is left; every other refusal carries the constant, whatever the
                // record says.
                let expected =
                    if before == Some(record) { UNCHARGED_REMAINING } else { record.remaining };
                assert_eq!(*left, expected, "a refusal misreports attempts left");
            }
            if request.is_none() || before.is_none() {
                assert!(after == before, "a refusal of {kind:?} stored a record");
            }
        }
    }
    // A deletion (which needs the token of a login that already restored the budget) leaves
    // a tombstone with the policy's budget.
    if !matches!(
        response,
        Response::LoginSucceeded { .. } | Response::Registered { .. } | Response::Deleted
    ) && after.is_some()
    {
        assert!(remaining(after) <= remaining(before), "attempts left grew: {response:?}");
    }
    if let (Some(old), Some(new)) = (before, after) {
        assert!(new.charges >= old.charges, "the charge count went down");
        if old.state == AccountState::Locked {
            assert!(new == old, "a locked record changed");
        }
    }
}

/// The fixed vault of the vault targets: an HSM with secrets drawn from a [`FuzzRng`], the
/// envelopes of a whole client session against it, and what they leave in the records.
pub struct VaultFixture {
    secrets: Vec<u8>,
    hsm: Hsm,
    channel_key: FleetSecretKey,
    key_id: u8,
    public: FleetPublicKey,
    /// Brings a fresh vault to `record`: a registration, a whole login, a second KE1.
    setup: Vec<Vec<u8>>,
    record: AccountRecord,
    /// Every envelope the fixture sealed, by name.
    envelopes: Vec<(String, Vec<u8>)>,
    envelope_vault: Mutex<MemoryVault>,
}

/// The vault targets' fixture, built on first use.
pub fn vault_fixture() -> &'static VaultFixture {
    static FIXTURE: OnceLock<VaultFixture> = OnceLock::new();
    FIXTURE.get_or_init(VaultFixture::build)
}

impl VaultFixture {
    fn build() -> Self {
        let secrets = HsmSecrets::generate(
            &mut FuzzRng::new("hsm secrets"),
            FleetId::from_static(VAULT_FLEET),
        );
        let bytes = secrets.to_bytes().to_vec();
        let (key_id, public) = secrets.public_keys()[0];
        // The serialised secrets end with the X25519 secret of their only channel key.
        let tail = bytes.last_chunk::<32>().expect("secrets are longer than a key");
        let channel_key = FleetSecretKey::from_bytes(tail).expect("an X25519 key");
        assert_eq!(channel_key.public_key(), public, "the layout of HsmSecrets changed");
        let endpoint =
            Endpoint::new(FleetId::from_static(VAULT_FLEET), key_id, public).accepting_fast_ksf();
        let mut vault = MemoryVault::new(vault_hsm(&bytes), VAULT_NOW);
        let mut client = FuzzRng::new("client");
        let mut driver = FuzzRng::new("driver");
        let mut call = |vault: &mut MemoryVault, envelope: &[u8]| {
            vault.call(&mut driver, envelope).expect("the fixture's envelopes open")
        };
        let key = BackupKey::from_bytes(FUZZ_KEY);
        let (password, account) = (VAULT_PASSWORD, VAULT_ACCOUNT);

        let (state, register_start) =
            Registration::start(&mut client, &endpoint, account_id(account), password, None)
                .expect("starts");
        let challenge = call(&mut vault, &register_start);
        let (state, register_finish) =
            state.receive(&mut client, &challenge, &key).expect("a registration challenge");
        let budget = state.receive(&call(&mut vault, &register_finish)).expect("registered");
        assert_eq!(budget, VAULT_BUDGET);

        let (state, ke1_a) =
            Login::start(&mut client, &endpoint, account_id(account), password).expect("KE1");
        let (state, ke3_a) = state.receive(&mut client, &call(&mut vault, &ke1_a)).expect("KE2");
        let logged_in = state.receive(&call(&mut vault, &ke3_a)).expect("logged in");
        assert_eq!(logged_in.key(), &key);

        let (state, ke1_b) =
            Login::start(&mut client, &endpoint, account_id(account), password).expect("KE1");
        let (_, ke3_b) = state.receive(&mut client, &call(&mut vault, &ke1_b)).expect("KE2");
        let record = vault.record(account).cloned().expect("a registered account");
        assert!(record.pending.len() == 1 && record.token.is_some(), "{record:?}");

        // A password change authorised by the first login: its RegisterFinish carries the
        // token. It is not sent, and its RegisterStart changes no record.
        let (state, _, change_start) =
            logged_in.change_password(&mut client, b"new fuzz password", None).expect("starts");
        let challenge = call(&mut vault, &change_start);
        let (_, change_finish) =
            state.receive(&mut client, &challenge, &key).expect("a registration challenge");
        assert!(vault.record(account) == Some(&record), "a registration start changed a record");

        let setup = vec![register_finish.clone(), ke1_a.clone(), ke3_a.clone(), ke1_b.clone()];
        let envelopes = [
            ("register-start", register_start),
            ("register-finish", register_finish),
            ("login-start-a", ke1_a),
            ("login-finish-a", ke3_a),
            ("login-start", ke1_b),
            ("login-finish", ke3_b),
            ("change-start", change_start),
            ("change-finish", change_finish),
        ]
        .map(|(name, envelope)| (name.to_owned(), envelope))
        .to_vec();
        let envelope_vault = Mutex::new(MemoryVault::new(vault_hsm(&bytes), VAULT_NOW));
        let hsm = vault_hsm(&bytes);
        Self {
            secrets: bytes,
            hsm,
            channel_key,
            key_id,
            public,
            setup,
            record,
            envelopes,
            envelope_vault,
        }
    }

    fn envelope(&self, name: &str) -> &[u8] {
        &self.envelopes.iter().find(|(n, _)| n == name).expect("a fixture envelope").1
    }

    /// The plaintext of one of the fixture's envelopes.
    fn plaintext(&self, name: &str) -> Vec<u8> {
        let envelope = RequestEnvelope::parse(self.envelope(name)).expect("a fixture envelope");
        let (plaintext, _) = envelope::open_request(&self.channel_key, VAULT_FLEET, &envelope)
            .expect("the fixture's envelopes open");
        plaintext.to_vec()
    }

    /// A fresh vault brought to the fixture's record by replaying the setup envelopes.
    fn set_up_vault(&self, rng: &mut FuzzRng) -> MemoryVault {
        let mut vault = MemoryVault::new(vault_hsm(&self.secrets), VAULT_NOW);
        for envelope in &self.setup {
            vault.call(rng, envelope).expect("the setup envelopes open");
        }
        assert!(vault.record(VAULT_ACCOUNT) == Some(&self.record), "the setup is not repeatable");
        vault
    }

    /// Seals `plaintext` for `account` to the HSM, has `vault` answer it and opens the answer;
    /// `None` if the plaintext is too long to seal.
    fn ask(
        &self,
        vault: &mut MemoryVault,
        rng: &mut FuzzRng,
        account: &[u8],
        plaintext: &[u8],
    ) -> Option<Response> {
        let sealed =
            envelope::seal_request(rng, VAULT_FLEET, self.key_id, &self.public, account, plaintext);
        let (envelope, pending) = match sealed {
            Ok(sealed) => sealed,
            Err(ChannelError::PlaintextTooLong(len)) if len == plaintext.len() => return None,
            Err(err) => panic!("a request does not seal: {err:?}"),
        };
        let answer = vault.call(rng, &envelope).expect("a request sealed to the HSM's key opens");
        let plain = pending.open(&answer).expect("the HSM's answer opens");
        Some(Response::decode(&plain).expect("the HSM's answer decodes"))
    }
}

fn vault_hsm(secrets: &[u8]) -> Hsm {
    let secrets = HsmSecrets::from_bytes(secrets).expect("the fixture's secrets decode");
    let config =
        HsmConfig { budget: VAULT_BUDGET, ksf_profile: KsfProfile::Fast, ..HsmConfig::default() };
    Hsm::new(secrets, config).expect("a valid configuration")
}

struct FleetPins {
    authority_only: PinnedFleet,
    audited: PinnedFleet,
    auditor: Auditor,
}

fn fleet_pins() -> &'static FleetPins {
    static PINS: OnceLock<FleetPins> = OnceLock::new();
    PINS.get_or_init(|| {
        let auditor = Auditor::from_bytes(&FLEET_AUDITOR_SEED);
        let authority_only = PinnedFleet {
            fleet_id: VAULT_FLEET.to_vec(),
            authority: FleetAuthority::from_bytes(&FLEET_AUTHORITY_SEED).verifying_key(),
            auditor: None,
        };
        let audited =
            PinnedFleet { auditor: Some(auditor.verifying_key()), ..authority_only.clone() };
        FleetPins { authority_only, audited, auditor }
    })
}

/// The names of the vault fuzz targets, whose seeds [`vault_seed_corpus`] makes.
pub const VAULT_TARGETS: [&str; 8] = [
    "vault_request",
    "vault_response",
    "vault_record",
    "vault_envelope",
    "vault_fleet_bundle",
    "vault_hsm_plaintext",
    "vault_command",
    "vault_peer_message",
];

/// The seed corpus of vault target `target`, as (name, bytes): valid inputs from the fixture's
/// session and near-valid ones one change away. The same bytes come out every time.
pub fn vault_seed_corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let named = |name: &str, bytes: Vec<u8>| (name.to_owned(), bytes);
    match target {
        "vault_request" | "vault_hsm_plaintext" => vault_request_seeds(),
        "vault_command" => {
            // The request seeds as commands of the fixture's account.
            let mut commands: Vec<(String, Vec<u8>)> = vault_request_seeds()
                .into_iter()
                .map(|(name, plaintext)| {
                    let bytes = Writer::new()
                        .vec16(VAULT_ACCOUNT)
                        .u64(VAULT_NOW)
                        .bytes(&plaintext)
                        .finish();
                    (format!("command-{name}"), bytes)
                })
                .collect();
            let mut empty_account = vec![0, 0];
            empty_account.extend_from_slice(&VAULT_NOW.to_be_bytes());
            commands.push(named("empty-account", empty_account));
            commands.push(named("empty", Vec::new()));
            commands
        }
        "vault_peer_message" => peer_seeds(),
        "vault_response" => {
            // The first answer of each kind to a request seed, each asked of a vault fresh
            // from the setup.
            let fixture = vault_fixture();
            let mut rng = FuzzRng::new("response seeds");
            let mut out: Vec<(String, Vec<u8>)> = Vec::new();
            for account in [VAULT_ACCOUNT, VAULT_GHOST] {
                for (name, plaintext) in vault_request_seeds() {
                    let mut vault = fixture.set_up_vault(&mut rng);
                    let response = fixture.ask(&mut vault, &mut rng, account, &plaintext);
                    let bytes = response.expect("seeds are short").encode();
                    if !out.iter().any(|(_, seen)| seen[0] == bytes[0]) {
                        let account = String::from_utf8_lossy(account);
                        out.push((format!("answer-{account}-{name}"), bytes));
                    }
                }
            }
            out.push(named("refused-unknown-reason", vec![0xf0, 9, 1]));
            out.push(named("registered-trailing-byte", vec![0x82, VAULT_BUDGET, 0]));
            out.push(named("deleted", vec![0x85]));
            out.push(named("unknown-kind", vec![0x86]));
            out.push(named("empty", Vec::new()));
            out
        }
        "vault_record" => {
            let fixture = vault_fixture();
            let registered = fixture.record.encode();
            let mut rng = FuzzRng::new("record seeds");
            let mut vault = fixture.set_up_vault(&mut rng);
            let ke1 = fixture.plaintext("login-start");
            fixture.ask(&mut vault, &mut rng, VAULT_GHOST, &ke1).expect("a KE2");
            let phantom = vault.record(VAULT_GHOST).expect("a phantom record").encode();
            let mut locked = fixture.record.clone();
            locked.lock();
            let change = |bytes: &[u8], at: usize, value: u8| {
                let mut out = bytes.to_vec();
                out[at] = value;
                out
            };
            let mut trailing = registered.clone();
            trailing.push(0);
            vec![
                named("registered", registered.clone()),
                named("phantom", phantom.clone()),
                named("locked", locked.encode()),
                named("version-1", change(&registered, 0, 1)),
                named("version-3", change(&registered, 0, 3)),
                named("state-4", change(&registered, 1, 4)),
                named("remaining-over-budget", change(&registered, 3, VAULT_BUDGET + 1)),
                named("registered-without-registration", change(&phantom, 1, 1)),
                named("phantom-with-registration", change(&registered, 1, 2)),
                named("has-token-2", change(&phantom, phantom.len() - 1, 2)),
                named("trailing-byte", trailing),
                named("empty", Vec::new()),
            ]
        }
        "vault_envelope" => {
            let fixture = vault_fixture();
            let mut out = fixture.envelopes.clone();
            let valid = fixture.envelope("login-start");
            let at = 2 + 2 + VAULT_ACCOUNT.len();
            let change = |at: usize, mask: u8| {
                let mut out = valid.to_vec();
                out[at] ^= mask;
                out
            };
            out.push(named("flipped-tag", change(valid.len() - 1, 1)));
            out.push(named("enc-top-bit", change(at + 31, 0x80)));
            out.push(named("other-account", change(at - 1, 1)));
            out.push(named("version-2", change(0, 3)));
            out.push(named("unknown-key-id", change(1, 0xff)));
            out.push(named("short-ciphertext", valid[..at + 32 + 15].to_vec()));
            let mut empty_account = vec![1, valid[1], 0, 0];
            empty_account.extend_from_slice(&valid[at..]);
            out.push(named("empty-account", empty_account));
            out.push(named("empty", Vec::new()));
            out
        }
        "vault_fleet_bundle" => {
            let authority = FleetAuthority::from_bytes(&FLEET_AUTHORITY_SEED);
            let auditor = Auditor::from_bytes(&FLEET_AUDITOR_SEED);
            let key = |seed: u8| FleetSecretKey::derive(&[seed; 32]).public_key();
            let bundle = FleetBundle {
                fleet_id: VAULT_FLEET.to_vec(),
                epoch: FLEET_LAST_SEEN,
                not_after: VAULT_NOW + 86_400,
                keys: vec![(1, key(1))],
            };
            let sign = |bundle: &FleetBundle| authority.sign(bundle).expect("a valid bundle");
            let signed = sign(&bundle);
            let audited = auditor
                .countersign(&authority.verifying_key(), &signed)
                .expect("the authority signed it");
            let two_keys = FleetBundle { keys: vec![(1, key(1)), (2, key(2))], ..bundle.clone() };
            let expired = FleetBundle { not_after: VAULT_NOW - 1, ..bundle.clone() };
            let rollback = FleetBundle { epoch: FLEET_LAST_SEEN - 1, ..bundle.clone() };
            let wrong_fleet = FleetBundle { fleet_id: b"fleet.other".to_vec(), ..bundle.clone() };
            let flip = |bytes: &[u8], at: usize| {
                let mut out = bytes.to_vec();
                out[at] ^= 1;
                out
            };
            let body = bundle.encode().expect("a valid bundle");
            let mut duplicate = two_keys.encode().expect("a valid bundle");
            let second_id = duplicate.len() - 33;
            duplicate[second_id] = 1;
            let mut has_auditor_2 = signed.clone();
            *has_auditor_2.last_mut().expect("not empty") = 2;
            vec![
                named("signed", signed.clone()),
                named("audited", audited.clone()),
                named("signed-two-keys", sign(&two_keys)),
                named("expired", sign(&expired)),
                named("rollback", sign(&rollback)),
                named("wrong-fleet", sign(&wrong_fleet)),
                named("bad-authority-signature", flip(&signed, signed.len() - 2)),
                named("bad-auditor-signature", flip(&audited, audited.len() - 1)),
                named("has-auditor-2", has_auditor_2),
                named("body", body),
                named("body-duplicate-key-id", duplicate),
                named("empty", Vec::new()),
            ]
        }
        other => panic!("no vault corpus {other}"),
    }
}

/// Request plaintexts: every request of the fixture's session, and near-valid ones.
fn vault_request_seeds() -> Vec<(String, Vec<u8>)> {
    let fixture = vault_fixture();
    let mut out: Vec<(String, Vec<u8>)> = [
        "register-start",
        "register-finish",
        "change-finish",
        "login-start",
        "login-finish",
        "login-finish-a",
    ]
    .iter()
    .map(|name| (name.to_string(), fixture.plaintext(name)))
    .collect();
    let token = match Request::decode(&fixture.plaintext("change-finish")) {
        Ok(Request::RegisterFinish { token: Some(token), .. }) => token,
        other => panic!("the password change carries no token: {other:?}"),
    };
    let mut wrong_token = token;
    wrong_token[0] ^= 1;
    let ke3 = fixture.plaintext("login-finish");
    let flip = |bytes: &[u8], at: usize| {
        let mut out = bytes.to_vec();
        out[at] ^= 1;
        out
    };
    // RegisterFinish ends with the token flag and the token: drop the token, or break the flag.
    let finish = fixture.plaintext("change-finish");
    let flag_at = finish.len() - 1 - token.len();
    let mut finish_without_token = finish[..flag_at].to_vec();
    finish_without_token.push(0);
    let mut token_flag_2 = finish.clone();
    token_flag_2[flag_at] = 2;
    let mut trailing = fixture.plaintext("login-start");
    trailing.push(0);
    let mut long_ticket = vec![0x04, 0x02, 0x01];
    long_ticket.resize(3 + 513 + 64, 0);
    for (name, bytes) in [
        ("delete", Request::Delete { token }.encode()),
        ("delete-wrong-token", Request::Delete { token: wrong_token }.encode()),
        ("login-finish-bad-ke3", flip(&ke3, ke3.len() - 1)),
        ("login-finish-bad-ticket", flip(&ke3, 3 + 20)),
        ("register-finish-without-token", finish_without_token),
        ("token-flag-2", token_flag_2),
        ("trailing-byte", trailing),
        ("ticket-too-long", long_ticket),
        ("unknown-kind", vec![0x06]),
        ("empty", Vec::new()),
    ] {
        out.push((name.to_owned(), bytes));
    }
    out
}
