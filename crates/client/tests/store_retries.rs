//! The backup store tries again, with the vault's bounded backoff, the calls that failed without
//! an answer and change nothing when repeated (issue 11: "retries with bounded backoff for
//! vault and store calls"; spec 5.3.3); a failure that is an answer (no permission) is
//! reported at once.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use e2ee_backup_client::{Client, Error, MemoryTransport, Options, RetryPolicy, Setup, Source};
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path as ObjectPath;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

const NOW: u64 = 1_800_000_000;
const QUICK: RetryPolicy = RetryPolicy {
    attempts: 4,
    first_delay: Duration::from_millis(5),
    max_delay: Duration::from_millis(20),
};

/// Fails the next `failures` reads and listings with `kind`, then serves them from memory.
#[derive(Debug)]
struct Flaky {
    inner: InMemory,
    failures: Mutex<u32>,
    kind: io::ErrorKind,
    /// Calls that reached this store: reads and listings.
    calls: Mutex<u32>,
}

impl Flaky {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: InMemory::new(),
            failures: Mutex::new(0),
            kind: io::ErrorKind::ConnectionReset,
            calls: Mutex::new(0),
        })
    }

    fn failing(&self, failures: u32) {
        *self.failures.lock().unwrap() = failures;
        *self.calls.lock().unwrap() = 0;
    }

    fn calls(&self) -> u32 {
        *self.calls.lock().unwrap()
    }

    fn trip(&self) -> object_store::Result<()> {
        *self.calls.lock().unwrap() += 1;
        let mut failures = self.failures.lock().unwrap();
        if *failures == 0 {
            return Ok(());
        }
        *failures -= 1;
        let source = Box::new(io::Error::new(self.kind, "injected"));
        Err(object_store::Error::Generic { store: "flaky", source })
    }
}

impl fmt::Display for Flaky {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Flaky")
    }
}

#[async_trait]
impl ObjectStore for Flaky {
    async fn put_opts(
        &self,
        location: &ObjectPath,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &ObjectPath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &ObjectPath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.trip()?;
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<ObjectPath>>,
    ) -> BoxStream<'static, object_store::Result<ObjectPath>> {
        match self.trip() {
            Ok(()) => self.inner.delete_stream(locations),
            Err(err) => futures_util::stream::once(async move { Err(err) }).boxed(),
        }
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
        self.trip()?;
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

/// How many objects the store holds.
fn objects(store: &Flaky) -> usize {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    runtime.block_on(store.inner.list(None).count())
}

type Notices = Arc<Mutex<Vec<(u32, u32, String)>>>;

fn client(dir: &std::path::Path, store: Arc<Flaky>, notices: &Notices) -> Client {
    let seen = notices.clone();
    let options = || Options {
        transport: Some(Box::new(MemoryTransport::fleet("fleet.test", 10, NOW, NOW + 1).transport)),
        store: Some(store.clone()),
        now: Some(NOW),
        retry: QUICK,
        on_retry: Some(Arc::new({
            let seen = seen.clone();
            move |n, of, _, why| seen.lock().unwrap().push((n, of, why.to_owned()))
        })),
        ..Options::default()
    };
    let setup = Setup { account: "+15550001111".into(), store: "memory:///".into(), vault: None };
    Client::create(dir, setup, options()).unwrap();
    Client::open(dir, options()).unwrap()
}

#[test]
fn store_reads_that_fail_without_an_answer_are_tried_again_within_the_bound() {
    let root = tempfile::tempdir().unwrap();
    let store = Flaky::new();
    let notices = Notices::default();
    let mut phone = client(&root.path().join("phone"), store.clone(), &notices);
    let digits = phone.enable_with_key().unwrap();
    phone.create_backup(Source::Bytes(b"first"), "msgstore").unwrap();
    // A backup reads the store first (whose key made its newest backups, spec 5.4): two lost
    // answers there are retried too.
    store.failing(2);
    phone.create_backup(Source::Bytes(b"chat history"), "msgstore").unwrap();
    assert_eq!(notices.lock().unwrap().len(), 2);
    notices.lock().unwrap().clear();

    // Two lost answers: the restore's listing and reads go through on the third try, and the
    // user was told of each retry.
    store.failing(2);
    let target = root.path().join("restored");
    let report = phone.restore_with_key(&digits, &target).unwrap();
    assert_eq!(report.bytes, 12);
    assert_eq!(std::fs::read(&target).unwrap(), b"chat history");
    let seen = notices.lock().unwrap().clone();
    assert_eq!(seen.iter().map(|(n, of, _)| (*n, *of)).collect::<Vec<_>>(), [(2, 4), (3, 4)]);
    assert!(seen[0].2.contains("the backup store failed"), "{:?}", seen[0].2);

    // More failures than tries: the store's error, retryable, after exactly four tries.
    notices.lock().unwrap().clear();
    store.failing(10);
    let err = phone.restore_with_key(&digits, &root.path().join("again")).unwrap_err();
    assert!(matches!(err, Error::Store { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert_eq!(store.calls(), 4);
    assert_eq!(notices.lock().unwrap().len(), 3);

    // Deletes are retried: turning backups off removes every backup through two lost answers.
    store.failing(0);
    let mut other = client(&root.path().join("other"), store.clone(), &notices);
    other.restore_with_key(&digits, &root.path().join("other.db")).unwrap();
    notices.lock().unwrap().clear();
    let listed = objects(&store);
    assert_eq!(listed, 2, "two backups to delete");
    store.failing(2);
    other.disable(None).unwrap();
    assert_eq!(notices.lock().unwrap().len(), 2);
    let listed = objects(&store);
    assert_eq!(listed, 0, "every backup was deleted");
}

#[test]
fn a_store_failure_that_is_an_answer_is_not_tried_again() {
    let root = tempfile::tempdir().unwrap();
    let store = Arc::new(Flaky {
        kind: io::ErrorKind::PermissionDenied,
        ..Arc::into_inner(Flaky::new()).unwrap()
    });
    let notices = Notices::default();
    let mut phone = client(&root.path().join("phone"), store.clone(), &notices);
    let digits = phone.enable_with_key().unwrap();
    phone.create_backup(Source::Bytes(b"chat history"), "msgstore").unwrap();

    store.failing(1);
    let err = phone.restore_with_key(&digits, &root.path().join("restored")).unwrap_err();
    assert!(matches!(err, Error::Store { .. }), "{err:?}");
    assert_eq!(store.calls(), 1, "no permission is final: one try");
    assert!(notices.lock().unwrap().is_empty());
}
