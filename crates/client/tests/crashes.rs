//! Crash injection: every operation is stopped at each of its steps in turn (a state file
//! write or rename, a vault request or reply, a store upload, download or deletion, the
//! restore target's write or rename). After each stop the state directory must reopen, hold
//! every backup's plaintext under a key it still has, and running the same operation again
//! must finish it.

mod common;

use std::sync::Arc;

use common::*;
use e2ee_backup_client::faults::{FailAt, NoFaults};
use e2ee_backup_client::scratch::RestoreStaging;
use e2ee_backup_client::{Client, Error, Mode, Source};

/// Runs `op` on device `name` of a world made by `setup`, stopping at step 0, 1, 2, ... until
/// a run passes every step. After each stop: reopen, run `invariant`, resume with `op`, then
/// run `finally`. Returns how many steps the operation has.
fn at_every_step(
    setup: impl Fn(&World),
    name: &str,
    op: impl Fn(&mut Client) -> Result<(), Error>,
    invariant: impl Fn(&World, &mut Client),
    finally: impl Fn(&World, &mut Client),
) -> usize {
    for n in 0.. {
        let w = World::new(10);
        setup(&w);
        let faults = Arc::new(FailAt::new(n));
        let outcome = {
            let mut client = w.client_with(name, faults.clone());
            op(&mut client)
        };
        if !faults.fired() {
            outcome.unwrap_or_else(|e| panic!("a run without a fault failed: {e}"));
            assert!(n > 0);
            return n;
        }
        let point = faults.seen()[n].clone();
        let mut reopened = w.client_with(name, Arc::new(NoFaults));
        invariant(&w, &mut reopened);
        match outcome {
            Err(Error::Injected { point: p }) => {
                assert_eq!(p, point);
                if let Err(e) = op(&mut reopened) {
                    panic!("after a stop at step {n} ({point}), resuming failed: {e}");
                }
            }
            // A stop in the cleanup after the last commit (dropping a forgotten key from the
            // keystore): the operation is done, and reopening finished the cleanup.
            Ok(()) => assert!(
                point.ends_with(" keystore"),
                "stop at {point} ignored: {:?}",
                faults.seen()
            ),
            Err(other) => panic!("stop at {point}: expected the injected fault, got {other:?}"),
        }
        assert_eq!(reopened.status().pending, None, "after a stop at {point}");
        finally(&w, &mut reopened);
    }
    unreachable!()
}

fn every_backup_is_readable_with_a_held_key(w: &World, plaintexts: &[&[u8]]) {
    let keys = keystore_keys(&w.device("phone"));
    let readable: Vec<Vec<u8>> =
        w.objects().iter().filter_map(|(_, f)| open_with_any(&keys, f)).collect();
    for p in plaintexts {
        assert!(readable.iter().any(|r| r == p), "a backup lost its key");
    }
}

fn restore_by_password_gives(w: &World, expected: &[u8]) {
    let mut fresh = w.client("check");
    fresh.restore_with_password(PASSWORD, &w.target("check")).unwrap();
    assert_eq!(std::fs::read(w.target("check")).unwrap(), expected);
}

#[test]
fn enable_with_password_survives_a_crash_at_every_step() {
    let steps = at_every_step(
        |_| {},
        "phone",
        |c| c.enable_with_password(PASSWORD),
        |_, c| {
            let mode = c.status().mode;
            assert!(matches!(mode, Mode::Off | Mode::Password { .. }), "{mode:?}");
        },
        |w, c| {
            c.create_backup(Source::Bytes(b"chats"), "db").unwrap();
            restore_by_password_gives(w, b"chats");
        },
    );
    assert!(steps >= 8, "{steps}");
}

#[test]
fn restore_with_password_survives_a_crash_at_every_step() {
    at_every_step(
        |w| {
            let mut phone = w.client("phone");
            phone.enable_with_password(PASSWORD).unwrap();
            phone.create_backup(Source::Bytes(b"chats"), "db").unwrap();
        },
        "fresh",
        |c| c.restore_with_password(PASSWORD, &c_target(c)).map(drop),
        |_, c| {
            let mode = c.status().mode;
            assert!(matches!(mode, Mode::Off | Mode::Restoring { .. }), "{mode:?}");
        },
        |w, c| {
            assert!(matches!(c.status().mode, Mode::Password { .. }));
            assert_eq!(std::fs::read(w.target("fresh")).unwrap(), b"chats");
        },
    );
}

