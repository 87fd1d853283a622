//! Issue 11, "interrupts leave nothing behind": Ctrl-C (SIGINT) or SIGTERM in the middle of
//! `decrypt` or `encrypt` removes the partial output, which holds plaintext (or a part of a
//! backup), and exits with 128 + the signal.
//!
//! The input is a named pipe that the test fills by half and then holds open, so the binary is
//! provably in the middle of its work, with plaintext already in its partial output, when the
//! signal arrives: no timing decides the outcome.
#![cfg(unix)]

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_e2ee-backup");

fn run(dir: &Path, args: &[&str]) {
    let out = Command::new(BIN).current_dir(dir).args(args).output().expect("the binary runs");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Incompressible bytes (xorshift64), so the output grows as the input arrives.
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
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
    let args = ["encrypt", "input.fifo", "-o", "chats.e2ee", "--key-file", "key.txt"];
    let (code, stderr) = interrupt_midway(dir.path(), &args, &plaintext, "INT");
    assert_eq!(code, 130, "{stderr}");
    assert!(partial_outputs(dir.path()).is_empty(), "SIGINT left a partial output");
    assert!(!dir.path().join("chats.e2ee").exists());
}
