//! Writing a `.crypt15` file (spec section 6.7).
//!
//! The encryptor streams: the header is written first, then the ciphertext as the plaintext
//! arrives, then (in [`Encryptor::finish`]) the tag and, for a single-file backup, the MD5 of
//! everything before it.
//!
//! The zlib streams of both fixtures are reproduced by the C zlib that `flate2`'s `zlib`
//! feature links, with its defaults (window 15, memory level 8, default strategy): level 1 for
//! the one made by wa-crypt-tools' `waencrypt` (`zlib.compress(data, 1)`, header `78 01`) and
//! level 6 for the one made with Python's `zlib.compress` default (header `78 9c`). flate2's
//! pure-Rust backends (miniz_oxide, zlib-rs) compress differently; [`encrypt_compressed`]
//! encrypts a stream compressed elsewhere as it is.

use std::io::{self, Write};

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_kdf::crypt15::Crypt15Keys;
use flate2::{Compress, Compression, FlushCompress, Status};
use md5::{Digest, Md5};
use zeroize::Zeroizing;

use crate::decrypt::{CHUNK_LEN, looks_like_zlib};
use crate::error::Error;
use crate::gcm::GcmStream;
use crate::header::FileHeader;

/// The zlib level `waencrypt` uses, and the default here.
pub const DEFAULT_LEVEL: u32 = 1;

/// What the encryptor is given, and so which variant it writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Content {
    /// A database, compressed here with zlib at `level` (0 to 9); a single-file backup.
    Database {
        /// The zlib compression level.
        level: u32,
    },
    /// A database already compressed as a zlib stream, encrypted as it is; a single-file
    /// backup.
    Compressed,
    /// The ZIP of a multi-file backup, encrypted as it is, with no MD5 trailer. Content that
    /// starts like a zlib stream is refused: readers would take the file for a single-file
    /// backup whose MD5 trailer was cut off.
    MultiFileZip,
}

impl Default for Content {
    fn default() -> Self {
        Content::Database { level: DEFAULT_LEVEL }
    }
}

/// Writes a `.crypt15` file as its content is written to it.
///
/// Errors from the `Write` implementation are [`io::Error`]s that carry an [`Error`]
/// ([`Error::from_io`]). The file is complete only once [`Encryptor::finish`] has returned.
pub struct Encryptor<W: Write> {
    output: W,
    gcm: GcmStream,
    md5: Option<Md5>,
    deflate: Option<Compress>,
    buf: Zeroizing<Vec<u8>>,
    /// The first two bytes of a multi-file backup's content, while they are checked.
    zip_head: Option<Vec<u8>>,
    multi_file: bool,
    content_len: u64,
}

/// The smallest ZIP: an empty archive's end-of-central-directory record.
const MIN_ZIP_LEN: u64 = 22;

impl<W: Write> std::fmt::Debug for Encryptor<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encryptor")
            .field("multi_file", &self.multi_file)
            .field("content_len", &self.content_len)
            .finish_non_exhaustive()
    }
}

impl<W: Write> Encryptor<W> {
    /// Writes `header` to `output` and gets ready for the content.
    ///
    /// The IV in the header must never have been used with this key before: take a header from
    /// [`FileHeader::minimal`] without a given IV unless reproducing a known file.
    pub fn new(
        key: &BackupKey,
        header: &FileHeader,
        content: Content,
        mut output: W,
    ) -> Result<Self, Error> {
        let deflate = match content {
            Content::Database { level } if level > 9 => {
                return Err(Error::InvalidInput("zlib levels run from 0 to 9"));
            }
            Content::Database { level } => Some(Compress::new(Compression::new(level), true)),
            Content::Compressed | Content::MultiFileZip => None,
        };
        let head = header.to_bytes();
        output.write_all(&head)?;
        let md5 = (content != Content::MultiFileZip).then(|| {
            let mut md5 = Md5::new();
            md5.update(&head);
            md5
        });
        let file_key = Zeroizing::new(Crypt15Keys::derive(key).backup_encryption);
        Ok(Self {
            output,
            gcm: GcmStream::new(&file_key, header.iv()),
            md5,
            deflate,
            buf: Zeroizing::new(vec![0u8; CHUNK_LEN]),
            zip_head: (content == Content::MultiFileZip).then(Vec::new),
            multi_file: content == Content::MultiFileZip,
            content_len: 0,
        })
    }

