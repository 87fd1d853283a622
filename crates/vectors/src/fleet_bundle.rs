//! Fleet key bundle vectors (spec section 4.3): signed bundles, each with the pin, the time and
//! the last accepted epoch a client checks it with, and either the keys it yields or the error
//! of the first failed check, in the spec's order.

use e2ee_backup_vault::{
    Auditor, FleetAuthority, PinnedFleet,
    internal::{fleet::AUDITOR_LABEL, fleet::AUTHORITY_LABEL, wire::Writer},
};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde_json::{Value, json};

use crate::{draw32, envelope, expect_eq, hex_field, number};

/// The `algorithm` of the file.
pub const ALGORITHM: &str = "e2ee-backups fleet key bundle v1";

const FLEET: &[u8] = b"vectors.fleet";
const NOW: u64 = 1_800_000_000;
const NOT_AFTER: u64 = NOW + 30 * 86_400;
const EPOCH: u64 = 7;

const NOTES: &[(&str, &str)] = &[
    ("Valid", "A bundle every check accepts; the keys are its output."),
    (
        "Boundary",
        "A value at the edge of its rule: now = not_after, 16 keys, a 64-byte fleet id, epoch = last seen.",
    ),
    ("Auditor", "An auditor is pinned, or the bundle carries an auditor signature."),
    ("Expiry", "now > not_after: expired."),
    ("Rollback", "The epoch is below the highest the client accepted: rollback."),
    ("Signature", "A signature that does not verify under the pinned key (or is missing)."),
    (
        "Body",
        "The signed body breaks a rule of its encoding: version, key count, duplicate key id.",
    ),
    ("Framing", "The signed bundle itself does not parse."),
    (
        "Order",
        "Several faults at once: the error is the one of the first check in the spec's order.",
    ),
];

fn seed(name: &str) -> SigningKey {
    SigningKey::from_bytes(&draw32(&format!("fleet-bundle/{name}")))
}

/// A body as section 4.3 writes it, with any version and key list.
fn body(
    version: u8,
    fleet_id: &[u8],
    epoch: u64,
    not_after: u64,
    keys: &[(u8, [u8; 32])],
) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(version).vec16(fleet_id).u64(epoch).u64(not_after).u8(keys.len() as u8);
    for (id, key) in keys {
        w.u8(*id).bytes(key);
    }
    w.finish()
}

/// `vec16(body) || authority_sig || has_auditor || [auditor_sig]`.
fn signed(body: &[u8], authority: &SigningKey, auditor: Option<&SigningKey>) -> Vec<u8> {
    let mut message = AUTHORITY_LABEL.to_vec();
    message.push(0);
    message.extend_from_slice(body);
    let authority_sig = authority.sign(&message).to_bytes();
    let mut w = Writer::new();
    w.vec16(body).bytes(&authority_sig);
    match auditor {
        None => w.u8(0),
        Some(auditor) => {
            let mut message = AUDITOR_LABEL.to_vec();
            message.push(0);
            message.extend_from_slice(body);
            message.extend_from_slice(&authority_sig);
            w.u8(1).bytes(&auditor.sign(&message).to_bytes())
        }
    };
    w.finish()
}

fn keys(n: usize) -> Vec<(u8, [u8; 32])> {
    (0..n).map(|i| (i as u8 + 1, draw32(&format!("fleet-bundle/hpke-key/{i}")))).collect()
}

fn flip(bytes: &[u8], at: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out[at] ^= 1;
    out
}

struct Case {
    /// The pinned fleet id.
    fleet: &'static [u8],
    comment: &'static str,
    flags: &'static [&'static str],
    signed: Vec<u8>,
    auditor_pinned: bool,
    now: u64,
    last_seen: Option<u64>,
}

fn pin(fleet: &[u8], auditor: bool) -> PinnedFleet {
    PinnedFleet {
        fleet_id: fleet.to_vec(),
        authority: seed("authority").verifying_key(),
        auditor: auditor.then(|| seed("auditor").verifying_key()),
    }
}

