//! The `e2ee-backup` binary as a user meets it: files, exit codes, JSON, nothing left behind.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_e2ee-backup"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the binary runs")
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

/// A directory with a key file and a plaintext file.
fn setup() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["keygen", "--out", "key.txt", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = json_of(&out)["key"].as_str().unwrap().to_owned();
    fs::write(
        dir.path().join("chats.db"),
        b"hello from the chat database\n".repeat(5000),
    )
    .unwrap();
    (dir, key)
}

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".partial"))
        .collect()
}

#[test]
fn keygen_prints_sixteen_groups_and_writes_an_owner_only_file() {
    let (dir, key) = setup();
    assert_eq!(key.split(' ').count(), 16);
    assert!(
        key.split(' ')
            .all(|g| g.len() == 4 && g.chars().all(|c| c.is_ascii_hexdigit()))
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("key.txt"))
            .unwrap()
            .trim(),
        key
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join("key.txt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = run(dir.path(), &["keygen", "--out", "key.txt"]);
    assert_eq!(
        again.status.code(),
        Some(2),
        "an existing key file must not be replaced"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("key.txt"))
            .unwrap()
            .trim(),
        key
    );
}

#[test]
fn encrypt_decrypt_round_trip_with_fields_and_compression() {
    let (dir, key) = setup();
    let out = run(
        dir.path(),
        &[
            "encrypt",
            "chats.db",
            "-o",
            "chats.e2ee",
            "--key-file",
            "key.txt",
            "--compress",
            "--field",
            "app=test",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(
        dir.path(),
        &[
            "decrypt",
            "chats.e2ee",
            "-o",
            "restored.db",
            "--key",
            &key.to_uppercase(),
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json_of(&out)["metadata"]["fields"]["app"], "test");
    assert_eq!(
        fs::read(dir.path().join("restored.db")).unwrap(),
        fs::read(dir.path().join("chats.db")).unwrap()
    );
    let out = run(
        dir.path(),
        &["inspect", "chats.e2ee", "--key-file", "key.txt", "--json"],
    );
    let report = json_of(&out);
    assert_eq!(report["verified"], true);
    assert_eq!(report["compression"], "zstd");
    let out = run(dir.path(), &["inspect", "chats.e2ee", "--json"]);
    assert!(
        json_of(&out).get("metadata").is_none(),
        "no metadata without the key"
    );
}

#[test]
fn wrong_key_and_damage_have_their_own_exit_codes_and_leave_no_output() {
    let (dir, _) = setup();
    assert!(
        run(
            dir.path(),
            &[
                "encrypt",
                "chats.db",
                "-o",
                "chats.e2ee",
                "--key-file",
                "key.txt"
            ]
        )
        .status
        .success()
    );
    let other = "0".repeat(64);
    let out = run(
        dir.path(),
        &[
            "decrypt",
            "chats.e2ee",
            "-o",
            "out.db",
            "--key",
            &other,
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(json_of(&out)["error"]["code"], "wrong-key");

    let mut bytes = fs::read(dir.path().join("chats.e2ee")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(dir.path().join("damaged.e2ee"), &bytes).unwrap();
    let out = run(
        dir.path(),
        &[
            "decrypt",
            "damaged.e2ee",
            "-o",
            "out.db",
            "--key-file",
            "key.txt",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(json_of(&out)["error"]["code"], "chunk-modified");
    fs::write(dir.path().join("short.e2ee"), &bytes[..bytes.len() / 2]).unwrap();
    let out = run(
        dir.path(),
        &[
            "decrypt",
            "short.e2ee",
            "-o",
            "out.db",
            "--key-file",
            "key.txt",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(json_of(&out)["error"]["code"], "truncated");
    assert!(
        !dir.path().join("out.db").exists(),
        "a failed decrypt left output behind"
    );
    assert!(
        leftovers(dir.path()).is_empty(),
        "temporary files left: {:?}",
        leftovers(dir.path())
    );
}

#[test]
fn usage_errors_exit_with_2_and_name_the_problem() {
    let (dir, _) = setup();
    let out = run(
        dir.path(),
        &["decrypt", "x", "-o", "y", "--key", "0123 456g"],
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("'g'") && stderr.contains("position 8"),
        "{stderr}"
    );
    let out = run(dir.path(), &["decrypt", "x", "-o", "y", "--key", "abcd"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("found 4"));
    assert_eq!(run(dir.path(), &["encrypt"]).status.code(), Some(2));
    // No key and no terminal to ask at.
    assert_eq!(
        run(dir.path(), &["encrypt", "chats.db", "-o", "c.e2ee"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn existing_output_is_kept_without_force() {
    let (dir, _) = setup();
    fs::write(dir.path().join("chats.e2ee"), b"precious").unwrap();
    let out = run(
        dir.path(),
        &[
            "encrypt",
            "chats.db",
            "-o",
            "chats.e2ee",
            "--key-file",
            "key.txt",
        ],
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        fs::read(dir.path().join("chats.e2ee")).unwrap(),
        b"precious"
    );
    let out = run(
        dir.path(),
        &[
            "encrypt",
            "chats.db",
            "-o",
            "chats.e2ee",
            "--key-file",
            "key.txt",
            "--force",
        ],
    );
    assert!(out.status.success());
    assert_ne!(
        fs::read(dir.path().join("chats.e2ee")).unwrap(),
        b"precious"
    );
}

#[test]
fn not_a_backup_is_reported_as_such() {
    let (dir, _) = setup();
    let out = run(dir.path(), &["inspect", "chats.db", "--json"]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(json_of(&out)["error"]["code"], "not-a-backup");
}

#[test]
fn demo_runs_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        dir.path(),
        &["demo", "--size-mib", "2", "--dir", "work", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json_of(&out);
    let errors: Vec<&str> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["error"].as_str())
        .collect();
    assert_eq!(errors, ["chunk-modified", "truncated", "wrong-key"]);
}
