//! The client role (spec section 4.11).
//!
//! Each protocol state is its own type, and each step consumes it: an answer can only be fed to
//! the state that asked for it, and a state can answer once. Every step returns the next state
//! and the sealed envelope to send; the caller moves the bytes, this module never does IO.
//!
//! ```text
//! Registration::start ─► AwaitingRegisterChallenge ─► AwaitingRegistered ─► budget
//! Login::start ─► AwaitingLoginChallenge ─► AwaitingKey ─► LoggedIn ─┬─► change_password (registration)
//!                                                                     └─► delete ─► AwaitingDeleted
//! ```

use e2ee_backup_kdf::BackupKey;
use opaque_ke::{
    ClientLogin, ClientLoginFinishParameters, ClientRegistration,
    ClientRegistrationFinishParameters, CredentialResponse, RegistrationResponse,
};
use rand_core::{CryptoRng, RngCore};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::channel::{self, ChannelError, FleetPublicKey, PendingResponse};
use crate::fleet::FleetBundle;
use crate::ids::{AccountId, FleetId, IdError};
use crate::messages::{RefusalReason, Request, Response, len};
use crate::record::{REGISTRATION_LEN, TOKEN_LEN};
use crate::suite::{CONTEXT, Identities, KsfProfile, VaultSuite};
use crate::wire::WireError;
use crate::wrap;

/// "1 attempt remains", "3 attempts remain".
fn attempts_remain(n: u8) -> String {
    match n {
        1 => "1 attempt remains".to_owned(),
        n => format!("{n} attempts remain"),
    }
}

/// Everything a client step can fail with. Messages say what happened and carry no secret.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The request could not be sealed or the response could not be opened.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The response opened but does not decode.
    #[error("the vault's response is malformed: {0}")]
    Malformed(#[from] WireError),
    /// The vault answered with a message that does not answer this request.
    #[error("the vault answered {got} where {expected} was expected")]
    UnexpectedResponse {
        /// What the client waits for.
        expected: &'static str,
        /// What came.
        got: &'static str,
    },
    /// The password is wrong (or the account has no password registration).
    #[error(
        "wrong password, or no password is registered for this account: {} before the backup key is destroyed",
        attempts_remain(*remaining)
    )]
    WrongPassword {
        /// Attempts left.
        remaining: u8,
    },
    /// The account is locked for good: its budget ran out and the vault erased its key.
    #[error("the account is locked: too many wrong passwords, and the vault erased the key")]
    Locked,
    /// No attempts are left, but logins already in progress may still succeed; the account
    /// locks for good once they end.
    #[error(
        "no password attempts are left; a login already in progress may still succeed, else the account locks"
    )]
    Exhausted,
    /// The vault refused the request.
    #[error("the vault refused the request ({}); {}", reason.name(), attempts_remain(*remaining))]
    Refused {
        /// Why.
        reason: RefusalReason,
        /// Attempts left.
        remaining: u8,
    },
    /// The vault asked for a stretching profile the client does not accept.
    #[error("the vault asked for key stretching profile {0}, which this client does not accept")]
    WeakKsf(u8),
    /// The vault returned a sealed key that does not open with this login's export key.
    #[error("the key the vault returned does not open: it belongs to another registration")]
    SealedKeyDoesNotOpen,
    /// OPAQUE rejected a message (an invalid point, a reflected element).
    #[error("the vault's OPAQUE message is invalid")]
    Opaque,
    /// An account or fleet identifier of the wrong length.
    #[error(transparent)]
    Id(#[from] IdError),
    /// The fleet key bundle holds no key.
    #[error("the fleet key bundle holds no channel key")]
    NoFleetKey,
}

/// Where and how to reach the vault: the fleet, one of its channel keys (from a verified fleet
/// key bundle), and the stretching profiles this client accepts.
#[derive(Debug, Clone)]
pub struct Endpoint {
    fleet_id: Vec<u8>,
    key_id: u8,
    public: FleetPublicKey,
    accept_fast_ksf: bool,
}

impl Endpoint {
    /// An endpoint from its parts.
    pub fn new(fleet_id: FleetId<'_>, key_id: u8, public: FleetPublicKey) -> Self {
        Self { fleet_id: fleet_id.as_bytes().to_vec(), key_id, public, accept_fast_ksf: false }
    }

