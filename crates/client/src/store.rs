//! The backup store (spec section 5.8): encrypted backup objects in an `object_store`.
//!
//! Objects are named `backups/<unix-time, 20 digits>-<16 random hex digits>.e2ee` under the
//! store's root, so the lexicographically last name is the newest backup and names reveal
//! nothing but the time. The store sees only ciphertext.
//!
//! Over 700 lines only with its unit tests: the code is one type, [`BackupStore`], whose
//! listing, streaming reads, multipart uploads and retries (section 5.3.3) share its runtime.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    GetResultPayload, MultipartUpload, ObjectStore, ObjectStoreExt as _, PutMode, PutOptions,
    PutPayload,
};
use tokio::runtime::Runtime;

use crate::error::{Error, Result};
use crate::faults::{self, FaultInjector};
use crate::retry::{RetryNotice, RetryPolicy, with_retries};
use crate::scratch::{self, Registered};

/// The folder of backup objects.
pub const BACKUP_DIR: &str = "backups";
/// The suffix of backup objects.
pub const BACKUP_SUFFIX: &str = ".e2ee";
/// The smallest part of a multipart upload that S3-compatible stores accept (all parts but
/// the last); smaller part sizes are raised to it.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// The part size of uploads unless [`BackupStore::with_part_size`] sets another. With S3's
/// limit of 10,000 parts, objects up to 80 GiB.
pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

const DOWNLOAD: &str = "download a backup";
const UPLOAD: &str = "upload a backup";

/// A store location as the client records it: URLs as given, a directory made absolute (so a
/// client opened from another working directory finds the same store).
pub fn canonical_location(location: &str) -> String {
    if location.contains("://") {
        return location.to_owned();
    }
    std::path::absolute(location)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| location.to_owned())
}

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
    part_size: usize,
    retry: RetryPolicy,
    notice: Option<RetryNotice>,
    /// The directory of a store on the local file system. Opening the store never creates it
    /// (a mistyped location must not become an empty store): [`BackupStore::create`] does,
    /// when backups are turned on, and listing a missing one is [`Error::StoreMissing`].
    local_dir: Option<PathBuf>,
}

impl std::fmt::Debug for BackupStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupStore")
            .field("root", &self.root.as_ref())
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

fn store_error(operation: &'static str) -> impl Fn(object_store::Error) -> Error {
    move |e| Error::Store { operation, detail: e.to_string() }
}

impl BackupStore {
    /// The store at `location`: a URL that `object_store::parse_url_opts` understands
    /// (`file:///...`, `memory:///`, and with the `cloud` feature `s3://...`, `gs://...`,
    /// `az://...`), or a plain directory path. A local directory is not created here (see
    /// [`BackupStore::create`]).
    pub fn open(location: &str, options: &[(String, String)]) -> Result<Self> {
        let bad = |why: String| Error::StoreLocation { location: location.to_owned(), why };
        let local_dir = if location.contains("://") {
            let url = url::Url::parse(location).map_err(|e| bad(e.to_string()))?;
            if url.scheme() != "file" {
                let (store, root) = object_store::parse_url_opts(&url, options.iter().cloned())
                    .map_err(|e| bad(e.to_string()))?;
                return Self::with_store(Arc::from(store), root);
            }
            url.to_file_path().map_err(|()| bad("not a local file path".to_owned()))?
        } else {
            std::path::absolute(location).map_err(|e| bad(e.to_string()))?
        };
        let store: Arc<dyn ObjectStore> = if local_dir.is_dir() {
            Arc::new(LocalFileSystem::new_with_prefix(&local_dir).map_err(|e| bad(e.to_string()))?)
        } else if local_dir.exists() {
            return Err(bad("it is not a directory".to_owned()));
        } else {
            // Missing: rooted at the file system's root, so that the same store works once the
            // directory is made.
            Arc::new(LocalFileSystem::new())
        };
        let root = if local_dir.is_dir() {
            ObjectPath::default()
        } else {
            ObjectPath::from_absolute_path(&local_dir).map_err(|e| bad(e.to_string()))?
        };
        let mut this = Self::with_store(store, root)?;
        this.local_dir = Some(local_dir);
        Ok(this)
    }

