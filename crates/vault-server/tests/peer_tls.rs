//! Mutual TLS between replicas (spec section 7.7.1, issue 10 finding 2), against three real
//! `e2ee-backup-vault serve` processes made by `init --peer-tls`: the fleet elects a leader and
//! serves accounts over TLS; a plain-HTTP sender, and a TLS client without the fleet's key, get
//! nothing through the peer port; a client with the fleet's key still meets the peer seal.

use e2ee_backup_vault::{AccountId, Endpoint};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::cluster::{FleetProcesses, Signal};
use e2ee_backup_kdf::BackupKey;
use e2ee_backup_vault_server::client::{self, HttpError, HttpVault, JourneyError};
use e2ee_backup_vault_server::files::{
    self, CONFIG_FILE, ConfigFile, FleetPin, PIN_FILE, replica_dir, unix_now,
};
use e2ee_backup_vault_server::peer_tls::PeerTls;
use e2ee_backup_vault_server::raft::peer_client;
use e2ee_backup_vault_server::{InitOptions, KsfName};

mod common;

use common::{free_loopback, place_replicas};

const EXE: &str = env!("CARGO_BIN_EXE_e2ee-backup-vault");
const REPLICAS: usize = 3;

/// What a POST of `body` to `/raft/append` at `addr` through `tls` gets: the status, or the
/// error.
fn post(tls: Option<&PeerTls>, addr: SocketAddr, body: &[u8]) -> Result<u16, String> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (builder, scheme) = peer_client(tls);
        let http = builder.timeout(Duration::from_secs(10)).build().map_err(|e| e.to_string())?;
        let sent = http.post(format!("{scheme}://{addr}/raft/append")).body(body.to_vec());
        let answer = sent.send().await.map_err(|e| format!("{e:?}"))?;
        Ok(answer.status().as_u16())
    })
}

/// Runs `journey` until it succeeds, retrying while the fleet answers 503 (a replica that does
/// not know the new leader yet), for at most 10 s.
fn retrying(mut journey: impl FnMut() -> Result<(), JourneyError>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match journey() {
            Ok(()) => return,
            Err(JourneyError::Http(HttpError::Server { status: 503, .. }))
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn replicas_speak_mutual_tls_and_strangers_get_nothing_through() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("fleet");
    let apis: Vec<SocketAddr> = (0..REPLICAS).map(|_| free_loopback()).collect();
    let peers: Vec<SocketAddr> = (0..REPLICAS).map(|_| free_loopback()).collect();
    let options = InitOptions {
        replicas: REPLICAS as u8,
        ksf: KsfName::Fast,
        budget: 3,
        listen: apis[0],
        peer_listen: peers[0],
        peer_tls: true,
        ..InitOptions::new(&dir, "fleet.tls")
    };
    e2ee_backup_vault_server::init(&options).unwrap();
    place_replicas(&dir, &apis, &peers, &peers);
    for i in 0..REPLICAS {
        let path = replica_dir(&dir, i as u64 + 1).join(CONFIG_FILE);
        let replica = ConfigFile::read(&path).unwrap().replica.unwrap();
        assert!(replica.peer_tls, "init --peer-tls writes peer_tls = true, and it reads back");
    }
    let mut procs = FleetProcesses::start(Path::new(EXE), &dir, REPLICAS as u64).unwrap();
    let leader = procs.wait_for_leader(Duration::from_secs(30)).expect("a leader over TLS");

    // Accounts are served: each charge and registration was committed through the TLS links.
    let pin = FleetPin::read(&dir.join(PIN_FILE)).unwrap();
    let mut http = HttpVault::at(apis[(leader + 1) % REPLICAS]);
    let bundle = client::fetch_bundle(&mut http, &pin.0, unix_now(), None).unwrap();
    let ep = Endpoint::from_bundle(&bundle).unwrap().accepting_fast_ksf();
    let key = BackupKey::generate();
    retrying(|| {
        client::register(&mut http, &ep, AccountId::from_static(b"alice"), b"pw", &key).map(drop)
    });
    assert_eq!(
        client::login(&mut http, &ep, AccountId::from_static(b"alice"), b"pw").unwrap().key(),
        &key
    );

    // Strangers: plain HTTP, and TLS with another key, get no answer at all.
    let target = peers[leader];
    let plain = post(None, target, b"anything");
    assert!(plain.is_err(), "plain HTTP reached the peer port: {plain:?}");
    let stranger = PeerTls::new(&[9; 32]).unwrap();
    let refused = post(Some(&stranger), target, b"anything");
    assert!(refused.is_err(), "a TLS client without the fleet key got through: {refused:?}");

    // With the fleet's key, the peer seal still refuses what it did not seal.
    let secrets = files::read_secrets(&replica_dir(&dir, 1)).unwrap();
    let fleet = PeerTls::new(&secrets.peer_tls_seed()).unwrap();
    assert_eq!(post(Some(&fleet), target, b"not a sealed message"), Ok(400));

    // The fleet survives losing its leader over TLS too.
    procs.signal(leader, Signal::Kill).unwrap();
    let next = procs.wait_for_leader(Duration::from_secs(30)).expect("a new leader over TLS");
    let mut http = HttpVault::at(apis[next]);
    let mut recovered = None;
    retrying(|| {
        client::login(&mut http, &ep, AccountId::from_static(b"alice"), b"pw")
            .map(|s| recovered = Some(s))
    });
    assert_eq!(recovered.unwrap().key(), &key);

    // The operator's membership tool goes through the same TLS: it removes the dead replica.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dead = leader as u64 + 1;
    let via = peers[next].to_string();
    let live = replica_dir(&dir, next as u64 + 1);
    let voters = runtime.block_on(e2ee_backup_vault_server::members::remove(&live, dead, &via));
    let voters = voters.expect("a membership change over TLS");
    assert!(!voters.contains(&dead) && voters.len() == REPLICAS - 1, "{voters:?}");
    procs.stop();
}