    /// An endpoint from a verified bundle: the key with the highest id.
    pub fn from_bundle(bundle: &FleetBundle) -> Result<Self, ClientError> {
        let (id, key) = bundle.keys.iter().max_by_key(|k| k.0).ok_or(ClientError::NoFleetKey)?;
        let fleet_id = FleetId::new(&bundle.fleet_id).map_err(ClientError::Id)?;
        Ok(Self::new(fleet_id, *id, *key))
    }

    /// Also accepts the fast stretching profile. For tests and benchmarks only: a vault that
    /// asks for it makes a stolen registration cheap to attack.
    pub fn accepting_fast_ksf(mut self) -> Self {
        self.accept_fast_ksf = true;
        self
    }

    /// The fleet identifier.
    pub fn fleet_id(&self) -> FleetId<'_> {
        FleetId::new(&self.fleet_id).expect("an endpoint is made from a FleetId")
    }

    /// The channel key requests are sealed to: its id and its public key.
    pub fn key(&self) -> (u8, FleetPublicKey) {
        (self.key_id, self.public)
    }

    fn ksf(&self, code: u8) -> Result<opaque_ke::argon2::Argon2<'static>, ClientError> {
        match KsfProfile::from_code(code) {
            Some(KsfProfile::Mobile) => Ok(KsfProfile::Mobile.argon2()),
            Some(KsfProfile::Fast) if self.accept_fast_ksf => Ok(KsfProfile::Fast.argon2()),
            _ => Err(ClientError::WeakKsf(code)),
        }
    }

    fn seal<R: RngCore + CryptoRng>(
        &self,
        rng: &mut R,
        account: &[u8],
        request: &Request,
    ) -> Result<(Vec<u8>, PendingResponse), ClientError> {
        let plain = Zeroizing::new(request.encode());
        Ok(channel::seal_request(rng, &self.fleet_id, self.key_id, &self.public, account, &plain)?)
    }
}

/// A single-use authorisation from a successful login.
#[derive(Clone)]
pub struct SessionToken(Zeroizing<[u8; TOKEN_LEN]>);

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken(<secret>)")
    }
}

/// The context every state carries: endpoint and account.
#[derive(Debug, Clone)]
struct Session {
    endpoint: Endpoint,
    account: Vec<u8>,
}

impl Session {
    fn ids(&self) -> Identities<'_> {
        Identities { account: &self.account, fleet: &self.endpoint.fleet_id }
    }

    fn open(&self, pending: PendingResponse, bytes: &[u8]) -> Result<Response, ClientError> {
        let plain = pending.open(bytes)?;
        Ok(Response::decode(&plain)?)
    }
}

fn unexpected(expected: &'static str, got: Response) -> ClientError {
    match got {
        Response::Refused { reason: RefusalReason::Locked, .. } => ClientError::Locked,
        Response::Refused { reason: RefusalReason::Exhausted, .. } => ClientError::Exhausted,
        Response::Refused { reason, remaining } => ClientError::Refused { reason, remaining },
        other => ClientError::UnexpectedResponse { expected, got: other.kind() },
    }
}

/// Registration: stores K in the vault behind a password.
pub struct Registration;

impl Registration {
    /// Starts registering `password` for `account`. An account that has no registration (never
    /// registered, or deleted) needs no token; a registered one needs the token of a login of
    /// this session (spec 4.10.2), else the vault refuses with `not-authorised`.
    pub fn start<R: RngCore + CryptoRng>(
        rng: &mut R,
        endpoint: &Endpoint,
        account: AccountId<'_>,
        password: &[u8],
        token: Option<SessionToken>,
    ) -> Result<(AwaitingRegisterChallenge, Vec<u8>), ClientError> {
        let session = Session { endpoint: endpoint.clone(), account: account.as_bytes().to_vec() };
        let started = ClientRegistration::<VaultSuite>::start(rng, password)
            .map_err(|_| ClientError::Opaque)?;
        let mut registration_request = [0u8; len::REGISTRATION_REQUEST];
        registration_request.copy_from_slice(&started.message.serialize());
        let request =
            Request::RegisterStart { registration_request, token: token.as_ref().map(|t| *t.0) };
        let (envelope, pending) = endpoint.seal(rng, account.as_bytes(), &request)?;
        let state = AwaitingRegisterChallenge {
            session,
            pending,
            opaque: started.state,
            password: Zeroizing::new(password.to_vec()),
            token,
        };
        Ok((state, envelope))
    }
}

/// Waiting for the vault's registration challenge.
pub struct AwaitingRegisterChallenge {
    session: Session,
    pending: PendingResponse,
    opaque: ClientRegistration<VaultSuite>,
    password: Zeroizing<Vec<u8>>,
    token: Option<SessionToken>,
}

