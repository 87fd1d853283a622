//! Forget and prune (spec sections 8.12.1 and 8.12.2) over an in-memory store, with a clock
//! moved by hand: the retention rules, dry runs, the two phases of a prune, a crash at every
//! step of a prune, and backups racing prunes.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_snapshot::{
    BackupOptions, BlobName, CANDIDATES_OBJECT, EntryKind, Error, ForgetPolicy, MemoryStore,
    Snapshots, Store, StoreError,
};

use support::Temps;

const HOUR: u64 = 3_600_000_000;
const DAY: u64 = 24 * HOUR;
/// The grace period of these tests: one hour.
const GRACE: Duration = Duration::from_secs(3600);
/// 2026-11-30T00:00:00Z, a Monday.
const MONDAY: u64 = 20_787 * DAY;

fn key() -> BackupKey {
    BackupKey::from_bytes([7; 32])
}

/// A clock the test moves, Unix microseconds.
#[derive(Clone)]
struct Time(Arc<AtomicU64>);

impl Time {
    fn at(micros: u64) -> Self {
        Self(Arc::new(AtomicU64::new(micros)))
    }
    fn set(&self, micros: u64) {
        self.0.store(micros, Ordering::SeqCst);
    }
    fn advance(&self, micros: u64) {
        self.0.fetch_add(micros, Ordering::SeqCst);
    }
    fn now(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn open<'s, S: Store + ?Sized>(store: &'s S, time: &Time) -> Snapshots<'s, S> {
    let time = time.clone();
    Snapshots::open(store, &key())
        .unwrap()
        .with_clock(Arc::new(move || time.now()))
        .with_grace(GRACE)
}

/// A tree of one file per `(name, content)`.
fn tree(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, content) in files {
        fs::write(dir.path().join(name), content).unwrap();
    }
    dir
}

fn blobs(store: &dyn Store) -> BTreeSet<String> {
    store.list("blobs/").unwrap().into_iter().collect()
}

/// The blob objects snapshot `id` references.
fn referenced<S: Store + ?Sized>(snapshots: &Snapshots<'_, S>, id: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for entry in snapshots.manifest(id).unwrap().entries {
        if let EntryKind::File { blobs } = entry.kind {
            out.extend(blobs.iter().map(|b| b.name.object_name()));
        }
    }
    out
}

/// Every snapshot in the store verifies, reading every blob, and restores.
fn all_restorable<S: Store + ?Sized>(snapshots: &Snapshots<'_, S>) {
    for id in snapshots.ids().unwrap() {
        let report = snapshots.verify(&id, true).unwrap();
        assert!(report.is_ok(), "snapshot {id}: {:?}", report.problems);
        let target = tempfile::tempdir().unwrap();
        snapshots.restore(&id, &target.path().join("t"), &[], &Temps).unwrap();
    }
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    fs::read(dir.join(name)).unwrap()
}

/// A store that crashes (every operation fails) after a number of operations, and that can
/// run a hook once, just before the first operation whose `"<op> <name>"` starts with a
/// prefix: another device's call, interleaved.
struct Hooked {
    inner: MemoryStore,
    ops_left: Arc<OpsLeft>,
    #[allow(clippy::type_complexity)]
    hook: Mutex<Option<(String, Box<dyn FnOnce(&MemoryStore) + Send>)>>,
}

/// Operations left before the crash (`usize::MAX`: no crash).
struct OpsLeft(AtomicUsize);

impl OpsLeft {
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
    fn set(&self, left: usize) {
        self.0.store(left, Ordering::SeqCst);
    }
}

impl Hooked {
    fn new() -> Self {
        Self {
            inner: MemoryStore::new(),
            ops_left: Arc::new(OpsLeft(AtomicUsize::new(usize::MAX))),
            hook: Mutex::new(None),
        }
    }
    fn on(&self, prefix: &str, hook: impl FnOnce(&MemoryStore) + Send + 'static) {
        *self.hook.lock().unwrap() = Some((prefix.to_owned(), Box::new(hook)));
    }
    fn step(&self, op: &str, name: &str) -> Result<(), StoreError> {
        let point = format!("{op} {name}");
        let hook = {
            let mut hook = self.hook.lock().unwrap();
            let fire = matches!(&*hook, Some((p, _)) if point.starts_with(p.as_str()));
            if fire { hook.take() } else { None }
        };
        if let Some((_, hook)) = hook {
            hook(&self.inner);
        }
        let left = self.ops_left.get();
        if left == 0 {
            return Err(StoreError::Other("crashed".into()));
        }
        self.ops_left.set(left.saturating_sub(usize::from(left != usize::MAX)));
        Ok(())
    }
}

