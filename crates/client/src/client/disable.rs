//! The disabling journey: turning backups off, which deletes the vault record (password mode)
//! and every remote backup and snapshot, then forgets K (spec section 5.3, `disable`, and "Disable deletes
//! remote backups").

use super::{Client, DisableReport};
use crate::error::{Error, Result};
use crate::state::{Journal, Mode};

impl Client {
    /// Turns backups off. **Remote backups are deleted**: with K forgotten they could only
    /// be read with a 64-digit key the user kept, and a backup service should not keep
    /// ciphertext its user turned off. In password mode `password` is needed to delete the
    /// vault record first; when resuming an interrupted disable, `None` leaves the record.
    pub fn disable(&mut self, password: Option<&str>) -> Result<DisableReport> {
        const OP: &str = "turn backups off";
        let mut vault_record_deleted = false;
        match (&self.state.mode, &self.state.journal) {
            (Mode::Password { key_id }, None) => {
                let password = password.ok_or(Error::IllegalState {
                    operation: OP,
                    state: "in password mode",
                    hint: "the password is needed to delete the key from the vault",
                })?;
                let key_id = key_id.clone();
                let session = self.login_holding(password, &key_id);
                match session {
                    Ok(session) => {
                        self.commit_with(|s| {
                            s.journal = Some(Journal::Disabling { vault_record: true });
                        })?;
                        self.delete_vault_record(session)?;
                        vault_record_deleted = true;
                    }
                    // The vault already destroyed its copy: nothing to delete there.
                    Err(Error::LockedOut) => {}
                    Err(err) => return Err(err),
                }
                self.commit_with(|s| s.journal = Some(Journal::Disabling { vault_record: false }))?;
            }
            (Mode::Key { .. } | Mode::LockedOut { .. }, None) => {
                self.commit_with(|s| s.journal = Some(Journal::Disabling { vault_record: false }))?;
            }
            (_, Some(Journal::Disabling { vault_record: true })) => {
                if let Some(password) = password {
                    let session = self.login(password)?;
                    self.delete_vault_record(session)?;
                    vault_record_deleted = true;
                }
                self.commit_with(|s| s.journal = Some(Journal::Disabling { vault_record: false }))?;
            }
            (_, Some(Journal::Disabling { vault_record: false })) => {}
            (_, Some(journal)) => {
                return Err(Error::PendingOperation { operation: OP, pending: journal.name() });
            }
            _ => return Err(self.illegal(OP, "backups are not on")),
        }
        let names = self.store.list()?;
        for name in &names {
            self.store.delete(name, self.faults.as_ref())?;
        }
        // Snapshots of directories too (spec 8.12): manifests, blobs, the media root key.
        let store = crate::snapshot_store::SnapshotStore::new(&self.store, self.faults.as_ref());
        let deleted_snapshots =
            e2ee_backup_snapshot::delete_all(&store).map_err(|err| store.client_error(err))?;
        // The files cache names local paths and blobs that are gone now.
        match std::fs::remove_file(self.files_cache_path()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::Io {
                    operation: "remove",
                    path: self.files_cache_path(),
                    source: e,
                });
            }
            _ => {}
        }
        self.commit_with(|s| {
            s.mode = Mode::Off;
            s.journal = None;
        })?;
        Ok(DisableReport { deleted_backups: names.len(), deleted_snapshots, vault_record_deleted })
    }
}
