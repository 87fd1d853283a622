//! The restore journey: picking the newest backup the key opens, decrypting it into a
//! temporary file and renaming that onto the target, with the key from the 64 digits or from
//! a vault login; resumable without a second login (spec section 5.5; 5.6 for resuming).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use e2ee_backup_format::{Decryptor, read_header};
use e2ee_backup_kdf::schedule::KeyId;
use e2ee_backup_kdf::{BackupKey, digits};

use super::stream::{Meter, Pump, damage, pump};
use super::{Client, RestoreReport};
use crate::error::{Error, Result};
use crate::scratch::TempFile;
use crate::state::{Before, Mode, RestoredMode, sync_dir};
use crate::store::Download;

impl Client {
    fn restore_start(&self, operation: &'static str, password_mode: bool) -> Result<Before> {
        self.no_journal(operation)?;
        // A mistyped store location is reported before a login is spent or anything saved.
        self.store.check_exists()?;
        match &self.state.mode {
            Mode::Off => Ok(Before::Off),
            Mode::LockedOut { key_id } if !password_mode => {
                Ok(Before::LockedOut { key_id: key_id.clone() })
            }
            Mode::LockedOut { .. } => Err(self.illegal(
                operation,
                "the vault destroyed the key; restore with the 64-digit key instead",
            )),
            // In place, on the device that makes the backups: the restored backup's key becomes
            // the one backups are made with (another device may have rotated it, 5.6.3).
            Mode::Key { key_id } => Ok(Before::Key { key_id: key_id.clone() }),
            Mode::Password { key_id } if password_mode => {
                Ok(Before::Password { key_id: key_id.clone() })
            }
            Mode::Password { .. } => Err(self
                .illegal(operation, "restore with the password here, or switch to key mode first")),
            Mode::Restoring { .. } => {
                Err(self.illegal(operation, "a restore is in progress; resume it"))
            }
        }
    }

    /// Restores the newest backup that the 64-digit key opens into `target` (written
    /// atomically), and enters key mode. Called while a restore is in progress, it resumes
    /// that restore with the key already held.
    pub fn restore_with_key(&mut self, digits: &str, target: &Path) -> Result<RestoreReport> {
        const OP: &str = "restore with the 64-digit key";
        if matches!(self.state.mode, Mode::Restoring { .. }) {
            return self.resume_restore();
        }
        let before = self.restore_start(OP, false)?;
        let key = digits::parse(digits)?;
        self.begin_restore(&key, RestoredMode::Key, target, before)
    }

    /// Logs in to the vault with `password`, gets K, restores the newest backup into `target`
    /// and enters password mode. Called while a restore is in progress, it resumes that
    /// restore without logging in again (no attempt is spent).
    pub fn restore_with_password(
        &mut self,
        password: &str,
        target: &Path,
    ) -> Result<RestoreReport> {
        const OP: &str = "restore with the password";
        if matches!(self.state.mode, Mode::Restoring { .. }) {
            return self.resume_restore();
        }
        let before = self.restore_start(OP, true)?;
        let key = self.key_from_login(password)?;
        self.begin_restore(&key, RestoredMode::Password, target, before)
    }

    /// Like [`Client::restore_with_key`], but writes the plaintext to `out` as it is verified,
    /// chunk by chunk (standard output, a pipe): what a failure cuts off cannot be taken back
    /// there, so only an `Ok` says the whole backup arrived. Not resumable: the client's state
    /// changes only when the restore succeeds (spec section 5.5).
    pub fn restore_with_key_to_writer(
        &mut self,
        digits: &str,
        out: &mut dyn Write,
    ) -> Result<RestoreReport> {
        self.restore_start("restore with the 64-digit key", false)?;
        let key = digits::parse(digits)?;
        self.restore_to_writer(&key, RestoredMode::Key, out)
    }

    /// Like [`Client::restore_with_password`], but writes to `out` as
    /// [`Client::restore_with_key_to_writer`] does.
    pub fn restore_with_password_to_writer(
        &mut self,
        password: &str,
        out: &mut dyn Write,
    ) -> Result<RestoreReport> {
        self.restore_start("restore with the password", true)?;
        let key = self.key_from_login(password)?;
        self.restore_to_writer(&key, RestoredMode::Password, out)
    }

    /// K from a vault login with `password` (one attempt of the budget).
    fn key_from_login(&mut self, password: &str) -> Result<BackupKey> {
        match self.login(password) {
            Ok(session) => Ok(session.key().clone()),
            Err(err) => Err(self.login_failed(err, None)),
        }
    }

    fn restore_to_writer(
        &mut self,
        key: &BackupKey,
        then: RestoredMode,
        out: &mut dyn Write,
    ) -> Result<RestoreReport> {
        let report = self.download_and_write(key, Output::Writer(out))?;
        let key_id = self.add_key(key)?;
        self.commit_with(|s| s.mode = then.mode(key_id))?;
        Ok(report)
    }

    fn begin_restore(
        &mut self,
        key: &BackupKey,
        then: RestoredMode,
        target: &Path,
        before: Before,
    ) -> Result<RestoreReport> {
        let target = std::path::absolute(target).map_err(|source| Error::Io {
            operation: "resolve",
            path: target.to_owned(),
            source,
        })?;
        let key_id = self.add_key(key)?;
        self.commit_with(|s| s.mode = Mode::Restoring { key_id, then, target, before })?;
        self.resume_restore()
    }

