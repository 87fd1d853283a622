//! Full re-keying (spec section 8.11, "Full re-keying"): a new media root key, every blob under
//! a new name, the old keys opening nothing in the store afterwards; resumable after a stop at
//! every write; refused while a backup runs.

mod support;

use e2ee_backup_testkit::noise;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use e2ee_backup_format::decrypt_to_vec;
use e2ee_backup_kdf::BackupKey;
use e2ee_backup_snapshot::{
    AccountKeys, ChunkParams, EntryKind, Error, MEDIA_ROOT_NEXT_OBJECT, MEDIA_ROOT_OBJECT,
    MediaKeys, MediaRootKey, MemoryStore, Snapshots, Store, open_manifest, rekey_full,
    snapshot_object,
};

use support::{OnWrite, Temps, fails_after};

const SMALL: ChunkParams = ChunkParams { min: 1024, avg: 4096, max: 16384 };

fn key(byte: u8) -> BackupKey {
    BackupKey::from_bytes([byte; 32])
}

/// Every file and directory under `root`, with its content.
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for item in fs::read_dir(dir).unwrap() {
            let path = item.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
            if path.is_dir() {
                out.insert(rel, b"dir".to_vec());
                pending.push(path);
            } else {
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// Two snapshots of a small tree that changes between them; returns the trees by snapshot id.
fn two_snapshots(store: &dyn Store) -> BTreeMap<String, BTreeMap<String, Vec<u8>>> {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir_all(dir.path().join("Media")).unwrap();
    fs::write(dir.path().join("Media/a.jpg"), noise(1, 9000)).unwrap();
    fs::write(dir.path().join("msgstore.db"), noise(2, 20_000)).unwrap();
    let mut snapshots = Snapshots::open(store, &key(1)).unwrap().with_chunking(SMALL).unwrap();
    let mut trees = BTreeMap::new();
    let first = snapshots.backup(dir.path()).unwrap().id;
    trees.insert(first, tree(dir.path()));
    fs::write(dir.path().join("Media/b.jpg"), noise(3, 5000)).unwrap();
    let second = snapshots.backup(dir.path()).unwrap().id;
    trees.insert(second, tree(dir.path()));
    trees
}

/// The media keys of the MRK stored under `k`.
fn media_keys(store: &dyn Store, k: &BackupKey) -> MediaKeys {
    let file = store.get(MEDIA_ROOT_OBJECT).unwrap();
    let (_, bytes) = decrypt_to_vec(&AccountKeys::derive(k).media_root_wrap, &file).unwrap();
    MediaKeys::derive(&MediaRootKey::from_bytes(bytes.try_into().unwrap()))
}

fn restores_all(
    store: &dyn Store,
    k: &BackupKey,
    trees: &BTreeMap<String, BTreeMap<String, Vec<u8>>>,
) {
    let snapshots = Snapshots::open(store, k).unwrap();
    assert_eq!(snapshots.ids().unwrap(), trees.keys().cloned().collect::<Vec<_>>());
    for (id, expected) in trees {
        let target = tempfile::tempdir().unwrap();
        snapshots.restore(id, target.path(), &[], &Temps).unwrap();
        assert_eq!(&tree(target.path()), expected, "snapshot {id}");
    }
}

#[test]
fn a_full_rekey_leaves_nothing_the_old_keys_open() {
    let store = MemoryStore::new();
    let trees = two_snapshots(&store);
    let old_media = media_keys(&store, &key(1));
    let old_blobs: BTreeSet<String> = store.list("blobs/").unwrap().into_iter().collect();
    assert!(old_blobs.len() > 4, "{old_blobs:?}");

    let report = rekey_full(&store, &key(1), &key(9)).unwrap();
    assert!(report.media_root_replaced);
    assert_eq!((report.manifests_rewritten, report.manifests_already), (2, 0));
    assert_eq!(report.blobs_rekeyed, old_blobs.len() as u64);
    assert_eq!(report.blobs_deleted, old_blobs.len() as u64);
    assert!(report.damaged.is_empty());

    // Every blob is new, and the old MRK opens none of them.
    let new_blobs: BTreeSet<String> = store.list("blobs/").unwrap().into_iter().collect();
    assert_eq!(new_blobs.len(), old_blobs.len());
    assert!(new_blobs.is_disjoint(&old_blobs));
    for object in &new_blobs {
        let file = store.get(object).unwrap();
        assert!(
            matches!(
                decrypt_to_vec(&old_media.blob, &file),
                Err(e2ee_backup_format::Error::WrongKey)
            ),
            "{object} opens under the old media root key"
        );
    }
    // The old K opens neither the media root key nor a manifest.
    let old_account = AccountKeys::derive(&key(1));
    let root = store.get(MEDIA_ROOT_OBJECT).unwrap();
    assert!(decrypt_to_vec(&old_account.media_root_wrap, &root).is_err());
    for id in trees.keys() {
        let file = store.get(&snapshot_object(id)).unwrap();
        assert!(open_manifest(&old_account, id, &file).is_err());
    }
    assert!(matches!(Snapshots::open(&store, &key(1)), Err(Error::MediaRootKey { .. })));
    assert!(!store.exists(MEDIA_ROOT_NEXT_OBJECT).unwrap());
    assert!(store.list("prune/").unwrap().is_empty());
    restores_all(&store, &key(9), &trees);

    // Run again (as after a crash at its very end): nothing left to do.
    let again = rekey_full(&store, &key(1), &key(9)).unwrap();
    assert_eq!(again, Default::default(), "a finished re-keying does nothing");
}

#[test]
fn a_full_rekey_of_a_store_without_snapshots_replaces_the_key_alone() {
    let store = MemoryStore::new();
    let dir = tempfile::tempdir().unwrap();
    let mut snapshots = Snapshots::open(&store, &key(1)).unwrap();
    let id = snapshots.backup(dir.path()).unwrap().id;
    store.delete(&snapshot_object(&id)).unwrap();
    let old = store.get(MEDIA_ROOT_OBJECT).unwrap();
    let report = rekey_full(&store, &key(1), &key(9)).unwrap();
    assert!(report.media_root_replaced);
    assert_eq!(report.blobs_rekeyed, 0);
    let new = store.get(MEDIA_ROOT_OBJECT).unwrap();
    assert_ne!(old, new);
    Snapshots::open(&store, &key(9)).unwrap();
    // No media root key at all: nothing to replace.
    let empty = MemoryStore::new();
    assert_eq!(rekey_full(&empty, &key(1), &key(9)).unwrap(), Default::default());
}

/// Every manifest opens under K_old or K_new, and every blob it references is in the store.
fn no_snapshot_lost_a_blob(store: &dyn Store, ids: &[String]) {
    let accounts = [AccountKeys::derive(&key(1)), AccountKeys::derive(&key(9))];
    for id in ids {
        let file = store.get(&snapshot_object(id)).unwrap();
        let manifest = accounts
            .iter()
            .find_map(|a| open_manifest(a, id, &file).ok())
            .unwrap_or_else(|| panic!("manifest {id} opens under neither key"));
        for entry in manifest.entries {
            if let EntryKind::File { blobs } = entry.kind {
                for blob in blobs {
                    assert!(store.exists(&blob.name.object_name()).unwrap(), "{id} lost a blob");
                }
            }
        }
    }
    let root = store.get(MEDIA_ROOT_OBJECT).unwrap();
    assert!(accounts.iter().any(|a| decrypt_to_vec(&a.media_root_wrap, &root).is_ok()));
}

#[test]
fn a_full_rekey_stopped_at_every_write_resumes() {
    let mut stops = 0;
    for n in 0.. {
        // Dies after `writes_left` writes (puts and deletes), as after a crash; reads go on.
        let writes_left = AtomicUsize::new(usize::MAX);
        let store = OnWrite::new(fails_after(&writes_left, |_| true));
        let trees = two_snapshots(&store);
        let ids: Vec<String> = trees.keys().cloned().collect();
        let old_media = media_keys(&store, &key(1));
        writes_left.store(n, Ordering::SeqCst);
        let outcome = rekey_full(&store, &key(1), &key(9));
        writes_left.store(usize::MAX, Ordering::SeqCst);
        if let Ok(report) = outcome {
            assert!(report.media_root_replaced);
            break;
        }
        stops += 1;
        no_snapshot_lost_a_blob(&store, &ids);
        rekey_full(&store, &key(1), &key(9)).unwrap_or_else(|e| panic!("resume after {n}: {e}"));
        no_snapshot_lost_a_blob(&store, &ids);
        for object in store.list("blobs/").unwrap() {
            let file = store.get(&object).unwrap();
            assert!(decrypt_to_vec(&old_media.blob, &file).is_err(), "after a stop at write {n}");
        }
        assert!(!store.exists(MEDIA_ROOT_NEXT_OBJECT).unwrap());
        assert!(store.list("prune/").unwrap().is_empty(), "after a stop at write {n}");
        restores_all(&store, &key(9), &trees);
    }
    assert!(stops > 10, "{stops}");
}

#[test]
fn a_full_rekey_waits_for_a_running_backup() {
    // Runs a full re-keying from inside a backup, at its first blob upload.
    let raced = std::sync::Mutex::new(None);
    let store = OnWrite::new(|inner: &MemoryStore, write: &str| {
        let mut raced = raced.lock().unwrap();
        if write.starts_with("put blobs/") && raced.is_none() {
            *raced = Some(rekey_full(inner, &key(1), &key(9)).map(drop));
        }
        Ok(())
    });
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("f"), b"photo").unwrap();
    let id = Snapshots::open(&store, &key(1)).unwrap().backup(dir.path()).unwrap().id;
    let raced = raced.lock().unwrap().take().expect("the re-keying ran");
    assert!(matches!(raced, Err(Error::BackupRunning { .. })), "{raced:?}");
    // It touched nothing, and removed its sweep record.
    assert!(!store.inner.exists(MEDIA_ROOT_NEXT_OBJECT).unwrap());
    assert!(store.inner.list("prune/").unwrap().is_empty());
    let snapshots = Snapshots::open(&store.inner, &key(1)).unwrap();
    assert!(snapshots.verify(&id, true).unwrap().is_ok());
}

/// A clock the test sets, Unix microseconds, that moves `step` further each time it is read
/// after the first.
#[derive(Clone)]
struct SteppingClock(std::sync::Arc<(std::sync::atomic::AtomicU64, std::sync::atomic::AtomicU64)>);

impl SteppingClock {
    fn new(start: u64, step: u64) -> Self {
        Self(std::sync::Arc::new((start.into(), step.into())))
    }
    fn clock(&self) -> e2ee_backup_snapshot::Clock {
        let state = self.0.clone();
        let first = std::sync::atomic::AtomicBool::new(true);
        std::sync::Arc::new(move || {
            let step = if first.swap(false, Ordering::SeqCst) {
                0
            } else {
                state.1.load(Ordering::SeqCst)
            };
            state.0.fetch_add(step, Ordering::SeqCst) + step
        })
    }
    fn stop(&self) {
        self.0.1.store(0, Ordering::SeqCst);
    }
}

/// A re-keying that paused a quarter of the grace period between two writes (its clock jumps
/// that far at each reading) stops with `rekey-paused` before its next write, loses nothing,
/// and a later run resumes and finishes (spec section 8.11, "Full re-keying").
#[test]
fn a_full_rekey_paused_a_quarter_of_the_grace_period_stops_and_resumes() {
    const GRACE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
    let store = MemoryStore::new();
    let trees = two_snapshots(&store);
    let ids: Vec<String> = trees.keys().cloned().collect();
    let old_blobs: BTreeSet<String> = store.list("blobs/").unwrap().into_iter().collect();
    let quarter = u64::try_from(GRACE.as_micros()).unwrap() / 4;
    let time = SteppingClock::new(1_764_000_000_000_000, quarter);

    let paused =
        e2ee_backup_snapshot::rekey_full_with(&store, &key(1), &key(9), time.clock(), GRACE);
    assert!(matches!(paused, Err(Error::RekeyPaused)), "{paused:?}");
    // Stopped before the write that came too late: nothing was re-keyed or replaced yet, and
    // every snapshot keeps every blob it references.
    no_snapshot_lost_a_blob(&store, &ids);
    let now: BTreeSet<String> = store.list("blobs/").unwrap().into_iter().collect();
    assert!(old_blobs.is_subset(&now), "an old blob went before the switch");
    restores_all(&store, &key(1), &trees);

    // A run that does not pause resumes and finishes.
    time.stop();
    let report =
        e2ee_backup_snapshot::rekey_full_with(&store, &key(1), &key(9), time.clock(), GRACE)
            .unwrap();
    assert!(report.media_root_replaced, "{report:?}");
    assert_eq!(report.blobs_deleted, old_blobs.len() as u64);
    let new_blobs: BTreeSet<String> = store.list("blobs/").unwrap().into_iter().collect();
    assert!(new_blobs.is_disjoint(&old_blobs));
    assert!(store.list("prune/").unwrap().is_empty());
    assert!(!store.exists(MEDIA_ROOT_NEXT_OBJECT).unwrap());
    restores_all(&store, &key(9), &trees);
}
