//! The HSM role (spec chapter 4, "The vault").
//!
//! One pipeline serves every request, in process and in the replicated server alike (spec
//! sections 4.10.2 and 7.2):
//!
//! 1. [`Hsm::open`] opens a sealed request and names its account.
//! 2. [`Opened::into_command`] splits it at time `now` into a [`Command`] (what a replicated
//!    vault commits to its log) and a [`Pending`] (the response sealer, which stays with the
//!    connection).
//! 3. [`Hsm::apply`] decides the command on the account's stored record, without randomness
//!    and without a clock of its own, into a [`Decided`]: the record change, if any, and the
//!    [`Decision`], which only [`Decided::persist`] releases, after the driver's durable write
//!    of the change succeeded. This is how the vault makes sure that no KE2 leaves before its
//!    charged attempt is durable.
//! 4. [`Pending::reply`] pairs the decision with its sealer; [`Hsm::seal`] computes the answer
//!    (KE2, tickets) and seals it, drawing its randomness only now.
//!
//! [`crate::memory::MemoryVault`] runs the pipeline on a `HashMap`; the server runs step 3 in
//! its replication (one store, or a log every replica applies) and steps 1, 2 and 4 around it.

use opaque_ke::{
    CredentialFinalization, CredentialRequest, RegistrationRequest, RegistrationUpload,
    ServerLogin, ServerLoginParameters, ServerRegistration, ServerSetup,
};
use rand_core::{CryptoRng, RngCore};
use sha2_10::{Digest, Sha256};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::channel::{self, ChannelError, FleetPublicKey, FleetSecretKey, RequestEnvelope};
use crate::messages::{RefusalReason, Request, Response, len};
use crate::record::{ATTEMPT_ID_LEN, AccountRecord, AccountState, Attempt, TOKEN_LEN, Token};
use crate::suite::{CONTEXT, Identities, KsfProfile, VaultSuite};
use crate::ticket::{
    self, OPRF_SEED_LEN, REGISTRATION_TICKET_LEN, RegistrationTicketBody, TicketBody,
};
use crate::wire::{Reader, WireError, Writer};

/// Label of the attempt identifier hash.
pub const ATTEMPT_LABEL: &str = "e2ee-backups/v1/vault/attempt";
/// Label of the token derivation.
pub const TOKEN_LABEL: &str = "e2ee-backups/v1/vault/token";
/// Label of the replicas' peer key.
pub const PEER_LABEL: &str = "e2ee-backups/v1/vault/peer";
/// Label of the replicas' TLS key seed.
pub const PEER_TLS_LABEL: &str = "e2ee-backups/v1/vault/peer-tls";
/// The `remaining` of every refusal that no charge paid for (spec 4.10.2): a constant, so that
/// it reveals nothing of the record.
pub const UNCHARGED_REMAINING: u8 = 0;
/// The default guess budget.
pub const DEFAULT_BUDGET: u8 = 10;

/// Policy of one vault deployment.
#[derive(Debug, Clone, Copy)]
pub struct HsmConfig {
    /// Guess budget of newly registered accounts, 1 to 255.
    pub budget: u8,
    /// Stretching profile new registrations use.
    pub ksf_profile: KsfProfile,
    /// Seconds a login ticket stays valid after KE2.
    pub session_lifetime: u64,
    /// Seconds a token stays valid after a successful login.
    pub token_lifetime: u64,
}

impl Default for HsmConfig {
    fn default() -> Self {
        Self {
            budget: DEFAULT_BUDGET,
            ksf_profile: KsfProfile::Mobile,
            session_lifetime: 300,
            token_lifetime: 300,
        }
    }
}

/// Why a request could not even be opened. Such a request gets no sealed answer: the driver
/// answers with a plain error (the relay could have produced it).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HsmError {
    /// The sealed envelope is malformed, addressed elsewhere, or does not open.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The configuration is invalid.
    #[error("invalid vault configuration: {0}")]
    Config(&'static str),
}

