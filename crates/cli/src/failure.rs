//! What the user is told when a command fails, and with which exit code.

use e2ee_backup_format::Error;
use e2ee_backup_kdf::KeyParseError;

/// A failed command: a stable code for scripts, a sentence for people, an exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: &'static str,
    pub message: String,
    exit: u8,
}

impl Failure {
    /// Exit code 1: I/O and everything not covered below.
    pub fn other(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), exit: 1 }
    }

    /// Exit code 2: the command line or its inputs are not usable.
    pub fn usage(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), exit: 2 }
    }

    pub fn io(what: &str, err: std::io::Error) -> Self {
        Self::other("io", format!("{what}: {err}"))
    }

    pub fn exit_code(&self) -> u8 {
        self.exit
    }

    pub fn print(&self, json: bool) {
        if json {
            let value = serde_json::json!({ "ok": false, "error": { "code": self.code, "message": self.message } });
            println!("{value}");
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
        Self { code: err.code(), message: format!("{err}.{hint}"), exit }
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
        Self { code: err.code(), message: format!("{err}."), exit }
    }
}
