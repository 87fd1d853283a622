//! Round trips, the bytes on the wire, and every kind of damage the format must detect.

use std::io::{Read, Write};

use e2ee_backup_format::chunks::{LAST_FLAG, RECORD_HEADER_LEN, RECORD_OVERHEAD};
use e2ee_backup_format::cipher::{ChunkCipher, TAG_LEN};
use e2ee_backup_format::header::HEADER_LEN;
use e2ee_backup_format::{
    Compression, Decryptor, EncryptOptions, Encryptor, Error, Header, RingGcm, RustCryptoGcm,
    decrypt_into, decrypt_to_vec, encrypt_into, encrypt_to_vec,
};
use e2ee_backup_kdf::BackupKey;
use e2ee_backup_kdf::schedule::FileKeys;
use proptest::prelude::*;

const CHUNK_LOG2: u8 = 6;
const CHUNK: usize = 1 << CHUNK_LOG2;

fn key(byte: u8) -> BackupKey {
    BackupKey::from_bytes([byte; 32])
}

fn options(compression: Compression, salt: u8) -> EncryptOptions {
    let mut options = EncryptOptions::default().with_fixed_salt_for_test_vectors([salt; 32]);
    options.compression = compression;
    options.chunk_size_log2 = CHUNK_LOG2;
    options.metadata.created_at = 1_700_000_000;
    options
}

fn sample(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + i / 7) as u8).collect()
}

/// Where the records start in a file made by `options(..)` with recorded length.
fn records_start(file: &[u8]) -> usize {
    let header = Header::parse(file[..HEADER_LEN].try_into().unwrap()).unwrap();
    HEADER_LEN + header.metadata_len as usize
}

/// The chunk stream written one chunk at a time straight from the specification, as a check
/// on the batched, parallel writer.
fn reference_records(key: &BackupKey, salt: [u8; 32], payload: &[u8]) -> Vec<u8> {
    let keys = FileKeys::derive(key, &salt);
    let cipher = RingGcm::new(&keys.payload_key);
    let chunks: Vec<&[u8]> =
        if payload.is_empty() { vec![&[]] } else { payload.chunks(CHUNK).collect() };
    let mut out = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = i + 1 == chunks.len();
        let mut record = Vec::new();
        record.extend_from_slice(&salt[..8]);
        record.extend_from_slice(&(i as u32).to_be_bytes());
        record.extend_from_slice(
            &(chunk.len() as u32 | if last { LAST_FLAG } else { 0 }).to_be_bytes(),
        );
        let mut nonce = keys.nonce_base;
        for (n, b) in nonce[7..11].iter_mut().zip((i as u32).to_be_bytes()) {
            *n ^= b;
        }
        nonce[11] ^= last as u8;
        let mut text = chunk.to_vec();
        let tag = cipher.seal(&nonce, &record, &mut text);
        record.extend_from_slice(&text);
        record.extend_from_slice(&tag);
        out.extend_from_slice(&record);
    }
    out
}

#[test]
fn writer_matches_the_reference_at_chunk_boundaries() {
    for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 5000, 70_000] {
        let payload = sample(len);
        let file = encrypt_to_vec(&key(1), options(Compression::None, 9), &payload).unwrap();
        let records = &file[records_start(&file)..];
        assert_eq!(records, reference_records(&key(1), [9; 32], &payload), "len {len}");
        let (metadata, back) = decrypt_to_vec(&key(1), &file).unwrap();
        assert_eq!(back, payload);
        assert_eq!(metadata.plaintext_len, Some(len as u64));
    }
}

#[test]
fn parallel_and_single_threaded_output_are_identical() {
    let payload = sample(3 << 20);
    let mut opts = options(Compression::None, 3);
    opts.chunk_size_log2 = 12;
    let parallel = encrypt_to_vec(&key(2), opts.clone(), &payload).unwrap();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let single = pool.install(|| encrypt_to_vec(&key(2), opts, &payload).unwrap());
    assert_eq!(parallel, single);
    let (_, back) = pool.install(|| decrypt_to_vec(&key(2), &parallel).unwrap());
    assert_eq!(back, payload);
}

