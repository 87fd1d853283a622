//! Finding 5 of the vault assessment (spec 4.10.2 and 4.13): a stranger learns nothing from the
//! vault's answers about whether an account exists. For accounts that are registered, that are
//! phantoms (someone guessed at them), that were deleted (tombstones) and that were never seen,
//! every request a stranger can make without a secret of the account gets answers of one
//! kind, one size and one set of visible fields.
//!
//! The record version is the one field that differs per account by design: an account's first
//! registration takes the version after its unseen version, a secret 24-bit value, so that a
//! registered account's version is distributed like a never-seen one's.

use e2ee_backup_vault::{
    AccountId, AccountState, FleetId, HsmSecrets, KsfProfile, LoggedIn, Login, Request, Response,
    UNCHARGED_REMAINING,
};
use std::collections::BTreeMap;

use rand_core::OsRng;

mod common;

use common::{Attacker, blinded_element, fresh_ke1_tail, valid_upload};

const PASSWORD: &[u8] = b"the owner's password";

/// What a stranger sees of an answer, apart from its random bytes and the record version: the
/// kind, the encoded size and every other field.
fn visible(response: &Response) -> String {
    let size = response.encode().len();
    match response {
        Response::RegisterChallenge { ksf_profile, registration_ticket, .. } => {
            format!("RegisterChallenge({size} bytes, profile {ksf_profile}, ticket {})", {
                registration_ticket.len()
            })
        }
        Response::LoginChallenge { remaining, ksf_profile, ticket, .. } => format!(
            "LoginChallenge({size} bytes, remaining {remaining}, profile {ksf_profile}, ticket {})",
            ticket.len()
        ),
        other => format!("{other:?} ({size} bytes)"),
    }
}

fn log_in(a: &mut Attacker, account: &[u8]) -> LoggedIn {
    let ep = a.endpoint.clone();
    let (state, request) =
        Login::start(&mut OsRng, &ep, AccountId::new(account).unwrap(), PASSWORD).unwrap();
    let (state, request) =
        state.receive(&mut OsRng, &a.vault.call(&mut OsRng, &request).unwrap()).unwrap();
    state.receive(&a.vault.call(&mut OsRng, &request).unwrap()).unwrap()
}

/// A KE1 from a stranger (charged: it is a guess).
fn ke1() -> Request {
    let mut ke1 = [0u8; 96];
    ke1[..32].copy_from_slice(&blinded_element());
    ke1[32..].copy_from_slice(&fresh_ke1_tail());
    Request::LoginStart { ke1: Box::new(ke1) }
}

/// The requests a stranger makes without any secret of `account`, and what each got.
fn probe(a: &mut Attacker, account: &[u8]) -> BTreeMap<&'static str, (String, Option<u32>)> {
    let mut seen = BTreeMap::new();
    let challenge = a.send(
        account,
        &Request::RegisterStart { registration_request: blinded_element(), token: None },
    );
    let Response::RegisterChallenge { record_version, registration_ticket, .. } = &challenge else {
        panic!("RegisterStart for {account:?}: {challenge:?}");
    };
    let (version, ticket) = (*record_version, registration_ticket.clone());
    seen.insert("RegisterStart", (visible(&challenge), Some(version)));
    let finish = |record_version, registration_ticket: Vec<u8>, token| Request::RegisterFinish {
        record_version,
        ksf_profile: KsfProfile::Fast.code(),
        registration_upload: Box::new(valid_upload()),
        sealed_key: [7; 61],
        registration_ticket: registration_ticket.try_into().unwrap(),
        token,
    };
    let mut bogus_ticket = ticket.to_vec();
    bogus_ticket[20] ^= 1;
    let requests: Vec<(&'static str, Request)> = vec![
        (
            "RegisterStart with a bogus token",
            Request::RegisterStart {
                registration_request: blinded_element(),
                token: Some([9; 16]),
            },
        ),
        ("RegisterFinish, bogus ticket", finish(version, bogus_ticket, None)),
        ("RegisterFinish, stale version", finish(version.wrapping_add(1), ticket.to_vec(), None)),
        ("RegisterFinish, bogus token", finish(version, [0; 100].to_vec(), Some([9; 16]))),
        ("LoginStart, invalid KE1", Request::LoginStart { ke1: Box::new([0xff; 96]) }),
        (
            "LoginFinish, bogus ticket",
            Request::LoginFinish { ticket: vec![5; 80], ke3: Box::new([1; 64]) },
        ),
        ("Delete, bogus token", Request::Delete { token: [9; 16] }),
    ];
    for (name, request) in requests {
        let answer = a.send(account, &request);
        let version = match &answer {
            Response::RegisterChallenge { record_version, .. } => Some(*record_version),
            _ => None,
        };
        seen.insert(name, (visible(&answer), version));
    }
    // Last, a charged guess.
    seen.insert("LoginStart", (visible(&a.send(account, &ke1())), None));
    seen
}

