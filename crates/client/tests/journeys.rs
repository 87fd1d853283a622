//! Every user journey against the in-memory vault and a local backup store.

mod common;

use std::sync::Arc;

use common::*;
use e2ee_backup_client::faults::NoFaults;
use e2ee_backup_client::{Error, Mode, Source};
use e2ee_backup_kdf::digits;

fn restored(w: &World, name: &str) -> Vec<u8> {
    std::fs::read(w.target(name)).unwrap()
}

#[test]
fn key_mode_backup_then_restore_on_a_fresh_device() {
    let w = World::new(10);
    let mut phone = w.client("phone");
    let shown = phone.enable_with_key().unwrap();
    assert_eq!(shown.len(), 79);
    assert!(matches!(phone.status().mode, Mode::Key { .. }));
    phone.create_backup(Source::Bytes(b"old chats"), "msgstore.db").unwrap();
    let source = w.root.path().join("msgstore.db");
    std::fs::write(&source, b"new chats").unwrap();
    let info = phone.create_backup(Source::Path(&source), "msgstore.db").unwrap();
    assert!(info.object.starts_with("backups/") && info.object.ends_with(".e2ee"));

    let mut fresh = w.client("fresh");
    let report = fresh.restore_with_key(&shown.to_uppercase(), &w.target("fresh")).unwrap();
    assert_eq!(restored(&w, "fresh"), b"new chats");
    assert_eq!(report.object, info.object);
    assert_eq!(report.name.as_deref(), Some("msgstore.db"));
    assert!(matches!(fresh.status().mode, Mode::Key { .. }));
}

#[test]
fn password_mode_backup_then_restore_on_a_fresh_device() {
    let w = World::new(10);
    let mut phone = w.client("phone");
    phone.enable_with_password(PASSWORD).unwrap();
    assert!(matches!(phone.status().mode, Mode::Password { .. }));
    assert_eq!(phone.status().last_seen_epoch, Some(1));
    phone.create_backup(Source::Bytes(b"chats"), "db").unwrap();

    let mut fresh = w.client("fresh");
    fresh.restore_with_password(PASSWORD, &w.target("fresh")).unwrap();
    assert_eq!(restored(&w, "fresh"), b"chats");
    assert!(matches!(fresh.status().mode, Mode::Password { .. }));
    // The restored device can back up, and the first device reads it.
    fresh.create_backup(Source::Bytes(b"chats 2"), "db").unwrap();
    let mut third = w.client("third");
    third.restore_with_password(PASSWORD, &w.target("third")).unwrap();
    assert_eq!(restored(&w, "third"), b"chats 2");
}

#[test]
fn wrong_password_reports_the_attempts_left_and_changes_nothing() {
    let w = World::new(5);
    let mut phone = w.client("phone");
    phone.enable_with_password(PASSWORD).unwrap();
    phone.create_backup(Source::Bytes(b"chats"), "db").unwrap();
    let mut fresh = w.client("fresh");
    for expected in [4, 3] {
        match fresh.restore_with_password("guess", &w.target("fresh")) {
            Err(Error::WrongPassword { remaining }) => assert_eq!(remaining, expected),
            other => panic!("expected a wrong password, got {other:?}"),
        }
        assert_eq!(fresh.status().mode, Mode::Off);
    }
    assert!(!w.target("fresh").exists());
    // A right password refills the budget.
    fresh.restore_with_password(PASSWORD, &w.target("fresh")).unwrap();
    let remaining =
        w.fleet.transport.with_vault(|v| v.record(ACCOUNT.as_bytes()).unwrap().remaining);
    assert_eq!(remaining, 5);
}

