//! The client journeys of the `e2ee-backup` binary against a real vault server over HTTP on
//! loopback (the server runs in this test process through `BackgroundServer`; each `e2ee-backup`
//! call is a separate process, as a user would run it). The vaults use the fast stretching
//! profile, so every call passes --accept-fast-ksf.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output};

use e2ee_backup_vault_server::{BackgroundServer, InitOptions, KsfName, ServerConfig};
use serde_json::Value;
use tempfile::TempDir;

const ACCOUNT: &str = "+15550001111";

/// A vault on 127.0.0.1 with the fast profile, `budget` guesses and login sessions of
/// `session_lifetime` seconds.
struct Vault {
    server: BackgroundServer,
    pin: PathBuf,
    _data: TempDir,
}

impl Vault {
    fn start(budget: u8, session_lifetime: u64) -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut options = InitOptions::new(data.path(), "cli.test");
        options.budget = budget;
        options.ksf = KsfName::Fast;
        e2ee_backup_vault_server::init(&options).unwrap();
        let mut config = ServerConfig::from_data_dir(data.path(), None).unwrap();
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.policy.session_lifetime = session_lifetime;
        let server = BackgroundServer::start(config).unwrap();
        Self { server, pin: data.path().join("fleet.pin"), _data: data }
    }

    fn url(&self) -> String {
        self.server.url()
    }
}

/// A working directory: a shared backup store, client directories ("phones") and files.
struct World {
    root: TempDir,
}

