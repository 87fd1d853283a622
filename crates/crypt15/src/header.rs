//! The header of a `.crypt15` file (spec sections 6.4.1 and 6.5): the prefix length, an optional `0x01` byte, and the
//! `BackupPrefix` protobuf that carries the IV.
//!
//! # Layout
//!
//! ```text
//! length        varint, the number of protobuf bytes (one byte below 128)
//! [0x01]        optional "feature table flag" byte
//! BackupPrefix  protobuf, `length` bytes:
//!   1  key_type        varint enum (1 = HSM_CONTROLLED, the end-to-end key)
//!   3  c15_iv          message { 1: bytes, the 16-byte IV }
//!   4  info            message { 1: app_version string, 3: jid suffix string (the last two
//!                                digits of the phone number), 4: backup_version int32,
//!                                5..39: feature booleans, each written with explicit presence }
//! ```
//!
//! # The length and the `0x01` byte
//!
//! wa-crypt-tools reads one length byte, then skips a second byte if it is `0x01` (its "feature
//! table flag"), and always writes `length byte, 0x01`. Both fixtures start that way:
//! `28 01 08 ..` (40 bytes of protobuf) and `85 01 08 ..` (133 bytes). For any length from 128
//! to 255, `length byte, 0x01` is also exactly the protobuf varint of the length, so the 133-byte
//! one reads the same as a varint length with no flag byte, which is what protobuf's
//! `writeDelimitedTo` writes, and would explain why the "flag" is seen only on msgstore backups,
//! whose feature table makes their header longer than 127 bytes.
//!
//! This reader accepts both: it reads the length as a varint (at most three bytes), then skips
//! one `0x01` byte if one follows. That is unambiguous, since a protobuf message cannot start
//! with `0x01` (it would be field number 0). What it cannot read is a one-byte length of 128 or
//! more followed directly by the protobuf; no known writer produces that. The writer offers
//! both [`Framing`]s.
//!
//! # Byte-exact round trips
//!
//! A parsed [`FileHeader`] keeps the bytes it was read from, so [`FileHeader::to_bytes`] gives
//! them back whatever field order, unknown fields or non-canonical varints they hold.
//! [`BackupPrefix::encode`] writes the parsed view canonically: fields in ascending order, each
//! present field written (explicit presence), unknown fields dropped. Both fixtures are in that
//! canonical form.

use std::io::{self, Read};

use crate::error::{Error, HeaderError, HeaderProblem};
use crate::proto::{WT_LEN, WT_VARINT, WireReader, put_bytes_field, put_varint, put_varint_field};

/// Length of the crypt15 IV, which is also the GCM nonce.
pub const IV_LEN: usize = 16;
/// Longest `BackupPrefix` this implementation reads or writes. Real ones are below 256 bytes.
pub const MAX_PREFIX_LEN: usize = 65_536;
/// Most bytes the prefix length may take as a varint (three carry up to 2^21 - 1).
pub const MAX_LENGTH_VARINT_LEN: u8 = 3;
/// The optional byte after the prefix length.
pub const FLAG_BYTE: u8 = 0x01;
/// `key_type` of an end-to-end encrypted backup (`HSM_CONTROLLED`).
pub const KEY_TYPE_E2E: i32 = 1;
/// First field number of the feature booleans in `info`.
pub const FIRST_FEATURE: u32 = 5;
/// Last field number of the feature booleans in `info`.
pub const LAST_FEATURE: u32 = 39;
const FEATURE_COUNT: usize = (LAST_FEATURE - FIRST_FEATURE + 1) as usize;

