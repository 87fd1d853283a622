//! Replays the fuzz seed corpora, `fuzz/corpus/<target>/`, through the fuzz target bodies on
//! stable Rust: every input the fuzzers start from must keep passing their checks, even where
//! no nightly toolchain runs the fuzzers themselves.

use std::fs;
use std::panic::catch_unwind;
use std::path::PathBuf;

use e2ee_backup_format::decrypt_to_vec;
use e2ee_backup_kdf::BackupKey;
use e2ee_backup_vectors::fuzz_targets::{self, FUZZ_KEY, seed_files};

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

/// Runs `target` on every file of its corpus, naming the file that fails; returns how many
/// files it ran.
fn replay(name: &str, target: fn(&[u8])) -> usize {
    let dir = corpus(name);
    let mut paths: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| entry.expect("readable directory").path())
        .collect();
    paths.sort();
    for path in &paths {
        let data = fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if catch_unwind(|| target(&data)).is_err() {
            panic!("{name}: corpus file {} fails", path.display());
        }
    }
    assert!(!paths.is_empty(), "corpus {} is empty", dir.display());
    println!("{name}: replayed {} corpus files", paths.len());
    paths.len()
}

#[test]
fn key_digits_corpus() {
    replay("key_digits", fuzz_targets::key_digits);
}

#[test]
fn header_corpus() {
    replay("header", fuzz_targets::header);
}

#[test]
fn metadata_corpus() {
    replay("metadata", fuzz_targets::metadata);
}

#[test]
fn decrypting_reader_corpus() {
    replay("decrypting_reader", fuzz_targets::decrypting_reader);
    for (_, file) in seed_files() {
        fuzz_targets::decrypting_reader(&file);
    }
}

#[test]
fn mutated_backup_corpus() {
    replay("mutated_backup", fuzz_targets::mutated_backup);
}

/// The committed seed files are the ones `seed_files` makes today, up to the compressor's
/// output: each is there and decrypts to the same payload. Otherwise the fuzzer would start
/// from files that stop at the header MAC.
#[test]
fn committed_seed_files_are_current() {
    let key = BackupKey::from_bytes(FUZZ_KEY);
    for (name, file) in seed_files() {
        let path = corpus("decrypting_reader").join(&name);
        let committed = fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; run `cargo test -p e2ee-backup-vectors --test fuzz_corpus -- --ignored`",
                path.display()
            )
        });
        let decrypt = |bytes: &[u8]| decrypt_to_vec(&key, bytes).map(|(_, plaintext)| plaintext);
        assert_eq!(decrypt(&committed), decrypt(&file), "{name} is stale");
    }
}

/// Writes the seed files into the decrypting_reader corpus.
#[test]
#[ignore = "writes into fuzz/corpus; run by hand when seed_files changes"]
fn write_seed_files() {
    for (name, file) in seed_files() {
        fs::write(corpus("decrypting_reader").join(name), file).expect("corpus is writable");
    }
}
