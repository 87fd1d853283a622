//! The HTTP server (spec section 4.15) around the sans-IO HSM core.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use e2ee_backup_vault::channel::{ChannelError, RequestEnvelope};
use e2ee_backup_vault::hsm::{Hsm, HsmConfig, HsmError, RecordChange, Step};
use e2ee_backup_vault::record::AccountState;
use hmac::{Hmac, KeyInit as _, Mac as _};
use rand_core::{OsRng, RngCore as _};
use sha2::Sha256;
use thiserror::Error;
use tokio::sync::{Mutex, oneshot};
use tokio::task::JoinHandle;
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::files::{self, BUNDLE_FILE, CONFIG_FILE, ConfigFile, FilesError, FleetPin, PIN_FILE};
use crate::store::{RecordStore, RedbStore, StoreError};

/// The largest request body: a request envelope with a 64-byte account and an 8192-byte
/// plaintext (1 + 1 + 2 + 64 + 32 + 8192 + 16).
pub const MAX_BODY: usize = 8308;

/// Number of per-account lock stripes.
const STRIPES: usize = 1024;

/// Why the server could not start or stop.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A file of the data directory is missing or invalid.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// The record store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The fleet secrets, bundle and policy do not fit together.
    #[error("inconsistent vault setup: {0}")]
    Setup(String),
    /// The listen address could not be bound, or the runtime could not be built.
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The server task failed.
    #[error("the server task failed: {0}")]
    Task(String),
}

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The data directory made by `init`.
    pub data_dir: PathBuf,
    /// Where to listen (port 0 picks a free port; [`RunningServer::addr`] tells which).
    pub listen: SocketAddr,
    /// The vault policy.
    pub policy: HsmConfig,
}

impl ServerConfig {
    /// The configuration of `data_dir`, read from `config_file` (default
    /// `data_dir/config.toml`).
    pub fn from_data_dir(data_dir: &Path, config_file: Option<&Path>) -> Result<Self, FilesError> {
        let default = data_dir.join(CONFIG_FILE);
        let file = ConfigFile::read(config_file.unwrap_or(&default))?;
        Ok(Self { data_dir: data_dir.to_path_buf(), listen: file.listen, policy: file.policy() })
    }
}

struct AppState {
    hsm: Hsm,
    store: Arc<dyn RecordStore>,
    stripes: Vec<Arc<Mutex<()>>>,
    stripe_hasher: RandomState,
    bundle: Bytes,
    /// Key of the account pseudonyms in logs: drawn at start, so lines of one run correlate
    /// while a plain hash of a phone number (reversible by enumeration) is never written.
    log_key: Zeroizing<[u8; 32]>,
}

impl AppState {
    fn pseudonym(&self, account: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(self.log_key.as_ref()).expect("any key length");
        mac.update(account);
        hex::encode(&mac.finalize().into_bytes()[..6])
    }

    fn stripe(&self, account: &[u8]) -> Arc<Mutex<()>> {
        let index = (self.stripe_hasher.hash_one(account) as usize) % self.stripes.len();
        self.stripes[index].clone()
    }
}

/// A plain error answer: `{"error": code, "message": text}`.
fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": code, "message": message.into() });
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Parses the `{account}` path segment: 2 to 128 lowercase hexadecimal digits.
pub fn parse_account(hex_path: &str) -> Option<Vec<u8>> {
    let ok_len = (2..=128).contains(&hex_path.len()) && hex_path.len().is_multiple_of(2);
    let lowercase = hex_path.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok_len && lowercase { hex::decode(hex_path).ok() } else { None }
}

fn channel_error(e: &ChannelError) -> Response {
    match e {
        ChannelError::UnsupportedVersion(_) => {
            error(StatusCode::UNPROCESSABLE_ENTITY, "unsupported-version", e.to_string())
        }
        ChannelError::UnknownKeyId(_) => {
            error(StatusCode::UNPROCESSABLE_ENTITY, "unknown-key-id", e.to_string())
        }
        ChannelError::Malformed(_) | ChannelError::InvalidAccountId(_) => {
            error(StatusCode::BAD_REQUEST, "malformed-envelope", e.to_string())
        }
        _ => error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "request-does-not-open",
            ChannelError::RequestDoesNotOpen.to_string(),
        ),
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn fleet_bundle(State(state): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "application/octet-stream")], state.bundle.clone()).into_response()
}

/// What a request did to its record, for the log line.
struct Outcome {
    change: &'static str,
    state: &'static str,
    remaining: Option<u8>,
}

fn describe(change: Option<&RecordChange>) -> Outcome {
    match change {
        None => Outcome { change: "none", state: "-", remaining: None },
        Some(RecordChange::Delete) => Outcome { change: "delete", state: "-", remaining: None },
        Some(RecordChange::Put(r)) => Outcome {
            change: "put",
            state: match r.state {
                AccountState::Registered => "registered",
                AccountState::Phantom => "phantom",
                AccountState::Locked => "locked",
            },
            remaining: Some(r.remaining),
        },
    }
}

