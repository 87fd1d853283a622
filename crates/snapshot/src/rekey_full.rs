//! Full re-keying (spec section 8.11, "Full re-keying"): a rotation of K that also replaces
//! the media root key, so that neither K_old nor the old MRK opens the media of the snapshots
//! any more.
//!
//! The new MRK is stored first, wrapped under K_new, as `keys/media-root-next.e2ee`; the old
//! one stays in `keys/media-root.e2ee` (under K_old) until every manifest is switched. Each
//! manifest under K_old is switched in turn: each blob it references is read under the old
//! MRK and put under its new name (new MRK), then the manifest is rewritten with the new names
//! under K_new, by one put. Then the media root object is replaced by the new MRK under K_new,
//! and only then are the blobs no manifest references deleted, the prune records of the old
//! MRK removed, and the `next` object deleted. The whole run is under sweep records (section
//! 8.12.2), so no backup runs meanwhile; it refuses to start while one is running.
//!
//! Where a run is, is read from the store alone, so a run after a crash at any step resumes:
//!
//! | `keys/media-root.e2ee` | `keys/media-root-next.e2ee` | state |
//! |---|---|---|
//! | opens under K_old | absent or present | copying: manifests under K_old are still to switch |
//! | opens under K_new, = next | present | switched: old blobs and records are still to delete |
//! | opens under K_new | absent | done (or the store's MRK was drawn under K_new) |

use std::collections::{BTreeMap, BTreeSet};

use e2ee_backup_kdf::BackupKey;

use crate::blob::{BLOB_DIR, BlobName, seal_blob};
use crate::keys::{AccountKeys, MediaKeys, MediaRootKey};
use crate::manifest::EntryKind;
use crate::prune::{HOLD_DIR, PRUNE_DIR, RecordKind, Renewal, SWEEP_DIR, open_record, seal_record};
use crate::snapshots::{
    ChunkParams, Clock, MEDIA_ROOT_OBJECT, Snapshots, open_manifest, open_media_root,
    seal_manifest, seal_media_root, snapshot_object, system_clock,
};
use crate::store::{Store, StoreError};
use crate::{Error, Result};

/// The new media root key of a full re-keying in progress, wrapped under K_new.
pub const MEDIA_ROOT_NEXT_OBJECT: &str = "keys/media-root-next.e2ee";

/// What a full re-keying did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FullRekeyReport {
    /// Manifests rewritten with the new blob names under the new K.
    pub manifests_rewritten: u64,
    /// Manifests already switched (an interrupted run resumed).
    pub manifests_already: u64,
    /// Distinct blobs re-encrypted under the new media root key by this run (put under their
    /// new name, or found there from an interrupted run).
    pub blobs_rekeyed: u64,
    /// Blobs deleted once no manifest referenced them: the old ones.
    pub blobs_deleted: u64,
    /// Prune records of the old media root key removed.
    pub records_removed: u64,
    /// Whether this run replaced the media root key.
    pub media_root_replaced: bool,
    /// Objects that open under neither key, or blobs that are missing or damaged: left as they
    /// are (a manifest keeps its reference to such a blob).
    pub damaged: Vec<String>,
}

/// [`rekey_full_with`] with the system clock and the default grace period.
pub fn rekey_full<S: Store + ?Sized>(
    store: &S,
    old: &BackupKey,
    new: &BackupKey,
) -> Result<FullRekeyReport> {
    rekey_full_with(store, old, new, system_clock(), crate::prune::DEFAULT_GRACE)
}

