//! Talking to the vault, which every password journey shares: the transport, the fleet
//! bundle verified against the pin before the first request (spec section 5.3.1), logins and
//! the move to LockedOut (5.3.2), registration and the deletion of the vault record.

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_vault::{AwaitingRegisterChallenge, Endpoint, LoggedIn, Login, Registration};
use rand_core::OsRng;

use super::{Client, check_account};
use crate::error::{Error, Result};
use crate::state::{Journal, Mode, key_id_hex};
use crate::transport::VaultTransport;

impl Client {
    /// The transport to the vault at `url`: HTTP, with this client's retry policy. Without the
    /// `http` feature only the URL is checked, and an injected transport must carry the bytes.
    pub(super) fn url_transport(&self, url: &str) -> Result<Box<dyn VaultTransport>> {
        #[cfg(feature = "http")]
        return Ok(Box::new(
            crate::transport::HttpTransport::new(url)?
                .with_retry(self.retry, self.on_retry.clone()),
        ));
        #[cfg(not(feature = "http"))]
        {
            crate::transport::check_vault_url(url)?;
            Err(Error::NoHttpTransport)
        }
    }

    fn transport(&mut self) -> Result<&mut Box<dyn VaultTransport>> {
        if self.transport.is_none() {
            let url = self.state.vault.as_ref().ok_or(Error::NoVault)?.url.clone();
            self.transport = Some(self.url_transport(&url)?);
        }
        self.transport.as_mut().ok_or(Error::NoVault)
    }

    /// The vault endpoint from a freshly verified fleet bundle; stores a higher epoch.
    pub(super) fn endpoint(&mut self) -> Result<Endpoint> {
        if let Some(endpoint) = &self.endpoint {
            return Ok(endpoint.clone());
        }
        let settings = self.state.vault.clone().ok_or(Error::NoVault)?;
        let pinned = settings.pin.to_pinned()?;
        self.check("vault fleet-bundle")?;
        let signed = self.transport()?.fleet_bundle()?;
        let bundle = pinned.verify(&signed, self.now(), settings.last_seen_epoch)?;
        if settings.last_seen_epoch.is_none_or(|seen| bundle.epoch > seen) {
            self.commit_with(|s| {
                if let Some(v) = s.vault.as_mut() {
                    v.last_seen_epoch = Some(bundle.epoch);
                }
            })?;
        }
        let mut endpoint = Endpoint::from_bundle(&bundle)?;
        if self.accept_fast_ksf {
            endpoint = endpoint.accepting_fast_ksf();
        }
        self.endpoint = Some(endpoint.clone());
        Ok(endpoint)
    }

    fn call(&mut self, what: &str, envelope: &[u8]) -> Result<Vec<u8>> {
        self.check(&format!("vault send {what}"))?;
        let account = self.state.account.clone().into_bytes();
        let response = self.transport()?.call(&account, envelope)?;
        // A stop here is a crash after the vault acted but before the client saw the answer.
        self.check(&format!("vault reply {what}"))?;
        Ok(response)
    }

    pub(super) fn login(&mut self, password: &str) -> Result<LoggedIn> {
        let endpoint = self.endpoint()?;
        let account = check_account(&self.state.account)?;
        let (state, envelope) = Login::start(&mut OsRng, &endpoint, account, password.as_bytes())?;
        let response = self.call("login-start", &envelope)?;
        let (state, envelope) = state.receive(&mut OsRng, &response)?;
        let response = self.call("login-finish", &envelope)?;
        Ok(state.receive(&response)?)
    }

    /// Turns a failed login into the error to report, moving to locked out when the vault says
    /// its copy of K is gone.
    pub(super) fn login_failed(&mut self, err: Error, held: Option<String>) -> Error {
        if !matches!(err, Error::LockedOut) {
            return err;
        }
        let journal = match &self.state.journal {
            Some(Journal::Disabling { .. }) => self.state.journal.clone(),
            _ => None,
        };
        match self.commit_with(|s| {
            s.mode = Mode::LockedOut { key_id: held };
            s.journal = journal;
        }) {
            Ok(()) => Error::LockedOut,
            Err(commit_error) => commit_error,
        }
    }

    pub(super) fn register(&mut self, password: &str, key: &BackupKey) -> Result<()> {
        let endpoint = self.endpoint()?;
        let account = check_account(&self.state.account)?;
        let (state, envelope) =
            Registration::start(&mut OsRng, &endpoint, account, password.as_bytes(), None)?;
        self.finish_registration(state, envelope, key)
    }

    pub(super) fn finish_registration(
        &mut self,
        state: AwaitingRegisterChallenge,
        envelope: Vec<u8>,
        key: &BackupKey,
    ) -> Result<()> {
        let response = self.call("register-start", &envelope)?;
        let (state, envelope) = state.receive(&mut OsRng, &response, key)?;
        let response = self.call("register-finish", &envelope)?;
        state.receive(&response)?;
        Ok(())
    }

    pub(super) fn delete_vault_record(&mut self, session: LoggedIn) -> Result<()> {
        let (state, envelope) = session.delete(&mut OsRng)?;
        let response = self.call("delete", &envelope)?;
        Ok(state.receive(&response)?)
    }

    /// Logs in and checks that the vault seals this device's key.
    pub(super) fn login_holding(&mut self, password: &str, key_id: &str) -> Result<LoggedIn> {
        let session = match self.login(password) {
            Ok(session) => session,
            Err(err) => return Err(self.login_failed(err, Some(key_id.to_owned()))),
        };
        if key_id_hex(session.key()) != key_id {
            return Err(Error::VaultKeyMismatch);
        }
        Ok(session)
    }
}
