//! Snapshots end to end over an in-memory store: deduplication, incremental backups, restore
//! of odd trees, tampering, path traversal, verify and re-keying (spec chapter 8).

mod support;

use e2ee_backup_testkit::noise;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use e2ee_backup_format::{Compression, EncryptOptions, Metadata, encrypt_to_vec};
use e2ee_backup_kdf::BackupKey;
use e2ee_backup_snapshot::{
    AccountKeys, BackupOptions, BackupPhase, BackupProgress, BlobName, ChunkParams, EntryKind,
    Error, Excludes, MEDIA_ROOT_OBJECT, ManifestError, MemoryStore, Snapshots, Store, rekey,
    snapshot_object,
};

/// Small chunks, so that a few hundred KiB make many of them.
use support::{OnWrite, Temps, fails_after};

const SMALL: ChunkParams = ChunkParams { min: 1024, avg: 4096, max: 16384 };

fn key(byte: u8) -> BackupKey {
    BackupKey::from_bytes([byte; 32])
}

/// Puts a media root key of 32 `byte`s, sealed under `k` as spec 8.2 seals it, into `store`.
fn fixed_media_root(store: &MemoryStore, k: &BackupKey, byte: u8) {
    let mut options = EncryptOptions::default();
    options.metadata = Metadata {
        created_at: 1,
        plaintext_len: None,
        fields: BTreeMap::from([("purpose".to_owned(), "media-root-key".to_owned())]),
    };
    let wrap = &AccountKeys::derive(k).media_root_wrap;
    store.set_raw(MEDIA_ROOT_OBJECT, encrypt_to_vec(wrap, options, &[byte; 32]).unwrap());
}

fn blob_objects(store: &MemoryStore) -> Vec<String> {
    store.list("blobs/").unwrap()
}

/// Every file, directory and link under `root`, with content or target, for comparing trees.
fn tree(root: &Path) -> BTreeMap<String, String> {
    fn visit(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for item in fs::read_dir(dir).unwrap() {
            let item = item.unwrap();
            let path = item.path();
            let rel = path.strip_prefix(root).unwrap().to_str().unwrap().to_owned();
            let kind = item.file_type().unwrap();
            if kind.is_symlink() {
                out.insert(rel, format!("link {}", fs::read_link(&path).unwrap().display()));
            } else if kind.is_dir() {
                out.insert(rel, "dir".into());
                visit(root, &path, out);
            } else {
                out.insert(rel, format!("file {}", hex::encode(fs::read(&path).unwrap())));
            }
        }
    }
    let mut out = BTreeMap::new();
    visit(root, root, &mut out);
    out
}

fn odd_tree(root: &Path) {
    fs::create_dir_all(root.join("Media/WhatsApp Images/Sent")).unwrap();
    fs::create_dir_all(root.join("empty dir")).unwrap();
    fs::create_dir_all(root.join("Databases")).unwrap();
    fs::write(root.join("Databases/msgstore.db"), noise(1, 70_000)).unwrap();
    fs::write(root.join("Media/WhatsApp Images/IMG 0001 été 🙂.jpg"), noise(2, 20_000)).unwrap();
    fs::write(root.join("Media/WhatsApp Images/Sent/empty"), b"").unwrap();
    fs::write(root.join("a b"), b"space").unwrap();
    fs::write(root.join("日本語.txt"), "こんにちは").unwrap();
}

#[test]
fn two_equal_files_are_stored_as_one_blob() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("one"), noise(3, 5000)).unwrap();
    fs::write(dir.path().join("two"), noise(3, 5000)).unwrap();
    let store = MemoryStore::new();
    let mut snapshots = Snapshots::open(&store, &key(1)).unwrap();
    let report = snapshots.backup(dir.path()).unwrap();
    assert_eq!((report.files, report.bytes), (2, 10_000));
    assert_eq!((report.new_blobs, report.new_bytes), (1, 5000));
    assert_eq!((report.reused_blobs, report.reused_bytes), (1, 5000));
    assert_eq!(store.puts_under("blobs/"), 1);
    assert_eq!(blob_objects(&store).len(), 1);
    assert_eq!(store.puts_under("snapshots/"), 1);
    assert_eq!(store.puts_under("keys/"), 1);
}

#[test]
fn a_second_backup_of_an_unchanged_tree_uploads_no_blob() {
    let dir = tempfile::tempdir().unwrap();
    odd_tree(dir.path());
    let store = MemoryStore::new();
    let mut snapshots = Snapshots::open(&store, &key(1)).unwrap().with_chunking(SMALL).unwrap();
    let first = snapshots.backup(dir.path()).unwrap();
    assert!(first.new_blobs > 5, "{first:?}");
    let blob_puts = store.puts_under("blobs/");
    let puts = store.puts().len();

    // Opened afresh, as another run of the program would.
    let mut again = Snapshots::open(&store, &key(1)).unwrap().with_chunking(SMALL).unwrap();
    let second = again.backup(dir.path()).unwrap();
    assert_eq!((second.new_blobs, second.new_bytes), (0, 0));
    assert_eq!(second.reused_bytes, first.bytes);
    assert_eq!(store.puts_under("blobs/"), blob_puts);
    // Only the backup's hold (section 8.12.2) and the manifest.
    let new_puts = &store.puts()[puts..];
    assert_eq!(new_puts.len(), 2, "{new_puts:?}");
    assert!(new_puts[0].starts_with("prune/holds/"), "{new_puts:?}");
    assert_eq!(new_puts[1], snapshot_object(&second.id));
    assert!(store.list("prune/").unwrap().is_empty(), "the hold is removed");
    assert_ne!(first.id, second.id);
    let listed = again.list().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].new_bytes, first.new_bytes);
    assert_eq!(listed[1].new_bytes, 0);
    assert_eq!(listed[1].files, 5);
    assert_eq!(listed[1].total_size, first.bytes);
}

