//! The OPAQUE configuration of the vault (spec section 4.5).
//!
//! RFC 9807 with 3DH over ristretto255 and SHA-512, the OPRF suite ristretto255-SHA512, and a key
//! stretching function that is a type parameter: Argon2id in what we ship, the identity function
//! for the RFC's own test vectors. Client identity, server identity and context are fixed by
//! [`Identities`].

use std::marker::PhantomData;

use opaque_ke::key_exchange::tripledh::TripleDh;
use opaque_ke::ksf::Ksf;
use opaque_ke::{CipherSuite, Ristretto255};

/// The OPAQUE ciphersuite, generic over the key stretching function.
#[derive(Debug, Clone, Copy, Default)]
pub struct Suite<K>(PhantomData<K>);

impl<K: Ksf> CipherSuite for Suite<K> {
    type OprfCs = Ristretto255;
    type KeyExchange = TripleDh<Ristretto255, sha2_10::Sha512>;
    type Ksf = K;
}

/// The suite the vault ships: stretching with Argon2id (profile chosen at run time).
pub type VaultSuite = Suite<opaque_ke::argon2::Argon2<'static>>;

/// The same suite with the identity as stretching function, as RFC 9807's vectors use it.
/// For conformance tests only.
pub type RfcSuite = Suite<opaque_ke::ksf::Identity>;

/// The context string bound into every OPAQUE transcript: protocol name and version.
pub const CONTEXT: &[u8] = b"e2ee-backups/v1/vault";

/// A named Argon2id cost profile. The profile is recorded with the account at registration and
/// named in every login answer, so a client always stretches with the registration's cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KsfProfile {
    /// What phones use: 16 MiB of memory, 32 passes, 1 lane (as Signal and Juicebox).
    Mobile,
    /// Cheap stretching for tests and benchmarks: 256 KiB, 1 pass, 1 lane. Never for real
    /// passwords.
    Fast,
}

impl KsfProfile {
    /// The profile's code in messages and records.
    pub fn code(self) -> u8 {
        match self {
            Self::Mobile => 1,
            Self::Fast => 2,
        }
    }

    /// The profile with this code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Mobile),
            2 => Some(Self::Fast),
            _ => None,
        }
    }

    /// Memory in KiB, passes, lanes.
    pub fn costs(self) -> (u32, u32, u32) {
        match self {
            Self::Mobile => (16 * 1024, 32, 1),
            Self::Fast => (256, 1, 1),
        }
    }

    /// The Argon2id (version 0x13) instance with this profile's costs and a 64-byte output.
    /// opaque-ke stretches with a salt of 16 zero bytes, as RFC 9807 section 4.3 allows:
    /// the OPRF output is already unique per account.
    pub fn argon2(self) -> opaque_ke::argon2::Argon2<'static> {
        let (m, t, p) = self.costs();
        let params =
            opaque_ke::argon2::Params::new(m, t, p, Some(64)).expect("profile costs are valid");
        opaque_ke::argon2::Argon2::new(
            opaque_ke::argon2::Algorithm::Argon2id,
            opaque_ke::argon2::Version::V0x13,
            params,
        )
    }
}

/// The identities bound into a transcript: the account (OPAQUE's client identity, also the
/// credential identifier) and the fleet (OPAQUE's server identity).
#[derive(Debug, Clone, Copy)]
pub struct Identities<'a> {
    /// The account identifier.
    pub account: &'a [u8],
    /// The fleet identifier.
    pub fleet: &'a [u8],
}

impl<'a> Identities<'a> {
    /// As opaque-ke takes them.
    pub fn opaque(&self) -> opaque_ke::Identifiers<'a> {
        opaque_ke::Identifiers { client: Some(self.account), server: Some(self.fleet) }
    }
}
