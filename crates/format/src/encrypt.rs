//! Writing a backup file (spec section 3.5, "Encrypting").

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_kdf::schedule::{FileKeys, KeyId, SALT_LEN};

use crate::chunks::{ChunkWriter, RECORD_OVERHEAD, StreamKeys};
use crate::header::{
    Compression, DEFAULT_CHUNK_SIZE_LOG2, HEADER_LEN, Header, MAX_CHUNK_SIZE_LOG2,
    MIN_CHUNK_SIZE_LOG2,
};
use crate::{ChunkCipher, Error, Metadata, RingGcm};

/// How to write a backup file.
#[derive(Debug, Clone)]
pub struct EncryptOptions {
    /// Payload compression. Default: none.
    pub compression: Compression,
    /// zstd level when compressing, 1 to 19 (the levels whose window stays within the 8 MiB
    /// readers accept). Default: 3.
    pub zstd_level: i32,
    /// Chunk size as a power of two, 6 to 22. Default: 16 (64 KiB).
    pub chunk_size_log2: u8,
    /// What the metadata block records. `created_at` defaults to now, `plaintext_len` to
    /// unknown. When `plaintext_len` is given, [`Encryptor::finish`] fails unless exactly that
    /// many bytes were written.
    pub metadata: Metadata,
    salt: Option<[u8; SALT_LEN]>,
}

impl Default for EncryptOptions {
    fn default() -> Self {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Self {
            compression: Compression::None,
            zstd_level: 3,
            chunk_size_log2: DEFAULT_CHUNK_SIZE_LOG2,
            metadata: Metadata { created_at: now, plaintext_len: None, fields: BTreeMap::new() },
            salt: None,
        }
    }
}

impl EncryptOptions {
    /// Fixes the file salt instead of drawing it at random, to reproduce test vectors.
    ///
    /// Never use one salt twice with the same key: both files would then share payload key
    /// and nonces, and AES-GCM loses confidentiality and integrity.
    #[doc(hidden)] // reproducing test vectors only: never a fixed draw in production
    pub fn with_fixed_salt_for_test_vectors(mut self, salt: [u8; SALT_LEN]) -> Self {
        self.salt = Some(salt);
        self
    }
}

/// Encrypts a payload into a backup file as it is written.
///
/// The header and metadata are written by [`Encryptor::new`]; [`Encryptor::finish`] writes
/// the last chunk. A file whose encryptor was dropped without `finish` is rejected by readers
/// as truncated.
pub struct Encryptor<W: Write, C: ChunkCipher = RingGcm> {
    sink: Sink<W, C>,
    written: u64,
    expected: Option<u64>,
}

enum Sink<W: Write, C: ChunkCipher> {
    Plain(ChunkWriter<W, C>),
    Zstd(zstd::stream::write::Encoder<'static, ChunkWriter<W, C>>),
}

impl<W: Write> Encryptor<W> {
    /// Starts a backup file under `key` with AES-256-GCM from `ring`.
    pub fn new(inner: W, key: &BackupKey, options: EncryptOptions) -> Result<Self, Error> {
        Self::with_cipher(inner, key, options)
    }
}

impl<W: Write, C: ChunkCipher> Encryptor<W, C> {
    /// Starts a backup file under `key` with the AES-256-GCM implementation `C`.
    pub fn with_cipher(
        mut inner: W,
        key: &BackupKey,
        options: EncryptOptions,
    ) -> Result<Self, Error> {
        let (head, stream) = start::<C>(key, &options)?;
        inner.write_all(&head)?;
        let chunks = ChunkWriter::new(inner, stream);
        let sink = match options.compression {
            Compression::None => Sink::Plain(chunks),
            Compression::Zstd => {
                Sink::Zstd(zstd::stream::write::Encoder::new(chunks, options.zstd_level)?)
            }
        };
        Ok(Self { sink, written: 0, expected: options.metadata.plaintext_len })
    }

    /// Writes the last chunk and returns the inner writer.
    pub fn finish(self) -> Result<W, Error> {
        if let Some(recorded) = self.expected
            && recorded != self.written
        {
            return Err(Error::LengthMismatch { recorded, actual: self.written });
        }
        let chunks = match self.sink {
            Sink::Plain(chunks) => chunks,
            Sink::Zstd(encoder) => encoder.finish()?,
        };
        Ok(chunks.finish()?)
    }
}

impl<W: Write, C: ChunkCipher> Write for Encryptor<W, C> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Some(recorded) = self.expected
            && self.written + data.len() as u64 > recorded
        {
            let actual = self.written + data.len() as u64;
            return Err(Error::LengthMismatch { recorded, actual }.into());
        }
        let n = match &mut self.sink {
            Sink::Plain(chunks) => chunks.write(data)?,
            Sink::Zstd(encoder) => encoder.write(data)?,
        };
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.sink {
            Sink::Plain(chunks) => chunks.flush(),
            Sink::Zstd(encoder) => encoder.flush(),
        }
    }
}

