//! `e2ee-backup-vectors`: writes or checks the published test vectors.
//!
//! ```text
//! e2ee-backup-vectors generate [DIR]   write every vector file into DIR (default test-vectors)
//! e2ee-backup-vectors check [DIR]      fail unless DIR holds exactly what generate would write,
//!                                      and every case decrypts or is rejected as it says
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(args.get(1).map_or("test-vectors", String::as_str));
    let result = match args.first().map(String::as_str) {
        Some("generate") => e2ee_backup_vectors::write_all(&dir).map(|n| {
            println!("wrote {n} files into {}", dir.display());
        }),
        Some("check") => e2ee_backup_vectors::check_dir(&dir).map(|n| {
            println!("{} matches the generator ({n} files) and every case verifies", dir.display());
        }),
        _ => {
            eprintln!("usage: e2ee-backup-vectors generate|check [DIR]");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
