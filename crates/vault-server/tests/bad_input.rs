//! Malformed requests over HTTP each get the status and error code of spec section 4.15, the
//! server keeps serving, and a storage failure answers 503 without sending anything sealed.

use e2ee_backup_vault::{
    AccountId, AccountRecord, Endpoint, FleetBundle, Login, RecordChange, RefusalReason, Response,
    envelope,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use e2ee_backup_kdf::BackupKey;

use e2ee_backup_vault_server::client::{self, HttpError, HttpVault, RawResponse};
use e2ee_backup_vault_server::files::unix_now;
use e2ee_backup_vault_server::{
    BackgroundServer, InitOptions, InitReport, KsfName, RecordStore, RedbStore, RunningServer,
    ServerConfig, StoreError,
};
use rand_core::{OsRng, RngCore as _};

fn setup(dir: &std::path::Path) -> (InitReport, ServerConfig) {
    let mut options = InitOptions::new(dir, "bad-input.fleet");
    options.ksf = KsfName::Fast;
    let report = e2ee_backup_vault_server::init(&options).unwrap();
    let mut config = ServerConfig::from_data_dir(dir, None).unwrap();
    config.listen = "127.0.0.1:0".parse().unwrap();
    (report, config)
}

fn bundle(http: &mut HttpVault, report: &InitReport) -> FleetBundle {
    client::fetch_bundle(http, &report.pin.0, unix_now(), None).unwrap()
}

#[track_caller]
fn expect(response: RawResponse, status: u16, code: &str) {
    assert_eq!(response.status, status, "body: {}", String::from_utf8_lossy(&response.body));
    assert_eq!(response.content_type.as_deref(), Some("application/json"));
    let (got, message) = response.error_code().expect("a JSON error body");
    assert_eq!(got, code);
    assert!(!message.is_empty());
}

#[test]
fn malformed_requests_get_their_documented_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (report, config) = setup(dir.path());
    let server = BackgroundServer::start(config).unwrap();
    let mut http = HttpVault::new(&server.url()).unwrap();
    let bundle = bundle(&mut http, &report);
    let ep = Endpoint::from_bundle(&bundle).unwrap().accepting_fast_ksf();
    let (key_id, public) = bundle.keys[0];
    let (_, valid) = Login::start(&mut OsRng, &ep, AccountId::from_static(b"ab"), b"pw").unwrap();
    let post = |http: &mut HttpVault, path: &str, body: &[u8]| {
        http.request("POST", &format!("/v1/vault/{path}"), Some(body)).unwrap()
    };

    // The path.
    for path in ["zz", "abc", "ABCD", "4", &"ab".repeat(65), "%zz"] {
        expect(post(&mut http, path, &valid), 400, "bad-account");
    }
    // The size, checked before the body is read.
    expect(post(&mut http, "6162", &vec![1u8; 8309]), 413, "too-large");
    expect(post(&mut http, "6162", &vec![1u8; 200_000]), 413, "too-large");
    // Envelopes that do not parse.
    expect(post(&mut http, "6162", b""), 400, "malformed-envelope");
    expect(post(&mut http, "6162", &valid[..20]), 400, "malformed-envelope");
    expect(post(&mut http, "6162", &valid[..38 + 15]), 400, "malformed-envelope");
    let mut zero_account = valid.clone();
    zero_account[2..4].copy_from_slice(&[0, 0]);
    expect(post(&mut http, "6162", &zero_account), 400, "malformed-envelope");
    let mut too_long = valid[..38].to_vec();
    too_long.resize(8308, 7); // within the body limit, ciphertext over 8208 bytes
    expect(post(&mut http, "6162", &too_long), 400, "malformed-envelope");
    // Wrong version, unknown key, another account.
    let mut version = valid.clone();
    version[0] = 2;
    expect(post(&mut http, "6162", &version), 422, "unsupported-version");
    let mut unknown_key = valid.clone();
    unknown_key[1] = key_id.wrapping_add(7);
    expect(post(&mut http, "6162", &unknown_key), 422, "unknown-key-id");
    expect(post(&mut http, "6163", &valid), 400, "misaddressed");
    // Envelopes that parse but do not open.
    let mut flipped = valid.clone();
    *flipped.last_mut().unwrap() ^= 1;
    expect(post(&mut http, "6162", &flipped), 422, "request-does-not-open");
    let mut garbage = valid[..6].to_vec();
    let mut noise = vec![0u8; 32 + 120];
    OsRng.fill_bytes(&mut noise);
    garbage.extend_from_slice(&noise);
    expect(post(&mut http, "6162", &garbage), 422, "request-does-not-open");
    // Unknown paths and methods.
    let response = http.request("GET", "/v1/nothing", None).unwrap();
    expect(response, 404, "not-found");
    assert_eq!(http.request("GET", "/v1/vault/6162", None).unwrap().status, 405);

    // A valid envelope whose plaintext is garbage opens: 200 and a sealed refusal.
    let (envelope, pending) = envelope::seal_request(
        &mut OsRng,
        &bundle.fleet_id,
        key_id,
        &public,
        b"ab",
        b"\x03 not a KE1",
    )
    .unwrap();
    let response = post(&mut http, "6162", &envelope);
    assert_eq!(response.status, 200);
    assert_eq!(response.content_type.as_deref(), Some("application/octet-stream"));
    let plain = pending.open(&response.body).unwrap();
    assert!(matches!(
        Response::decode(&plain).unwrap(),
        Response::Refused { reason: RefusalReason::InvalidRequest, .. }
    ));

    // Still serving: a valid client registers and gets its key back.
    let key = BackupKey::generate();
    client::register(&mut http, &ep, AccountId::from_static(b"after"), b"pw", &key).unwrap();
    assert_eq!(
        client::login(&mut http, &ep, AccountId::from_static(b"after"), b"pw").unwrap().key(),
        &key
    );
}

