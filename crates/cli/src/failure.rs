//! What the user is told when a command fails, and with which exit code (spec 5.9 for the
//! client's error codes, 3.6 and 6.6 for the files').

use e2ee_backup_format::Error;
use e2ee_backup_kdf::KeyParseError;
use serde_json::{Map, Value};

/// Exit code 5: the vault said the password is wrong (the attempts left are in the message).
pub const EXIT_WRONG_PASSWORD: u8 = 5;
/// Exit code 6: the vault destroyed its copy of the key; password restore is over for good.
pub const EXIT_LOCKED_OUT: u8 = 6;
/// Exit code 7: temporarily impossible (vault unreachable or busy, logins in flight); nothing
/// changed, run the same command again later.
pub const EXIT_RETRY_LATER: u8 = 7;
/// Exit code 8: the vault is not trusted (its fleet bundle does not verify against the pin, or
/// it asks for a stretching profile this client refuses); no password was sent to it.
pub const EXIT_VAULT_NOT_TRUSTED: u8 = 8;

/// Exit code 9: the store's newest backup was made under a key this client does not hold
/// (another device rotated the key); nothing was stored.
pub const EXIT_KEY_ROTATED_ELSEWHERE: u8 = 9;

/// A failed command: a stable code for scripts, a sentence for people, an exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: &'static str,
    pub message: String,
    exit: u8,
    /// Extra fields of the JSON error object (`attemptsLeft`, `retryable`; `retryable` is
    /// false unless given).
    pub fields: Map<String, Value>,
}

impl Failure {
    /// Exit code 1: I/O and everything not covered below.
    pub fn other(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), exit: 1, fields: Map::new() }
    }

    /// Exit code 2: the command line or its inputs are not usable.
    pub fn usage(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), exit: 2, fields: Map::new() }
    }

    /// A failure with an explicit exit code.
    pub fn with_exit(code: &'static str, message: impl Into<String>, exit: u8) -> Self {
        Self { code, message: message.into(), exit, fields: Map::new() }
    }

    /// Adds a field to the JSON error object.
    pub fn field(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(name.to_owned(), value.into());
        self
    }

    pub fn io(what: &str, err: std::io::Error) -> Self {
        Self::other("io", format!("{what}: {err}"))
    }

    pub fn exit_code(&self) -> u8 {
        self.exit
    }

    /// Prints the failure: text on standard error, or the JSON object on standard output
    /// (standard error when standard output carries data, `stdout_busy`).
    pub fn print(&self, json: bool, stdout_busy: bool) {
        if json {
            let mut error = self.fields.clone();
            error.insert("code".to_owned(), Value::from(self.code));
            // Client errors say whether running the same command later may succeed; the
            // command line's own failures (usage, files, keys) do not change by waiting.
            error.entry("retryable").or_insert(Value::Bool(false));
            error.insert("message".to_owned(), Value::from(self.message.clone()));
            let value = serde_json::json!({ "ok": false, "error": error });
            if stdout_busy {
                eprintln!("{value}");
            } else {
                println!("{value}");
            }
        } else {
            eprintln!("error: {}", self.message);
        }
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        let (exit, hint) = match &err {
            Error::WrongKey => {
                (3, " Check that this is the key shown when backups were turned on.")
            }
            Error::Io { .. } => (1, ""),
            Error::InvalidInput(_) => (2, ""),
            _ => (4, ""),
        };
        Self { code: err.code(), message: format!("{err}.{hint}"), exit, fields: Map::new() }
    }
}

impl From<KeyParseError> for Failure {
    fn from(err: KeyParseError) -> Self {
        Self::usage("invalid-key", format!("the key is not a 64-digit key: {err}"))
    }
}

impl From<e2ee_backup_crypt15::Error> for Failure {
    fn from(err: e2ee_backup_crypt15::Error) -> Self {
        use e2ee_backup_crypt15::Error as C;
        let exit = match &err {
            C::WrongKey => 3,
            C::Io { .. } => 1,
            C::InvalidInput(_) => 2,
            _ => 4,
        };
        Self { code: err.code(), message: format!("{err}."), exit, fields: Map::new() }
    }
}

