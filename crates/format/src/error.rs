//! The closed error vocabulary of the native format (spec section 3.6, "Error codes").

use std::io;

use thiserror::Error;

/// Everything that can go wrong reading or writing a backup file.
///
/// Each way a file can be damaged or tampered with has its own variant, and
/// [`Error::code`] gives each a stable name that the test vectors use. No variant carries a
/// byte of a key or of plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Error {
    /// The file does not start with the format's magic bytes.
    #[error("not an e2ee-backups file (the first 8 bytes are not the format's magic)")]
    NotABackup,
    /// The header names a format version this implementation does not read.
    #[error("backup format version {0} is not supported (this implementation reads version 1)")]
    UnsupportedVersion(u8),
    /// A header field holds a value the format does not allow.
    #[error("header field {field} holds {value}, which is not allowed")]
    InvalidHeader {
        /// Name of the field, as in the specification.
        field: &'static str,
        /// The value found.
        value: u64,
    },
    /// The file was made with another key: its key identifier is not the given key's.
    #[error("this backup was made with a different key")]
    WrongKey,
    /// The key is right but the header MAC does not verify: the header was changed.
    #[error("the backup header was modified (its MAC does not verify)")]
    HeaderModified,
    /// The metadata block does not decrypt.
    #[error("the metadata block was modified (it does not decrypt)")]
    MetadataModified,
    /// The metadata decrypts but does not follow the metadata encoding.
    #[error("the metadata block is malformed: {0}")]
    InvalidMetadata(&'static str),
    /// The file ends before its end-of-stream chunk.
    #[error("the backup is truncated: it ends after {file_len} bytes, before its last chunk")]
    Truncated {
        /// How many bytes the file holds.
        file_len: u64,
    },
    /// A chunk carries another file's identifier: it was spliced in from another backup.
    #[error("chunk at position {position} belongs to another backup file")]
    ChunkFromOtherFile {
        /// Position of the chunk in this file, counted from 0.
        position: u32,
    },
    /// A chunk carries an index other than its position: chunks were reordered or repeated.
    #[error(
        "chunk at position {expected} carries index {found}: chunks were reordered or repeated"
    )]
    ChunkOutOfOrder {
        /// The position, and so the index the chunk should carry.
        expected: u32,
        /// The index it carries.
        found: u32,
    },
    /// A chunk's length field is not allowed for its place in the stream.
    #[error("chunk {index} declares {length} bytes, which its place in the stream does not allow")]
    InvalidChunkLength {
        /// Index of the chunk.
        index: u32,
        /// The declared plaintext length.
        length: u32,
    },
    /// A chunk's tag does not verify: its header, ciphertext or tag was changed.
    #[error("chunk {index} was modified (its tag does not verify)")]
    ChunkModified {
        /// Index of the chunk.
        index: u32,
    },
    /// Bytes follow the end-of-stream chunk.
    #[error("the backup has trailing data after its last chunk, from byte {offset}")]
    TrailingData {
        /// File offset of the first byte past the end.
        offset: u64,
    },
    /// The plaintext length differs from the one recorded in the metadata.
    #[error("the metadata records {recorded} plaintext bytes but the payload holds {actual}")]
    LengthMismatch {
        /// Length recorded in the metadata.
        recorded: u64,
        /// Length found (when decrypting, at least this many).
        actual: u64,
    },
    /// The authenticated payload is not a valid compressed stream.
    #[error("the payload does not decompress: {0}")]
    Decompression(String),
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
    /// A stable, short name of the variant, used by the test vectors and the CLI's JSON output.
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotABackup => "not-a-backup",
            Error::UnsupportedVersion(_) => "unsupported-version",
            Error::InvalidHeader { .. } => "invalid-header",
            Error::WrongKey => "wrong-key",
            Error::HeaderModified => "header-modified",
            Error::MetadataModified => "metadata-modified",
            Error::InvalidMetadata(_) => "invalid-metadata",
            Error::Truncated { .. } => "truncated",
            Error::ChunkFromOtherFile { .. } => "chunk-from-other-file",
            Error::ChunkOutOfOrder { .. } => "chunk-out-of-order",
            Error::InvalidChunkLength { .. } => "invalid-chunk-length",
            Error::ChunkModified { .. } => "chunk-modified",
            Error::TrailingData { .. } => "trailing-data",
            Error::LengthMismatch { .. } => "length-mismatch",
            Error::Decompression(_) => "decompression",
            Error::InvalidInput(_) => "invalid-input",
            Error::Io { .. } => "io",
        }
    }
}

e2ee_backup_kdf::carry_through_io!(Error, "format");
