#![no_main]

libfuzzer_sys::fuzz_target!(|data| e2ee_backup_vectors::fuzz_targets::crypt15_header(data));
