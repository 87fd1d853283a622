//! The real server binary driven by the real phone-side client (`e2ee-backup-client` with its
//! HTTP transport): every journey of the client, including restores on fresh client directories,
//! and a server killed (SIGKILL) and restarted in the middle.

mod common;

use std::path::Path;

use common::{Served, init_dir};
use e2ee_backup_client::{Client, Error, FleetPin, Mode, Options, Setup, Source};

const ACCOUNT: &str = "+15550001111";

fn options() -> Options {
    Options { accept_fast_ksf: true, ..Options::default() }
}

fn device(root: &Path, name: &str, url: &str, pin: &FleetPin) -> Client {
    let dir = root.join(name);
    let setup = Setup {
        account: ACCOUNT.to_owned(),
        store: root.join("store").to_string_lossy().into_owned(),
        vault: Some((url.to_owned(), pin.clone())),
    };
    Client::create(&dir, setup, options()).expect("a new client directory")
}

#[test]
fn every_client_journey_against_the_real_server() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("vault");
    init_dir(&data, "fleet.journeys", 4);
    let pin = FleetPin::parse(&std::fs::read_to_string(data.join("fleet.pin")).unwrap()).unwrap();
    let served = Served::start(&data, "serve.log");
    let url = format!("http://{}", served.addr);
    let chats = b"a chat database, small but real: 0123456789".repeat(5000);

    // Phone A turns password mode on and backs up.
    let mut a = device(root.path(), "phone-a", &url, &pin);
    a.enable_with_password("correct horse").unwrap();
    a.create_backup(Source::Bytes(&chats), "msgstore.db").unwrap();

    // Phone B, a new device: a wrong password is refused with the attempts left, the right one
    // restores the bytes.
    let mut b = device(root.path(), "phone-b", &url, &pin);
    let target = root.path().join("restored-b.db");
    match b.restore_with_password("wrong horse", &target) {
        Err(Error::WrongPassword { remaining }) => assert_eq!(remaining, 3),
        other => panic!("expected a wrong password, got {other:?}"),
    }
    assert!(!target.exists(), "nothing is written for a wrong password");
    b.restore_with_password("correct horse", &target).unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), chats);
    assert!(matches!(b.status().mode, Mode::Password { .. }));

    // The server dies (SIGKILL) and comes back on the same data directory and port: the
    // registration survived, the client goes on.
    let addr = served.addr;
    served.kill();
    let served = Served::start_at(&data, "serve-2.log", addr);
    // The client's pooled connection died with the old process: the first call may report the
    // vault unreachable, which is retryable; a user (or app) retries.
    match b.change_password("correct horse", "battery staple") {
        Err(e @ Error::VaultUnreachable { .. }) => {
            assert!(e.is_retryable());
            b.change_password("correct horse", "battery staple").unwrap();
        }
        other => other.unwrap(),
    }

    // Phone C restores with the new password only.
    let mut c = device(root.path(), "phone-c", &url, &pin);
    let target = root.path().join("restored-c.db");
    assert!(matches!(
        c.restore_with_password("correct horse", &target),
        Err(Error::WrongPassword { .. })
    ));
    c.restore_with_password("battery staple", &target).unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), chats);

    // Key rotation re-seals the new key; a fresh device restores the re-encrypted backup.
    c.rotate_key(Some("battery staple")).unwrap();
    let mut d = device(root.path(), "phone-d", &url, &pin);
    let target = root.path().join("restored-d.db");
    d.restore_with_password("battery staple", &target).unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), chats);

    // Backups off: the vault record is deleted; a new device finds nothing to log in to.
    d.disable(Some("battery staple")).unwrap();
    let mut e = device(root.path(), "phone-e", &url, &pin);
    assert!(e.restore_with_password("battery staple", &root.path().join("e.db")).is_err());
    assert!(served.terminate(), "the server shuts down cleanly");
}
