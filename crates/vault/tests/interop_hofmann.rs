//! Interoperability of the vault's OPAQUE configuration (RFC 9807 through opaque-ke, see
//! [`e2ee_backup_vault::suite`]) with an independent implementation of RFC 9807: the
//! `hofmann-rfc` crate (its own RFC 9380 hash-to-curve, RFC 9497 OPRF and OPAQUE-3DH code; it
//! shares only curve25519-dalek, sha2, hmac and argon2 with opaque-ke).
//!
//! Both implementations run ristretto255-SHA512 with 3DH, client identity = account id, server
//! identity = fleet id, and the vault's [`CONTEXT`]; key stretching is Argon2id with the
//! [`KsfProfile::Fast`] costs (v0x13, 256 KiB, 1 pass, 1 lane, 64-byte output, salt of 16 zero
//! bytes), so the shipped [`VaultSuite`] is what is tested, not only the identity-KSF variant.
//!
//! Messages cross between the implementations as bytes only. hofmann-rfc has no (de)serializers
//! for most of its message structs (only `KE1::serialize`, `KE2::deserialize` and
//! `Envelope::serialize`/`deserialize`); the `hof_*` framing helpers below split and join its
//! public fields in RFC 9807's wire order and check every length exactly.
//!
//! Both servers are built from one key set (the `oprf_seed` and the AKE key pair of an opaque-ke
//! [`ServerSetup`]), so the per-credential OPRF key derivation (RFC 9807 section 4.1.2:
//! `DeriveKeyPair(Expand(oprf_seed, credential_identifier || "OprfKey", Nok),
//! "OPAQUE-DeriveKeyPair")`) must agree for a record made through one server to be usable through
//! the other. The matrix test runs every combination of registering client, registering server,
//! login client and login server.

use e2ee_backup_vault::{Identities, KsfProfile, Suite, VaultSuite, internal::suite::CONTEXT};
use hofmann_rfc::opaque::config::{OpaqueCipherSuite, OpaqueConfig};
use hofmann_rfc::opaque::internal::{opaque_credentials, opaque_envelope};
use hofmann_rfc::opaque::model as hm;
use hofmann_rfc::opaque::{OpaqueClient, OpaqueServer};
use opaque_ke::errors::ProtocolError;
use opaque_ke::ksf::Ksf;
use opaque_ke::{
    ClientLogin, ClientLoginFinishParameters, ClientRegistration,
    ClientRegistrationFinishParameters, CredentialFinalization, CredentialRequest,
    CredentialResponse, RegistrationRequest, RegistrationResponse, RegistrationUpload, ServerLogin,
    ServerLoginParameters, ServerRegistration, ServerSetup,
};
use rand_core::{OsRng, RngCore};

const ACCOUNT: &[u8] = b"account:6f1c2e0a-93b4-4c6e-8d7f-0b1a2c3d4e5f";
const FLEET: &[u8] = b"fleet:eu-west-hsm-fleet-3";
const PASSWORD: &[u8] = b"correct horse battery staple";
const WRONG_PASSWORD: &[u8] = b"correct horse battery stapler";

/// RFC 9807 sizes for ristretto255-SHA512 (Npk = Nsk = Noe = 32, Nh = Nm = 64, Nn = 32).
const NPK: usize = 32;
const NH: usize = 64;
const NN: usize = 32;
const ENVELOPE: usize = NN + NH;
const MASKED_RESPONSE: usize = NPK + ENVELOPE;
const REGISTRATION_REQUEST: usize = NPK;
const REGISTRATION_RESPONSE: usize = NPK + NPK;
const RECORD: usize = NPK + NH + ENVELOPE;
const KE1: usize = NPK + NN + NPK;
const KE2: usize = NPK + NN + MASKED_RESPONSE + NN + NPK + NH;
const KE3: usize = NH;

fn ids() -> Identities<'static> {
    Identities { account: ACCOUNT, fleet: FLEET }
}

fn random(len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    OsRng.fill_bytes(&mut out);
    out
}

/// One configuration, as each implementation spells it.
struct Flavor<K> {
    /// opaque-ke's key stretching function.
    ksf: K,
    /// The context both sides bind into the transcript.
    context: Vec<u8>,
    /// hofmann-rfc's configuration (suite, KSF, context).
    hofmann: OpaqueConfig,
}