impl Store for Hooked {
    fn put(&self, name: &str, bytes: Vec<u8>, create_only: bool) -> Result<(), StoreError> {
        self.step("put", name)?;
        self.inner.put(name, bytes, create_only)
    }
    fn get(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        self.step("get", name)?;
        self.inner.get(name)
    }
    fn list(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.step("list", prefix)?;
        self.inner.list(prefix)
    }
    fn exists(&self, name: &str) -> Result<bool, StoreError> {
        self.step("exists", name)?;
        self.inner.exists(name)
    }
    fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.step("delete", name)?;
        self.inner.delete(name)
    }
}

/// Snapshots made at `times`, each of a tree with a file of its own and a shared one.
fn snapshots_at(store: &MemoryStore, time: &Time, times: &[u64]) -> Vec<String> {
    times
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            time.set(t);
            let own = format!("snapshot {i}");
            let dir = tree(&[("shared", b"shared"), ("own", own.as_bytes())]);
            open(store, time).backup(dir.path()).unwrap().id
        })
        .collect()
}

#[test]
fn forget_keep_last_removes_the_older_manifests_and_no_blob() {
    let (store, time) = (MemoryStore::new(), Time::at(MONDAY));
    let ids = snapshots_at(&store, &time, &[MONDAY, MONDAY + HOUR, MONDAY + 2 * HOUR]);
    let before = blobs(&store);
    let snapshots = open(&store, &time);
    let policy = ForgetPolicy { keep_last: 2, ..Default::default() };
    let report = snapshots.forget(&policy, false).unwrap();
    assert_eq!(report.removed, ids[..1]);
    assert_eq!(report.kept, ids[1..]);
    assert!(!report.dry_run);
    assert_eq!(snapshots.ids().unwrap(), ids[1..]);
    assert_eq!(blobs(&store), before, "forget deletes manifests only");
    all_restorable(&snapshots);
}

#[test]
fn forget_keep_daily_keeps_the_newest_snapshot_of_each_recent_day() {
    let (store, time) = (MemoryStore::new(), Time::at(MONDAY));
    // Two on Monday, none on Tuesday, three on Wednesday, one on Thursday (UTC).
    let times = [
        MONDAY + HOUR,
        MONDAY + 23 * HOUR,
        MONDAY + 2 * DAY,
        MONDAY + 2 * DAY + HOUR,
        MONDAY + 2 * DAY + 2 * HOUR,
        MONDAY + 3 * DAY,
    ];
    let ids = snapshots_at(&store, &time, &times);
    let snapshots = open(&store, &time);
    let policy = ForgetPolicy { keep_daily: 3, ..Default::default() };
    let report = snapshots.forget(&policy, false).unwrap();
    assert_eq!(report.kept, [ids[1].clone(), ids[4].clone(), ids[5].clone()]);
    assert_eq!(report.removed, [ids[0].clone(), ids[2].clone(), ids[3].clone()]);
    assert_eq!(snapshots.ids().unwrap(), report.kept);
}

#[test]
fn forget_keeps_what_any_rule_keeps() {
    let (store, time) = (MemoryStore::new(), Time::at(MONDAY));
    // October 31st; Sunday November 29th; Monday November 30th (two); Tuesday December 1st.
    let times = [MONDAY - 30 * DAY, MONDAY - DAY, MONDAY + HOUR, MONDAY + 2 * HOUR, MONDAY + DAY];
    let ids = snapshots_at(&store, &time, &times);
    let snapshots = open(&store, &time);
    // keep-last 2: Tuesday's and Monday's newest; keep-weekly 2: Tuesday's (this week) and
    // Sunday's (last week); keep-monthly 3: Tuesday's (December), Monday's newest (November)
    // and October's. Only Monday's first is left out.
    let policy =
        ForgetPolicy { keep_last: 2, keep_weekly: 2, keep_monthly: 3, ..Default::default() };
    let report = snapshots.forget(&policy, true).unwrap();
    assert_eq!(report.kept, [&ids[0], &ids[1], &ids[3], &ids[4]].map(String::clone));
    assert_eq!(report.removed, [ids[2].clone()]);
    // With keep-last 1 only, the newest alone.
    let policy = ForgetPolicy { keep_last: 1, ..Default::default() };
    assert_eq!(snapshots.forget(&policy, true).unwrap().kept, [ids[4].clone()]);
}

