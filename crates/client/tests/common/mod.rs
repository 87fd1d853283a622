//! A world for client tests: an in-memory vault fleet, a backup store in a temporary
//! directory, and client state directories beside it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use e2ee_backup_client::faults::{FaultInjector, NoFaults};
use e2ee_backup_client::{Client, MemoryFleet, MemoryTransport, Options, Setup};
use e2ee_backup_kdf::BackupKey;
use tempfile::TempDir;

pub const NOW: u64 = 1_800_000_000;
pub const ACCOUNT: &str = "+15550001111";
pub const PASSWORD: &str = "correct horse battery staple";

pub struct World {
    pub fleet: MemoryFleet,
    pub root: TempDir,
}

impl World {
    pub fn new(budget: u8) -> Self {
        let fleet = MemoryTransport::fleet("fleet.test", budget, NOW, NOW + 86_400);
        Self { fleet, root: tempfile::tempdir().unwrap() }
    }

    pub fn store(&self) -> PathBuf {
        self.root.path().join("store")
    }

    pub fn device(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    pub fn options(&self, faults: Arc<dyn FaultInjector>) -> Options {
        Options {
            transport: Some(Box::new(self.fleet.transport.clone())),
            faults,
            now: Some(NOW),
            accept_fast_ksf: true,
            ..Options::default()
        }
    }

    /// Opens device `name`, creating it (backups off) if new.
    pub fn client_with(&self, name: &str, faults: Arc<dyn FaultInjector>) -> Client {
        let dir = self.device(name);
        if !dir.join("state.json").exists() {
            let setup = Setup {
                account: ACCOUNT.to_owned(),
                store: self.store().to_string_lossy().into_owned(),
                vault: Some(("http://vault.invalid".to_owned(), self.fleet.pin.clone())),
            };
            Client::create(&dir, setup, self.options(Arc::new(NoFaults))).unwrap();
        }
        Client::open(&dir, self.options(faults)).unwrap()
    }

    pub fn client(&self, name: &str) -> Client {
        self.client_with(name, Arc::new(NoFaults))
    }

    /// The raw bytes of every backup object, by name.
    pub fn objects(&self) -> Vec<(String, Vec<u8>)> {
        let dir = self.store().join("backups");
        let mut out: Vec<_> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| {
                        (
                            e.file_name().to_string_lossy().into_owned(),
                            std::fs::read(e.path()).unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    pub fn target(&self, name: &str) -> PathBuf {
        self.root.path().join(format!("{name}.restored"))
    }
}

/// The keys in a device's keystore file.
pub fn keystore_keys(dir: &Path) -> Vec<BackupKey> {
    let text = std::fs::read_to_string(dir.join("keystore")).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(_, k)| {
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(k, &mut bytes).unwrap();
            BackupKey::from_bytes(bytes)
        })
        .collect()
}

/// The plaintext of `file` under whichever of `keys` opens it.
pub fn open_with_any(keys: &[BackupKey], file: &[u8]) -> Option<Vec<u8>> {
    keys.iter().find_map(|k| e2ee_backup_format::decrypt_to_vec(k, file).ok().map(|(_, p)| p))
}