/// The vault's shipped configuration with the Fast Argon2id profile.
fn vault_flavor() -> Flavor<opaque_ke::argon2::Argon2<'static>> {
    let (m, t, p) = KsfProfile::Fast.costs();
    assert_eq!((m, t, p), (256, 1, 1), "the Fast profile this test documents");
    Flavor {
        ksf: KsfProfile::Fast.argon2(),
        context: CONTEXT.to_vec(),
        hofmann: OpaqueConfig::with_argon2id(
            OpaqueCipherSuite::ristretto255_sha512(),
            CONTEXT.to_vec(),
            m,
            t,
            p,
        ),
    }
}

/// The identity-KSF variant (`Suite<Identity>`, i.e. the vault's `RfcSuite`). hofmann-rfc only offers the identity KSF through
/// `for_testing_with_suite`, whose context is fixed to "OPAQUE-POC" (there is no setter), so this
/// flavor cannot use the vault's [`CONTEXT`].
fn identity_flavor() -> Flavor<opaque_ke::ksf::Identity> {
    let hofmann = OpaqueConfig::for_testing_with_suite(OpaqueCipherSuite::ristretto255_sha512());
    Flavor { ksf: opaque_ke::ksf::Identity, context: hofmann.context().to_vec(), hofmann }
}

/// The server key material both servers share: taken from an opaque-ke [`ServerSetup`]
/// (oprf_seed of Nh = 64 bytes, as RFC 9807 specifies; hofmann's own `generate` draws only
/// Nok = 32 bytes, but its `new` takes any length).
struct ServerKeys<K: Ksf> {
    setup: ServerSetup<Suite<K>>,
    oprf_seed: Vec<u8>,
    private_key: Vec<u8>,
    public_key: Vec<u8>,
}

impl<K: Ksf> ServerKeys<K> {
    fn new() -> Self {
        let setup = ServerSetup::<Suite<K>>::new(&mut OsRng);
        let bytes = setup.serialize();
        assert_eq!(bytes.len(), NH + 32 + NPK, "oprf_seed || private key || dummy public key");
        Self {
            oprf_seed: bytes[..NH].to_vec(),
            private_key: bytes[NH..NH + 32].to_vec(),
            public_key: setup.keypair().public().serialize().to_vec(),
            setup,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    OpaqueKe,
    Hofmann,
}

const SIDES: [Side; 2] = [Side::OpaqueKe, Side::Hofmann];

// ---- hofmann-rfc framing: its structs <-> RFC 9807 wire bytes ----

fn split<'a>(bytes: &mut &'a [u8], len: usize) -> &'a [u8] {
    let (head, tail) = bytes.split_at(len);
    *bytes = tail;
    head
}

fn hof_registration_request(bytes: &[u8]) -> hm::RegistrationRequest {
    assert_eq!(bytes.len(), REGISTRATION_REQUEST);
    hm::RegistrationRequest { blinded_element: bytes.to_vec() }
}

fn hof_registration_response_bytes(m: &hm::RegistrationResponse) -> Vec<u8> {
    [m.evaluated_element.as_slice(), &m.server_public_key].concat()
}

fn hof_registration_response(bytes: &[u8]) -> hm::RegistrationResponse {
    assert_eq!(bytes.len(), REGISTRATION_RESPONSE);
    hm::RegistrationResponse {
        evaluated_element: bytes[..NPK].to_vec(),
        server_public_key: bytes[NPK..].to_vec(),
    }
}

fn hof_record_bytes(r: &hm::RegistrationRecord) -> Vec<u8> {
    [r.client_public_key.as_slice(), &r.masking_key, &r.envelope.serialize()].concat()
}

fn hof_record(bytes: &[u8]) -> hm::RegistrationRecord {
    assert_eq!(bytes.len(), RECORD);
    hm::RegistrationRecord {
        client_public_key: bytes[..NPK].to_vec(),
        masking_key: bytes[NPK..NPK + NH].to_vec(),
        envelope: hm::Envelope::deserialize(bytes, NPK + NH, NN, NH).expect("an envelope"),
    }
}

