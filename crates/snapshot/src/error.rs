//! The errors of snapshot operations (spec section 8.10).

use std::io;
use std::path::PathBuf;

use crate::manifest::ManifestError;
use crate::store::StoreError;

/// Everything that can go wrong making, listing, restoring or checking snapshots.
///
/// No variant carries a byte of a key or of file content; blob names (keyed MACs) and paths
/// may appear.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed.
    #[error("the store could not {operation} {name}: {source}")]
    Store {
        /// What was being done.
        operation: &'static str,
        /// The object's name.
        name: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// A snapshot references a blob the store does not hold.
    #[error("blob {name} is missing from the store")]
    BlobMissing {
        /// The blob's name.
        name: String,
    },
    /// The blob stored under one name says it is another: blobs were renamed or swapped.
    #[error("the blob stored as {expected} is blob {found}: blobs were renamed or swapped")]
    BlobRenamed {
        /// The name it is stored and referenced under.
        expected: String,
        /// The name its authenticated metadata carries.
        found: String,
    },
    /// The blob decrypts but its content does not have its name's MAC.
    #[error("blob {name} does not hold the content its name commits to")]
    BlobContentMismatch {
        /// The blob's name.
        name: String,
    },
    /// The blob's length differs from the manifest's.
    #[error("blob {name} holds {actual} bytes where the snapshot records {expected}")]
    BlobLengthMismatch {
        /// The blob's name.
        name: String,
        /// Length recorded in the manifest.
        expected: u32,
        /// Length found.
        actual: u64,
    },
    /// The blob is not a valid file under the blob key (truncated, modified, another store's).
    #[error("blob {name} is damaged: {source}")]
    BlobDamaged {
        /// The blob's name.
        name: String,
        /// What the format reader found.
        #[source]
        source: e2ee_backup_format::Error,
    },
    /// No snapshot has that identifier.
    #[error("there is no snapshot {id}")]
    SnapshotMissing {
        /// The identifier asked for.
        id: String,
    },
    /// The manifest object does not open under this account's key (another key or account,
    /// or damage).
    #[error("snapshot {id} does not open: {source}")]
    ManifestDamaged {
        /// The snapshot.
        id: String,
        /// What the format reader found (`wrong-key` for another account or key).
        #[source]
        source: e2ee_backup_format::Error,
    },
    /// The manifest stored under one identifier is another snapshot's.
    #[error("the manifest stored as snapshot {id} is snapshot {found}")]
    ManifestRenamed {
        /// The identifier it is stored under.
        id: String,
        /// The identifier its authenticated metadata carries.
        found: String,
    },
    /// The manifest decrypts but its encoding is refused.
    #[error("snapshot {id} is malformed: {source}")]
    InvalidManifest {
        /// The snapshot.
        id: String,
        /// The rule it breaks.
        #[source]
        source: ManifestError,
    },
    /// A path found on disk or asked for breaks a rule of section 8.4.
    #[error("path {path:?} is refused: {why}")]
    UnsafePath {
        /// The path, lossily as text.
        path: String,
        /// The rule it breaks.
        why: &'static str,
    },
    /// The wrapped media root key does not open under this K.
    #[error("the media root key does not open under this key: {source}")]
    MediaRootKey {
        /// What the format reader found.
        #[source]
        source: e2ee_backup_format::Error,
    },
    /// The store holds snapshots but no media root key this K opens.
    #[error("the store holds no media root key")]
    NoMediaRootKey,
    /// The restore target exists and is not an empty directory.
    #[error("restore target {path} exists and is not an empty directory")]
    TargetNotEmpty {
        /// The target.
        path: PathBuf,
    },
    /// Resuming a restore: something at a name the snapshot restores is not what it has
    /// (another kind, size or modification time), so it was not written by the restore resumed.
    #[error(
        "{path} is in the way: it is not what the snapshot has there, so no restore of it wrote it"
    )]
    TargetConflict {
        /// What is in the way.
        path: PathBuf,
    },
    /// Chunking parameters outside the chunker's bounds.
    #[error("invalid chunking parameters: {0}")]
    InvalidChunking(&'static str),
    /// A local file operation failed.
    #[error("could not {operation} {path}: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The file.
        path: PathBuf,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// Encrypting failed.
    #[error("could not encrypt: {0}")]
    Encrypt(#[source] e2ee_backup_format::Error),
    /// A prune is deleting blobs (its sweep record is live): a backup started now could
    /// reuse a blob it deletes, so the backup stops before it lists or uploads any (section
    /// 8.12.2). Try again once the prune is over.
    #[error("a prune started at {since} µs (Unix time) is deleting blobs; try again later")]
    PruneRunning {
        /// When the prune started, Unix time in microseconds.
        since: u64,
    },
    /// The backup ran too long without renewing its hold: a prune may now judge it over and
    /// delete the blobs it uploaded, so it writes no manifest (section 8.12.2).
    #[error(
        "the backup's hold expired (a pause longer than half the grace period); no snapshot was written"
    )]
    HoldExpired,
    /// A prune record (candidates, hold or sweep) does not open or is malformed.
    #[error("prune record {name} is unreadable: {why}")]
    PruneRecord {
        /// The object.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// An exclusion pattern that is empty or not a glob (section 8.7).
    #[error("exclusion pattern {pattern:?} is refused: {why}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// What is wrong with it.
        why: String,
    },
    /// A retention policy that keeps nothing: forgetting every snapshot is refused.
    #[error("the retention policy keeps no snapshot: give at least one --keep rule")]
    EmptyPolicy,
    /// A full re-keying found a live hold: a backup is running, and it could reference blobs
    /// under the media root key being replaced (section 8.11). Nothing was copied or
    /// switched; try again once the backup is over.
    #[error(
        "a backup started at {since} µs (Unix time) is running; try the full re-keying again later"
    )]
    BackupRunning {
        /// When the backup's hold was written, Unix time in microseconds.
        since: u64,
    },
    /// A full re-keying paused longer than a quarter of the grace period between two writes:
    /// a backup may since have judged its sweep record stale, so it stopped (section 8.11).
    /// Running it again resumes it.
    #[error("the full re-keying paused too long between two writes; run it again to resume")]
    RekeyPaused,
    /// The store is in a state a full re-keying does not produce (section 8.11), so it
    /// touches nothing.
    #[error("the store cannot be fully re-keyed: {why}")]
    RekeyConflict {
        /// What was found.
        why: &'static str,
    },
}

