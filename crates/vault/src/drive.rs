//! The client's journeys over any transport (spec section 4.11): register, log in, change the
//! password, delete. Each journey runs the typed states of [`Registration`] and [`Login`] over
//! an [`Exchange`], the one method a transport has to offer: send one sealed request for an
//! account, get the sealed response back.
//!
//! ```
//! use e2ee_backup_kdf::BackupKey;
//! use e2ee_backup_vault::drive;
//! use e2ee_backup_vault::{AccountId, Endpoint, FleetId, Hsm, HsmConfig, HsmSecrets, KsfProfile};
//! use e2ee_backup_vault::MemoryVault;
//! use rand_core::OsRng;
//!
//! let fleet = FleetId::from_static(b"fleet.example");
//! let alice = AccountId::from_static(b"alice");
//! let secrets = HsmSecrets::generate(&mut OsRng, fleet);
//! let (key_id, public) = secrets.public_keys()[0];
//! let config = HsmConfig { ksf_profile: KsfProfile::Fast, ..HsmConfig::default() };
//! let mut vault = MemoryVault::new(Hsm::new(secrets, config).unwrap(), 1_780_000_000);
//! let endpoint = Endpoint::new(fleet, key_id, public).accepting_fast_ksf();
//!
//! let key = BackupKey::generate();
//! let budget = drive::register(&mut vault, &mut OsRng, &endpoint, alice, b"pw", &key).unwrap();
//! assert_eq!(budget, 10);
//! let session = drive::login(&mut vault, &mut OsRng, &endpoint, alice, b"pw").unwrap();
//! assert_eq!(session.key().expose_secret(), key.expose_secret());
//! drive::delete(&mut vault, &mut OsRng, session, alice).unwrap();
//! ```

use e2ee_backup_kdf::BackupKey;
use rand_core::{CryptoRng, RngCore};
use thiserror::Error;

use crate::client::{ClientError, Endpoint, LoggedIn, Login, Registration};
use crate::ids::AccountId;

/// A transport to the vault: one sealed request for `account` in, its sealed response out.
pub trait Exchange {
    /// Why an exchange failed (the request may or may not have reached the vault).
    type Error: std::error::Error + 'static;

    /// Sends `request` (a sealed envelope for `account`) and returns the sealed response.
    fn exchange(&mut self, account: &[u8], request: &[u8]) -> Result<Vec<u8>, Self::Error>;
}

/// Why a journey failed: the transport, or the vault protocol (a wrong password, a refusal, a
/// response that does not open).
#[derive(Debug, Error)]
pub enum DriveError<E: std::error::Error + 'static> {
    /// The exchange failed.
    #[error(transparent)]
    Transport(E),
    /// The vault refused, or its response did not open or decode.
    #[error(transparent)]
    Vault(#[from] ClientError),
}

fn send<T: Exchange>(
    transport: &mut T,
    account: &[u8],
    request: &[u8],
) -> Result<Vec<u8>, DriveError<T::Error>> {
    transport.exchange(account, request).map_err(DriveError::Transport)
}

/// Registers `password` for `account`, sealing `key`: RegisterStart, then RegisterFinish. The
/// budget the vault granted.
pub fn register<T: Exchange, R: RngCore + CryptoRng>(
    transport: &mut T,
    rng: &mut R,
    endpoint: &Endpoint,
    account: AccountId<'_>,
    password: &[u8],
    key: &BackupKey,
) -> Result<u8, DriveError<T::Error>> {
    let (state, request) = Registration::start(rng, endpoint, account, password, None)?;
    let (state, request) =
        state.receive(rng, &send(transport, account.as_bytes(), &request)?, key)?;
    Ok(state.receive(&send(transport, account.as_bytes(), &request)?)?)
}

/// Logs in: KE1, then KE3. K and a token for one follow-up.
pub fn login<T: Exchange, R: RngCore + CryptoRng>(
    transport: &mut T,
    rng: &mut R,
    endpoint: &Endpoint,
    account: AccountId<'_>,
    password: &[u8],
) -> Result<LoggedIn, DriveError<T::Error>> {
    let (state, request) = Login::start(rng, endpoint, account, password)?;
    let (state, request) = state.receive(rng, &send(transport, account.as_bytes(), &request)?)?;
    Ok(state.receive(&send(transport, account.as_bytes(), &request)?)?)
}

/// Registers `new_password` after a login, sealing K again (or `rotate_to`); the key now sealed.
pub fn change_password<T: Exchange, R: RngCore + CryptoRng>(
    transport: &mut T,
    rng: &mut R,
    session: LoggedIn,
    account: AccountId<'_>,
    new_password: &[u8],
    rotate_to: Option<&BackupKey>,
) -> Result<BackupKey, DriveError<T::Error>> {
    let (state, key, request) = session.change_password(rng, new_password, rotate_to)?;
    let (state, request) =
        state.receive(rng, &send(transport, account.as_bytes(), &request)?, &key)?;
    state.receive(&send(transport, account.as_bytes(), &request)?)?;
    Ok(key)
}

/// Erases the account's record after a login (password mode off).
pub fn delete<T: Exchange, R: RngCore + CryptoRng>(
    transport: &mut T,
    rng: &mut R,
    session: LoggedIn,
    account: AccountId<'_>,
) -> Result<(), DriveError<T::Error>> {
    let (state, request) = session.delete(rng)?;
    Ok(state.receive(&send(transport, account.as_bytes(), &request)?)?)
}