/// The restore target of the test devices: `<root>/fresh.restored`.
fn c_target(c: &Client) -> std::path::PathBuf {
    let store = std::path::PathBuf::from(c.status().store);
    store.parent().unwrap().join("fresh.restored")
}

#[test]
fn restore_with_key_survives_a_crash_at_every_step() {
    let digits = std::sync::Mutex::new(String::new());
    at_every_step(
        |w| {
            let mut phone = w.client("phone");
            *digits.lock().unwrap() = phone.enable_with_key().unwrap().to_string();
            phone.create_backup(Source::Bytes(b"chats"), "db").unwrap();
        },
        "fresh",
        |c| c.restore_with_key(&digits.lock().unwrap(), &c_target(c)).map(drop),
        |w, _| {
            // A failed restore leaves no temporary file (`.e2ee-backup-*.partial`).
            let target = w.target("fresh");
            let left: Vec<_> = std::fs::read_dir(target.parent().unwrap())
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| e2ee_backup_client::scratch::is_temp_name(n))
                .collect();
            assert!(left.is_empty(), "left behind: {left:?}");
        },
        |w, c| {
            assert!(matches!(c.status().mode, Mode::Key { .. }));
            assert_eq!(std::fs::read(w.target("fresh")).unwrap(), b"chats");
        },
    );
}

fn rotate_at_every_step(password_mode: bool) -> usize {
    at_every_step(
        |w| {
            let mut phone = w.client("phone");
            if password_mode {
                phone.enable_with_password(PASSWORD).unwrap();
            } else {
                phone.enable_with_key().unwrap();
            }
            phone.create_backup(Source::Bytes(b"first"), "db").unwrap();
            phone.create_backup(Source::Bytes(b"second"), "db").unwrap();
        },
        "phone",
        |c| c.rotate_key(password_mode.then_some(PASSWORD)).map(drop),
        |w, _| every_backup_is_readable_with_a_held_key(w, &[b"first", b"second"]),
        |w, c| {
            let keys = keystore_keys(&w.device("phone"));
            assert_eq!(keys.len(), 1, "only the new key is left");
            let objects = w.objects();
            assert_eq!(objects.len(), 2, "no orphan and no lost backup");
            let plain: Vec<_> =
                objects.iter().map(|(_, f)| open_with_any(&keys, f).unwrap()).collect();
            assert_eq!(plain, vec![b"first".to_vec(), b"second".to_vec()]);
            if password_mode {
                assert!(matches!(c.status().mode, Mode::Password { .. }));
                restore_by_password_gives(w, b"second");
            }
        },
    )
}

#[test]
fn rotate_key_in_key_mode_survives_a_crash_at_every_step() {
    assert!(rotate_at_every_step(false) >= 10);
}

#[test]
fn rotate_key_in_password_mode_survives_a_crash_at_every_step() {
    assert!(rotate_at_every_step(true) >= 14);
}

#[test]
fn switch_to_password_survives_a_crash_at_every_step() {
    at_every_step(
        |w| {
            let mut phone = w.client("phone");
            phone.enable_with_key().unwrap();
            phone.create_backup(Source::Bytes(b"chats"), "db").unwrap();
        },
        "phone",
        |c| c.switch_to_password(PASSWORD),
        |_, c| assert!(matches!(c.status().mode, Mode::Key { .. } | Mode::Password { .. })),
        |w, _| restore_by_password_gives(w, b"chats"),
    );
}

#[test]
fn disable_survives_a_crash_at_every_step() {
    at_every_step(
        |w| {
            let mut phone = w.client("phone");
            phone.enable_with_password(PASSWORD).unwrap();
            phone.create_backup(Source::Bytes(b"one"), "db").unwrap();
            phone.create_backup(Source::Bytes(b"two"), "db").unwrap();
        },
        "phone",
        |c| {
            // A resumed disable whose vault deletion already went through cannot tell (the
            // vault answers an unknown account like a wrong password); it is told to skip it.
            match c.disable(Some(PASSWORD)) {
                Err(Error::WrongPassword { .. }) => c.disable(None).map(drop),
                other => other.map(drop),
            }
        },
        |w, _| every_backup_is_readable_with_a_held_key(w, &[]),
        |w, c| {
            assert_eq!(c.status().mode, Mode::Off);
            assert!(w.objects().is_empty());
            assert!(keystore_keys(&w.device("phone")).is_empty());
            assert!(w.fleet.transport.with_vault(|v| {
                v.record(ACCOUNT.as_bytes()).is_none_or(|r| r.sealed_key.is_empty())
            }));
        },
    );
}

