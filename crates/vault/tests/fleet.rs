//! Fleet key bundles: encoding, signing, countersigning, and every reason a client rejects one.

use e2ee_backup_vault::{
    Auditor, FleetAuthority, FleetBundle, FleetError, FleetPublicKey, PinnedFleet, WireError,
    internal::fleet::MAX_BODY_LEN,
};
use ed25519_dalek::{Signer as _, SigningKey};
use proptest::prelude::*;
use rand_core::OsRng;

const FLEET: &[u8] = b"fleet-a";
const NOW: u64 = 1_750_000_000;

fn bundle() -> FleetBundle {
    FleetBundle {
        fleet_id: FLEET.to_vec(),
        epoch: 5,
        not_after: NOW + 86_400,
        keys: vec![(1, FleetPublicKey([0x11; 32])), (2, FleetPublicKey([0x22; 32]))],
    }
}

struct Setup {
    authority: FleetAuthority,
    auditor: Auditor,
}

impl Setup {
    fn new() -> Self {
        Self {
            authority: FleetAuthority::generate(&mut OsRng),
            auditor: Auditor::generate(&mut OsRng),
        }
    }

    fn pinned(&self, with_auditor: bool) -> PinnedFleet {
        PinnedFleet {
            fleet_id: FLEET.to_vec(),
            authority: self.authority.verifying_key(),
            auditor: with_auditor.then(|| self.auditor.verifying_key()),
        }
    }

    fn signed(&self, bundle: &FleetBundle) -> Vec<u8> {
        self.authority.sign(bundle).unwrap()
    }

    fn countersigned(&self, bundle: &FleetBundle) -> Vec<u8> {
        self.auditor.countersign(&self.authority.verifying_key(), &self.signed(bundle)).unwrap()
    }
}

#[test]
fn body_layout() {
    let body = bundle().encode().unwrap();
    let mut expected = vec![1, 0, 7];
    expected.extend_from_slice(FLEET);
    expected.extend_from_slice(&5u64.to_be_bytes());
    expected.extend_from_slice(&(NOW + 86_400).to_be_bytes());
    expected.push(2);
    expected.push(1);
    expected.extend_from_slice(&[0x11; 32]);
    expected.push(2);
    expected.extend_from_slice(&[0x22; 32]);
    assert_eq!(body, expected);
    assert_eq!(FleetBundle::decode(&body).unwrap(), bundle());
}

#[test]
fn signed_layout_and_signed_messages() {
    let seed = [0x42; 32];
    let authority = FleetAuthority::from_bytes(&seed);
    let auditor = Auditor::from_bytes(&[0x43; 32]);
    let body = bundle().encode().unwrap();
    let signed = authority.sign(&bundle()).unwrap();

    let mut message = b"e2ee-backups/v1/fleet-bundle\x00".to_vec();
    message.extend_from_slice(&body);
    let authority_sig = SigningKey::from_bytes(&seed).sign(&message).to_bytes();
    let mut expected = (body.len() as u16).to_be_bytes().to_vec();
    expected.extend_from_slice(&body);
    expected.extend_from_slice(&authority_sig);
    expected.push(0);
    assert_eq!(signed, expected);

    let countersigned = auditor.countersign(&authority.verifying_key(), &signed).unwrap();
    let mut audit_message = b"e2ee-backups/v1/fleet-bundle/audit\x00".to_vec();
    audit_message.extend_from_slice(&body);
    audit_message.extend_from_slice(&authority_sig);
    let auditor_sig = SigningKey::from_bytes(&[0x43; 32]).sign(&audit_message).to_bytes();
    let mut expected = expected[..expected.len() - 1].to_vec();
    expected.push(1);
    expected.extend_from_slice(&auditor_sig);
    assert_eq!(countersigned, expected);
}

#[test]
fn accepts_a_good_bundle() {
    let s = Setup::new();
    let signed = s.signed(&bundle());
    let countersigned = s.countersigned(&bundle());
    assert_eq!(s.pinned(false).verify(&signed, NOW, None), Ok(bundle()));
    assert_eq!(s.pinned(true).verify(&countersigned, NOW, Some(5)), Ok(bundle()));
    // Without a pinned auditor, a countersignature is ignored.
    assert_eq!(s.pinned(false).verify(&countersigned, NOW, Some(4)), Ok(bundle()));
    let got = s.pinned(false).verify(&signed, NOW, None).unwrap();
    assert!(got.keys.contains(&(2, FleetPublicKey([0x22; 32]))));
}

