//! What one client or one peer may hold of the server (spec sections 4.15 and 7.7): how long
//! a request may take to arrive, how many connections stay open (in all and per source), how
//! many requests run or wait at once, and how many peer bytes are buffered before their seal is
//! checked.
//!
//! Both listeners (the client API and a replica's peer port) run [`serve`]: an accept loop that
//!
//! - takes a connection slot before it accepts, so that connections beyond
//!   [`Limits::max_connections`] wait in the kernel's backlog and never cost a file descriptor;
//! - closes at once a connection whose source already holds
//!   [`Limits::max_connections_per_source`] (IPv4 addresses count alone, IPv6 addresses by
//!   their /64);
//! - serves each connection with hyper's HTTP/1.1 connection and its header read timeout
//!   ([`Limits::header_timeout_secs`]), which also closes a kept-alive connection that sends no
//!   new request within that time;
//! - on shutdown stops accepting and lets the requests in flight finish.
//!
//! The client API also reads each body within [`Limits::body_timeout_secs`] (`408 timeout`)
//! and admits at most [`Limits::max_in_flight`] requests at once with at most
//! [`Limits::max_queued`] waiting behind them; any further request gets `503 busy` at once (see
//! [`admission`]). The peer port reserves each body's declared length out of
//! [`Limits::peer_body_budget_mib`] before reading it (see [`BodyBudget`]).

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use http_body_util::{BodyExt as _, LengthLimitError, Limited};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{debug, warn};

/// File descriptors kept out of the connection caps when they are fitted to the process's
/// limit: the database, the logs, the runtime, and the outgoing connections (to the leader and
/// to the peers).
pub const RESERVED_FILES: u64 = 128;

/// Why [`Limits`] cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitsError {
    /// The limit named (a key of the `[limits]` section) is 0.
    #[error("limits.{0} must be at least 1")]
    Zero(&'static str),
    /// A cap or timeout is above what the server supports.
    #[error("limits are out of range (timeouts at most 3600 s, budget 1 TiB)")]
    OutOfRange,
}

