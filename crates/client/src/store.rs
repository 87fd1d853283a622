//! The backup store (spec section 5.8): encrypted backup objects in an `object_store`.
//!
//! Objects are named `backups/<unix-time, 20 digits>-<16 random hex digits>.e2ee` under the
//! store's root, so the lexicographically last name is the newest backup and names reveal
//! nothing but the time. The store sees only ciphertext.

use std::ops::Range;
use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload};
use tokio::runtime::Runtime;

use crate::error::{Error, Result};
use crate::faults::{self, FaultInjector};

/// The folder of backup objects.
pub const BACKUP_DIR: &str = "backups";
/// The suffix of backup objects.
pub const BACKUP_SUFFIX: &str = ".e2ee";

/// A name for a new backup made at `unix_time`.
pub fn new_object_name(unix_time: u64) -> String {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).expect("the operating system's random source failed");
    format!("{BACKUP_DIR}/{unix_time:020}-{}{BACKUP_SUFFIX}", hex::encode(random))
}

/// The time part of a backup object name.
pub fn object_time(name: &str) -> Option<u64> {
    name.strip_prefix(&format!("{BACKUP_DIR}/"))
        .and_then(|rest| rest.split('-').next())
        .and_then(|t| t.parse::<u64>().ok())
}

/// A name for the re-encrypted copy of `old`: same time, new random part.
pub fn copy_name(old: &str) -> String {
    new_object_name(object_time(old).unwrap_or(0))
}

/// Whether `name` is a backup object name.
pub fn is_backup_name(name: &str) -> bool {
    name.strip_prefix(&format!("{BACKUP_DIR}/"))
        .and_then(|rest| rest.strip_suffix(BACKUP_SUFFIX))
        .is_some_and(|stem| {
            stem.split_once('-').is_some_and(|(t, r)| {
                t.len() == 20
                    && t.bytes().all(|b| b.is_ascii_digit())
                    && r.len() == 16
                    && r.bytes().all(|b| b.is_ascii_hexdigit())
            })
        })
}

/// An object store, a root inside it, and the runtime its async calls run on.
pub struct BackupStore {
    store: Arc<dyn ObjectStore>,
    root: ObjectPath,
    runtime: Runtime,
}

impl std::fmt::Debug for BackupStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupStore").field("root", &self.root.as_ref()).finish_non_exhaustive()
    }
}

fn store_error(operation: &'static str) -> impl Fn(object_store::Error) -> Error {
    move |e| Error::Store { operation, detail: e.to_string() }
}

impl BackupStore {
    /// The store at `location`: a URL that `object_store::parse_url_opts` understands
    /// (`file:///...`, `memory:///`, and with the `cloud` feature `s3://...`, `gs://...`,
    /// `az://...`), or a plain directory path, which is created if missing.
    pub fn open(location: &str, options: &[(String, String)]) -> Result<Self> {
        let bad = |why: String| Error::StoreLocation { location: location.to_owned(), why };
        let (store, root): (Arc<dyn ObjectStore>, ObjectPath) = if location.contains("://") {
            let url = url::Url::parse(location).map_err(|e| bad(e.to_string()))?;
            let (store, root) = object_store::parse_url_opts(&url, options.iter().cloned())
                .map_err(|e| bad(e.to_string()))?;
            if url.scheme() == "file" {
                std::fs::create_dir_all(url.path()).map_err(|e| bad(e.to_string()))?;
            }
            (Arc::from(store), root)
        } else {
            std::fs::create_dir_all(location).map_err(|e| bad(e.to_string()))?;
            let local =
                LocalFileSystem::new_with_prefix(location).map_err(|e| bad(e.to_string()))?;
            (Arc::new(local), ObjectPath::default())
        };
        Self::with_store(store, root)
    }

    /// A store the caller built (tests, a shared in-memory store, a custom backend).
    pub fn with_store(store: Arc<dyn ObjectStore>, root: ObjectPath) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::Store { operation: "start its runtime", detail: e.to_string() })?;
        Ok(Self { store, root, runtime })
    }

    fn path(&self, name: &str) -> ObjectPath {
        name.split('/').fold(self.root.clone(), |path, part| path.join(part))
    }

    /// Every backup object name, oldest first.
    pub fn list(&self) -> Result<Vec<String>> {
        let prefix = self.path(BACKUP_DIR);
        let listed = self
            .runtime
            .block_on(self.store.list_with_delimiter(Some(&prefix)))
            .map_err(store_error("list backups"))?;
        let mut names: Vec<String> = listed
            .objects
            .iter()
            .filter_map(|meta| meta.location.filename().map(|f| format!("{BACKUP_DIR}/{f}")))
            .filter(|name| is_backup_name(name))
            .collect();
        names.sort();
        Ok(names)
    }

    /// The whole object.
    pub fn get(&self, name: &str, faults: &dyn FaultInjector) -> Result<Vec<u8>> {
        faults::check(faults, &format!("get {name}"))?;
        let path = self.path(name);
        self.runtime
            .block_on(async {
                let result = self.store.get(&path).await?;
                result.bytes().await
            })
            .map(|b| b.to_vec())
            .map_err(store_error("download a backup"))
    }

    /// Bytes `range` of the object (fewer if the object is shorter).
    pub fn get_range(&self, name: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let path = self.path(name);
        let result = self.runtime.block_on(async {
            let size = self.store.head(&path).await?.size;
            let end = range.end.min(size);
            if end <= range.start {
                return Ok(Vec::new());
            }
            self.store.get_range(&path, range.start..end).await.map(|b| b.to_vec())
        });
        result.map_err(store_error("read a backup header"))
    }

    /// Uploads an object. With `create_only`, an existing object of that name is an error.
    pub fn put(
        &self,
        name: &str,
        bytes: Vec<u8>,
        create_only: bool,
        faults: &dyn FaultInjector,
    ) -> Result<()> {
        faults::check(faults, &format!("put {name}"))?;
        let path = self.path(name);
        let mode = if create_only { PutMode::Create } else { PutMode::Overwrite };
        let options = PutOptions { mode, ..PutOptions::default() };
        self.runtime
            .block_on(self.store.put_opts(&path, PutPayload::from(bytes), options))
            .map(|_| ())
            .map_err(store_error("upload a backup"))
    }

    /// Deletes an object; one already gone is not an error.
    pub fn delete(&self, name: &str, faults: &dyn FaultInjector) -> Result<()> {
        faults::check(faults, &format!("delete {name}"))?;
        let path = self.path(name);
        match self.runtime.block_on(self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error("delete a backup")(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_time_and_are_recognised() {
        let a = new_object_name(9);
        let b = new_object_name(10);
        assert!(a < b, "{a} {b}");
        assert!(is_backup_name(&a) && is_backup_name(&b));
        let copy = copy_name(&b);
        assert_ne!(copy, b);
        assert_eq!(copy[..28], b[..28]);
        assert!(!is_backup_name("backups/1-2.e2ee"));
        assert!(!is_backup_name("other/00000000000000000010-0011223344556677.e2ee"));
    }
}
