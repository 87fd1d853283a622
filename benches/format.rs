//! Throughput of the backup format beside raw one-shot AES-256-GCM.
//!
//! One group per input size (`format/<size>`), every line in bytes of plaintext per second:
//!
//! - `seal/ring`, `seal/aes-gcm`: the baselines, one AES-256-GCM seal in place of the whole
//!   buffer, single-threaded as both crates are;
//! - `memcpy`: one copy of the whole buffer, the unit of the format's extra work;
//! - `encrypt/<cipher>`: a whole backup file (header, metadata, chunks) into a preallocated
//!   `Vec`, no compression, default chunk size;
//! - `decrypt/<cipher>`: that file read back into a preallocated buffer, end checks included;
//! - `encrypt-pieces`, `decrypt-pieces` (64 MiB only): the streaming API in 1 MiB writes and
//!   reads, the CLI's pattern;
//! - `encrypt_to_vec`, `decrypt_to_vec`: the in-memory API (`ring`), which allocates its output;
//!   `encrypt_into`, `decrypt_into`: the same into buffers reused across iterations;
//! - `encrypt-1t/<cipher>`, `decrypt-1t/<cipher>` (1 MiB and 64 MiB): the same on a one-thread rayon
//!   pool, to show what the second core brings.
//!
//! `format-zstd/<size>` times `encrypt/ring` and `decrypt/ring` with zstd compression on a SQL
//! dump that resembles a chat database.

use std::hint::black_box;
use std::io::{Read, Write};
use std::time::Duration;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInOut, KeyInit};
use criterion::measurement::WallTime;
use criterion::{
    BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};
use e2ee_backup_benches::chat_db;
use e2ee_backup_format::{
    ChunkCipher, Compression, Decryptor, EncryptOptions, Encryptor, RingGcm, RustCryptoGcm,
    decrypt_into, decrypt_to_vec, encrypt_into, encrypt_to_vec,
};
use e2ee_backup_kdf::BackupKey;
use rayon::ThreadPool;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
const KEY: [u8; 32] = [0x42; 32];
const NONCE: [u8; 12] = [7; 12];

fn size_name(len: usize) -> String {
    if len >= MIB { format!("{}MiB", len / MIB) } else { format!("{}KiB", len / KIB) }
}

/// The baseline: one `ring` seal in place of the whole buffer.
fn ring_seal(key: &LessSafeKey, buf: &mut [u8]) -> ring::aead::Tag {
    let nonce = Nonce::assume_unique_for_key(NONCE);
    key.seal_in_place_separate_tag(nonce, Aad::empty(), buf)
        .expect("below the AES-GCM message limit")
}

/// The baseline: one `aes-gcm` seal in place of the whole buffer.
fn rustcrypto_seal(cipher: &Aes256Gcm, buf: &mut [u8]) -> aes_gcm::Tag {
    cipher
        .encrypt_inout_detached(&NONCE.into(), &[], buf.into())
        .expect("below the AES-GCM message limit")
}

/// A whole backup file of `plaintext` into `out`, whose capacity is reused.
fn encrypt<C: ChunkCipher>(
    key: &BackupKey,
    compression: Compression,
    plaintext: &[u8],
    out: &mut Vec<u8>,
) {
    out.clear();
    let mut options = EncryptOptions::default();
    options.compression = compression;
    options.metadata.plaintext_len = Some(plaintext.len() as u64);
    let mut encryptor = Encryptor::<_, C>::with_cipher(out, key, options).expect("valid options");
    encryptor.write_all(plaintext).expect("writing to a Vec");
    encryptor.finish().expect("writing to a Vec");
}

