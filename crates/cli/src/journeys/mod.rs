//! The client journeys: `enable`, `backup`, `restore`, `change-password`, `rotate-key`,
//! `disable`, `status`, `abort`, `set-store` and `set-vault`, each a thin layer over
//! `e2ee-backup-client` (spec chapter 5). One file per journey: [`mod@enable`] (and switching
//! modes), [`mod@backup`], [`mod@restore`], [`password`] (`change-password`, `rotate-key`),
//! [`mod@disable`], and [`settings`] (`status`, `abort`, `set-store`, `set-vault`); this file holds the
//! arguments and what every journey shares: opening or preparing the client directory, reading
//! passwords and pins.
//!
//! A command on a new client directory saves nothing unless it succeeds (a restore that got as
//! far as downloading is kept, to resume without a second login): see `FreshDir`.
//!
//! The client keeps its state in a directory (the phone's private storage, `--client-dir`):
//! `state.json` and the `keystore` with K (mode 0600). Nothing here prints a password or K,
//! except the 64-digit key where showing it is the point (`enable --key`, and `rotate-key` in
//! key mode, since the old digits stop working).

use std::fs::{self, File};
use std::io::{self, IsTerminal, Read};
use std::path::{Path, PathBuf};

use clap::{ArgGroup, Args};
use e2ee_backup_client::state::{KEYSTORE_FILE, STATE_FILE};
use e2ee_backup_client::{Client, FleetPin, Mode, Options, Setup, Status};
use zeroize::Zeroizing;

use crate::failure::Failure;
use crate::output::Report;

mod backup;
mod disable;
mod enable;
mod password;
mod restore;
mod settings;

pub use backup::backup;
pub use disable::disable;
pub use enable::enable;
pub use password::{change_password, rotate_key};
pub use restore::restore;
pub use settings::{abort, set_store, set_vault, status};

/// Where scripts may put the password (for `enable`, `restore`, `rotate-key`, `disable`, and
/// the current one for `change-password`).
pub const PASSWORD_ENV: &str = "E2EE_BACKUP_PASSWORD";
/// Where scripts may put the new password of `change-password`.
pub const NEW_PASSWORD_ENV: &str = "E2EE_BACKUP_NEW_PASSWORD";
/// The shortest new password accepted.
pub const MIN_PASSWORD_CHARS: usize = 6;
/// The account of a client set up without `--account` (key mode never tells the vault).
pub const DEFAULT_ACCOUNT: &str = "local";
/// A password file is one short line; anything much longer is not a password file.
const MAX_PASSWORD_FILE_LEN: u64 = 4096;

/// Which client directory, and how this process runs the client.
#[derive(Args)]
pub struct ClientArgs {
    /// The client's state directory (the phone's private storage): `state.json` and the
    /// `keystore` holding the backup key (mode 0600). [default: $E2EE_BACKUP_DIR, else the
    /// platform's data directory: $XDG_DATA_HOME/e2ee-backup, else ~/.local/share/e2ee-backup]
    #[arg(long, value_name = "DIR")]
    pub client_dir: Option<PathBuf>,
    /// Accept a vault that stretches passwords with the fast profile (`e2ee-backup-vault init
    /// --ksf fast`). For test and demo vaults only: a stolen record of such a vault is cheap to
    /// attack offline. Never for a real vault, which uses the mobile profile.
    #[arg(long)]
    pub accept_fast_ksf: bool,
}

