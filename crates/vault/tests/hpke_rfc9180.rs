//! The client-to-vault channel: the RFC 9180 vectors replayed through the `hpke` configuration
//! the channel uses, then the channel's own properties (round trip, binding of every envelope
//! field, one response per request, the documented response construction).

use aes_gcm_10::aead::{Aead as _, KeyInit as _};
use aes_gcm_10::{Aes128Gcm, Aes256Gcm, Nonce};
use e2ee_backup_testkit::{hex_of, published_vectors};
use e2ee_backup_vault::{
    ChannelError, FleetPublicKey, FleetSecretKey, WireError,
    envelope::{
        self, HpkeAead, HpkeKdf, HpkeKem, RequestEnvelope, open_request, open_request_with_keys,
        seal_request, seal_request_with_ephemeral_ikm,
    },
};
use hkdf_12::Hkdf;
use hpke::aead::{Aead, AesGcm128, AesGcm256};
use hpke::{Deserializable as _, Kem as _, OpModeR, OpModeS, Serializable as _};
use rand_core::OsRng;
use serde_json::Value;
use sha2_10::Sha256;

/// A generator, in the `rand_core` version of `hpke`, that yields fixed bytes (the RFC's `ikmE`)
/// and panics if asked for more: the test would then be meaningless.
struct FixedRng(Vec<u8>);

impl hpke::rand_core::RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        unimplemented!("hpke draws ephemeral keys with fill_bytes")
    }
    fn next_u64(&mut self) -> u64 {
        unimplemented!("hpke draws ephemeral keys with fill_bytes")
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        assert!(dst.len() <= self.0.len(), "hpke asked for more than ikmE");
        let rest = self.0.split_off(dst.len());
        dst.copy_from_slice(&self.0);
        self.0 = rest;
    }
}
impl hpke::rand_core::CryptoRng for FixedRng {}

fn field(v: &Value, name: &str) -> Vec<u8> {
    hex_of(&v[name])
}

