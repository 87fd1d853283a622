//! The Backup Key Vault: every protocol step on both sides, and the HSM's whole share of one
//! key retrieval beside the primitive operations it is made of. Time per call.
//!
//! Group `vault` (stretching profile `Fast` wherever the client stretches):
//!
//! - `client_register_start`: OPRF blinding and the sealed `RegisterStart`;
//! - `client_register_finish`: the registration challenge opened, Argon2id, the envelope, K
//!   sealed under the export key, the sealed `RegisterFinish`;
//! - `client_login_start`: KE1 and its sealed envelope;
//! - `client_login_finish`: KE2 opened and processed (Argon2id, 3DH), the sealed KE3;
//! - `hsm_ke1_known`, `hsm_ke1_unknown`: one KE1 through the HSM, for a registered account and
//!   for one nobody registered (fake KE2): open, load, handle, persist, seal;
//! - `hsm_ke3`: the KE3 of an outstanding attempt through the HSM, the same way;
//! - `hsm_retrieval_total`: the HSM's whole share of one key retrieval, KE1 then KE3, each
//!   opened, handled, persisted into a `HashMap` and sealed;
//! - `hsm_retrieval_primitives`: the primitive operations of that retrieval (see
//!   [`Primitives::retrieval`] for the list and the counts), done directly with `hpke`,
//!   `curve25519-dalek`, `sha2`, `hkdf`, `hmac` and `aes-gcm`. The gap to `hsm_retrieval_total`
//!   is what the protocol code adds: parsing, checks, records, copies.
//!
//! Group `vault-mobile`: `client_login_finish` with the `Mobile` profile (Argon2id, 16 MiB, 32
//! passes), in 10 samples of one call.

use e2ee_backup_vault::{
    AccountId, AccountRecord, AccountState, Endpoint, FleetId, FleetPublicKey, FleetSecretKey, Hsm,
    HsmConfig, HsmSecrets, KsfProfile, Login, RecordChange, Registration, Request, Response,
    envelope::{self, HpkeAead, HpkeKdf, HpkeKem, RESPONSE_EXPORT_LABEL, RequestEnvelope},
    internal::{
        suite::CONTEXT, ticket::LOGIN_TICKET_KEY_LABEL, ticket::REGISTRATION_TICKET_KEY_LABEL,
        ticket::REGISTRATION_TICKET_LABEL, ticket::TICKET_LABEL,
    },
};
use std::collections::HashMap;
use std::convert::Infallible;
use std::hint::black_box;
use std::time::Duration;

use aes_gcm_10::aead::{Aead, KeyInit, Payload};
use aes_gcm_10::{Aes256Gcm, Nonce};
use criterion::{BatchSize, Criterion, SamplingMode, criterion_group, criterion_main};
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use e2ee_backup_kdf::BackupKey;
use hkdf_12::{Hkdf, HkdfExtract};
use hmac_12::{Hmac, Mac};
use hpke::aead::AeadTag;
use hpke::{Deserializable, OpModeR};
use rand_core::{OsRng, RngCore};
use sha2_10::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

const FLEET: &[u8] = b"fleet.bench";
const ACCOUNT: &[u8] = b"bench-account";
const FLEET_ID: FleetId<'static> = FleetId::from_static(FLEET);
const ACCOUNT_ID: AccountId<'static> = AccountId::from_static(ACCOUNT);
const GHOST: &[u8] = b"bench-ghost";
const PASSWORD: &[u8] = b"correct horse battery staple";
const NOW: u64 = 1_800_000_000;

type Records = HashMap<Vec<u8>, AccountRecord>;

/// An HSM with one registered account.
struct Vault {
    hsm: Hsm,
    endpoint: Endpoint,
    /// The records right after the registration.
    records: Records,
    /// The serialised secrets, for the primitives to take their keys from.
    secrets: Vec<u8>,
    key_id: u8,
    public: FleetPublicKey,
}

