//! End to end with the real binary: init, serve, pinned bundle, every vault journey over HTTP,
//! logs without account identifiers, graceful shutdown.

mod common;

use e2ee_backup_vault::{AccountId, ClientError, FleetAuthority, FleetError, PinnedFleet};
use std::os::unix::fs::PermissionsExt as _;
use std::process::Command;

use common::{BIN, Served, endpoint, init_dir};
use e2ee_backup_kdf::BackupKey;
use e2ee_backup_vault_server::client::{self, JourneyError};
use e2ee_backup_vault_server::files::{FleetPin, PIN_FILE, unix_now};
use rand_core::OsRng;

fn wrong_password(result: Result<impl std::fmt::Debug, JourneyError>) -> u8 {
    match result {
        Err(JourneyError::Vault(ClientError::WrongPassword { remaining })) => remaining,
        other => panic!("expected a wrong password, got {other:?}"),
    }
}

#[test]
fn init_writes_private_secrets_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), "journeys.fleet", 5);
    for (name, mode) in [("secrets.bin", 0o600), ("authority.key", 0o600), ("fleet.pin", 0o644)] {
        let meta = std::fs::metadata(dir.path().join(name)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{name}");
    }
    let pin = FleetPin::read(&dir.path().join(PIN_FILE)).unwrap();
    assert_eq!(pin.0.fleet_id, b"journeys.fleet");
    let secrets_before = std::fs::read(dir.path().join("secrets.bin")).unwrap();

    let again = Command::new(BIN)
        .args(["init", "--data-dir"])
        .arg(dir.path())
        .args(["--fleet-id", "other"])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert_eq!(std::fs::read(dir.path().join("secrets.bin")).unwrap(), secrets_before);

    let forced = Command::new(BIN)
        .args(["init", "--force", "--ksf", "fast", "--data-dir"])
        .arg(dir.path())
        .args(["--fleet-id", "other"])
        .output()
        .unwrap();
    assert!(forced.status.success());
    assert_ne!(std::fs::read(dir.path().join("secrets.bin")).unwrap(), secrets_before);
}

#[test]
fn bundle_signs_the_next_epoch_and_help_names_every_flag() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), "bundle.fleet", 5);
    let pin = FleetPin::read(&dir.path().join(PIN_FILE)).unwrap();
    let first = std::fs::read(dir.path().join("fleet-bundle.bin")).unwrap();
    assert_eq!(pin.0.verify(&first, unix_now(), None).unwrap().epoch, 1);
    let output = Command::new(BIN)
        .args(["bundle", "--days", "5", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let second = std::fs::read(dir.path().join("fleet-bundle.bin")).unwrap();
    let bundle = pin.0.verify(&second, unix_now(), Some(1)).unwrap();
    assert_eq!(bundle.epoch, 2);
    assert!(bundle.not_after <= unix_now() + 5 * 86_400);
    // A client that saw epoch 2 refuses the first bundle.
    assert!(matches!(pin.0.verify(&first, unix_now(), Some(2)), Err(FleetError::Rollback { .. })));

    for (command, flags) in [
        (
            "init",
            &[
                "--data-dir",
                "--fleet-id",
                "--budget",
                "--bundle-days",
                "--ksf",
                "--listen",
                "--force",
                "offline",
            ][..],
        ),
        ("serve", &["--data-dir", "--config", "--listen", "SIGTERM"][..]),
        ("bundle", &["--data-dir", "--authority-key", "--days"][..]),
        ("load", &["--url", "--pin", "--clients", "--seconds", "--in-process-seconds"][..]),
        ("populate", &["--data-dir", "--accounts", "scale password"][..]),
        ("bench-scale", &["--levels", "--clients", "--seconds", "--dir"][..]),
    ] {
        let help = Command::new(BIN).args([command, "--help"]).output().unwrap();
        let text = String::from_utf8_lossy(&help.stdout);
        for flag in flags {
            assert!(text.contains(flag), "`{command} --help` does not mention {flag}:\n{text}");
        }
    }
}

#[test]
fn every_journey_over_http_with_the_real_binary() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), "journeys.fleet", 5);
    let server = Served::start(dir.path(), "serve.log");
    let mut http = server.http();
    http.health().unwrap();

    // The bundle verifies under the pin, and under no other authority.
    let signed = http.fleet_bundle().unwrap();
    let pin = FleetPin::read(&dir.path().join(PIN_FILE)).unwrap();
    assert!(pin.0.verify(&signed, unix_now(), None).is_ok());
    let impostor = PinnedFleet {
        authority: FleetAuthority::generate(&mut OsRng).verifying_key(),
        ..pin.0.clone()
    };
    assert_eq!(
        impostor.verify(&signed, unix_now(), None).unwrap_err(),
        FleetError::BadAuthoritySignature
    );
    let ep = endpoint(&mut http, dir.path());

    let account = AccountId::from_static(b"+15550100");
    let key = BackupKey::generate();
    assert_eq!(client::register(&mut http, &ep, account, b"first password", &key).unwrap(), 5);

    // Retrieve.
    let session = client::login(&mut http, &ep, account, b"first password").unwrap();
    assert_eq!(session.key(), &key);
    assert_eq!(session.remaining(), 5);

    // Wrong passwords count down; a right one restores the budget.
    assert_eq!(wrong_password(client::login(&mut http, &ep, account, b"guess 1")), 4);
    assert_eq!(wrong_password(client::login(&mut http, &ep, account, b"guess 2")), 3);
    let session = client::login(&mut http, &ep, account, b"first password").unwrap();
    assert_eq!(session.remaining(), 5);

    // Change the password, keeping K.
    let kept = client::change_password(&mut http, session, account, b"second", None).unwrap();
    assert_eq!(kept, key);
    assert_eq!(wrong_password(client::login(&mut http, &ep, account, b"first password")), 4);
    let session = client::login(&mut http, &ep, account, b"second").unwrap();
    assert_eq!(session.key(), &key);

    // Delete: the record is gone, the account now looks like any unknown one.
    client::delete(&mut http, session, account).unwrap();
    assert_eq!(wrong_password(client::login(&mut http, &ep, account, b"second")), 4);

    // Logs name request kinds and a pseudonym, never the account (raw or hex) or its bytes.
    let log = server.log_text();
    assert!(log.contains("LoginStart") && log.contains("LoginFinish"), "{log}");
    assert!(log.contains("RegisterFinish") && log.contains("Delete"), "{log}");
    assert!(!log.contains("15550100"), "the account leaks into the log");
    assert!(!log.contains(&hex::encode(account)), "the account's hex leaks into the log");

    assert!(server.terminate(), "SIGTERM shuts the server down cleanly");
    let store = std::fs::metadata(dir.path().join("vault.redb")).unwrap();
    assert_eq!(store.permissions().mode() & 0o777, 0o600, "the record store is private");
}

