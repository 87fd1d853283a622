//! The rotation journey: drawing a new K and moving every backup to it, copy by copy, with
//! the vault re-sealing it in password mode, before the old objects and the old key go (spec
//! section 5.6.2; backups made meanwhile, and what other devices see, 5.6.3).

use std::io;

use e2ee_backup_format::{Decryptor, EncryptOptions, Encryptor, read_header};
use e2ee_backup_kdf::schedule::KeyId;
use e2ee_backup_kdf::{BackupKey, digits};
use rand_core::OsRng;

use super::stream::{Meter, Pump, damage, pump};
use super::{Client, RotateReport};
use crate::error::{Error, Result};
use crate::faults::FaultInjector;
use crate::state::{Journal, Mode, RotatePhase, key_id_hex};
use crate::store::{self, BackupStore, Download};

impl Client {
    /// Draws a new K and moves every backup to it: each backup of the old key is copied under
    /// the new key; in password mode the vault then seals the new key (`password` is needed
    /// there); then the old objects are deleted and the old key forgotten. Returns the new
    /// 64-digit key. Called again after an interruption, it resumes.
    ///
    /// In password mode the rotation first logs in and checks that the vault seals this
    /// device's key: a wrong password, an unreachable vault or another device's registration
    /// fails here, before anything is copied or recorded. Backups made while a rotation is
    /// pending ([`Client::create_backup`] is never blocked by one) are copied too.
    pub fn rotate_key(&mut self, password: Option<&str>) -> Result<RotateReport> {
        self.rotate_key_with(password, false)
    }

    /// [`Client::rotate_key`], and with `full` also replaces the snapshots' media root key,
    /// re-encrypting every blob under new names (spec 8.11, "Full re-keying"), so that neither
    /// the old K nor the old media root key opens the media afterwards. A rotation started
    /// with `full` stays full when resumed without it; one started without it takes `full`
    /// on while its backups are still being copied, and refuses it once it is deleting (the
    /// snapshots may already be re-keyed the ordinary way: finish it, then rotate again).
    pub fn rotate_key_with(&mut self, password: Option<&str>, full: bool) -> Result<RotateReport> {
        const OP: &str = "rotate the key";
        let password_mode = matches!(self.state.mode, Mode::Password { .. });
        match (&self.state.mode, &self.state.journal) {
            (Mode::Key { key_id } | Mode::Password { key_id }, None) => {
                let old_key_id = key_id.clone();
                if password_mode {
                    let password = password.ok_or_else(|| {
                        self.illegal(OP, "the password is needed to re-seal the key")
                    })?;
                    // Learn that the password is right (and the vault reachable, and sealing
                    // this key) before anything is copied.
                    drop(self.login_holding(password, &old_key_id)?);
                }
                let new_key_id = self.add_key(&BackupKey::generate())?;
                self.commit_with(|s| {
                    s.journal = Some(Journal::Rotating {
                        old_key_id,
                        new_key_id,
                        phase: RotatePhase::Copying,
                        copies: Vec::new(),
                        current: None,
                        sealing: false,
                        full,
                    });
                })?;
            }
            (
                Mode::Key { .. } | Mode::Password { .. },
                Some(Journal::Rotating { full: started_full, phase, .. }),
            ) => {
                if full && !started_full {
                    if *phase == RotatePhase::Deleting {
                        return Err(self.illegal(
                            OP,
                            "the rotation was started without --full and is deleting; finish \
                             it, then rotate again with --full",
                        ));
                    }
                    self.commit_with(|s| {
                        if let Some(Journal::Rotating { full, .. }) = s.journal.as_mut() {
                            *full = true;
                        }
                    })?;
                }
            }
            (_, Some(journal)) => {
                return Err(Error::PendingOperation { operation: OP, pending: journal.name() });
            }
            _ => return Err(self.illegal(OP, "turn backups on first")),
        }
        let mut damaged = self.rotate_copy()?;
        if self.rotation()?.2 == RotatePhase::Copying {
            let next = if password_mode { RotatePhase::Rewrapping } else { RotatePhase::Deleting };
            self.commit_with(|s| {
                if let Some(Journal::Rotating { phase, current, .. }) = s.journal.as_mut() {
                    *phase = next;
                    *current = None;
                }
            })?;
        }
        self.rotate_rewrap(password)?;
        // Backups made while the rotation was pending are still under the old key: copy them
        // before the old key goes.
        for name in self.rotate_copy()? {
            if !damaged.contains(&name) {
                damaged.push(name);
            }
        }
        let (reencrypted, snapshots) = self.rotate_delete()?;
        damaged.extend(snapshots.damaged);
        let blobs_rekeyed = snapshots.blobs_rekeyed;
        let (Mode::Key { key_id } | Mode::Password { key_id }) = &self.state.mode else {
            return Err(self.illegal(OP, "the rotation ended in an unexpected mode"));
        };
        let key = self.key(key_id)?;
        Ok(RotateReport {
            digits: digits::to_display(&key),
            reencrypted,
            damaged,
            snapshots_rekeyed: snapshots.manifests_rewritten,
            blobs_rekeyed,
        })
    }

