//! The backup journey: encrypting a file or bytes under K and uploading it as a new backup
//! object (spec section 5.3, `create_backup`; object names and create-only uploads of 5.8;
//! the refusal when another device rotated the key, 5.6.3).

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use e2ee_backup_format::{Compression, EncryptOptions, Encryptor, read_header};
use e2ee_backup_kdf::BackupKey;

use super::stream::{Meter, Pump, pump};
use super::{BackupInfo, Client, Source};
use crate::error::{Error, Result};
use crate::state::{Journal, Mode, RotatePhase};
use crate::store::{self, Upload};

impl Client {
    /// The key backups are made with now. A pending key rotation does not block backups: until
    /// the old objects are being deleted they are made under the old key (and the rotation
    /// copies them when it resumes), from then on under the new key.
    pub(super) fn current_key(&self, operation: &'static str) -> Result<BackupKey> {
        match (&self.state.mode, &self.state.journal) {
            (_, Some(journal @ Journal::Disabling { .. })) => {
                Err(Error::PendingOperation { operation, pending: journal.name() })
            }
            (
                Mode::Key { .. } | Mode::Password { .. },
                Some(Journal::Rotating { phase: RotatePhase::Deleting, new_key_id, .. }),
            ) => self.key(new_key_id),
            (Mode::Key { key_id } | Mode::Password { key_id }, _) => self.key(key_id),
            _ => Err(self.illegal(operation, "turn backups on first")),
        }
    }

    /// Encrypts `source` under K in the native format (zstd-compressed, `name` in the encrypted
    /// metadata) and uploads it as a new object. Nothing local changes.
    ///
    /// The source is encrypted as it is read, straight into the upload: memory stays within
    /// one upload part and the format's few chunks, whatever the backup's size. The object
    /// appears in the store only once whole (create-only, section 5.8).
    pub fn create_backup(&mut self, source: Source<'_>, name: &str) -> Result<BackupInfo> {
        let key = self.current_key("create a backup")?;
        let mut options = EncryptOptions::default();
        options.compression = Compression::Zstd;
        options.metadata.created_at = self.now();
        options.metadata.fields.insert("name".to_owned(), name.to_owned());
        let (mut input, source_path, total): (Box<dyn Read + '_>, PathBuf, Option<u64>) =
            match source {
                Source::Bytes(bytes) => (
                    Box::new(bytes),
                    PathBuf::from("<backup source in memory>"),
                    Some(bytes.len() as u64),
                ),
                Source::Reader(reader) => {
                    (Box::new(reader), PathBuf::from("<standard input>"), None)
                }
                Source::Path(path) => {
                    let io =
                        |source| Error::Io { operation: "read", path: path.to_owned(), source };
                    let file = fs::File::open(path).map_err(io)?;
                    let metadata = file.metadata().map_err(io)?;
                    if metadata.is_dir() {
                        return Err(io(io::Error::new(
                            io::ErrorKind::IsADirectory,
                            "it is a directory, not a file",
                        )));
                    }
                    (Box::new(file), path.to_owned(), Some(metadata.len()))
                }
            };
        // Strictly after the newest backup, so the newest is the last name even when two
        // backups fall in one second or this device's clock is behind another's.
        let names = self.store.list()?;
        self.check_newest_key(&names)?;
        let newest = names.last().and_then(|n| store::object_time(n));
        // What a killed backup left: best effort, the new backup matters more.
        let _ = self.store.remove_stale_staging();
        let time = newest.map_or(self.now(), |t| self.now().max(t.saturating_add(1)));
        let object = store::new_object_name(time);
        let mut upload = self.store.upload(&object, true, self.faults.as_ref())?;
        let mut meter = Meter::new(self.on_progress.as_ref(), "backup", total);
        encrypt_into(&key, options, &mut *input, &source_path, &mut upload, &mut meter)?;
        let size = upload.finish()?;
        Ok(BackupInfo { object, size })
    }

    /// Refuses a backup when the store's newest readable backup was made under a key this
    /// device does not hold (spec section 5.6.3): another device rotated the key, and a backup
    /// under the old key would be skipped by every restore with the new one.
    fn check_newest_key(&self, names: &[String]) -> Result<()> {
        for name in names.iter().rev() {
            let head =
                self.store.get_range(name, 0..e2ee_backup_format::header::HEADER_LEN as u64)?;
            // A damaged header says nothing about keys: look at the one before it.
            let Ok(header) = read_header(&mut &head[..]) else { continue };
            let key_id = hex::encode(header.key_id.0);
            if self.keys.get(&key_id).is_some() {
                return Ok(());
            }
            return Err(Error::KeyRotatedElsewhere { object: name.clone(), key_id });
        }
        Ok(())
    }
}

/// Encrypts everything `input` (read from `source`) yields into `upload` (not finished: the
/// caller finishes it).
fn encrypt_into(
    key: &BackupKey,
    options: EncryptOptions,
    input: &mut dyn Read,
    source: &Path,
    upload: &mut Upload<'_>,
    meter: &mut Meter<'_>,
) -> Result<()> {
    let pumped = (|| {
        let mut writer = Encryptor::new(&mut *upload, key, options)
            .map_err(|e| Pump::Write(io::Error::other(e)))?;
        pump(input, &mut writer, meter)?;
        writer.finish().map_err(|e| Pump::Write(io::Error::other(e)))?;
        Ok(())
    })();
    match pumped {
        Ok(()) => Ok(()),
        Err(err) => Err(upload.take_failure().unwrap_or_else(|| match err {
            Pump::Read(err) => {
                Error::Io { operation: "read", path: source.to_owned(), source: err }
            }
            Pump::Write(err) => {
                Error::Io { operation: "encrypt", path: source.to_owned(), source: err }
            }
        })),
    }
}
