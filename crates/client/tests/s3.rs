//! The client against an S3-compatible store (`s3://`, spec section 5.3), not only a folder: an
//! S3 server (`s3s-fs`, files under a temporary directory) runs inside the test process on a
//! loopback port, with signed requests; the client reaches it through `object_store`'s S3
//! client, as it would reach a cloud bucket. Backups, restores on a new device and the snapshot
//! journeys (backup of a tree, verify with data, restore, forget and prune) run over it.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{ACCOUNT, World};
use e2ee_backup_client::faults::NoFaults;
use e2ee_backup_client::scratch::RestoreStaging;
use e2ee_backup_client::{Client, Options, Setup, Source};
use e2ee_backup_snapshot::ForgetPolicy;
use e2ee_backup_testkit::noise;

const BUCKET: &str = "backups";
const ACCESS_KEY: &str = "AKIDE2EETEST";
const SECRET_KEY: &str = "e2ee-backups-test-secret";

/// `s3s-fs` as Amazon S3 behaves where the client depends on it: a multi-object delete reports
/// a key that was not there as deleted (S3's deletes are idempotent; `s3s-fs` leaves it out, and
/// `object_store` refuses the empty answer). Everything else goes to `s3s-fs` unchanged.
struct AsS3(s3s_fs::FileSystem);

/// The `S3` implementation of [`AsS3`]: the listed calls forwarded, `delete_objects` as S3 does
/// it. (Generated whole, so that `async_trait` sees every method.)
macro_rules! as_s3 {
    ($($method:ident: $input:ident => $output:ident;)*) => {
        #[async_trait::async_trait]
        impl s3s::S3 for AsS3 {
            $(
                async fn $method(
                    &self,
                    req: s3s::S3Request<s3s::dto::$input>,
                ) -> s3s::S3Result<s3s::S3Response<s3s::dto::$output>> {
                    self.0.$method(req).await
                }
            )*

            async fn delete_objects(
                &self,
                req: s3s::S3Request<s3s::dto::DeleteObjectsInput>,
            ) -> s3s::S3Result<s3s::S3Response<s3s::dto::DeleteObjectsOutput>> {
                let asked: Vec<String> =
                    req.input.delete.objects.iter().map(|o| o.key.clone()).collect();
                let mut response = self.0.delete_objects(req).await?;
                let deleted = response.output.deleted.get_or_insert_with(Vec::new);
                for key in asked {
                    if !deleted.iter().any(|d| d.key.as_deref() == Some(key.as_str())) {
                        let gone = s3s::dto::DeletedObject { key: Some(key), ..Default::default() };
                        deleted.push(gone);
                    }
                }
                Ok(response)
            }
        }
    };
}

as_s3! {
    create_bucket: CreateBucketInput => CreateBucketOutput;
    head_bucket: HeadBucketInput => HeadBucketOutput;
    get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput;
    list_buckets: ListBucketsInput => ListBucketsOutput;
    list_objects: ListObjectsInput => ListObjectsOutput;
    list_objects_v2: ListObjectsV2Input => ListObjectsV2Output;
    head_object: HeadObjectInput => HeadObjectOutput;
    get_object: GetObjectInput => GetObjectOutput;
    put_object: PutObjectInput => PutObjectOutput;
    copy_object: CopyObjectInput => CopyObjectOutput;
    delete_object: DeleteObjectInput => DeleteObjectOutput;
    create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput;
    upload_part: UploadPartInput => UploadPartOutput;
    list_parts: ListPartsInput => ListPartsOutput;
    complete_multipart_upload: CompleteMultipartUploadInput => CompleteMultipartUploadOutput;
    abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput;
}

/// An S3 server over `root` (each directory a bucket), on a loopback port of its own runtime;
/// returns its endpoint. It stops with the test process.
fn start_s3(root: &Path) -> String {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder;
    use s3s::auth::SimpleAuth;
    use s3s::service::S3ServiceBuilder;

    std::fs::create_dir_all(root.join(BUCKET)).unwrap();
    let fs = s3s_fs::FileSystem::new(root).unwrap();
    let mut builder = S3ServiceBuilder::new(AsS3(fs));
    builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = builder.build().into_shared();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        runtime.block_on(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else { continue };
                let service = service.clone();
                tokio::spawn(async move {
                    let _ = Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        })
    });
    endpoint
}

