//! Fleet key bundles (spec section 4.3): the HPKE public keys of an HSM fleet, signed by the
//! fleet authority the client pins, and optionally countersigned by a transparency auditor.
//!
//! # Bundle body
//!
//! ```text
//! body = version    (u8, = 1)
//!     || u16(len(fleet_id)) || fleet_id         (1..=64 bytes)
//!     || epoch      (u64)
//!     || not_after  (u64, unix seconds; the bundle is valid while now <= not_after)
//!     || key_count  (u8, 1..=16)
//!     || key_count × ( key_id (u8) || hpke_public_key (32 bytes, X25519 pkRm) )
//! ```
//!
//! Integers are big-endian; key ids are pairwise distinct; nothing may follow the last key.
//!
//! # Signed bundle
//!
//! ```text
//! signed = u16(len(body)) || body
//!       || authority_sig   (64 bytes, Ed25519)
//!       || has_auditor     (u8, 0 or 1)
//!       || auditor_sig     (64 bytes, Ed25519; present if and only if has_auditor = 1)
//!
//! authority_sig = Ed25519-Sign(authority, "e2ee-backups/v1/fleet-bundle" || 0x00 || body)
//! auditor_sig   = Ed25519-Sign(auditor, "e2ee-backups/v1/fleet-bundle/audit" || 0x00
//!                                       || body || authority_sig)
//! ```
//!
//! # Client checks, in this order
//!
//! 1. The signed bundle parses (no trailing bytes, `has_auditor` is 0 or 1).
//! 2. `authority_sig` verifies under the pinned authority key with Ed25519 strict verification
//!    (canonical `S`, no small-order keys or `R`).
//! 3. If an auditor is pinned, `auditor_sig` is present and verifies under it the same way. If no
//!    auditor is pinned, an auditor signature is ignored.
//! 4. The body parses; its `fleet_id` is the pinned fleet id.
//! 5. `now <= not_after`.
//! 6. `epoch >= last_seen_epoch`, when the client has seen an epoch before. An equal epoch is
//!    accepted (the same bundle, fetched again); the client stores the highest epoch it accepted.

use core::fmt;
use core::marker::PhantomData;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::channel::FleetPublicKey;
use crate::ids::{Fleet, FleetId, MAX_ID_LEN};
use crate::wire::{Reader, WireError, Writer};

/// The bundle version this implementation speaks.
pub const BUNDLE_VERSION: u8 = 1;
/// The label that starts the message the fleet authority signs (followed by a zero byte).
pub const AUTHORITY_LABEL: &[u8] = b"e2ee-backups/v1/fleet-bundle";
/// The label that starts the message the auditor signs (followed by a zero byte).
pub const AUDITOR_LABEL: &[u8] = b"e2ee-backups/v1/fleet-bundle/audit";
/// The most keys a bundle holds (the fewest is 1).
pub const MAX_KEYS: usize = 16;
/// The longest encoded bundle body.
pub const MAX_BODY_LEN: usize = 1 + 2 + MAX_ID_LEN + 8 + 8 + 1 + MAX_KEYS * 33;

const SIGNATURE_LEN: usize = 64;

/// Why a fleet key bundle was rejected. No variant carries secret data.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FleetError {
    /// The bundle or signed bundle is not well formed (or, when encoding, a field is out of its
    /// bounds).
    #[error("fleet bundle is malformed: {0}")]
    Malformed(#[from] WireError),
    /// The bundle has a version this implementation does not speak.
    #[error("fleet bundle version {0} is not supported")]
    UnsupportedVersion(u8),
    /// Two keys of the bundle share a key id.
    #[error("fleet bundle lists key id {0} twice")]
    DuplicateKeyId(u8),
    /// The fleet authority's signature does not verify.
    #[error("fleet bundle is not signed by the pinned fleet authority")]
    BadAuthoritySignature,
    /// An auditor is pinned but the bundle carries no auditor signature.
    #[error("fleet bundle carries no auditor signature, and an auditor is pinned")]
    MissingAuditorSignature,
    /// The auditor's signature does not verify.
    #[error("fleet bundle is not countersigned by the pinned auditor")]
    BadAuditorSignature,
    /// The bundle is for another fleet.
    #[error("fleet bundle is for another fleet than the pinned one")]
    WrongFleet,
    /// The bundle has expired.
    #[error("fleet bundle expired at {not_after}; it is now {now}")]
    Expired {
        /// The bundle's expiry, in unix seconds.
        not_after: u64,
        /// The time of the check, in unix seconds.
        now: u64,
    },
    /// The bundle's epoch is older than one the client has already accepted.
    #[error("fleet bundle epoch {epoch} is older than epoch {last_seen}, already seen")]
    Rollback {
        /// The bundle's epoch.
        epoch: u64,
        /// The highest epoch the client had accepted.
        last_seen: u64,
    },
}