    fn rotation(&self) -> Result<Rotation> {
        match &self.state.journal {
            Some(Journal::Rotating { old_key_id, new_key_id, phase, copies, .. }) => {
                Ok((old_key_id.clone(), new_key_id.clone(), *phase, copies.clone()))
            }
            _ => Err(self.illegal("rotate the key", "no rotation is in progress")),
        }
    }

    /// Copies every backup of the old key that has no copy yet under the new key, recording
    /// each copy in the journal. Returns the damaged ones (left as they are).
    fn rotate_copy(&mut self) -> Result<Vec<String>> {
        let (old_id, new_id, _, copies) = self.rotation()?;
        let (old_key, new_key) = (self.key(&old_id)?, self.key(&new_id)?);
        let old = KeyId::of(&old_key);
        let mut damaged = Vec::new();
        for name in self.store.list()? {
            if copies.iter().any(|(o, n)| *o == name || *n == name) {
                continue;
            }
            let head =
                self.store.get_range(&name, 0..e2ee_backup_format::header::HEADER_LEN as u64)?;
            match read_header(&mut &head[..]) {
                Ok(header) if header.key_id == old => {}
                Ok(_) => continue,
                Err(_) => {
                    damaged.push(name);
                    continue;
                }
            }
            // Name the copy before making it, so a crash leaves no unnamed orphan.
            let reuse = match &self.state.journal {
                Some(Journal::Rotating { current: Some((o, n)), .. }) if *o == name => {
                    Some(n.clone())
                }
                _ => None,
            };
            let copy = reuse.unwrap_or_else(|| store::copy_name(&name));
            let pair = (name.clone(), copy.clone());
            self.commit_with(|s| {
                if let Some(Journal::Rotating { current, .. }) = s.journal.as_mut() {
                    *current = Some(pair);
                }
            })?;
            let copied = {
                let mut download = self.store.get(&name, self.faults.as_ref())?;
                let faults = self.faults.as_ref();
                let mut meter = Meter::new(self.on_progress.as_ref(), "rotate", None);
                reencrypt(
                    (&old_key, &new_key),
                    &mut download,
                    &name,
                    &self.store,
                    &copy,
                    faults,
                    &mut meter,
                )?
            };
            if !copied {
                damaged.push(name);
                continue;
            }
            self.commit_with(|s| {
                if let Some(Journal::Rotating { copies, current, .. }) = s.journal.as_mut() {
                    copies.push((name, copy));
                    *current = None;
                }
            })?;
        }
        Ok(damaged)
    }

    /// Password mode: makes the vault seal the new key.
    fn rotate_rewrap(&mut self, password: Option<&str>) -> Result<()> {
        let (old_id, new_id, phase, _) = self.rotation()?;
        if phase != RotatePhase::Rewrapping {
            return Ok(());
        }
        let password = password.ok_or(Error::IllegalState {
            operation: "rotate the key",
            state: "in password mode",
            hint: "the password is needed to re-seal the key",
        })?;
        let session = match self.login(password) {
            Ok(session) => session,
            Err(err) => return Err(self.login_failed(err, Some(old_id))),
        };
        let sealed = key_id_hex(session.key());
        if sealed == old_id {
            let new_key = self.key(&new_id)?;
            // From here the vault may hold the new key before this device hears of it.
            self.commit_with(|s| {
                if let Some(Journal::Rotating { sealing, .. }) = s.journal.as_mut() {
                    *sealing = true;
                }
            })?;
            let (state, key, envelope) =
                session.change_password(&mut OsRng, password.as_bytes(), Some(&new_key))?;
            self.finish_registration(state, envelope, &key)?;
        } else if sealed != new_id {
            // A crash after the vault stored the new key shows up here as the new key.
            return Err(Error::VaultKeyMismatch);
        }
        self.commit_with(|s| {
            s.mode = Mode::Password { key_id: new_id.clone() };
            if let Some(Journal::Rotating { phase, sealing, .. }) = s.journal.as_mut() {
                *phase = RotatePhase::Deleting;
                *sealing = false;
            }
        })
    }

