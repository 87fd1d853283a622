//! What the vault stores per account (spec section 4.8).
//!
//! A record is all the per-account state there is: the HSM itself keeps nothing between requests
//! but its keys. Login sessions travel as sealed tickets (see [`crate::ticket`]); the record only
//! remembers which attempts are outstanding, so that a ticket is good for one KE3.
//!
//! ```text
//! record   = version (0x02) || state u8 || budget u8 || remaining u8 || record_version u32
//!            || ksf_profile u8 || registration vec16 || sealed_key vec16 || oprf_ticket vec16
//!            || charges u64
//!            || pending_count u8 || pending_count × (attempt_id [16] || serial u64 || not_after u64)
//!            || has_token u8 || [token [16] || token_not_after u64]
//! state    = 1 registered | 2 phantom (an unknown account that was asked for) | 3 locked
//! ```
//! A registered record has a 192-byte registration (RFC 9807 `RegistrationRecord`), a 61-byte
//! sealed K and the 100-byte registration ticket that carries its own OPRF seed (spec 4.9.2);
//! phantom and locked records have all three empty. `charges` counts every attempt
//! ever charged; each pending attempt carries the value it had when charged (its serial), so a
//! ticket names one charge and a KE1 replayed after its attempt was answered is a new charge
//! whose serial no old ticket carries.

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::wire::{Reader, WireError, Writer};

/// Length of an attempt identifier.
pub const ATTEMPT_ID_LEN: usize = 16;
/// Length of an authorisation token.
pub const TOKEN_LEN: usize = 16;
/// Length of RFC 9807's `RegistrationRecord` in our suite.
pub const REGISTRATION_LEN: usize = 192;
const RECORD_VERSION_BYTE: u8 = 2;

/// Where an account stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountState {
    /// Registered: the record holds an OPAQUE registration and a sealed K.
    Registered,
    /// Never registered, but asked for: answered with fake KE2s and counted like a real account,
    /// so that nobody can tell it from one.
    Phantom,
    /// The budget ran out: the sealed K is erased and the account accepts nothing more.
    Locked,
}

impl AccountState {
    fn code(self) -> u8 {
        match self {
            Self::Registered => 1,
            Self::Phantom => 2,
            Self::Locked => 3,
        }
    }
}

/// A single-use authorisation, issued after a valid KE3, for one follow-up request of the same
/// session (re-registration with a refilled budget, or delete).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Token {
    pub(crate) value: [u8; TOKEN_LEN],
    pub(crate) not_after: u64,
}

impl Token {
    /// Whether `candidate` is this token and it has not expired at `now`. Constant time in the
    /// token bytes.
    pub fn admits(&self, candidate: &[u8; TOKEN_LEN], now: u64) -> bool {
        bool::from(self.value.ct_eq(candidate)) && now <= self.not_after
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token").field("not_after", &self.not_after).finish_non_exhaustive()
    }
}

/// One charged attempt, waiting for its KE3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// Identifies the KE1 (see [`crate::ticket::attempt_id`]).
    pub id: [u8; ATTEMPT_ID_LEN],
    /// The account's charge count when this attempt was charged.
    pub serial: u64,
    /// Last second (Unix time) at which its KE3 is accepted; after it the attempt is spent.
    pub not_after: u64,
}

/// The stored state of one account.
#[derive(Clone, PartialEq, Eq)]
pub struct AccountRecord {
    /// Where the account stands.
    pub state: AccountState,
    /// The account's guess budget: what a valid KE3 restores.
    pub budget: u8,
    /// Attempts left before the account locks.
    pub remaining: u8,
    /// Counts registrations of this account; bound into the sealed K.
    pub record_version: u32,
    /// Code of the stretching profile the registration used.
    pub ksf_profile: u8,
    /// RFC 9807 `RegistrationRecord` (registered accounts only).
    pub registration: Vec<u8>,
    /// The sealed K (registered accounts only).
    pub sealed_key: Vec<u8>,
    /// The registration ticket whose OPRF seed this registration was made with (registered
    /// accounts only; spec 4.9.2): logins evaluate the OPRF under the key it carries.
    pub oprf_ticket: Vec<u8>,
    /// Attempts charged so far, ever: the serial of the next charge.
    pub charges: u64,
    /// Attempts charged and not yet answered by a KE3, oldest first.
    pub pending: Vec<Attempt>,
    /// The single-use authorisation of the last successful login, if unused.
    pub token: Option<Token>,
}

impl PartialEq for Token {
    fn eq(&self, other: &Self) -> bool {
        bool::from(self.value.ct_eq(&other.value)) && self.not_after == other.not_after
    }
}
impl Eq for Token {}

