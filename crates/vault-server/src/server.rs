//! The HTTP server (spec section 4.15) around the sans-IO HSM core.
//!
//! One file, though over 700 lines: the handler's steps (read, authenticate, limit, replicate,
//! answer), the `ApiError` table they return and the server's start and shutdown are read
//! together.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use e2ee_backup_vault::{
    ChannelError, FleetError, Hsm, HsmConfig, HsmError, envelope::RequestEnvelope,
};
use hmac::{Hmac, KeyInit as _, Mac as _};
use rand_core::{OsRng, RngCore as _};
use sha2::Sha256;
use thiserror::Error;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::files::{
    self, BUNDLE_FILE, CONFIG_FILE, ConfigFile, FilesError, FleetPin, PIN_FILE, RelayConfig,
    RelayKeyError, ReplicaConfig,
};
use crate::limits::{self, BodyRefusal, Limits};
use crate::peer_tls::PeerTls;
use crate::raft::{self, HttpNetwork, PeerSeal, RaftReplication};
use crate::relay::{self, AccountRate, RelayVerifier};
use crate::replication::{Replication, ReplicationError, SingleNode};
use crate::store::{self, RecordStore, RedbStore, StoreError};

/// The largest request body: a request envelope with a 64-byte account and an 8192-byte
/// plaintext (1 + 1 + 2 + 64 + 32 + 8192 + 16).
pub const MAX_BODY: usize = 8308;

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
    /// The fleet secrets, bundle, policy or replica do not fit together, or the replica did not
    /// start.
    #[error("inconsistent vault setup: {0}")]
    Setup(Box<SetupError>),
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
    Task(#[from] tokio::task::JoinError),
    /// The replica's consensus engine stopped on its own (its log store failed): the server
    /// stopped too, for a supervisor to restart the process.
    #[error(transparent)]
    Stopped(#[from] crate::replication::Stopped),
}

impl From<SetupError> for ServerError {
    fn from(e: SetupError) -> Self {
        Self::Setup(Box::new(e))
    }
}

/// What does not fit in a data directory's setup (a [`ServerError::Setup`]).
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The fleet key bundle does not verify under the pin.
    #[error("{}: {source}", path.display())]
    Bundle {
        /// The bundle file.
        path: PathBuf,
        /// Why it does not verify.
        source: FleetError,
    },
    /// The fleet key bundle lists other keys than the fleet secrets hold.
    #[error("the fleet key bundle does not list the keys of secrets.bin")]
    BundleKeys,
    /// The secrets and the policy do not make a vault.
    #[error(transparent)]
    Hsm(#[from] HsmError),
    /// The replicas' mutual TLS configuration could not be made.
    #[error("peer TLS: {0}")]
    PeerTls(#[source] rustls::Error),
    /// The relay's public key in `config.toml` is not usable.
    #[error(transparent)]
    RelayKey(#[from] RelayKeyError),
    /// The client that forwards requests to the leader could not be built.
    #[error("the forwarding client: {0}")]
    ForwardingClient(#[source] reqwest::Error),
    /// The replica's consensus engine did not start.
    #[error(transparent)]
    Replica(#[from] raft::StartError),
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
    /// The replica's place in a replicated fleet; `None` for a single vault.
    pub replica: Option<ReplicaConfig>,
    /// Timeouts and caps on connections and requests (lowered at start, if needed, to fit the
    /// process's open files limit).
    pub limits: Limits,
    /// Account authentication by the relay and per-account rates (spec section 4.15.1).
    pub relay: RelayConfig,
}

impl ServerConfig {
    /// The configuration of `data_dir`, read from `config_file` (default
    /// `data_dir/config.toml`).
    pub fn from_data_dir(data_dir: &Path, config_file: Option<&Path>) -> Result<Self, FilesError> {
        let default = data_dir.join(CONFIG_FILE);
        let file = ConfigFile::read(config_file.unwrap_or(&default))?;
        Ok(Self {
            data_dir: data_dir.to_path_buf(),
            listen: file.listen,
            policy: file.policy(),
            replica: file.replica,
            limits: file.limits,
            relay: file.relay,
        })
    }
}

struct AppState {
    hsm: Arc<Hsm>,
    replication: Arc<dyn Replication>,
    /// Forwards requests to the leader (replicated fleets).
    forwarder: reqwest::Client,
    bundle: Bytes,
    /// Key of the account pseudonyms in logs: drawn at start, so lines of one run correlate
    /// while a plain hash of a phone number (reversible by enumeration) is never written.
    log_key: Zeroizing<[u8; 32]>,
    /// Checks account tokens, when a relay key is configured (spec 4.15.1).
    relay: Option<RelayVerifier>,
    /// Per-account request rates, when configured; counted where requests are decided.
    account_rate: Option<AccountRate>,
}

impl AppState {
    fn pseudonym(&self, account: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(self.log_key.as_ref()).expect("any key length");
        mac.update(account);
        hex::encode(&mac.finalize().into_bytes()[..6])
    }
}

/// The header a replica sets on a request it forwards to the leader; a replica that gets a
/// forwarded request and does not lead answers `503 no-leader` instead of forwarding again.
pub const FORWARDED_HEADER: &str = "x-e2ee-vault-forwarded";

/// Every error answer of the HTTP binding, with its status and code (spec section 4.15; the
/// table in the crate documentation): `{"error": code, "message": text}`.
#[derive(Debug)]
enum ApiError {
    /// The `{account}` path segment is not 2 to 128 lowercase hexadecimal digits.
    BadAccount,
    /// The relay's account token is missing or does not verify (spec 4.15.1).
    Unauthenticated(String),
    /// The body exceeds [`MAX_BODY`].
    TooLarge,
    /// The body did not arrive within the limit (seconds).
    Timeout(u64),
    /// The body or the envelope does not parse.
    MalformedEnvelope(String),
    /// The envelope names another account than the path.
    Misaddressed,
    /// The envelope's version is not 1.
    UnsupportedVersion(String),
    /// The envelope names a key id the fleet does not hold.
    UnknownKeyId(String),
    /// The envelope does not open.
    RequestDoesNotOpen,
    /// No leader took the request; nothing was done.
    NoLeader(&'static str),
    /// The account's request rate is exceeded (spec 4.15.1).
    RateLimited,
    /// The record could not be read or written durably; nothing was sent.
    Storage,
    /// The request may have been applied; nothing was sent.
    Unconfirmed(&'static str),
    /// Beyond the places in flight and the queue.
    Busy,
    /// A task of the server failed.
    Internal,
    /// No such route.
    NotFound,
}

impl ApiError {
    fn from_channel(e: &ChannelError) -> Self {
        match e {
            ChannelError::UnsupportedVersion(_) => Self::UnsupportedVersion(e.to_string()),
            ChannelError::UnknownKeyId(_) => Self::UnknownKeyId(e.to_string()),
            ChannelError::Malformed(_) | ChannelError::InvalidAccountId(_) => {
                Self::MalformedEnvelope(e.to_string())
            }
            _ => Self::RequestDoesNotOpen,
        }
    }

    /// The one code table.
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadAccount => (StatusCode::BAD_REQUEST, "bad-account"),
            Self::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Self::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "too-large"),
            Self::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "timeout"),
            Self::MalformedEnvelope(_) => (StatusCode::BAD_REQUEST, "malformed-envelope"),
            Self::Misaddressed => (StatusCode::BAD_REQUEST, "misaddressed"),
            Self::UnsupportedVersion(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "unsupported-version")
            }
            Self::UnknownKeyId(_) => (StatusCode::UNPROCESSABLE_ENTITY, "unknown-key-id"),
            Self::RequestDoesNotOpen => (StatusCode::UNPROCESSABLE_ENTITY, "request-does-not-open"),
            Self::NoLeader(_) => (StatusCode::SERVICE_UNAVAILABLE, "no-leader"),
            Self::RateLimited => (StatusCode::TOO_MANY_REQUESTS, "rate-limited"),
            Self::Storage => (StatusCode::SERVICE_UNAVAILABLE, "storage"),
            Self::Unconfirmed(_) => (StatusCode::SERVICE_UNAVAILABLE, "unconfirmed"),
            Self::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not-found"),
        }
    }

    fn message(&self) -> String {
        match self {
            Self::BadAccount => {
                "the account in the path is not 1 to 64 bytes of lowercase hexadecimal".into()
            }
            Self::Unauthenticated(why) | Self::MalformedEnvelope(why) => why.clone(),
            Self::UnsupportedVersion(why) | Self::UnknownKeyId(why) => why.clone(),
            Self::TooLarge => format!("the body exceeds the limit of {MAX_BODY} bytes"),
            Self::Timeout(seconds) => format!("the request did not arrive within {seconds} s"),
            Self::Misaddressed => "the envelope's account is not the account of the path".into(),
            Self::RequestDoesNotOpen => ChannelError::RequestDoesNotOpen.to_string(),
            Self::NoLeader(why) | Self::Unconfirmed(why) => (*why).into(),
            Self::RateLimited => "too many requests for this account; retry in a minute".into(),
            Self::Storage => {
                "the record could not be read or written durably; nothing was sent; retry".into()
            }
            Self::Busy => "the vault is busy; nothing was done; retry".into(),
            Self::Internal => "internal error".into(),
            Self::NotFound => "no such endpoint".into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = serde_json::json!({ "error": code, "message": self.message() });
        let mut response = (status, [(header::CONTENT_TYPE, "application/json")], body.to_string())
            .into_response();
        match self {
            Self::RateLimited => {
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            }
            Self::Timeout(_) => {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

const NO_LEADER_ELECTING: &str = "the fleet is electing a leader; nothing was done; retry";
const NO_LEADER_UNREACHABLE: &str = "the leader could not be reached; nothing was done; retry";
const UNCONFIRMED: &str =
    "the request may have been applied but was not confirmed; nothing was sent; retry";
const UNCONFIRMED_LOST: &str =
    "the leader's answer was lost; the request may have been applied; retry";
const UNCONFIRMED_CUT: &str =
    "the leader's answer was cut off; the request may have been applied; retry";

/// Parses the `{account}` path segment: 2 to 128 lowercase hexadecimal digits.
pub fn parse_account(hex_path: &str) -> Option<Vec<u8>> {
    let ok_len = (2..=128).contains(&hex_path.len()) && hex_path.len().is_multiple_of(2);
    let lowercase = hex_path.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok_len && lowercase { hex::decode(hex_path).ok() } else { None }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn fleet_bundle(State(state): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "application/octet-stream")], state.bundle.clone()).into_response()
}

async fn vault(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    path: Result<UrlPath<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let account_hex = path.as_ref().map(|UrlPath(p)| p.clone()).unwrap_or_default();
    let Some(account) = parse_account(&account_hex) else {
        info!(status = 400, code = "bad-account", "vault request refused");
        return ApiError::BadAccount.into_response();
    };
    let who = state.pseudonym(&account);
    match serve_vault(&state, &headers, &account, &account_hex, &who, body, started).await {
        Ok(response) => response,
        Err(e) => {
            let (status, code) = e.status_and_code();
            let latency_us = started.elapsed().as_micros() as u64;
            let status = status.as_u16();
            info!(account = %who, status, code, latency_us, "vault request refused");
            e.into_response()
        }
    }
}

/// Spec 4.15, steps 1 to 5 of a vault request whose path names `account`.
async fn serve_vault(
    state: &Arc<AppState>,
    headers: &HeaderMap,
    account: &[u8],
    account_hex: &str,
    who: &str,
    body: Result<Bytes, BytesRejection>,
    started: Instant,
) -> Result<Response, ApiError> {
    // Spec 4.15.1: the relay's account token, before any vault work.
    if let Some(relay) = &state.relay {
        let token = headers.get(relay::HEADER).and_then(|v| v.to_str().ok());
        relay
            .check(account, token, files::unix_now())
            .map_err(|why| ApiError::Unauthenticated(why.to_string()))?;
    }
    let body = body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge,
        _ => ApiError::MalformedEnvelope(format!("the body could not be read: {rejection}")),
    })?;
    let envelope = RequestEnvelope::parse(&body).map_err(|e| ApiError::from_channel(&e))?;
    if envelope.account_id() != account {
        return Err(ApiError::Misaddressed);
    }

    // A replica that does not lead passes the request on, once.
    if let Some(leader) = state.replication.forward_to() {
        if headers.contains_key(FORWARDED_HEADER) {
            return Err(ApiError::NoLeader(NO_LEADER_ELECTING));
        }
        let token = headers.get(relay::HEADER).cloned();
        return forward(state, &leader, account_hex, token, body).await;
    }

    // Spec 4.15.1: per-account rates are counted where requests are decided.
    if let Some(rate) = &state.account_rate
        && !rate.allow(account)
    {
        return Err(ApiError::RateLimited);
    }

    // Open (an X25519 decapsulation and an AEAD) on a blocking thread.
    let opener = state.clone();
    let opened = match tokio::task::spawn_blocking(move || opener.hsm.open(&body)).await {
        Ok(Ok(opened)) => opened,
        Ok(Err(HsmError::Channel(e))) => return Err(ApiError::from_channel(&e)),
        Ok(Err(e)) => {
            warn!(account = %who, error = %e, "vault request failed");
            return Err(ApiError::Internal);
        }
        Err(_) => return Err(ApiError::Internal),
    };
    let kind = opened.request_name().unwrap_or("undecodable");

    // The decision: applied in the fleet's order and durable before anything is sealed.
    let (command, pending) = opened.into_command(files::unix_now());
    let decided = match command {
        Err(refusal) => Ok(refusal),
        Ok(command) => state.replication.submit(command).await,
    };
    let decision = decided.map_err(|e| {
        let latency_us = started.elapsed().as_micros() as u64;
        let api = match &e {
            ReplicationError::Storage(_) => ApiError::Storage,
            _ => ApiError::Unconfirmed(UNCONFIRMED),
        };
        let code = api.status_and_code().1;
        warn!(kind, account = %who, status = 503, code, error = %e, latency_us, "not decided");
        api
    })?;
    let answer = decision.kind();
    let remaining = decision.remaining().map(i64::from).unwrap_or(-1);

    // KE2, ticket and response sealing: after the decision is durable.
    let sealer = state.clone();
    let sealed =
        tokio::task::spawn_blocking(move || sealer.hsm.seal(pending.reply(decision), &mut OsRng))
            .await;
    let latency_us = started.elapsed().as_micros() as u64;
    let Ok(sealed) = sealed else {
        warn!(kind, account = %who, status = 500, latency_us, "sealing panicked");
        return Err(ApiError::Internal);
    };
    info!(kind, account = %who, status = 200, answer, remaining, latency_us, "vault request");
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], sealed).into_response())
}