#[test]
fn a_dry_run_changes_nothing_and_says_what_a_real_run_does() {
    let (store, time) = (MemoryStore::new(), Time::at(MONDAY));
    snapshots_at(&store, &time, &[MONDAY, MONDAY + DAY, MONDAY + 2 * DAY, MONDAY + 3 * DAY]);
    let snapshots = open(&store, &time);
    let policy = ForgetPolicy { keep_daily: 2, ..Default::default() };
    let objects = store.list("").unwrap();
    let puts = store.puts().len();
    let dry = snapshots.forget(&policy, true).unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.removed.len(), 2);
    assert_eq!(store.list("").unwrap(), objects);
    assert_eq!(store.puts().len(), puts);
    let real = snapshots.forget(&policy, false).unwrap();
    assert_eq!((real.kept, real.removed), (dry.kept, dry.removed));
    assert_eq!(store.list("snapshots/").unwrap().len(), 2);
}

#[test]
fn a_policy_that_keeps_nothing_is_refused() {
    let (store, time) = (MemoryStore::new(), Time::at(MONDAY));
    snapshots_at(&store, &time, &[MONDAY]);
    let err = open(&store, &time).forget(&ForgetPolicy::default(), false).unwrap_err();
    assert_eq!(err.code(), "empty-policy");
    assert_eq!(store.list("snapshots/").unwrap().len(), 1);
}

#[test]
fn prune_deletes_exactly_the_unreferenced_blobs_after_the_grace_period_and_none_before() {
    let (store, time) = (MemoryStore::new(), Time::at(MONDAY));
    let ids = snapshots_at(&store, &time, &[MONDAY, MONDAY + HOUR, MONDAY + 2 * HOUR]);
    let snapshots = open(&store, &time);
    let all = blobs(&store);
    assert_eq!(all.len(), 4, "one shared blob and one of each snapshot");
    snapshots.forget(&ForgetPolicy { keep_last: 2, ..Default::default() }, false).unwrap();
    let live: BTreeSet<String> =
        ids[1..].iter().flat_map(|id| referenced(&snapshots, id)).collect();
    let dead: Vec<String> = all.difference(&live).cloned().collect();
    assert_eq!(dead.len(), 1);

    // First phase: the unreferenced blob becomes a candidate; nothing is deleted.
    time.set(MONDAY + 3 * HOUR);
    let first = snapshots.prune().unwrap();
    assert_eq!((first.blobs, first.referenced, first.candidates), (4, 3, 1));
    assert!(first.deleted.is_empty());
    assert_eq!(first.sweep_after, Some(MONDAY + 4 * HOUR));
    assert_eq!(blobs(&store), all);

    // One microsecond before the grace period has passed: still nothing.
    time.set(MONDAY + 4 * HOUR - 1);
    let early = snapshots.prune().unwrap();
    assert!(early.deleted.is_empty(), "{early:?}");
    assert_eq!(blobs(&store), all);

    // Meanwhile a second snapshot is forgotten: its blob is not a candidate yet.
    snapshots.forget(&ForgetPolicy { keep_last: 1, ..Default::default() }, false).unwrap();
    let own_of_second: Vec<String> =
        referenced(&snapshots, &ids[2]).symmetric_difference(&live).cloned().collect();
    assert_eq!(own_of_second.len(), 1);

    time.set(MONDAY + 4 * HOUR);
    let sweep = open(&store, &time).prune().unwrap();
    let dead_hex: Vec<String> =
        dead.iter().map(|o| BlobName::from_object_name(o).unwrap().to_hex()).collect();
    assert_eq!(sweep.deleted, dead_hex);
    assert_eq!(
        blobs(&store),
        all.difference(&BTreeSet::from([dead[0].clone()])).cloned().collect()
    );
    assert_eq!(sweep.candidates, 1, "the newly unreferenced blob waits for the next phase");
    all_restorable(&snapshots);

    time.set(MONDAY + 5 * HOUR);
    let last = snapshots.prune().unwrap();
    assert_eq!(last.deleted.len(), 1);
    assert_eq!(blobs(&store), referenced(&snapshots, &ids[2]));
    assert_eq!(last.candidates, 0);
    assert!(!store.exists(CANDIDATES_OBJECT).unwrap());
    assert!(store.list("prune/").unwrap().is_empty(), "no record is left");
    all_restorable(&snapshots);
}

