//! The Backup Key Vault protocol of e2ee-backups (password mode), as a sans-IO core.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod channel;
pub mod client;
pub mod fleet;
pub mod hsm;
pub mod memory;
pub mod messages;
pub mod peer;
pub mod record;
pub mod suite;
pub mod ticket;
pub mod wire;
pub mod wrap;