#[test]
fn a_changed_file_uploads_only_the_chunks_around_the_change() {
    let dir = tempfile::tempdir().unwrap();
    let mut content = noise(4, 400_000);
    fs::write(dir.path().join("big.db"), &content).unwrap();
    let store = MemoryStore::new();
    // A fixed media root key fixes the chunker's seed, so every run cuts where this one does:
    // with a random one, a cut that moves within the minimum size of the next one made a fourth
    // blob about once in a few hundred runs.
    fixed_media_root(&store, &key(1), 0x5a);
    let mut snapshots = Snapshots::open(&store, &key(1)).unwrap().with_chunking(SMALL).unwrap();
    let first = snapshots.backup(dir.path()).unwrap();
    assert!(first.new_blobs >= 40, "{first:?}");

    content[200_000..200_100].copy_from_slice(&noise(5, 100));
    fs::write(dir.path().join("big.db"), &content).unwrap();
    let before = store.puts_under("blobs/");
    let second = snapshots.backup(dir.path()).unwrap();
    let uploaded = store.puts_under("blobs/") - before;
    assert_eq!(uploaded as u64, second.new_blobs);
    assert!((1..=3).contains(&second.new_blobs), "{second:?}");
    assert!(second.new_bytes <= 3 * u64::from(SMALL.max), "{second:?}");
    assert_eq!(second.new_blobs + second.reused_blobs, {
        let manifest = snapshots.manifest(&second.id).unwrap();
        match &manifest.entries[0].kind {
            e2ee_backup_snapshot::EntryKind::File { blobs } => blobs.len() as u64,
            other => panic!("{other:?}"),
        }
    });

    let target = tempfile::tempdir().unwrap();
    snapshots.restore(&second.id, &target.path().join("r"), &[], &Temps).unwrap();
    assert!(fs::read(target.path().join("r/big.db")).unwrap() == content);
}

#[test]
fn restore_round_trips_a_tree_with_odd_names() {
    let dir = tempfile::tempdir().unwrap();
    odd_tree(dir.path());
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("Databases/msgstore.db", dir.path().join("db link")).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        let script = dir.path().join("run.sh");
        fs::write(&script, b"#!/bin/sh\n").unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o750)).unwrap();
    }
    let store = MemoryStore::new();
    let mut snapshots = Snapshots::open(&store, &key(1)).unwrap().with_chunking(SMALL).unwrap();
    let report = snapshots.backup(dir.path()).unwrap();
    let target = tempfile::tempdir().unwrap();
    let restored = snapshots.restore(&report.id, target.path(), &[], &Temps).unwrap();
    assert_eq!(tree(target.path()), tree(dir.path()));
    assert_eq!(restored.bytes, report.bytes);
    assert_eq!(restored.files, report.files);
    assert!(restored.skipped_links.is_empty());
    let seconds = |root: &Path| {
        let modified =
            fs::metadata(root.join("Databases/msgstore.db")).unwrap().modified().unwrap();
        modified.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
    };
    assert_eq!(seconds(target.path()), seconds(dir.path()));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(target.path().join("run.sh")).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o750);
        assert_eq!(restored.symlinks, 1);
    }
    // A restore never writes into a directory that holds anything.
    assert!(matches!(
        snapshots.restore(&report.id, target.path(), &[], &Temps),
        Err(Error::TargetNotEmpty { .. })
    ));
}

#[test]
fn excluded_entries_are_left_out_and_excluded_directories_not_descended() {
    let dir = tempfile::tempdir().unwrap();
    odd_tree(dir.path());
    fs::write(dir.path().join("Databases/msgstore.db-wal"), b"wal").unwrap();
    fs::write(dir.path().join("Media/WhatsApp Images/Sent/draft.tmp"), b"tmp").unwrap();
    fs::create_dir_all(dir.path().join("Media/.thumbnails/deep")).unwrap();
    fs::write(dir.path().join("Media/.thumbnails/deep/t.jpg"), b"thumb").unwrap();
    // A name the rules refuse (section 8.4), inside a directory left out: never read.
    fs::create_dir_all(dir.path().join("cache")).unwrap();
    #[cfg(unix)]
    fs::write(dir.path().join("cache/bad\\name"), b"x").unwrap();
    let store = MemoryStore::new();
    let mut snapshots = Snapshots::open(&store, &key(1)).unwrap();
    #[cfg(unix)]
    assert!(matches!(snapshots.backup(dir.path()), Err(Error::UnsafePath { .. })));

    let excludes =
        Excludes::new(["*.tmp", ".thumbnails", "/cache", "Databases/*-wal", "a b"]).unwrap();
    let options = BackupOptions { excludes, ..BackupOptions::default() };
    let report = snapshots.backup_with(dir.path(), &options).unwrap();
    assert_eq!(report.excluded, 5, "{report:?}");
    let paths: Vec<String> =
        snapshots.manifest(&report.id).unwrap().entries.into_iter().map(|e| e.path).collect();
    assert_eq!(
        paths,
        [
            "Databases",
            "Databases/msgstore.db",
            "Media",
            "Media/WhatsApp Images",
            "Media/WhatsApp Images/IMG 0001 été 🙂.jpg",
            "Media/WhatsApp Images/Sent",
            "Media/WhatsApp Images/Sent/empty",
            "empty dir",
            "日本語.txt",
        ]
    );
}