impl Vault {
    fn new(profile: KsfProfile) -> Self {
        let secrets = HsmSecrets::generate(&mut OsRng, FLEET_ID);
        let bytes = secrets.to_bytes().to_vec();
        let (key_id, public) = secrets.public_keys()[0];
        let config = HsmConfig { ksf_profile: profile, ..HsmConfig::default() };
        let hsm = Hsm::new(secrets, config).expect("a valid configuration");
        let endpoint = Endpoint::new(FLEET_ID, key_id, public).accepting_fast_ksf();
        let mut vault =
            Self { hsm, endpoint, records: Records::new(), secrets: bytes, key_id, public };
        let mut records = Records::new();
        let (state, request) =
            Registration::start(&mut OsRng, &vault.endpoint, ACCOUNT_ID, PASSWORD, None)
                .expect("registration starts");
        let challenge = vault.serve(&mut records, &request);
        let key = BackupKey::generate();
        let (state, request) =
            state.receive(&mut OsRng, &challenge, &key).expect("a registration challenge");
        state.receive(&vault.serve(&mut records, &request)).expect("registered");
        vault.records = records;
        vault
    }

    /// One request through the HSM, as a driver runs it (the one pipeline of `hsm`): open,
    /// split into a command, load the record, apply, persist into `records`, seal.
    fn serve(&self, records: &mut Records, envelope: &[u8]) -> Vec<u8> {
        let opened = self.hsm.open(envelope).expect("the request opens");
        let (command, pending) = opened.into_command(NOW);
        let decision = match command {
            Err(refusal) => refusal,
            Ok(command) => {
                let record = records.get(command.account()).cloned();
                self.hsm
                    .apply(&command, record)
                    .persist(|change| {
                        match change {
                            RecordChange::Put(record) => {
                                records.insert(command.account().to_vec(), record.clone());
                            }
                            RecordChange::Delete => {
                                records.remove(command.account());
                            }
                        }
                        Ok::<(), Infallible>(())
                    })
                    .unwrap_or_else(|never| match never {})
            }
        };
        let reply = pending.reply(decision);
        self.hsm.seal(reply, &mut OsRng)
    }

    /// `plaintext` sealed by hand for the account, served, and the answer opened.
    fn ask(&self, records: &mut Records, plaintext: &[u8]) -> Response {
        let (envelope, pending) = envelope::seal_request(
            &mut OsRng,
            FLEET,
            self.key_id,
            &self.public,
            ACCOUNT,
            plaintext,
        )
        .expect("a request seals");
        let answer = pending.open(&self.serve(records, &envelope)).expect("the answer opens");
        Response::decode(&answer).expect("the answer decodes")
    }

    /// A KE1 envelope for `account` with the right password, and the client waiting for KE2.
    fn ke1(&self, account: &[u8]) -> (e2ee_backup_vault::AwaitingLoginChallenge, Vec<u8>) {
        Login::start(
            &mut OsRng,
            &self.endpoint,
            AccountId::new(account).expect("the bench accounts are 1 to 64 bytes"),
            PASSWORD,
        )
        .expect("login starts")
    }

    /// A whole retrieval prepared: the KE1 envelope, the records it leaves, and the KE3
    /// envelope that answers its KE2.
    fn retrieval(&self) -> (Vec<u8>, Records, Vec<u8>) {
        let (state, ke1) = self.ke1(ACCOUNT);
        let mut records = self.records.clone();
        let ke2 = self.serve(&mut records, &ke1);
        let (_, ke3) = state.receive(&mut OsRng, &ke2).expect("KE2 verifies");
        (ke1, records, ke3)
    }
}

