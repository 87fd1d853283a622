//! Blobs (spec section 8.6): a chunk of content stored once per account, as a native-format
//! file under the blob key whose metadata names it.

use core::fmt;
use std::collections::BTreeMap;

use e2ee_backup_format::{EncryptOptions, Metadata, decrypt_to_vec, encrypt_to_vec};
use subtle::ConstantTimeEq;

use crate::keys::MediaKeys;
use crate::{Error, Result};

/// The metadata field of a blob file that carries its name.
pub const BLOB_FIELD: &str = "blob";
/// The folder of blob objects.
pub const BLOB_DIR: &str = "blobs";

/// A blob's name: `HMAC-SHA256(blob-name-key, content)`, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobName(pub [u8; 32]);

impl BlobName {
    /// The 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The object that holds the blob: `blobs/<first 2 hex digits>/<64 hex digits>`.
    pub fn object_name(&self) -> String {
        let hex = self.to_hex();
        format!("{BLOB_DIR}/{}/{hex}", &hex[..2])
    }

    /// The name of a blob object name, if it is one.
    pub fn from_object_name(object: &str) -> Option<Self> {
        let rest = object.strip_prefix(BLOB_DIR)?.strip_prefix('/')?;
        let (fan, hex) = rest.split_once('/')?;
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let name = BlobName(hex::decode(hex).ok()?.try_into().ok()?);
        (fan == &hex[..2]).then_some(name)
    }
}

impl fmt::Debug for BlobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobName({})", self.to_hex())
    }
}

impl fmt::Display for BlobName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Encrypts `content`, whose name is `name`, into a blob file. `created_at` is 0 (a blob is
/// shared by every later snapshot, so no time of its own is recorded).
pub fn seal_blob(keys: &MediaKeys, name: &BlobName, content: &[u8]) -> Result<Vec<u8>> {
    seal_blob_with(keys, name, content, EncryptOptions::default())
}

/// [`seal_blob`] with the format's options (a fixed salt, to reproduce test vectors).
#[doc(hidden)] // reproducing test vectors only: never a fixed draw in production
pub fn seal_blob_with(
    keys: &MediaKeys,
    name: &BlobName,
    content: &[u8],
    mut options: EncryptOptions,
) -> Result<Vec<u8>> {
    options.metadata = Metadata {
        created_at: 0,
        plaintext_len: None,
        fields: BTreeMap::from([(BLOB_FIELD.to_owned(), name.to_hex())]),
    };
    encrypt_to_vec(&keys.blob, options, content).map_err(Error::Encrypt)
}

/// Decrypts and checks a blob file found under `name`: the format authenticates it, its
/// metadata MUST carry `name`, and its content MUST have `name` as MAC.
pub fn open_blob(keys: &MediaKeys, name: &BlobName, file: &[u8]) -> Result<Vec<u8>> {
    let (metadata, content) = decrypt_to_vec(&keys.blob, file)
        .map_err(|source| Error::BlobDamaged { name: name.to_hex(), source })?;
    let found = metadata.fields.get(BLOB_FIELD).map(String::as_str).unwrap_or("");
    if found != name.to_hex() {
        return Err(Error::BlobRenamed { expected: name.to_hex(), found: found.to_owned() });
    }
    if !bool::from(keys.blob_name(&content).0.ct_eq(&name.0)) {
        return Err(Error::BlobContentMismatch { name: name.to_hex() });
    }
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::MediaRootKey;

    #[test]
    fn object_names_round_trip() {
        let name = BlobName([0xc3; 32]);
        let object = name.object_name();
        assert!(object.starts_with("blobs/c3/c3c3"));
        assert_eq!(BlobName::from_object_name(&object), Some(name));
        assert_eq!(BlobName::from_object_name("blobs/00/c3"), None);
        assert_eq!(BlobName::from_object_name(&object.replace("/c3/", "/c4/")), None);
    }

    #[test]
    fn a_blob_opens_only_under_its_own_name() {
        let keys = MediaKeys::derive(&MediaRootKey::from_bytes([4; 32]));
        let a = keys.blob_name(b"alpha");
        let b = keys.blob_name(b"beta");
        let file = seal_blob(&keys, &a, b"alpha").unwrap();
        assert_eq!(open_blob(&keys, &a, &file).unwrap(), b"alpha");
        assert!(matches!(open_blob(&keys, &b, &file), Err(Error::BlobRenamed { .. })));
        // Sealed under its name with the wrong content: only a holder of MRK can do this.
        let forged = seal_blob(&keys, &a, b"beta").unwrap();
        assert!(matches!(open_blob(&keys, &a, &forged), Err(Error::BlobContentMismatch { .. })));
        let other = MediaKeys::derive(&MediaRootKey::from_bytes([5; 32]));
        assert!(matches!(
            open_blob(&other, &a, &file),
            Err(Error::BlobDamaged { source: e2ee_backup_format::Error::WrongKey, .. })
        ));
    }
}
