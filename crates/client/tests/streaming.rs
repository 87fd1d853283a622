//! Backups, restores and key rotations stream: memory stays bounded whatever the backup's
//! size. A recording `ObjectStore` wraps the local store and logs every put, every part of a
//! multipart upload, and every download; it hands downloads out in small pieces and notes,
//! before each piece, how far the client got with the pieces it already has (bytes written to
//! the restore's temporary file, or bytes of the copy already uploaded). A client holding a
//! whole backup in memory would show up as a download read to its end before anything was
//! written or uploaded, or as a put or a part as large as the backup.
#![forbid(unsafe_code)]

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use e2ee_backup_client::{Client, Error, Mode, Options, Setup, Source};
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
    UploadPart,
};

const NOW: u64 = 1_800_000_000;
const MIB: usize = 1024 * 1024;
/// The upload part size the clients here use.
const PART: usize = 5 * MIB;
/// The backup: larger than four parts.
const BACKUP: usize = 24 * MIB;
/// The pieces downloads are handed out in.
const PIECE: usize = 64 * 1024;
/// What the format's streaming reader and writer may hold at once: a few batches of chunks
/// and zstd's buffers (each far below this).
const FORMAT_SLACK: u64 = 4 * MIB as u64;

/// A multipart upload as the store saw it.
#[derive(Debug, Clone, Default)]
struct UploadLog {
    path: String,
    parts: Vec<usize>,
    completed: bool,
    aborted: bool,
}

/// Before a download handed out its next piece: bytes handed out so far, the size of the
/// watched file, and bytes of multipart parts uploaded since the log was cleared.
#[derive(Debug, Clone, Copy)]
struct Progress {
    handed_out: u64,
    watched_len: u64,
    uploaded: u64,
}

/// How to break the next whole-object download.
#[derive(Debug, Clone, Copy)]
enum Break {
    /// The stream fails after this many bytes.
    ErrorAt(u64),
    /// The stream ends, without an error, after this many bytes.
    EndAt(u64),
}

#[derive(Debug, Default)]
struct Log {
    /// Single puts: path, size, whether create-only.
    puts: Vec<(String, usize, bool)>,
    uploads: Vec<UploadLog>,
    /// Ranged downloads: path and range (`None`: not a bounded range).
    ranged: Vec<(String, Option<Range<u64>>)>,
    /// Whole-object downloads, each with its progress notes.
    downloads: Vec<(String, Vec<Progress>)>,
    uploaded: u64,
    /// The restore whose temporary file's size progress notes record: its directory and the
    /// name of its target (the temporary file is `.e2ee-backup-RANDOM.partial` beside it).
    watch: Option<(PathBuf, String)>,
    /// Fail this part (counted from 0) of every multipart upload.
    fail_part: Option<usize>,
    break_next_download: Option<Break>,
}

#[derive(Debug, Clone)]
struct Recording {
    inner: Arc<LocalFileSystem>,
    log: Arc<Mutex<Log>>,
}

impl Recording {
    fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let inner = Arc::new(LocalFileSystem::new_with_prefix(dir).unwrap());
        Self { inner, log: Arc::default() }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Log) -> T) -> T {
        f(&mut self.log.lock().unwrap())
    }

    /// Forgets what was recorded (not the settings).
    fn clear(&self) {
        self.with(|log| {
            log.puts.clear();
            log.uploads.clear();
            log.ranged.clear();
            log.downloads.clear();
            log.uploaded = 0;
        });
    }
}

impl fmt::Display for Recording {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recording({})", self.inner)
    }
}

#[derive(Debug)]
struct RecordingUpload {
    inner: Box<dyn MultipartUpload>,
    log: Arc<Mutex<Log>>,
    index: usize,
}

#[async_trait]
impl MultipartUpload for RecordingUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let mut log = self.log.lock().unwrap();
        let parts = &mut log.uploads[self.index].parts;
        let number = parts.len();
        parts.push(data.content_length());
        if log.fail_part == Some(number) {
            return Box::pin(async {
                Err(object_store::Error::Generic {
                    store: "recording",
                    source: "injected part failure".into(),
                })
            });
        }
        log.uploaded += data.content_length() as u64;
        drop(log);
        self.inner.put_part(data)
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let result = self.inner.complete().await;
        self.log.lock().unwrap().uploads[self.index].completed = result.is_ok();
        result
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        self.log.lock().unwrap().uploads[self.index].aborted = true;
        self.inner.abort().await
    }
}

