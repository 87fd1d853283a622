//! Reading a backup file (spec section 3.6, "Decrypting").

use std::io::{self, BufReader, Read};

use e2ee_backup_kdf::BackupKey;

use crate::chunks::{ChunkReader, StreamKeys, read_full};
use crate::header::{Compression, HEADER_LEN, Header};
use crate::{ChunkCipher, Error, Metadata, RingGcm};

/// Largest zstd window a reader accepts (2^23 = 8 MiB), which bounds its memory.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 23;

/// Decrypts a backup file as it is read.
///
/// [`Decryptor::new`] reads the header and the metadata block, checks the key, the header MAC
/// and the metadata; reading then yields the payload, never a byte of a chunk whose tag has
/// not verified. The end of the payload is reported only after the last chunk verified, with
/// nothing after it, and (when the metadata records it) the plaintext length matched. Errors
/// are [`io::Error`]s that carry an [`Error`] ([`Error::from_io`]); after the first, every
/// read fails the same way.
pub struct Decryptor<R: Read, C: ChunkCipher = RingGcm> {
    header: Header,
    metadata: Metadata,
    body: Body<R, C>,
    produced: u64,
    failed: Option<Error>,
}

enum Body<R: Read, C: ChunkCipher> {
    Plain(ChunkReader<R, C>),
    Zstd(Box<zstd::stream::read::Decoder<'static, BufReader<ChunkReader<R, C>>>>),
}

/// Reads and parses the header, without a key.
pub fn read_header(reader: &mut impl Read) -> Result<Header, Error> {
    let mut bytes = [0u8; HEADER_LEN];
    let got = read_full(reader, &mut bytes)?;
    if got < HEADER_LEN {
        // Report a foreign file as such even when it is shorter than a header.
        if bytes[..got.min(8)] != crate::header::MAGIC[..got.min(8)] {
            return Err(Error::NotABackup);
        }
        return Err(Error::Truncated { file_len: got as u64 });
    }
    Header::parse(&bytes)
}

impl<R: Read> Decryptor<R> {
    /// Opens a backup file with `key`, using AES-256-GCM from `ring`.
    pub fn new(inner: R, key: &BackupKey) -> Result<Self, Error> {
        Self::with_cipher(inner, key)
    }
}

impl<R: Read, C: ChunkCipher> Decryptor<R, C> {
    /// Opens a backup file with `key`, using the AES-256-GCM implementation `C`.
    pub fn with_cipher(mut inner: R, key: &BackupKey) -> Result<Self, Error> {
        let opened = open_prelude::<C>(&mut inner, key)?;
        Self::from_prelude(inner, opened)
    }

    fn from_prelude(inner: R, opened: Prelude<C>) -> Result<Self, Error> {
        let Prelude { header, metadata, stream, offset } = opened;
        let chunks = ChunkReader::new(inner, stream, offset);
        let body = match header.compression {
            Compression::None => Body::Plain(chunks),
            Compression::Zstd => {
                let mut decoder = zstd::stream::read::Decoder::with_buffer(BufReader::new(chunks))?;
                decoder.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
                Body::Zstd(Box::new(decoder))
            }
        };
        Ok(Self { header, metadata, body, produced: 0, failed: None })
    }

    /// The file's header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The file's metadata, verified.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    fn read_body(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        let n = match &mut self.body {
            Body::Plain(chunks) => chunks.read(out).map_err(Error::from_io_error)?,
            Body::Zstd(decoder) => decoder.read(out).map_err(|e| match Error::from_io(&e) {
                Some(inner) => inner.clone(),
                None => Error::Decompression(e.to_string()),
            })?,
        };
        self.produced += n as u64;
        let recorded = self.metadata.plaintext_len;
        if n == 0 && !out.is_empty() {
            self.check_end()?;
            if let Some(recorded) = recorded
                && recorded != self.produced
            {
                return Err(Error::LengthMismatch { recorded, actual: self.produced });
            }
        } else if let Some(recorded) = recorded
            && self.produced > recorded
        {
            return Err(Error::LengthMismatch { recorded, actual: self.produced });
        }
        Ok(n)
    }

    /// At the end of the decompressed stream, the chunk stream must be finished too. The zstd
    /// decoder reads its input to the end today; this guard keeps "end of plaintext" meaning
    /// "last chunk verified, nothing after it" even if a decoder stopped early.
    fn check_end(&mut self) -> Result<(), Error> {
        let Body::Zstd(decoder) = &mut self.body else {
            return Ok(());
        };
        let reader = decoder.get_mut();
        let mut probe = [0u8; 1];
        let extra = reader.read(&mut probe).map_err(Error::from_io_error)?;
        if extra > 0 || !reader.get_ref().is_done() {
            return Err(Error::Decompression("data after the end of the compressed stream".into()));
        }
        Ok(())
    }
}

