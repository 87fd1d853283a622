//! Model checks of the accounting protocol. The crate docs say what is checked, in which
//! configurations, and what each run costs.
//!
//! The correct protocol is searched exhaustively: depth-first, every reachable state of the
//! configuration, no depth bound. A broken variant is searched breadth-first, with a depth bound
//! raised one step at a time, until a property fails: its counterexample is a shortest one.

use std::time::Instant;

use e2ee_backup_vault_model::{Variant, VaultModel};
use stateright::{Checker, HasDiscoveries, Model};

const SAFETY: [&str; 2] = ["ke2 within budget", "acked registration kept"];

/// Searches every reachable state. Asserts that neither safety property fails and that every
/// `sometimes` property in `reached` is reached, so the safety properties are not vacuous.
fn holds(model: VaultModel, label: &str, reached: &[&'static str]) {
    let start = Instant::now();
    let checker = model.checker().spawn_dfs().join();
    eprintln!(
        "{label}: {} states ({} unique), depth {}, {:?}",
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth(),
        start.elapsed()
    );
    for name in SAFETY {
        if let Some(path) = checker.discovery(name) {
            panic!("{label}: {name} fails: {:?}", path.into_actions());
        }
    }
    for name in reached {
        let path = checker.discovery(name).unwrap_or_else(|| panic!("{label}: {name} not reached"));
        eprintln!("  reached {name:?}: {:?}", path.into_actions());
    }
}

/// Searches breadth-first, one more step at a time, until a safety property fails; returns the
/// ones that failed (each with a shortest counterexample).
fn caught(model: VaultModel, label: &str) -> Vec<&'static str> {
    let start = Instant::now();
    for depth in 2.. {
        let checker = model
            .clone()
            .checker()
            .target_max_depth(depth)
            .finish_when(HasDiscoveries::AnyFailures)
            .spawn_bfs()
            .join();
        let failed: Vec<_> =
            SAFETY.into_iter().filter(|name| checker.discovery(name).is_some()).collect();
        if failed.is_empty() {
            assert!(depth < 30, "{label}: not caught");
            continue;
        }
        eprintln!(
            "{label}: {} states ({} unique) at depth {depth}, {:?} in all",
            checker.state_count(),
            checker.unique_state_count(),
            start.elapsed()
        );
        for name in &failed {
            let path = checker.discovery(name).expect("failed").into_actions();
            eprintln!("  {name} fails after {} actions: {path:?}", path.len());
        }
        return failed;
    }
    unreachable!()
}

#[test]
fn correct_protocol_keeps_registration() {
    holds(
        VaultModel::registration(Variant::Correct),
        "correct, registration",
        &[
            "registration acked",
            "registration acked by a later leader",
            "registration acked, leader crashed, new leader",
            "two leader changes",
        ],
    );
}

#[test]
fn correct_protocol_holds() {
    holds(
        VaultModel::accounting(Variant::Correct),
        "correct, accounting",
        &[
            "ke2 released",
            "budget spent",
            "locked",
            "login",
            "leader change",
            "registration acked, leader crashed, new leader",
        ],
    );
}

#[test]
fn correct_protocol_holds_with_longer_logs() {
    // One more log entry and no clock: the budget is spent, a login restores it, and KE2s are
    // released again in the next login epoch.
    let model = VaultModel { max_log: 4, max_time: 0, ..VaultModel::accounting(Variant::Correct) };
    holds(
        model,
        "correct, accounting, 4 entries",
        &["budget spent and restored by a login", "login", "leader change"],
    );
}

#[test]
fn correct_protocol_holds_with_two_elections() {
    let model =
        VaultModel { max_term: 3, with_login: false, ..VaultModel::accounting(Variant::Correct) };
    holds(model, "correct, accounting, 3 terms", &["budget spent", "locked", "two leader changes"]);
}

#[test]
fn correct_protocol_holds_with_budget_two() {
    let model = VaultModel {
        budget: 2,
        attackers: 2,
        max_log: 4,
        with_login: false,
        ..VaultModel::accounting(Variant::Correct)
    };
    holds(model, "correct, accounting, budget 2", &["budget spent", "locked", "leader change"]);
}

#[test]
fn ke2_before_commit_is_caught() {
    let failed = caught(VaultModel::accounting(Variant::Ke2BeforeCommit), "ke2-before-commit");
    assert_eq!(failed, ["ke2 within budget"]);
}

#[test]
fn lease_read_budget_is_caught() {
    let failed = caught(VaultModel::accounting(Variant::LeaseReadBudget), "lease-read-budget");
    assert_eq!(failed, ["ke2 within budget"]);
}

#[test]
fn ack_before_fsync_is_caught() {
    let model = VaultModel::registration(Variant::AckBeforeFsync);
    assert_eq!(caught(model, "ack-before-fsync, registration"), ["acked registration kept"]);
    let model = VaultModel::accounting(Variant::AckBeforeFsync);
    assert_eq!(caught(model, "ack-before-fsync, accounting"), ["ke2 within budget"]);
}

#[test]
fn broken_variants_need_a_leader_change() {
    // With one leader (no election) every broken variant keeps both properties: each bug shows
    // only when leadership changes, the lease read only through a leader's stale applied state.
    for variant in [Variant::Ke2BeforeCommit, Variant::LeaseReadBudget, Variant::AckBeforeFsync] {
        let model = VaultModel { max_term: 1, ..VaultModel::accounting(variant) };
        holds(model, &format!("{variant:?}, one leader"), &["ke2 released", "locked", "login"]);
        let model = VaultModel { max_term: 1, ..VaultModel::registration(variant) };
        holds(model, &format!("{variant:?}, one leader, registration"), &["registration acked"]);
    }
}

/// Larger configurations, for an optimised build only (about 2.5 minutes and 400 MiB with
/// `cargo test --release -p e2ee-backup-vault-model -- --ignored`; far too slow unoptimised).
#[test]
#[ignore]
fn extended_configurations_hold() {
    let acc = VaultModel::accounting(Variant::Correct);
    holds(
        VaultModel { max_term: 3, ..acc.clone() },
        "extended: accounting, 3 terms, login",
        &["budget spent", "locked", "login", "two leader changes"],
    );
    holds(
        VaultModel { attackers: 2, max_log: 4, ..acc.clone() },
        "extended: accounting, 2 attacker attempts, 4 entries, login",
        &["budget spent", "locked", "budget spent and restored by a login"],
    );
    holds(
        VaultModel { budget: 2, attackers: 3, max_log: 4, with_login: false, ..acc.clone() },
        "extended: accounting, budget 2, 3 attacker attempts",
        &["budget spent", "locked"],
    );
    holds(
        VaultModel { attackers: 1, max_log: 3, ..VaultModel::registration(Variant::Correct) },
        "extended: registration, then charges",
        &["registration acked, leader crashed, new leader", "two leader changes"],
    );
}
