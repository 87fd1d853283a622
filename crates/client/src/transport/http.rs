//! The HTTP binding of the vault (spec section 4.15) over `reqwest`, with bounded retries of
//! requests that did nothing (5.3.3). Behind the default feature `http`: an implementer with
//! a transport of their own builds the client without it.

use std::time::Duration;

use tokio::runtime::Runtime;

use super::{RetryNotice, RetryPolicy, VaultTransport};
use crate::error::{Error, Result};

/// Longest answer the client reads from the vault: a sealed response is at most 8240 bytes, a
/// bundle at most 743; an error body is small.
const MAX_ANSWER: usize = 64 * 1024;

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
        let mut base = super::check_vault_url(base)?;
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
        // A body of bytes always clones; without one, no retry.
        if request.try_clone().is_none() {
            return self.send_once(request).map_err(|(e, _)| e);
        }
        crate::retry::with_retries(self.retry, self.notice.as_ref(), || {
            self.send_once(request.try_clone().expect("it cloned above"))
        })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

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
