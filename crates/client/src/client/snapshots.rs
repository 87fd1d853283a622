//! Snapshots of whole directories (spec chapter 8), in the client's store under the client's
//! current key: K never leaves the client; the caller gets a [`Snapshots`] for the length of
//! one call.

use e2ee_backup_snapshot::Snapshots;

use super::Client;
use crate::error::Result;
use crate::snapshot_store::SnapshotStore;

impl Client {
    /// Where a directory backup keeps its files cache (spec 8.7.1): in the client directory,
    /// beside the state, so that it is as private as the rest of it and goes with it.
    pub fn files_cache_path(&self) -> std::path::PathBuf {
        self.dir.path().join(crate::state::FILES_CACHE_FILE)
    }

    /// Runs `f` over this client's snapshots, opened with the key backups are made with now
    /// (during a rotation's last phase, the new key). `operation` names the call in errors.
    ///
    /// The snapshot operations (`backup`, `list`, `restore`, `verify`) are the snapshot crate's;
    /// their errors come back as [`Error::Snapshot`](crate::Error::Snapshot).
    pub fn with_snapshots<T>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut Snapshots<'_, SnapshotStore<'_>>) -> e2ee_backup_snapshot::Result<T>,
    ) -> Result<T> {
        let key = self.current_key(operation)?;
        self.store.check_exists()?;
        let store = SnapshotStore::new(&self.store, self.faults.as_ref());
        let result = Snapshots::open(&store, &key).and_then(|mut snapshots| f(&mut snapshots));
        result.map_err(|err| store.client_error(err))
    }
}