/// As [`encrypt`], but written in pieces of `piece` bytes, as the CLI's copy loop writes.
fn encrypt_in_pieces(key: &BackupKey, plaintext: &[u8], piece: usize, out: &mut Vec<u8>) {
    out.clear();
    let mut options = EncryptOptions::default();
    options.metadata.plaintext_len = Some(plaintext.len() as u64);
    let mut encryptor = Encryptor::new(out, key, options).expect("valid options");
    for part in plaintext.chunks(piece) {
        encryptor.write_all(part).expect("writing to a Vec");
    }
    encryptor.finish().expect("writing to a Vec");
}

/// As [`decrypt`], but read `piece` bytes at a time into one buffer, as the CLI's copy loop
/// reads; returns the plaintext length.
fn decrypt_in_pieces(key: &BackupKey, file: &[u8], piece: &mut [u8]) -> usize {
    let mut decryptor = Decryptor::new(file, key).expect("a valid file");
    let mut got = 0;
    loop {
        match decryptor.read(piece).expect("an intact file") {
            0 => return got,
            n => got += n,
        }
    }
}

/// Decrypts `file` into `out` (one byte longer than the plaintext, so that the last read sees
/// the end of the stream and runs the end checks); returns the plaintext length.
fn decrypt<C: ChunkCipher>(key: &BackupKey, file: &[u8], out: &mut [u8]) -> usize {
    let mut decryptor = Decryptor::<_, C>::with_cipher(file, key).expect("a valid file");
    let mut got = 0;
    loop {
        match decryptor.read(&mut out[got..]).expect("an intact file") {
            0 => return got,
            n => got += n,
        }
    }
}

/// Runs `f` on `pool` if given, else on the global (all-core) pool. Given the whole measuring
/// loop, so that a one-thread pool times the work on its thread, not a hand-off per iteration.
fn on<T: Send>(pool: Option<&ThreadPool>, f: impl FnOnce() -> T + Send) -> T {
    match pool {
        Some(pool) => pool.install(f),
        None => f(),
    }
}

/// One input: its plaintext and the backup file made from it.
struct Input {
    key: BackupKey,
    compression: Compression,
    plaintext: Vec<u8>,
    file: Vec<u8>,
}

impl Input {
    fn new(compression: Compression, len: usize) -> Self {
        let key = BackupKey::from_bytes(KEY);
        let plaintext = chat_db(len);
        let mut file = Vec::new();
        encrypt::<RingGcm>(&key, compression, &plaintext, &mut file);
        let mut out = vec![0u8; len + 1];
        assert_eq!(decrypt::<RustCryptoGcm>(&key, &file, &mut out), len);
        assert!(out[..len] == plaintext[..], "round trip");
        Self { key, compression, plaintext, file }
    }

    /// Registers `encrypt<suffix>/<cipher>` and `decrypt<suffix>/<cipher>`.
    fn bench<C: ChunkCipher>(
        &self,
        group: &mut BenchmarkGroup<WallTime>,
        suffix: &str,
        pool: Option<&ThreadPool>,
    ) {
        let mut sink = Vec::with_capacity(self.file.len());
        group.bench_function(BenchmarkId::new(format!("encrypt{suffix}"), C::NAME), |b| {
            on(pool, || {
                b.iter(|| encrypt::<C>(&self.key, self.compression, &self.plaintext, &mut sink))
            })
        });
        let mut out = vec![0u8; self.plaintext.len() + 1];
        group.bench_function(BenchmarkId::new(format!("decrypt{suffix}"), C::NAME), |b| {
            on(pool, || b.iter(|| decrypt::<C>(&self.key, black_box(&self.file), &mut out)))
        });
    }

    /// Registers `encrypt-pieces` and `decrypt-pieces` (`ring`): 1 MiB writes and reads, as
    /// the CLI's copy loop makes them. A 1 MiB write leaves its last chunk buffered (it may be
    /// the end), so every later write starts a batch with one whole chunk held.
    fn bench_pieces(&self, group: &mut BenchmarkGroup<WallTime>) {
        let mut sink = Vec::with_capacity(self.file.len());
        group.bench_function("encrypt-pieces", |b| {
            b.iter(|| encrypt_in_pieces(&self.key, &self.plaintext, MIB, &mut sink))
        });
        let mut piece = vec![0u8; MIB];
        group.bench_function("decrypt-pieces", |b| {
            b.iter(|| decrypt_in_pieces(&self.key, black_box(&self.file), &mut piece))
        });
    }