#[test]
fn a_backup_reports_its_progress_as_it_goes() {
    let dir = tempfile::tempdir().unwrap();
    odd_tree(dir.path());
    fs::write(dir.path().join("copy.db"), noise(1, 70_000)).unwrap();
    let store = MemoryStore::new();
    let mut snapshots = Snapshots::open(&store, &key(1)).unwrap().with_chunking(SMALL).unwrap();
    let seen = Arc::new(Mutex::new(Vec::<BackupProgress>::new()));
    let sink = Arc::clone(&seen);
    let options = BackupOptions {
        progress: Some(Arc::new(move |p: &BackupProgress| sink.lock().unwrap().push(*p))),
        ..BackupOptions::default()
    };
    let report = snapshots.backup_with(dir.path(), &options).unwrap();
    let seen = seen.lock().unwrap().clone();

    // The walk first: entries found so far, nothing read.
    assert_eq!(seen[0], BackupProgress::default());
    let scanning = seen.iter().take_while(|p| p.phase == BackupPhase::Scanning).count();
    assert!(scanning >= 5, "once per directory listed: {scanning}");
    // Then the files, with the totals known from the start and every count only growing.
    let uploading = &seen[scanning..];
    let first = uploading[0];
    assert_eq!((first.files, first.bytes, first.new_blobs), (0, 0, 0));
    assert_eq!((first.files_total, first.bytes_total), (report.files, report.bytes));
    assert_eq!(first.entries, report.files + report.dirs + report.symlinks);
    for pair in uploading.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        assert_eq!(b.phase, BackupPhase::Uploading);
        assert!(b.files >= a.files && b.bytes >= a.bytes, "{a:?} then {b:?}");
        assert!(b.new_bytes >= a.new_bytes && b.reused_bytes >= a.reused_bytes);
        assert_eq!(b.new_bytes + b.reused_bytes, b.bytes);
    }
    assert!(uploading.len() as u64 > report.new_blobs, "a call per chunk and per file");
    let last = *uploading.last().unwrap();
    assert_eq!(
        (last.files, last.bytes, last.new_blobs, last.new_bytes),
        (report.files, report.bytes, report.new_blobs, report.new_bytes)
    );
    assert_eq!((last.reused_blobs, last.reused_bytes), (report.reused_blobs, report.reused_bytes));
    assert!(report.reused_bytes >= 70_000, "copy.db repeats msgstore.db: {report:?}");
}

#[test]
fn a_failed_restore_leaves_no_partial_file_under_its_name() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("big.db"), noise(21, 200_000)).unwrap();
    fs::write(dir.path().join("small"), b"whole").unwrap();
    let store = MemoryStore::new();
    let mut snapshots = Snapshots::open(&store, &key(1)).unwrap().with_chunking(SMALL).unwrap();
    let id = snapshots.backup(dir.path()).unwrap().id;
    // Damage a blob in the middle of the large file: the blobs before it check and are written.
    let manifest = snapshots.manifest(&id).unwrap();
    let blobs = match &manifest.entries[0].kind {
        e2ee_backup_snapshot::EntryKind::File { blobs } => blobs.clone(),
        other => panic!("{other:?}"),
    };
    assert!(blobs.len() > 4, "{} blobs", blobs.len());
    let object = blobs[blobs.len() / 2].name.object_name();
    let mut damaged = store.get(&object).unwrap();
    let last = damaged.len() - 1;
    damaged[last] ^= 1;
    store.set_raw(&object, damaged);

    let target = tempfile::tempdir().unwrap();
    let err = snapshots.restore(&id, target.path(), &[], &Temps).unwrap_err();
    assert!(matches!(err, Error::BlobDamaged { .. }), "{err:?}");
    let left: Vec<String> = fs::read_dir(target.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(left.is_empty(), "neither the file nor its staged copy is left: {left:?}");
}