#[test]
fn both_ciphers_write_and_read_the_same_bytes() {
    let payload = sample(10_000);
    let mut a =
        Encryptor::<_, RingGcm>::with_cipher(Vec::new(), &key(3), options(Compression::None, 1))
            .unwrap();
    a.write_all(&payload).unwrap();
    let a = a.finish().unwrap();
    let mut b = Encryptor::<_, RustCryptoGcm>::with_cipher(
        Vec::new(),
        &key(3),
        options(Compression::None, 1),
    )
    .unwrap();
    b.write_all(&payload).unwrap();
    let b = b.finish().unwrap();
    assert_eq!(a, b);
    let mut back = Vec::new();
    Decryptor::<_, RustCryptoGcm>::with_cipher(a.as_slice(), &key(3))
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, payload);
}

#[test]
fn compression_round_trips_and_shrinks_text() {
    let payload = b"INSERT INTO messages VALUES ('hello there');\n".repeat(2000);
    let file = encrypt_to_vec(&key(4), options(Compression::Zstd, 2), &payload).unwrap();
    assert!(file.len() < payload.len() / 10, "{} bytes", file.len());
    assert_eq!(decrypt_to_vec(&key(4), &file).unwrap().1, payload);
}

#[test]
fn streaming_without_a_recorded_length() {
    let payload = sample(200_000);
    let mut enc = Encryptor::new(Vec::new(), &key(5), EncryptOptions::default()).unwrap();
    for piece in payload.chunks(777) {
        enc.write_all(piece).unwrap();
    }
    let file = enc.finish().unwrap();
    let mut dec = Decryptor::new(file.as_slice(), &key(5)).unwrap();
    assert_eq!(dec.metadata().plaintext_len, None);
    let mut back = Vec::new();
    let mut buf = [0u8; 333];
    loop {
        let n = dec.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        back.extend_from_slice(&buf[..n]);
    }
    assert_eq!(back, payload);
}

#[test]
fn recorded_length_is_enforced_when_writing() {
    let mut opts = EncryptOptions::default();
    opts.metadata.plaintext_len = Some(10);
    let mut enc = Encryptor::new(Vec::new(), &key(6), opts.clone()).unwrap();
    enc.write_all(b"short").unwrap();
    assert_eq!(enc.finish().unwrap_err(), Error::LengthMismatch { recorded: 10, actual: 5 });
    let mut enc = Encryptor::new(Vec::new(), &key(6), opts).unwrap();
    let err = enc.write_all(b"much too long").unwrap_err();
    assert_eq!(Error::from_io(&err), Some(&Error::LengthMismatch { recorded: 10, actual: 13 }));
}

fn err_of(key_: &BackupKey, file: &[u8]) -> Error {
    decrypt_to_vec(key_, file).expect_err("damaged file accepted")
}

/// A file of 4 chunks plus a short last one, and where each record starts.
fn four_chunk_file(salt: u8) -> (Vec<u8>, Vec<usize>) {
    let file =
        encrypt_to_vec(&key(7), options(Compression::None, salt), &sample(4 * CHUNK + 10)).unwrap();
    let start = records_start(&file);
    let record = CHUNK + RECORD_OVERHEAD;
    (file, (0..5).map(|i| start + i * record).collect())
}

#[test]
fn wrong_key_is_told_apart_from_damage() {
    let (file, _) = four_chunk_file(1);
    assert_eq!(err_of(&key(8), &file), Error::WrongKey);
}

#[test]
fn reordered_and_repeated_chunks() {
    let (file, at) = four_chunk_file(1);
    let record = CHUNK + RECORD_OVERHEAD;
    let mut swapped = file.clone();
    swapped[at[1]..at[1] + record].copy_from_slice(&file[at[2]..at[2] + record]);
    swapped[at[2]..at[2] + record].copy_from_slice(&file[at[1]..at[1] + record]);
    assert_eq!(err_of(&key(7), &swapped), Error::ChunkOutOfOrder { expected: 1, found: 2 });
    let mut repeated = file.clone();
    repeated[at[2]..at[2] + record].copy_from_slice(&file[at[1]..at[1] + record]);
    assert_eq!(err_of(&key(7), &repeated), Error::ChunkOutOfOrder { expected: 2, found: 1 });
    // Rewriting the clear index to hide the move still fails: the index is in the nonce.
    swapped[at[1] + 8..at[1] + 12].copy_from_slice(&1u32.to_be_bytes());
    assert_eq!(err_of(&key(7), &swapped), Error::ChunkModified { index: 1 });
}