/// A store with three snapshots, the oldest forgotten, pruned once: the next prune after the
/// grace period deletes its own blob. Returns the blob objects that must stay.
fn pruned_once(store: &dyn Store, time: &Time) -> BTreeSet<String> {
    let times = [MONDAY, MONDAY + HOUR, MONDAY + 2 * HOUR];
    for (i, &t) in times.iter().enumerate() {
        time.set(t);
        let own = format!("snapshot {i}");
        let dir = tree(&[("shared", b"shared"), ("own", own.as_bytes())]);
        open(store, time).backup(dir.path()).unwrap();
    }
    let snapshots = open(store, time);
    snapshots.forget(&ForgetPolicy { keep_last: 2, ..Default::default() }, false).unwrap();
    time.set(MONDAY + 3 * HOUR);
    assert_eq!(snapshots.prune().unwrap().candidates, 1);
    time.set(MONDAY + 5 * HOUR);
    snapshots.ids().unwrap().iter().flat_map(|id| referenced(&snapshots, id)).collect()
}

#[test]
fn a_crash_at_every_step_of_a_prune_leaves_every_snapshot_restorable() {
    let mut step = 0;
    loop {
        let (store, time) = (Hooked::new(), Time::at(MONDAY));
        let keep = pruned_once(&store, &time);
        let snapshots = open(&store, &time);
        store.ops_left.set(step);
        let result = snapshots.prune();
        store.ops_left.set(usize::MAX);
        if let Ok(report) = result {
            assert_eq!(report.deleted.len(), 1);
            assert_eq!(blobs(&store), keep);
            break;
        }
        assert_eq!(result.unwrap_err().code(), "store", "step {step}");
        all_restorable(&snapshots);
        assert!(keep.is_subset(&blobs(&store)), "step {step}");
        // A crash inside the sweep leaves its record: backups wait until it is stale or a
        // prune is run again.
        let dir = tree(&[("new", b"after the crash")]);
        let swept = !store.list("prune/sweeps/").unwrap().is_empty();
        if swept {
            let err = open(&store, &time).backup(dir.path()).unwrap_err();
            assert_eq!(err.code(), "prune-running", "step {step}");
        }
        // Run again, it finishes: the one unreferenced blob goes, the rest stays.
        let again = snapshots.prune().unwrap();
        assert_eq!(blobs(&store), keep, "step {step}: {again:?}");
        // The crashed run's sweep record is stale half a grace period after it started.
        time.advance(half_grace());
        open(&store, &time).backup(dir.path()).unwrap();
        let last = snapshots.prune().unwrap();
        assert_eq!(last.stale_removed, u64::from(swept), "step {step}");
        assert!(store.list("prune/sweeps/").unwrap().is_empty());
        all_restorable(&snapshots);
        step += 1;
    }
    assert!(step >= 10, "a prune takes {step} store operations");
}

#[test]
fn a_backup_that_uploads_while_a_prune_runs_keeps_its_snapshot_restorable() {
    let (store, time) = (Hooked::new(), Time::at(MONDAY));
    // An old snapshot of `photo` is forgotten and its blob becomes a candidate.
    time.set(MONDAY);
    let photo: &[u8] = b"a photo, forgotten then backed up again";
    open(&store, &time).backup(tree(&[("photo", photo)]).path()).unwrap();
    time.set(MONDAY + HOUR);
    open(&store, &time).backup(tree(&[("other", b"other")]).path()).unwrap();
    let snapshots = open(&store, &time);
    snapshots.forget(&ForgetPolicy { keep_last: 1, ..Default::default() }, false).unwrap();
    time.set(MONDAY + 2 * HOUR);
    assert_eq!(snapshots.prune().unwrap().candidates, 1);

    // After the grace period, a backup reuses the candidate and uploads a new blob; between
    // its uploads and its manifest, another device prunes.
    time.set(MONDAY + 4 * HOUR);
    let prune_report = Arc::new(Mutex::new(None));
    let seen = prune_report.clone();
    let clock = time.clone();
    store.on("put snapshots/", move |inner| {
        *seen.lock().unwrap() = Some(open(inner, &clock).prune().unwrap());
    });
    let dir = tree(&[("photo", photo), ("new", b"new")]);
    let report = open(&store, &time).backup(dir.path()).unwrap();
    assert_eq!((report.new_blobs, report.reused_blobs), (1, 1));
    let during = prune_report.lock().unwrap().take().expect("the prune ran");
    assert_eq!(during.live_holds, 1);
    assert!(during.deleted.is_empty(), "{during:?}");

    let target = tempfile::tempdir().unwrap();
    snapshots.restore(&report.id, &target.path().join("t"), &[], &Temps).unwrap();
    assert_eq!(read(&target.path().join("t"), "photo"), photo);
    assert_eq!(read(&target.path().join("t"), "new"), b"new");
    // Once the backup is over, a prune deletes nothing it references.
    time.set(MONDAY + 6 * HOUR);
    let after = snapshots.prune().unwrap();
    assert!(after.deleted.is_empty(), "{after:?}");
    all_restorable(&snapshots);
}

