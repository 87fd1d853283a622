//! What the tests share: a [`Staging`] over `tempfile`, for restores (spec 8.8). The command
//! line uses the client's `scratch` module instead.

use std::fs::File;
use std::io;
use std::path::Path;

use e2ee_backup_snapshot::{StagedFile, Staging, Store, StoreError};

/// The temporary files' names start with this, so that a test can look for leftovers.
pub const TEMP_PREFIX: &str = ".staged-";

/// Stages each restored file as a `tempfile::NamedTempFile` (removed when dropped).
pub struct Temps;

struct Temp(tempfile::NamedTempFile);

impl Staging for Temps {
    fn create_in(&self, dir: &Path) -> io::Result<Box<dyn StagedFile>> {
        Ok(Box::new(Temp(tempfile::Builder::new().prefix(TEMP_PREFIX).tempfile_in(dir)?)))
    }
}

impl StagedFile for Temp {
    fn file_mut(&mut self) -> &mut File {
        self.0.as_file_mut()
    }

    fn persist(self: Box<Self>, target: &Path) -> io::Result<()> {
        self.0.persist_noclobber(target).map(drop).map_err(|e| e.error)
    }
}

/// A memory store that calls `before` ahead of each write, with the store and the write as
/// `"put NAME"` or `"delete NAME"`: to fail it, slow it down, count, or run another device's call
/// in between.
#[allow(dead_code)] // not every test file uses it
pub struct OnWrite<F> {
    pub inner: e2ee_backup_snapshot::MemoryStore,
    pub before: F,
}

#[allow(dead_code)]
impl<F> OnWrite<F>
where
    F: Fn(&e2ee_backup_snapshot::MemoryStore, &str) -> Result<(), StoreError> + Sync,
{
    pub fn new(before: F) -> Self {
        Self { inner: e2ee_backup_snapshot::MemoryStore::new(), before }
    }
}

impl<F> Store for OnWrite<F>
where
    F: Fn(&e2ee_backup_snapshot::MemoryStore, &str) -> Result<(), StoreError> + Sync,
{
    fn put(&self, name: &str, bytes: Vec<u8>, create_only: bool) -> Result<(), StoreError> {
        (self.before)(&self.inner, &format!("put {name}"))?;
        self.inner.put(name, bytes, create_only)
    }
    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        self.inner.get(name)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(prefix)
    }
    fn exists(&self, name: &str) -> Result<bool, StoreError> {
        self.inner.exists(name)
    }
    fn delete(&self, name: &str) -> Result<(), StoreError> {
        (self.before)(&self.inner, &format!("delete {name}"))?;
        self.inner.delete(name)
    }
}

/// A `before` for [`OnWrite`] that lets `left` more of the writes `counted` picks go through,
/// then fails every one it picks, as after a crash or a lost connection.
#[allow(dead_code)]
pub fn fails_after<'a>(
    left: &'a std::sync::atomic::AtomicUsize,
    counted: impl Fn(&str) -> bool + Sync + 'a,
) -> impl Fn(&e2ee_backup_snapshot::MemoryStore, &str) -> Result<(), StoreError> + Sync + 'a {
    use std::sync::atomic::Ordering;
    move |_, write| {
        if !counted(write) {
            return Ok(());
        }
        left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .map(drop)
            .map_err(|_| StoreError::Other("crashed".into()))
    }
}
