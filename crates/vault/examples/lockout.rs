//! The vault's one promise, shown end to end (spec 4.10): a password guards K for a fixed number
//! of guesses; once they are spent, even the right password gets nothing.
//!
//! ```text
//! cargo run -p e2ee-backup-vault --example lockout
//! ```
//!
//! The transport is written here, over the one-method [`Exchange`] trait: it forwards each sealed
//! request to an in-memory vault and prints what crosses the wire. An HTTP transport is the same
//! method with a POST in it (spec 4.15).

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_vault::{
    AccountId, ClientError, Endpoint, FleetId, Hsm, HsmConfig, HsmError, HsmSecrets, KsfProfile,
    MemoryVault,
    drive::{self, DriveError, Exchange},
};
use rand_core::OsRng;

/// Prints the size of every sealed request and response: all the relay and the network see.
struct Wire<'a> {
    vault: &'a mut MemoryVault,
    exchanges: usize,
}

impl Exchange for Wire<'_> {
    type Error = HsmError;

    fn exchange(&mut self, account: &[u8], request: &[u8]) -> Result<Vec<u8>, HsmError> {
        let response = self.vault.exchange(account, request)?;
        self.exchanges += 1;
        println!(
            "  exchange {}: {} sealed bytes out, {} back",
            self.exchanges,
            request.len(),
            response.len()
        );
        Ok(response)
    }
}

fn main() {
    let secrets = HsmSecrets::generate(&mut OsRng, FleetId::from_static(b"fleet.example"));
    let (key_id, public) = secrets.public_keys()[0];
    let policy = HsmConfig { budget: 3, ksf_profile: KsfProfile::Fast, ..HsmConfig::default() };
    let mut vault =
        MemoryVault::new(Hsm::new(secrets, policy).expect("a valid policy"), 1_780_000_000);
    let endpoint =
        Endpoint::new(FleetId::from_static(b"fleet.example"), key_id, public).accepting_fast_ksf();
    let mut wire = Wire { vault: &mut vault, exchanges: 0 };
    let account = AccountId::from_static(b"+15551234");

    println!("register (RegisterStart, RegisterFinish):");
    let key = BackupKey::generate();
    let budget = drive::register(&mut wire, &mut OsRng, &endpoint, account, b"correct horse", &key)
        .expect("registration");
    println!("  the vault grants {budget} attempts");

    for guess in [&b"wrong 1"[..], b"wrong 2", b"wrong 3"] {
        println!("guess {:?}:", String::from_utf8_lossy(guess));
        match drive::login(&mut wire, &mut OsRng, &endpoint, account, guess) {
            Err(DriveError::Vault(ClientError::WrongPassword { remaining })) => {
                println!("  wrong password, {remaining} left")
            }
            Err(DriveError::Vault(ClientError::Locked)) => println!("  locked: K is destroyed"),
            other => panic!("a wrong guess must not succeed: {other:?}"),
        }
    }

    println!("the right password, after the budget is spent:");
    match drive::login(&mut wire, &mut OsRng, &endpoint, account, b"correct horse") {
        Err(DriveError::Vault(err)) => println!("  refused: {err}"),
        Err(other) => panic!("transport failure: {other}"),
        Ok(_) => panic!("a locked account must never give K back"),
    }
}
