//! A reference driver that keeps records in memory: what tests, benchmarks and the demo run the
//! vault on. It shows the whole contract a driver has: open, split into a command, load, apply,
//! persist, seal (spec 4.10.2, and 7.5 for the order of persisting and replying).

use std::collections::HashMap;

use rand_core::{CryptoRng, RngCore};

use crate::command::{Command, Decision, RecordChange};
use crate::hsm::{Hsm, HsmError};
use crate::record::AccountRecord;

/// A vault whose records live in a `HashMap`.
#[derive(Debug)]
pub struct MemoryVault {
    hsm: Hsm,
    records: HashMap<Vec<u8>, AccountRecord>,
    /// The Unix time the vault believes it is.
    pub now: u64,
    /// Counts durable writes, for tests that check when a write happened.
    pub writes: u64,
}

impl MemoryVault {
    /// A vault around `hsm`, empty, at time `now`.
    pub fn new(hsm: Hsm, now: u64) -> Self {
        Self { hsm, records: HashMap::new(), now, writes: 0 }
    }

    /// The HSM.
    pub fn hsm(&self) -> &Hsm {
        &self.hsm
    }

    /// The stored record of `account`.
    pub fn record(&self, account: &[u8]) -> Option<&AccountRecord> {
        self.records.get(account)
    }

    /// Removes and yields every stored record: a bulk loader moving them to a durable store.
    pub fn drain_records(&mut self) -> impl Iterator<Item = (Vec<u8>, AccountRecord)> + '_ {
        self.records.drain()
    }

    /// Answers one sealed request, through the one pipeline (see [`Hsm`]): open, split
    /// into a command, apply to the stored record, store the change, seal.
    pub fn call<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        envelope: &[u8],
    ) -> Result<Vec<u8>, HsmError> {
        let (command, pending) = self.hsm.open(envelope)?.into_command(self.now);
        let decision = match command {
            Ok(command) => self.submit(&command),
            Err(refusal) => refusal,
        };
        Ok(self.hsm.seal(pending.reply(decision), rng))
    }

    /// The in-memory counterpart of the server's replication: applies `command` to the
    /// account's record and stores the change before the decision is released.
    pub fn submit(&mut self, command: &Command) -> Decision {
        let record = self.records.get(command.account()).cloned();
        let decided = self.hsm.apply(command, record);
        let stored = decided.persist(|change| {
            match change {
                RecordChange::Put(record) => {
                    self.records.insert(command.account().to_vec(), record.clone());
                }
                RecordChange::Delete => {
                    self.records.remove(command.account());
                }
            }
            self.writes += 1;
            Ok::<(), std::convert::Infallible>(())
        });
        match stored {
            Ok(decision) => decision,
        }
    }
}

impl crate::drive::Exchange for MemoryVault {
    type Error = HsmError;

    /// [`MemoryVault::call`] with the operating system's generator.
    fn exchange(&mut self, _account: &[u8], request: &[u8]) -> Result<Vec<u8>, HsmError> {
        self.call(&mut rand_core::OsRng, request)
    }
}