    /// A store the caller built (tests, a shared in-memory store, a custom backend).
    pub fn with_store(store: Arc<dyn ObjectStore>, root: ObjectPath) -> Result<Self> {
        // Two workers: a snapshot backup's upload threads (spec 8.7) call into it at once.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("e2ee-backup-store")
            .enable_all()
            .build()
            .map_err(|e| Error::Store { operation: "start its runtime", detail: e.to_string() })?;
        Ok(Self {
            store,
            root,
            runtime,
            part_size: DEFAULT_PART_SIZE,
            retry: RetryPolicy::default(),
            notice: None,
            local_dir: None,
        })
    }

    /// Retries by `policy` the calls that failed without an answer (spec section 5.3.3),
    /// telling `notice` (if any) before each retry.
    pub fn with_retry(mut self, policy: RetryPolicy, notice: Option<RetryNotice>) -> Self {
        self.retry = policy;
        self.notice = notice;
        self
    }

    /// Runs a call that changes nothing when repeated (a read, a listing, a delete, an
    /// overwriting put) on the store's runtime, again by the retry policy while it fails in a
    /// way that may pass ([`may_pass`]).
    pub(crate) fn run<T, F>(&self, call: impl Fn() -> F) -> object_store::Result<T>
    where
        F: std::future::Future<Output = object_store::Result<T>>,
    {
        /// How a retry notice names the failure.
        struct Failed(object_store::Error);
        impl std::fmt::Display for Failed {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "the backup store failed: {}", self.0)
            }
        }
        with_retries(self.retry, self.notice.as_ref(), || {
            self.runtime.block_on(call()).map_err(|e| {
                let again = may_pass(&e);
                (Failed(e), again)
            })
        })
        .map_err(|Failed(e)| e)
    }

    /// Makes the directory of a local store if it is missing (when backups are turned on).
    pub fn create(&self) -> Result<()> {
        match &self.local_dir {
            Some(dir) => std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                operation: "create the backup store",
                path: dir.clone(),
                source,
            }),
            None => Ok(()),
        }
    }

    /// The directory of a local store.
    pub fn local_dir(&self) -> Option<&Path> {
        self.local_dir.as_deref()
    }

    /// [`Error::StoreMissing`] when this is a local store whose directory does not exist.
    pub fn check_exists(&self) -> Result<()> {
        match &self.local_dir {
            Some(dir) if !dir.is_dir() => Err(Error::StoreMissing { path: dir.clone() }),
            _ => Ok(()),
        }
    }

    /// Uploads in parts of `part_size` bytes (at least [`MIN_PART_SIZE`]).
    pub fn with_part_size(mut self, part_size: usize) -> Self {
        self.part_size = part_size.max(MIN_PART_SIZE);
        self
    }

    /// The size of upload parts: the most an [`Upload`] buffers.
    pub fn part_size(&self) -> usize {
        self.part_size
    }

    pub(crate) fn path(&self, name: &str) -> ObjectPath {
        name.split('/').fold(self.root.clone(), |path, part| path.join(part))
    }

    /// The object store, its root and the runtime, for the snapshot store (`snapshot_store.rs`).
    pub(crate) fn parts(&self) -> (&dyn ObjectStore, &ObjectPath, &Runtime) {
        (self.store.as_ref(), &self.root, &self.runtime)
    }

    /// Every backup object name, oldest first.
    pub fn list(&self) -> Result<Vec<String>> {
        self.check_exists()?;
        let prefix = self.path(BACKUP_DIR);
        let listed = self
            .run(|| self.store.list_with_delimiter(Some(&prefix)))
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

    /// Opens the object for reading as a stream: the bytes arrive as the [`Download`] is read,
    /// so memory stays bounded whatever the object's size.
    pub fn get(&self, name: &str, faults: &dyn FaultInjector) -> Result<Download<'_>> {
        faults::check(faults, &format!("get {name}"))?;
        let path = self.path(name);
        let result = self.run(|| self.store.get(&path)).map_err(store_error(DOWNLOAD))?;
        let expected = result.range.end.saturating_sub(result.range.start);
        let body = match result.payload {
            GetResultPayload::File(mut file, _) => {
                file.seek(SeekFrom::Start(result.range.start))
                    .map_err(|e| Error::Store { operation: DOWNLOAD, detail: e.to_string() })?;
                Body::File(file)
            }
            GetResultPayload::Stream(stream) => Body::Stream { stream, chunk: Bytes::new() },
        };
        Ok(Download { runtime: &self.runtime, body, expected, received: 0, failed: None })
    }

    /// Bytes `range` of the object (fewer if the object is shorter).
    pub fn get_range(&self, name: &str, range: Range<u64>) -> Result<Vec<u8>> {
        let path = self.path(name);
        let result = self.run(|| async {
            let size = self.store.head(&path).await?.size;
            let end = range.end.min(size);
            if end <= range.start {
                return Ok(Vec::new());
            }
            self.store.get_range(&path, range.start..end).await.map(|b| b.to_vec())
        });
        result.map_err(store_error("read a backup header"))
    }

    /// Starts uploading an object; write its bytes to the [`Upload`], then call
    /// [`Upload::finish`]. With `create_only`, an existing object of that name is an error.
    ///
    /// Memory stays within one part ([`BackupStore::part_size`]). An object that fits in one
    /// part is sent by a single put (create-only puts use `PutMode::Create`); a larger one by
    /// a multipart upload, which the store shows only once it completes, and which is aborted
    /// when the upload fails or is dropped unfinished. Create-only multipart uploads check that
    /// the name is free before the first part and again before completing.
    pub fn upload(
        &self,
        name: &str,
        create_only: bool,
        faults: &dyn FaultInjector,
    ) -> Result<Upload<'_>> {
        faults::check(faults, &format!("put {name}"))?;
        self.check_exists()?;
        // On the local file system the object is written to a staging file first, which an
        // interrupt must remove (`scratch::remove_in_flight`).
        let staging = self.local_dir.as_ref().map(|root| {
            let (dir, file) = name.rsplit_once('/').unwrap_or(("", name));
            Registered::staging(&root.join(dir), file)
        });
        Ok(Upload {
            _staging: staging,
            store: self,
            path: self.path(name),
            create_only,
            buffer: Vec::new(),
            multipart: None,
            size: 0,
            failed: None,
        })
    }

    /// Uploads an object held in memory. With `create_only`, an existing object of that name
    /// is an error.
    pub fn put(
        &self,
        name: &str,
        bytes: Vec<u8>,
        create_only: bool,
        faults: &dyn FaultInjector,
    ) -> Result<()> {
        let mut upload = self.upload(name, create_only, faults)?;
        if let Err(err) = upload.write_all(&bytes) {
            return Err(upload
                .failed
                .take()
                .unwrap_or(Error::Store { operation: UPLOAD, detail: err.to_string() }));
        }
        upload.finish().map(drop)
    }

    /// In a store on the local file system, removes the staging objects of backup uploads that
    /// a killed process left, once they are old enough not to be an upload in progress
    /// ([`scratch::remove_stale_staging`]). Returns how many it removed.
    pub fn remove_stale_staging(&self) -> Result<usize> {
        let Some(root) = &self.local_dir else { return Ok(0) };
        let dir = root.join(BACKUP_DIR);
        scratch::remove_stale_staging(&dir, |file| is_backup_name(&format!("{BACKUP_DIR}/{file}")))
            .map_err(|source| Error::Io { operation: "clean up", path: dir, source })
    }

    /// Deletes an object; one already gone is not an error.
    pub fn delete(&self, name: &str, faults: &dyn FaultInjector) -> Result<()> {
        faults::check(faults, &format!("delete {name}"))?;
        let path = self.path(name);
        match self.run(|| self.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error("delete a backup")(e)),
        }
    }
}