/// Passes a request on to the leader's client address and relays its answer.
async fn forward(
    state: &AppState,
    leader: &str,
    account_hex: &str,
    token: Option<HeaderValue>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let url = format!("http://{leader}/v1/vault/{account_hex}");
    let mut request = state.forwarder.post(url);
    if let Some(token) = token {
        // The leader checks the relay's token again: it trusts no replica's word for it.
        request = request.header(relay::HEADER, token);
    }
    let sent = request
        .header(FORWARDED_HEADER, "1")
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(body)
        .send()
        .await;
    let answer = match sent {
        Ok(answer) => answer,
        Err(e) if e.is_connect() => {
            // No connection: the leader never saw the request.
            warn!(error = %e, "the leader could not be reached");
            return Err(ApiError::NoLeader(NO_LEADER_UNREACHABLE));
        }
        Err(e) => {
            warn!(error = %e, "the leader's answer was lost");
            return Err(ApiError::Unconfirmed(UNCONFIRMED_LOST));
        }
    };
    let status =
        StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let bytes = answer.bytes().await.map_err(|_| ApiError::Unconfirmed(UNCONFIRMED_CUT))?;
    Ok((status, [(header::CONTENT_TYPE, content_type)], bytes).into_response())
}

async fn cluster_status(State(state): State<Arc<AppState>>) -> Response {
    let status = state.replication.status();
    let body = serde_json::to_string(&status).expect("the status serialises");
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Reads the whole body within `within` of the request head (spec section 4.15), before the
/// request queues for a place: a slow sender holds only its connection, never a place of the
/// requests in flight.
async fn read_body_within(
    State(within): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    match limits::read_body(body, MAX_BODY, within).await {
        Ok(bytes) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Err(BodyRefusal::TooLarge) => {
            info!(status = 413, code = "too-large", "request refused");
            ApiError::TooLarge.into_response()
        }
        Err(BodyRefusal::TimedOut) => {
            info!(status = 408, code = "timeout", "request refused");
            ApiError::Timeout(within.as_secs()).into_response()
        }
        Err(BodyRefusal::Failed | BodyRefusal::Busy) => {
            ApiError::MalformedEnvelope("the body could not be read".into()).into_response()
        }
    }
}

/// The answer to a request beyond the places in flight and the queue (spec section 4.15).
async fn busy(e: tower::BoxError) -> Response {
    if e.is::<tower::load_shed::error::Overloaded>() {
        info!(status = 503, code = "busy", "request refused");
        ApiError::Busy.into_response()
    } else {
        warn!(error = %e, "the admission stage failed");
        ApiError::Internal.into_response()
    }
}

async fn not_found() -> Response {
    ApiError::NotFound.into_response()
}

fn router(state: Arc<AppState>, limits: &Limits) -> Router {
    let routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/fleet-bundle", get(fleet_bundle))
        .route("/v1/cluster", get(cluster_status))
        .route("/v1/vault/{account}", post(vault))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state);
    let within = Duration::from_secs(limits.body_timeout_secs);
    limits::admission(routes, limits.max_in_flight, limits.max_queued, busy)
        .layer(middleware::from_fn_with_state(within, read_body_within))
}

