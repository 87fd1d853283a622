//! `e2ee-backup`: end-to-end encrypted backups with a 64-digit key, from the command line.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod commands;
mod demo;
mod failure;
mod output;

/// End-to-end encrypted backups, protected by a 64-digit key.
///
/// A backup key is 256 random bits, written as 64 hexadecimal digits. Whoever holds it can
/// read every backup made with it; nobody else can, the storage provider included. Keep it
/// somewhere safe: without it, the backups cannot be restored.
///
/// Exit codes: 0 success, 1 I/O or other failure, 2 usage error (including a malformed key),
/// 3 wrong key, 4 the input is not a valid backup (damaged, truncated or tampered with).
#[derive(Parser)]
#[command(name = "e2ee-backup", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print one JSON object on standard output instead of text, for scripts.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a new backup key and print it as 16 groups of 4 hexadecimal digits.
    Keygen {
        /// Also write the key to FILE, readable by its owner only.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Encrypt INPUT into a backup file.
    Encrypt {
        /// The file to back up.
        input: PathBuf,
        /// Where to write the backup. Written to a temporary file first, renamed when complete.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
        /// Compress with zstd before encrypting (worth it for databases and text).
        #[arg(long)]
        compress: bool,
        /// Chunk size as a power of two, from 6 (64 bytes) to 22 (4 MiB).
        #[arg(long, value_name = "LOG2", default_value_t = 16)]
        chunk_size_log2: u8,
        /// An application field for the encrypted metadata, as NAME=VALUE. Repeatable.
        #[arg(long = "field", value_name = "NAME=VALUE", value_parser = parse_field)]
        fields: Vec<(String, String)>,
        /// Replace OUTPUT if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Decrypt a backup file. Nothing is written unless the whole backup verifies.
    Decrypt {
        /// The backup file.
        input: PathBuf,
        /// Where to write the restored data. Written to a temporary file first, renamed only
        /// once every chunk has verified.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
        /// Replace OUTPUT if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Show what a backup file's header says; with a key, also verify the whole file and
    /// show its metadata.
    Inspect {
        /// The backup file.
        input: PathBuf,
        #[command(flatten)]
        key: OptionalKeyArgs,
    },
    /// Try it all on a sample chat database: make a key, encrypt, restore, verify, and show
    /// that damage and a wrong key are caught. Needs nothing but a temporary directory.
    Demo {
        /// Size of the sample database in MiB.
        #[arg(long, value_name = "MIB", default_value_t = 256)]
        size_mib: u64,
        /// Work in DIR (kept afterwards) instead of a temporary directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// Where the backup key comes from; without either flag it is asked for at the terminal.
#[derive(Args)]
struct KeyArgs {
    /// Read the 64-digit key from FILE (as written by `keygen --out`).
    #[arg(long, value_name = "FILE", conflicts_with = "key")]
    key_file: Option<PathBuf>,
    /// The 64-digit key itself. Visible to other users of this machine in the process list:
    /// prefer --key-file or the prompt.
    #[arg(long, value_name = "DIGITS")]
    key: Option<String>,
}

/// Like [`KeyArgs`], but never prompts: without a key, only the header is shown.
#[derive(Args)]
struct OptionalKeyArgs {
    /// Read the 64-digit key from FILE.
    #[arg(long, value_name = "FILE", conflicts_with = "key")]
    key_file: Option<PathBuf>,
    /// The 64-digit key itself.
    #[arg(long, value_name = "DIGITS")]
    key: Option<String>,
}

fn parse_field(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err("expected NAME=VALUE with a non-empty NAME".to_owned()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let outcome = match cli.command {
        Command::Keygen { out, force } => commands::keygen(out.as_deref(), force),
        Command::Encrypt {
            input,
            output,
            key,
            compress,
            chunk_size_log2,
            fields,
            force,
        } => commands::encrypt(commands::EncryptArgs {
            input: &input,
            output: &output,
            key: commands::key_from(key.key_file.as_deref(), key.key.as_deref(), true),
            compress,
            chunk_size_log2,
            fields,
            force,
        }),
        Command::Decrypt {
            input,
            output,
            key,
            force,
        } => commands::decrypt(
            &input,
            &output,
            commands::key_from(key.key_file.as_deref(), key.key.as_deref(), true),
            force,
        ),
        Command::Inspect { input, key } => commands::inspect(
            &input,
            commands::key_from(key.key_file.as_deref(), key.key.as_deref(), false),
        ),
        Command::Demo { size_mib, dir } => demo::run(size_mib, dir.as_deref(), json),
    };
    match outcome {
        Ok(report) => {
            report.print(json);
            ExitCode::SUCCESS
        }
        Err(failure) => {
            failure.print(json);
            ExitCode::from(failure.exit_code())
        }
    }
}