fn client(c: &mut Criterion, vault: &Vault) {
    let mut group = c.benchmark_group("vault");
    let key = BackupKey::generate();
    let ep = &vault.endpoint;
    group.bench_function("client_register_start", |b| {
        b.iter(|| Registration::start(&mut OsRng, ep, ACCOUNT_ID, black_box(PASSWORD), None))
    });
    let mut records = vault.records.clone();
    group.bench_function("client_register_finish", |b| {
        b.iter_batched(
            || {
                let (state, request) =
                    Registration::start(&mut OsRng, ep, ACCOUNT_ID, PASSWORD, None)
                        .expect("registration starts");
                (state, vault.serve(&mut records, &request))
            },
            |(state, challenge)| {
                state.receive(&mut OsRng, &challenge, &key).expect("a registration challenge")
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("client_login_start", |b| {
        b.iter(|| Login::start(&mut OsRng, ep, ACCOUNT_ID, black_box(PASSWORD)))
    });
    group.bench_function("client_login_finish", |b| login_finish(b, vault));
    group.finish();
}

/// KE2 processed by the client; the KE2 comes from a vault reset to the registration, so the
/// account never runs out of attempts.
fn login_finish(b: &mut criterion::Bencher<'_>, vault: &Vault) {
    b.iter_batched(
        || {
            let (state, ke1) = vault.ke1(ACCOUNT);
            (state, vault.serve(&mut vault.records.clone(), &ke1))
        },
        |(state, ke2)| state.receive(&mut OsRng, &ke2).expect("KE2 verifies"),
        BatchSize::SmallInput,
    )
}

fn client_mobile(c: &mut Criterion) {
    let vault = Vault::new(KsfProfile::Mobile);
    let mut group = c.benchmark_group("vault-mobile");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10));
    group.bench_function("client_login_finish", |b| login_finish(b, &vault));
    group.finish();
}

fn hsm(c: &mut Criterion, vault: &Vault) {
    let mut group = c.benchmark_group("vault");
    let (ke1, after_ke1, ke3) = vault.retrieval();
    let (_, ghost_ke1) = vault.ke1(GHOST);
    for (name, records, envelope) in [
        ("hsm_ke1_known", &vault.records, &ke1),
        ("hsm_ke1_unknown", &vault.records, &ghost_ke1),
        ("hsm_ke3", &after_ke1, &ke3),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched_ref(
                || records.clone(),
                |records| vault.serve(records, black_box(envelope)),
                BatchSize::SmallInput,
            )
        });
    }

    // The whole retrieval; checked once to end in a successful login.
    let retrieve = |records: &mut Records| {
        let ke2 = vault.serve(records, black_box(&ke1));
        let key = vault.serve(records, black_box(&ke3));
        (ke2, key)
    };
    let mut records = vault.records.clone();
    retrieve(&mut records);
    let record = &records[ACCOUNT];
    assert!(record.pending.is_empty() && record.token.is_some(), "the retrieval did not succeed");
    assert_eq!((record.charges, record.remaining), (1, record.budget));
    group.bench_function("hsm_retrieval_total", |b| {
        b.iter_batched_ref(|| vault.records.clone(), retrieve, BatchSize::SmallInput)
    });

    let primitives = Primitives::new(vault, &ke1, &ke3);
    group.bench_function("hsm_retrieval_primitives", |b| b.iter(|| primitives.retrieval()));
    group.finish();
}

/// A request as the primitives open it.
struct SealedRequest {
    info: Vec<u8>,
    enc: <HpkeKem as hpke::Kem>::EncappedKey,
    enc_bytes: [u8; 32],
    sealed: Vec<u8>,
    tag: AeadTag<HpkeAead>,
}

/// The inputs and keys of one retrieval, taken from a real one, so that every primitive runs
/// on the keys, the sizes and, for the channel, the very bytes the HSM handles.
struct Primitives {
    channel_key: <HpkeKem as hpke::Kem>::PrivateKey,
    ke1_request: SealedRequest,
    ke3_request: SealedRequest,
    ke1: [u8; 96],
    ke3: [u8; 64],
    /// The ticket the KE3 came back with.
    ticket: Vec<u8>,
    /// The account's `RegistrationRecord`: client public key, masking key, envelope.
    registration: Vec<u8>,
    /// The registration's `oprf_ticket` (spec 4.9.2), which holds its OPRF seed.
    oprf_ticket: Vec<u8>,
    registration_ticket_key: [u8; 32],
    oprf_ticket_aad: Vec<u8>,
    server_sk: Scalar,
    server_pk: [u8; 32],
    /// The fleet's `ticket_key`, from which the token is derived (spec 4.9.1).
    ticket_key: [u8; 32],
    login_ticket_key: [u8; 32],
    ticket_aad: Vec<u8>,
}

