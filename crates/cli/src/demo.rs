//! `e2ee-backup demo`: the key-mode journey on a sample chat database, end to end (spec 5.2 and
//! 5.3 in key mode, 5.5 to restore).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use e2ee_backup_kdf::schedule::KeyId;
use e2ee_backup_kdf::{BackupKey, digits};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use e2ee_backup_client::{Client, Error as ClientError, FleetPin, Options, Setup, Source};
use e2ee_backup_vault_server::files::PIN_FILE;
use e2ee_backup_vault_server::{BackgroundServer, InitOptions, KsfName, ServerConfig};

use crate::commands::{self, EncryptArgs};
use crate::failure::Failure;
use crate::output::{Report, rate};

pub fn run(size_mib: u64, dir: Option<&Path>, json: bool) -> Result<Report, Failure> {
    if size_mib == 0 {
        return Err(Failure::usage("invalid-size", "--size-mib must be at least 1"));
    }
    let temp;
    let kept = dir.is_some();
    let dir: PathBuf = match dir {
        Some(dir) => {
            fs::create_dir_all(dir)
                .map_err(|e| Failure::io(&format!("cannot create {}", dir.display()), e))?;
            dir.to_owned()
        }
        None => {
            temp = tempfile::tempdir()
                .map_err(|e| Failure::io("cannot create a temporary directory", e))?;
            temp.path().to_owned()
        }
    };
    // Each step is printed as it completes (unless the output is JSON) and recorded for the
    // JSON report.
    let mut steps = Vec::new();
    let mut say = |line: String, step: Value| {
        if !json {
            println!("{line}");
        }
        steps.push(step);
    };

    let key = BackupKey::generate();
    let shown = digits::to_display(&key);
    say(
        format!(
            "1. generated a backup key: {} ... {} (key id {})",
            &shown[..9],
            &shown[shown.len() - 9..],
            hex::encode(KeyId::of(&key).0)
        ),
        json!({ "step": "keygen", "keyId": hex::encode(KeyId::of(&key).0) }),
    );

    let database = dir.join("msgstore.db");
    let started = Instant::now();
    let digest = write_sample_database(&database, size_mib << 20)?;
    say(
        format!("2. wrote a sample chat database of {size_mib} MiB in {:.2?}", started.elapsed()),
        json!({ "step": "sample", "bytes": size_mib << 20 }),
    );

    for (n, compress) in [(3, true), (4, false)] {
        let name = if compress { "msgstore.db.zstd.e2ee" } else { "msgstore.db.e2ee" };
        let backup = dir.join(name);
        let report = commands::encrypt(EncryptArgs {
            input: &database,
            output: &backup,
            key: Ok(Some(key.clone())),
            compress,
            chunk_size_log2: 16,
            fields: vec![("app".to_owned(), "e2ee-backup demo".to_owned())],
            force: true,
        })?;
        let (plain, file) = (
            report.json["plaintextBytes"].as_u64().unwrap_or(0),
            report.json["fileBytes"].as_u64().unwrap_or(0),
        );
        let seconds = report.json["seconds"].as_f64().unwrap_or(0.0);
        say(
            format!(
                "{n}. encrypted it {} into {name}: {file} bytes ({:.1}% of the original) in {seconds:.2} s, {}",
                if compress { "with zstd" } else { "without compression" },
                100.0 * file as f64 / plain as f64,
                rate(plain, std::time::Duration::from_secs_f64(seconds)),
            ),
            json!({ "step": "encrypt", "compressed": compress, "fileBytes": file, "seconds": seconds }),
        );
        let mut hasher = HashingSink(Sha256::new());
        let (_, restored, elapsed) = commands::restore(&backup, &key, &mut hasher)?;
        let same = hasher.0.finalize()[..] == digest[..];
        if !same {
            return Err(Failure::other(
                "demo-mismatch",
                "the restored data differs from the original",
            ));
        }
        say(
            format!(
                "   restored and verified it: {restored} bytes, SHA-256 equal to the original, in {elapsed:.2?}, {}",
                rate(restored, elapsed)
            ),
            json!({ "step": "decrypt", "compressed": compress, "bytes": restored, "seconds": elapsed.as_secs_f64(), "verified": same }),
        );
    }

    let backup = dir.join("msgstore.db.e2ee");
    let damaged = dir.join("damaged.e2ee");
    fs::copy(&backup, &damaged).map_err(|e| Failure::io("cannot copy the backup", e))?;
    let len = fs::metadata(&damaged).map(|m| m.len()).unwrap_or(0);
    flip_byte(&damaged, len / 2).map_err(|e| Failure::io("cannot modify the copy", e))?;
    let caught = expect_rejection(&damaged, &key)?;
    say(
        format!("5. flipped one bit in the middle of a copy: rejected ({caught})"),
        json!({ "step": "bit-flip", "error": caught }),
    );
    File::options()
        .write(true)
        .open(&damaged)
        .and_then(|f| f.set_len(len - 1000))
        .map_err(|e| Failure::io("cannot truncate the copy", e))?;
    // Undo the bit flip, so the missing tail is the only damage.
    flip_byte(&damaged, len / 2).map_err(|e| Failure::io("cannot modify the copy", e))?;
    let caught = expect_rejection(&damaged, &key)?;
    say(
        format!("6. cut the last 1000 bytes off the copy: rejected ({caught})"),
        json!({ "step": "truncation", "error": caught }),
    );
    let caught = expect_rejection(&backup, &BackupKey::generate())?;
    say(
        format!("7. opened the intact backup with another key: rejected ({caught})"),
        json!({ "step": "wrong-key", "error": caught }),
    );

    let started = Instant::now();
    password_journey(&dir, &database, &digest, size_mib, &mut say)?;
    say(
        format!("   the password journey took {:.2?} in all", started.elapsed()),
        json!({ "step": "password-journey", "seconds": started.elapsed().as_secs_f64() }),
    );

    let done = format!(
        "demo complete: every step behaved as the format and the vault promise (files in {})",
        if kept {
            dir.display().to_string()
        } else {
            "a temporary directory, now removed".to_owned()
        }
    );
    Ok(Report {
        lines: vec![done],
        json: json!({ "directory": dir, "kept": kept, "steps": steps }),
    })
}

