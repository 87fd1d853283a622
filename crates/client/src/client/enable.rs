//! The enabling journey: turning backups on, in key mode (K drawn and shown as 64 digits) or
//! in password mode (K registered in the vault behind the password), resumable after a crash
//! (spec section 5.3: `enable_with_key`, `enable_with_password`; the journal of 5.6.1).

use e2ee_backup_kdf::{BackupKey, digits};
use e2ee_backup_vault::{ClientError, RefusalReason};
use rand_core::OsRng;
use zeroize::Zeroizing;

use super::Client;
use crate::error::{Error, Result};
use crate::state::{Journal, Mode};

impl Client {
    /// Turns backups on in key mode: draws K (or, when locked out on a device that still holds
    /// K, keeps it) and returns the 64-digit key for the user to write down.
    pub fn enable_with_key(&mut self) -> Result<Zeroizing<String>> {
        const OP: &str = "enable backups with a key";
        self.no_journal(OP)?;
        let key_id = match &self.state.mode {
            Mode::LockedOut { key_id: Some(key_id) } => key_id.clone(),
            Mode::Off | Mode::LockedOut { key_id: None } => self.add_key(&BackupKey::generate())?,
            _ => return Err(self.illegal(OP, "backups are already on; rotate the key or disable")),
        };
        let key = self.key(&key_id)?;
        self.store.create()?;
        self.commit_with(|s| s.mode = Mode::Key { key_id })?;
        Ok(digits::to_display(&key))
    }

    /// Turns backups on in password mode: draws K, keeps it locally, then registers it in the
    /// vault behind `password`. Called again after an interruption, it registers the same K.
    pub fn enable_with_password(&mut self, password: &str) -> Result<()> {
        const OP: &str = "enable backups with a password";
        match (&self.state.mode, &self.state.journal) {
            (Mode::Off, None) => {
                if self.state.vault.is_none() {
                    return Err(Error::NoVault);
                }
                let key_id = self.add_key(&BackupKey::generate())?;
                self.commit_with(|s| s.journal = Some(Journal::Registering { key_id }))?;
            }
            (Mode::Off, Some(Journal::Registering { .. })) => {}
            (Mode::Off | Mode::Key { .. }, Some(journal)) => {
                return Err(Error::PendingOperation { operation: OP, pending: journal.name() });
            }
            (Mode::LockedOut { .. }, _) => {
                return Err(self.illegal(
                    OP,
                    "the vault refuses a locked account for good; use key mode instead",
                ));
            }
            _ => return Err(self.illegal(OP, "backups are already on")),
        }
        self.finish_registering(password)
    }

    /// Registers the key of the `Registering` journal and moves to password mode.
    pub(super) fn finish_registering(&mut self, password: &str) -> Result<()> {
        let Some(Journal::Registering { key_id }) = self.state.journal.clone() else {
            return Ok(());
        };
        let key = self.key(&key_id)?;
        match self.register(password, &key) {
            Ok(()) => {}
            // The account already has a registration (ours, if an earlier run was cut off after
            // the vault stored it; or another device's): the vault registers again only after a
            // login (spec 4.10.2). Log in with the password; keep the registration if it seals
            // this K, else register this K with the login's token.
            Err(Error::Vault(ClientError::Refused {
                reason: RefusalReason::NotAuthorised,
                ..
            })) => {
                let held = Some(key_id.clone());
                let session = self.login(password).map_err(|e| self.login_failed(e, held))?;
                if session.key() != &key {
                    let (state, _, envelope) =
                        session.change_password(&mut OsRng, password.as_bytes(), Some(&key))?;
                    self.finish_registration(state, envelope, &key)?;
                }
            }
            Err(e) => return Err(e),
        }
        // Only now, so that a failed first registration leaves no empty store behind.
        self.store.create()?;
        self.commit_with(|s| {
            s.mode = Mode::Password { key_id };
            s.journal = None;
        })
    }
}