/// Replays one mode-0 vector through `hpke` with AEAD `A`; returns how many encryptions and
/// exports it checked.
fn replay<A: Aead>(v: &Value) -> (usize, usize) {
    let info = field(v, "info");
    let ikm_r = field(v, "ikmR");
    let ikm_e = field(v, "ikmE");

    let (sk_r, pk_r) = HpkeKem::derive_keypair(&ikm_r);
    assert_eq!(sk_r.to_bytes().as_slice(), field(v, "skRm"), "skRm");
    assert_eq!(pk_r.to_bytes().as_slice(), field(v, "pkRm"), "pkRm");
    let (sk_e, pk_e) = HpkeKem::derive_keypair(&ikm_e);
    assert_eq!(sk_e.to_bytes().as_slice(), field(v, "skEm"), "skEm");
    assert_eq!(pk_e.to_bytes().as_slice(), field(v, "pkEm"), "pkEm");

    // The channel's own key type derives the same key pair.
    let ours = FleetSecretKey::derive(&ikm_r.clone().try_into().expect("32-byte ikmR"));
    assert_eq!(ours.to_bytes().as_slice(), field(v, "skRm"));
    assert_eq!(ours.public_key().as_bytes().as_slice(), field(v, "pkRm"));

    let mut rng = FixedRng(ikm_e);
    let (enc, mut sender) =
        hpke::setup_sender::<A, HpkeKdf, HpkeKem, _>(&OpModeS::Base, &pk_r, &info, &mut rng)
            .expect("setup_sender");
    assert!(rng.0.is_empty(), "hpke took all of ikmE");
    assert_eq!(enc.to_bytes().as_slice(), field(v, "enc"), "enc");

    let enc = <HpkeKem as hpke::Kem>::EncappedKey::from_bytes(&field(v, "enc")).unwrap();
    let mut receiver =
        hpke::setup_receiver::<A, HpkeKdf, HpkeKem>(&OpModeR::Base, &sk_r, &enc, &info)
            .expect("setup_receiver");

    let key = field(v, "key");
    let base_nonce = field(v, "base_nonce");
    let encryptions = v["encryptions"].as_array().expect("encryptions");
    for (seq, e) in encryptions.iter().enumerate() {
        let (pt, aad, ct) = (field(e, "pt"), field(e, "aad"), field(e, "ct"));
        // The nonce of message `seq` is base_nonce XOR I2OSP(seq, Nn).
        let mut nonce = base_nonce.clone();
        let seq_bytes = (seq as u64).to_be_bytes();
        for (n, s) in nonce.iter_mut().rev().zip(seq_bytes.iter().rev()) {
            *n ^= s;
        }
        assert_eq!(nonce, field(e, "nonce"), "nonce of message {seq}");
        let payload = aes_gcm_10::aead::Payload { msg: &pt, aad: &aad };
        let direct = match key.len() {
            16 => {
                Aes128Gcm::new_from_slice(&key).unwrap().encrypt(Nonce::from_slice(&nonce), payload)
            }
            32 => {
                Aes256Gcm::new_from_slice(&key).unwrap().encrypt(Nonce::from_slice(&nonce), payload)
            }
            n => panic!("unexpected key length {n}"),
        }
        .unwrap();
        assert_eq!(direct, ct, "AES-GCM under the vector's key and nonce {seq}");

        assert_eq!(sender.seal(&pt, &aad).unwrap(), ct, "ct of message {seq}");
        assert_eq!(receiver.open(&ct, &aad).unwrap(), pt, "pt of message {seq}");
    }

    let exports = v["exports"].as_array().expect("exports");
    for x in exports {
        let context = field(x, "exporter_context");
        let len = usize::try_from(x["L"].as_u64().expect("L")).unwrap();
        let expected = field(x, "exported_value");
        let mut out = vec![0u8; len];
        sender.export(&context, &mut out).unwrap();
        assert_eq!(out, expected, "sender export");
        receiver.export(&context, &mut out).unwrap();
        assert_eq!(out, expected, "receiver export");
    }
    (encryptions.len(), exports.len())
}

#[test]
fn rfc9180_base_mode_vectors() {
    let vectors = published_vectors("cfrg-hpke/test-vectors.x25519-hkdfsha256.json");
    let mut replayed = Vec::new();
    for v in vectors.as_array().expect("a list of vectors") {
        if v["mode"] != 0 || v["kem_id"] != 0x20 || v["kdf_id"] != 1 {
            continue;
        }
        let counts = match v["aead_id"].as_u64() {
            Some(1) => replay::<AesGcm128>(v),
            Some(2) => replay::<AesGcm256>(v),
            _ => continue,
        };
        replayed.push((v["aead_id"].as_u64().unwrap(), counts));
    }
    // One base-mode vector per AEAD: AES-128-GCM and AES-256-GCM (the channel's).
    let aeads: Vec<u64> = replayed.iter().map(|(aead, _)| *aead).collect();
    assert_eq!(aeads, [1, 2], "base-mode AES-GCM vectors replayed");
    for (aead, (encryptions, exports)) in replayed {
        assert!(encryptions > 0 && exports > 0, "aead {aead}: nothing checked");
    }
    assert_eq!(HpkeAead::AEAD_ID, 2, "the channel uses AES-256-GCM");
}

#[test]
fn channel_enc_is_rfc9180_derive_keypair_of_ikm_e() {
    let vectors = published_vectors("cfrg-hpke/test-vectors.x25519-hkdfsha256.json");
    let v = vectors
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["mode"] == 0 && v["aead_id"] == 2)
        .expect("a base-mode AES-256-GCM vector");
    let ikm_e: [u8; 32] = field(v, "ikmE").try_into().unwrap();
    let pk_r = FleetPublicKey(field(v, "pkRm").try_into().unwrap());
    let (envelope, _) =
        seal_request_with_ephemeral_ikm(&ikm_e, b"fleet", 3, &pk_r, b"acct", b"hi").unwrap();
    let parsed = RequestEnvelope::parse(&envelope).unwrap();
    assert_eq!(parsed.enc().as_slice(), field(v, "enc"));
}