/// The secrets every member of a fleet holds: the fleet identity, the OPAQUE server setup (OPRF
/// seed, from which each account's OPRF key is derived, and the AKE key pair), the channel keys
/// and the ticket key.
pub struct HsmSecrets {
    fleet_id: Vec<u8>,
    opaque: ServerSetup<VaultSuite>,
    channel_keys: Vec<(u8, FleetSecretKey)>,
    ticket_key: Zeroizing<[u8; 32]>,
    /// Subkeys of `ticket_key` (spec 4.9): login tickets and registration tickets.
    login_ticket_key: Zeroizing<[u8; 32]>,
    registration_ticket_key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for HsmSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsmSecrets")
            .field("fleet_id", &String::from_utf8_lossy(&self.fleet_id))
            .field("channel_key_ids", &self.channel_keys.iter().map(|k| k.0).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

const SECRETS_VERSION: u8 = 1;
const OPAQUE_SETUP_LEN: usize = 128;

impl HsmSecrets {
    /// Fresh secrets for fleet `fleet_id` with one channel key, id 1.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R, fleet_id: &[u8]) -> Self {
        let mut ticket_key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(ticket_key.as_mut());
        let opaque = ServerSetup::new(rng);
        let channel_keys = vec![(1, FleetSecretKey::generate(rng))];
        Self::assemble(fleet_id.to_vec(), opaque, channel_keys, ticket_key)
    }

    fn assemble(
        fleet_id: Vec<u8>,
        opaque: ServerSetup<VaultSuite>,
        channel_keys: Vec<(u8, FleetSecretKey)>,
        ticket_key: Zeroizing<[u8; 32]>,
    ) -> Self {
        Self {
            login_ticket_key: ticket::subkey(&ticket_key, ticket::LOGIN_TICKET_KEY_LABEL),
            registration_ticket_key: ticket::subkey(
                &ticket_key,
                ticket::REGISTRATION_TICKET_KEY_LABEL,
            ),
            fleet_id,
            opaque,
            channel_keys,
            ticket_key,
        }
    }

    /// The OPAQUE server setup of one registration: the fleet's AKE key pair and fake-record
    /// key with the registration's own OPRF seed in place of the fleet's (spec 4.5).
    fn setup_with_seed(&self, oprf_seed: &[u8; OPRF_SEED_LEN]) -> Option<ServerSetup<VaultSuite>> {
        let mut bytes = Zeroizing::new(self.opaque.serialize().to_vec());
        bytes[..OPRF_SEED_LEN].copy_from_slice(oprf_seed);
        ServerSetup::deserialize(&bytes).ok()
    }

    /// The record version of an account nothing is stored for (spec 4.10.2):
    /// `u32(HKDF-SHA256(salt = none, ikm = ticket_key, info = "e2ee-backups/v1/vault/unseen-version"
    /// || 0x00 || vec16(account_id), 4)) >> 8`. Unpredictable without the fleet secrets, so that
    /// a `RegisterChallenge`'s version does not tell an account never seen from one registered.
    pub fn unseen_version(&self, account: &[u8]) -> u32 {
        let info = Writer::new()
            .bytes(ticket::UNSEEN_VERSION_LABEL.as_bytes())
            .u8(0)
            .vec16(account)
            .finish();
        let mut out = [0u8; 4];
        hkdf_12::Hkdf::<Sha256>::new(None, self.ticket_key.as_ref())
            .expand(&info, &mut out)
            .expect("4 bytes is a valid HKDF length");
        u32::from_be_bytes(out) >> 8
    }

    /// The fleet identifier.
    pub fn fleet_id(&self) -> &[u8] {
        &self.fleet_id
    }

    /// The key replicas of one fleet seal their traffic to each other with (spec section 7.7):
    /// `HKDF-SHA256(salt = none, ikm = ticket_key, info = "e2ee-backups/v1/vault/peer")`,
    /// 32 bytes.
    pub fn peer_key(&self) -> Zeroizing<[u8; 32]> {
        self.ticket_subkey(PEER_LABEL)
    }

    /// `HKDF-SHA256(salt = none, ikm = ticket_key, info = label)`, 32 bytes.
    fn ticket_subkey(&self, label: &str) -> Zeroizing<[u8; 32]> {
        ticket::subkey(&self.ticket_key, label)
    }

    /// The Ed25519 seed of the key every replica presents in mutual TLS with its peers (spec
    /// section 7.7.1): `HKDF-SHA256(salt = none, ikm = ticket_key, info =
    /// "e2ee-backups/v1/vault/peer-tls")`, 32 bytes.
    pub fn peer_tls_seed(&self) -> Zeroizing<[u8; 32]> {
        self.ticket_subkey(PEER_TLS_LABEL)
    }

    /// The channel public keys, by key id, for the fleet key bundle.
    pub fn public_keys(&self) -> Vec<(u8, FleetPublicKey)> {
        self.channel_keys.iter().map(|(id, k)| (*id, k.public_key())).collect()
    }

    /// Serialised, for the HSM's sealed storage:
    /// `version (0x01) || vec16(fleet_id) || opaque_setup [128] || ticket_key [32] || count u8 ||
    /// count × (key_id u8 || x25519_secret [32])`.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new();
        w.u8(SECRETS_VERSION)
            .vec16(&self.fleet_id)
            .bytes(&self.opaque.serialize())
            .bytes(self.ticket_key.as_ref())
            .u8(u8::try_from(self.channel_keys.len()).expect("few keys"));
        for (id, key) in &self.channel_keys {
            w.u8(*id).bytes(key.to_bytes().as_ref());
        }
        Zeroizing::new(w.finish())
    }

