//! Every vault operation end to end, client role against HSM role, through the sealed channel
//! and the in-memory driver.

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_vault::{
    AccountId, AccountState, ClientError, Endpoint, FleetId, Hsm, HsmConfig, HsmSecrets,
    KsfProfile, LoggedIn, Login, MemoryVault, RecordChange, RefusalReason, Registration,
    drive::{self, DriveError},
};
use rand_core::OsRng;

const FLEET: &[u8] = b"fleet.test";
const NOW: u64 = 1_800_000_000;

fn vault(budget: u8) -> (MemoryVault, Endpoint) {
    let secrets = HsmSecrets::generate(&mut OsRng, FleetId::from_static(FLEET));
    let (id, public) = secrets.public_keys()[0];
    let config = HsmConfig { budget, ksf_profile: KsfProfile::Fast, ..HsmConfig::default() };
    let hsm = Hsm::new(secrets, config).unwrap();
    (
        MemoryVault::new(hsm, NOW),
        Endpoint::new(FleetId::from_static(FLEET), id, public).accepting_fast_ksf(),
    )
}

fn register(
    v: &mut MemoryVault,
    ep: &Endpoint,
    account: &[u8],
    password: &[u8],
    key: &BackupKey,
) -> u8 {
    drive::register(v, &mut OsRng, ep, AccountId::new(account).unwrap(), password, key).unwrap()
}

fn login(
    v: &mut MemoryVault,
    ep: &Endpoint,
    account: &[u8],
    password: &[u8],
) -> Result<LoggedIn, ClientError> {
    drive::login(v, &mut OsRng, ep, AccountId::new(account).unwrap(), password).map_err(|e| match e
    {
        DriveError::Vault(e) => e,
        DriveError::Transport(e) => panic!("the in-memory vault refused to open a request: {e}"),
    })
}

#[test]
fn register_then_retrieve_the_key() {
    let (mut v, ep) = vault(10);
    let key = BackupKey::generate();
    assert_eq!(register(&mut v, &ep, b"alice", b"correct horse", &key), 10);
    let record = v.record(b"alice").unwrap();
    assert_eq!(record.state, AccountState::Registered);
    assert_ne!(
        record.sealed_key.as_slice(),
        key.expose_secret().as_slice(),
        "only the sealed K is stored"
    );
    let session = login(&mut v, &ep, b"alice", b"correct horse").unwrap();
    assert_eq!(session.key(), &key);
    assert_eq!(session.remaining(), 10);
}

#[test]
fn wrong_passwords_count_down_then_lock_for_good() {
    let (mut v, ep) = vault(3);
    let key = BackupKey::generate();
    register(&mut v, &ep, b"bob", b"right", &key);
    for expected in [2, 1, 0] {
        match login(&mut v, &ep, b"bob", b"wrong") {
            Err(ClientError::WrongPassword { remaining }) => assert_eq!(remaining, expected),
            other => panic!("expected a wrong password, got {other:?}"),
        }
    }
    // The budget is spent, but the last attempts are still in flight (a KE3 could come): the
    // next KE1 is refused without locking.
    assert!(matches!(login(&mut v, &ep, b"bob", b"right"), Err(ClientError::Exhausted)));
    assert_eq!(v.record(b"bob").unwrap().state, AccountState::Registered);
    // Once they expire, the next KE1 locks the account and erases the sealed K.
    v.now += 301;
    assert!(matches!(login(&mut v, &ep, b"bob", b"right"), Err(ClientError::Locked)));
    let record = v.record(b"bob").unwrap();
    assert_eq!(record.state, AccountState::Locked);
    assert!(record.sealed_key.is_empty() && record.registration.is_empty());
    assert!(matches!(login(&mut v, &ep, b"bob", b"right"), Err(ClientError::Locked)));
    // Locked for good: not even a new registration is accepted.
    let (state, request) =
        Registration::start(&mut OsRng, &ep, AccountId::from_static(b"bob"), b"new", None).unwrap();
    let answer = state.receive(&mut OsRng, &v.call(&mut OsRng, &request).unwrap(), &key);
    assert!(matches!(answer, Err(ClientError::Locked)));
}

#[test]
fn a_valid_login_restores_the_budget() {
    let (mut v, ep) = vault(3);
    register(&mut v, &ep, b"carol", b"pw", &BackupKey::generate());
    for _ in 0..2 {
        assert!(login(&mut v, &ep, b"carol", b"nope").is_err());
    }
    assert_eq!(v.record(b"carol").unwrap().remaining, 1);
    assert_eq!(login(&mut v, &ep, b"carol", b"pw").unwrap().remaining(), 3);
    assert_eq!(v.record(b"carol").unwrap().remaining, 3);
}

