//! The request pipeline's hand-offs (spec sections 4.10.2 and 7.3): an [`Opened`] request
//! splits into a [`Command`] (what a replicated vault commits to its log) and a [`Pending`]
//! (the response sealer, which stays with the connection); applying the command gives a
//! [`Decided`], whose [`Decision`] is released only once its [`RecordChange`] is durable, and
//! becomes a [`Reply`] for [`crate::hsm::Hsm::seal`].

use opaque_ke::{CredentialRequest, RegistrationRequest};
use zeroize::Zeroizing;

use crate::channel;
use crate::messages::{RefusalReason, Request, Response};
use crate::record::{AccountRecord, AccountState, Attempt};
use crate::suite::VaultSuite;
use crate::wire::{Reader, WireError, Writer};

/// A request the HSM opened: its account, what it asks, and how to seal the answer.
pub struct Opened {
    pub(crate) account: Vec<u8>,
    pub(crate) request: Result<Request, WireError>,
    pub(crate) sealer: channel::ResponseSealer,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("account", &String::from_utf8_lossy(&self.account))
            .field("request", &self.request.as_ref().map(Request::name))
            .finish_non_exhaustive()
    }
}

impl Opened {
    /// The account the request is for: the record the driver must load.
    pub fn account(&self) -> &[u8] {
        &self.account
    }

    /// The request's name, or `None` when its plaintext does not decode.
    pub fn request_name(&self) -> Option<&'static str> {
        self.request.as_ref().ok().map(Request::name)
    }

    /// Splits the request into what a replicated vault commits to its log, a [`Command`]
    /// decided at Unix time `now` (or, when the plaintext does not decode, the refusal that
    /// needs no record), and what stays with the connection: the account and the sealer.
    pub fn into_command(self, now: u64) -> (Result<Command, Decision>, Pending) {
        let Self { account, request, sealer } = self;
        let command = match request {
            Ok(request) => Ok(Command { account: account.clone(), request, now }),
            Err(_) => Err(Decision::refused(RefusalReason::InvalidRequest, 0)),
        };
        (command, Pending { account, sealer })
    }
}

/// The half of an opened request that stays on the replica holding the connection: the
/// response sealer (its secret never enters a log) and the account.
pub struct Pending {
    pub(crate) account: Vec<u8>,
    pub(crate) sealer: channel::ResponseSealer,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}

impl Pending {
    /// The reply to seal once `decision` was made (and its change, if any, is durable).
    pub fn reply(self, decision: Decision) -> Reply {
        Reply { account: self.account, sealer: self.sealer, decision }
    }
}

/// A decoded request with the time it is decided at: the entry a replicated vault commits to
/// its log and every replica applies with [`Hsm::apply`](crate::hsm::Hsm::apply) (spec section 7.3).
#[derive(Clone)]
pub struct Command {
    pub(crate) account: Vec<u8>,
    pub(crate) request: Request,
    pub(crate) now: u64,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Command")
            .field("request", &self.request.name())
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

impl Command {
    /// The account whose record the command reads and changes.
    pub fn account(&self) -> &[u8] {
        &self.account
    }

    /// The request's name.
    pub fn name(&self) -> &'static str {
        self.request.name()
    }

    /// The leader's Unix time put into the command.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// `vec16(account) || u64 now || request` (the request as in spec section 4.7).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.vec16(&self.account).u64(self.now).bytes(&self.request.encode());
        w.finish()
    }

    /// Reads a command; the account must be 1 to 64 bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        let account = r.id::<crate::ids::Account>("command.account")?.as_bytes().to_vec();
        let now = r.u64("command.now")?;
        let request = Request::decode(r.rest())?;
        Ok(Self { account, request, now })
    }
}

/// What happens to an account's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordChange {
    /// Store this record.
    Put(AccountRecord),
    /// Erase the record.
    Delete,
}

/// A reply waiting to be sealed by [`Hsm::seal`](crate::hsm::Hsm::seal).
pub struct Reply {
    pub(crate) account: Vec<u8>,
    pub(crate) sealer: channel::ResponseSealer,
    pub(crate) decision: Decision,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The account identifier is personal data: not printed.
        f.debug_struct("Reply").field("decision", &self.decision).finish_non_exhaustive()
    }
}

impl Reply {
    /// The kind of answer, for logs: `RegisterChallenge`, `Registered`, `LoginChallenge`,
    /// `LoginSucceeded`, `Deleted` or `Refused`.
    pub fn kind(&self) -> &'static str {
        self.decision.kind()
    }

    /// The reason and remaining attempts, when the answer is a refusal.
    pub fn refusal(&self) -> Option<(RefusalReason, u8)> {
        self.decision.refusal()
    }
}