/// A rotation with snapshots in the store (spec 8.11): stopped at every step, including each
/// read and re-encryption of the media root key and the manifests, every snapshot object still
/// opens under a key the device holds, and once resumed the snapshots restore under the new
/// key.
#[test]
fn rotate_key_with_snapshots_survives_a_crash_at_every_step() {
    use e2ee_backup_snapshot::{AccountKeys, open_manifest};

    let tree = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tree.path().join("Media")).unwrap();
    std::fs::write(tree.path().join("Media/a.jpg"), [1u8; 3000]).unwrap();
    std::fs::write(tree.path().join("msgstore.db"), b"chats").unwrap();
    let steps = at_every_step(
        |w| {
            let mut phone = w.client("phone");
            phone.enable_with_key().unwrap();
            phone.create_backup(Source::Bytes(b"chats"), "db").unwrap();
            for _ in 0..2 {
                phone.with_snapshots("test", |s| s.backup(tree.path())).unwrap();
            }
        },
        "phone",
        |c| c.rotate_key(None).map(drop),
        |w, _| {
            let keys: Vec<AccountKeys> =
                keystore_keys(&w.device("phone")).iter().map(AccountKeys::derive).collect();
            let dir = w.store().join("snapshots");
            let manifests: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
            assert_eq!(manifests.len(), 2);
            for entry in manifests {
                let name = entry.file_name().to_string_lossy().into_owned();
                let id = name.strip_suffix(".e2ee").unwrap();
                let file = std::fs::read(entry.path()).unwrap();
                assert!(
                    keys.iter().any(|k| open_manifest(k, id, &file).is_ok()),
                    "manifest {id} opens under no held key"
                );
            }
            let wrapped = std::fs::read(w.store().join("keys/media-root.e2ee")).unwrap();
            assert!(keys.iter().any(|k| {
                e2ee_backup_format::decrypt_to_vec(&k.media_root_wrap, &wrapped).is_ok()
            }));
        },
        |w, c| {
            let target = w.target("tree");
            let ids = c.with_snapshots("test", |s| s.ids()).unwrap();
            assert_eq!(ids.len(), 2);
            c.with_snapshots("test", |s| {
                s.restore(&ids[0], &target, &[], &RestoreStaging::default())
            })
            .unwrap();
            assert_eq!(std::fs::read(target.join("msgstore.db")).unwrap(), b"chats");
            assert_eq!(std::fs::read(target.join("Media/a.jpg")).unwrap(), [1u8; 3000]);
        },
    );
    assert!(steps >= 14, "{steps}");
}

/// Every file under `dir`, at any depth.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(listing) = std::fs::read_dir(&dir) else { continue };
        for entry in listing.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// A full rotation (spec 8.11, "Full re-keying"): stopped at every step (each blob copied
/// under its new name, each manifest switched, the media root key replaced, each old blob and
/// record deleted), no snapshot ever references a missing blob and each opens under a key the
/// device holds; resumed, every snapshot restores byte for byte, and neither the old K nor the
/// old media root key opens anything left in the store.
#[test]
fn rotate_key_full_with_snapshots_survives_a_crash_at_every_step() {
    full_rotation_survives_a_crash_at_every_step(false);
}

/// The same in password mode: the rotation also re-seals the new K in the vault; after every
/// stop and resumption the password still restores on a new device, with the new K.
#[test]
fn rotate_key_full_in_password_mode_survives_a_crash_at_every_step() {
    full_rotation_survives_a_crash_at_every_step(true);
}