impl Case {
    fn json(&self) -> Value {
        let auditor =
            self.auditor_pinned.then(|| hex::encode(seed("auditor").verifying_key().as_bytes()));
        let mut case = json!({
            "comment": self.comment,
            "flags": self.flags,
            "pin": {
                "fleetId": hex::encode(self.fleet),
                "authority": hex::encode(seed("authority").verifying_key().as_bytes()),
                "auditor": auditor,
            },
            "signed": hex::encode(&self.signed),
            "now": self.now,
            "lastSeenEpoch": self.last_seen,
        });
        match pin(self.fleet, self.auditor_pinned).verify(&self.signed, self.now, self.last_seen) {
            Ok(bundle) => {
                case["result"] = json!("valid");
                // The signers' seeds, so that a writer reproduces `signed` byte for byte
                // (Ed25519 signatures are deterministic, spec 4.3).
                let body_len = usize::from(u16::from_be_bytes([self.signed[0], self.signed[1]]));
                let audited = self.signed[2 + body_len + 64] == 1;
                case["authoritySeed"] = json!(hex::encode(draw32("fleet-bundle/authority")));
                case["auditorSeed"] =
                    json!(audited.then(|| hex::encode(draw32("fleet-bundle/auditor"))));
                case["bundle"] = json!({
                    "epoch": bundle.epoch,
                    "notAfter": bundle.not_after,
                    "keys": bundle.keys.iter().map(|(id, key)| json!({ "keyId": id, "publicKey": hex::encode(key.as_bytes()) })).collect::<Vec<_>>(),
                });
            }
            Err(e) => {
                case["result"] = json!("invalid");
                case["error"] = json!(e.code());
            }
        }
        case
    }
}