#[test]
fn unknown_accounts_look_like_known_ones() {
    let (mut v, ep) = vault(2);
    register(&mut v, &ep, b"known", b"pw", &BackupKey::generate());
    let answer_sizes = |v: &mut MemoryVault, account: &[u8]| {
        let (_, request) =
            Login::start(&mut OsRng, &ep, AccountId::new(account).unwrap(), b"guess").unwrap();
        (request.len() - account.len(), v.call(&mut OsRng, &request).unwrap().len())
    };
    let known = answer_sizes(&mut v, b"known");
    let unknown = answer_sizes(&mut v, b"unkno");
    assert_eq!(known, unknown, "KE2 for an unknown account has the size of a real one");
    // Same counting, same lockout.
    assert!(matches!(
        login(&mut v, &ep, b"ghost", b"x"),
        Err(ClientError::WrongPassword { remaining: 1 })
    ));
    assert!(matches!(
        login(&mut v, &ep, b"ghost", b"x"),
        Err(ClientError::WrongPassword { remaining: 0 })
    ));
    assert!(matches!(login(&mut v, &ep, b"ghost", b"x"), Err(ClientError::Exhausted)));
    v.now += 301;
    assert!(matches!(login(&mut v, &ep, b"ghost", b"x"), Err(ClientError::Locked)));
}

#[test]
fn same_password_on_two_accounts_gives_unrelated_records() {
    let (mut v, ep) = vault(10);
    register(&mut v, &ep, b"twin-1", b"shared password", &BackupKey::generate());
    register(&mut v, &ep, b"twin-2", b"shared password", &BackupKey::generate());
    let (a, b) = (v.record(b"twin-1").unwrap(), v.record(b"twin-2").unwrap());
    // The client public key and masking key come from the OPRF output: per-account OPRF keys
    // make them unrelated.
    assert_ne!(a.registration[..32], b.registration[..32]);
    assert_ne!(a.registration[32..96], b.registration[32..96]);
    // The same blinded element, evaluated for the two accounts, gives different elements.
    use e2ee_backup_vault::VaultSuite;
    use opaque_ke::{ClientRegistration, ServerRegistration, ServerSetup};
    let setup = ServerSetup::<VaultSuite>::new(&mut OsRng);
    let request =
        ClientRegistration::<VaultSuite>::start(&mut OsRng, b"shared password").unwrap().message;
    let one =
        ServerRegistration::start(&setup, request.clone(), b"twin-1").unwrap().message.serialize();
    let two = ServerRegistration::start(&setup, request, b"twin-2").unwrap().message.serialize();
    assert_ne!(one[..32], two[..32]);
}

#[test]
fn change_password_keeps_or_rotates_the_key() {
    let (mut v, ep) = vault(5);
    let key = BackupKey::generate();
    register(&mut v, &ep, b"dave", b"old", &key);
    let first = v.record(b"dave").unwrap().record_version;
    assert!(login(&mut v, &ep, b"dave", b"bad").is_err());

    let session = login(&mut v, &ep, b"dave", b"old").unwrap();
    let (state, kept, request) = session.change_password(&mut OsRng, b"new", None).unwrap();
    assert_eq!(kept, key);
    let (state, request) =
        state.receive(&mut OsRng, &v.call(&mut OsRng, &request).unwrap(), &kept).unwrap();
    state.receive(&v.call(&mut OsRng, &request).unwrap()).unwrap();
    assert_eq!(v.record(b"dave").unwrap().record_version, first + 1);
    assert!(matches!(login(&mut v, &ep, b"dave", b"old"), Err(ClientError::WrongPassword { .. })));
    assert_eq!(login(&mut v, &ep, b"dave", b"new").unwrap().key(), &key);

    let rotated = BackupKey::generate();
    let session = login(&mut v, &ep, b"dave", b"new").unwrap();
    let (state, new_key, request) =
        session.change_password(&mut OsRng, b"newer", Some(&rotated)).unwrap();
    let (state, request) =
        state.receive(&mut OsRng, &v.call(&mut OsRng, &request).unwrap(), &new_key).unwrap();
    assert_eq!(state.receive(&v.call(&mut OsRng, &request).unwrap()).unwrap(), 5);
    assert_eq!(login(&mut v, &ep, b"dave", b"newer").unwrap().key(), &rotated);
}

