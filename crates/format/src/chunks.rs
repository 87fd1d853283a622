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
use crate::buffers::Kept;
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
        Self { cipher: C::new(payload_key), nonce_base, file_id, chunk_size }
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

    /// Chunk size in bytes.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
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

    /// Opens a chunk whose record header (checked) and tag are given, in `text`, which holds
    /// its ciphertext. On failure `text` is zeroed, so that no unverified byte is left behind.
    fn open_chunk(&self, head: &[u8], tag: &[u8], text: &mut [u8], index: u32, last: bool) -> bool {
        let tag: &[u8; TAG_LEN] = tag[..TAG_LEN].try_into().expect("16 bytes");
        let ok = self.cipher.open(&self.nonce(index, last), head, text, tag).is_ok();
        if !ok {
            text.fill(0);
        }
        ok
    }

    /// Seals the records laid out back to back in `records`, the first of index `first`:
    /// every record is full but the final one, whose length is what remains of `records`.
    /// `last` marks that final record as the end of the stream. With `src = (held, data)`,
    /// the first `held` chunks are already in place and chunk `j >= held` is first copied from
    /// `data[(j - held) * chunk_size ..]` into its record, inside the task that seals it, while
    /// it is in that core's cache; without, every chunk is already in place.
    ///
    /// Both [`ChunkWriter`] and `encrypt_to_vec` seal through here.
    pub(crate) fn seal_records(
        &self,
        records: &mut [u8],
        first: u32,
        last: bool,
        src: Option<(usize, &[u8])>,
    ) {
        let (size, record_len) = (self.chunk_size, self.record_len());
        let count = records.len().div_ceil(record_len);
        let seal = |j: usize, record: &mut [u8]| {
            let len = record.len() - RECORD_OVERHEAD;
            if let Some((held, src)) = src
                && j >= held
            {
                let from = (j - held) * size;
                record[RECORD_HEADER_LEN..RECORD_HEADER_LEN + len]
                    .copy_from_slice(&src[from..from + len]);
            }
            let index = first.wrapping_add(j as u32);
            self.seal_record(record, index, len, last && j + 1 == count);
        };
        if count <= self.task_chunks() {
            // One task: not worth handing to the pool and waiting for it.
            for (j, record) in records.chunks_mut(record_len).enumerate() {
                seal(j, record);
            }
        } else {
            records
                .par_chunks_mut(record_len)
                .with_min_len(self.task_chunks())
                .enumerate()
                .for_each(|(j, record)| seal(j, record));
        }
    }

    /// Opens the records of `records` (checked by [`StreamKeys::scan`]; `last` tells whether
    /// the final one ends the stream) in place, each chunk left at offset 16 of its record.
    /// Returns the index of the first record whose tag fails.
    fn open_records_in_place(&self, records: &mut [u8], first: u32, last: bool) -> Option<u32> {
        let record_len = self.record_len();
        let count = records.len().div_ceil(record_len);
        let open = |j: usize, record: &mut [u8]| {
            let index = first.wrapping_add(j as u32);
            let len = record.len() - RECORD_OVERHEAD;
            let (head, rest) = record.split_at_mut(RECORD_HEADER_LEN);
            let (text, tag) = rest.split_at_mut(len);
            let ok = self.open_chunk(head, tag, text, index, last && j + 1 == count);
            (!ok).then_some(index)
        };
        if count <= self.task_chunks() {
            records.chunks_mut(record_len).enumerate().find_map(|(j, record)| open(j, record))
        } else {
            records
                .par_chunks_mut(record_len)
                .with_min_len(self.task_chunks())
                .enumerate()
                .filter_map(|(j, record)| open(j, record))
                .min()
        }
    }

    /// Opens the records of `records` (checked by [`StreamKeys::scan`]; `last` tells whether
    /// the final one ends the stream) into `out`, which takes exactly their chunks: each task
    /// copies its ciphertext into place and opens it there. Returns the index of the first
    /// record whose tag fails; the chunks of failed records are left zeroed.
    ///
    /// Both [`ChunkReader`] and `decrypt_to_vec` open through here.
    pub(crate) fn open_records_into(
        &self,
        records: &[u8],
        first: u32,
        last: bool,
        out: &mut [u8],
    ) -> Option<u32> {
        let (size, record_len) = (self.chunk_size, self.record_len());
        let count = records.len().div_ceil(record_len);
        let open = |j: usize, record: &[u8], text: &mut [u8]| {
            let index = first.wrapping_add(j as u32);
            let (head, rest) = record.split_at(RECORD_HEADER_LEN);
            let (ciphertext, tag) = rest.split_at(text.len());
            text.copy_from_slice(ciphertext);
            let ok = self.open_chunk(head, tag, text, index, last && j + 1 == count);
            (!ok).then_some(index)
        };
        if out.is_empty() {
            // No chunk, or a single empty one (an empty payload).
            debug_assert!(count <= 1);
            return (count == 1).then(|| open(0, records, &mut [])).flatten();
        }
        if count <= self.task_chunks() {
            records
                .chunks(record_len)
                .zip(out.chunks_mut(size))
                .enumerate()
                .find_map(|(j, (record, text))| open(j, record, text))
        } else {
            records
                .par_chunks(record_len)
                .zip(out.par_chunks_mut(size))
                .with_min_len(self.task_chunks())
                .enumerate()
                .filter_map(|(j, (record, text))| open(j, record, text))
                .min()
        }
    }

    /// Checks the record headers at the start of `bytes`, the records from index `first`
    /// on, which start at file offset `at`. `eof` tells whether the file ends with `bytes`;
    /// if not, `more` tells whether at least one byte follows them.
    pub(crate) fn scan(
        &self,
        bytes: &[u8],
        first: u32,
        at: u64,
        eof: bool,
        more: impl FnOnce() -> Result<bool, Error>,
    ) -> Result<Scan, Error> {
        let mut scan = Scan { count: 0, end: 0, payload: 0, last: false, fault: None };
        while scan.end < bytes.len() {
            let position = first.wrapping_add(scan.count as u32);
            let pos = scan.end;
            match self.check_record(&bytes[pos..], position, at + pos as u64) {
                Ok((len, last)) => {
                    scan.count += 1;
                    scan.end += RECORD_OVERHEAD + len;
                    scan.payload += len;
                    if last {
                        scan.last = true;
                        break;
                    }
                    if position == u32::MAX {
                        scan.fault =
                            Some(Error::InvalidChunkLength { index: position, length: len as u32 });
                        break;
                    }
                }
                Err(err) => {
                    scan.fault = Some(err);
                    break;
                }
            }
        }
        if scan.fault.is_none() {
            if scan.last {
                if scan.end < bytes.len() || (!eof && more()?) {
                    scan.fault = Some(Error::TrailingData { offset: at + scan.end as u64 });
                }
            } else if eof {
                scan.fault = Some(Error::Truncated { file_len: at + bytes.len() as u64 });
            }
        }
        Ok(scan)
    }

    /// Checks the record header at the start of `bytes`; returns the chunk length and whether
    /// it is the last chunk.
    fn check_record(&self, bytes: &[u8], position: u32, at: u64) -> Result<(usize, bool), Error> {
        if bytes.len() < RECORD_HEADER_LEN {
            return Err(Error::Truncated { file_len: at + bytes.len() as u64 });
        }
        if bytes[..8] != self.file_id {
            return Err(Error::ChunkFromOtherFile { position });
        }
        let index = u32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if index != position {
            return Err(Error::ChunkOutOfOrder { expected: position, found: index });
        }
        let field = u32::from_be_bytes(bytes[12..16].try_into().expect("4 bytes"));
        let (last, length) = (field & LAST_FLAG != 0, field & !LAST_FLAG);
        let len = length as usize;
        let allowed = if last {
            len <= self.chunk_size && (len > 0 || index == 0)
        } else {
            len == self.chunk_size
        };
        if !allowed {
            return Err(Error::InvalidChunkLength { index, length });
        }
        if bytes.len() < RECORD_OVERHEAD + len {
            return Err(Error::Truncated { file_len: at + bytes.len() as u64 });
        }
        Ok((len, last))
    }
}