impl World {
    fn new() -> Self {
        let world = Self { root: tempfile::tempdir().unwrap() };
        let chats: Vec<u8> =
            (0..200_000u32).flat_map(|i| format!("{i}|see you at 8pm\n").into_bytes()).collect();
        fs::write(world.path("chats.db"), chats).unwrap();
        world
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> String {
        fs::write(self.path(name), text).unwrap();
        self.path(name).to_string_lossy().into_owned()
    }

    /// Runs `e2ee-backup ARGS --json` in the root, with no password in the environment unless
    /// `env` gives one, no terminal, and the default client directory inside the root.
    fn run(&self, args: &[impl AsRef<str>], env: &[(&str, &str)]) -> Output {
        self.run_with_input(args, env, None)
    }

    /// [`World::run`] with `input` on standard input (none: an empty, closed standard input).
    fn run_with_input(
        &self,
        args: &[impl AsRef<str>],
        env: &[(&str, &str)],
        input: Option<&[u8]>,
    ) -> Output {
        use std::io::Write as _;
        let mut command = Command::new(env!("CARGO_BIN_EXE_e2ee-backup"));
        command
            .current_dir(self.root.path())
            .args(args.iter().map(AsRef::as_ref))
            .arg("--json")
            .env_remove("E2EE_BACKUP_PASSWORD")
            .env_remove("E2EE_BACKUP_NEW_PASSWORD")
            .env("XDG_DATA_HOME", self.root.path().join("xdg"));
        for (name, value) in env {
            command.env(name, value);
        }
        let Some(input) = input else { return command.output().expect("the binary runs") };
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the binary runs");
        child.stdin.take().expect("piped").write_all(input).expect("the binary reads its input");
        child.wait_with_output().expect("the binary runs")
    }

    /// Runs a command that must succeed; returns its JSON report.
    fn ok(&self, args: &[impl AsRef<str>], env: &[(&str, &str)]) -> Value {
        let out = self.run(args, env);
        assert!(
            out.status.success(),
            "{:?} exited with {:?}: {}{}",
            args.iter().map(AsRef::as_ref).collect::<Vec<&str>>(),
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        json_of(&out)
    }

    /// Runs a command that must fail with `exit`; returns the JSON error object.
    fn fails(&self, args: &[impl AsRef<str>], env: &[(&str, &str)], exit: i32) -> Value {
        let out = self.run(args, env);
        assert_eq!(
            out.status.code(),
            Some(exit),
            "{:?}: {}{}",
            args.iter().map(AsRef::as_ref).collect::<Vec<&str>>(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let report = json_of(&out);
        assert_eq!(report["ok"], false);
        report["error"].clone()
    }

    fn objects(&self) -> usize {
        fs::read_dir(self.path("store/backups")).map(|d| d.count()).unwrap_or(0)
    }
}

fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

/// `--client-dir DIR --store STORE --accept-fast-ksf` for phone `name`.
fn phone<'a>(w: &'a World, name: &str, store: &'a str) -> Vec<String> {
    let dir = w.path(name).to_string_lossy().into_owned();
    vec!["--client-dir".into(), dir, "--store".into(), store.into(), "--accept-fast-ksf".into()]
}

/// `--client-dir DIR --accept-fast-ksf`, for commands that take no set-up options.
fn on(w: &World, name: &str) -> Vec<String> {
    let dir = w.path(name).to_string_lossy().into_owned();
    vec!["--client-dir".into(), dir, "--accept-fast-ksf".into()]
}

fn args(head: &[&str], tail: &[String]) -> Vec<String> {
    head.iter().map(|a| a.to_string()).chain(tail.iter().cloned()).collect()
}

/// `enable --key` for phone `name` of `w` on `store`; the 64 digits it shows.
fn enable_with_key(w: &World, name: &str, store: &str) -> String {
    w.ok(&args(&["enable", "--key"], &phone(w, name, store)), &[])["key"]
        .as_str()
        .expect("enable --key shows the key")
        .to_owned()
}

/// `enable --password-file PW` for phone `name` of `w` on `store`, with `vault` at `url`; the
/// arguments it ran with.
fn enable_with_password(
    w: &World,
    vault: &Vault,
    url: &str,
    name: &str,
    store: &str,
    pw: &str,
) -> Vec<String> {
    let mut enable = args(&["enable", "--password-file", pw], &phone(w, name, store));
    enable.extend(setup(vault, url).map(String::from));
    w.ok(&enable, &[]);
    enable
}

fn setup<'a>(vault: &'a Vault, url: &'a str) -> [&'a str; 6] {
    ["--account", ACCOUNT, "--vault", url, "--pin", vault.pin.to_str().unwrap()]
}

#[test]
fn password_journey_backup_restore_change_rotate_disable() {
    let vault = Vault::start(3, 300);
    let url = vault.url();
    let w = World::new();
    let store = w.path("store").to_string_lossy().into_owned();
    let first = w.write("first.pw", "correct horse battery\n");
    let second = w.write("second.pw", "staple and more\n");
    let original = fs::read(w.path("chats.db")).unwrap();

    // Phone A turns backups on with a password and backs up.
    let a = phone(&w, "a", &store);
    let mut enable = args(&["enable", "--password-file", &first], &a);
    enable.extend(setup(&vault, &url).map(String::from));
    let report = w.ok(&enable, &[]);
    assert_eq!(report["mode"], "password");
    assert!(report.get("key").is_none(), "password mode must not print the key");
    let status = w.ok(&args(&["status"], &on(&w, "a")), &[]);
    assert_eq!(status["mode"], "password");
    assert_eq!(status["account"], ACCOUNT);
    assert_eq!(status["vault"], url.as_str());
    assert_eq!(status["lastSeenEpoch"], 1);
    assert_eq!(status["backups"], 0);
    let report = w.ok(&args(&["backup", "chats.db", "--name", "msgstore.db"], &on(&w, "a")), &[]);
    assert_eq!(report["plaintextBytes"], original.len());
    assert_eq!(w.ok(&args(&["status"], &on(&w, "a")), &[])["backups"], 1);

    // Phone B, fresh: a wrong password is counted and restores nothing.
    let b = phone(&w, "b", &store);
    let mut restore_b = args(&["restore", "--to", "b.db", "--password"], &b);
    restore_b.extend(setup(&vault, &url).map(String::from));
    let error = w.fails(&restore_b, &[("E2EE_BACKUP_PASSWORD", "not it at all")], 5);
    assert_eq!(error["code"], "wrong-password");
    assert_eq!(error["attemptsLeft"], 2);
    assert!(error["message"].as_str().unwrap().contains("2 attempts"), "{error}");
    assert!(!w.path("b.db").exists());
    // The right one, from the environment.
    let report = w.ok(&restore_b, &[("E2EE_BACKUP_PASSWORD", "correct horse battery")]);
    assert_eq!(report["name"], "msgstore.db");
    assert_eq!(report["mode"], "password");
    assert_eq!(fs::read(w.path("b.db")).unwrap(), original);

    // Phone B changes the password; a fresh phone C gets in with the new one only.
    let change = args(
        &["change-password", "--password-file", &first, "--new-password-file", &second],
        &on(&w, "b"),
    );
    assert_eq!(w.ok(&change, &[])["changed"], true);
    let c = phone(&w, "c", &store);
    let mut restore_c = args(&["restore", "--to", "c.db", "--password-file", &first], &c);
    restore_c.extend(setup(&vault, &url).map(String::from));
    assert_eq!(w.fails(&restore_c, &[], 5)["attemptsLeft"], 2);
    let restore_c_new: Vec<String> =
        restore_c.iter().map(|a| if *a == first { second.clone() } else { a.clone() }).collect();
    w.ok(&restore_c_new, &[]);
    assert_eq!(fs::read(w.path("c.db")).unwrap(), original);

    // Rotation on phone C: backups move to a new key the vault now seals; phone D restores.
    let report = w.ok(&args(&["rotate-key", "--password-file", &second], &on(&w, "c")), &[]);
    assert_eq!(report["reencrypted"], 1);
    assert!(report.get("key").is_none(), "password mode must not print the new key");
    let status_a = w.ok(&args(&["status"], &on(&w, "a")), &[]);
    assert_ne!(report["keyId"], status_a["keyId"], "the key id must change");
    let d = phone(&w, "d", &store);
    let mut restore_d = args(&["restore", "--to", "d.db", "--password-file", &second], &d);
    restore_d.extend(setup(&vault, &url).map(String::from));
    w.ok(&restore_d, &[]);
    assert_eq!(fs::read(w.path("d.db")).unwrap(), original);
    assert_eq!(w.objects(), 1);

    // Disable on phone D: asks for confirmation, then deletes the backups and the vault record.
    let disable = args(&["disable", "--password-file", &second], &on(&w, "d"));
    assert_eq!(w.fails(&disable, &[], 2)["code"], "not-confirmed");
    assert_eq!(w.objects(), 1, "an unconfirmed disable deleted something");
    let mut disable = disable;
    disable.push("--yes".into());
    let report = w.ok(&disable, &[]);
    assert_eq!(report["deletedBackups"], 1);
    assert_eq!(report["vaultRecordDeleted"], true);
    assert_eq!(w.ok(&args(&["status"], &on(&w, "d")), &[])["mode"], "off");
    assert_eq!(w.objects(), 0);
}

#[test]
fn wrong_passwords_run_out_and_lock_the_account_for_good() {
    // One-second login sessions, so that the spent attempts end within the test.
    let vault = Vault::start(2, 1);
    let url = vault.url();
    let w = World::new();
    let store = w.path("store").to_string_lossy().into_owned();
    let mut enable = args(&["enable", "--password"], &phone(&w, "owner", &store));
    enable.extend(setup(&vault, &url).map(String::from));
    w.ok(&enable, &[("E2EE_BACKUP_PASSWORD", "the real password")]);
    w.ok(&args(&["backup", "chats.db"], &on(&w, "owner")), &[]);

    let mut guess = args(&["restore", "--to", "t.db", "--password"], &phone(&w, "thief", &store));
    guess.extend(setup(&vault, &url).map(String::from));
    for left in [1, 0] {
        let error = w.fails(&guess, &[("E2EE_BACKUP_PASSWORD", "guess")], 5);
        assert_eq!(error["attemptsLeft"], left);
    }
    // While the guesses' sessions live the vault withholds its verdict (exit 7, retryable);
    // once they end, the next attempt locks the account.
    let mut outcome = None;
    for _ in 0..40 {
        let out = w.run(&guess, &[("E2EE_BACKUP_PASSWORD", "guess")]);
        match out.status.code() {
            Some(7) => {
                let error = json_of(&out)["error"].clone();
                assert_eq!(error["code"], "attempts-exhausted");
                assert_eq!(error["retryable"], true);
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
            code => {
                outcome = Some((code, json_of(&out)["error"].clone()));
                break;
            }
        }
    }
    let (code, error) = outcome.expect("the account never locked");
    assert_eq!(code, Some(6), "{error}");
    assert_eq!(error["code"], "locked-out");
    // A failed first command saves nothing on the new device: the vault keeps the verdict.
    assert_eq!(w.fails(&args(&["status"], &on(&w, "thief")), &[], 2)["initialised"], false);
    // Even the right password opens nothing now.
    let error = w.fails(&guess, &[("E2EE_BACKUP_PASSWORD", "the real password")], 6);
    assert_eq!(error["code"], "locked-out");
    let mut fresh = args(&["restore", "--to", "f.db", "--password"], &phone(&w, "fresh", &store));
    fresh.extend(setup(&vault, &url).map(String::from));
    w.fails(&fresh, &[("E2EE_BACKUP_PASSWORD", "the real password")], 6);
    assert!(!w.path("t.db").exists() && !w.path("f.db").exists());
}

#[test]
fn key_mode_journey_with_the_printed_digits() {
    let w = World::new();
    let store = w.path("store").to_string_lossy().into_owned();
    let original = fs::read(w.path("chats.db")).unwrap();
    let report = w.ok(&args(&["enable", "--key"], &phone(&w, "a", &store)), &[]);
    let key = report["key"].as_str().unwrap().to_owned();
    assert_eq!(key.split(' ').count(), 16, "{key}");
    assert_eq!(report["account"], "local");
    // The text form shows the key once, with the warning.
    let out = Command::new(env!("CARGO_BIN_EXE_e2ee-backup"))
        .args(["enable", "--key", "--client-dir"])
        .arg(w.path("text"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("Write it down"), "{text}");
    assert!(
        text.lines().any(|l| l.trim().split(' ').filter(|g| g.len() == 4).count() == 16),
        "no line with the 16 groups: {text}"
    );

    w.ok(&args(&["backup", "chats.db"], &on(&w, "a")), &[]);
    let status = w.ok(&args(&["status"], &on(&w, "a")), &[]);
    assert_eq!(status["mode"], "key");
    assert_eq!(status["backups"], 1);
    assert_eq!(status["vault"], Value::Null);
    assert!(status.get("key").is_none(), "status must not show the key");

    // Another key opens nothing (exit 3); the printed digits restore on a fresh directory.
    let wrong = "0".repeat(64);
    let error = w.fails(
        &args(&["restore", "--to", "x.db", "--key", &wrong], &phone(&w, "x", &store)),
        &[],
        3,
    );
    assert_eq!(error["code"], "wrong-key");
    let report =
        w.ok(&args(&["restore", "--to", "b.db", "--key", &key], &phone(&w, "b", &store)), &[]);
    assert_eq!(report["mode"], "key");
    assert_eq!(fs::read(w.path("b.db")).unwrap(), original);
    // The target exists now: replaced only with --force.
    let error = w.fails(
        &args(&["restore", "--to", "b.db", "--key", &key], &phone(&w, "b2", &store)),
        &[],
        2,
    );
    assert_eq!(error["code"], "output-exists");

    // Rotation in key mode prints new digits; the old ones stop working.
    let report = w.ok(&args(&["rotate-key"], &on(&w, "a")), &[]);
    let new_key = report["key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    w.fails(&args(&["restore", "--to", "c.db", "--key", &key], &phone(&w, "c", &store)), &[], 3);
    let key_file = w.write("new.key", &new_key);
    w.ok(
        &args(&["restore", "--to", "d.db", "--key-file", &key_file], &phone(&w, "d", &store)),
        &[],
    );
    assert_eq!(fs::read(w.path("d.db")).unwrap(), original);
    let report = w.ok(&args(&["disable", "--yes"], &on(&w, "a")), &[]);
    assert_eq!(report["deletedBackups"], 1);
    assert_eq!(report["vaultRecordDeleted"], false);
}

#[test]
fn an_unreachable_vault_exits_7_and_can_be_retried() {
    let vault = Vault::start(3, 300);
    let url = vault.url();
    let w = World::new();
    let store = w.path("store").to_string_lossy().into_owned();
    let pw = w.write("pw", "a fine password");
    // A client that knows its vault, with backups off.
    let enable = enable_with_password(&w, &vault, &url, "a", &store, &pw);
    w.ok(&args(&["disable", "--yes", "--password-file", &pw], &on(&w, "a")), &[]);
    let Vault { server, pin: _pin, _data } = vault;
    server.shutdown().unwrap();
    // Each retry is told on standard error (issue 11: "the CLI shows retrying (2/5)"), within
    // the bound; --quiet hides it.
    let out = w.run(&enable, &[]);
    assert_eq!(out.status.code(), Some(7));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("retrying (2/5)") && said.contains("retrying (5/5)"), "{said}");
    assert!(!said.contains("(6/5)"), "{said}");
    let error = json_of(&out)["error"].clone();
    let quiet = args(&["--quiet"], &enable);
    let out = w.run(&quiet, &[]);
    assert_eq!(out.status.code(), Some(7));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("retrying"));
    assert_eq!(error["code"], "vault-unreachable");
    assert_eq!(error["retryable"], true);
    let status = w.ok(&args(&["status"], &on(&w, "a")), &[]);
    assert_eq!(status["mode"], "off");
    assert_eq!(status["pending"], "password registration");
    // The directory remembers its vault: another one is refused rather than silently ignored,
    // and the message says how to change it.
    let mut other = enable.clone();
    let at = other.iter().position(|a| *a == url).unwrap();
    other[at] = closed_url();
    let error = w.fails(&other, &[], 2);
    assert_eq!(error["code"], "client-exists");
    assert!(error["message"].as_str().unwrap().contains("set-vault"), "{error}");
    // The interrupted registration can be dropped.
    assert_eq!(w.ok(&args(&["abort"], &on(&w, "a")), &[])["aborted"], "password registration");
    assert_eq!(w.ok(&args(&["status"], &on(&w, "a")), &[])["pending"], Value::Null);
}

#[test]
fn a_fast_profile_vault_is_refused_unless_accepted() {
    let vault = Vault::start(3, 300);
    let url = vault.url();
    let w = World::new();
    let pw = w.write("pw", "a fine password");
    let dir = w.path("a").to_string_lossy().into_owned();
    let mut enable = vec!["enable", "--password-file", &pw, "--client-dir", &dir];
    enable.extend(setup(&vault, &url));
    let error = w.fails(&enable, &[], 8);
    assert!(error["message"].as_str().unwrap().contains("--accept-fast-ksf"), "{error}");
}

#[test]
fn usage_errors_say_what_to_do() {
    let w = World::new();
    // No client yet: status says so (exit 2, issue 11), backup refuses with 2.
    let status = w.fails(&["status"], &[], 2);
    assert_eq!(status["initialised"], false);
    assert_eq!(
        PathBuf::from(status["clientDir"].as_str().unwrap()),
        w.path("xdg").join("e2ee-backup"),
        "the default client directory follows XDG_DATA_HOME"
    );
    let error = w.fails(&args(&["backup", "chats.db"], &on(&w, "none")), &[], 2);
    assert_eq!(error["code"], "not-initialised");
    // Password mode on a new directory needs the vault's settings.
    let error = w.fails(&args(&["enable", "--password"], &on(&w, "a")), &[], 2);
    assert_eq!(error["code"], "missing-setup");
    // A pin file that is not one.
    let pin = w.write("fleet.pin", "fleet_id = x\n");
    let error = w.fails(
        &args(
            &[
                "restore",
                "--to",
                "r.db",
                "--password",
                "--account",
                ACCOUNT,
                "--vault",
                "http://127.0.0.1:9",
                "--pin",
                &pin,
            ],
            &on(&w, "b"),
        ),
        &[],
        2,
    );
    assert_eq!(error["code"], "invalid-pin", "{error}");
    // Short new passwords are refused before anything is sent.
    let short = w.write("short.pw", "abc");
    w.ok(&args(&["enable", "--key"], &on(&w, "k")), &[]);
    let error = w.fails(&args(&["enable", "--password-file", &short], &on(&w, "k")), &[], 2);
    assert_eq!(error["code"], "weak-password", "{error}");
    // --key and --password exclude each other (clap's usage error, exit 2).
    let out = w.run(&args(&["restore", "--to", "x", "--key", "--password"], &on(&w, "c")), &[]);
    assert_eq!(out.status.code(), Some(2));
    // The help lists the exit codes.
    let out = Command::new(env!("CARGO_BIN_EXE_e2ee-backup")).args(["restore", "--help"]).output();
    let help = String::from_utf8(out.unwrap().stdout).unwrap();
    assert!(help.contains("5  wrong password") && help.contains("6  locked out"), "{help}");
}

#[test]
fn passwords_are_checked_before_the_vault_hears_of_them() {
    let vault = Vault::start(3, 300);
    let w = World::new();
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let short = w.write("short.pw", "abc\n");
    let mut enable = args(&["enable", "--password-file", &short], &on(&w, "a"));
    enable.extend(
        ["--account", ACCOUNT, "--vault", &closed, "--pin", vault.pin.to_str().unwrap()]
            .map(String::from),
    );
    // Too short: refused here (exit 2), not sent (which would be exit 7 with this vault URL).
    assert_eq!(w.fails(&enable, &[], 2)["code"], "weak-password");
    // No password at all, and no terminal to ask at.
    let mut enable = args(&["enable", "--password"], &on(&w, "a"));
    enable.extend(
        ["--account", ACCOUNT, "--vault", &closed, "--pin", vault.pin.to_str().unwrap()]
            .map(String::from),
    );
    let error = w.fails(&enable, &[], 2);
    assert_eq!(error["code"], "no-password");
    assert!(error["message"].as_str().unwrap().contains("E2EE_BACKUP_PASSWORD"), "{error}");
    // Nothing was set up either: the client directory is made only once the password is in.
    assert_eq!(w.fails(&args(&["status"], &on(&w, "a")), &[], 2)["initialised"], false);
}

/// Issue 11: a wrong password, or a vault that is down, makes `rotate-key` fail before it
/// copies anything; nothing is left to finish or abort, and backups go on.
#[test]
fn rotate_key_with_a_wrong_password_or_the_vault_down_changes_nothing() {
    let vault = Vault::start(5, 300);
    let url = vault.url();
    let w = World::new();
    let store = w.path("store").to_string_lossy().into_owned();
    let right = w.write("right.pw", "correct horse battery\n");
    let wrong = w.write("wrong.pw", "not the password\n");
    let mut enable = args(&["enable", "--password-file", &right], &phone(&w, "a", &store));
    enable.extend(setup(&vault, &url).map(String::from));
    w.ok(&enable, &[]);
    w.ok(&args(&["backup", "chats.db"], &on(&w, "a")), &[]);

    let error = w.fails(&args(&["rotate-key", "--password-file", &wrong], &on(&w, "a")), &[], 5);
    assert_eq!(error["code"], "wrong-password");
    assert_eq!(w.objects(), 1, "nothing was copied");
    assert_eq!(w.ok(&args(&["status"], &on(&w, "a")), &[])["pending"], Value::Null);
    w.ok(&args(&["backup", "chats.db"], &on(&w, "a")), &[]);
    assert_eq!(w.objects(), 2);
    assert_eq!(w.ok(&args(&["abort"], &on(&w, "a")), &[])["aborted"], Value::Null);

    let Vault { server, pin: _pin, _data } = vault;
    server.shutdown().unwrap();
    let error = w.fails(&args(&["rotate-key", "--password-file", &right], &on(&w, "a")), &[], 7);
    assert_eq!(error["code"], "vault-unreachable");
    assert_eq!(w.objects(), 2, "the store did not grow");
    assert_eq!(w.ok(&args(&["status"], &on(&w, "a")), &[])["pending"], Value::Null);
    w.ok(&args(&["backup", "chats.db"], &on(&w, "a")), &[]);
    assert_eq!(w.objects(), 3);
}

/// A port nothing listens on.
fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

/// Issue 11: `enable` with a mistyped --vault on first use saves nothing, so the right URL is
/// accepted next.
#[test]
fn a_wrong_vault_on_first_use_saves_nothing_and_the_right_one_works() {
    let vault = Vault::start(3, 300);
    let url = vault.url();
    let w = World::new();
    let store = w.path("store").to_string_lossy().into_owned();
    let pw = w.write("pw", "a fine password");
    let closed = closed_url();
    let mut enable = args(&["enable", "--password-file", &pw], &phone(&w, "a", &store));
    enable.extend(
        ["--account", ACCOUNT, "--vault", &closed, "--pin", vault.pin.to_str().unwrap()]
            .map(String::from),
    );
    assert_eq!(w.fails(&enable, &[], 7)["code"], "vault-unreachable");
    assert_eq!(w.fails(&args(&["status"], &on(&w, "a")), &[], 2)["initialised"], false);
    assert!(!w.path("a").exists(), "the client directory was not kept");
    assert!(!w.path("store").exists(), "no store was made");
    // With the default store, inside the client directory: nothing is left either.
    let mut default_store = args(&["enable", "--password-file", &pw], &on(&w, "d"));
    default_store.extend(
        ["--account", ACCOUNT, "--vault", &closed, "--pin", vault.pin.to_str().unwrap()]
            .map(String::from),
    );
    w.fails(&default_store, &[], 7);
    assert!(!w.path("d").exists(), "the client directory was not kept");
    let at = enable.iter().position(|a| *a == closed).unwrap();
    enable[at] = url.clone();
    assert_eq!(w.ok(&enable, &[])["mode"], "password");
    assert_eq!(w.ok(&args(&["status"], &on(&w, "a")), &[])["vault"], url.as_str());
}

/// Issue 11: `restore` from a mistyped --store is an error naming the path; it creates neither
/// that folder nor the client directory, and the right store works next. An empty store says
/// where it looked.
#[test]
fn restore_from_a_missing_store_names_it_and_creates_nothing() {
    let w = World::new();
    let store = w.path("store").to_string_lossy().into_owned();
    let key = enable_with_key(&w, "a", &store);
    w.ok(&args(&["backup", "chats.db"], &on(&w, "a")), &[]);

    let typo = w.path("stroe").to_string_lossy().into_owned();
    let error =
        w.fails(&args(&["restore", "--to", "b.db", "--key", &key], &phone(&w, "b", &typo)), &[], 1);
    assert_eq!(error["code"], "store-missing", "{error}");
    assert!(error["message"].as_str().unwrap().contains(&typo), "{error}");
    assert!(!w.path("stroe").exists(), "the mistyped store was created");
    assert!(!w.path("b").exists(), "the client directory was kept");

    let empty = w.path("empty");
    fs::create_dir(&empty).unwrap();
    let empty = empty.to_string_lossy().into_owned();
    let error = w.fails(
        &args(&["restore", "--to", "b.db", "--key", &key], &phone(&w, "b", &empty)),
        &[],
        1,
    );
    assert_eq!(error["code"], "no-backup-found");
    assert!(error["message"].as_str().unwrap().contains(&empty), "{error}");
    assert!(!w.path("b").exists(), "the client directory was kept");

    w.ok(&args(&["restore", "--to", "b.db", "--key", &key], &phone(&w, "b", &store)), &[]);
    assert_eq!(fs::read(w.path("b.db")).unwrap(), fs::read(w.path("chats.db")).unwrap());
}

/// Issue 11: `set-store` and `set-vault` change a client's settings after set-up, each checked
/// first (the store must be readable; the vault's key bundle must verify against the pin).
#[test]
fn set_store_and_set_vault_are_checked_before_they_are_saved() {
    let vault = Vault::start(3, 300);
    let other = Vault::start(3, 300);
    let url = vault.url();
    let w = World::new();
    let store = w.path("store").to_string_lossy().into_owned();
    w.ok(&args(&["enable", "--key"], &phone(&w, "a", &store)), &[]);
    w.ok(&args(&["backup", "chats.db"], &on(&w, "a")), &[]);

    // The store moved: a missing folder is refused, the new place accepted.
    let moved = w.path("moved").to_string_lossy().into_owned();
    let error = w.fails(&args(&["set-store", "--store", &moved], &on(&w, "a")), &[], 1);
    assert_eq!(error["code"], "store-missing", "{error}");
    assert_eq!(w.ok(&args(&["status"], &on(&w, "a")), &[])["store"], store.as_str());
    fs::rename(&store, &moved).unwrap();
    let report = w.ok(&args(&["set-store", "--store", &moved], &on(&w, "a")), &[]);
    assert_eq!(report["backups"], 1);
    let status = w.ok(&args(&["status"], &on(&w, "a")), &[]);
    assert_eq!(status["store"], moved.as_str());
    assert_eq!(status["backups"], 1);

    // A vault: refused when unreachable or not the pinned fleet, accepted when it verifies.
    let pin = vault.pin.to_str().unwrap();
    let closed = closed_url();
    let set =
        |url: &str, pin: &str| args(&["set-vault", "--vault", url, "--pin", pin], &on(&w, "a"));
    assert_eq!(w.fails(&set(&closed, pin), &[], 7)["code"], "vault-unreachable");
    let error = w.fails(&set(&other.url(), pin), &[], 8);
    assert_eq!(error["code"], "fleet-bundle-rejected", "{error}");
    assert_eq!(w.ok(&args(&["status"], &on(&w, "a")), &[])["vault"], Value::Null);
    let report = w.ok(&set(&url, pin), &[]);
    assert_eq!(report["vault"], url.as_str());
    let status = w.ok(&args(&["status"], &on(&w, "a")), &[]);
    assert_eq!(status["vault"], url.as_str());
    assert_eq!(status["lastSeenEpoch"], 1);

    // In password mode the key is sealed in the pinned fleet: another fleet is refused.
    let pw = w.write("pw", "a fine password");
    enable_with_password(&w, &vault, &url, "p", &store, &pw);
    let other_pin = other.pin.to_str().unwrap();
    let error = w.fails(
        &args(&["set-vault", "--vault", &other.url(), "--pin", other_pin], &on(&w, "p")),
        &[],
        2,
    );
    assert_eq!(error["code"], "illegal-state", "{error}");
    assert_eq!(w.ok(&args(&["status"], &on(&w, "p")), &[])["vault"], url.as_str());
}

/// How often `needle` occurs in `text`, ignoring case.
fn occurrences(text: &str, needle: &str) -> usize {
    text.to_lowercase().matches(&needle.to_lowercase()).count()
}

/// Issue 11, truthful errors: the vault answers an unregistered (or mistyped) account like a
/// wrong password, so the message allows for both without saying which; the attempts left are
/// counted in good grammar, once; and a password-mode user is not told to use a 64-digit key.
#[test]
fn a_wrong_password_message_allows_an_unknown_account_in_good_grammar() {
    let vault = Vault::start(3, 300);
    let url = vault.url();
    let w = World::new();
    let store = w.path("store").to_string_lossy().into_owned();
    let pw = w.write("pw", "a fine password");
    enable_with_password(&w, &vault, &url, "a", &store, &pw);
    w.ok(&args(&["backup", "chats.db"], &on(&w, "a")), &[]);

    let mistyped =
        ["--account", "+15550001112", "--vault", &url, "--pin", vault.pin.to_str().unwrap()];
    let mut restore =
        args(&["restore", "--to", "b.db", "--password-file", &pw], &phone(&w, "b", &store));
    restore.extend(mistyped.map(String::from));
    for left in [2, 1] {
        let error = w.fails(&restore, &[], 5);
        let message = error["message"].as_str().unwrap();
        assert_eq!(error["attemptsLeft"], left);
        assert!(message.contains("no backup is registered for this account"), "{message}");
        let counted = if left == 1 { "1 attempt remains" } else { "2 attempts remain" };
        assert!(message.contains(counted), "{message}");
        assert_eq!(occurrences(message, "remain"), 1, "the count is said once: {message}");
        assert_eq!(occurrences(message, " left"), 0, "the count is said once: {message}");
        assert!(!message.contains("--key"), "no 64-digit key in password mode: {message}");
    }
    // The same for a password-mode client's own commands.
    let wrong = w.write("wrong.pw", "not the password");
    let error = w.fails(&args(&["rotate-key", "--password-file", &wrong], &on(&w, "a")), &[], 5);
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("or no backup is registered"), "{message}");
    assert!(!message.contains("--key"), "{message}");
}

/// Issue 11, truthful errors: no sentence is said twice.
#[test]
fn error_messages_say_each_thing_once() {
    let w = World::new();
    let store = w.path("store").to_string_lossy().into_owned();
    w.ok(&args(&["enable", "--key"], &phone(&w, "a", &store)), &[]);
    w.ok(&args(&["backup", "chats.db"], &on(&w, "a")), &[]);
    let wrong = "0".repeat(64);
    let error = w.fails(
        &args(&["restore", "--to", "x.db", "--key", &wrong], &phone(&w, "x", &store)),
        &[],
        3,
    );
    let message = error["message"].as_str().unwrap();
    assert_eq!(occurrences(message, "check the digits"), 1, "{message}");

    // An interrupted operation: what to do is said once.
    let vault = Vault::start(3, 300);
    let pw = w.write("pw", "a fine password");
    let mut enable = args(&["enable", "--password-file", &pw], &phone(&w, "p", &store));
    enable.extend(
        ["--account", ACCOUNT, "--vault", &vault.url(), "--pin", vault.pin.to_str().unwrap()]
            .map(String::from),
    );
    w.ok(&enable, &[]);
    w.ok(&args(&["disable", "--yes", "--password-file", &pw], &on(&w, "p")), &[]);
    let Vault { server, pin: _pin, _data } = vault;
    server.shutdown().unwrap();
    w.fails(&enable, &[], 7);
    let error = w.fails(&args(&["enable", "--key"], &on(&w, "p")), &[], 2);
    assert_eq!(error["code"], "pending-operation");
    let message = error["message"].as_str().unwrap();
    assert_eq!(occurrences(message, "abort"), 1, "{message}");
    assert_eq!(occurrences(message, "again"), 1, "{message}");
}

/// Issue 11, truthful errors: a backup source that cannot be read is named.
#[test]
fn a_backup_source_that_cannot_be_read_is_named() {
    let w = World::new();
    let store = w.path("store").to_string_lossy().into_owned();
    w.ok(&args(&["enable", "--key"], &phone(&w, "a", &store)), &[]);
    // A directory was such a source until snapshots (spec chapter 8): it now makes a snapshot,
    // never a backup object.
    fs::create_dir(w.path("folder")).unwrap();
    let folder = w.path("folder").to_string_lossy().into_owned();
    let report = w.ok(&args(&["backup", &folder], &on(&w, "a")), &[]);
    assert!(report["snapshot"].is_string(), "{report}");
    assert_eq!(w.objects(), 0);
    let missing = w.path("gone.db").to_string_lossy().into_owned();
    let error = w.fails(&args(&["backup", &missing], &on(&w, "a")), &[], 1);
    let message = error["message"].as_str().unwrap();
    assert!(message.contains(&missing), "{message}");
    assert!(!message.contains("<backup source>"), "{message}");
    assert_eq!(w.objects(), 0, "nothing was stored");
}

/// A web server that is not a vault: every request gets a 404 HTML page.
fn not_a_vault() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buffer = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut buffer);
            let page = "<html><body><h1>404 Not Found</h1>nginx</body></html>";
            let answer = format!(
                "HTTP/1.1 404 Not Found\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = std::io::Write::write_all(&mut stream, answer.as_bytes());
        }
    });
    url
}

