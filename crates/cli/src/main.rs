//! `e2ee-backup`: end-to-end encrypted backups with a 64-digit key, from the command line (the
//! client of spec chapter 5 over the formats of chapters 2, 3 and 6).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod commands;
mod crypt15;
mod demo;
mod failure;
mod journeys;
mod output;
mod snapshots;

/// End-to-end encrypted backups, protected by a 64-digit key or by a password and a vault.
///
/// A backup key is 256 random bits, written as 64 hexadecimal digits. Whoever holds it can
/// read every backup made with it; nobody else can, the storage provider included. Keep it
/// somewhere safe: without it, the backups cannot be restored. In password mode the key is
/// sealed in a Backup Key Vault instead, which counts wrong passwords and destroys the key when
/// they run out.
///
/// Two ways to work: on files (keygen, encrypt, decrypt, inspect, crypt15, convert), or as a
/// phone would (enable, backup, restore, change-password, rotate-key, disable, status, abort,
/// set-store, set-vault),
/// with the client's state in --client-dir [default: $E2EE_BACKUP_DIR, else the platform's data
/// directory: $XDG_DATA_HOME/e2ee-backup or ~/.local/share/e2ee-backup on Linux]. The vault
/// server is the separate binary `e2ee-backup-vault` (init, serve). `demo` shows both, with a
/// vault of its own. `completions` and `man` print shell completions and the manual page.
#[derive(Parser)]
#[command(
    name = "e2ee-backup",
    version,
    propagate_version = true,
    after_help = EXIT_CODES,
    after_long_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print one JSON object on standard output instead of text, for scripts (on standard
    /// error when standard output carries the data, as with `-o -`).
    #[arg(long, global = true)]
    json: bool,
    /// Print no status lines (errors, and results such as a key or `status`, still are).
    #[arg(short, long, global = true)]
    quiet: bool,
}

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  I/O or other failure (including: no backup in the store)
  2  usage error: bad arguments, a malformed key, or not possible in the client's state
  3  wrong key: the 64-digit key opens no backup
  4  not a valid backup: damaged, truncated or tampered with
  5  wrong password: the vault counted the attempt (the message says how many are left)
  6  locked out for good: the vault destroyed its copy of the key after too many wrong passwords
  7  temporarily impossible, nothing changed: the vault is unreachable, or no attempts are left
     while a login is still in flight; run the same command again later
  8  the vault is not trusted: its key bundle does not verify against the pin, TLS with it
     fails, or it asks for a password stretching this client refuses; no password was sent
  9  the newest backup in the store was made with another key than this client holds (another
     device rotated the key): nothing was stored; restore here with the current key first

Environment: E2EE_BACKUP_DIR is the client directory when --client-dir is not given.
E2EE_BACKUP_PASSWORD and E2EE_BACKUP_NEW_PASSWORD give passwords to scripts (automation only;
interactively, passwords are asked without echo).

A FILE given as `-` is standard input or output where a stream works (encrypt, decrypt).
Status lines go to standard error (--quiet drops them); results go to standard output.";