/// A device whose backup store is `s3://backups/chats` on the server at `endpoint`, signing
/// with `secret`; store calls are tried once.
fn device(w: &World, name: &str, endpoint: &str, secret: &str) -> Client {
    let options = || {
        let mut options = Options {
            store_options: vec![
                ("aws_endpoint".into(), endpoint.into()),
                ("aws_access_key_id".into(), ACCESS_KEY.into()),
                ("aws_secret_access_key".into(), secret.into()),
                ("aws_region".into(), "us-east-1".into()),
                ("allow_http".into(), "true".into()),
            ],
            ..w.options(Arc::new(NoFaults))
        };
        options.retry.attempts = 1;
        options
    };
    let dir = w.device(name);
    if !dir.join("state.json").exists() {
        let setup = Setup {
            account: ACCOUNT.to_owned(),
            store: format!("s3://{BUCKET}/chats"),
            vault: Some(("http://vault.invalid".to_owned(), w.fleet.pin.clone())),
        };
        Client::create(&dir, setup, options()).unwrap();
    }
    Client::open(&dir, options()).unwrap()
}

#[test]
fn backups_and_snapshots_round_trip_through_an_s3_store() {
    let w = World::new(10);
    let s3_root = w.root.path().join("s3");
    let endpoint = start_s3(&s3_root);

    // A backup larger than one multipart part (the streamed upload), restored on a new device
    // with the key alone.
    let mut phone = device(&w, "phone", &endpoint, SECRET_KEY);
    let digits = phone.enable_with_key().unwrap();
    let database = noise(7, 9 << 20);
    phone.create_backup(Source::Bytes(&database), "msgstore.db").unwrap();
    assert_eq!(phone.list_backups().unwrap().len(), 1);
    let stored = walk(&s3_root.join(BUCKET).join("chats"));
    assert!(stored.iter().any(|p| p.starts_with("backups/")), "{stored:?}");
    let mut new_phone = device(&w, "new-phone", &endpoint, SECRET_KEY);
    new_phone.restore_with_key(&digits, &w.target("db")).unwrap();
    assert!(std::fs::read(w.target("db")).unwrap() == database);

    // Two snapshots of a chat tree, the second with one more photo and a new database.
    let tree = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tree.path().join("Media")).unwrap();
    std::fs::write(tree.path().join("msgstore.db"), noise(1, 300_000)).unwrap();
    std::fs::write(tree.path().join("Media/a.jpg"), noise(2, 70_000)).unwrap();
    let first = phone.with_snapshots("test", |s| s.backup(tree.path())).unwrap();
    std::fs::write(tree.path().join("Media/b.jpg"), noise(3, 50_000)).unwrap();
    std::fs::write(tree.path().join("msgstore.db"), noise(4, 200_000)).unwrap();
    let second = phone.with_snapshots("test", |s| s.backup(tree.path())).unwrap();
    assert!(second.reused_blobs > 0 && second.new_blobs > 0, "{second:?}");

    // Listed, verified with their data, and restored on the other device.
    let ids = new_phone.with_snapshots("test", |s| s.ids()).unwrap();
    assert_eq!(ids, vec![first.id.clone(), second.id.clone()]);
    for id in &ids {
        let report = new_phone.with_snapshots("test", |s| s.verify(id, true)).unwrap();
        assert!(report.is_ok() && report.bytes_read > 0, "{report:?}");
    }
    let target = w.target("tree");
    new_phone
        .with_snapshots("test", |s| s.restore(&second.id, &target, &[], &RestoreStaging::default()))
        .unwrap();
    for file in ["msgstore.db", "Media/a.jpg", "Media/b.jpg"] {
        assert!(
            std::fs::read(target.join(file)).unwrap()
                == std::fs::read(tree.path().join(file)).unwrap(),
            "{file}"
        );
    }

    // Forget the first snapshot; prune marks what only it referenced (deleted after the
    // grace period), and the kept snapshot still verifies.
    let policy = ForgetPolicy { keep_last: 1, ..Default::default() };
    let forgot = phone.with_snapshots("test", |s| s.forget(&policy, false)).unwrap();
    assert_eq!(forgot.removed, vec![first.id.clone()]);
    let pruned = phone.with_snapshots("test", |s| s.prune()).unwrap();
    assert!(pruned.candidates > 0, "{pruned:?}");
    assert_eq!(phone.with_snapshots("test", |s| s.ids()).unwrap(), vec![second.id.clone()]);
    assert!(phone.with_snapshots("test", |s| s.verify(&second.id, true)).unwrap().is_ok());

    // A wrong secret is refused by the server, and the client says the store failed.
    let stranger = device(&w, "stranger", &endpoint, "not the secret");
    let err = stranger.list_backups().unwrap_err();
    assert!(matches!(err, e2ee_backup_client::Error::Store { .. }), "{err:?}");
}

/// The objects under `dir`, as paths relative to it.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for item in std::fs::read_dir(d).unwrap() {
            let path = item.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push(path.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out
}