/// The size of the temporary file a restore to `dir/_name` writes (0 while there is none).
fn temp_len(dir: &Path, _name: &str) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(e2ee_backup_client::scratch::is_temp_name))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .max()
        .unwrap_or(0)
}

/// Hands `inner` out in pieces of at most [`PIECE`] bytes, noting the progress before each.
fn recorded_stream(
    inner: BoxStream<'static, object_store::Result<Bytes>>,
    log: Arc<Mutex<Log>>,
    index: usize,
    broken: Option<Break>,
) -> BoxStream<'static, object_store::Result<Bytes>> {
    let state = (inner, Bytes::new(), 0u64);
    futures_util::stream::unfold(state, move |(mut inner, mut pending, handed_out)| {
        let log = log.clone();
        async move {
            match broken {
                Some(Break::EndAt(at)) if handed_out >= at => return None,
                Some(Break::ErrorAt(at)) if handed_out >= at => {
                    let source = "injected download failure".into();
                    let err = object_store::Error::Generic { store: "recording", source };
                    // End after the error.
                    return Some((
                        Err(err),
                        (futures_util::stream::empty().boxed(), Bytes::new(), 0),
                    ));
                }
                _ => {}
            }
            while pending.is_empty() {
                match inner.next().await? {
                    Ok(bytes) => pending = bytes,
                    Err(err) => return Some((Err(err), (inner, pending, handed_out))),
                }
            }
            {
                let mut log = log.lock().unwrap();
                let watched_len = log.watch.as_ref().map_or(0, |(dir, name)| temp_len(dir, name));
                let uploaded = log.uploaded;
                log.downloads[index].1.push(Progress { handed_out, watched_len, uploaded });
            }
            let piece = pending.split_to(pending.len().min(PIECE));
            let next = handed_out + piece.len() as u64;
            Some((Ok(piece), (inner, pending, next)))
        }
    })
    .fuse()
    .boxed()
}

#[async_trait]
impl ObjectStore for Recording {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let create = matches!(opts.mode, PutMode::Create);
        self.with(|log| log.puts.push((location.to_string(), payload.content_length(), create)));
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let inner = self.inner.put_multipart_opts(location, opts).await?;
        let index = self.with(|log| {
            log.uploads.push(UploadLog { path: location.to_string(), ..UploadLog::default() });
            log.uploads.len() - 1
        });
        Ok(Box::new(RecordingUpload { inner, log: self.log.clone(), index }))
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if options.head {
            return self.inner.get_opts(location, options).await;
        }
        if let Some(range) = &options.range {
            let bounded = match range {
                GetRange::Bounded(r) => Some(r.clone()),
                _ => None,
            };
            self.with(|log| log.ranged.push((location.to_string(), bounded)));
            return self.inner.get_opts(location, options).await;
        }
        let (index, broken) = self.with(|log| {
            log.downloads.push((location.to_string(), Vec::new()));
            (log.downloads.len() - 1, log.break_next_download.take())
        });
        let result = self.inner.get_opts(location, options).await?;
        let (meta, range) = (result.meta.clone(), result.range.clone());
        let (attributes, extensions) = (result.attributes.clone(), result.extensions.clone());
        let stream = recorded_stream(result.into_stream(), self.log.clone(), index, broken);
        let payload = GetResultPayload::Stream(stream);
        Ok(GetResult { payload, meta, range, attributes, extensions })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&ObjectPath>,
    ) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &ObjectPath,
        to: &ObjectPath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// Incompressible bytes (xorshift64), so the backup stays as large as its plaintext.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Device `name` under `root`, on `store`, key mode only, uploading in parts of [`PART`].
fn device(root: &Path, name: &str, store: &Recording) -> Client {
    let dir = root.join(name);
    let options = Options {
        store: Some(Arc::new(store.clone())),
        part_size: PART,
        now: Some(NOW),
        ..Options::default()
    };
    if dir.join("state.json").exists() {
        return Client::open(&dir, options).unwrap();
    }
    let setup = Setup {
        account: "+15550001111".to_owned(),
        store: root.join("store").to_string_lossy().into_owned(),
        vault: None,
    };
    Client::create(&dir, setup, options).unwrap()
}

