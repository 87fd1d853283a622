//! The peer transport over HTTP (spec sections 7.7 and 7.7.1), both sides: the engine's RPCs
//! (append, vote, snapshot) sent to a peer's `/raft/{route}` as sealed bodies
//! ([`super::seal::PeerSeal`]), plain or inside the fleet's mutual TLS, and the peer listener
//! that buffers each body within a budget, opens it, hands it to the engine (or to a
//! membership change, spec section 7.9) and seals the answer.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use e2ee_backup_vault::peer;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use super::Raft;
use super::membership::{MembershipRequest, change_members};
use super::seal::PeerSeal;
use super::types::{Member, NodeId, TypeConfig};
use crate::limits::{BodyBudget, BodyRefusal, Limits};
use crate::peer_tls::PeerTls;

/// The HTTP peer network: one reqwest client, bodies sealed with the peer key.
#[derive(Clone)]
pub(crate) struct HttpNetwork {
    http: reqwest::Client,
    seal: PeerSeal,
    /// `https` inside the fleet's mutual TLS, else `http`.
    scheme: &'static str,
}

impl HttpNetwork {
    /// A network sealing with `seal`, connecting from `local` (the replica's peer address, so
    /// that its peers and firewalls see one source per replica) when given, inside mutual TLS
    /// when `tls` is given (spec 7.7.1).
    pub(crate) fn new(
        seal: PeerSeal,
        local: Option<std::net::IpAddr>,
        tls: Option<&PeerTls>,
    ) -> Self {
        let (builder, scheme) = peer_client(tls);
        let http = builder
            .local_address(local)
            .connect_timeout(Duration::from_millis(500))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("the peer HTTP client builds");
        Self { http, seal, scheme }
    }
}

/// A reqwest builder for the peer network and the URL scheme to use: `https` inside the
/// fleet's mutual TLS when `tls` is given, else `http`.
pub fn peer_client(tls: Option<&PeerTls>) -> (reqwest::ClientBuilder, &'static str) {
    match tls {
        Some(tls) => (http_client().use_preconfigured_tls((*tls.client).clone()), "https"),
        None => (http_client(), "http"),
    }
}

