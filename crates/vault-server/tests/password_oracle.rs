//! Issue 10, finding 1, against the real `e2ee-backup-vault` binary: RegisterStart must not be an
//! uncharged password oracle. The attacker speaks the protocol byte for byte (as an independent
//! client would): one charged KE1 with a blinded element `B`, then RegisterStarts with the same
//! `B`. On the vault before the fix, every RegisterStart answer carried `k·B` under the live
//! registration's OPRF key `k`, equal to KE2's evaluation, so each password guess cost one
//! uncharged RegisterStart plus offline work. The assertions below are the oracle's root: no
//! uncharged answer ever carries an evaluation under a key a login of the registration uses.

mod common;

use common::{Served, endpoint, init_dir};
use e2ee_backup_kdf::BackupKey;
use e2ee_backup_vault::{AccountId, Endpoint, Request, Response, VaultSuite, envelope};

use e2ee_backup_vault_server::client::{self, HttpVault};
use opaque_ke::ClientLogin;
use rand_core::OsRng;

/// Seals `request` to the fleet's pinned key, posts it, and opens the answer.
fn send(http: &mut HttpVault, ep: &Endpoint, account: &[u8], request: &Request) -> Response {
    let (key_id, public) = ep.key();
    let (envelope, pending) = envelope::seal_request(
        &mut OsRng,
        ep.fleet_id().as_bytes(),
        key_id,
        &public,
        account,
        &request.encode(),
    )
    .unwrap();
    let sealed = http.call(account, &envelope).unwrap();
    Response::decode(&pending.open(&sealed).unwrap()).unwrap()
}

/// A real client's KE1 for `guess`: its first 32 bytes are the blinded element.
fn ke1(guess: &[u8]) -> [u8; 96] {
    let started = ClientLogin::<VaultSuite>::start(&mut OsRng, guess).unwrap();
    started.message.serialize().as_slice().try_into().unwrap()
}

fn charged_evaluation(
    http: &mut HttpVault,
    ep: &Endpoint,
    account: &[u8],
    ke1: [u8; 96],
) -> [u8; 32] {
    match send(http, ep, account, &Request::LoginStart { ke1: Box::new(ke1) }) {
        Response::LoginChallenge { ke2, .. } => ke2[..32].try_into().unwrap(),
        other => panic!("expected a KE2, got {other:?}"),
    }
}

fn register_start(
    http: &mut HttpVault,
    ep: &Endpoint,
    account: &[u8],
    blinded: [u8; 32],
) -> Response {
    send(http, ep, account, &Request::RegisterStart { registration_request: blinded, token: None })
}

#[test]
fn register_start_is_not_a_password_oracle_on_the_real_server() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), "oracle.fleet", 5);
    let served = Served::start(dir.path(), "serve.log");
    let mut http = served.http();
    let ep = endpoint(&mut http, dir.path());
    let key = BackupKey::generate();
    client::register(&mut http, &ep, AccountId::from_static(b"victim"), b"hunter2", &key).unwrap();

    // One real KE1 (charged): the attacker now holds KE2 with k·B.
    let attacker_ke1 = ke1(b"first guess");
    let blinded: [u8; 32] = attacker_ke1[..32].try_into().unwrap();
    let charged = charged_evaluation(&mut http, &ep, b"victim", attacker_ke1);

    // The assessment's 251 RegisterStarts: each is answered (as for any account, spec 4.10.2),
    // but under a fresh key of its own, never the registration's.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..251 {
        match register_start(&mut http, &ep, b"victim", blinded) {
            Response::RegisterChallenge { registration_response, .. } => {
                assert_ne!(
                    &registration_response[..32],
                    &charged[..],
                    "RegisterStart evaluated the live registration's OPRF key: a free guess"
                );
                assert!(seen.insert(registration_response[..32].to_vec()), "a key used twice");
            }
            other => panic!("expected a challenge, got {other:?}"),
        }
    }

    // A fresh account: RegisterStarts made before its registration (allowed: nothing to protect
    // yet) evaluate keys that its logins never use.
    let early: Vec<[u8; 32]> = (0..3)
        .map(|_| match register_start(&mut http, &ep, b"newcomer", blinded) {
            Response::RegisterChallenge { registration_response, .. } => {
                registration_response[..32].try_into().unwrap()
            }
            other => panic!("a fresh account's RegisterStart was refused: {other:?}"),
        })
        .collect();
    assert!(early[0] != early[1] && early[1] != early[2] && early[0] != early[2]);
    client::register(&mut http, &ep, AccountId::from_static(b"newcomer"), b"correct horse", &key)
        .unwrap();
    let mut probe = ke1(b"another guess");
    probe[..32].copy_from_slice(&blinded);
    let login_evaluation = charged_evaluation(&mut http, &ep, b"newcomer", probe);
    assert!(
        !early.contains(&login_evaluation),
        "a RegisterStart before the registration evaluated the registration's key"
    );

    // The victim still restores, and the budget counted exactly the attacker's one KE1.
    let session =
        client::login(&mut http, &ep, AccountId::from_static(b"victim"), b"hunter2").unwrap();
    assert_eq!(session.key(), &key);
    drop(served);
}
