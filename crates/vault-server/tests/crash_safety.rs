//! SIGKILL the real server between KE2 and KE3, and in the middle of a storm of KE1s; restart on
//! the same data directory. A KE2 that reached a client is always backed by a durable charge.

mod common;

use e2ee_backup_vault::{AccountId, AccountState, ClientError, Login};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Served, endpoint, init_dir};
use e2ee_backup_kdf::BackupKey;
use e2ee_backup_vault_server::client::{self, JourneyError};
use e2ee_backup_vault_server::{RecordStore as _, RedbStore};
use rand_core::OsRng;

#[test]
fn a_kill_between_ke2_and_ke3_keeps_the_charge_and_the_registration() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), "crash.fleet", 5);
    let account = AccountId::from_static(b"crash-account");
    let key = BackupKey::generate();

    let server = Served::start(dir.path(), "serve-1.log");
    let mut http = server.http();
    let ep = endpoint(&mut http, dir.path());
    client::register(&mut http, &ep, account, b"pw", &key).unwrap();
    let (state, ke1) = Login::start(&mut OsRng, &ep, account, b"pw").unwrap();
    let ke2 = http.call(account.as_bytes(), &ke1).unwrap();
    let (awaiting_key, ke3) = state.receive(&mut OsRng, &ke2).unwrap();
    server.kill();

    let server = Served::start(dir.path(), "serve-2.log");
    let mut http = server.http();
    // The killed attempt is still spent: a wrong guess now leaves 5 - 2.
    match client::login(&mut http, &ep, account, b"wrong") {
        Err(JourneyError::Vault(ClientError::WrongPassword { remaining })) => {
            assert_eq!(remaining, 3)
        }
        other => panic!("expected a wrong password, got {other:?}"),
    }
    // The charge was durable with its pending attempt: the KE3 of before the crash completes.
    let done = awaiting_key.receive(&http.call(account.as_bytes(), &ke3).unwrap()).unwrap();
    assert_eq!(done.key(), &key);
    assert_eq!(done.remaining(), 5);
    // And a fresh login works.
    assert_eq!(client::login(&mut http, &ep, account, b"pw").unwrap().key(), &key);
    assert!(server.terminate());

    let store = RedbStore::open(dir.path()).expect("the store opens cleanly");
    let record = store.load(account.as_bytes()).unwrap().expect("the record is there");
    assert_eq!(record.state, AccountState::Registered);
    assert_eq!(record.remaining, 5);
    assert_eq!(record.charges, 3, "killed attempt, wrong guess, fresh login");
    assert!(record.pending.is_empty());
}

#[test]
fn a_kill_during_a_storm_of_ke1s_never_leaves_an_unpaid_ke2() {
    const ACCOUNTS: usize = 3;
    const THREADS: usize = 9;
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), "storm.fleet", 60);
    let server = Served::start(dir.path(), "serve-1.log");
    let ep = endpoint(&mut server.http(), dir.path());

    let received: Arc<Vec<AtomicUsize>> =
        Arc::new((0..ACCOUNTS).map(|_| AtomicUsize::new(0)).collect());
    let threads: Vec<_> = (0..THREADS)
        .map(|i| {
            let (mut http, ep, received) = (server.http(), ep.clone(), received.clone());
            std::thread::spawn(move || {
                let index = i % ACCOUNTS;
                let account = format!("storm-{index}").into_bytes();
                // Guess until the server dies or the account locks; count every KE2.
                loop {
                    let (state, ke1) =
                        Login::start(&mut OsRng, &ep, AccountId::new(&account).unwrap(), b"guess")
                            .unwrap();
                    let Ok(response) = http.call(&account, &ke1) else { return };
                    match state.receive(&mut OsRng, &response) {
                        Err(ClientError::WrongPassword { .. }) => {
                            received[index].fetch_add(1, Ordering::SeqCst);
                        }
                        Err(ClientError::Locked | ClientError::Exhausted) => return,
                        other => panic!("unexpected answer: {:?}", other.err()),
                    }
                }
            })
        })
        .collect();
    // Kill once some KE2s have gone out (a count, not a time: where the kill lands varies).
    while received.iter().map(|r| r.load(Ordering::SeqCst)).sum::<usize>() < 20 {
        std::thread::yield_now();
    }
    server.kill();
    for thread in threads {
        thread.join().unwrap();
    }

    let store = RedbStore::open(dir.path()).expect("the store opens cleanly after SIGKILL");
    for (index, count) in received.iter().enumerate() {
        let count = count.load(Ordering::SeqCst) as u64;
        let record = store.load(format!("storm-{index}").as_bytes()).unwrap();
        let charges = record.as_ref().map_or(0, |r| r.charges);
        assert!(charges >= count, "account {index}: {count} KE2s received, {charges} charged");
        if let Some(record) = record {
            assert_eq!(u64::from(record.budget - record.remaining), charges);
        }
    }
    drop(store);
    // The server starts again on the same directory and answers.
    let server = Served::start(dir.path(), "serve-2.log");
    server.http().health().unwrap();
}