impl std::fmt::Debug for AccountRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountRecord")
            .field("state", &self.state)
            .field("budget", &self.budget)
            .field("remaining", &self.remaining)
            .field("record_version", &self.record_version)
            .field("ksf_profile", &self.ksf_profile)
            .field("pending", &self.pending.len())
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl AccountRecord {
    /// Whether an attempt charged to this record can still be answered at `now`.
    pub fn has_live_attempts(&self, now: u64) -> bool {
        self.pending.iter().any(|a| now <= a.not_after)
    }

    /// The record of an account nobody registered, created when someone asks for it, at
    /// `record_version` (the account's unseen version, spec 4.10.2, or a tombstone's).
    pub fn phantom(budget: u8, ksf_profile: u8, record_version: u32) -> Self {
        Self {
            state: AccountState::Phantom,
            budget,
            remaining: budget,
            record_version,
            ksf_profile,
            registration: Vec::new(),
            sealed_key: Vec::new(),
            oprf_ticket: Vec::new(),
            charges: 0,
            pending: Vec::new(),
            token: None,
        }
    }

    /// Locks the account for good: erases what it protects.
    pub fn lock(&mut self) {
        self.state = AccountState::Locked;
        self.remaining = 0;
        self.registration.zeroize();
        self.registration.clear();
        self.sealed_key.zeroize();
        self.sealed_key.clear();
        self.oprf_ticket.zeroize();
        self.oprf_ticket.clear();
        self.pending.clear();
        self.token = None;
    }

    /// What a deleted registration leaves (spec 4.10.2, Delete): a phantom with the policy's
    /// budget and profile that keeps `record_version` and `charges`, a tombstone, so that the
    /// next registration gets a higher version and a replayed old `RegisterFinish` is stale.
    pub fn tombstone(&self, budget: u8, ksf_profile: u8) -> Self {
        let mut tombstone = Self::phantom(budget, ksf_profile, self.record_version);
        tombstone.charges = self.charges;
        tombstone
    }

    /// The stored bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(RECORD_VERSION_BYTE)
            .u8(self.state.code())
            .u8(self.budget)
            .u8(self.remaining)
            .u32(self.record_version)
            .u8(self.ksf_profile)
            .vec16(&self.registration)
            .vec16(&self.sealed_key)
            .vec16(&self.oprf_ticket)
            .u64(self.charges)
            .u8(u8::try_from(self.pending.len()).expect("at most 255 pending attempts"));
        for attempt in &self.pending {
            w.bytes(&attempt.id).u64(attempt.serial).u64(attempt.not_after);
        }
        match &self.token {
            None => w.u8(0),
            Some(t) => w.u8(1).bytes(&t.value).u64(t.not_after),
        };
        w.finish()
    }

    /// Reads stored bytes back.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        if r.u8("record.version")? != RECORD_VERSION_BYTE {
            return Err(WireError::Invalid { field: "record.version", why: "not 2" });
        }
        let state = match r.u8("record.state")? {
            1 => AccountState::Registered,
            2 => AccountState::Phantom,
            3 => AccountState::Locked,
            _ => return Err(WireError::Invalid { field: "record.state", why: "not 1, 2 or 3" }),
        };
        let budget = r.u8("record.budget")?;
        let remaining = r.u8("record.remaining")?;
        if budget == 0 || remaining > budget {
            return Err(WireError::Invalid {
                field: "record.remaining",
                why: "budget is 0 or remaining exceeds it",
            });
        }
        let record_version = r.u32("record.record_version")?;
        let ksf_profile = r.u8("record.ksf_profile")?;
        if crate::suite::KsfProfile::from_code(ksf_profile).is_none() {
            return Err(WireError::Invalid { field: "record.ksf_profile", why: "unknown profile" });
        }
        let registration = r.vec16(REGISTRATION_LEN, "record.registration")?.to_vec();
        let sealed_key = r.vec16(crate::wrap::SEALED_KEY_LEN, "record.sealed_key")?.to_vec();
        let oprf_ticket =
            r.vec16(crate::ticket::REGISTRATION_TICKET_LEN, "record.oprf_ticket")?.to_vec();
        let want = if state == AccountState::Registered {
            (REGISTRATION_LEN, crate::wrap::SEALED_KEY_LEN, crate::ticket::REGISTRATION_TICKET_LEN)
        } else {
            (0, 0, 0)
        };
        if (registration.len(), sealed_key.len(), oprf_ticket.len()) != want {
            return Err(WireError::Invalid {
                field: "record.registration",
                why: "present exactly when the account is registered",
            });
        }
        let charges = r.u64("record.charges")?;
        let count = r.u8("record.pending_count")?;
        if count > budget {
            return Err(WireError::Invalid {
                field: "record.pending_count",
                why: "more pending attempts than the budget",
            });
        }
        let mut pending = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let attempt = Attempt {
                id: r.array("record.pending.attempt_id")?,
                serial: r.u64("record.pending.serial")?,
                not_after: r.u64("record.pending.not_after")?,
            };
            if attempt.serial >= charges || pending.iter().any(|a: &Attempt| a.id == attempt.id) {
                return Err(WireError::Invalid {
                    field: "record.pending",
                    why: "a serial not below charges, or an attempt twice",
                });
            }
            pending.push(attempt);
        }
        let token = match r.u8("record.has_token")? {
            0 => None,
            1 => Some(Token { value: r.array("record.token")?, not_after: r.u64("record.token")? }),
            _ => return Err(WireError::Invalid { field: "record.has_token", why: "not 0 or 1" }),
        };
        r.finish()?;
        if state == AccountState::Locked
            && (!pending.is_empty() || token.is_some() || remaining != 0)
        {
            return Err(WireError::Invalid {
                field: "record.state",
                why: "a locked record has attempts, pending attempts or a token",
            });
        }
        Ok(Self {
            state,
            budget,
            remaining,
            record_version,
            ksf_profile,
            registration,
            sealed_key,
            oprf_ticket,
            charges,
            pending,
            token,
        })
    }
}

impl Drop for AccountRecord {
    fn drop(&mut self) {
        self.registration.zeroize();
        self.sealed_key.zeroize();
        self.oprf_ticket.zeroize();
    }
}
