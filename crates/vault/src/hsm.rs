//! The HSM role (spec section 4.10).
//!
//! The pipeline itself is described on [`Hsm`].

use opaque_ke::key_exchange::tripledh::DiffieHellman as _;
use opaque_ke::{
    CredentialFinalization, CredentialRequest, RegistrationRequest, RegistrationUpload,
    ServerLogin, ServerLoginParameters, ServerRegistration,
};
use rand_core::{CryptoRng, RngCore};
use sha2_10::Sha256;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::channel::{self, ChannelError, RequestEnvelope};
use crate::messages::{RefusalReason, Request, Response, len};
use crate::record::{AccountRecord, AccountState, Attempt, TOKEN_LEN, Token};
use crate::suite::{CONTEXT, Identities, KsfProfile, VaultSuite};
use crate::ticket::{self, OPRF_SEED_LEN, RegistrationTicketBody, TicketBody};
use crate::wire::Writer;

use crate::command::{Command, Decided, Decision, Opened, RecordChange, Reply};
pub(crate) use crate::command::{Deferred, LiveRegistration};
use crate::secrets::HsmSecrets;
use crate::ticket::attempt_id;

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

/// One member of a vault fleet.
///
/// One pipeline serves every request, in process and in the replicated server alike (spec
/// sections 4.10.2 and 7.2):
///
/// 1. [`Hsm::open`] opens a sealed request and names its account.
/// 2. [`Opened::into_command`] splits it at time `now` into a [`Command`] (what a replicated
///    vault commits to its log) and a [`Pending`](crate::Pending) (the response sealer, which
///    stays with the connection).
/// 3. [`Hsm::apply`] decides the command on the account's stored record, without randomness
///    and without a clock of its own, into a [`Decided`]: the record change, if any, and the
///    [`Decision`], which only [`Decided::persist`] releases, after the driver's durable write
///    of the change succeeded. This is how the vault makes sure that no KE2 leaves before its
///    charged attempt is durable.
/// 4. [`Pending::reply`](crate::Pending::reply) pairs the decision with its sealer;
///    [`Hsm::seal`] computes the answer (KE2, tickets) and seals it, drawing its randomness only
///    now.
///
/// [`MemoryVault`](crate::MemoryVault) runs the pipeline on a `HashMap`; the server runs step 3
/// in its replication (one store, or a log every replica applies) and steps 1, 2 and 4 around
/// it.
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
        let evaluated = self.secrets.oprf_key_material(&oprf_seed, account).and_then(|material| {
            let opaque = &self.secrets.opaque;
            ServerRegistration::start_with_key_material(opaque, *material, registration_request)
                .ok()
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
        let (record, oprf_seed) = match registration {
            Some(live) => {
                let body = ticket::open_registration(
                    &self.secrets.registration_ticket_key,
                    &self.secrets.fleet_id,
                    account,
                    live.record_version,
                    &live.oprf_ticket,
                )?;
                (Some(ServerRegistration::deserialize(&live.upload).ok()?), body.oprf_seed)
            }
            None => (None, self.secrets.fleet_oprf_seed.clone()),
        };
        let material = self.secrets.oprf_key_material(&oprf_seed, account)?;
        // What `ServerLogin::start` does, with the OPRF key material given rather than derived
        // from the setup's own seed: the same draws, in the same order, and the same bytes.
        let builder = ServerLogin::builder_with_key_material(
            rng,
            &self.secrets.opaque,
            *material,
            record,
            request,
            self.login_parameters(account),
        )
        .ok()?;
        // 3DH's static-ephemeral share, DH(server AKE key, client key share), with opaque-ke's
        // own function for a key it does not hold, on the share it already decoded.
        let client_share = builder.data().to_group_type();
        let shared = self.secrets.ake_private.diffie_hellman(client_share);
        let started = builder.build(shared).ok()?;
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