#[test]
fn re_registration_without_login_is_refused() {
    let (mut v, ep) = vault(5);
    register(&mut v, &ep, b"erin", b"pw", &BackupKey::generate());
    for _ in 0..3 {
        assert!(login(&mut v, &ep, b"erin", b"guess").is_err());
    }
    let before = v.record(b"erin").unwrap().clone();
    // RegisterStart is answered as for any account (spec 4.10.2: it evaluates a fresh key and
    // tells nothing); the RegisterFinish without a token is refused, with no count.
    let (state, request) = Registration::start(
        &mut OsRng,
        &ep,
        AccountId::from_static(b"erin"),
        b"attacker's password",
        None,
    )
    .unwrap();
    let response = v.call(&mut OsRng, &request).unwrap();
    let (state, request) =
        state.receive(&mut OsRng, &response, &BackupKey::generate()).expect("a challenge");
    match state.receive(&v.call(&mut OsRng, &request).unwrap()) {
        Err(ClientError::Refused { reason: RefusalReason::NotAuthorised, remaining: 0 }) => {}
        other => panic!("expected not-authorised, got {other:?}"),
    }
    assert_eq!(v.record(b"erin"), Some(&before), "the registration and its spent budget stay");
}

#[test]
fn delete_needs_a_login_and_leaves_a_tombstone() {
    let (mut v, ep) = vault(5);
    register(&mut v, &ep, b"frank", b"pw", &BackupKey::generate());
    let first = v.record(b"frank").unwrap().record_version;
    let session = login(&mut v, &ep, b"frank", b"pw").unwrap();
    let (state, request) = session.delete(&mut OsRng).unwrap();
    state.receive(&v.call(&mut OsRng, &request).unwrap()).unwrap();
    let tombstone = v.record(b"frank").unwrap();
    assert_eq!(tombstone.state, AccountState::Phantom);
    assert_eq!(tombstone.record_version, first, "the tombstone keeps the deleted version");
    assert!(tombstone.registration.is_empty() && tombstone.sealed_key.is_empty());
    assert!(tombstone.oprf_ticket.is_empty(), "the deleted registration's OPRF seed is gone");
    assert!(matches!(
        login(&mut v, &ep, b"frank", b"pw"),
        Err(ClientError::WrongPassword { remaining: 4 })
    ));
    // A new registration needs no token and gets the next version.
    register(&mut v, &ep, b"frank", b"pw2", &BackupKey::generate());
    assert_eq!(v.record(b"frank").unwrap().record_version, first + 1);
}

#[test]
fn the_token_serves_once() {
    let (mut v, ep) = vault(5);
    register(&mut v, &ep, b"gina", b"pw", &BackupKey::generate());
    let session = login(&mut v, &ep, b"gina", b"pw").unwrap();
    let (state, request) = session.delete(&mut OsRng).unwrap();
    // A relay replays the delete request after the record was re-registered.
    let response = v.call(&mut OsRng, &request).unwrap();
    state.receive(&response).unwrap();
    register(&mut v, &ep, b"gina", b"pw2", &BackupKey::generate());
    assert!(v.call(&mut OsRng, &request).is_ok());
    assert!(v.record(b"gina").is_some(), "a replayed delete does nothing");
}

#[test]
fn a_replayed_ke3_is_refused_and_a_success_clears_other_sessions() {
    let (mut v, ep) = vault(5);
    register(&mut v, &ep, b"hank", b"pw", &BackupKey::generate());
    let (state, request) =
        Login::start(&mut OsRng, &ep, AccountId::from_static(b"hank"), b"pw").unwrap();
    let (state, ke3_request) =
        state.receive(&mut OsRng, &v.call(&mut OsRng, &request).unwrap()).unwrap();
    let first = v.call(&mut OsRng, &ke3_request).unwrap();
    state.receive(&first).unwrap();
    // The same envelope again: its attempt is no longer outstanding.
    let writes = v.writes;
    let replay = v.call(&mut OsRng, &ke3_request).unwrap();
    assert_eq!(v.writes, writes, "a replay changes nothing");
    assert_ne!(first, replay);

    // Two sessions at once: the first success clears the other outstanding attempt.
    let (a, req_a) = Login::start(&mut OsRng, &ep, AccountId::from_static(b"hank"), b"pw").unwrap();
    let (b, req_b) = Login::start(&mut OsRng, &ep, AccountId::from_static(b"hank"), b"pw").unwrap();
    let (a, ke3_a) = a.receive(&mut OsRng, &v.call(&mut OsRng, &req_a).unwrap()).unwrap();
    let (_b, _ke3_b) = b.receive(&mut OsRng, &v.call(&mut OsRng, &req_b).unwrap()).unwrap();
    assert_eq!(v.record(b"hank").unwrap().pending.len(), 2);
    let done = a.receive(&v.call(&mut OsRng, &ke3_a).unwrap()).unwrap();
    assert_eq!(done.remaining(), 5);
    assert!(v.record(b"hank").unwrap().pending.is_empty(), "a success clears the other sessions");
}

