//! Fault injection for crash tests (spec section 5.7).
//!
//! Every step that changes something outside the process (a state file write, a rename, a
//! vault request, a store upload or deletion) first asks the [`FaultInjector`] whether to stop
//! there. A stop returns [`Error::Injected`] and the operation does nothing more, exactly as if
//! the device had lost power at that point; a test then reopens the state directory and
//! resumes. Production clients use [`NoFaults`].

use std::sync::Mutex;

use crate::error::{Error, Result};

/// Decides whether to stop before a named step.
pub trait FaultInjector: Send + Sync {
    /// Called before `point`; `true` stops the operation there.
    fn should_fail(&self, point: &str) -> bool;
}

/// Never stops.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoFaults;

impl FaultInjector for NoFaults {
    fn should_fail(&self, _point: &str) -> bool {
        false
    }
}

/// Stops at the `n`th step (counted from 0) and records every step it saw.
#[derive(Debug)]
pub struct FailAt {
    target: Option<usize>,
    seen: Mutex<Vec<String>>,
}

impl FailAt {
    /// Stops at step `n`.
    pub fn new(n: usize) -> Self {
        Self { target: Some(n), seen: Mutex::new(Vec::new()) }
    }

    /// Never stops; only records.
    pub fn recording() -> Self {
        Self { target: None, seen: Mutex::new(Vec::new()) }
    }

    /// The steps seen so far, in order.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Whether the injector has stopped an operation.
    pub fn fired(&self) -> bool {
        self.target.is_some_and(|n| self.seen().len() > n)
    }
}

impl FaultInjector for FailAt {
    fn should_fail(&self, point: &str) -> bool {
        let Ok(mut seen) = self.seen.lock() else { return false };
        let index = seen.len();
        seen.push(point.to_owned());
        self.target == Some(index)
    }
}

/// Asks `faults` about `point`.
pub(crate) fn check(faults: &dyn FaultInjector, point: &str) -> Result<()> {
    if faults.should_fail(point) {
        Err(Error::Injected { point: point.to_owned() })
    } else {
        Ok(())
    }
}