/// Re-keys the snapshots from K_old to K_new and replaces the media root key (section 8.11,
/// "Full re-keying"). Run again after an interruption (with both keys), it resumes; run on a
/// store already done, it does nothing. `clock` and `grace` are those of the prune records
/// (section 8.12.2).
pub fn rekey_full_with<S: Store + ?Sized>(
    store: &S,
    old: &BackupKey,
    new: &BackupKey,
    clock: Clock,
    grace: std::time::Duration,
) -> Result<FullRekeyReport> {
    let (old_account, new_account) = (AccountKeys::derive(old), AccountKeys::derive(new));
    let view = |account: &AccountKeys, mrk: &MediaRootKey| Snapshots {
        store,
        account: account.clone(),
        media: Some(MediaKeys::derive(mrk)),
        chunking: ChunkParams::default(),
        database_chunking: crate::snapshots::DATABASE_CHUNKING,
        clock: clock.clone(),
        grace,
    };
    let mut report = FullRekeyReport::default();
    let Some(root) = get(store, MEDIA_ROOT_OBJECT)? else {
        // No media root key: no blob, nothing to replace. A first snapshot draws a new one.
        store
            .delete(MEDIA_ROOT_NEXT_OBJECT)
            .map_err(Error::store("delete", MEDIA_ROOT_NEXT_OBJECT))?;
        return Ok(report);
    };
    let next = get(store, MEDIA_ROOT_NEXT_OBJECT)?;
    let current = open_media_root(&new_account, &root).ok();
    let (new_mrk, sweep) = match (current, next) {
        (Some(_), None) => return Ok(report),
        (Some(current), Some(next)) => {
            if open_media_root(&new_account, &next)? != current {
                return Err(Error::RekeyConflict {
                    why: "the media root key opens under the new K but is not the new one",
                });
            }
            // Switched by an earlier run: exclude backups again, then clean up.
            let new_view = view(&new_account, &current);
            let sweep = Sweep::start(&new_view, true)?;
            (current, sweep)
        }
        (None, next) => {
            let old_mrk = open_media_root(&old_account, &root)?;
            let old_view = view(&old_account, &old_mrk);
            let mut old_sweep = Sweep::start(&old_view, false)?;
            let new_mrk = match next {
                Some(next) => open_media_root(&new_account, &next)?,
                None => {
                    let drawn = MediaRootKey::generate();
                    let file = seal_media_root(&new_account, &drawn)?;
                    old_sweep.keep(&old_view)?;
                    match store.put(MEDIA_ROOT_NEXT_OBJECT, file, true) {
                        Ok(()) => drawn,
                        Err(StoreError::AlreadyExists) => {
                            let file = get(store, MEDIA_ROOT_NEXT_OBJECT)?
                                .ok_or(Error::RekeyConflict { why: "the next key vanished" })?;
                            open_media_root(&new_account, &file)?
                        }
                        Err(e) => return Err(Error::store("write", MEDIA_ROOT_NEXT_OBJECT)(e)),
                    }
                }
            };
            let new_view = view(&new_account, &new_mrk);
            let switched = switch_manifests(&old_view, &new_view, &mut old_sweep, &mut report)
                .and_then(|()| {
                    // Backups that open the new key find this sweep record and stop.
                    let sweep = Sweep::put(&new_view)?;
                    old_sweep.keep(&old_view)?;
                    let file = seal_media_root(&new_account, &new_mrk)?;
                    store
                        .put(MEDIA_ROOT_OBJECT, file, false)
                        .map_err(Error::store("write", MEDIA_ROOT_OBJECT))?;
                    report.media_root_replaced = true;
                    Ok(sweep)
                });
            match switched {
                Ok(sweep) => (new_mrk, sweep),
                Err(err) => {
                    // Best effort: after a crash the record stays until it is stale.
                    let _ = store.delete(&old_sweep.object);
                    return Err(err);
                }
            }
        }
    };
    let new_view = view(&new_account, &new_mrk);
    let mut sweep = sweep;
    let cleaned = clean_up(&new_view, &old_account, &mut sweep, &mut report);
    if let Err(err) = cleaned {
        let _ = store.delete(&sweep.object);
        return Err(err);
    }
    store.delete(&sweep.object).map_err(Error::store("delete", &sweep.object))?;
    store.delete(MEDIA_ROOT_NEXT_OBJECT).map_err(Error::store("delete", MEDIA_ROOT_NEXT_OBJECT))?;
    Ok(report)
}

fn get<S: Store + ?Sized>(store: &S, name: &str) -> Result<Option<Vec<u8>>> {
    match store.get(name) {
        Ok(file) => Ok(Some(file)),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(Error::store("read", name)(e)),
    }
}

