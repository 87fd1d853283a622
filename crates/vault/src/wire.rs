//! The byte-level reading and writing that every vault message shares (spec section
//! 4.2).
//!
//! Integers are big-endian. A variable-length field is a `u16` length followed by that many bytes,
//! and every such field has a maximum that is checked before anything is allocated. A message is
//! read completely: bytes left over after its last field are an error.

use crate::ids::{Id, IdError, IdKind, MAX_ID_LEN};
use thiserror::Error;

/// Why a message could not be decoded. The field names are those of the specification.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum WireError {
    /// The input ends inside the named field.
    #[error("message truncated inside field {0}")]
    Truncated(&'static str),
    /// A length prefix exceeds the field's maximum.
    #[error("field {field} is {len} bytes long, more than its maximum of {max}")]
    TooLong {
        /// The field.
        field: &'static str,
        /// The length the prefix announces.
        len: usize,
        /// The field's maximum.
        max: usize,
    },
    /// A field holds a value the protocol does not allow.
    #[error("field {field} holds a value that is not allowed: {why}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Bytes follow the message's last field.
    #[error("{0} bytes follow the end of the message")]
    TrailingBytes(usize),
}

impl WireError {
    /// An identifier of the wrong length in `field`: [`WireError::Invalid`] when it is empty,
    /// [`WireError::TooLong`] otherwise.
    pub(crate) fn of_id(field: &'static str, error: IdError) -> Self {
        match error.length() {
            0 => Self::Invalid { field, why: "empty" },
            len => Self::TooLong { field, len, max: MAX_ID_LEN },
        }
    }

    /// The error's code in the spec's closed vocabulary (section 4.2): `truncated`, `too-long`,
    /// `invalid-value` or `trailing-bytes`. The field it names is implementation-defined.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Truncated(_) => "truncated",
            Self::TooLong { .. } => "too-long",
            Self::Invalid { .. } => "invalid-value",
            Self::TrailingBytes(_) => "trailing-bytes",
        }
    }
}

/// Reads the fields of one message, front to back.
#[derive(Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading `input`.
    pub fn new(input: &'a [u8]) -> Self {
        Self { rest: input }
    }

    /// The next `n` bytes, as field `field`.
    pub fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        if self.rest.len() < n {
            return Err(WireError::Truncated(field));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// A fixed-size array field.
    pub fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N, field)?);
        Ok(out)
    }

    /// A `u8` field.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, WireError> {
        Ok(self.array::<1>(field)?[0])
    }

    /// A big-endian `u16` field.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    /// A big-endian `u32` field.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// A big-endian `u64` field.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// A `u16`-length-prefixed field of at most `max` bytes.
    pub fn vec16(&mut self, max: usize, field: &'static str) -> Result<&'a [u8], WireError> {
        let len = usize::from(self.u16(field)?);
        if len > max {
            return Err(WireError::TooLong { field, len, max });
        }
        self.bytes(len, field)
    }

    /// An identifier (spec sections 4.3 and 4.4): a `u16` length of 1 to 64, then its bytes.
    /// Too long is [`WireError::TooLong`], empty is [`WireError::Invalid`].
    pub fn id<K: IdKind>(&mut self, field: &'static str) -> Result<Id<'a, K>, WireError> {
        let bytes = self.vec16(MAX_ID_LEN, field)?;
        Id::new(bytes).map_err(|e| WireError::of_id(field, e))
    }

    /// Everything that is left, as the last field.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// Ends the message: any byte left is an error.
    pub fn finish(self) -> Result<(), WireError> {
        match self.rest.len() {
            0 => Ok(()),
            n => Err(WireError::TrailingBytes(n)),
        }
    }
}

/// Appends the fields of one message.
#[derive(Debug, Default)]
pub struct Writer {
    out: Vec<u8>,
}

impl Writer {
    /// An empty message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends raw bytes.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.out.extend_from_slice(bytes);
        self
    }

    /// Appends a `u8`.
    pub fn u8(&mut self, value: u8) -> &mut Self {
        self.bytes(&[value])
    }

    /// Appends a big-endian `u16`.
    pub fn u16(&mut self, value: u16) -> &mut Self {
        self.bytes(&value.to_be_bytes())
    }

    /// Appends a big-endian `u32`.
    pub fn u32(&mut self, value: u32) -> &mut Self {
        self.bytes(&value.to_be_bytes())
    }

    /// Appends a big-endian `u64`.
    pub fn u64(&mut self, value: u64) -> &mut Self {
        self.bytes(&value.to_be_bytes())
    }

    /// Appends a `u16` length and the bytes. Callers keep every field below its (much smaller)
    /// maximum, so the length always fits.
    pub fn vec16(&mut self, bytes: &[u8]) -> &mut Self {
        let len = u16::try_from(bytes.len()).expect("vault message fields are shorter than 64 KiB");
        self.u16(len).bytes(bytes)
    }

    /// The finished message.
    pub fn finish(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }
}