/// Issue 11, truthful errors: `https://` against a vault that speaks plain HTTP can never
/// succeed, so it is not "retry later" (7); a web server that is not a vault is not "a client
/// or deployment bug", and its page is not printed.
#[test]
fn a_wrong_scheme_or_a_server_that_is_not_a_vault_is_said_so() {
    let vault = Vault::start(3, 300);
    let w = World::new();
    let store = w.path("store").to_string_lossy().into_owned();
    w.ok(&args(&["enable", "--key"], &phone(&w, "a", &store)), &[]);
    let pin = vault.pin.to_str().unwrap();
    let https = vault.url().replacen("http://", "https://", 1);
    let out = w.run(&args(&["set-vault", "--vault", &https, "--pin", pin], &on(&w, "a")), &[]);
    let error = json_of(&out)["error"].clone();
    assert_ne!(out.status.code(), Some(7), "{error}");
    assert_ne!(out.status.code(), Some(0), "{error}");
    assert_eq!(error["retryable"], false, "{error}");
    assert_eq!(error["code"], "vault-tls", "{error}");
    assert!(error["message"].as_str().unwrap().contains("http://"), "{error}");

    let web = not_a_vault();
    let error = w.fails(&args(&["set-vault", "--vault", &web, "--pin", pin], &on(&w, "a")), &[], 2);
    let message = error["message"].as_str().unwrap();
    assert_eq!(error["code"], "not-a-vault", "{error}");
    assert!(message.contains(&web), "{message}");
    assert!(!message.contains("<html>"), "{message}");
    assert!(!message.contains("client or deployment bug"), "{message}");
    assert_eq!(w.ok(&args(&["status"], &on(&w, "a")), &[])["vault"], Value::Null);
}

