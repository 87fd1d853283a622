//! A simulated disk for redb that models the page cache, for crash-safety tests (the durability
//! rules of spec 4.10.2 and 7.6: a charge is durable before KE2 leaves).
//!
//! [`CrashDisk`] keeps two images: the *volatile* one, which every read and write sees (the page
//! cache), and the *durable* one, which is what survives power loss. Only `sync_data` copies the
//! volatile image to the durable one. [`CrashDisk::crash`] then yields the disk as it would be after
//! a power cut, so a test can reopen the database on it and check what survived, and
//! [`CrashDisk::syncs`] shows whether a store asked for durability at all.
//!
//! ```
//! use e2ee_backup_testkit::disk::CrashDisk;
//! use redb::{ReadableTable, TableDefinition};
//!
//! const T: TableDefinition<&str, u64> = TableDefinition::new("t");
//! let disk = CrashDisk::new();
//! let db = redb::Builder::new().create_with_backend(disk.clone()).unwrap();
//! let txn = db.begin_write().unwrap();
//! txn.open_table(T).unwrap().insert("k", 1).unwrap();
//! txn.commit().unwrap(); // Durability::Immediate: synced
//! let after = disk.crash(); // power cut while `db` is still open
//! drop(db); // its further writes fail: the old disk is dead
//! let db = redb::Builder::new().create_with_backend(after).unwrap();
//! let read = db.begin_read().unwrap();
//! assert_eq!(read.open_table(T).unwrap().get("k").unwrap().unwrap().value(), 1);
//! ```

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// A simulated disk with a page cache: cheap to clone, every clone is the same disk.
///
/// It implements [`redb::StorageBackend`]; pass a clone to
/// [`redb::Builder::create_with_backend`] and keep one to crash the disk later.
#[derive(Clone, Default)]
pub struct CrashDisk {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    /// What survives a crash: the volatile image as of the last sync.
    durable: Vec<u8>,
    /// What reads and writes see.
    volatile: Vec<u8>,
    /// Calls to `sync_data` so far.
    syncs: u64,
    /// Set by [`CrashDisk::crash`]: every further operation fails.
    crashed: bool,
}

impl CrashDisk {
    /// An empty disk: both images hold no bytes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates power loss: returns a new disk holding this one's durable image, losing
    /// everything written since the last sync.
    ///
    /// From then on every operation on this disk (and its clones) fails with an I/O error, so a
    /// database still open on it cannot reach the new disk. Crashing an already crashed disk
    /// returns another copy of the same durable image.
    pub fn crash(&self) -> CrashDisk {
        let mut inner = self.lock();
        inner.crashed = true;
        let image = inner.durable.clone();
        CrashDisk {
            inner: Arc::new(Mutex::new(Inner {
                durable: image.clone(),
                volatile: image,
                syncs: 0,
                crashed: false,
            })),
        }
    }

    /// Calls to `sync_data` on this disk so far (both eventual and immediate ones).
    pub fn syncs(&self) -> u64 {
        self.lock().syncs
    }

    /// The length in bytes of the durable image.
    pub fn durable_len(&self) -> u64 {
        self.lock().durable.len() as u64
    }

    /// The length in bytes of the volatile image, as reads see it.
    pub fn volatile_len(&self) -> u64 {
        self.lock().volatile.len() as u64
    }

    /// Whether [`CrashDisk::crash`] was called on this disk.
    pub fn is_crashed(&self) -> bool {
        self.lock().crashed
    }

    /// The state, ignoring poisoning: every operation leaves it consistent.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The state for an I/O operation: fails once the disk has crashed.
    fn live(&self) -> io::Result<MutexGuard<'_, Inner>> {
        let inner = self.lock();
        if inner.crashed {
            Err(io::Error::other("CrashDisk: this disk has crashed"))
        } else {
            Ok(inner)
        }
    }
}

impl fmt::Debug for CrashDisk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("CrashDisk")
            .field("durable_len", &inner.durable.len())
            .field("volatile_len", &inner.volatile.len())
            .field("syncs", &inner.syncs)
            .field("crashed", &inner.crashed)
            .finish()
    }
}

/// A byte range of `len` bytes at `offset`, checked against `size`.
fn range(offset: u64, len: usize, size: usize) -> io::Result<std::ops::Range<usize>> {
    let start = usize::try_from(offset).ok();
    match start.and_then(|s| s.checked_add(len).map(|e| (s, e))) {
        Some((start, end)) if end <= size => Ok(start..end),
        _ => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("CrashDisk: {len} bytes at {offset} lie beyond the end ({size})"),
        )),
    }
}

