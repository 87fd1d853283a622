//! The fleet secrets every HSM of a fleet holds, and their serialisation (spec section 4.10.1);
//! the subkeys of the ticket key (spec section 4.9).

use opaque_ke::Ristretto255;
use opaque_ke::ServerSetup;
use opaque_ke::generic_array::GenericArray;
use opaque_ke::generic_array::typenum::U32;
use opaque_ke::key_exchange::group::Group as _;
use rand_core::{CryptoRng, RngCore};
use sha2_10::Sha256;
use zeroize::Zeroizing;

use crate::channel::{FleetPublicKey, FleetSecretKey};
use crate::ids::{Fleet, FleetId};
use crate::suite::VaultSuite;
use crate::ticket::{self, OPRF_SEED_LEN};
use crate::wire::{Reader, WireError, Writer};

use crate::hsm::{PEER_LABEL, PEER_TLS_LABEL};

/// The secrets every member of a fleet holds: the fleet identity, the OPAQUE server setup (OPRF
/// seed, from which each account's OPRF key is derived, and the AKE key pair), the channel keys
/// and the ticket key.
pub struct HsmSecrets {
    pub(crate) fleet_id: Vec<u8>,
    pub(crate) opaque: ServerSetup<VaultSuite>,
    pub(crate) channel_keys: Vec<(u8, FleetSecretKey)>,
    pub(crate) ticket_key: Zeroizing<[u8; 32]>,
    /// Subkeys of `ticket_key` (spec 4.9): login tickets and registration tickets.
    pub(crate) login_ticket_key: Zeroizing<[u8; 32]>,
    pub(crate) registration_ticket_key: Zeroizing<[u8; 32]>,
    /// The fleet's own OPRF seed (the first 64 bytes of `opaque`): phantoms' fake KE2s are
    /// evaluated under it (spec 4.5).
    pub(crate) fleet_oprf_seed: Zeroizing<[u8; OPRF_SEED_LEN]>,
    /// The AKE private key of `opaque`, in opaque-ke's own type, for 3DH's static-ephemeral
    /// share of a KE2 (the HSM computes it; see `Hsm::compute_ke2`). Zeroized on drop.
    pub(crate) ake_private: AkePrivate,
}

/// A non-zero ristretto255 scalar as opaque-ke's 3DH takes it.
pub(crate) type AkePrivate = <Ristretto255 as opaque_ke::key_exchange::group::Group>::Sk;

