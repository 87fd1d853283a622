//! Reading a `.crypt15` file (spec section 6.6): verify everything first, then decrypt.
//!
//! GCM's tag comes after the whole database, so a decryptor that released plaintext as it read
//! would release bytes it has not verified. [`Decryptor`] makes two passes over a seekable
//! input instead:
//!
//! 1. [`Decryptor::new`] reads the header and the body once, computing the MD5 of the file and
//!    the GHASH of the ciphertext, without decrypting anything. It decides the variant, checks
//!    the tag, and reports a wrong key, a corrupt file or a changed header or trailer.
//! 2. [`Decryptor::decrypt_to`] reads the body again, decrypts and (for a single-file backup)
//!    inflates it into the output. It recomputes the tag as it goes and fails with
//!    [`Error::InputChanged`] if the input changed since the first pass, in which case the
//!    output must be discarded.
//!
//! Memory stays at two 64 KiB buffers and zlib's state, whatever the file size. For input that
//! cannot seek (a pipe), [`decrypt_unseekable`] first copies the file, which is ciphertext, to a
//! caller-supplied spill (a temporary file), then runs both passes over it.
//!
//! # Telling the variants apart
//!
//! A single-file backup (a database) ends with `tag || MD5(everything before the MD5)`; a
//! multi-file backup (a ZIP of stickers or wallpapers) ends with the tag alone. The rule,
//! wa-crypt-tools' made strict:
//!
//! - the last 16 bytes are the MD5 of all before them: single-file; the tag is the 16 bytes
//!   before the MD5. A tag that fails then means a wrong key ([`Error::WrongKey`]);
//! - otherwise, if the last 16 bytes are the tag of everything between the header and them:
//!   multi-file, unless the (now authenticated) plaintext starts with a zlib header instead of
//!   a ZIP's `PK`: that is a single-file backup whose MD5 trailer was cut off, which the two
//!   layouts alone cannot tell from a multi-file backup ([`Error::Truncated`]);
//! - otherwise, if the single-file tag verifies: only the header or the MD5 changed
//!   ([`Error::ChecksumMismatch`]);
//! - otherwise [`Error::Corrupt`].
//!
//! Both fixtures are single-file backups (their MD5 matches).

use std::io::{self, Read, Seek, SeekFrom, Write};

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_kdf::crypt15::Crypt15Keys;
use flate2::{Decompress, FlushDecompress, Status};
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::gcm::{GcmStream, MAX_CIPHERTEXT_LEN, TAG_LEN};
use crate::header::FileHeader;

/// Length of the MD5 trailer of a single-file backup.
pub const MD5_LEN: usize = 16;
/// The fewest bytes a file must hold after its header: a tag and an MD5 (a multi-file backup's
/// tag and smallest ZIP, 22 bytes, take more).
pub const MIN_BODY_LEN: u64 = (TAG_LEN + MD5_LEN) as u64;
/// Size of the buffers the decryptor and encryptor work in.
pub(crate) const CHUNK_LEN: usize = 64 * 1024;

/// Which of the two crypt15 layouts a file has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    /// A database: the plaintext is a zlib stream, and an MD5 trailer follows the tag.
    SingleFile,
    /// A multi-file backup: the plaintext is a ZIP, and the tag ends the file.
    MultiFile,
}

/// A crypt15 file whose MD5 and tag have been checked, ready to be decrypted.
pub struct Decryptor<R: Read + Seek> {
    input: R,
    header: FileHeader,
    variant: Variant,
    body_start: u64,
    ciphertext_len: u64,
    tag: [u8; TAG_LEN],
    file_key: Zeroizing<[u8; 32]>,
}

impl<R: Read + Seek> std::fmt::Debug for Decryptor<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decryptor")
            .field("header", &self.header)
            .field("variant", &self.variant)
            .field("ciphertext_len", &self.ciphertext_len)
            .finish_non_exhaustive()
    }
}

