//! The passwords-and-modes journey: changing the password, and switching between key mode and
//! password mode while the backups stay as they are (spec section 5.3: `change_password`,
//! `switch_to_password`, `switch_to_key`; the states of 5.2).

use e2ee_backup_kdf::digits;
use rand_core::OsRng;
use zeroize::Zeroizing;

use super::Client;
use crate::error::{Error, Result};
use crate::state::{Journal, Mode, key_id_hex};

impl Client {
    fn password_key_id(&self, operation: &'static str, hint: &'static str) -> Result<String> {
        self.no_journal(operation)?;
        match &self.state.mode {
            Mode::Password { key_id } => Ok(key_id.clone()),
            _ => Err(self.illegal(operation, hint)),
        }
    }

    /// Replaces the password (logging in with the old one); K is kept.
    pub fn change_password(&mut self, old: &str, new: &str) -> Result<()> {
        const OP: &str = "change the password";
        let key_id = self.password_key_id(OP, "there is no password to change")?;
        let session = self.login_holding(old, &key_id)?;
        let (state, key, envelope) = session.change_password(&mut OsRng, new.as_bytes(), None)?;
        self.finish_registration(state, envelope, &key)
    }

    /// Key mode to password mode: registers the K this device holds. Called again after an
    /// interruption, it registers again.
    pub fn switch_to_password(&mut self, password: &str) -> Result<()> {
        const OP: &str = "switch to password mode";
        match (&self.state.mode, &self.state.journal) {
            (Mode::Key { key_id }, None) => {
                if self.state.vault.is_none() {
                    return Err(Error::NoVault);
                }
                let key_id = key_id.clone();
                self.commit_with(|s| s.journal = Some(Journal::Registering { key_id }))?;
            }
            (Mode::Key { .. }, Some(Journal::Registering { .. })) => {}
            (_, Some(journal)) => {
                return Err(Error::PendingOperation { operation: OP, pending: journal.name() });
            }
            _ => return Err(self.illegal(OP, "only key mode switches to password mode")),
        }
        self.finish_registering(password)
    }

    /// Password mode to key mode: logs in, enters key mode, deletes the vault record, and
    /// returns the 64-digit key to show. Called again in key mode while the deletion is
    /// pending, it finishes the deletion.
    pub fn switch_to_key(&mut self, password: &str) -> Result<Zeroizing<String>> {
        const OP: &str = "switch to key mode";
        let key_id = match (&self.state.mode, &self.state.journal) {
            (Mode::Password { key_id }, None) => key_id.clone(),
            (Mode::Key { key_id }, Some(Journal::DeletingVaultRecord)) => key_id.clone(),
            (_, Some(journal)) => {
                return Err(Error::PendingOperation { operation: OP, pending: journal.name() });
            }
            _ => return Err(self.illegal(OP, "only password mode switches to key mode")),
        };
        let key = self.key(&key_id)?;
        let session = match self.login(password) {
            Ok(session) => session,
            Err(err) if matches!(self.state.mode, Mode::Password { .. }) => {
                return Err(self.login_failed(err, Some(key_id)));
            }
            Err(err) => return Err(err),
        };
        if key_id_hex(session.key()) != key_id {
            return Err(Error::VaultKeyMismatch);
        }
        if matches!(self.state.mode, Mode::Password { .. }) {
            self.commit_with(|s| {
                s.mode = Mode::Key { key_id };
                s.journal = Some(Journal::DeletingVaultRecord);
            })?;
        }
        self.delete_vault_record(session)?;
        self.commit_with(|s| s.journal = None)?;
        Ok(digits::to_display(&key))
    }
}
