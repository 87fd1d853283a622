//! The payload as a sequence of sealed chunks (spec section 3.4).
//!
//! The payload (the plaintext, or its zstd compression) is cut into chunks of exactly
//! `chunk_size` bytes; the last chunk holds the rest, 1 to `chunk_size` bytes (0 only when
//! the whole payload is empty). Each chunk is written as a record:
//!
//! | size | field     | value                                                          |
//! |------|-----------|----------------------------------------------------------------|
//! | 8    | file_id   | the first 8 bytes of the header's salt                         |
//! | 4    | index     | big-endian position of the chunk, from 0                       |
//! | 4    | length    | big-endian; bit 31 set on the last chunk, bits 0-30 its length |
//! | n    | ciphertext| AES-256-GCM of the chunk under the payload key                 |
//! | 16   | tag       |                                                                |
//!
//! The 16 record-header bytes are the associated data, and the nonce is the file's nonce base
//! XORed with `0^7 || index (4 bytes, big-endian) || last (1 byte: 1 on the last chunk, else 0)`.
//! The file ends right after the last record.
//!
//! [`ChunkWriter`] and [`ChunkReader`] work on batches of chunks so that the chunks of a batch
//! are sealed or opened on all cores; the bytes are the same as one chunk at a time.

use std::io::{self, Read, Write};

use rayon::prelude::*;

use crate::Error;
use crate::cipher::{ChunkCipher, NONCE_LEN, TAG_LEN};

/// Length of a record header in bytes.
pub const RECORD_HEADER_LEN: usize = 16;
/// Bytes a record adds to its chunk.
pub const RECORD_OVERHEAD: usize = RECORD_HEADER_LEN + TAG_LEN;
/// Bit of the length field that marks the last chunk.
pub const LAST_FLAG: u32 = 1 << 31;
/// Plaintext bytes a batch aims at: large enough to keep two cores busy, small enough to keep
/// memory flat.
const BATCH_BYTES: usize = 1 << 20;
/// Chunks smaller than this are grouped into one task so tiny chunks do not drown in overhead.
const TASK_BYTES: usize = 64 << 10;

/// The per-file values that every record depends on.
pub struct StreamKeys<C> {
    cipher: C,
    nonce_base: [u8; NONCE_LEN],
    file_id: [u8; 8],
    chunk_size: usize,
}

impl<C: ChunkCipher> StreamKeys<C> {
    /// Keys a chunk stream from the file's payload key, nonce base, file id and chunk size.
    pub fn new(
        payload_key: &[u8; 32],
        nonce_base: [u8; NONCE_LEN],
        file_id: [u8; 8],
        chunk_size: usize,
    ) -> Self {
        Self {
            cipher: C::new(payload_key),
            nonce_base,
            file_id,
            chunk_size,
        }
    }

    /// The nonce of chunk `index`.
    pub fn nonce(&self, index: u32, last: bool) -> [u8; NONCE_LEN] {
        let mut nonce = self.nonce_base;
        for (n, b) in nonce[7..11].iter_mut().zip(index.to_be_bytes()) {
            *n ^= b;
        }
        nonce[11] ^= u8::from(last);
        nonce
    }

    fn record_header(&self, index: u32, len: usize, last: bool) -> [u8; RECORD_HEADER_LEN] {
        let mut out = [0u8; RECORD_HEADER_LEN];
        out[..8].copy_from_slice(&self.file_id);
        out[8..12].copy_from_slice(&index.to_be_bytes());
        let length = len as u32 | if last { LAST_FLAG } else { 0 };
        out[12..].copy_from_slice(&length.to_be_bytes());
        out
    }

    fn record_len(&self) -> usize {
        self.chunk_size + RECORD_OVERHEAD
    }

    fn batch_chunks(&self) -> usize {
        (BATCH_BYTES / self.chunk_size).max(1)
    }

    fn task_chunks(&self) -> usize {
        (TASK_BYTES / self.chunk_size).max(1)
    }

    /// Seals one record in place: `record` holds the chunk at offset 16 and room for the tag.
    fn seal_record(&self, record: &mut [u8], index: u32, len: usize, last: bool) {
        let header = self.record_header(index, len, last);
        record[..RECORD_HEADER_LEN].copy_from_slice(&header);
        let (head, rest) = record.split_at_mut(RECORD_HEADER_LEN);
        let (text, tail) = rest.split_at_mut(len);
        let tag = self.cipher.seal(&self.nonce(index, last), head, text);
        tail[..TAG_LEN].copy_from_slice(&tag);
    }

    /// Opens one record in place after its header was checked.
    fn open_record(&self, record: &mut [u8], index: u32, len: usize, last: bool) -> bool {
        let (head, rest) = record.split_at_mut(RECORD_HEADER_LEN);
        let (text, tail) = rest.split_at_mut(len);
        let tag: [u8; TAG_LEN] = tail[..TAG_LEN].try_into().expect("16 bytes");
        self.cipher
            .open(&self.nonce(index, last), head, text, &tag)
            .is_ok()
    }
}