#[test]
fn lockout_ends_password_restore_and_leaves_key_mode() {
    let w = World::new(2);
    let mut phone = w.client("phone");
    phone.enable_with_password(PASSWORD).unwrap();
    phone.create_backup(Source::Bytes(b"chats"), "db").unwrap();

    let mut thief = w.client("thief");
    assert!(matches!(
        thief.restore_with_password("a", &w.target("thief")),
        Err(Error::WrongPassword { remaining: 1 })
    ));
    assert!(matches!(
        thief.restore_with_password("b", &w.target("thief")),
        Err(Error::WrongPassword { remaining: 0 })
    ));
    // The wrong guesses' sessions are still live: no verdict yet, even for the right password.
    let err = thief.restore_with_password(PASSWORD, &w.target("thief")).unwrap_err();
    assert!(matches!(err, Error::AttemptsExhausted) && err.is_retryable(), "{err}");
    assert_eq!(thief.status().mode, Mode::Off);
    // Once they expire, the next attempt locks the account and the vault erases the key.
    w.fleet.transport.with_vault(|v| v.now += 3600);
    assert!(matches!(thief.restore_with_password("c", &w.target("thief")), Err(Error::LockedOut)));
    assert_eq!(thief.status().mode, Mode::LockedOut { key_id: None });
    assert!(matches!(
        thief.restore_with_password(PASSWORD, &w.target("thief")),
        Err(Error::IllegalState { .. })
    ));

    // The phone still holds K: a login tells it the vault copy is gone.
    let r = phone.change_password(PASSWORD, "new");
    assert!(matches!(r, Err(Error::LockedOut)), "{r:?}");
    assert!(matches!(phone.status().mode, Mode::LockedOut { key_id: Some(_) }));
    assert!(matches!(phone.enable_with_password("again"), Err(Error::IllegalState { .. })));
    // Key mode keeps K, so old backups stay readable with the digits.
    let shown = phone.enable_with_key().unwrap();
    let mut fresh = w.client("fresh");
    fresh.restore_with_key(&shown, &w.target("fresh")).unwrap();
    assert_eq!(restored(&w, "fresh"), b"chats");
}

#[test]
fn change_password_keeps_the_key() {
    let w = World::new(10);
    let mut phone = w.client("phone");
    phone.enable_with_password(PASSWORD).unwrap();
    phone.create_backup(Source::Bytes(b"chats"), "db").unwrap();
    assert!(matches!(
        phone.change_password("nope", "new"),
        Err(Error::WrongPassword { remaining: 9 })
    ));
    phone.change_password(PASSWORD, "new password").unwrap();
    let mut old = w.client("old");
    assert!(matches!(
        old.restore_with_password(PASSWORD, &w.target("old")),
        Err(Error::WrongPassword { .. })
    ));
    let mut fresh = w.client("fresh");
    fresh.restore_with_password("new password", &w.target("fresh")).unwrap();
    assert_eq!(restored(&w, "fresh"), b"chats");
}

#[test]
fn switch_modes_both_ways() {
    let w = World::new(10);
    let mut phone = w.client("phone");
    let shown = phone.enable_with_key().unwrap();
    phone.create_backup(Source::Bytes(b"chats"), "db").unwrap();
    phone.switch_to_password(PASSWORD).unwrap();
    assert!(matches!(phone.status().mode, Mode::Password { .. }));
    let mut a = w.client("a");
    a.restore_with_password(PASSWORD, &w.target("a")).unwrap();
    assert_eq!(restored(&w, "a"), b"chats");

    let again = phone.switch_to_key(PASSWORD).unwrap();
    assert_eq!(*again, *shown, "switching back shows the same key");
    assert!(matches!(phone.status().mode, Mode::Key { .. }));
    assert!(w.fleet.transport.with_vault(|v| {
        // Deleted: a tombstone at most (spec 4.10.2), with no registration and no sealed K.
        v.record(ACCOUNT.as_bytes())
            .is_none_or(|r| r.registration.is_empty() && r.sealed_key.is_empty())
    }));
    let mut b = w.client("b");
    b.restore_with_key(&again, &w.target("b")).unwrap();
    assert_eq!(restored(&w, "b"), b"chats");
}

