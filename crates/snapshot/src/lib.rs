//! Whole-directory snapshots for e2ee-backups (spec chapter 8, `spec/08-snapshots.md`).
//!
//! A snapshot is a **manifest** (the tree: paths, kinds, modes, times, and for each file the
//! list of its blobs) encrypted under a key derived from K, and **blobs**: chunks of file
//! content, cut where the content decides (FastCDC), each stored once per account under the
//! keyed MAC of its content and encrypted under a key derived from the store's **media root
//! key**, which is itself stored wrapped under K. A second backup of an unchanged tree
//! uploads no blob; a rotation of K re-wraps one key and re-encrypts the manifests, never the
//! media, unless it is full ([`rekey_full`], section 8.11), which replaces the media root key
//! and re-encrypts every blob under a new name.
//!
//! ```
//! use std::io;
//! use std::path::Path;
//!
//! use e2ee_backup_kdf::BackupKey;
//! use e2ee_backup_snapshot::{MemoryStore, Snapshots};
//!
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("msgstore.db"), b"chat history").unwrap();
//! let store = MemoryStore::new();
//! let k = BackupKey::generate();
//! let mut snapshots = Snapshots::open(&store, &k).unwrap();
//! let report = snapshots.backup(dir.path()).unwrap();
//! assert_eq!((report.files, report.new_blobs), (1, 1));
//! let again = snapshots.backup(dir.path()).unwrap();
//! assert_eq!((again.new_blobs, again.reused_blobs), (0, 1));
//!
//! // Where a restore stages each file before it takes its name ([`Staging`]); the client's
//! // `scratch` module has the one the command line uses.
//! struct Temps;
//! impl e2ee_backup_snapshot::Staging for Temps {
//!     fn create_in(&self, dir: &Path) -> io::Result<Box<dyn e2ee_backup_snapshot::StagedFile>> {
//!         Ok(Box::new(Temp(tempfile::NamedTempFile::new_in(dir)?)))
//!     }
//! }
//! struct Temp(tempfile::NamedTempFile);
//! impl e2ee_backup_snapshot::StagedFile for Temp {
//!     fn file_mut(&mut self) -> &mut std::fs::File {
//!         self.0.as_file_mut()
//!     }
//!     fn persist(self: Box<Self>, target: &Path) -> io::Result<()> {
//!         self.0.persist_noclobber(target).map(drop).map_err(|e| e.error)
//!     }
//! }
//!
//! let target = tempfile::tempdir().unwrap();
//! snapshots.restore(&report.id, target.path(), &[], &Temps).unwrap();
//! assert_eq!(std::fs::read(target.path().join("msgstore.db")).unwrap(), b"chat history");
//! ```
//!
//! The logic runs over the small [`Store`] trait; [`MemoryStore`] keeps objects in memory.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod blob;
pub mod keys;
pub mod manifest;
pub mod path;
pub mod staging;
pub mod store;

mod error;
mod exclude;
mod files_cache;
mod prune;
mod rekey_full;
mod snapshots;

pub use blob::BlobName;
pub use error::{Error, Result};
pub use exclude::Excludes;
pub use keys::{AccountKeys, MediaKeys, MediaRootKey};
pub use manifest::{BlobRef, Entry, EntryKind, Manifest, ManifestError};
pub use prune::{
    CANDIDATES_OBJECT, DEFAULT_GRACE, ForgetPolicy, ForgetReport, HOLD_DIR, PRUNE_DIR, PruneReport,
    SWEEP_DIR,
};
pub use rekey_full::{FullRekeyReport, MEDIA_ROOT_NEXT_OBJECT, rekey_full, rekey_full_with};
pub use snapshots::{
    BackupOptions, BackupPhase, BackupProgress, BackupProgressFn, BackupReport, ChunkParams, Clock,
    DATABASE_CHUNKING, MEDIA_ROOT_OBJECT, RekeyReport, RestoreReport, SNAPSHOT_DIR, SnapshotInfo,
    Snapshots, VerifyReport, delete_all, is_database, is_snapshot_id, open_manifest, rekey,
    seal_manifest, seal_manifest_with, snapshot_object,
};
pub use staging::{StagedFile, Staging};
pub use store::{MemoryStore, Store, StoreError};