/// Seals a payload into records as it is written. Call [`ChunkWriter::finish`] at the end:
/// without it the last chunk is missing and readers report the file as truncated.
pub struct ChunkWriter<W, C> {
    inner: W,
    keys: StreamKeys<C>,
    /// Records of the current batch; chunk `j` occupies `j * record_len ..`.
    buf: Vec<u8>,
    /// Payload bytes in the current batch.
    filled: usize,
    /// Index of the first chunk of the current batch.
    first_index: u32,
}

impl<W: Write, C: ChunkCipher> ChunkWriter<W, C> {
    /// A writer of records to `inner`.
    pub fn new(inner: W, keys: StreamKeys<C>) -> Self {
        let buf = vec![0u8; keys.batch_chunks() * keys.record_len()];
        Self {
            inner,
            keys,
            buf,
            filled: 0,
            first_index: 0,
        }
    }

    fn capacity(&self) -> usize {
        self.keys.batch_chunks() * self.keys.chunk_size
    }

    /// Seals the chunks of the current batch and writes them out. `last` marks the final
    /// chunk of the batch as the end of the stream.
    fn flush_batch(&mut self, last: bool) -> io::Result<()> {
        let size = self.keys.chunk_size;
        let count = self.filled.div_ceil(size).max(1);
        let end_index = u64::from(self.first_index) + count as u64;
        // Indices are 32 bits: chunk 2^32-1 can only be the last one. More data after it
        // would wrap the index and reuse nonces.
        let limit = if last { 1u64 << 32 } else { u64::from(u32::MAX) };
        if end_index > limit {
            return Err(Error::InvalidInput("payload exceeds 2^32 chunks").into());
        }
        let record_len = self.keys.record_len();
        let final_len = self.filled - (count - 1) * size;
        let (keys, first) = (&self.keys, self.first_index);
        self.buf[..count * record_len]
            .par_chunks_mut(record_len)
            .with_min_len(keys.task_chunks())
            .enumerate()
            .for_each(|(j, record)| {
                let is_last_here = j + 1 == count;
                let len = if is_last_here { final_len } else { size };
                keys.seal_record(record, first + j as u32, len, last && is_last_here);
            });
        let out_len = (count - 1) * record_len + RECORD_OVERHEAD + final_len;
        self.inner.write_all(&self.buf[..out_len])?;
        self.first_index = end_index as u32;
        self.filled = 0;
        Ok(())
    }