#[test]
fn a_stranger_cannot_tell_registered_phantom_deleted_and_unseen_accounts_apart() {
    let mut a = Attacker::new(KsfProfile::Fast);
    // Registered.
    a.register(b"registered", PASSWORD);
    // A phantom: someone guessed at it; the owner never registered. Each other account
    // gets one guess too, so that every account has spent as much of its budget.
    a.send(b"phantom", &ke1());
    a.send(b"registered", &ke1());
    // Deleted: registered, logged into, deleted (a tombstone), then guessed at.
    a.register(b"deleted", PASSWORD);
    let session = log_in(&mut a, b"deleted");
    let (state, request) = session.delete(&mut OsRng).unwrap();
    state.receive(&a.vault.call(&mut OsRng, &request).unwrap()).unwrap();
    a.send(b"deleted", &ke1());
    // Never seen: nothing is stored for it before the probe. Its budget is untouched, so it is
    // compared with the others on what does not depend on a charge.
    let accounts: [&[u8]; 4] = [b"registered", b"phantom", b"deleted", b"unseen"];
    assert_eq!(a.vault.record(b"phantom").unwrap().state, AccountState::Phantom);
    assert_eq!(a.vault.record(b"deleted").unwrap().state, AccountState::Phantom);
    assert!(a.vault.record(b"unseen").is_none());

    let before: Vec<_> = accounts.iter().map(|acc| a.vault.record(acc).cloned()).collect();
    let answers: Vec<_> = accounts.iter().map(|acc| probe(&mut a, acc)).collect();
    for (name, (first, _)) in &answers[0] {
        for (account, answer) in accounts.iter().zip(&answers).skip(1) {
            let (theirs, _) = &answer[name];
            if *name == "LoginStart" && *account == b"unseen" {
                continue; // its budget was never charged: compared below
            }
            assert_eq!(
                first,
                theirs,
                "{name}: {} and {} are told apart",
                "registered",
                String::from_utf8_lossy(account)
            );
        }
    }
    // The charged guess on the never-seen account differs only by the charge it had not paid.
    let unseen = &answers[3]["LoginStart"].0;
    assert_eq!(unseen, &answers[0]["LoginStart"].0.replace("remaining 3", "remaining 4"));
    // Refusals carry the constant, not the record's count.
    for answer in &answers {
        for (name, (visible, _)) in answer {
            if visible.starts_with("Refused") {
                let constant = format!("remaining: {UNCHARGED_REMAINING} }}");
                assert!(visible.contains(&constant), "{name}: {visible}");
            }
        }
    }
    // Nothing but the charged guesses changed a record: the probes created no record and
    // registered nothing.
    for ((account, before), answer) in accounts.iter().zip(&before).zip(&answers) {
        let after = a.vault.record(account).cloned();
        let charged = after.as_ref().map(|r| (r.state, r.record_version));
        let expected = before.as_ref().map_or_else(
            || Some((AccountState::Phantom, answer["RegisterStart"].1.unwrap() - 1)),
            |r| Some((r.state, r.record_version)),
        );
        assert_eq!(charged, expected, "{}", String::from_utf8_lossy(account));
    }
}

#[test]
fn record_versions_start_at_the_unseen_version() {
    let secrets = HsmSecrets::generate(&mut OsRng, FleetId::from_static(b"fleet.versions"));
    // Unpredictable without the fleet secrets: spread over 24 bits, not 0 or 1 for everyone.
    let versions: Vec<u32> =
        (0..64u32).map(|i| secrets.unseen_version(format!("account {i}").as_bytes())).collect();
    assert!(versions.iter().all(|v| *v < 1 << 24));
    assert!(versions.iter().filter(|v| **v < 1 << 16).count() < 8, "{versions:?}");
    let mut distinct = versions.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert!(distinct.len() > 60, "{versions:?}");

    // The first registration of an account takes the version after it, and the phantom a KE1
    // leaves keeps it.
    let mut a = Attacker::new(KsfProfile::Fast);
    let unseen = |a: &Attacker, account: &[u8]| a.vault.hsm().secrets().unseen_version(account);
    a.register(b"first", PASSWORD);
    let registered = a.vault.record(b"first").unwrap().record_version;
    assert_eq!(registered, unseen(&a, b"first").wrapping_add(1));
    a.send(b"guessed", &ke1());
    assert_eq!(a.vault.record(b"guessed").unwrap().record_version, unseen(&a, b"guessed"));
    a.register(b"guessed", PASSWORD);
    assert_eq!(
        a.vault.record(b"guessed").unwrap().record_version,
        unseen(&a, b"guessed").wrapping_add(1)
    );
}
