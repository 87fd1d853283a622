//! Temporary files, and what an interrupted process leaves behind (spec section 5.5, issue 11).
//!
//! Every temporary file the client (or a program built on it) writes beside an output is named
//! `.e2ee-backup-<random>.partial` ([`TEMP_PREFIX`], [`TEMP_SUFFIX`]), created exclusively with
//! mode 0600, and locked (`flock`) by the process writing it for as long as it lives. It may hold
//! plaintext, so:
//!
//! * while it lives it is on a process-wide list, with the staging objects of uploads to a local
//!   store: [`remove_in_flight`] removes them all, for a signal handler to call before the
//!   process exits (SIGINT, SIGTERM);
//! * a SIGKILL cannot be caught: [`remove_stale_temps`] removes, in a directory, the temporary
//!   files that no live process holds a lock on and that are older than [`STALE_AFTER`]. Every
//!   write of an output into a directory calls it first.
//!
//! Uploads to a store on the local file system go through a staging object (`object_store`'s
//! `<object>#<n>`), renamed onto the object when complete. [`remove_stale_staging`] removes the
//! staging objects of backups older than [`STALE_STAGING_AFTER`]: a staging object written more
//! recently may be another device's upload in progress, which no lock can tell over a shared
//! folder. (A cloud store keeps an unfinished multipart upload out of sight; its lifecycle rules
//! expire it.)

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tempfile::NamedTempFile;

/// The start of every temporary file's name.
pub const TEMP_PREFIX: &str = ".e2ee-backup-";
/// The end of every temporary file's name.
pub const TEMP_SUFFIX: &str = ".partial";
/// How old an unlocked temporary file must be before another run removes it: only a file
/// created this instant and not yet locked by its writer is younger and unlocked.
pub const STALE_AFTER: Duration = Duration::from_secs(60);
/// How old a temporary file must be before another run removes it where the file system cannot
/// tell whether it is locked.
pub const STALE_UNLOCKABLE_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How old a staging object in a local store must be before a backup removes it.
pub const STALE_STAGING_AFTER: Duration = Duration::from_secs(3600);

/// Something this process is writing that an interrupt must not leave behind.
#[derive(Debug, Clone, PartialEq, Eq)]
enum InFlight {
    /// A temporary file.
    File(PathBuf),
    /// The staging objects `<dir>/<name>#<digits>` of an upload to a local store.
    Staging { dir: PathBuf, name: String },
}

static IN_FLIGHT: Mutex<Vec<InFlight>> = Mutex::new(Vec::new());

fn in_flight() -> MutexGuard<'static, Vec<InFlight>> {
    IN_FLIGHT.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Keeps an entry on the in-flight list while it lives.
#[derive(Debug)]
pub(crate) struct Registered(InFlight);

impl Registered {
    fn new(entry: InFlight) -> Self {
        in_flight().push(entry.clone());
        Self(entry)
    }

    /// The staging objects of an upload of `name` into the local directory `dir`.
    pub(crate) fn staging(dir: &Path, name: &str) -> Self {
        Self::new(InFlight::Staging { dir: dir.to_owned(), name: name.to_owned() })
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut list = in_flight();
        if let Some(i) = list.iter().position(|e| *e == self.0) {
            list.swap_remove(i);
        }
    }
}

/// Removes every temporary file and local staging object this process is writing, and returns
/// how many it removed. For a signal handler, just before the process exits: the list stays
/// locked, so that nothing new is registered meanwhile.
pub fn remove_in_flight() -> usize {
    let mut list = in_flight();
    let mut removed = 0;
    for entry in list.drain(..) {
        match entry {
            InFlight::File(path) => removed += usize::from(fs::remove_file(path).is_ok()),
            InFlight::Staging { dir, name } => {
                let Ok(entries) = fs::read_dir(&dir) else { continue };
                for entry in entries.flatten() {
                    let file_name = entry.file_name();
                    if staging_of(&file_name.to_string_lossy()) == Some(name.as_str()) {
                        removed += usize::from(fs::remove_file(entry.path()).is_ok());
                    }
                }
            }
        }
    }
    removed
}

