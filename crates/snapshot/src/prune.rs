//! Forgetting snapshots by a retention policy, and pruning the blobs no snapshot references
//! (spec sections 8.12.1 and 8.12.2).
//!
//! Pruning is safe against a crash at any step and against a backup running at the same time
//! on another device: a backup writes a **hold** before it lists or uploads a blob, and a prune
//! writes a **sweep** record before it looks for holds; a prune deletes nothing while a live
//! hold exists, and a backup that finds a live sweep stops. Whichever writes second sees the
//! other (the store is linearizable). On top of that, a blob is deleted only when it was
//! already unreferenced in the **candidates** record of a prune at least the grace period
//! earlier.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use e2ee_backup_format::{EncryptOptions, Metadata, decrypt_to_vec, encrypt_to_vec};

use crate::blob::{BLOB_DIR, BlobName};
use crate::keys::MediaKeys;
use crate::manifest::EntryKind;
use crate::snapshots::{Snapshots, snapshot_object};
use crate::store::{Store, StoreError};
use crate::{Error, Result};

/// The folder of the prune records.
pub const PRUNE_DIR: &str = "prune";
/// The candidates record: the blobs a prune found unreferenced, and when.
pub const CANDIDATES_OBJECT: &str = "prune/candidates.e2ee";
/// The folder of backups' holds, one object per backup in progress.
pub const HOLD_DIR: &str = "prune/holds";
/// The folder of prunes' sweep records, one object per prune in progress.
pub const SWEEP_DIR: &str = "prune/sweeps";
/// The metadata field of a prune record, whose value is its kind.
pub const PRUNE_FIELD: &str = "prune";
/// The default grace period: 24 hours.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 60 * 60);

const RECORD_VERSION: u8 = 1;
const MICROS_PER_DAY: u64 = 86_400 * 1_000_000;

/// The three kinds of prune record, each the word of its `prune` metadata field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RecordKind {
    Candidates,
    Hold,
    Sweep,
}

impl RecordKind {
    fn word(self) -> &'static str {
        match self {
            RecordKind::Candidates => "candidates",
            RecordKind::Hold => "hold",
            RecordKind::Sweep => "sweep",
        }
    }
}

/// A decoded prune record: its time (Unix microseconds) and, for candidates, blob names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) time: u64,
    pub(crate) names: Vec<BlobName>,
}

/// `01 || time (be64) || count (be32) || count × name (32 bytes), strictly increasing`.
fn encode_record(time: u64, names: &BTreeSet<BlobName>) -> Vec<u8> {
    let mut out = Vec::with_capacity(13 + 32 * names.len());
    out.push(RECORD_VERSION);
    out.extend_from_slice(&time.to_be_bytes());
    out.extend_from_slice(&(names.len() as u32).to_be_bytes());
    for name in names {
        out.extend_from_slice(&name.0);
    }
    out
}

fn decode_record(bytes: &[u8]) -> Result<Record, &'static str> {
    let (&version, rest) = bytes.split_first().ok_or("truncated")?;
    if version != RECORD_VERSION {
        return Err("unsupported version");
    }
    if rest.len() < 12 {
        return Err("truncated");
    }
    let time = u64::from_be_bytes(rest[..8].try_into().expect("8 bytes"));
    let count = u32::from_be_bytes(rest[8..12].try_into().expect("4 bytes")) as usize;
    let body = &rest[12..];
    if body.len() != count.checked_mul(32).ok_or("truncated")? {
        return Err(if body.len() < count * 32 { "truncated" } else { "trailing bytes" });
    }
    let names: Vec<BlobName> =
        body.chunks_exact(32).map(|c| BlobName(c.try_into().expect("32 bytes"))).collect();
    if names.windows(2).any(|w| w[0] >= w[1]) {
        return Err("names not strictly increasing");
    }
    Ok(Record { time, names })
}

