//! Issue 10, finding 7d, against the real binary (spec section 4.15.1): a stranger who can reach
//! the vault spends a victim's budget and locks the account; a vault configured with the
//! relay's key serves only requests carrying the relay's account token, and per-account rates
//! bound how fast even a relayed client can guess.

mod common;

use e2ee_backup_vault::{AccountId, ClientError, Endpoint, Login};
use std::num::NonZeroU32;
use std::path::Path;

use common::{Served, endpoint, init_dir};
use e2ee_backup_kdf::BackupKey;
use e2ee_backup_vault_server::client::{self, HttpError, HttpVault, JourneyError};
use e2ee_backup_vault_server::files::{CONFIG_FILE, ConfigFile, RelayConfig, unix_now};
use e2ee_backup_vault_server::relay::{HEADER, RelayKey};
use rand_core::OsRng;

const BUDGET: u8 = 3;
const VICTIM: &[u8] = b"victim";
const PASSWORD: &[u8] = b"the victim's password";

fn configure(dir: &Path, relay: RelayConfig) {
    let path = dir.join(CONFIG_FILE);
    let mut config = ConfigFile::read(&path).unwrap();
    config.relay = relay;
    std::fs::write(&path, config.render()).unwrap();
    // What was written reads back the same.
    assert_eq!(ConfigFile::read(&path).unwrap().relay, config.relay);
}

/// One wrong guess by a stranger with `http`: the HTTP error, or what the vault answered.
fn guess(http: &mut HttpVault, ep: &Endpoint) -> Result<ClientError, HttpError> {
    let (state, ke1) =
        Login::start(&mut OsRng, ep, AccountId::from_static(VICTIM), b"a guess").unwrap();
    let response = http.call(VICTIM, &ke1)?;
    Ok(state.receive(&mut OsRng, &response).err().expect("a wrong guess does not log in"))
}

fn status_and_code(e: &HttpError) -> (u16, String) {
    match e {
        HttpError::Server { status, code, .. } => (*status, code.clone()),
        other => panic!("expected an HTTP error answer, got {other}"),
    }
}

#[test]
fn without_a_relay_key_a_stranger_locks_the_account() {
    // The threat the option answers: nothing stops a stranger from spending the budget.
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), "relay.open", BUDGET);
    let served = Served::start(dir.path(), "serve.log");
    let mut http = served.http();
    let ep = endpoint(&mut http, dir.path());
    client::register(
        &mut http,
        &ep,
        AccountId::from_static(VICTIM),
        PASSWORD,
        &BackupKey::generate(),
    )
    .unwrap();
    for _ in 0..BUDGET {
        assert!(matches!(guess(&mut http, &ep), Ok(ClientError::WrongPassword { .. })));
    }
    assert!(matches!(guess(&mut http, &ep), Ok(ClientError::Exhausted)));
}

#[test]
fn with_a_relay_key_only_the_relays_tokens_are_served() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), "relay.fleet", BUDGET);
    let relay = RelayKey::from_bytes(&[0x5a; 32]);
    let public_key = Some(hex::encode(relay.verifying_key().as_bytes()));
    configure(dir.path(), RelayConfig { public_key, requests_per_minute: None });
    let served = Served::start(dir.path(), "serve.log");
    let mut plain = served.http();
    let ep = endpoint(&mut plain, dir.path());
    let token = |account: &[u8], not_after: u64| relay.token(b"relay.fleet", account, not_after);

    // The victim, through the relay, registers.
    let mut relayed = served.http().with_account_token(token(VICTIM, unix_now() + 600));
    let key = BackupKey::generate();
    client::register(&mut relayed, &ep, AccountId::from_static(VICTIM), PASSWORD, &key).unwrap();

    // A stranger without a token, with another account's token, with an expired one, with one
    // of another relay or fleet, with a made-up one, or posing as a forwarding replica: every
    // guess is refused before any vault work, many more times than the budget.
    let other_relay = RelayKey::from_bytes(&[0x11; 32]);
    let strangers: Vec<(&str, HttpVault)> = vec![
        ("no token", served.http()),
        (
            "another account's token",
            served.http().with_account_token(token(b"mallory", unix_now() + 600)),
        ),
        ("an expired token", served.http().with_account_token(token(VICTIM, unix_now() - 1))),
        (
            "a token living too long",
            served.http().with_account_token(token(VICTIM, unix_now() + 7200)),
        ),
        (
            "another relay's token",
            served.http().with_account_token(other_relay.token(
                b"relay.fleet",
                VICTIM,
                unix_now() + 600,
            )),
        ),
        (
            "another fleet's token",
            served.http().with_account_token(relay.token(b"relay.other", VICTIM, unix_now() + 600)),
        ),
        ("a made-up token", served.http().with_account_token("ab".repeat(72))),
    ];
    for (what, mut http) in strangers {
        for _ in 0..BUDGET + 2 {
            let refused = guess(&mut http, &ep).expect_err(what);
            assert_eq!(status_and_code(&refused), (401, "unauthenticated".into()), "{what}");
        }
    }
    let posing = [
        (
            "posing as a forwarding replica",
            served.http().with_header("x-e2ee-vault-forwarded", "1"),
        ),
        ("a token that is not hex", served.http().with_header(HEADER, "not hex")),
    ];
    for (what, mut http) in posing {
        let refused = guess(&mut http, &ep).expect_err(what);
        assert_eq!(status_and_code(&refused), (401, "unauthenticated".into()), "{what}");
    }

    // Nothing was charged: the victim logs in with the full budget and gets K back.
    let session = match client::login(&mut relayed, &ep, AccountId::from_static(VICTIM), PASSWORD) {
        Ok(session) => session,
        Err(JourneyError::Vault(e)) => panic!("the victim's login failed: {e}"),
        Err(e) => panic!("{e}"),
    };
    assert_eq!(session.key(), &key);
    assert_eq!(session.remaining(), BUDGET, "a stranger's request was charged");
    assert!(served.log_text().contains("unauthenticated"));
}

#[test]
fn per_account_rates_bound_guessing() {
    let dir = tempfile::tempdir().unwrap();
    init_dir(dir.path(), "relay.rate", 10);
    let per_minute = NonZeroU32::new(4).unwrap();
    configure(dir.path(), RelayConfig { public_key: None, requests_per_minute: Some(per_minute) });
    let served = Served::start(dir.path(), "serve.log");
    let mut http = served.http();
    let ep = endpoint(&mut http, dir.path());
    for _ in 0..4 {
        assert!(matches!(guess(&mut http, &ep), Ok(ClientError::WrongPassword { .. })));
    }
    for _ in 0..3 {
        let refused = guess(&mut http, &ep).expect_err("over the rate");
        assert_eq!(status_and_code(&refused), (429, "rate-limited".into()));
    }
    // Another account has its own allowance.
    let mut other = served.http();
    let (state, ke1) =
        Login::start(&mut OsRng, &ep, AccountId::from_static(b"someone else"), b"pw").unwrap();
    let response = other.call(b"someone else", &ke1).expect("another account is served");
    assert!(matches!(state.receive(&mut OsRng, &response), Err(ClientError::WrongPassword { .. })));
}
