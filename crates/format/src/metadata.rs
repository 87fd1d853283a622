//! The metadata block (spec section 3.3).
//!
//! Encrypted with AES-256-GCM under the file's metadata key, nonce 12 zero bytes (the key is
//! used once), associated data the 96 header bytes. Its plaintext encoding, all integers
//! big-endian:
//!
//! | size | field          | meaning                                                   |
//! |------|----------------|-----------------------------------------------------------|
//! | 8    | created_at     | seconds since 1970-01-01T00:00:00Z                        |
//! | 8    | plaintext_len  | payload length before compression; `u64::MAX` = unknown   |
//! | 2    | field_count    | number of application fields, at most 256                 |
//! | ...  | fields         | `name_len` (1 byte, ≥ 1), name, `value_len` (2 bytes), value |
//!
//! Names and values are UTF-8; names are strictly increasing as byte strings (so unique), and
//! the whole encoding is at most 65536 bytes.

use std::collections::BTreeMap;

use crate::Error;
use crate::cipher::{ChunkCipher, NONCE_LEN, TAG_LEN};

/// Largest metadata encoding in bytes.
pub const MAX_ENCODED_LEN: usize = 65536;
/// Largest number of application fields.
pub const MAX_FIELDS: usize = 256;
/// `plaintext_len` value that means "not recorded".
pub const UNKNOWN_LEN: u64 = u64::MAX;

/// What the metadata block says about the backup. Only readable with the key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Creation time, seconds since the Unix epoch.
    pub created_at: u64,
    /// Length of the payload before compression, when the writer knew it in advance.
    pub plaintext_len: Option<u64>,
    /// Free-form application fields (app version, device model, ...).
    pub fields: BTreeMap<String, String>,
}

impl Metadata {
    /// The plaintext encoding, or [`Error::InvalidInput`] if it would exceed the limits.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        if self.fields.len() > MAX_FIELDS {
            return Err(Error::InvalidInput("more than 256 metadata fields"));
        }
        if self.plaintext_len == Some(UNKNOWN_LEN) {
            return Err(Error::InvalidInput("plaintext length 2^64-1 is reserved"));
        }
        let mut out = Vec::with_capacity(18);
        out.extend_from_slice(&self.created_at.to_be_bytes());
        out.extend_from_slice(&self.plaintext_len.unwrap_or(UNKNOWN_LEN).to_be_bytes());
        out.extend_from_slice(&(self.fields.len() as u16).to_be_bytes());
        for (name, value) in &self.fields {
            let name_len = u8::try_from(name.len())
                .ok()
                .filter(|&n| n > 0)
                .ok_or(Error::InvalidInput("metadata field names take 1 to 255 bytes"))?;
            let value_len = u16::try_from(value.len()).map_err(|_| {
                Error::InvalidInput("metadata field values take at most 65535 bytes")
            })?;
            out.push(name_len);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&value_len.to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        if out.len() > MAX_ENCODED_LEN {
            return Err(Error::InvalidInput("metadata larger than 64 KiB"));
        }
        Ok(out)
    }

    /// Decodes a plaintext encoding, rejecting anything a conforming writer would not produce.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() > MAX_ENCODED_LEN {
            return Err(Error::InvalidMetadata("longer than 64 KiB"));
        }
        let mut input = Input(bytes);
        let created_at = u64::from_be_bytes(input.take_array()?);
        let plaintext_len = match u64::from_be_bytes(input.take_array()?) {
            UNKNOWN_LEN => None,
            len => Some(len),
        };
        let count = usize::from(u16::from_be_bytes(input.take_array()?));
        if count > MAX_FIELDS {
            return Err(Error::InvalidMetadata("more than 256 fields"));
        }
        let mut fields = BTreeMap::new();
        let mut previous: Option<&str> = None;
        for _ in 0..count {
            let [name_len] = input.take_array()?;
            if name_len == 0 {
                return Err(Error::InvalidMetadata("empty field name"));
            }
            let name = input.take_str(name_len.into())?;
            let value_len = u16::from_be_bytes(input.take_array()?);
            let value = input.take_str(value_len.into())?;
            if previous.is_some_and(|p| p.as_bytes() >= name.as_bytes()) {
                return Err(Error::InvalidMetadata("field names not strictly increasing"));
            }
            previous = Some(name);
            fields.insert(name.to_owned(), value.to_owned());
        }
        if !input.0.is_empty() {
            return Err(Error::InvalidMetadata("bytes after the last field"));
        }
        Ok(Metadata { created_at, plaintext_len, fields })
    }

    /// Encrypts the encoding into the metadata block bound to `header_bytes`.
    pub(crate) fn seal<C: ChunkCipher>(
        encoded: &[u8],
        key: &[u8; 32],
        header_bytes: &[u8],
    ) -> Vec<u8> {
        let mut block = encoded.to_vec();
        let tag = C::new(key).seal(&[0; NONCE_LEN], header_bytes, &mut block);
        block.extend_from_slice(&tag);
        block
    }

    /// Decrypts and decodes a metadata block bound to `header_bytes`.
    pub(crate) fn open<C: ChunkCipher>(
        mut block: Vec<u8>,
        key: &[u8; 32],
        header_bytes: &[u8],
    ) -> Result<Self, Error> {
        let split = block.len().checked_sub(TAG_LEN).ok_or(Error::MetadataModified)?;
        let tag: [u8; TAG_LEN] = block[split..].try_into().expect("16 bytes");
        block.truncate(split);
        C::new(key)
            .open(&[0; NONCE_LEN], header_bytes, &mut block, &tag)
            .map_err(|_| Error::MetadataModified)?;
        Metadata::decode(&block)
    }
}

/// A cursor over the encoding that fails with a typed error instead of reading past the end.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.0.len() < n {
            return Err(Error::InvalidMetadata("ends inside a field"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn take_str(&mut self, n: usize) -> Result<&'a str, Error> {
        std::str::from_utf8(self.take(n)?).map_err(|_| Error::InvalidMetadata("text is not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn empty_encoding_is_18_bytes() {
        let encoded = Metadata::default().encode().unwrap();
        assert_eq!(encoded.len(), 18);
        assert_eq!(Metadata::decode(&encoded).unwrap(), Metadata::default());
    }

    #[test]
    fn rejects_non_canonical_field_order() {
        let mut encoded = Vec::new();
        encoded.extend_from_slice(&0u64.to_be_bytes());
        encoded.extend_from_slice(&UNKNOWN_LEN.to_be_bytes());
        encoded.extend_from_slice(&2u16.to_be_bytes());
        for name in [b"b", b"a"] {
            encoded.push(1);
            encoded.extend_from_slice(name);
            encoded.extend_from_slice(&0u16.to_be_bytes());
        }
        assert_eq!(
            Metadata::decode(&encoded),
            Err(Error::InvalidMetadata("field names not strictly increasing"))
        );
    }

    proptest! {
        #[test]
        fn round_trips(
            created_at in any::<u64>(),
            len in proptest::option::of(0..u64::MAX),
            fields in proptest::collection::btree_map("[a-z_]{1,20}", ".{0,40}", 0..8),
        ) {
            let metadata = Metadata { created_at, plaintext_len: len, fields };
            prop_assert_eq!(Metadata::decode(&metadata.encode().unwrap()).unwrap(), metadata);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Metadata::decode(&bytes);
        }
    }
}