impl Primitives {
    fn new(vault: &Vault, ke1_envelope: &[u8], ke3_envelope: &[u8]) -> Self {
        // The serialised secrets: version, fleet id, OPAQUE setup (OPRF seed, AKE secret key,
        // dummy public key), ticket key, and last the X25519 secret of the only channel key.
        let secrets = &vault.secrets;
        let opaque = 3 + usize::from(u16::from_be_bytes([secrets[1], secrets[2]]));
        let server_sk = Scalar::from_canonical_bytes(
            secrets[opaque + 64..opaque + 96].try_into().expect("32 bytes"),
        )
        .expect("a canonical scalar");
        let ticket_key = secrets[opaque + 128..opaque + 160].try_into().expect("32 bytes");
        let secret = secrets.last_chunk::<32>().expect("secrets are longer than a key");
        let fleet_key = FleetSecretKey::from_bytes(secret).expect("an X25519 key");
        let channel_key = <HpkeKem as hpke::Kem>::PrivateKey::from_bytes(secret).expect("a key");
        let request = |bytes: &[u8]| {
            let envelope = RequestEnvelope::parse(bytes).expect("an envelope");
            let (plain, _) =
                envelope::open_request(&fleet_key, FLEET, &envelope).expect("the request opens");
            let info = envelope::request_info(envelope::VERSION, FLEET, ACCOUNT, envelope.key_id())
                .expect("valid ids");
            let (sealed, tag) = envelope.ciphertext().split_at(envelope.ciphertext().len() - 16);
            let sealed_request = SealedRequest {
                info,
                enc: <HpkeKem as hpke::Kem>::EncappedKey::from_bytes(envelope.enc())
                    .expect("a public key"),
                enc_bytes: *envelope.enc(),
                sealed: sealed.to_vec(),
                tag: AeadTag::from_bytes(tag).expect("a tag"),
            };
            (sealed_request, Request::decode(&plain).expect("a request"))
        };
        let (ke1_request, Request::LoginStart { ke1 }) = request(ke1_envelope) else {
            panic!("not a KE1")
        };
        let (ke3_request, Request::LoginFinish { ticket, ke3 }) = request(ke3_envelope) else {
            panic!("not a KE3")
        };
        let ticket_aad =
            [TICKET_LABEL.as_bytes(), &[0], &u16_len(FLEET), FLEET, &u16_len(ACCOUNT), ACCOUNT]
                .concat();
        let record = &vault.records[ACCOUNT];
        let oprf_ticket_aad = [
            REGISTRATION_TICKET_LABEL.as_bytes(),
            &[0],
            &u16_len(FLEET),
            FLEET,
            &u16_len(ACCOUNT),
            ACCOUNT,
            &record.record_version.to_be_bytes(),
        ]
        .concat();
        let primitives = Self {
            channel_key,
            ke1_request,
            ke3_request,
            ke1: *ke1,
            ke3: *ke3,
            ticket,
            registration: record.registration.clone(),
            oprf_ticket: record.oprf_ticket.clone(),
            registration_ticket_key: subkey(&ticket_key, REGISTRATION_TICKET_KEY_LABEL),
            oprf_ticket_aad,
            server_sk,
            server_pk: RistrettoPoint::mul_base(&server_sk).compress().to_bytes(),
            ticket_key,
            login_ticket_key: subkey(&ticket_key, LOGIN_TICKET_KEY_LABEL),
            ticket_aad,
        };
        primitives.check(vault);
        primitives
    }

