//! Login and registration tickets (spec sections 4.9.1 and 4.9.2).
//!
//! Between KE2 and KE3 the HSM must remember its half of the key exchange. It keeps nothing:
//! it seals that state into a login ticket that the client carries back with KE3. Only the fleet
//! can open a ticket, a ticket names its account and fleet, and the attempt it belongs to must
//! still be outstanding in the account record, so each ticket serves one KE3.
//!
//! Between RegisterStart and RegisterFinish the HSM must remember the fresh OPRF seed it
//! evaluated the registration request under. It seals the seed into a registration ticket bound
//! to fleet, account and the record version the registration will get, valid for a session
//! lifetime; the registration stores the ticket, and every login of that registration evaluates
//! the OPRF under the seed it carries. A RegisterStart that is never finished evaluated a key that
//! no login will ever use (spec 4.10.4).
//!
//! ```text
//! login_ticket_key        = HKDF-SHA256(salt = none, ikm = ticket_key, info = "e2ee-backups/v1/vault/login-ticket-key", 32)
//! registration_ticket_key = HKDF-SHA256(salt = none, ikm = ticket_key, info = "e2ee-backups/v1/vault/registration-ticket-key", 32)
//!
//! ticket      = nonce [12] || AES-256-GCM-Seal(login_ticket_key, nonce, aad, body)
//! body        = attempt_id [16] || serial u64 || not_after u64 || ke2_state (rest, at most 256 bytes)
//! aad         = "e2ee-backups/v1/vault/ticket" || 0x00 || vec16(fleet_id) || vec16(account)
//!
//! reg_ticket  = nonce [12] || AES-256-GCM-Seal(registration_ticket_key, nonce, reg_aad, not_after u64 || oprf_seed [64])   (100 bytes)
//! reg_aad     = "e2ee-backups/v1/vault/registration-ticket" || 0x00 || vec16(fleet_id)
//!               || vec16(account) || u32(record_version)
//! ```

use rand_core::{CryptoRng, RngCore};
use sha2_10::{Digest as _, Sha256};
use zeroize::Zeroizing;

use crate::aead::{self, NONCE_LEN, TAG_LEN};
use crate::record::ATTEMPT_ID_LEN;
use crate::wire::{Reader, Writer};

/// The label that starts a ticket's associated data.
pub const TICKET_LABEL: &str = "e2ee-backups/v1/vault/ticket";
/// The label that starts a registration ticket's associated data.
pub const REGISTRATION_TICKET_LABEL: &str = "e2ee-backups/v1/vault/registration-ticket";
/// The HKDF label of the key that seals login tickets.
pub const LOGIN_TICKET_KEY_LABEL: &str = "e2ee-backups/v1/vault/login-ticket-key";
/// The HKDF label of the key that seals registration tickets.
pub const REGISTRATION_TICKET_KEY_LABEL: &str = "e2ee-backups/v1/vault/registration-ticket-key";
/// The HKDF label of an account's unseen record version (spec 4.10.2).
pub const UNSEEN_VERSION_LABEL: &str = "e2ee-backups/v1/vault/unseen-version";
/// Length of a registration's OPRF seed.
pub const OPRF_SEED_LEN: usize = 64;
/// Length of a registration ticket: nonce, `not_after`, OPRF seed, tag.
pub const REGISTRATION_TICKET_LEN: usize = NONCE_LEN + 8 + OPRF_SEED_LEN + TAG_LEN;
/// Length of the key-exchange state a login ticket carries (spec 4.9.1): `session_key [64] ||
/// expected_client_mac [64]`, RFC 9807's server state with SHA-512.
pub const KE2_STATE_LEN: usize = 128;

/// What a ticket holds.
pub struct TicketBody {
    /// The attempt the ticket belongs to.
    pub attempt_id: [u8; ATTEMPT_ID_LEN],
    /// The serial of the charge it belongs to.
    pub serial: u64,
    /// Last second (Unix time) at which the ticket is accepted.
    pub not_after: u64,
    /// opaque-ke's serialised `ServerLogin`.
    pub state: Zeroizing<Vec<u8>>,
}

fn aad(fleet_id: &[u8], account: &[u8]) -> Vec<u8> {
    Writer::new().bytes(TICKET_LABEL.as_bytes()).u8(0).vec16(fleet_id).vec16(account).finish()
}

/// Seals a ticket.
pub fn seal<R: RngCore + CryptoRng>(
    rng: &mut R,
    key: &[u8; 32],
    fleet_id: &[u8],
    account: &[u8],
    body: &TicketBody,
) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let plain = Zeroizing::new(
        Writer::new()
            .bytes(&body.attempt_id)
            .u64(body.serial)
            .u64(body.not_after)
            .bytes(&body.state)
            .finish(),
    );
    let mut out = Vec::new();
    aead::seal_into(&mut out, key, &nonce, &aad(fleet_id, account), &plain);
    out
}

