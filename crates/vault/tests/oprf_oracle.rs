//! Finding 1 of the vault assessment (spec 4.10.4): RegisterStart must not be an uncharged
//! password oracle. Each test crafts requests byte for byte, as an attacker with an independent
//! client would, and fails against a vault that evaluates a live registration's OPRF key outside
//! a charged login.

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_vault::channel;
use e2ee_backup_vault::client::{Endpoint, Registration};
use e2ee_backup_vault::hsm::{Hsm, HsmConfig, HsmSecrets};
use e2ee_backup_vault::memory::MemoryVault;
use e2ee_backup_vault::messages::{RefusalReason, Request, Response};
use e2ee_backup_vault::suite::KsfProfile;
use rand_core::OsRng;

const FLEET: &[u8] = b"fleet.test";
const NOW: u64 = 1_800_000_000;

struct Attacker {
    vault: MemoryVault,
    endpoint: Endpoint,
    key_id: u8,
    public: channel::FleetPublicKey,
}

impl Attacker {
    fn new(profile: KsfProfile) -> Self {
        let secrets = HsmSecrets::generate(&mut OsRng, FLEET);
        let (key_id, public) = secrets.public_keys()[0];
        let config = HsmConfig { budget: 5, ksf_profile: profile, ..HsmConfig::default() };
        let vault = MemoryVault::new(Hsm::new(secrets, config).unwrap(), NOW);
        let endpoint = Endpoint::new(FLEET, key_id, public).accepting_fast_ksf();
        Self { vault, endpoint, key_id, public }
    }

    /// Seals `request` as any client can, sends it and opens the answer.
    fn send(&mut self, account: &[u8], request: &Request) -> Response {
        let (envelope, pending) = channel::seal_request(
            &mut OsRng,
            FLEET,
            self.key_id,
            &self.public,
            account,
            &request.encode(),
        )
        .unwrap();
        let sealed = self.vault.call(&mut OsRng, &envelope).unwrap();
        Response::decode(&pending.open(&sealed).unwrap()).unwrap()
    }

    fn register(&mut self, account: &[u8], password: &[u8]) {
        let ep = self.endpoint.clone();
        let (state, request) =
            Registration::start(&mut OsRng, &ep, account, password, None).unwrap();
        let response = self.vault.call(&mut OsRng, &request).unwrap();
        let (state, request) =
            state.receive(&mut OsRng, &response, &BackupKey::generate()).unwrap();
        state.receive(&self.vault.call(&mut OsRng, &request).unwrap()).unwrap();
    }

    /// The OPRF evaluation a charged KE1 with `blinded` gets: the first 32 bytes of KE2.
    fn ke2_evaluation(&mut self, account: &[u8], blinded: [u8; 32]) -> [u8; 32] {
        // A real client's KE1 with our blinded element in front.
        let mut ke1 = [0u8; 96];
        ke1[..32].copy_from_slice(&blinded);
        ke1[32..].copy_from_slice(&fresh_ke1_tail());
        match self.send(account, &Request::LoginStart { ke1: Box::new(ke1) }) {
            Response::LoginChallenge { ke2, .. } => ke2[..32].try_into().unwrap(),
            other => panic!("expected a KE2, got {other:?}"),
        }
    }

    /// What an uncharged RegisterStart with `blinded` gets: the evaluation, or the refusal.
    fn register_start(&mut self, account: &[u8], blinded: [u8; 32]) -> Result<[u8; 32], Response> {
        match self
            .send(account, &Request::RegisterStart { registration_request: blinded, token: None })
        {
            Response::RegisterChallenge { registration_response, .. } => {
                Ok(registration_response[..32].try_into().unwrap())
            }
            other => Err(other),
        }
    }
}

/// A valid blinded element: the one of a real client's KE1.
fn blinded_element() -> [u8; 32] {
    let started = opaque_ke::ClientLogin::<e2ee_backup_vault::suite::VaultSuite>::start(
        &mut OsRng,
        b"candidate password",
    )
    .unwrap();
    started.message.serialize()[..32].try_into().unwrap()
}

/// The client nonce and key share of a real KE1.
fn fresh_ke1_tail() -> [u8; 64] {
    let started = opaque_ke::ClientLogin::<e2ee_backup_vault::suite::VaultSuite>::start(
        &mut OsRng,
        b"anything",
    )
    .unwrap();
    started.message.serialize()[32..].try_into().unwrap()
}

#[test]
fn register_start_on_a_registered_account_is_refused_without_a_token() {
    let mut a = Attacker::new(KsfProfile::Fast);
    a.register(b"victim", b"hunter2");
    let blinded = blinded_element();
    let charged = a.ke2_evaluation(b"victim", blinded);
    let before = a.vault.record(b"victim").unwrap().clone();
    // The attack of the assessment: the same blinded element through RegisterStart. Before the
    // fix the answer carried the evaluation under the registration's key, equal to KE2's.
    for _ in 0..20 {
        match a.register_start(b"victim", blinded) {
            Err(Response::Refused { reason: RefusalReason::NotAuthorised, remaining: 4 }) => {}
            Ok(evaluation) => {
                assert_ne!(evaluation, charged, "RegisterStart evaluated the login key");
                panic!("a RegisterStart without a token was answered on a registered account");
            }
            Err(other) => panic!("expected not-authorised, got {other:?}"),
        }
    }
    assert_eq!(a.vault.record(b"victim"), Some(&before), "nothing changed, nothing was charged");
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

/// A well-formed RFC 9807 registration record (any password).
fn valid_upload() -> [u8; 192] {
    use opaque_ke::{
        ClientRegistration, ClientRegistrationFinishParameters, ServerRegistration, ServerSetup,
    };
    type S = e2ee_backup_vault::suite::VaultSuite;
    let setup = ServerSetup::<S>::new(&mut OsRng);
    let start = ClientRegistration::<S>::start(&mut OsRng, b"pw").unwrap();
    let response = ServerRegistration::start(&setup, start.message, b"mia").unwrap();
    let ksf = KsfProfile::Fast.argon2();
    let finish = start
        .state
        .finish(
            &mut OsRng,
            b"pw",
            response.message,
            ClientRegistrationFinishParameters::new(
                opaque_ke::Identifiers { client: Some(b"mia"), server: Some(FLEET) },
                Some(&ksf),
            ),
        )
        .unwrap();
    finish.message.serialize().as_slice().try_into().unwrap()
}
