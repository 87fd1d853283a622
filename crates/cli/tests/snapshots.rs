//! Snapshots of directories through the `e2ee-backup` binary (spec chapter 8): `backup DIR`,
//! `snapshots`, `restore --snapshot`, `verify`, and `rotate-key` re-encrypting the manifests
//! (with `--full`, the blobs too).
//! Key mode, so no vault is needed; each call is a separate process.

use e2ee_backup_testkit::noise;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tempfile::TempDir;

struct World {
    root: TempDir,
}

impl World {
    fn new() -> Self {
        let world = Self { root: tempfile::tempdir().unwrap() };
        let chats = world.path("chats");
        fs::create_dir_all(chats.join("Media/WhatsApp Images")).unwrap();
        fs::create_dir_all(chats.join("Databases")).unwrap();
        fs::create_dir_all(chats.join("empty")).unwrap();
        // Under 8 KiB, the database chunker's minimum (spec 8.6): one blob whatever the media
        // root key.
        let db: Vec<u8> =
            (0..400u32).flat_map(|i| format!("{i}|see you at 8pm\n").into_bytes()).collect();
        fs::write(chats.join("Databases/msgstore.db"), db).unwrap();
        fs::write(chats.join("Media/WhatsApp Images/IMG été 1.jpg"), [7u8; 5000]).unwrap();
        fs::write(chats.join("Media/WhatsApp Images/IMG copy.jpg"), [7u8; 5000]).unwrap();
        world
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// Runs `e2ee-backup ARGS --json --client-dir client`; returns the exit code and the JSON.
    fn run(&self, args: &[&str]) -> (i32, Value) {
        let output = Command::new(env!("CARGO_BIN_EXE_e2ee-backup"))
            .current_dir(self.root.path())
            .args(args)
            .args(["--json", "--client-dir", "client"])
            .output()
            .expect("the binary runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let json = serde_json::from_str(stdout.lines().last().unwrap_or("null"))
            .unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"));
        (output.status.code().unwrap(), json)
    }

    fn ok(&self, args: &[&str]) -> Value {
        let (code, json) = self.run(args);
        assert_eq!(code, 0, "{args:?}: {json}");
        json
    }
}

fn files(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_owned()];
    while let Some(dir) = pending.pop() {
        for item in fs::read_dir(dir).unwrap() {
            let path = item.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                out.push((rel, Vec::new()));
                pending.push(path);
            } else {
                out.push((rel, fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_directory_backs_up_as_a_snapshot_and_restores_after_a_rotation() {
    let world = World::new();
    world.ok(&["enable", "--key"]);
    let first = world.ok(&["backup", "chats"]);
    assert_eq!(first["files"], 3);
    assert_eq!(first["newBlobs"], 2, "the two equal images are one blob: {first}");
    assert_eq!(first["reusedBlobs"], 1);
    let second = world.ok(&["backup", "chats"]);
    assert_eq!(second["newBlobs"], 0, "{second}");
    assert_eq!(second["newBytes"], 0);

    let listed = world.ok(&["snapshots"]);
    let snapshots = listed["snapshots"].as_array().unwrap();
    assert_eq!(snapshots.len(), 2);
    assert_eq!(snapshots[1]["id"], second["snapshot"]);
    assert_eq!(snapshots[1]["files"], 3);
    assert_eq!(snapshots[0]["newBytes"], first["newBytes"]);

    let verified = world.ok(&["verify", "--read-data"]);
    assert_eq!(verified["blobs"], 2);

    let rotated = world.ok(&["rotate-key"]);
    assert_eq!(rotated["snapshotsRekeyed"], 2, "{rotated}");

    let id = first["snapshot"].as_str().unwrap();
    world.ok(&["restore", "--snapshot", id, "--to", "restored"]);
    assert_eq!(files(&world.path("restored")), files(&world.path("chats")));

    world.ok(&["restore", "--snapshot", "latest", "--to", "some", "Databases"]);
    let some: Vec<String> = files(&world.path("some")).into_iter().map(|(p, _)| p).collect();
    assert_eq!(some, ["Databases", "Databases/msgstore.db"]);

    // Refusals: a target that holds files, a path that climbs out.
    let (code, json) = world.run(&["restore", "--snapshot", id, "--to", "restored"]);
    assert_eq!((code, json["error"]["code"].as_str()), (2, Some("target-not-empty")));
    let (code, json) = world.run(&["restore", "--snapshot", id, "--to", "x", "../etc"]);
    assert_eq!((code, json["error"]["code"].as_str()), (2, Some("unsafe-path")));
    assert!(!world.path("x").exists());
}

/// The blob objects of the store, by name.
fn blob_names(store: &Path) -> Vec<String> {
    files(&store.join("blobs"))
        .into_iter()
        .filter(|(_, content)| !content.is_empty())
        .map(|(path, _)| path)
        .collect()
}

/// `rotate-key --full` (spec 8.11): every blob is re-encrypted under a new name, and every
/// snapshot still restores byte for byte under the new key.
#[test]
fn rotate_key_full_re_encrypts_every_blob_and_the_snapshots_restore() {
    let world = World::new();
    let enabled = world.ok(&["enable", "--key"]);
    let store = PathBuf::from(enabled["store"].as_str().unwrap());
    let first = world.ok(&["backup", "chats"]);
    fs::write(world.path("chats/Media/new.jpg"), [9u8; 3000]).unwrap();
    let second = world.ok(&["backup", "chats"]);
    let before = blob_names(&store);
    assert_eq!(before.len(), 3, "{before:?}");

    let rotated = world.ok(&["rotate-key", "--full"]);
    assert_eq!(rotated["snapshotsRekeyed"], 2, "{rotated}");
    assert_eq!(rotated["blobsRekeyed"], 3, "{rotated}");
    let after = blob_names(&store);
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(after.iter().all(|name| !before.contains(name)), "{before:?} {after:?}");
    assert!(!store.join("keys/media-root-next.e2ee").exists());

    world.ok(&["restore", "--snapshot", second["snapshot"].as_str().unwrap(), "--to", "two"]);
    assert_eq!(files(&world.path("two")), files(&world.path("chats")));
    fs::remove_file(world.path("chats/Media/new.jpg")).unwrap();
    world.ok(&["restore", "--snapshot", first["snapshot"].as_str().unwrap(), "--to", "one"]);
    assert_eq!(files(&world.path("one")), files(&world.path("chats")));
    assert_eq!(world.ok(&["verify", "--read-data"])["blobs"], 3);

    // Without snapshots: the ordinary rotation, and nothing to re-encrypt.
    let empty = World::new();
    empty.ok(&["enable", "--key"]);
    let rotated = empty.ok(&["rotate-key", "--full"]);
    assert_eq!(rotated["blobsRekeyed"], 0, "{rotated}");
}

#[test]
fn verify_read_data_finds_a_damaged_blob() {
    let world = World::new();
    world.ok(&["enable", "--key"]);
    world.ok(&["backup", "chats"]);
    let blobs = world.path("client/store/blobs");
    let fan = fs::read_dir(&blobs).unwrap().next().unwrap().unwrap().path();
    let blob = fs::read_dir(fan).unwrap().next().unwrap().unwrap().path();
    let mut bytes = fs::read(&blob).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    fs::write(&blob, bytes).unwrap();

    world.ok(&["verify"]);
    let (code, json) = world.run(&["verify", "--read-data"]);
    assert_eq!(code, 4, "{json}");
    assert_eq!(json["error"]["code"], "snapshot-damaged");
    assert_eq!(json["error"]["problems"][0]["code"], "blob-damaged");
}

#[test]
fn a_failed_restore_leaves_no_partial_file_behind() {
    let world = World::new();
    // Sorted last and several blobs long whatever the store's chunking seed (chunks of
    // 256 KiB to 4 MiB, so at least 3 for 12 MiB): its last blob is the last one uploaded.
    fs::write(world.path("chats/video.mp4"), noise(5, 12 << 20)).unwrap();
    world.ok(&["enable", "--key"]);
    let backup = world.ok(&["backup", "chats"]);
    assert!(backup["newBlobs"].as_u64().unwrap() >= 4, "{backup}");
    let mut blobs: Vec<PathBuf> = fs::read_dir(world.path("client/store/blobs"))
        .unwrap()
        .flat_map(|fan| fs::read_dir(fan.unwrap().path()).unwrap())
        .map(|blob| blob.unwrap().path())
        .collect();
    blobs.sort_by_key(|blob| fs::metadata(blob).unwrap().modified().unwrap());
    let newest = blobs.last().unwrap();
    let mut bytes = fs::read(newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(newest, bytes).unwrap();

    let (code, json) = world.run(&["restore", "--snapshot", "latest", "--to", "restored"]);
    assert_eq!((code, json["error"]["code"].as_str()), (4, Some("blob-damaged")), "{json}");
    let left = files(&world.path("restored"));
    assert!(!world.path("restored/video.mp4").exists(), "a partial file under its name");
    assert!(left.iter().all(|(path, _)| !path.ends_with(".partial")), "{left:?}");
    // The files before it were restored whole.
    let db = fs::read(world.path("chats/Databases/msgstore.db")).unwrap();
    assert_eq!(fs::read(world.path("restored/Databases/msgstore.db")).unwrap(), db);
}

#[test]
fn backup_leaves_out_what_exclude_patterns_match() {
    let world = World::new();
    let chats = world.path("chats");
    fs::create_dir_all(chats.join("Media/.Statuses/old")).unwrap();
    fs::write(chats.join("Media/.Statuses/old/s.jpg"), b"status").unwrap();
    fs::write(chats.join("Databases/msgstore.db-journal"), b"journal").unwrap();
    fs::write(chats.join("Media/WhatsApp Images/upload.tmp"), b"tmp").unwrap();
    fs::write(
        world.path("excludes.txt"),
        "# caches and journals\n.Statuses\n\n  Databases/*-journal  \n",
    )
    .unwrap();
    world.ok(&["enable", "--key"]);

    let (code, json) = world.run(&["backup", "chats", "--exclude", "[a-"]);
    assert_eq!((code, json["error"]["code"].as_str()), (2, Some("invalid-pattern")), "{json}");
    let (code, json) = world.run(&["backup", "chats/Databases/msgstore.db", "--exclude", "x"]);
    assert_eq!((code, json["error"]["code"].as_str()), (2, Some("usage")), "{json}");

    let backup = world.ok(&[
        "backup",
        "chats",
        "--exclude",
        "*.tmp",
        "--exclude",
        "/empty",
        "--exclude-file",
        "excludes.txt",
    ]);
    assert_eq!(backup["excluded"], 4, "{backup}");
    assert_eq!(backup["files"], 3, "{backup}");
    world.ok(&["restore", "--snapshot", "latest", "--to", "restored"]);
    let restored: Vec<String> =
        files(&world.path("restored")).into_iter().map(|(p, _)| p).collect();
    assert_eq!(
        restored,
        [
            "Databases",
            "Databases/msgstore.db",
            "Media",
            "Media/WhatsApp Images",
            "Media/WhatsApp Images/IMG copy.jpg",
            "Media/WhatsApp Images/IMG été 1.jpg",
        ]
    );
}

#[test]
fn backup_reports_files_and_bytes_new_and_reused() {
    let world = World::new();
    world.ok(&["enable", "--key"]);
    let db = fs::metadata(world.path("chats/Databases/msgstore.db")).unwrap().len();
    let first = world.ok(&["backup", "chats"]);
    let counts = |json: &Value| {
        ["files", "dirs", "bytes", "newBlobs", "newBytes", "reusedBlobs", "reusedBytes"]
            .map(|field| json[field].as_u64().unwrap_or_else(|| panic!("{field}: {json}")))
    };
    // The two equal images are one blob, uploaded once and reused once.
    assert_eq!(counts(&first), [3, 4, db + 10_000, 2, db + 5000, 1, 5000]);

    fs::write(world.path("chats/Media/new.jpg"), [9u8; 3000]).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_e2ee-backup"))
        .current_dir(world.root.path())
        .args(["backup", "chats", "--client-dir", "client"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("4 file(s), 4 dir(s), 0 link(s)"), "{stderr}");
    let reused = format!("uploaded 1 new blob(s) (3000 bytes); reused 3 ({} bytes)", db + 10_000);
    assert!(stderr.contains(&reused), "{stderr}");
    // Standard error is not a terminal here: no progress bar is drawn.
    assert!(!stderr.contains('\r') && !stderr.contains('\u{1b}'), "{stderr:?}");

    let listed = world.ok(&["snapshots"]);
    let second = &listed["snapshots"][1];
    assert_eq!((second["files"].as_u64(), second["newBytes"].as_u64()), (Some(4), Some(3000)));
    assert_eq!(second["totalBytes"].as_u64(), Some(db + 13_000));
}

#[test]
fn forget_removes_old_snapshots_and_prune_records_their_blobs_before_deleting_them() {
    let world = World::new();
    world.ok(&["enable", "--key"]);
    let first = world.ok(&["backup", "chats"]);
    fs::write(world.path("chats/Databases/msgstore.db"), b"a new database").unwrap();
    let second = world.ok(&["backup", "chats"]);
    assert_eq!(second["newBlobs"], 1, "{second}");

    // A policy that keeps nothing is refused.
    let (code, json) = world.run(&["forget"]);
    assert_eq!((code, json["error"]["code"].as_str()), (2, Some("empty-policy")), "{json}");

    let dry = world.ok(&["forget", "--keep-last", "1", "--dry-run"]);
    assert_eq!(dry["dryRun"], true);
    assert_eq!(dry["removed"], serde_json::json!([first["snapshot"]]));
    assert_eq!(world.ok(&["snapshots"])["snapshots"].as_array().unwrap().len(), 2);

    let forgot = world.ok(&["forget", "--keep-last", "1", "--prune"]);
    assert_eq!(forgot["removed"], serde_json::json!([first["snapshot"]]));
    assert_eq!(forgot["kept"], serde_json::json!([second["snapshot"]]));
    let listed = world.ok(&["snapshots"]);
    assert_eq!(listed["snapshots"].as_array().unwrap().len(), 1);
    // The old database's blob is recorded as a candidate, not deleted: the grace period (a
    // day) has not passed.
    let pruned = &forgot["prune"];
    assert_eq!((pruned["blobs"].as_u64(), pruned["referenced"].as_u64()), (Some(3), Some(2)));
    assert_eq!(pruned["candidates"], 1, "{pruned}");
    assert_eq!(pruned["deleted"], serde_json::json!([]));
    assert!(world.path("client/store/prune/candidates.e2ee").exists());
    // A prune again soon after deletes nothing and keeps the record's time.
    let again = world.ok(&["prune"]);
    assert_eq!(again["deleted"], serde_json::json!([]));
    assert_eq!(again["sweepAfter"], pruned["sweepAfter"]);
    assert!(again["sweepAfter"].as_str().unwrap().ends_with('Z'));

    world.ok(&["verify", "--read-data"]);
    world.ok(&["restore", "--snapshot", "latest", "--to", "restored"]);
    assert_eq!(files(&world.path("restored")), files(&world.path("chats")));
}

/// The files cache (spec 8.7.1): a second backup does not read the files the first read, once
/// their times are two seconds old; `--force` reads them; `disable` deletes the cache.
#[test]
fn a_second_backup_reads_no_unchanged_file_unless_forced() {
    let world = World::new();
    world.ok(&["enable", "--key"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let first = world.ok(&["backup", "chats", "--uploads", "2"]);
    assert_eq!(first["unchangedFiles"], 0);
    let cache = world.path("client/files.cache");
    assert!(cache.exists());
    let second = world.ok(&["backup", "chats"]);
    assert_eq!(
        (second["unchangedFiles"].as_u64(), second["newBlobs"].as_u64()),
        (Some(3), Some(0))
    );
    let forced = world.ok(&["backup", "chats", "--force"]);
    assert_eq!(forced["unchangedFiles"], 0, "{forced}");
    world.ok(&["restore", "--snapshot", "latest", "--to", "restored"]);
    assert_eq!(files(&world.path("restored")), files(&world.path("chats")));
    let (code, json) = world.run(&["backup", "chats", "--uploads", "0"]);
    assert_eq!(code, 2, "{json}");
    world.ok(&["disable", "--yes"]);
    assert!(!cache.exists(), "the cache goes with the backups");
}

/// `restore --resume` (spec 8.8) finishes a restore that stopped: what is in place is kept,
/// the rest written; something else in the way is refused.
#[test]
fn a_restore_that_stopped_is_finished_with_resume() {
    let world = World::new();
    world.ok(&["enable", "--key"]);
    world.ok(&["backup", "chats"]);
    world.ok(&["restore", "--snapshot", "latest", "--to", "restored"]);
    // As if it had stopped before the database.
    fs::remove_file(world.path("restored/Databases/msgstore.db")).unwrap();
    let (code, json) = world.run(&["restore", "--snapshot", "latest", "--to", "restored"]);
    assert_eq!((code, json["error"]["code"].as_str()), (2, Some("target-not-empty")));
    let resumed = world.ok(&["restore", "--snapshot", "latest", "--to", "restored", "--resume"]);
    assert_eq!((resumed["keptFiles"].as_u64(), resumed["files"].as_u64()), (Some(2), Some(1)));
    assert_eq!(files(&world.path("restored")), files(&world.path("chats")));

    fs::write(world.path("restored/Media/WhatsApp Images/IMG copy.jpg"), b"not the photo").unwrap();
    let (code, json) =
        world.run(&["restore", "--snapshot", "latest", "--to", "restored", "--resume"]);
    assert_eq!((code, json["error"]["code"].as_str()), (2, Some("target-conflict")), "{json}");
}

/// A directory backup killed (SIGKILL) at seeded random points, again and again, never leaves a
/// snapshot that does not verify, and the next run finishes what the killed ones uploaded
/// (spec 8.7: the manifest comes after every blob it references).
#[test]
fn a_backup_killed_at_random_points_leaves_only_whole_snapshots() {
    let world = World::new();
    world.ok(&["enable", "--key"]);
    for i in 0..24 {
        fs::write(world.path(&format!("chats/Media/video-{i:02}.mp4")), noise(i, 1 << 20)).unwrap();
    }
    let mut seed: u64 = 0x5eed_2026;
    for _ in 0..6 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut child = Command::new(env!("CARGO_BIN_EXE_e2ee-backup"))
            .current_dir(world.root.path())
            .args(["backup", "chats", "-q", "--client-dir", "client"])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(seed % 250));
        let _ = child.kill();
        let _ = child.wait();
        let listed = world.ok(&["snapshots"]);
        for snapshot in listed["snapshots"].as_array().unwrap() {
            let id = snapshot["id"].as_str().unwrap();
            let verified = world.ok(&["verify", "--snapshot", id, "--read-data"]);
            assert_eq!(verified["problems"].as_array().map(Vec::len), Some(0), "{verified}");
        }
    }
    world.ok(&["backup", "chats"]);
    world.ok(&["restore", "--snapshot", "latest", "--to", "restored"]);
    assert_eq!(files(&world.path("restored")), files(&world.path("chats")));
}
