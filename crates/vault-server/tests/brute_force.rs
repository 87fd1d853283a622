//! 50 clients guess one account's password at once against an in-process server with budget 5:
//! exactly 5 get a KE2, the others are refused (`exhausted` while the 5 charged attempts are
//! live, `locked` after), and once those attempts end the account is locked for good.

use e2ee_backup_vault::{AccountId, AccountState, ClientError, Endpoint, Login};
use std::sync::{Arc, Barrier};

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_vault_server::client::{self, HttpVault, JourneyError};
use e2ee_backup_vault_server::files::unix_now;
use e2ee_backup_vault_server::{
    BackgroundServer, InitOptions, KsfName, RecordStore as _, RedbStore, ServerConfig,
};
use rand_core::OsRng;

const BUDGET: u8 = 5;
const CLIENTS: usize = 50;
const SESSION_LIFETIME: u64 = 2;

#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Ke2 { remaining: u8 },
    Refused,
}

#[test]
fn concurrent_guesses_get_exactly_the_budget_in_ke2s() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = InitOptions::new(dir.path(), "brute.fleet");
    options.budget = BUDGET;
    options.ksf = KsfName::Fast;
    let report = e2ee_backup_vault_server::init(&options).unwrap();
    let mut config = ServerConfig::from_data_dir(dir.path(), None).unwrap();
    config.listen = "127.0.0.1:0".parse().unwrap();
    // Short sessions, so that the charged attempts end within the test.
    config.policy.session_lifetime = SESSION_LIFETIME;
    let server = BackgroundServer::start(config).unwrap();

    let mut http = HttpVault::new(&server.url()).unwrap();
    let bundle = client::fetch_bundle(&mut http, &report.pin.0, unix_now(), None).unwrap();
    let ep = Endpoint::from_bundle(&bundle).unwrap().accepting_fast_ksf();
    let (victim, bystander) = (b"victim".as_slice(), b"bystander".as_slice());
    let key = BackupKey::generate();
    client::register(&mut http, &ep, AccountId::new(victim).unwrap(), b"the real password", &key)
        .unwrap();
    client::register(&mut http, &ep, AccountId::new(bystander).unwrap(), b"other password", &key)
        .unwrap();

    // Every client prepares its KE1 and connection first, then all send at once.
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (ep, barrier, url) = (ep.clone(), barrier.clone(), server.url());
            std::thread::spawn(move || {
                let mut http = HttpVault::new(&url).unwrap();
                http.health().unwrap();
                let guess = format!("guess {i}");
                let (state, ke1) = Login::start(
                    &mut OsRng,
                    &ep,
                    AccountId::from_static(b"victim"),
                    guess.as_bytes(),
                )
                .unwrap();
                barrier.wait();
                let response = http.call(b"victim", &ke1).unwrap();
                match state.receive(&mut OsRng, &response) {
                    Err(ClientError::WrongPassword { remaining }) => Answer::Ke2 { remaining },
                    Err(ClientError::Exhausted | ClientError::Locked) => Answer::Refused,
                    other => panic!("unexpected answer: {:?}", other.err()),
                }
            })
        })
        .collect();
    let answers: Vec<Answer> = threads.into_iter().map(|t| t.join().unwrap()).collect();

    let mut remaining: Vec<u8> = answers
        .iter()
        .filter_map(|a| match a {
            Answer::Ke2 { remaining } => Some(*remaining),
            Answer::Refused => None,
        })
        .collect();
    remaining.sort_unstable();
    assert_eq!(remaining, vec![0, 1, 2, 3, 4], "exactly the budget in KE2s, each charged once");
    assert_eq!(answers.iter().filter(|a| **a == Answer::Refused).count(), CLIENTS - 5);

    // While the charged attempts are live the real password gets no KE2 either.
    match client::login(&mut http, &ep, AccountId::new(victim).unwrap(), b"the real password") {
        Err(JourneyError::Vault(ClientError::Exhausted | ClientError::Locked)) => {}
        other => panic!("expected a refusal, got {:?}", other.err()),
    }
    // Once they end (their session lifetime passes without a KE3), the account locks for good
    // and the real password no longer releases K. (The wait makes the expiry certain; nothing
    // is measured.)
    std::thread::sleep(std::time::Duration::from_millis(SESSION_LIFETIME * 1000 + 1200));
    match client::login(&mut http, &ep, AccountId::new(victim).unwrap(), b"the real password") {
        Err(JourneyError::Vault(ClientError::Locked)) => {}
        other => panic!("expected a locked account, got {:?}", other.err()),
    }
    // Other accounts are untouched.
    let session =
        client::login(&mut http, &ep, AccountId::new(bystander).unwrap(), b"other password")
            .unwrap();
    assert_eq!(session.key(), &key);
    server.shutdown().unwrap();

    let store = RedbStore::open(dir.path()).unwrap();
    let record = store.load(victim).unwrap().unwrap();
    assert_eq!(record.state, AccountState::Locked);
    assert!(record.sealed_key.is_empty() && record.registration.is_empty());
    assert_eq!(record.charges, u64::from(BUDGET));
}