/// The redb store, with writes that fail while `broken` is set.
struct FlakyStore {
    inner: RedbStore,
    broken: AtomicBool,
}

impl RecordStore for FlakyStore {
    fn load(&self, account: &[u8]) -> Result<Option<AccountRecord>, StoreError> {
        self.inner.load(account)
    }

    fn apply(&self, account: &[u8], change: &RecordChange) -> Result<(), StoreError> {
        if self.broken.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("disk full (test)"));
        }
        self.inner.apply(account, change)
    }
}

#[test]
fn a_failed_write_answers_503_and_sends_no_ke2() {
    let dir = tempfile::tempdir().unwrap();
    let (report, config) = setup(dir.path());
    let store = Arc::new(FlakyStore {
        inner: RedbStore::open(dir.path()).unwrap(),
        broken: AtomicBool::new(false),
    });
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let server = runtime.block_on(RunningServer::start_with_store(config, store.clone())).unwrap();
    let mut http = HttpVault::at(server.addr);
    let ep = Endpoint::from_bundle(&bundle(&mut http, &report)).unwrap().accepting_fast_ksf();
    let key = BackupKey::generate();
    client::register(&mut http, &ep, AccountId::from_static(b"carol"), b"pw", &key).unwrap();

    store.broken.store(true, Ordering::SeqCst);
    let (state, ke1) =
        Login::start(&mut OsRng, &ep, AccountId::from_static(b"carol"), b"pw").unwrap();
    match http.call(b"carol", &ke1) {
        Err(HttpError::Server { status: 503, code, .. }) => assert_eq!(code, "storage"),
        other => panic!("expected 503 storage, got {other:?}"),
    }
    let record = store.inner.load(b"carol").unwrap().unwrap();
    assert_eq!((record.remaining, record.charges), (10, 0), "nothing was charged");

    // The client retries the same KE1 once the store is back: it is charged once and completes.
    store.broken.store(false, Ordering::SeqCst);
    let response = http.call(b"carol", &ke1).unwrap();
    let (state, ke3) = state.receive(&mut OsRng, &response).unwrap();
    let done = state.receive(&http.call(b"carol", &ke3).unwrap()).unwrap();
    assert_eq!(done.key(), &key);
    assert_eq!(store.inner.load(b"carol").unwrap().unwrap().charges, 1);
    runtime.block_on(server.shutdown()).unwrap();
}
