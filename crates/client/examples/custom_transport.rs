//! A phone enables password mode, backs up, and a new phone restores with the password alone
//! (spec chapter 5), over a vault transport written here.
//!
//! ```text
//! cargo run -p e2ee-backup-client --example custom_transport
//! ```
//!
//! A transport moves opaque bytes: the fleet's signed key bundle, and sealed requests and
//! responses that neither it nor any relay can read or forge. This one forwards to an in-memory
//! fleet and counts the exchanges; a real one carries the same bytes over HTTP (spec 4.15) or a
//! platform's own networking.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use e2ee_backup_client::{
    Client, MemoryFleet, MemoryTransport, Options, Result, Setup, Source, VaultTransport,
};

/// Forwards to the in-memory fleet and counts the sealed exchanges.
struct Counting {
    fleet: MemoryTransport,
    calls: Arc<AtomicUsize>,
}

impl VaultTransport for Counting {
    fn fleet_bundle(&mut self) -> Result<Vec<u8>> {
        self.fleet.fleet_bundle()
    }

    fn call(&mut self, account: &[u8], envelope: &[u8]) -> Result<Vec<u8>> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.fleet.call(account, envelope)
    }
}

const NOW: u64 = 1_800_000_000;
const PASSWORD: &str = "correct horse battery staple";

/// Opens the client in `dir`, creating it first if it is new.
fn device(
    dir: &Path,
    store: &Path,
    fleet: &MemoryFleet,
    calls: &Arc<AtomicUsize>,
) -> Result<Client> {
    let options = || Options {
        transport: Some(Box::new(Counting {
            fleet: fleet.transport.clone(),
            calls: calls.clone(),
        })),
        now: Some(NOW),
        // The in-memory fleet stretches passwords with the fast test profile.
        accept_fast_ksf: true,
        ..Options::default()
    };
    if !dir.exists() {
        let setup = Setup {
            account: "+15551234567".into(),
            store: store.to_string_lossy().into_owned(),
            vault: Some(("http://vault.invalid".into(), fleet.pin.clone())),
        };
        Client::create(dir, setup, options())?;
    }
    Client::open(dir, options())
}

fn main() -> Result<()> {
    let root = tempfile::tempdir().expect("a temporary directory");
    let store = root.path().join("store");
    let fleet = MemoryTransport::fleet("fleet.example", 10, NOW, NOW + 86_400);
    let calls = Arc::new(AtomicUsize::new(0));

    // The first phone: a random K, sealed in the vault behind the password.
    let mut phone = device(&root.path().join("phone"), &store, &fleet, &calls)?;
    phone.enable_with_password(PASSWORD)?;
    let info = phone.create_backup(Source::Bytes(b"the chat database"), "msgstore.db")?;
    println!(
        "backed up as {} ({} vault exchanges so far)",
        info.object,
        calls.load(Ordering::Relaxed)
    );

    // A new phone knows only the account and the password.
    let mut fresh = device(&root.path().join("new-phone"), &store, &fleet, &calls)?;
    let target = root.path().join("restored.db");
    let report = fresh.restore_with_password(PASSWORD, &target)?;
    assert_eq!(std::fs::read(&target).expect("the restored file"), b"the chat database");
    println!("restored {} into {}", report.object, target.display());
    println!("{} vault exchanges in all", calls.load(Ordering::Relaxed));
    Ok(())
}
