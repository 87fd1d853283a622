//! The generator every client and HSM step draws from (spec 4.12): each draw named after its
//! step and recorded, derived from the seed when generating, read back when verifying.

use super::*;

/// Where the bytes of the draws come from.
pub(super) enum Source {
    /// Derived from the seed (generation).
    Derive(String),
    /// Read back from a vector (verification).
    Replay(VecDeque<(String, Vec<u8>)>),
}

/// The generator every client and HSM step draws from: names each draw after the current
/// step and records it.
pub(super) struct Draws {
    pub(super) source: Source,
    pub(super) step: String,
    pub(super) index: usize,
    pub(super) log: Vec<(String, Vec<u8>)>,
    pub(super) mismatch: Option<String>,
}

impl Draws {
    pub(super) fn new(source: Source) -> Self {
        Self { source, step: String::new(), index: 0, log: Vec::new(), mismatch: None }
    }

    /// Starts a step; returns the position of its first draw in the log.
    pub(super) fn begin(&mut self, step: &str) -> usize {
        step.clone_into(&mut self.step);
        self.index = 0;
        self.log.len()
    }

    /// The values drawn since position `from`.
    pub(super) fn since(&self, from: usize) -> Vec<Vec<u8>> {
        self.log[from..].iter().map(|d| d.1.clone()).collect()
    }

    /// The last draw, which must be 32 bytes: the `ikmE` of the request just sealed.
    pub(super) fn last_ikm(&self) -> Result<[u8; 32], String> {
        let last = self.log.last().ok_or("no draw yet")?;
        last.1.clone().try_into().map_err(|_| format!("{} is not the 32-byte ikmE", last.0))
    }

    /// Fails if the replayed draws did not match what the code asked for, or are not all used.
    pub(super) fn finish(&self) -> Result<(), String> {
        if let Some(m) = &self.mismatch {
            return Err(m.clone());
        }
        match &self.source {
            Source::Replay(left) if !left.is_empty() => {
                Err(format!("{} recorded draws are never made, first {}", left.len(), left[0].0))
            }
            _ => Ok(()),
        }
    }

    pub(super) fn draws_json(&self) -> Value {
        self.log
            .iter()
            .map(|(name, value)| json!({ "name": name, "value": hex::encode(value) }))
            .collect()
    }
}

impl RngCore for Draws {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let name = format!("{}.draw[{}]", self.step, self.index);
        self.index += 1;
        match &mut self.source {
            Source::Derive(seed) => {
                dest.copy_from_slice(&draw(
                    &format!("{seed}/{}/{name}", self.log.len()),
                    dest.len(),
                ));
            }
            Source::Replay(queue) => match queue.pop_front() {
                Some((recorded, value)) if recorded == name && value.len() == dest.len() => {
                    dest.copy_from_slice(&value);
                }
                other => {
                    let found = other
                        .map_or("nothing".to_owned(), |(n, v)| format!("{n} of {} bytes", v.len()));
                    self.mismatch.get_or_insert(format!(
                        "the code draws {name} of {} bytes where the vector has {found}",
                        dest.len()
                    ));
                    dest.fill(0);
                }
            },
        }
        self.log.push((name, dest.to_vec()));
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for Draws {}

/// Hands out given values, for recomputing OPAQUE intermediates from recorded draws.
pub(super) struct Given(VecDeque<Vec<u8>>, bool);

impl Given {
    pub(super) fn new(values: Vec<Vec<u8>>) -> Self {
        Self(values.into(), true)
    }

    pub(super) fn spent(&self) -> Result<(), String> {
        if self.1 && self.0.is_empty() {
            Ok(())
        } else {
            Err("the recorded draws of a client step do not match opaque-ke's draws".into())
        }
    }
}

impl RngCore for Given {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        match self.0.pop_front() {
            Some(v) if v.len() == dest.len() => dest.copy_from_slice(&v),
            _ => {
                self.1 = false;
                dest.fill(0);
            }
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for Given {}