    /// Checks the primitives against the HSM on the same inputs and keys: the OPRF evaluation
    /// and the masked response of a KE2 for this KE1, its ticket, and the token of a login
    /// with this KE3. The requests are sealed by hand, so that the answers can be read.
    fn check(&self, vault: &Vault) {
        let mut records = vault.records.clone();
        let request = Request::LoginStart { ke1: Box::new(self.ke1) };
        let Response::LoginChallenge { ke2, ticket, .. } =
            vault.ask(&mut records, &request.encode())
        else {
            panic!("no KE2")
        };
        let evaluated = decompress(&self.ke1[..32]) * oprf_key(&self.oprf_seed());
        assert_eq!(ke2[..32], evaluated.compress().to_bytes(), "the OPRF evaluation differs");
        let pad = masking_pad(&self.registration[32..96], &ke2[32..64]);
        let unmasked: Vec<u8> = pad.iter().zip(&ke2[64..192]).map(|(p, m)| p ^ m).collect();
        assert_eq!(unmasked[..32], self.server_pk, "the server key differs");
        assert_eq!(unmasked[32..], self.registration[96..], "the envelope differs");
        let body = self.open_ticket(&ticket);
        assert_eq!(body.len(), self.ticket.len() - 12 - 16, "tickets differ in length");
        // The session's own KE3 and ticket name the same attempt (same KE1, first charge).
        let request = Request::LoginFinish { ticket: self.ticket.clone(), ke3: Box::new(self.ke3) };
        let Response::LoginSucceeded { token, .. } = vault.ask(&mut records, &request.encode())
        else {
            panic!("the login failed")
        };
        let body = self.open_ticket(&self.ticket);
        assert_eq!(token, derive_token(&self.ticket_key, &body[..24]), "the token differs");
    }

    /// The registration's OPRF seed: its `oprf_ticket` opened (nonce, then AES-256-GCM under
    /// the registration ticket key), `not_after` skipped.
    fn oprf_seed(&self) -> [u8; 64] {
        let (nonce, sealed) = self.oprf_ticket.split_at(12);
        let payload = Payload { msg: sealed, aad: &self.oprf_ticket_aad };
        let plain = Aes256Gcm::new_from_slice(&self.registration_ticket_key)
            .expect("32 bytes")
            .decrypt(Nonce::from_slice(nonce), payload)
            .expect("the OPRF ticket opens");
        plain[8..].try_into().expect("a 64-byte seed")
    }