fn rotate_and_check(password_mode: bool) {
    let w = World::new(10);
    let mut phone = w.client("phone");
    let old_digits = if password_mode {
        phone.enable_with_password(PASSWORD).unwrap();
        None
    } else {
        Some(phone.enable_with_key().unwrap())
    };
    phone.create_backup(Source::Bytes(b"first"), "db").unwrap();
    phone.create_backup(Source::Bytes(b"second"), "db").unwrap();
    let before: Vec<String> = phone.list_backups().unwrap();
    let report = phone.rotate_key(password_mode.then_some(PASSWORD)).unwrap();
    assert_eq!(report.reencrypted, 2);
    assert!(report.damaged.is_empty());
    let after = phone.list_backups().unwrap();
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|name| !before.contains(name)), "old objects are deleted");
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b[..28], a[..28], "copies keep their time, so their order");
    }
    let new_key = digits::parse(&report.digits).unwrap();
    let objects = w.objects();
    let plain: Vec<Vec<u8>> = objects
        .iter()
        .map(|(_, f)| open_with_any(std::slice::from_ref(&new_key), f).unwrap())
        .collect();
    assert_eq!(plain, vec![b"first".to_vec(), b"second".to_vec()]);
    if let Some(old) = old_digits {
        let old_key = digits::parse(&old).unwrap();
        assert!(
            objects.iter().all(|(_, f)| open_with_any(std::slice::from_ref(&old_key), f).is_none())
        );
        let mut stale = w.client("stale");
        assert!(matches!(stale.restore_with_key(&old, &w.target("stale")), Err(Error::WrongKey)));
        assert_eq!(stale.status().mode, Mode::Off);
    } else {
        let mut fresh = w.client("fresh");
        fresh.restore_with_password(PASSWORD, &w.target("fresh")).unwrap();
        assert_eq!(restored(&w, "fresh"), b"second");
    }
    let mut fresh = w.client("by-digits");
    fresh.restore_with_key(&report.digits, &w.target("by-digits")).unwrap();
    assert_eq!(restored(&w, "by-digits"), b"second");
    assert_eq!(keystore_keys(&w.device("phone")), vec![new_key], "the old key is forgotten");
}

#[test]
fn rotate_key_in_key_mode() {
    rotate_and_check(false);
}

#[test]
fn rotate_key_in_password_mode() {
    rotate_and_check(true);
}

#[test]
fn disable_deletes_backups_vault_record_and_key() {
    let w = World::new(10);
    let mut phone = w.client("phone");
    phone.enable_with_password(PASSWORD).unwrap();
    phone.create_backup(Source::Bytes(b"chats"), "db").unwrap();
    assert!(matches!(phone.disable(None), Err(Error::IllegalState { .. })));
    let report = phone.disable(Some(PASSWORD)).unwrap();
    assert_eq!(report.deleted_backups, 1);
    assert!(report.vault_record_deleted);
    assert_eq!(phone.status().mode, Mode::Off);
    assert!(w.objects().is_empty());
    assert!(keystore_keys(&w.device("phone")).is_empty());
    assert!(w.fleet.transport.with_vault(|v| {
        // Deleted: a tombstone at most (spec 4.10.2), with no registration and no sealed K.
        v.record(ACCOUNT.as_bytes())
            .is_none_or(|r| r.registration.is_empty() && r.sealed_key.is_empty())
    }));

    // Key mode: nothing in the vault.
    let shown = phone.enable_with_key().unwrap();
    phone.create_backup(Source::Bytes(b"chats"), "db").unwrap();
    let report = phone.disable(None).unwrap();
    assert_eq!((report.deleted_backups, report.vault_record_deleted), (1, false));
    let mut fresh = w.client("fresh");
    assert!(matches!(
        fresh.restore_with_key(&shown, &w.target("fresh")),
        Err(Error::NoBackupFound { .. })
    ));
    assert_eq!(fresh.status().mode, Mode::Off);
}