fn hof_ke1(bytes: &[u8]) -> hm::KE1 {
    assert_eq!(bytes.len(), KE1);
    let mut rest = bytes;
    hm::KE1 {
        credential_request: hm::CredentialRequest {
            blinded_element: split(&mut rest, NPK).to_vec(),
        },
        client_nonce: split(&mut rest, NN).to_vec(),
        client_ake_public_key: split(&mut rest, NPK).to_vec(),
    }
}

fn hof_ke2_bytes(m: &hm::KE2) -> Vec<u8> {
    let c = &m.credential_response;
    [
        c.evaluated_element.as_slice(),
        &c.masking_nonce,
        &c.masked_response,
        &m.server_nonce,
        &m.server_ake_public_key,
        &m.server_mac,
    ]
    .concat()
}

fn hof_ke2(config: &OpaqueConfig, bytes: &[u8]) -> hm::KE2 {
    // hofmann's KE2::deserialize only rejects short input; require the exact length here.
    assert_eq!(bytes.len(), KE2);
    hm::KE2::deserialize(config, bytes).expect("a KE2")
}

fn hof_ke3(bytes: &[u8]) -> hm::KE3 {
    assert_eq!(bytes.len(), KE3);
    hm::KE3 { client_mac: bytes.to_vec() }
}

/// A uniformly random nonzero ristretto255 scalar, drawn through hofmann's own HashToScalar
/// (64 random bytes reduced modulo the group order), for its deterministic entry points. Its
/// random entry points take a rand_core 0.10 RNG; the deterministic ones are what they call.
fn hof_scalar(config: &OpaqueConfig) -> Vec<u8> {
    let scalar = config.cipher_suite().oprf_suite().hash_to_scalar(&random(64), b"interop-blind");
    assert!(scalar.iter().any(|&b| b != 0));
    scalar
}

fn hof_server<'a, K: Ksf>(flavor: &'a Flavor<K>, keys: &ServerKeys<K>) -> OpaqueServer<'a> {
    OpaqueServer::new(
        keys.private_key.clone(),
        keys.public_key.clone(),
        keys.oprf_seed.clone(),
        &flavor.hofmann,
    )
}

// ---- servers ----

fn server_registration_response<K: Ksf>(
    side: Side,
    flavor: &Flavor<K>,
    keys: &ServerKeys<K>,
    request: &[u8],
) -> Vec<u8> {
    match side {
        Side::OpaqueKe => {
            let request = RegistrationRequest::<Suite<K>>::deserialize(request).expect("request");
            ServerRegistration::start(&keys.setup, request, ACCOUNT)
                .expect("registration start")
                .message
                .serialize()
                .to_vec()
        }
        Side::Hofmann => {
            let response = hof_server(flavor, keys)
                .create_registration_response(&hof_registration_request(request), ACCOUNT)
                .expect("registration response");
            hof_registration_response_bytes(&response)
        }
    }
}

/// What the server stores from the client's upload (RFC 9807's RegistrationRecord).
fn server_store<K: Ksf>(side: Side, upload: &[u8]) -> Vec<u8> {
    match side {
        Side::OpaqueKe => {
            let upload = RegistrationUpload::<Suite<K>>::deserialize(upload).expect("upload");
            ServerRegistration::finish(upload).serialize().to_vec()
        }
        Side::Hofmann => hof_record_bytes(&hof_record(upload)),
    }
}

enum ServerState<K: Ksf> {
    OpaqueKe(Box<ServerLogin<Suite<K>>>),
    Hofmann(hm::ServerAuthState),
}

fn server_ke2<K: Ksf>(
    side: Side,
    flavor: &Flavor<K>,
    keys: &ServerKeys<K>,
    record: &[u8],
    ke1: &[u8],
) -> (Vec<u8>, ServerState<K>) {
    match side {
        Side::OpaqueKe => {
            let record = ServerRegistration::<Suite<K>>::deserialize(record).expect("record");
            let request = CredentialRequest::<Suite<K>>::deserialize(ke1).expect("KE1");
            let params = ServerLoginParameters {
                context: Some(&flavor.context),
                identifiers: ids().opaque(),
            };
            let started =
                ServerLogin::start(&mut OsRng, &keys.setup, Some(record), request, ACCOUNT, params)
                    .expect("login start");
            (started.message.serialize().to_vec(), ServerState::OpaqueKe(Box::new(started.state)))
        }
        Side::Hofmann => {
            let result = hof_server(flavor, keys)
                .generate_ke2_deterministic(
                    Some(FLEET),
                    &hof_record(record),
                    ACCOUNT,
                    &hof_ke1(ke1),
                    Some(ACCOUNT),
                    &random(NN),
                    &random(NN),
                    &random(NN),
                )
                .expect("KE2");
            (hof_ke2_bytes(&result.ke2), ServerState::Hofmann(result.server_auth_state))
        }
    }
}

