//! Replays the fuzz seed corpora, `fuzz/corpus/<target>/`, through the fuzz target bodies on
//! stable Rust: every input the fuzzers start from must keep passing their checks, even where
//! no nightly toolchain runs the fuzzers themselves.

use std::fs;
use std::panic::catch_unwind;
use std::path::PathBuf;

use e2ee_backup_crypt15 as c15;
use e2ee_backup_format::decrypt_to_vec;
use e2ee_backup_kdf::BackupKey;
use e2ee_backup_vectors::fuzz_targets::{
    self, FUZZ_KEY, VAULT_TARGETS, crypt15_seed_files, seed_files, vault_seed_corpus,
};

fn corpus(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus").join(target)
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

#[test]
fn crypt15_header_corpus() {
    replay("crypt15_header", fuzz_targets::crypt15_header);
    for (_, input) in crypt15_corpus("crypt15_header") {
        fuzz_targets::crypt15_header(&input);
    }
}

#[test]
fn crypt15_keyfile_corpus() {
    replay("crypt15_keyfile", fuzz_targets::crypt15_keyfile);
}

#[test]
fn crypt15_decrypt_corpus() {
    replay("crypt15_decrypt", fuzz_targets::crypt15_decrypt);
    let key = BackupKey::from_bytes(FUZZ_KEY);
    for (name, file) in crypt15_seed_files() {
        fuzz_targets::crypt15_decrypt(&file);
        let outcome = c15::decrypt_to_vec(&key, &file).map(|_| ());
        let expected = if name.ends_with("-without-md5") { Err("truncated") } else { Ok(()) };
        assert_eq!(outcome.map_err(|e| e.code()), expected, "{name}");
    }
}

/// The crypt15 corpora as the generator below makes them: the seed files (and their
/// headers, and damaged copies), and key files.
fn crypt15_corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let seeds = crypt15_seed_files();
    let mut out = Vec::new();
    match target {
        "crypt15_decrypt" => {
            out.extend(seeds.iter().cloned());
            let text = &seeds[2].1;
            let mut md5 = text.clone();
            *md5.last_mut().expect("not empty") ^= 1;
            out.push(("changed-md5".into(), md5));
            let mut tag = text.clone();
            let at = text.len() - c15::MD5_LEN - 1;
            tag[at] ^= 1;
            out.push(("changed-tag".into(), tag));
            let other = BackupKey::from_bytes([0x24; 32]);
            let header = c15::FileHeader::parse(text).expect("a seed header");
            let wrong = c15::encrypt_to_vec(&other, &header, c15::Content::default(), b"other key")
                .expect("encrypts");
            out.push(("other-key".into(), wrong));
            let multi = &seeds[5].1;
            out.push(("multi-cut".into(), multi[..multi.len() - 1].to_vec()));
            out.push(("header-only".into(), text[..header.len()].to_vec()));
            out.push(("empty".into(), Vec::new()));
            out.push(("foreign".into(), b"SQLite format 3\0".to_vec()));
        }
        "crypt15_header" => {
            for (name, file) in &seeds {
                let header = c15::FileHeader::parse(file).expect("a seed header");
                out.push((format!("{name}-header"), header.to_bytes()));
            }
            // A two-byte varint length followed by a flag byte: read, though no framing writes
            // it (found by the fuzzer).
            let mut long = c15::FileHeader::parse(&seeds[4].1).expect("a seed header").to_bytes();
            assert!(long[0] >= 0x80 && long[1] == 0x01 && long[2] == 0x08);
            long.insert(2, 0x01);
            out.push(("varint-length-and-flag".into(), long));
            let minimal = c15::FileHeader::parse(&seeds[0].1).expect("a seed header").to_bytes();
            let mut overlong = vec![minimal[0] | 0x80, 0x00];
            overlong.extend_from_slice(&minimal[1..]);
            out.push(("overlong-length".into(), overlong));
            let mut crypt14 = minimal.clone();
            crypt14[3] = 0x12;
            out.push(("crypt14-field".into(), crypt14));
            let mut unknown = minimal.clone();
            unknown[0] += 3;
            unknown.extend_from_slice(&[0x28, 0x96, 0x01]);
            out.push(("unknown-field".into(), unknown));
            out.push(("length-only".into(), vec![0x28]));
            out.push(("length-and-flag".into(), vec![0x28, 0x01]));
            out.push(("three-byte-length".into(), vec![0xff, 0xff, 0x7f]));
            out.push(("empty".into(), Vec::new()));
        }
        "crypt15_keyfile" => {
            let key = c15::keyfile::encode(&BackupKey::from_bytes(FUZZ_KEY)).to_vec();
            out.push(("valid".into(), key.clone()));
            out.push(("header-only".into(), key[..27].to_vec()));
            let mut longer = key.clone();
            longer.push(b'\n');
            out.push(("trailing-newline".into(), longer));
            let mut magic = key.clone();
            magic[1] = 0xee;
            out.push(("wrong-magic".into(), magic));
            out.push(("hex-text".into(), hex::encode(&key[27..]).into_bytes()));
            out.push(("empty".into(), Vec::new()));
        }
        other => panic!("no crypt15 corpus {other}"),
    }
    out
}