    /// Encrypts the first `n` bytes of the buffer and writes them.
    fn seal(&mut self, n: usize) -> Result<(), Error> {
        let chunk = &mut self.buf[..n];
        self.gcm.encrypt(chunk)?;
        if let Some(md5) = &mut self.md5 {
            md5.update(&*chunk);
        }
        self.output.write_all(chunk)?;
        Ok(())
    }

    /// Runs zlib once into the buffer and seals what it produced.
    fn deflate_step(
        &mut self,
        input: &[u8],
        flush: FlushCompress,
    ) -> Result<(usize, usize, bool), Error> {
        let Some(deflate) = &mut self.deflate else {
            return Ok((0, 0, true));
        };
        let (in_before, out_before) = (deflate.total_in(), deflate.total_out());
        let status = deflate.compress(input, &mut self.buf, flush).map_err(|err| Error::Io {
            kind: io::ErrorKind::Other,
            message: format!("zlib compression failed: {err}"),
        })?;
        let consumed = (deflate.total_in() - in_before) as usize;
        let produced = (deflate.total_out() - out_before) as usize;
        self.seal(produced)?;
        Ok((consumed, produced, status == Status::StreamEnd))
    }

    fn absorb(&mut self, mut data: &[u8]) -> Result<(), Error> {
        self.content_len = self.content_len.saturating_add(data.len() as u64);
        if let Some(head) = &mut self.zip_head {
            let take = (2 - head.len()).min(data.len());
            head.extend_from_slice(&data[..take]);
            if head.len() == 2 {
                if looks_like_zlib(head) {
                    return Err(Error::InvalidInput(
                        "a multi-file backup holds a ZIP; this content starts like a zlib \
                         stream, which readers take for a single-file backup cut short",
                    ));
                }
                self.zip_head = None;
            }
        }
        if self.deflate.is_none() {
            while !data.is_empty() {
                let n = data.len().min(CHUNK_LEN);
                self.buf[..n].copy_from_slice(&data[..n]);
                self.seal(n)?;
                data = &data[n..];
            }
            return Ok(());
        }
        while !data.is_empty() {
            let (consumed, produced, _) = self.deflate_step(data, FlushCompress::None)?;
            data = &data[consumed..];
            if consumed == 0 && produced == 0 {
                return Err(Error::InvalidInput("zlib accepts no more input"));
            }
        }
        Ok(())
    }

    /// Ends the content, writes the tag (and the MD5 of a single-file backup), flushes, and
    /// gives the output back.
    pub fn finish(mut self) -> Result<W, Error> {
        if self.multi_file && self.content_len < MIN_ZIP_LEN {
            return Err(Error::InvalidInput(
                "a multi-file backup holds a ZIP, and a ZIP holds at least 22 bytes",
            ));
        }
        if self.deflate.is_some() {
            loop {
                let (_, produced, ended) = self.deflate_step(&[], FlushCompress::Finish)?;
                if ended {
                    break;
                }
                if produced == 0 {
                    return Err(Error::InvalidInput("zlib does not finish its stream"));
                }
            }
        }
        let tag = self.gcm.tag();
        self.output.write_all(&tag)?;
        if let Some(mut md5) = self.md5.take() {
            md5.update(tag);
            self.output.write_all(md5.finalize().as_slice())?;
        }
        self.output.flush()?;
        Ok(self.output)
    }
}

impl<W: Write> Write for Encryptor<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.absorb(data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.output.flush()
    }
}

/// Encrypts `data` in memory into a complete file.
pub fn encrypt_to_vec(
    key: &BackupKey,
    header: &FileHeader,
    content: Content,
    data: &[u8],
) -> Result<Vec<u8>, Error> {
    let mut encryptor = Encryptor::new(key, header, content, Vec::new())?;
    encryptor.absorb(data)?;
    encryptor.finish()
}

/// Encrypts a database that is already a zlib stream, as it is, into a single-file backup.
pub fn encrypt_compressed(
    key: &BackupKey,
    header: &FileHeader,
    compressed: &[u8],
) -> Result<Vec<u8>, Error> {
    encrypt_to_vec(key, header, Content::Compressed, compressed)
}
