//! The settings journey: pointing an existing client at another backup store or vault, or
//! giving it another account (spec section 5.3: `set_store`, `set_vault`, `set_account`; the
//! vault's fleet bundle is checked as in section 5.3.1 before anything is saved).

use e2ee_backup_vault::Endpoint;

use super::{Client, check_account};
use crate::error::{Error, Result};
use crate::pin::FleetPin;
use crate::state::{Journal, Mode, VaultSettings};
use crate::store::{self, BackupStore};

impl Client {
    /// Points the client at the backup store at `location` (a directory or an `object_store`
    /// URL), after checking it: the store must exist and list its backups. Returns how many
    /// backups are there. Nothing changes when the check fails. Refused while an interrupted
    /// key rotation or disable still has objects to handle in the current store.
    pub fn set_store(&mut self, location: &str) -> Result<usize> {
        const OP: &str = "change the backup store";
        if let Some(journal @ (Journal::Rotating { .. } | Journal::Disabling { .. })) =
            &self.state.journal
        {
            return Err(Error::PendingOperation { operation: OP, pending: journal.name() });
        }
        let location = store::canonical_location(location);
        let store = BackupStore::open(&location, &self.store_options)?
            .with_part_size(self.store.part_size())
            .with_retry(self.retry, self.on_retry.clone());
        let count = store.list()?.len();
        self.commit_with(|s| s.store = location)?;
        self.store = store;
        Ok(count)
    }

    /// Points the client at the vault at `url`, pinned by `pin`, after checking it: the
    /// vault's fleet key bundle is fetched from `url` and must verify against `pin` (and, when
    /// the fleet stays the same, not be older than the highest epoch seen). Returns the
    /// bundle's epoch. Nothing changes when the check fails.
    ///
    /// Another fleet is refused while the backup key is sealed in the pinned one (password
    /// mode, or an interrupted vault record deletion): its vault could not open the record.
    pub fn set_vault(&mut self, url: &str, pin: FleetPin) -> Result<u64> {
        let pinned = pin.to_pinned()?;
        let current = self.state.vault.clone();
        let same_fleet = current.as_ref().is_some_and(|v| v.pin == pin);
        let sealed_here = matches!(self.state.mode, Mode::Password { .. })
            || matches!(
                self.state.journal,
                Some(Journal::DeletingVaultRecord | Journal::Disabling { vault_record: true })
            );
        if sealed_here && !same_fleet {
            return Err(Error::IllegalState {
                operation: "pin another vault fleet",
                state: "the backup key is sealed in the pinned fleet",
                hint: "only the vault's URL can change; to move to another fleet, switch to key \
                       mode (or turn backups off) first",
            });
        }
        crate::transport::check_vault_url(url)?;
        let mut by_url =
            if self.transport_injected { None } else { Some(self.url_transport(url)?) };
        self.check("vault fleet-bundle")?;
        let signed = match &mut by_url {
            Some(transport) => transport.fleet_bundle()?,
            None => self.transport.as_mut().ok_or(Error::NoVault)?.fleet_bundle()?,
        };
        let last_seen = if same_fleet { current.and_then(|v| v.last_seen_epoch) } else { None };
        let bundle = pinned.verify(&signed, self.now(), last_seen)?;
        Endpoint::from_bundle(&bundle)?;
        let epoch = bundle.epoch.max(last_seen.unwrap_or(0));
        let url = url.to_owned();
        self.commit_with(|s| {
            s.vault = Some(VaultSettings { url, pin, last_seen_epoch: Some(epoch) });
        })?;
        if let Some(transport) = by_url {
            self.transport = Some(transport);
        }
        self.endpoint = None;
        Ok(bundle.epoch)
    }

    /// Changes the account, which the vault keeps the sealed key under. Only where the vault
    /// holds nothing for this device: backups off, or key mode (which never tells the vault),
    /// with no interrupted operation; so that a key-mode client set up without an account can
    /// switch to password mode under the right one.
    pub fn set_account(&mut self, account: &str) -> Result<()> {
        const OP: &str = "change the account";
        self.no_journal(OP)?;
        if !matches!(self.state.mode, Mode::Off | Mode::Key { .. }) {
            return Err(self.illegal(OP, "the vault keeps the key under the account"));
        }
        check_account(account)?;
        let account = account.to_owned();
        self.commit_with(|s| s.account = account)
    }
}
