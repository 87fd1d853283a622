//! The `fleet.pin` file (spec section 5.4): what a client pins about its vault fleet, the one
//! parser and renderer the vault server (which writes it) and the client (which reads it) share.
//!
//! ```text
//! # e2ee-backups fleet pin, format 1
//! fleet_id = fleet.example
//! authority = 3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c
//! auditor = ...                       (optional)
//! ```
//!
//! One `key = value` per line, surrounding spaces and one pair of double quotes around the value
//! ignored; blank lines and lines starting with `#` ignored; keys other than these three, and a
//! key given twice, are refused with their line number. `fleet_id` is 1 to 64 printable ASCII
//! characters without spaces; `authority` and `auditor` are 64 hexadecimal digits encoding an
//! Ed25519 public key that is not of small order.

use ed25519_dalek::VerifyingKey;
use thiserror::Error;

use crate::fleet::PinnedFleet;
use crate::ids::FleetId;

/// Why a pin was refused: the line (0 for the file as a whole) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}{why}", if *line > 0 { format!("line {line}: ") } else { String::new() })]
pub struct PinError {
    /// The 1-based line, or 0 when the fault is not on one line (a missing key).
    pub line: usize,
    /// What is wrong.
    pub why: String,
}

fn at(line: usize, why: impl Into<String>) -> PinError {
    PinError { line, why: why.into() }
}

/// Checks a fleet id: 1 to 64 printable ASCII characters, no spaces.
pub fn check_fleet_id(fleet_id: &str) -> Result<FleetId<'_>, String> {
    let id = FleetId::try_from(fleet_id).map_err(|e| e.to_string())?;
    if let Some(c) = fleet_id.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!("the fleet id holds {c:?}; only printable ASCII without spaces"));
    }
    Ok(id)
}

/// The check of one field's value.
type FieldCheck = fn(&str) -> Result<(), String>;

/// Reads a public key field: 64 hexadecimal digits of an Ed25519 key not of small order.
fn parse_key(value: &str, name: &str) -> Result<VerifyingKey, String> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(value, &mut bytes)
        .map_err(|_| format!("{name} must be 64 hexadecimal digits (an Ed25519 public key)"))?;
    let key = VerifyingKey::from_bytes(&bytes)
        .map_err(|_| format!("{name} is not a valid Ed25519 public key"))?;
    if key.is_weak() {
        return Err(format!("{name} is a small-order key"));
    }
    Ok(key)
}

impl PinnedFleet {
    /// A pin from its three fields as text (the form a client's state file keeps), checked as
    /// a `fleet.pin` file's are.
    pub fn from_fields(
        fleet_id: &str,
        authority: &str,
        auditor: Option<&str>,
    ) -> Result<Self, PinError> {
        check_fleet_id(fleet_id).map_err(|why| at(0, why))?;
        Ok(Self {
            fleet_id: fleet_id.as_bytes().to_vec(),
            authority: parse_key(authority, "authority").map_err(|why| at(0, why))?,
            auditor: auditor.map(|a| parse_key(a, "auditor")).transpose().map_err(|w| at(0, w))?,
        })
    }

    /// Reads a `fleet.pin` file's text.
    pub fn parse_pin(text: &str) -> Result<Self, PinError> {
        let (mut fleet_id, mut authority, mut auditor) = (None, None, None);
        for (index, raw) in text.lines().enumerate() {
            let (line, text) = (index + 1, raw.trim());
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            let (key, value) = text.split_once('=').ok_or_else(|| {
                at(line, "expected `key = value` (fleet_id, authority or auditor)")
            })?;
            let value = value.trim();
            let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
            let (slot, check): (_, FieldCheck) = match key.trim() {
                "fleet_id" => (&mut fleet_id, |v| check_fleet_id(v).map(drop)),
                "authority" => (&mut authority, |v| parse_key(v, "authority").map(drop)),
                "auditor" => (&mut auditor, |v| parse_key(v, "auditor").map(drop)),
                other => {
                    return Err(at(
                        line,
                        format!("unknown key {other:?}; expected fleet_id, authority or auditor"),
                    ));
                }
            };
            check(value).map_err(|why| at(line, why))?;
            if slot.replace(value.to_owned()).is_some() {
                return Err(at(line, format!("{} is given twice", key.trim())));
            }
        }
        let fleet_id = fleet_id.ok_or_else(|| at(0, "fleet_id is missing"))?;
        let authority = authority.ok_or_else(|| at(0, "authority is missing"))?;
        Self::from_fields(&fleet_id, &authority, auditor.as_deref())
    }

    /// The `fleet.pin` text of this pin (which [`PinnedFleet::parse_pin`] reads back).
    pub fn render_pin(&self) -> String {
        let mut out = String::from("# e2ee-backups fleet pin, format 1\n");
        out.push_str(&format!("fleet_id = {}\n", String::from_utf8_lossy(&self.fleet_id)));
        out.push_str(&format!("authority = {}\n", hex::encode(self.authority.as_bytes())));
        if let Some(auditor) = &self.auditor {
            out.push_str(&format!("auditor = {}\n", hex::encode(auditor.as_bytes())));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUTHORITY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    /// The identity point: a valid encoding, of small order.
    const WEAK: &str = "0100000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn reads_back_what_it_renders() {
        let pin = PinnedFleet::parse_pin(&format!(
            "# pin\n\nfleet_id = \"fleet.test\"\nauthority = {AUTHORITY}\n"
        ))
        .unwrap();
        assert_eq!(pin.fleet_id, b"fleet.test");
        assert_eq!(PinnedFleet::parse_pin(&pin.render_pin()).unwrap(), pin);
    }

    #[test]
    fn refuses_what_the_rules_refuse_with_the_line() {
        let cases = [
            (format!("fleet_id = f\nauthorty = {AUTHORITY}\n"), 2, "unknown key"),
            (format!("fleet_id = f\nauthority = {}\n", &AUTHORITY[2..]), 2, "64 hexadecimal"),
            (format!("fleet_id = f\nauthority = {WEAK}\n"), 2, "small-order"),
            (format!("fleet_id = flëet\nauthority = {AUTHORITY}\n"), 1, "printable ASCII"),
            (format!("fleet_id = a b\nauthority = {AUTHORITY}\n"), 1, "printable ASCII"),
            (format!("fleet_id = f\nfleet_id = g\nauthority = {AUTHORITY}\n"), 2, "twice"),
            (format!("authority = {AUTHORITY}\n"), 0, "fleet_id is missing"),
            ("fleet_id = f\njust words\n".to_owned(), 2, "key = value"),
        ];
        for (text, line, why) in cases {
            let err = PinnedFleet::parse_pin(&text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.why.contains(why), "{text:?}: {err}");
        }
        assert!(PinnedFleet::from_fields("f", WEAK, None).is_err(), "the same rules for fields");
        assert!(PinnedFleet::from_fields("f", AUTHORITY, Some(WEAK)).is_err());
    }
}