#[test]
fn rejects_a_bundle_from_another_authority() {
    let s = Setup::new();
    let other = FleetAuthority::generate(&mut OsRng);
    let signed = other.sign(&bundle()).unwrap();
    assert_eq!(s.pinned(false).verify(&signed, NOW, None), Err(FleetError::BadAuthoritySignature));
}

#[test]
fn rejects_any_modified_byte_of_body_or_authority_signature() {
    let s = Setup::new();
    let signed = s.signed(&bundle());
    let body_len = bundle().encode().unwrap().len();
    for i in 2..2 + body_len + 64 {
        let mut bad = signed.clone();
        bad[i] ^= 0x01;
        assert_eq!(
            s.pinned(false).verify(&bad, NOW, None),
            Err(FleetError::BadAuthoritySignature),
            "byte {i}"
        );
    }
}

#[test]
fn rejects_a_non_canonical_authority_signature() {
    // S + L, where L is the order of the Ed25519 base point: the same signature in a non-canonical
    // form. Strict verification (and RFC 8032) rejects it.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let s = Setup::new();
    let signed = s.signed(&bundle());
    let body_len = bundle().encode().unwrap().len();
    let s_at = 2 + body_len + 32;
    let mut bad = signed.clone();
    let mut carry = 0u16;
    for (byte, l) in bad[s_at..s_at + 32].iter_mut().zip(L) {
        let sum = u16::from(*byte) + u16::from(l) + carry;
        *byte = sum as u8;
        carry = sum >> 8;
    }
    assert_ne!(bad, signed);
    assert_eq!(s.pinned(false).verify(&bad, NOW, None), Err(FleetError::BadAuthoritySignature));
}

#[test]
fn rejects_a_missing_auditor_signature_when_an_auditor_is_pinned() {
    let s = Setup::new();
    assert_eq!(
        s.pinned(true).verify(&s.signed(&bundle()), NOW, None),
        Err(FleetError::MissingAuditorSignature)
    );
}

#[test]
fn rejects_a_bad_auditor_signature() {
    let s = Setup::new();
    let other = Auditor::generate(&mut OsRng);
    let by_other = other.countersign(&s.authority.verifying_key(), &s.signed(&bundle())).unwrap();
    assert_eq!(s.pinned(true).verify(&by_other, NOW, None), Err(FleetError::BadAuditorSignature));
    let good = s.countersigned(&bundle());
    let start = good.len() - 64;
    for i in start..good.len() {
        let mut bad = good.clone();
        bad[i] ^= 0x80;
        assert_eq!(
            s.pinned(true).verify(&bad, NOW, None),
            Err(FleetError::BadAuditorSignature),
            "byte {i}"
        );
    }
}

#[test]
fn auditor_signature_does_not_carry_over_to_another_authority_signature() {
    // Ed25519 signing is deterministic, so take two different bundles: the auditor signature of
    // one, spliced onto the other, does not verify.
    let s = Setup::new();
    let mut later = bundle();
    later.epoch = 6;
    let first = s.countersigned(&bundle());
    let second = s.countersigned(&later);
    let mut spliced = second[..second.len() - 64].to_vec();
    spliced.extend_from_slice(&first[first.len() - 64..]);
    assert_eq!(s.pinned(true).verify(&spliced, NOW, None), Err(FleetError::BadAuditorSignature));
}

#[test]
fn auditor_refuses_what_the_authority_did_not_sign() {
    let s = Setup::new();
    let other = FleetAuthority::generate(&mut OsRng);
    assert_eq!(
        s.auditor.countersign(&s.authority.verifying_key(), &other.sign(&bundle()).unwrap()),
        Err(FleetError::BadAuthoritySignature)
    );
    assert!(matches!(
        s.auditor.countersign(&s.authority.verifying_key(), b"junk"),
        Err(FleetError::Malformed(_))
    ));
}

#[test]
fn rejects_an_expired_bundle() {
    let s = Setup::new();
    let signed = s.signed(&bundle());
    let not_after = bundle().not_after;
    assert!(s.pinned(false).verify(&signed, not_after, None).is_ok());
    assert_eq!(
        s.pinned(false).verify(&signed, not_after + 1, None),
        Err(FleetError::Expired { not_after, now: not_after + 1 })
    );
}

#[test]
fn rejects_an_epoch_rollback() {
    let s = Setup::new();
    let signed = s.signed(&bundle());
    assert!(s.pinned(false).verify(&signed, NOW, Some(0)).is_ok());
    assert!(s.pinned(false).verify(&signed, NOW, Some(5)).is_ok());
    assert_eq!(
        s.pinned(false).verify(&signed, NOW, Some(6)),
        Err(FleetError::Rollback { epoch: 5, last_seen: 6 })
    );
}