/// Steps 3 and 4: each manifest still under K_old gets its blobs copied under their new names,
/// then is rewritten with those names under K_new. A manifest under K_new is switched already
/// (no one else writes under K_new while the media root key is under K_old).
fn switch_manifests<S: Store + ?Sized>(
    old_view: &Snapshots<'_, S>,
    new_view: &Snapshots<'_, S>,
    sweep: &mut Sweep,
    report: &mut FullRekeyReport,
) -> Result<()> {
    let store = old_view.store;
    let new_media = new_view.media()?;
    let mut renamed: BTreeMap<BlobName, BlobName> = BTreeMap::new();
    for id in old_view.ids()? {
        let object = snapshot_object(&id);
        let Some(file) = get(store, &object)? else { continue };
        if open_manifest(&new_view.account, &id, &file).is_ok() {
            report.manifests_already += 1;
            continue;
        }
        let Ok(mut manifest) = open_manifest(&old_view.account, &id, &file) else {
            report.damaged.push(object);
            continue;
        };
        for entry in &mut manifest.entries {
            let EntryKind::File { blobs } = &mut entry.kind else { continue };
            for blob in blobs {
                if let Some(name) = renamed.get(&blob.name) {
                    blob.name = *name;
                    continue;
                }
                // One blob in memory at a time (at most 16 MiB).
                let name = match old_view.read_blob(blob) {
                    Ok(content) => {
                        let name = new_media.blob_name(&content);
                        let target = name.object_name();
                        let present =
                            store.exists(&target).map_err(Error::store("check", &target))?;
                        if !present {
                            let sealed = seal_blob(new_media, &name, &content)?;
                            sweep.keep(old_view)?;
                            store
                                .put(&target, sealed, false)
                                .map_err(Error::store("write", &target))?;
                        }
                        report.blobs_rekeyed += 1;
                        name
                    }
                    Err(err @ Error::Store { .. }) => return Err(err),
                    // Missing or damaged already: the reference stays as it is.
                    Err(_) => {
                        report.damaged.push(blob.name.object_name());
                        blob.name
                    }
                };
                renamed.insert(blob.name, name);
                blob.name = name;
            }
        }
        let file = seal_manifest(&new_view.account, &id, &manifest)?;
        sweep.keep(old_view)?;
        store.put(&object, file, false).map_err(Error::store("write", &object))?;
        report.manifests_rewritten += 1;
    }
    Ok(())
}

/// Steps 6 and 7: deletes the blobs no manifest references (every one under the old key) and
/// the prune records that do not open under the new media root key.
fn clean_up<S: Store + ?Sized>(
    new_view: &Snapshots<'_, S>,
    old_account: &AccountKeys,
    sweep: &mut Sweep,
    report: &mut FullRekeyReport,
) -> Result<()> {
    let store = new_view.store;
    let mut referenced = BTreeSet::new();
    for id in new_view.ids()? {
        let object = snapshot_object(&id);
        let Some(file) = get(store, &object)? else { continue };
        match open_manifest(&new_view.account, &id, &file) {
            Ok(manifest) => {
                for entry in manifest.entries {
                    if let EntryKind::File { blobs } = entry.kind {
                        referenced.extend(blobs.into_iter().map(|b| b.name));
                    }
                }
            }
            Err(_) if open_manifest(old_account, &id, &file).is_ok() => {
                return Err(Error::RekeyConflict {
                    why: "a manifest under the old K appeared after the media root key was replaced",
                });
            }
            Err(_) => {
                if !report.damaged.contains(&object) {
                    report.damaged.push(object);
                }
            }
        }
    }
    let listed = store.list(&format!("{BLOB_DIR}/")).map_err(Error::store("list", BLOB_DIR))?;
    for object in listed {
        let Some(name) = BlobName::from_object_name(&object) else { continue };
        if referenced.contains(&name) {
            continue;
        }
        sweep.keep(new_view)?;
        store.delete(&object).map_err(Error::store("delete", &object))?;
        report.blobs_deleted += 1;
    }
    let media = new_view.media()?;
    let records = store.list(&format!("{PRUNE_DIR}/")).map_err(Error::store("list", PRUNE_DIR))?;
    let ours = format!("-{}.e2ee", sweep_marker(media));
    for object in records {
        if object == sweep.object {
            continue;
        }
        if object.starts_with(&format!("{SWEEP_DIR}/")) && object.ends_with(&ours) {
            // Left by an earlier run of this re-keying, stopped part way.
            store.delete(&object).map_err(Error::store("delete", &object))?;
            report.records_removed += 1;
            continue;
        }
        let kind = if object.starts_with(&format!("{HOLD_DIR}/")) {
            RecordKind::Hold
        } else if object.starts_with(&format!("{SWEEP_DIR}/")) {
            RecordKind::Sweep
        } else {
            RecordKind::Candidates
        };
        let Some(file) = get(store, &object)? else { continue };
        if open_record(media, kind, &object, &file).is_ok() {
            continue;
        }
        store.delete(&object).map_err(Error::store("delete", &object))?;
        report.records_removed += 1;
    }
    Ok(())
}

