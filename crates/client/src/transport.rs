//! How the client reaches the vault (spec section 5.3): a small seam with an HTTP
//! implementation (spec section 4.15) and an in-memory one over
//! [`e2ee_backup_vault::memory::MemoryVault`].
//!
//! The transport moves opaque bytes: requests are HPKE-sealed to the pinned fleet and answers
//! are sealed back, so neither the transport nor the relay behind it can read or forge them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2ee_backup_vault::fleet::{FleetAuthority, FleetBundle};
use e2ee_backup_vault::hsm::{Hsm, HsmConfig, HsmSecrets};
use e2ee_backup_vault::memory::MemoryVault;
use e2ee_backup_vault::suite::KsfProfile;
use rand_core::OsRng;
use tokio::runtime::Runtime;

use crate::error::{Error, Result};
use crate::pin::FleetPin;

/// Moves sealed requests to the vault and answers back.
pub trait VaultTransport: Send {
    /// The fleet's signed key bundle (spec section 4.3), unverified.
    fn fleet_bundle(&mut self) -> Result<Vec<u8>>;
    /// Sends one sealed request envelope for `account`; returns the sealed response.
    fn call(&mut self, account: &[u8], envelope: &[u8]) -> Result<Vec<u8>>;
}

/// Longest answer the client reads from the vault: a sealed response is at most 8240 bytes, a
/// bundle at most 743; an error body is small.
const MAX_ANSWER: usize = 64 * 1024;

/// How [`HttpTransport`] tries again a request the vault did not take (spec section 5.3.3):
/// only when nothing was done, that is when no connection was made, or the vault answered
/// `503` with `no-leader`, `busy` or `storage` (each says nothing was done or sent). A request
/// that may have been applied (`unconfirmed`, a time-out, a cut answer) is never retried here:
/// the caller decides.
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

/// The HTTP binding of spec section 4.15, over `reqwest` (HTTP/1.1; `https` with rustls and
/// the platform's trust store).
pub struct HttpTransport {
    base: url::Url,
    http: reqwest::Client,
    runtime: Runtime,
    retry: RetryPolicy,
    notice: Option<RetryNotice>,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport").field("base", &self.base.as_str()).finish_non_exhaustive()
    }
}