/// Builds the vector file.
pub fn generate() -> Value {
    let authority = seed("authority");
    let auditor = seed("auditor");
    let stranger = seed("stranger");
    let two = keys(2);
    let good = body(1, FLEET, EPOCH, NOT_AFTER, &two);
    let plain = signed(&good, &authority, None);
    let audited = signed(&good, &authority, Some(&auditor));
    let case = |comment, flags, signed: &[u8], auditor_pinned, now, last_seen| Case {
        fleet: FLEET,
        comment,
        flags,
        signed: signed.to_vec(),
        auditor_pinned,
        now,
        last_seen,
    };
    let long_fleet = body(1, &[b'f'; 64], EPOCH, NOT_AFTER, &two);
    let other_fleet_pin = signed(&long_fleet, &authority, None);
    let sixteen = signed(&body(1, FLEET, EPOCH, NOT_AFTER, &keys(16)), &authority, None);
    let mut duplicate = keys(3);
    duplicate[2].0 = duplicate[0].0;
    let valid = [
        case("two keys, no auditor, well before expiry", &["Valid"][..], &plain, false, NOW, None),
        case("now equals not_after", &["Valid", "Boundary"], &plain, false, NOT_AFTER, None),
        case("16 keys", &["Valid", "Boundary"], &sixteen, false, NOW, None),
        case(
            "epoch equal to the last seen",
            &["Valid", "Boundary"],
            &plain,
            false,
            NOW,
            Some(EPOCH),
        ),
        case(
            "auditor pinned and countersigned",
            &["Valid", "Auditor"],
            &audited,
            true,
            NOW,
            Some(3),
        ),
        case(
            "countersigned, no auditor pinned: ignored",
            &["Valid", "Auditor"],
            &audited,
            false,
            NOW,
            None,
        ),
    ];
    let sig_at = 2 + good.len() + 10;
    let auditor_sig_at = 2 + good.len() + 64 + 1 + 10;
    let mut trailing = plain.clone();
    trailing.push(0);
    let mut has_auditor_two = plain.clone();
    *has_auditor_two.last_mut().expect("a byte") = 2;
    let expired_and_foreign =
        signed(&body(1, b"other.fleet", EPOCH, NOW - 1, &two), &authority, None);
    let invalid = [
        case(
            "one second after not_after",
            &["Expiry", "Boundary"],
            &plain,
            false,
            NOT_AFTER + 1,
            None,
        ),
        case("epoch below the last seen", &["Rollback"], &plain, false, NOW, Some(EPOCH + 1)),
        case(
            "authority signature changed",
            &["Signature"],
            &flip(&plain, sig_at),
            false,
            NOW,
            None,
        ),
        case(
            "signed by another key",
            &["Signature"],
            &signed(&good, &stranger, None),
            false,
            NOW,
            None,
        ),
        case(
            "auditor pinned, no countersignature",
            &["Signature", "Auditor"],
            &plain,
            true,
            NOW,
            None,
        ),
        case(
            "auditor signature changed",
            &["Signature", "Auditor"],
            &flip(&audited, auditor_sig_at),
            true,
            NOW,
            None,
        ),
        case(
            "countersigned by another key",
            &["Signature", "Auditor"],
            &signed(&good, &authority, Some(&stranger)),
            true,
            NOW,
            None,
        ),
        case(
            "bundle of another fleet (a 64-byte id)",
            &["Body", "Boundary"],
            &other_fleet_pin,
            false,
            NOW,
            None,
        ),
        case(
            "body version 2",
            &["Body"],
            &signed(&body(2, FLEET, EPOCH, NOT_AFTER, &two), &authority, None),
            false,
            NOW,
            None,
        ),
        case(
            "a key id twice",
            &["Body"],
            &signed(&body(1, FLEET, EPOCH, NOT_AFTER, &duplicate), &authority, None),
            false,
            NOW,
            None,
        ),
        case(
            "no key",
            &["Body", "Boundary"],
            &signed(&body(1, FLEET, EPOCH, NOT_AFTER, &[]), &authority, None),
            false,
            NOW,
            None,
        ),
        case(
            "17 keys",
            &["Body", "Boundary"],
            &signed(&body(1, FLEET, EPOCH, NOT_AFTER, &keys(17)), &authority, None),
            false,
            NOW,
            None,
        ),
        case(
            "empty fleet id",
            &["Body", "Boundary"],
            &signed(&body(1, b"", EPOCH, NOT_AFTER, &two), &authority, None),
            false,
            NOW,
            None,
        ),
        case("a byte after the signed bundle", &["Framing"], &trailing, false, NOW, None),
        case(
            "cut inside the authority signature",
            &["Framing"],
            &plain[..2 + good.len() + 20],
            false,
            NOW,
            None,
        ),
        case("has_auditor = 2", &["Framing"], &has_auditor_two, false, NOW, None),
        case("empty", &["Framing"], &[], false, NOW, None),
        case(
            "another fleet and expired: the fleet is checked first",
            &["Order"],
            &expired_and_foreign,
            false,
            NOW,
            None,
        ),
        case(
            "another signer and version 2: the signature is checked first",
            &["Order", "Signature"],
            &signed(&body(2, FLEET, EPOCH, NOT_AFTER, &two), &stranger, None),
            false,
            NOW,
            None,
        ),
        case(
            "expired and rolled back: expiry is checked first",
            &["Order", "Expiry"],
            &plain,
            false,
            NOT_AFTER + 1,
            Some(EPOCH + 1),
        ),
    ];
    let (more_valid, more_invalid) = more_cases();
    let mut groups = vec![
        json!({ "type": "FleetBundleValid", "tests": valid.iter().map(Case::json).collect::<Vec<_>>() }),
        json!({ "type": "FleetBundleInvalid", "tests": invalid.iter().map(Case::json).collect::<Vec<_>>() }),
        // Added later, after the first two so that their tcIds stay.
        json!({ "type": "FleetBundleValid", "tests": more_valid }),
        json!({ "type": "FleetBundleInvalid", "tests": more_invalid }),
    ];
    number(&mut groups);
    envelope(
        ALGORITHM,
        &[
            "Fleet key bundles (spec section 4.3): Ed25519 (RFC 8032, strict verification) signatures by the fleet authority and an optional auditor over a versioned body of HPKE keys. Each case gives the client's pin, the time, the highest epoch it accepted before (null: none), and the signed bundle; a valid case gives the body's epoch, expiry and keys, an invalid one the error of the first failed check of section 4.3.",
        ],
        NOTES,
        groups,
    )
}

