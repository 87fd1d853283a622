//! Cases of the fleet secrets decoder alone (spec 4.10.1).

use super::*;
use e2ee_backup_vault::FleetId;

/// A secrets case from its bytes: the decoder accepts them and serialises them back to the same
/// bytes, or rejects them with a wire error code (spec 4.2).
pub(super) fn run_secrets(secrets: &[u8]) -> Result<Value, String> {
    let mut case = json!({ "scenario": "secrets", "secrets": hex::encode(secrets) });
    match HsmSecrets::from_bytes(secrets) {
        Ok(decoded) => {
            expect_eq(
                "the secrets serialised again",
                hex::encode(&*decoded.to_bytes()),
                hex::encode(secrets),
            )?;
            case["result"] = json!("valid");
            case["fleetId"] = json!(hex::encode(decoded.fleet_id()));
        }
        Err(e) => {
            case["result"] = json!("invalid");
            case["error"] = json!(e.code());
        }
    }
    Ok(case)
}

/// Fleet secrets whose fleet id is empty: refused as `invalid-value` once its length is read
/// (spec 4.10.1). Earlier decoders took them, and an HSM built from them opened no request.
pub(super) fn empty_fleet_id_case() -> Value {
    let mut draws = Draws::new(Source::Derive("vault/secrets".into()));
    draws.begin("hsm.setup");
    let mut bytes =
        HsmSecrets::generate(&mut draws, FleetId::from_static(FLEET_ID)).to_bytes().to_vec();
    bytes.splice(1..1 + 2 + FLEET_ID.len(), [0, 0]);
    let comment = "an empty fleet id";
    let mut case = run_secrets(&bytes).unwrap_or_else(|e| panic!("secrets {comment}: {e}"));
    assert_eq!(case.get("error").and_then(Value::as_str), Some("invalid-value"), "{comment}");
    case["comment"] = json!(comment);
    case["flags"] = json!(["SecretsDecoding"]);
    case
}

/// The fleet secrets cases: the secrets of a fleet set up from seeded draws, changed one rule
/// at a time in the order spec 4.10.1 checks them.
pub(super) fn secrets_cases() -> Vec<Value> {
    let mut draws = Draws::new(Source::Derive("vault/secrets".into()));
    draws.begin("hsm.setup");
    let base = HsmSecrets::generate(&mut draws, FleetId::from_static(FLEET_ID)).to_bytes().to_vec();
    // Offsets in `base`: the fleet id, then the OPAQUE setup (oprf_seed [64] || ake_private [32]
    // || dummy_public [32]), ticket_key [32], count, key id, X25519 key [32].
    let setup = 1 + 2 + FLEET_ID.len();
    let (ake, dummy, count) = (setup + 64, setup + 96, setup + 128 + 32);
    expect_eq("secrets length", base.len(), count + 1 + 33).expect("the layout of spec 4.10.1");
    let second_key = draw("vault/secrets/second-channel-key", 32);
    let with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = base.clone();
        edit(&mut bytes);
        bytes
    };
    let longer_fleet = |len: usize| {
        with(&|b: &mut Vec<u8>| {
            let fleet = draw("vault/secrets/fleet-id", len);
            let len = u16::try_from(len).expect("short").to_be_bytes();
            b.splice(1..setup, len.into_iter().chain(fleet));
        })
    };
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        ("the secrets of a fleet with one channel key, id 1", base.clone(), None),
        (
            "two channel keys, ids 1 and 2",
            with(&|b| {
                b[count] = 2;
                b.push(2);
                b.extend_from_slice(&second_key);
            }),
            None,
        ),
        ("a fleet id of 64 bytes", longer_fleet(64), None),
        ("a first byte of 2", with(&|b| b[0] = 2), Some("invalid-value")),
        ("a fleet id of 65 bytes", longer_fleet(65), Some("too-long")),
        (
            "ake_private not canonical (32 bytes of ff)",
            with(&|b| b[ake..ake + 32].fill(0xff)),
            Some("invalid-value"),
        ),
        ("ake_private zero", with(&|b| b[ake..ake + 32].fill(0)), Some("invalid-value")),
        (
            "dummy_public not a valid element (32 bytes of ff)",
            with(&|b| b[dummy..dummy + 32].fill(0xff)),
            Some("invalid-value"),
        ),
        (
            "dummy_public the identity",
            with(&|b| b[dummy..dummy + 32].fill(0)),
            Some("invalid-value"),
        ),
        ("count 0, the key after it left in place", with(&|b| b[count] = 0), Some("invalid-value")),
        (
            "a key id twice, the second one's key missing: reported when the id is read",
            with(&|b| {
                b[count] = 2;
                b.push(1);
            }),
            Some("invalid-value"),
        ),
        ("count 2 and one key", with(&|b| b[count] = 2), Some("truncated")),
        ("one byte after the last key", with(&|b| b.push(0)), Some("trailing-bytes")),
        ("cut inside ticket_key", with(&|b| b.truncate(count - 1)), Some("truncated")),
        ("empty", Vec::new(), Some("truncated")),
    ];
    cases
        .into_iter()
        .map(|(comment, bytes, error)| {
            let mut case = run_secrets(&bytes).unwrap_or_else(|e| panic!("secrets {comment}: {e}"));
            assert_eq!(case.get("error").and_then(Value::as_str), error, "secrets {comment}");
            case["comment"] = json!(comment);
            case["flags"] = json!(["SecretsDecoding"]);
            case
        })
        .collect()
}
