//! A reference driver that keeps records in memory: what tests, benchmarks and the demo run the
//! vault on. It shows the whole contract a driver has: open, load, handle, persist, seal.

use std::collections::HashMap;

use rand_core::{CryptoRng, RngCore};

use crate::hsm::{Hsm, HsmError, RecordChange, Step};
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

    /// Answers one sealed request.
    pub fn call<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        envelope: &[u8],
    ) -> Result<Vec<u8>, HsmError> {
        let opened = self.hsm.open(envelope)?;
        let record = self.records.get(opened.account()).cloned();
        let reply = match self.hsm.handle(opened, record, self.now) {
            Step::Reply(reply) => reply,
            Step::PersistThenReply(step) => {
                let records = &mut self.records;
                let writes = &mut self.writes;
                let persisted = step.persist(|account, change| {
                    match change {
                        RecordChange::Put(record) => {
                            records.insert(account.to_vec(), record.clone());
                        }
                        RecordChange::Delete => {
                            records.remove(account);
                        }
                    }
                    *writes += 1;
                    Ok::<(), std::convert::Infallible>(())
                });
                match persisted {
                    Ok(reply) => reply,
                }
            }
        };
        Ok(self.hsm.seal(reply, rng))
    }
}