/// The server's session key, or why it refused KE3.
fn server_finish<K: Ksf>(
    flavor: &Flavor<K>,
    keys: &ServerKeys<K>,
    state: ServerState<K>,
    ke3: &[u8],
) -> Result<Vec<u8>, String> {
    match state {
        ServerState::OpaqueKe(state) => {
            let ke3 = CredentialFinalization::<Suite<K>>::deserialize(ke3).expect("KE3");
            let params = ServerLoginParameters {
                context: Some(&flavor.context),
                identifiers: ids().opaque(),
            };
            state.finish(ke3, params).map(|f| f.session_key.to_vec()).map_err(|e| format!("{e:?}"))
        }
        ServerState::Hofmann(state) => {
            hof_server(flavor, keys).server_finish(&state, &hof_ke3(ke3)).map_err(str::to_string)
        }
    }
}

// ---- clients ----

/// A client registration against `server`: the stored record and the client's export key.
fn register<K: Ksf>(
    client: Side,
    server: Side,
    flavor: &Flavor<K>,
    keys: &ServerKeys<K>,
    password: &[u8],
) -> (Vec<u8>, Vec<u8>) {
    let (upload, export_key) = match client {
        Side::OpaqueKe => {
            let started = ClientRegistration::<Suite<K>>::start(&mut OsRng, password)
                .expect("registration start");
            let request = started.message.serialize().to_vec();
            assert_eq!(request.len(), REGISTRATION_REQUEST);
            let response = server_registration_response(server, flavor, keys, &request);
            let response = RegistrationResponse::<Suite<K>>::deserialize(&response)
                .expect("registration response");
            let params = ClientRegistrationFinishParameters::new(ids().opaque(), Some(&flavor.ksf));
            let finished = started
                .state
                .finish(&mut OsRng, password, response, params)
                .expect("registration finish");
            (finished.message.serialize().to_vec(), finished.export_key.to_vec())
        }
        Side::Hofmann => {
            let config = &flavor.hofmann;
            let hclient = OpaqueClient::new(config);
            let state =
                hclient.create_registration_request_deterministic(password, &hof_scalar(config));
            let response =
                server_registration_response(server, flavor, keys, &state.request.blinded_element);
            let response = hof_registration_response(&response);
            let nonce = random(NN);
            let record = hclient
                .finalize_registration_deterministic(
                    &state,
                    &response,
                    Some(FLEET),
                    Some(ACCOUNT),
                    &nonce,
                )
                .expect("registration finish");
            // hofmann's finalize_registration drops the export key Store computes; recompute it
            // with the same (public, `internal`) functions finalize_registration runs.
            let randomized_pwd = opaque_credentials::derive_randomized_pwd(
                password,
                &state.blind,
                &response.evaluated_element,
                config,
            )
            .expect("randomized_pwd");
            let stored = opaque_envelope::store(
                config,
                &randomized_pwd,
                &response.server_public_key,
                Some(FLEET),
                Some(ACCOUNT),
                &nonce,
            );
            assert_eq!(stored.client_public_key, record.client_public_key);
            assert_eq!(stored.masking_key, record.masking_key);
            assert_eq!(stored.envelope.serialize(), record.envelope.serialize());
            (hof_record_bytes(&record), stored.export_key.clone())
        }
    };
    assert_eq!(upload.len(), RECORD);
    assert_eq!(export_key.len(), NH);
    let record = server_store::<K>(server, &upload);
    assert_eq!(record, upload, "the stored record is the upload, byte for byte");
    (record, export_key)
}

#[derive(Debug)]
enum LoginFailure {
    /// The client rejected KE2 (wrong password, or a transcript mismatch).
    ClientAtKe2(String),
    /// The server rejected KE3.
    ServerAtKe3(String),
}