    /// Reads [`HsmSecrets::to_bytes`] back.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        if r.u8("secrets.version")? != SECRETS_VERSION {
            return Err(WireError::Invalid { field: "secrets.version", why: "not 1" });
        }
        let fleet_id = r.vec16(64, "secrets.fleet_id")?.to_vec();
        let opaque =
            ServerSetup::deserialize(r.bytes(OPAQUE_SETUP_LEN, "secrets.opaque_setup")?).map_err(
                |_| WireError::Invalid { field: "secrets.opaque_setup", why: "not a setup" },
            )?;
        let ticket_key = Zeroizing::new(r.array("secrets.ticket_key")?);
        let count = r.u8("secrets.count")?;
        if count == 0 {
            return Err(WireError::Invalid { field: "secrets.count", why: "no channel key" });
        }
        let mut channel_keys: Vec<(u8, FleetSecretKey)> = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let id = r.u8("secrets.key_id")?;
            if channel_keys.iter().any(|k| k.0 == id) {
                return Err(WireError::Invalid { field: "secrets.key_id", why: "a key id twice" });
            }
            let key = Zeroizing::new(r.array::<32>("secrets.channel_key")?);
            let key = FleetSecretKey::from_bytes(&key).map_err(|_| WireError::Invalid {
                field: "secrets.channel_key",
                why: "not an X25519 key",
            })?;
            channel_keys.push((id, key));
        }
        r.finish()?;
        Ok(Self::assemble(fleet_id, opaque, channel_keys, ticket_key))
    }
}

/// A request the HSM opened: its account, what it asks, and how to seal the answer.
pub struct Opened {
    account: Vec<u8>,
    request: Result<Request, WireError>,
    sealer: channel::ResponseSealer,
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
    account: Vec<u8>,
    sealer: channel::ResponseSealer,
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
/// its log and every replica applies with [`Hsm::apply`] (spec section 7.3).
#[derive(Clone)]
pub struct Command {
    account: Vec<u8>,
    request: Request,
    now: u64,
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
        let account = r.vec16(channel::MAX_ACCOUNT_ID_LEN, "command.account")?.to_vec();
        if account.is_empty() {
            return Err(WireError::Invalid { field: "command.account", why: "empty" });
        }
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

/// A reply waiting to be sealed by [`Hsm::seal`].
pub struct Reply {
    account: Vec<u8>,
    sealer: channel::ResponseSealer,
    decision: Decision,
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
pub struct Decision(Deferred);

enum Deferred {
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
struct LiveRegistration {
    upload: Zeroizing<Vec<u8>>,
    oprf_ticket: Zeroizing<Vec<u8>>,
    record_version: u32,
}

impl LiveRegistration {
    fn of(record: &AccountRecord) -> Option<Self> {
        (record.state == AccountState::Registered).then(|| Self {
            upload: Zeroizing::new(record.registration.clone()),
            oprf_ticket: Zeroizing::new(record.oprf_ticket.clone()),
            record_version: record.record_version,
        })
    }
}

impl Decision {
    fn refused(reason: RefusalReason, remaining: u8) -> Self {
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

    /// `0x00 || response` (spec section 4.7); `0x01 || KE1 || attempt id || serial u64 ||
    /// not_after u64 || remaining u8 || ksf_profile u8 || (0x00 | 0x01 || registration [192] ||
    /// oprf_ticket [100] || record_version u32)`; or `0x02 || registration_request [32] ||
    /// record_version u32 || ksf_profile u8 || not_after u64`: how a replica hands a decision
    /// from its state machine to the request that proposed it (spec 7.3).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new();
        match &self.0 {
            Deferred::Response(response) => {
                w.u8(0).bytes(&response.encode());
            }
            Deferred::Ke2 { ke1, attempt, registration, remaining, ksf_profile, not_after: _ } => {
                w.u8(1)
                    .bytes(&ke1.serialize())
                    .bytes(&attempt.id)
                    .u64(attempt.serial)
                    .u64(attempt.not_after)
                    .u8(*remaining)
                    .u8(*ksf_profile);
                match registration {
                    Some(live) => w
                        .u8(1)
                        .bytes(&live.upload)
                        .bytes(&live.oprf_ticket)
                        .u32(live.record_version),
                    None => w.u8(0),
                };
            }
            Deferred::RegisterChallenge {
                registration_request,
                record_version,
                ksf_profile,
                not_after,
            } => {
                w.u8(2)
                    .bytes(&registration_request.serialize())
                    .u32(*record_version)
                    .u8(*ksf_profile)
                    .u64(*not_after);
            }
        }
        Zeroizing::new(w.finish())
    }