enum Failure {
    Storage(StoreError),
    Panicked,
}

async fn vault(
    State(state): State<Arc<AppState>>,
    path: Result<UrlPath<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let Some(account) = path.ok().and_then(|UrlPath(p)| parse_account(&p)) else {
        info!(status = 400, code = "bad-account", "vault request refused");
        return error(
            StatusCode::BAD_REQUEST,
            "bad-account",
            "the account in the path is not 1 to 64 bytes of lowercase hexadecimal",
        );
    };
    let who = state.pseudonym(&account);
    let refused = |status: StatusCode, code: &'static str, response: Response| {
        info!(
            account = %who,
            status = status.as_u16(),
            code,
            latency_us = started.elapsed().as_micros() as u64,
            "vault request refused"
        );
        response
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let message = format!("the body exceeds the limit of {MAX_BODY} bytes");
            let response = error(StatusCode::PAYLOAD_TOO_LARGE, "too-large", message);
            return refused(StatusCode::PAYLOAD_TOO_LARGE, "too-large", response);
        }
        Err(rejection) => {
            let message = format!("the body could not be read: {rejection}");
            let response = error(StatusCode::BAD_REQUEST, "malformed-envelope", message);
            return refused(StatusCode::BAD_REQUEST, "malformed-envelope", response);
        }
    };
    match RequestEnvelope::parse(&body) {
        Err(e) => {
            let response = channel_error(&e);
            let code = error_code(&e);
            return refused(response.status(), code, response);
        }
        Ok(envelope) if envelope.account_id() != account.as_slice() => {
            let response = error(
                StatusCode::BAD_REQUEST,
                "misaddressed",
                "the envelope's account is not the account of the path",
            );
            return refused(StatusCode::BAD_REQUEST, "misaddressed", response);
        }
        Ok(_) => {}
    }

    // Open (an X25519 decapsulation and an AEAD) on a blocking thread.
    let opener = state.clone();
    let opened = match tokio::task::spawn_blocking(move || opener.hsm.open(&body)).await {
        Ok(Ok(opened)) => opened,
        Ok(Err(HsmError::Channel(e))) => {
            let response = channel_error(&e);
            return refused(response.status(), error_code(&e), response);
        }
        Ok(Err(e)) => {
            warn!(account = %who, error = %e, "vault request failed");
            return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error");
        }
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error"),
    };
    let kind = opened.request_name().unwrap_or("undecodable");

    // One request per account at a time, from load to durable write: concurrent KE1s of one
    // account each see the previous one's charge. Other accounts proceed in parallel.
    let guard = state.stripe(opened.account()).lock_owned().await;
    let worker = state.clone();
    let handled = tokio::task::spawn_blocking(move || {
        let record = worker.store.load(opened.account()).map_err(Failure::Storage)?;
        let (reply, outcome) = match worker.hsm.handle(opened, record, files::unix_now()) {
            Step::Reply(reply) => (reply, describe(None)),
            Step::PersistThenReply(step) => {
                let outcome = describe(Some(step.change()));
                let store = &worker.store;
                let reply = step
                    .persist(|account, change| store.apply(account, change))
                    .map_err(Failure::Storage)?;
                (reply, outcome)
            }
        };
        drop(guard);
        // KE2, ticket and response sealing: after the write, outside the account's lock.
        Ok::<_, Failure>((worker.hsm.seal(reply, &mut OsRng), outcome))
    })
    .await
    .unwrap_or(Err(Failure::Panicked));

    let latency_us = started.elapsed().as_micros() as u64;
    match handled {
        Ok((sealed, outcome)) => {
            info!(
                kind,
                account = %who,
                status = 200,
                change = outcome.change,
                record = outcome.state,
                remaining = outcome.remaining.map(i64::from).unwrap_or(-1),
                latency_us,
                "vault request"
            );
            ([(header::CONTENT_TYPE, "application/octet-stream")], sealed).into_response()
        }
        Err(Failure::Storage(e)) => {
            warn!(kind, account = %who, status = 503, error = %e, latency_us, "storage failure");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage",
                "the record could not be read or written durably; nothing was sent; retry",
            )
        }
        Err(Failure::Panicked) => {
            warn!(kind, account = %who, status = 500, latency_us, "request handler panicked");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
        }
    }
}

fn error_code(e: &ChannelError) -> &'static str {
    match e {
        ChannelError::UnsupportedVersion(_) => "unsupported-version",
        ChannelError::UnknownKeyId(_) => "unknown-key-id",
        ChannelError::Malformed(_) | ChannelError::InvalidAccountId(_) => "malformed-envelope",
        _ => "request-does-not-open",
    }
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not-found", "no such endpoint")
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/fleet-bundle", get(fleet_bundle))
        .route("/v1/vault/{account}", post(vault))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// A server running on the current tokio runtime.