/// A server running on the current tokio runtime.
pub struct RunningServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// The bound peer address of a replica.
    pub peer_addr: Option<SocketAddr>,
    replication: Arc<dyn Replication>,
    shutdown: Option<oneshot::Sender<()>>,
    peer_shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// The checked fleet setup of a data directory: the HSM and the bundle it serves.
fn load_setup(data_dir: &Path, policy: HsmConfig) -> Result<(Hsm, Vec<u8>), ServerError> {
    let secrets = files::read_secrets(data_dir)?;
    let bundle_path = data_dir.join(BUNDLE_FILE);
    let bundle = std::fs::read(&bundle_path)
        .map_err(|source| FilesError::Io { path: bundle_path.clone(), source })?;
    let pin = FleetPin::read(&data_dir.join(PIN_FILE))?;
    // Check the bundle against the pin and the secrets; an expired bundle is served with a
    // warning (clients will refuse it until `bundle` signs a new one).
    let checked = pin
        .0
        .verify(&bundle, 0, None)
        .map_err(|source| SetupError::Bundle { path: bundle_path.clone(), source })?;
    if checked.fleet_id != secrets.fleet_id().as_bytes() || checked.keys != secrets.public_keys() {
        return Err(SetupError::BundleKeys.into());
    }
    if checked.not_after < files::unix_now() {
        warn!(not_after = checked.not_after, "the fleet key bundle has expired; re-sign it");
    }
    let hsm = Hsm::new(secrets, policy).map_err(SetupError::Hsm)?;
    Ok((hsm, bundle))
}