#[derive(Subcommand)]
enum Command {
    /// Turn backups on in a client directory: with a 64-digit key you write down (--key), or
    /// with a password and a vault (--password).
    ///
    /// --key draws a backup key and shows it once. --password draws one and seals it in the
    /// vault behind the password (asked twice without echo); the first time it needs --account,
    /// --vault and --pin (the vault's fleet.pin). The client directory is created if missing,
    /// and kept only if the command succeeds.
    ///
    /// On a client that is on already, it switches modes with the same key and keeps every
    /// backup: --password on a key-mode client seals the key in the vault (give --account,
    /// --vault and --pin if the client has none), --key on a password-mode client shows the
    /// 64 digits and deletes the vault's copy (it asks for the current password).
    #[command(after_help = EXIT_CODES)]
    Enable(journeys::EnableArgs),
    /// Encrypt FILE under the backup key and upload it to the backup store as a new backup;
    /// or, for a directory, make a snapshot of its whole tree (only new content is uploaded).
    #[command(after_help = EXIT_CODES)]
    Backup(journeys::BackupArgs),
    /// List the snapshots of directories in the store, oldest first: identifier, time, files,
    /// total size and the bytes each one uploaded.
    #[command(after_help = EXIT_CODES)]
    Snapshots(journeys::ClientOnlyArgs),
    /// Check a snapshot (the newest unless --snapshot): that every blob it needs is in the
    /// store, and with --read-data that each decrypts and authenticates. Exit 4 if not.
    #[command(after_help = EXIT_CODES)]
    Verify(snapshots::VerifyArgs),
    /// Remove the snapshots a retention policy does not keep (a snapshot is kept if any
    /// --keep-… rule keeps it; at least one is needed). Their blobs stay until `prune` (or
    /// --prune). --dry-run only lists what would go.
    #[command(after_help = EXIT_CODES)]
    Forget(snapshots::ForgetArgs),
    /// Delete the blobs no snapshot references. Two phases a day apart: a prune records the
    /// unreferenced blobs; a prune at least 24 hours later deletes those still unreferenced,
    /// unless a backup is running. Safe to interrupt.
    #[command(after_help = EXIT_CODES)]
    Prune(journeys::ClientOnlyArgs),
    /// Restore the newest backup into --to FILE, on a new device (a fresh client directory) or
    /// in place on the client that makes the backups, with the 64-digit key or the password.
    ///
    /// Give --store with the location the backups were made to. With --password, a fresh
    /// client directory also needs --account, --vault and --pin; a wrong password exits with 5
    /// and says how many attempts are left. Afterwards this client makes backups with the same
    /// key, in the mode used to restore. An interrupted restore is finished by running the same
    /// command again (no second login). In place, a wrong key changes nothing; the right one
    /// becomes the key new backups use (after another device rotated it, say).
    #[command(after_help = EXIT_CODES)]
    Restore(journeys::RestoreArgs),
    /// Password mode: replace the password (the backup key and the backups stay as they are).
    #[command(after_help = EXIT_CODES)]
    ChangePassword(journeys::ChangePasswordArgs),
    /// Draw a new backup key and move every backup to it (in password mode the vault then
    /// seals the new key; in key mode the new 64 digits are shown, the old ones stop working).
    /// With --full, the snapshots' media root key is replaced too and every blob re-encrypted.
    #[command(after_help = EXIT_CODES)]
    RotateKey(journeys::RotateKeyArgs),
    /// Turn backups off: DELETES every backup in the store and, in password mode, the key in
    /// the vault; this client forgets the key.
    #[command(after_help = EXIT_CODES)]
    Disable(journeys::DisableArgs),
    /// Show the client's mode, account, backup store, vault and number of backups (never a
    /// key or a password).
    #[command(after_help = EXIT_CODES)]
    Status(journeys::ClientOnlyArgs),
    /// Drop an interrupted operation where that is safe: a password registration, a vault
    /// record deletion, or a key rotation the vault has not confirmed (its re-encrypted copies
    /// are deleted and the old key stays in force).
    ///
    /// A rotation cut off while asking the vault to seal the new key needs the password, to ask
    /// the vault which key it seals; once the vault seals the new key, or the old backups are
    /// being deleted, run `rotate-key` again to finish it instead.
    #[command(after_help = EXIT_CODES)]
    Abort(journeys::PasswordOnlyArgs),
    /// Point this client at another backup store: the backups moved, or the location was
    /// mistyped. The store must exist and be readable; otherwise nothing changes.
    #[command(after_help = EXIT_CODES)]
    SetStore(journeys::SetStoreArgs),
    /// Point this client at another vault URL and fleet pin: the vault moved, or the URL was
    /// mistyped. The vault's signed key bundle must verify against the pin; otherwise nothing
    /// changes. In password mode only the URL can change, not the fleet.
    #[command(after_help = EXIT_CODES)]
    SetVault(journeys::SetVaultArgs),
    /// Generate a new backup key and print it as 16 groups of 4 hexadecimal digits; with --out,
    /// write it to a file instead and print only the file name and the key id.
    Keygen {
        /// Write the key to FILE, readable by its owner only, instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// With --out, print the key as well.
        #[arg(long, requires = "out")]
        show: bool,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Encrypt INPUT into a backup file.
    Encrypt {
        /// The file to back up; `-` for standard input.
        input: PathBuf,
        /// Where to write the backup. Written to a temporary file first, renamed when complete;
        /// `-` for standard output.
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
    /// Decrypt a backup file. Nothing is written unless the whole backup verifies (except to
    /// standard output, which gets each chunk once it verifies: check the exit code).
    Decrypt {
        /// The backup file; `-` for standard input.
        input: PathBuf,
        /// Where to write the restored data. Written to a temporary file first, renamed only
        /// once every chunk has verified; `-` for standard output.
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
        /// The backup file; `-` for standard input (copied to an unnamed temporary file first).
        input: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// WhatsApp Android `.crypt15` backups: decrypt, encrypt, inspect.
    #[command(subcommand)]
    Crypt15(Crypt15Command),
    /// Convert a backup between crypt15 and the native format (the direction follows from the
    /// input). The plaintext is never written to disk.
    Convert {
        /// A .crypt15 file, or a native backup file; `-` for standard input (copied to an
        /// unnamed temporary file first: crypt15 is read twice).
        input: PathBuf,
        /// Where to write the converted backup; `-` for standard output.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
        /// When writing the native format, compress with zstd first.
        #[arg(long)]
        compress: bool,
        /// Replace OUTPUT if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Try it all on a sample chat database: make a key, encrypt, restore, verify, show that
    /// damage and a wrong key are caught; then the password journey against a vault started
    /// in-process on loopback. Needs nothing but a temporary directory.
    Demo {
        /// Size of the sample database in MiB.
        #[arg(long, value_name = "MIB", default_value_t = 256)]
        size_mib: u64,
        /// Work in DIR (kept afterwards) instead of a temporary directory.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Print a shell completion script, for example
    /// `e2ee-backup completions bash > ~/.local/share/bash-completion/completions/e2ee-backup`.
    Completions {
        /// The shell: bash, elvish, fish, powershell or zsh.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on standard output, or with --dir write one page per
    /// command into DIR (e2ee-backup.1, e2ee-backup-restore.1, ...).
    Man {
        /// Write the pages into DIR instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// The `.crypt15` commands. Their key is the same 64-digit key, or WhatsApp's
/// `encrypted_backup.key` file given to --key-file.
#[derive(Subcommand)]
enum Crypt15Command {
    /// Verify a .crypt15 file completely (MD5 and GCM tag), then decrypt it: a database comes
    /// out inflated, a multi-file backup as its ZIP. Nothing is written unless it verifies.
    Decrypt {
        /// The .crypt15 file; `-` for standard input (copied to an unnamed temporary file
        /// first: the whole file is checked before anything is decrypted).
        input: PathBuf,
        /// Where to write the plaintext; `-` for standard output.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
        /// Write the zlib stream as stored instead of inflating it.
        #[arg(long)]
        raw: bool,
        /// Replace OUTPUT if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Encrypt a database (or, with --multi-file, a ZIP) into a .crypt15 file with a fresh IV
    /// and a header that records nothing about the account unless asked to.
    Encrypt {
        /// The database or ZIP; `-` for standard input.
        input: PathBuf,
        /// Where to write the .crypt15 file; `-` for standard output.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
        /// The input is the ZIP of a multi-file backup (no compression, no MD5 trailer).
        #[arg(long)]
        multi_file: bool,
        /// zlib level, 0 to 9 (WhatsApp uses 1).
        #[arg(long, default_value_t = 1)]
        level: u32,
        /// The WhatsApp version to record in the header.
        #[arg(long, value_name = "VERSION")]
        app_version: Option<String>,
        /// The last two digits of the phone number, which crypt15 stores IN CLEAR; omit it
        /// unless a reader needs it.
        #[arg(long, value_name = "DD")]
        phone_suffix: Option<String>,
        /// Replace OUTPUT if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Show a .crypt15 header (no key needed); with a key, verify the whole file.
    Inspect {
        /// The .crypt15 file; `-` for standard input (copied to an unnamed temporary file first).
        input: PathBuf,
        #[command(flatten)]
        key: KeyArgs,
    },
}

/// Where the backup key comes from. Without either flag, `encrypt` and `decrypt` ask for it at
/// the terminal (without echo); `inspect` shows only what needs no key.
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

impl KeyArgs {
    fn resolve(
        &self,
        prompt: bool,
    ) -> Result<Option<e2ee_backup_kdf::BackupKey>, failure::Failure> {
        commands::key_from(self.key_file.as_deref(), self.key.as_deref(), prompt)
    }
}

fn parse_field(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err("expected NAME=VALUE with a non-empty NAME".to_owned()),
    }
}

/// A command line clap refuses: with --json among the arguments, a JSON error object like
/// every other failure's (code `usage`, exit 2); otherwise clap's own message. `--help` and
/// `--version` are clap's as well.
fn usage_error(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    let informational = matches!(err.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
    // Up to a `--`, after which `--json` would be a value, not the flag.
    let json = std::env::args_os().skip(1).take_while(|a| a != "--").any(|a| a == "--json");
    if informational || !json {
        err.exit();
    }
    let message = if err.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        "no command given; `e2ee-backup --help` lists them".to_owned()
    } else {
        let text = err.render().to_string();
        text.lines().next().unwrap_or_default().trim_start_matches("error: ").trim().to_owned()
    };
    let kind = format!("{:?}", err.kind());
    let failure = failure::Failure::usage("usage", message).field("kind", kind);
    failure.print(true, false);
    ExitCode::from(failure.exit_code())
}

/// Prints the completion script for `shell`.
fn completions(shell: clap_complete::Shell) -> Result<output::Report, failure::Failure> {
    use clap::CommandFactory;
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "e2ee-backup", &mut script);
    write_stdout(&script)?;
    Ok(output::Report {
        lines: Vec::new(),
        json: serde_json::json!({ "shell": shell.to_string() }),
    })
}

/// Prints the manual page, or writes one per command into `dir`.
fn man(dir: Option<&std::path::Path>) -> Result<output::Report, failure::Failure> {
    use clap::CommandFactory;
    let command = Cli::command();
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(command, dir))
            .map_err(|e| {
                failure::Failure::io(&format!("cannot write into {}", dir.display()), e)
            })?;
        return Ok(output::Report {
            lines: vec![format!("wrote the manual pages into {}", dir.display())],
            json: serde_json::json!({ "dir": dir }),
        });
    }
    let mut page = Vec::new();
    clap_mangen::Man::new(command)
        .render(&mut page)
        .map_err(|e| failure::Failure::io("cannot render the manual page", e))?;
    write_stdout(&page)?;
    Ok(output::Report { lines: Vec::new(), json: serde_json::json!({}) })
}

fn write_stdout(bytes: &[u8]) -> Result<(), failure::Failure> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(|e| failure::Failure::io("cannot write to standard output", e))
}

fn main() -> ExitCode {
    output::remove_partial_outputs_on_interrupt();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return usage_error(err),
    };
    let json = cli.json;
    let streams = output::Streams {
        result: matches!(
            cli.command,
            Command::Keygen { .. }
                | Command::Inspect { .. }
                | Command::Crypt15(Crypt15Command::Inspect { .. })
                | Command::Status(_)
                | Command::Snapshots(_)
                | Command::Enable(_)
                | Command::RotateKey(_)
                | Command::Demo { .. }
        ),
        stdout_busy: match &cli.command {
            Command::Encrypt { output, .. }
            | Command::Decrypt { output, .. }
            | Command::Convert { output, .. }
            | Command::Crypt15(
                Crypt15Command::Decrypt { output, .. } | Crypt15Command::Encrypt { output, .. },
            ) => output::is_stdio(output),
            Command::Restore(args) => args.snapshot.is_none() && output::is_stdio(&args.to),
            Command::Completions { .. } | Command::Man { dir: None } => true,
            _ => false,
        },
        quiet: cli.quiet,
    };
    output::QUIET.store(cli.quiet, std::sync::atomic::Ordering::Relaxed);
    let outcome = match cli.command {
        Command::Completions { shell } => completions(shell),
        Command::Man { dir } => man(dir.as_deref()),
        Command::Keygen { out, force, show } => commands::keygen(out.as_deref(), force, show),
        Command::Encrypt { input, output, key, compress, chunk_size_log2, fields, force } => {
            commands::encrypt(commands::EncryptArgs {
                input: &input,
                output: &output,
                key: key.resolve(true),
                compress,
                chunk_size_log2,
                fields,
                force,
            })
        }
        Command::Decrypt { input, output, key, force } => {
            commands::decrypt(&input, &output, key.resolve(true), force)
        }
        Command::Inspect { input, key } => commands::inspect(&input, key.resolve(false)),
        Command::Crypt15(Crypt15Command::Decrypt { input, output, key, raw, force }) => {
            crypt15::decrypt(&input, &output, key.resolve(true), raw, force)
        }
        Command::Crypt15(Crypt15Command::Encrypt {
            input,
            output,
            key,
            multi_file,
            level,
            app_version,
            phone_suffix,
            force,
        }) => crypt15::encrypt(crypt15::EncryptArgs {
            input: &input,
            output: &output,
            key: key.resolve(true),
            multi_file,
            level,
            app_version,
            phone_suffix,
            force,
        }),
        Command::Crypt15(Crypt15Command::Inspect { input, key }) => {
            crypt15::inspect(&input, key.resolve(false))
        }
        Command::Convert { input, output, key, compress, force } => {
            crypt15::convert(&input, &output, key.resolve(true), compress, force)
        }
        Command::Demo { size_mib, dir } => demo::run(size_mib, dir.as_deref(), json),
        Command::Enable(args) => journeys::enable(&args),
        Command::Backup(args) => journeys::backup(&args),
        Command::Snapshots(args) => snapshots::list(&args),
        Command::Verify(args) => snapshots::verify(&args),
        Command::Forget(args) => snapshots::forget(&args),
        Command::Prune(args) => snapshots::prune(&args),
        Command::Restore(args) => journeys::restore(&args),
        Command::ChangePassword(args) => journeys::change_password(&args),
        Command::RotateKey(args) => journeys::rotate_key(&args),
        Command::Disable(args) => journeys::disable(&args),
        Command::Status(args) => journeys::status(&args),
        Command::Abort(args) => journeys::abort(&args),
        Command::SetStore(args) => journeys::set_store(&args),
        Command::SetVault(args) => journeys::set_vault(&args),
    };
    match outcome {
        Ok(report) => {
            report.print(json, streams);
            ExitCode::SUCCESS
        }
        Err(failure) => {
            failure.print(json, streams.stdout_busy);
            ExitCode::from(failure.exit_code())
        }
    }
}