/// The boundaries and field order of section 4.3 that the first groups left without a vector.
/// Each case states the outcome the spec gives, and the generator stops if the verifier
/// disagrees, so these vectors do not merely record what the code does.
fn more_cases() -> (Vec<Value>, Vec<Value>) {
    const LONGEST: &[u8] = &[b'f'; 64];
    let authority = seed("authority");
    let auditor = seed("auditor");
    let two = keys(2);
    let (mut valid, mut invalid) = (Vec::new(), Vec::new());
    let mut add = |comment: &'static str,
                   flags: &'static [&'static str],
                   fleet: &'static [u8],
                   signed: Vec<u8>,
                   auditor_pinned: bool,
                   expected: &str| {
        let case =
            Case { fleet, comment, flags, signed, auditor_pinned, now: NOW, last_seen: None }
                .json();
        let outcome = case["error"].as_str().unwrap_or("valid");
        assert_eq!(
            outcome, expected,
            "fleet-bundle vector {comment:?}: the verifier disagrees with spec 4.3"
        );
        if expected == "valid" { valid.push(case) } else { invalid.push(case) }
    };
    // The largest body: a 64-byte fleet id and 16 keys are 612 bytes; one byte more is refused
    // by the framing of step 1, before any signature is checked.
    let largest = body(1, LONGEST, EPOCH, NOT_AFTER, &keys(16));
    assert_eq!(largest.len(), 612);
    add(
        "the largest body: 612 bytes",
        &["Valid", "Boundary"],
        LONGEST,
        signed(&largest, &authority, None),
        false,
        "valid",
    );
    let mut too_long = largest.clone();
    too_long.push(0);
    add(
        "a body of 613 bytes (its signature is good)",
        &["Framing", "Boundary"],
        LONGEST,
        signed(&too_long, &authority, None),
        false,
        "malformed",
    );
    let zero_key = [(1u8, [0u8; 32])];
    add(
        "an all-zero HPKE key: not checked on acceptance",
        &["Valid"],
        FLEET,
        signed(&body(1, FLEET, EPOCH, NOT_AFTER, &zero_key), &authority, None),
        false,
        "valid",
    );

    // Step 4: the version before anything else of the body; then front to back.
    let mut v2_no_keys = body(2, FLEET, EPOCH, NOT_AFTER, &[]);
    v2_no_keys.truncate(v2_no_keys.len() - 1);
    add(
        "version 2 and a body cut before key_count: the version first",
        &["Body", "Order"],
        FLEET,
        signed(&v2_no_keys, &authority, None),
        false,
        "unsupported-version",
    );
    add(
        "version 2 and no key: the version first",
        &["Body", "Order"],
        FLEET,
        signed(&body(2, FLEET, EPOCH, NOT_AFTER, &[]), &authority, None),
        false,
        "unsupported-version",
    );
    add(
        "a 65-byte fleet id",
        &["Body", "Boundary"],
        FLEET,
        signed(&body(1, &[b'f'; 65], EPOCH, NOT_AFTER, &two), &authority, None),
        false,
        "malformed",
    );
    let mut runs_past = body(1, FLEET, EPOCH, NOT_AFTER, &two);
    runs_past[1..3].copy_from_slice(&600u16.to_be_bytes());
    add(
        "a fleet id length that runs past the body",
        &["Body"],
        FLEET,
        signed(&runs_past, &authority, None),
        false,
        "malformed",
    );
    let cut_epoch = body(1, FLEET, EPOCH, NOT_AFTER, &two)[..3 + FLEET.len() + 4].to_vec();
    add(
        "a body that ends inside epoch",
        &["Body"],
        FLEET,
        signed(&cut_epoch, &authority, None),
        false,
        "malformed",
    );
    let mut cut_key = body(1, FLEET, EPOCH, NOT_AFTER, &two);
    cut_key.truncate(cut_key.len() - 10);
    add(
        "a body that ends inside its second key",
        &["Body"],
        FLEET,
        signed(&cut_key, &authority, None),
        false,
        "malformed",
    );
    let mut after_keys = body(1, FLEET, EPOCH, NOT_AFTER, &two);
    after_keys.push(0);
    add(
        "a byte after the last key",
        &["Body"],
        FLEET,
        signed(&after_keys, &authority, None),
        false,
        "malformed",
    );
    let mut duplicate = keys(3);
    duplicate[1].0 = duplicate[0].0;
    let mut duplicate_then_cut = body(1, FLEET, EPOCH, NOT_AFTER, &duplicate);
    duplicate_then_cut.truncate(duplicate_then_cut.len() - 5);
    add(
        "a key id repeated by the second key, the third cut: the repeat first",
        &["Body", "Order"],
        FLEET,
        signed(&duplicate_then_cut, &authority, None),
        false,
        "duplicate-key-id",
    );
    let mut count_then_cut = body(1, FLEET, EPOCH, NOT_AFTER, &keys(17));
    count_then_cut.truncate(3 + FLEET.len() + 16 + 1);
    add(
        "key_count 17 and no key bytes: the count first",
        &["Body", "Order", "Boundary"],
        FLEET,
        signed(&count_then_cut, &authority, None),
        false,
        "malformed",
    );
    add(
        "a body of another fleet that also repeats a key id: the body first",
        &["Body", "Order"],
        b"not.this.fleet",
        signed(&body(1, FLEET, EPOCH, NOT_AFTER, &duplicate), &authority, None),
        false,
        "duplicate-key-id",
    );

    // Step 1: the framing around the body.
    let good = body(1, FLEET, EPOCH, NOT_AFTER, &two);
    let plain = signed(&good, &authority, None);
    let audited = signed(&good, &authority, Some(&auditor));
    add("cut inside the body", &["Framing"], FLEET, plain[..20].to_vec(), false, "malformed");
    add(
        "cut before has_auditor",
        &["Framing"],
        FLEET,
        plain[..plain.len() - 1].to_vec(),
        false,
        "malformed",
    );
    add(
        "cut inside the auditor signature",
        &["Framing", "Auditor"],
        FLEET,
        audited[..audited.len() - 1].to_vec(),
        false,
        "malformed",
    );
    add(
        "cut inside the auditor signature, no auditor pinned",
        &["Framing", "Auditor"],
        FLEET,
        audited[..audited.len() - 1].to_vec(),
        false,
        "malformed",
    );
    // A body over the bound is refused by step 1's framing, before the signature: here the
    // signer is a stranger, so a reader without the bound reports bad-authority-signature.
    add(
        "a body of 613 bytes signed by another key: the framing first",
        &["Framing", "Order", "Boundary"],
        LONGEST,
        signed(&too_long, &seed("stranger"), None),
        false,
        "malformed",
    );
    (valid, invalid)
}

