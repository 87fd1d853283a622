//! Every way a client operation can fail (spec section 5.9).
//!
//! Each variant says what happened and what the user or caller can do; none carries a byte of
//! a key, a password or of backup plaintext.

use std::path::PathBuf;

use e2ee_backup_kdf::KeyParseError;
use e2ee_backup_vault::{ClientError, FleetError};
use thiserror::Error;

/// What a client operation failed with.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The operation is not allowed in the client's current state.
    #[error("cannot {operation} while {state}: {hint}")]
    IllegalState {
        /// The operation asked for.
        operation: &'static str,
        /// The state the client is in.
        state: &'static str,
        /// What is allowed instead.
        hint: &'static str,
    },
    /// Another operation was interrupted and must be finished (or aborted) first.
    #[error(
        "cannot {operation}: an interrupted {pending} must be finished first (run it again to \
         resume it, or abort it)"
    )]
    PendingOperation {
        /// The operation asked for.
        operation: &'static str,
        /// The interrupted operation.
        pending: &'static str,
    },
    /// The vault did not accept the password; it counted the attempt. The vault answers an
    /// account nobody registered (or a mistyped one) exactly like a wrong password, so the
    /// message allows for both without saying which.
    #[error("{}", wrong_password(*remaining))]
    WrongPassword {
        /// Attempts left.
        remaining: u8,
    },
    /// The vault destroyed the sealed backup key after too many wrong passwords.
    #[error(
        "locked out for good: too many wrong passwords, and the vault destroyed the backup key; \
         restore with the 64-digit key if you have it, or start over"
    )]
    LockedOut,
    /// No password attempts are left, but a login is still in flight somewhere (its session
    /// has not expired): it may still succeed; otherwise the account locks for good.
    #[error(
        "no password attempts are left; a login already in progress may still succeed — try \
         again after the vault's session lifetime (minutes), when the account either has its \
         attempts back or is locked for good"
    )]
    AttemptsExhausted,
    /// The 64-digit key does not open the stored backups.
    #[error(
        "wrong key: the 64-digit key does not match any stored backup; check the digits (or use \
         the password if backups are protected by one)"
    )]
    WrongKey,
    /// The 64-digit key as typed is not a key.
    #[error("not a 64-digit key: {0}")]
    InvalidKeyDigits(#[from] KeyParseError),
    /// A backup is damaged or was tampered with.
    #[error("backup {object} is damaged and cannot be restored: {reason}")]
    BackupCorrupt {
        /// The object's name.
        object: String,
        /// What the format reader found.
        reason: e2ee_backup_format::Error,
    },
    /// No backup is stored for this account.
    #[error("no backup found in the backup store {location}")]
    NoBackupFound {
        /// Where the client looked.
        location: String,
    },
    /// The backup store is a local directory that does not exist. It is never created by
    /// reading (a mistyped location must not turn into an empty store).
    #[error("the backup store {path} does not exist (nothing was created there)")]
    StoreMissing {
        /// The directory.
        path: PathBuf,
    },
    /// The vault could not be reached, or asked to retry. Nothing was lost: retry later.
    #[error("the vault is unreachable ({detail}); nothing changed there, retry later")]
    VaultUnreachable {
        /// What failed.
        detail: String,
    },
    /// The vault, or the relay in front of it, rejected a request.
    #[error(
        "the vault rejected the request: {code} ({message}); this is a client or deployment bug"
    )]
    VaultRejected {
        /// HTTP status.
        status: u16,
        /// The error code of spec section 4.15.
        code: String,
        /// The server's message.
        message: String,
    },
    /// TLS with the vault failed. Retrying does not help: the URL says `https://` for a vault
    /// served over plain HTTP, or the vault's certificate is not trusted here.
    #[error(
        "cannot set up TLS with the vault at {url} ({detail}); if the vault is served over plain \
         HTTP its URL starts with http://, otherwise its certificate is not trusted here"
    )]
    VaultTls {
        /// The vault's URL.
        url: String,
        /// What failed.
        detail: String,
    },
    /// The server at the vault URL answered, but not as a vault does (a web server's error
    /// page, say): the URL is wrong.
    #[error(
        "the server at {url} is not a vault: it answered HTTP {status} without the vault's error \
         format; check the vault URL"
    )]
    NotAVault {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The vault protocol failed (a malformed or unexpected answer, a refusal).
    #[error("the vault protocol failed: {0}")]
    Vault(ClientError),
    /// The vault seals a different key than this device holds: another device registered the
    /// account since.
    #[error(
        "the vault holds a different backup key than this device (another device registered \
         this account); restore on this device or turn backups off and on again"
    )]
    VaultKeyMismatch,
    /// The fleet key bundle did not verify against the pinned fleet: the vault is not the
    /// pinned one, or someone tampered with its keys.
    #[error("the vault's fleet key bundle is rejected: {0}; do not send it a password")]
    FleetBundle(#[from] FleetError),
    /// The store's newest backup was made under a key this device does not hold: another
    /// device rotated the key (or backs up to this store under a key of its own). A backup
    /// under this device's key would be skipped by every restore with the current key, so none
    /// is made.
    #[error(
        "the newest backup in the store ({object}) was made with another backup key (key id \
         {key_id}) than this device holds: another device rotated the key, or backs up to this \
         store under its own key. Nothing was stored: a backup under this device's key would be \
         skipped by a restore with the current key"
    )]
    KeyRotatedElsewhere {
        /// The newest backup.
        object: String,
        /// The identifier of the key it was made with (public, section 2.3).
        key_id: String,
    },
    /// Password mode needs a vault, and none is configured.
    #[error("no vault is configured for this client; configure a vault URL and fleet pin")]
    NoVault,
    /// A vault URL is set, but this build of the client has no HTTP transport (the `http`
    /// feature is off) and none was given in `Options::transport`.
    #[error(
        "this build of the client has no HTTP transport (feature `http`); give the vault \
         transport in Options::transport"
    )]
    NoHttpTransport,
    /// The account identifier is not 1 to 64 bytes (the vault's limit, spec section 4.4).
    #[error(
        "the account identifier is {len} bytes long; give 1 to 64 bytes, for example the phone \
         number"
    )]
    InvalidAccount {
        /// Its length in bytes.
        len: usize,
    },
    /// The vault URL is not an `http://` or `https://` URL. Nothing was sent anywhere.
    #[error("invalid vault URL {url:?}: {why}")]
    InvalidVaultUrl {
        /// The URL given.
        url: String,
        /// What is wrong.
        why: String,
    },
    /// The fleet pin file is not valid.
    #[error("fleet pin, line {line}: {why}")]
    Pin {
        /// 1-based line number (0 when the whole file is at fault).
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// The backup store failed. Retry; if it persists, check the store's location and
    /// credentials.
    #[error("the backup store failed to {operation}: {detail}")]
    Store {
        /// What the client asked of the store.
        operation: &'static str,
        /// The store's message.
        detail: String,
    },
    /// The backup store location is not valid.
    #[error("invalid backup store location {location:?}: {why}")]
    StoreLocation {
        /// The location given.
        location: String,
        /// What is wrong.
        why: String,
    },
    /// Reading or writing local files failed.
    #[error("cannot {operation} {path}: {source}")]
    Io {
        /// What the client tried.
        operation: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The state directory holds no client.
    #[error("{path} holds no client state; create the client first")]
    NotInitialised {
        /// The state directory.
        path: PathBuf,
    },
    /// The state directory already holds a client.
    #[error("{path} already holds a client; open it instead, or use an empty directory")]
    AlreadyInitialised {
        /// The state directory.
        path: PathBuf,
    },
    /// The local state is unreadable or inconsistent (not something this client writes).
    #[error(
        "the client state in {path} is damaged: {why}; restore from a backup into a new directory"
    )]
    CorruptState {
        /// The state directory.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A snapshot operation failed (spec section 8.10); the code is the snapshot error's.
    #[error(transparent)]
    Snapshot(e2ee_backup_snapshot::Error),
    /// A test fault injected at a named step: the operation stopped there, as if the device
    /// had crashed.
    #[error("injected fault at {point}: the operation stopped there; reopen and resume")]
    Injected {
        /// The step.
        point: String,
    },
}

