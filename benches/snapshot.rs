//! A snapshot backup (spec 8.7) of a tree of fresh files into a store whose blob puts take a
//! fixed time, as a remote store's round trips do: one put at a time against several at once
//! (`BackupOptions::uploads`). The store with no delay is the baseline that shows what the
//! threads cost when there is no round trip to hide.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use e2ee_backup_kdf::BackupKey;
use e2ee_backup_snapshot::{BackupOptions, MemoryStore, Snapshots, Store, StoreError};

/// A memory store whose blob puts take `delay`.
struct Remote {
    inner: MemoryStore,
    delay: Duration,
}

impl Store for Remote {
    fn put(&self, name: &str, bytes: Vec<u8>, create_only: bool) -> Result<(), StoreError> {
        if name.starts_with("blobs/") && !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        self.inner.put(name, bytes, create_only)
    }
    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        self.inner.get(name)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(prefix)
    }
    fn exists(&self, name: &str) -> Result<bool, StoreError> {
        self.inner.exists(name)
    }
    fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.inner.delete(name)
    }
}

const FILES: usize = 32;
const FILE_LEN: usize = 256 * 1024;

fn tree(dir: &Path) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..FILES {
        let bytes: Vec<u8> = (0..FILE_LEN)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        std::fs::write(dir.join(format!("media-{i:02}.jpg")), bytes).expect("a file");
    }
}

fn backup(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    tree(dir.path());
    let key = BackupKey::from_bytes([7; 32]);
    let mut group = c.benchmark_group("snapshot-backup");
    group.sample_size(10).throughput(Throughput::Bytes((FILES * FILE_LEN) as u64));
    for delay_ms in [0, 5] {
        for uploads in [1, 4, 8] {
            let name = format!("{FILES}x256KiB/put-{delay_ms}ms/uploads-{uploads}");
            group.bench_function(name, |b| {
                b.iter_batched(
                    || Remote { inner: MemoryStore::new(), delay: Duration::from_millis(delay_ms) },
                    |store| {
                        let mut snapshots = Snapshots::open(&store, &key).expect("opens");
                        let options = BackupOptions { uploads, ..BackupOptions::default() };
                        let report = snapshots.backup_with(dir.path(), &options).expect("backs up");
                        assert_eq!(report.new_blobs, FILES as u64);
                        black_box(report)
                    },
                    BatchSize::PerIteration,
                )
            });
        }
    }
    group.finish();
}

criterion_group!(benches, backup);
criterion_main!(benches);