/// Guesses a vault of the demo allows per account before it destroys the key.
const DEMO_BUDGET: u8 = 3;
/// Seconds a login session of the demo vault lives: a wrong guess stays "in flight" this long,
/// and the account locks only after. Real vaults: 300.
const DEMO_SESSION_SECONDS: u64 = 1;

/// The password journey: a vault on loopback, phones as client directories, the real HTTP
/// transport between them.
fn password_journey(
    dir: &Path,
    sample: &Path,
    digest: &[u8; 32],
    size_mib: u64,
    say: &mut dyn FnMut(String, Value),
) -> Result<(), Failure> {
    let mut say = |line: String, step: Value| say(wrap(&line, 100), step);
    let work = dir.join("password-journey");
    if work.exists() {
        fs::remove_dir_all(&work)
            .map_err(|e| Failure::io(&format!("cannot clear {}", work.display()), e))?;
    }
    let vault_dir = work.join("vault");
    let started = Instant::now();
    let mut init = InitOptions::new(&vault_dir, "demo.fleet");
    init.ksf = KsfName::Fast;
    init.budget = DEMO_BUDGET;
    e2ee_backup_vault_server::init(&init)
        .map_err(|e| Failure::other("demo-vault", format!("cannot set up the demo vault: {e}")))?;
    let mut config = ServerConfig::from_data_dir(&vault_dir, None)
        .map_err(|e| Failure::other("demo-vault", format!("cannot read the demo vault: {e}")))?;
    config.listen = ([127, 0, 0, 1], 0).into();
    config.policy.session_lifetime = DEMO_SESSION_SECONDS;
    let server = BackgroundServer::start(config)
        .map_err(|e| Failure::other("demo-vault", format!("cannot start the demo vault: {e}")))?;
    let url = server.url();
    say(
        format!(
            "8. started a vault at {url} in {:.2?}: new fleet keys, a signed key bundle, and \
             the pin clients check it against (in-process, on loopback; for speed it \
             stretches passwords with the FAST profile, Argon2id 256 KiB 1 pass, and ends \
             logins after {DEMO_SESSION_SECONDS} s; a real vault uses the mobile profile, \
             Argon2id 16 MiB 32 passes, and 5-minute sessions; budget {DEMO_BUDGET} wrong \
             guesses)",
            started.elapsed()
        ),
        json!({ "step": "vault", "url": url, "ksf": "fast", "budget": DEMO_BUDGET }),
    );
    let pin_text = fs::read_to_string(vault_dir.join(PIN_FILE))
        .map_err(|e| Failure::io("cannot read the demo vault's pin", e))?;
    let pin = FleetPin::parse(&pin_text)?;
    // One backup store per account, as each phone's cloud folder would be: a backup refuses a
    // store whose newest backup is under a key it does not hold (spec 5.6.3).
    let phone = |name: &str, account: &str| -> Result<Client, Failure> {
        let store = work.join("cloud").join(account).to_string_lossy().into_owned();
        let setup =
            Setup { account: account.to_owned(), store, vault: Some((url.clone(), pin.clone())) };
        // The demo vault uses the fast profile, which a client accepts only when told to.
        let options = Options { accept_fast_ksf: true, ..Options::default() };
        Ok(Client::create(&work.join(name), setup, options)?)
    };
    let (account, password, new_password) =
        ("+15550000001", "correct horse battery staple", "staple battery horse correct");

    let mut a = phone("phone-a", account)?;
    let started = Instant::now();
    a.enable_with_password(password)?;
    say(
        format!(
            "9. phone A turned backups on with a password in {:.2?}: verified the vault's key \
             bundle against the pin, registered with OPAQUE (the vault never sees the \
             password), and the vault sealed the backup key",
            started.elapsed()
        ),
        json!({ "step": "enable-password", "seconds": started.elapsed().as_secs_f64() }),
    );
    let started = Instant::now();
    let info = a.create_backup(Source::Path(sample), "msgstore.db")?;
    let elapsed = started.elapsed();
    say(
        format!(
            "10. phone A backed up the {size_mib} MiB sample: {} bytes (zstd, encrypted) \
             uploaded to the backup store in {elapsed:.2?}, {}",
            info.size,
            rate(size_mib << 20, elapsed)
        ),
        json!({ "step": "backup", "objectBytes": info.size, "seconds": elapsed.as_secs_f64() }),
    );

    let mut b = phone("phone-b", account)?;
    let target = work.join("restored-b.db");
    let started = Instant::now();
    let caught = expect_wrong_password(b.restore_with_password("Tr0ub4dor&3", &target))?;
    say(
        format!(
            "11. phone B, a new device, typed a wrong password: refused in {:.2?}, {caught}",
            started.elapsed()
        ),
        json!({ "step": "wrong-password", "error": "wrong-password" }),
    );
    let started = Instant::now();
    let report = b.restore_with_password(password, &target)?;
    let elapsed = started.elapsed();
    verify_file(&target, digest)?;
    say(
        format!(
            "12. phone B restored with the password: {} bytes, SHA-256 equal to the original, \
             in {elapsed:.2?}, {}",
            report.bytes,
            rate(report.bytes, elapsed)
        ),
        json!({ "step": "restore-password", "bytes": report.bytes, "seconds": elapsed.as_secs_f64(), "verified": true }),
    );
    let started = Instant::now();
    b.change_password(password, new_password)?;
    say(
        format!(
            "13. phone B changed the password in {:.2?} (same backup key, nothing re-uploaded)",
            started.elapsed()
        ),
        json!({ "step": "change-password", "seconds": started.elapsed().as_secs_f64() }),
    );
    let mut c = phone("phone-c", account)?;
    let target = work.join("restored-c.db");
    let old_refused = expect_wrong_password(c.restore_with_password(password, &target))?;
    let started = Instant::now();
    let report = c.restore_with_password(new_password, &target)?;
    let elapsed = started.elapsed();
    verify_file(&target, digest)?;
    say(
        format!(
            "14. phone C, another new device: the old password is refused ({old_refused}); the new one restores {} bytes, SHA-256 equal to the original, in {elapsed:.2?}",
            report.bytes
        ),
        json!({ "step": "restore-new-password", "error": "wrong-password", "bytes": report.bytes, "seconds": elapsed.as_secs_f64(), "verified": true }),
    );

    // Lockout, on an account of its own.
    let victim = "+15550000002";
    let mut owner = phone("phone-d", victim)?;
    owner.enable_with_password("the owner's password")?;
    owner.create_backup(Source::Bytes(b"the victim's chats"), "msgstore.db")?;
    let mut thief = phone("phone-e", victim)?;
    let target = work.join("stolen.db");
    let started = Instant::now();
    let mut left = Vec::new();
    loop {
        match thief.restore_with_password(&format!("guess {}", left.len()), &target) {
            Err(ClientError::WrongPassword { remaining }) => {
                left.push(remaining);
                if remaining == 0 {
                    break;
                }
            }
            other => return Err(unexpected("a wrong password", other)),
        }
    }
    // The last guesses are still in flight: the vault refuses without a verdict until their
    // sessions end, then the next attempt locks the account.
    let waiting = Instant::now();
    let mut waits = 0;
    loop {
        match thief.restore_with_password("one more guess", &target) {
            Err(ClientError::AttemptsExhausted) if waits < 100 => {
                waits += 1;
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            Err(ClientError::LockedOut) => break,
            other => return Err(unexpected("a lockout", other)),
        }
    }
    let waited = waiting.elapsed();
    let mut fresh = phone("phone-f", victim)?;
    let right = fresh.restore_with_password("the owner's password", &work.join("f.db"));
    if !matches!(right, Err(ClientError::LockedOut)) {
        return Err(unexpected("a lockout", right));
    }
    say(
        format!(
            "15. another account, a thief's phone: {} wrong guesses (attempts left: {left:?}); the vault withheld its verdict until those logins ended ({waited:.2?}), then \
             locked the account for good and destroyed its copy of the key: even the \
             right password is refused now (locked-out); {:.2?} in all",
            left.len(),
            started.elapsed()
        ),
        json!({ "step": "lockout", "error": "locked-out", "attemptsLeft": left, "seconds": started.elapsed().as_secs_f64() }),
    );
    server
        .shutdown()
        .map_err(|e| Failure::other("demo-vault", format!("the demo vault failed: {e}")))
}

/// `text` broken at spaces into lines of at most `width` columns, the later ones indented to
/// follow a step number.
fn wrap(text: &str, width: usize) -> String {
    let mut out = String::new();
    let mut column = 0;
    for word in text.split_whitespace() {
        if column > 0 && column + 1 + word.len() > width {
            out.push_str("\n   ");
            column = 3;
        } else if column > 0 {
            out.push(' ');
            column += 1;
        }
        out.push_str(word);
        column += word.chars().count();
    }
    out
}

fn expect_wrong_password<T>(result: Result<T, ClientError>) -> Result<String, Failure> {
    match result {
        Err(ClientError::WrongPassword { remaining }) => {
            Ok(format!("wrong-password, {remaining} attempts left"))
        }
        other => Err(unexpected("a wrong password", other)),
    }
}

fn unexpected<T>(expected: &str, got: Result<T, ClientError>) -> Failure {
    match got {
        Ok(_) => Failure::other("demo-undetected", format!("expected {expected}, got success")),
        Err(err) => {
            let mut failure = Failure::from(err);
            failure.message = format!("expected {expected}, got: {}", failure.message);
            failure
        }
    }
}

fn verify_file(path: &Path, digest: &[u8; 32]) -> Result<(), Failure> {
    let mut hasher = HashingSink(Sha256::new());
    let mut file =
        File::open(path).map_err(|e| Failure::io(&format!("cannot open {}", path.display()), e))?;
    io::copy(&mut file, &mut hasher)
        .map_err(|e| Failure::io(&format!("cannot read {}", path.display()), e))?;
    if hasher.0.finalize()[..] != digest[..] {
        return Err(Failure::other("demo-mismatch", "the restored data differs from the original"));
    }
    Ok(())
}

/// Restores `path` expecting failure; returns the error code that caught the damage.
fn expect_rejection(path: &Path, key: &BackupKey) -> Result<String, Failure> {
    match commands::restore(path, key, &mut io::sink()) {
        Ok(_) => Err(Failure::other("demo-undetected", format!("{} was accepted", path.display()))),
        Err(failure) => Ok(failure.code.to_owned()),
    }
}

fn flip_byte(path: &Path, offset: u64) -> io::Result<()> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let mut byte = [0u8; 1];
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(&mut byte)?;
    byte[0] ^= 0x01;
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(&byte)
}