#[test]
fn populated_accounts_are_real_registrations_that_log_in_over_http() {
    use sha2::{Digest as _, Sha256};
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), "scale.fleet", 3);
    let populate = |accounts: &str| {
        Command::new(BIN)
            .args(["populate", "--data-dir"])
            .arg(dir.path())
            .args(["--accounts", accounts])
            .output()
            .unwrap()
    };
    let first = populate("12");
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(String::from_utf8_lossy(&first.stdout).contains("registered 12 accounts"));
    let second = populate("20");
    let text = String::from_utf8_lossy(&second.stdout);
    assert!(text.contains("registered 8 accounts") && text.contains("12 were there already"));

    let server = Served::start(dir.path(), "serve.log");
    // The store is the server's now: a populate meanwhile is refused, and changes nothing.
    let refused = populate("25");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already open"));

    let mut http = server.http();
    let ep = endpoint(&mut http, dir.path());
    for i in [0u64, 7, 19] {
        let account = format!("scale-{i:07}");
        let session = client::login(
            &mut http,
            &ep,
            AccountId::new(account.as_bytes()).unwrap(),
            format!("scale password {i}").as_bytes(),
        )
        .unwrap();
        let key = Sha256::new()
            .chain_update(b"e2ee-backups scale key")
            .chain_update(i.to_be_bytes())
            .finalize();
        assert_eq!(session.key().expose_secret().as_slice(), key.as_slice());
        assert_eq!(session.remaining(), 3, "the data directory's budget");
    }
    // Another account's password is a wrong guess, and accounts past --accounts (or the refused
    // run's) are not there.
    assert_eq!(
        wrong_password(client::login(
            &mut http,
            &ep,
            AccountId::from_static(b"scale-0000007"),
            b"scale password 8"
        )),
        2
    );
    for absent in [20u64, 24] {
        let account = format!("scale-{absent:07}");
        let password = format!("scale password {absent}");
        let guess = client::login(
            &mut http,
            &ep,
            AccountId::new(account.as_bytes()).unwrap(),
            password.as_bytes(),
        );
        assert_eq!(wrong_password(guess), 2);
    }
}