impl AwaitingRegisterChallenge {
    /// Finishes the OPAQUE registration and seals `key` under the new export key.
    pub fn receive<R: RngCore + CryptoRng>(
        self,
        rng: &mut R,
        response: &[u8],
        key: &BackupKey,
    ) -> Result<(AwaitingRegistered, Vec<u8>), ClientError> {
        let Self { session, pending, opaque, password, token } = self;
        let (registration_response, record_version, ksf_profile, registration_ticket) =
            match session.open(pending, response)? {
                Response::RegisterChallenge {
                    registration_response,
                    record_version,
                    ksf_profile,
                    registration_ticket,
                } => (registration_response, record_version, ksf_profile, registration_ticket),
                other => return Err(unexpected("RegisterChallenge", other)),
            };
        let ksf = session.endpoint.ksf(ksf_profile)?;
        let message = RegistrationResponse::deserialize(&registration_response)
            .map_err(|_| ClientError::Opaque)?;
        let finished = opaque
            .finish(
                rng,
                &password,
                message,
                ClientRegistrationFinishParameters::new(session.ids().opaque(), Some(&ksf)),
            )
            .map_err(|_| ClientError::Opaque)?;
        let export_key = Zeroizing::new(finished.export_key.to_vec());
        let sealed = wrap::seal_key(rng, &export_key, &session.account, record_version, key);
        let mut sealed_key = [0u8; wrap::SEALED_KEY_LEN];
        sealed_key.copy_from_slice(&sealed);
        let mut upload = Box::new([0u8; REGISTRATION_LEN]);
        upload.copy_from_slice(&finished.message.serialize());
        let request = Request::RegisterFinish {
            record_version,
            ksf_profile,
            registration_upload: upload,
            sealed_key,
            registration_ticket,
            token: token.map(|t| *t.0),
        };
        let (envelope, pending) = session.endpoint.seal(rng, &session.account, &request)?;
        Ok((AwaitingRegistered { session, pending }, envelope))
    }
}

/// Waiting for the vault to confirm the registration is stored.
pub struct AwaitingRegistered {
    session: Session,
    pending: PendingResponse,
}

impl AwaitingRegistered {
    /// The account's budget, once the vault has stored the registration.
    pub fn receive(self, response: &[u8]) -> Result<u8, ClientError> {
        match self.session.open(self.pending, response)? {
            Response::Registered { budget } => Ok(budget),
            other => Err(unexpected("Registered", other)),
        }
    }
}

/// Login: gets K back with the password.
pub struct Login;

impl Login {
    /// Sends KE1. The vault charges one attempt for it.
    pub fn start<R: RngCore + CryptoRng>(
        rng: &mut R,
        endpoint: &Endpoint,
        account: AccountId<'_>,
        password: &[u8],
    ) -> Result<(AwaitingLoginChallenge, Vec<u8>), ClientError> {
        let session = Session { endpoint: endpoint.clone(), account: account.as_bytes().to_vec() };
        let started =
            ClientLogin::<VaultSuite>::start(rng, password).map_err(|_| ClientError::Opaque)?;
        let mut ke1 = Box::new([0u8; len::KE1]);
        ke1.copy_from_slice(&started.message.serialize());
        let (envelope, pending) =
            endpoint.seal(rng, account.as_bytes(), &Request::LoginStart { ke1 })?;
        let state = AwaitingLoginChallenge {
            session,
            pending,
            opaque: started.state,
            password: Zeroizing::new(password.to_vec()),
        };
        Ok((state, envelope))
    }
}

/// Waiting for KE2.
pub struct AwaitingLoginChallenge {
    session: Session,
    pending: PendingResponse,
    opaque: ClientLogin<VaultSuite>,
    password: Zeroizing<Vec<u8>>,
}

