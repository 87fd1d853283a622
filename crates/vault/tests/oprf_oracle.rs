//! Finding 1 of the vault assessment (spec 4.10.4): RegisterStart must not be an uncharged
//! password oracle. Each test crafts requests byte for byte, as an attacker with an independent
//! client would, and fails against a vault that evaluates a live registration's OPRF key outside
//! a charged login.

use e2ee_backup_vault::{KsfProfile, RefusalReason, Request, Response};

mod common;

use common::{Attacker, blinded_element, valid_upload};

#[test]
fn register_start_on_a_registered_account_evaluates_keys_no_login_uses() {
    let mut a = Attacker::new(KsfProfile::Fast);
    a.register(b"victim", b"hunter2");
    let blinded = blinded_element();
    let charged = a.ke2_evaluation(b"victim", blinded);
    let before = a.vault.record(b"victim").unwrap().clone();
    // The attack of the assessment: the same blinded element through RegisterStart. Before the
    // fix the answer carried the evaluation under the registration's key, equal to KE2's. Now
    // every RegisterStart is answered (as for an account nobody registered, spec 4.10.2), each
    // under a fresh key that no login of the registration uses.
    let mut seen = Vec::new();
    for _ in 0..20 {
        let evaluation = a.register_start(b"victim", blinded).expect("a challenge");
        assert_ne!(evaluation, charged, "RegisterStart evaluated the login key: a free guess");
        assert!(!seen.contains(&evaluation), "two RegisterStarts evaluated the same key");
        seen.push(evaluation);
    }
    assert_eq!(a.vault.record(b"victim"), Some(&before), "nothing changed, nothing was charged");
    assert_eq!(a.ke2_evaluation(b"victim", blinded), charged, "the registration kept its key");
}

#[test]
fn register_starts_before_a_registration_evaluate_keys_no_login_uses() {
    let mut a = Attacker::new(KsfProfile::Fast);
    let blinded = blinded_element();
    // Before the victim registers (the account is fresh, so no token is needed), the attacker
    // collects evaluations of the element, as a "key from the next version" design would leak.
    let early: Vec<[u8; 32]> =
        (0..3).map(|_| a.register_start(b"victim", blinded).expect("a fresh account")).collect();
    assert!(early[0] != early[1] && early[1] != early[2], "each RegisterStart draws a fresh key");
    a.register(b"victim", b"hunter2");
    let charged = a.ke2_evaluation(b"victim", blinded);
    assert!(!early.contains(&charged), "the registration's key was evaluated before it existed");
    // Two logins evaluate under the same (stored) key: the registration uses one key.
    assert_eq!(a.ke2_evaluation(b"victim", blinded), charged);
}

#[test]
fn a_phantom_is_evaluated_under_a_key_no_registration_uses() {
    let mut a = Attacker::new(KsfProfile::Fast);
    let blinded = blinded_element();
    let phantom = a.ke2_evaluation(b"victim", blinded);
    assert_eq!(a.ke2_evaluation(b"victim", blinded), phantom, "a phantom answers consistently");
    a.register(b"victim", b"hunter2");
    assert_ne!(a.ke2_evaluation(b"victim", blinded), phantom);
}

#[test]
fn a_registration_naming_a_weaker_profile_than_the_policy_is_refused() {
    let mut a = Attacker::new(KsfProfile::Mobile);
    let Response::RegisterChallenge { registration_ticket, record_version, ksf_profile, .. } = a
        .send(
            b"mia",
            &Request::RegisterStart { registration_request: blinded_element(), token: None },
        )
    else {
        panic!("expected a challenge");
    };
    assert_eq!(ksf_profile, KsfProfile::Mobile.code());
    let weak = Request::RegisterFinish {
        record_version,
        ksf_profile: KsfProfile::Fast.code(),
        registration_upload: Box::new(valid_upload()),
        sealed_key: [7; 61],
        registration_ticket,
        token: None,
    };
    match a.send(b"mia", &weak) {
        Response::Refused { reason: RefusalReason::InvalidRequest, .. } => {}
        other => panic!("a weak profile was accepted: {other:?}"),
    }
    assert!(a.vault.record(b"mia").is_none());
}