const F_LENGTH: &str = "prefix length";
const F_PREFIX: &str = "BackupPrefix";
const F_KEY_TYPE: &str = "key_type (1)";
const F_CRYPT14: &str = "wa_provided_key_data (2)";
const F_IV_MSG: &str = "c15_iv (3)";
const F_IV: &str = "c15_iv.iv (3.1)";
const F_INFO: &str = "info (4)";
const F_APP_VERSION: &str = "info.app_version (4.1)";
const F_JID: &str = "info.jid_suffix (4.3)";
const F_BACKUP_VERSION: &str = "info.backup_version (4.4)";
const FEATURE_FIELDS: [&str; FEATURE_COUNT] = [
    "info.feature_5 (4.5)",
    "info.feature_6 (4.6)",
    "info.feature_7 (4.7)",
    "info.feature_8 (4.8)",
    "info.feature_9 (4.9)",
    "info.feature_10 (4.10)",
    "info.feature_11 (4.11)",
    "info.feature_12 (4.12)",
    "info.feature_13 (4.13)",
    "info.feature_14 (4.14)",
    "info.feature_15 (4.15)",
    "info.feature_16 (4.16)",
    "info.feature_17 (4.17)",
    "info.feature_18 (4.18)",
    "info.feature_19 (4.19)",
    "info.feature_20 (4.20)",
    "info.feature_21 (4.21)",
    "info.feature_22 (4.22)",
    "info.feature_23 (4.23)",
    "info.feature_24 (4.24)",
    "info.feature_25 (4.25)",
    "info.feature_26 (4.26)",
    "info.feature_27 (4.27)",
    "info.feature_28 (4.28)",
    "info.feature_29 (4.29)",
    "info.feature_30 (4.30)",
    "info.feature_31 (4.31)",
    "info.feature_32 (4.32)",
    "info.feature_33 (4.33)",
    "info.feature_34 (4.34)",
    "info.feature_35 (4.35)",
    "info.feature_36 (4.36)",
    "info.feature_37 (4.37)",
    "info.feature_38 (4.38)",
    "info.feature_39 (4.39)",
];

/// The feature booleans of `info`, fields 5 to 39, each present or absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureTable([Option<bool>; FEATURE_COUNT]);

impl Default for FeatureTable {
    fn default() -> Self {
        Self([None; FEATURE_COUNT])
    }
}

impl FeatureTable {
    /// The value of feature field `field`, `None` if absent or outside 5..=39.
    pub fn get(&self, field: u32) -> Option<bool> {
        Self::index(field).and_then(|i| self.0[i])
    }

    /// Sets (or, with `None`, removes) feature field `field`.
    pub fn set(&mut self, field: u32, value: Option<bool>) -> Result<(), Error> {
        let i =
            Self::index(field).ok_or(Error::InvalidInput("feature fields are numbered 5 to 39"))?;
        self.0[i] = value;
        Ok(())
    }

    /// The present fields and their values, in ascending field order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, bool)> + '_ {
        (FIRST_FEATURE..=LAST_FEATURE)
            .zip(self.0.iter())
            .filter_map(|(field, value)| value.map(|v| (field, v)))
    }

    /// Whether no feature field is present.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }

    fn index(field: u32) -> Option<usize> {
        (FIRST_FEATURE..=LAST_FEATURE).contains(&field).then(|| (field - FIRST_FEATURE) as usize)
    }
}

/// Field 4 of the prefix: who made the backup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BackupInfo {
    /// Field 1: the WhatsApp version, e.g. `2.23.18.12`.
    pub app_version: Option<String>,
    /// Field 3: the last two digits of the account's phone number, in clear.
    pub jid_suffix: Option<String>,
    /// Field 4: the backup version.
    pub backup_version: Option<i32>,
    /// Fields 5 to 39: which database features the backup has.
    pub features: FeatureTable,
}

