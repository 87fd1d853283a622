//! Issue 11, "a wrong password during rotate-key blocks every later backup": a key rotation
//! learns that the password is right before it copies anything, `abort_pending` drops any
//! rotation the vault has not confirmed (deleting its copies), and `create_backup` is never
//! blocked by a pending rotation.
//!
//! The crash-point tests stop a rotation at each of its steps in turn, make a backup while the
//! rotation is pending, then either run the rotation again or abort it (running it again when
//! the abort is refused because the vault already holds the new key). The invariant: afterwards
//! the newest backup restores, on a fresh device, with the credential the user believes is
//! current (the password; in key mode the digits last shown), and the store holds no orphan.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use e2ee_backup_client::faults::{FailAt, FaultInjector, NoFaults};
use e2ee_backup_client::{Client, Error, Mode, Source};

fn restored(w: &World, name: &str) -> Vec<u8> {
    std::fs::read(w.target(name)).unwrap()
}

fn objects_names(w: &World) -> Vec<String> {
    w.objects().into_iter().map(|(name, _)| name).collect()
}

#[test]
fn a_wrong_password_during_rotation_changes_nothing_and_blocks_nothing() {
    let w = World::new(10);
    let mut phone = w.client("phone");
    phone.enable_with_password(PASSWORD).unwrap();
    phone.create_backup(Source::Bytes(b"first"), "db").unwrap();
    let before = objects_names(&w);
    let err = phone.rotate_key(Some("not the password")).unwrap_err();
    assert!(matches!(err, Error::WrongPassword { remaining: 9 }), "{err}");
    assert_eq!(phone.status().pending, None, "nothing to finish or abort");
    assert_eq!(objects_names(&w), before, "nothing was copied");
    assert_eq!(keystore_keys(&w.device("phone")).len(), 1, "no new key is kept");
    // Backups go on, and the rotation works with the right password.
    phone.create_backup(Source::Bytes(b"second"), "db").unwrap();
    phone.rotate_key(Some(PASSWORD)).unwrap();
    let mut fresh = w.client("fresh");
    fresh.restore_with_password(PASSWORD, &w.target("fresh")).unwrap();
    assert_eq!(restored(&w, "fresh"), b"second");
}

#[test]
fn a_rotation_with_the_vault_down_changes_nothing() {
    let w = World::new(10);
    let mut phone = w.client("phone");
    phone.enable_with_password(PASSWORD).unwrap();
    phone.create_backup(Source::Bytes(b"first"), "db").unwrap();
    let before = objects_names(&w);
    // A new process: the fleet bundle is fetched again.
    let mut phone = w.client("phone");
    w.fleet.transport.set_down(true);
    let err = phone.rotate_key(Some(PASSWORD)).unwrap_err();
    assert!(matches!(err, Error::VaultUnreachable { .. }), "{err}");
    assert_eq!(phone.status().pending, None);
    assert_eq!(objects_names(&w), before, "the store did not grow");
    phone.create_backup(Source::Bytes(b"second"), "db").unwrap();
}

/// Stops at the first step named `point`.
struct StopAt {
    point: &'static str,
    fired: AtomicBool,
}

impl FaultInjector for StopAt {
    fn should_fail(&self, point: &str) -> bool {
        point == self.point && !self.fired.swap(true, Ordering::SeqCst)
    }
}