    /// Reads a decision written by [`Decision::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        match r.u8("decision.kind")? {
            0 => Ok(Self(Deferred::Response(Response::decode(r.rest())?))),
            1 => {
                let ke1_bytes: [u8; len::KE1] = r.array("decision.ke1")?;
                let ke1 = CredentialRequest::<VaultSuite>::deserialize(&ke1_bytes)
                    .map_err(|_| WireError::Invalid { field: "decision.ke1", why: "not a KE1" })?;
                let attempt = Attempt {
                    id: r.array("decision.attempt_id")?,
                    serial: r.u64("decision.serial")?,
                    not_after: r.u64("decision.not_after")?,
                };
                let remaining = r.u8("decision.remaining")?;
                let ksf_profile = r.u8("decision.ksf_profile")?;
                let registration = match r.u8("decision.registered")? {
                    0 => None,
                    1 => Some(LiveRegistration {
                        upload: Zeroizing::new(
                            r.bytes(crate::record::REGISTRATION_LEN, "decision.registration")?
                                .to_vec(),
                        ),
                        oprf_ticket: Zeroizing::new(
                            r.bytes(REGISTRATION_TICKET_LEN, "decision.oprf_ticket")?.to_vec(),
                        ),
                        record_version: r.u32("decision.record_version")?,
                    }),
                    _ => {
                        return Err(WireError::Invalid {
                            field: "decision.registered",
                            why: "neither 0 nor 1",
                        });
                    }
                };
                r.finish()?;
                Ok(Self(Deferred::Ke2 {
                    ke1: Box::new(ke1),
                    attempt,
                    registration,
                    remaining,
                    ksf_profile,
                    not_after: attempt.not_after,
                }))
            }
            2 => {
                let request: [u8; len::REGISTRATION_REQUEST] =
                    r.array("decision.registration_request")?;
                let registration_request = RegistrationRequest::<VaultSuite>::deserialize(&request)
                    .map_err(|_| WireError::Invalid {
                        field: "decision.registration_request",
                        why: "not a registration request",
                    })?;
                let decision = Deferred::RegisterChallenge {
                    registration_request: Box::new(registration_request),
                    record_version: r.u32("decision.record_version")?,
                    ksf_profile: r.u8("decision.ksf_profile")?,
                    not_after: r.u64("decision.not_after")?,
                };
                r.finish()?;
                Ok(Self(decision))
            }
            _ => Err(WireError::Invalid { field: "decision.kind", why: "unknown kind" }),
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

/// A decision's record change and answer.
type Outcome = (Option<RecordChange>, Deferred);

/// What every step of spec 4.10.2 decides from: the account, its record, its version (the
/// record's, or its unseen version without one) and the time.
struct At<'a> {
    account: &'a [u8],
    record: Option<AccountRecord>,
    version: u32,
    now: u64,
}

/// The fields of a `RegisterFinish`.
struct Upload<'a> {
    record_version: u32,
    ksf_profile: u8,
    registration_upload: &'a [u8],
    sealed_key: &'a [u8],
    registration_ticket: &'a [u8],
    token: Option<&'a [u8; TOKEN_LEN]>,
}

/// An answer that changes nothing.
fn answer(response: Response) -> Outcome {
    (None, Deferred::Response(response))
}

/// A refusal that no charge paid for: it carries [`UNCHARGED_REMAINING`] (spec 4.10.2).
fn uncharged(reason: RefusalReason) -> Outcome {
    answer(Response::Refused { reason, remaining: UNCHARGED_REMAINING })
}

/// What [`Hsm::apply`] decided: the record change, if any, and the decision, which is released
/// only once the change is durable.
#[derive(Debug)]
#[must_use = "the decision is only released by persist"]
pub struct Decided {
    change: Option<RecordChange>,
    decision: Decision,
}

impl Decided {
    /// The change to make durable, if the command changes the record.
    pub fn change(&self) -> Option<&RecordChange> {
        self.change.as_ref()
    }

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

/// One member of a vault fleet.
#[derive(Debug)]
pub struct Hsm {
    secrets: HsmSecrets,
    config: HsmConfig,
}

impl Hsm {
    /// An HSM with these secrets and policy.
    pub fn new(secrets: HsmSecrets, config: HsmConfig) -> Result<Self, HsmError> {
        if config.budget == 0 {
            return Err(HsmError::Config("the guess budget must be 1 to 255"));
        }
        Ok(Self { secrets, config })
    }