/// Issue 11: an empty file is not backed up silently (it would be restored in preference to the
/// real backups before it): refused unless --allow-empty, and then with a warning.
#[test]
fn an_empty_backup_needs_allow_empty() {
    let w = World::new();
    let store = w.path("store").to_string_lossy().into_owned();
    w.ok(&args(&["enable", "--key"], &phone(&w, "a", &store)), &[]);
    w.ok(&args(&["backup", "chats.db"], &on(&w, "a")), &[]);
    w.write("empty.db", "");
    let error = w.fails(&args(&["backup", "empty.db"], &on(&w, "a")), &[], 2);
    assert_eq!(error["code"], "empty-backup", "{error}");
    assert!(error["message"].as_str().unwrap().contains("--allow-empty"), "{error}");
    assert_eq!(w.objects(), 1);
    let report = w.ok(&args(&["backup", "empty.db", "--allow-empty"], &on(&w, "a")), &[]);
    assert!(report["warning"].as_str().unwrap().contains("empty"), "{report}");
    assert_eq!(w.objects(), 2);
}

/// Issue 11: a first restore that got as far as Restoring (the key is known, writing the
/// target failed) is the one failure whose client directory is kept: running the same command
/// again resumes it.
#[test]
fn a_restore_cut_off_after_the_key_is_known_is_kept_and_resumes() {
    let w = World::new();
    let store = w.path("store").to_string_lossy().into_owned();
    let key = enable_with_key(&w, "a", &store);
    w.ok(&args(&["backup", "chats.db"], &on(&w, "a")), &[]);
    // The target's folder cannot be made: a file stands in its way.
    w.write("blocker", "");
    let to = w.path("blocker").join("b.db").to_string_lossy().into_owned();
    let restore = args(&["restore", "--to", &to, "--key", &key], &phone(&w, "b", &store));
    let error = w.fails(&restore, &[], 1);
    assert!(error["message"].as_str().unwrap().contains("blocker"), "{error}");
    assert_eq!(w.ok(&args(&["status"], &on(&w, "b")), &[])["mode"], "restoring");
    fs::remove_file(w.path("blocker")).unwrap();
    let report = w.ok(&restore, &[]);
    assert_eq!(report["mode"], "key");
    assert_eq!(fs::read(&to).unwrap(), fs::read(w.path("chats.db")).unwrap());
}

