#![no_main]

libfuzzer_sys::fuzz_target!(|data| e2ee_backup_vectors::fuzz_targets::vault_peer_message(data));
