//! Throughput of crypt15 decryption beside raw AES-256-GCM with crypt15's 16-byte nonce.
//!
//! `crypt15/<size>`: no compression, every line in bytes of GCM plaintext per second:
//!
//! - `seal/aes-gcm-16`: the baseline, one `AesGcm<Aes256, U16>` seal in place of the whole
//!   buffer (sealing and opening cost the same: CTR and GHASH over every byte);
//! - `seal/aes-gcm-12`: the same with a standard 12-byte nonce, to show that the 16-byte nonce
//!   costs nothing per byte (it only changes how the first counter block is made);
//! - `md5`: MD5 of the buffer, which crypt15's reader computes on every file;
//! - `decrypt-raw/multi-file`: a multi-file backup (its ZIP is the buffer) checked and
//!   decrypted with `Decryptor` into a reused `Vec`: pass one MD5 and GHASH, pass two CTR and
//!   GHASH again;
//! - `decrypt_to_vec/multi-file`: the same through the in-memory API, which allocates.
//!
//! `crypt15-zlib/<size>`: a single-file backup of a SQL dump that resembles a chat database,
//! compressed at zlib level 1 as waencrypt does; every line in bytes of database per second
//! (the ciphertext is the compressed size, printed):
//!
//! - `seal/aes-gcm-16`: the baseline over the whole database, as if it were not compressed;
//! - `decrypt`: check and decrypt with inflation into a reused `Vec`;
//! - `decrypt-raw`: the same file without inflation (GCM and MD5 over the compressed bytes);
//! - `decrypt_to_vec`: the in-memory API.

use std::hint::black_box;
use std::io::Cursor;
use std::time::Duration;

use aes_gcm::aead::consts::U16;
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::{Aes256Gcm, AesGcm};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use e2ee_backup_benches::chat_db;
use e2ee_backup_crypt15::{
    Content, Decryptor, FileHeader, HeaderOptions, Variant, decrypt_to_vec, encrypt_to_vec,
};
use e2ee_backup_kdf::BackupKey;
use e2ee_backup_kdf::crypt15::Crypt15Keys;
use md5::{Digest, Md5};

type Aes256Gcm16 = AesGcm<Aes256, U16>;

const MIB: usize = 1 << 20;
const KEY: [u8; 32] = [0x42; 32];
const IV: [u8; 16] = [7; 16];

fn new_group<'a>(c: &'a mut Criterion, name: &str, len: usize) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(format!("{name}/{}MiB", len / MIB));
    group.throughput(Throughput::Bytes(len as u64));
    group.warm_up_time(Duration::from_secs(1));
    if len >= 64 * MIB {
        group.sample_size(10).measurement_time(Duration::from_secs(5));
    } else {
        group.measurement_time(Duration::from_secs(3));
    }
    group
}

/// Checks and decrypts `file` into `out` (cleared, capacity kept); `raw` skips inflation.
fn decrypt(key: &BackupKey, file: &[u8], out: &mut Vec<u8>, raw: bool) -> u64 {
    out.clear();
    let decryptor = Decryptor::new(key, Cursor::new(file)).expect("an intact file");
    if raw { decryptor.decrypt_raw_to(out) } else { decryptor.decrypt_to(out) }
        .expect("an intact file")
}

fn crypt15(c: &mut Criterion) {
    let key = BackupKey::from_bytes(KEY);
    let file_key = Crypt15Keys::derive(&key).backup_encryption;
    let gcm16 = Aes256Gcm16::new(&file_key.into());
    let gcm12 = Aes256Gcm::new(&file_key.into());
    let header = FileHeader::minimal(&HeaderOptions { iv: Some(IV), ..HeaderOptions::default() })
        .expect("a valid header");
    for len in [MIB, 64 * MIB] {
        let plaintext = chat_db(len);

        // The GCM baseline must compute what crypt15 does: check it once.
        let multi =
            encrypt_to_vec(&key, &header, Content::MultiFileZip, &plaintext).expect("encrypts");
        let mut buf = plaintext.clone();
        let tag = gcm16.encrypt_inout_detached(&IV.into(), &[], (&mut buf[..]).into()).unwrap();
        let body = &multi[header.len()..];
        assert!(body[..len] == buf[..] && body[len..] == tag[..], "baseline differs from crypt15");
        let decrypted = decrypt_to_vec(&key, &multi).expect("decrypts");
        assert_eq!(decrypted.variant, Variant::MultiFile);
        assert!(decrypted.plaintext == plaintext);

        let mut group = new_group(c, "crypt15", len);
        group.bench_function("seal/aes-gcm-16", |b| {
            b.iter(|| gcm16.encrypt_inout_detached(&IV.into(), &[], (&mut buf[..]).into()))
        });
        group.bench_function("seal/aes-gcm-12", |b| {
            b.iter(|| gcm12.encrypt_inout_detached(&[7; 12].into(), &[], (&mut buf[..]).into()))
        });
        group.bench_function("md5", |b| b.iter(|| Md5::digest(black_box(&plaintext))));
        let mut out = Vec::with_capacity(len);
        group.bench_function("decrypt-raw/multi-file", |b| {
            b.iter(|| decrypt(&key, black_box(&multi), &mut out, true))
        });
        group.bench_function("decrypt_to_vec/multi-file", |b| {
            b.iter(|| decrypt_to_vec(&key, black_box(&multi)).expect("an intact file"))
        });
        group.finish();
        drop(multi);

        let single =
            encrypt_to_vec(&key, &header, Content::default(), &plaintext).expect("encrypts");
        println!(
            "crypt15-zlib/{}MiB: file is {:.1}% of the database",
            len / MIB,
            100.0 * single.len() as f64 / len as f64
        );
        assert!(decrypt(&key, &single, &mut out, false) == len as u64 && out == plaintext);
        let mut group = new_group(c, "crypt15-zlib", len);
        group.bench_function("seal/aes-gcm-16", |b| {
            b.iter(|| gcm16.encrypt_inout_detached(&IV.into(), &[], (&mut buf[..]).into()))
        });
        group.bench_function("decrypt", |b| {
            b.iter(|| decrypt(&key, black_box(&single), &mut out, false))
        });
        group.bench_function("decrypt-raw", |b| {
            b.iter(|| decrypt(&key, black_box(&single), &mut out, true))
        });
        group.bench_function("decrypt_to_vec", |b| {
            b.iter(|| decrypt_to_vec(&key, black_box(&single)).expect("an intact file"))
        });
        group.finish();
    }
}

criterion_group!(benches, crypt15);
criterion_main!(benches);