/// Issue 11: after phone A rotates the key, phone B (still holding the old key) does not back
/// up silently under it, which a restore with the new key would skip: `backup` refuses with
/// its own exit code (9) and stores nothing, in key mode and in password mode.
#[test]
fn a_backup_under_a_key_rotated_elsewhere_is_refused() {
    let w = World::new();
    let store = w.path("store").to_string_lossy().into_owned();
    let key = enable_with_key(&w, "a", &store);
    w.ok(&args(&["backup", "chats.db"], &on(&w, "a")), &[]);
    w.ok(&args(&["restore", "--to", "b.db", "--key", &key], &phone(&w, "b", &store)), &[]);
    w.ok(&args(&["backup", "chats.db"], &on(&w, "b")), &[]);
    w.ok(&args(&["rotate-key"], &on(&w, "a")), &[]);
    let before = w.objects();
    let error = w.fails(&args(&["backup", "chats.db"], &on(&w, "b")), &[], 9);
    assert_eq!(error["code"], "key-rotated-elsewhere", "{error}");
    assert_eq!(error["retryable"], false, "{error}");
    assert!(error["message"].as_str().unwrap().contains("restore"), "{error}");
    assert_eq!(w.objects(), before, "nothing was stored");
    // Phone A, which holds the new key, backs up as before.
    w.ok(&args(&["backup", "chats.db"], &on(&w, "a")), &[]);

    // Password mode: the same.
    let vault = Vault::start(3, 300);
    let url = vault.url();
    let store = w.path("pstore").to_string_lossy().into_owned();
    let pw = w.write("pw", "a fine password");
    enable_with_password(&w, &vault, &url, "pa", &store, &pw);
    w.ok(&args(&["backup", "chats.db"], &on(&w, "pa")), &[]);
    let mut restore =
        args(&["restore", "--to", "pb.db", "--password-file", &pw], &phone(&w, "pb", &store));
    restore.extend(setup(&vault, &url).map(String::from));
    w.ok(&restore, &[]);
    w.ok(&args(&["rotate-key", "--password-file", &pw], &on(&w, "pa")), &[]);
    let error = w.fails(&args(&["backup", "chats.db"], &on(&w, "pb")), &[], 9);
    assert_eq!(error["code"], "key-rotated-elsewhere", "{error}");
}