/// What [`StreamKeys::scan`] found: `count` records with sound headers, back to back in the
/// first `end` bytes and holding `payload` bytes of chunks, then the first structural fault
/// in stream order, if any. Every record before `end` is full but the final one. The fault
/// is reported only if none of the `count` records fails its tag.
pub(crate) struct Scan {
    pub count: usize,
    pub end: usize,
    pub payload: usize,
    /// The final record carries the last flag.
    pub last: bool,
    pub fault: Option<Error>,
}

/// Whether writing out a batch overlaps sealing the next one.
const OVERLAP: bool = true;

/// Seals a payload into records as it is written. Call [`ChunkWriter::finish`] at the end:
/// without it the last chunk is missing and readers report the file as truncated.
pub struct ChunkWriter<W, C> {
    inner: W,
    keys: StreamKeys<C>,
    /// Records of the current batch; chunk `j` occupies `j * record_len ..`. Grown on demand.
    buf: Kept,
    /// Sealed records of the previous batch, written out while the next batch is sealed.
    spare: Kept,
    /// Bytes of `spare` waiting to be written.
    pending: usize,
    /// Payload bytes in the current batch.
    filled: usize,
    /// Index of the first chunk of the current batch.
    first_index: u32,
}

impl<W: Write, C: ChunkCipher> ChunkWriter<W, C> {
    /// A writer of records to `inner`.
    pub fn new(inner: W, keys: StreamKeys<C>) -> Self {
        Self {
            inner,
            keys,
            buf: Kept::take(),
            spare: Kept::take(),
            pending: 0,
            filled: 0,
            first_index: 0,
        }
    }

