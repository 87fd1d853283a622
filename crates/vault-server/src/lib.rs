//! The HTTP server of the e2ee-backups Backup Key Vault (spec chapter 4, section 4.15), around
//! the sans-IO core `e2ee-backup-vault`.
//!
//! * [`files`]: the data directory `init` creates (fleet secrets, authority key, signed fleet
//!   key bundle, client pin, configuration).
//! * [`store`]: the account records in one `redb` file, every change committed durably before
//!   the reply that follows it is sealed.
//! * [`at_rest`]: the erasable keys outside the database that seal registrations, log entries
//!   and snapshots, destroyed when a registration ends (lockout erases, spec 4.13.1).
//! * [`server`]: the axum server. [`RunningServer`] runs on the caller's tokio runtime;
//!   [`BackgroundServer`] brings its own, for synchronous callers.
//! * [`replication`]: how a command becomes a durable decision (spec chapter 7): the
//!   [`replication::Replication`] trait, and [`replication::SingleNode`] for one store.
//! * [`raft`]: the replicated fleet on openraft, everything engine-specific in one folder, a
//!   file per concern: the replication front, log and state machine on `redb`, snapshots,
//!   erasure of engine keys, the sealed HTTP peer transport, membership changes, and the
//!   deliberately broken variants of the feature `broken-variants` (tests only).
//! * [`members`]: changing a fleet's replicas.
//! * [`client`]: a small blocking HTTP client and the vault journeys over it.
//!
//! The load generator of `e2ee-backup-vault load` and `bench-fleet`, and the launcher of
//! `e2ee-backup-vault cluster` (a fleet of `serve` processes on one machine), are part of the
//! binary; the process-level tests compile the launcher from the binary's source.
//!
//! # HTTP
//!
//! | method and path | success | errors |
//! |---|---|---|
//! | `GET /healthz` | `200`, `ok` | — |
//! | `GET /v1/fleet-bundle` | `200`, the signed fleet key bundle | — |
//! | `POST /v1/vault/{account}` | `200`, the sealed response | JSON `{"error", "message"}` |
//! | `GET /v1/cluster` | `200`, JSON: node id, role, leader, term, voters (spec section 7.8) | — |
//!
//! `{account}` is the account identifier in lowercase hexadecimal, 2 to 128 digits. The body is
//! limited to [`server::MAX_BODY`] (8308) bytes before it is read. Errors: `400 bad-account`
//! (the path), `400 malformed-envelope`, `400 misaddressed` (the envelope names another account
//! than the path), `413 too-large`, `422 unsupported-version | unknown-key-id |
//! request-does-not-open`, `503 storage` (the record could not be read or written durably:
//! nothing was sent, the client retries), and for a fleet `503 no-leader` (nothing was done)
//! and `503 unconfirmed` (the request may have been applied; nothing was sent). Every request
//! that opens gets `200` and a sealed response, refusals included.
//!
//! # Per request
//!
//! 1. Check the path and the body size; parse the envelope and compare its account with the
//!    path's (before any public-key operation).
//! 2. A replica that does not lead passes the body on to the leader, once, and relays its
//!    answer.
//! 3. Open the envelope on a blocking thread and turn it into a command stamped with the time.
//! 4. Submit the command to the [`replication::Replication`]; it comes back as a decision once
//!    its record change is durable. A single vault takes the account's lock (one of 1024
//!    striped async mutexes chosen by a keyed hash of the account), loads the record, applies
//!    the command and commits the change to redb (durability `Immediate`), so concurrent KE1s
//!    of one account are charged one after the other. A fleet commits the command to a
//!    majority of the replicas' logs and applies it in log order.
//! 5. Only then seal the reply on a blocking thread (KE2 is computed here).
//!
//! # Deployment: who authenticates the account
//!
//! The vault does **not** authenticate accounts. In a real deployment it sits behind the
//! messaging service's front end (the relay), which authenticates the account over its own
//! session with the phone, and forwards the sealed request with *that* authenticated account in
//! the path; the vault refuses an envelope whose account differs (`misaddressed`) and the
//! envelope's account is bound into the HPKE `info`, so the relay can neither read a request nor
//! move it to another account. The relay also rate-limits (each request for an unknown account
//! creates a phantom record, spec section 4.13). The vault's port must therefore never be
//! reachable by clients directly: listen on loopback (the default) or on a private interface
//! only the relay reaches, and put TLS and authentication in the relay. On loopback, as in the
//! tests and the demo, the server is its own relay and takes the path at its word.
//!
//! # Logs
//!
//! `tracing` lines (filter with `RUST_LOG`, default `info`) give, per request: the request kind,
//! a pseudonym of the account (HMAC-SHA256 under a key drawn at start, 12 hex digits: never the
//! raw identifier, and not a plain hash a phone number could be recovered from), the status or
//! error code, the record change (state and remaining attempts), and the latency. Never a secret,
//! an envelope or a response.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod at_rest;
pub mod client;
pub mod files;
pub mod group_commit;
pub mod limits;
pub mod members;
pub mod peer_tls;
pub mod raft;
pub mod relay;
pub mod replication;
pub mod server;
pub mod store;

pub use files::{ConfigFile, FleetPin, InitOptions, InitReport, KsfName, init};
pub use server::{BackgroundServer, RunningServer, ServerConfig, ServerError};
pub use store::{RecordStore, RedbStore, StoreError};