#[test]
fn rejects_a_bundle_for_another_fleet() {
    let s = Setup::new();
    let mut other = bundle();
    other.fleet_id = b"fleet-b".to_vec();
    assert_eq!(s.pinned(false).verify(&s.signed(&other), NOW, None), Err(FleetError::WrongFleet));
    // A prefix of the pinned id is another fleet too.
    other.fleet_id = b"fleet-".to_vec();
    assert_eq!(s.pinned(false).verify(&s.signed(&other), NOW, None), Err(FleetError::WrongFleet));
}

#[test]
fn rejects_malformed_signed_bundles() {
    let s = Setup::new();
    let signed = s.countersigned(&bundle());
    for len in 0..signed.len() {
        assert!(
            matches!(
                s.pinned(true).verify(&signed[..len], NOW, None),
                Err(FleetError::Malformed(_))
            ),
            "truncated to {len}"
        );
    }
    let mut longer = signed.clone();
    longer.push(0);
    assert_eq!(
        s.pinned(true).verify(&longer, NOW, None),
        Err(FleetError::Malformed(WireError::TrailingBytes(1)))
    );
    let mut flag = s.signed(&bundle());
    *flag.last_mut().unwrap() = 2;
    assert_eq!(
        s.pinned(false).verify(&flag, NOW, None),
        Err(FleetError::Malformed(WireError::Invalid {
            field: "has_auditor",
            why: "must be 0 or 1"
        }))
    );
    let mut huge = ((MAX_BODY_LEN + 1) as u16).to_be_bytes().to_vec();
    huge.extend_from_slice(&vec![0; MAX_BODY_LEN + 1 + 65]);
    assert_eq!(
        s.pinned(false).verify(&huge, NOW, None),
        Err(FleetError::Malformed(WireError::TooLong {
            field: "body",
            len: MAX_BODY_LEN + 1,
            max: MAX_BODY_LEN
        }))
    );
}