#[test]
fn illegal_transitions_are_typed_errors() {
    let w = World::new(10);
    let mut phone = w.client("phone");
    let illegal = |r: Result<(), Error>| matches!(r, Err(Error::IllegalState { .. }));
    assert!(illegal(phone.create_backup(Source::Bytes(b"x"), "db").map(drop)));
    assert!(illegal(phone.rotate_key(None).map(drop)));
    assert!(illegal(phone.change_password("a", "b")));
    assert!(illegal(phone.switch_to_password("a")));
    assert!(illegal(phone.switch_to_key("a").map(drop)));
    assert!(illegal(phone.disable(None).map(drop)));
    assert!(illegal(phone.resume_restore().map(drop)));
    phone.enable_with_key().unwrap();
    assert!(illegal(phone.enable_with_key().map(drop)));
    assert!(illegal(phone.enable_with_password("a")));
    // A restore in place is allowed (issue 11); with nothing to restore, nothing changes.
    let on = phone.status();
    let err = phone.restore_with_key(&"0".repeat(64), &w.target("x")).unwrap_err();
    assert!(matches!(err, Error::NoBackupFound { .. }), "{err}");
    assert_eq!(phone.status(), on);
    assert!(illegal(phone.change_password("a", "b")));
    assert!(illegal(phone.switch_to_key("a").map(drop)));
    let e = phone.enable_with_key().unwrap_err();
    assert_eq!(e.code(), "illegal-state");
    assert!(e.to_string().contains("in key mode"), "{e}");

    // Without a vault, password mode is refused as such.
    let dir = w.device("keyonly");
    let setup = e2ee_backup_client::Setup {
        account: ACCOUNT.to_owned(),
        store: w.store().to_string_lossy().into_owned(),
        vault: None,
    };
    let mut keyonly =
        e2ee_backup_client::Client::create(&dir, setup, w.options(Arc::new(NoFaults))).unwrap();
    assert!(matches!(keyonly.enable_with_password("a"), Err(Error::NoVault)));
    assert!(matches!(
        e2ee_backup_client::Client::create(
            &dir,
            e2ee_backup_client::Setup {
                account: ACCOUNT.to_owned(),
                store: "x".into(),
                vault: None
            },
            w.options(Arc::new(NoFaults)),
        ),
        Err(Error::AlreadyInitialised { .. })
    ));
}

#[test]
fn bad_digits_wrong_key_and_corrupt_backups() {
    let w = World::new(10);
    let mut phone = w.client("phone");
    phone.enable_with_key().unwrap();
    let info = phone.create_backup(Source::Bytes(b"chats"), "db").unwrap();
    let mut fresh = w.client("fresh");
    assert!(matches!(
        fresh.restore_with_key("0000 zz", &w.target("fresh")),
        Err(Error::InvalidKeyDigits(_))
    ));
    let other = digits::to_display(&e2ee_backup_kdf::BackupKey::generate());
    assert!(matches!(fresh.restore_with_key(&other, &w.target("fresh")), Err(Error::WrongKey)));
    assert_eq!(fresh.status().mode, Mode::Off);

    // Flip a payload byte of the stored object.
    let path = w.store().join(&info.object);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let shown = {
        let mut again = w.client("phone");
        again.rotate_key(None).unwrap().digits
    };
    // The damaged backup was left as it was (and is reported); nothing else to restore.
    let mut third = w.client("third");
    match third.restore_with_key(&shown, &w.target("third")) {
        Err(Error::NoBackupFound { .. } | Error::WrongKey | Error::BackupCorrupt { .. }) => {}
        other => panic!("expected no usable backup, got {other:?}"),
    }
    assert!(!w.target("third").exists());
}

#[test]
fn corrupt_backup_is_reported_as_such() {
    let w = World::new(10);
    let mut phone = w.client("phone");
    let shown = phone.enable_with_key().unwrap();
    let info = phone.create_backup(Source::Bytes(&vec![7u8; 100_000]), "db").unwrap();
    let path = w.store().join(&info.object);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.len() - 40;
    bytes[at] ^= 0x80;
    std::fs::write(&path, bytes).unwrap();
    let mut fresh = w.client("fresh");
    let err = fresh.restore_with_key(&shown, &w.target("fresh")).unwrap_err();
    assert!(
        matches!(err, Error::BackupCorrupt { ref object, .. } if *object == info.object),
        "{err}"
    );
    assert!(!w.target("fresh").exists(), "no partial plaintext is left behind");
    assert_eq!(fresh.status().mode, Mode::Off);
}

