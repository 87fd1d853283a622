//! The requests a client sends inside the sealed channel and the answers it gets (spec section
//! 4.7). Every field has a fixed length or a bounded `u16` length.
//!
//! ```text
//! request  = kind u8 || body
//!   0x01 RegisterStart   registration_request [32] || token_opt
//!   0x02 RegisterFinish  record_version u32 || ksf_profile u8 || registration_upload [192]
//!                        || sealed_key [61] || registration_ticket [100] || token_opt
//!   0x03 LoginStart      ke1 [96]
//!   0x04 LoginFinish     ticket vec16 (≤ 512) || ke3 [64]
//!   0x05 Delete          token [16]
//! token_opt = 0x00 | 0x01 || token [16]
//!
//! response = kind u8 || body
//!   0x81 RegisterChallenge  registration_response [64] || record_version u32 || ksf_profile u8
//!                           || registration_ticket [100]
//!   0x82 Registered         budget u8
//!   0x83 LoginChallenge     ke2 [320] || ticket vec16 (≤ 512) || remaining u8 || ksf_profile u8
//!   0x84 LoginSucceeded     sealed_key [61] || record_version u32 || token [16] || remaining u8
//!   0x85 Deleted
//!   0xF0 Refused            reason u8 || remaining u8
//! ```

use crate::record::{REGISTRATION_LEN, TOKEN_LEN};
use crate::ticket::REGISTRATION_TICKET_LEN;
use crate::wire::{Reader, WireError, Writer};
use crate::wrap::SEALED_KEY_LEN;

/// RFC 9807 message lengths in our suite.
pub mod len {
    /// `RegistrationRequest`: the blinded element.
    pub const REGISTRATION_REQUEST: usize = 32;
    /// `RegistrationResponse`: evaluated element and server public key.
    pub const REGISTRATION_RESPONSE: usize = 64;
    /// `KE1`: blinded element, client nonce, client key share.
    pub const KE1: usize = 96;
    /// `KE2`: evaluated element, masking nonce, masked response, server nonce, key share, MAC.
    pub const KE2: usize = 320;
    /// `KE3`: the client MAC.
    pub const KE3: usize = 64;
}

/// Longest session ticket accepted.
pub const MAX_TICKET_LEN: usize = 512;

/// A client request.
#[derive(Clone, PartialEq, Eq)]
pub enum Request {
    /// First registration message.
    RegisterStart {
        /// RFC 9807 `RegistrationRequest`.
        registration_request: [u8; len::REGISTRATION_REQUEST],
        /// Authorisation from a successful login: required when the account is registered.
        token: Option<[u8; TOKEN_LEN]>,
    },
    /// Second registration message: the OPAQUE record and the sealed K.
    RegisterFinish {
        /// The record version the vault announced, bound into the sealed K.
        record_version: u32,
        /// The stretching profile the client used.
        ksf_profile: u8,
        /// RFC 9807 `RegistrationRecord`.
        registration_upload: Box<[u8; REGISTRATION_LEN]>,
        /// K sealed under the wrapping key.
        sealed_key: [u8; SEALED_KEY_LEN],
        /// The registration ticket of the `RegisterChallenge` this registration answers.
        registration_ticket: Box<[u8; REGISTRATION_TICKET_LEN]>,
        /// Authorisation from a successful login: required when the account is registered.
        token: Option<[u8; TOKEN_LEN]>,
    },
    /// KE1: the first login message. The vault charges an attempt for it.
    LoginStart {
        /// RFC 9807 `KE1`.
        ke1: Box<[u8; len::KE1]>,
    },
    /// KE3 with the ticket of the KE2 it answers.
    LoginFinish {
        /// The session ticket from `LoginChallenge`.
        ticket: Vec<u8>,
        /// RFC 9807 `KE3`.
        ke3: Box<[u8; len::KE3]>,
    },
    /// Erase the account's record, authorised by a successful login.
    Delete {
        /// Authorisation from a successful login.
        token: [u8; TOKEN_LEN],
    },
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Request {
    /// The request's name, for logs: nothing else of it is printable.
    pub fn name(&self) -> &'static str {
        match self {
            Self::RegisterStart { .. } => "RegisterStart",
            Self::RegisterFinish { .. } => "RegisterFinish",
            Self::LoginStart { .. } => "LoginStart",
            Self::LoginFinish { .. } => "LoginFinish",
            Self::Delete { .. } => "Delete",
        }
    }