/// Checks the options and builds the header and metadata block of a new file; returns their
/// bytes and the keys of its chunk stream.
fn start<C: ChunkCipher>(
    key: &BackupKey,
    options: &EncryptOptions,
) -> Result<(Vec<u8>, StreamKeys<C>), Error> {
    if !(MIN_CHUNK_SIZE_LOG2..=MAX_CHUNK_SIZE_LOG2).contains(&options.chunk_size_log2) {
        return Err(Error::InvalidInput("chunk_size_log2 must be between 6 and 22"));
    }
    if options.compression == Compression::Zstd && !(1..=19).contains(&options.zstd_level) {
        return Err(Error::InvalidInput("zstd_level must be between 1 and 19"));
    }
    let encoded = options.metadata.encode()?;
    let salt = match options.salt {
        Some(salt) => salt,
        None => {
            let mut salt = [0u8; SALT_LEN];
            getrandom::fill(&mut salt).map_err(|_| Error::Io {
                kind: io::ErrorKind::Other,
                message: "the operating system's random source failed".into(),
            })?;
            salt
        }
    };
    let keys = FileKeys::derive(key, &salt);
    let metadata_len = (encoded.len() + crate::cipher::TAG_LEN) as u32;
    let header = Header::new(
        &keys,
        KeyId::of(key),
        salt,
        options.compression,
        options.chunk_size_log2,
        metadata_len,
    );
    let header_bytes = header.encode();
    debug_assert_eq!(header_bytes.len(), HEADER_LEN);
    let block = Metadata::seal::<C>(&encoded, &keys.metadata_key, &header_bytes);
    let mut head = Vec::with_capacity(HEADER_LEN + block.len());
    head.extend_from_slice(&header_bytes);
    head.extend_from_slice(&block);
    let stream =
        StreamKeys::new(&keys.payload_key, keys.nonce_base, header.file_id(), header.chunk_size());
    Ok((head, stream))
}

/// Encrypts `plaintext` into a complete backup file, recording its length in the metadata.
///
/// Without compression the file is built in place: its length is known up front, and each
/// chunk is copied once, into its record, and sealed there, on all cores.
pub fn encrypt_to_vec(
    key: &BackupKey,
    options: EncryptOptions,
    plaintext: &[u8],
) -> Result<Vec<u8>, Error> {
    let mut file = Vec::new();
    encrypt_into(key, options, plaintext, &mut file)?;
    Ok(file)
}

/// [`encrypt_to_vec`] into `file`, whose content is replaced and whose allocation is kept: a caller
/// that encrypts many payloads reuses one buffer instead of having fresh pages mapped (and
/// zeroed by the kernel) for every file.
pub fn encrypt_into(
    key: &BackupKey,
    mut options: EncryptOptions,
    plaintext: &[u8],
    file: &mut Vec<u8>,
) -> Result<(), Error> {
    options.metadata.plaintext_len = Some(plaintext.len() as u64);
    if options.compression != Compression::None {
        file.clear();
        let mut encryptor = Encryptor::new(std::mem::take(file), key, options)?;
        encryptor.write_all(plaintext)?;
        *file = encryptor.finish()?;
        return Ok(());
    }
    let (head, stream) = start::<RingGcm>(key, &options)?;
    let count = plaintext.len().div_ceil(stream.chunk_size()).max(1);
    if count as u64 > 1 << 32 {
        return Err(Error::InvalidInput("payload exceeds 2^32 chunks"));
    }
    // Every byte of the file is written below (header, metadata block, then each record's
    // header, chunk and tag), so a reused buffer is only cut or grown to length, not zeroed
    // first: that would be a third pass over memory. A fresh large allocation comes zeroed
    // from the OS, and its pages are first touched by the tasks that fill them.
    let len = head.len() + count * RECORD_OVERHEAD + plaintext.len();
    if file.len() < len {
        file.resize(len, 0);
    } else {
        file.truncate(len);
    }
    let (prefix, records) = file.split_at_mut(head.len());
    prefix.copy_from_slice(&head);
    stream.seal_records(records, 0, true, Some((0, plaintext)));
    Ok(())
}
