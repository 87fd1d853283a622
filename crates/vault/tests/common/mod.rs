//! What the attack tests share: an attacker that crafts vault requests byte for byte, as an
//! independent client would, against an in-memory vault.

#![allow(dead_code)]

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_vault::{
    AccountId, Endpoint, FleetId, Hsm, HsmConfig, HsmSecrets, KsfProfile, MemoryVault,
    Registration, Request, Response,
};

use rand_core::OsRng;

pub const FLEET: &[u8] = b"fleet.test";
pub const NOW: u64 = 1_800_000_000;

pub struct Attacker {
    pub vault: MemoryVault,
    pub endpoint: Endpoint,
    key_id: u8,
    public: e2ee_backup_vault::FleetPublicKey,
}

impl Attacker {
    pub fn new(profile: KsfProfile) -> Self {
        let secrets = HsmSecrets::generate(&mut OsRng, FleetId::from_static(FLEET));
        let (key_id, public) = secrets.public_keys()[0];
        let config = HsmConfig { budget: 5, ksf_profile: profile, ..HsmConfig::default() };
        let vault = MemoryVault::new(Hsm::new(secrets, config).unwrap(), NOW);
        let endpoint =
            Endpoint::new(FleetId::from_static(FLEET), key_id, public).accepting_fast_ksf();
        Self { vault, endpoint, key_id, public }
    }

    /// Seals `request` as any client can, sends it and opens the answer.
    pub fn send(&mut self, account: &[u8], request: &Request) -> Response {
        let (envelope, pending) = e2ee_backup_vault::envelope::seal_request(
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

    pub fn register(&mut self, account: &[u8], password: &[u8]) {
        let ep = self.endpoint.clone();
        let (state, request) =
            Registration::start(&mut OsRng, &ep, AccountId::new(account).unwrap(), password, None)
                .unwrap();
        let response = self.vault.call(&mut OsRng, &request).unwrap();
        let (state, request) =
            state.receive(&mut OsRng, &response, &BackupKey::generate()).unwrap();
        state.receive(&self.vault.call(&mut OsRng, &request).unwrap()).unwrap();
    }

    /// The OPRF evaluation a charged KE1 with `blinded` gets: the first 32 bytes of KE2.
    pub fn ke2_evaluation(&mut self, account: &[u8], blinded: [u8; 32]) -> [u8; 32] {
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
    pub fn register_start(
        &mut self,
        account: &[u8],
        blinded: [u8; 32],
    ) -> Result<[u8; 32], Response> {
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
pub fn blinded_element() -> [u8; 32] {
    let started = opaque_ke::ClientLogin::<e2ee_backup_vault::VaultSuite>::start(
        &mut OsRng,
        b"candidate password",
    )
    .unwrap();
    started.message.serialize()[..32].try_into().unwrap()
}

/// The client nonce and key share of a real KE1.
pub fn fresh_ke1_tail() -> [u8; 64] {
    let started =
        opaque_ke::ClientLogin::<e2ee_backup_vault::VaultSuite>::start(&mut OsRng, b"anything")
            .unwrap();
    started.message.serialize()[32..].try_into().unwrap()
}

/// A well-formed RFC 9807 registration record (any password).
pub fn valid_upload() -> [u8; 192] {
    use opaque_ke::{
        ClientRegistration, ClientRegistrationFinishParameters, ServerRegistration, ServerSetup,
    };
    type S = e2ee_backup_vault::VaultSuite;
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