impl FleetError {
    /// The error's code in the spec's closed vocabulary (section 4.3).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::UnsupportedVersion(_) => "unsupported-version",
            Self::DuplicateKeyId(_) => "duplicate-key-id",
            Self::BadAuthoritySignature => "bad-authority-signature",
            Self::MissingAuditorSignature => "missing-auditor-signature",
            Self::BadAuditorSignature => "bad-auditor-signature",
            Self::WrongFleet => "wrong-fleet",
            Self::Expired { .. } => "expired",
            Self::Rollback { .. } => "rollback",
        }
    }
}

/// The content of a fleet key bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetBundle {
    /// The fleet these keys belong to (1 to 64 bytes).
    pub fleet_id: Vec<u8>,
    /// The bundle's epoch; it never decreases from one bundle to the next.
    pub epoch: u64,
    /// The last second (unix time) at which the bundle is valid.
    pub not_after: u64,
    /// The fleet's HPKE public keys by key id (1 to 16 keys, distinct ids).
    pub keys: Vec<(u8, FleetPublicKey)>,
}

impl FleetBundle {
    /// The encoded body. Fails if a field is out of its bounds or a key id repeats.
    pub fn encode(&self) -> Result<Vec<u8>, FleetError> {
        check_fleet_id(&self.fleet_id)?;
        check_key_count(self.keys.len())?;
        for (i, (id, _)) in self.keys.iter().enumerate() {
            if self.keys[..i].iter().any(|(earlier, _)| earlier == id) {
                return Err(FleetError::DuplicateKeyId(*id));
            }
        }
        let mut writer = Writer::new();
        writer
            .u8(BUNDLE_VERSION)
            .vec16(&self.fleet_id)
            .u64(self.epoch)
            .u64(self.not_after)
            .u8(self.keys.len() as u8);
        for (id, key) in &self.keys {
            writer.u8(*id).bytes(key.as_bytes());
        }
        Ok(writer.finish())
    }

    /// Decodes a body. Every length is checked before anything is allocated.
    pub fn decode(bytes: &[u8]) -> Result<Self, FleetError> {
        let mut reader = Reader::new(bytes);
        let version = reader.u8("version")?;
        if version != BUNDLE_VERSION {
            return Err(FleetError::UnsupportedVersion(version));
        }
        let fleet_id = reader.id::<Fleet>("fleet_id")?.as_bytes();
        let epoch = reader.u64("epoch")?;
        let not_after = reader.u64("not_after")?;
        let key_count = usize::from(reader.u8("key_count")?);
        check_key_count(key_count)?;
        let mut keys: Vec<(u8, FleetPublicKey)> = Vec::with_capacity(key_count);
        for _ in 0..key_count {
            let id = reader.u8("key_id")?;
            let key = FleetPublicKey(reader.array("hpke_public_key")?);
            if keys.iter().any(|(earlier, _)| *earlier == id) {
                return Err(FleetError::DuplicateKeyId(id));
            }
            keys.push((id, key));
        }
        reader.finish()?;
        Ok(Self { fleet_id: fleet_id.to_vec(), epoch, not_after, keys })
    }
}

fn check_fleet_id(fleet_id: &[u8]) -> Result<(), FleetError> {
    FleetId::new(fleet_id).map(drop).map_err(|e| WireError::of_id("fleet_id", e).into())
}

fn check_key_count(count: usize) -> Result<(), FleetError> {
    if count == 0 || count > MAX_KEYS {
        return Err(WireError::Invalid { field: "key_count", why: "must be 1 to 16" }.into());
    }
    Ok(())
}

/// A signed bundle split into its fields, before any check.
struct SignedParts<'a> {
    body: &'a [u8],
    authority_sig: [u8; SIGNATURE_LEN],
    auditor_sig: Option<[u8; SIGNATURE_LEN]>,
}

impl<'a> SignedParts<'a> {
    fn parse(bytes: &'a [u8]) -> Result<Self, FleetError> {
        let mut reader = Reader::new(bytes);
        let body = reader.vec16(MAX_BODY_LEN, "body")?;
        let authority_sig = reader.array("authority_sig")?;
        let auditor_sig = match reader.u8("has_auditor")? {
            0 => None,
            1 => Some(reader.array("auditor_sig")?),
            _ => {
                return Err(
                    WireError::Invalid { field: "has_auditor", why: "must be 0 or 1" }.into()
                );
            }
        };
        reader.finish()?;
        Ok(Self { body, authority_sig, auditor_sig })
    }

    fn encode(&self) -> Vec<u8> {
        let mut writer = Writer::new();
        writer.vec16(self.body).bytes(&self.authority_sig);
        match &self.auditor_sig {
            None => writer.u8(0),
            Some(sig) => writer.u8(1).bytes(sig),
        };
        writer.finish()
    }
}

/// The message the fleet authority signs.
fn authority_message(body: &[u8]) -> Vec<u8> {
    Writer::new().bytes(AUTHORITY_LABEL).u8(0).bytes(body).finish()
}