#[test]
fn chunk_spliced_from_another_file_under_the_same_key() {
    let (file, at) = four_chunk_file(1);
    let (other, _) = four_chunk_file(2);
    let record = CHUNK + RECORD_OVERHEAD;
    let mut spliced = file.clone();
    spliced[at[3]..at[3] + record].copy_from_slice(&other[at[3]..at[3] + record]);
    assert_eq!(err_of(&key(7), &spliced), Error::ChunkFromOtherFile { position: 3 });
    // Relabelled with this file's id, the chunk still fails under this file's key.
    spliced[at[3]..at[3] + 8].copy_from_slice(&file[at[3]..at[3] + 8]);
    assert_eq!(err_of(&key(7), &spliced), Error::ChunkModified { index: 3 });
}

#[test]
fn trailing_data_and_a_dropped_last_chunk() {
    let (file, at) = four_chunk_file(1);
    let mut longer = file.clone();
    longer.push(0);
    assert_eq!(err_of(&key(7), &longer), Error::TrailingData { offset: file.len() as u64 });
    // Cutting the file at a chunk boundary leaves a well-formed prefix with no last chunk.
    assert_eq!(err_of(&key(7), &file[..at[4]]), Error::Truncated { file_len: at[4] as u64 });
    // Marking a middle chunk as the last one breaks its tag.
    let mut early_end = file[..at[2]].to_vec();
    early_end[at[1] + 12] |= 0x80;
    assert!(matches!(
        err_of(&key(7), &early_end),
        Error::ChunkModified { index: 1 } | Error::InvalidChunkLength { .. }
    ));
}

#[test]
fn header_changes() {
    let (file, _) = four_chunk_file(1);
    let flip = |offset: usize| {
        let mut f = file.clone();
        f[offset] ^= 1;
        err_of(&key(7), &f)
    };
    assert_eq!(flip(0), Error::NotABackup);
    assert_eq!(flip(8), Error::UnsupportedVersion(0));
    assert_eq!(flip(9), Error::HeaderModified);
    assert_eq!(flip(10), Error::HeaderModified);
    assert_eq!(flip(11), Error::InvalidHeader { field: "reserved", value: 1 });
    assert_eq!(flip(12), Error::WrongKey);
    for offset in [28, 59, 63, 64, 95] {
        assert_eq!(flip(offset), Error::HeaderModified, "offset {offset}");
    }
    assert_eq!(flip(HEADER_LEN), Error::MetadataModified);
}

#[test]
fn every_bit_flip_and_every_truncation_of_a_small_file_is_rejected() {
    for compression in [Compression::None, Compression::Zstd] {
        let payload = sample(2 * CHUNK + 5);
        let file = encrypt_to_vec(&key(9), options(compression, 4), &payload).unwrap();
        for bit in 0..file.len() * 8 {
            let mut damaged = file.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(decrypt_to_vec(&key(9), &damaged).is_err(), "bit {bit} accepted");
        }
        for len in 0..file.len() {
            assert!(
                matches!(err_of(&key(9), &file[..len]), Error::Truncated { file_len } if file_len == len as u64),
                "cut at {len}: {:?}",
                err_of(&key(9), &file[..len])
            );
        }
    }
}

/// The streaming reader's verdict on `file`, read through buffers of `buf_len` bytes.
fn stream_result(key_: &BackupKey, file: &[u8], buf_len: usize) -> Result<Vec<u8>, Error> {
    let mut dec = Decryptor::new(file, key_)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; buf_len];
    loop {
        match dec.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(err) => return Err(Error::from_io_error(err)),
        }
    }
}