#[test]
fn a_retried_ke1_is_charged_once() {
    let (mut v, ep) = vault(5);
    register(&mut v, &ep, b"ivy", b"pw", &BackupKey::generate());
    let (_, request) =
        Login::start(&mut OsRng, &ep, AccountId::from_static(b"ivy"), b"pw").unwrap();
    v.call(&mut OsRng, &request).unwrap();
    v.call(&mut OsRng, &request).unwrap();
    assert_eq!(v.record(b"ivy").unwrap().remaining, 4);
}

#[test]
fn no_ke2_without_a_durable_charge() {
    let (v, ep) = vault(5);
    let hsm = v.hsm();
    let (_, request) =
        Login::start(&mut OsRng, &ep, AccountId::from_static(b"judy"), b"pw").unwrap();
    let (command, _pending) = hsm.open(&request).unwrap().into_command(NOW);
    let decided = hsm.apply(&command.unwrap(), None);
    let mut asked_to_write = None;
    let failed = decided.persist(|change| {
        asked_to_write = Some(change.clone());
        Err("disk full")
    });
    assert_eq!(failed.err(), Some("disk full"), "no decision to seal when the write fails");
    let Some(RecordChange::Put(record)) = asked_to_write else {
        panic!("a KE1 must change the record before anything is sent")
    };
    assert_eq!(record.remaining, 4);
}

#[test]
fn requests_for_another_account_or_fleet_do_not_open() {
    let (v, ep) = vault(5);
    let (_, mut request) =
        Login::start(&mut OsRng, &ep, AccountId::from_static(b"kate"), b"pw").unwrap();
    // The account id sits in clear after version, key id and its length: change one letter.
    request[4] ^= 0x01;
    assert!(v.hsm().open(&request).is_err());
    let (other, _) = vault(5);
    let (_, request) =
        Login::start(&mut OsRng, &ep, AccountId::from_static(b"kate"), b"pw").unwrap();
    assert!(other.hsm().open(&request).is_err(), "another fleet's keys do not open it");
}

#[test]
fn expired_sessions_are_refused() {
    let (mut v, ep) = vault(5);
    register(&mut v, &ep, b"liam", b"pw", &BackupKey::generate());
    let (state, request) =
        Login::start(&mut OsRng, &ep, AccountId::from_static(b"liam"), b"pw").unwrap();
    let (state, request) =
        state.receive(&mut OsRng, &v.call(&mut OsRng, &request).unwrap()).unwrap();
    v.now += 3600;
    match state.receive(&v.call(&mut OsRng, &request).unwrap()) {
        Err(ClientError::Refused { reason: RefusalReason::SessionInvalid, remaining: 4 }) => {}
        other => panic!("expected an expired session, got {other:?}"),
    }
}

#[test]
fn the_client_refuses_a_weak_stretching_profile_unless_told() {
    let (mut v, _) = vault(5);
    let (id, public) = v.hsm().secrets().public_keys()[0];
    let strict = Endpoint::new(FleetId::from_static(FLEET), id, public);
    let (state, request) =
        Registration::start(&mut OsRng, &strict, AccountId::from_static(b"mia"), b"pw", None)
            .unwrap();
    let answer =
        state.receive(&mut OsRng, &v.call(&mut OsRng, &request).unwrap(), &BackupKey::generate());
    assert!(matches!(answer, Err(ClientError::WeakKsf(2))));
}

#[test]
fn a_login_in_flight_survives_the_last_guess() {
    // The owner's KE1 takes the second-to-last attempt; a guesser takes the last one and then
    // asks again. The owner's KE3 still succeeds and restores the budget.
    let (mut v, ep) = vault(2);
    let key = BackupKey::generate();
    register(&mut v, &ep, b"nina", b"pw", &key);
    let (owner, request) =
        Login::start(&mut OsRng, &ep, AccountId::from_static(b"nina"), b"pw").unwrap();
    let (owner, ke3) = owner.receive(&mut OsRng, &v.call(&mut OsRng, &request).unwrap()).unwrap();
    assert!(matches!(
        login(&mut v, &ep, b"nina", b"guess"),
        Err(ClientError::WrongPassword { remaining: 0 })
    ));
    assert!(matches!(login(&mut v, &ep, b"nina", b"guess"), Err(ClientError::Exhausted)));
    let session = owner.receive(&v.call(&mut OsRng, &ke3).unwrap()).unwrap();
    assert_eq!((session.key(), session.remaining()), (&key, 2));
}
