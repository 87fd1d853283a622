//! A small blocking HTTP/1.1 client for the vault's HTTP binding (spec sections 4.15 and 7.8): an [`Exchange`] for the
//! journeys of `e2ee-backup-vault` ([`drive`]: register, log in, change password, delete), and
//! raw requests for the tests of malformed input.
//!
//! Its purpose is testing and measuring, not serving phones (their client is the
//! `e2ee-backup-client` crate): the integration tests in `tests/` and the load generator
//! (`e2ee-backup-vault load`) use it because it is synchronous, sends bytes exactly as given
//! (malformed heads and bodies included), and can connect from a chosen source address.
//!
//! Plain HTTP only: it talks to a server on loopback, or to a relay on the same host. One
//! connection, kept alive; a request on a kept-alive connection that the server had closed is
//! sent again once on a new connection (harmless here: a vault request may be replayed, the
//! vault counts each KE1 once).

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs as _};
use std::time::Duration;

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_vault::{
    AccountId, ClientError, Endpoint, FleetBundle, FleetError, LoggedIn, PinnedFleet,
    drive::{self, DriveError, Exchange},
};
use rand_core::OsRng;
use thiserror::Error;

const MAX_HEAD: usize = 16 * 1024;
const MAX_RESPONSE_BODY: usize = 1 << 20;

/// Why an HTTP exchange failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The URL is not `http://HOST:PORT[/]`.
    #[error("unsupported URL {0:?}: expected http://HOST:PORT (plain HTTP to loopback or a relay)")]
    BadUrl(String),
    /// Connecting, sending or receiving failed.
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// The server's answer is not HTTP/1.1 this client understands.
    #[error("malformed HTTP response: {0}")]
    Protocol(&'static str),
    /// The server answered with an error (spec section 4.15).
    #[error("the vault answered {status} {code}: {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The error code of the JSON body (`storage`, `misaddressed`, ...).
        code: String,
        /// The error message of the JSON body.
        message: String,
    },
}

/// A raw HTTP response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status code.
    pub status: u16,
    /// The `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// The `error` and `message` of a JSON error body.
    pub fn error_code(&self) -> Option<(String, String)> {
        let value: serde_json::Value = serde_json::from_slice(&self.body).ok()?;
        Some((value["error"].as_str()?.to_owned(), value["message"].as_str()?.to_owned()))
    }

    fn into_body(self) -> Result<Vec<u8>, HttpError> {
        if self.status == 200 {
            return Ok(self.body);
        }
        let (code, message) = self.error_code().unwrap_or_else(|| {
            ("unknown".into(), String::from_utf8_lossy(&self.body).into_owned())
        });
        Err(HttpError::Server { status: self.status, code, message })
    }
}

/// A connection to a vault server.
#[derive(Debug)]
pub struct HttpVault {
    addr: SocketAddr,
    host: String,
    conn: Option<BufReader<TcpStream>>,
    timeout: Duration,
    source: Option<IpAddr>,
    /// Headers sent with every request (e.g. the relay's account token, spec 4.15.1).
    headers: Vec<(String, String)>,
}

impl HttpVault {
    /// A client for `url` (`http://HOST:PORT`). Connects lazily.
    pub fn new(url: &str) -> Result<Self, HttpError> {
        let bad = || HttpError::BadUrl(url.to_owned());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let host = rest.trim_end_matches('/');
        if host.is_empty() || host.contains('/') {
            return Err(bad());
        }
        let addr = host.to_socket_addrs().map_err(|_| bad())?.next().ok_or_else(bad)?;
        Ok(Self {
            addr,
            host: host.to_owned(),
            conn: None,
            timeout: Duration::from_secs(120),
            source: None,
            headers: Vec::new(),
        })
    }

    /// A client for a server at `addr`.
    pub fn at(addr: SocketAddr) -> Self {
        Self {
            addr,
            host: addr.to_string(),
            conn: None,
            timeout: Duration::from_secs(120),
            source: None,
            headers: Vec::new(),
        }
    }