#[test]
fn restore_of_selected_paths_writes_only_those() {
    let dir = tempfile::tempdir().unwrap();
    odd_tree(dir.path());
    let store = MemoryStore::new();
    let mut snapshots = Snapshots::open(&store, &key(1)).unwrap();
    let id = snapshots.backup(dir.path()).unwrap().id;
    let target = tempfile::tempdir().unwrap();
    let report =
        snapshots.restore(&id, target.path(), &["Media/WhatsApp Images", "a b"], &Temps).unwrap();
    let got: Vec<String> = tree(target.path()).into_keys().collect();
    assert_eq!(
        got,
        [
            "Media",
            "Media/WhatsApp Images",
            "Media/WhatsApp Images/IMG 0001 été 🙂.jpg",
            "Media/WhatsApp Images/Sent",
            "Media/WhatsApp Images/Sent/empty",
            "a b",
        ]
    );
    assert_eq!(report.files, 3);
    // A prefix is a whole component: "Media/WhatsApp" selects nothing.
    let other = tempfile::tempdir().unwrap();
    let none = snapshots.restore(&id, other.path(), &["Media/WhatsApp"], &Temps).unwrap();
    assert_eq!((none.files, none.dirs), (0, 0));
    // A prefix that climbs out is refused before anything is read.
    assert!(matches!(
        snapshots.restore(&id, &other.path().join("x"), &["../x"], &Temps),
        Err(Error::UnsafePath { .. })
    ));
}

/// The store of one backup of two files, with the names of their blobs.
fn two_blob_store() -> (MemoryStore, String, BlobName, BlobName) {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a"), noise(6, 3000)).unwrap();
    fs::write(dir.path().join("b"), noise(7, 3000)).unwrap();
    let store = MemoryStore::new();
    let mut snapshots = Snapshots::open(&store, &key(1)).unwrap();
    let id = snapshots.backup(dir.path()).unwrap().id;
    let manifest = snapshots.manifest(&id).unwrap();
    let names: Vec<BlobName> = manifest
        .entries
        .iter()
        .map(|e| match &e.kind {
            e2ee_backup_snapshot::EntryKind::File { blobs } => blobs[0].name,
            other => panic!("{other:?}"),
        })
        .collect();
    (store, id, names[0], names[1])
}

fn restore_error(store: &MemoryStore, id: &str) -> Error {
    let snapshots = Snapshots::open(store, &key(1)).unwrap();
    let target = tempfile::tempdir().unwrap();
    snapshots.restore(id, &target.path().join("r"), &[], &Temps).unwrap_err()
}

#[test]
fn swapped_blobs_are_detected() {
    let (store, id, a, b) = two_blob_store();
    let (file_a, file_b) =
        (store.get(&a.object_name()).unwrap(), store.get(&b.object_name()).unwrap());
    store.set_raw(&a.object_name(), file_b);
    store.set_raw(&b.object_name(), file_a);
    let err = restore_error(&store, &id);
    assert!(
        matches!(&err, Error::BlobRenamed { expected, found } if *expected == a.to_hex() && *found == b.to_hex()),
        "{err:?}"
    );
    assert_eq!(err.code(), "blob-renamed");
}

#[test]
fn a_blob_moved_to_another_name_is_detected() {
    let (store, id, a, _) = two_blob_store();
    let file_a = store.get(&a.object_name()).unwrap();
    store.delete(&a.object_name()).unwrap();
    let elsewhere = BlobName([0x5a; 32]);
    store.set_raw(&elsewhere.object_name(), file_a);
    assert!(
        matches!(restore_error(&store, &id), Error::BlobMissing { name } if name == a.to_hex())
    );
    // Put back under a referenced name other than its own, it is caught by its metadata.
    let (store, id, a, b) = two_blob_store();
    store.set_raw(&b.object_name(), store.get(&a.object_name()).unwrap());
    assert!(matches!(restore_error(&store, &id), Error::BlobRenamed { .. }));
}

#[test]
fn a_truncated_blob_is_detected() {
    let (store, id, a, _) = two_blob_store();
    let file = store.get(&a.object_name()).unwrap();
    store.set_raw(&a.object_name(), file[..file.len() - 10].to_vec());
    let err = restore_error(&store, &id);
    assert!(
        matches!(
            &err,
            Error::BlobDamaged { source: e2ee_backup_format::Error::Truncated { .. }, .. }
        ),
        "{err:?}"
    );
}

#[test]
fn a_manifest_from_another_account_or_another_name_is_detected() {
    let (store, id, _, _) = two_blob_store();
    // Another account's snapshot, copied in under a fresh identifier.
    let other_dir = tempfile::tempdir().unwrap();
    fs::write(other_dir.path().join("x"), b"other").unwrap();
    let other = MemoryStore::new();
    let other_id = Snapshots::open(&other, &key(2)).unwrap().backup(other_dir.path()).unwrap().id;
    store.set_raw(&snapshot_object(&other_id), other.get(&snapshot_object(&other_id)).unwrap());
    let snapshots = Snapshots::open(&store, &key(1)).unwrap();
    let err = snapshots.manifest(&other_id).unwrap_err();
    assert!(
        matches!(&err, Error::ManifestDamaged { source: e2ee_backup_format::Error::WrongKey, .. }),
        "{err:?}"
    );
    assert!(snapshots.list().is_err(), "a listing does not pass over a foreign manifest");
    // This account's manifest under another identifier.
    let renamed = format!("{}-00000000000000ff", &id[..20]);
    store.delete(&snapshot_object(&other_id)).unwrap();
    store.set_raw(&snapshot_object(&renamed), store.get(&snapshot_object(&id)).unwrap());
    assert!(matches!(
        snapshots.manifest(&renamed),
        Err(Error::ManifestRenamed { found, .. }) if found == id
    ));
    // And the whole store opened with another K.
    assert!(matches!(
        Snapshots::open(&store, &key(3)),
        Err(Error::MediaRootKey { source: e2ee_backup_format::Error::WrongKey })
    ));
}

