//! Optional account authentication on the HTTP binding (spec section 4.15.1): the relay role,
//! made checkable.
//!
//! In a real deployment the messaging front end authenticates the phone over its own session
//! and relays vault traffic for that account only, so that a stranger cannot spend (and lock)
//! somebody else's budget. A vault configured with the relay's Ed25519 public key
//! (`[relay] public_key` in `config.toml`) serves `POST /v1/vault/{account}` only with an
//! **account token**, a short-lived signature by the relay over the fleet and the account,
//! checked before any vault work; and, with `[relay] requests_per_minute`, at most that many
//! requests per account and minute.
//!
//! ```
//! use e2ee_backup_vault_server::relay::{RelayKey, RelayVerifier};
//!
//! let relay = RelayKey::from_bytes(&[7; 32]);
//! let verifier = RelayVerifier::new(relay.verifying_key(), b"fleet.example");
//! let token = relay.token(b"fleet.example", b"alice", 1_800_000_600);
//! assert!(verifier.check(b"alice", Some(&token), 1_800_000_000).is_ok());
//! assert!(verifier.check(b"bob", Some(&token), 1_800_000_000).is_err());
//! ```

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};

use e2ee_backup_vault::internal::wire::Writer;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// The label that starts the signed message of an account token.
pub const TOKEN_LABEL: &str = "e2ee-backups/v1/vault/relay-token";
/// The request header that carries the token, in lowercase hexadecimal.
pub const HEADER: &str = "e2ee-account-token";
/// Length of a token: `not_after u64 || signature [64]`.
pub const TOKEN_LEN: usize = 8 + 64;
/// The longest validity a vault accepts: a token whose `not_after` is further than this beyond
/// the vault's clock is refused (a relay mints tokens per request or per session).
pub const MAX_LIFETIME_SECS: u64 = 3600;

/// Why an account token was refused; every case is answered `401 unauthenticated`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// No token header.
    #[error("no account token")]
    Missing,
    /// Not 144 lowercase hexadecimal digits.
    #[error("the account token is malformed")]
    Malformed,
    /// The signature does not verify for this fleet and account.
    #[error("the account token is not the relay's for this account")]
    BadSignature,
    /// `not_after` has passed.
    #[error("the account token expired")]
    Expired,
    /// `not_after` is more than [`MAX_LIFETIME_SECS`] ahead.
    #[error("the account token lives too long")]
    TooLongLived,
}

/// The signed message: `"e2ee-backups/v1/vault/relay-token" || 0x00 || vec16(fleet_id) ||
/// vec16(account_id) || u64(not_after)`.
fn message(fleet_id: &[u8], account: &[u8], not_after: u64) -> Vec<u8> {
    Writer::new()
        .bytes(TOKEN_LABEL.as_bytes())
        .u8(0)
        .vec16(fleet_id)
        .vec16(account)
        .u64(not_after)
        .finish()
}

/// The relay's signing key (held by the messaging front end; here for tests and tools).
pub struct RelayKey(SigningKey);

impl std::fmt::Debug for RelayKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RelayKey").field(&hex::encode(self.0.verifying_key().as_bytes())).finish()
    }
}

impl RelayKey {
    /// The key of a 32-byte Ed25519 seed.
    pub fn from_bytes(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The public key the vault is configured with.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.0.verifying_key()
    }

    /// The token for `account` of fleet `fleet_id`, valid until Unix time `not_after`, as the
    /// header value (lowercase hexadecimal).
    pub fn token(&self, fleet_id: &[u8], account: &[u8], not_after: u64) -> String {
        let signature = self.0.sign(&message(fleet_id, account, not_after));
        let mut bytes = Vec::with_capacity(TOKEN_LEN);
        bytes.extend_from_slice(&not_after.to_be_bytes());
        bytes.extend_from_slice(&signature.to_bytes());
        hex::encode(bytes)
    }
}

/// What the vault checks a token with.
#[derive(Debug, Clone)]
pub struct RelayVerifier {
    key: VerifyingKey,
    fleet_id: Vec<u8>,
}

impl RelayVerifier {
    /// A verifier for the relay key `key` and this vault's fleet.
    pub fn new(key: VerifyingKey, fleet_id: &[u8]) -> Self {
        Self { key, fleet_id: fleet_id.to_vec() }
    }

