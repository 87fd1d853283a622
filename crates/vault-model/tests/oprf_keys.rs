//! Model checks of OPRF key usage (crate docs, section "OPRF key usage").
//!
//! A design that holds is searched exhaustively (depth-first, no depth bound). A broken one is
//! searched breadth-first with a depth bound raised one step at a time until
//! [`GUESSES_CHARGED`] fails, so its counterexample is a shortest one; the tests assert it.

use std::time::Instant;

use e2ee_backup_vault_model::oprf_keys::{
    Eval, GUESSES_CHARGED, KEY_PRIVATE, Key, KeyDesign, OprfAction, OprfModel, OprfState, Start,
    Who, unpaid_guesses,
};
use stateright::{Checker, HasDiscoveries, Model};

use OprfAction::{
    AttackerLoginStart as AttackerKe1, AttackerRegisterStart as AttackerStart, HonestDelete,
    HonestLogin, HonestRegisterFinish as HonestFinish, HonestRegisterStart as HonestStart,
};

/// Searches every reachable state; asserts that the `invariants` hold and that every
/// `sometimes` property in `reached` is reached.
fn holds(model: OprfModel, label: &str, invariants: &[&'static str], reached: &[&'static str]) {
    let start = Instant::now();
    let checker = model.checker().spawn_dfs().join();
    eprintln!(
        "{label}: {} states ({} unique), depth {}, {:?}",
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth(),
        start.elapsed()
    );
    for &name in invariants {
        if let Some(path) = checker.discovery(name) {
            panic!("{label}: {name} fails: {:?}", path.into_actions());
        }
    }
    for name in reached {
        let path = checker.discovery(name).unwrap_or_else(|| panic!("{label}: {name} not reached"));
        eprintln!("  reached {name:?}: {:?}", path.into_actions());
    }
}

/// Searches breadth-first, one more step at a time, until [`GUESSES_CHARGED`] fails; returns a
/// shortest counterexample (its actions) and its last state.
fn caught(model: OprfModel, label: &str) -> (Vec<OprfAction>, OprfState) {
    let start = Instant::now();
    for depth in 1..=16 {
        let checker = model
            .clone()
            .checker()
            .target_max_depth(depth)
            .finish_when(HasDiscoveries::AnyFailures)
            .spawn_bfs()
            .join();
        let Some(path) = checker.discovery(GUESSES_CHARGED) else { continue };
        let last = path.last_state().clone();
        let actions = path.into_actions();
        eprintln!(
            "{label}: {} states ({} unique) at depth {depth}, {:?} in all",
            checker.state_count(),
            checker.unique_state_count(),
            start.elapsed()
        );
        eprintln!("  fails after {} actions: {actions:?}", actions.len());
        eprintln!("  unpaid guesses: {:?}", unpaid_guesses(&last));
        return (actions, last);
    }
    panic!("{label}: not caught")
}

fn from(start: Start, model: OprfModel) -> OprfModel {
    OprfModel { starts: vec![start], ..model }
}

/// Asserts that `trace` is one of `shortest` (breadth-first search returns one of several
/// shortest counterexamples that differ only in the order of independent actions).
fn one_of(label: &str, trace: &[OprfAction], shortest: &[&[OprfAction]]) {
    assert!(shortest.contains(&trace), "{label}: unexpected counterexample {trace:?}");
}

/// The attacker's RegisterStart (the one with this ticket id) under `key`.
fn attacker_start(key: Key, ticket: u8) -> (Key, Eval) {
    (key, Eval::RegisterStart { by: Who::Attacker, ticket })
}

#[test]
fn per_account_keys_are_caught() {
    // Today's vault. On a registered account, one RegisterStart is a guess under the live key
    // that nobody paid for: with one charged KE1 for the envelope, every further guess costs
    // one uncharged RegisterStart.
    let model = from(Start::Registered, OprfModel::today());
    let (trace, s) = caught(model, "per-account, registered");
    assert_eq!(trace, [AttackerStart]);
    assert_eq!(unpaid_guesses(&s), [attacker_start(Key::Account, 1)]);
    // From no record, the same after the first registration, or before it (the RegisterStart,
    // or a KE1 on the phantom, evaluates the key that the registration will use).
    let (trace, s) = caught(from(Start::NoRecord, OprfModel::today()), "per-account, no record");
    one_of(
        "per-account, no record",
        &trace,
        &[
            &[HonestStart, HonestFinish, AttackerStart],
            &[HonestStart, AttackerStart, HonestFinish],
            &[AttackerStart, HonestStart, HonestFinish],
            &[HonestStart, AttackerKe1, HonestFinish],
            &[AttackerKe1, HonestStart, HonestFinish],
        ],
    );
    assert_eq!(unpaid_guesses(&s).len(), 1);
}