/// Whether a failed store call may pass when tried again: a failure without a definite
/// answer (`Generic`: a lost connection, a server error after the store's own retries, an
/// I/O error), unless an I/O error underneath says it cannot heal by waiting (no permission,
/// a missing or misnamed path, a full or read-only disk). Every other kind (not found, already
/// exists, a failed precondition, no permission, not authenticated, not supported) is an
/// answer, and final.
pub(crate) fn may_pass(err: &object_store::Error) -> bool {
    use std::io::ErrorKind::*;
    let object_store::Error::Generic { source, .. } = err else { return false };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source.as_ref());
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<io::Error>() {
            return !matches!(
                io.kind(),
                PermissionDenied
                    | NotFound
                    | AlreadyExists
                    | InvalidInput
                    | InvalidData
                    | Unsupported
                    | ReadOnlyFilesystem
                    | IsADirectory
                    | NotADirectory
                    | StorageFull
                    | FileTooLarge
                    | QuotaExceeded
            );
        }
        cause = error.source();
    }
    true
}

/// A backup object being downloaded, read as a stream: see [`BackupStore::get`].
///
/// Holds at most one piece of the store's response (a local file is read in place). When a
/// read fails because the store failed (an error, or fewer bytes than the object has), the
/// reason is kept: [`Download::take_failure`] tells such a failure, which is the store's and
/// retryable, from a damaged backup.
pub struct Download<'a> {
    runtime: &'a Runtime,
    body: Body,
    expected: u64,
    received: u64,
    failed: Option<Error>,
}

