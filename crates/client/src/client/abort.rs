//! The abort journey: dropping an interrupted operation where that is safe, instead of
//! resuming it (spec section 5.6, `abort_pending` of 5.3; the rules for a key rotation are
//! those of 5.6.2, "Aborting").

use super::Client;
use crate::error::{Error, Result};
use crate::state::{Journal, RotatePhase, key_id_hex};

impl Client {
    /// Drops an interrupted operation where that is safe: a registration (the mode stays as it
    /// was; the vault may keep a record nobody uses), a vault record deletion (the record may
    /// stay), or a key rotation the vault has not confirmed (its copies are deleted, the new
    /// key forgotten, and the old key stays in force).
    ///
    /// A rotation whose request to seal the new key may have reached the vault needs
    /// `password` ([`Client::abort_needs_password`]): a login tells whether the vault still
    /// seals the old key (the rotation is dropped) or already the new one (it is refused: run
    /// [`Client::rotate_key`] again to finish it). So is a rotation that is deleting the old
    /// backups.
    pub fn abort_pending(&mut self, password: Option<&str>) -> Result<()> {
        const ROTATION: &str = "abort the interrupted key rotation";
        let Some(journal) = self.state.journal.clone() else { return Ok(()) };
        match journal {
            Journal::Registering { .. } | Journal::DeletingVaultRecord => {
                self.commit_with(|s| s.journal = None)
            }
            Journal::Rotating { phase: RotatePhase::Deleting, .. } => Err(Error::IllegalState {
                operation: ROTATION,
                state: "the old backups are being deleted",
                hint: "run the rotation again to finish it",
            }),
            Journal::Rotating {
                phase, sealing, old_key_id, new_key_id, copies, current, ..
            } => {
                if phase == RotatePhase::Rewrapping && sealing {
                    let password = password.ok_or(Error::IllegalState {
                        operation: ROTATION,
                        state: "the vault may already seal the new key",
                        hint: "the password is needed to ask it, or run the rotation again to \
                               finish it",
                    })?;
                    let session = match self.login(password) {
                        Ok(session) => session,
                        Err(err) => return Err(self.login_failed(err, Some(old_key_id))),
                    };
                    if key_id_hex(session.key()) == new_key_id {
                        return Err(Error::IllegalState {
                            operation: ROTATION,
                            state: "the vault already seals the new key",
                            hint: "run the rotation again to finish it",
                        });
                    }
                }
                for (_, copy) in copies.iter().chain(current.iter()) {
                    self.store.delete(copy, self.faults.as_ref())?;
                }
                self.commit_with(|s| s.journal = None)
            }
            Journal::Disabling { .. } => Err(Error::IllegalState {
                operation: "abort the interrupted disable",
                state: "backups are being deleted",
                hint: "run the disable again to finish it",
            }),
        }
    }

    /// Whether [`Client::abort_pending`] needs the password: a key rotation was interrupted
    /// after its request to seal the new key may have reached the vault.
    pub fn abort_needs_password(&self) -> bool {
        matches!(
            self.state.journal,
            Some(Journal::Rotating { phase: RotatePhase::Rewrapping, sealing: true, .. })
        )
    }
}