/// `limits` with the connection caps fitted to the process's open files limit (warns when
/// they had to be lowered).
fn fitted_limits(limits: Limits, replicated: bool) -> Limits {
    let open_files = limits::open_files_limit();
    let (fitted, lowered) = limits.fit_open_files(open_files, replicated);
    if lowered {
        warn!(
            open_files,
            max_connections = fitted.max_connections,
            peer_max_connections = fitted.peer_max_connections,
            "connection caps lowered to fit the open files limit; raise it (ulimit -n)"
        );
    }
    fitted
}

impl RunningServer {
    /// Loads the data directory, opens `vault.redb`, starts the replica's engine when the
    /// configuration names a fleet, binds and starts serving.
    pub async fn start(config: ServerConfig) -> Result<Self, ServerError> {
        let (hsm, bundle) = load_setup(&config.data_dir, config.policy)?;
        let hsm = Arc::new(hsm);
        let data_dir = config.data_dir.clone();
        let (db, keys) = tokio::task::spawn_blocking(move || {
            Ok::<_, StoreError>((
                store::open_database(&data_dir)?,
                Arc::new(crate::at_rest::Keyring::open(&data_dir)?),
            ))
        })
        .await
        .map_err(ServerError::Task)??;
        let Some(replica) = config.replica.clone() else {
            let store = RedbStore::new(db, keys)?;
            let single = SingleNode::new(hsm.clone(), Arc::new(store)).map_err(|source| {
                ServerError::Io { what: "starting the committer thread", source }
            })?;
            return Self::serve(config, hsm, bundle, Arc::new(single), None).await;
        };
        let seal = PeerSeal::new(hsm.secrets().peer_key(), replica.node_id);
        #[cfg(feature = "broken-variants")]
        let seal = match raft::Broken::from_env() {
            Some(raft::Broken::UnboundPeerReplies) => seal.with_unbound_replies(),
            _ => seal,
        };
        let members: Option<BTreeMap<_, _>> =
            replica.bootstrap.then(|| replica.members.iter().map(|m| (m.id, m.member())).collect());
        let tls = match replica.peer_tls {
            true => {
                Some(PeerTls::new(&hsm.secrets().peer_tls_seed()).map_err(SetupError::PeerTls)?)
            }
            false => None,
        };
        let network = HttpNetwork::new(
            seal.clone(),
            Some(replica.peer_listen.ip()).filter(|ip| !ip.is_unspecified()),
            tls.as_ref(),
        );
        let (id, db, tuning) = (replica.node_id, (Arc::new(db), keys), replica.tuning());
        #[cfg(feature = "broken-variants")]
        let replication = match raft::Broken::from_env() {
            Some(broken) => {
                warn!(?broken, "DELIBERATELY BROKEN VARIANT: for tests only");
                RaftReplication::start_broken(id, db, hsm.clone(), network, tuning, members, broken)
                    .await
            }
            None => RaftReplication::start(id, db, hsm.clone(), network, tuning, members).await,
        }
        .map_err(SetupError::Replica)?;
        #[cfg(not(feature = "broken-variants"))]
        let replication = RaftReplication::start(id, db, hsm.clone(), network, tuning, members)
            .await
            .map_err(SetupError::Replica)?;
        let (tx, rx) = oneshot::channel::<()>();
        let limits = fitted_limits(config.limits, true);
        let shutdown = async move {
            let _ = rx.await;
        };
        let (peer_addr, _task) = raft::serve_peers(
            replica.peer_listen,
            replication.raft().clone(),
            seal,
            &limits,
            tls.as_ref(),
            shutdown,
        )
        .await
        .map_err(|source| ServerError::Io { what: "binding the peer address", source })?;
        info!(node_id = replica.node_id, %peer_addr, "replica peer listener up");
        let mut server = Self::serve(config, hsm, bundle, Arc::new(replication), Some(tx)).await?;
        server.peer_addr = Some(peer_addr);
        Ok(server)
    }