pub(crate) fn seal_record(
    media: &MediaKeys,
    kind: RecordKind,
    time: u64,
    names: &BTreeSet<BlobName>,
) -> Result<Vec<u8>> {
    let mut options = EncryptOptions::default();
    options.metadata = Metadata {
        created_at: time / 1_000_000,
        plaintext_len: None,
        fields: BTreeMap::from([(PRUNE_FIELD.to_owned(), kind.word().to_owned())]),
    };
    encrypt_to_vec(&media.prune, options, &encode_record(time, names)).map_err(Error::Encrypt)
}

pub(crate) fn open_record(
    media: &MediaKeys,
    kind: RecordKind,
    object: &str,
    file: &[u8],
) -> Result<Record> {
    let refuse = |why: String| Error::PruneRecord { name: object.to_owned(), why };
    let (metadata, encoded) =
        decrypt_to_vec(&media.prune, file).map_err(|e| refuse(e.to_string()))?;
    if metadata.fields.get(PRUNE_FIELD).map(String::as_str) != Some(kind.word()) {
        return Err(refuse(format!("not a {} record", kind.word())));
    }
    let record = decode_record(&encoded).map_err(|why| refuse(why.to_owned()))?;
    if kind != RecordKind::Candidates && !record.names.is_empty() {
        return Err(refuse("names in a record that has none".to_owned()));
    }
    Ok(record)
}

/// A name for a hold or sweep record: `<folder>/<t>-<r>.e2ee`, `t` the time in microseconds
/// (20 digits), `r` 16 random hex digits.
pub(crate) fn record_object(folder: &str, time: u64) -> String {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).expect("the operating system's random source failed");
    format!("{folder}/{time:020}-{}.e2ee", hex::encode(random))
}

/// How long snapshots are kept (section 8.12.1, restic's rules). A snapshot is kept when any
/// rule keeps it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ForgetPolicy {
    /// The newest `keep_last` snapshots.
    pub keep_last: u32,
    /// The newest snapshot of each of the `keep_daily` most recent UTC days that have one.
    pub keep_daily: u32,
    /// The newest snapshot of each of the `keep_weekly` most recent weeks (Monday to Sunday,
    /// UTC) that have one.
    pub keep_weekly: u32,
    /// The newest snapshot of each of the `keep_monthly` most recent calendar months (UTC)
    /// that have one.
    pub keep_monthly: u32,
}

impl ForgetPolicy {
    /// Whether every rule is 0: such a policy would forget everything and is refused.
    pub fn keeps_nothing(&self) -> bool {
        *self == Self::default()
    }

    /// For snapshots made at `times` (Unix microseconds), oldest first, which ones the policy
    /// keeps.
    pub fn keep(&self, times: &[u64]) -> Vec<bool> {
        let day = |t: u64| (t / MICROS_PER_DAY) as i64;
        let rules: [(u32, &dyn Fn(u64) -> i64); 4] = [
            (self.keep_last, &|_| 0),
            (self.keep_daily, &day),
            // 1970-01-01 was a Thursday: weeks counted from Monday 1969-12-29.
            (self.keep_weekly, &|t| (day(t) + 3).div_euclid(7)),
            (self.keep_monthly, &|t| month_of_day(day(t))),
        ];
        let mut keep = vec![false; times.len()];
        for (index, (count, bucket)) in rules.into_iter().enumerate() {
            let mut left = count;
            let mut last = None;
            for (i, &t) in times.iter().enumerate().rev() {
                if left == 0 {
                    break;
                }
                // keep-last: every snapshot is a bucket of its own.
                let b = if index == 0 { i as i64 } else { bucket(t) };
                if last != Some(b) {
                    keep[i] = true;
                    left -= 1;
                    last = Some(b);
                }
            }
        }
        keep
    }
}

/// Months since year 0 of the UTC day `days` after 1970-01-01 (the civil calendar).
fn month_of_day(days: i64) -> i64 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    year * 12 + month - 1
}

/// What a forget did (or, in a dry run, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForgetReport {
    /// The snapshots kept, oldest first.
    pub kept: Vec<String>,
    /// The snapshots removed (or that a dry run would remove), oldest first.
    pub removed: Vec<String>,
    /// Whether this was a dry run, which changed nothing.
    pub dry_run: bool,
}

