//! The e2ee-backups conformance kit.
//!
//! - [`generate`] builds every file of `test-vectors/` from fixed seeds, so the published
//!   vectors can be regenerated and compared byte for byte;
//! - [`check`] replays a vector file against this implementation;
//! - [`fuzz_targets`] holds the body of every fuzz target, so `fuzz/` and the stable test
//!   suite (which replays the seed corpora) run the same code.
#![forbid(unsafe_code)]

pub mod fuzz_targets;