/// The `[limits]` section of `config.toml`; every key is optional (the defaults below).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Seconds a connection has to send a complete request head, counted from when the server
    /// starts waiting for it (the connection's start, or the end of its previous response).
    /// Default 10.
    pub header_timeout_secs: u64,
    /// Seconds a client request's body has to arrive in full, counted from its head. Default 10.
    pub body_timeout_secs: u64,
    /// Client connections open at once; more wait in the kernel's backlog. Default 1024
    /// (lowered at start to fit the open files limit, see [`Limits::fit_open_files`]).
    pub max_connections: usize,
    /// Client connections open at once from one source address; more are closed at once.
    /// Default 64. Behind a relay every request comes from the relay's address: set this to at
    /// least the relay's connection pool.
    pub max_connections_per_source: usize,
    /// Client requests handled at once. Default 64.
    pub max_in_flight: usize,
    /// Client requests waiting for one of those places; a request beyond gets `503 busy`.
    /// Default 256.
    pub max_queued: usize,
    /// Peer connections open at once (replicas only). Default 64.
    pub peer_max_connections: usize,
    /// Peer connections open at once from one source address. Default 16.
    pub peer_max_connections_per_source: usize,
    /// Seconds a peer message's body has to arrive in full. Default 30.
    pub peer_body_timeout_secs: u64,
    /// MiB of peer message bodies buffered at once, over all peer connections; each body
    /// reserves its declared length before it is read. Default 128 (two of the largest
    /// messages).
    pub peer_body_budget_mib: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl Limits {
    /// The defaults (spec section 4.15).
    pub const DEFAULT: Limits = Limits {
        header_timeout_secs: 10,
        body_timeout_secs: 10,
        max_connections: 1024,
        max_connections_per_source: 64,
        max_in_flight: 64,
        max_queued: 256,
        peer_max_connections: 64,
        peer_max_connections_per_source: 16,
        peer_body_timeout_secs: 30,
        peer_body_budget_mib: 128,
    };

    /// Whether these are the defaults (then `config.toml` need not name them).
    pub fn is_default(&self) -> bool {
        *self == Self::DEFAULT
    }

    /// Why these limits cannot be used, if they cannot.
    pub fn check(&self) -> Result<(), LimitsError> {
        let positive = [
            ("header_timeout_secs", self.header_timeout_secs as usize),
            ("body_timeout_secs", self.body_timeout_secs as usize),
            ("max_connections", self.max_connections),
            ("max_connections_per_source", self.max_connections_per_source),
            ("max_in_flight", self.max_in_flight),
            ("max_queued", self.max_queued),
            ("peer_max_connections", self.peer_max_connections),
            ("peer_max_connections_per_source", self.peer_max_connections_per_source),
            ("peer_body_timeout_secs", self.peer_body_timeout_secs as usize),
            ("peer_body_budget_mib", self.peer_body_budget_mib),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(LimitsError::Zero(name));
        }
        if self.max_connections > Semaphore::MAX_PERMITS
            || self.peer_max_connections > Semaphore::MAX_PERMITS
            || self.peer_body_budget_mib > 1 << 20
            || self.header_timeout_secs > 3600
            || self.body_timeout_secs > 3600
            || self.peer_body_timeout_secs > 3600
        {
            return Err(LimitsError::OutOfRange);
        }
        Ok(())
    }

    /// These limits with the connection caps lowered, if needed, so that the open connections
    /// of both listeners and [`RESERVED_FILES`] fit in `open_files` descriptors (the process's
    /// soft limit; `None` when unknown); the caps of the peer port count only for a replica.
    /// Says whether anything was lowered.
    pub fn fit_open_files(self, open_files: Option<u64>, replicated: bool) -> (Self, bool) {
        let Some(open_files) = open_files else { return (self, false) };
        let available =
            usize::try_from(open_files.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX).max(2);
        let peer = if replicated { self.peer_max_connections } else { 0 };
        if self.max_connections.saturating_add(peer) <= available {
            return (self, false);
        }
        let mut fitted = self;
        if replicated {
            // Three quarters for clients, one for peers (peers need few connections).
            fitted.peer_max_connections = self.peer_max_connections.min(available / 4).max(1);
        }
        let left =
            available.saturating_sub(if replicated { fitted.peer_max_connections } else { 0 });
        fitted.max_connections = self.max_connections.min(left).max(1);
        fitted.max_connections_per_source =
            self.max_connections_per_source.min(fitted.max_connections);
        fitted.peer_max_connections_per_source =
            self.peer_max_connections_per_source.min(fitted.peer_max_connections);
        (fitted, true)
    }

    /// The connection limits of the client listener.
    pub fn client_listener(&self) -> ListenerLimits {
        ListenerLimits {
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            max_connections: self.max_connections,
            max_per_source: self.max_connections_per_source,
        }
    }

    /// The connection limits of the peer listener.
    pub fn peer_listener(&self) -> ListenerLimits {
        ListenerLimits {
            header_timeout: Duration::from_secs(self.header_timeout_secs),
            max_connections: self.peer_max_connections,
            max_per_source: self.peer_max_connections_per_source,
        }
    }
}

/// The soft limit on this process's open files, from `/proc/self/limits` (Linux); `None`
/// elsewhere or when unlimited.
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.trim_start_matches("Max open files").split_whitespace().next()?.parse().ok()
}

/// What [`serve`] enforces on one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLimits {
    /// Time to send a complete request head.
    pub header_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Connections open at once from one source.
    pub max_per_source: usize,
}

/// The open connections of each source.
struct Sources {
    open: Mutex<HashMap<IpAddr, usize>>,
    cap: usize,
}

/// One open connection of a source; gives its place back when dropped.
struct SourceSlot {
    sources: Arc<Sources>,
    key: IpAddr,
}

/// The address a connection counts against: IPv4 alone (also when mapped into IPv6), IPv6 by
/// its /64 (one host usually holds a whole /64).
fn source_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
    }
}