#[test]
fn vault_unreachable_is_retryable_and_resumes() {
    let w = World::new(10);
    let mut phone = w.client("phone");
    w.fleet.transport.set_down(true);
    let err = phone.enable_with_password(PASSWORD).unwrap_err();
    assert!(matches!(err, Error::VaultUnreachable { .. }) && err.is_retryable(), "{err}");
    assert_eq!(phone.status().pending, Some("password registration"));
    assert!(matches!(phone.enable_with_key(), Err(Error::PendingOperation { .. })));
    w.fleet.transport.set_down(false);
    phone.enable_with_password(PASSWORD).unwrap();
    assert!(matches!(phone.status().mode, Mode::Password { .. }));
    assert_eq!(phone.status().pending, None);
}

#[test]
fn abort_a_stuck_registration() {
    let w = World::new(10);
    let mut phone = w.client("phone");
    w.fleet.transport.set_down(true);
    assert!(phone.enable_with_password(PASSWORD).is_err());
    phone.abort_pending(None).unwrap();
    assert_eq!(phone.status().mode, Mode::Off);
    assert!(keystore_keys(&w.device("phone")).is_empty());
    phone.enable_with_key().unwrap();
}

#[test]
fn fleet_bundle_is_verified_against_the_pin() {
    use e2ee_backup_vault::{FleetAuthority, FleetError};
    let w = World::new(10);
    let mut phone = w.client("phone");
    // Signed by someone else.
    let rogue = FleetAuthority::generate(&mut rand_core::OsRng);
    w.fleet.transport.serve_bundle(rogue.sign(&w.fleet.bundle).unwrap());
    assert!(matches!(
        phone.enable_with_password(PASSWORD),
        Err(Error::FleetBundle(FleetError::BadAuthoritySignature))
    ));
    // Expired.
    let mut expired = w.fleet.bundle.clone();
    expired.not_after = NOW - 1;
    w.fleet.transport.serve_bundle(w.fleet.authority.sign(&expired).unwrap());
    let mut phone = w.client("phone");
    assert!(matches!(
        phone.enable_with_password(PASSWORD),
        Err(Error::FleetBundle(FleetError::Expired { .. }))
    ));
    // A newer epoch is accepted and remembered; going back is a rollback.
    let mut newer = w.fleet.bundle.clone();
    newer.epoch = 5;
    w.fleet.transport.serve_bundle(w.fleet.authority.sign(&newer).unwrap());
    let mut phone = w.client("phone");
    phone.enable_with_password(PASSWORD).unwrap();
    assert_eq!(phone.status().last_seen_epoch, Some(5));
    w.fleet.transport.serve_bundle(w.fleet.authority.sign(&w.fleet.bundle).unwrap());
    let mut phone = w.client("phone");
    assert!(matches!(
        phone.change_password(PASSWORD, "x"),
        Err(Error::FleetBundle(FleetError::Rollback { epoch: 1, last_seen: 5 }))
    ));
}

#[test]
fn keys_live_only_in_the_private_keystore() {
    let w = World::new(10);
    let mut phone = w.client("phone");
    let shown = phone.enable_with_key().unwrap();
    let compact: String = shown.split(' ').collect();
    let state = std::fs::read_to_string(w.device("phone").join("state.json")).unwrap();
    assert!(!state.contains(&compact), "state.json holds no key");
    let keystore = std::fs::read_to_string(w.device("phone").join("keystore")).unwrap();
    assert!(keystore.contains(&compact));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            std::fs::metadata(w.device("phone").join("keystore")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(!format!("{phone:?}").contains(&compact));
    assert!(!format!("{:?}", phone.status()).contains(&compact));
}

/// Issue 10, finding 7c: the restore wrote through the predictable `.NAME.restore.tmp` with
/// create-or-truncate, so a local user who planted a symlink there received the plaintext.
/// (Temporary files are now `.e2ee-backup-RANDOM.partial`: a symlink planted under that pattern
/// is neither written through nor removed by the clean-up of stale temporary files.)
#[cfg(unix)]
#[test]
fn restore_never_writes_through_a_planted_temp_name() {
    use std::os::unix::fs::{PermissionsExt as _, symlink};
    let w = World::new(10);
    let mut phone = w.client("phone");
    let shown = phone.enable_with_key().unwrap();
    phone.create_backup(Source::Bytes(b"secret chats"), "msgstore.db").unwrap();

    let target = w.target("fresh");
    let dir = target.parent().unwrap().to_owned();
    std::fs::create_dir_all(&dir).unwrap();
    let stolen = w.root.path().join("stolen");
    std::fs::write(&stolen, b"").unwrap();
    let planted = dir.join(".e2ee-backup-planted.partial");
    symlink(&stolen, &planted).unwrap();
    let planted_name = planted.file_name().and_then(|n| n.to_str());
    let old_name = dir.join(format!(".{}.restore.tmp", target.file_name().unwrap().display()));
    symlink(&stolen, &old_name).unwrap();

    let mut fresh = w.client("fresh");
    fresh.restore_with_key(&shown, &target).unwrap();
    assert_eq!(restored(&w, "fresh"), b"secret chats");
    assert_eq!(std::fs::read(&stolen).unwrap(), b"", "the plaintext went through the symlink");
    assert!(std::fs::symlink_metadata(&planted).unwrap().file_type().is_symlink());
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the restored file is readable by others");
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| {
            e2ee_backup_client::scratch::is_temp_name(name) && Some(name.as_str()) != planted_name
        })
        .collect();
    left.sort();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
}