    /// Opens a login ticket: nonce, then AES-256-GCM under the login ticket key.
    fn open_ticket(&self, ticket: &[u8]) -> Vec<u8> {
        let (nonce, sealed) = ticket.split_at(12);
        Aes256Gcm::new_from_slice(&self.login_ticket_key)
            .expect("32 bytes")
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: &self.ticket_aad })
            .expect("the ticket opens")
    }

    /// The primitive operations of one retrieval on the HSM's side. Their count:
    ///
    /// - each of the 2 requests (KE1, KE3): 1 HPKE base-mode receiver setup (DHKEM-X25519:
    ///   1 X25519 DH, plus the receiver's public key from its secret, 1 fixed-base
    ///   multiplication, which `hpke` recomputes on every decapsulation; the HKDF-SHA256 key
    ///   schedule), 1 AES-256-GCM open, 1 export (HKDF-SHA256 expand);
    /// - each of the 2 responses: 1 seal, HKDF-SHA256 extract and 2 expands, 1 AES-256-GCM seal;
    /// - KE2, OPRF: the registration's OPRF seed (1 AES-256-GCM open of its `oprf_ticket`), the
    ///   per-registration OPRF key (HKDF-SHA512 expand of the seed, then
    ///   hash-to-scalar: `expand_message_xmd`-SHA-512 and a wide reduction), 1 ristretto255
    ///   variable-base multiplication of the blinded element;
    /// - KE2, credential response: the masking pad, HKDF-SHA512 expand of 128 bytes;
    /// - KE2, 3DH: the server key share (`DeriveDiffieHellmanKeyPair` of a random seed:
    ///   hash-to-scalar, then 1 fixed-base multiplication, with curve25519-dalek's precomputed
    ///   table), 3 variable-base multiplications (the DHs);
    /// - ristretto255 encodings: 3 decompressions (blinded element, client key share, client
    ///   public key), 5 compressions (evaluated element, server key share, 3 DH outputs);
    /// - transcript: SHA-512 of the preamble, HKDF-SHA512 extract of the 3 DH outputs and 4
    ///   Expand-Labels (handshake secret, session key, server and client MAC keys), 2
    ///   HMAC-SHA512 (server MAC, expected client MAC);
    /// - the ticket: 1 AES-256-GCM seal (KE2) and 1 open (KE3);
    /// - KE3: the client MAC compared in constant time; the token, HKDF-SHA256 (extract, expand);
    /// - randomness: the masking nonce, the server nonce, the key share seed, the ticket nonce
    ///   and the 2 response nonces.
    ///
    /// Not counted, so part of the protocol's overhead: parsing and checks, records, copies,
    /// and whatever else the libraries do beyond this list (a ristretto255 point encoded again
    /// where the bytes were at hand, a second decoding of KE1, a variable-base multiplication
    /// where a fixed-base one would do).
    fn retrieval(&self) -> usize {
        // KE1 request.
        let secret = self.open_request(&self.ke1_request);

        // OPAQUE KE2 (RFC 9807, section 6.3.2.2, and 3DH, section 6.4).
        let blinded = decompress(&self.ke1[..32]);
        let client_nonce = &self.ke1[32..64];
        let client_e_pk = decompress(&self.ke1[64..]);
        let client_s_pk = decompress(&self.registration[..32]);
        let evaluated = (blinded * oprf_key(&self.oprf_seed())).compress().to_bytes();

        let mut masking_nonce = [0u8; 32];
        OsRng.fill_bytes(&mut masking_nonce);
        let mut masked = masking_pad(&self.registration[32..96], &masking_nonce);
        let plain = self.server_pk.iter().chain(&self.registration[96..]);
        for (pad, byte) in masked.iter_mut().zip(plain) {
            *pad ^= byte;
        }

        let mut keyshare_seed = [0u8; 32];
        OsRng.fill_bytes(&mut keyshare_seed);
        let server_e_sk =
            hash_to_scalar(&[&keyshare_seed, &[0, 33], b"OPAQUE-DeriveDiffieHellmanKeyPair", &[0]]);
        let server_e_pk = RistrettoPoint::mul_base(&server_e_sk).compress().to_bytes();
        let mut server_nonce = [0u8; 32];
        OsRng.fill_bytes(&mut server_nonce);
        let dh1 = (client_e_pk * server_e_sk).compress().to_bytes();
        let dh2 = (client_e_pk * self.server_sk).compress().to_bytes();
        let dh3 = (client_s_pk * server_e_sk).compress().to_bytes();

        let mut transcript = Sha512::new();
        for part in [
            b"OPAQUEv1-".as_slice(),
            &u16_len(CONTEXT),
            CONTEXT,
            &u16_len(ACCOUNT),
            ACCOUNT,
            &self.ke1[..32],
            client_nonce,
            &self.ke1[64..],
            &u16_len(FLEET),
            FLEET,
            &evaluated,
            &masking_nonce,
            &masked,
            &server_nonce,
            &server_e_pk,
        ] {
            transcript.update(part);
        }
        let preamble_hash = transcript.clone().finalize();
        let mut extract = HkdfExtract::<Sha512>::new(None);
        for dh in [&dh1, &dh2, &dh3] {
            extract.input_ikm(dh);
        }
        let (prk, _) = extract.finalize();
        let handshake_secret = expand_label(&prk, b"HandshakeSecret", &preamble_hash);
        let session_key = expand_label(&prk, b"SessionKey", &preamble_hash);
        let km2 = expand_label(&handshake_secret, b"ServerMAC", b"");
        let km3 = expand_label(&handshake_secret, b"ClientMAC", b"");
        let server_mac = hmac_sha512(&km2, &preamble_hash);
        transcript.update(server_mac);
        let expected_client_mac = hmac_sha512(&km3, &transcript.finalize());

        // The ticket: nonce, then the sealed attempt id, serial, expiry and 3DH state (the
        // session key and the expected client MAC).
        let mut ticket_plain = vec![0u8; self.ticket.len() - 12 - 16];
        let state = ticket_plain.len() - 128;
        ticket_plain[state..state + 64].copy_from_slice(&session_key);
        ticket_plain[state + 64..].copy_from_slice(&expected_client_mac);
        let mut ticket = vec![0u8; 12];
        OsRng.fill_bytes(&mut ticket);
        let payload = Payload { msg: &ticket_plain, aad: &self.ticket_aad };
        let sealed = Aes256Gcm::new_from_slice(&self.login_ticket_key)
            .expect("32 bytes")
            .encrypt(Nonce::from_slice(&ticket), payload)
            .expect("seals");
        ticket.extend_from_slice(&sealed);
        // LoginChallenge: kind, KE2, ticket, remaining, profile.
        let ke2_len = 1 + 320 + 2 + ticket.len() + 1 + 1;
        let ke2_response = seal_response(&secret, &self.ke1_request.enc_bytes, ke2_len);

        // KE3 request.
        let secret = self.open_request(&self.ke3_request);
        let opened = self.open_ticket(&ticket);
        let verified = bool::from(opened[state + 64..].ct_eq(&self.ke3));
        let token = derive_token(&self.ticket_key, &opened[..24]);
        // LoginSucceeded: kind, sealed K, record version, token, remaining.
        let key_len = 1 + 61 + 4 + 16 + 1;
        let key_response = seal_response(&secret, &self.ke3_request.enc_bytes, key_len);

        black_box((&server_mac, &token, verified));
        ke2_response.len() + key_response.len()
    }

    /// HPKE base-mode receiver setup, open, and the export of the response secret.
    fn open_request(&self, request: &SealedRequest) -> [u8; 32] {
        let mut context = hpke::setup_receiver::<HpkeAead, HpkeKdf, HpkeKem>(
            &OpModeR::Base,
            &self.channel_key,
            &request.enc,
            &request.info,
        )
        .expect("a receiver context");
        let mut plaintext = request.sealed.clone();
        context
            .open_in_place_detached(&mut plaintext, b"", &request.tag)
            .expect("the request opens");
        let mut secret = [0u8; 32];
        context.export(RESPONSE_EXPORT_LABEL, &mut secret).expect("32 bytes");
        black_box(&plaintext);
        secret
    }
}