#[test]
fn per_account_keys_with_token_rule_are_caught() {
    // The token rule alone: no RegisterStart on a registered account without the login token.
    let model = OprfModel::new(KeyDesign::PerAccount, true, true);
    // Before the first registration, a RegisterStart needs no token, and evaluates the key the
    // registration will use.
    let (trace, s) = caught(from(Start::NoRecord, model.clone()), "per-account + token, no record");
    let before = [
        &[HonestStart, AttackerStart, HonestFinish][..],
        &[AttackerStart, HonestStart, HonestFinish],
    ];
    one_of("per-account + token, no record", &trace, &before);
    // Ticket ids count RegisterStarts: the attacker's is 1 if the honest client started first.
    let ticket = u8::from(trace[0] == HonestStart);
    assert_eq!(unpaid_guesses(&s), [attacker_start(Key::Account, ticket)]);
    // On a registered account: a KE1 charged to the registration is a free guess against the
    // next one (a password change keeps the key).
    let (trace, s) = caught(from(Start::Registered, model.clone()), "per-account + token");
    assert_eq!(trace, [AttackerKe1, HonestLogin, HonestStart, HonestFinish]);
    let charged_to_old = Eval::LoginStart { by: Who::Attacker, charged_to: Some(0) };
    assert_eq!(unpaid_guesses(&s), [(Key::Account, charged_to_old)]);
    // Without any RegisterStart by the attacker, and without password changes: KE1s on the
    // phantom (fake KE2s evaluate the account's key, charged to the phantom's budget, which the
    // registration replaces with a full one) count against the registration that follows.
    let model = OprfModel { max_attacker_starts: 0, max_honest_logins: 0, ..model };
    let (trace, s) = caught(from(Start::NoRecord, model), "per-account + token, KE1s only");
    one_of(
        "per-account + token, KE1s only",
        &trace,
        &[&[AttackerKe1, HonestStart, HonestFinish], &[HonestStart, AttackerKe1, HonestFinish]],
    );
    let phantom = Eval::LoginStart { by: Who::Attacker, charged_to: None };
    assert_eq!(unpaid_guesses(&s), [(Key::Account, phantom)]);
}

#[test]
fn per_account_keys_leak_after_a_delete() {
    // With the token rule and tombstones, no KE1 by the attacker: a delete makes the account
    // registrable without a token, and the attacker's RegisterStart then evaluates the key of
    // the registration that follows.
    let model = OprfModel {
        max_attacker_logins: 0,
        ..from(Start::Registered, OprfModel::new(KeyDesign::PerAccount, true, true))
    };
    let (trace, s) = caught(model, "per-account + token, delete");
    one_of(
        "per-account + token, delete",
        &trace,
        &[
            &[HonestLogin, HonestDelete, HonestStart, AttackerStart, HonestFinish],
            &[HonestLogin, HonestDelete, AttackerStart, HonestStart, HonestFinish],
        ],
    );
    assert!(s.seen.registration_after_delete);
    assert_eq!(unpaid_guesses(&s).len(), 1);
}