#[derive(Debug)]
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Loads the data directory, opens `vault.redb`, binds and starts serving.
    pub async fn start(config: ServerConfig) -> Result<Self, ServerError> {
        let data_dir = config.data_dir.clone();
        let store = tokio::task::spawn_blocking(move || RedbStore::open(&data_dir))
            .await
            .map_err(|e| ServerError::Task(e.to_string()))??;
        Self::start_with_store(config, Arc::new(store)).await
    }

    /// As [`RunningServer::start`], with another record store (tests of the failure paths).
    pub async fn start_with_store(
        config: ServerConfig,
        store: Arc<dyn RecordStore>,
    ) -> Result<Self, ServerError> {
        let ServerConfig { data_dir, listen, policy } = config;
        let secrets = files::read_secrets(&data_dir)?;
        let bundle_path = data_dir.join(BUNDLE_FILE);
        let bundle = std::fs::read(&bundle_path)
            .map_err(|source| FilesError::Io { path: bundle_path.clone(), source })?;
        let pin = FleetPin::read(&data_dir.join(PIN_FILE))?;
        // Check the bundle against the pin and the secrets; an expired bundle is served with a
        // warning (clients will refuse it until `bundle` signs a new one).
        let checked = pin
            .0
            .verify(&bundle, 0, None)
            .map_err(|e| ServerError::Setup(format!("{}: {e}", bundle_path.display())))?;
        if checked.fleet_id != secrets.fleet_id() || checked.keys != secrets.public_keys() {
            return Err(ServerError::Setup(
                "the fleet key bundle does not list the keys of secrets.bin".into(),
            ));
        }
        if checked.not_after < files::unix_now() {
            warn!(not_after = checked.not_after, "the fleet key bundle has expired; re-sign it");
        }
        let hsm = Hsm::new(secrets, policy).map_err(|e| ServerError::Setup(e.to_string()))?;
        let mut log_key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(log_key.as_mut());
        let state = Arc::new(AppState {
            hsm,
            store,
            stripes: (0..STRIPES).map(|_| Arc::new(Mutex::new(()))).collect(),
            stripe_hasher: RandomState::new(),
            bundle: Bytes::from(bundle),
            log_key,
        });
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|source| ServerError::Io { what: "binding the listen address", source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServerError::Io { what: "reading the bound address", source })?;
        let (tx, rx) = oneshot::channel::<()>();
        let app = router(state);
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
        });
        info!(%addr, budget = policy.budget, ksf = ?policy.ksf_profile, "vault server listening");
        Ok(Self { addr, shutdown: Some(tx), task })
    }

    /// Stops accepting connections, lets requests in flight finish, and waits.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.wait().await
    }

    /// Waits until the server stops (after [`RunningServer::shutdown`] or a failure).
    pub async fn wait(self) -> Result<(), ServerError> {
        match self.task.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(ServerError::Io { what: "serving", source }),
            Err(e) => Err(ServerError::Task(e.to_string())),
        }
    }

    /// Runs until `signal` completes, then shuts down gracefully.
    pub async fn run_until(
        mut self,
        signal: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServerError> {
        signal.await;
        info!("shutting down");
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.wait().await
    }
}

/// A server on a runtime of its own, for synchronous callers (the CLI demo, tests). Must not be
/// created or dropped inside an async context.
#[derive(Debug)]
pub struct BackgroundServer {
    addr: SocketAddr,
    server: Option<RunningServer>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl BackgroundServer {
    /// Starts a server on a new two-thread runtime.
    pub fn start(config: ServerConfig) -> Result<Self, ServerError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("vault-server")
            .enable_all()
            .build()
            .map_err(|source| ServerError::Io { what: "building the runtime", source })?;
        let server = runtime.block_on(RunningServer::start(config))?;
        Ok(Self { addr: server.addr, server: Some(server), runtime: Some(runtime) })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Shuts the server down gracefully and waits.
    pub fn shutdown(mut self) -> Result<(), ServerError> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), ServerError> {
        match (self.server.take(), self.runtime.take()) {
            (Some(server), Some(runtime)) => {
                let result = runtime.block_on(server.shutdown());
                runtime.shutdown_timeout(std::time::Duration::from_secs(5));
                result
            }
            _ => Ok(()),
        }
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::parse_account;

    #[test]
    fn account_paths_are_1_to_64_bytes_of_lowercase_hex() {
        assert_eq!(parse_account("00ff"), Some(vec![0, 255]));
        assert_eq!(parse_account(&"ab".repeat(64)).map(|a| a.len()), Some(64));
        for bad in ["", "0", "abc", "00FF", "zz", "+1", &"ab".repeat(65)] {
            assert_eq!(parse_account(bad), None, "{bad:?}");
        }
    }
}