impl BackupInfo {
    fn parse(bytes: &[u8]) -> Result<Self, HeaderError> {
        let mut info = BackupInfo::default();
        let mut reader = WireReader::new(bytes);
        while !reader.is_empty() {
            let (field, wire_type) = reader.tag().map_err(|p| HeaderError::new(F_INFO, p))?;
            match field {
                1 => {
                    let value = read_string(&mut reader, wire_type, F_APP_VERSION)?;
                    set_once(&mut info.app_version, value, F_APP_VERSION)?;
                }
                3 => {
                    let value = read_string(&mut reader, wire_type, F_JID)?;
                    set_once(&mut info.jid_suffix, value, F_JID)?;
                }
                4 => {
                    // int32 on the wire is a 64-bit varint whose low 32 bits are the value.
                    let value = read_varint(&mut reader, wire_type, F_BACKUP_VERSION)? as i32;
                    set_once(&mut info.backup_version, value, F_BACKUP_VERSION)?;
                }
                FIRST_FEATURE..=LAST_FEATURE => {
                    let i = (field - FIRST_FEATURE) as usize;
                    let name = FEATURE_FIELDS[i];
                    let value = read_varint(&mut reader, wire_type, name)? != 0;
                    set_once(&mut info.features.0[i], value, name)?;
                }
                _ => reader.skip(wire_type).map_err(|p| HeaderError::new(F_INFO, p))?,
            }
        }
        Ok(info)
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(version) = &self.app_version {
            put_bytes_field(&mut out, 1, version.as_bytes());
        }
        if let Some(suffix) = &self.jid_suffix {
            put_bytes_field(&mut out, 3, suffix.as_bytes());
        }
        if let Some(version) = self.backup_version {
            put_varint_field(&mut out, 4, i64::from(version) as u64);
        }
        for (field, value) in self.features.iter() {
            put_varint_field(&mut out, field, u64::from(value));
        }
        out
    }
}

/// The `BackupPrefix` protobuf, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupPrefix {
    /// Field 1: the key type; 1 ([`KEY_TYPE_E2E`]) for end-to-end encrypted backups.
    pub key_type: Option<i32>,
    /// Field 3.1: the 16-byte IV, used as the GCM nonce.
    pub iv: [u8; IV_LEN],
    /// Field 4: app version, phone-number suffix, backup version and feature table.
    pub info: Option<BackupInfo>,
}

impl BackupPrefix {
    /// The smallest prefix that names the key type and the IV: nothing about the account.
    pub fn minimal(iv: [u8; IV_LEN]) -> Self {
        Self { key_type: Some(KEY_TYPE_E2E), iv, info: None }
    }

    /// Parses the protobuf bytes of a prefix.
    ///
    /// Unknown fields are skipped; known fields must have their own wire type and appear at
    /// most once; field 3 with a 16-byte IV is required (a header with crypt14 key data in
    /// field 2 instead is reported as such).
    pub fn parse(bytes: &[u8]) -> Result<Self, HeaderError> {
        let mut key_type = None;
        let mut iv = None;
        let mut info = None;
        let mut crypt14 = false;
        let mut reader = WireReader::new(bytes);
        while !reader.is_empty() {
            let (field, wire_type) = reader.tag().map_err(|p| HeaderError::new(F_PREFIX, p))?;
            match field {
                1 => {
                    let value = read_varint(&mut reader, wire_type, F_KEY_TYPE)? as i32;
                    set_once(&mut key_type, value, F_KEY_TYPE)?;
                }
                2 => {
                    crypt14 = true;
                    reader.skip(wire_type).map_err(|p| HeaderError::new(F_CRYPT14, p))?;
                }
                3 => {
                    let message = read_len(&mut reader, wire_type, F_IV_MSG)?;
                    set_once(&mut iv, parse_iv(message)?, F_IV_MSG)?;
                }
                4 => {
                    let message = read_len(&mut reader, wire_type, F_INFO)?;
                    set_once(&mut info, BackupInfo::parse(message)?, F_INFO)?;
                }
                _ => reader.skip(wire_type).map_err(|p| HeaderError::new(F_PREFIX, p))?,
            }
        }
        let iv = match iv {
            Some(iv) => iv,
            None if crypt14 => return Err(HeaderError::new(F_CRYPT14, HeaderProblem::Crypt14)),
            None => return Err(HeaderError::new(F_IV_MSG, HeaderProblem::Missing)),
        };
        Ok(Self { key_type, iv, info })
    }

    /// Encodes the prefix canonically: fields in ascending order, every present field written.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(key_type) = self.key_type {
            put_varint_field(&mut out, 1, i64::from(key_type) as u64);
        }
        let mut iv_message = Vec::with_capacity(2 + IV_LEN);
        put_bytes_field(&mut iv_message, 1, &self.iv);
        put_bytes_field(&mut out, 3, &iv_message);
        if let Some(info) = &self.info {
            put_bytes_field(&mut out, 4, &info.encode());
        }
        out
    }
}