/// The committed crypt15 corpora hold what [`crypt15_corpus`] makes today, byte for byte (the
/// C zlib the crate links is deterministic).
#[test]
fn committed_crypt15_corpora_are_current() {
    for target in ["crypt15_header", "crypt15_keyfile", "crypt15_decrypt"] {
        for (name, bytes) in crypt15_corpus(target) {
            let path = corpus(target).join(&name);
            let committed = fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; run `cargo test -p e2ee-backup-vectors --test fuzz_corpus -- --ignored`",
                    path.display()
                )
            });
            assert!(committed == bytes, "{} is stale", path.display());
        }
    }
}

/// Writes the crypt15 corpora.
#[test]
#[ignore = "writes into fuzz/corpus; run by hand when the crypt15 seeds change"]
fn write_crypt15_corpora() {
    for target in ["crypt15_header", "crypt15_keyfile", "crypt15_decrypt"] {
        let dir = corpus(target);
        fs::create_dir_all(&dir).expect("corpus directory");
        for (name, bytes) in crypt15_corpus(target) {
            fs::write(dir.join(name), bytes).expect("corpus is writable");
        }
    }
}

#[test]
fn vault_request_corpus() {
    replay("vault_request", fuzz_targets::vault_request);
}

#[test]
fn vault_response_corpus() {
    replay("vault_response", fuzz_targets::vault_response);
}

#[test]
fn vault_record_corpus() {
    replay("vault_record", fuzz_targets::vault_record);
}

#[test]
fn vault_envelope_corpus() {
    replay("vault_envelope", fuzz_targets::vault_envelope);
}

#[test]
fn vault_fleet_bundle_corpus() {
    replay("vault_fleet_bundle", fuzz_targets::vault_fleet_bundle);
}

#[test]
fn vault_command_corpus() {
    replay("vault_command", fuzz_targets::vault_command);
}

#[test]
fn vault_peer_message_corpus() {
    replay("vault_peer_message", fuzz_targets::vault_peer_message);
}

#[test]
fn vault_hsm_plaintext_corpus() {
    replay("vault_hsm_plaintext", fuzz_targets::vault_hsm_plaintext);
}