    fn capacity(&self) -> usize {
        self.keys.batch_chunks() * self.keys.chunk_size
    }

    /// The index after `count` more chunks, if they are allowed.
    fn end_index(&self, count: usize, last: bool) -> io::Result<u32> {
        let end_index = u64::from(self.first_index) + count as u64;
        // Indices are 32 bits: chunk 2^32-1 can only be the last one. More data after it
        // would wrap the index and reuse nonces.
        let limit = if last { 1u64 << 32 } else { u64::from(u32::MAX) };
        if end_index > limit {
            return Err(Error::InvalidInput("payload exceeds 2^32 chunks").into());
        }
        Ok(end_index as u32)
    }

    fn ensure(&mut self, len: usize) {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
    }

    /// Seals the first `out_len` bytes of records in `buf` (copying their chunks from `src`
    /// when given) and writes them out; when overlapping, writes the previous batch out
    /// while this one is sealed, and keeps this one back until the next.
    fn seal_and_write(
        &mut self,
        out_len: usize,
        last: bool,
        src: Option<(usize, &[u8])>,
    ) -> io::Result<()> {
        let Self { inner, keys, buf, spare, pending, first_index, .. } = self;
        let (keys, first) = (&*keys, *first_index);
        let seal = |buf: &mut [u8]| keys.seal_records(&mut buf[..out_len], first, last, src);
        // A batch of one task is sealed on this thread: nothing to overlap with.
        let one_task = out_len <= keys.task_chunks() * keys.record_len();
        if *pending > 0 && one_task {
            inner.write_all(&spare[..*pending])?;
            *pending = 0;
        }
        if OVERLAP && *pending > 0 {
            let mut written = Ok(());
            rayon::in_place_scope(|s| {
                s.spawn(|_| seal(buf));
                written = inner.write_all(&spare[..*pending]);
            });
            written?;
            *pending = 0;
        } else {
            seal(buf);
        }
        if OVERLAP && !last {
            std::mem::swap(buf, spare);
            *pending = out_len;
        } else {
            inner.write_all(&buf[..out_len])?;
        }
        Ok(())
    }

    /// Seals the chunks of the current batch and writes them out. `last` marks the final
    /// chunk of the batch as the end of the stream.
    fn flush_batch(&mut self, last: bool) -> io::Result<()> {
        let size = self.keys.chunk_size;
        let count = self.filled.div_ceil(size).max(1);
        let end_index = self.end_index(count, last)?;
        let out_len = count * RECORD_OVERHEAD + self.filled;
        self.ensure(out_len);
        self.seal_and_write(out_len, last, None)?;
        self.first_index = end_index;
        self.filled = 0;
        Ok(())
    }