impl HttpTransport {
    /// A transport to the vault at `base` (for example `http://127.0.0.1:8420`).
    pub fn new(base: &str) -> Result<Self> {
        let bad = |why: String| Error::InvalidVaultUrl { url: base.to_owned(), why };
        let mut base = url::Url::parse(base).map_err(|e| bad(e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad("the vault URL must be http:// or https://".to_owned()));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        // reqwest is built without a default rustls provider; ring is the one this workspace
        // already uses. Installing fails harmlessly when the process already chose one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| Error::VaultUnreachable { detail: format!("no HTTP client: {e}") })?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::VaultUnreachable { detail: format!("no runtime: {e}") })?;
        Ok(Self { base, http, runtime, retry: RetryPolicy::default(), notice: None })
    }

    /// Retries by `policy`, telling `notice` (if any) before each retry.
    pub fn with_retry(mut self, policy: RetryPolicy, notice: Option<RetryNotice>) -> Self {
        self.retry = policy;
        self.notice = notice;
        self
    }

    /// Sends the request, again by the retry policy while the vault did nothing.
    fn send(&self, request: reqwest::RequestBuilder) -> Result<Vec<u8>> {
        let attempts = self.retry.attempts.max(1);
        let mut delay = self.retry.first_delay;
        let mut attempt = 1;
        loop {
            // A body of bytes always clones; without one, no retry.
            let this = request.try_clone();
            let Some(this) = this else { return self.send_once(request).map_err(|(e, _)| e) };
            match self.send_once(this) {
                Ok(body) => return Ok(body),
                Err((error, true)) if attempt < attempts => {
                    attempt += 1;
                    if let Some(notice) = &self.notice {
                        notice(attempt, attempts, delay, &error.to_string());
                    }
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(self.retry.max_delay);
                }
                Err((error, _)) => return Err(error),
            }
        }
    }

    /// One try; on failure, the error and whether the vault surely did nothing.
    fn send_once(
        &self,
        request: reqwest::RequestBuilder,
    ) -> std::result::Result<Vec<u8>, (Error, bool)> {
        let base = self.base.as_str().trim_end_matches('/').to_owned();
        self.runtime.block_on(async {
            let unreachable = |e: reqwest::Error| {
                // A failed TLS handshake does not heal by retrying: most often an https:// URL
                // for a vault served over plain HTTP, or a certificate this client does not trust.
                if is_tls(&e) {
                    (Error::VaultTls { url: base.clone(), detail: describe(&e) }, false)
                } else {
                    // No connection: the request never reached the vault.
                    (Error::VaultUnreachable { detail: describe(&e) }, e.is_connect())
                }
            };
            let no = |e: Error| (e, false);
            let mut response = request.send().await.map_err(unreachable)?;
            let status = response.status();
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| no(unreachable(e).0))? {
                if body.len() + chunk.len() > MAX_ANSWER {
                    return Err(no(Error::VaultRejected {
                        status: status.as_u16(),
                        code: "answer-too-large".to_owned(),
                        message: format!("the vault answered more than {MAX_ANSWER} bytes"),
                    }));
                }
                body.extend_from_slice(&chunk);
            }
            if status.is_success() {
                return Ok(body);
            }
            let Some((code, message)) = error_body(&body) else {
                if status.is_server_error() {
                    return Err(no(Error::VaultUnreachable {
                        detail: format!("HTTP {} from {base}", status.as_u16()),
                    }));
                }
                // Not the vault's error format (a web server's page, say): not worth printing.
                return Err(no(Error::NotAVault { url: base, status: status.as_u16() }));
            };
            if status.as_u16() == 503 || status.is_server_error() {
                // Spec 4.15: these three say that nothing was done or sent.
                let did_nothing = status.as_u16() == 503
                    && matches!(code.as_str(), "no-leader" | "busy" | "storage");
                let detail = format!("HTTP {}: {code}: {message}", status.as_u16());
                return Err((Error::VaultUnreachable { detail }, did_nothing));
            }
            Err(no(Error::VaultRejected { status: status.as_u16(), code, message }))
        })
    }
}

/// The `{"error", "message"}` body of spec section 4.15, if the body is one.
fn error_body(body: &[u8]) -> Option<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Body {
        error: String,
        #[serde(default)]
        message: String,
    }
    serde_json::from_slice::<Body>(body).ok().map(|b| (b.error, b.message))
}

/// Whether `err`, or an error it wraps, is a TLS failure.
fn is_tls(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if e.downcast_ref::<rustls::Error>().is_some() {
            return true;
        }
        // `io::Error::source` skips the error it wraps: look at that one too.
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref())
            && is_tls(inner)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// `err` and the errors it wraps, from the outermost: reqwest's own sentence ("error sending
/// request") says nothing of the cause.
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        next = e.source();
    }
    text
}

impl VaultTransport for HttpTransport {
    fn fleet_bundle(&mut self) -> Result<Vec<u8>> {
        let url = self
            .base
            .join("v1/fleet-bundle")
            .map_err(|e| Error::VaultUnreachable { detail: e.to_string() })?;
        self.send(self.http.get(url))
    }

    fn call(&mut self, account: &[u8], envelope: &[u8]) -> Result<Vec<u8>> {
        let url = self
            .base
            .join(&format!("v1/vault/{}", hex::encode(account)))
            .map_err(|e| Error::VaultUnreachable { detail: e.to_string() })?;
        let request = self
            .http
            .post(url)
            .header("content-type", "application/octet-stream")
            .body(envelope.to_vec());
        self.send(request)
    }
}

/// An in-memory vault fleet for tests and demos: an HSM with fresh secrets, its authority, and
/// a signed bundle. Clones share the vault.
#[derive(Clone)]
pub struct MemoryTransport {
    vault: Arc<Mutex<MemoryVault>>,
    bundle: Arc<Mutex<Vec<u8>>>,
    down: Arc<AtomicBool>,
}

impl std::fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTransport").finish_non_exhaustive()
    }
}

