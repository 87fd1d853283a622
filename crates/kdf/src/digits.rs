//! The 64-digit key (spec section 2.2).
//!
//! K is shown to the user as 64 lowercase hexadecimal digits in 16 groups of 4, separated by
//! single spaces. Reading accepts upper case and ignores spaces, dashes and line breaks, so a
//! key copied from any rendering of it parses; every other character is an error that names
//! its position.

use thiserror::Error;
use zeroize::Zeroizing;

use crate::{BackupKey, KEY_LEN};

/// Number of hexadecimal digits in the 64-digit key.
pub const DIGITS: usize = 2 * KEY_LEN;

/// Why a string is not a 64-digit key. No variant holds a digit of the key.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyParseError {
    /// A character that is neither a hexadecimal digit nor an accepted separator.
    #[error(
        "character {character:?} at position {position} is not allowed in a 64-digit key \
         (use 0-9 and a-f; spaces, dashes and line breaks are ignored)"
    )]
    InvalidCharacter {
        /// Zero-based index of the character among the characters (not bytes) of the input.
        position: usize,
        /// The offending character.
        character: char,
    },
    /// The input holds a number of hexadecimal digits other than 64.
    #[error("a 64-digit key has 64 hexadecimal digits, found {found}")]
    WrongLength {
        /// How many hexadecimal digits the input holds.
        found: usize,
    },
}

/// Whether `c` is ignored between digits: space, dash, line feed or carriage return.
fn is_separator(c: char) -> bool {
    matches!(c, ' ' | '-' | '\n' | '\r')
}

/// Reads a 64-digit key.
///
/// Checks every character before counting, so the first bad character is reported even when
/// the length is also wrong.
pub fn parse(input: &str) -> Result<BackupKey, KeyParseError> {
    let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
    let mut found = 0usize;
    for (position, character) in input.chars().enumerate() {
        if is_separator(character) {
            continue;
        }
        let Some(value) = character.to_digit(16) else {
            return Err(KeyParseError::InvalidCharacter { position, character });
        };
        if found < DIGITS {
            let shift = if found.is_multiple_of(2) { 4 } else { 0 };
            bytes[found / 2] |= (value as u8) << shift;
        }
        found += 1;
    }
    if found != DIGITS {
        return Err(KeyParseError::WrongLength { found });
    }
    Ok(BackupKey::from_bytes(*bytes))
}

/// K as 64 lowercase hexadecimal digits with no separators.
pub fn to_hex(key: &BackupKey) -> Zeroizing<String> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = Zeroizing::new(String::with_capacity(DIGITS));
    for byte in key.expose_secret() {
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 0x0f)] as char);
    }
    out
}

/// K as the user sees it: 16 groups of 4 lowercase digits separated by single spaces.
pub fn to_display(key: &BackupKey) -> Zeroizing<String> {
    let hex = to_hex(key);
    let mut out = Zeroizing::new(String::with_capacity(DIGITS + DIGITS / 4 - 1));
    for (i, group) in hex.as_bytes().chunks(4).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        // Every byte of `hex` is ASCII, so each group of 4 is valid UTF-8.
        out.push_str(core::str::from_utf8(group).unwrap_or_default());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str =
        "0001 0203 0405 0607 0809 0a0b 0c0d 0e0f 1011 1213 1415 1617 1819 1a1b 1c1d 1e1f";

    #[test]
    fn display_groups_sixteen_by_four() {
        let key = BackupKey::from_bytes(core::array::from_fn(|i| i as u8));
        assert_eq!(to_display(&key).as_str(), SAMPLE);
        assert_eq!(parse(SAMPLE).unwrap(), key);
    }

    #[test]
    fn accepts_upper_case_dashes_and_line_breaks() {
        let messy =
            "0001-0203-0405-0607\r\n0809-0A0B-0C0D-0E0F\n1011 1213 1415 1617 18191A1B1C1D1E1F";
        assert_eq!(parse(messy).unwrap(), parse(SAMPLE).unwrap());
    }

    #[test]
    fn names_position_and_character() {
        let err = parse("0001 02g3").unwrap_err();
        assert_eq!(err, KeyParseError::InvalidCharacter { position: 7, character: 'g' });
        let err = parse("é").unwrap_err();
        assert_eq!(err, KeyParseError::InvalidCharacter { position: 0, character: 'é' });
        // A tab is not an accepted separator.
        let err = parse("00\t01").unwrap_err();
        assert_eq!(err, KeyParseError::InvalidCharacter { position: 2, character: '\t' });
    }

    #[test]
    fn names_digit_count() {
        assert_eq!(parse("").unwrap_err(), KeyParseError::WrongLength { found: 0 });
        assert_eq!(parse(&SAMPLE[1..]).unwrap_err(), KeyParseError::WrongLength { found: 63 });
        let long = format!("{SAMPLE}0");
        assert_eq!(parse(&long).unwrap_err(), KeyParseError::WrongLength { found: 65 });
    }

    proptest! {
        #[test]
        fn display_and_hex_round_trip(bytes in any::<[u8; 32]>()) {
            let key = BackupKey::from_bytes(bytes);
            prop_assert_eq!(parse(&to_display(&key)).unwrap(), key.clone());
            prop_assert_eq!(parse(&to_hex(&key).to_uppercase()).unwrap(), key);
        }

        #[test]
        fn parse_never_panics(input in ".{0,100}") {
            let _ = parse(&input);
        }
    }
}