// ---------------------------------------------------------------------------------------------
// The channel itself.

const FLEET: &[u8] = b"fleet-a";
const ACCOUNT: &[u8] = b"account-0123";
const KEY_ID: u8 = 7;

fn fleet_key() -> FleetSecretKey {
    FleetSecretKey::generate(&mut OsRng)
}

#[test]
fn round_trip() {
    let secret = fleet_key();
    let (envelope, pending) =
        seal_request(&mut OsRng, FLEET, KEY_ID, &secret.public_key(), ACCOUNT, b"KE1 goes here")
            .unwrap();
    let parsed = RequestEnvelope::parse(&envelope).unwrap();
    assert_eq!(envelope[0], 1, "the version byte");
    assert_eq!(parsed.key_id(), KEY_ID);
    assert_eq!(parsed.account_id(), ACCOUNT);
    let (request, sealer) = open_request(&secret, FLEET, &parsed).unwrap();
    assert_eq!(request.as_slice(), b"KE1 goes here");
    let response = sealer.seal(&mut OsRng, b"KE2 goes here").unwrap();
    assert_eq!(response.len(), 32 + 13 + 16);
    assert_eq!(pending.open(&response).unwrap().as_slice(), b"KE2 goes here");
}

#[test]
fn round_trip_at_the_bounds() {
    let secret = fleet_key();
    for (account, plaintext) in
        [(vec![1u8; 1], vec![]), (vec![2u8; 64], vec![3u8; envelope::MAX_PLAINTEXT_LEN])]
    {
        let (envelope, pending) =
            seal_request(&mut OsRng, &[9u8; 64], 0, &secret.public_key(), &account, &plaintext)
                .unwrap();
        let parsed = RequestEnvelope::parse(&envelope).unwrap();
        let (request, sealer) = open_request(&secret, &[9u8; 64], &parsed).unwrap();
        assert_eq!(*request, plaintext);
        let response = sealer.seal(&mut OsRng, &plaintext).unwrap();
        assert_eq!(*pending.open(&response).unwrap(), plaintext);
    }
}

#[test]
fn envelope_layout() {
    let secret = FleetSecretKey::derive(&[0x11; 32]);
    let (envelope, _) = seal_request_with_ephemeral_ikm(
        &[0x22; 32],
        FLEET,
        KEY_ID,
        &secret.public_key(),
        ACCOUNT,
        b"abc",
    )
    .unwrap();
    let n = ACCOUNT.len();
    assert_eq!(envelope[0], 1, "version");
    assert_eq!(envelope[1], KEY_ID, "fleet_key_id");
    assert_eq!(&envelope[2..4], &(n as u16).to_be_bytes(), "account_id length");
    assert_eq!(&envelope[4..4 + n], ACCOUNT);
    let (_, pk_e) = HpkeKem::derive_keypair(&[0x22; 32]);
    assert_eq!(&envelope[4 + n..36 + n], pk_e.to_bytes().as_slice(), "enc");
    assert_eq!(envelope.len(), 36 + n + 3 + 16, "ciphertext = plaintext + tag");

    let mut info = b"e2ee-backups/v1/vault/request\x00\x01".to_vec();
    info.extend_from_slice(&(FLEET.len() as u16).to_be_bytes());
    info.extend_from_slice(FLEET);
    info.extend_from_slice(&(n as u16).to_be_bytes());
    info.extend_from_slice(ACCOUNT);
    info.push(KEY_ID);
    assert_eq!(envelope::request_info(1, FLEET, ACCOUNT, KEY_ID).unwrap(), info);
    assert_eq!(
        envelope::request_info(1, &[0; 70_000], ACCOUNT, KEY_ID),
        Err(ChannelError::InvalidFleetId(70_000))
    );
}