impl std::fmt::Debug for HsmSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HsmSecrets")
            .field("fleet_id", &String::from_utf8_lossy(&self.fleet_id))
            .field("channel_key_ids", &self.channel_keys.iter().map(|k| k.0).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

const SECRETS_VERSION: u8 = 1;
/// The info label after the credential identifier in the OPRF key derivation (spec 4.5, RFC
/// 9807 section 4.1.2).
const OPRF_KEY_LABEL: &[u8] = b"OprfKey";
const OPAQUE_SETUP_LEN: usize = 128;

impl HsmSecrets {
    /// Fresh secrets for fleet `fleet_id` with one channel key, id 1.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R, fleet_id: FleetId<'_>) -> Self {
        let mut ticket_key = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(ticket_key.as_mut());
        let opaque = ServerSetup::new(rng);
        let channel_keys = vec![(1, FleetSecretKey::generate(rng))];
        Self::assemble(fleet_id.as_bytes().to_vec(), opaque, channel_keys, ticket_key)
    }

    pub(crate) fn assemble(
        fleet_id: Vec<u8>,
        opaque: ServerSetup<VaultSuite>,
        channel_keys: Vec<(u8, FleetSecretKey)>,
        ticket_key: Zeroizing<[u8; 32]>,
    ) -> Self {
        // The serialised setup: OPRF seed [64] || AKE private key [32] || dummy public key [32].
        let bytes = Zeroizing::new(opaque.serialize().to_vec());
        let mut fleet_oprf_seed = Zeroizing::new([0u8; OPRF_SEED_LEN]);
        fleet_oprf_seed.copy_from_slice(&bytes[..OPRF_SEED_LEN]);
        let mut private = Zeroizing::new([0u8; 32]);
        private.copy_from_slice(&bytes[OPRF_SEED_LEN..OPRF_SEED_LEN + 32]);
        let ake_private = Ristretto255::deserialize_take_sk(&mut &private[..])
            .expect("a ServerSetup holds a canonical, non-zero AKE private key");
        Self {
            fleet_oprf_seed,
            ake_private,
            login_ticket_key: ticket::subkey(&ticket_key, ticket::LOGIN_TICKET_KEY_LABEL),
            registration_ticket_key: ticket::subkey(
                &ticket_key,
                ticket::REGISTRATION_TICKET_KEY_LABEL,
            ),
            fleet_id,
            opaque,
            channel_keys,
            ticket_key,
        }
    }

    /// The OPRF key material of `account` under `oprf_seed` (a registration's own, or the
    /// fleet's for a phantom; spec 4.5): `Expand(seed, credential_identifier || "OprfKey", 32)`
    /// with HKDF-SHA512, as opaque-ke derives it from its own seed. Handing it to opaque-ke's
    /// `*_with_key_material` calls spares rebuilding a `ServerSetup` per request, which costs
    /// a fixed-base multiplication, a decompression and a compression.
    pub(crate) fn oprf_key_material(
        &self,
        oprf_seed: &[u8; OPRF_SEED_LEN],
        account: &[u8],
    ) -> Option<Zeroizing<GenericArray<u8, U32>>> {
        let mut material = Zeroizing::new(GenericArray::default());
        hkdf_12::Hkdf::<sha2_10::Sha512>::from_prk(oprf_seed)
            .ok()?
            .expand_multi_info(&[account, OPRF_KEY_LABEL], material.as_mut_slice())
            .ok()?;
        Some(material)
    }

    /// The record version of an account nothing is stored for (spec 4.10.2):
    /// `u32(HKDF-SHA256(salt = none, ikm = ticket_key, info = "e2ee-backups/v1/vault/unseen-version"
    /// || 0x00 || vec16(account_id), 4)) >> 8`. Unpredictable without the fleet secrets, so that
    /// a `RegisterChallenge`'s version does not tell an account never seen from one registered.
    pub fn unseen_version(&self, account: &[u8]) -> u32 {
        let info = Writer::new()
            .bytes(ticket::UNSEEN_VERSION_LABEL.as_bytes())
            .u8(0)
            .vec16(account)
            .finish();
        let mut out = [0u8; 4];
        hkdf_12::Hkdf::<Sha256>::new(None, self.ticket_key.as_ref())
            .expand(&info, &mut out)
            .expect("4 bytes is a valid HKDF length");
        u32::from_be_bytes(out) >> 8
    }

    /// The fleet identifier.
    pub fn fleet_id(&self) -> FleetId<'_> {
        FleetId::new(&self.fleet_id).expect("checked when the secrets were made or read")
    }

    /// The key replicas of one fleet seal their traffic to each other with (spec section 7.7):
    /// `HKDF-SHA256(salt = none, ikm = ticket_key, info = "e2ee-backups/v1/vault/peer")`,
    /// 32 bytes.
    pub fn peer_key(&self) -> Zeroizing<[u8; 32]> {
        self.ticket_subkey(PEER_LABEL)
    }

    /// `HKDF-SHA256(salt = none, ikm = ticket_key, info = label)`, 32 bytes.
    pub(crate) fn ticket_subkey(&self, label: &str) -> Zeroizing<[u8; 32]> {
        ticket::subkey(&self.ticket_key, label)
    }

    /// The Ed25519 seed of the key every replica presents in mutual TLS with its peers (spec
    /// section 7.7.1): `HKDF-SHA256(salt = none, ikm = ticket_key, info =
    /// "e2ee-backups/v1/vault/peer-tls")`, 32 bytes.
    pub fn peer_tls_seed(&self) -> Zeroizing<[u8; 32]> {
        self.ticket_subkey(PEER_TLS_LABEL)
    }

    /// The channel public keys, by key id, for the fleet key bundle.
    pub fn public_keys(&self) -> Vec<(u8, FleetPublicKey)> {
        self.channel_keys.iter().map(|(id, k)| (*id, k.public_key())).collect()
    }

    /// Serialised, for the HSM's sealed storage:
    /// `version (0x01) || vec16(fleet_id) || opaque_setup [128] || ticket_key [32] || count u8 ||
    /// count × (key_id u8 || x25519_secret [32])`.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new();
        w.u8(SECRETS_VERSION)
            .vec16(&self.fleet_id)
            .bytes(&self.opaque.serialize())
            .bytes(self.ticket_key.as_ref())
            .u8(u8::try_from(self.channel_keys.len()).expect("few keys"));
        for (id, key) in &self.channel_keys {
            w.u8(*id).bytes(key.to_bytes().as_ref());
        }
        Zeroizing::new(w.finish())
    }

    /// Reads [`HsmSecrets::to_bytes`] back.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = Reader::new(bytes);
        if r.u8("secrets.version")? != SECRETS_VERSION {
            return Err(WireError::Invalid { field: "secrets.version", why: "not 1" });
        }
        let fleet_id = r.id::<Fleet>("secrets.fleet_id")?.as_bytes().to_vec();
        let opaque =
            ServerSetup::deserialize(r.bytes(OPAQUE_SETUP_LEN, "secrets.opaque_setup")?).map_err(
                |_| WireError::Invalid { field: "secrets.opaque_setup", why: "not a setup" },
            )?;
        let ticket_key = Zeroizing::new(r.array("secrets.ticket_key")?);
        let count = r.u8("secrets.count")?;
        if count == 0 {
            return Err(WireError::Invalid { field: "secrets.count", why: "no channel key" });
        }
        let mut channel_keys: Vec<(u8, FleetSecretKey)> = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let id = r.u8("secrets.key_id")?;
            if channel_keys.iter().any(|k| k.0 == id) {
                return Err(WireError::Invalid { field: "secrets.key_id", why: "a key id twice" });
            }
            let key = Zeroizing::new(r.array::<32>("secrets.channel_key")?);
            let key = FleetSecretKey::from_bytes(&key).map_err(|_| WireError::Invalid {
                field: "secrets.channel_key",
                why: "not an X25519 key",
            })?;
            channel_keys.push((id, key));
        }
        r.finish()?;
        Ok(Self::assemble(fleet_id, opaque, channel_keys, ticket_key))
    }
}
