//! The phone-side client of e2ee-backups (spec chapter 5, `spec/05-client.md`).
//!
//! A [`Client`] is a state machine over a state directory. Its modes:
//!
//! ```text
//!                    enable_with_key                    switch_to_password
//!        ┌──────────────────────────────► KeyMode ─────────────────────────────┐
//!        │                      ▲  ▲        │  ▲ rotate_key                    ▼
//!   BackupsOff ─────────────────┼──┼────────┼──┼──────────────────────────► PasswordMode
//!     ▲  │ │ enable_with_password │        │  └── switch_to_key ───────────┘  │ ▲ rotate_key,
//!     │  │ │                      │        │                                   │ │ change_password
//!     │  │ └─ restore_with_key ──►Restoring─┘ (key)      (password)──────────────┘ │
//!     │  └─── restore_with_password ─►┘ └────────────────────────────────────────┘
//!     │                                                   login: locked / 0 left
//!     │ disable (from Key, Password, LockedOut)       PasswordMode ──► LockedOut
//!     └──────────────────────────────────────────── LockedOut ──enable_with_key──► KeyMode
//! ```
//!
//! * **BackupsOff**: no key. **KeyMode**: K held locally; the user was shown the 64-digit key.
//!   **PasswordMode**: K held locally and sealed in the vault under the account. **Restoring**:
//!   K known, the newest backup not yet written; persisted so a crash mid-restore is visible
//!   and resumable without a second login. A restore may also start in KeyMode or PasswordMode
//!   (in place, on the device that makes the backups): the restored backup's key becomes K. **LockedOut**: the vault destroyed its copy of K;
//!   password restore is impossible, key mode or starting over remain.
//! * Every operation checks the mode and the journal and returns [`Error::IllegalState`] or
//!   [`Error::PendingOperation`] when it does not apply.
//! * Each step is persisted before the next one; an interrupted operation is resumed by
//!   calling it again (spec section 5.6). [`faults`] injects crashes between steps for tests.
//!
//! # Local state
//!
//! `state.json` (mode, account, store location, vault URL and fleet pin with the highest
//! bundle epoch seen, journal) and `keystore` (the keys, hex, mode 0600: the stand-in for the
//! phone's hardware-backed keystore; a real phone keeps K there, never in app files). Both
//! are replaced atomically (temporary file, fsync, rename, fsync of the directory). See
//! [`state`]. [`Client::set_store`] and [`Client::set_vault`] change the store location and
//! the vault later, each checked before it is saved (the store lists; the vault's bundle
//! verifies against the pin).
//!
//! # Backups
//!
//! Backups are files of the native format (spec chapter 3), zstd-compressed, with the backup's
//! name in the encrypted metadata, stored through `object_store` as
//! `backups/<unix-time>-<random>.e2ee` ([`store`]). A plain directory uses `LocalFileSystem`;
//! a URL goes through `object_store::parse_url_opts` (cloud schemes with the `cloud` feature).
//! Backups, restores and rotations stream through the format's `Encryptor` and `Decryptor`:
//! uploads go in parts ([`store::Upload`]), downloads are decrypted as they arrive
//! ([`store::Download`]), so memory stays bounded whatever the backup's size.
//!
//! # Why a synchronous API
//!
//! The operations are strictly sequential (each step is persisted before the next), the CLI
//! that drives them is synchronous, and phones call them from a background job. So the API is
//! synchronous, and the async `object_store` and HTTP calls run on small tokio runtimes the
//! client owns (the store's has two workers, for a snapshot backup's parallel uploads).
//! Consequence: do not call a [`Client`] from inside an async runtime's worker thread; use
//! `spawn_blocking` there.
//!
//! # Walkthrough
//!
//! A phone enables password mode and backs up; a new phone restores with the password alone,
//! over a transport of the caller's own (`examples/custom_transport.rs`, run here as a doctest):
//!
#![doc = concat!("```\n", include_str!("../examples/custom_transport.rs"), "```")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod error;
pub mod faults;
pub mod pin;
mod retry;
pub mod scratch;
pub mod snapshot_store;
pub mod state;
pub mod store;
pub mod transport;

pub use client::{
    BackupInfo, Client, DisableReport, Options, Progress, ProgressNotice, RestoreReport,
    RotateReport, Setup, Source, Status,
};
pub use error::{Error, Result};
/// The object store API of [`Options::store`] and [`store::BackupStore::with_store`],
/// re-exported so that a caller names the same version: a major upgrade of `object_store` here
/// is a major version of this crate.
pub use object_store;
pub use pin::FleetPin;
pub use state::{Mode, RestoredMode};
#[cfg(feature = "http")]
pub use transport::HttpTransport;
pub use transport::{MemoryFleet, MemoryTransport, RetryNotice, RetryPolicy, VaultTransport};