#[test]
fn a_backup_that_starts_while_a_prune_deletes_stops_before_it_reuses_a_blob() {
    let (store, time) = (Hooked::new(), Time::at(MONDAY));
    let photo: &[u8] = b"a photo, forgotten then backed up again";
    open(&store, &time).backup(tree(&[("photo", photo)]).path()).unwrap();
    time.set(MONDAY + HOUR);
    open(&store, &time).backup(tree(&[("other", b"other")]).path()).unwrap();
    let snapshots = open(&store, &time);
    snapshots.forget(&ForgetPolicy { keep_last: 1, ..Default::default() }, false).unwrap();
    time.set(MONDAY + 2 * HOUR);
    snapshots.prune().unwrap();

    // The prune is about to delete the photo's blob when another device starts a backup of
    // the photo: it finds the prune's sweep record and stops.
    time.set(MONDAY + 4 * HOUR);
    let backup_result = Arc::new(Mutex::new(None));
    let seen = backup_result.clone();
    let clock = time.clone();
    store.on("delete blobs/", move |inner| {
        let dir = tree(&[("photo", b"a photo, forgotten then backed up again")]);
        *seen.lock().unwrap() = Some(open(inner, &clock).backup(dir.path()).map(|r| r.id));
    });
    let report = snapshots.prune().unwrap();
    assert_eq!(report.deleted.len(), 1);
    let err = backup_result.lock().unwrap().take().expect("the backup ran").unwrap_err();
    assert!(matches!(err, Error::PruneRunning { since } if since == MONDAY + 4 * HOUR), "{err}");
    assert_eq!(snapshots.ids().unwrap().len(), 1, "the stopped backup wrote no manifest");
    assert!(store.list("prune/holds/").unwrap().is_empty());

    // Run again after the prune, it uploads the blob anew.
    let again = open(&store, &time).backup(tree(&[("photo", photo)]).path()).unwrap();
    assert_eq!(again.new_blobs, 1);
    all_restorable(&snapshots);
}

#[test]
fn the_hold_of_a_crashed_backup_defers_deletion_until_it_is_stale() {
    let (store, time) = (Hooked::new(), Time::at(MONDAY));
    let keep = pruned_once(&store, &time);
    // A backup crashes at its manifest's put, after its hold and its blob: both stay (the
    // store is gone, so the hold is not removed either).
    let mut crashing = open(&store, &time);
    let left = store.ops_left.clone();
    store.on("put snapshots/", move |_| left.set(0));
    let dir = tree(&[("crashed", b"the crashed backup's file")]);
    let err = crashing.backup(dir.path()).unwrap_err();
    assert_eq!(err.code(), "store");
    store.ops_left.set(usize::MAX);
    assert_eq!(store.list("prune/holds/").unwrap().len(), 1);
    assert_eq!(blobs(&store).len(), keep.len() + 2, "the forgotten blob and the crashed one's");

    let snapshots = open(&store, &time);
    let deferred = snapshots.prune().unwrap();
    assert_eq!(deferred.live_holds, 1);
    assert!(deferred.deleted.is_empty());

    // A grace period after the hold was written, it is stale: removed, and the sweep runs.
    time.advance(HOUR);
    let swept = snapshots.prune().unwrap();
    assert_eq!((swept.live_holds, swept.stale_removed, swept.deleted.len()), (0, 1, 1));
    assert!(store.list("prune/holds/").unwrap().is_empty());
    // The crashed backup's blob was not a candidate yet: the next phase takes it.
    assert_eq!(swept.candidates, 1);
    time.advance(HOUR);
    snapshots.prune().unwrap();
    assert_eq!(blobs(&store), keep);
    all_restorable(&snapshots);
}

