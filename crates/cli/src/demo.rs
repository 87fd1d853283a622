//! `e2ee-backup demo`: the key-mode journey on a sample chat database, end to end.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use e2ee_backup_kdf::schedule::KeyId;
use e2ee_backup_kdf::{BackupKey, digits};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

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

    let done = format!(
        "demo complete: every step behaved as the format promises (files in {})",
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