/// How a new client directory is set up. Ignored (but checked) when the directory holds a
/// client already.
#[derive(Args)]
pub struct SetupArgs {
    /// The account identifier, 1 to 64 bytes, for example the phone number (+15551234567): the
    /// vault keeps the sealed key under it. Needed in password mode when the client directory
    /// is new; key mode uses "local" when it is not given.
    #[arg(long, value_name = "ID")]
    pub account: Option<String>,
    /// The vault's base URL, http:// or https:// (a server run with `e2ee-backup-vault serve`,
    /// a separate binary). Needed, with --pin, in password mode when the directory is new.
    #[arg(long, value_name = "URL", requires = "pin")]
    pub vault: Option<String>,
    /// The vault fleet's pin file, `fleet.pin`, as written by `e2ee-backup-vault init`: a
    /// password is sent only to a vault whose signed key bundle verifies against it.
    #[arg(long, value_name = "FILE", requires = "vault")]
    pub pin: Option<PathBuf>,
    /// Where the encrypted backups go: a directory (created by `enable` if missing; `restore`
    /// needs it to exist) or a file:// URL. It only ever sees ciphertext. To restore on another
    /// device, give the same location. `set-store` changes it later.
    /// [default: the `store` directory inside the client directory]
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
}

#[derive(Args)]
#[command(group(
    ArgGroup::new("protection").required(true).multiple(true).args(["key", "password", "password_file"])
))]
pub struct EnableArgs {
    /// Key mode: draw a backup key and show it once, as 64 digits, for you to write down. On a
    /// password-mode client: switch to key mode with the same key (every backup is kept, the
    /// vault's copy deleted), asking for the current password (or --password-file).
    #[arg(long, conflicts_with = "password")]
    pub key: bool,
    /// Password mode: draw a backup key and seal it in the vault behind a password, asked
    /// twice without echo (or taken from $E2EE_BACKUP_PASSWORD, for automation). At least 6
    /// characters. Needs --account, --vault and --pin when the client directory is new. On a
    /// key-mode client: switch to password mode with the same key, keeping every backup (with
    /// --account, --vault and --pin if it was set up without them).
    #[arg(long)]
    pub password: bool,
    /// Password mode, with the password read from the first line of FILE instead of the
    /// terminal. For automation; keep FILE readable by you only.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    #[command(flatten)]
    pub setup: SetupArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args)]
pub struct BackupArgs {
    /// The file to back up (a chat database, say); `-` reads standard input (named `stdin`
    /// unless --name says otherwise). A directory is backed up as a snapshot of its whole
    /// tree: only content the store lacks is uploaded (`snapshots` lists them).
    pub file: PathBuf,
    /// The backup's name, kept in its encrypted metadata. [default: FILE's name]
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
    /// Back up FILE even though it is empty. An empty backup is the newest one, so a restore
    /// picks it over the real backups made before it.
    #[arg(long)]
    pub allow_empty: bool,
    /// With a directory: leave out the entries PATTERN matches (repeatable). A glob (`*`, `?`,
    /// `[a-z]`, `{jpg,png}`, `**`), case-sensitive. Without a `/` it matches a name at any
    /// depth (`*.tmp`, `.thumbnails`); with a `/` it matches the path from the directory
    /// (`Media/Sent/*`, `/cache`, `**/*.wal`), `*` not crossing a `/`. An excluded directory
    /// is not read at all.
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// With a directory: leave out what the patterns in FILE match, one a line (as --exclude;
    /// blank lines and lines starting with `#` are skipped). Repeatable.
    #[arg(long, value_name = "FILE")]
    pub exclude_file: Vec<PathBuf>,
    /// With a directory: how many blobs may be uploading at once (1 to 64). More hide a
    /// remote store's round trips; each may hold one sealed chunk (up to 4 MiB) in memory,
    /// and as many again wait in a queue.
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u8).range(1..=64))]
    pub uploads: u8,
    /// With a directory: read every file, even those the files cache says are unchanged since
    /// the last backup on this device (by size, times, inode). The cache is written anew.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args)]