    /// The fleet's secrets.
    pub fn secrets(&self) -> &HsmSecrets {
        &self.secrets
    }

    /// The deployment's policy.
    pub fn config(&self) -> &HsmConfig {
        &self.config
    }

    /// Opens a sealed request. A request that does not open gets no sealed answer.
    pub fn open(&self, envelope: &[u8]) -> Result<Opened, HsmError> {
        let envelope = RequestEnvelope::parse(envelope)?;
        let (plain, sealer) =
            channel::open_request_with_keys(&self.secrets.fleet_id, &envelope, |id| {
                self.secrets.channel_keys.iter().find(|k| k.0 == id).map(|k| &k.1)
            })?;
        Ok(Opened {
            account: envelope.account_id().to_vec(),
            request: Request::decode(&plain),
            sealer,
        })
    }

    /// Applies a command to `record` (the account's record, `None` if there is none): the
    /// record change, if any, and the decision. Deterministic: every replica that applies the
    /// same command to the same record gets the same change and decision.
    pub fn apply(&self, command: &Command, record: Option<AccountRecord>) -> Decided {
        let (change, deferred) =
            self.decide(&command.account, &command.request, record, command.now);
        Decided { change, decision: Decision(deferred) }
    }

    /// Spec 4.10.2: a locked record refuses everything; otherwise the request's own step.
    fn decide(
        &self,
        account: &[u8],
        request: &Request,
        record: Option<AccountRecord>,
        now: u64,
    ) -> Outcome {
        if let Some(r) = &record
            && r.state == AccountState::Locked
        {
            return answer(Response::Refused { reason: RefusalReason::Locked, remaining: 0 });
        }
        let version = record
            .as_ref()
            .map_or_else(|| self.secrets.unseen_version(account), |r| r.record_version);
        let at = At { account, record, version, now };
        match request {
            Request::RegisterStart { registration_request, token: _ } => {
                self.register_start(&at, registration_request)
            }
            Request::RegisterFinish {
                record_version,
                ksf_profile,
                registration_upload,
                sealed_key,
                registration_ticket,
                token,
            } => self.register_finish(
                at,
                &Upload {
                    record_version: *record_version,
                    ksf_profile: *ksf_profile,
                    registration_upload: registration_upload.as_slice(),
                    sealed_key,
                    registration_ticket: registration_ticket.as_slice(),
                    token: token.as_ref(),
                },
            ),
            Request::LoginStart { ke1 } => self.login_start(at, ke1),
            Request::LoginFinish { ticket, ke3 } => self.login_finish(at, ticket, ke3),
            Request::Delete { token } => self.delete(&at, token),
        }
    }

    /// Spec 4.10.2, **RegisterStart**: answered alike for every account. The evaluation itself
    /// happens at sealing, under a fresh seed (4.10.4): nothing here touches a key a login will
    /// use, so the token is checked at RegisterFinish.
    fn register_start(&self, at: &At<'_>, registration_request: &[u8; 32]) -> Outcome {
        let Ok(message) = RegistrationRequest::deserialize(registration_request) else {
            return uncharged(RefusalReason::InvalidRequest);
        };
        let challenge = Deferred::RegisterChallenge {
            registration_request: Box::new(message),
            record_version: at.version.wrapping_add(1),
            ksf_profile: self.config.ksf_profile.code(),
            not_after: at.now.saturating_add(self.config.session_lifetime),
        };
        (None, challenge)
    }