#[test]
fn per_version_keys_are_caught() {
    // Keys derived from (account, record_version), with the token rule and tombstones: the
    // attacker's RegisterStart before the registration exists evaluates the key of the version
    // the registration will have.
    let model = OprfModel::new(KeyDesign::PerVersion, true, true);
    let (trace, s) = caught(from(Start::NoRecord, model.clone()), "per-version, no record");
    let before = [
        &[HonestStart, AttackerStart, HonestFinish][..],
        &[AttackerStart, HonestStart, HonestFinish],
    ];
    one_of("per-version, no record", &trace, &before);
    let ticket = u8::from(trace[0] == HonestStart);
    assert_eq!(unpaid_guesses(&s), [attacker_start(Key::Version(1), ticket)]);
    assert!(s.seen.attacker_start_before_registration);
    // After a delete (the version kept): the next version's key, before the re-registration.
    let (trace, s) = caught(from(Start::Registered, model), "per-version, registered");
    one_of(
        "per-version, registered",
        &trace,
        &[
            &[HonestLogin, HonestDelete, HonestStart, AttackerStart, HonestFinish],
            &[HonestLogin, HonestDelete, AttackerStart, HonestStart, HonestFinish],
        ],
    );
    assert!(matches!(unpaid_guesses(&s)[..], [(Key::Version(2), Eval::RegisterStart { .. })]));
    // Without the token rule: the next version's key, before a password change.
    let model = OprfModel::new(KeyDesign::PerVersion, false, true);
    let (trace, s) = caught(from(Start::Registered, model), "per-version, no token rule");
    one_of(
        "per-version, no token rule",
        &trace,
        &[
            &[AttackerStart, HonestLogin, HonestStart, HonestFinish],
            &[HonestLogin, AttackerStart, HonestStart, HonestFinish],
            &[HonestLogin, HonestStart, AttackerStart, HonestFinish],
        ],
    );
    assert!(matches!(unpaid_guesses(&s)[..], [(Key::Version(2), Eval::RegisterStart { .. })]));
}

#[test]
fn per_version_keys_leak_only_through_register_start() {
    // Without the attacker's RegisterStart, the per-version design keeps the invariant (with
    // tombstones)...
    let model =
        OprfModel { max_attacker_starts: 0, ..OprfModel::new(KeyDesign::PerVersion, true, true) };
    holds(
        model.clone(),
        "per-version, no attacker RegisterStart",
        &[GUESSES_CHARGED],
        &[
            "attacker KE1 charged to the live registration",
            "attacker KE1 without a registration, then a registration",
            "re-registration after a login",
            "registration after a delete",
        ],
    );
    // ...but not if Delete erases the record: the version restarts, and a KE1 charged to the
    // deleted registration is a free guess against the next one, which has its key.
    let model = OprfModel { tombstones: false, ..model };
    let (trace, s) = caught(from(Start::Registered, model), "per-version, no tombstone");
    assert_eq!(trace, [AttackerKe1, HonestLogin, HonestDelete, HonestStart, HonestFinish]);
    let charged_to_old = Eval::LoginStart { by: Who::Attacker, charged_to: Some(0) };
    assert_eq!(unpaid_guesses(&s), [(Key::Version(1), charged_to_old)]);
}

const BOTH: &[&str] = &[GUESSES_CHARGED, KEY_PRIVATE];

const FRESH_REACHED: [&str; 8] = [
    "registration completed",
    "attacker RegisterStart before a registration",
    "attacker KE1 without a registration, then a registration",
    "attacker KE1 charged to the live registration",
    "re-registration after a login",
    "registration after a delete",
    "registration by a retried RegisterStart",
    // Listed last: reached only without the token rule (see below).
    "attacker RegisterStart on a registered account",
];

#[test]
fn fresh_keys_hold() {
    // The fix: a fresh key per RegisterStart, the token rule, tombstones.
    holds(OprfModel::fixed(), "fresh, token rule, tombstones", BOTH, &FRESH_REACHED[..7]);
}

#[test]
fn fresh_keys_hold_without_token_rule() {
    // The fresh keys alone suffice: no token rule, and Delete erases the record.
    let model = OprfModel::new(KeyDesign::FreshPerRegisterStart, false, false);
    holds(model, "fresh, no token rule, no tombstones", BOTH, &FRESH_REACHED);
}

/// Larger bounds, for an optimised build (`cargo test --release -p e2ee-backup-vault-model --
/// --ignored`): 3 attacker RegisterStarts and KE1s, 3 honest logins.
#[test]
#[ignore]
fn fresh_keys_hold_with_larger_bounds() {
    for model in
        [OprfModel::fixed(), OprfModel::new(KeyDesign::FreshPerRegisterStart, false, false)]
    {
        let label = format!("extended: fresh, token rule {}", model.token_rule);
        let model = OprfModel {
            max_attacker_starts: 3,
            max_attacker_logins: 3,
            max_honest_logins: 3,
            ..model
        };
        holds(model, &label, BOTH, &FRESH_REACHED[..7]);
    }
}