#[derive(Debug)]
struct LoginSuccess {
    client_session_key: Vec<u8>,
    server_session_key: Vec<u8>,
    export_key: Vec<u8>,
}

enum ClientState<K: Ksf> {
    OpaqueKe(Box<ClientLogin<Suite<K>>>),
    Hofmann(hm::ClientAuthState),
}

fn login<K: Ksf>(
    client: Side,
    server: Side,
    flavor: &Flavor<K>,
    keys: &ServerKeys<K>,
    record: &[u8],
    password: &[u8],
) -> Result<LoginSuccess, LoginFailure> {
    login_with(client, server, flavor, keys, record, password, false)
}

/// A login; with `tamper_ke3`, one bit of the client's KE3 is flipped on the way to the server.
fn login_with<K: Ksf>(
    client: Side,
    server: Side,
    flavor: &Flavor<K>,
    keys: &ServerKeys<K>,
    record: &[u8],
    password: &[u8],
    tamper_ke3: bool,
) -> Result<LoginSuccess, LoginFailure> {
    let config = &flavor.hofmann;
    let (ke1, state) = match client {
        Side::OpaqueKe => {
            let started = ClientLogin::<Suite<K>>::start(&mut OsRng, password).expect("KE1");
            (started.message.serialize().to_vec(), ClientState::OpaqueKe(Box::new(started.state)))
        }
        Side::Hofmann => {
            let state = OpaqueClient::new(config).generate_ke1_deterministic(
                password,
                &hof_scalar(config),
                &random(NN),
                &random(NN),
            );
            (state.ke1.serialize(), ClientState::Hofmann(state))
        }
    };
    assert_eq!(ke1.len(), KE1);

    let (ke2, server_state) = server_ke2(server, flavor, keys, record, &ke1);
    assert_eq!(ke2.len(), KE2);

    let (ke3, client_session_key, export_key) = match state {
        ClientState::OpaqueKe(state) => {
            let response = CredentialResponse::<Suite<K>>::deserialize(&ke2).expect("KE2");
            let params = ClientLoginFinishParameters::new(
                Some(&flavor.context),
                ids().opaque(),
                Some(&flavor.ksf),
            );
            match state.finish(&mut OsRng, password, response, params) {
                Ok(f) => {
                    assert_eq!(f.server_s_pk.serialize().as_slice(), keys.public_key.as_slice());
                    (f.message.serialize().to_vec(), f.session_key.to_vec(), f.export_key.to_vec())
                }
                Err(ProtocolError::InvalidLoginError) => {
                    return Err(LoginFailure::ClientAtKe2("InvalidLoginError".into()));
                }
                Err(e) => panic!("opaque-ke client: unexpected error {e:?}"),
            }
        }
        ClientState::Hofmann(state) => {
            match OpaqueClient::new(config).generate_ke3(
                &state,
                Some(ACCOUNT),
                Some(FLEET),
                &hof_ke2(config, &ke2),
            ) {
                Ok(r) => (r.ke3.client_mac.clone(), r.session_key.clone(), r.export_key.clone()),
                Err(e) => return Err(LoginFailure::ClientAtKe2(e.to_string())),
            }
        }
    };
    assert_eq!(ke3.len(), KE3);
    let mut ke3 = ke3;
    if tamper_ke3 {
        ke3[7] ^= 0x20;
    }

    let server_session_key =
        server_finish(flavor, keys, server_state, &ke3).map_err(LoginFailure::ServerAtKe3)?;
    Ok(LoginSuccess { client_session_key, server_session_key, export_key })
}

fn check_login<K: Ksf>(
    client: Side,
    server: Side,
    flavor: &Flavor<K>,
    keys: &ServerKeys<K>,
    record: &[u8],
    registration_export_key: &[u8],
) -> Vec<u8> {
    let what = format!("{client:?} client logging in to {server:?} server");
    let ok = login(client, server, flavor, keys, record, PASSWORD)
        .unwrap_or_else(|e| panic!("{what}: {e:?}"));
    assert_eq!(ok.client_session_key.len(), NH, "{what}");
    assert_eq!(ok.client_session_key, ok.server_session_key, "{what}: session keys");
    assert_eq!(ok.export_key, registration_export_key, "{what}: export key");
    ok.client_session_key
}