#[test]
fn deterministic_variants_are_deterministic() {
    let secret = FleetSecretKey::derive(&[0x11; 32]);
    let seal = || {
        seal_request_with_ephemeral_ikm(
            &[0x22; 32],
            FLEET,
            KEY_ID,
            &secret.public_key(),
            ACCOUNT,
            b"abc",
        )
        .unwrap()
    };
    let (first, _) = seal();
    let (second, pending) = seal();
    assert_eq!(first, second);
    let parsed = RequestEnvelope::parse(&first).unwrap();
    let respond = || {
        let (_, sealer) = open_request(&secret, FLEET, &parsed).unwrap();
        sealer.seal_with_nonce(&[0x33; 32], b"xyz").unwrap()
    };
    assert_eq!(respond(), respond());
    assert_eq!(pending.open(&respond()).unwrap().as_slice(), b"xyz");
}

/// The response follows the documented construction, recomputed here from `hpke`, `hkdf` and
/// `aes-gcm` directly.
#[test]
fn response_matches_documented_construction() {
    let secret = FleetSecretKey::derive(&[0x44; 32]);
    let ikm_e = [0x55; 32];
    let response_nonce = [0x66; 32];
    let (envelope, _) = seal_request_with_ephemeral_ikm(
        &ikm_e,
        FLEET,
        KEY_ID,
        &secret.public_key(),
        ACCOUNT,
        b"req",
    )
    .unwrap();
    let parsed = RequestEnvelope::parse(&envelope).unwrap();
    let (_, sealer) = open_request(&secret, FLEET, &parsed).unwrap();
    let response = sealer.seal_with_nonce(&response_nonce, b"resp").unwrap();

    let pk_r =
        <HpkeKem as hpke::Kem>::PublicKey::from_bytes(secret.public_key().as_bytes()).unwrap();
    let info = envelope::request_info(1, FLEET, ACCOUNT, KEY_ID).unwrap();
    let (enc, context) = hpke::setup_sender::<HpkeAead, HpkeKdf, HpkeKem, _>(
        &OpModeS::Base,
        &pk_r,
        &info,
        &mut FixedRng(ikm_e.to_vec()),
    )
    .unwrap();
    let mut export = [0u8; 32];
    context.export(b"e2ee-backups/v1/vault/response", &mut export).unwrap();
    let mut salt = enc.to_bytes().to_vec();
    salt.extend_from_slice(&response_nonce);
    let prk = Hkdf::<Sha256>::new(Some(&salt), &export);
    let mut key = [0u8; 32];
    let mut nonce = [0u8; 12];
    prk.expand(b"key", &mut key).unwrap();
    prk.expand(b"nonce", &mut nonce).unwrap();
    let body = Aes256Gcm::new_from_slice(&key)
        .unwrap()
        .encrypt(Nonce::from_slice(&nonce), &b"resp"[..])
        .unwrap();
    let mut expected = response_nonce.to_vec();
    expected.extend_from_slice(&body);
    assert_eq!(response, expected);
}

#[test]
fn response_to_another_request_does_not_open() {
    let secret = fleet_key();
    let public = secret.public_key();
    let (first, first_pending) =
        seal_request(&mut OsRng, FLEET, KEY_ID, &public, ACCOUNT, b"one").unwrap();
    let (second, second_pending) =
        seal_request(&mut OsRng, FLEET, KEY_ID, &public, ACCOUNT, b"two").unwrap();
    let respond = |envelope: &[u8]| {
        let parsed = RequestEnvelope::parse(envelope).unwrap();
        let (_, sealer) = open_request(&secret, FLEET, &parsed).unwrap();
        sealer.seal(&mut OsRng, b"answer").unwrap()
    };
    let first_response = respond(&first);
    let second_response = respond(&second);
    assert_eq!(second_pending.open(&first_response), Err(ChannelError::ResponseDoesNotOpen));
    assert_eq!(first_pending.open(&second_response), Err(ChannelError::ResponseDoesNotOpen));
}