    /// As [`RunningServer::start`] for a single vault, with another record store (tests of
    /// the failure paths).
    pub async fn start_with_store(
        config: ServerConfig,
        store: Arc<dyn RecordStore>,
    ) -> Result<Self, ServerError> {
        let (hsm, bundle) = load_setup(&config.data_dir, config.policy)?;
        let hsm = Arc::new(hsm);
        let single = SingleNode::new(hsm.clone(), store)
            .map_err(|source| ServerError::Io { what: "starting the committer thread", source })?;
        Self::serve(config, hsm, bundle, Arc::new(single), None).await
    }

    async fn serve(
        config: ServerConfig,
        hsm: Arc<Hsm>,
        bundle: Vec<u8>,
        replication: Arc<dyn Replication>,
        peer_shutdown: Option<oneshot::Sender<()>>,
    ) -> Result<Self, ServerError> {
        let policy = config.policy;
        let relay_key = config.relay.verifying_key().map_err(SetupError::RelayKey)?;
        let hsm_fleet_id = hsm.secrets().fleet_id().as_bytes().to_vec();
        let mut log_key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(log_key.as_mut());
        let forwarder = raft::http_client()
            .connect_timeout(std::time::Duration::from_secs(1))
            .timeout(std::time::Duration::from_secs(15))
            .build()
            .map_err(SetupError::ForwardingClient)?;
        let state = Arc::new(AppState {
            hsm,
            replication: replication.clone(),
            forwarder,
            bundle: Bytes::from(bundle),
            log_key,
            relay: relay_key.map(|key| RelayVerifier::new(key, hsm_fleet_id.as_slice())),
            account_rate: config.relay.requests_per_minute.map(AccountRate::new),
        });
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Io { what: "binding the listen address", source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServerError::Io { what: "reading the bound address", source })?;
        let (tx, rx) = oneshot::channel::<()>();
        let limits = fitted_limits(config.limits, config.replica.is_some());
        let app = router(state, &limits);
        let shutdown = async move {
            let _ = rx.await;
        };
        let task =
            tokio::spawn(limits::serve(listener, app, limits.client_listener(), None, shutdown));
        info!(%addr, budget = policy.budget, ksf = ?policy.ksf_profile, "vault server listening");
        info!(
            account_tokens = relay_key.is_some(),
            requests_per_minute = config.relay.requests_per_minute.map_or(0, |n| n.get()),
            "relay checks (spec 4.15.1)"
        );
        info!(
            header_timeout_secs = limits.header_timeout_secs,
            body_timeout_secs = limits.body_timeout_secs,
            max_connections = limits.max_connections,
            max_connections_per_source = limits.max_connections_per_source,
            max_in_flight = limits.max_in_flight,
            max_queued = limits.max_queued,
            "client limits"
        );
        Ok(Self { addr, peer_addr: None, replication, shutdown: Some(tx), peer_shutdown, task })
    }