    /// Writes the last chunk and returns the inner writer, flushed.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush_batch(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write, C: ChunkCipher> Write for ChunkWriter<W, C> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let total = data.len();
        let size = self.keys.chunk_size;
        let record_len = self.keys.record_len();
        while !data.is_empty() {
            // A full batch is sealed only once more data arrives: until then, its last chunk
            // may still turn out to be the end of the stream.
            if self.filled == self.capacity() {
                self.flush_batch(false)?;
            }
            let (chunk, offset) = (self.filled / size, self.filled % size);
            let n = data.len().min(size - offset);
            let start = chunk * record_len + RECORD_HEADER_LEN + offset;
            self.buf[start..start + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Reads records and hands out the payload, one verified batch at a time.
///
/// No byte of a chunk is returned before its tag has verified. The first error is kept and
/// returned again by every later call.
pub struct ChunkReader<R, C> {
    inner: R,
    keys: StreamKeys<C>,
    buf: Vec<u8>,
    /// Opened chunks of the current batch, as (offset in `buf`, length).
    ready: Vec<(usize, usize)>,
    /// Next chunk of `ready` to hand out and the offset within it.
    cursor: (usize, usize),
    /// Index the next record must carry.
    next_index: u32,
    /// File offset of the next unread byte.
    offset: u64,
    done: bool,
    failed: Option<Error>,
}

impl<R: Read, C: ChunkCipher> ChunkReader<R, C> {
    /// A reader of the records that start at file offset `offset` of `inner`.
    pub fn new(inner: R, keys: StreamKeys<C>, offset: u64) -> Self {
        let buf = vec![0u8; keys.batch_chunks() * keys.record_len()];
        Self {
            inner,
            keys,
            buf,
            ready: Vec::new(),
            cursor: (0, 0),
            next_index: 0,
            offset,
            done: false,
            failed: None,
        }
    }

    /// Whether the last chunk has been read and verified, with nothing after it.
    pub fn is_done(&self) -> bool {
        self.done && self.failed.is_none()
    }

    /// Reads the next batch, checks every record header, and opens the chunks in parallel.
    fn next_batch(&mut self) -> Result<(), Error> {
        let got = read_full(&mut self.inner, &mut self.buf)?;
        let eof = got < self.buf.len();
        let record_len = self.keys.record_len();
        let mut records = Vec::new();
        let mut structural: Option<Error> = None;
        let mut pos = 0;
        let mut last_seen = false;
        while pos < got {
            let at = self.offset + pos as u64;
            let position = self.next_index.wrapping_add(records.len() as u32);
            match self.check_record(&self.buf[pos..got], position, at) {
                Ok((len, last)) => {
                    records.push((pos, len, last));
                    pos += RECORD_OVERHEAD + len;
                    if last {
                        last_seen = true;
                        break;
                    }
                    if position == u32::MAX {
                        structural = Some(Error::InvalidChunkLength {
                            index: position,
                            length: len as u32,
                        });
                        break;
                    }
                }
                Err(err) => {
                    structural = Some(err);
                    break;
                }
            }
            debug_assert_eq!(pos % record_len, 0);
        }
        if structural.is_none() {
            if last_seen {
                if pos < got || (!eof && probe_byte(&mut self.inner)?) {
                    structural = Some(Error::TrailingData {
                        offset: self.offset + pos as u64,
                    });
                }
            } else if eof {
                structural = Some(Error::Truncated {
                    file_len: self.offset + got as u64,
                });
            }
        }
        // Open every record before the first structural fault, so the reported error is the
        // first one in stream order.
        let keys = &self.keys;
        let first = self.next_index;
        let failed = self.buf[..records
            .last()
            .map_or(0, |&(p, _, _)| p + record_len)
            .min(got)]
            .par_chunks_mut(record_len)
            .with_min_len(keys.task_chunks())
            .zip(records.par_iter())
            .enumerate()
            .filter_map(|(j, (record, &(_, len, last)))| {
                let index = first + j as u32;
                (!keys.open_record(record, index, len, last)).then_some(index)
            })
            .min();
        if let Some(index) = failed {
            return Err(Error::ChunkModified { index });
        }
        if let Some(err) = structural {
            return Err(err);
        }
        self.ready = records
            .iter()
            .map(|&(p, len, _)| (p + RECORD_HEADER_LEN, len))
            .collect();
        self.cursor = (0, 0);
        self.next_index = first.wrapping_add(records.len() as u32);
        self.offset += got as u64;
        self.done = last_seen;
        Ok(())
    }

    /// Checks the record header at the start of `bytes`; returns the chunk length and whether
    /// it is the last chunk.
    fn check_record(&self, bytes: &[u8], position: u32, at: u64) -> Result<(usize, bool), Error> {
        if bytes.len() < RECORD_HEADER_LEN {
            return Err(Error::Truncated {
                file_len: at + bytes.len() as u64,
            });
        }
        if bytes[..8] != self.keys.file_id {
            return Err(Error::ChunkFromOtherFile { position });
        }
        let index = u32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if index != position {
            return Err(Error::ChunkOutOfOrder {
                expected: position,
                found: index,
            });
        }
        let field = u32::from_be_bytes(bytes[12..16].try_into().expect("4 bytes"));
        let (last, length) = (field & LAST_FLAG != 0, field & !LAST_FLAG);
        let len = length as usize;
        let allowed = if last {
            len <= self.keys.chunk_size && (len > 0 || index == 0)
        } else {
            len == self.keys.chunk_size
        };
        if !allowed {
            return Err(Error::InvalidChunkLength { index, length });
        }
        if bytes.len() < RECORD_OVERHEAD + len {
            return Err(Error::Truncated {
                file_len: at + bytes.len() as u64,
            });
        }
        Ok((len, last))
    }
}

impl<R: Read, C: ChunkCipher> Read for ChunkReader<R, C> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(err) = &self.failed {
            return Err(err.clone().into());
        }
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            if let Some(&(start, len)) = self.ready.get(self.cursor.0) {
                let from = start + self.cursor.1;
                let n = out.len().min(len - self.cursor.1);
                out[..n].copy_from_slice(&self.buf[from..from + n]);
                self.cursor.1 += n;
                if self.cursor.1 == len {
                    self.cursor = (self.cursor.0 + 1, 0);
                }
                if n > 0 {
                    return Ok(n);
                }
                continue;
            }
            if self.done {
                return Ok(0);
            }
            if let Err(err) = self.next_batch() {
                self.ready.clear();
                self.failed = Some(err.clone());
                return Err(err.into());
            }
        }
    }
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
pub(crate) fn read_full(inner: &mut impl Read, buf: &mut [u8]) -> Result<usize, Error> {
    let mut got = 0;
    while got < buf.len() {
        match inner.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::from_io_error(e)),
        }
    }
    Ok(got)
}

/// Whether at least one more byte can be read.
fn probe_byte(inner: &mut impl Read) -> Result<bool, Error> {
    Ok(read_full(inner, &mut [0u8; 1])? == 1)
}