enum Body {
    File(File),
    Stream { stream: BoxStream<'static, object_store::Result<Bytes>>, chunk: Bytes },
}

impl std::fmt::Debug for Download<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("expected", &self.expected)
            .field("received", &self.received)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl Download<'_> {
    /// The object's size.
    pub fn size(&self) -> u64 {
        self.expected
    }

    /// The store failure that made a read fail, if that is why it failed.
    pub fn take_failure(&mut self) -> Option<Error> {
        self.failed.take()
    }

    fn read_body(&mut self, out: &mut [u8]) -> io::Result<usize> {
        match &mut self.body {
            Body::File(file) => file.read(out),
            Body::Stream { stream, chunk } => {
                while chunk.is_empty() {
                    match self.runtime.block_on(stream.next()) {
                        Some(Ok(bytes)) => *chunk = bytes,
                        Some(Err(err)) => return Err(io::Error::other(err)),
                        None => return Ok(0),
                    }
                }
                let n = out.len().min(chunk.len());
                out[..n].copy_from_slice(&chunk[..n]);
                *chunk = chunk.slice(n..);
                Ok(n)
            }
        }
    }
}

impl Read for Download<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if let Some(err) = &self.failed {
            return Err(io::Error::other(err.to_string()));
        }
        let left = self.expected - self.received;
        let want = out.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let detail = match self.read_body(&mut out[..want]) {
            Ok(0) => {
                format!("the download ended after {} of {} bytes", self.received, self.expected)
            }
            Ok(n) => {
                self.received += n as u64;
                return Ok(n);
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => return Err(err),
            Err(err) => err.to_string(),
        };
        let err = Error::Store { operation: DOWNLOAD, detail };
        let io_error = io::Error::other(err.to_string());
        self.failed = Some(err);
        Err(io_error)
    }
}