/// The message the auditor signs.
fn auditor_message(body: &[u8], authority_sig: &[u8; SIGNATURE_LEN]) -> Vec<u8> {
    Writer::new().bytes(AUDITOR_LABEL).u8(0).bytes(body).bytes(authority_sig).finish()
}

fn verify_authority(authority: &VerifyingKey, parts: &SignedParts<'_>) -> Result<(), FleetError> {
    authority
        .verify_strict(&authority_message(parts.body), &Signature::from_bytes(&parts.authority_sig))
        .map_err(|_| FleetError::BadAuthoritySignature)
}

/// An Ed25519 signing key in one of the two roles of section 4.3: the fleet authority, which
/// signs bundles, or a transparency auditor, which countersigns them. Zeroized on drop (the
/// `ed25519-dalek` key zeroizes itself); its `Debug` shows only the role and the public key.
pub struct SigningRole<R> {
    signing: SigningKey,
    role: PhantomData<R>,
}

/// The authority role.
#[derive(Debug)]
pub enum Authority {}
/// The auditor role.
#[derive(Debug)]
pub enum Audit {}

/// The fleet authority: signs the fleet's key bundles.
pub type FleetAuthority = SigningRole<Authority>;
/// A transparency auditor: countersigns bundles it has checked and published.
pub type Auditor = SigningRole<Audit>;

impl<R> SigningRole<R> {
    /// A fresh key whose seed is 32 bytes drawn from `rng`.
    pub fn generate<G: RngCore + CryptoRng>(rng: &mut G) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *seed);
        Self::from_bytes(&seed)
    }

    /// The key whose Ed25519 seed is `seed`.
    pub fn from_bytes(seed: &[u8; 32]) -> Self {
        Self { signing: SigningKey::from_bytes(seed), role: PhantomData }
    }

    /// The Ed25519 seed.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// The public key clients pin.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }
}

impl<R> fmt::Debug for SigningRole<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(std::any::type_name::<R>().rsplit("::").next().unwrap_or("SigningRole"))
            .field("verifying_key", &self.signing.verifying_key())
            .field("signing_key", &"<redacted>")
            .finish()
    }
}

impl FleetAuthority {
    /// Signs `bundle`: returns a signed bundle without an auditor signature.
    pub fn sign(&self, bundle: &FleetBundle) -> Result<Vec<u8>, FleetError> {
        let body = bundle.encode()?;
        let authority_sig = self.signing.sign(&authority_message(&body)).to_bytes();
        Ok(SignedParts { body: &body, authority_sig, auditor_sig: None }.encode())
    }
}

impl Auditor {
    /// Countersigns a signed bundle, after checking that it parses and that `authority` signed
    /// it. Any auditor signature already present is replaced.
    pub fn countersign(
        &self,
        authority: &VerifyingKey,
        signed: &[u8],
    ) -> Result<Vec<u8>, FleetError> {
        let mut parts = SignedParts::parse(signed)?;
        verify_authority(authority, &parts)?;
        FleetBundle::decode(parts.body)?;
        let auditor_sig =
            self.signing.sign(&auditor_message(parts.body, &parts.authority_sig)).to_bytes();
        parts.auditor_sig = Some(auditor_sig);
        Ok(parts.encode())
    }
}

/// What a client pins about the fleet it talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinnedFleet {
    /// The fleet's id.
    pub fleet_id: Vec<u8>,
    /// The fleet authority's public key.
    pub authority: VerifyingKey,
    /// The auditor's public key; when set, bundles without its countersignature are rejected.
    pub auditor: Option<VerifyingKey>,
}

impl PinnedFleet {
    /// Verifies a signed bundle at time `now_unix` (unix seconds), given the highest epoch the
    /// client has accepted before, if any. Returns the bundle; the caller then stores its epoch.
    pub fn verify(
        &self,
        signed: &[u8],
        now_unix: u64,
        last_seen_epoch: Option<u64>,
    ) -> Result<FleetBundle, FleetError> {
        let parts = SignedParts::parse(signed)?;
        verify_authority(&self.authority, &parts)?;
        if let Some(auditor) = &self.auditor {
            let sig = parts.auditor_sig.ok_or(FleetError::MissingAuditorSignature)?;
            auditor
                .verify_strict(
                    &auditor_message(parts.body, &parts.authority_sig),
                    &Signature::from_bytes(&sig),
                )
                .map_err(|_| FleetError::BadAuditorSignature)?;
        }
        let bundle = FleetBundle::decode(parts.body)?;
        if bundle.fleet_id != self.fleet_id {
            return Err(FleetError::WrongFleet);
        }
        if now_unix > bundle.not_after {
            return Err(FleetError::Expired { not_after: bundle.not_after, now: now_unix });
        }
        if let Some(last_seen) = last_seen_epoch
            && bundle.epoch < last_seen
        {
            return Err(FleetError::Rollback { epoch: bundle.epoch, last_seen });
        }
        Ok(bundle)
    }
}
