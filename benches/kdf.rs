//! The key schedule and the 64-digit key: per-file and per-key costs, in time per call.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use e2ee_backup_kdf::crypt15::Crypt15Keys;
use e2ee_backup_kdf::schedule::{FileKeys, KeyId, SALT_LEN};
use e2ee_backup_kdf::{BackupKey, digits};

fn kdf(c: &mut Criterion) {
    let key = BackupKey::from_bytes(core::array::from_fn(|i| i as u8 * 7));
    let salt = [0x5a; SALT_LEN];
    let display = digits::to_display(&key);
    let mut group = c.benchmark_group("kdf");
    group.bench_function("key_id", |b| b.iter(|| KeyId::of(black_box(&key))));
    group.bench_function("file_keys", |b| {
        b.iter(|| FileKeys::derive(black_box(&key), black_box(&salt)))
    });
    group.bench_function("crypt15_keys", |b| b.iter(|| Crypt15Keys::derive(black_box(&key))));
    group.bench_function("digits_parse", |b| {
        b.iter(|| digits::parse(black_box(display.as_str())).expect("a valid key"))
    });
    group.bench_function("to_display", |b| b.iter(|| digits::to_display(black_box(&key))));
    group.finish();
}

criterion_group!(benches, kdf);
criterion_main!(benches);