impl<R: Read + Seek> Decryptor<R> {
    /// Reads the file from the input's current position to its end, checks its header, MD5 and
    /// tag, and decides its variant. Nothing is decrypted yet.
    pub fn new(key: &BackupKey, mut input: R) -> Result<Self, Error> {
        let start = input.stream_position()?;
        let end = input.seek(SeekFrom::End(0))?;
        let file_len = end.saturating_sub(start);
        input.seek(SeekFrom::Start(start))?;

        let header = FileHeader::read_from(&mut (&mut input).take(file_len))?;
        let header_len = header.len() as u64;
        let body_len = file_len - header_len;
        if body_len < MIN_BODY_LEN {
            return Err(Error::Truncated {
                part: "GCM tag and MD5 trailer",
                file_len,
                needed: header_len + MIN_BODY_LEN,
            });
        }
        let single_len = body_len - MIN_BODY_LEN;
        if single_len > MAX_CIPHERTEXT_LEN {
            return Err(Error::TooLarge { len: single_len });
        }

        let file_key = Zeroizing::new(Crypt15Keys::derive(key).backup_encryption);
        let mut gcm = GcmStream::new(&file_key, header.iv());
        let mut md5 = Md5::new();
        md5.update(header.to_bytes());
        let mut buf = vec![0u8; CHUNK_LEN];
        // The first two bytes of ciphertext, kept to tell a stripped single-file backup.
        let mut head = Vec::with_capacity(2);
        let mut left = single_len;
        while left > 0 {
            let n = left.min(CHUNK_LEN as u64) as usize;
            read_body(&mut input, &mut buf[..n])?;
            md5.update(&buf[..n]);
            gcm.authenticate(&buf[..n])?;
            keep_head(&mut head, &buf[..n]);
            left -= n as u64;
        }
        let mut next = [0u8; TAG_LEN];
        read_body(&mut input, &mut next)?;
        md5.update(next);
        keep_head(&mut head, &next);
        let mut last = [0u8; MD5_LEN];
        read_body(&mut input, &mut last)?;

        let single_tag = gcm.tag();
        let single_tag_ok = bool::from(single_tag.ct_eq(&next));
        let md5_ok = md5.finalize().as_slice() == last;
        let (variant, tag, ciphertext_len) = if md5_ok {
            if !single_tag_ok {
                return Err(Error::WrongKey);
            }
            (Variant::SingleFile, next, single_len)
        } else {
            let multi_tag_ok =
                gcm.authenticate(&next).is_ok() && bool::from(gcm.tag().ct_eq(&last));
            if multi_tag_ok {
                // Authentic, so its first bytes may be decrypted and looked at.
                GcmStream::new(&file_key, header.iv()).decrypt(&mut head)?;
                if looks_like_zlib(&head) {
                    return Err(Error::Truncated {
                        part: "MD5 trailer",
                        file_len,
                        needed: file_len + MD5_LEN as u64,
                    });
                }
                (Variant::MultiFile, last, single_len + TAG_LEN as u64)
            } else if single_tag_ok {
                return Err(Error::ChecksumMismatch);
            } else {
                return Err(Error::Corrupt);
            }
        };
        Ok(Self {
            input,
            header,
            variant,
            body_start: start + header_len,
            ciphertext_len,
            tag,
            file_key,
        })
    }

    /// The file's header.
    pub fn header(&self) -> &FileHeader {
        &self.header
    }

    /// The file's variant.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// Length of the ciphertext (and so of the plaintext before decompression).
    pub fn ciphertext_len(&self) -> u64 {
        self.ciphertext_len
    }

    /// Decrypts into `output`: a single-file backup's database, inflated; a multi-file
    /// backup's ZIP, as it is. Returns the number of bytes written.
    ///
    /// On [`Error::Decompression`] or [`Error::InputChanged`], part of the output may have
    /// been written: discard it.
    pub fn decrypt_to<W: Write>(self, output: W) -> Result<u64, Error> {
        let inflate = self.variant == Variant::SingleFile;
        self.second_pass(output, inflate)
    }

    /// Decrypts into `output` without inflating: the plaintext as stored, a zlib stream for a
    /// single-file backup. Returns the number of bytes written.
    pub fn decrypt_raw_to<W: Write>(self, output: W) -> Result<u64, Error> {
        self.second_pass(output, false)
    }

    fn second_pass<W: Write>(mut self, mut output: W, inflate: bool) -> Result<u64, Error> {
        self.input.seek(SeekFrom::Start(self.body_start))?;
        let mut gcm = GcmStream::new(&self.file_key, self.header.iv());
        let mut inflater = inflate.then(Inflater::new);
        let mut buf = Zeroizing::new(vec![0u8; CHUNK_LEN]);
        let mut written = 0u64;
        let mut failure = None;
        let mut left = self.ciphertext_len;
        while left > 0 {
            let n = left.min(CHUNK_LEN as u64) as usize;
            read_body(&mut self.input, &mut buf[..n])?;
            left -= n as u64;
            if failure.is_some() {
                // Only to tell a changed input from a bad zlib stream.
                gcm.authenticate(&buf[..n])?;
                continue;
            }
            gcm.decrypt(&mut buf[..n])?;
            match &mut inflater {
                None => {
                    output.write_all(&buf[..n])?;
                    written += n as u64;
                }
                Some(inflater) => match inflater.feed(&buf[..n], &mut output) {
                    Ok(count) => written += count,
                    Err(err @ Error::Decompression(_)) => failure = Some(err),
                    Err(err) => return Err(err),
                },
            }
        }
        if failure.is_none()
            && let Some(inflater) = &mut inflater
        {
            match inflater.finish(&mut output) {
                Ok(count) => written += count,
                Err(err @ Error::Decompression(_)) => failure = Some(err),
                Err(err) => return Err(err),
            }
        }
        if !bool::from(gcm.tag().ct_eq(&self.tag)) {
            return Err(Error::InputChanged);
        }
        if let Some(err) = failure {
            return Err(err);
        }
        output.flush()?;
        Ok(written)
    }
}

