//! RFC 9807 Appendix C, replayed through the OPAQUE configuration the vault ships
//! ([`RfcSuite`]: the same suite with the identity as stretching function, as the vectors use).
//! Every random draw of the protocol is fed from the vector's inputs, in the order opaque-ke draws
//! them; every message, the export key and the session key must equal the vector's bytes.

use e2ee_backup_testkit::{hex_of, published_vectors};
use e2ee_backup_vault::RfcSuite;
use opaque_ke::{
    ClientLogin, ClientLoginFinishParameters, ClientRegistration,
    ClientRegistrationFinishParameters, CredentialFinalization, CredentialRequest,
    CredentialResponse, Identifiers, RegistrationRequest, RegistrationResponse, RegistrationUpload,
    ServerLogin, ServerLoginParameters, ServerRegistration, ServerSetup,
};
use rand_core::{CryptoRng, RngCore};
use serde_json::Value;

/// An RNG that plays back a script: each `fill_bytes` call takes the next entry, which must have
/// exactly the requested length, so a change in opaque-ke's draws fails loudly.
struct ScriptRng(std::collections::VecDeque<(&'static str, Vec<u8>)>);

impl ScriptRng {
    fn new(draws: Vec<(&'static str, Vec<u8>)>) -> Self {
        Self(draws.into())
    }
    fn assert_spent(&self) {
        assert!(
            self.0.is_empty(),
            "unused draws: {:?}",
            self.0.iter().map(|d| d.0).collect::<Vec<_>>()
        );
    }
}

impl RngCore for ScriptRng {
    fn next_u32(&mut self) -> u32 {
        unimplemented!("opaque-ke draws bytes only")
    }
    fn next_u64(&mut self) -> u64 {
        unimplemented!("opaque-ke draws bytes only")
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let (name, bytes) = self.0.pop_front().expect("a draw the script does not have");
        assert_eq!(bytes.len(), dest.len(), "draw {name}: length");
        dest.copy_from_slice(&bytes);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}
impl CryptoRng for ScriptRng {}

/// A scalar as a 64-byte wide draw: ristretto255 reduces 64 little-endian bytes modulo the group
/// order, so the scalar followed by 32 zero bytes yields the scalar itself.
fn wide(scalar: &[u8]) -> Vec<u8> {
    let mut out = scalar.to_vec();
    out.resize(64, 0);
    out
}

fn ristretto_vectors() -> Vec<Value> {
    let all = published_vectors("cfrg-opaque/vectors.json");
    let chosen: Vec<Value> = all
        .as_array()
        .expect("a list of vectors")
        .iter()
        .filter(|v| v["config"]["Group"] == "ristretto255" && v["config"]["Name"] == "3DH")
        .cloned()
        .collect();
    assert_eq!(chosen.len(), 3, "RFC 9807 has two real and one fake ristretto255 vector");
    chosen
}

fn setup(inputs: &Value, dummy_pk: &[u8]) -> ServerSetup<RfcSuite> {
    let mut bytes = hex_of(&inputs["oprf_seed"]);
    bytes.extend(hex_of(&inputs["server_private_key"]));
    bytes.extend(dummy_pk);
    ServerSetup::deserialize(&bytes).expect("a valid server setup")
}

fn field(v: &Value, name: &str) -> Option<Vec<u8>> {
    v.get(name).map(hex_of)
}

#[test]
fn real_vectors_every_message_and_key() {
    let vectors = ristretto_vectors();
    let mut checked = 0;
    for v in vectors.iter().filter(|v| v["config"]["Fake"] == "False") {
        let (inp, out) = (&v["inputs"], &v["outputs"]);
        assert_eq!(v["config"]["KSF"], "Identity");
        let password = hex_of(&inp["password"]);
        let credential_id = hex_of(&inp["credential_identifier"]);
        let context = hex_of(&v["config"]["Context"]);
        let (client_id, server_id) = (field(inp, "client_identity"), field(inp, "server_identity"));
        let ids = Identifiers { client: client_id.as_deref(), server: server_id.as_deref() };
        // The dummy key only serves unknown accounts; any valid point will do here.
        let server = setup(inp, &hex_of(&inp["server_public_key"]));

        // Registration.
        let mut rng =
            ScriptRng::new(vec![("blind_registration", wide(&hex_of(&inp["blind_registration"])))]);
        let reg = ClientRegistration::<RfcSuite>::start(&mut rng, &password).unwrap();
        rng.assert_spent();
        assert_eq!(reg.message.serialize().to_vec(), hex_of(&out["registration_request"]));
        let request = RegistrationRequest::deserialize(&reg.message.serialize()).unwrap();
        let response =
            ServerRegistration::<RfcSuite>::start(&server, request, &credential_id).unwrap();
        assert_eq!(response.message.serialize().to_vec(), hex_of(&out["registration_response"]));
        let response = RegistrationResponse::deserialize(&response.message.serialize()).unwrap();
        let mut rng = ScriptRng::new(vec![("envelope_nonce", hex_of(&inp["envelope_nonce"]))]);
        let upload = reg
            .state
            .finish(
                &mut rng,
                &password,
                response,
                ClientRegistrationFinishParameters::new(ids, None),
            )
            .unwrap();
        rng.assert_spent();
        assert_eq!(upload.message.serialize().to_vec(), hex_of(&out["registration_upload"]));
        assert_eq!(upload.export_key.to_vec(), hex_of(&out["export_key"]));
        let record = ServerRegistration::finish(
            RegistrationUpload::deserialize(&upload.message.serialize()).unwrap(),
        );

        // Login.
        let mut rng = ScriptRng::new(vec![
            ("blind_login", wide(&hex_of(&inp["blind_login"]))),
            ("client_keyshare_seed", hex_of(&inp["client_keyshare_seed"])),
            ("client_nonce", hex_of(&inp["client_nonce"])),
        ]);
        let login = ClientLogin::<RfcSuite>::start(&mut rng, &password).unwrap();
        rng.assert_spent();
        assert_eq!(login.message.serialize().to_vec(), hex_of(&out["KE1"]));
        let ke1 = CredentialRequest::deserialize(&login.message.serialize()).unwrap();
        let mut rng = ScriptRng::new(vec![
            ("dummy masking key (unused for a known account)", vec![0; 64]),
            ("masking_nonce", hex_of(&inp["masking_nonce"])),
            ("server_keyshare_seed", hex_of(&inp["server_keyshare_seed"])),
            ("server_nonce", hex_of(&inp["server_nonce"])),
        ]);
        let params = ServerLoginParameters { context: Some(&context), identifiers: ids };
        let ke2 = ServerLogin::start(
            &mut rng,
            &server,
            Some(record),
            ke1,
            &credential_id,
            params.clone(),
        )
        .unwrap();
        rng.assert_spent();
        assert_eq!(ke2.message.serialize().to_vec(), hex_of(&out["KE2"]));
        let ke2_msg = CredentialResponse::deserialize(&ke2.message.serialize()).unwrap();
        let mut rng = ScriptRng::new(vec![]);
        let finish = login
            .state
            .finish(
                &mut rng,
                &password,
                ke2_msg,
                ClientLoginFinishParameters::new(Some(&context), ids, None),
            )
            .unwrap();
        rng.assert_spent();
        assert_eq!(finish.message.serialize().to_vec(), hex_of(&out["KE3"]));
        assert_eq!(finish.export_key.to_vec(), hex_of(&out["export_key"]));
        assert_eq!(finish.session_key.to_vec(), hex_of(&out["session_key"]));
        let ke3 = CredentialFinalization::deserialize(&finish.message.serialize()).unwrap();
        let server_done = ke2.state.finish(ke3, params).unwrap();
        assert_eq!(server_done.session_key.to_vec(), hex_of(&out["session_key"]));
        checked += 1;
    }
    assert_eq!(checked, 2);
}

#[test]
fn fake_vector_ke2_for_an_unknown_account() {
    let vectors = ristretto_vectors();
    let v = vectors.iter().find(|v| v["config"]["Fake"] == "True").unwrap();
    let (inp, out) = (&v["inputs"], &v["outputs"]);
    let context = hex_of(&v["config"]["Context"]);
    let (client_id, server_id) = (field(inp, "client_identity"), field(inp, "server_identity"));
    let ids = Identifiers { client: client_id.as_deref(), server: server_id.as_deref() };
    // The fake record answers with the setup's dummy public key and a fresh masking key.
    let server = setup(inp, &hex_of(&inp["client_public_key"]));
    let ke1 = CredentialRequest::<RfcSuite>::deserialize(&hex_of(&inp["KE1"])).unwrap();
    let mut rng = ScriptRng::new(vec![
        ("masking_key", hex_of(&inp["masking_key"])),
        ("masking_nonce", hex_of(&inp["masking_nonce"])),
        ("server_keyshare_seed", hex_of(&inp["server_keyshare_seed"])),
        ("server_nonce", hex_of(&inp["server_nonce"])),
    ]);
    let params = ServerLoginParameters { context: Some(&context), identifiers: ids };
    let ke2 = ServerLogin::start(
        &mut rng,
        &server,
        None,
        ke1,
        &hex_of(&inp["credential_identifier"]),
        params,
    )
    .unwrap();
    rng.assert_spent();
    assert_eq!(ke2.message.serialize().to_vec(), hex_of(&out["KE2"]));
}
