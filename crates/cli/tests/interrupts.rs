//! Issue 11, "interrupts leave nothing behind": Ctrl-C (SIGINT) or SIGTERM in the middle of
//! `decrypt` or `encrypt` removes the partial output, which holds plaintext (or a part of a
//! backup), and exits with 128 + the signal. The same for `restore` (its temporary file holds
//! plaintext) and `backup` (its staging object in the store). A SIGKILL cannot be caught: what
//! it leaves carries a recognisable name, and the next run removes it, unless a live process
//! holds it or (in the store) it is young enough to be another upload in progress.
//!
//! The input is a named pipe that the test fills by half and then holds open, so the binary is
//! provably in the middle of its work, with plaintext already in its partial output, when the
//! signal arrives: no timing decides the outcome. (`restore` reads from the store, not a pipe:
//! its test restores a large backup and sends the signal as soon as plaintext appears.)
#![cfg(unix)]

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_e2ee-backup");

fn run(dir: &Path, args: &[&str]) {
    let out = Command::new(BIN).current_dir(dir).args(args).output().expect("the binary runs");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Bytes that do not compress (the same on every run).
fn noise(len: usize) -> Vec<u8> {
    e2ee_backup_testkit::noise(1, len)
}

fn partial_outputs(dir: &Path) -> Vec<(String, u64)> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.metadata().unwrap().len()))
        .collect()
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status();
    assert!(status.expect("kill runs").success());
}

/// Starts `args` reading `fifo`, writes the first half of `input` into the pipe, waits until
/// the partial output holds data, sends `signal_name`, and returns the exit code and stderr.
fn interrupt_midway(dir: &Path, args: &[&str], input: &[u8], signal_name: &str) -> (i32, String) {
    let fifo = dir.join("input.fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs");
    assert!(made.success());
    let child = Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut pipe = fs::OpenOptions::new().write(true).open(&fifo).expect("the pipe opens");
    pipe.write_all(&input[..input.len() / 2]).unwrap();
    pipe.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !partial_outputs(dir).iter().any(|(_, len)| *len > 0) {
        assert!(Instant::now() < deadline, "no partial output appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&child, signal_name);
    let out = child.wait_with_output().expect("the binary ends");
    drop(pipe);
    fs::remove_file(&fifo).unwrap();
    let code =
        out.status.code().unwrap_or_else(|| panic!("killed by the signal: {:?}", out.status));
    (code, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn an_interrupted_decrypt_leaves_no_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let plaintext = noise(8 << 20);
    fs::write(dir.path().join("chats.db"), &plaintext).unwrap();
    run(dir.path(), &["keygen", "--out", "key.txt"]);
    run(dir.path(), &["encrypt", "chats.db", "-o", "chats.e2ee", "--key-file", "key.txt"]);
    let backup = fs::read(dir.path().join("chats.e2ee")).unwrap();
    for (signal_name, expected) in [("INT", 130), ("TERM", 143)] {
        let args = ["decrypt", "input.fifo", "-o", "restored.db", "--key-file", "key.txt"];
        let (code, stderr) = interrupt_midway(dir.path(), &args, &backup, signal_name);
        assert_eq!(code, expected, "SIG{signal_name}: {stderr}");
        assert!(partial_outputs(dir.path()).is_empty(), "SIG{signal_name} left a partial output");
        assert!(!dir.path().join("restored.db").exists());
        assert!(stderr.contains("interrupted"), "{stderr}");
    }
}

#[test]
fn an_interrupted_encrypt_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let plaintext = noise(8 << 20);
    run(dir.path(), &["keygen", "--out", "key.txt"]);
    // The native format and crypt15 write through the same partial output.
    for command in [&["encrypt"][..], &["crypt15", "encrypt"]] {
        for (signal_name, expected) in [("INT", 130), ("TERM", 143)] {
            let mut args = command.to_vec();
            args.extend(["input.fifo", "-o", "chats.out", "--key-file", "key.txt"]);
            let (code, stderr) = interrupt_midway(dir.path(), &args, &plaintext, signal_name);
            assert_eq!(code, expected, "{args:?} SIG{signal_name}: {stderr}");
            assert!(partial_outputs(dir.path()).is_empty(), "{args:?} left a partial output");
            assert!(!dir.path().join("chats.out").exists());
        }
    }
}

// ----- SIGKILL, restore and backup ------------------------------------------------------------

/// Every temporary file of the binary in `dir`: the recognisable `.e2ee-backup-` prefix.
fn temp_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".e2ee-backup-") || n.ends_with(".tmp"))
        .collect();
    names.sort();
    names
}

/// The store's staging objects: an upload in progress, `backups/<name>.e2ee#<n>`.
fn staging_objects(store: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(store.join("backups")) else { return Vec::new() };
    entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().contains('#'))
        .collect()
}