    /// The encoded request.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            Self::RegisterStart { registration_request, token } => {
                w.u8(0x01).bytes(registration_request);
                put_token(&mut w, token);
            }
            Self::RegisterFinish {
                record_version,
                ksf_profile,
                registration_upload,
                sealed_key,
                registration_ticket,
                token,
            } => {
                w.u8(0x02)
                    .u32(*record_version)
                    .u8(*ksf_profile)
                    .bytes(registration_upload.as_ref())
                    .bytes(sealed_key)
                    .bytes(registration_ticket.as_ref());
                put_token(&mut w, token);
            }
            Self::LoginStart { ke1 } => {
                w.u8(0x03).bytes(ke1.as_ref());
            }
            Self::LoginFinish { ticket, ke3 } => {
                w.u8(0x04).vec16(ticket).bytes(ke3.as_ref());
            }
            Self::Delete { token } => {
                w.u8(0x05).bytes(token);
            }
        }
        w.finish()
    }

    /// Reads a request.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let request = match r.u8("request.kind")? {
            0x01 => Self::RegisterStart {
                registration_request: r.array("RegisterStart.registration_request")?,
                token: get_token(&mut r)?,
            },
            0x02 => Self::RegisterFinish {
                record_version: r.u32("RegisterFinish.record_version")?,
                ksf_profile: r.u8("RegisterFinish.ksf_profile")?,
                registration_upload: Box::new(r.array("RegisterFinish.registration_upload")?),
                sealed_key: r.array("RegisterFinish.sealed_key")?,
                registration_ticket: Box::new(r.array("RegisterFinish.registration_ticket")?),
                token: get_token(&mut r)?,
            },
            0x03 => Self::LoginStart { ke1: Box::new(r.array("LoginStart.ke1")?) },
            0x04 => Self::LoginFinish {
                ticket: r.vec16(MAX_TICKET_LEN, "LoginFinish.ticket")?.to_vec(),
                ke3: Box::new(r.array("LoginFinish.ke3")?),
            },
            0x05 => Self::Delete { token: r.array("Delete.token")? },
            _ => return Err(WireError::Invalid { field: "request.kind", why: "unknown kind" }),
        };
        r.finish()?;
        Ok(request)
    }
}

fn put_token(w: &mut Writer, token: &Option<[u8; TOKEN_LEN]>) {
    match token {
        None => w.u8(0),
        Some(t) => w.u8(1).bytes(t),
    };
}

fn get_token(r: &mut Reader<'_>) -> Result<Option<[u8; TOKEN_LEN]>, WireError> {
    match r.u8("token_opt")? {
        0 => Ok(None),
        1 => Ok(Some(r.array("token_opt.token")?)),
        _ => Err(WireError::Invalid { field: "token_opt", why: "not 0 or 1" }),
    }
}

/// Why the vault refused a request. The codes are part of the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// The account is locked for good: its budget ran out and its key is erased.
    Locked,
    /// The KE3 did not verify: wrong password, or a KE3 from another session.
    LoginFailed,
    /// The ticket is not this vault's, not this account's, already used, or expired.
    SessionInvalid,
    /// The token is missing, wrong, used or expired.
    NotAuthorised,
    /// No attempts are left, but charged attempts are still in flight: their KE3s may still
    /// succeed. The account locks once they end.
    Exhausted,
    /// The record version does not follow the stored one (a stale or replayed registration).
    StaleRegistration,
    /// The request's content is not valid for the protocol (e.g. a point that does not decode).
    InvalidRequest,
}

impl RefusalReason {
    /// The reason's code.
    pub fn code(self) -> u8 {
        match self {
            Self::Locked => 1,
            Self::LoginFailed => 2,
            Self::SessionInvalid => 3,
            Self::NotAuthorised => 4,
            Self::Exhausted => 5,
            Self::StaleRegistration => 6,
            Self::InvalidRequest => 7,
        }
    }

    /// The reason's name in the spec's closed vocabulary (section 4.7): `locked`,
    /// `login-failed`, `session-invalid`, `not-authorised`, `exhausted`,
    /// `stale-registration`, `invalid-request`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Locked => "locked",
            Self::LoginFailed => "login-failed",
            Self::SessionInvalid => "session-invalid",
            Self::NotAuthorised => "not-authorised",
            Self::Exhausted => "exhausted",
            Self::StaleRegistration => "stale-registration",
            Self::InvalidRequest => "invalid-request",
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        [
            Self::Locked,
            Self::LoginFailed,
            Self::SessionInvalid,
            Self::NotAuthorised,
            Self::Exhausted,
            Self::StaleRegistration,
            Self::InvalidRequest,
        ]
        .into_iter()
        .find(|r| r.code() == code)
    }
}