    /// Spec 4.10.2, **RegisterFinish**: profile and record, version, registration ticket, then
    /// the token (after the ticket, so that a stranger's made-up ticket is refused alike on
    /// every account).
    fn register_finish(&self, at: At<'_>, upload: &Upload<'_>) -> Outcome {
        let record_version = upload.record_version;
        if upload.ksf_profile != self.config.ksf_profile.code()
            || RegistrationUpload::<VaultSuite>::deserialize(upload.registration_upload).is_err()
        {
            return uncharged(RefusalReason::InvalidRequest);
        }
        if record_version != at.version.wrapping_add(1) {
            return uncharged(RefusalReason::StaleRegistration);
        }
        let ticket_valid = ticket::open_registration(
            &self.secrets.registration_ticket_key,
            &self.secrets.fleet_id,
            at.account,
            record_version,
            upload.registration_ticket,
        )
        .is_some_and(|body| at.now <= body.not_after);
        if !ticket_valid {
            return uncharged(RefusalReason::SessionInvalid);
        }
        if !self.authorised(at.record.as_ref(), upload.token, at.now) {
            return uncharged(RefusalReason::NotAuthorised);
        }
        let new = AccountRecord {
            state: AccountState::Registered,
            budget: self.config.budget,
            remaining: self.config.budget,
            record_version,
            ksf_profile: upload.ksf_profile,
            registration: upload.registration_upload.to_vec(),
            sealed_key: upload.sealed_key.to_vec(),
            oprf_ticket: upload.registration_ticket.to_vec(),
            charges: at.record.as_ref().map_or(0, |r| r.charges),
            pending: Vec::new(),
            token: None,
        };
        let registered = Response::Registered { budget: self.config.budget };
        (Some(RecordChange::Put(new)), Deferred::Response(registered))
    }

    /// Spec 4.10.2, **LoginStart (KE1)**, steps 1 to 3: a retry of a pending attempt, a spent
    /// budget, or a charge.
    fn login_start(&self, at: At<'_>, ke1_bytes: &[u8; len::KE1]) -> Outcome {
        let Ok(ke1) = CredentialRequest::<VaultSuite>::deserialize(ke1_bytes) else {
            return uncharged(RefusalReason::InvalidRequest);
        };
        let now = at.now;
        let attempt_id = attempt_id(at.account, ke1_bytes);
        let mut record = at.record.unwrap_or_else(|| {
            let profile = self.config.ksf_profile.code();
            AccountRecord::phantom(self.config.budget, profile, at.version)
        });
        let ke2 = |r: &AccountRecord, attempt: Attempt| Deferred::Ke2 {
            ke1: Box::new(ke1.clone()),
            attempt,
            registration: LiveRegistration::of(r),
            remaining: r.remaining,
            ksf_profile: r.ksf_profile,
            not_after: attempt.not_after,
        };
        // Step 1: the same KE1 again (a retry) tests the same password: not charged twice.
        if let Some(attempt) =
            record.pending.iter().find(|a| a.id == attempt_id && now <= a.not_after)
        {
            return (None, ke2(&record, *attempt));
        }
        // Step 2: nothing left. Attempts in flight may still succeed: refuse, do not lock yet.
        if record.remaining == 0 {
            if record.has_live_attempts(now) {
                return answer(Response::Refused {
                    reason: RefusalReason::Exhausted,
                    remaining: 0,
                });
            }
            record.lock();
            let locked = Response::Refused { reason: RefusalReason::Locked, remaining: 0 };
            return (Some(RecordChange::Put(record)), Deferred::Response(locked));
        }
        // Step 3: charge. Attempts whose time ran out are spent; drop them as the record is
        // written.
        record.pending.retain(|a| now <= a.not_after);
        let attempt = Attempt {
            id: attempt_id,
            serial: record.charges,
            not_after: now.saturating_add(self.config.session_lifetime),
        };
        record.remaining -= 1;
        record.charges += 1;
        record.pending.push(attempt);
        let deferred = ke2(&record, attempt);
        (Some(RecordChange::Put(record)), deferred)
    }