/// A temporary file beside an output: named [`TEMP_PREFIX`]…[`TEMP_SUFFIX`], created
/// exclusively (never through a file or symbolic link already there), mode 0600, locked while it
/// lives, on the in-flight list, and removed when dropped unless persisted.
#[derive(Debug)]
pub struct TempFile {
    temp: NamedTempFile,
    _registered: Registered,
}

impl TempFile {
    /// Creates one in `dir`, after removing the stale ones there ([`remove_stale_temps`]).
    pub fn create_in(dir: &Path) -> io::Result<Self> {
        // Best effort: a stale file left where it is must not stop this output.
        let _ = remove_stale_temps(dir);
        Self::create_unswept_in(dir)
    }

    /// Creates one in `dir` without looking for stale ones: for a caller that has swept `dir`
    /// already in this run.
    fn create_unswept_in(dir: &Path) -> io::Result<Self> {
        let mut builder = tempfile::Builder::new();
        builder.prefix(TEMP_PREFIX).suffix(TEMP_SUFFIX);
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600));
        let temp = builder.tempfile_in(dir)?;
        // Registered before it is locked: an interrupt from here on removes it.
        let registered = Registered::new(InFlight::File(temp.path().to_owned()));
        lock(temp.as_file());
        Ok(Self { temp, _registered: registered })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.temp.path()
    }

    /// The open file.
    pub fn as_file(&self) -> &File {
        self.temp.as_file()
    }

    /// The open file, to write.
    pub fn as_file_mut(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    /// Renames it onto `target` (replacing a file there when `replace`). It leaves the
    /// in-flight list whatever the outcome; on failure it is removed.
    pub fn persist(self, target: &Path, replace: bool) -> io::Result<()> {
        let persisted = if replace {
            self.temp.persist(target).map(drop)
        } else {
            self.temp.persist_noclobber(target).map(drop)
        };
        // On failure, dropping the returned file removes it.
        persisted.map_err(|e| e.error)
    }
}

/// The temporary files of a snapshot restore (spec section 8.8): each restored file is a
/// [`TempFile`] in its own directory, renamed onto its name once all its blobs are checked, so
/// that a failed or interrupted restore leaves no partial file under a snapshot's name. Each
/// directory is swept of stale temporary files ([`remove_stale_temps`]) the first time only, not
/// once per file.
#[derive(Debug, Default)]
pub struct RestoreStaging {
    swept: Mutex<HashSet<PathBuf>>,
}

impl e2ee_backup_snapshot::Staging for RestoreStaging {
    fn create_in(&self, dir: &Path) -> io::Result<Box<dyn e2ee_backup_snapshot::StagedFile>> {
        let first = self.swept.lock().unwrap_or_else(PoisonError::into_inner).insert(dir.into());
        let temp = if first { TempFile::create_in(dir) } else { TempFile::create_unswept_in(dir) };
        Ok(Box::new(temp?))
    }
}

impl e2ee_backup_snapshot::StagedFile for TempFile {
    fn file_mut(&mut self) -> &mut File {
        self.as_file_mut()
    }

    fn persist(self: Box<Self>, target: &Path) -> io::Result<()> {
        TempFile::persist(*self, target, false)
    }
}

/// Takes an exclusive lock on `file`: a sign, to other processes, that its writer is alive.
/// Best effort: a file system without locks makes [`remove_stale_temps`] wait longer instead.
fn lock(file: &File) {
    #[cfg(unix)]
    let _ = rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive);
    #[cfg(not(unix))]
    let _ = file;
}

/// Whether a live process holds the lock of `file`: `Some(false)` when this process could take
/// it (and now holds it), `None` when the file system cannot tell.
fn locked_by_another(file: &File) -> Option<bool> {
    #[cfg(unix)]
    {
        use rustix::io::Errno;
        match rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Some(false),
            Err(Errno::WOULDBLOCK) => Some(true),
            Err(_) => None,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        None
    }
}