impl Error {
    /// A short, stable name for the error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::IllegalState { .. } => "illegal-state",
            Error::PendingOperation { .. } => "pending-operation",
            Error::WrongPassword { .. } => "wrong-password",
            Error::LockedOut => "locked-out",
            Error::AttemptsExhausted => "attempts-exhausted",
            Error::WrongKey => "wrong-key",
            Error::InvalidKeyDigits(_) => "invalid-key-digits",
            Error::BackupCorrupt { .. } => "backup-corrupt",
            Error::NoBackupFound { .. } => "no-backup-found",
            Error::StoreMissing { .. } => "store-missing",
            Error::VaultUnreachable { .. } => "vault-unreachable",
            Error::VaultRejected { .. } => "vault-rejected",
            Error::VaultTls { .. } => "vault-tls",
            Error::NotAVault { .. } => "not-a-vault",
            Error::Vault(_) => "vault-protocol",
            Error::VaultKeyMismatch => "vault-key-mismatch",
            Error::FleetBundle(_) => "fleet-bundle-rejected",
            Error::KeyRotatedElsewhere { .. } => "key-rotated-elsewhere",
            Error::NoVault => "no-vault",
            Error::NoHttpTransport => "no-http-transport",
            Error::InvalidAccount { .. } => "invalid-account",
            Error::InvalidVaultUrl { .. } => "invalid-vault-url",
            Error::Pin { .. } => "invalid-pin",
            Error::Store { .. } => "store",
            Error::StoreLocation { .. } => "store-location",
            Error::Io { .. } => "io",
            Error::NotInitialised { .. } => "not-initialised",
            Error::AlreadyInitialised { .. } => "already-initialised",
            Error::CorruptState { .. } => "corrupt-state",
            Error::Injected { .. } => "injected-fault",
            Error::Snapshot(err) => err.code(),
        }
    }

    /// Whether running the same operation again later may succeed without changing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::VaultUnreachable { .. }
                | Error::AttemptsExhausted
                | Error::Store { .. }
                | Error::Io { .. }
                | Error::Injected { .. }
        )
    }
}

impl From<ClientError> for Error {
    fn from(err: ClientError) -> Self {
        match err {
            ClientError::WrongPassword { remaining } => Error::WrongPassword { remaining },
            ClientError::Locked => Error::LockedOut,
            ClientError::Exhausted => Error::AttemptsExhausted,
            other => Error::Vault(other),
        }
    }
}

/// The sentence of [`Error::WrongPassword`].
fn wrong_password(remaining: u8) -> String {
    let head = "wrong password, or no backup is registered for this account (the vault does not \
                tell which)";
    match remaining {
        0 => format!(
            "{head}: no attempt remains; once the logins in flight end, the next wrong password \
             makes the vault destroy the backup key for good"
        ),
        1 => format!("{head}: 1 attempt remains before the vault destroys the backup key"),
        n => format!("{head}: {n} attempts remain before the vault destroys the backup key"),
    }
}

/// Shorthand.
pub type Result<T, E = Error> = std::result::Result<T, E>;