#[test]
fn in_memory_and_streaming_readers_agree_on_every_damage() {
    for len in [0, 5, 2 * CHUNK, 3 * CHUNK + 7] {
        let payload = sample(len);
        let file = encrypt_to_vec(&key(12), options(Compression::None, 6), &payload).unwrap();
        let mut cases = Vec::new();
        for bit in 0..file.len() * 8 {
            let mut damaged = file.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            cases.push(damaged);
        }
        for cut in 0..file.len() {
            cases.push(file[..cut].to_vec());
        }
        let mut longer = file.clone();
        longer.push(0);
        cases.push(longer);
        cases.push(file.clone());
        for damaged in &cases {
            let in_memory = decrypt_to_vec(&key(12), damaged).map(|(_, p)| p);
            for buf_len in [1, CHUNK - 1, CHUNK, 1 << 20] {
                assert_eq!(
                    stream_result(&key(12), damaged, buf_len),
                    in_memory,
                    "len {len}, buffer {buf_len}"
                );
            }
        }
    }
}

#[test]
fn large_files_round_trip_through_both_readers_and_writers() {
    for len in [(1 << 20) - 1, 1 << 20, (3 << 20) + 12345] {
        let payload = sample(len);
        let mut opts = options(Compression::None, 7);
        opts.chunk_size_log2 = 16;
        opts.metadata.plaintext_len = Some(len as u64);
        let file = encrypt_to_vec(&key(13), opts.clone(), &payload).unwrap();
        for piece in [1000, 1 << 16, (1 << 20) + 1, len] {
            let mut enc = Encryptor::new(Vec::new(), &key(13), opts.clone()).unwrap();
            for part in payload.chunks(piece) {
                enc.write_all(part).unwrap();
            }
            assert!(enc.finish().unwrap() == file, "len {len}, pieces of {piece}");
        }
        assert!(decrypt_to_vec(&key(13), &file).unwrap().1 == payload);
        for buf_len in [1000, 1 << 16, (1 << 20) + 1, len + 1] {
            assert!(stream_result(&key(13), &file, buf_len).unwrap() == payload);
        }
    }
}

/// Writes that leave whole chunks in the current batch and then bring more than a chunk (the
/// CLI writes 1 MiB at a time, so after a first odd write every batch starts this way): the
/// rest of the batch is copied by the sealing tasks; the bytes must not change.
#[test]
fn writes_after_whole_chunks_mid_batch_give_the_same_file() {
    const K: usize = 1 << 16;
    let len = (5 << 20) + 777;
    let payload = sample(len);
    let mut opts = options(Compression::None, 9);
    opts.chunk_size_log2 = 16;
    opts.metadata.plaintext_len = Some(len as u64);
    let file = encrypt_to_vec(&key(14), opts.clone(), &payload).unwrap();
    for pattern in [
        &[K, 2 << 20][..],
        &[3 * K, K + 1, 15 * K - 1, 1 << 20],
        &[15 * K, 17 * K, 31 * K + 5],
        &[K, K, (1 << 20) + K],
    ] {
        let mut enc = Encryptor::new(Vec::new(), &key(14), opts.clone()).unwrap();
        let mut rest = payload.as_slice();
        for &piece in pattern.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (part, after) = rest.split_at(piece.min(rest.len()));
            enc.write_all(part).unwrap();
            rest = after;
        }
        assert!(enc.finish().unwrap() == file, "pattern {pattern:?}");
    }
}