    /// Spec 4.10.2, **LoginFinish (KE3)**: the ticket must name a pending attempt; its refusals
    /// then carry the record's count (the caller holds a charged attempt's ticket).
    fn login_finish(&self, at: At<'_>, ticket: &[u8], ke3: &[u8; len::KE3]) -> Outcome {
        let (account, now) = (at.account, at.now);
        let Some(mut record) = at.record else {
            return uncharged(RefusalReason::SessionInvalid);
        };
        let opened =
            ticket::open(&self.secrets.login_ticket_key, &self.secrets.fleet_id, account, ticket);
        let Some(body) = opened else {
            return uncharged(RefusalReason::SessionInvalid);
        };
        let Some(position) =
            record.pending.iter().position(|a| a.id == body.attempt_id && a.serial == body.serial)
        else {
            // Already answered (a replay) or cleared by a later login or registration.
            return uncharged(RefusalReason::SessionInvalid);
        };
        let ticket_attempt = record.pending.remove(position);
        let verified = now <= body.not_after
            && self.verify_ke3(account, &body, ke3).is_some()
            && record.state == AccountState::Registered;
        if !verified {
            let reason = if now <= body.not_after {
                RefusalReason::LoginFailed
            } else {
                RefusalReason::SessionInvalid
            };
            let response = if record.remaining == 0 && !record.has_live_attempts(now) {
                record.lock();
                Response::Refused { reason: RefusalReason::Locked, remaining: 0 }
            } else {
                Response::Refused { reason, remaining: record.remaining }
            };
            return (Some(RecordChange::Put(record)), Deferred::Response(response));
        }
        record.remaining = record.budget;
        record.pending.clear();
        let token = self.derive_token(account, &ticket_attempt);
        record.token =
            Some(Token { value: token, not_after: now.saturating_add(self.config.token_lifetime) });
        let mut sealed_key = [0u8; crate::wrap::SEALED_KEY_LEN];
        sealed_key.copy_from_slice(&record.sealed_key);
        let response = Response::LoginSucceeded {
            sealed_key,
            record_version: record.record_version,
            token,
            remaining: record.remaining,
        };
        (Some(RecordChange::Put(record)), Deferred::Response(response))
    }

    /// Spec 4.10.2, **Delete**: with the login's token, the record becomes a tombstone that
    /// keeps its version and charges.
    fn delete(&self, at: &At<'_>, token: &[u8; TOKEN_LEN]) -> Outcome {
        match &at.record {
            Some(r)
                if r.state == AccountState::Registered
                    && r.token.as_ref().is_some_and(|t| t.admits(token, at.now)) =>
            {
                let tombstone = r.tombstone(self.config.budget, self.config.ksf_profile.code());
                (Some(RecordChange::Put(tombstone)), Deferred::Response(Response::Deleted))
            }
            _ => uncharged(RefusalReason::NotAuthorised),
        }
    }

    /// Whether a registration request may go on: always for an account without a registration
    /// (none, phantom or tombstone); for a registered one only with its stored, unexpired token.
    fn authorised(
        &self,
        record: Option<&AccountRecord>,
        token: Option<&[u8; TOKEN_LEN]>,
        now: u64,
    ) -> bool {
        match record {
            Some(r) if r.state == AccountState::Registered => match (&r.token, token) {
                (Some(stored), Some(given)) => stored.admits(given, now),
                _ => false,
            },
            _ => true,
        }
    }

    fn verify_ke3(&self, account: &[u8], body: &TicketBody, ke3: &[u8]) -> Option<()> {
        let state = ServerLogin::<VaultSuite>::deserialize(&body.state).ok()?;
        let message = CredentialFinalization::deserialize(ke3).ok()?;
        state.finish(message, self.login_parameters(account)).ok().map(|_| ())
    }

    fn login_parameters<'a>(&'a self, account: &'a [u8]) -> ServerLoginParameters<'a, 'a> {
        let ids = Identities { account, fleet: &self.secrets.fleet_id };
        ServerLoginParameters { context: Some(CONTEXT), identifiers: ids.opaque() }
    }

    /// `HKDF-SHA256(salt = none, ikm = ticket_key, info = "e2ee-backups/v1/vault/token" || 0x00 ||
    /// vec16(account) || attempt_id || serial u64)`, 16 bytes: unique per charge, and
    /// deterministic so that a replicated vault derives the same token on every replica.
    fn derive_token(&self, account: &[u8], attempt: &Attempt) -> [u8; TOKEN_LEN] {
        let info = Writer::new()
            .bytes(TOKEN_LABEL.as_bytes())
            .u8(0)
            .vec16(account)
            .bytes(&attempt.id)
            .u64(attempt.serial)
            .finish();
        let mut out = [0u8; TOKEN_LEN];
        hkdf_12::Hkdf::<Sha256>::new(None, self.secrets.ticket_key.as_ref())
            .expand(&info, &mut out)
            .expect("16 bytes is a valid HKDF length");
        out
    }