fn check_wrong_password<K: Ksf>(
    client: Side,
    server: Side,
    flavor: &Flavor<K>,
    keys: &ServerKeys<K>,
    record: &[u8],
) {
    let what = format!("{client:?} client, wrong password, {server:?} server");
    match login(client, server, flavor, keys, record, WRONG_PASSWORD) {
        Err(LoginFailure::ClientAtKe2(reason)) => {
            let expected = match client {
                Side::OpaqueKe => "InvalidLoginError",
                Side::Hofmann => "Authentication failed",
            };
            assert_eq!(reason, expected, "{what}");
        }
        other => panic!("{what}: expected the client to reject KE2, got {other:?}"),
    }
}

// ---- tests ----

/// The two KSFs are the same function: opaque-ke's `Ksf for Argon2` with the Fast profile and
/// hofmann's `stretch_password` with (256 KiB, 1, 1), on a 64-byte input (the OPRF output size).
#[test]
fn argon2id_fast_profile_stretches_identically() {
    use opaque_ke::generic_array::{GenericArray, typenum::U64};
    let flavor = vault_flavor();
    for _ in 0..4 {
        let input = random(NH);
        let ours = flavor.ksf.hash(GenericArray::<u8, U64>::clone_from_slice(&input)).unwrap();
        assert_eq!(ours.as_slice(), flavor.hofmann.stretch_password(&input).as_slice());
    }
}

/// Direction 1: the vault's client (opaque-ke, [`VaultSuite`]) registers with and logs in to a
/// hofmann-rfc server. Export key at login = export key at registration; both session keys agree.
#[test]
fn opaque_ke_client_with_hofmann_server() {
    let flavor = vault_flavor();
    let keys = ServerKeys::<opaque_ke::argon2::Argon2<'static>>::new();
    let (record, export_key) = register(Side::OpaqueKe, Side::Hofmann, &flavor, &keys, PASSWORD);
    let first = check_login(Side::OpaqueKe, Side::Hofmann, &flavor, &keys, &record, &export_key);
    let second = check_login(Side::OpaqueKe, Side::Hofmann, &flavor, &keys, &record, &export_key);
    assert_ne!(first, second, "fresh session key per login");
    check_wrong_password(Side::OpaqueKe, Side::Hofmann, &flavor, &keys, &record);
}

/// Direction 2: a hofmann-rfc client registers with and logs in to the vault's server side
/// (opaque-ke, [`VaultSuite`], as the HSM calls it: credential identifier = account).
#[test]
fn hofmann_client_with_opaque_ke_server() {
    let flavor = vault_flavor();
    let keys = ServerKeys::<opaque_ke::argon2::Argon2<'static>>::new();
    let (record, export_key) = register(Side::Hofmann, Side::OpaqueKe, &flavor, &keys, PASSWORD);
    let first = check_login(Side::Hofmann, Side::OpaqueKe, &flavor, &keys, &record, &export_key);
    let second = check_login(Side::Hofmann, Side::OpaqueKe, &flavor, &keys, &record, &export_key);
    assert_ne!(first, second, "fresh session key per login");
    check_wrong_password(Side::Hofmann, Side::OpaqueKe, &flavor, &keys, &record);
}

/// Every mix: register with (client A, server B), log in with (client C, server D), the two
/// servers sharing oprf_seed and AKE key pair. Passing means the per-credential OPRF key, the
/// envelope, the masking, the record layout and the 3DH transcript agree between the
/// implementations, and that a record is portable between them in either direction.
fn full_matrix<K: Ksf>(flavor: &Flavor<K>) {
    let keys = ServerKeys::<K>::new();
    for reg_client in SIDES {
        for reg_server in SIDES {
            let (record, export_key) = register(reg_client, reg_server, flavor, &keys, PASSWORD);
            for login_client in SIDES {
                for login_server in SIDES {
                    check_login(login_client, login_server, flavor, &keys, &record, &export_key);
                    check_wrong_password(login_client, login_server, flavor, &keys, &record);
                }
            }
        }
    }
}

#[test]
fn cross_registration_matrix_argon2id() {
    full_matrix(&vault_flavor());
}