fn age(metadata: &fs::Metadata) -> Duration {
    metadata
        .modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or(Duration::ZERO)
}

/// Whether `name` is the name of one of these temporary files.
pub fn is_temp_name(name: &str) -> bool {
    name.len() > TEMP_PREFIX.len() + TEMP_SUFFIX.len()
        && name.starts_with(TEMP_PREFIX)
        && name.ends_with(TEMP_SUFFIX)
}

/// Removes from `dir` the temporary files ([`is_temp_name`]) that a process ended by SIGKILL
/// (or a power cut) left: regular files that no live process holds a lock on and that were last
/// written more than [`STALE_AFTER`] ago (more than [`STALE_UNLOCKABLE_AFTER`] where locks
/// cannot be checked). Returns how many it removed.
pub fn remove_stale_temps(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)?.flatten() {
        if !is_temp_name(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        // Never through a symbolic link: only a regular file of that name is ours.
        let Ok(metadata) = fs::symlink_metadata(&path) else { continue };
        if !metadata.is_file() {
            continue;
        }
        let Ok(file) = File::open(&path) else { continue };
        let stale = match locked_by_another(&file) {
            Some(true) => false,
            Some(false) => age(&metadata) >= STALE_AFTER,
            None => age(&metadata) >= STALE_UNLOCKABLE_AFTER,
        };
        // Removed while this process holds its lock, so no other run takes it up meanwhile.
        if stale && fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// The object name a staging object `<name>#<digits>` belongs to, if `file_name` is one.
fn staging_of(file_name: &str) -> Option<&str> {
    let (name, n) = file_name.rsplit_once('#')?;
    (!n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())).then_some(name)
}

/// Removes from the directory `dir` of a local store's backups the staging objects of backups
/// (`<backup name>#<digits>`) last written more than [`STALE_STAGING_AFTER`] ago. Returns how
/// many it removed; a missing directory has none.
pub fn remove_stale_staging(
    dir: &Path,
    is_backup_file: impl Fn(&str) -> bool,
) -> io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(name) = staging_of(&file_name.to_string_lossy()).map(str::to_owned) else {
            continue;
        };
        if !is_backup_file(&name) {
            continue;
        }
        let Ok(metadata) = fs::symlink_metadata(entry.path()) else { continue };
        if metadata.is_file()
            && age(&metadata) >= STALE_STAGING_AFTER
            && fs::remove_file(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_temp_name(".e2ee-backup-abc123.partial"));
        assert!(!is_temp_name(".e2ee-backup-.partial"));
        assert!(!is_temp_name("e2ee-backup-abc.partial"));
        assert_eq!(staging_of("x.e2ee#12"), Some("x.e2ee"));
        assert_eq!(staging_of("x.e2ee#"), None);
        assert_eq!(staging_of("x.e2ee#a1"), None);
        assert_eq!(staging_of("x.e2ee"), None);
    }

    #[test]
    fn a_locked_temp_file_is_kept_and_an_old_unlocked_one_removed() {
        let dir = tempfile::tempdir().unwrap();
        let live = TempFile::create_in(dir.path()).unwrap();
        let old = SystemTime::now() - 2 * STALE_UNLOCKABLE_AFTER;
        live.as_file().set_modified(old).unwrap();
        let stale = dir.path().join(".e2ee-backup-left.partial");
        File::create(&stale).unwrap().set_modified(old).unwrap();
        let fresh = dir.path().join(".e2ee-backup-fresh.partial");
        File::create(&fresh).unwrap();
        let other = dir.path().join("kept.partial");
        File::create(&other).unwrap().set_modified(old).unwrap();
        assert_eq!(remove_stale_temps(dir.path()).unwrap(), 1);
        assert!(live.path().exists() && fresh.exists() && other.exists() && !stale.exists());
        let path = live.path().to_owned();
        assert!(in_flight().contains(&InFlight::File(path.clone())));
        drop(live);
        assert!(!path.exists());
        assert!(!in_flight().contains(&InFlight::File(path)));
    }
}
