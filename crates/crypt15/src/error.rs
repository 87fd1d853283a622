//! The closed error vocabulary of the crypt15 reader (spec section 6.6, "Error codes").

use std::io;

use thiserror::Error;

/// Everything that can go wrong reading or writing a `.crypt15` file.
///
/// The variants that concern a damaged file are told apart with the only two checks the format
/// has: the unkeyed MD5 trailer (did the bytes change?) and the GCM tag (is the key right and the
/// ciphertext authentic?). [`Error::code`] gives each variant a stable short name. No variant
/// carries a byte of a key or of plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The file ends inside its header, or is too short to hold a GCM tag and an MD5 trailer.
    #[error(
        "the file is truncated: it holds {file_len} bytes but its {part} needs at least {needed}"
    )]
    Truncated {
        /// Which part of the file does not fit.
        part: &'static str,
        /// How many bytes the file holds.
        file_len: u64,
        /// How many bytes that part needs the file to hold.
        needed: u64,
    },
    /// The header (the prefix length or the `BackupPrefix` protobuf) is malformed.
    #[error(transparent)]
    MalformedHeader(#[from] HeaderError),
    /// The MD5 trailer matches, so the file is intact, but the GCM tag does not verify: the file
    /// was made with another key.
    #[error("wrong key: the file is intact (its MD5 matches) but the GCM tag does not verify")]
    WrongKey,
    /// The MD5 trailer does not match, yet the ciphertext authenticates under the key: only the
    /// unauthenticated header or the MD5 trailer itself was changed.
    #[error(
        "the file was modified outside its ciphertext: the MD5 does not match, but the GCM tag \
         verifies, so the header or the MD5 trailer changed"
    )]
    ChecksumMismatch,
    /// Neither the MD5 trailer nor the GCM tag matches: bytes of the ciphertext, tag or IV were
    /// changed, added or removed (a file cut short lands here too, since crypt15 records no
    /// length). A multi-file backup has no MD5, so for one of those a wrong key also lands here.
    #[error(
        "the file is corrupt: neither its MD5 nor its GCM tag matches (bytes changed, or the file \
         was cut short; for a multi-file backup, which has no MD5, the key may also be wrong)"
    )]
    Corrupt,
    /// The plaintext authenticated but is not a complete, valid zlib stream.
    #[error("the authenticated plaintext does not decompress: {0}")]
    Decompression(String),
    /// The input changed between the verifying pass and the decrypting pass (or while being
    /// read): what was written to the output must be discarded.
    #[error("the input changed while it was being decrypted; discard the output")]
    InputChanged,
    /// The ciphertext is longer than AES-GCM allows (2^36 - 32 bytes).
    #[error("{len} bytes of ciphertext exceed AES-GCM's limit of 2^36 - 32 bytes")]
    TooLarge {
        /// The length found or reached.
        len: u64,
    },
    /// An option or input the encoder cannot represent.
    #[error("cannot encrypt: {0}")]
    InvalidInput(&'static str),
    /// Reading or writing the underlying stream failed.
    #[error("I/O error: {message}")]
    Io {
        /// What kind of I/O failure.
        kind: io::ErrorKind,
        /// The operating system's message.
        message: String,
    },
}

impl Error {
    /// A stable, short name of the variant, for test vectors and JSON output.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Truncated { .. } => "truncated",
            Error::MalformedHeader(_) => "malformed-header",
            Error::WrongKey => "wrong-key",
            Error::ChecksumMismatch => "checksum-mismatch",
            Error::Corrupt => "corrupt",
            Error::Decompression(_) => "decompression",
            Error::InputChanged => "input-changed",
            Error::TooLarge { .. } => "too-large",
            Error::InvalidInput(_) => "invalid-input",
            Error::Io { .. } => "io",
        }
    }
}

e2ee_backup_kdf::carry_through_io!(Error, "crypt15");

/// A malformed header: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("malformed crypt15 header: {field} {problem}")]
pub struct HeaderError {
    /// The field, as `name (protobuf path)`, e.g. `info.app_version (4.1)`, or `prefix length`
    /// for the bytes before the protobuf.
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: HeaderProblem,
}

impl HeaderError {
    pub(crate) fn new(field: &'static str, problem: HeaderProblem) -> Self {
        Self { field, problem }
    }
}

/// What is wrong with a header field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HeaderProblem {
    /// A varint runs longer than its type allows.
    #[error("is a varint longer than {max} bytes")]
    OverlongVarint {
        /// The most bytes a varint of this field may take.
        max: u8,
    },
    /// The field runs past the end of the message that holds it.
    #[error("runs past the end of its message")]
    Truncated,
    /// A known field is encoded with another wire type than its own.
    #[error("has wire type {found}, expected {expected}")]
    WrongWireType {
        /// The wire type found.
        found: u8,
        /// The field's wire type.
        expected: u8,
    },
    /// A tag names field number 0 or one above protobuf's maximum.
    #[error("has invalid field number {number}")]
    InvalidFieldNumber {
        /// The field number found.
        number: u64,
    },
    /// Wire types 3 and 4 (groups), 6 and 7 are not accepted.
    #[error("uses wire type {0}, which this reader does not accept")]
    UnsupportedWireType(u8),
    /// A string field is not UTF-8.
    #[error("is not valid UTF-8")]
    InvalidUtf8,
    /// A required field is absent.
    #[error("is missing")]
    Missing,
    /// A bytes field has the wrong length.
    #[error("holds {found} bytes, expected {expected}")]
    WrongLength {
        /// The length found.
        found: u64,
        /// The length required.
        expected: u64,
    },
    /// A known field appears more than once.
    #[error("appears more than once")]
    Duplicate,
    /// A length is above what this implementation reads or can write.
    #[error("is {len} bytes, more than the {max} allowed")]
    TooLong {
        /// The length found.
        len: u64,
        /// The largest length allowed.
        max: u64,
    },
    /// The header holds crypt14 key data instead of a crypt15 IV.
    #[error("is present: this is a .crypt14 file, not a .crypt15 one")]
    Crypt14,
}

/// A malformed `encrypted_backup.key` file.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The header bytes are right but the file is not exactly 59 bytes long.
    #[error(
        "a key file holds {expected} bytes (27-byte header and a 32-byte key), this one holds {found}"
    )]
    WrongLength {
        /// How many bytes the file holds.
        found: usize,
        /// How many it must hold.
        expected: usize,
    },
    /// A byte of the Java serialisation header is not the one of a serialised `byte[32]`.
    #[error(
        "byte {offset} of the key file ({part}) is {found:#04x}, expected {expected:#04x}: not a \
         Java-serialised byte[32]"
    )]
    WrongHeader {
        /// Offset of the first wrong byte.
        offset: usize,
        /// The part of the serialisation header it belongs to.
        part: &'static str,
        /// The byte found.
        found: u8,
        /// The byte expected.
        expected: u8,
    },
}