#[test]
fn a_missing_store_is_reported_by_restore_and_made_only_by_enable() {
    let w = World::new(10);
    let mut phone = w.client("phone");
    assert!(!w.store().exists(), "opening a client does not make its store");
    let digits = "0".repeat(64);
    let err = phone.restore_with_key(&digits, &w.target("phone")).unwrap_err();
    assert!(matches!(&err, Error::StoreMissing { path } if *path == w.store()), "{err}");
    assert_eq!(err.code(), "store-missing");
    assert!(err.to_string().contains(&w.store().display().to_string()), "{err}");
    assert!(!w.store().exists(), "a restore does not make the store");
    assert_eq!(phone.status().mode, Mode::Off);
    phone.enable_with_key().unwrap();
    assert!(w.store().is_dir(), "turning backups on makes the store");
    let mut fresh = w.client("fresh");
    let err = fresh.restore_with_key(&digits, &w.target("fresh")).unwrap_err();
    assert!(matches!(&err, Error::NoBackupFound { location } if location.contains("store")));
}

#[test]
fn set_store_and_set_vault_check_before_they_save() {
    let w = World::new(10);
    let mut phone = w.client("phone");
    phone.enable_with_key().unwrap();
    phone.create_backup(Source::Bytes(b"chats"), "db").unwrap();
    let moved = w.root.path().join("moved");
    let err = phone.set_store(&moved.to_string_lossy()).unwrap_err();
    assert!(matches!(err, Error::StoreMissing { .. }), "{err}");
    assert_eq!(phone.status().store, w.store().to_string_lossy());
    std::fs::rename(w.store(), &moved).unwrap();
    assert_eq!(phone.set_store(&moved.to_string_lossy()).unwrap(), 1);
    let reopened = w.client("phone");
    assert_eq!(reopened.status().store, moved.to_string_lossy());
    assert_eq!(reopened.list_backups().unwrap().len(), 1);

    // A pin of another fleet authority does not verify the vault's bundle: nothing changes.
    let mut rogue = w.fleet.pin.clone();
    let other = e2ee_backup_vault::FleetAuthority::generate(&mut rand_core::OsRng);
    rogue.authority = hex::encode(other.verifying_key().as_bytes());
    let before = phone.status();
    let err = phone.set_vault("http://vault.example", rogue).unwrap_err();
    assert!(matches!(err, Error::FleetBundle(_)), "{err}");
    assert_eq!(phone.status(), before);
    assert_eq!(phone.set_vault("http://vault.example", w.fleet.pin.clone()).unwrap(), 1);
    assert_eq!(phone.status().vault_url.as_deref(), Some("http://vault.example"));

    // In password mode the fleet cannot change, only the URL.
    let mut other_phone = w.client("other");
    other_phone.enable_with_password(PASSWORD).unwrap();
    let mut rogue = w.fleet.pin.clone();
    rogue.fleet_id = "another.fleet".to_owned();
    let err = other_phone.set_vault("http://vault.example", rogue).unwrap_err();
    assert!(matches!(err, Error::IllegalState { .. }), "{err}");
    other_phone.set_vault("http://moved.example", w.fleet.pin.clone()).unwrap();
}