/// Checks one case.
pub fn verify_case(case: &Value) -> Result<(), String> {
    let pinned = &case["pin"];
    let key = |field: &str| -> Result<VerifyingKey, String> {
        let bytes: [u8; 32] =
            hex_field(pinned, field)?.try_into().map_err(|_| format!("{field}: not 32 bytes"))?;
        VerifyingKey::from_bytes(&bytes).map_err(|e| format!("{field}: {e}"))
    };
    let pin = PinnedFleet {
        fleet_id: hex_field(pinned, "fleetId")?,
        authority: key("authority")?,
        auditor: if pinned["auditor"].is_null() { None } else { Some(key("auditor")?) },
    };
    let signed = hex_field(case, "signed")?;
    let now = case["now"].as_u64().ok_or("no now")?;
    let last_seen = case["lastSeenEpoch"].as_u64();
    match (case["result"].as_str(), pin.verify(&signed, now, last_seen)) {
        (Some("valid"), Ok(bundle)) => {
            let expected = &case["bundle"];
            expect_eq("epoch", Some(bundle.epoch), expected["epoch"].as_u64())?;
            expect_eq("notAfter", Some(bundle.not_after), expected["notAfter"].as_u64())?;
            let keys: Vec<Value> = bundle
                .keys
                .iter()
                .map(|(id, key)| json!({ "keyId": id, "publicKey": hex::encode(key.as_bytes()) }))
                .collect();
            expect_eq("keys", &json!(keys), &expected["keys"])?;
            // A writer given the bundle and the seeds makes the same bytes.
            let seed = |field: &str| -> Result<[u8; 32], String> {
                hex_field(case, field)?.try_into().map_err(|_| format!("{field}: not 32 bytes"))
            };
            let authority = FleetAuthority::from_bytes(&seed("authoritySeed")?);
            let mut written = authority.sign(&bundle).map_err(|e| format!("signing: {e}"))?;
            if !case["auditorSeed"].is_null() {
                written = Auditor::from_bytes(&seed("auditorSeed")?)
                    .countersign(&authority.verifying_key(), &written)
                    .map_err(|e| format!("countersigning: {e}"))?;
            }
            expect_eq("signed, as a writer makes it", hex::encode(written), hex::encode(&signed))
        }
        (Some("invalid"), Err(e)) => expect_eq("error", Some(e.code()), case["error"].as_str()),
        (result, outcome) => {
            Err(format!("expected {result:?}, got {:?}", outcome.map(|_| "a bundle")))
        }
    }
}