/// Opens a ticket; `None` if it is not one this fleet sealed for this account.
pub fn open(key: &[u8; 32], fleet_id: &[u8], account: &[u8], ticket: &[u8]) -> Option<TicketBody> {
    // Anything shorter than a nonce and a tag does not open (aead::open refuses it).
    let plain = aead::open(key, &aad(fleet_id, account), ticket)?;
    let mut r = Reader::new(&plain);
    let attempt_id = r.array("ticket.attempt_id").ok()?;
    let serial = r.u64("ticket.serial").ok()?;
    let not_after = r.u64("ticket.not_after").ok()?;
    let state = r.rest();
    if state.len() != KE2_STATE_LEN {
        return None;
    }
    Some(TicketBody { attempt_id, serial, not_after, state: Zeroizing::new(state.to_vec()) })
}

/// `HKDF-SHA256(salt = none, ikm = ticket_key, info = label)`, 32 bytes: the fleet's ticket key
/// is never used as an AES key itself; each use has its own subkey.
pub fn subkey(ticket_key: &[u8; 32], label: &str) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    hkdf_12::Hkdf::<sha2_10::Sha256>::new(None, ticket_key)
        .expand(label.as_bytes(), out.as_mut())
        .expect("32 bytes is a valid HKDF length");
    out
}

/// What a registration ticket holds.
pub struct RegistrationTicketBody {
    /// Last second (Unix time) at which a `RegisterFinish` may present the ticket.
    pub not_after: u64,
    /// The OPRF seed the registration request was evaluated under.
    pub oprf_seed: Zeroizing<[u8; OPRF_SEED_LEN]>,
}

fn registration_aad(fleet_id: &[u8], account: &[u8], record_version: u32) -> Vec<u8> {
    Writer::new()
        .bytes(REGISTRATION_TICKET_LABEL.as_bytes())
        .u8(0)
        .vec16(fleet_id)
        .vec16(account)
        .u32(record_version)
        .finish()
}

/// Seals a registration ticket for `record_version` of `account` (spec 4.9.2).
pub fn seal_registration<R: RngCore + CryptoRng>(
    rng: &mut R,
    key: &[u8; 32],
    fleet_id: &[u8],
    account: &[u8],
    record_version: u32,
    body: &RegistrationTicketBody,
) -> [u8; REGISTRATION_TICKET_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    rng.fill_bytes(&mut nonce);
    let plain =
        Zeroizing::new(Writer::new().u64(body.not_after).bytes(body.oprf_seed.as_ref()).finish());
    let mut out = Vec::with_capacity(REGISTRATION_TICKET_LEN);
    let aad = registration_aad(fleet_id, account, record_version);
    aead::seal_into(&mut out, key, &nonce, &aad, &plain);
    out.try_into().expect("a registration ticket has a fixed length")
}

/// Opens a registration ticket; `None` if it is not one this fleet sealed for this account and
/// record version. Expiry is the caller's to check: a stored registration keeps using its seed.
pub fn open_registration(
    key: &[u8; 32],
    fleet_id: &[u8],
    account: &[u8],
    record_version: u32,
    ticket: &[u8],
) -> Option<RegistrationTicketBody> {
    if ticket.len() != REGISTRATION_TICKET_LEN {
        return None;
    }
    let aad = registration_aad(fleet_id, account, record_version);
    let plain = aead::open(key, &aad, ticket)?;
    let mut r = Reader::new(&plain);
    let not_after = r.u64("registration_ticket.not_after").ok()?;
    let oprf_seed = Zeroizing::new(r.array("registration_ticket.oprf_seed").ok()?);
    r.finish().ok()?;
    Some(RegistrationTicketBody { not_after, oprf_seed })
}

/// Label of the attempt identifier hash.
pub const ATTEMPT_LABEL: &str = "e2ee-backups/v1/vault/attempt";

/// The identifier of a login attempt: the first 16 bytes of
/// `SHA-256("e2ee-backups/v1/vault/attempt" || 0x00 || vec16(account) || KE1)`.
pub fn attempt_id(account: &[u8], ke1: &[u8]) -> [u8; ATTEMPT_ID_LEN] {
    let mut h = Sha256::new();
    h.update(Writer::new().bytes(ATTEMPT_LABEL.as_bytes()).u8(0).vec16(account).finish());
    h.update(ke1);
    let mut out = [0u8; ATTEMPT_ID_LEN];
    out.copy_from_slice(&h.finalize()[..ATTEMPT_ID_LEN]);
    out
}