    /// Checks the header value `token` for `account` at Unix time `now` (spec 4.15.1).
    pub fn check(&self, account: &[u8], token: Option<&str>, now: u64) -> Result<(), RelayError> {
        let token = token.ok_or(RelayError::Missing)?;
        let well_formed = token.len() == 2 * TOKEN_LEN
            && token.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let bytes = well_formed.then(|| hex::decode(token).ok()).flatten();
        let bytes = bytes.ok_or(RelayError::Malformed)?;
        let (not_after, signature) = bytes.split_at(8);
        let not_after = u64::from_be_bytes(not_after.try_into().expect("eight bytes"));
        let signature = Signature::from_slice(signature).map_err(|_| RelayError::Malformed)?;
        self.key
            .verify_strict(&message(&self.fleet_id, account, not_after), &signature)
            .map_err(|_| RelayError::BadSignature)?;
        if now > not_after {
            return Err(RelayError::Expired);
        }
        if not_after - now > MAX_LIFETIME_SECS {
            return Err(RelayError::TooLongLived);
        }
        Ok(())
    }
}

/// At most `n` requests per account and minute (a burst of `n`, then one every `60/n` s).
pub struct AccountRate {
    limiter: DefaultKeyedRateLimiter<Vec<u8>>,
    /// Requests since the last sweep of accounts whose allowance is full again.
    since_sweep: AtomicU32,
}

/// Requests between two sweeps of the per-account table.
const SWEEP_EVERY: u32 = 1024;

impl std::fmt::Debug for AccountRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountRate").field("accounts", &self.limiter.len()).finish()
    }
}

impl AccountRate {
    /// The limit of `per_minute` requests per account and minute.
    pub fn new(per_minute: NonZeroU32) -> Self {
        Self {
            limiter: RateLimiter::keyed(Quota::per_minute(per_minute)),
            since_sweep: AtomicU32::new(0),
        }
    }

    /// Whether one more request for `account` is allowed now. Every `SWEEP_EVERY` requests
    /// it forgets the accounts whose allowance is full again, so that the table holds at most
    /// the accounts seen in the last minute and the requests since the sweep.
    pub fn allow(&self, account: &[u8]) -> bool {
        let allowed = self.limiter.check_key(&account.to_vec()).is_ok();
        if self.since_sweep.fetch_add(1, Ordering::Relaxed) + 1 >= SWEEP_EVERY {
            self.since_sweep.store(0, Ordering::Relaxed);
            self.limiter.retain_recent();
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLEET: &[u8] = b"fleet.test";
    const NOW: u64 = 1_800_000_000;

    #[test]
    fn a_token_admits_its_account_within_its_time_only() {
        let relay = RelayKey::from_bytes(&[1; 32]);
        let v = RelayVerifier::new(relay.verifying_key(), FLEET);
        let token = relay.token(FLEET, b"alice", NOW + 60);
        assert_eq!(v.check(b"alice", Some(&token), NOW), Ok(()));
        assert_eq!(v.check(b"alice", Some(&token), NOW + 60), Ok(()));
        assert_eq!(v.check(b"alice", Some(&token), NOW + 61), Err(RelayError::Expired));
        assert_eq!(v.check(b"alicf", Some(&token), NOW), Err(RelayError::BadSignature));
        assert_eq!(v.check(b"alice", None, NOW), Err(RelayError::Missing));
        let other_fleet = relay.token(b"fleet.other", b"alice", NOW + 60);
        assert_eq!(v.check(b"alice", Some(&other_fleet), NOW), Err(RelayError::BadSignature));
        let stranger = RelayKey::from_bytes(&[2; 32]).token(FLEET, b"alice", NOW + 60);
        assert_eq!(v.check(b"alice", Some(&stranger), NOW), Err(RelayError::BadSignature));
        let long = relay.token(FLEET, b"alice", NOW + MAX_LIFETIME_SECS + 1);
        assert_eq!(v.check(b"alice", Some(&long), NOW), Err(RelayError::TooLongLived));
        for bad in ["", "00", &token.to_uppercase(), &token[..143], &format!("{token}0")] {
            assert_eq!(v.check(b"alice", Some(bad), NOW), Err(RelayError::Malformed), "{bad}");
        }
        // A changed `not_after` breaks the signature.
        let mut later = hex::decode(&token).unwrap();
        later[7] ^= 1;
        assert_eq!(
            v.check(b"alice", Some(&hex::encode(later)), NOW),
            Err(RelayError::BadSignature)
        );
    }

    #[test]
    fn the_rate_is_per_account() {
        let rate = AccountRate::new(NonZeroU32::new(3).unwrap());
        assert!((0..3).all(|_| rate.allow(b"alice")));
        assert!(!rate.allow(b"alice"));
        assert!(rate.allow(b"bob"));
    }
}
