//! Account and fleet identifiers (spec sections 4.3 and 4.4): each is 1 to 64 bytes, the one
//! length rule that envelopes, fleet bundles, records, pins and the client all apply.
//!
//! [`AccountId`] and [`FleetId`] are the only places the rule is checked: a journey or an
//! endpoint takes one, so it cannot start with an identifier the vault would refuse, and a parser
//! builds one from the bytes it read. Each caller reports an [`IdError`] in its own vocabulary
//! (a channel error, a fleet-bundle error, a pin's line).

use core::fmt;
use core::marker::PhantomData;

/// The shortest identifier, in bytes.
pub const MIN_ID_LEN: usize = 1;
/// The longest identifier, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// What an identifier names: [`Account`] or [`Fleet`].
pub trait IdKind {
    /// The name an error gives it: "account" or "fleet".
    const NAME: &'static str;
    /// The name `Debug` gives it.
    const TYPE: &'static str;
}

/// The kind of an account identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Account {}
/// The kind of a fleet identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fleet {}

impl IdKind for Account {
    const NAME: &'static str = "account";
    const TYPE: &'static str = "AccountId";
}
impl IdKind for Fleet {
    const NAME: &'static str = "fleet";
    const TYPE: &'static str = "FleetId";
}

/// An identifier of kind `K` whose length has been checked: 1 to [`MAX_ID_LEN`] bytes.
///
/// Its `Debug` gives the length only: an account identifier is personal data (often a phone
/// number).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Id<'a, K> {
    bytes: &'a [u8],
    kind: PhantomData<K>,
}

/// An account identifier (spec section 4.3).
pub type AccountId<'a> = Id<'a, Account>;
/// A fleet identifier (spec section 4.4).
pub type FleetId<'a> = Id<'a, Fleet>;

impl<'a, K: IdKind> Id<'a, K> {
    /// `bytes` as an identifier, if it is 1 to 64 bytes long.
    pub const fn new(bytes: &'a [u8]) -> Result<Self, IdError> {
        if bytes.len() < MIN_ID_LEN || bytes.len() > MAX_ID_LEN {
            return Err(IdError { kind: K::NAME, len: bytes.len() });
        }
        Ok(Self { bytes, kind: PhantomData })
    }

    /// The identifier's bytes.
    pub const fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }
}

impl<K: IdKind> Id<'static, K> {
    /// A constant identifier; a wrong length is a compile-time error in a `const`, a panic
    /// elsewhere.
    pub const fn from_static(bytes: &'static [u8]) -> Self {
        match Self::new(bytes) {
            Ok(id) => id,
            Err(_) => panic!("an identifier is 1 to 64 bytes"),
        }
    }
}

impl<'a, K: IdKind> TryFrom<&'a [u8]> for Id<'a, K> {
    type Error = IdError;
    fn try_from(bytes: &'a [u8]) -> Result<Self, IdError> {
        Self::new(bytes)
    }
}

impl<'a, K: IdKind> TryFrom<&'a str> for Id<'a, K> {
    type Error = IdError;
    fn try_from(text: &'a str) -> Result<Self, IdError> {
        Self::new(text.as_bytes())
    }
}

impl<K> AsRef<[u8]> for Id<'_, K> {
    fn as_ref(&self) -> &[u8] {
        self.bytes
    }
}

impl<K: IdKind> fmt::Debug for Id<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}({} bytes)", K::TYPE, self.bytes.len())
    }
}

/// An identifier of the wrong length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the {kind} id is {len} bytes long; it must be 1 to 64 bytes")]
pub struct IdError {
    kind: &'static str,
    len: usize,
}

impl IdError {
    /// The length that was refused.
    pub fn length(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_to_sixty_four_bytes() {
        assert_eq!(AccountId::new(b"").unwrap_err().length(), 0);
        assert!(AccountId::new(b"a").is_ok());
        assert!(FleetId::new(&[b'a'; 64]).is_ok());
        let error = FleetId::new(&[b'a'; 65]).unwrap_err();
        assert_eq!(error.to_string(), "the fleet id is 65 bytes long; it must be 1 to 64 bytes");
    }

    #[test]
    fn debug_gives_the_length_only() {
        let id = AccountId::from_static(b"+15551234");
        assert_eq!(format!("{id:?}"), "AccountId(9 bytes)");
    }

    #[test]
    #[should_panic(expected = "1 to 64 bytes")]
    fn a_static_identifier_of_the_wrong_length_panics() {
        let _ = AccountId::from_static(b"");
    }
}