/// What a prune did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Blobs in the store when the prune started.
    pub blobs: u64,
    /// Blobs some snapshot references.
    pub referenced: u64,
    /// Blobs deleted, by name.
    pub deleted: Vec<String>,
    /// Blobs the candidates record names after this run: unreferenced now, deleted by a prune
    /// after `sweep_after` if still unreferenced then.
    pub candidates: u64,
    /// When the candidates may be deleted, Unix microseconds.
    pub sweep_after: Option<u64>,
    /// Backups in progress found (their holds are live): while there is one, nothing is
    /// deleted.
    pub live_holds: u64,
    /// Stale holds and sweep records (of runs that crashed) removed.
    pub stale_removed: u64,
    /// Whether the prune stopped deleting because a quarter of the grace period passed since
    /// it started; run it again.
    pub out_of_time: bool,
}

/// When a run's record must be renewed, and when the run must stop: fractions `1/renew` and
/// `1/stop` of the grace period since the record was written.
pub(crate) struct Renewal {
    pub stop: u64,
    pub renew: u64,
    pub expired: Error,
}

impl Renewal {
    /// Whether a run whose record was written `age` ago must stop, under `grace`.
    pub(crate) fn is_over(&self, age: u64, grace: u64) -> bool {
        age >= grace / self.stop
    }
}

/// A backup's hold (section 8.12.2): the run stops once half the grace period has passed since
/// the hold was written, and renews it after a quarter.
pub(crate) const HOLD_RENEWAL: Renewal = Renewal { stop: 2, renew: 4, expired: Error::HoldExpired };

/// A backup's hold (section 8.12.2): written before the backup lists or uploads a blob,
/// renewed while it runs, removed after its manifest is written.
pub(crate) struct Hold {
    object: String,
    time: u64,
}

impl Hold {
    /// When the hold was last written (Unix microseconds).
    pub(crate) fn time(&self) -> u64 {
        self.time
    }
}