impl Error {
    /// A stable short name of the variant (spec section 8.10), for JSON output and tests.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Store { .. } => "store",
            Error::BlobMissing { .. } => "blob-missing",
            Error::BlobRenamed { .. } => "blob-renamed",
            Error::BlobContentMismatch { .. } => "blob-content-mismatch",
            Error::BlobLengthMismatch { .. } => "blob-length-mismatch",
            Error::BlobDamaged { .. } => "blob-damaged",
            Error::SnapshotMissing { .. } => "snapshot-missing",
            Error::ManifestDamaged { .. } => "manifest-damaged",
            Error::ManifestRenamed { .. } => "manifest-renamed",
            Error::InvalidManifest { .. } => "invalid-manifest",
            Error::UnsafePath { .. } => "unsafe-path",
            Error::MediaRootKey { .. } => "media-root-key",
            Error::NoMediaRootKey => "no-media-root-key",
            Error::TargetNotEmpty { .. } => "target-not-empty",
            Error::TargetConflict { .. } => "target-conflict",
            Error::InvalidChunking(_) => "invalid-chunking",
            Error::Io { .. } => "io",
            Error::Encrypt(_) => "encrypt",
            Error::PruneRunning { .. } => "prune-running",
            Error::HoldExpired => "hold-expired",
            Error::PruneRecord { .. } => "prune-record",
            Error::EmptyPolicy => "empty-policy",
            Error::InvalidPattern { .. } => "invalid-pattern",
            Error::BackupRunning { .. } => "backup-running",
            Error::RekeyPaused => "rekey-paused",
            Error::RekeyConflict { .. } => "rekey-conflict",
        }
    }

    pub(crate) fn store(operation: &'static str, name: &str) -> impl FnOnce(StoreError) -> Error {
        let name = name.to_owned();
        move |source| Error::Store { operation, name, source }
    }
}

/// The result of snapshot operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