/// Issue 11: `enable --password` on a key-mode client switches to password mode with the same
/// key, and `enable --key` on a password-mode client switches back; no backup is deleted, and
/// each credential restores on a fresh device while it is current.
#[test]
fn switching_modes_keeps_every_backup() {
    let vault = Vault::start(3, 300);
    let url = vault.url();
    let w = World::new();
    let store = w.path("store").to_string_lossy().into_owned();
    let original = fs::read(w.path("chats.db")).unwrap();
    // Set up in key mode without an account or a vault.
    let enabled = w.ok(&args(&["enable", "--key"], &phone(&w, "a", &store)), &[]);
    let key = enabled["key"].as_str().unwrap().to_owned();
    w.ok(&args(&["backup", "chats.db"], &on(&w, "a")), &[]);

    let pw = w.write("pw", "a fine password");
    let mut switch = args(&["enable", "--password-file", &pw], &on(&w, "a"));
    switch.extend(setup(&vault, &url).map(String::from));
    let report = w.ok(&switch, &[]);
    assert_eq!(report["mode"], "password", "{report}");
    assert_eq!(report["backups"], 1, "{report}");
    assert_eq!(w.objects(), 1, "no backup was deleted");
    let status = w.ok(&args(&["status"], &on(&w, "a")), &[]);
    assert_eq!(status["mode"], "password");
    assert_eq!(status["keyId"], enabled["keyId"], "the same key");
    assert_eq!(status["account"], ACCOUNT);
    w.ok(&args(&["backup", "chats.db"], &on(&w, "a")), &[]);
    // A fresh device restores with the password; the digits still open the backups too.
    let mut restore =
        args(&["restore", "--to", "c.db", "--password-file", &pw], &phone(&w, "c", &store));
    restore.extend(setup(&vault, &url).map(String::from));
    w.ok(&restore, &[]);
    assert_eq!(fs::read(w.path("c.db")).unwrap(), original);
    w.ok(&args(&["restore", "--to", "d.db", "--key", &key], &phone(&w, "d", &store)), &[]);

    // Back to key mode: the same digits, the vault's copy deleted, the backups kept.
    let report = w.ok(&args(&["enable", "--key", "--password-file", &pw], &on(&w, "a")), &[]);
    assert_eq!(report["mode"], "key", "{report}");
    assert_eq!(report["key"], key.as_str(), "the same key");
    assert_eq!(w.objects(), 2, "no backup was deleted");
    w.ok(&args(&["backup", "chats.db"], &on(&w, "a")), &[]);
    let mut restore =
        args(&["restore", "--to", "e.db", "--password-file", &pw], &phone(&w, "e", &store));
    restore.extend(setup(&vault, &url).map(String::from));
    assert_eq!(w.fails(&restore, &[], 5)["code"], "wrong-password");
    w.ok(&args(&["restore", "--to", "f.db", "--key", &key], &phone(&w, "f", &store)), &[]);
    assert_eq!(fs::read(w.path("f.db")).unwrap(), original);
}

