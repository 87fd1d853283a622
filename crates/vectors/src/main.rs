//! `e2ee-backup-vectors`: writes or checks the published test vectors, or runs them against
//! another implementation (the test-vector conventions of `spec/README.md`).
//!
//! ```text
//! e2ee-backup-vectors generate [DIR]   write every vector file into DIR (default test-vectors)
//! e2ee-backup-vectors check [DIR]      fail unless DIR holds exactly what generate would write,
//!                                      and every case decrypts or is rejected as it says
//! e2ee-backup-vectors export OUT [DIR]   write each case of DIR as its own file under OUT
//!                                      (OUT/<family>/<tcId>-<result>.json)
//! e2ee-backup-vectors run --adapter CMD [--only FAMILY,...] [--timeout SECS]
//!                         [--max-answer BYTES] [DIR]
//!                                      drive the adapter CMD (run by the shell) through the
//!                                      stateless families of DIR; exit 1 if any case fails
//! ```
//!
//! The hidden `adapter` subcommand is the reference adapter: it answers the runner's requests
//! on stdin/stdout with this workspace's crates.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use e2ee_backup_vectors::runner::{self, RunOptions};

const USAGE: &str = "usage: e2ee-backup-vectors generate|check [DIR]
       e2ee-backup-vectors export OUT [DIR]
       e2ee-backup-vectors run --adapter CMD [--only FAMILY,...] [--timeout SECS] [--max-answer BYTES] [DIR]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("generate") => {
            let dir = dir_arg(args.get(1));
            e2ee_backup_vectors::write_all(&dir).map(|n| {
                println!("wrote {n} files into {}", dir.display());
            })
        }
        Some("check") => {
            let dir = dir_arg(args.get(1));
            e2ee_backup_vectors::check_dir(&dir).map(|n| {
                println!(
                    "{} matches the generator ({n} files) and every case verifies",
                    dir.display()
                );
            })
        }
        Some("export") => match args.get(1) {
            Some(out) => {
                let dir = dir_arg(args.get(2));
                e2ee_backup_vectors::export::export(&dir, std::path::Path::new(out)).map(|n| {
                    println!("wrote {n} cases, one file each, into {out}");
                })
            }
            None => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        },
        Some("run") => return run(&args[1..]),
        Some("adapter") => {
            let stdin = std::io::stdin().lock();
            let stdout = std::io::stdout().lock();
            e2ee_backup_vectors::adapter::serve(stdin, stdout).map_err(|e| e.to_string())
        }
        _ => {
            eprintln!("{USAGE}");
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

fn dir_arg(arg: Option<&String>) -> PathBuf {
    PathBuf::from(arg.map_or("test-vectors", String::as_str))
}

/// `run`: exit 0 if every case passes, 1 if any fails, 2 if the run cannot be made.
fn run(args: &[String]) -> ExitCode {
    match parse_run(args) {
        Ok((dir, options)) => {
            let mut stdout = std::io::stdout().lock();
            match runner::run(&dir, &options, &mut stdout) {
                Ok(summary) if summary.failed.is_empty() => ExitCode::SUCCESS,
                Ok(_) => ExitCode::FAILURE,
                Err(err) => {
                    eprintln!("error: {err}");
                    ExitCode::from(2)
                }
            }
        }
        Err(err) => {
            eprintln!("error: {err}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn parse_run(args: &[String]) -> Result<(PathBuf, RunOptions), String> {
    let mut adapter = None;
    let mut only = None;
    let mut timeout = runner::DEFAULT_TIMEOUT;
    let mut max_answer = runner::DEFAULT_MAX_ANSWER;
    let mut dir = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().cloned().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--adapter" => adapter = Some(value("--adapter")?),
            "--only" => only = Some(value("--only")?),
            "--timeout" => {
                let secs: f64 = value("--timeout")?
                    .parse()
                    .map_err(|_| "--timeout takes a number of seconds")?;
                if !(secs > 0.0 && secs < 1e6) {
                    return Err("--timeout must be positive".into());
                }
                timeout = Duration::from_secs_f64(secs);
            }
            "--max-answer" => {
                max_answer = value("--max-answer")?
                    .parse()
                    .map_err(|_| "--max-answer takes a number of bytes")?;
            }
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            path if dir.is_none() => dir = Some(PathBuf::from(path)),
            extra => return Err(format!("unexpected argument {extra}")),
        }
    }
    let mut options = RunOptions::new(adapter.ok_or("run needs --adapter CMD")?);
    if let Some(list) = only {
        options.only(&list)?;
    }
    options.timeout = timeout;
    options.max_answer = max_answer;
    Ok((dir.unwrap_or_else(|| PathBuf::from("test-vectors")), options))
}