fn parse_iv(bytes: &[u8]) -> Result<[u8; IV_LEN], HeaderError> {
    let mut iv = None;
    let mut reader = WireReader::new(bytes);
    while !reader.is_empty() {
        let (field, wire_type) = reader.tag().map_err(|p| HeaderError::new(F_IV_MSG, p))?;
        if field == 1 {
            let value = read_len(&mut reader, wire_type, F_IV)?;
            let value: [u8; IV_LEN] = value.try_into().map_err(|_| {
                HeaderError::new(
                    F_IV,
                    HeaderProblem::WrongLength {
                        found: value.len() as u64,
                        expected: IV_LEN as u64,
                    },
                )
            })?;
            set_once(&mut iv, value, F_IV)?;
        } else {
            reader.skip(wire_type).map_err(|p| HeaderError::new(F_IV_MSG, p))?;
        }
    }
    iv.ok_or(HeaderError::new(F_IV, HeaderProblem::Missing))
}

fn expect_wire_type(found: u8, expected: u8, field: &'static str) -> Result<(), HeaderError> {
    if found == expected {
        Ok(())
    } else {
        Err(HeaderError::new(field, HeaderProblem::WrongWireType { found, expected }))
    }
}

fn read_varint(
    reader: &mut WireReader<'_>,
    wire_type: u8,
    field: &'static str,
) -> Result<u64, HeaderError> {
    expect_wire_type(wire_type, WT_VARINT, field)?;
    reader.varint().map_err(|p| HeaderError::new(field, p))
}

fn read_len<'a>(
    reader: &mut WireReader<'a>,
    wire_type: u8,
    field: &'static str,
) -> Result<&'a [u8], HeaderError> {
    expect_wire_type(wire_type, WT_LEN, field)?;
    reader.bytes().map_err(|p| HeaderError::new(field, p))
}

fn read_string(
    reader: &mut WireReader<'_>,
    wire_type: u8,
    field: &'static str,
) -> Result<String, HeaderError> {
    let bytes = read_len(reader, wire_type, field)?;
    String::from_utf8(bytes.to_vec())
        .map_err(|_| HeaderError::new(field, HeaderProblem::InvalidUtf8))
}

fn set_once<T>(slot: &mut Option<T>, value: T, field: &'static str) -> Result<(), HeaderError> {
    if slot.is_some() {
        return Err(HeaderError::new(field, HeaderProblem::Duplicate));
    }
    *slot = Some(value);
    Ok(())
}

/// How a writer frames the prefix length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Framing {
    /// The length as a protobuf varint, then the prefix (protobuf's `writeDelimitedTo`). The
    /// default: readable by wa-crypt-tools (for prefixes up to 255 bytes) and by a reader that
    /// expects a varint length.
    #[default]
    Varint,
    /// One length byte, then a `0x01` byte, then the prefix: what wa-crypt-tools writes.
    /// Prefixes up to 255 bytes. From 128 to 255 bytes this gives the same bytes as
    /// [`Framing::Varint`].
    LengthByteAndFlag,
}

/// What a minimal header written by [`FileHeader::minimal`] holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderOptions {
    /// The IV; `None` draws a fresh one from the operating system's CSPRNG. Give one only to
    /// reproduce a known file: an IV must never be used twice with the same key.
    pub iv: Option<[u8; IV_LEN]>,
    /// The WhatsApp version to record; `None` records none.
    pub app_version: Option<String>,
    /// The last two digits of the phone number, which crypt15 stores in clear; `None`
    /// records none.
    pub jid_suffix: Option<String>,
    /// How the prefix length is written.
    pub framing: Framing,
}

/// The header of a `.crypt15` file: its exact bytes and the parsed prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileHeader {
    /// The length varint and the optional flag byte, as read or written.
    lead: Vec<u8>,
    /// Whether `lead` ends with a separate flag byte.
    flag: bool,
    /// The protobuf bytes, as read or written.
    prefix_bytes: Vec<u8>,
    prefix: BackupPrefix,
}

