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

/// Runs a command that must fail with `exit` and, in its JSON output, error `code`.
fn assert_fails(dir: &Path, args: &[&str], exit: i32, code: &str) {
    let mut args = args.to_vec();
    args.push("--json");
    let out = run(dir, &args);
    assert_eq!(out.status.code(), Some(exit), "{args:?}");
    assert_eq!(json_of(&out)["error"]["code"], code, "{args:?}");
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

/// A directory with a key file and a plaintext file.
fn setup() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["keygen", "--out", "key.txt", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = fs::read_to_string(dir.path().join("key.txt")).unwrap().trim().to_owned();
    fs::write(dir.path().join("chats.db"), b"hello from the chat database\n".repeat(5000)).unwrap();
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
    assert!(key.split(' ').all(|g| g.len() == 4 && g.chars().all(|c| c.is_ascii_hexdigit())));
    assert_eq!(fs::read_to_string(dir.path().join("key.txt")).unwrap().trim(), key);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join("key.txt")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = run(dir.path(), &["keygen", "--out", "key.txt"]);
    assert_eq!(again.status.code(), Some(2), "an existing key file must not be replaced");
    assert_eq!(fs::read_to_string(dir.path().join("key.txt")).unwrap().trim(), key);
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
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(
        dir.path(),
        &["decrypt", "chats.e2ee", "-o", "restored.db", "--key", &key.to_uppercase(), "--json"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json_of(&out)["metadata"]["fields"]["app"], "test");
    assert_eq!(
        fs::read(dir.path().join("restored.db")).unwrap(),
        fs::read(dir.path().join("chats.db")).unwrap()
    );
    let out = run(dir.path(), &["inspect", "chats.e2ee", "--key-file", "key.txt", "--json"]);
    let report = json_of(&out);
    assert_eq!(report["verified"], true);
    assert_eq!(report["compression"], "zstd");
    let out = run(dir.path(), &["inspect", "chats.e2ee", "--json"]);
    assert!(json_of(&out).get("metadata").is_none(), "no metadata without the key");
}

#[test]
fn wrong_key_and_damage_have_their_own_exit_codes_and_leave_no_output() {
    let (dir, _) = setup();
    assert!(
        run(dir.path(), &["encrypt", "chats.db", "-o", "chats.e2ee", "--key-file", "key.txt"])
            .status
            .success()
    );
    let other = "0".repeat(64);
    assert_fails(
        dir.path(),
        &["decrypt", "chats.e2ee", "-o", "out.db", "--key", &other],
        3,
        "wrong-key",
    );

    let mut bytes = fs::read(dir.path().join("chats.e2ee")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(dir.path().join("damaged.e2ee"), &bytes).unwrap();
    assert_fails(
        dir.path(),
        &["decrypt", "damaged.e2ee", "-o", "out.db", "--key-file", "key.txt"],
        4,
        "chunk-modified",
    );
    fs::write(dir.path().join("short.e2ee"), &bytes[..bytes.len() / 2]).unwrap();
    assert_fails(
        dir.path(),
        &["decrypt", "short.e2ee", "-o", "out.db", "--key-file", "key.txt"],
        4,
        "truncated",
    );
    assert!(!dir.path().join("out.db").exists(), "a failed decrypt left output behind");
    assert!(leftovers(dir.path()).is_empty(), "temporary files left: {:?}", leftovers(dir.path()));
}

#[test]
fn usage_errors_exit_with_2_and_name_the_problem() {
    let (dir, _) = setup();
    let out = run(dir.path(), &["decrypt", "x", "-o", "y", "--key", "0123 456g"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("'g'") && stderr.contains("position 8"), "{stderr}");
    let out = run(dir.path(), &["decrypt", "x", "-o", "y", "--key", "abcd"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("found 4"));
    assert_eq!(run(dir.path(), &["encrypt"]).status.code(), Some(2));
    // No key and no terminal to ask at.
    assert_eq!(run(dir.path(), &["encrypt", "chats.db", "-o", "c.e2ee"]).status.code(), Some(2));
}

#[test]
fn existing_output_is_kept_without_force() {
    let (dir, _) = setup();
    fs::write(dir.path().join("chats.e2ee"), b"precious").unwrap();
    let out =
        run(dir.path(), &["encrypt", "chats.db", "-o", "chats.e2ee", "--key-file", "key.txt"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(fs::read(dir.path().join("chats.e2ee")).unwrap(), b"precious");
    let out = run(
        dir.path(),
        &["encrypt", "chats.db", "-o", "chats.e2ee", "--key-file", "key.txt", "--force"],
    );
    assert!(out.status.success());
    assert_ne!(fs::read(dir.path().join("chats.e2ee")).unwrap(), b"precious");
}

#[test]
fn not_a_backup_is_reported_as_such() {
    let (dir, _) = setup();
    assert_fails(dir.path(), &["inspect", "chats.db"], 4, "not-a-backup");
}

#[test]
fn demo_runs_every_step() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["demo", "--size-mib", "2", "--dir", "work", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json_of(&out);
    let errors: Vec<&str> =
        report["steps"].as_array().unwrap().iter().filter_map(|s| s["error"].as_str()).collect();
    assert_eq!(
        errors,
        [
            "chunk-modified",
            "truncated",
            "wrong-key",
            "wrong-password",
            "wrong-password",
            "locked-out"
        ]
    );
    let step = |name: &str| {
        report["steps"].as_array().unwrap().iter().find(|s| s["step"] == name).cloned().unwrap()
    };
    assert_eq!(step("vault")["ksf"], "fast");
    assert_eq!(step("restore-password")["verified"], true);
    assert_eq!(step("restore-new-password")["verified"], true);
    assert_eq!(step("lockout")["attemptsLeft"], serde_json::json!([2, 1, 0]));
}

/// The crypt15 fixtures made by the public tool wa-crypt-tools (`test-vectors/published/`).
fn crypt15_fixtures() -> Value {
    e2ee_backup_testkit::published_vectors("wa-crypt-tools-generated/crypt15_fixtures.json")
}

#[test]
fn crypt15_fixtures_decrypt_and_convert_both_ways() {
    let fixtures = crypt15_fixtures();
    let dir = tempfile::tempdir().unwrap();
    let hex_of = |field: &Value| hex::decode(field.as_str().unwrap()).unwrap();
    fs::write(
        dir.path().join("encrypted_backup.key"),
        hex_of(&fixtures["encrypted_backup_key_file_hex"]),
    )
    .unwrap();
    let plaintext = hex_of(&fixtures["plaintext_hex"]);
    for (i, case) in fixtures["cases"].as_array().unwrap().iter().enumerate() {
        let file = format!("msgstore{i}.db.crypt15");
        fs::write(dir.path().join(&file), hex_of(&case["crypt15_hex"])).unwrap();
        let out = run(
            dir.path(),
            &[
                "crypt15",
                "decrypt",
                &file,
                "-o",
                &format!("plain{i}.db"),
                "--key-file",
                "encrypted_backup.key",
            ],
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(fs::read(dir.path().join(format!("plain{i}.db"))).unwrap(), plaintext);

        let out = run(dir.path(), &["crypt15", "inspect", &file, "--json"]);
        assert_eq!(json_of(&out)["iv"], case["iv_hex"]);

        // crypt15 -> native -> crypt15, with the same key written as 64 digits.
        let digits = fixtures["root_key_hex"].as_str().unwrap();
        let native = format!("native{i}.e2ee");
        assert!(
            run(dir.path(), &["convert", &file, "-o", &native, "--key", digits]).status.success()
        );
        let back = format!("back{i}.crypt15");
        assert!(
            run(dir.path(), &["convert", &native, "-o", &back, "--key", digits]).status.success()
        );
        let out = run(
            dir.path(),
            &["crypt15", "decrypt", &back, "-o", &format!("again{i}.db"), "--key", digits],
        );
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(fs::read(dir.path().join(format!("again{i}.db"))).unwrap(), plaintext);
    }
    let other = "1".repeat(64);
    assert_fails(
        dir.path(),
        &["crypt15", "decrypt", "msgstore0.db.crypt15", "-o", "x.db", "--key", &other],
        3,
        "wrong-key",
    );
    let mut damaged = fs::read(dir.path().join("msgstore0.db.crypt15")).unwrap();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 4;
    fs::write(dir.path().join("damaged.crypt15"), damaged).unwrap();
    let out = run(
        dir.path(),
        &[
            "convert",
            "damaged.crypt15",
            "-o",
            "x.e2ee",
            "--key-file",
            "encrypted_backup.key",
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(4));
    assert!(!dir.path().join("x.db").exists() && !dir.path().join("x.e2ee").exists());
    assert!(leftovers(dir.path()).is_empty());
}

#[test]
fn crypt15_encrypt_records_no_phone_digits_unless_asked() {
    let (dir, _) = setup();
    let out = run(
        dir.path(),
        &["crypt15", "encrypt", "chats.db", "-o", "a.crypt15", "--key-file", "key.txt"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json_of(&run(
        dir.path(),
        &["crypt15", "inspect", "a.crypt15", "--key-file", "key.txt", "--json"],
    ));
    assert_eq!(report["phoneSuffix"], Value::Null);
    assert_eq!(report["verified"], true);
    let out = run(
        dir.path(),
        &[
            "crypt15",
            "encrypt",
            "chats.db",
            "-o",
            "b.crypt15",
            "--key-file",
            "key.txt",
            "--phone-suffix",
            "42",
        ],
    );
    assert!(out.status.success());
    let report = json_of(&run(dir.path(), &["crypt15", "inspect", "b.crypt15", "--json"]));
    assert_eq!(report["phoneSuffix"], "42");
}

/// Issue 11, truthful errors: an empty file is called empty, not "truncated after 0 bytes".
#[test]
fn an_empty_file_is_called_empty() {
    let (dir, _) = setup();
    fs::write(dir.path().join("empty.e2ee"), b"").unwrap();
    for args in [
        &["decrypt", "empty.e2ee", "-o", "out.db", "--key-file", "key.txt", "--json"][..],
        &["inspect", "empty.e2ee", "--json"][..],
        &["crypt15", "inspect", "empty.e2ee", "--json"][..],
        &["convert", "empty.e2ee", "-o", "out.crypt15", "--key-file", "key.txt", "--json"][..],
        &["crypt15", "decrypt", "empty.e2ee", "-o", "out.db", "--key-file", "key.txt", "--json"],
    ] {
        let out = run(dir.path(), args);
        assert_eq!(out.status.code(), Some(4), "{args:?}");
        let error = &json_of(&out)["error"];
        let message = error["message"].as_str().unwrap();
        assert!(message.contains("empty"), "{args:?}: {message}");
        assert!(!message.contains("truncated"), "{args:?}: {message}");
        assert!(!dir.path().join("out.db").exists());
    }
}

/// Issue 11, truthful errors: I/O errors name the file.
#[test]
fn io_errors_name_the_file() {
    let (dir, _) = setup();
    fs::create_dir(dir.path().join("folder")).unwrap();
    for args in [
        &["encrypt", "folder", "-o", "f.e2ee", "--key-file", "key.txt", "--json"][..],
        &["decrypt", "folder", "-o", "f.db", "--key-file", "key.txt", "--json"][..],
        &["inspect", "folder", "--json"][..],
    ] {
        let out = run(dir.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let message = json_of(&out)["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains("folder"), "{args:?}: {message}");
    }
}

/// Issue 11: `keygen --out FILE` prints the file name and key id, and the key only with --show.
#[test]
fn keygen_to_a_file_shows_the_key_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["keygen", "--out", "k.txt"]);
    assert!(out.status.success());
    let key = fs::read_to_string(dir.path().join("k.txt")).unwrap().trim().to_owned();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains(&key), "the key was printed: {text}");
    assert!(!text.contains(&key[..19]), "part of the key was printed: {text}");
    assert!(text.contains("k.txt"), "{text}");
    let out = run(dir.path(), &["keygen", "--out", "j.txt", "--json"]);
    let report = json_of(&out);
    assert!(report.get("key").is_none(), "{report}");
    assert_eq!(report["file"], "j.txt");
    assert_eq!(report["keyId"].as_str().unwrap().len(), 32, "{report}");
    let out = run(dir.path(), &["keygen", "--out", "s.txt", "--show"]);
    let key = fs::read_to_string(dir.path().join("s.txt")).unwrap().trim().to_owned();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&key));
    // Without --out the key is the output.
    let out = run(dir.path(), &["keygen", "--json"]);
    assert_eq!(json_of(&out)["key"].as_str().unwrap().len(), 79);
}

/// Issue 11, truthful errors: a `.crypt15` file given to `decrypt` gets a hint to use
/// `crypt15 decrypt` or `convert`.
#[test]
fn a_crypt15_file_given_to_decrypt_gets_a_hint() {
    let (dir, _) = setup();
    let out = run(
        dir.path(),
        &["crypt15", "encrypt", "chats.db", "-o", "msgstore.db.crypt15", "--key-file", "key.txt"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(
        dir.path(),
        &["decrypt", "msgstore.db.crypt15", "-o", "x.db", "--key-file", "key.txt", "--json"],
    );
    assert_eq!(out.status.code(), Some(4));
    let message = json_of(&out)["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("crypt15 decrypt") && message.contains("convert"), "{message}");
}

// ----- issue 11: Unix conventions -----------------------------------------------------------

/// Runs `args` in `dir` with `input` on standard input.
fn run_with_stdin(dir: &Path, args: &[&str], input: &[u8], env: &[(&str, &str)]) -> Output {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut command = Command::new(env!("CARGO_BIN_EXE_e2ee-backup"));
    command.current_dir(dir).args(args).stdin(Stdio::piped()).stdout(Stdio::piped());
    command.stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("the binary runs");
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// `-` is standard input or output (`encrypt - -o -`, `decrypt IN -o -`); the status line goes
/// to standard error, and so does the JSON object when standard output carries the data.
#[test]
fn a_dash_means_standard_input_and_output() {
    let (dir, _) = setup();
    let plaintext = fs::read(dir.path().join("chats.db")).unwrap();
    let out = run_with_stdin(
        dir.path(),
        &["encrypt", "-", "-o", "-", "--key-file", "key.txt", "--compress"],
        &plaintext,
        &[],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("encrypted"));
    let backup = out.stdout;
    fs::write(dir.path().join("piped.e2ee"), &backup).unwrap();
    let out = run(dir.path(), &["decrypt", "piped.e2ee", "-o", "-", "--key-file", "key.txt"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout == plaintext, "standard output is not the plaintext alone");
    assert!(String::from_utf8_lossy(&out.stderr).contains("restored"));
    // Standard input to a file, and with --json the report on standard error.
    let args = ["decrypt", "-", "-o", "-", "--key-file", "key.txt", "--json"];
    let out = run_with_stdin(dir.path(), &args, &backup, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout == plaintext);
    let report: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    let args = ["decrypt", "-", "-o", "back.db", "--key-file", "key.txt"];
    let out = run_with_stdin(dir.path(), &args, &backup, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "a status line on standard output");
    assert!(fs::read(dir.path().join("back.db")).unwrap() == plaintext);
    assert!(leftovers(dir.path()).is_empty());
}

/// Issue 11: `-` is standard input for the commands that read a backup twice or jump in it
/// (`crypt15 decrypt`, `crypt15 inspect`, `convert`, `inspect`: the input is copied to an
/// unnamed temporary file first) and for `crypt15 encrypt`; `-o -` is standard output for all.
#[test]
fn a_dash_means_standard_input_for_crypt15_convert_and_inspect() {
    let (dir, _) = setup();
    let plaintext = fs::read(dir.path().join("chats.db")).unwrap();
    let key = ["--key-file", "key.txt"];
    let piped = |args: &[&str], input: &[u8]| {
        let all: Vec<&str> = args.iter().chain(&key).copied().collect();
        let out = run_with_stdin(dir.path(), &all, input, &[]);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    };
    let crypt15 = piped(&["crypt15", "encrypt", "-", "-o", "-"], &plaintext).stdout;
    assert!(piped(&["crypt15", "decrypt", "-", "-o", "-"], &crypt15).stdout == plaintext);
    let report = json_of(&piped(&["crypt15", "inspect", "-", "--json"], &crypt15));
    assert_eq!(report["plaintextBytes"].as_u64(), Some(plaintext.len() as u64));

    let native = piped(&["convert", "-", "-o", "-"], &crypt15).stdout;
    let report = json_of(&piped(&["inspect", "-", "--json"], &native));
    assert_eq!(
        (report["verified"].as_bool(), report["fileBytes"].as_u64()),
        (Some(true), Some(native.len() as u64))
    );
    assert!(piped(&["decrypt", "-", "-o", "-"], &native).stdout == plaintext);
    assert!(piped(&["convert", "-", "-o", "back.crypt15"], &native).stdout.is_empty());
    let back = fs::read(dir.path().join("back.crypt15")).unwrap();
    assert!(piped(&["crypt15", "decrypt", "-", "-o", "-"], &back).stdout == plaintext);

    // A named pipe is read like standard input (crypt15 reads its input twice).
    let fifo = dir.path().join("backup.fifo");
    assert!(Command::new("mkfifo").arg(&fifo).status().expect("mkfifo runs").success());
    let writer = std::thread::spawn({
        let (fifo, crypt15) = (fifo.clone(), crypt15.clone());
        move || fs::write(fifo, crypt15).unwrap()
    });
    let out = run(dir.path(), &["crypt15", "decrypt", "backup.fifo", "-o", "-", key[0], key[1]]);
    writer.join().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout == plaintext);
    fs::remove_file(&fifo).unwrap();

    // A damaged piped file is refused before anything is written; an empty one is named.
    let mut damaged = crypt15.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 1;
    let out = run_with_stdin(
        dir.path(),
        &["crypt15", "decrypt", "-", "-o", "-", key[0], key[1]],
        &damaged,
        &[],
    );
    assert_eq!(out.status.code(), Some(4));
    assert!(out.stdout.is_empty(), "no plaintext of a file that did not verify");
    let out = run_with_stdin(
        dir.path(),
        &["convert", "-", "-o", "x", key[0], key[1], "--json"],
        b"",
        &[],
    );
    assert_eq!(out.status.code(), Some(4));
    let error = json_of(&out)["error"].clone();
    assert_eq!(error["code"], "not-a-backup");
    assert!(error["message"].as_str().unwrap().contains("standard input is empty"), "{error}");
    assert!(leftovers(dir.path()).is_empty());
}

/// Runs `args` in `dir` with a terminal as standard input, output and error, through
/// util-linux `script` (part of every Debian and Ubuntu system); returns what the terminal
/// showed.
fn run_on_terminal(dir: &Path, args: &[&str]) -> String {
    let mut line = String::from(env!("CARGO_BIN_EXE_e2ee-backup"));
    for arg in args {
        line.push(' ');
        line.push_str(arg);
    }
    let out = Command::new("script")
        .current_dir(dir)
        .args(["-qec", &line, "/dev/null"])
        .output()
        .expect("util-linux `script` runs this test on a terminal: install it (bsdutils)");
    assert!(out.status.success(), "{line}: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Issue 11: long commands draw a progress bar on a terminal (`encrypt`, and `backup` through
/// the client's progress reports), and never with --quiet.
#[test]
fn progress_bars_show_on_a_terminal_and_never_with_quiet() {
    let (dir, _) = setup();
    let big: Vec<u8> =
        (0..64u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    fs::write(dir.path().join("big.db"), &big).unwrap();
    let shown = run_on_terminal(
        dir.path(),
        &["encrypt", "big.db", "-o", "a.e2ee", "--key-file", "key.txt"],
    );
    assert!(shown.contains("encrypting") && shown.contains("MiB"), "{shown}");
    let quiet = run_on_terminal(
        dir.path(),
        &["encrypt", "big.db", "-o", "b.e2ee", "--key-file", "key.txt", "--quiet"],
    );
    assert!(quiet.is_empty(), "{quiet}");

    let client = ["--client-dir", "phone"];
    run_on_terminal(dir.path(), &["enable", "--key", "--store", "store", client[0], client[1]]);
    let shown = run_on_terminal(dir.path(), &["backup", "big.db", client[0], client[1]]);
    assert!(shown.contains("encrypting") && shown.contains("backed up"), "{shown}");
    let quiet = run_on_terminal(dir.path(), &["backup", "big.db", client[0], client[1], "-q"]);
    assert!(!quiet.contains("encrypting"), "{quiet}");
}

/// `--quiet` leaves standard error empty on success; data still goes to standard output.
#[test]
fn quiet_hides_the_status_lines() {
    let (dir, _) = setup();
    let args = ["encrypt", "chats.db", "-o", "q.e2ee", "--key-file", "key.txt", "--quiet"];
    let out = run(dir.path(), &args);
    assert!(out.status.success());
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    let out = run(dir.path(), &["keygen", "--quiet"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim().split(' ').count(), 16);
    // Errors are still reported.
    let out =
        run(dir.path(), &["decrypt", "missing.e2ee", "-o", "x", "--key-file", "key.txt", "-q"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.e2ee"));
}

/// `E2EE_BACKUP_DIR` names the client directory when --client-dir is not given.
#[test]
fn the_client_directory_can_come_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let client = dir.path().join("from-env");
    let env = client.to_string_lossy().into_owned();
    let run_env = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_e2ee-backup"))
            .current_dir(dir.path())
            .args(args)
            .env("E2EE_BACKUP_DIR", &env)
            .env("XDG_DATA_HOME", dir.path().join("xdg"))
            .output()
            .unwrap()
    };
    let out = run_env(&["enable", "--key", "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(client.join("state.json").exists(), "the client is not in $E2EE_BACKUP_DIR");
    assert!(!dir.path().join("xdg").exists());
    let status = json_of(&run_env(&["status", "--json"]));
    assert_eq!(status["clientDir"], env.as_str(), "{status}");
    assert_eq!(status["mode"], "key");
}

/// `status` on a directory that holds no client exits non-zero (2, `not-initialised`).
#[test]
fn status_outside_a_client_fails() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["status", "--client-dir", "nothing-here", "--json"]);
    assert_eq!(out.status.code(), Some(2));
    let report = json_of(&out);
    assert_eq!(report["error"]["code"], "not-initialised", "{report}");
    assert!(!dir.path().join("nothing-here").exists());
}

/// Shell completions and the man page, generated from the command line's definition.
#[test]
fn completions_and_man_pages() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run(dir.path(), &["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", String::from_utf8_lossy(&out.stderr));
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains("e2ee-backup") && script.contains("restore"), "{shell}");
    }
    let out = run(dir.path(), &["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(dir.path(), &["man"]);
    assert!(out.status.success());
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains(".TH e2ee-backup") && page.contains("rotate\\-key"), "{page}");
    let out = run(dir.path(), &["man", "--dir", "pages"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.path().join("pages/e2ee-backup.1").exists());
    assert!(dir.path().join("pages/e2ee-backup-restore.1").exists());
}

// ----- issue 11: --json complete ------------------------------------------------------------

/// With --json, usage errors (clap's) are a JSON object too, and every error object has a
/// `code` and `retryable`.
#[test]
fn every_json_error_has_a_code_and_retryable_usage_errors_included() {
    let (dir, _) = setup();
    fs::write(dir.path().join("exists.e2ee"), b"x").unwrap();
    fs::write(dir.path().join("garbage.e2ee"), b"not a backup at all, clearly").unwrap();
    let cases: &[(&[&str], i32)] = &[
        // clap's usage errors: an unknown flag, a missing argument, a bad value, a conflict.
        (&["encrypt", "chats.db", "--json", "--no-such-flag"], 2),
        (&["--json", "decrypt", "chats.e2ee"], 2),
        (&["encrypt", "chats.db", "-o", "x", "--chunk-size-log2", "many", "--json"], 2),
        (&["keygen", "--show", "--json"], 2),
        (&["no-such-command", "--json"], 2),
        // The command's own failures.
        (&["encrypt", "chats.db", "-o", "exists.e2ee", "--key-file", "key.txt", "--json"], 2),
        (&["decrypt", "missing.e2ee", "-o", "x", "--key-file", "key.txt", "--json"], 1),
        (&["decrypt", "garbage.e2ee", "-o", "x", "--key-file", "key.txt", "--json"], 4),
        (&["status", "--client-dir", "none", "--json"], 2),
    ];
    for (args, exit) in cases {
        let out = run(dir.path(), args);
        assert_eq!(
            out.status.code(),
            Some(*exit),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("{args:?}: not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))
        });
        assert_eq!(report["ok"], false, "{args:?}: {report}");
        let error = &report["error"];
        assert!(error["code"].is_string(), "{args:?}: no code: {report}");
        assert!(error["retryable"].is_boolean(), "{args:?}: no retryable: {report}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()), "{args:?}: {report}");
    }
    let out = run(dir.path(), &["--json", "--no-such-flag"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["error"]["code"], "usage", "{report}");
    assert!(report["error"]["message"].as_str().unwrap().contains("--no-such-flag"), "{report}");
    // Without --json, clap's own message on standard error; --help is not an error.
    let out = run(dir.path(), &["encrypt", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stdout.is_empty() && String::from_utf8_lossy(&out.stderr).contains("--no-such-flag")
    );
    let out = run(dir.path(), &["encrypt", "--help", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"));
}
