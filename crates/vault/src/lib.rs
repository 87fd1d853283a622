//! The Backup Key Vault protocol of e2ee-backups (password mode, spec chapter 4), as a sans-IO
//! core: the client's states ([`client`]), the HSM's one request pipeline ([`hsm`]), the
//! journeys over any one-method transport ([`drive`]), and the in-memory vault the tests,
//! benchmarks and vectors run on ([`memory`]).
//!
//! A registration and a login against the in-memory vault:
//!
//! ```
//! use e2ee_backup_kdf::BackupKey;
//! use e2ee_backup_vault::client::{ClientError, Endpoint};
//! use e2ee_backup_vault::drive::{self, DriveError};
//! use e2ee_backup_vault::hsm::{Hsm, HsmConfig, HsmSecrets};
//! use e2ee_backup_vault::memory::MemoryVault;
//! use e2ee_backup_vault::suite::KsfProfile;
//! use rand_core::OsRng;
//!
//! // The fleet: its secrets stay in the HSMs; clients pin the public half.
//! let secrets = HsmSecrets::generate(&mut OsRng, b"fleet.example");
//! let (key_id, public) = secrets.public_keys()[0];
//! let policy = HsmConfig { budget: 3, ksf_profile: KsfProfile::Fast, ..HsmConfig::default() };
//! let mut vault = MemoryVault::new(Hsm::new(secrets, policy).unwrap(), 1_780_000_000);
//! let endpoint = Endpoint::new(b"fleet.example", key_id, public).accepting_fast_ksf();
//!
//! // The phone seals a random K behind a password.
//! let key = BackupKey::generate();
//! drive::register(&mut vault, &mut OsRng, &endpoint, b"+15551234", b"hunter2", &key).unwrap();
//!
//! // A wrong guess costs one attempt of the budget.
//! let wrong = drive::login(&mut vault, &mut OsRng, &endpoint, b"+15551234", b"hunter3");
//! assert!(matches!(wrong, Err(DriveError::Vault(ClientError::WrongPassword { remaining: 2 }))));
//!
//! // The right password gets K back and refills the budget.
//! let session = drive::login(&mut vault, &mut OsRng, &endpoint, b"+15551234", b"hunter2").unwrap();
//! assert_eq!(session.key().expose_secret(), key.expose_secret());
//! assert_eq!(session.remaining(), 3);
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod aead;
pub mod channel;
pub mod client;
mod command;
pub mod drive;
pub mod fleet;
pub mod hsm;
pub mod ids;
pub mod memory;
pub mod messages;
pub mod peer;
pub mod pin;
pub mod record;
mod secrets;
pub mod suite;
pub mod ticket;
pub mod wire;
pub mod wrap;

/// The random number generator traits of this crate's signatures (`RngCore + CryptoRng`),
/// re-exported so that a caller names the same version: a major upgrade of `rand_core` here is
/// a major version of this crate.
pub use rand_core;