    /// Deletes the old backups, re-encrypts the snapshots' media root key and manifests under
    /// the new key (spec 8.11) — in a full rotation also replacing the media root key and
    /// re-encrypting every blob under it (8.11, "Full re-keying") — then ends the rotation. The snapshots are re-keyed only in this
    /// last phase, whose rotation can no longer be aborted: they are re-encrypted in place, and
    /// an abort keeps the old key. The journal names both keys until the end, so a run after a
    /// crash finishes what is left.
    fn rotate_delete(&mut self) -> Result<(usize, SnapshotsRekeyed)> {
        let (old_id, new_id, phase, copies) = self.rotation()?;
        let full = matches!(self.state.journal, Some(Journal::Rotating { full: true, .. }));
        if phase != RotatePhase::Deleting {
            return Err(self.illegal("rotate the key", "the rotation is not ready to delete"));
        }
        for (old, _) in &copies {
            self.store.delete(old, self.faults.as_ref())?;
        }
        let (old, new) = (self.key(&old_id)?, self.key(&new_id)?);
        let store = crate::snapshot_store::SnapshotStore::new(&self.store, self.faults.as_ref());
        let snapshots = if full {
            e2ee_backup_snapshot::rekey_full(&store, &old, &new).map(|r| SnapshotsRekeyed {
                manifests_rewritten: r.manifests_rewritten,
                blobs_rekeyed: r.blobs_rekeyed,
                damaged: r.damaged,
            })
        } else {
            e2ee_backup_snapshot::rekey(&store, &old, &new).map(|r| SnapshotsRekeyed {
                manifests_rewritten: r.manifests_rewritten,
                blobs_rekeyed: 0,
                damaged: r.damaged,
            })
        }
        .map_err(|err| store.client_error(err))?;
        self.commit_with(|s| {
            s.mode = match s.mode {
                Mode::Password { .. } => Mode::Password { key_id: new_id },
                _ => Mode::Key { key_id: new_id },
            };
            s.journal = None;
        })?;
        Ok((copies.len(), snapshots))
    }
}

/// What re-keying the snapshots did, ordinary or full (spec 8.11).
struct SnapshotsRekeyed {
    manifests_rewritten: u64,
    blobs_rekeyed: u64,
    damaged: Vec<String>,
}

/// A rotation's old key id, new key id, phase and (old, new) copies.
type Rotation = (String, String, RotatePhase, Vec<(String, String)>);

/// Decrypts `download` (of `object`) with `old` and uploads it encrypted again under `new` as
/// `copy`, keeping its metadata and compression, streaming both ways. `Ok(false)`: the backup
/// is damaged, and nothing was stored (the upload, never finished, is aborted). The copy is
/// completed only after the whole backup decrypted, its last chunk verified.
fn reencrypt(
    (old, new): (&BackupKey, &BackupKey),
    download: &mut Download<'_>,
    object: &str,
    store: &BackupStore,
    copy: &str,
    faults: &dyn FaultInjector,
    meter: &mut Meter<'_>,
) -> Result<bool> {
    let read_failed = |download: &mut Download<'_>, reason| {
        download.take_failure().map_or_else(
            || match damage(reason) {
                Ok(_) => Ok(false),
                Err(source) => {
                    Err(Error::Io { operation: "download", path: object.into(), source })
                }
            },
            Err,
        )
    };
    let opened = Decryptor::new(&mut *download, old);
    let mut reader = match opened {
        Ok(reader) => reader,
        Err(reason) => return read_failed(download, reason),
    };
    let mut options = EncryptOptions::default();
    options.compression = reader.header().compression;
    options.metadata = reader.metadata().clone();
    let mut upload = store.upload(copy, false, faults)?;
    let pumped = (|| {
        let mut writer = Encryptor::new(&mut upload, new, options)
            .map_err(|e| Pump::Write(io::Error::other(e)))?;
        pump(&mut reader, &mut writer, meter)?;
        writer.finish().map_err(|e| Pump::Write(io::Error::other(e)))?;
        Ok(())
    })();
    drop(reader);
    match pumped {
        Ok(()) => upload.finish().map(|_| true),
        Err(err) => {
            if let Some(failure) = upload.take_failure() {
                return Err(failure);
            }
            match err {
                Pump::Read(err) => {
                    read_failed(download, e2ee_backup_format::Error::from_io_error(err))
                }
                // The encryptor refused what the old key's backup holds: leave it, as damaged.
                Pump::Write(_) => Ok(false),
            }
        }
    }
}