    /// The same client with another connect, read and write timeout (default 120 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The same client connecting from the local address `source` (any port), e.g. another
    /// loopback address than 127.0.0.1.
    pub fn with_source(mut self, source: IpAddr) -> Self {
        self.source = Some(source);
        self
    }

    /// The same client sending the relay's account token `token` (144 hexadecimal digits,
    /// spec 4.15.1) with every request, as a relay in front of the vault does.
    pub fn with_account_token(self, token: String) -> Self {
        self.with_header(crate::relay::HEADER, &token)
    }

    /// The same client sending the header `name: value` with every request.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn connect(&self) -> std::io::Result<TcpStream> {
        let Some(source) = self.source else {
            return TcpStream::connect_timeout(&self.addr, self.timeout);
        };
        let domain = socket2::Domain::for_address(self.addr);
        let socket = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
        socket.bind(&SocketAddr::new(source, 0).into())?;
        socket.connect_timeout(&self.addr.into(), self.timeout)?;
        Ok(socket.into())
    }

    /// `GET /healthz`.
    pub fn health(&mut self) -> Result<(), HttpError> {
        self.request("GET", "/healthz", None)?.into_body().map(|_| ())
    }

    /// `GET /v1/fleet-bundle`: the signed bundle, unchecked.
    pub fn fleet_bundle(&mut self) -> Result<Vec<u8>, HttpError> {
        self.request("GET", "/v1/fleet-bundle", None)?.into_body()
    }

    /// `POST /v1/vault/{account}` with a sealed request; the sealed response.
    pub fn call(&mut self, account: &[u8], envelope: &[u8]) -> Result<Vec<u8>, HttpError> {
        let path = format!("/v1/vault/{}", hex::encode(account));
        self.request("POST", &path, Some(envelope))?.into_body()
    }

    /// Any request; the response whatever its status.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<RawResponse, HttpError> {
        let reused = self.conn.is_some();
        match self.exchange(method, path, body) {
            Err(HttpError::Io { .. }) if reused => {
                // The server closed the idle connection: once more on a fresh one.
                self.conn = None;
                self.exchange(method, path, body)
            }
            other => other,
        }
    }

    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<RawResponse, HttpError> {
        let result = self.exchange_inner(method, path, body);
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    fn exchange_inner(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<RawResponse, HttpError> {
        let io = |what| move |source| HttpError::Io { what, source };
        if self.conn.is_none() {
            let stream = self.connect().map_err(io("connecting to the vault"))?;
            stream.set_nodelay(true).map_err(io("configuring the socket"))?;
            stream.set_read_timeout(Some(self.timeout)).map_err(io("configuring the socket"))?;
            stream.set_write_timeout(Some(self.timeout)).map_err(io("configuring the socket"))?;
            self.conn = Some(BufReader::new(stream));
        }
        let conn = self.conn.as_mut().expect("connected above");
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        for (name, value) in &self.headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some(body) = body {
            request.push_str("Content-Type: application/octet-stream\r\n");
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        let mut bytes = request.into_bytes();
        bytes.extend_from_slice(body.unwrap_or_default());
        conn.get_mut().write_all(&bytes).map_err(io("sending the request"))?;

        // Status line and headers.
        let mut head = Vec::new();
        loop {
            let before = head.len();
            let n = conn.read_until(b'\n', &mut head).map_err(io("reading the response"))?;
            if n == 0 {
                return Err(HttpError::Io {
                    what: "reading the response",
                    source: std::io::ErrorKind::UnexpectedEof.into(),
                });
            }
            if head.len() > MAX_HEAD {
                return Err(HttpError::Protocol("response head too long"));
            }
            if &head[before..] == b"\r\n" {
                break;
            }
        }
        let head = std::str::from_utf8(&head).map_err(|_| HttpError::Protocol("head not text"))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().ok_or(HttpError::Protocol("no status line"))?;
        let mut parts = status_line.splitn(3, ' ');
        if !parts.next().is_some_and(|v| v.starts_with("HTTP/1.")) {
            return Err(HttpError::Protocol("not an HTTP/1 status line"));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or(HttpError::Protocol("bad status code"))?;
        let (mut length, mut content_type, mut close) = (None, None, false);
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line.split_once(':').ok_or(HttpError::Protocol("bad header"))?;
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => {
                    length = Some(
                        value
                            .parse::<usize>()
                            .map_err(|_| HttpError::Protocol("bad content-length"))?,
                    );
                }
                "content-type" => content_type = Some(value.to_owned()),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                "transfer-encoding" => {
                    return Err(HttpError::Protocol("chunked responses are not supported"));
                }
                _ => {}
            }
        }
        let body = match length {
            Some(n) if n > MAX_RESPONSE_BODY => {
                return Err(HttpError::Protocol("response body too long"));
            }
            Some(n) => {
                let mut body = vec![0u8; n];
                conn.read_exact(&mut body).map_err(io("reading the response body"))?;
                body
            }
            None => {
                close = true;
                let mut body = Vec::new();
                conn.take(MAX_RESPONSE_BODY as u64 + 1)
                    .read_to_end(&mut body)
                    .map_err(io("reading the response body"))?;
                body
            }
        };
        if close {
            self.conn = None;
        }
        Ok(RawResponse { status, content_type, body })
    }
}

/// Why a vault journey failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum JourneyError {
    /// The HTTP exchange failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The vault protocol failed (wrong password, locked, refused, ...).
    #[error(transparent)]
    Vault(#[from] ClientError),
    /// The fleet key bundle was rejected.
    #[error("the fleet key bundle was rejected: {0}")]
    Bundle(#[from] FleetError),
}

/// Fetches the fleet key bundle and verifies it against `pin` at `now` (Unix seconds).
pub fn fetch_bundle(
    http: &mut HttpVault,
    pin: &PinnedFleet,
    now: u64,
    last_seen_epoch: Option<u64>,
) -> Result<FleetBundle, JourneyError> {
    let signed = http.fleet_bundle()?;
    Ok(pin.verify(&signed, now, last_seen_epoch)?)
}

impl Exchange for HttpVault {
    type Error = HttpError;

    fn exchange(&mut self, account: &[u8], request: &[u8]) -> Result<Vec<u8>, HttpError> {
        self.call(account, request)
    }
}

impl From<DriveError<HttpError>> for JourneyError {
    fn from(e: DriveError<HttpError>) -> Self {
        match e {
            DriveError::Transport(e) => Self::Http(e),
            DriveError::Vault(e) => Self::Vault(e),
        }
    }
}

/// Registers `password` for `account`, sealing `key`; the budget the vault granted
/// ([`drive::register`] over HTTP).
pub fn register(
    http: &mut HttpVault,
    endpoint: &Endpoint,
    account: AccountId<'_>,
    password: &[u8],
    key: &BackupKey,
) -> Result<u8, JourneyError> {
    Ok(drive::register(http, &mut OsRng, endpoint, account, password, key)?)
}

/// Logs in: K and a token for one follow-up ([`drive::login`] over HTTP).
pub fn login(
    http: &mut HttpVault,
    endpoint: &Endpoint,
    account: AccountId<'_>,
    password: &[u8],
) -> Result<LoggedIn, JourneyError> {
    Ok(drive::login(http, &mut OsRng, endpoint, account, password)?)
}

/// Changes the password after a login, keeping K (or rotating to `rotate_to`); the key now
/// sealed ([`drive::change_password`] over HTTP).
pub fn change_password(
    http: &mut HttpVault,
    session: LoggedIn,
    account: AccountId<'_>,
    new_password: &[u8],
    rotate_to: Option<&BackupKey>,
) -> Result<BackupKey, JourneyError> {
    Ok(drive::change_password(http, &mut OsRng, session, account, new_password, rotate_to)?)
}

/// Deletes the account's record after a login ([`drive::delete`] over HTTP).
pub fn delete(
    http: &mut HttpVault,
    session: LoggedIn,
    account: AccountId<'_>,
) -> Result<(), JourneyError> {
    Ok(drive::delete(http, &mut OsRng, session, account)?)
}
