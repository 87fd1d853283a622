//! The `encrypted_backup.key` file (spec section 6.2): the Java serialisation of a `byte[32]`
//! holding K.
//!
//! WhatsApp writes the key with `ObjectOutputStream.writeObject(byte[])`, which gives a fixed
//! 27-byte header ([`KEY_FILE_HEADER`]) followed by the 32 key bytes:
//!
//! | offset | bytes | meaning |
//! |---|---|---|
//! | 0 | `ac ed` | stream magic |
//! | 2 | `00 05` | stream version 5 |
//! | 4 | `75` | `TC_ARRAY` |
//! | 5 | `72` | `TC_CLASSDESC` |
//! | 6 | `00 02 5b 42` | class name `[B` (byte array) |
//! | 10 | `ac f3 17 f8 06 08 54 e0` | `serialVersionUID` of `byte[]` |
//! | 18 | `02` | flags: `SC_SERIALIZABLE` |
//! | 19 | `00 00` | no fields |
//! | 21 | `78` | `TC_ENDBLOCKDATA` |
//! | 22 | `70` | `TC_NULL`: no superclass |
//! | 23 | `00 00 00 20` | array length 32 |
//! | 27 | 32 bytes | K |

use e2ee_backup_kdf::{BackupKey, KEY_LEN};
use zeroize::{Zeroize, Zeroizing};

use crate::error::KeyFileError;

/// The 27 bytes before K in a key file.
pub const KEY_FILE_HEADER: [u8; 27] = [
    0xac, 0xed, 0x00, 0x05, 0x75, 0x72, 0x00, 0x02, 0x5b, 0x42, 0xac, 0xf3, 0x17, 0xf8, 0x06, 0x08,
    0x54, 0xe0, 0x02, 0x00, 0x00, 0x78, 0x70, 0x00, 0x00, 0x00, 0x20,
];

/// Length of a key file: the header and K.
pub const KEY_FILE_LEN: usize = KEY_FILE_HEADER.len() + KEY_LEN;

/// Names of the parts of the header, by the offset they end before.
const PARTS: [(usize, &str); 12] = [
    (2, "stream magic"),
    (4, "stream version"),
    (5, "TC_ARRAY marker"),
    (6, "TC_CLASSDESC marker"),
    (8, "class name length"),
    (10, "class name \"[B\""),
    (18, "serialVersionUID of byte[]"),
    (19, "class flags"),
    (21, "field count"),
    (22, "TC_ENDBLOCKDATA marker"),
    (23, "superclass (TC_NULL)"),
    (27, "array length (32)"),
];

fn part_of(offset: usize) -> &'static str {
    PARTS.iter().find(|(end, _)| offset < *end).map_or("key", |(_, name)| name)
}

/// Reads K from the bytes of an `encrypted_backup.key` file.
///
/// The header is checked first, as far as the file reaches, so that a file of another kind is
/// reported by its first wrong byte; then the length.
pub fn parse(bytes: &[u8]) -> Result<BackupKey, KeyFileError> {
    for (offset, (&found, &expected)) in bytes.iter().zip(KEY_FILE_HEADER.iter()).enumerate() {
        if found != expected {
            return Err(KeyFileError::WrongHeader {
                offset,
                part: part_of(offset),
                found,
                expected,
            });
        }
    }
    if bytes.len() != KEY_FILE_LEN {
        return Err(KeyFileError::WrongLength { found: bytes.len(), expected: KEY_FILE_LEN });
    }
    let mut key = [0u8; KEY_LEN];
    key.copy_from_slice(&bytes[KEY_FILE_HEADER.len()..]);
    let out = BackupKey::from_bytes(key);
    key.zeroize();
    Ok(out)
}

/// The bytes of the `encrypted_backup.key` file that holds `key`; wiped when dropped.
pub fn encode(key: &BackupKey) -> Zeroizing<[u8; KEY_FILE_LEN]> {
    let mut out = Zeroizing::new([0u8; KEY_FILE_LEN]);
    out[..KEY_FILE_HEADER.len()].copy_from_slice(&KEY_FILE_HEADER);
    out[KEY_FILE_HEADER.len()..].copy_from_slice(key.expose_secret());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_header() {
        assert_eq!(PARTS.last().map(|p| p.0), Some(KEY_FILE_HEADER.len()));
        assert!(PARTS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn round_trip() {
        let key = BackupKey::from_bytes([7; KEY_LEN]);
        assert_eq!(parse(&encode(&key)[..]).unwrap(), key);
    }
}
