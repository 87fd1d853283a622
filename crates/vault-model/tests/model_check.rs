//! Model checks of the accounting protocol (see the crate docs).

use std::time::Instant;

use e2ee_backup_vault_model::{Variant, VaultModel};
use stateright::{Checker, Model};

fn run(model: VaultModel, label: &str) -> impl Checker<VaultModel> {
    let start = Instant::now();
    let depth = model.max_depth;
    let builder = model.checker();
    let builder = if depth > 0 { builder.target_max_depth(depth) } else { builder };
    let checker = builder.spawn_bfs().join();
    eprintln!(
        "{label}: {} states ({} unique), depth {}, {:?}",
        checker.state_count(),
        checker.unique_state_count(),
        checker.max_depth(),
        start.elapsed()
    );
    checker
}

#[test]
fn correct_protocol_holds() {
    let checker = run(VaultModel::new(Variant::Correct), "correct");
    assert!(checker.discovery("ke2 within budget").is_none());
    assert!(checker.discovery("acked registration kept").is_none());
    assert!(checker.discovery("ke2 released").is_some());
    assert!(checker.discovery("leader change").is_some());
}

#[test]
fn correct_protocol_holds_with_longer_logs_and_no_registration() {
    // Without registration and login, logs of up to 4 entries within the same depth bound.
    // (Reaching the lock itself needs a deeper search than the bound allows; not shown yet.)
    let model = VaultModel {
        max_log: 4,
        with_register: false,
        with_login: false,
        ..VaultModel::new(Variant::Correct)
    };
    let checker = run(model, "correct, lock");
    assert!(checker.discovery("ke2 within budget").is_none());
    assert!(checker.discovery("ke2 released").is_some());
}

#[test]
fn ke2_before_commit_is_caught() {
    let checker = run(VaultModel::new(Variant::Ke2BeforeCommit), "ke2-before-commit");
    let path = checker.discovery("ke2 within budget").expect("counterexample");
    eprintln!("counterexample: {:?}", path.into_actions());
    assert!(checker.discovery("acked registration kept").is_none());
}

#[test]
fn lease_read_budget_is_caught() {
    let checker = run(VaultModel::new(Variant::LeaseReadBudget), "lease-read-budget");
    let path = checker.discovery("ke2 within budget").expect("counterexample");
    eprintln!("counterexample: {:?}", path.into_actions());
}
