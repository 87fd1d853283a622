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
//! The rules are the vault crate's ([`e2ee_backup_vault::PinnedFleet::parse_pin`]), shared with the server that
//! writes the file: blank lines and `#` comments ignored; unknown or repeated keys rejected
//! with their line, so a typo does not silently drop the auditor; a printable-ASCII fleet id;
//! Ed25519 keys that are not of small order.

use e2ee_backup_vault::{PinError, PinnedFleet};
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
    /// Reads a `fleet.pin` file's text, by the rules of [`PinnedFleet::parse_pin`].
    pub fn parse(text: &str) -> Result<Self> {
        let pinned = PinnedFleet::parse_pin(text).map_err(pin_error)?;
        Ok(Self::from_pinned(&pinned))
    }

    /// The state-file form of a checked pin.
    pub fn from_pinned(pinned: &PinnedFleet) -> Self {
        Self {
            fleet_id: String::from_utf8_lossy(&pinned.fleet_id).into_owned(),
            authority: hex::encode(pinned.authority.as_bytes()),
            auditor: pinned.auditor.map(|a| hex::encode(a.as_bytes())),
        }
    }

    /// The pin as the vault crate's type, checking every field by the same rules.
    pub fn to_pinned(&self) -> Result<PinnedFleet> {
        PinnedFleet::from_fields(&self.fleet_id, &self.authority, self.auditor.as_deref())
            .map_err(pin_error)
    }
}

fn pin_error(e: PinError) -> Error {
    Error::Pin { line: e.line, why: e.why }
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
