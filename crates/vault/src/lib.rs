//! The Backup Key Vault protocol of e2ee-backups (password mode, spec chapter 4), as a sans-IO
//! core: the client's states ([`Registration`], [`Login`] and the `Awaiting*` structs, each named
//! after the answer it waits for), the HSM's one request pipeline ([`Hsm`]), the journeys over
//! any one-method transport ([`drive`]), and the in-memory vault the tests, benchmarks and
//! vectors run on ([`MemoryVault`]). The modules are private; what a caller needs is re-exported
//! at the root, the sealed channel's bytes are in [`envelope`] and the replicas' messages in
//! [`peer`].
//!
//! A registration and a login against the in-memory vault:
//!
//! ```
//! use e2ee_backup_kdf::BackupKey;
//! use e2ee_backup_vault::drive::{self, DriveError};
//! use e2ee_backup_vault::{AccountId, ClientError, Endpoint, FleetId, Hsm, HsmConfig, HsmSecrets};
//! use e2ee_backup_vault::{KsfProfile, MemoryVault};
//! use rand_core::OsRng;
//!
//! // Identifiers are 1 to 64 bytes, checked once when they are made.
//! let fleet = FleetId::from_static(b"fleet.example");
//! let account = AccountId::try_from("+15551234").unwrap();
//! assert!(AccountId::try_from("").is_err());
//!
//! // The fleet: its secrets stay in the HSMs; clients pin the public half.
//! let secrets = HsmSecrets::generate(&mut OsRng, fleet);
//! let (key_id, public) = secrets.public_keys()[0];
//! let policy = HsmConfig { budget: 3, ksf_profile: KsfProfile::Fast, ..HsmConfig::default() };
//! let mut vault = MemoryVault::new(Hsm::new(secrets, policy).unwrap(), 1_780_000_000);
//! let endpoint = Endpoint::new(fleet, key_id, public).accepting_fast_ksf();
//!
//! // The phone seals a random K behind a password.
//! let key = BackupKey::generate();
//! drive::register(&mut vault, &mut OsRng, &endpoint, account, b"hunter2", &key).unwrap();
//!
//! // A wrong guess costs one attempt of the budget.
//! let wrong = drive::login(&mut vault, &mut OsRng, &endpoint, account, b"hunter3");
//! assert!(matches!(wrong, Err(DriveError::Vault(ClientError::WrongPassword { remaining: 2 }))));
//!
//! // The right password gets K back and refills the budget.
//! let session = drive::login(&mut vault, &mut OsRng, &endpoint, account, b"hunter2").unwrap();
//! assert_eq!(session.key().expose_secret(), key.expose_secret());
//! assert_eq!(session.remaining(), 3);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// One private module per section of the spec; what a caller needs is re-exported below.
mod aead;
mod channel;
mod client;
mod command;
pub mod drive;
mod fleet;
mod hsm;
mod ids;
mod memory;
mod messages;
pub mod peer;
mod pin;
mod record;
mod secrets;
mod suite;
mod ticket;
mod wire;
mod wrap;

// The phone's side: its states, one struct per answer it waits for (spec 4.11).
pub use client::{
    AwaitingDeleted, AwaitingKey, AwaitingLoginChallenge, AwaitingRegisterChallenge,
    AwaitingRegistered, ClientError, Endpoint, LoggedIn, Login, Registration, SessionToken,
};
// The HSM's one pipeline (spec 4.10) and the commands a replicated vault logs (chapter 7).
pub use command::{Command, Decided, Decision, Opened, Pending, RecordChange, Reply};
pub use hsm::{DEFAULT_BUDGET, Hsm, HsmConfig, HsmError, UNCHARGED_REMAINING};
pub use memory::MemoryVault;
pub use secrets::HsmSecrets;
// What the HSM keeps per account (spec 4.8) and the messages inside the channel (spec 4.7).
pub use messages::{RefusalReason, Request, Response};
pub use record::{AccountRecord, AccountState, Attempt, Token};
// Identifiers (spec 4.3, 4.4), the fleet's keys and bundles (spec 4.3, 4.4), the OPAQUE suite
// (spec 4.5) and the wire errors (spec 4.2).
pub use channel::{ChannelError, FleetPublicKey, FleetSecretKey};
pub use fleet::{
    Audit, Auditor, Authority, FleetAuthority, FleetBundle, FleetError, PinnedFleet, SigningRole,
};
pub use ids::{Account, AccountId, Fleet, FleetId, Id, IdError, IdKind, MAX_ID_LEN, MIN_ID_LEN};
pub use pin::{PinError, check_fleet_id};
pub use suite::{Identities, KsfProfile, RfcSuite, Suite, VaultSuite};
pub use wire::WireError;

/// The sealed request channel between a phone and the HSMs, byte by byte (spec 4.4):
/// what a relay or another client needs to build, parse or answer an envelope itself.
pub mod envelope {
    #[doc(hidden)]
    pub use crate::channel::seal_request_with_ephemeral_ikm;
    pub use crate::channel::{
        ENC_LEN, HpkeAead, HpkeKdf, HpkeKem, MAX_PLAINTEXT_LEN, PendingResponse,
        REQUEST_INFO_LABEL, RESPONSE_EXPORT_LABEL, RESPONSE_NONCE_LEN, RequestEnvelope,
        ResponseSealer, TAG_LEN, VERSION, open_request, open_request_with_keys, request_info,
        seal_request,
    };
}

/// The byte-level pieces the conformance vectors, the fuzz targets and this workspace's tests
/// reach into: wire encoding, tickets, wrapped keys, labels and lengths. Not a stable API.
#[doc(hidden)]
pub mod internal {
    /// Labels of the HSM's derivations (spec 4.10.1).
    pub mod hsm {
        pub use crate::hsm::{PEER_LABEL, PEER_TLS_LABEL, TOKEN_LABEL};
    }
    /// Fleet bundle lengths and labels (spec 4.3).
    pub mod fleet {
        pub use crate::fleet::{
            AUDITOR_LABEL, AUTHORITY_LABEL, BUNDLE_VERSION, MAX_BODY_LEN, MAX_KEYS,
        };
    }
    /// Message lengths (spec 4.7).
    pub mod messages {
        pub use crate::messages::MAX_TICKET_LEN;
    }
    /// Record lengths (spec 4.8).
    pub mod record {
        pub use crate::record::{ATTEMPT_ID_LEN, REGISTRATION_LEN, TOKEN_LEN};
    }
    /// The OPAQUE context string (spec 4.5).
    pub mod suite {
        pub use crate::suite::CONTEXT;
    }
    /// Tickets and attempt ids (spec 4.9).
    pub mod ticket {
        pub use crate::ticket::*;
    }
    /// The wire encoding (spec 4.2).
    pub mod wire {
        pub use crate::wire::{Reader, Writer};
    }
    /// The key sealed under the export key (spec 4.6).
    pub mod wrap {
        pub use crate::wrap::*;
    }
}

/// The random number generator traits of this crate's signatures (`RngCore + CryptoRng`),
/// re-exported so that a caller names the same version: a major upgrade of `rand_core` here is
/// a major version of this crate.
pub use rand_core;