#[test]
fn modified_response_does_not_open() {
    let secret = fleet_key();
    let public = secret.public_key();
    let (envelope, _) = seal_request(&mut OsRng, FLEET, KEY_ID, &public, ACCOUNT, b"q").unwrap();
    let parsed = RequestEnvelope::parse(&envelope).unwrap();
    let response = {
        let (_, sealer) = open_request(&secret, FLEET, &parsed).unwrap();
        sealer.seal(&mut OsRng, b"answer").unwrap()
    };
    // The same request state, rebuilt for each attempt (a PendingResponse is consumed).
    let ikm_e = [0x77; 32];
    let (envelope, _) =
        seal_request_with_ephemeral_ikm(&ikm_e, FLEET, KEY_ID, &public, ACCOUNT, b"q").unwrap();
    let parsed = RequestEnvelope::parse(&envelope).unwrap();
    let (_, sealer) = open_request(&secret, FLEET, &parsed).unwrap();
    let good = sealer.seal(&mut OsRng, b"answer").unwrap();
    let pending = || {
        seal_request_with_ephemeral_ikm(&ikm_e, FLEET, KEY_ID, &public, ACCOUNT, b"q").unwrap().1
    };
    assert_eq!(pending().open(&good).unwrap().as_slice(), b"answer");
    assert_eq!(pending().open(&response), Err(ChannelError::ResponseDoesNotOpen));
    for i in 0..good.len() {
        for mask in [0x01, 0x80] {
            let mut bad = good.clone();
            bad[i] ^= mask;
            assert_eq!(
                pending().open(&bad),
                Err(ChannelError::ResponseDoesNotOpen),
                "byte {i} mask {mask:#x}"
            );
        }
    }
    let mut longer = good.clone();
    longer.push(0);
    assert_eq!(pending().open(&longer), Err(ChannelError::ResponseDoesNotOpen));
    assert_eq!(pending().open(&good[..47]), Err(ChannelError::ResponseTooShort(47)));
    assert_eq!(pending().open(&[]), Err(ChannelError::ResponseTooShort(0)));
    let huge = vec![0u8; 32 + envelope::MAX_PLAINTEXT_LEN + 16 + 1];
    assert_eq!(pending().open(&huge), Err(ChannelError::ResponseTooLong(huge.len())));
}

/// What the HSM reports for an envelope, holding `secret` under `KEY_ID` only.
fn hsm_open(secret: &FleetSecretKey, envelope: &[u8]) -> Result<Vec<u8>, ChannelError> {
    let parsed = RequestEnvelope::parse(envelope)?;
    let (plaintext, _) =
        open_request_with_keys(FLEET, &parsed, |id| (id == KEY_ID).then_some(secret))?;
    Ok(plaintext.to_vec())
}