/// The multipart upload of `object`: checks that it went in parts of [`PART`] bytes (the last
/// one at most that), was completed, and adds up to `size`.
fn assert_uploaded_in_parts(store: &Recording, object: &str, size: u64) {
    let (puts, uploads) = store.with(|log| (log.puts.clone(), log.uploads.clone()));
    assert!(
        puts.iter().all(|(path, _, _)| !path.ends_with(object)),
        "{object} was uploaded by a single put: {puts:?}"
    );
    let [upload] = &uploads[..] else { panic!("expected one multipart upload: {uploads:?}") };
    assert!(upload.path.ends_with(object), "{upload:?}");
    assert!(upload.completed && !upload.aborted, "{upload:?}");
    let (last, full) = upload.parts.split_last().unwrap();
    assert!(full.iter().all(|&p| p == PART), "{:?}", upload.parts);
    assert!(*last > 0 && *last <= PART, "{:?}", upload.parts);
    assert!(upload.parts.len() >= BACKUP / PART, "{:?}", upload.parts);
    assert_eq!(upload.parts.iter().sum::<usize>() as u64, size);
}

/// The one whole-object download since the log was cleared: the bytes handed out, and how far
/// behind them the client's output (measured by `output`) ever fell.
fn download_lag(store: &Recording, output: impl Fn(&Progress) -> u64) -> (u64, u64) {
    let downloads = store.with(|log| log.downloads.clone());
    let [(_, progress)] = &downloads[..] else {
        panic!("expected one download, got {}", downloads.len())
    };
    let handed_out = progress.last().map_or(0, |p| p.handed_out);
    let lag = progress.iter().map(|p| p.handed_out.saturating_sub(output(p))).max().unwrap_or(0);
    (handed_out, lag)
}

/// Header reads are the only ranged downloads, and each is no larger than a header.
fn assert_only_header_ranges(store: &Recording) {
    let header = e2ee_backup_format::header::HEADER_LEN as u64;
    let ranged = store.with(|log| log.ranged.clone());
    for (path, range) in &ranged {
        let range = range.clone().unwrap_or_else(|| panic!("unbounded range of {path}"));
        assert!(range.end - range.start <= header, "{path}: {range:?}");
    }
}

#[test]
fn backup_restore_and_rotation_stream_in_bounded_parts() {
    let root = tempfile::tempdir().unwrap();
    let store = Recording::new(&root.path().join("store"));
    let mut phone = device(root.path(), "phone", &store);
    let digits = phone.enable_with_key().unwrap();

    // A small backup is one create-only put, as before.
    let small = phone.create_backup(Source::Bytes(b"old chats"), "db").unwrap();
    let puts = store.with(|log| log.puts.clone());
    assert!(
        matches!(&puts[..], [(path, size, true)] if path.ends_with(&small.object)
            && *size as u64 == small.size),
        "{puts:?}"
    );
    assert!(store.with(|log| log.uploads.is_empty()));

    // A large one, from a file, goes in parts of PART bytes.
    let plaintext = noise(BACKUP, 7);
    let source = root.path().join("msgstore.db");
    std::fs::write(&source, &plaintext).unwrap();
    store.clear();
    let big = phone.create_backup(Source::Path(&source), "msgstore.db").unwrap();
    assert!(big.size > BACKUP as u64, "{}", big.size);
    assert_uploaded_in_parts(&store, &big.object, big.size);
    let stored = std::fs::metadata(root.path().join("store").join(&big.object)).unwrap();
    assert_eq!(stored.len(), big.size);

    // A restore writes the plaintext out while the download is still arriving: the bytes
    // handed to the client never run more than the format's slack ahead of its temporary
    // file. A client reading the whole object first would fall behind by all of it.
    let target = root.path().join("restored.db");
    store.with(|log| log.watch = Some((root.path().to_path_buf(), "restored.db".into())));
    store.clear();
    let mut fresh = device(root.path(), "fresh", &store);
    let report = fresh.restore_with_key(&digits, &target).unwrap();
    assert_eq!(report.object, big.object);
    assert_eq!(report.bytes, BACKUP as u64);
    assert!(std::fs::read(&target).unwrap() == plaintext, "the restored file differs");
    let (handed_out, lag) = download_lag(&store, |p| p.watched_len);
    assert!(handed_out + PIECE as u64 >= big.size, "{handed_out} of {}", big.size);
    assert!(lag <= FORMAT_SLACK, "the restore fell {lag} bytes behind its download");
    assert_only_header_ranges(&store);

    // Rotation: the copy is uploaded in parts while the old object is still downloading; the
    // copy never falls more than a part (the upload's buffer) and the slack behind.
    store.with(|log| log.watch = None);
    store.clear();
    let rotated = phone.rotate_key(None).unwrap();
    assert_eq!(rotated.reencrypted, 2);
    assert!(rotated.damaged.is_empty());
    let (uploads, downloads) = store.with(|log| (log.uploads.clone(), log.downloads.len()));
    assert_eq!(downloads, 2, "both backups were downloaded once");
    let [upload] = &uploads[..] else { panic!("only the large copy needs parts: {uploads:?}") };
    let copy = upload.path.rsplit('/').next().unwrap().to_owned();
    let copy_size = std::fs::metadata(root.path().join("store/backups").join(&copy)).unwrap().len();
    store.with(|log| log.downloads.retain(|(path, _)| path.ends_with(&big.object)));
    assert_uploaded_in_parts(&store, &copy, copy_size);
    let (_, lag) = download_lag(&store, |p| p.uploaded);
    assert!(lag <= PART as u64 + FORMAT_SLACK, "the rotation fell {lag} bytes behind its download");
    assert_only_header_ranges(&store);

    // The rotated backup restores on another device.
    let target = root.path().join("again.db");
    let mut third = device(root.path(), "third", &store);
    third.restore_with_key(&rotated.digits, &target).unwrap();
    assert!(std::fs::read(&target).unwrap() == plaintext, "the rotated backup differs");
}