/// Makes `path` look as if last written `age` ago.
fn age(path: &Path, age: Duration) {
    let file = fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_modified(std::time::SystemTime::now() - age).unwrap();
}

const LONG_AGO: Duration = Duration::from_secs(3 * 3600);

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A SIGKILL cannot be caught: the partial output stays, under the recognisable prefix, locked
/// by nobody. The next run that writes into that directory removes it, but not the partial
/// output of a run still in progress (it holds a lock on it), however old.
#[test]
fn a_killed_decrypt_leaves_a_partial_output_that_the_next_run_removes() {
    let dir = tempfile::tempdir().unwrap();
    let plaintext = noise(8 << 20);
    fs::write(dir.path().join("chats.db"), &plaintext).unwrap();
    run(dir.path(), &["keygen", "--out", "key.txt"]);
    run(dir.path(), &["encrypt", "chats.db", "-o", "chats.e2ee", "--key-file", "key.txt"]);
    let backup = fs::read(dir.path().join("chats.e2ee")).unwrap();

    // Killed mid-way: a partial output with plaintext in it stays.
    let args = ["decrypt", "input.fifo", "-o", "restored.db", "--key-file", "key.txt"];
    let fifo = dir.path().join("input.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let killed = Command::new(BIN).current_dir(dir.path()).args(args).spawn().unwrap();
    let mut pipe = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    pipe.write_all(&backup[..backup.len() / 2]).unwrap();
    wait_for("a partial output", || partial_outputs(dir.path()).iter().any(|(_, l)| *l > 0));
    signal(&killed, "KILL");
    let _ = killed.wait_with_output();
    drop(pipe);
    let left = partial_outputs(dir.path());
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].0.starts_with(".e2ee-backup-"), "{left:?}");
    let stale = dir.path().join(&left[0].0);

    // Another decrypt in progress, paused on its input: its partial output is live.
    let live = Command::new(BIN)
        .current_dir(dir.path())
        .args(["decrypt", "input.fifo", "-o", "other.db", "--key-file", "key.txt"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    pipe.write_all(&backup[..backup.len() / 2]).unwrap();
    wait_for("a second partial output", || {
        partial_outputs(dir.path()).iter().filter(|(_, l)| *l > 0).count() == 2
    });
    let live_partial = partial_outputs(dir.path())
        .into_iter()
        .map(|(name, _)| dir.path().join(name))
        .find(|p| *p != stale)
        .unwrap();
    age(&stale, LONG_AGO);
    age(&live_partial, LONG_AGO);

    // The next run into this directory removes the stale one only.
    run(dir.path(), &["decrypt", "chats.e2ee", "-o", "third.db", "--key-file", "key.txt"]);
    assert!(!stale.exists(), "the killed run's partial output is still there");
    assert!(live_partial.exists(), "a live run's partial output was removed");
    signal(&live, "INT");
    let out = live.wait_with_output().unwrap();
    drop(pipe);
    assert_eq!(out.status.code(), Some(130));
    assert!(partial_outputs(dir.path()).is_empty(), "{:?}", partial_outputs(dir.path()));
    assert_eq!(fs::read(dir.path().join("third.db")).unwrap(), plaintext);
}

/// A key-mode client with one large backup in `store`; returns the 64 digits.
fn client_with_backup(dir: &Path, plaintext: &[u8]) -> String {
    fs::write(dir.join("chats.db"), plaintext).unwrap();
    let out = Command::new(BIN)
        .current_dir(dir)
        .args(["enable", "--key", "--client-dir", "phone", "--store", "store", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    run(dir, &["backup", "chats.db", "--client-dir", "phone"]);
    report["key"].as_str().unwrap().to_owned()
}

fn spawn(dir: &Path, args: &[&str]) -> Child {
    Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts")
}

/// `restore` writes the plaintext into a temporary file beside the target: SIGINT and SIGTERM
/// remove it; after a SIGKILL, running the restore again (which resumes it) removes it.
#[test]
fn an_interrupted_restore_leaves_no_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let plaintext = noise(96 << 20);
    let key = client_with_backup(dir.path(), &plaintext);
    let out_dir = dir.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let restore =
        ["restore", "--to", "out/chats.db", "--key", &key, "--store", "store", "--client-dir"];
    let has_plaintext = |out_dir: &Path| {
        fs::read_dir(out_dir).unwrap().any(|e| {
            let e = e.unwrap();
            e.file_name() != "chats.db" && e.metadata().unwrap().len() > 0
        })
    };
    for (signal_name, expected) in [("INT", 130), ("TERM", 143)] {
        let client = format!("new-{signal_name}");
        let child = spawn(dir.path(), &[&restore[..], &[client.as_str()]].concat());
        wait_for("the restore's temporary file", || has_plaintext(&out_dir));
        signal(&child, signal_name);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(expected), "SIG{signal_name}: {stderr}");
        assert!(temp_files(&out_dir).is_empty(), "SIG{signal_name}: {:?}", temp_files(&out_dir));
        assert!(!out_dir.join("chats.db").exists());
    }

    let child = spawn(dir.path(), &[&restore[..], &["new-KILL"]].concat());
    wait_for("the restore's temporary file", || has_plaintext(&out_dir));
    signal(&child, "KILL");
    let _ = child.wait_with_output();
    let left = temp_files(&out_dir);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(left[0].starts_with(".e2ee-backup-"), "not recognisable: {left:?}");
    age(&out_dir.join(&left[0]), LONG_AGO);
    // Running it again finishes the interrupted restore, and removes what the killed one left.
    run(dir.path(), &[&restore[..], &["new-KILL"]].concat());
    assert!(temp_files(&out_dir).is_empty(), "{:?}", temp_files(&out_dir));
    assert!(fs::read(out_dir.join("chats.db")).unwrap() == plaintext);
}

/// `backup` uploads in parts; the store keeps them as a staging object until the upload
/// completes. SIGINT and SIGTERM remove it; one a SIGKILL left is removed by the next backup
/// once it is old enough not to be another upload in progress.
#[test]
fn an_interrupted_backup_leaves_no_staging_object() {
    let dir = tempfile::tempdir().unwrap();
    client_with_backup(dir.path(), b"the first backup");
    let store = dir.path().join("store");
    let fifo = dir.path().join("input.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    // More than one upload part (8 MiB), so that a part reaches the store.
    let input = noise(12 << 20);
    let backup = ["backup", "input.fifo", "--client-dir", "phone"];
    for (signal_name, expected) in [("INT", 130), ("TERM", 143), ("KILL", -1)] {
        let child = spawn(dir.path(), &backup);
        let mut pipe = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        pipe.write_all(&input).unwrap();
        wait_for("a staging object", || {
            staging_objects(&store).iter().any(|p| fs::metadata(p).is_ok_and(|m| m.len() > 0))
        });
        signal(&child, signal_name);
        let out = child.wait_with_output().unwrap();
        drop(pipe);
        if signal_name == "KILL" {
            break;
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(expected), "SIG{signal_name}: {stderr}");
        assert!(staging_objects(&store).is_empty(), "SIG{signal_name}: {stderr}");
    }
    let left = staging_objects(&store);
    assert_eq!(left.len(), 1, "{left:?}");
    // A staging object written just now may be another device's upload in progress: kept.
    run(dir.path(), &["backup", "chats.db", "--client-dir", "phone"]);
    assert_eq!(staging_objects(&store), left);
    age(&left[0], LONG_AGO);
    run(dir.path(), &["backup", "chats.db", "--client-dir", "phone"]);
    assert!(staging_objects(&store).is_empty(), "{:?}", staging_objects(&store));
    let backups = fs::read_dir(store.join("backups")).unwrap().count();
    assert_eq!(backups, 3, "the first backup and the two after the interruptions");
}

/// Issue 11: a key rotation killed half-way (SIGKILL while it uploads a re-encrypted copy)
/// blocks no backup, `abort` drops it, and the newest backup restores with the digits the user
/// had before the rotation.
#[test]
fn a_killed_rotation_blocks_no_backup_and_abort_drops_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = client_with_backup(dir.path(), &noise(48 << 20));
    let store = dir.path().join("store");
    let json = |args: &[&str]| -> serde_json::Value {
        let out = Command::new(BIN).current_dir(dir.path()).args(args).arg("--json").output();
        let out = out.unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stdout));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let child = spawn(dir.path(), &["rotate-key", "--client-dir", "phone"]);
    wait_for("a staging object of the re-encrypted copy", || {
        staging_objects(&store).iter().any(|p| fs::metadata(p).is_ok_and(|m| m.len() > 0))
    });
    signal(&child, "KILL");
    let _ = child.wait_with_output();
    assert_eq!(json(&["status", "--client-dir", "phone"])["pending"], "key rotation");

    let after = noise(1 << 20).into_iter().rev().collect::<Vec<u8>>();
    fs::write(dir.path().join("after.db"), &after).unwrap();
    json(&["backup", "after.db", "--client-dir", "phone"]);
    assert_eq!(json(&["abort", "--client-dir", "phone"])["aborted"], "key rotation");
    assert_eq!(json(&["status", "--client-dir", "phone"])["pending"], serde_json::Value::Null);

    let restore = ["restore", "--to", "new.db", "--key", &key, "--store", "store"];
    json(&[&restore[..], &["--client-dir", "new"]].concat());
    assert!(fs::read(dir.path().join("new.db")).unwrap() == after, "the newest backup");
}