#[test]
fn a_long_backup_renews_its_hold_and_one_paused_too_long_writes_no_manifest() {
    let (store, time) = (Hooked::new(), Time::at(MONDAY));
    let files: Vec<(String, Vec<u8>)> =
        (0..4).map(|i| (format!("f{i}"), format!("file {i}").into_bytes())).collect();
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, c)| (n.as_str(), c.as_slice())).collect();
    let dir = tree(&refs);

    // Each upload takes a fifth of the grace period: the hold is renewed, the backup succeeds.
    let step = u64::try_from(GRACE.as_micros()).unwrap() / 5;
    let clock = time.clone();
    let mut slow = Snapshots::open(&store, &key())
        .unwrap()
        .with_clock(Arc::new(move || clock.0.fetch_add(step, Ordering::SeqCst)))
        .with_grace(GRACE);
    let holds_before = store.inner.puts_under("prune/holds/");
    slow.backup(dir.path()).unwrap();
    assert!(store.inner.puts_under("prune/holds/") - holds_before >= 3, "renewed twice");
    all_restorable(&open(&store, &time));

    // A backup paused for half the grace period before its manifest writes none.
    let clock = time.clone();
    let half = half_grace();
    let before = open(&store, &time).ids().unwrap();
    let mut paused = Snapshots::open(&store, &key())
        .unwrap()
        .with_clock(Arc::new(move || clock.now()))
        .with_grace(GRACE);
    let other = tree(&[("x", b"x")]);
    let t = time.clone();
    store.on("put blobs/", move |_| t.advance(half));
    let err = paused.backup(other.path()).unwrap_err();
    assert_eq!(err.code(), "hold-expired");
    assert_eq!(open(&store, &time).ids().unwrap(), before);
    assert!(store.list("prune/holds/").unwrap().is_empty());
}

fn half_grace() -> u64 {
    u64::try_from(GRACE.as_micros()).unwrap() / 2
}

#[test]
fn a_prune_stops_deleting_a_quarter_grace_period_after_it_started_and_keeps_its_record() {
    let (store, time) = (MemoryStore::new(), Time::at(MONDAY));
    let ids = snapshots_at(&store, &time, &[MONDAY, MONDAY + HOUR, MONDAY + 2 * HOUR]);
    let snapshots = open(&store, &time);
    snapshots.forget(&ForgetPolicy { keep_last: 1, ..Default::default() }, false).unwrap();
    time.set(MONDAY + 3 * HOUR);
    assert_eq!(snapshots.prune().unwrap().candidates, 2);

    // A clock that moves an eighth of the grace period each time it is read: the first
    // deletion is in time, the second is not.
    time.set(MONDAY + 4 * HOUR);
    let eighth = u64::try_from(GRACE.as_micros()).unwrap() / 8;
    let clock = time.clone();
    let slow = Snapshots::open(&store, &key())
        .unwrap()
        .with_clock(Arc::new(move || clock.0.fetch_add(eighth, Ordering::SeqCst)))
        .with_grace(GRACE);
    let report = slow.prune().unwrap();
    assert!(report.out_of_time, "{report:?}");
    assert_eq!(report.deleted.len(), 1);
    assert_eq!((report.candidates, report.sweep_after), (2, Some(MONDAY + 4 * HOUR)));
    all_restorable(&snapshots);

    // Run again, it finishes.
    let again = snapshots.prune().unwrap();
    assert!(!again.out_of_time);
    assert_eq!(again.deleted.len(), 1);
    assert_eq!(blobs(&store), referenced(&snapshots, &ids[2]));
}

#[test]
fn a_backup_uploading_in_parallel_paused_too_long_writes_no_manifest() {
    let (store, time) = (Hooked::new(), Time::at(MONDAY));
    let files: Vec<(String, Vec<u8>)> =
        (0..12).map(|i| (format!("f{i:02}"), format!("file {i}").into_bytes())).collect();
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, c)| (n.as_str(), c.as_slice())).collect();
    let dir = tree(&refs);
    // The first blob's put takes half the grace period: whichever side looks next, the
    // uploading thread before its put or the reading side before it hands a blob over, stops.
    let t = time.clone();
    let half = half_grace();
    store.on("put blobs/", move |_| t.advance(half));
    let options = BackupOptions { uploads: 4, ..BackupOptions::default() };
    let err = open(&store, &time).backup_with(dir.path(), &options).unwrap_err();
    assert_eq!(err.code(), "hold-expired");
    assert!(open(&store, &time).ids().unwrap().is_empty());
    assert!(blobs(&store).len() < files.len(), "the run stopped before its last blob");
    assert!(store.list("prune/holds/").unwrap().is_empty());
}