/// The `r` of a full re-keying's sweep record names (section 8.11): the first 16 hex digits
/// of the HMAC, under the blob-name key of the media root key whose prune key seals it, of
/// `SWEEP_MARKER`. So that a run after a crash finds and removes the records an earlier run
/// left, and no prune's (whose `r` is random).
fn sweep_marker(media: &MediaKeys) -> String {
    media.blob_name(SWEEP_MARKER).to_hex()[..16].to_owned()
}

/// What the marker of [`sweep_marker`] is the MAC of.
const SWEEP_MARKER: &[u8] = b"e2ee-backups/v1/snapshot/full-rekey-sweep";

/// A full re-keying's sweep record (section 8.12.2): while it is live, backups stop before
/// they list or upload a blob. Renewed after an eighth of the grace period; a run that paused
/// a quarter of it stops ([`Error::RekeyPaused`]), since a backup may have judged the record
/// stale meanwhile (clocks differ by less than a quarter).
struct Sweep {
    object: String,
    time: u64,
}

impl Sweep {
    fn put<S: Store + ?Sized>(view: &Snapshots<'_, S>) -> Result<Self> {
        let time = view.now_micros();
        let object = format!("{SWEEP_DIR}/{time:020}-{}.e2ee", sweep_marker(view.media()?));
        let file = seal_record(view.media()?, RecordKind::Sweep, time, &BTreeSet::new())?;
        view.store.put(&object, file, false).map_err(Error::store("write", &object))?;
        Ok(Self { object, time })
    }

    /// Puts the record, then refuses ([`Error::BackupRunning`]) if a hold is live. With
    /// `skip_foreign`, a hold that does not open under this view's key is one of the old media
    /// root key, from before the switch, and over.
    fn start<S: Store + ?Sized>(view: &Snapshots<'_, S>, skip_foreign: bool) -> Result<Self> {
        let sweep = Self::put(view)?;
        let checked = sweep.live_hold(view, skip_foreign);
        match checked {
            Ok(None) => Ok(sweep),
            Ok(Some(since)) => {
                let _ = view.store.delete(&sweep.object);
                Err(Error::BackupRunning { since })
            }
            Err(err) => {
                let _ = view.store.delete(&sweep.object);
                Err(err)
            }
        }
    }

    fn live_hold<S: Store + ?Sized>(
        &self,
        view: &Snapshots<'_, S>,
        skip_foreign: bool,
    ) -> Result<Option<u64>> {
        let listed =
            view.store.list(&format!("{HOLD_DIR}/")).map_err(Error::store("list", HOLD_DIR))?;
        for object in listed {
            let Some(file) = get(view.store, &object)? else { continue };
            let record = match open_record(view.media()?, RecordKind::Hold, &object, &file) {
                Ok(record) => record,
                Err(_) if skip_foreign => continue,
                Err(err) => return Err(err),
            };
            if self.time < record.time.saturating_add(view.grace_micros()) {
                return Ok(Some(record.time));
            }
        }
        Ok(None)
    }

    /// Before each write: stops once a quarter of the grace period has passed since the
    /// record was written; renews it after an eighth.
    fn keep<S: Store + ?Sized>(&mut self, view: &Snapshots<'_, S>) -> Result<()> {
        let renewal = Renewal { stop: 4, renew: 8, expired: Error::RekeyPaused };
        view.keep_record(RecordKind::Sweep, &self.object, &mut self.time, renewal)
    }
}