/// What a test needs besides the transport: the pin to give the client, and the authority to
/// sign other bundles with.
pub struct MemoryFleet {
    /// A transport to the fleet.
    pub transport: MemoryTransport,
    /// The pin clients use.
    pub pin: FleetPin,
    /// The fleet authority.
    pub authority: FleetAuthority,
    /// The bundle the fleet serves.
    pub bundle: FleetBundle,
}

impl MemoryTransport {
    /// A fleet `fleet_id` with guess budget `budget`, using the fast KSF profile (tests only),
    /// serving a bundle of epoch 1 that expires at `not_after`; the vault's clock reads `now`.
    pub fn fleet(fleet_id: &str, budget: u8, now: u64, not_after: u64) -> MemoryFleet {
        let secrets = HsmSecrets::generate(&mut OsRng, fleet_id.as_bytes());
        let keys = secrets.public_keys();
        let config = HsmConfig { budget, ksf_profile: KsfProfile::Fast, ..HsmConfig::default() };
        let hsm = Hsm::new(secrets, config).expect("a budget of 1 to 255 is a valid policy");
        let authority = FleetAuthority::generate(&mut OsRng);
        let bundle =
            FleetBundle { fleet_id: fleet_id.as_bytes().to_vec(), epoch: 1, not_after, keys };
        let signed = authority.sign(&bundle).expect("the bundle is well formed");
        let pin = FleetPin {
            fleet_id: fleet_id.to_owned(),
            authority: hex::encode(authority.verifying_key().as_bytes()),
            auditor: None,
        };
        let transport = MemoryTransport {
            vault: Arc::new(Mutex::new(MemoryVault::new(hsm, now))),
            bundle: Arc::new(Mutex::new(signed)),
            down: Arc::new(AtomicBool::new(false)),
        };
        MemoryFleet { transport, pin, authority, bundle }
    }

    /// Replaces the signed bundle the fleet serves.
    pub fn serve_bundle(&self, signed: Vec<u8>) {
        if let Ok(mut b) = self.bundle.lock() {
            *b = signed;
        }
    }

    /// Makes the vault unreachable (or reachable again).
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Runs `f` on the vault (to inspect records).
    pub fn with_vault<T>(&self, f: impl FnOnce(&mut MemoryVault) -> T) -> T {
        let mut vault = self.vault.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut vault)
    }

    fn check_up(&self) -> Result<()> {
        if self.down.load(Ordering::SeqCst) {
            Err(Error::VaultUnreachable { detail: "the in-memory vault is down".to_owned() })
        } else {
            Ok(())
        }
    }
}

impl VaultTransport for MemoryTransport {
    fn fleet_bundle(&mut self) -> Result<Vec<u8>> {
        self.check_up()?;
        Ok(self.bundle.lock().map(|b| b.clone()).unwrap_or_default())
    }

    fn call(&mut self, _account: &[u8], envelope: &[u8]) -> Result<Vec<u8>> {
        self.check_up()?;
        self.with_vault(|vault| vault.call(&mut OsRng, envelope)).map_err(|e| {
            Error::VaultRejected {
                status: 422,
                code: "request-does-not-open".to_owned(),
                message: e.to_string(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A vault URL that does not parse, or is not http:// or https://, is an invalid vault URL
    /// (not a rejection by a vault that was never asked).
    #[test]
    fn a_bad_vault_url_is_an_invalid_vault_url() {
        for url in ["vault.example", "ftp://vault.example", "file:///tmp/vault", ""] {
            let err = HttpTransport::new(url).unwrap_err();
            match &err {
                Error::InvalidVaultUrl { url: given, .. } => assert_eq!(given, url),
                other => panic!("{url:?}: {other:?}"),
            }
            assert_eq!(err.code(), "invalid-vault-url");
            assert!(!err.is_retryable(), "{err}");
            assert!(err.to_string().contains(&format!("{url:?}")), "{err}");
        }
        assert!(HttpTransport::new("http://127.0.0.1:8420").is_ok());
        assert!(HttpTransport::new("https://vault.example/prefix").is_ok());
    }
}
