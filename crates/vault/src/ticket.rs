//! Session tickets (spec chapter 4, "Session tickets").
//!
//! Between KE2 and KE3 the HSM must remember its half of the key exchange. It keeps nothing:
//! it seals that state into a ticket that the client carries back with KE3. Only the fleet can
//! open a ticket, a ticket names its account and fleet, and the attempt it belongs to must still
//! be outstanding in the account record, so each ticket serves one KE3.
//!
//! ```text
//! ticket    = nonce [12] || AES-256-GCM(ticket_key, nonce, body, aad)
//! body      = attempt_id [16] || serial u64 || not_after u64 || ke2_state (rest, at most 256 bytes)
//! aad       = "e2ee-backups/v1/vault/ticket" || 0x00 || vec16(fleet_id) || vec16(account)
//! ```

use aes_gcm_10::aead::{Aead, KeyInit, Payload};
use aes_gcm_10::{Aes256Gcm, Nonce};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use crate::record::ATTEMPT_ID_LEN;
use crate::wire::{Reader, Writer};

/// The label that starts a ticket's associated data.
pub const TICKET_LABEL: &str = "e2ee-backups/v1/vault/ticket";
/// Longest key-exchange state a ticket carries.
const MAX_STATE_LEN: usize = 256;

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
    let mut nonce = [0u8; 12];
    rng.fill_bytes(&mut nonce);
    let plain = Zeroizing::new(
        Writer::new()
            .bytes(&body.attempt_id)
            .u64(body.serial)
            .u64(body.not_after)
            .bytes(&body.state)
            .finish(),
    );
    let aad = aad(fleet_id, account);
    let ct = Aes256Gcm::new_from_slice(key)
        .expect("32-byte key")
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: &plain, aad: &aad })
        .expect("AES-GCM seals short messages");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ct);
    out
}

/// Opens a ticket; `None` if it is not one this fleet sealed for this account.
pub fn open(key: &[u8; 32], fleet_id: &[u8], account: &[u8], ticket: &[u8]) -> Option<TicketBody> {
    if ticket.len() < 12 + 16 + ATTEMPT_ID_LEN + 16 {
        return None;
    }
    let (nonce, ct) = ticket.split_at(12);
    let aad = aad(fleet_id, account);
    let plain = Zeroizing::new(
        Aes256Gcm::new_from_slice(key)
            .expect("32-byte key")
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .ok()?,
    );
    let mut r = Reader::new(&plain);
    let attempt_id = r.array("ticket.attempt_id").ok()?;
    let serial = r.u64("ticket.serial").ok()?;
    let not_after = r.u64("ticket.not_after").ok()?;
    let state = r.rest();
    if state.len() > MAX_STATE_LEN {
        return None;
    }
    Some(TicketBody { attempt_id, serial, not_after, state: Zeroizing::new(state.to_vec()) })
}