/// The vault's answer.
#[derive(Clone, PartialEq, Eq)]
pub enum Response {
    /// Answer to `RegisterStart`.
    RegisterChallenge {
        /// RFC 9807 `RegistrationResponse`.
        registration_response: [u8; len::REGISTRATION_RESPONSE],
        /// The version the new record will have; the client binds it into the sealed K.
        record_version: u32,
        /// The stretching profile to register with.
        ksf_profile: u8,
        /// The sealed fresh OPRF seed, to send back with `RegisterFinish` (spec 4.9.2).
        registration_ticket: Box<[u8; REGISTRATION_TICKET_LEN]>,
    },
    /// Answer to `RegisterFinish`: the record is stored.
    Registered {
        /// The account's budget.
        budget: u8,
    },
    /// Answer to `LoginStart`: KE2, sent only once the charged attempt is durable.
    LoginChallenge {
        /// RFC 9807 `KE2`.
        ke2: Box<[u8; len::KE2]>,
        /// The sealed session state, to send back with KE3.
        ticket: Vec<u8>,
        /// Attempts left after this one, if it fails.
        remaining: u8,
        /// The profile the account registered with.
        ksf_profile: u8,
    },
    /// Answer to a valid KE3.
    LoginSucceeded {
        /// The sealed K.
        sealed_key: [u8; SEALED_KEY_LEN],
        /// The record version bound into it.
        record_version: u32,
        /// Single-use authorisation for one follow-up request.
        token: [u8; TOKEN_LEN],
        /// The restored budget.
        remaining: u8,
    },
    /// Answer to `Delete`.
    Deleted,
    /// The request was refused.
    Refused {
        /// Why.
        reason: RefusalReason,
        /// Attempts left (0 when locked).
        remaining: u8,
    },
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused { reason, remaining } => {
                write!(f, "Refused {{ reason: {reason:?}, remaining: {remaining} }}")
            }
            Self::LoginChallenge { remaining, .. } => {
                write!(f, "LoginChallenge {{ remaining: {remaining}, .. }}")
            }
            Self::RegisterChallenge { .. } => f.write_str("RegisterChallenge"),
            Self::Registered { budget } => write!(f, "Registered {{ budget: {budget} }}"),
            Self::LoginSucceeded { .. } => f.write_str("LoginSucceeded"),
            Self::Deleted => f.write_str("Deleted"),
        }
    }
}

impl Response {
    /// The response's name, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RegisterChallenge { .. } => "RegisterChallenge",
            Self::Registered { .. } => "Registered",
            Self::LoginChallenge { .. } => "LoginChallenge",
            Self::LoginSucceeded { .. } => "LoginSucceeded",
            Self::Deleted => "Deleted",
            Self::Refused { .. } => "Refused",
        }
    }

    /// The encoded response.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            Self::RegisterChallenge {
                registration_response,
                record_version,
                ksf_profile,
                registration_ticket,
            } => {
                w.u8(0x81)
                    .bytes(registration_response)
                    .u32(*record_version)
                    .u8(*ksf_profile)
                    .bytes(registration_ticket.as_ref());
            }
            Self::Registered { budget } => {
                w.u8(0x82).u8(*budget);
            }
            Self::LoginChallenge { ke2, ticket, remaining, ksf_profile } => {
                w.u8(0x83).bytes(ke2.as_ref()).vec16(ticket).u8(*remaining).u8(*ksf_profile);
            }
            Self::LoginSucceeded { sealed_key, record_version, token, remaining } => {
                w.u8(0x84).bytes(sealed_key).u32(*record_version).bytes(token).u8(*remaining);
            }
            Self::Deleted => {
                w.u8(0x85);
            }
            Self::Refused { reason, remaining } => {
                w.u8(0xF0).u8(reason.code()).u8(*remaining);
            }
        }
        w.finish()
    }

    /// Reads a response.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let response = match r.u8("response.kind")? {
            0x81 => Self::RegisterChallenge {
                registration_response: r.array("RegisterChallenge.registration_response")?,
                record_version: r.u32("RegisterChallenge.record_version")?,
                ksf_profile: r.u8("RegisterChallenge.ksf_profile")?,
                registration_ticket: Box::new(r.array("RegisterChallenge.registration_ticket")?),
            },
            0x82 => Self::Registered { budget: r.u8("Registered.budget")? },
            0x83 => Self::LoginChallenge {
                ke2: Box::new(r.array("LoginChallenge.ke2")?),
                ticket: r.vec16(MAX_TICKET_LEN, "LoginChallenge.ticket")?.to_vec(),
                remaining: r.u8("LoginChallenge.remaining")?,
                ksf_profile: r.u8("LoginChallenge.ksf_profile")?,
            },
            0x84 => Self::LoginSucceeded {
                sealed_key: r.array("LoginSucceeded.sealed_key")?,
                record_version: r.u32("LoginSucceeded.record_version")?,
                token: r.array("LoginSucceeded.token")?,
                remaining: r.u8("LoginSucceeded.remaining")?,
            },
            0x85 => Self::Deleted,
            0xF0 => Self::Refused {
                reason: RefusalReason::from_code(r.u8("Refused.reason")?)
                    .ok_or(WireError::Invalid { field: "Refused.reason", why: "unknown reason" })?,
                remaining: r.u8("Refused.remaining")?,
            },
            _ => return Err(WireError::Invalid { field: "response.kind", why: "unknown kind" }),
        };
        r.finish()?;
        Ok(response)
    }
}