    /// Stops accepting connections, lets requests in flight finish, and waits.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.wait().await
    }

    /// Waits until the server stops (after [`RunningServer::shutdown`] or a failure).
    pub async fn wait(mut self) -> Result<(), ServerError> {
        let served = (&mut self.task).await;
        if let Some(tx) = self.peer_shutdown.take() {
            let _ = tx.send(());
        }
        self.replication.shutdown().await;
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(ServerError::Io { what: "serving", source }),
            Err(e) => Err(ServerError::Task(e)),
        }
    }

    /// Runs until `signal` completes, then shuts down gracefully.
    /// If the replica's engine stops on its own first, the server shuts down the same way and
    /// returns [`ServerError::Stopped`]: a replica that can no longer commit would only answer
    /// 503, so it exits and its supervisor restarts it on its durable state.
    pub async fn run_until(
        mut self,
        signal: impl std::future::Future<Output = ()>,
    ) -> Result<(), ServerError> {
        let replication = self.replication.clone();
        let stopped = tokio::select! {
            () = signal => None,
            stopped = replication.stopped() => Some(stopped),
        };
        match &stopped {
            None => info!("shutting down"),
            Some(stopped) => tracing::error!(%stopped, "shutting down"),
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let served = self.wait().await;
        match stopped {
            Some(stopped) => Err(stopped.into()),
            None => served,
        }
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