#[test]
fn every_modified_envelope_byte_is_rejected_with_its_error() {
    let secret = fleet_key();
    let (envelope, _) =
        seal_request(&mut OsRng, FLEET, KEY_ID, &secret.public_key(), ACCOUNT, b"a request")
            .unwrap();
    assert_eq!(hsm_open(&secret, &envelope).unwrap(), b"a request");
    let n = ACCOUNT.len();
    for i in 0..envelope.len() {
        for mask in [0x01u8, 0x80] {
            let mut bad = envelope.clone();
            bad[i] ^= mask;
            let got = hsm_open(&secret, &bad);
            let expected = match i {
                0 => ChannelError::UnsupportedVersion(1 ^ mask),
                1 => ChannelError::UnknownKeyId(KEY_ID ^ mask),
                // The high byte of the account id length: far over the maximum.
                2 => ChannelError::Malformed(WireError::TooLong {
                    field: "account_id",
                    len: (usize::from(mask) << 8) + n,
                    max: 64,
                }),
                // The low byte: with 0x80, over the maximum; with 0x01, a shifted account id
                // that parses but does not open.
                3 if mask == 0x80 => ChannelError::Malformed(WireError::TooLong {
                    field: "account_id",
                    len: n ^ 0x80,
                    max: 64,
                }),
                // account id, enc (every bit, including the one X25519 ignores), ciphertext
                _ => ChannelError::RequestDoesNotOpen,
            };
            assert_eq!(got, Err(expected), "byte {i} mask {mask:#x}");
        }
    }
    // The same key id change, at an HSM that holds the key under both ids: does not open.
    let mut bad = envelope.clone();
    bad[1] ^= 1;
    let parsed = RequestEnvelope::parse(&bad).unwrap();
    assert_eq!(
        open_request(&secret, FLEET, &parsed).map(|_| ()),
        Err(ChannelError::RequestDoesNotOpen)
    );
    // Truncated and extended envelopes.
    for len in 0..envelope.len() {
        assert!(
            matches!(
                hsm_open(&secret, &envelope[..len]),
                Err(ChannelError::Malformed(_) | ChannelError::RequestDoesNotOpen)
            ),
            "truncated to {len}"
        );
    }
    for len in 0..4 + n + 32 + 16 {
        assert!(
            matches!(hsm_open(&secret, &envelope[..len]), Err(ChannelError::Malformed(_))),
            "truncated to {len}"
        );
    }
    let mut longer = envelope.clone();
    longer.push(0);
    assert_eq!(hsm_open(&secret, &longer), Err(ChannelError::RequestDoesNotOpen));
}

#[test]
fn a_request_for_another_fleet_or_key_does_not_open() {
    let secret = fleet_key();
    let (envelope, _) =
        seal_request(&mut OsRng, FLEET, KEY_ID, &secret.public_key(), ACCOUNT, b"for fleet a")
            .unwrap();
    let parsed = RequestEnvelope::parse(&envelope).unwrap();
    assert_eq!(
        open_request(&secret, b"fleet-b", &parsed).map(|_| ()),
        Err(ChannelError::RequestDoesNotOpen)
    );
    assert_eq!(
        open_request(&fleet_key(), FLEET, &parsed).map(|_| ()),
        Err(ChannelError::RequestDoesNotOpen)
    );
    assert!(open_request(&secret, FLEET, &parsed).is_ok());
}

#[test]
fn envelope_parse_errors() {
    assert_eq!(
        RequestEnvelope::parse(&[]),
        Err(ChannelError::Malformed(WireError::Truncated("version")))
    );
    assert_eq!(RequestEnvelope::parse(&[2; 100]), Err(ChannelError::UnsupportedVersion(2)));
    assert_eq!(RequestEnvelope::parse(&[0]), Err(ChannelError::UnsupportedVersion(0)));
    let mut empty_account = vec![1, 0, 0, 0];
    empty_account.extend_from_slice(&[0; 48]);
    assert_eq!(
        RequestEnvelope::parse(&empty_account),
        Err(ChannelError::Malformed(WireError::Invalid { field: "account_id", why: "empty" }))
    );
    let mut short_ct = vec![1, 0, 0, 1, 0xaa];
    short_ct.extend_from_slice(&[0; 32 + 15]);
    assert_eq!(
        RequestEnvelope::parse(&short_ct),
        Err(ChannelError::Malformed(WireError::Truncated("ciphertext")))
    );
    let mut long_ct = vec![1, 0, 0, 1, 0xaa];
    long_ct.extend_from_slice(&vec![0; 32 + 8192 + 17]);
    assert_eq!(
        RequestEnvelope::parse(&long_ct),
        Err(ChannelError::Malformed(WireError::TooLong {
            field: "ciphertext",
            len: 8192 + 17,
            max: 8192 + 16
        }))
    );
}