impl<R: Read, C: ChunkCipher> Read for Decryptor<R, C> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(err) = &self.failed {
            return Err(err.clone().into());
        }
        self.read_body(out).map_err(|err| {
            self.failed = Some(err.clone());
            err.into()
        })
    }
}

/// What precedes the records, checked and opened (steps 1 to 3 of spec section 3.6).
struct Prelude<C> {
    header: Header,
    metadata: Metadata,
    stream: StreamKeys<C>,
    /// File offset of the first record.
    offset: u64,
}

/// Reads and checks the header and the metadata block.
fn open_prelude<C: ChunkCipher>(
    inner: &mut impl Read,
    key: &BackupKey,
) -> Result<Prelude<C>, Error> {
    let header = read_header(inner)?;
    let keys = header.open(key)?;
    let mut block = vec![0u8; header.metadata_len as usize];
    let got = read_full(inner, &mut block)?;
    if got < block.len() {
        return Err(Error::Truncated { file_len: (HEADER_LEN + got) as u64 });
    }
    let metadata = Metadata::open::<C>(block, &keys.metadata_key, &header.encode())?;
    let stream =
        StreamKeys::new(&keys.payload_key, keys.nonce_base, header.file_id(), header.chunk_size());
    let offset = (HEADER_LEN + header.metadata_len as usize) as u64;
    Ok(Prelude { header, metadata, stream, offset })
}

/// Decrypts a complete backup file held in memory.
///
/// Without compression, every record header is checked first, in stream order; then each
/// chunk is copied once, into its place in the output, and opened there, on all cores. The
/// errors are those [`Decryptor`] reports.
pub fn decrypt_to_vec(key: &BackupKey, file: &[u8]) -> Result<(Metadata, Vec<u8>), Error> {
    let mut plaintext = Vec::new();
    let metadata = decrypt_into(key, file, &mut plaintext)?;
    Ok((metadata, plaintext))
}

/// [`decrypt_to_vec`] into `plaintext`, whose content is replaced and whose allocation is kept.
/// On error it is left empty: no unverified byte is ever handed out.
pub fn decrypt_into(
    key: &BackupKey,
    file: &[u8],
    plaintext: &mut Vec<u8>,
) -> Result<Metadata, Error> {
    let result = decrypt_into_inner(key, file, plaintext);
    if result.is_err() {
        plaintext.clear();
    }
    result
}

fn decrypt_into_inner(
    key: &BackupKey,
    file: &[u8],
    plaintext: &mut Vec<u8>,
) -> Result<Metadata, Error> {
    let mut reader = file;
    let opened = open_prelude::<RingGcm>(&mut reader, key)?;
    if opened.header.compression != Compression::None {
        let mut decryptor = Decryptor::from_prelude(reader, opened)?;
        plaintext.clear();
        decryptor.read_to_end(plaintext).map_err(Error::from_io_error)?;
        return Ok(decryptor.metadata);
    }
    let Prelude { metadata, stream, offset, .. } = opened;
    let records = reader;
    let scan = stream.scan(records, 0, offset, true, || Ok(false))?;
    // Every byte is overwritten by the chunks, so a reused buffer is only cut or grown to
    // length (see `encrypt_into`).
    if plaintext.len() < scan.payload {
        plaintext.resize(scan.payload, 0);
    } else {
        plaintext.truncate(scan.payload);
    }
    let failed = if scan.count == 0 {
        None
    } else {
        stream.open_records_into(&records[..scan.end], 0, scan.last, plaintext)
    };
    if let Some(index) = failed {
        return Err(Error::ChunkModified { index });
    }
    if let Some(err) = scan.fault {
        return Err(err);
    }
    if let Some(recorded) = metadata.plaintext_len
        && recorded != scan.payload as u64
    {
        return Err(Error::LengthMismatch { recorded, actual: scan.payload as u64 });
    }
    Ok(metadata)
}