#[command(group(
    ArgGroup::new("secret").required(true).multiple(true).args(["key", "key_file", "password", "password_file", "snapshot"])
))]
pub struct RestoreArgs {
    /// Where to write the restored file. It appears only once the whole backup has verified.
    /// `-` writes to standard output as each chunk verifies: not resumable, and only exit
    /// status 0 says that the whole backup arrived.
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    /// Restore with the 64-digit key: give DIGITS (visible to other users in the process
    /// list), or nothing to be asked at the terminal without echo.
    #[arg(
        long,
        value_name = "DIGITS",
        num_args = 0..=1,
        default_missing_value = "",
        conflicts_with_all = ["password", "password_file", "key_file"]
    )]
    pub key: Option<String>,
    /// Restore with the 64-digit key read from FILE (as written by `keygen --out`, or
    /// WhatsApp's encrypted_backup.key).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["password", "password_file"])]
    pub key_file: Option<PathBuf>,
    /// Restore with the password: log in to the vault, asked without echo (or taken from
    /// $E2EE_BACKUP_PASSWORD, for automation). Every wrong password counts; when they run out
    /// the vault destroys the key for good. Needs --account, --vault and --pin when the client
    /// directory is new.
    #[arg(long)]
    pub password: bool,
    /// Password mode, with the password read from the first line of FILE. For automation.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
    /// Restore snapshot ID (`latest` for the newest; `snapshots` lists them) of a directory
    /// into --to DIR, which must be missing or empty, with this client's key.
    #[arg(
        long,
        value_name = "ID",
        conflicts_with_all = ["key", "key_file", "password", "password_file", "force"]
    )]
    pub snapshot: Option<String>,
    /// With --snapshot: restore only these paths of the snapshot and what is under them.
    #[arg(value_name = "PATHS", requires = "snapshot")]
    pub paths: Vec<String>,
    /// With --snapshot: finish a restore of the same snapshot and PATHS into --to DIR that
    /// stopped (Ctrl-C, a full disk, a lost connection). The files it put in place, whole, are
    /// kept (checked by size and modification time); anything else in the way stops it
    /// (`target-conflict`).
    #[arg(long, requires = "snapshot")]
    pub resume: bool,
    #[command(flatten)]
    pub setup: SetupArgs,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args)]
pub struct ChangePasswordArgs {
    /// Read the current password from the first line of FILE (else $E2EE_BACKUP_PASSWORD, else
    /// the terminal). For automation.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Read the new password from the first line of FILE (else $E2EE_BACKUP_NEW_PASSWORD, else
    /// the terminal, twice). For automation. At least 6 characters.
    #[arg(long, value_name = "FILE")]
    pub new_password_file: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args)]
pub struct PasswordOnlyArgs {
    /// In password mode, read the password from the first line of FILE (else
    /// $E2EE_BACKUP_PASSWORD, else the terminal). For automation.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args)]
pub struct RotateKeyArgs {
    /// Also replace the snapshots' media root key: every blob is re-encrypted under a new
    /// name, so that the old key opens no media of later snapshots (spec 8.11). Refused while
    /// a backup is running (`backup-running`); resumable like the rotation itself.
    #[arg(long)]
    pub full: bool,
    #[command(flatten)]
    pub inner: PasswordOnlyArgs,
}

#[derive(Args)]
pub struct DisableArgs {
    /// Do not ask for confirmation (needed without a terminal).
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub inner: PasswordOnlyArgs,
}

#[derive(Args)]
pub struct SetStoreArgs {
    /// The backup store's new location: a directory or a file:// URL (or with the `cloud`
    /// feature an s3://, gs:// or az:// URL). It must exist and be readable.
    #[arg(long, value_name = "URL")]
    pub store: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args)]
pub struct SetVaultArgs {
    /// The vault's base URL, http:// or https://.
    #[arg(long, value_name = "URL")]
    pub vault: String,
    /// The vault fleet's pin file, `fleet.pin`: the vault's signed key bundle must verify
    /// against it.
    #[arg(long, value_name = "FILE")]
    pub pin: PathBuf,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Args)]
pub struct ClientOnlyArgs {
    #[command(flatten)]
    pub client: ClientArgs,
}

/// The environment variable naming the client directory when --client-dir is not given.
pub const CLIENT_DIR_ENV: &str = "E2EE_BACKUP_DIR";

/// `$E2EE_BACKUP_DIR`, else the platform's data directory: `$XDG_DATA_HOME/e2ee-backup` or
/// `~/.local/share/e2ee-backup` on Linux, `~/Library/Application Support/e2ee-backup` on
/// macOS, `%APPDATA%\e2ee-backup\data` on Windows.
pub fn default_client_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(CLIENT_DIR_ENV).filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("", "", "e2ee-backup").map(|d| d.data_dir().to_owned())
}