/// A response of `len` bytes sealed as the channel seals it: HKDF-SHA256 over the request's
/// secret with `enc || response_nonce` as salt, then AES-256-GCM.
fn seal_response(secret: &[u8; 32], enc: &[u8; 32], len: usize) -> Vec<u8> {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(enc);
    OsRng.fill_bytes(&mut salt[32..]);
    let prk = Hkdf::<Sha256>::new(Some(&salt), secret);
    let (mut key, mut nonce) = ([0u8; 32], [0u8; 12]);
    prk.expand(b"key", &mut key).expect("32 bytes");
    prk.expand(b"nonce", &mut nonce).expect("12 bytes");
    let body = Aes256Gcm::new_from_slice(&key)
        .expect("32 bytes")
        .encrypt(Nonce::from_slice(&nonce), vec![0u8; len].as_slice())
        .expect("seals");
    [&salt[32..], &body].concat()
}

fn decompress(bytes: &[u8]) -> RistrettoPoint {
    CompressedRistretto::from_slice(bytes)
        .expect("32 bytes")
        .decompress()
        .expect("a ristretto255 point")
}

/// The account's OPRF key (RFC 9807, section 6.3.2.2): HKDF-SHA512 expand of the OPRF seed
/// with `credential_identifier || "OprfKey"`, then `DeriveKeyPair` (hash-to-scalar).
fn oprf_key(oprf_seed: &[u8; 64]) -> Scalar {
    let mut key_material = [0u8; 32];
    Hkdf::<Sha512>::from_prk(oprf_seed)
        .expect("a 64-byte PRK")
        .expand_multi_info(&[ACCOUNT, b"OprfKey"], &mut key_material)
        .expect("32 bytes");
    hash_to_scalar(&[&key_material, &[0, 20], b"OPAQUE-DeriveKeyPair", &[0]])
}