#[test]
fn a_manifest_entry_that_climbs_out_is_refused_and_nothing_is_written() {
    let store = MemoryStore::new();
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("a"), b"x").unwrap();
    let mut snapshots = Snapshots::open(&store, &key(1)).unwrap();
    snapshots.backup(dir.path()).unwrap();
    // A manifest built by hand: one file "../escaped" of no blobs, sealed under this
    // account's manifest key as the format would.
    let path = "../escaped";
    let mut encoded = vec![1u8];
    encoded.extend_from_slice(&[0; 24]);
    encoded.extend_from_slice(&1u32.to_be_bytes());
    encoded.extend_from_slice(&(path.len() as u16).to_be_bytes());
    encoded.extend_from_slice(path.as_bytes());
    encoded.push(1);
    encoded.extend_from_slice(&0o644u32.to_be_bytes());
    encoded.extend_from_slice(&0i64.to_be_bytes());
    encoded.extend_from_slice(&0u64.to_be_bytes());
    encoded.extend_from_slice(&0u32.to_be_bytes());
    let id = "00000000000000000001-0123456789abcdef";
    let mut options = EncryptOptions::default();
    options.compression = Compression::Zstd;
    options.metadata = Metadata {
        created_at: 1,
        plaintext_len: None,
        fields: BTreeMap::from([("snapshot".to_owned(), id.to_owned())]),
    };
    let account = AccountKeys::derive(&key(1));
    store.set_raw(
        &snapshot_object(id),
        encrypt_to_vec(&account.manifest, options, &encoded).unwrap(),
    );

    let outer = tempfile::tempdir().unwrap();
    let target = outer.path().join("target");
    let err = snapshots.restore(id, &target, &[], &Temps).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidManifest { source: ManifestError::UnsafePath { .. }, .. }),
        "{err:?}"
    );
    assert!(!outer.path().join("escaped").exists());
    assert!(!target.exists(), "nothing is made before the manifest is checked");
}

#[cfg(unix)]
#[test]
fn links_that_could_leave_the_target_are_not_made() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("f"), b"x").unwrap();
    std::os::unix::fs::symlink("../../etc/passwd", dir.path().join("up")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("abs")).unwrap();
    std::os::unix::fs::symlink("f", dir.path().join("ok")).unwrap();
    let store = MemoryStore::new();
    let mut snapshots = Snapshots::open(&store, &key(1)).unwrap();
    let report = snapshots.backup(dir.path()).unwrap();
    assert_eq!(report.symlinks, 3);
    let target = tempfile::tempdir().unwrap();
    let restored = snapshots.restore(&report.id, target.path(), &[], &Temps).unwrap();
    assert_eq!(restored.skipped_links, ["abs", "up"]);
    assert_eq!(restored.symlinks, 1);
    assert!(fs::symlink_metadata(target.path().join("up")).is_err());
    assert_eq!(fs::read_link(target.path().join("ok")).unwrap(), Path::new("f"));

    // A link selected alone: its directory is made for it.
    fs::create_dir(dir.path().join("sub")).unwrap();
    std::os::unix::fs::symlink("media/x.jpg", dir.path().join("sub/inner")).unwrap();
    let id = snapshots.backup(dir.path()).unwrap().id;
    let only = tempfile::tempdir().unwrap();
    let restored = snapshots.restore(&id, only.path(), &["sub/inner"], &Temps).unwrap();
    assert_eq!((restored.symlinks, restored.dirs), (1, 0));
    assert_eq!(fs::read_link(only.path().join("sub/inner")).unwrap(), Path::new("media/x.jpg"));
}

#[cfg(unix)]
#[test]
fn a_name_that_is_not_utf8_is_refused_on_backup() {
    use std::os::unix::ffi::OsStrExt as _;
    let dir = tempfile::tempdir().unwrap();
    let name = std::ffi::OsStr::from_bytes(b"bad\xff");
    if fs::write(dir.path().join(name), b"x").is_err() {
        return; // a file system that refuses such names cannot hold one
    }
    let store = MemoryStore::new();
    let err = Snapshots::open(&store, &key(1)).unwrap().backup(dir.path()).unwrap_err();
    assert!(matches!(err, Error::UnsafePath { why: "not UTF-8", .. }), "{err:?}");
    assert!(store.list("snapshots/").unwrap().is_empty());
}

