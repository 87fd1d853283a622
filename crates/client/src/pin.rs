//! The fleet pin: which vault fleet the client trusts (spec section 5.3).
//!
//! A vault server writes it as `fleet.pin`, one `key = value` per line:
//!
//! ```text
//! # e2ee-backups fleet pin
//! fleet_id = fleet.example
//! authority = 3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c
//! auditor = ...                       (optional)
//! ```
//!
//! Blank lines and lines starting with `#` are ignored; keys other than these are rejected, so
//! a typo does not silently drop the auditor.

use e2ee_backup_vault::fleet::PinnedFleet;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A pinned fleet, in the form the state file keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetPin {
    /// The fleet identifier (UTF-8, 1 to 64 bytes).
    pub fleet_id: String,
    /// The fleet authority's Ed25519 public key, 64 hex digits.
    pub authority: String,
    /// The transparency auditor's Ed25519 public key, 64 hex digits, when one is pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auditor: Option<String>,
}

impl FleetPin {
    /// Reads a `fleet.pin` file's text.
    pub fn parse(text: &str) -> Result<Self> {
        let (mut fleet_id, mut authority, mut auditor) = (None, None, None);
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| Error::Pin { line: index + 1, why: why.to_owned() };
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| bad("expected `key = value` (fleet_id, authority or auditor)"))?;
            let value = value.trim().trim_matches('"').to_owned();
            let slot = match key.trim() {
                "fleet_id" => &mut fleet_id,
                "authority" => &mut authority,
                "auditor" => &mut auditor,
                other => {
                    return Err(bad(&format!(
                        "unknown key {other:?}; expected fleet_id, authority or auditor"
                    )));
                }
            };
            if slot.replace(value).is_some() {
                return Err(bad("this key is given twice"));
            }
        }
        let missing = |what: &str| Error::Pin { line: 0, why: format!("{what} is missing") };
        let pin = Self {
            fleet_id: fleet_id.ok_or_else(|| missing("fleet_id"))?,
            authority: authority.ok_or_else(|| missing("authority"))?,
            auditor,
        };
        pin.to_pinned()?;
        Ok(pin)
    }

    /// The pin as the vault crate's type, checking every field.
    pub fn to_pinned(&self) -> Result<PinnedFleet> {
        let field = |why: String| Error::Pin { line: 0, why };
        if self.fleet_id.is_empty() || self.fleet_id.len() > 64 {
            return Err(field("fleet_id must be 1 to 64 bytes".to_owned()));
        }
        let key = |name: &str, hex_key: &str| {
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(hex_key, &mut bytes).map_err(|_| {
                field(format!("{name} must be 64 hexadecimal digits (an Ed25519 public key)"))
            })?;
            ed25519_dalek_key(&bytes)
                .ok_or_else(|| field(format!("{name} is not a valid Ed25519 public key")))
        };
        Ok(PinnedFleet {
            fleet_id: self.fleet_id.as_bytes().to_vec(),
            authority: key("authority", &self.authority)?,
            auditor: self.auditor.as_deref().map(|a| key("auditor", a)).transpose()?,
        })
    }
}

/// An Ed25519 public key, if the bytes are one.
fn ed25519_dalek_key(bytes: &[u8; 32]) -> Option<ed25519_dalek::VerifyingKey> {
    ed25519_dalek::VerifyingKey::from_bytes(bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTHORITY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    #[test]
    fn reads_keys_comments_and_quotes() {
        let pin = FleetPin::parse(&format!(
            "# pin\n\nfleet_id = \"fleet.test\"\nauthority = {AUTHORITY}\n"
        ))
        .unwrap();
        assert_eq!(pin.fleet_id, "fleet.test");
        assert_eq!(pin.auditor, None);
        assert_eq!(pin.to_pinned().unwrap().fleet_id, b"fleet.test");
    }

    #[test]
    fn names_the_bad_line() {
        let err = FleetPin::parse("fleet_id = f\nauthorty = 00\n").unwrap_err();
        assert!(matches!(err, Error::Pin { line: 2, .. }), "{err}");
        let err = FleetPin::parse(&format!("fleet_id = f\nauthority = {}\n", &AUTHORITY[2..]))
            .unwrap_err();
        assert!(err.to_string().contains("64 hexadecimal"), "{err}");
        assert!(FleetPin::parse("fleet_id = f\n").unwrap_err().to_string().contains("authority"));
    }
}