/// A reqwest builder for plain HTTP between replicas.
pub fn http_client() -> reqwest::ClientBuilder {
    // reqwest wants a TLS provider whenever its rustls feature is on somewhere in the build.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

/// One peer's connection.
pub(crate) struct HttpPeer {
    network: HttpNetwork,
    target: NodeId,
    url: String,
}

impl HttpPeer {
    async fn call<Req, Resp, E>(
        &self,
        route: &str,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, Member, E>>
    where
        Req: Serialize,
        Resp: for<'de> Deserialize<'de>,
        E: std::error::Error + for<'de> Deserialize<'de>,
    {
        let (body, outgoing) = self.network.seal.seal_request(route, self.target, request);
        let sent = self
            .network
            .http
            .post(format!("{}/raft/{route}", self.url))
            .timeout(option.hard_ttl())
            .body(body)
            .send()
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        if !sent.status().is_success() {
            let e = std::io::Error::other(format!("peer answered {}", sent.status()));
            return Err(RPCError::Network(NetworkError::new(&e)));
        }
        let bytes = sent.bytes().await.map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let opened = self.network.seal.open_reply(&outgoing, &bytes);
        let answer: Result<Resp, E> = opened.ok_or_else(|| {
            let e = std::io::Error::other("the peer's answer is not the reply to this request");
            RPCError::Network(NetworkError::new(&e))
        })?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetworkFactory<TypeConfig> for HttpNetwork {
    type Network = HttpPeer;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Self::Network {
        let scheme = self.scheme;
        HttpPeer { network: self.clone(), target, url: format!("{scheme}://{}", node.peer) }
    }
}

impl RaftNetwork<TypeConfig> for HttpPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        self.call("append", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Member, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call("snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        self.call("vote", &rpc, &option).await
    }
}

/// The largest sealed peer message accepted: bounded, as every untrusted length.
const MAX_PEER_BODY: usize = 64 * 1024 * 1024;

/// How long a peer body waits for room in the body budget before it is refused with `503`.
const PEER_BODY_WAIT: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct PeerState {
    raft: Raft,
    seal: PeerSeal,
    /// Bounds the unauthenticated bytes buffered at once and how long each body may take.
    bodies: BodyBudget,
}

async fn peer_rpc(
    State(state): State<PeerState>,
    UrlPath(route): UrlPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // The seal covers the whole body, so it is buffered before it can be checked: within the
    // budget's room and time (spec section 7.7), the reservation held until the answer.
    let (body, _reserved) = match state.bodies.read(&headers, body).await {
        Ok(read) => read,
        Err(refusal) => {
            tracing::debug!(route, ?refusal, "did not read a peer message");
            let status = match refusal {
                BodyRefusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                BodyRefusal::Busy => StatusCode::SERVICE_UNAVAILABLE,
                BodyRefusal::TimedOut => StatusCode::REQUEST_TIMEOUT,
                BodyRefusal::Failed => StatusCode::BAD_REQUEST,
            };
            return (status, "the message is refused").into_response();
        }
    };
    let seal = &state.seal;
    let answer = match route.as_str() {
        "append" => {
            match seal.open_request::<AppendEntriesRequest<TypeConfig>>("append", &body, false) {
                Ok((rpc, incoming)) => {
                    seal.seal_reply(&incoming, &state.raft.append_entries(rpc).await)
                }
                Err(e) => return refuse(&route, e),
            }
        }
        "vote" => match seal.open_request::<VoteRequest<NodeId>>("vote", &body, false) {
            Ok((rpc, incoming)) => seal.seal_reply(&incoming, &state.raft.vote(rpc).await),
            Err(e) => return refuse(&route, e),
        },
        "snapshot" => {
            match seal.open_request::<InstallSnapshotRequest<TypeConfig>>("snapshot", &body, false)
            {
                Ok((rpc, incoming)) => {
                    seal.seal_reply(&incoming, &state.raft.install_snapshot(rpc).await)
                }
                Err(e) => return refuse(&route, e),
            }
        }
        "members" => match seal.open_request::<MembershipRequest>("members", &body, true) {
            Ok((request, incoming)) => {
                seal.seal_reply(&incoming, &change_members(&state.raft, request).await)
            }
            Err(e) => return refuse(&route, e),
        },
        _ => return (StatusCode::NOT_FOUND, "no such peer route").into_response(),
    };
    ([(axum::http::header::CONTENT_TYPE, "application/octet-stream")], answer).into_response()
}

/// The `400` for a peer message that is refused (spec section 7.7); the reason is logged, not
/// sent.
fn refuse(route: &str, why: peer::PeerError) -> Response {
    tracing::debug!(route, %why, "refused a peer message");
    (StatusCode::BAD_REQUEST, "the message is refused").into_response()
}

/// The router of the peer listener, buffering bodies within `limits`.
fn peer_router(raft: Raft, seal: PeerSeal, limits: &Limits) -> Router {
    let bodies = BodyBudget::new(
        limits.peer_body_budget_mib,
        MAX_PEER_BODY,
        PEER_BODY_WAIT,
        Duration::from_secs(limits.peer_body_timeout_secs),
    );
    Router::new()
        .route("/raft/{route}", post(peer_rpc))
        .layer(DefaultBodyLimit::max(MAX_PEER_BODY))
        .with_state(PeerState { raft, seal, bodies })
}

/// Binds the peer listener at `addr` and serves the peer routes within `limits` (the peer
/// caps, the header timeout and the body budget) until `shutdown` resolves.
pub(crate) async fn serve_peers(
    addr: SocketAddr,
    raft: Raft,
    seal: PeerSeal,
    limits: &Limits,
    tls: Option<&PeerTls>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = peer_router(raft, seal, limits);
    let acceptor = tls.map(|tls| tokio_rustls::TlsAcceptor::from(tls.server.clone()));
    let serving = crate::limits::serve(listener, app, limits.peer_listener(), acceptor, shutdown);
    let task = tokio::spawn(serving);
    tracing::info!(tls = tls.is_some(), "peer transport");
    tracing::info!(
        max_connections = limits.peer_max_connections,
        max_connections_per_source = limits.peer_max_connections_per_source,
        body_budget_mib = limits.peer_body_budget_mib,
        body_timeout_secs = limits.peer_body_timeout_secs,
        "peer limits"
    );
    Ok((bound, task))
}