/// An object being uploaded: see [`BackupStore::upload`]. Write its bytes, then call
/// [`Upload::finish`]; dropped unfinished, it aborts and nothing appears in the store.
pub struct Upload<'a> {
    store: &'a BackupStore,
    path: ObjectPath,
    create_only: bool,
    /// The part being filled; sent once full and more bytes follow, so an object of one part
    /// goes in a single put.
    buffer: Vec<u8>,
    /// The multipart upload, once the object outgrew one part.
    multipart: Option<Box<dyn MultipartUpload>>,
    size: u64,
    failed: Option<Error>,
    /// A local store's staging object, on the in-flight list while the upload lives.
    _staging: Option<Registered>,
}

impl std::fmt::Debug for Upload<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("path", &self.path.as_ref())
            .field("size", &self.size)
            .field("multipart", &self.multipart.is_some())
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

/// Fails when `path` exists: the create-only check of a multipart upload.
async fn ensure_absent(store: &dyn ObjectStore, path: &ObjectPath) -> Result<()> {
    match store.head(path).await {
        Ok(_) => {
            Err(Error::Store { operation: UPLOAD, detail: format!("object {path} already exists") })
        }
        Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(err) => Err(store_error(UPLOAD)(err)),
    }
}

impl Upload<'_> {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The store failure that made a write fail, if that is why it failed.
    pub fn take_failure(&mut self) -> Option<Error> {
        self.failed.take()
    }

    /// Sends the full buffer as the next part, starting the multipart upload first if needed.
    fn send_part(&mut self) -> Result<()> {
        let part = PutPayload::from(std::mem::take(&mut self.buffer));
        let store = self.store;
        let (path, create_only) = (&self.path, self.create_only);
        let started = self.multipart.take();
        let (multipart, sent) = store.runtime.block_on(async {
            let mut multipart = match started {
                Some(multipart) => multipart,
                None => {
                    if create_only {
                        ensure_absent(store.store.as_ref(), path).await?;
                    }
                    store.store.put_multipart(path).await.map_err(store_error(UPLOAD))?
                }
            };
            let sent = multipart.put_part(part).await.map_err(store_error(UPLOAD));
            Ok::<_, Error>((multipart, sent))
        })?;
        self.multipart = Some(multipart);
        sent
    }

    /// Aborts the multipart upload, if any. Best effort: stores without abort clean up
    /// unfinished uploads themselves (lifecycle rules), and none is visible as an object.
    fn abort(&mut self) {
        if let Some(mut multipart) = self.multipart.take() {
            let _ = self.store.runtime.block_on(multipart.abort());
        }
    }

    /// Makes the object appear: one put when it fits in a part, else the last part and the
    /// completion of the multipart upload. Returns the object's size.
    pub fn finish(mut self) -> Result<u64> {
        if let Some(err) = self.failed.take() {
            return Err(err);
        }
        let result = if self.multipart.is_none() { self.put_whole() } else { self.complete() };
        match result {
            Ok(()) => Ok(self.size),
            Err(err) => {
                self.abort();
                Err(err)
            }
        }
    }

    fn put_whole(&mut self) -> Result<()> {
        let mode = if self.create_only { PutMode::Create } else { PutMode::Overwrite };
        let options = PutOptions { mode, ..PutOptions::default() };
        let payload = PutPayload::from(std::mem::take(&mut self.buffer));
        self.store
            .runtime
            .block_on(self.store.store.put_opts(&self.path, payload, options))
            .map(drop)
            .map_err(store_error(UPLOAD))
    }

    fn complete(&mut self) -> Result<()> {
        if !self.buffer.is_empty() {
            self.send_part()?;
        }
        let Some(mut multipart) = self.multipart.take() else {
            return Err(Error::Store { operation: UPLOAD, detail: "no upload to complete".into() });
        };
        let store = self.store;
        let completed = store.runtime.block_on(async {
            if self.create_only {
                ensure_absent(store.store.as_ref(), &self.path).await?;
            }
            multipart.complete().await.map(drop).map_err(store_error(UPLOAD))
        });
        if completed.is_err() {
            self.multipart = Some(multipart);
        }
        completed
    }
}

