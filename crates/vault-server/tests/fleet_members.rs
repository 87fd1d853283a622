//! Changing a fleet's replicas with the real binary (spec section 7.9): a fourth replica is
//! prepared, started and added; it catches up with the registrations made before; a crashed
//! replica is removed; with two of the original replicas gone, the fleet of three voters
//! still answers through the new replica, and node ids are not reused.

use e2ee_backup_vault::{AccountId, Endpoint};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::cluster::{FleetProcesses, Signal};
use e2ee_backup_kdf::BackupKey;
use e2ee_backup_vault_server::client::{self, HttpVault};
use e2ee_backup_vault_server::files::{CONFIG_FILE, ConfigFile, replica_dir, unix_now};
use e2ee_backup_vault_server::{InitOptions, KsfName, members};

mod common;

use common::{free_loopback, place_replicas};

const BIN: &str = env!("CARGO_BIN_EXE_e2ee-backup-vault");

/// Runs `journey`, retrying while the fleet elects or catches up.
fn retrying<T, E: std::fmt::Debug>(mut journey: impl FnMut() -> Result<T, E>) -> T {
    let mut last = None;
    for _ in 0..100 {
        match journey() {
            Ok(value) => return value,
            Err(e) => last = Some(e),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the journey kept failing: {last:?}");
}

/// Runs `e2ee-backup-vault member ARGS --json`: its JSON object, `Err` when it failed.
fn member(args: &[&str]) -> Result<serde_json::Value, serde_json::Value> {
    let out = std::process::Command::new(BIN)
        .arg("member")
        .args(args)
        .arg("--json")
        .output()
        .expect("the binary runs");
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("member {args:?} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
    });
    assert_eq!(value["ok"], out.status.success(), "{value}");
    if out.status.success() { Ok(value) } else { Err(value) }
}

#[test]
fn a_replica_is_added_caught_up_and_an_old_one_removed() {
    let dir = tempfile::tempdir().unwrap();
    let options = InitOptions {
        replicas: 3,
        ksf: KsfName::Fast,
        ..InitOptions::new(dir.path(), "members.fleet")
    };
    let report = e2ee_backup_vault_server::init(&options).unwrap();
    let apis: Vec<SocketAddr> = (0..3).map(|_| free_loopback()).collect();
    let peers: Vec<SocketAddr> = (0..3).map(|_| free_loopback()).collect();
    place_replicas(dir.path(), &apis, &peers, &peers);
    let mut fleet = FleetProcesses::start(Path::new(BIN), dir.path(), 3).unwrap();
    let leader = fleet.wait_for_leader(Duration::from_secs(30)).unwrap();
    let follower = (leader + 1) % 3;

    let url = |fleet: &FleetProcesses, i: usize| format!("http://{}", fleet.replicas[i].api);
    let mut http = HttpVault::new(&url(&fleet, follower)).unwrap();
    let bundle = client::fetch_bundle(&mut http, &report.pin.0, unix_now(), None).unwrap();
    let ep = Endpoint::from_bundle(&bundle).unwrap().accepting_fast_ksf();
    let key = BackupKey::generate();
    retrying(|| {
        client::register(&mut http, &ep, AccountId::from_static(b"early"), b"early password", &key)
    });

    // A fourth replica: prepared from replica 1, started, added through a follower's peer
    // address (the request follows to the leader).
    let new_dir = replica_dir(dir.path(), 4);
    let from = replica_dir(dir.path(), 1);
    assert!(
        members::prepare(&from, &new_dir, 2, free_loopback(), free_loopback()).is_err(),
        "a node id of the fleet is refused"
    );
    // The operator's commands, as scripted: `member ... --json` (issue 11).
    let (from_arg, new_arg) = (from.to_str().unwrap(), new_dir.to_str().unwrap());
    let (api, peer) = (free_loopback().to_string(), free_loopback().to_string());
    let prepared = member(&[
        "prepare",
        "--from",
        from_arg,
        "--data-dir",
        new_arg,
        "--node-id",
        "4",
        "--api",
        &api,
        "--peer",
        &peer,
    ])
    .unwrap();
    assert_eq!(prepared["nodeId"], 4, "{prepared}");
    let fourth = fleet.launch(4, &new_dir).unwrap();
    let via = |i: usize| {
        let config =
            ConfigFile::read(&replica_dir(dir.path(), i as u64 + 1).join(CONFIG_FILE)).unwrap();
        config.replica.unwrap().peer_listen.to_string()
    };
    let added = member(&["add", "--data-dir", new_arg, "--via", &via(follower)]).unwrap();
    assert_eq!(added["voters"], serde_json::json!([1, 2, 3, 4]), "{added}");
    let again = member(&["add", "--data-dir", new_arg, "--via", &via(follower)]);
    let refused = again.expect_err("adding a member twice is refused");
    assert_eq!(refused["error"]["code"], "member-change-failed", "{refused}");

    // Replica 1 crashes and is removed; then replica 2 crashes too. Voters 3 and 4 are a
    // majority of {2, 3, 4}: the fleet answers, through the new replica, with the account
    // registered before it joined.
    fleet.signal(0, Signal::Kill).unwrap();
    let survivor_peer = via(2);
    let removed = retrying(|| {
        member(&["remove", "--data-dir", from_arg, "--node-id", "1", "--via", &survivor_peer])
    });
    assert_eq!(removed["voters"], serde_json::json!([2, 3, 4]), "{removed}");
    assert_eq!(removed["removed"], 1, "{removed}");
    fleet.signal(1, Signal::Kill).unwrap();
    let mut http = HttpVault::new(&url(&fleet, fourth)).unwrap();
    let session = retrying(|| {
        client::login(&mut http, &ep, AccountId::from_static(b"early"), b"early password")
    });
    assert_eq!(session.key().expose_secret(), key.expose_secret());
    let status = fleet.status(fourth).expect("the new replica answers");
    assert_eq!(status["voters"], serde_json::json!([2, 3, 4]));
}

/// A replica waits for as many applied entries as it holds records before it builds a
/// snapshot, `snapshot_after` being the floor (spec section 7.6): with 300 records and
/// `snapshot_after = 10`, 100 logins (200 entries) leave every replica without a snapshot, and
/// 100 more make one on each.
#[test]
fn a_replica_snapshots_after_as_many_entries_as_it_holds_records() {
    const RECORDS: u64 = 300;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("fleet");
    let apis: Vec<SocketAddr> = (0..3).map(|_| free_loopback()).collect();
    let peers: Vec<SocketAddr> = (0..3).map(|_| free_loopback()).collect();
    common::init_fleet(&dir, "snapshots.fleet", 5, &apis, &peers);
    place_replicas(&dir, &apis, &peers, &peers);
    let mut populate = std::process::Command::new(BIN);
    populate.arg("populate").args(["--accounts", &RECORDS.to_string()]);
    for node in 1..=3 {
        let path = replica_dir(&dir, node).join(CONFIG_FILE);
        let mut config = ConfigFile::read(&path).unwrap();
        config.replica.as_mut().unwrap().snapshot_after = 10;
        std::fs::write(&path, config.render()).unwrap();
        populate.arg("--data-dir").arg(replica_dir(&dir, node));
    }
    let out = populate.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut procs = FleetProcesses::start(Path::new(BIN), &dir, 3).unwrap();
    let leader = procs.wait_for_leader(Duration::from_secs(30)).unwrap();
    let pin = e2ee_backup_vault_server::FleetPin::read(&dir.join("fleet.pin")).unwrap();
    let mut http = HttpVault::at(apis[leader]).with_timeout(Duration::from_secs(20));
    let bundle = retrying(|| client::fetch_bundle(&mut http, &pin.0, unix_now(), None));
    let endpoint = Endpoint::from_bundle(&bundle).unwrap().accepting_fast_ksf();
    let snapshots = |procs: &FleetProcesses| -> Vec<Option<u64>> {
        (0..3).map(|i| procs.status(i).and_then(|s| s["snapshot"].as_u64())).collect()
    };
    let mut log_in = |range: std::ops::Range<u64>| {
        for i in range {
            let (account, password) = (format!("scale-{i:07}"), format!("scale password {i}"));
            retrying(|| {
                client::login(
                    &mut http,
                    &endpoint,
                    AccountId::new(account.as_bytes()).unwrap(),
                    password.as_bytes(),
                )
            });
        }
    };

    log_in(0..100);
    let applied = procs.status(leader).unwrap()["last_applied"].as_u64().unwrap();
    assert!(applied >= 200, "two entries per login: {applied}");
    assert_eq!(snapshots(&procs), vec![None; 3], "no snapshot before {RECORDS} entries");

    log_in(100..200);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !snapshots(&procs).iter().all(|s| s.is_some_and(|s| s >= RECORDS)) {
        assert!(std::time::Instant::now() < deadline, "snapshots: {:?}", snapshots(&procs));
        std::thread::sleep(Duration::from_millis(100));
    }
    procs.stop();
}