/// The pad that masks the server public key and the envelope in KE2.
fn masking_pad(masking_key: &[u8], masking_nonce: &[u8]) -> [u8; 128] {
    let mut pad = [0u8; 128];
    Hkdf::<Sha512>::from_prk(masking_key)
        .expect("a 64-byte PRK")
        .expand_multi_info(&[masking_nonce, b"CredentialResponsePad"], &mut pad)
        .expect("128 bytes");
    pad
}

/// The token of a successful login: HKDF-SHA256 of the ticket key, with the account, the
/// attempt id and the serial.
/// `HKDF-SHA256(salt = none, ikm = ticket_key, info = label)`, 32 bytes (spec 4.9).
fn subkey(ticket_key: &[u8; 32], label: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(None, ticket_key).expand(label.as_bytes(), &mut out).expect("32 bytes");
    out
}

fn derive_token(ticket_key: &[u8; 32], attempt_and_serial: &[u8]) -> [u8; 16] {
    let mut token = [0u8; 16];
    Hkdf::<Sha256>::new(None, ticket_key)
        .expand_multi_info(
            &[b"e2ee-backups/v1/vault/token", &[0], &u16_len(ACCOUNT), ACCOUNT, attempt_and_serial],
            &mut token,
        )
        .expect("16 bytes");
    token
}

/// `HashToScalar` of the OPRF suite ristretto255-SHA512 (RFC 9497) with the `DeriveKeyPair`
/// domain separation tag: `expand_message_xmd` (RFC 9380) with SHA-512 to 64 bytes, which
/// takes 2 hashes, reduced modulo the group order.
fn hash_to_scalar(message: &[&[u8]]) -> Scalar {
    const DST: &[u8] = b"DeriveKeyPairOPRFV1-\x00-ristretto255-SHA512";
    let mut b0 = Sha512::new();
    b0.update([0u8; 128]);
    for part in message {
        b0.update(part);
    }
    b0.update([0, 64, 0]);
    b0.update(DST);
    b0.update([DST.len() as u8]);
    let b0 = b0.finalize();
    let mut b1 = Sha512::new();
    b1.update(b0);
    b1.update([1]);
    b1.update(DST);
    b1.update([DST.len() as u8]);
    Scalar::from_bytes_mod_order_wide(&b1.finalize().as_slice().try_into().expect("64 bytes"))
}

/// RFC 9807's `Expand-Label` to 64 bytes with HKDF-SHA512.
fn expand_label(secret: &[u8], label: &[u8], context: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    let label_len = [7 + label.len() as u8];
    let context_len = [context.len() as u8];
    Hkdf::<Sha512>::from_prk(secret)
        .expect("a 64-byte PRK")
        .expand_multi_info(
            &[&[0, 64], &label_len, b"OPAQUE-", label, &context_len, context],
            &mut out,
        )
        .expect("64 bytes");
    out
}

fn hmac_sha512(key: &[u8], message: &[u8]) -> [u8; 64] {
    let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(message);
    mac.finalize().into_bytes().as_slice().try_into().expect("64 bytes")
}

fn u16_len(bytes: &[u8]) -> [u8; 2] {
    u16::try_from(bytes.len()).expect("short").to_be_bytes()
}

fn vault(c: &mut Criterion) {
    let vault = Vault::new(KsfProfile::Fast);
    assert_eq!(vault.records[ACCOUNT].state, AccountState::Registered);
    client(c, &vault);
    hsm(c, &vault);
}

criterion_group!(benches, vault, client_mobile);
criterion_main!(benches);