impl FileHeader {
    /// Frames `prefix`, encoded canonically.
    pub fn new(prefix: BackupPrefix, framing: Framing) -> Result<Self, HeaderError> {
        let bytes = prefix.encode();
        Self::frame(bytes, prefix, framing)
    }

    /// Frames prefix bytes given as they are (they must parse), e.g. those of an existing file.
    pub fn from_prefix_bytes(prefix_bytes: &[u8], framing: Framing) -> Result<Self, HeaderError> {
        let prefix = BackupPrefix::parse(prefix_bytes)?;
        Self::frame(prefix_bytes.to_vec(), prefix, framing)
    }

    /// A header that records only what the options give: key type 1, the IV (fresh from the
    /// operating system's CSPRNG unless given), and an `info` message only if an app version or
    /// a phone-number suffix is given. The suffix must be two ASCII digits.
    pub fn minimal(options: &HeaderOptions) -> Result<Self, Error> {
        let iv = match options.iv {
            Some(iv) => iv,
            None => fresh_iv()?,
        };
        let mut prefix = BackupPrefix::minimal(iv);
        if let Some(suffix) = &options.jid_suffix
            && (suffix.len() != 2 || !suffix.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(Error::InvalidInput(
                "the phone-number suffix must be exactly two ASCII digits",
            ));
        }
        if options.app_version.is_some() || options.jid_suffix.is_some() {
            prefix.info = Some(BackupInfo {
                app_version: options.app_version.clone(),
                jid_suffix: options.jid_suffix.clone(),
                ..BackupInfo::default()
            });
        }
        Ok(Self::new(prefix, options.framing)?)
    }

    fn frame(
        prefix_bytes: Vec<u8>,
        prefix: BackupPrefix,
        framing: Framing,
    ) -> Result<Self, HeaderError> {
        let len = prefix_bytes.len();
        let max = match framing {
            Framing::Varint => MAX_PREFIX_LEN,
            Framing::LengthByteAndFlag => 255,
        };
        if len > max {
            return Err(HeaderError::new(
                F_LENGTH,
                HeaderProblem::TooLong { len: len as u64, max: max as u64 },
            ));
        }
        let mut lead = Vec::with_capacity(3);
        match framing {
            Framing::Varint => put_varint(&mut lead, len as u64),
            Framing::LengthByteAndFlag => lead.extend_from_slice(&[len as u8, FLAG_BYTE]),
        }
        Ok(Self {
            flag: framing == Framing::LengthByteAndFlag && len < 0x80,
            lead,
            prefix_bytes,
            prefix,
        })
    }

    /// Parses the header at the start of `file`.
    pub fn parse(file: &[u8]) -> Result<Self, Error> {
        let mut reader = file;
        Self::read_from(&mut reader)
    }

    /// Reads the header from the start of a stream, leaving the stream just after it.
    ///
    /// Reads at most [`MAX_LENGTH_VARINT_LEN`] + 1 + [`MAX_PREFIX_LEN`] bytes and allocates
    /// no more than it has read. A stream that ends inside the header gives
    /// [`Error::Truncated`], with the number of bytes it held.
    pub fn read_from<R: Read + ?Sized>(reader: &mut R) -> Result<Self, Error> {
        let mut lead = Vec::with_capacity(4);
        let mut len = 0u64;
        loop {
            if lead.len() == usize::from(MAX_LENGTH_VARINT_LEN) {
                return Err(HeaderError::new(
                    F_LENGTH,
                    HeaderProblem::OverlongVarint { max: MAX_LENGTH_VARINT_LEN },
                )
                .into());
            }
            let Some(byte) = read_byte(reader)? else {
                return Err(truncated(F_LENGTH, lead.len() as u64, lead.len() as u64 + 1));
            };
            len |= u64::from(byte & 0x7f) << (7 * lead.len());
            lead.push(byte);
            if byte & 0x80 == 0 {
                break;
            }
        }
        if len > MAX_PREFIX_LEN as u64 {
            return Err(HeaderError::new(
                F_LENGTH,
                HeaderProblem::TooLong { len, max: MAX_PREFIX_LEN as u64 },
            )
            .into());
        }
        let mut prefix_bytes = Vec::new();
        let mut flag = false;
        if len > 0 {
            let Some(byte) = read_byte(reader)? else {
                return Err(truncated(F_PREFIX, lead.len() as u64, lead.len() as u64 + len));
            };
            if byte == FLAG_BYTE {
                flag = true;
                lead.push(byte);
            } else {
                prefix_bytes.push(byte);
            }
            let want = len - prefix_bytes.len() as u64;
            // Grows with what is actually read, never with the declared length.
            reader.take(want).read_to_end(&mut prefix_bytes)?;
            if (prefix_bytes.len() as u64) < len {
                let held = (lead.len() + prefix_bytes.len()) as u64;
                return Err(truncated(F_PREFIX, held, lead.len() as u64 + len));
            }
        }
        let prefix = BackupPrefix::parse(&prefix_bytes)?;
        Ok(Self { lead, flag, prefix_bytes, prefix })
    }

