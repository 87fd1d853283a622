//! Erasure of what the engine holds (spec section 4.13.1): after a replica applies an entry
//! that ends a registration, it builds a snapshot past the entry and purges its log up to it,
//! which rotates the log key; at start, log and snapshot keys that nothing stored uses any more
//! (left by a crash between a purge and the destruction that follows it) are destroyed.

use std::time::Duration;

use redb::{Database, ReadableTable as _};

use super::Raft;
use super::storage::{LOG, StorageResult, read_meta, storage_error};
use crate::at_rest::{Keyring, Kind};

/// Destroys the log and snapshot keys that nothing stored uses any more: left by a crash
/// between a purge (or a new snapshot) and the destruction that follows it. Log keys older than
/// the oldest one an entry names go (the newest is kept for appends); snapshot keys other than
/// the stored snapshot's go.
pub(super) fn sweep_engine_keys(db: &Database, keys: &Keyring) -> StorageResult<()> {
    let txn = db.begin_read().map_err(storage_error)?;
    let oldest_log_key = match txn.open_table(LOG) {
        Ok(table) => {
            let mut oldest = None::<u64>;
            for item in table.iter().map_err(storage_error)? {
                let (_, value) = item.map_err(storage_error)?;
                if let Some((Kind::LogEntry, number)) = Keyring::sealed_under(value.value()) {
                    oldest = Some(oldest.map_or(number, |o| o.min(number)));
                }
            }
            oldest
        }
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(storage_error(e)),
    };
    let newest_log_key = keys.current(Kind::LogEntry).map_err(storage_error)?;
    keys.destroy_before(Kind::LogEntry, oldest_log_key.unwrap_or(newest_log_key))
        .map_err(storage_error)?;
    let snapshot_key = read_meta::<serde_bytes::ByteBuf>(&txn, "snapshot")?
        .and_then(|sealed| Keyring::sealed_under(&sealed))
        .map(|(_, number)| number);
    if let Some(number) = snapshot_key {
        keys.destroy_before(Kind::Snapshot, number).map_err(storage_error)?;
    }
    Ok(())
}

/// What [`compact_after_erasure`] asks of the consensus engine: a seam so that its repeat is
/// tested without timing ([`Raft`] in the server).
pub(super) trait Compaction {
    /// The last index the stored snapshot covers, if there is one.
    fn snapshot(&self) -> Option<u64>;
    /// Asks for a snapshot (ignored while one is being built); `false` once the engine stopped.
    fn request_snapshot(&self) -> impl Future<Output = bool> + Send;
    /// Waits up to `within` for a stored snapshot other than `seen`: the last index of the
    /// snapshot stored then (`seen` on timeout); `Err` once the engine stopped.
    fn next_snapshot(
        &self,
        seen: Option<u64>,
        within: Duration,
    ) -> impl Future<Output = Result<Option<u64>, ()>> + Send;
    /// Asks for the log to be purged up to `index`; `false` once the engine stopped.
    fn purge_up_to(&self, index: u64) -> impl Future<Output = bool> + Send;
}

impl Compaction for Raft {
    fn snapshot(&self) -> Option<u64> {
        self.metrics().borrow().snapshot.map(|s| s.index)
    }

    async fn request_snapshot(&self) -> bool {
        self.trigger().snapshot().await.is_ok()
    }

    async fn next_snapshot(&self, seen: Option<u64>, within: Duration) -> Result<Option<u64>, ()> {
        let changed = self
            .wait(Some(within))
            .metrics(|m| m.snapshot.map(|s| s.index) != seen, "a new snapshot")
            .await;
        match changed {
            Ok(metrics) => Ok(metrics.snapshot.map(|s| s.index)),
            Err(openraft::metrics::WaitError::Timeout(..)) => Ok(seen),
            Err(openraft::metrics::WaitError::ShuttingDown) => Err(()),
        }
    }

    async fn purge_up_to(&self, index: u64) -> bool {
        self.trigger().purge_log(index).await.is_ok()
    }
}

/// How long a requested snapshot may take before it is asked for again (in case the request
/// was lost): longer than a build of a million accounts.
const REQUEST_AGAIN_AFTER: Duration = Duration::from_secs(120);