    /// Seals the whole chunks held in the current batch and, after them, whole chunks straight
    /// from `data`, each copied into its record inside the task that seals it. Only chunks
    /// followed by more data come here: none of them is the last.
    fn seal_direct(&mut self, data: &[u8]) -> io::Result<()> {
        let size = self.keys.chunk_size;
        debug_assert!(self.filled.is_multiple_of(size));
        let held = self.filled / size;
        let count = held + data.len() / size;
        let end_index = self.end_index(count, false)?;
        let out_len = count * self.keys.record_len();
        self.ensure(out_len);
        self.seal_and_write(out_len, false, Some((held, data)))?;
        self.first_index = end_index;
        self.filled = 0;
        Ok(())
    }

    /// Writes out sealed records held back to overlap with sealing.
    fn write_pending(&mut self) -> io::Result<()> {
        if self.pending > 0 {
            self.inner.write_all(&self.spare[..self.pending])?;
            self.pending = 0;
        }
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
            // On a chunk boundary, with more than a chunk to come: the rest of the batch is
            // copied by the tasks that seal it, not by this thread first.
            if self.filled.is_multiple_of(size) && data.len() > size {
                let room = self.keys.batch_chunks() - self.filled / size;
                let count = ((data.len() - 1) / size).min(room);
                self.seal_direct(&data[..count * size])?;
                data = &data[count * size..];
                continue;
            }
            let (chunk, offset) = (self.filled / size, self.filled % size);
            let n = data.len().min(size - offset);
            let start = chunk * record_len + RECORD_HEADER_LEN + offset;
            self.ensure(start + n);
            self.buf[start..start + n].copy_from_slice(&data[..n]);
            self.filled += n;
            data = &data[n..];
        }
        Ok(total)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_pending()?;
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
    /// Records of the current batch, opened in place when the caller's buffer cannot take
    /// them all.
    buf: Kept,
    /// Records in the previous batch: batches grow geometrically up to a full one.
    batch: usize,
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
        Self {
            inner,
            keys,
            buf: Kept::take(),
            batch: 0,
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

    /// Reads the next batch, checks every record header, and opens the chunks in parallel:
    /// straight into `out` when it can take them all (returns how many bytes it got), else
    /// in place, to be handed out from `ready` (returns 0).
    fn next_batch(&mut self, out: &mut [u8]) -> Result<usize, Error> {
        let (size, record_len) = (self.keys.chunk_size, self.keys.record_len());
        // As many records as the caller asks for, at least twice the previous batch, at most
        // a full batch: small files and small reads stay cheap, large ones reach full batches.
        let records =
            out.len().div_ceil(size).max(self.batch * 2).clamp(1, self.keys.batch_chunks());
        self.batch = records;
        let want = records * record_len;
        self.buf.clear();
        self.buf.reserve(want);
        (&mut self.inner)
            .take(want as u64)
            .read_to_end(&mut self.buf)
            .map_err(Error::from_io_error)?;
        let got = self.buf.len();
        let inner = &mut self.inner;
        let first = self.next_index;
        let scan =
            self.keys.scan(&self.buf, first, self.offset, got < want, || probe_byte(inner))?;
        // Open every record before the first structural fault, so the reported error is the
        // first one in stream order.
        let direct = out.len() >= scan.payload;
        let failed = if scan.count == 0 {
            None
        } else if direct {
            self.keys.open_records_into(
                &self.buf[..scan.end],
                first,
                scan.last,
                &mut out[..scan.payload],
            )
        } else {
            self.keys.open_records_in_place(&mut self.buf[..scan.end], first, scan.last)
        };
        if let Some(index) = failed {
            return Err(Error::ChunkModified { index });
        }
        if let Some(err) = scan.fault {
            return Err(err);
        }
        self.ready.clear();
        if !direct {
            self.ready.extend((0..scan.count).map(|j| {
                let len = if j + 1 == scan.count { scan.payload - j * size } else { size };
                (j * record_len + RECORD_HEADER_LEN, len)
            }));
        }
        self.cursor = (0, 0);
        self.next_index = first.wrapping_add(scan.count as u32);
        self.offset += got as u64;
        self.done = scan.last;
        Ok(if direct { scan.payload } else { 0 })
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
            match self.next_batch(out) {
                Ok(0) => {}
                Ok(n) => return Ok(n),
                Err(err) => {
                    self.ready.clear();
                    self.failed = Some(err.clone());
                    return Err(err.into());
                }
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