/// A sink that only hashes.
struct HashingSink(Sha256);

impl Write for HashingSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.0.update(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes `len` bytes that look like a chat database: mostly short text messages with
/// account ids and timestamps, and now and then a block of incompressible media thumbnail.
/// Returns the SHA-256 of what was written.
fn write_sample_database(path: &Path, len: u64) -> Result<[u8; 32], Failure> {
    const WORDS: &[&str] = &[
        "ok", "see", "you", "at", "8pm", "the", "photo", "is", "lovely", "thanks", "on", "my",
        "way", "call", "me", "later", "happy", "birthday", "did", "get", "tickets", "yes", "no",
        "maybe", "tomorrow",
    ];
    let file = File::create(path)
        .map_err(|e| Failure::io(&format!("cannot create {}", path.display()), e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut hasher = Sha256::new();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut written = 0u64;
    let mut row = Vec::with_capacity(8192);
    let mut id = 0u64;
    while written < len {
        row.clear();
        id += 1;
        if rng.next().is_multiple_of(400) {
            row.extend((0..4096).map(|_| rng.next() as u8));
        } else {
            let _ = write!(
                row,
                "{id}|{}@s.whatsapp.net|{}|",
                447_700_000_000 + rng.next() % 1_000_000,
                1_760_000_000 + id * 37
            );
            for _ in 0..3 + rng.next() % 20 {
                row.extend_from_slice(WORDS[(rng.next() % WORDS.len() as u64) as usize].as_bytes());
                row.push(b' ');
            }
            row.push(b'\n');
        }
        let take = row.len().min((len - written) as usize);
        hasher.update(&row[..take]);
        out.write_all(&row[..take])
            .map_err(|e| Failure::io("cannot write the sample database", e))?;
        written += take as u64;
    }
    out.flush().map_err(|e| Failure::io("cannot write the sample database", e))?;
    Ok(hasher.finalize().into())
}

/// xorshift64*: enough to make sample data, not for anything secret.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}