/// A body the authority signed although it does not decode is still rejected, after the
/// signature check.
#[test]
fn rejects_a_signed_but_malformed_body() {
    let seed = [0x42; 32];
    let authority = FleetAuthority::from_bytes(&seed);
    let pinned = PinnedFleet {
        fleet_id: FLEET.to_vec(),
        authority: authority.verifying_key(),
        auditor: None,
    };
    let sign_raw = |body: &[u8]| {
        let mut message = b"e2ee-backups/v1/fleet-bundle\x00".to_vec();
        message.extend_from_slice(body);
        let sig = SigningKey::from_bytes(&seed).sign(&message).to_bytes();
        let mut out = (body.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(body);
        out.extend_from_slice(&sig);
        out.push(0);
        out
    };
    let good = bundle().encode().unwrap();
    let mut version_2 = good.clone();
    version_2[0] = 2;
    assert_eq!(
        pinned.verify(&sign_raw(&version_2), NOW, None),
        Err(FleetError::UnsupportedVersion(2))
    );
    let mut trailing = good.clone();
    trailing.push(0);
    assert_eq!(
        pinned.verify(&sign_raw(&trailing), NOW, None),
        Err(FleetError::Malformed(WireError::TrailingBytes(1)))
    );
    assert_eq!(pinned.verify(&sign_raw(&good), NOW, None), Ok(bundle()));
}

#[test]
fn body_decode_rejections() {
    let good = bundle().encode().unwrap();
    let key_count_at = 3 + FLEET.len() + 16;

    let mut duplicate = good.clone();
    duplicate[key_count_at + 34] = 1; // the second key's id becomes 1
    assert_eq!(FleetBundle::decode(&duplicate), Err(FleetError::DuplicateKeyId(1)));

    let mut zero_keys = good[..key_count_at].to_vec();
    zero_keys.push(0);
    assert_eq!(
        FleetBundle::decode(&zero_keys),
        Err(FleetError::Malformed(WireError::Invalid {
            field: "key_count",
            why: "must be 1 to 16"
        }))
    );
    let mut seventeen = good[..key_count_at].to_vec();
    seventeen.push(17);
    for id in 0..17u8 {
        seventeen.push(id);
        seventeen.extend_from_slice(&[id; 32]);
    }
    assert!(matches!(
        FleetBundle::decode(&seventeen),
        Err(FleetError::Malformed(WireError::Invalid { field: "key_count", .. }))
    ));
    let mut missing_key = good.clone();
    missing_key[key_count_at] = 3;
    assert_eq!(
        FleetBundle::decode(&missing_key),
        Err(FleetError::Malformed(WireError::Truncated("key_id")))
    );

    let mut empty_fleet = vec![1, 0, 0];
    empty_fleet.extend_from_slice(&good[3 + FLEET.len()..]);
    assert_eq!(
        FleetBundle::decode(&empty_fleet),
        Err(FleetError::Malformed(WireError::Invalid { field: "fleet_id", why: "empty" }))
    );
    let mut long_fleet = vec![1, 0, 65];
    long_fleet.extend_from_slice(&[b'f'; 65]);
    long_fleet.extend_from_slice(&good[3 + FLEET.len()..]);
    assert_eq!(
        FleetBundle::decode(&long_fleet),
        Err(FleetError::Malformed(WireError::TooLong { field: "fleet_id", len: 65, max: 64 }))
    );
    assert_eq!(
        FleetBundle::decode(&[]),
        Err(FleetError::Malformed(WireError::Truncated("version")))
    );
}

#[test]
fn encode_rejects_out_of_bounds_bundles() {
    let mut b = bundle();
    b.keys.push((1, FleetPublicKey([0x33; 32])));
    assert_eq!(b.encode(), Err(FleetError::DuplicateKeyId(1)));
    let s = Setup::new();
    assert_eq!(s.authority.sign(&b), Err(FleetError::DuplicateKeyId(1)));

    let mut b = bundle();
    b.keys.clear();
    assert!(matches!(b.encode(), Err(FleetError::Malformed(_))));
    let mut b = bundle();
    b.keys = (0..17).map(|i| (i, FleetPublicKey([i; 32]))).collect();
    assert!(matches!(b.encode(), Err(FleetError::Malformed(_))));
    let mut b = bundle();
    b.fleet_id.clear();
    assert!(matches!(b.encode(), Err(FleetError::Malformed(_))));
    let mut b = bundle();
    b.fleet_id = vec![0; 65];
    assert!(matches!(b.encode(), Err(FleetError::Malformed(_))));
    let mut b = bundle();
    b.keys = (0..16).map(|i| (i, FleetPublicKey([i; 32]))).collect();
    b.fleet_id = vec![0xff; 64];
    assert_eq!(b.encode().unwrap().len(), MAX_BODY_LEN);
}

#[test]
fn debug_of_signing_keys_is_redacted() {
    let authority = FleetAuthority::from_bytes(&[0x42; 32]);
    let auditor = Auditor::from_bytes(&[0x43; 32]);
    for (shown, seed) in [
        (format!("{authority:?}"), *authority.to_bytes()),
        (format!("{auditor:?}"), *auditor.to_bytes()),
    ] {
        assert!(shown.contains("redacted"));
        assert!(!shown.contains(&hex::encode(seed)));
        assert!(!shown.contains(&format!("{seed:?}")));
        assert!(!shown.contains("66, 66, 66") && !shown.contains("67, 67, 67"));
    }
}

fn any_bundle() -> impl Strategy<Value = FleetBundle> {
    (
        proptest::collection::vec(any::<u8>(), 1..=64),
        any::<u64>(),
        any::<u64>(),
        proptest::collection::btree_map(any::<u8>(), any::<[u8; 32]>(), 1..=16),
    )
        .prop_map(|(fleet_id, epoch, not_after, keys)| FleetBundle {
            fleet_id,
            epoch,
            not_after,
            keys: keys.into_iter().map(|(id, key)| (id, FleetPublicKey(key))).collect(),
        })
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..700)) {
        let _ = FleetBundle::decode(&bytes);
    }

    #[test]
    fn verify_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..800)) {
        let pinned = PinnedFleet {
            fleet_id: FLEET.to_vec(),
            authority: FleetAuthority::from_bytes(&[1; 32]).verifying_key(),
            auditor: Some(Auditor::from_bytes(&[2; 32]).verifying_key()),
        };
        prop_assert!(pinned.verify(&bytes, NOW, None).is_err());
    }

    #[test]
    fn decode_inverts_encode(b in any_bundle()) {
        let body = b.encode().unwrap();
        prop_assert!(body.len() <= MAX_BODY_LEN);
        prop_assert_eq!(FleetBundle::decode(&body).unwrap(), b);
    }

    #[test]
    fn decode_of_a_mutated_body_never_panics(
        b in any_bundle(), at in any::<usize>(), value in any::<u8>(), cut in any::<usize>()
    ) {
        let mut body = b.encode().unwrap();
        let i = at % body.len();
        body[i] = value;
        body.truncate(body.len() - cut % (body.len() + 1));
        let _ = FleetBundle::decode(&body);
    }
}