fn keep_head(head: &mut Vec<u8>, data: &[u8]) {
    let take = (2 - head.len()).min(data.len());
    head.extend_from_slice(&data[..take]);
}

/// Whether `head` starts like a zlib stream (RFC 1950: deflate, window at most 32 KiB, header
/// checksum right). A ZIP starts with `PK`, which never does.
pub(crate) fn looks_like_zlib(head: &[u8]) -> bool {
    match head {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

/// Reads exactly `buf.len()` bytes of a body whose length was measured: an early end means
/// the input shrank.
fn read_body<R: Read>(input: &mut R, buf: &mut [u8]) -> Result<(), Error> {
    input.read_exact(buf).map_err(|err| {
        if err.kind() == io::ErrorKind::UnexpectedEof { Error::InputChanged } else { err.into() }
    })
}

/// zlib inflation into a writer, strict about the end of the stream.
struct Inflater {
    state: Decompress,
    out: Zeroizing<Vec<u8>>,
    done: bool,
}

impl Inflater {
    fn new() -> Self {
        Self {
            state: Decompress::new(true),
            out: Zeroizing::new(vec![0u8; CHUNK_LEN]),
            done: false,
        }
    }

    /// Runs zlib once; returns (input consumed, output produced, stream ended).
    fn step(
        &mut self,
        input: &[u8],
        flush: FlushDecompress,
    ) -> Result<(usize, usize, bool), Error> {
        let (in_before, out_before) = (self.state.total_in(), self.state.total_out());
        let status = self
            .state
            .decompress(input, &mut self.out, flush)
            .map_err(|err| Error::Decompression(err.to_string()))?;
        let consumed = (self.state.total_in() - in_before) as usize;
        let produced = (self.state.total_out() - out_before) as usize;
        Ok((consumed, produced, status == Status::StreamEnd))
    }

    fn feed<W: Write>(&mut self, mut input: &[u8], output: &mut W) -> Result<u64, Error> {
        let mut written = 0u64;
        loop {
            if self.done {
                if !input.is_empty() {
                    return Err(Error::Decompression(
                        "data follows the end of the zlib stream".into(),
                    ));
                }
                return Ok(written);
            }
            let (consumed, produced, ended) = self.step(input, FlushDecompress::None)?;
            output.write_all(&self.out[..produced])?;
            written += produced as u64;
            input = &input[consumed..];
            self.done = ended;
            if !ended && input.is_empty() && produced < self.out.len() {
                return Ok(written);
            }
            if !ended && consumed == 0 && produced == 0 {
                return Err(Error::Decompression("the zlib stream makes no progress".into()));
            }
        }
    }

    fn finish<W: Write>(&mut self, output: &mut W) -> Result<u64, Error> {
        let mut written = 0u64;
        while !self.done {
            let (_, produced, ended) = self.step(&[], FlushDecompress::Finish)?;
            output.write_all(&self.out[..produced])?;
            written += produced as u64;
            self.done = ended;
            if !ended && produced == 0 {
                return Err(Error::Decompression(
                    "the zlib stream is cut short: it ends before its end marker and checksum"
                        .into(),
                ));
            }
        }
        Ok(written)
    }
}

/// A file decrypted in memory by [`decrypt_to_vec`].
#[derive(Debug)]
pub struct Decrypted {
    /// The file's header.
    pub header: FileHeader,
    /// The file's variant.
    pub variant: Variant,
    /// The database (inflated) or the ZIP.
    pub plaintext: Vec<u8>,
}

/// Decrypts a whole file held in memory.
pub fn decrypt_to_vec(key: &BackupKey, file: &[u8]) -> Result<Decrypted, Error> {
    let decryptor = Decryptor::new(key, io::Cursor::new(file))?;
    let header = decryptor.header().clone();
    let variant = decryptor.variant();
    let mut plaintext = Vec::new();
    decryptor.decrypt_to(&mut plaintext)?;
    Ok(Decrypted { header, variant, plaintext })
}

/// Decrypts a file read from a stream that cannot seek.
///
/// The file (ciphertext) is first copied to `spill`, which must be empty and is typically a
/// temporary file; both passes then run over it. Returns the header, the variant and the
/// number of bytes written to `output`.
pub fn decrypt_unseekable<R, S, W>(
    key: &BackupKey,
    mut input: R,
    mut spill: S,
    output: W,
) -> Result<(FileHeader, Variant, u64), Error>
where
    R: Read,
    S: Read + Write + Seek,
    W: Write,
{
    let start = spill.stream_position()?;
    io::copy(&mut input, &mut spill)?;
    spill.flush()?;
    spill.seek(SeekFrom::Start(start))?;
    let decryptor = Decryptor::new(key, spill)?;
    let header = decryptor.header().clone();
    let variant = decryptor.variant();
    let written = decryptor.decrypt_to(output)?;
    Ok((header, variant, written))
}