    /// Turns a reply into the sealed response bytes. Draws KE2's nonces and key shares, the
    /// ticket nonce and the response nonce from `rng`.
    pub fn seal<R: RngCore + CryptoRng>(&self, reply: Reply, rng: &mut R) -> Vec<u8> {
        let Reply { account, sealer, decision } = reply;
        let response = match decision.0 {
            Deferred::Response(response) => response,
            Deferred::RegisterChallenge {
                registration_request,
                record_version,
                ksf_profile,
                not_after,
            } => self.register_challenge(
                rng,
                &account,
                *registration_request,
                record_version,
                ksf_profile,
                not_after,
            ),
            Deferred::Ke2 { ke1, attempt, registration, remaining, ksf_profile, not_after } => self
                .compute_ke2(rng, &account, &ke1, attempt, registration, not_after)
                .map(|(ke2, ticket)| Response::LoginChallenge {
                    ke2,
                    ticket,
                    remaining,
                    ksf_profile,
                })
                .unwrap_or(Response::Refused { reason: RefusalReason::InvalidRequest, remaining }),
        };
        sealer
            .seal(rng, &response.encode())
            .expect("vault responses are far below the channel's size limit")
    }

    /// Spec 4.10.4: draws a fresh OPRF seed, evaluates the registration request under it, and
    /// seals the seed into the registration ticket for `record_version`.
    fn register_challenge<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        account: &[u8],
        registration_request: RegistrationRequest<VaultSuite>,
        record_version: u32,
        ksf_profile: u8,
        not_after: u64,
    ) -> Response {
        let mut oprf_seed = Zeroizing::new([0u8; OPRF_SEED_LEN]);
        rng.fill_bytes(oprf_seed.as_mut());
        let evaluated = self.secrets.setup_with_seed(&oprf_seed).and_then(|setup| {
            ServerRegistration::start(&setup, registration_request, account).ok()
        });
        let Some(started) = evaluated else {
            // The request decoded when it was decided; an evaluation cannot fail after that.
            return Response::Refused { reason: RefusalReason::InvalidRequest, remaining: 0 };
        };
        let mut registration_response = [0u8; len::REGISTRATION_RESPONSE];
        registration_response.copy_from_slice(&started.message.serialize());
        let registration_ticket = ticket::seal_registration(
            rng,
            &self.secrets.registration_ticket_key,
            &self.secrets.fleet_id,
            account,
            record_version,
            &RegistrationTicketBody { not_after, oprf_seed },
        );
        Response::RegisterChallenge {
            registration_response,
            record_version,
            ksf_profile,
            registration_ticket: Box::new(registration_ticket),
        }
    }

    fn compute_ke2<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        account: &[u8],
        ke1: &CredentialRequest<VaultSuite>,
        attempt: Attempt,
        registration: Option<LiveRegistration>,
        not_after: u64,
    ) -> Option<(Box<[u8; len::KE2]>, Vec<u8>)> {
        let request = ke1.clone();
        // A registration's OPRF key comes from the seed its own registration ticket carries; a
        // phantom's fake KE2 evaluates under the fleet seed, a key no registration ever uses.
        let (record, registration_setup) = match registration {
            Some(live) => {
                let body = ticket::open_registration(
                    &self.secrets.registration_ticket_key,
                    &self.secrets.fleet_id,
                    account,
                    live.record_version,
                    &live.oprf_ticket,
                )?;
                (
                    Some(ServerRegistration::deserialize(&live.upload).ok()?),
                    Some(self.secrets.setup_with_seed(&body.oprf_seed)?),
                )
            }
            None => (None, None),
        };
        let setup = registration_setup.as_ref().unwrap_or(&self.secrets.opaque);
        let started = ServerLogin::start(
            rng,
            setup,
            record,
            request,
            account,
            self.login_parameters(account),
        )
        .ok()?;
        let mut ke2 = Box::new([0u8; len::KE2]);
        ke2.copy_from_slice(&started.message.serialize());
        let body = TicketBody {
            attempt_id: attempt.id,
            serial: attempt.serial,
            not_after,
            state: Zeroizing::new(started.state.serialize().to_vec()),
        };
        let ticket = ticket::seal(
            rng,
            &self.secrets.login_ticket_key,
            &self.secrets.fleet_id,
            account,
            &body,
        );
        Some((ke2, ticket))
    }
}

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