impl From<e2ee_backup_client::Error> for Failure {
    /// A client error as the user reads it: the client's sentence (which never holds a secret)
    /// plus what to do about it from the command line, and an exit code per kind of remedy.
    fn from(err: e2ee_backup_client::Error) -> Self {
        use e2ee_backup_client::Error as C;
        use e2ee_backup_vault::ClientError;
        let retryable = err.is_retryable();
        let (exit, hint): (u8, String) = match &err {
            C::WrongPassword { .. } => (
                EXIT_WRONG_PASSWORD,
                " Passwords are case-sensitive, and every attempt counts; check the account as well."
                    .to_owned(),
            ),
            C::LockedOut => (
                EXIT_LOCKED_OUT,
                " This cannot be undone. On the device that made the backups, `e2ee-backup \
                 enable --key` keeps them readable with a new 64-digit key."
                    .to_owned(),
            ),
            C::AttemptsExhausted => (EXIT_RETRY_LATER, String::new()),
            C::VaultUnreachable { .. } => (
                EXIT_RETRY_LATER,
                " Check the vault URL and the network, then run the same command again; no \
                 attempt was counted."
                    .to_owned(),
            ),
            C::FleetBundle(_) | C::VaultTls { .. } => (EXIT_VAULT_NOT_TRUSTED, String::new()),
            C::NotAVault { .. } => (2, String::new()),
            C::Vault(ClientError::WeakKsf(code)) => (
                EXIT_VAULT_NOT_TRUSTED,
                format!(
                    " The vault stretches passwords with profile {code}, the fast one meant for \
                     tests and demos (a stolen vault record would be cheap to attack). Only for \
                     a test vault, pass --accept-fast-ksf."
                ),
            ),
            // The client's sentence already says to check the digits.
            C::WrongKey => (3, String::new()),
            C::BackupCorrupt { .. } => {
                (4, " Restore an older backup, or make a new one.".to_owned())
            }
            C::NoBackupFound { .. } => (
                1,
                " Make a backup first; or, on a new device, pass --store with the location the \
                 backups were made to."
                    .to_owned(),
            ),
            C::StoreMissing { .. } => (
                1,
                " Check the location: to restore, pass --store with the location the backups \
                 were made to; `e2ee-backup set-store` points an existing client elsewhere."
                    .to_owned(),
            ),
            C::KeyRotatedElsewhere { .. } => (
                EXIT_KEY_ROTATED_ELSEWHERE,
                " To back up from this client again, restore here with the current key first: \
                 `e2ee-backup restore --to FILE --password` in password mode (the vault gives \
                 the new key), or `--key` with the new 64-digit key shown on the device that \
                 rotated it."
                    .to_owned(),
            ),
            C::Snapshot(err) => (snapshot_exit(err), String::new()),
            // Its advice is written below, in the command line's words.
            C::PendingOperation { .. } => (2, String::new()),
            C::NotInitialised { .. } => (
                2,
                " Run `e2ee-backup enable` or `e2ee-backup restore` first, or pass the \
                 --client-dir it used."
                    .to_owned(),
            ),
            C::IllegalState { .. }
            | C::InvalidKeyDigits(_)
            | C::NoVault
            | C::InvalidAccount { .. }
            | C::InvalidVaultUrl { .. }
            | C::Pin { .. }
            | C::StoreLocation { .. }
            | C::AlreadyInitialised { .. } => (2, String::new()),
            _ => (1, String::new()),
        };
        let message = match &err {
            // The client's advice, in the command line's words.
            C::PendingOperation { operation, pending } => format!(
                "cannot {operation}: an interrupted {pending} must be finished first. Run the \
                 interrupted command again to finish it, or `e2ee-backup abort` to drop it."
            ),
            _ => format!("{err}.{hint}"),
        };
        let mut failure = Self::with_exit(err.code(), message, exit).field("retryable", retryable);
        if let C::WrongPassword { remaining } = err {
            failure = failure.field("attemptsLeft", remaining);
        }
        failure
    }
}

/// The exit code of a snapshot error (spec 8.10): 4 for a damaged or foreign object, 3 for a
/// store whose media root key is another key's, 2 for a request that cannot be met, 1 for the
/// store or the file system.
fn snapshot_exit(err: &e2ee_backup_snapshot::Error) -> u8 {
    use e2ee_backup_snapshot::Error as S;
    match err {
        S::MediaRootKey { source: Error::WrongKey } => 3,
        S::BlobMissing { .. }
        | S::BlobRenamed { .. }
        | S::BlobContentMismatch { .. }
        | S::BlobLengthMismatch { .. }
        | S::BlobDamaged { .. }
        | S::ManifestDamaged { .. }
        | S::ManifestRenamed { .. }
        | S::InvalidManifest { .. }
        | S::PruneRecord { .. }
        | S::MediaRootKey { .. } => 4,
        S::SnapshotMissing { .. }
        | S::UnsafePath { .. }
        | S::TargetNotEmpty { .. }
        | S::TargetConflict { .. }
        | S::NoMediaRootKey
        | S::EmptyPolicy
        | S::InvalidPattern { .. }
        | S::InvalidChunking(_) => 2,
        _ => 1,
    }
}