/// The same with the identity KSF (`RfcSuite`); see [`identity_flavor`] for why its context is
/// hofmann's fixed "OPAQUE-POC" rather than the vault's.
#[test]
fn cross_registration_matrix_identity_ksf() {
    full_matrix(&identity_flavor());
}

/// Context and identities are really bound on both sides: a server whose context or fleet id
/// differs from the client's makes the client reject KE2, in both directions.
#[test]
fn mismatched_context_or_identity_is_rejected_at_ke2() {
    let flavor = vault_flavor();
    let keys = ServerKeys::<opaque_ke::argon2::Argon2<'static>>::new();
    let (record, _) = register(Side::OpaqueKe, Side::OpaqueKe, &flavor, &keys, PASSWORD);

    // A hofmann server with another context, same KSF and keys.
    let (m, t, p) = KsfProfile::Fast.costs();
    let other = Flavor {
        ksf: KsfProfile::Fast.argon2(),
        context: b"e2ee-backups/v2/vault".to_vec(),
        hofmann: OpaqueConfig::with_argon2id(
            OpaqueCipherSuite::ristretto255_sha512(),
            b"e2ee-backups/v2/vault".to_vec(),
            m,
            t,
            p,
        ),
    };
    let hofmann_server = hof_server(&other, &keys);
    let opaque_client = ClientLogin::<VaultSuite>::start(&mut OsRng, PASSWORD).unwrap();
    let ke1 = hof_ke1(&opaque_client.message.serialize());
    let ke2 = hofmann_server
        .generate_ke2_deterministic(
            Some(FLEET),
            &hof_record(&record),
            ACCOUNT,
            &ke1,
            Some(ACCOUNT),
            &random(NN),
            &random(NN),
            &random(NN),
        )
        .map(|r| hof_ke2_bytes(&r.ke2))
        .expect("KE2");
    let params = ClientLoginFinishParameters::new(Some(CONTEXT), ids().opaque(), Some(&flavor.ksf));
    let result = opaque_client.state.finish(
        &mut OsRng,
        PASSWORD,
        CredentialResponse::deserialize(&ke2).unwrap(),
        params,
    );
    assert!(matches!(result, Err(ProtocolError::InvalidLoginError)), "context mismatch");

    // An opaque-ke server naming another fleet; a hofmann client expecting FLEET.
    let config = &flavor.hofmann;
    let state = OpaqueClient::new(config).generate_ke1_deterministic(
        PASSWORD,
        &hof_scalar(config),
        &random(NN),
        &random(NN),
    );
    let request = CredentialRequest::<VaultSuite>::deserialize(&state.ke1.serialize()).unwrap();
    let wrong_ids = Identities { account: ACCOUNT, fleet: b"fleet:another" };
    let started = ServerLogin::start(
        &mut OsRng,
        &keys.setup,
        Some(ServerRegistration::deserialize(&record).unwrap()),
        request,
        ACCOUNT,
        ServerLoginParameters { context: Some(CONTEXT), identifiers: wrong_ids.opaque() },
    )
    .unwrap();
    let ke2 = hof_ke2(config, &started.message.serialize());
    let result = OpaqueClient::new(config).generate_ke3(&state, Some(ACCOUNT), Some(FLEET), &ke2);
    assert_eq!(result.err(), Some("Authentication failed"), "fleet id mismatch");
}

/// The server side detects a forged KE3 (client MAC) from either client, on either server.
#[test]
fn tampered_ke3_is_rejected_by_the_server() {
    let flavor = vault_flavor();
    let keys = ServerKeys::<opaque_ke::argon2::Argon2<'static>>::new();
    let (record, _) = register(Side::OpaqueKe, Side::Hofmann, &flavor, &keys, PASSWORD);
    for client in SIDES {
        for server in SIDES {
            let what = format!("{client:?} client, tampered KE3, {server:?} server");
            let expected = match server {
                Side::OpaqueKe => "InvalidLoginError",
                Side::Hofmann => "Authentication failed",
            };
            match login_with(client, server, &flavor, &keys, &record, PASSWORD, true) {
                Err(LoginFailure::ServerAtKe3(reason)) => assert_eq!(reason, expected, "{what}"),
                other => panic!("{what}: expected the server to reject KE3, got {other:?}"),
            }
        }
    }
}
