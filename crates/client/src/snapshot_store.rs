//! The backup store as a snapshot store (spec chapter 8, section 8.3): the snapshot crate's
//! five operations over the same `object_store` as the backups, beside them under `keys/`,
//! `blobs/` and `snapshots/`. Each operation asks the fault injector first (spec 5.7), as the
//! backup objects' do.

use std::sync::{Mutex, PoisonError};

use futures_util::TryStreamExt as _;
use object_store::{ObjectStoreExt as _, PutMode, PutOptions, PutPayload};

use e2ee_backup_snapshot::{Store, StoreError};

use crate::error::Error;
use crate::faults::{self, FaultInjector};
use crate::store::BackupStore;

/// A [`BackupStore`] seen by the snapshot crate.
pub struct SnapshotStore<'a> {
    store: &'a BackupStore,
    faults: &'a dyn FaultInjector,
    /// The injected fault that stopped an operation, kept so that the client reports it as
    /// itself ([`Error::Injected`]) rather than as a store failure.
    stopped: Mutex<Option<Error>>,
}

impl std::fmt::Debug for SnapshotStore<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotStore").field("store", self.store).finish_non_exhaustive()
    }
}

impl<'a> SnapshotStore<'a> {
    /// `store`, with each operation checked against `faults` first.
    pub fn new(store: &'a BackupStore, faults: &'a dyn FaultInjector) -> Self {
        Self { store, faults, stopped: Mutex::new(None) }
    }

    /// The client's error for a failed snapshot operation: the injected fault that stopped it,
    /// if one did, else the snapshot error.
    pub fn client_error(&self, err: e2ee_backup_snapshot::Error) -> Error {
        self.stopped
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or(Error::Snapshot(err))
    }

    fn check(&self, point: String) -> Result<(), StoreError> {
        faults::check(self.faults, &point).map_err(|e| {
            let message = e.to_string();
            *self.stopped.lock().unwrap_or_else(PoisonError::into_inner) = Some(e);
            StoreError::Other(message)
        })
    }

    fn exists_locally(&self) -> Result<(), StoreError> {
        self.store.check_exists().map_err(|e| StoreError::Other(e.to_string()))
    }
}

fn other(err: object_store::Error) -> StoreError {
    match err {
        object_store::Error::NotFound { .. } => StoreError::NotFound,
        object_store::Error::AlreadyExists { .. } => StoreError::AlreadyExists,
        err => StoreError::Other(err.to_string()),
    }
}

impl Store for SnapshotStore<'_> {
    fn put(&self, name: &str, bytes: Vec<u8>, create_only: bool) -> Result<(), StoreError> {
        self.check(format!("put {name}"))?;
        self.exists_locally()?;
        let (store, _, runtime) = self.store.parts();
        let path = self.store.path(name);
        let payload = PutPayload::from(bytes);
        if create_only {
            // Not retried: a put that reached the store before its answer was lost would
            // come back as "already exists".
            let options = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
            runtime.block_on(store.put_opts(&path, payload, options)).map_err(other)?;
        } else {
            self.store.run(|| store.put(&path, payload.clone())).map_err(other)?;
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        self.check(format!("get {name}"))?;
        let (store, _, _) = self.store.parts();
        let path = self.store.path(name);
        let bytes =
            self.store.run(|| async { store.get(&path).await?.bytes().await }).map_err(other)?;
        Ok(bytes.to_vec())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.exists_locally()?;
        let (store, root, _) = self.store.parts();
        let folder = prefix.trim_end_matches('/');
        let listed = if folder.is_empty() { root.clone() } else { self.store.path(folder) };
        let metas =
            self.store.run(|| store.list(Some(&listed)).try_collect::<Vec<_>>()).map_err(other)?;
        let root = root.as_ref();
        let mut names: Vec<String> = metas
            .iter()
            .filter_map(|meta| {
                let full = meta.location.as_ref();
                let relative = if root.is_empty() {
                    full
                } else {
                    full.strip_prefix(root)?.strip_prefix('/')?
                };
                relative.starts_with(prefix).then(|| relative.to_owned())
            })
            .collect();
        names.sort();
        Ok(names)
    }

    fn exists(&self, name: &str) -> Result<bool, StoreError> {
        let (store, _, _) = self.store.parts();
        let path = self.store.path(name);
        match self.store.run(|| store.head(&path)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(err) => Err(other(err)),
        }
    }

    fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.check(format!("delete {name}"))?;
        let (store, _, _) = self.store.parts();
        let path = self.store.path(name);
        match self.store.run(|| store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(other(err)),
        }
    }
}