/// An account identifier that is not 1 to 64 bytes, and a vault URL that is not http:// or
/// https://, are invalid input with codes of their own (not an illegal state, nor a rejection
/// by a vault that was never asked); nothing is saved.
#[test]
fn bad_account_lengths_and_vault_urls_are_invalid_input() {
    let w = World::new(10);
    for account in [String::new(), "1".repeat(65)] {
        let dir = w.device("new");
        let setup = e2ee_backup_client::Setup {
            account: account.clone(),
            store: w.store().to_string_lossy().into_owned(),
            vault: Some(("http://vault.invalid".to_owned(), w.fleet.pin.clone())),
        };
        let err = e2ee_backup_client::Client::create(&dir, setup, w.options(Arc::new(NoFaults)))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidAccount { len } if len == account.len()), "{err}");
        assert_eq!(err.code(), "invalid-account");
        assert!(!dir.join("state.json").exists(), "nothing was saved");
    }

    let mut phone = w.client("phone");
    let before = phone.status();
    for account in [String::new(), "1".repeat(65)] {
        let err = phone.set_account(&account).unwrap_err();
        assert!(matches!(err, Error::InvalidAccount { len } if len == account.len()), "{err}");
        assert_eq!(err.code(), "invalid-account");
        assert_eq!(phone.status(), before);
    }
    phone.set_account(&"1".repeat(64)).unwrap();
    assert_eq!(phone.status().account, "1".repeat(64));

    let before = phone.status();
    for url in ["vault.example", "ftp://vault.example"] {
        let err = phone.set_vault(url, w.fleet.pin.clone()).unwrap_err();
        assert!(matches!(&err, Error::InvalidVaultUrl { url: given, .. } if given == url), "{err}");
        assert_eq!(err.code(), "invalid-vault-url");
        assert_eq!(phone.status(), before);
    }
}

/// Issue 11: a device whose key another device rotated refuses to back up under the old key,
/// and takes the new key by a restore in place. That restore, stopped at every step and
/// reopened, keeps the old key until it ends (a crash never leaves the device without a key
/// its state names); run again, it finishes, and the device's next backup is the one a fresh
/// device restores with the new digits.
#[test]
fn an_in_place_restore_after_a_rotation_elsewhere_survives_crashes() {
    use e2ee_backup_client::faults::FailAt;
    for step in 0..64 {
        let w = World::new(10);
        let mut a = w.client("a");
        let shown = a.enable_with_key().unwrap();
        a.create_backup(Source::Bytes(b"chats"), "db").unwrap();
        let mut b = w.client("b");
        b.restore_with_key(&shown, &w.target("b")).unwrap();
        let Mode::Key { key_id: old_id } = b.status().mode else { panic!("not in key mode") };
        let new = a.rotate_key(None).unwrap().digits;
        let before = w.objects();
        let err = b.create_backup(Source::Bytes(b"b's chats"), "db").unwrap_err();
        assert_eq!(err.code(), "key-rotated-elsewhere", "{err}");
        assert_eq!(w.objects(), before, "nothing was stored");
        drop(b);

        let faults = Arc::new(FailAt::new(step));
        let mut b = w.client_with("b", faults.clone());
        let result = b.restore_with_key(&new, &w.target("b2"));
        let fired = faults.fired();
        if !fired {
            result.unwrap();
        }
        drop(b);
        let mut b = w.client("b");
        // Reopening checked that the keystore holds every key the state names.
        match b.status().mode {
            Mode::Restoring { .. } => {
                assert_eq!(keystore_keys(&w.device("b")).len(), 2, "step {step}: the old key kept")
            }
            Mode::Key { key_id } if key_id == old_id => {
                assert!(fired, "step {step}: the restore ran through without taking the key")
            }
            Mode::Key { .. } => {}
            other => panic!("step {step}: {other:?}"),
        }
        if fired {
            b.restore_with_key(&new, &w.target("b2")).unwrap();
        }
        assert_eq!(std::fs::read(w.target("b2")).unwrap(), b"chats", "step {step}");
        let info = b.create_backup(Source::Bytes(b"b's chats"), "db").unwrap();
        let mut fresh = w.client("fresh");
        let report = fresh.restore_with_key(&new, &w.target("fresh")).unwrap();
        assert_eq!(report.object, info.object, "step {step}");
        assert_eq!(restored(&w, "fresh"), b"b's chats");
        if !fired {
            assert!(step > 0, "the restore has steps");
            return;
        }
    }
    panic!("the restore never ran through");
}