    /// Finishes an interrupted restore.
    pub fn resume_restore(&mut self) -> Result<RestoreReport> {
        let Mode::Restoring { key_id, then, target, before } = self.state.mode.clone() else {
            return Err(self.illegal("resume a restore", "no restore is in progress"));
        };
        let key = self.key(&key_id)?;
        match self.download_and_write(&key, Output::Path(&target)) {
            Ok(report) => {
                self.commit_with(|s| s.mode = then.mode(key_id))?;
                Ok(report)
            }
            Err(
                err @ (Error::WrongKey | Error::NoBackupFound { .. } | Error::BackupCorrupt { .. }),
            ) => {
                // Nothing to restore with this key: back to where the restore started.
                self.commit_with(|s| s.mode = before.to_mode())?;
                Err(err)
            }
            Err(err) => Err(err),
        }
    }

    /// Picks the newest object `key` made, downloads, decrypts and writes it.
    fn download_and_write(&mut self, key: &BackupKey, target: Output<'_>) -> Result<RestoreReport> {
        let names = self.store.list()?;
        if names.is_empty() {
            return Err(Error::NoBackupFound { location: self.state.store.clone() });
        }
        let id = KeyId::of(key);
        let mut skipped_other_key = 0;
        let mut damaged = None;
        let mut chosen = None;
        for name in names.iter().rev() {
            let head =
                self.store.get_range(name, 0..e2ee_backup_format::header::HEADER_LEN as u64)?;
            match read_header(&mut &head[..]) {
                Ok(header) if header.key_id == id => {
                    chosen = Some(name.clone());
                    break;
                }
                Ok(_) => skipped_other_key += 1,
                Err(reason) => {
                    damaged.get_or_insert((name.clone(), reason));
                }
            }
        }
        let Some(object) = chosen else {
            return Err(match damaged {
                Some((object, reason)) => Error::BackupCorrupt { object, reason },
                None => Error::WrongKey,
            });
        };
        let mut download = self.store.get(&object, self.faults.as_ref())?;
        let (bytes, name) = self.write_target(key, &object, &mut download, target)?;
        Ok(RestoreReport { object, bytes, name, skipped_other_key })
    }

    /// Decrypts the download as it arrives into a temporary file beside `target`, then renames
    /// it into place: the target never holds partial or unauthenticated plaintext. A writer
    /// gets each chunk once it is verified.
    fn write_target(
        &self,
        key: &BackupKey,
        object: &str,
        download: &mut Download<'_>,
        target: Output<'_>,
    ) -> Result<(u64, Option<String>)> {
        let corrupt = |reason| Error::BackupCorrupt { object: object.to_owned(), reason };
        let opened = Decryptor::new(&mut *download, key);
        let mut reader = match opened {
            Ok(reader) => reader,
            Err(reason) => {
                return Err(download.take_failure().unwrap_or_else(|| match damage(reason) {
                    Ok(reason) => corrupt(reason),
                    Err(source) => Error::Io { operation: "download", path: object.into(), source },
                }));
            }
        };
        let name = reader.metadata().fields.get("name").cloned();
        let mut meter =
            Meter::new(self.on_progress.as_ref(), "restore", reader.metadata().plaintext_len);
        let target = match target {
            Output::Path(path) => path,
            Output::Writer(out) => {
                let copied = pump(&mut reader, out, &mut meter)
                    .and_then(|bytes| out.flush().map(|()| bytes).map_err(Pump::Write));
                drop(reader);
                return copied
                    .map(|bytes| (bytes, name))
                    .map_err(|err| self.copy_failed(download, object, err, Path::new("(output)")));
            }
        };
        let dir = target.parent().map(Path::to_owned).unwrap_or_else(|| PathBuf::from("."));
        self.check("write restore target")?;
        let io_error = |operation, path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io { operation, path, source }
        };
        fs::create_dir_all(&dir).map_err(io_error("create", &dir))?;
        // A fresh random name, created exclusively (never through a file or symlink someone
        // planted), readable by the owner only, locked while this process lives, removed if
        // anything below fails or a signal handler calls `scratch::remove_in_flight`; what a
        // killed restore left in this directory is removed first (spec section 5.5).
        let mut temp_file = TempFile::create_in(&dir).map_err(io_error("create", &dir))?;
        let temp = temp_file.path().to_owned();
        let copied = pump(&mut reader, temp_file.as_file_mut(), &mut meter);
        drop(reader);
        let bytes = match copied {
            Ok(bytes) => bytes,
            Err(err) => {
                drop(temp_file);
                return Err(self.copy_failed(download, object, err, &temp));
            }
        };
        temp_file.as_file().sync_all().map_err(io_error("sync", &temp))?;
        self.check("rename restore target")?;
        temp_file.persist(target, true).map_err(|source| Error::Io {
            operation: "rename",
            path: target.to_owned(),
            source,
        })?;
        sync_dir(&dir)?;
        Ok((bytes, name))
    }

    /// Why copying the plaintext out failed: the store's failure if it had one, a damaged
    /// backup, or the output (`written`) that could not take it.
    fn copy_failed(
        &self,
        download: &mut Download<'_>,
        object: &str,
        err: Pump,
        written: &Path,
    ) -> Error {
        if let Some(failure) = download.take_failure() {
            return failure;
        }
        match err {
            Pump::Read(err) => match damage(e2ee_backup_format::Error::from_io_error(err)) {
                Ok(reason) => Error::BackupCorrupt { object: object.to_owned(), reason },
                Err(source) => Error::Io { operation: "download", path: object.into(), source },
            },
            Pump::Write(source) => Error::Io { operation: "write", path: written.into(), source },
        }
    }
}

/// Where a restore writes: a file, replaced atomically, or a stream.
enum Output<'a> {
    Path(&'a Path),
    Writer(&'a mut dyn Write),
}