/// The vault seeds reach what they are named for: the valid ones get through every check to
/// the answer they exist for, so the fuzzer starts past the signatures, the channel and the
/// ticket.
#[test]
fn vault_seeds_reach_their_paths() {
    use e2ee_backup_vault::{AccountRecord, AccountState};
    use e2ee_backup_vault::{Request, Response};

    let seeds = |target| vault_seed_corpus(target).into_iter().collect::<Vec<_>>();
    let find = |seeds: &[(String, Vec<u8>)], name: &str| {
        seeds.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no seed {name}")).1.clone()
    };

    let requests = seeds("vault_request");
    for (name, bytes) in &requests {
        let invalid = ["token-flag-2", "trailing-byte", "ticket-too-long", "unknown-kind", "empty"];
        assert_eq!(Request::decode(bytes).is_ok(), !invalid.contains(&name.as_str()), "{name}");
    }

    let responses = seeds("vault_response");
    let kinds: Vec<u8> = responses.iter().filter_map(|(_, r)| r.first().copied()).collect();
    for kind in [0x81, 0x82, 0x83, 0x84, 0x85, 0xf0] {
        assert!(kinds.contains(&kind), "no seed answers with kind {kind:#04x}");
    }
    for (name, bytes) in responses.iter().filter(|(n, _)| n.starts_with("answer-")) {
        assert!(Response::decode(bytes).is_ok(), "{name}");
    }
    // The HSM's answers to the session's last KE3, to the password change and to the delete
    // show that those plaintext seeds get through the ticket, the KE3 and the token checks.
    let answer = |name| Response::decode(&find(&responses, name)).expect("an answer");
    assert!(matches!(
        answer("answer-fuzz-account-login-finish"),
        Response::LoginSucceeded { remaining: 3, .. }
    ));
    assert!(matches!(answer("answer-fuzz-account-change-finish"), Response::Registered { .. }));
    assert!(matches!(answer("answer-fuzz-account-delete"), Response::Deleted));

    let records = seeds("vault_record");
    for (name, state) in [
        ("registered", AccountState::Registered),
        ("phantom", AccountState::Phantom),
        ("locked", AccountState::Locked),
    ] {
        let record = AccountRecord::decode(&find(&records, name)).expect(name);
        assert_eq!(record.state, state, "{name}");
    }
    assert_eq!(records.iter().filter(|(_, r)| AccountRecord::decode(r).is_ok()).count(), 3);

    let fleet = seeds("vault_fleet_bundle");
    use e2ee_backup_vault::FleetBundle;
    assert!(FleetBundle::decode(&find(&fleet, "body")).is_ok());
    assert!(FleetBundle::decode(&find(&fleet, "body-duplicate-key-id")).is_err());

    // The peer request opens for its receiver; each changed copy is refused.
    use e2ee_backup_vault::peer::Receiver;
    let peers = seeds("vault_peer_message");
    let opens = |name| {
        let mut receiver = Receiver::new(2);
        let bytes = find(&peers, name);
        receiver.open_request(&[0x70; 32], "append", &bytes, 1_780_000_000_000, false).is_ok()
    };
    assert!(opens("request"));
    for name in ["request-other-receiver", "request-flipped-tag", "reply", "header-only", "empty"] {
        assert!(!opens(name), "{name}");
    }
}

/// The committed vault corpora hold what [`vault_seed_corpus`] makes today, byte for byte.
#[test]
fn committed_vault_corpora_are_current() {
    for target in VAULT_TARGETS {
        for (name, bytes) in vault_seed_corpus(target) {
            let path = corpus(target).join(&name);
            let committed = fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; run `cargo test -p e2ee-backup-vectors --test fuzz_corpus -- --ignored`",
                    path.display()
                )
            });
            assert!(committed == bytes, "{} is stale", path.display());
        }
    }
}

/// Writes the vault corpora.
#[test]
#[ignore = "writes into fuzz/corpus; run by hand when the vault seeds change"]
fn write_vault_corpora() {
    for target in VAULT_TARGETS {
        let dir = corpus(target);
        fs::create_dir_all(&dir).expect("corpus directory");
        for (name, bytes) in vault_seed_corpus(target) {
            fs::write(dir.join(name), bytes).expect("corpus is writable");
        }
    }
}