impl Write for Upload<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if let Some(err) = &self.failed {
            return Err(io::Error::other(err.to_string()));
        }
        if data.is_empty() {
            return Ok(0);
        }
        let part_size = self.store.part_size;
        if self.buffer.len() >= part_size
            && let Err(err) = self.send_part()
        {
            let io_error = io::Error::other(err.to_string());
            self.failed = Some(err);
            self.abort();
            return Err(io_error);
        }
        let len = self.buffer.len();
        let n = data.len().min(part_size - len);
        if self.buffer.capacity() < len + n {
            // Grow by doubling, but never past one part.
            let target = (len * 2).max(len + n).max(64 * 1024).min(part_size);
            self.buffer.reserve_exact(target - len);
        }
        self.buffer.extend_from_slice(&data[..n]);
        self.size += n as u64;
        Ok(n)
    }

    /// Parts are sent when full: flushing sends nothing (parts but the last have one size).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Upload<'_> {
    fn drop(&mut self) {
        self.abort();
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

    fn memory_store() -> (Arc<object_store::memory::InMemory>, BackupStore) {
        let memory = Arc::new(object_store::memory::InMemory::new());
        let store = BackupStore::with_store(memory.clone(), ObjectPath::default()).unwrap();
        (memory, store.with_part_size(0))
    }

    fn read_all(store: &BackupStore, name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        store.get(name, &crate::faults::NoFaults).unwrap().read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn create_only_holds_for_uploads_in_parts() {
        let (_, store) = memory_store();
        assert_eq!(store.part_size(), MIN_PART_SIZE, "part sizes are raised to the minimum");
        let name = new_object_name(1);
        let faults = crate::faults::NoFaults;
        store.put(&name, b"first".to_vec(), true, &faults).unwrap();
        // One part: a create-only put.
        assert!(matches!(
            store.put(&name, b"second".to_vec(), true, &faults),
            Err(Error::Store { .. })
        ));
        // Several parts: refused before the first part is sent.
        let big = vec![5u8; 2 * MIN_PART_SIZE + 1];
        assert!(matches!(store.put(&name, big.clone(), true, &faults), Err(Error::Store { .. })));
        assert_eq!(read_all(&store, &name), b"first");
        // Without create-only, a copy in parts replaces the object, and reads back whole.
        store.put(&name, big.clone(), false, &faults).unwrap();
        assert!(read_all(&store, &name) == big);
    }

    #[test]
    fn an_unfinished_upload_leaves_nothing() {
        let (memory, store) = memory_store();
        let name = new_object_name(2);
        let mut upload = store.upload(&name, true, &crate::faults::NoFaults).unwrap();
        upload.write_all(&vec![1u8; 3 * MIN_PART_SIZE]).unwrap();
        assert_eq!(upload.size(), 3 * MIN_PART_SIZE as u64);
        drop(upload);
        assert!(store.list().unwrap().is_empty());
        let head = store.runtime.block_on(memory.head(&store.path(&name)));
        assert!(matches!(head, Err(object_store::Error::NotFound { .. })), "{head:?}");
    }

    #[test]
    fn a_download_shorter_than_its_object_is_a_store_failure() {
        let (_, store) = memory_store();
        let name = new_object_name(3);
        store.put(&name, vec![9u8; 1000], true, &crate::faults::NoFaults).unwrap();
        let mut download = store.get(&name, &crate::faults::NoFaults).unwrap();
        assert_eq!(download.size(), 1000);
        // The object shrinks under the reader's feet: the stream it was promised ends early.
        download.expected = 2000;
        let mut out = Vec::new();
        assert!(download.read_to_end(&mut out).is_err());
        assert_eq!(out.len(), 1000);
        let failure = download.take_failure();
        assert!(
            matches!(&failure, Some(Error::Store { detail, .. }) if detail.contains("1000 of 2000"))
        );
    }
}