impl AwaitingLoginChallenge {
    /// Checks KE2 with the password and sends KE3. A wrong password ends here, with the number
    /// of attempts the vault says remain; no KE3 is sent.
    pub fn receive<R: RngCore + CryptoRng>(
        self,
        rng: &mut R,
        response: &[u8],
    ) -> Result<(AwaitingKey, Vec<u8>), ClientError> {
        let Self { session, pending, opaque, password } = self;
        let (ke2, ticket, remaining, ksf_profile) = match session.open(pending, response)? {
            Response::LoginChallenge { ke2, ticket, remaining, ksf_profile } => {
                (ke2, ticket, remaining, ksf_profile)
            }
            other => return Err(unexpected("LoginChallenge", other)),
        };
        let ksf = session.endpoint.ksf(ksf_profile)?;
        let message =
            CredentialResponse::deserialize(ke2.as_ref()).map_err(|_| ClientError::Opaque)?;
        let params =
            ClientLoginFinishParameters::new(Some(CONTEXT), session.ids().opaque(), Some(&ksf));
        let finished = match opaque.finish(rng, &password, message, params) {
            Ok(finished) => finished,
            Err(opaque_ke::errors::ProtocolError::InvalidLoginError) => {
                return Err(ClientError::WrongPassword { remaining });
            }
            Err(_) => return Err(ClientError::Opaque),
        };
        let mut ke3 = Box::new([0u8; len::KE3]);
        ke3.copy_from_slice(&finished.message.serialize());
        let (envelope, pending) =
            session.endpoint.seal(rng, &session.account, &Request::LoginFinish { ticket, ke3 })?;
        let export_key = Zeroizing::new(finished.export_key.to_vec());
        Ok((AwaitingKey { session, pending, export_key }, envelope))
    }
}

/// Waiting for the sealed K.
pub struct AwaitingKey {
    session: Session,
    pending: PendingResponse,
    export_key: Zeroizing<Vec<u8>>,
}

impl AwaitingKey {
    /// Opens the sealed K.
    pub fn receive(self, response: &[u8]) -> Result<LoggedIn, ClientError> {
        match self.session.open(self.pending, response)? {
            Response::LoginSucceeded { sealed_key, record_version, token, remaining } => {
                let key = wrap::open_key(
                    &self.export_key,
                    &self.session.account,
                    record_version,
                    &sealed_key,
                )
                .ok_or(ClientError::SealedKeyDoesNotOpen)?;
                Ok(LoggedIn {
                    session: self.session,
                    key,
                    token: SessionToken(Zeroizing::new(token)),
                    remaining,
                })
            }
            Response::Refused { reason: RefusalReason::LoginFailed, remaining } => {
                Err(ClientError::WrongPassword { remaining })
            }
            other => Err(unexpected("LoginSucceeded", other)),
        }
    }
}

/// After a successful login: K, and one authorised follow-up.
pub struct LoggedIn {
    session: Session,
    key: BackupKey,
    token: SessionToken,
    remaining: u8,
}

impl std::fmt::Debug for LoggedIn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggedIn").field("remaining", &self.remaining).finish_non_exhaustive()
    }
}

impl LoggedIn {
    /// The backup key.
    pub fn key(&self) -> &BackupKey {
        &self.key
    }

    /// The restored budget.
    pub fn remaining(&self) -> u8 {
        self.remaining
    }

    /// Registers a new password, refilling the budget. The new registration seals K again, or
    /// `rotate_to` if given (the caller then re-encrypts its backups under the new key).
    pub fn change_password<R: RngCore + CryptoRng>(
        self,
        rng: &mut R,
        new_password: &[u8],
        rotate_to: Option<&BackupKey>,
    ) -> Result<(AwaitingRegisterChallenge, BackupKey, Vec<u8>), ClientError> {
        let key = rotate_to.cloned().unwrap_or_else(|| self.key.clone());
        let (state, envelope) = Registration::start(
            rng,
            &self.session.endpoint,
            AccountId::new(&self.session.account)?,
            new_password,
            Some(self.token),
        )?;
        Ok((state, key, envelope))
    }

    /// Asks the vault to erase the account's record (turning password mode off).
    pub fn delete<R: RngCore + CryptoRng>(
        self,
        rng: &mut R,
    ) -> Result<(AwaitingDeleted, Vec<u8>), ClientError> {
        let request = Request::Delete { token: *self.token.0 };
        let (envelope, pending) =
            self.session.endpoint.seal(rng, &self.session.account, &request)?;
        Ok((AwaitingDeleted { session: self.session, pending }, envelope))
    }
}

/// Waiting for the vault to confirm the erasure.
pub struct AwaitingDeleted {
    session: Session,
    pending: PendingResponse,
}

impl AwaitingDeleted {
    /// Done once the vault confirms.
    pub fn receive(self, response: &[u8]) -> Result<(), ClientError> {
        match self.session.open(self.pending, response)? {
            Response::Deleted => Ok(()),
            other => Err(unexpected("Deleted", other)),
        }
    }
}