/// Streams on one thread reuse each other's record buffers (stale bytes, other lengths): a
/// stream after a dropped, unfinished one, or after one of another chunk size, writes and
/// reads the same bytes as the in-memory API, which keeps no buffer.
#[test]
fn streams_after_other_streams_on_the_thread_are_unchanged() {
    let payload = sample((2 << 20) + 99);
    for (first_log2, then_log2) in [(22, 6), (6, 22), (16, 16), (22, 16)] {
        let mut first = options(Compression::None, 1);
        first.chunk_size_log2 = first_log2;
        // A writer left half-way through a batch, its buffers full of plaintext, dropped.
        let mut abandoned = Encryptor::new(Vec::new(), &key(15), first.clone()).unwrap();
        abandoned.write_all(&payload[..(1 << 20) + 5]).unwrap();
        drop(abandoned);
        let first_file = encrypt_to_vec(&key(15), first, &payload).unwrap();
        assert!(stream_result(&key(15), &first_file, 1 << 20).unwrap() == payload);

        let mut then = options(Compression::None, 2);
        then.chunk_size_log2 = then_log2;
        then.metadata.plaintext_len = Some(payload.len() as u64);
        let expected = encrypt_to_vec(&key(15), then.clone(), &payload).unwrap();
        let mut enc = Encryptor::new(Vec::new(), &key(15), then).unwrap();
        enc.write_all(&payload).unwrap();
        let file = enc.finish().unwrap();
        assert!(file == expected, "{first_log2} then {then_log2}");
        assert!(stream_result(&key(15), &file, 1000).unwrap() == payload);
    }
}

#[test]
fn no_unverified_byte_is_released_and_failure_is_sticky() {
    let payload = sample(3 << 20);
    let mut opts = options(Compression::None, 5);
    opts.chunk_size_log2 = 16;
    let mut file = encrypt_to_vec(&key(10), opts, &payload).unwrap();
    // Damage the tag of a chunk in the second 1 MiB batch.
    let start = records_start(&file);
    let record = (1 << 16) + RECORD_OVERHEAD;
    let damaged_index = 20;
    let tag_at = start + damaged_index * record + RECORD_HEADER_LEN + (1 << 16);
    file[tag_at + TAG_LEN - 1] ^= 0x40;
    let mut dec = Decryptor::new(file.as_slice(), &key(10)).unwrap();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 1 << 15];
    let err = loop {
        match dec.read(&mut buf) {
            Ok(0) => panic!("damaged file read to the end"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(err) => break err,
        }
    };
    assert_eq!(Error::from_io(&err), Some(&Error::ChunkModified { index: damaged_index as u32 }));
    assert!(got.len() <= damaged_index << 16, "released {} bytes", got.len());
    assert_eq!(got, payload[..got.len()]);
    for _ in 0..3 {
        let again = dec.read(&mut buf).unwrap_err();
        assert_eq!(
            Error::from_io(&again),
            Some(&Error::ChunkModified { index: damaged_index as u32 })
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn round_trip_any_size(
        len in prop_oneof![0..4usize, (CHUNK - 2)..(CHUNK + 3), 0..3000usize],
        zstd in any::<bool>(),
        salt in any::<u8>(),
        pieces in 1..50usize,
    ) {
        let payload = sample(len);
        let compression = if zstd { Compression::Zstd } else { Compression::None };
        let mut enc = Encryptor::new(Vec::new(), &key(11), options(compression, salt)).unwrap();
        for piece in payload.chunks(pieces) {
            enc.write_all(piece).unwrap();
        }
        let file = enc.finish().unwrap();
        prop_assert_eq!(decrypt_to_vec(&key(11), &file).unwrap().1, payload);
    }
}

#[test]
fn reused_buffers_give_the_same_files_and_payloads() {
    let k = key(7);
    let (mut file, mut payload) = (Vec::new(), Vec::new());
    // Shrinking and growing sizes, with and without compression, through one pair of buffers.
    for (len, compression) in [
        (5 * CHUNK + 3, Compression::None),
        (CHUNK, Compression::Zstd),
        (0, Compression::None),
        (3 * CHUNK, Compression::None),
    ] {
        let plaintext = sample(len);
        encrypt_into(&k, options(compression, 9), &plaintext, &mut file).unwrap();
        assert_eq!(file, encrypt_to_vec(&k, options(compression, 9), &plaintext).unwrap());
        let metadata = decrypt_into(&k, &file, &mut payload).unwrap();
        assert_eq!(payload, plaintext);
        assert_eq!(metadata.plaintext_len, Some(len as u64));
    }
    // A damaged file leaves the payload buffer empty, whatever it held before.
    let last = file.len() - 1;
    file[last] ^= 1;
    assert!(matches!(decrypt_into(&k, &file, &mut payload), Err(Error::ChunkModified { .. })));
    assert!(payload.is_empty());
}