#[test]
fn backups_go_on_while_a_rotation_is_pending_and_are_rotated_too() {
    let w = World::new(10);
    let mut phone = w.client("phone");
    phone.enable_with_password(PASSWORD).unwrap();
    phone.create_backup(Source::Bytes(b"first"), "db").unwrap();
    drop(phone);
    // Cut the rotation off just before it asks the vault to seal the new key.
    let stop =
        Arc::new(StopAt { point: "vault send register-start", fired: AtomicBool::new(false) });
    let err = w.client_with("phone", stop.clone()).rotate_key(Some(PASSWORD)).unwrap_err();
    assert!(matches!(err, Error::Injected { .. }), "{err}");
    let mut phone = w.client("phone");
    assert_eq!(phone.status().pending, Some("key rotation"));
    phone.create_backup(Source::Bytes(b"during"), "db").unwrap();
    phone.rotate_key(Some(PASSWORD)).unwrap();
    assert_eq!(w.objects().len(), 2, "the old objects are gone, every backup was copied");
    let keys = keystore_keys(&w.device("phone"));
    assert_eq!(keys.len(), 1);
    assert!(w.objects().iter().all(|(_, f)| open_with_any(&keys, f).is_some()));
    let mut fresh = w.client("fresh");
    fresh.restore_with_password(PASSWORD, &w.target("fresh")).unwrap();
    assert_eq!(restored(&w, "fresh"), b"during");
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Recovery {
    Retry,
    Abort,
}

/// What one crash-point run found.
struct Outcome {
    point: String,
    aborted: bool,
}

/// Stops a rotation at each step in turn and recovers with `recovery`. Returns, per step, the
/// step's name and whether an abort was accepted.
fn rotate_crash_points(password_mode: bool, recovery: Recovery) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for n in 0.. {
        let w = World::new(10);
        let mut phone = w.client("phone");
        let mut digits = if password_mode {
            phone.enable_with_password(PASSWORD).unwrap();
            None
        } else {
            Some(phone.enable_with_key().unwrap().to_string())
        };
        phone.create_backup(Source::Bytes(b"first"), "db").unwrap();
        phone.create_backup(Source::Bytes(b"second"), "db").unwrap();
        drop(phone);
        let faults = Arc::new(FailAt::new(n));
        let outcome =
            w.client_with("phone", faults.clone()).rotate_key(password_mode.then_some(PASSWORD));
        if !faults.fired() {
            outcome.unwrap_or_else(|e| panic!("a run without a fault failed: {e}"));
            return outcomes;
        }
        let point = faults.seen()[n].clone();
        if let Ok(report) = &outcome {
            // The stop fell in the cleanup after the last commit: the rotation is done and
            // its report (with the new digits) was returned.
            assert!(point.ends_with(" keystore"), "stop at {point} ignored");
            if !password_mode {
                digits = Some(report.digits.to_string());
            }
        }
        let mut phone = w.client_with("phone", Arc::new(NoFaults));
        // A backup while the rotation may be pending: never blocked.
        phone
            .create_backup(Source::Bytes(b"third"), "db")
            .unwrap_or_else(|e| panic!("backup after a stop at {point}: {e}"));
        let mut aborted = false;
        let password = password_mode.then_some(PASSWORD);
        let retry = |phone: &mut Client, digits: &mut Option<String>| {
            let report = phone
                .rotate_key(password)
                .unwrap_or_else(|e| panic!("resuming after a stop at {point}: {e}"));
            if !password_mode {
                *digits = Some(report.digits.to_string());
            }
        };
        match (recovery, outcome.is_ok()) {
            // The rotation finished before the stop: nothing to recover.
            (_, true) => {}
            (Recovery::Retry, false) => retry(&mut phone, &mut digits),
            // With no journal (a stop before the rotation began) the abort has nothing to do.
            (Recovery::Abort, false) => match phone.abort_pending(password) {
                Ok(()) => aborted = true,
                Err(e @ Error::IllegalState { .. }) => {
                    let message = e.to_string();
                    assert!(message.contains("run the rotation again"), "{message}");
                    assert!(!message.contains("while key rotation"), "{message}");
                    retry(&mut phone, &mut digits)
                }
                Err(e) => panic!("abort after a stop at {point}: {e}"),
            },
        }
        assert_eq!(phone.status().pending, None, "after a stop at {point}");
        let keys = keystore_keys(&w.device("phone"));
        assert_eq!(keys.len(), 1, "one key left after a stop at {point}");
        let objects = w.objects();
        assert_eq!(objects.len(), 3, "no orphan and no lost backup after a stop at {point}");
        let plain: Vec<_> = objects
            .iter()
            .map(|(_, f)| open_with_any(&keys, f).expect("every backup opens with the key"))
            .collect();
        assert_eq!(plain, vec![b"first".to_vec(), b"second".to_vec(), b"third".to_vec()]);
        let mut fresh = w.client("fresh");
        if password_mode {
            assert!(matches!(phone.status().mode, Mode::Password { .. }));
            fresh.restore_with_password(PASSWORD, &w.target("fresh")).unwrap_or_else(|e| {
                panic!("password restore after a stop at {point} and {recovery:?}: {e}")
            });
        } else {
            let digits = digits.unwrap();
            fresh.restore_with_key(&digits, &w.target("fresh")).unwrap_or_else(|e| {
                panic!("restore with the digits last shown, after {point} and {recovery:?}: {e}")
            });
        }
        assert_eq!(restored(&w, "fresh"), b"third", "after a stop at {point}, {recovery:?}");
        outcomes.push(Outcome { point, aborted });
    }
    unreachable!()
}

/// Abort is accepted after a stop at every step before the first step whose name starts with
/// `first_final`, and refused from there on: the rotation becomes final at one point.
fn abort_is_accepted_before(outcomes: &[Outcome], first_final: &str) {
    let at = outcomes
        .iter()
        .position(|o| o.point.starts_with(first_final))
        .unwrap_or_else(|| panic!("no step {first_final}"));
    for (i, o) in outcomes.iter().enumerate() {
        assert_eq!(o.aborted, i < at, "abort after a stop at step {i}, {}", o.point);
    }
}

#[test]
fn rotate_key_in_password_mode_crash_then_retry() {
    let outcomes = rotate_crash_points(true, Recovery::Retry);
    assert!(outcomes.len() >= 14, "{}", outcomes.len());
}

#[test]
fn rotate_key_in_password_mode_crash_then_abort() {
    let outcomes = rotate_crash_points(true, Recovery::Abort);
    // Until the vault has sealed the new key, the rotation can be dropped.
    abort_is_accepted_before(&outcomes, "vault reply register-finish");
}

#[test]
fn rotate_key_in_key_mode_crash_then_retry() {
    let outcomes = rotate_crash_points(false, Recovery::Retry);
    assert!(outcomes.len() >= 10, "{}", outcomes.len());
}

#[test]
fn rotate_key_in_key_mode_crash_then_abort() {
    let outcomes = rotate_crash_points(false, Recovery::Abort);
    // Until the deletions of the old objects begin, the rotation can be dropped.
    abort_is_accepted_before(&outcomes, "delete ");
}