impl ClientArgs {
    fn dir(&self) -> Result<PathBuf, Failure> {
        let dir = self.client_dir.clone().or_else(default_client_dir).ok_or_else(|| {
            Failure::usage(
                "no-client-dir",
                "no home directory to keep the client in: pass --client-dir DIR or set \
                 E2EE_BACKUP_DIR",
            )
        })?;
        std::path::absolute(&dir)
            .map_err(|e| Failure::io(&format!("cannot resolve {}", dir.display()), e))
    }

    fn options(&self) -> Options {
        Options {
            accept_fast_ksf: self.accept_fast_ksf,
            store_options: cloud_store_options(),
            on_retry: Some(crate::output::retry_notice()),
            on_progress: Some(crate::output::progress_notice()),
            ..Options::default()
        }
    }

    /// The client in the directory, which must exist.
    pub(crate) fn open(&self) -> Result<(Client, PathBuf), Failure> {
        let dir = self.dir()?;
        if !dir.join(STATE_FILE).exists() {
            return Err(not_set_up(&dir));
        }
        Ok((Client::open(&dir, self.options())?, dir))
    }
}

fn not_set_up(dir: &Path) -> Failure {
    Failure::usage(
        "not-initialised",
        format!(
            "no client in {}: backups are not set up here. Run `e2ee-backup enable` (or \
             `e2ee-backup restore` on a new device) first, or pass the --client-dir it used",
            dir.display()
        ),
    )
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Needs {
    Key,
    Password,
}

/// A client directory about to be used: the client in it, or checked settings for a new one.
/// A new one is created only once the password or key is in hand, so that a cancelled prompt
/// or a malformed key leaves nothing behind.
enum Prepared {
    Open(Box<Client>),
    New(Setup),
}

impl Prepared {
    fn status(&self) -> Option<Status> {
        match self {
            Prepared::Open(client) => Some(client.status()),
            Prepared::New(_) => None,
        }
    }

    fn into_client(self, args: &ClientArgs, dir: &Path) -> Result<Client, Failure> {
        match self {
            Prepared::Open(client) => Ok(*client),
            Prepared::New(setup) => {
                create_private_dir(dir)?;
                Ok(Client::create(dir, setup, args.options())?)
            }
        }
    }
}

/// A client directory that held no client when the command started. Nothing is saved until
/// the command succeeds: when it fails, what it wrote is removed, so that a mistyped --vault or
/// --store does not bind the directory. The one exception is a restore that got as far as
/// Restoring (the key is known, the download failed): it is kept, so that running the same
/// command again resumes without a second login.
struct FreshDir {
    dir: PathBuf,
    existed: bool,
}

impl FreshDir {
    fn note(dir: &Path, prepared: &Prepared) -> Option<Self> {
        matches!(prepared, Prepared::New(_))
            .then(|| Self { dir: dir.to_owned(), existed: dir.exists() })
    }

    /// After a failed command: removes the client it set up, unless it is resumable.
    fn discard(self) {
        let state = e2ee_backup_client::state::StateDir::new(&self.dir);
        if let Ok((state, _)) = state.load()
            && matches!(state.mode, Mode::Restoring { .. })
        {
            return;
        }
        for name in [STATE_FILE, KEYSTORE_FILE] {
            // Best effort: the failure being reported matters more than this cleanup's.
            let _ = fs::remove_file(self.dir.join(name));
            let _ = fs::remove_file(self.dir.join(format!(".{name}.tmp")));
        }
        if !self.existed {
            // Only if empty: never anything the command did not make.
            let _ = fs::remove_dir(&self.dir);
        }
    }
}

/// Runs `command` on a prepared client directory; if it fails and the directory was new,
/// removes what it saved ([`FreshDir`]).
fn saving_only_on_success(
    dir: PathBuf,
    prepared: Prepared,
    command: impl FnOnce(PathBuf, Prepared) -> Result<Report, Failure>,
) -> Result<Report, Failure> {
    let fresh = FreshDir::note(&dir, &prepared);
    let outcome = command(dir, prepared);
    if outcome.is_err()
        && let Some(fresh) = fresh
    {
        fresh.discard();
    }
    outcome
}

/// Opens the client in the directory, or checks `setup` for a new one.
fn prepare(
    client: &ClientArgs,
    setup: &SetupArgs,
    needs: Needs,
) -> Result<(PathBuf, Prepared), Failure> {
    let dir = client.dir()?;
    if dir.join(STATE_FILE).exists() {
        let opened = Client::open(&dir, client.options())?;
        check_setup(&opened.status(), setup, &dir)?;
        return Ok((dir, Prepared::Open(Box::new(opened))));
    }
    let account = match (&setup.account, needs) {
        (Some(account), _) => account.clone(),
        (None, Needs::Key) => DEFAULT_ACCOUNT.to_owned(),
        (None, Needs::Password) => {
            return Err(Failure::usage(
                "missing-setup",
                format!(
                    "{} holds no client yet: password mode needs --account ID (the account the \
                     vault keeps the key under), --vault URL and --pin FILE",
                    dir.display()
                ),
            ));
        }
    };
    if e2ee_backup_vault::AccountId::try_from(account.as_str()).is_err() {
        return Err(Failure::usage(
            "invalid-account",
            "--account must be 1 to 64 bytes, for example the phone number",
        ));
    }
    let vault = match (&setup.vault, &setup.pin) {
        (Some(url), Some(pin)) => {
            check_vault_url(url)?;
            Some((url.clone(), read_pin(pin)?))
        }
        _ if needs == Needs::Password => {
            return Err(Failure::usage(
                "missing-setup",
                format!(
                    "{} holds no client yet: password mode needs --vault URL and --pin FILE (the \
                     fleet.pin of the vault, from `e2ee-backup-vault init`)",
                    dir.display()
                ),
            ));
        }
        _ => None,
    };
    let store = match &setup.store {
        Some(store) => store.clone(),
        None => dir.join("store").to_string_lossy().into_owned(),
    };
    Ok((dir, Prepared::New(Setup { account, store, vault })))
}

/// Refuses a vault URL that is not http:// or https://.
fn check_vault_url(url: &str) -> Result<(), Failure> {
    // The client's own rule, so that nothing the client would refuse is saved first.
    e2ee_backup_client::transport::check_vault_url(url).map(drop).map_err(Failure::from)
}

/// Reads and parses a fleet pin file.
fn read_pin(path: &Path) -> Result<FleetPin, Failure> {
    let text = fs::read_to_string(path)
        .map_err(|e| Failure::io(&format!("cannot read the pin file {}", path.display()), e))?;
    FleetPin::parse(&text).map_err(|e| {
        let mut failure = Failure::from(e);
        failure.message = format!("{}: {}", path.display(), failure.message);
        failure
    })
}

/// Refuses settings that contradict the existing client's: it keeps the ones it was set up
/// with, and silently ignoring another --vault would send a password where the user did not
/// mean to.
fn check_setup(status: &Status, setup: &SetupArgs, dir: &Path) -> Result<(), Failure> {
    let clash = |what: &str, had: &str| {
        Failure::usage(
            "client-exists",
            format!(
                "{} already holds a client set up with {what} {had}; leave the option out to use \
                 it, change it with `e2ee-backup set-{what}`, or pass another --client-dir for a \
                 new device",
                dir.display()
            ),
        )
    };
    if let Some(account) = &setup.account
        && *account != status.account
    {
        return Err(Failure::usage(
            "client-exists",
            format!(
                "{} already holds a client set up for account {}; leave --account out to use \
                 it, or pass another --client-dir for a new device",
                dir.display(),
                status.account
            ),
        ));
    }
    if let Some(url) = &setup.vault
        && Some(url) != status.vault_url.as_ref()
    {
        return Err(clash("vault", status.vault_url.as_deref().unwrap_or("none")));
    }
    if let Some(store) = &setup.store
        && e2ee_backup_client::store::canonical_location(store) != status.store
    {
        return Err(clash("store", &status.store));
    }
    Ok(())
}

fn create_private_dir(dir: &Path) -> Result<(), Failure> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| Failure::io(&format!("cannot create {}", dir.display()), e))
}