impl<S: Store + ?Sized> Snapshots<'_, S> {
    /// Writes this backup's hold, then stops with [`Error::PruneRunning`] if a prune is
    /// sweeping. Needs the media keys.
    pub(crate) fn take_hold(&self) -> Result<Hold> {
        let media = self.media()?;
        let time = self.now_micros();
        let object = record_object(HOLD_DIR, time);
        let file = seal_record(media, RecordKind::Hold, time, &BTreeSet::new())?;
        self.store.put(&object, file, false).map_err(Error::store("write", &object))?;
        let hold = Hold { object, time };
        match self.live_records(SWEEP_DIR, RecordKind::Sweep, time, self.grace_micros() / 2) {
            Ok((live, _)) if live.is_empty() => Ok(hold),
            Ok((live, _)) => {
                self.release_hold(&hold);
                Err(Error::PruneRunning { since: live[0] })
            }
            Err(err) => {
                self.release_hold(&hold);
                Err(err)
            }
        }
    }

    /// Before each put of a backup: fails with [`Error::HoldExpired`] once half the grace
    /// period has passed since the hold was written; renews it after a quarter.
    pub(crate) fn keep_hold(&self, hold: &mut Hold) -> Result<()> {
        self.keep_record(RecordKind::Hold, &hold.object, &mut hold.time, HOLD_RENEWAL)
    }

    /// Keeps the hold or sweep record `object`, written at `written`, alive while its run goes
    /// on (section 8.12.2): fails with `renewal.expired` once `1/stop` of the grace period has
    /// passed since it was written, and puts it again, with the time now, after `1/renew`.
    pub(crate) fn keep_record(
        &self,
        kind: RecordKind,
        object: &str,
        written: &mut u64,
        renewal: Renewal,
    ) -> Result<()> {
        let now = self.now_micros();
        let age = now.saturating_sub(*written);
        if renewal.is_over(age, self.grace_micros()) {
            return Err(renewal.expired);
        }
        if age >= self.grace_micros() / renewal.renew {
            let file = seal_record(self.media()?, kind, now, &BTreeSet::new())?;
            self.store.put(object, file, false).map_err(Error::store("write", object))?;
            *written = now;
        }
        Ok(())
    }

    /// Removes the hold, best effort: one left behind goes stale after the grace period.
    pub(crate) fn release_hold(&self, hold: &Hold) {
        let _ = self.store.delete(&hold.object);
    }

    /// The times of the records under `folder` that are live at `now` (younger than
    /// `window`), and the names of the stale ones.
    fn live_records(
        &self,
        folder: &str,
        kind: RecordKind,
        now: u64,
        window: u64,
    ) -> Result<(Vec<u64>, Vec<String>)> {
        let media = self.media()?;
        let listed =
            self.store.list(&format!("{folder}/")).map_err(Error::store("list", folder))?;
        let (mut live, mut stale) = (Vec::new(), Vec::new());
        for object in listed {
            let file = match self.store.get(&object) {
                Ok(file) => file,
                Err(StoreError::NotFound) => continue,
                Err(e) => return Err(Error::store("read", &object)(e)),
            };
            let record = open_record(media, kind, &object, &file)?;
            if now < record.time.saturating_add(window) {
                live.push(record.time);
            } else {
                stale.push(object);
            }
        }
        Ok((live, stale))
    }

    /// Forgets the snapshots `policy` does not keep (section 8.12.1): deletes their manifests;
    /// with `dry_run`, only says which. Blobs are left for [`Snapshots::prune`]. A policy that
    /// keeps nothing is refused ([`Error::EmptyPolicy`]); any other keeps the newest snapshot.
    pub fn forget(&self, policy: &ForgetPolicy, dry_run: bool) -> Result<ForgetReport> {
        if policy.keeps_nothing() {
            return Err(Error::EmptyPolicy);
        }
        let ids = self.ids()?;
        let times: Vec<u64> =
            ids.iter().map(|id| id[..20].parse().expect("checked by is_snapshot_id")).collect();
        let keep = policy.keep(&times);
        let mut report = ForgetReport { dry_run, ..Default::default() };
        for (id, keep) in ids.into_iter().zip(keep) {
            if keep {
                report.kept.push(id);
            } else {
                if !dry_run {
                    let object = snapshot_object(&id);
                    self.store.delete(&object).map_err(Error::store("delete", &object))?;
                }
                report.removed.push(id);
            }
        }
        Ok(report)
    }

    /// Deletes the blobs no snapshot references (section 8.12.2), in two phases a grace period
    /// apart: a run records the unreferenced blobs as candidates; a run at least the grace
    /// period later deletes those still unreferenced, unless a backup is in progress.
    pub fn prune(&self) -> Result<PruneReport> {
        if self.media.is_none() {
            let blobs =
                self.store.list(&format!("{BLOB_DIR}/")).map_err(Error::store("list", BLOB_DIR))?;
            return if blobs.is_empty() {
                Ok(PruneReport::default())
            } else {
                Err(Error::NoMediaRootKey)
            };
        }
        let media = self.media()?;
        let start = self.now_micros();
        let sweep = record_object(SWEEP_DIR, start);
        let file = seal_record(media, RecordKind::Sweep, start, &BTreeSet::new())?;
        self.store.put(&sweep, file, false).map_err(Error::store("write", &sweep))?;
        let report = match self.prune_swept(media, start) {
            Ok(report) => report,
            Err(err) => {
                // Best effort: after a crash the record stays until it is stale.
                let _ = self.store.delete(&sweep);
                return Err(err);
            }
        };
        self.store.delete(&sweep).map_err(Error::store("delete", &sweep))?;
        Ok(report)
    }

    fn prune_swept(&self, media: &MediaKeys, start: u64) -> Result<PruneReport> {
        let mut report = PruneReport::default();
        let grace = self.grace_micros();
        // Holds after the sweep record: a backup that wrote its hold before this list is seen
        // here; one that writes it later sees the sweep record and stops.
        let (holds, stale_holds) = self.live_records(HOLD_DIR, RecordKind::Hold, start, grace)?;
        report.live_holds = holds.len() as u64;
        let (_, stale_sweeps) =
            self.live_records(SWEEP_DIR, RecordKind::Sweep, start, grace / 2)?;
        for object in stale_holds.iter().chain(&stale_sweeps) {
            self.store.delete(object).map_err(Error::store("delete", object))?;
            report.stale_removed += 1;
        }
        // Every manifest must be read: one that cannot be would hide the blobs it needs.
        let mut referenced = BTreeSet::new();
        for id in self.ids()? {
            for entry in self.manifest(&id)?.entries {
                if let EntryKind::File { blobs } = entry.kind {
                    referenced.extend(blobs.into_iter().map(|b| b.name));
                }
            }
        }
        let listed =
            self.store.list(&format!("{BLOB_DIR}/")).map_err(Error::store("list", BLOB_DIR))?;
        let blobs: BTreeSet<BlobName> =
            listed.iter().filter_map(|o| BlobName::from_object_name(o)).collect();
        report.blobs = blobs.len() as u64;
        report.referenced = blobs.intersection(&referenced).count() as u64;
        let mut unreferenced: BTreeSet<BlobName> = blobs.difference(&referenced).copied().collect();
        let previous = match self.store.get(CANDIDATES_OBJECT) {
            Ok(file) => open_record(media, RecordKind::Candidates, CANDIDATES_OBJECT, &file).ok(),
            Err(StoreError::NotFound) => None,
            Err(e) => return Err(Error::store("read", CANDIDATES_OBJECT)(e)),
        };
        match previous {
            Some(record) if start >= record.time.saturating_add(grace) && holds.is_empty() => {
                for name in &record.names {
                    if !unreferenced.contains(name) {
                        continue;
                    }
                    if self.now_micros() >= start.saturating_add(grace / 4) {
                        report.out_of_time = true;
                        break;
                    }
                    let object = name.object_name();
                    self.store.delete(&object).map_err(Error::store("delete", &object))?;
                    unreferenced.remove(name);
                    report.deleted.push(name.to_hex());
                }
                if report.out_of_time {
                    report.candidates = record.names.len() as u64;
                    report.sweep_after = Some(record.time.saturating_add(grace));
                } else {
                    self.write_candidates(media, start, &unreferenced, &mut report)?;
                }
            }
            // Not due yet, or a backup is running: the record stays as it is, so that its
            // clock is not reset.
            Some(record) => {
                report.candidates = record.names.len() as u64;
                report.sweep_after = Some(record.time.saturating_add(grace));
            }
            None => self.write_candidates(media, start, &unreferenced, &mut report)?,
        }
        Ok(report)
    }

    fn write_candidates(
        &self,
        media: &MediaKeys,
        time: u64,
        names: &BTreeSet<BlobName>,
        report: &mut PruneReport,
    ) -> Result<()> {
        if names.is_empty() {
            self.store
                .delete(CANDIDATES_OBJECT)
                .map_err(Error::store("delete", CANDIDATES_OBJECT))?;
            return Ok(());
        }
        let file = seal_record(media, RecordKind::Candidates, time, names)?;
        self.store
            .put(CANDIDATES_OBJECT, file, false)
            .map_err(Error::store("write", CANDIDATES_OBJECT))?;
        report.candidates = names.len() as u64;
        report.sweep_after = Some(time.saturating_add(self.grace_micros()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = MICROS_PER_DAY;
    const HOUR: u64 = DAY / 24;

    #[test]
    fn a_record_round_trips_and_a_bad_one_is_refused() {
        let names: BTreeSet<BlobName> = [BlobName([2; 32]), BlobName([1; 32])].into();
        let encoded = encode_record(7, &names);
        assert_eq!(encoded.len(), 1 + 8 + 4 + 64);
        assert_eq!(&encoded[..13], [1, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 2]);
        let record = decode_record(&encoded).unwrap();
        assert_eq!((record.time, record.names), (7, vec![BlobName([1; 32]), BlobName([2; 32])]));
        assert_eq!(decode_record(&encoded[..encoded.len() - 1]), Err("truncated"));
        assert_eq!(decode_record(&[encoded.clone(), vec![0]].concat()), Err("trailing bytes"));
        let mut unsorted = encoded.clone();
        unsorted[13..45].copy_from_slice(&[3; 32]);
        assert_eq!(decode_record(&unsorted), Err("names not strictly increasing"));
        let mut version = encoded;
        version[0] = 2;
        assert_eq!(decode_record(&version), Err("unsupported version"));
    }

    #[test]
    fn records_do_not_open_as_another_kind() {
        let media = MediaKeys::derive(&crate::MediaRootKey::from_bytes([9; 32]));
        let file = seal_record(&media, RecordKind::Hold, 5, &BTreeSet::new()).unwrap();
        assert_eq!(open_record(&media, RecordKind::Hold, "h", &file).unwrap().time, 5);
        let err = open_record(&media, RecordKind::Sweep, "h", &file).unwrap_err();
        assert_eq!(err.code(), "prune-record");
        let other = MediaKeys::derive(&crate::MediaRootKey::from_bytes([8; 32]));
        assert!(open_record(&other, RecordKind::Hold, "h", &file).is_err());
    }

    #[test]
    fn keep_last_keeps_the_newest() {
        let policy = ForgetPolicy { keep_last: 2, ..Default::default() };
        assert_eq!(policy.keep(&[1, 2, 3, 4]), [false, false, true, true]);
        assert_eq!(policy.keep(&[1]), [true]);
    }

    #[test]
    fn keep_daily_keeps_the_newest_of_each_recent_day() {
        // Day 0: two snapshots; day 1: none; day 2: three; day 3: one.
        let times = [HOUR, 5 * HOUR, 2 * DAY, 2 * DAY + HOUR, 2 * DAY + 9 * HOUR, 3 * DAY];
        let two = ForgetPolicy { keep_daily: 2, ..Default::default() };
        assert_eq!(two.keep(&times), [false, false, false, false, true, true]);
        let five = ForgetPolicy { keep_daily: 5, ..Default::default() };
        assert_eq!(five.keep(&times), [false, true, false, false, true, true]);
    }

    #[test]
    fn weeks_start_on_monday_and_months_follow_the_calendar() {
        // 2026-11-29 is a Sunday, 2026-11-30 a Monday (day 20_787).
        let sunday = 20_786 * DAY;
        let monday = sunday + DAY;
        let weekly = ForgetPolicy { keep_weekly: 2, ..Default::default() };
        assert_eq!(weekly.keep(&[sunday - DAY, sunday, monday]), [false, true, true]);
        // 2026-11-30 is in November; 2026-12-01 in December; 2024-02-29 in February.
        assert_eq!(month_of_day(20_787), 2026 * 12 + 10);
        assert_eq!(month_of_day(20_788), 2026 * 12 + 11);
        assert_eq!(month_of_day(19_782), 2024 * 12 + 1);
        assert_eq!(month_of_day(0), 1970 * 12);
        let monthly = ForgetPolicy { keep_monthly: 3, ..Default::default() };
        assert_eq!(monthly.keep(&[sunday, monday, monday + DAY]), [false, true, true]);
    }

    #[test]
    fn rules_combine_by_union_and_only_the_empty_policy_keeps_nothing() {
        let times = [HOUR, 2 * HOUR, DAY, DAY + HOUR, 2 * DAY];
        let policy = ForgetPolicy { keep_last: 1, keep_daily: 2, ..Default::default() };
        assert_eq!(policy.keep(&times), [false, false, false, true, true]);
        let policy = ForgetPolicy { keep_last: 3, keep_daily: 3, ..Default::default() };
        assert_eq!(policy.keep(&times), [false, true, true, true, true]);
        assert!(ForgetPolicy::default().keeps_nothing());
        assert_eq!(ForgetPolicy::default().keep(&times), [false; 5]);
        for policy in [
            ForgetPolicy { keep_daily: 1, ..Default::default() },
            ForgetPolicy { keep_weekly: 1, ..Default::default() },
            ForgetPolicy { keep_monthly: 1, ..Default::default() },
        ] {
            assert!(policy.keep(&times)[4], "{policy:?} keeps the newest");
        }
    }
}
