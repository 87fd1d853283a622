//! How the client reaches the vault (spec section 5.3): a small seam with an HTTP
//! implementation (spec section 4.15) and an in-memory one over
//! [`e2ee_backup_vault::MemoryVault`].
//!
//! The transport moves opaque bytes: requests are HPKE-sealed to the pinned fleet and answers
//! are sealed back, so neither the transport nor the relay behind it can read or forge them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use e2ee_backup_vault::{
    FleetAuthority, FleetBundle, FleetId, Hsm, HsmConfig, HsmSecrets, KsfProfile, MemoryVault,
};
use rand_core::OsRng;

use crate::error::{Error, Result};
use crate::pin::FleetPin;

#[cfg(feature = "http")]
mod http;
#[cfg(feature = "http")]
pub use http::HttpTransport;

/// `url` parsed, if it is an `http://` or `https://` URL: the check every vault URL passes
/// before it is used or saved.
pub fn check_vault_url(url: &str) -> Result<url::Url> {
    let bad = |why: String| Error::InvalidVaultUrl { url: url.to_owned(), why };
    let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("the vault URL must be http:// or https://".to_owned()));
    }
    Ok(parsed)
}

/// Moves sealed requests to the vault and answers back.
pub trait VaultTransport: Send {
    /// The fleet's signed key bundle (spec section 4.3), unverified.
    fn fleet_bundle(&mut self) -> Result<Vec<u8>>;
    /// Sends one sealed request envelope for `account`; returns the sealed response.
    fn call(&mut self, account: &[u8], envelope: &[u8]) -> Result<Vec<u8>>;
}

pub use crate::retry::{RetryNotice, RetryPolicy};

/// An in-memory vault fleet for tests and demos: an HSM with fresh secrets, its authority, and
/// a signed bundle. Clones share the vault.
#[derive(Clone)]
pub struct MemoryTransport {
    vault: Arc<Mutex<MemoryVault>>,
    bundle: Arc<Mutex<Vec<u8>>>,
    down: Arc<AtomicBool>,
}

impl std::fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTransport").finish_non_exhaustive()
    }
}

/// What a test needs besides the transport: the pin to give the client, and the authority to
/// sign other bundles with.
pub struct MemoryFleet {
    /// A transport to the fleet.
    pub transport: MemoryTransport,
    /// The pin clients use.
    pub pin: FleetPin,
    /// The fleet authority.
    pub authority: FleetAuthority,
    /// The bundle the fleet serves.
    pub bundle: FleetBundle,
}

impl MemoryTransport {
    /// A fleet `fleet_id` with guess budget `budget`, using the fast KSF profile (tests only),
    /// serving a bundle of epoch 1 that expires at `not_after`; the vault's clock reads `now`.
    /// Panics unless `fleet_id` is 1 to 64 bytes.
    pub fn fleet(fleet_id: &str, budget: u8, now: u64, not_after: u64) -> MemoryFleet {
        let fleet = FleetId::try_from(fleet_id).expect("a fleet id is 1 to 64 bytes");
        let secrets = HsmSecrets::generate(&mut OsRng, fleet);
        let keys = secrets.public_keys();
        let config = HsmConfig { budget, ksf_profile: KsfProfile::Fast, ..HsmConfig::default() };
        let hsm = Hsm::new(secrets, config).expect("a budget of 1 to 255 is a valid policy");
        let authority = FleetAuthority::generate(&mut OsRng);
        let bundle =
            FleetBundle { fleet_id: fleet_id.as_bytes().to_vec(), epoch: 1, not_after, keys };
        let signed = authority.sign(&bundle).expect("the bundle is well formed");
        let pin = FleetPin {
            fleet_id: fleet_id.to_owned(),
            authority: hex::encode(authority.verifying_key().as_bytes()),
            auditor: None,
        };
        let transport = MemoryTransport {
            vault: Arc::new(Mutex::new(MemoryVault::new(hsm, now))),
            bundle: Arc::new(Mutex::new(signed)),
            down: Arc::new(AtomicBool::new(false)),
        };
        MemoryFleet { transport, pin, authority, bundle }
    }

    /// Replaces the signed bundle the fleet serves.
    pub fn serve_bundle(&self, signed: Vec<u8>) {
        if let Ok(mut b) = self.bundle.lock() {
            *b = signed;
        }
    }

    /// Makes the vault unreachable (or reachable again).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Runs `f` on the vault (to inspect records).
    pub fn with_vault<T>(&self, f: impl FnOnce(&mut MemoryVault) -> T) -> T {
        let mut vault = self.vault.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut vault)
    }

    fn check_up(&self) -> Result<()> {
        if self.down.load(Ordering::SeqCst) {
            Err(Error::VaultUnreachable { detail: "the in-memory vault is down".to_owned() })
        } else {
            Ok(())
        }
    }
}

impl VaultTransport for MemoryTransport {
    fn fleet_bundle(&mut self) -> Result<Vec<u8>> {
        self.check_up()?;
        Ok(self.bundle.lock().map(|b| b.clone()).unwrap_or_default())
    }

    fn call(&mut self, _account: &[u8], envelope: &[u8]) -> Result<Vec<u8>> {
        self.check_up()?;
        self.with_vault(|vault| vault.call(&mut OsRng, envelope)).map_err(|e| {
            Error::VaultRejected {
                status: 422,
                code: "request-does-not-open".to_owned(),
                message: e.to_string(),
            }
        })
    }
}