/// Issue 11: the device that made a backup restores it in place, with the 64-digit key or the
/// password; a wrong key changes nothing there. It is also how a device whose key another
/// device rotated (`key-rotated-elsewhere`) takes the new key and backs up again.
#[test]
fn the_device_that_made_a_backup_restores_it_in_place() {
    let w = World::new();
    let store = w.path("store").to_string_lossy().into_owned();
    let original = fs::read(w.path("chats.db")).unwrap();
    let enabled = w.ok(&args(&["enable", "--key"], &phone(&w, "a", &store)), &[]);
    let key = enabled["key"].as_str().unwrap().to_owned();
    w.ok(&args(&["backup", "chats.db"], &on(&w, "a")), &[]);
    let wrong = "0".repeat(64);
    let error = w.fails(&args(&["restore", "--to", "x.db", "--key", &wrong], &on(&w, "a")), &[], 3);
    assert_eq!(error["code"], "wrong-key", "{error}");
    let status = w.ok(&args(&["status"], &on(&w, "a")), &[]);
    assert_eq!(status["mode"], "key");
    assert_eq!(status["keyId"], enabled["keyId"], "a wrong key changes nothing");
    let report = w.ok(&args(&["restore", "--to", "a.db", "--key", &key], &on(&w, "a")), &[]);
    assert_eq!(report["mode"], "key", "{report}");
    assert_eq!(report["keyChanged"], false, "{report}");
    assert_eq!(fs::read(w.path("a.db")).unwrap(), original);
    w.ok(&args(&["backup", "chats.db"], &on(&w, "a")), &[]);

    // Phone B shares the key; A rotates it; B's backup is refused until B restores in place
    // with the new digits, and then a fresh device restores B's newest backup.
    w.ok(&args(&["restore", "--to", "b.db", "--key", &key], &phone(&w, "b", &store)), &[]);
    let new_key =
        w.ok(&args(&["rotate-key"], &on(&w, "a")), &[])["key"].as_str().unwrap().to_owned();
    w.fails(&args(&["backup", "chats.db"], &on(&w, "b")), &[], 9);
    let restore = args(&["restore", "--to", "b.db", "--force", "--key", &new_key], &on(&w, "b"));
    let report = w.ok(&restore, &[]);
    assert_eq!(report["keyChanged"], true, "{report}");
    let object = w.ok(&args(&["backup", "chats.db"], &on(&w, "b")), &[])["object"].clone();
    let restore = args(&["restore", "--to", "c.db", "--key", &new_key], &phone(&w, "c", &store));
    let report = w.ok(&restore, &[]);
    assert_eq!(report["object"], object, "the fresh device restores B's backup");
    assert_eq!(report["skippedOtherKey"], 0, "{report}");

    // Password mode: in place with the password; after a rotation elsewhere, the vault gives
    // the new key.
    let vault = Vault::start(3, 300);
    let url = vault.url();
    let pstore = w.path("pstore").to_string_lossy().into_owned();
    let pw = w.write("pw", "a fine password");
    enable_with_password(&w, &vault, &url, "p", &pstore, &pw);
    w.ok(&args(&["backup", "chats.db"], &on(&w, "p")), &[]);
    let in_place = |name: &str, to: &str| {
        args(&["restore", "--to", to, "--force", "--password-file", &pw], &on(&w, name))
    };
    let report = w.ok(&in_place("p", "p.db"), &[]);
    assert_eq!(report["mode"], "password", "{report}");
    assert_eq!(fs::read(w.path("p.db")).unwrap(), original);
    let mut restore =
        args(&["restore", "--to", "q.db", "--password-file", &pw], &phone(&w, "q", &pstore));
    restore.extend(setup(&vault, &url).map(String::from));
    w.ok(&restore, &[]);
    w.ok(&args(&["rotate-key", "--password-file", &pw], &on(&w, "p")), &[]);
    w.fails(&args(&["backup", "chats.db"], &on(&w, "q")), &[], 9);
    let report = w.ok(&in_place("q", "q.db"), &[]);
    assert_eq!(report["keyChanged"], true, "{report}");
    let object = w.ok(&args(&["backup", "chats.db"], &on(&w, "q")), &[])["object"].clone();
    let mut restore =
        args(&["restore", "--to", "r.db", "--password-file", &pw], &phone(&w, "r", &pstore));
    restore.extend(setup(&vault, &url).map(String::from));
    assert_eq!(w.ok(&restore, &[])["object"], object);
}