#[test]
fn low_order_keys_are_rejected() {
    // The all-zero X25519 point has small order: DH with it gives zero, which HPKE rejects.
    assert_eq!(
        seal_request(&mut OsRng, FLEET, KEY_ID, &FleetPublicKey([0; 32]), ACCOUNT, b"x")
            .map(|_| ()),
        Err(ChannelError::InvalidFleetKey)
    );
    let secret = fleet_key();
    let mut envelope = vec![1, KEY_ID, 0, ACCOUNT.len() as u8];
    envelope.extend_from_slice(ACCOUNT);
    envelope.extend_from_slice(&[0; 32]);
    envelope.extend_from_slice(&[0; 20]);
    assert_eq!(hsm_open(&secret, &envelope), Err(ChannelError::RequestDoesNotOpen));
}

#[test]
fn seal_side_bounds() {
    let public = fleet_key().public_key();
    let seal = |fleet: &[u8], account: &[u8], plaintext: &[u8]| {
        seal_request(&mut OsRng, fleet, KEY_ID, &public, account, plaintext).map(|_| ())
    };
    assert_eq!(seal(b"", ACCOUNT, b""), Err(ChannelError::InvalidFleetId(0)));
    assert_eq!(seal(&[0; 65], ACCOUNT, b""), Err(ChannelError::InvalidFleetId(65)));
    assert_eq!(seal(FLEET, b"", b""), Err(ChannelError::InvalidAccountId(0)));
    assert_eq!(seal(FLEET, &[0; 65], b""), Err(ChannelError::InvalidAccountId(65)));
    assert_eq!(seal(FLEET, ACCOUNT, &vec![0; 8193]), Err(ChannelError::PlaintextTooLong(8193)));
    let secret = fleet_key();
    let (envelope, _) =
        seal_request(&mut OsRng, FLEET, KEY_ID, &secret.public_key(), ACCOUNT, b"").unwrap();
    let parsed = RequestEnvelope::parse(&envelope).unwrap();
    assert_eq!(
        open_request(&secret, b"", &parsed).map(|_| ()),
        Err(ChannelError::InvalidFleetId(0))
    );
    let (_, sealer) = open_request(&secret, FLEET, &parsed).unwrap();
    assert_eq!(sealer.seal(&mut OsRng, &vec![0; 8193]), Err(ChannelError::PlaintextTooLong(8193)));
}

#[test]
fn secret_key_bytes_round_trip_and_debug_is_redacted() {
    let secret = fleet_key();
    let bytes = secret.to_bytes();
    let again = FleetSecretKey::from_bytes(&bytes).unwrap();
    assert_eq!(again.public_key(), secret.public_key());
    let shown = format!("{secret:?}");
    assert!(shown.contains("redacted"));
    assert!(!shown.contains(&hex::encode(*bytes)));
    assert!(!shown.contains(&format!("{:?}", *bytes)));

    let (envelope, pending) =
        seal_request(&mut OsRng, FLEET, KEY_ID, &secret.public_key(), ACCOUNT, b"").unwrap();
    assert!(format!("{pending:?}").contains("redacted"));
    let parsed = RequestEnvelope::parse(&envelope).unwrap();
    let (_, sealer) = open_request(&secret, FLEET, &parsed).unwrap();
    assert!(format!("{sealer:?}").contains("redacted"));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn envelope_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let secret = FleetSecretKey::derive(&[1; 32]);
            if let Ok(parsed) = RequestEnvelope::parse(&bytes) {
                prop_assert!(open_request(&secret, FLEET, &parsed).is_err());
            }
        }

        #[test]
        fn response_open_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let secret = FleetSecretKey::derive(&[1; 32]);
            let (_, pending) = seal_request_with_ephemeral_ikm(
                &[2; 32], FLEET, KEY_ID, &secret.public_key(), ACCOUNT, b"").unwrap();
            prop_assert!(pending.open(&bytes).is_err());
        }
    }
}