/// What the HSM decided for a request, before the randomness of sealing: a response, or a
/// KE2 still to compute (after the charge is durable).
pub struct Decision(pub(crate) Deferred);

pub(crate) enum Deferred {
    Response(Response),
    /// A `RegisterChallenge`: the OPRF evaluation under a fresh seed is drawn at sealing.
    RegisterChallenge {
        registration_request: Box<RegistrationRequest<VaultSuite>>,
        record_version: u32,
        ksf_profile: u8,
        not_after: u64,
    },
    Ke2 {
        ke1: Box<CredentialRequest<VaultSuite>>,
        attempt: Attempt,
        registration: Option<LiveRegistration>,
        remaining: u8,
        ksf_profile: u8,
        not_after: u64,
    },
}

/// What a KE2 needs of a registered record: the OPAQUE registration, and the registration
/// ticket with its OPRF seed, which opens only under the record version.
pub(crate) struct LiveRegistration {
    pub(crate) upload: Zeroizing<Vec<u8>>,
    pub(crate) oprf_ticket: Zeroizing<Vec<u8>>,
    pub(crate) record_version: u32,
}

impl LiveRegistration {
    pub(crate) fn of(record: &AccountRecord) -> Option<Self> {
        (record.state == AccountState::Registered).then(|| Self {
            upload: Zeroizing::new(record.registration.clone()),
            oprf_ticket: Zeroizing::new(record.oprf_ticket.clone()),
            record_version: record.record_version,
        })
    }
}

impl Decision {
    pub(crate) fn refused(reason: RefusalReason, remaining: u8) -> Self {
        Self(Deferred::Response(Response::Refused { reason, remaining }))
    }

    /// The kind of answer: `RegisterChallenge`, `Registered`, `LoginChallenge`,
    /// `LoginSucceeded`, `Deleted` or `Refused`.
    pub fn kind(&self) -> &'static str {
        match &self.0 {
            Deferred::RegisterChallenge { .. } => "RegisterChallenge",
            Deferred::Ke2 { .. } => "LoginChallenge",
            Deferred::Response(r) => r.kind(),
        }
    }

    /// The reason and remaining attempts, when the answer is a refusal.
    pub fn refusal(&self) -> Option<(RefusalReason, u8)> {
        match &self.0 {
            Deferred::Response(Response::Refused { reason, remaining }) => {
                Some((*reason, *remaining))
            }
            _ => None,
        }
    }

    /// The response, when the decision is one (every decision but a KE2 still to compute).
    pub fn response(&self) -> Option<&Response> {
        match &self.0 {
            Deferred::Response(response) => Some(response),
            Deferred::Ke2 { .. } | Deferred::RegisterChallenge { .. } => None,
        }
    }

    /// The attempts left that the answer reports, if it reports any.
    pub fn remaining(&self) -> Option<u8> {
        match &self.0 {
            Deferred::Ke2 { remaining, .. } => Some(*remaining),
            Deferred::Response(
                Response::Refused { remaining, .. }
                | Response::LoginSucceeded { remaining, .. }
                | Response::LoginChallenge { remaining, .. },
            ) => Some(*remaining),
            Deferred::Response(_) | Deferred::RegisterChallenge { .. } => None,
        }
    }
}

impl std::fmt::Debug for Decision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Response(r) => write!(f, "Response({r:?})"),
            Self::RegisterChallenge { record_version, .. } => {
                write!(f, "RegisterChallenge {{ record_version: {record_version}, .. }}")
            }
            Self::Ke2 { remaining, .. } => write!(f, "Ke2 {{ remaining: {remaining}, .. }}"),
        }
    }
}

/// What [`Hsm::apply`](crate::hsm::Hsm::apply) decided: the record change, if any, and the decision, which is released
/// only once the change is durable.
#[derive(Debug)]
#[must_use = "the decision is only released by persist"]
pub struct Decided {
    pub(crate) change: Option<RecordChange>,
    pub(crate) decision: Decision,
}

impl Decided {
    /// Runs `write` on the change (it must return only once the change is durable, or, in a
    /// replica, once it is part of the state its durable log redoes) and releases the decision
    /// if it succeeded; a command that changes nothing releases it at once. If the write
    /// fails, the decision is dropped: nothing may be sent.
    pub fn persist<E>(
        self,
        write: impl FnOnce(&RecordChange) -> Result<(), E>,
    ) -> Result<Decision, E> {
        if let Some(change) = &self.change {
            write(change)?;
        }
        Ok(self.decision)
    }
}