#[test]
fn a_broken_download_is_a_store_failure_and_the_restore_resumes() {
    let root = tempfile::tempdir().unwrap();
    let store = Recording::new(&root.path().join("store"));
    let mut phone = device(root.path(), "phone", &store);
    let digits = phone.enable_with_key().unwrap();
    let plaintext = noise(2 * PART + MIB, 11);
    phone.create_backup(Source::Bytes(&plaintext), "db").unwrap();

    let target = root.path().join("restored.db");
    let temp_left = || {
        std::fs::read_dir(root.path()).unwrap().any(|e| {
            e.unwrap().file_name().to_str().is_some_and(e2ee_backup_client::scratch::is_temp_name)
        })
    };
    let mut fresh = device(root.path(), "fresh", &store);
    // A stream that fails, then one that ends early: neither is the backup's fault, so the
    // key is kept, the restore stays pending, and nothing is left at the target.
    for broken in [Break::ErrorAt(3 * MIB as u64), Break::EndAt(PART as u64 + 12_345)] {
        store.with(|log| log.break_next_download = Some(broken));
        let err = fresh.restore_with_key(&digits, &target).unwrap_err();
        assert!(matches!(err, Error::Store { .. }) && err.is_retryable(), "{broken:?}: {err}");
        assert!(matches!(fresh.status().mode, Mode::Restoring { .. }), "{broken:?}");
        assert!(!target.exists() && !temp_left(), "{broken:?}: partial plaintext left");
    }
    let report = fresh.resume_restore().unwrap();
    assert_eq!(report.bytes, plaintext.len() as u64);
    assert!(std::fs::read(&target).unwrap() == plaintext, "the restored file differs");
    assert!(matches!(fresh.status().mode, Mode::Key { .. }));
}

#[test]
fn a_failed_upload_is_aborted_and_leaves_no_object() {
    let root = tempfile::tempdir().unwrap();
    let store = Recording::new(&root.path().join("store"));
    let mut phone = device(root.path(), "phone", &store);
    phone.enable_with_key().unwrap();
    let first = phone.create_backup(Source::Bytes(b"chats"), "db").unwrap();

    store.with(|log| log.fail_part = Some(1));
    let err = phone.create_backup(Source::Bytes(&noise(3 * PART, 3)), "db").unwrap_err();
    assert!(matches!(err, Error::Store { .. }), "{err}");
    let uploads = store.with(|log| log.uploads.clone());
    let [upload] = &uploads[..] else { panic!("{uploads:?}") };
    assert!(upload.aborted && !upload.completed, "{upload:?}");
    assert_eq!(upload.parts.len(), 2, "the upload stopped at the failed part");
    assert_eq!(phone.list_backups().unwrap(), vec![first.object.clone()]);
    // Nothing of the upload is left in the store's directory, not even a staging file.
    let files: Vec<_> = std::fs::read_dir(root.path().join("store/backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, vec![first.object.trim_start_matches("backups/").to_owned()]);

    // The store works again: the next backup goes through.
    store.with(|log| log.fail_part = None);
    phone.create_backup(Source::Bytes(&noise(3 * PART, 4)), "db").unwrap();
    assert_eq!(phone.list_backups().unwrap().len(), 2);
}