/// `backup -` reads standard input (issue 11): named `stdin`, restored byte for byte on a new
/// device; an empty standard input is refused before anything is stored, like an empty file.
#[test]
fn backup_reads_standard_input_and_refuses_an_empty_one() {
    let w = World::new();
    let store = w.path("store").to_string_lossy().into_owned();
    let key = enable_with_key(&w, "phone", &store);
    let backup_stdin = |input: &[u8]| {
        w.run_with_input(&args(&["backup", "-"], &on(&w, "phone")), &[], Some(input))
    };

    let empty = backup_stdin(b"");
    assert_eq!(empty.status.code(), Some(2), "{}", String::from_utf8_lossy(&empty.stdout));
    assert_eq!(json_of(&empty)["error"]["code"], "empty-backup");
    assert!(json_of(&empty)["error"]["message"].as_str().unwrap().contains("standard input"));
    assert_eq!(w.objects(), 0);

    let chats = fs::read(w.path("chats.db")).unwrap();
    let out = backup_stdin(&chats);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json_of(&out);
    assert_eq!(report["name"], "stdin");
    assert_eq!(report["plaintextBytes"].as_u64(), Some(chats.len() as u64));
    assert_eq!(w.objects(), 1);

    w.ok(&args(&["restore", "--to", "piped.db", "--key", &key], &phone(&w, "new", &store)), &[]);
    assert_eq!(fs::read(w.path("piped.db")).unwrap(), chats);
}

/// Issue 11: `restore --to -` writes the backup to standard output (the JSON report goes to
/// standard error then); the client directory is saved only when the whole backup arrived, and
/// a failed one writes nothing there and keeps nothing.
#[test]
fn restore_to_standard_output_streams_the_backup_and_saves_only_on_success() {
    let w = World::new();
    let store = w.path("store").to_string_lossy().into_owned();
    let key = enable_with_key(&w, "phone", &store);
    w.ok(&args(&["backup", "chats.db"], &on(&w, "phone")), &[]);
    let chats = fs::read(w.path("chats.db")).unwrap();

    let out =
        w.run(&args(&["restore", "--to", "-", "--key", &key], &phone(&w, "new", &store)), &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout == chats, "standard output holds exactly the backup");
    let report: Value = serde_json::from_slice(&out.stderr).expect("the report is on stderr");
    assert_eq!(report["plaintextBytes"].as_u64(), Some(chats.len() as u64));
    assert_eq!(report["mode"], "key");
    assert!(!w.path("-").exists(), "no file named -");
    assert_eq!(w.ok(&args(&["status"], &on(&w, "new")), &[])["mode"], "key");

    let wrong = "0".repeat(64);
    let out =
        w.run(&args(&["restore", "--to", "-", "--key", &wrong], &phone(&w, "x", &store)), &[]);
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty(), "nothing reaches standard output from another key");
    let report: Value = serde_json::from_slice(&out.stderr).expect("the error is on stderr");
    assert_eq!(report["error"]["code"], "wrong-key");
    assert!(!w.path("x").exists(), "a failed first restore keeps no client directory");
}

/// Issue 11: without --json, the journeys' status lines go to standard error and --quiet drops
/// them, while results (`status`) go to standard output.
#[test]
fn journey_status_lines_go_to_standard_error_and_quiet_drops_them() {
    let w = World::new();
    let store = w.path("store").to_string_lossy().into_owned();
    let key = enable_with_key(&w, "phone", &store);
    let text = |args: &[String]| {
        let out = Command::new(env!("CARGO_BIN_EXE_e2ee-backup"))
            .current_dir(w.root.path())
            .args(args)
            .env("XDG_DATA_HOME", w.root.path().join("xdg"))
            .output()
            .expect("the binary runs");
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        (text(&out.stdout), text(&out.stderr))
    };
    let (stdout, stderr) = text(&args(&["backup", "chats.db"], &on(&w, "phone")));
    assert!(stdout.is_empty() && stderr.contains("backed up"), "{stdout:?} {stderr:?}");
    let (stdout, stderr) = text(&args(&["backup", "chats.db", "--quiet"], &on(&w, "phone")));
    assert!(stdout.is_empty() && stderr.is_empty(), "{stdout:?} {stderr:?}");
    let restore = args(&["restore", "--to", "b.db", "--key", &key], &phone(&w, "b", &store));
    let (stdout, stderr) = text(&restore);
    assert!(stdout.is_empty() && stderr.contains("restored"), "{stdout:?} {stderr:?}");
    let (stdout, stderr) = text(&args(&["status", "-q"], &on(&w, "b")));
    assert!(stdout.contains("key") && stderr.is_empty(), "{stdout:?} {stderr:?}");
}