/// Reads a password: from `file` (its first line), else the environment variable `env`, else
/// the terminal without echo (twice when `new`). New passwords must be long enough.
fn read_password(
    file: Option<&Path>,
    env: &str,
    prompt: &str,
    new: bool,
) -> Result<Zeroizing<String>, Failure> {
    let password =
        if let Some(path) = file {
            let mut bytes = Zeroizing::new(Vec::new());
            File::open(path)
                .and_then(|f| f.take(MAX_PASSWORD_FILE_LEN).read_to_end(&mut bytes))
                .map_err(|e| {
                    Failure::io(&format!("cannot read the password file {}", path.display()), e)
                })?;
            let text = std::str::from_utf8(&bytes).map_err(|_| {
                Failure::usage("invalid-password", format!("{} is not UTF-8 text", path.display()))
            })?;
            Zeroizing::new(text.lines().next().unwrap_or_default().to_owned())
        } else if let Some(value) = std::env::var_os(env).filter(|v| !v.is_empty()) {
            Zeroizing::new(value.into_string().map_err(|_| {
                Failure::usage("invalid-password", format!("${env} is not UTF-8 text"))
            })?)
        } else {
            if !io::stdin().is_terminal() {
                return Err(Failure::usage(
                    "no-password",
                    format!(
                        "no password given and no terminal to ask at: pass --password-file FILE or \
                     set {env} (for automation)"
                    ),
                ));
            }
            let first = Zeroizing::new(
                rpassword::prompt_password(prompt)
                    .map_err(|e| Failure::io("cannot read the password", e))?,
            );
            if new {
                let again = Zeroizing::new(
                    rpassword::prompt_password("Type it again: ")
                        .map_err(|e| Failure::io("cannot read the password", e))?,
                );
                if *again != *first {
                    return Err(Failure::usage(
                        "password-mismatch",
                        "the two passwords differ; nothing was changed",
                    ));
                }
            }
            first
        };
    if password.is_empty() {
        return Err(Failure::usage("invalid-password", "the password is empty"));
    }
    if new && password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Failure::usage(
            "weak-password",
            format!("a new password needs at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(password)
}

fn mode_name(mode: &Mode) -> &'static str {
    match mode {
        Mode::Off => "off",
        Mode::Key { .. } => "key",
        Mode::Password { .. } => "password",
        Mode::Restoring { .. } => "restoring",
        Mode::LockedOut { .. } => "locked-out",
    }
}

fn key_id(mode: &Mode) -> Option<&str> {
    match mode {
        Mode::Key { key_id } | Mode::Password { key_id } | Mode::Restoring { key_id, .. } => {
            Some(key_id)
        }
        Mode::LockedOut { key_id } => key_id.as_deref(),
        Mode::Off => None,
    }
}

fn key_warning() -> [&'static str; 3] {
    [
        "Write it down now and keep it somewhere safe, away from this device: it is shown only",
        "this once. With it, the backups restore on any device; without it (and without this",
        "client directory) they cannot be restored. Anyone who has it can read them.",
    ]
}

/// The number of backups in the client's store, if it lists.
fn backup_count(client: &Client) -> Option<usize> {
    client.list_backups().ok().map(|names| names.len())
}

/// Cloud store settings from the environment (`AWS_*`, `GOOGLE_*`, `AZURE_*`, as the providers'
/// own tools read them), under the lower-case names object_store takes. They are handed to the
/// store for this run only; the client never writes them to disk.
fn cloud_store_options() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(name, _)| ["AWS_", "GOOGLE_", "AZURE_"].iter().any(|p| name.starts_with(p)))
        .map(|(name, value)| (name.to_ascii_lowercase(), value))
        .collect()
}
