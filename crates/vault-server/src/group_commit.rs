//! Group commit for a single vault: the record changes of many accounts made durable by one
//! store transaction (spec section 4.10.2, "Durability before the reply").
//!
//! A command's change is handed to one committer thread and the command waits for it. The
//! committer takes every change waiting when it becomes free, up to [`MAX_BATCH`], writes
//! them in one transaction ([`RecordStore::apply_all`]), and answers each only once that
//! transaction is durable. A change is therefore never reported durable earlier than it was
//! with one transaction per change: a KE2 still leaves only after its charge is on disk. What
//! changes is how many changes share one flush. If the transaction fails, every change in it
//! fails and nothing is sent for any of them; a failure after the commit that concerns one
//! account (destroying a registration key it no longer holds) fails that account's alone.
//!
//! Commands of one account never meet in one batch: the caller holds the account's lock from
//! reading the record until its change is durable.

use std::sync::Arc;
use std::sync::mpsc;

use e2ee_backup_vault::RecordChange;

use crate::store::{RecordStore, StoreError};

/// Most changes one transaction takes.
pub const MAX_BATCH: usize = 256;

/// A change waiting for its transaction, and where to answer.
struct Job {
    account: Vec<u8>,
    change: RecordChange,
    done: mpsc::SyncSender<Result<(), StoreError>>,
}

/// The handle to a committer thread. Dropping it ends the thread once the changes already
/// handed over are written, and waits for that: afterwards the store is no longer held.
pub struct GroupCommit {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl GroupCommit {
    /// Starts the committer of `store`.
    pub fn start(store: Arc<dyn RecordStore>) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("vault-commit".into())
            .spawn(move || run(&*store, &queue))?;
        Ok(Self { jobs: Some(jobs), thread: Some(thread) })
    }

    /// Makes `change` to `account`'s record durable, with whatever other changes are waiting;
    /// blocks until it is (call from a blocking context).
    pub fn apply(&self, account: &[u8], change: &RecordChange) -> Result<(), StoreError> {
        let (done, answer) = mpsc::sync_channel(1);
        let job = Job { account: account.to_vec(), change: change.clone(), done };
        let stopped = || StoreError::Unavailable("the committer has stopped");
        self.jobs.as_ref().ok_or_else(stopped)?.send(job).map_err(|_| stopped())?;
        answer.recv().map_err(|_| stopped())?
    }
}

/// The committer: one transaction per batch of waiting changes, until every handle is gone.
fn run(store: &dyn RecordStore, queue: &mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let changes: Vec<(&[u8], &RecordChange)> =
            batch.iter().map(|job| (job.account.as_slice(), &job.change)).collect();
        let results = store.apply_all(&changes);
        drop(changes);
        // A job without a result (a store that broke the one-per-change rule) is dropped
        // unanswered, and its command fails as if the committer had stopped.
        for (job, result) in batch.into_iter().zip(results) {
            // A command that gave up waiting (its task was cancelled) has no one to answer.
            let _ = job.done.send(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use e2ee_backup_vault::AccountRecord;

    /// Records the size of each transaction; refuses every write while `broken`, and fails
    /// the follow-up of account `lost` alone.
    #[derive(Default)]
    struct Recorder {
        batches: Mutex<Vec<Vec<Vec<u8>>>>,
        broken: AtomicBool,
        gate: Mutex<()>,
        lost: Mutex<Option<Vec<u8>>>,
    }

    impl RecordStore for Recorder {
        fn load(&self, _: &[u8]) -> Result<Option<AccountRecord>, StoreError> {
            Ok(None)
        }
        fn apply(&self, _: &[u8], _: &RecordChange) -> Result<(), StoreError> {
            unreachable!("the committer writes through apply_all")
        }
        fn apply_all(&self, changes: &[(&[u8], &RecordChange)]) -> Vec<Result<(), StoreError>> {
            self.batches.lock().unwrap().push(changes.iter().map(|(a, _)| a.to_vec()).collect());
            let _gate = self.gate.lock().unwrap();
            let broken = self.broken.load(Ordering::SeqCst);
            let lost = self.lost.lock().unwrap().clone();
            changes
                .iter()
                .map(|(account, _)| match broken || lost.as_deref() == Some(*account) {
                    true => Err(StoreError::Unavailable("broken (test)")),
                    false => Ok(()),
                })
                .collect()
        }
    }

    #[test]
    fn changes_waiting_together_share_one_transaction_and_its_outcome() {
        let store = Arc::new(Recorder::default());
        let commits = Arc::new(GroupCommit::start(store.clone()).unwrap());
        // Hold the store so that the changes queue up behind the first transaction.
        let gate = store.gate.lock().unwrap();
        let apply = |i: u8| {
            let commits = commits.clone();
            std::thread::spawn(move || commits.apply(&[i], &RecordChange::Delete))
        };
        let mut threads = vec![apply(0)];
        while store.batches.lock().unwrap().is_empty() {
            std::thread::yield_now();
        }
        // The first change is in a transaction that cannot finish: the next eight queue up.
        threads.extend((1..9).map(apply));
        std::thread::sleep(std::time::Duration::from_millis(300));
        store.broken.store(true, Ordering::SeqCst);
        drop(gate);
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let batches = store.batches.lock().unwrap().clone();
        assert_eq!(batches.len(), 2, "{batches:?}");
        assert_eq!(batches[0].len(), 1);
        assert_eq!(batches[1].len(), 8);
        // The first transaction failed (broken was set before it returned), and so did every
        // change of the second: nobody is told "durable" by a transaction that failed.
        assert!(results.iter().all(Result::is_err), "{results:?}");
        store.broken.store(false, Ordering::SeqCst);
        assert!(commits.apply(b"after", &RecordChange::Delete).is_ok());
    }

    #[test]
    fn a_failure_after_the_commit_fails_its_own_change_alone() {
        let store = Arc::new(Recorder::default());
        *store.lost.lock().unwrap() = Some(b"lost".to_vec());
        let commits = Arc::new(GroupCommit::start(store.clone()).unwrap());
        let gate = store.gate.lock().unwrap();
        let apply = |account: &'static [u8]| {
            let commits = commits.clone();
            std::thread::spawn(move || commits.apply(account, &RecordChange::Delete))
        };
        let first = apply(b"first");
        while store.batches.lock().unwrap().is_empty() {
            std::thread::yield_now();
        }
        let (lost, kept) = (apply(b"lost"), apply(b"kept"));
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(gate);
        assert!(first.join().unwrap().is_ok());
        assert!(lost.join().unwrap().is_err());
        assert!(kept.join().unwrap().is_ok());
        let batches = store.batches.lock().unwrap().clone();
        assert_eq!(batches.len(), 2, "{batches:?}");
        assert_eq!(batches[1].len(), 2, "the two shared a transaction: {batches:?}");
    }
}
