//! The file header (spec section 3.2): 96 bytes, readable without the key.
//!
//! | offset | size | field             | value                                            |
//! |--------|------|-------------------|--------------------------------------------------|
//! | 0      | 8    | magic             | `89 45 32 45 45 42 4B 0A` (`\x89E2EEBK\n`)       |
//! | 8      | 1    | version           | 1                                                |
//! | 9      | 1    | compression       | 0 none, 1 zstd                                   |
//! | 10     | 1    | chunk_size_log2   | 6 ..= 22                                         |
//! | 11     | 1    | reserved          | 0                                                |
//! | 12     | 16   | key_id            | key identifier of K                              |
//! | 28     | 32   | salt              | fresh random bytes                               |
//! | 60     | 4    | metadata_len      | big-endian length of the metadata block, 34 ..= 65552 |
//! | 64     | 32   | header_mac        | HMAC-SHA256(header-mac-key, bytes 0..64)         |

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_kdf::schedule::{FileKeys, KEY_ID_LEN, KeyId, SALT_LEN};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::Error;

/// The magic bytes every backup file starts with.
pub const MAGIC: [u8; 8] = *b"\x89E2EEBK\n";
/// The format version this crate reads and writes.
pub const VERSION: u8 = 1;
/// Length of the header in bytes.
pub const HEADER_LEN: usize = 96;
/// Number of header bytes the MAC covers.
pub const MAC_INPUT_LEN: usize = 64;
/// Smallest allowed `chunk_size_log2` (64-byte chunks, for test vectors).
pub const MIN_CHUNK_SIZE_LOG2: u8 = 6;
/// Largest allowed `chunk_size_log2` (4 MiB chunks).
pub const MAX_CHUNK_SIZE_LOG2: u8 = 22;
/// The `chunk_size_log2` writers use unless told otherwise (64 KiB chunks).
pub const DEFAULT_CHUNK_SIZE_LOG2: u8 = 16;
/// Smallest metadata block: the 18-byte empty encoding and its tag.
pub const MIN_METADATA_LEN: u32 = 18 + 16;
/// Largest metadata block: 64 KiB of encoding and its tag.
pub const MAX_METADATA_LEN: u32 = 65536 + 16;

/// How the payload was compressed before encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Stored as given.
    None,
    /// One or more zstd frames (RFC 8878).
    Zstd,
}

impl Compression {
    fn byte(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Zstd => 1,
        }
    }

    /// The name used by the CLI and the vectors.
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Zstd => "zstd",
        }
    }
}

/// A parsed header. Parsing checks the form of every field but nothing that needs the key;
/// [`Header::open`] checks the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Payload compression.
    pub compression: Compression,
    /// Chunk size as a power of two.
    pub chunk_size_log2: u8,
    /// Identifier of the key the file was made with.
    pub key_id: KeyId,
    /// The file's salt, from which its keys are derived.
    pub salt: [u8; SALT_LEN],
    /// Length of the metadata block that follows the header.
    pub metadata_len: u32,
    /// HMAC-SHA256 over the first 64 header bytes.
    pub mac: [u8; 32],
}

impl Header {
    /// Builds the header of a new file and computes its MAC.
    pub(crate) fn new(
        keys: &FileKeys,
        key_id: KeyId,
        salt: [u8; SALT_LEN],
        compression: Compression,
        chunk_size_log2: u8,
        metadata_len: u32,
    ) -> Self {
        let mut header =
            Header { compression, chunk_size_log2, key_id, salt, metadata_len, mac: [0; 32] };
        header.mac = mac(keys, &header.encode()[..MAC_INPUT_LEN]);
        header
    }

    /// Chunk size in bytes.
    pub fn chunk_size(&self) -> usize {
        1usize << self.chunk_size_log2
    }

    /// The 8-byte identifier every chunk of this file carries: the first 8 bytes of the salt.
    pub fn file_id(&self) -> [u8; 8] {
        let mut id = [0u8; 8];
        id.copy_from_slice(&self.salt[..8]);
        id
    }

    /// The 96 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..8].copy_from_slice(&MAGIC);
        out[8] = VERSION;
        out[9] = self.compression.byte();
        out[10] = self.chunk_size_log2;
        out[11] = 0;
        out[12..28].copy_from_slice(&self.key_id.0);
        out[28..60].copy_from_slice(&self.salt);
        out[60..64].copy_from_slice(&self.metadata_len.to_be_bytes());
        out[64..96].copy_from_slice(&self.mac);
        out
    }

    /// Parses 96 header bytes, checking every field that can be checked without the key.
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Result<Self, Error> {
        if bytes[0..8] != MAGIC {
            return Err(Error::NotABackup);
        }
        if bytes[8] != VERSION {
            return Err(Error::UnsupportedVersion(bytes[8]));
        }
        let compression = match bytes[9] {
            0 => Compression::None,
            1 => Compression::Zstd,
            other => return Err(invalid("compression", other.into())),
        };
        let chunk_size_log2 = bytes[10];
        if !(MIN_CHUNK_SIZE_LOG2..=MAX_CHUNK_SIZE_LOG2).contains(&chunk_size_log2) {
            return Err(invalid("chunk_size_log2", chunk_size_log2.into()));
        }
        if bytes[11] != 0 {
            return Err(invalid("reserved", bytes[11].into()));
        }
        let metadata_len = u32::from_be_bytes(bytes[60..64].try_into().expect("4 bytes"));
        if !(MIN_METADATA_LEN..=MAX_METADATA_LEN).contains(&metadata_len) {
            return Err(invalid("metadata_len", metadata_len.into()));
        }
        let mut key_id = [0u8; KEY_ID_LEN];
        key_id.copy_from_slice(&bytes[12..28]);
        let mut salt = [0u8; SALT_LEN];
        salt.copy_from_slice(&bytes[28..60]);
        let mut mac = [0u8; 32];
        mac.copy_from_slice(&bytes[64..96]);
        Ok(Header { compression, chunk_size_log2, key_id: KeyId(key_id), salt, metadata_len, mac })
    }

    /// Checks the header against `key` and derives the file's keys.
    ///
    /// The key identifier is compared first, so a file made under another key reports
    /// [`Error::WrongKey`]; then the MAC, in constant time, so any other change to the header
    /// reports [`Error::HeaderModified`]. The MAC is also the key commitment: no chunk is
    /// decrypted under a key that did not produce it.
    pub fn open(&self, key: &BackupKey) -> Result<FileKeys, Error> {
        if KeyId::of(key) != self.key_id {
            return Err(Error::WrongKey);
        }
        let keys = FileKeys::derive(key, &self.salt);
        let expected = mac(&keys, &self.encode()[..MAC_INPUT_LEN]);
        if bool::from(expected.ct_eq(&self.mac)) { Ok(keys) } else { Err(Error::HeaderModified) }
    }
}

fn invalid(field: &'static str, value: u64) -> Error {
    Error::InvalidHeader { field, value }
}

fn mac(keys: &FileKeys, input: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&keys.header_mac_key)
        .expect("HMAC takes keys of any length");
    mac.update(input);
    mac.finalize().into_bytes().into()
}