#[test]
fn verify_finds_missing_and_damaged_blobs() {
    let (store, id, a, b) = two_blob_store();
    let snapshots = Snapshots::open(&store, &key(1)).unwrap();
    let clean = snapshots.verify(&id, true).unwrap();
    assert!(clean.is_ok(), "{:?}", clean.problems);
    assert_eq!((clean.blobs, clean.bytes_read), (2, 6000));

    let mut file = store.get(&a.object_name()).unwrap();
    let last = file.len() - 20;
    file[last] ^= 1;
    store.set_raw(&a.object_name(), file);
    assert!(snapshots.verify(&id, false).unwrap().is_ok(), "existence only");
    let read = snapshots.verify(&id, true).unwrap();
    assert_eq!(read.problems.len(), 1);
    assert!(
        matches!(
            &read.problems[0],
            Error::BlobDamaged { name, source: e2ee_backup_format::Error::ChunkModified { .. } }
                if *name == a.to_hex()
        ),
        "{:?}",
        read.problems
    );

    store.delete(&b.object_name()).unwrap();
    let exists = snapshots.verify(&id, false).unwrap();
    assert_eq!(exists.problems.len(), 1);
    assert_eq!(exists.problems[0].code(), "blob-missing");
    assert_eq!(snapshots.verify(&id, true).unwrap().problems.len(), 2);
}

#[test]
fn rekey_rewraps_the_media_root_key_and_manifests_but_no_blob() {
    let dir = tempfile::tempdir().unwrap();
    odd_tree(dir.path());
    let store = MemoryStore::new();
    let id = Snapshots::open(&store, &key(1)).unwrap().backup(dir.path()).unwrap().id;
    let blobs_before: Vec<Vec<u8>> =
        blob_objects(&store).iter().map(|n| store.get(n).unwrap()).collect();
    let puts = store.puts().len();

    let report = rekey(&store, &key(1), &key(9)).unwrap();
    assert!(report.media_root_rewritten);
    assert_eq!((report.manifests_rewritten, report.manifests_already), (1, 0));
    assert_eq!(store.puts().len(), puts + 2, "one key and one manifest");
    let blobs_after: Vec<Vec<u8>> =
        blob_objects(&store).iter().map(|n| store.get(n).unwrap()).collect();
    assert!(blobs_before == blobs_after);

    let snapshots = Snapshots::open(&store, &key(9)).unwrap();
    let target = tempfile::tempdir().unwrap();
    snapshots.restore(&id, target.path(), &[], &Temps).unwrap();
    assert_eq!(tree(target.path()), tree(dir.path()));
    assert!(matches!(Snapshots::open(&store, &key(1)), Err(Error::MediaRootKey { .. })));

    // Run again (as after a crash): nothing left to do.
    let again = rekey(&store, &key(1), &key(9)).unwrap();
    assert!(!again.media_root_rewritten);
    assert_eq!((again.manifests_rewritten, again.manifests_already), (0, 1));
    assert!(again.damaged.is_empty());
}

#[test]
fn rekey_passes_over_a_damaged_manifest_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("f"), b"x").unwrap();
    let store = MemoryStore::new();
    let mut snapshots = Snapshots::open(&store, &key(1)).unwrap();
    let first = snapshots.backup(dir.path()).unwrap().id;
    let second = snapshots.backup(dir.path()).unwrap().id;
    let object = snapshot_object(&first);
    let mut file = store.get(&object).unwrap();
    let last = file.len() - 1;
    file[last] ^= 1;
    store.set_raw(&object, file);

    let report = rekey(&store, &key(1), &key(9)).unwrap();
    assert_eq!(report.damaged, [object]);
    assert_eq!(report.manifests_rewritten, 1);
    let snapshots = Snapshots::open(&store, &key(9)).unwrap();
    assert!(snapshots.verify(&second, true).unwrap().is_ok());
}

#[test]
fn delete_all_removes_every_snapshot_object_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    odd_tree(dir.path());
    let store = MemoryStore::new();
    store.set_raw("backups/00000000000000000001-0011223344556677.e2ee", b"kept".to_vec());
    let mut snapshots = Snapshots::open(&store, &key(1)).unwrap();
    snapshots.backup(dir.path()).unwrap();
    snapshots.backup(dir.path()).unwrap();
    assert_eq!(e2ee_backup_snapshot::delete_all(&store).unwrap(), 2);
    assert_eq!(store.list("").unwrap(), ["backups/00000000000000000001-0011223344556677.e2ee"]);
    // Nothing left: a second run deletes nothing and does not fail.
    assert_eq!(e2ee_backup_snapshot::delete_all(&store).unwrap(), 0);
}

#[test]
fn an_interrupted_backup_leaves_no_snapshot_and_the_next_reuses_its_blobs() {
    let dir = tempfile::tempdir().unwrap();
    odd_tree(dir.path());
    // The media root key, the backup's hold and three blobs go through, then the store fails.
    let allowed = AtomicUsize::new(5);
    let store = OnWrite::new(fails_after(&allowed, |write| write.starts_with("put ")));
    let mut snapshots = Snapshots::open(&store, &key(1)).unwrap().with_chunking(SMALL).unwrap();
    let err = snapshots.backup(dir.path()).unwrap_err();
    assert!(matches!(err, Error::Store { .. }), "{err:?}");
    assert!(snapshots.ids().unwrap().is_empty());
    assert_eq!(store.inner.puts_under("blobs/"), 3);

    allowed.store(usize::MAX, Ordering::SeqCst);
    let report = snapshots.backup(dir.path()).unwrap();
    assert_eq!(report.reused_blobs, 3);
    assert_eq!(snapshots.ids().unwrap(), std::slice::from_ref(&report.id));
    assert!(snapshots.verify(&report.id, true).unwrap().is_ok());
}

