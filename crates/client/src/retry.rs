//! Trying a call again that did nothing (spec section 5.3.3): one bounded, doubling backoff for
//! the vault transport and the backup store alike.

use std::sync::Arc;
use std::time::Duration;

/// How a call that surely did nothing is tried again (spec section 5.3.3): the HTTP transport
/// retries a vault request when no connection was made or the vault answered `503` with
/// `no-leader`, `busy` or `storage`; the backup store retries a read, a listing, a delete or
/// an overwriting put that failed without a definite answer (a lost connection, a server
/// error). A request that may have been applied (`unconfirmed`, a time-out, a cut answer, a
/// create-only put) is never retried here: the caller decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (1: no retry).
    pub attempts: u32,
    /// The wait before the second try; it doubles for each next one.
    pub first_delay: Duration,
    /// The longest wait between two tries.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// Five tries over about four seconds: 0.25, 0.5, 1 and 2 s between them.
    fn default() -> Self {
        Self {
            attempts: 5,
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(2),
        }
    }
}

/// Told before each retry: the try about to run (2 for the first retry), the tries in all, the
/// wait before it, and why the last one did nothing.
pub type RetryNotice = Arc<dyn Fn(u32, u32, Duration, &str) + Send + Sync>;

/// Runs `attempt` until it succeeds, fails for good (its error comes with `false`), or
/// `policy.attempts` tries are spent; tells `notice` before each retry.
pub(crate) fn with_retries<T, E: std::fmt::Display>(
    policy: RetryPolicy,
    notice: Option<&RetryNotice>,
    mut attempt: impl FnMut() -> Result<T, (E, bool)>,
) -> Result<T, E> {
    let attempts = policy.attempts.max(1);
    let mut delay = policy.first_delay;
    let mut tried = 1;
    loop {
        match attempt() {
            Ok(value) => return Ok(value),
            Err((error, true)) if tried < attempts => {
                tried += 1;
                if let Some(notice) = notice {
                    notice(tried, attempts, delay, &error.to_string());
                }
                std::thread::sleep(delay);
                delay = (delay * 2).min(policy.max_delay);
            }
            Err((error, _)) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    const QUICK: RetryPolicy = RetryPolicy {
        attempts: 3,
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
    };

    #[test]
    fn retries_only_what_did_nothing_and_only_as_often_as_allowed() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let notice: RetryNotice = Arc::new(move |n, of, _, why| {
            log.lock().unwrap().push((n, of, why.to_owned()));
        });
        let mut calls = 0;
        let out: Result<(), &str> = with_retries(QUICK, Some(&notice), || {
            calls += 1;
            Err(("down", true))
        });
        assert_eq!((out, calls), (Err("down"), 3));
        assert_eq!(*seen.lock().unwrap(), [(2, 3, "down".to_owned()), (3, 3, "down".to_owned())]);

        let mut calls = 0;
        let out: Result<(), &str> = with_retries(QUICK, Some(&notice), || {
            calls += 1;
            Err(("refused", false))
        });
        assert_eq!((out, calls), (Err("refused"), 1));

        let mut calls = 0;
        let out = with_retries::<_, &str>(QUICK, None, || {
            calls += 1;
            if calls < 2 { Err(("down", true)) } else { Ok(calls) }
        });
        assert_eq!(out, Ok(2));
    }
}