fn full_rotation_survives_a_crash_at_every_step(password_mode: bool) {
    use e2ee_backup_snapshot::{AccountKeys, EntryKind, MediaKeys, MediaRootKey, open_manifest};
    use std::sync::Mutex;

    let tree = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tree.path().join("Media")).unwrap();
    std::fs::write(tree.path().join("Media/a.jpg"), [1u8; 3000]).unwrap();
    std::fs::write(tree.path().join("msgstore.db"), b"chats").unwrap();
    // The old K and the old media root key of the world being run.
    let old: Mutex<Option<(AccountKeys, MediaKeys)>> = Mutex::new(None);
    let manifests_of = |w: &World| -> Vec<(String, Vec<u8>)> {
        files_under(&w.store().join("snapshots"))
            .into_iter()
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name.strip_suffix(".e2ee").unwrap().to_owned(), std::fs::read(&p).unwrap())
            })
            .collect()
    };
    let steps = at_every_step(
        |w| {
            let mut phone = w.client("phone");
            if password_mode {
                phone.enable_with_password(PASSWORD).unwrap();
            } else {
                phone.enable_with_key().unwrap();
            }
            phone.create_backup(Source::Bytes(b"chats"), "db").unwrap();
            phone.with_snapshots("test", |s| s.backup(tree.path())).unwrap();
            std::fs::write(tree.path().join("Media/b.jpg"), [2u8; 2000]).unwrap();
            phone.with_snapshots("test", |s| s.backup(tree.path())).unwrap();
            std::fs::remove_file(tree.path().join("Media/b.jpg")).unwrap();
            let k = keystore_keys(&w.device("phone")).pop().unwrap();
            let account = AccountKeys::derive(&k);
            let wrapped = std::fs::read(w.store().join("keys/media-root.e2ee")).unwrap();
            let (_, mrk) =
                e2ee_backup_format::decrypt_to_vec(&account.media_root_wrap, &wrapped).unwrap();
            let media = MediaKeys::derive(&MediaRootKey::from_bytes(mrk.try_into().unwrap()));
            *old.lock().unwrap() = Some((account, media));
        },
        "phone",
        |c| c.rotate_key_with(password_mode.then_some(PASSWORD), true).map(drop),
        |w, _| {
            let keys: Vec<AccountKeys> =
                keystore_keys(&w.device("phone")).iter().map(AccountKeys::derive).collect();
            let manifests = manifests_of(w);
            assert_eq!(manifests.len(), 2);
            for (id, file) in manifests {
                let manifest = keys
                    .iter()
                    .find_map(|k| open_manifest(k, &id, &file).ok())
                    .unwrap_or_else(|| panic!("manifest {id} opens under no held key"));
                for entry in manifest.entries {
                    if let EntryKind::File { blobs } = entry.kind {
                        for blob in blobs {
                            let path = w.store().join(blob.name.object_name());
                            assert!(path.exists(), "snapshot {id} references a missing blob");
                        }
                    }
                }
            }
            let wrapped = std::fs::read(w.store().join("keys/media-root.e2ee")).unwrap();
            assert!(keys.iter().any(|k| {
                e2ee_backup_format::decrypt_to_vec(&k.media_root_wrap, &wrapped).is_ok()
            }));
        },
        |w, c| {
            let ids = c.with_snapshots("test", |s| s.ids()).unwrap();
            assert_eq!(ids.len(), 2);
            for (n, id) in ids.iter().enumerate() {
                let target = w.target(&format!("tree{n}"));
                c.with_snapshots("test", |s| {
                    s.restore(id, &target, &[], &RestoreStaging::default())
                })
                .unwrap();
                assert_eq!(std::fs::read(target.join("msgstore.db")).unwrap(), b"chats");
                assert_eq!(std::fs::read(target.join("Media/a.jpg")).unwrap(), [1u8; 3000]);
                let b = std::fs::read(target.join("Media/b.jpg")).ok();
                assert_eq!(b, (n == 1).then(|| vec![2u8; 2000]));
            }
            let guard = old.lock().unwrap();
            let (old_account, old_media) = guard.as_ref().unwrap();
            let blobs = files_under(&w.store().join("blobs"));
            assert_eq!(blobs.len(), 3, "{blobs:?}");
            for path in blobs {
                let file = std::fs::read(&path).unwrap();
                assert!(
                    e2ee_backup_format::decrypt_to_vec(&old_media.blob, &file).is_err(),
                    "the old media root key opens {}",
                    path.display()
                );
            }
            for (id, file) in manifests_of(w) {
                assert!(open_manifest(old_account, &id, &file).is_err());
            }
            let wrapped = std::fs::read(w.store().join("keys/media-root.e2ee")).unwrap();
            assert!(
                e2ee_backup_format::decrypt_to_vec(&old_account.media_root_wrap, &wrapped).is_err()
            );
            assert!(!w.store().join("keys/media-root-next.e2ee").exists());
            assert!(files_under(&w.store().join("prune")).is_empty());
            if password_mode {
                // The vault holds the new K: a new device restores with the password.
                restore_by_password_gives(w, b"chats");
            }
        },
    );
    assert!(steps >= 20, "{steps}");
}