impl Sources {
    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<SourceSlot> {
        let key = source_key(ip);
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(key).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(SourceSlot { sources: self.clone(), key })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self.sources.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Whether an `accept` error concerns only the connection being accepted.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset)
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves; then stops accepting,
/// lets the open connections finish their requests in flight, and returns.
///
/// With `tls`, each connection first completes a TLS handshake (within the header timeout)
/// and speaks HTTP inside it; a failed handshake closes the connection (spec 7.7.1).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ListenerLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections.clamp(1, Semaphore::MAX_PERMITS)));
    let sources =
        Arc::new(Sources { open: Mutex::new(HashMap::new()), cap: limits.max_per_source });
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    tokio::pin!(shutdown);
    loop {
        // A slot first: while none is free, new connections wait in the kernel's backlog.
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    // Out of descriptors or memory: wait rather than spin.
                    warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
            },
        };
        let Some(source) = sources.take(peer.ip()) else {
            debug!(source = %source_key(peer.ip()), "closed a connection beyond the source's cap");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let Some(acceptor) = tls.clone() else {
            let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
            tokio::spawn(async move {
                if let Err(e) = connection.await {
                    debug!(error = %e, "a connection ended with an error");
                }
                drop((slot, source));
            });
            continue;
        };
        let (watcher, http, within) = (graceful.watcher(), http.clone(), limits.header_timeout);
        tokio::spawn(async move {
            match tokio::time::timeout(within, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let connection = http.serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(connection).await {
                        debug!(error = %e, "a connection ended with an error");
                    }
                }
                Ok(Err(e)) => debug!(error = %e, "refused a TLS handshake"),
                Err(_) => debug!("a TLS handshake did not finish in time"),
            }
            drop((slot, source));
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// `app` behind an admission stage: at most `in_flight` requests handled at once, at most
/// about `queued` waiting for a place (in arrival order), and any other request answered at
/// once by `busy`.
pub fn admission<F, Fut>(app: Router, in_flight: usize, queued: usize, busy: F) -> Router
where
    F: FnOnce(tower::BoxError) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = axum::response::Response> + Send + 'static,
{
    let admitted = tower::ServiceBuilder::new()
        .layer(axum::error_handling::HandleErrorLayer::new(busy))
        .load_shed()
        .buffer(queued.max(1))
        .concurrency_limit(in_flight.max(1))
        .service(app);
    Router::new().fallback_service(admitted)
}

/// Why a body was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyRefusal {
    /// It is, or says it is, longer than allowed.
    TooLarge,
    /// The budget had no room for it in time.
    Busy,
    /// It did not arrive in time.
    TimedOut,
    /// The connection failed while it was read.
    Failed,
}

/// Reads `body` (at most `max` bytes) within `within`.
pub async fn read_body(body: Body, max: usize, within: Duration) -> Result<Bytes, BodyRefusal> {
    match tokio::time::timeout(within, Limited::new(body, max).collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(BodyRefusal::TooLarge),
        Ok(Err(_)) => Err(BodyRefusal::Failed),
        Err(_) => Err(BodyRefusal::TimedOut),
    }
}

/// The memory for unauthenticated bodies, shared by all connections of a listener: a body
/// reserves its declared length (or the maximum when it declares none) before a byte of it is
/// read, and gives it back when the returned permit is dropped.
#[derive(Debug, Clone)]
pub struct BodyBudget {
    kib: Arc<Semaphore>,
    total_kib: usize,
    max: usize,
    wait: Duration,
    within: Duration,
}

impl BodyBudget {
    /// A budget of `total_mib` MiB for bodies of at most `max` bytes, each read within
    /// `within`; a body waits at most `wait` for room.
    pub fn new(total_mib: usize, max: usize, wait: Duration, within: Duration) -> Self {
        let total_kib = total_mib.saturating_mul(1024).clamp(1, Semaphore::MAX_PERMITS);
        Self { kib: Arc::new(Semaphore::new(total_kib)), total_kib, max, wait, within }
    }

    /// Reads `body` with the `headers` of its request, within the budget; the bytes and the
    /// reservation to hold while they are used.
    pub async fn read(
        &self,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<(Bytes, OwnedSemaphorePermit), BodyRefusal> {
        let declared = match headers.get(header::CONTENT_LENGTH) {
            None => self.max,
            Some(value) => value
                .to_str()
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or(BodyRefusal::TooLarge)?,
        };
        if declared > self.max {
            return Err(BodyRefusal::TooLarge);
        }
        let kib = declared.div_ceil(1024).max(1);
        if kib > self.total_kib {
            return Err(BodyRefusal::TooLarge);
        }
        let kib = u32::try_from(kib).map_err(|_| BodyRefusal::TooLarge)?;
        let reserved = tokio::time::timeout(self.wait, self.kib.clone().acquire_many_owned(kib))
            .await
            .map_err(|_| BodyRefusal::Busy)?
            .map_err(|_| BodyRefusal::Busy)?;
        let bytes = read_body(body, declared, self.within).await?;
        Ok((bytes, reserved))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{Request, StatusCode};
    use axum::response::IntoResponse as _;
    use axum::routing::get;
    use tower::ServiceExt as _;

    #[test]
    fn sources_count_ipv4_alone_and_ipv6_by_64() {
        let sources = Arc::new(Sources { open: Mutex::new(HashMap::new()), cap: 2 });
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let first = sources.take(a).unwrap();
        let second = sources.take(mapped).unwrap();
        assert!(sources.take(a).is_none());
        assert!(sources.take("192.0.2.2".parse().unwrap()).is_some());
        drop(first);
        assert!(sources.take(a).is_some());
        drop(second);
        let v6 = Arc::new(Sources { open: Mutex::new(HashMap::new()), cap: 1 });
        let _held = v6.take("2001:db8::1".parse().unwrap()).unwrap();
        assert!(v6.take("2001:db8::ffff:2".parse().unwrap()).is_none());
        assert!(v6.take("2001:db8:0:1::1".parse().unwrap()).is_some());
    }

    #[test]
    fn caps_fit_the_open_files_limit() {
        let (same, lowered) = Limits::DEFAULT.fit_open_files(Some(20_000), true);
        assert!(!lowered);
        assert_eq!(same, Limits::DEFAULT);
        let (fitted, lowered) = Limits::DEFAULT.fit_open_files(Some(256), true);
        assert!(lowered);
        assert!(fitted.max_connections + fitted.peer_max_connections <= 128);
        assert!(fitted.max_connections_per_source <= fitted.max_connections);
        let (single, _) = Limits::DEFAULT.fit_open_files(Some(512), false);
        assert_eq!(single.max_connections, 384);
        assert_eq!(Limits::DEFAULT.fit_open_files(None, true).0, Limits::DEFAULT);
        assert!(Limits { max_queued: 0, ..Limits::DEFAULT }.check().is_err());
        assert!(Limits::DEFAULT.check().is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn admission_answers_busy_beyond_the_queue() {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let held = gate.clone();
        let app = Router::new().route(
            "/",
            get(move || {
                let held = held.clone();
                async move {
                    let _ = held.acquire().await;
                    "done"
                }
            }),
        );
        let busy = |_: tower::BoxError| async {
            (StatusCode::SERVICE_UNAVAILABLE, "busy").into_response()
        };
        let app = admission(app, 1, 1, busy);
        let request = || Request::get("/").body(Body::empty()).unwrap();
        // One in flight, and at most two waiting (the queue and the one its worker holds).
        let mut running = Vec::new();
        for _ in 0..3 {
            running.push(tokio::spawn(app.clone().oneshot(request())));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let refused = app.clone().oneshot(request()).await.unwrap();
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        gate.add_permits(10);
        for task in running {
            assert_eq!(task.await.unwrap().unwrap().status(), StatusCode::OK);
        }
        assert_eq!(app.oneshot(request()).await.unwrap().status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn the_budget_refuses_what_it_cannot_hold() {
        let budget = BodyBudget::new(1, 4096, Duration::from_millis(50), Duration::from_secs(1));
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, "5000".parse().unwrap());
        let refused = budget.read(&headers, Body::from(vec![0u8; 5000])).await;
        assert_eq!(refused.unwrap_err(), BodyRefusal::TooLarge);
        headers.insert(header::CONTENT_LENGTH, "4096".parse().unwrap());
        let mut held = Vec::new();
        for _ in 0..256 {
            held.push(budget.read(&headers, Body::from(vec![0u8; 4096])).await.unwrap());
        }
        let refused = budget.read(&headers, Body::from(vec![0u8; 4096])).await;
        assert_eq!(refused.unwrap_err(), BodyRefusal::Busy);
        held.pop();
        assert!(budget.read(&headers, Body::from(vec![0u8; 4096])).await.is_ok());
    }
}