fn with_uploads(uploads: usize) -> BackupOptions {
    BackupOptions { uploads, ..BackupOptions::default() }
}

#[test]
fn parallel_uploads_store_what_one_at_a_time_stores_with_at_most_that_many_puts_at_once() {
    let dir = tempfile::tempdir().unwrap();
    odd_tree(dir.path());
    fs::write(dir.path().join("database"), noise(1, 200 * 1024)).unwrap();
    let one = MemoryStore::new();
    let mut in_order = Snapshots::open(&one, &key(1)).unwrap().with_chunking(SMALL).unwrap();
    let first = in_order.backup_with(dir.path(), &with_uploads(1)).unwrap();
    // A store whose blob puts take a while, counting how many run at once; with the same media
    // root key, hence the same chunking and blob names.
    let (running, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let slow = OnWrite::new(|_: &MemoryStore, write: &str| {
        if write.starts_with("put blobs/") {
            most.fetch_max(running.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(5));
            running.fetch_sub(1, Ordering::SeqCst);
        }
        Ok(())
    });
    slow.inner.set_raw(MEDIA_ROOT_OBJECT, one.get(MEDIA_ROOT_OBJECT).unwrap());
    let mut parallel = Snapshots::open(&slow, &key(1)).unwrap().with_chunking(SMALL).unwrap();
    let second = parallel.backup_with(dir.path(), &with_uploads(4)).unwrap();

    assert!(second.new_blobs > 20, "{second:?}");
    assert_eq!(blob_objects(&slow.inner), blob_objects(&one));
    let entries = parallel.manifest(&second.id).unwrap().entries;
    assert_eq!(entries, in_order.manifest(&first.id).unwrap().entries);
    let counts = |r: &e2ee_backup_snapshot::BackupReport| {
        (r.files, r.new_blobs, r.new_bytes, r.reused_blobs, r.reused_bytes, r.bytes)
    };
    assert_eq!(counts(&second), counts(&first));
    let target = tempfile::tempdir().unwrap();
    parallel.restore(&second.id, &target.path().join("t"), &[], &Temps).unwrap();
    assert_eq!(tree(&target.path().join("t")), tree(dir.path()));
    let most = most.load(Ordering::SeqCst);
    assert!((2..=4).contains(&most), "{most} blob puts at once");
    assert!(parallel.verify(&second.id, true).unwrap().is_ok());
}

#[test]
fn a_failed_parallel_upload_leaves_no_snapshot_and_the_next_reuses_its_blobs() {
    let dir = tempfile::tempdir().unwrap();
    odd_tree(dir.path());
    fs::write(dir.path().join("database"), noise(2, 100 * 1024)).unwrap();
    // How many blobs the tree has, and its media root key.
    let fresh = MemoryStore::new();
    let mut all = Snapshots::open(&fresh, &key(1)).unwrap().with_chunking(SMALL).unwrap();
    let unique = all.backup(dir.path()).unwrap().new_blobs;
    // With that key in place, the backup's hold and three blobs go through, then the store
    // fails.
    let allowed = AtomicUsize::new(4);
    let store = OnWrite::new(fails_after(&allowed, |write| write.starts_with("put ")));
    store.inner.set_raw(MEDIA_ROOT_OBJECT, fresh.get(MEDIA_ROOT_OBJECT).unwrap());
    let mut snapshots = Snapshots::open(&store, &key(1)).unwrap().with_chunking(SMALL).unwrap();
    let err = snapshots.backup_with(dir.path(), &with_uploads(4)).unwrap_err();
    assert!(matches!(err, Error::Store { .. }), "{err:?}");
    assert!(snapshots.ids().unwrap().is_empty());
    assert_eq!(store.inner.puts_under("blobs/"), 3);

    // Which three got through depends on the threads; the next run uploads only the others.
    allowed.store(usize::MAX, Ordering::SeqCst);
    let report = snapshots.backup_with(dir.path(), &with_uploads(4)).unwrap();
    assert_eq!(report.new_blobs, unique - 3);
    assert_eq!(snapshots.ids().unwrap(), std::slice::from_ref(&report.id));
    assert!(snapshots.verify(&report.id, true).unwrap().is_ok());
}

#[test]
fn the_files_cache_skips_unchanged_files_and_rereads_whatever_changed() {
    let dir = tempfile::tempdir().unwrap();
    odd_tree(dir.path());
    let db = dir.path().join("database");
    fs::write(&db, noise(3, 40 * 1024)).unwrap();
    let state = tempfile::tempdir().unwrap();
    let cache = state.path().join("files.cache");
    let options = BackupOptions { files_cache: Some(cache.clone()), ..BackupOptions::default() };
    // Files written within two seconds of a backup's start are never cached (their times
    // have not settled): let them age.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let store = MemoryStore::new();
    let mut snapshots = Snapshots::open(&store, &key(1)).unwrap().with_chunking(SMALL).unwrap();

    let first = snapshots.backup_with(dir.path(), &options).unwrap();
    assert_eq!(first.unchanged_files, 0);
    assert!(cache.exists());
    let second = snapshots.backup_with(dir.path(), &options).unwrap();
    assert_eq!((second.unchanged_files, second.new_blobs), (first.files, 0));
    assert_eq!(second.reused_blobs, first.new_blobs + first.reused_blobs);
    let entries = |id: &str| snapshots.manifest(id).unwrap().entries;
    assert_eq!(entries(&second.id), entries(&first.id));

    // New content of the same size, its modification time set back: the change time tells.
    let old_mtime = fs::metadata(&db).unwrap().modified().unwrap();
    fs::write(&db, noise(4, 40 * 1024)).unwrap();
    fs::File::options().write(true).open(&db).unwrap().set_modified(old_mtime).unwrap();
    let third = snapshots.backup_with(dir.path(), &options).unwrap();
    assert_eq!(third.unchanged_files, first.files - 1);
    assert!(third.new_blobs > 0);
    // Written just now, it is not cached either: the next run reads it again.
    let fourth = snapshots.backup_with(dir.path(), &options).unwrap();
    assert_eq!(fourth.unchanged_files, first.files - 1);
    let target = tempfile::tempdir().unwrap();
    snapshots.restore(&fourth.id, &target.path().join("t"), &[], &Temps).unwrap();
    assert_eq!(tree(&target.path().join("t")), tree(dir.path()));

    // A blob the store no longer has (a prune took it): the files that need it are read.
    let manifest = snapshots.manifest(&fourth.id).unwrap();
    let entry = manifest.entries.iter().find(|e| e.path == "a b").unwrap();
    let EntryKind::File { blobs } = &entry.kind else { panic!("a file") };
    let gone = blobs[0].name.object_name();
    store.delete(&gone).unwrap();
    let fifth = snapshots.backup_with(dir.path(), &options).unwrap();
    assert!(fifth.unchanged_files < fourth.unchanged_files, "{fifth:?}");
    assert!(store.exists(&gone).unwrap(), "uploaded again");
    assert!(snapshots.verify(&fifth.id, true).unwrap().is_ok());

    // Another key's snapshots (another media root key) do not use this cache.
    let other = MemoryStore::new();
    let mut others = Snapshots::open(&other, &key(2)).unwrap().with_chunking(SMALL).unwrap();
    assert_eq!(others.backup_with(dir.path(), &options).unwrap().unchanged_files, 0);
}

/// Stages like [`Temps`] until `left` files are staged, then fails, as a restore killed half
/// way would stop.
struct StopsAfter {
    left: AtomicUsize,
}

impl e2ee_backup_snapshot::Staging for StopsAfter {
    fn create_in(&self, dir: &Path) -> std::io::Result<Box<dyn e2ee_backup_snapshot::StagedFile>> {
        if self.left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_err()
        {
            return Err(std::io::Error::other("stopped"));
        }
        Temps.create_in(dir)
    }
}

#[cfg(unix)]
#[test]
fn a_stopped_restore_resumes_without_reading_the_files_it_finished() {
    let dir = tempfile::tempdir().unwrap();
    odd_tree(dir.path());
    std::os::unix::fs::symlink("a b", dir.path().join("link")).unwrap();
    let store = MemoryStore::new();
    let mut snapshots = Snapshots::open(&store, &key(1)).unwrap().with_chunking(SMALL).unwrap();
    let id = snapshots.backup(dir.path()).unwrap().id;
    let target = tempfile::tempdir().unwrap();
    let to = target.path().join("t");

    let stops = StopsAfter { left: AtomicUsize::new(2) };
    let err = snapshots.restore(&id, &to, &[], &stops).unwrap_err();
    assert_eq!(err.code(), "io", "{err}");
    // Without resuming, the half-filled target is refused.
    let again = snapshots.restore(&id, &to, &[], &Temps).unwrap_err();
    assert_eq!(again.code(), "target-not-empty");
    let report = snapshots.resume_restore(&id, &to, &[], &Temps).unwrap();
    assert_eq!((report.kept_files, report.files), (2, 3), "{report:?}");
    assert_eq!(tree(&to), tree(dir.path()));
    // Resuming a finished restore keeps everything.
    let done = snapshots.resume_restore(&id, &to, &[], &Temps).unwrap();
    assert_eq!((done.kept_files, done.files, done.symlinks), (5, 0, 1));

    // Something else at a name the snapshot restores is not overwritten.
    fs::write(to.join("a b"), b"something else").unwrap();
    let err = snapshots.resume_restore(&id, &to, &[], &Temps).unwrap_err();
    assert_eq!(err.code(), "target-conflict");
    assert_eq!(fs::read(to.join("a b")).unwrap(), b"something else");

    // A directory of the snapshot replaced by a link to elsewhere: nothing is written through it.
    let elsewhere = tempfile::tempdir().unwrap();
    let resumed = target.path().join("r");
    snapshots.restore(&id, &resumed, &["Media"], &Temps).unwrap();
    fs::remove_dir_all(resumed.join("Media/WhatsApp Images/Sent")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), resumed.join("Media/WhatsApp Images/Sent"))
        .unwrap();
    let err = snapshots.resume_restore(&id, &resumed, &["Media"], &Temps).unwrap_err();
    assert_eq!(err.code(), "target-conflict", "{err}");
    assert_eq!(fs::read_dir(elsewhere.path()).unwrap().count(), 0, "written through the link");
}