/// `create_backup` backs up files only (a directory is a snapshot, spec chapter 8): given a
/// directory it stores nothing and names it.
#[test]
fn a_directory_given_to_create_backup_is_refused_and_named() {
    let w = World::new(10);
    let mut phone = w.client("phone");
    phone.enable_with_key().unwrap();
    let dir = w.target("folder");
    std::fs::create_dir(&dir).unwrap();
    let err = phone.create_backup(Source::Path(&dir), "db").unwrap_err();
    assert!(matches!(&err, Error::Io { path, .. } if *path == dir), "{err:?}");
    assert!(err.to_string().contains(&dir.display().to_string()), "{err}");
    assert!(w.objects().is_empty());
}

/// Backups, restores and rotations tell `on_progress` how far they have come, in order, ending
/// at the whole length; a stream of unknown length (standard input) backs up like a file.
#[test]
fn long_copies_report_progress_and_a_stream_backs_up_like_a_file() {
    use std::sync::Mutex;
    let w = World::new(10);
    let seen: Arc<Mutex<Vec<e2ee_backup_client::Progress>>> = Arc::default();
    let sink = seen.clone();
    let options = || e2ee_backup_client::Options {
        on_progress: Some(Arc::new({
            let sink = sink.clone();
            move |p| sink.lock().unwrap().push(p)
        })),
        ..w.options(Arc::new(NoFaults))
    };
    let shown = w.client("phone").enable_with_key().unwrap();
    let mut phone = e2ee_backup_client::Client::open(&w.device("phone"), options()).unwrap();

    let source = w.root.path().join("msgstore.db");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&source, &data).unwrap();
    phone.create_backup(Source::Path(&source), "msgstore.db").unwrap();
    let backup: Vec<_> = std::mem::take(&mut *seen.lock().unwrap());
    assert!(backup.len() >= 2, "{backup:?}");
    assert!(backup.iter().all(|p| p.operation == "backup" && p.total == Some(300_000)));
    assert!(backup.windows(2).all(|w| w[0].done < w[1].done), "{backup:?}");
    assert_eq!(backup.last().unwrap().done, 300_000);

    // A stream: its length is unknown ahead, and what it held is what restores.
    let mut stream = std::io::Cursor::new(b"chats from a pipe".to_vec());
    phone.create_backup(Source::Reader(&mut stream), "stdin").unwrap();
    let piped: Vec<_> = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(piped.last().map(|p| (p.done, p.total)), Some((17, None)));

    drop(w.client("fresh")); // sets the new device up
    let mut fresh = e2ee_backup_client::Client::open(&w.device("fresh"), options()).unwrap();
    let report = fresh.restore_with_key(&shown, &w.target("fresh")).unwrap();
    assert_eq!(report.name.as_deref(), Some("stdin"));
    assert_eq!(restored(&w, "fresh"), b"chats from a pipe");
    let restore: Vec<_> = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(restore.last().map(|p| (p.operation, p.done, p.total)), Some(("restore", 17, None)));

    // A rotation re-encrypts each backup as a copy of its own: a count for each, from the start.
    fresh.rotate_key(None).unwrap();
    let rotate: Vec<_> = std::mem::take(&mut *seen.lock().unwrap());
    assert!(rotate.iter().all(|p| p.operation == "rotate"), "{rotate:?}");
    let ends: Vec<u64> =
        rotate.windows(2).filter(|w| w[1].done < w[0].done).map(|w| w[0].done).collect();
    let mut copies = ends;
    copies.push(rotate.last().expect("progress was told").done);
    copies.sort();
    assert_eq!(copies, [17, 300_000], "one count per backup, each to its plaintext length");
}