impl redb::StorageBackend for CrashDisk {
    fn len(&self) -> io::Result<u64> {
        Ok(self.live()?.volatile.len() as u64)
    }

    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        let inner = self.live()?;
        let range = range(offset, len, inner.volatile.len())?;
        Ok(inner.volatile[range].to_vec())
    }

    /// Resizes the volatile image only (zero-filling when it grows): like `ftruncate`, the new
    /// length is durable only after the next sync.
    fn set_len(&self, len: u64) -> io::Result<()> {
        let len =
            usize::try_from(len).map_err(|_| io::Error::other("CrashDisk: length too large"))?;
        self.live()?.volatile.resize(len, 0);
        Ok(())
    }

    /// Makes the volatile image durable, whether `eventual` or not.
    fn sync_data(&self, _eventual: bool) -> io::Result<()> {
        let mut inner = self.live()?;
        let inner = &mut *inner;
        inner.durable.clone_from(&inner.volatile);
        inner.syncs += 1;
        Ok(())
    }

    /// Writes into the volatile image. Writing past the end fails, as in redb's in-memory
    /// backend: redb always extends with `set_len` first.
    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut inner = self.live()?;
        let range = range(offset, data.len(), inner.volatile.len())?;
        inner.volatile[range].copy_from_slice(data);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;

    use redb::{Database, Durability, StorageBackend, TableDefinition, TableError};

    use super::CrashDisk;

    const TABLE: TableDefinition<&str, &str> = TableDefinition::new("backups");

    /// Opens (or creates) a database on `disk`, returning it with whether redb repaired it
    /// while opening (it calls the repair callback with the progress, several times).
    fn open(disk: &CrashDisk) -> (Database, bool) {
        let repaired = Rc::new(Cell::new(false));
        let seen = repaired.clone();
        let db = redb::Builder::new()
            .set_repair_callback(move |_| seen.set(true))
            .create_with_backend(disk.clone())
            .expect("redb opens the disk");
        (db, repaired.get())
    }

    fn write(db: &Database, key: &str, value: &str, durability: Durability) {
        let mut txn = db.begin_write().unwrap();
        txn.set_durability(durability);
        txn.open_table(TABLE).unwrap().insert(key, value).unwrap();
        txn.commit().unwrap();
    }

    /// The value under `key`, `None` when the table or the key is missing.
    fn get(db: &Database, key: &str) -> Option<String> {
        let txn = db.begin_read().unwrap();
        let table = match txn.open_table(TABLE) {
            Ok(table) => table,
            Err(TableError::TableDoesNotExist(_)) => return None,
            Err(err) => panic!("open_table: {err}"),
        };
        table.get(key).unwrap().map(|v| v.value().to_owned())
    }

    #[test]
    fn immediate_commit_survives_a_crash() {
        let disk = CrashDisk::new();
        let (db, _) = open(&disk);
        let before = disk.syncs();
        write(&db, "k", "v1", Durability::Immediate);
        assert!(disk.syncs() > before, "an Immediate commit syncs");
        assert_eq!(get(&db, "k").as_deref(), Some("v1"));

        let after = disk.crash();
        drop(db); // the power is out: its shutdown writes fail on the dead disk

        let (db, repaired) = open(&after);
        assert!(repaired, "a crashed image is repaired on open");
        assert_eq!(get(&db, "k").as_deref(), Some("v1"));
    }

    #[test]
    fn unsynced_commit_is_lost_in_a_crash() {
        let disk = CrashDisk::new();
        let (db, _) = open(&disk);
        let before = disk.syncs();
        write(&db, "k", "v1", Durability::None);
        assert_eq!(disk.syncs(), before, "a Durability::None commit does not sync");
        assert_eq!(get(&db, "k").as_deref(), Some("v1"), "visible before the crash");

        let after = disk.crash();
        drop(db);
        let (db, repaired) = open(&after);
        assert!(repaired);
        assert_eq!(get(&db, "k"), None, "gone after the crash");

        // The reopened database works on as usual.
        write(&db, "k", "v2", Durability::Immediate);
        let again = after.crash();
        drop(db);
        assert_eq!(get(&open(&again).0, "k").as_deref(), Some("v2"));
    }

    #[test]
    fn a_later_durable_commit_carries_earlier_unsynced_ones() {
        let disk = CrashDisk::new();
        let (db, _) = open(&disk);
        write(&db, "a", "1", Durability::None);
        write(&db, "b", "2", Durability::Immediate);
        write(&db, "c", "3", Durability::None);
        let after = disk.crash();
        drop(db);
        let db = open(&after).0;
        assert_eq!(get(&db, "a").as_deref(), Some("1"));
        assert_eq!(get(&db, "b").as_deref(), Some("2"));
        assert_eq!(get(&db, "c"), None);
    }

    #[test]
    fn clean_shutdown_before_the_crash_syncs() {
        // Dropping a database syncs once more on the way out, so an unsynced commit followed by
        // a clean close survives: a crash test must crash *before* dropping the database.
        let disk = CrashDisk::new();
        let (db, _) = open(&disk);
        write(&db, "k", "v1", Durability::None);
        drop(db);
        let (db, repaired) = open(&disk.crash());
        assert!(!repaired, "a cleanly closed image needs no repair");
        assert_eq!(get(&db, "k").as_deref(), Some("v1"));
    }

    #[test]
    fn the_old_disk_fails_after_a_crash() {
        let disk = CrashDisk::new();
        disk.set_len(8).unwrap();
        disk.write(0, b"synced!!").unwrap();
        disk.sync_data(false).unwrap();
        disk.write(0, b"volatile").unwrap();
        let clone = disk.clone();

        let after = disk.crash();
        assert!(disk.is_crashed() && clone.is_crashed() && !after.is_crashed());
        assert!(clone.len().is_err());
        assert!(clone.read(0, 1).is_err());
        assert!(clone.write(0, b"x").is_err());
        assert!(clone.set_len(0).is_err());
        assert!(clone.sync_data(false).is_err());

        assert_eq!(after.read(0, 8).unwrap(), b"synced!!");
        assert_eq!((after.durable_len(), after.volatile_len()), (8, 8));
    }

    #[test]
    fn unsynced_length_changes_are_lost() {
        let disk = CrashDisk::new();
        disk.set_len(4).unwrap();
        assert_eq!((disk.durable_len(), disk.volatile_len()), (0, 4));
        assert!(disk.read(2, 4).is_err(), "reads past the end fail");
        assert!(disk.write(2, b"abc").is_err(), "writes past the end fail");
        assert_eq!(disk.crash().len().unwrap(), 0);
    }
}
