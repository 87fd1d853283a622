//! The worked example of spec section 8.14: fixed K and MRK, the derived keys, one blob name
//! and one manifest encoding, byte for byte. The expected values were computed apart from this
//! implementation, from the labels and layouts of the spec alone (HKDF and HMAC from Python's
//! standard library).

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_snapshot::{
    AccountKeys, BlobName, BlobRef, Entry, EntryKind, Manifest, MediaKeys, MediaRootKey,
};

fn k() -> BackupKey {
    BackupKey::from_bytes(core::array::from_fn(|i| i as u8))
}

fn mrk() -> MediaRootKey {
    MediaRootKey::from_bytes(core::array::from_fn(|i| 0x20 + i as u8))
}

const CONTENT: &[u8] = b"e2ee-backups snapshot vector\n";
const NAME: &str = "a2dfaa324219306a00bcd3faf4bb69f0f4ef7194f07f7f37d4e7cbb23a52ae77";

#[test]
fn keys_of_k_and_of_the_media_root_key() {
    let account = AccountKeys::derive(&k());
    assert_eq!(
        hex::encode(account.media_root_wrap.expose_secret()),
        "9d46217655a15be87dad53ab7ca2fc30cbfe7d3c9ba158ee39d6b853de8ddb83"
    );
    assert_eq!(
        hex::encode(account.manifest.expose_secret()),
        "536691cdd3903ad651f32a9f6f445fcea3ddb62d1570c9c6c9d48f53440d09bd"
    );
    let media = MediaKeys::derive(&mrk());
    assert_eq!(
        hex::encode(media.blob_name_key_for_test_vectors()),
        "c5a62ca1c13a10f753fb3aafa5c91ee4cb78f6f19b5652ce378cbc969cf33474"
    );
    assert_eq!(
        hex::encode(media.blob.expose_secret()),
        "d89ac5efc4cac71df2e21c1a0ffab6c4a1d016bff9e9769c82739274ac005c2b"
    );
    assert_eq!(media.chunking_seed(), 0x182e_6497_1c60_fc48);
}

#[test]
fn blob_name_and_object() {
    let name = MediaKeys::derive(&mrk()).blob_name(CONTENT);
    assert_eq!(name.to_hex(), NAME);
    assert_eq!(name.object_name(), format!("blobs/a2/{NAME}"));
}

#[test]
fn manifest_encoding() {
    let name = BlobName(hex::decode(NAME).unwrap().try_into().unwrap());
    let len = CONTENT.len() as u32;
    let manifest = Manifest {
        created_at: 1_764_000_000,
        new_blobs: 1,
        new_bytes: u64::from(len),
        entries: vec![
            Entry {
                path: "Databases".into(),
                kind: EntryKind::Dir,
                mode: 0o755,
                mtime: 1_764_000_000,
                size: 0,
            },
            Entry {
                path: "Databases/msgstore.db".into(),
                kind: EntryKind::File { blobs: vec![BlobRef { name, len }] },
                mode: 0o600,
                mtime: 1_764_000_001,
                size: u64::from(len),
            },
            Entry {
                path: "db link".into(),
                kind: EntryKind::Symlink { target: "Databases/msgstore.db".into() },
                mode: 0o777,
                mtime: -1,
                size: 0,
            },
        ],
    };
    let expected = concat!(
        "01",
        "0000000069248100",
        "0000000000000001",
        "000000000000001d",
        "00000003",
        "0009",
        "446174616261736573",
        "02",
        "000001ed",
        "0000000069248100",
        "0000000000000000",
        "0015",
        "4461746162617365732f6d736773746f72652e6462",
        "01",
        "00000180",
        "0000000069248101",
        "000000000000001d",
        "00000001",
        "a2dfaa324219306a00bcd3faf4bb69f0f4ef7194f07f7f37d4e7cbb23a52ae77",
        "0000001d",
        "0007",
        "6462206c696e6b",
        "03",
        "000001ff",
        "ffffffffffffffff",
        "0000000000000000",
        "0015",
        "4461746162617365732f6d736773746f72652e6462",
    );
    let encoded = manifest.encode().unwrap();
    assert_eq!(hex::encode(&encoded), expected);
    assert_eq!(encoded.len(), 198);
    assert_eq!(Manifest::decode(&encoded).unwrap(), manifest);
}