    /// The parsed prefix.
    pub fn prefix(&self) -> &BackupPrefix {
        &self.prefix
    }

    /// The IV, which is also the GCM nonce.
    pub fn iv(&self) -> &[u8; IV_LEN] {
        &self.prefix.iv
    }

    /// The protobuf bytes of the prefix, exactly as read or written.
    pub fn prefix_bytes(&self) -> &[u8] {
        &self.prefix_bytes
    }

    /// Whether a separate `0x01` byte follows the prefix length. (For lengths 128 to 255,
    /// wa-crypt-tools' `length, 0x01` reads as a two-byte varint length and no flag byte.)
    pub fn has_flag_byte(&self) -> bool {
        self.flag
    }

    /// Length of the header in the file.
    pub fn len(&self) -> usize {
        self.lead.len() + self.prefix_bytes.len()
    }

    /// Always false: a header holds at least a length byte and an IV.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The header's bytes, exactly as read or written.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        out.extend_from_slice(&self.lead);
        out.extend_from_slice(&self.prefix_bytes);
        out
    }
}

fn truncated(part: &'static str, file_len: u64, needed: u64) -> Error {
    Error::Truncated { part, file_len, needed }
}

fn read_byte<R: Read + ?Sized>(reader: &mut R) -> Result<Option<u8>, Error> {
    let mut byte = [0u8; 1];
    loop {
        match reader.read(&mut byte) {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(byte[0])),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err.into()),
        }
    }
}

/// 16 bytes from the operating system's CSPRNG.
pub(crate) fn fresh_iv() -> Result<[u8; IV_LEN], Error> {
    let mut iv = [0u8; IV_LEN];
    getrandom::fill(&mut iv).map_err(|err| Error::Io {
        kind: io::ErrorKind::Other,
        message: format!("the operating system's random source failed: {err}"),
    })?;
    Ok(iv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feature_names_match_their_numbers() {
        for (i, name) in FEATURE_FIELDS.iter().enumerate() {
            let field = FIRST_FEATURE as usize + i;
            assert!(name.ends_with(&format!("(4.{field})")), "{name}");
        }
    }

    #[test]
    fn minimal_prefix_round_trips() {
        let prefix = BackupPrefix::minimal([9; IV_LEN]);
        assert_eq!(BackupPrefix::parse(&prefix.encode()).unwrap(), prefix);
    }

    #[test]
    fn both_framings_agree_from_128_to_255_bytes() {
        let mut prefix = BackupPrefix::minimal([1; IV_LEN]);
        prefix.info =
            Some(BackupInfo { app_version: Some("x".repeat(110)), ..BackupInfo::default() });
        let varint = FileHeader::new(prefix.clone(), Framing::Varint).unwrap();
        let flagged = FileHeader::new(prefix, Framing::LengthByteAndFlag).unwrap();
        assert!((128..=255).contains(&varint.prefix_bytes().len()));
        assert_eq!(varint.to_bytes(), flagged.to_bytes());
        assert!(!FileHeader::parse(&flagged.to_bytes()).unwrap().has_flag_byte());
    }
}