/// After this replica applies an entry that ends a registration, its log still holds the
/// registration's `RegisterFinish` (and its snapshot the record): build a snapshot past the
/// entry, then purge the log up to that snapshot, which rotates the log key (spec 4.13.1).
/// openraft defers a leader's purge while a follower still needs the entries.
///
/// openraft ignores a request for a snapshot while one is being built, and a build the log-size
/// policy started before the entry was applied ends short of it. So each time a snapshot is
/// stored that does not cover the entry, it is asked for again. (With a million accounts a
/// build takes seconds: `bench-scale` found erasures left unsnapshotted, and their
/// `RegisterFinish` in the log, when it was asked for once.)
pub(super) async fn compact_after_erasure(
    engine: impl Compaction,
    mut erased: tokio::sync::watch::Receiver<u64>,
) {
    while erased.changed().await.is_ok() {
        // Gather the erasures of a burst into one snapshot.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let index = *erased.borrow_and_update();
        let mut seen = engine.snapshot();
        let covered = loop {
            if !engine.request_snapshot().await {
                return;
            }
            let Ok(now) = engine.next_snapshot(seen, REQUEST_AGAIN_AFTER).await else { return };
            match now {
                Some(covered) if covered >= index => break covered,
                // A build that ended short of `index`, or no new snapshot for that long (the
                // request may be lost): ask again.
                _ => seen = now,
            }
        };
        if !engine.purge_up_to(covered).await {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tokio::time::Instant;

    use super::*;

    /// An engine whose log is applied up to `applied`. A request while `busy` > 0 is ignored
    /// and the build under way then stores a snapshot short of it; a request while `lost` > 0
    /// is lost; any other starts a build that stores a snapshot of `applied` after
    /// `build_time`. Records the requests and the purges.
    #[derive(Clone, Default)]
    struct Engine(Arc<Mutex<State>>);

    #[derive(Default)]
    struct State {
        applied: u64,
        busy: usize,
        lost: usize,
        build_time: Duration,
        building_until: Option<Instant>,
        snapshot: Option<u64>,
        requests: usize,
        purged: Vec<u64>,
    }

    impl State {
        fn settle(&mut self) {
            if self.building_until.is_some_and(|t| Instant::now() >= t) {
                self.building_until = None;
                self.snapshot = Some(self.applied);
            }
        }
    }

    impl Compaction for Engine {
        fn snapshot(&self) -> Option<u64> {
            self.0.lock().unwrap().snapshot
        }

        async fn request_snapshot(&self) -> bool {
            let mut state = self.0.lock().unwrap();
            state.requests += 1;
            if state.busy > 0 {
                state.busy -= 1;
                state.snapshot = Some(state.snapshot.map_or(1, |s| s + 1));
            } else if state.lost > 0 {
                state.lost -= 1;
            } else if state.building_until.is_none() {
                state.building_until = Some(Instant::now() + state.build_time);
            }
            true
        }

        async fn next_snapshot(
            &self,
            seen: Option<u64>,
            within: Duration,
        ) -> Result<Option<u64>, ()> {
            let deadline = Instant::now() + within;
            loop {
                let (snapshot, until) = {
                    let mut state = self.0.lock().unwrap();
                    state.settle();
                    (state.snapshot, state.building_until)
                };
                if snapshot != seen || Instant::now() >= deadline {
                    return Ok(snapshot);
                }
                tokio::time::sleep_until(until.map_or(deadline, |t| t.min(deadline))).await;
            }
        }

        async fn purge_up_to(&self, index: u64) -> bool {
            self.0.lock().unwrap().purged.push(index);
            true
        }
    }

    /// Runs the compaction of one erasure at index 41 on `engine` for `for_` of paused time;
    /// the requests made and the purges.
    async fn erase_41(engine: Engine, for_: Duration) -> (usize, Vec<u64>) {
        engine.0.lock().unwrap().applied = 41;
        let (erased, watch) = tokio::sync::watch::channel(0);
        let task = tokio::spawn(compact_after_erasure(engine.clone(), watch));
        erased.send(41).unwrap();
        tokio::time::sleep(for_).await;
        drop(erased);
        task.await.unwrap();
        let state = engine.0.lock().unwrap();
        (state.requests, state.purged.clone())
    }

    fn engine(busy: usize, lost: usize, build_time: Duration) -> Engine {
        Engine(Arc::new(Mutex::new(State { busy, lost, build_time, ..State::default() })))
    }

    #[tokio::test(start_paused = true)]
    async fn an_erasure_during_a_build_that_ends_short_of_it_still_gets_its_snapshot() {
        let (requests, purged) =
            erase_41(engine(3, 0, Duration::ZERO), Duration::from_secs(10)).await;
        assert_eq!(requests, 4, "asked again after each snapshot short of the erasure");
        assert_eq!(purged, vec![41], "the log purged up to the erasure");
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_build_is_waited_for_not_asked_for_again() {
        let (requests, purged) =
            erase_41(engine(0, 0, Duration::from_secs(30)), Duration::from_secs(60)).await;
        assert_eq!(requests, 1, "a second request would build a second snapshot");
        assert_eq!(purged, vec![41]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_request_is_made_again() {
        let (requests, purged) =
            erase_41(engine(0, 1, Duration::ZERO), 2 * REQUEST_AGAIN_AFTER).await;
        assert_eq!(requests, 2);
        assert_eq!(purged, vec![41]);
    }
}