    /// Registers `encrypt_to_vec` and `decrypt_to_vec` (always `ring`), which allocate
    /// their output.
    fn bench_in_memory(&self, group: &mut BenchmarkGroup<WallTime>) {
        group.bench_function("encrypt_to_vec", |b| {
            b.iter(|| {
                let mut options = EncryptOptions::default();
                options.compression = self.compression;
                encrypt_to_vec(&self.key, options, black_box(&self.plaintext)).expect("valid")
            })
        });
        group.bench_function("decrypt_to_vec", |b| {
            b.iter(|| decrypt_to_vec(&self.key, black_box(&self.file)).expect("an intact file"))
        });
        // The same into buffers kept across iterations, as the raw seal above keeps its own.
        let mut file = Vec::new();
        group.bench_function("encrypt_into", |b| {
            b.iter(|| {
                let mut options = EncryptOptions::default();
                options.compression = self.compression;
                encrypt_into(&self.key, options, black_box(&self.plaintext), &mut file)
                    .expect("valid")
            })
        });
        let mut plaintext = Vec::new();
        group.bench_function("decrypt_into", |b| {
            b.iter(|| {
                decrypt_into(&self.key, black_box(&self.file), &mut plaintext)
                    .expect("an intact file")
            })
        });
    }
}

fn group<'a>(c: &'a mut Criterion, name: &str, len: usize) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(format!("{name}/{}", size_name(len)));
    group.throughput(Throughput::Bytes(len as u64));
    group.warm_up_time(Duration::from_secs(1));
    if len >= 64 * MIB {
        group.sample_size(10).measurement_time(Duration::from_secs(5));
    } else {
        group.measurement_time(Duration::from_secs(3));
    }
    group
}

fn format(c: &mut Criterion) {
    let ring_key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &KEY).expect("32 bytes"));
    let rustcrypto = Aes256Gcm::new(&KEY.into());
    let single = rayon::ThreadPoolBuilder::new().num_threads(1).build().expect("a one-thread pool");
    for len in [KIB, 64 * KIB, MIB, 64 * MIB] {
        let input = Input::new(Compression::None, len);
        let mut group = group(c, "format", len);
        let mut buf = input.plaintext.clone();
        group.bench_function("seal/ring", |b| b.iter(|| ring_seal(&ring_key, &mut buf)));
        group.bench_function("seal/aes-gcm", |b| b.iter(|| rustcrypto_seal(&rustcrypto, &mut buf)));
        group.bench_function("memcpy", |b| {
            b.iter(|| buf.copy_from_slice(black_box(&input.plaintext)))
        });
        drop(buf);
        input.bench::<RingGcm>(&mut group, "", None);
        input.bench_in_memory(&mut group);
        if len >= 64 * MIB {
            input.bench_pieces(&mut group);
        }
        input.bench::<RustCryptoGcm>(&mut group, "", None);
        if len >= MIB {
            input.bench::<RingGcm>(&mut group, "-1t", Some(&single));
            input.bench::<RustCryptoGcm>(&mut group, "-1t", Some(&single));
        }
        group.finish();
    }
    for len in [MIB, 64 * MIB] {
        let input = Input::new(Compression::Zstd, len);
        let mut group = group(c, "format-zstd", len);
        println!(
            "format-zstd/{}: file is {:.1}% of the plaintext",
            size_name(len),
            100.0 * input.file.len() as f64 / len as f64
        );
        input.bench::<RingGcm>(&mut group, "", None);
        group.finish();
    }
}

criterion_group!(benches, format);
criterion_main!(benches);
