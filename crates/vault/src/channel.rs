//! The sealed channel between a client and the vault's HSM fleet (spec section 4.4).
//!
//! Every request is sealed to one of the fleet's HPKE public keys, which the client took from a
//! fleet key bundle it verified (see [`crate::fleet`]). Every response is sealed under a key that
//! both ends export from the HPKE context of that request, following the response construction
//! of Oblivious HTTP. The relay in between routes by account id and learns nothing else; it cannot
//! read a request or a response, re-address a request to another account, key or fleet, or hand a
//! response to a request other than the one it answers.
//!
//! # Suite
//!
//! HPKE (RFC 9180) in base mode (`mode_base`, 0x00) with
//! DHKEM(X25519, HKDF-SHA256) (`kem_id` 0x0020), HKDF-SHA256 (`kdf_id` 0x0001) and AES-256-GCM
//! (`aead_id` 0x0002). The type aliases [`HpkeKem`], [`HpkeKdf`] and [`HpkeAead`] name this
//! configuration of the `hpke` crate.
//!
//! # Request
//!
//! The client knows `fleet_id` (from its pinned fleet), and the `key_id` and public key `pkR` of
//! one key of the verified bundle. To send `plaintext` (at most [`MAX_PLAINTEXT_LEN`] bytes) for
//! the account `account_id` (1 to [`MAX_ID_LEN`](crate::MAX_ID_LEN) bytes):
//!
//! ```text
//! info = "e2ee-backups/v1/vault/request" || 0x00
//!        || version                      (u8, = 1)
//!        || u16(len(fleet_id)) || fleet_id
//!        || u16(len(account_id)) || account_id
//!        || key_id                       (u8)
//! enc, ctx   = SetupBaseS(pkR, info)
//! ciphertext = ctx.Seal(aad = "", plaintext)          (first message, sequence number 0)
//! secret     = ctx.Export("e2ee-backups/v1/vault/response", 32)
//!
//! envelope = version (u8, = 1)
//!         || key_id (u8)
//!         || u16(len(account_id)) || account_id   (1..=64 bytes)
//!         || enc (32 bytes)
//!         || ciphertext                            (the rest: 16..=8192+16 bytes)
//! ```
//!
//! Integers are big-endian. The HPKE `aad` is empty: every header field of the envelope is bound
//! through `info` (version, account id and key id, together with the fleet id, which is not sent
//! at all: the HSM uses its own), and `enc` is bound by the KEM itself, since the shared secret is
//! derived from `enc || pkRm` as serialized. A change to any byte of the envelope therefore makes
//! the request fail to open, and so does a request addressed to another fleet.
//!
//! The relay reads `version`, `key_id` and `account_id` in clear. Those fields can be trusted by
//! the HSM only once the request has opened.
//!
//! # What the HSM does
//!
//! 1. Parse the envelope ([`RequestEnvelope::parse`]): an unknown `version` is rejected before
//!    anything else is read, and every length is checked before anything is allocated.
//! 2. Pick its secret key by `key_id` (unknown id: reject), and, if it keeps a replay cache, look
//!    up `enc` before decrypting. Keying the cache on the 32 bytes of `enc` is sound: `enc` enters
//!    the key schedule exactly as sent, so even another encoding of the same X25519 point gives a
//!    request that does not open.
//! 3. Rebuild `info` with its own fleet id, `SetupBaseR(enc, skR, info)`, open the ciphertext with
//!    an empty `aad`, and export `secret` as above ([`open_request`]).
//!
//! # Response
//!
//! As in RFC 9458, section 4.4, with our export label, `Nk` = 32 and `Nn` = 12:
//!
//! ```text
//! response_nonce = random(32)
//! salt  = enc || response_nonce                  (64 bytes)
//! prk   = HKDF-SHA256-Extract(salt, secret)
//! key   = HKDF-SHA256-Expand(prk, "key", 32)
//! nonce = HKDF-SHA256-Expand(prk, "nonce", 12)
//! body  = AES-256-GCM-Seal(key, nonce, aad = "", response_plaintext)
//!
//! response = response_nonce (32 bytes) || body   (16..=8192+16 bytes)
//! ```
//!
//! One request gets exactly one response: both [`PendingResponse`] and [`ResponseSealer`] are
//! consumed when used. A response sealed for one request does not open with the state of any
//! other, because `secret` and `enc` differ.
//!
//! # Test vectors
//!
//! [`seal_request_with_ephemeral_ikm`] and [`ResponseSealer::seal_with_nonce`] take the only two
//! random inputs explicitly, for reproducible vectors. The ephemeral key pair is
//! `DeriveKeyPair(ikmE)` of RFC 9180, section 7.1.3, exactly as in the RFC's own vectors; the
//! random path draws `ikmE` as 32 bytes from the caller's generator. (The `hpke` crate has no
//! public call taking an ephemeral key: we hand it a generator that yields exactly `ikmE`, and
//! check that it took exactly those 32 bytes.) Never use the explicit variants outside tests.

use core::fmt;

use aes_gcm_10::aead::{Aead as _, AeadInPlace as _};
use aes_gcm_10::{Aes256Gcm, KeyInit as _, Nonce};
use hkdf_12::Hkdf;
use hpke::aead::{AeadTag, AesGcm256};
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable as _, Kem as _, OpModeR, OpModeS, Serializable as _};
use rand_core::{CryptoRng, RngCore};
use sha2_10::Sha256;
use thiserror::Error;
use zeroize::{Zeroize as _, Zeroizing};

use crate::ids::{Account, AccountId, FleetId};
use crate::wire::{Reader, WireError, Writer};

/// The HPKE KEM of the channel: DHKEM(X25519, HKDF-SHA256).
pub type HpkeKem = X25519HkdfSha256;
/// The HPKE KDF of the channel: HKDF-SHA256.
pub type HpkeKdf = HkdfSha256;
/// The HPKE AEAD of the channel: AES-256-GCM.
pub type HpkeAead = AesGcm256;

/// The envelope version this implementation speaks.
pub const VERSION: u8 = 1;
/// The label that starts the HPKE `info` of a request (followed by a zero byte).
pub const REQUEST_INFO_LABEL: &[u8] = b"e2ee-backups/v1/vault/request";
/// The HPKE exporter context from which the response secret is exported.
pub const RESPONSE_EXPORT_LABEL: &[u8] = b"e2ee-backups/v1/vault/response";
/// The longest request or response plaintext, in bytes.
pub const MAX_PLAINTEXT_LEN: usize = 8 * 1024;
/// The longest sealed request (plaintext and tag), in bytes.
const MAX_CIPHERTEXT_LEN: usize = MAX_PLAINTEXT_LEN + TAG_LEN;
/// The length of `enc`, the encapsulated X25519 public key.
pub const ENC_LEN: usize = 32;
/// The length of an AES-256-GCM tag.
pub const TAG_LEN: usize = 16;
/// The length of the response nonce that starts a response.
pub const RESPONSE_NONCE_LEN: usize = 32;

const SECRET_LEN: usize = 32;
const AEAD_KEY_LEN: usize = 32;
const AEAD_NONCE_LEN: usize = 12;

/// Why a request or a response could not be sealed or opened. No variant carries secret data.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// The request envelope is not well formed.
    #[error("request envelope is malformed: {0}")]
    Malformed(#[from] WireError),
    /// The request envelope has a version this implementation does not speak.
    #[error("request envelope version {0} is not supported")]
    UnsupportedVersion(u8),
    /// The request names a fleet key the HSM does not hold.
    #[error("request is sealed to fleet key id {0}, which this HSM does not hold")]
    UnknownKeyId(u8),
    /// An account id is empty or longer than [`MAX_ID_LEN`](crate::MAX_ID_LEN).
    #[error("account id is {0} bytes long; it must be 1 to 64 bytes")]
    InvalidAccountId(usize),
    /// A fleet id is empty or longer than [`MAX_ID_LEN`](crate::MAX_ID_LEN).
    #[error("fleet id is {0} bytes long; it must be 1 to 64 bytes")]
    InvalidFleetId(usize),
    /// A plaintext is longer than [`MAX_PLAINTEXT_LEN`].
    #[error("plaintext is {0} bytes long, more than the maximum of 8192")]
    PlaintextTooLong(usize),
    /// The fleet key cannot be used (a public key of small order, or unusable key bytes).
    #[error("the fleet key cannot be used")]
    InvalidFleetKey,
    /// The request does not open: sealed to another key or fleet, addressed differently, or
    /// modified in transit.
    #[error("request does not open: wrong key, wrong fleet, or modified in transit")]
    RequestDoesNotOpen,
    /// The response is shorter than a response nonce and a tag.
    #[error("response is {0} bytes long, shorter than the minimum of 48")]
    ResponseTooShort(usize),
    /// The response is longer than any response this channel produces.
    #[error("response is {0} bytes long, more than the maximum of 8240")]
    ResponseTooLong(usize),
    /// The response does not open: it answers another request, or was modified in transit.
    #[error("response does not open: it answers another request, or was modified in transit")]
    ResponseDoesNotOpen,
    /// A cryptographic library call failed where it cannot fail; names the step.
    #[error("internal error in step {0}")]
    Internal(&'static str),
}

impl ChannelError {
    /// The error's code in the spec's closed vocabulary (section 4.4).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed-envelope",
            Self::UnsupportedVersion(_) => "unsupported-version",
            Self::UnknownKeyId(_) => "unknown-key-id",
            Self::InvalidAccountId(_) => "invalid-account-id",
            Self::InvalidFleetId(_) => "invalid-fleet-id",
            Self::PlaintextTooLong(_) => "plaintext-too-long",
            Self::InvalidFleetKey => "invalid-fleet-key",
            Self::RequestDoesNotOpen => "request-does-not-open",
            Self::ResponseTooShort(_) => "response-too-short",
            Self::ResponseTooLong(_) => "response-too-long",
            Self::ResponseDoesNotOpen => "response-does-not-open",
            Self::Internal(_) => "internal",
        }
    }
}

/// A public key of the fleet: the serialized X25519 public key `pkRm` of RFC 9180.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FleetPublicKey(pub [u8; 32]);

impl FleetPublicKey {
    /// The 32 bytes of the key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for FleetPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FleetPublicKey(")?;
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        write!(f, ")")
    }
}

/// A secret key of the fleet, held by its HSMs. Zeroized on drop; its `Debug` shows only the
/// public key.
pub struct FleetSecretKey {
    secret: <HpkeKem as hpke::Kem>::PrivateKey,
    public: FleetPublicKey,
}

impl FleetSecretKey {
    /// A fresh key pair: `DeriveKeyPair` of 32 bytes drawn from `rng`.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        let mut ikm = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(&mut *ikm);
        Self::derive(&ikm)
    }

    /// The key pair `DeriveKeyPair(ikm)` of RFC 9180, section 7.1.3 (deterministic: for test
    /// vectors, or for keys derived from a seed kept elsewhere).
    pub fn derive(ikm: &[u8; 32]) -> Self {
        let (secret, public) = HpkeKem::derive_keypair(ikm);
        Self::from_parts(secret, &public)
    }

    /// The key whose serialized X25519 private key (`skRm`) is `bytes`.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, ChannelError> {
        let secret = <HpkeKem as hpke::Kem>::PrivateKey::from_bytes(bytes)
            .map_err(|_| ChannelError::InvalidFleetKey)?;
        let public = HpkeKem::sk_to_pk(&secret);
        Ok(Self::from_parts(secret, &public))
    }

    fn from_parts(
        secret: <HpkeKem as hpke::Kem>::PrivateKey,
        public: &<HpkeKem as hpke::Kem>::PublicKey,
    ) -> Self {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&public.to_bytes());
        Self { secret, public: FleetPublicKey(bytes) }
    }

    /// The serialized X25519 private key (`skRm`).
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        let mut out = Zeroizing::new([0u8; 32]);
        let mut bytes = self.secret.to_bytes();
        out.copy_from_slice(&bytes);
        bytes.as_mut_slice().zeroize();
        out
    }

    /// The matching public key.
    pub fn public_key(&self) -> FleetPublicKey {
        self.public
    }
}

impl fmt::Debug for FleetSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetSecretKey")
            .field("public", &self.public)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A request envelope as the relay and the HSM see it before opening: the clear fields are
/// readable, but none of them is authenticated until [`open_request`] succeeds. Its version is
/// [`VERSION`]: [`RequestEnvelope::parse`] accepts no other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestEnvelope<'a> {
    key_id: u8,
    account_id: &'a [u8],
    enc: [u8; ENC_LEN],
    ciphertext: &'a [u8],
}

impl<'a> RequestEnvelope<'a> {
    /// Parses an envelope. Rejects an unknown version before reading further, and any field out
    /// of its bounds; never allocates.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ChannelError> {
        let mut reader = Reader::new(bytes);
        let version = reader.u8("version")?;
        if version != VERSION {
            return Err(ChannelError::UnsupportedVersion(version));
        }
        let key_id = reader.u8("fleet_key_id")?;
        let account_id = reader.id::<Account>("account_id")?.as_bytes();
        let enc = reader.array::<ENC_LEN>("enc")?;
        let ciphertext = reader.rest();
        if ciphertext.len() < TAG_LEN {
            return Err(WireError::Truncated("ciphertext").into());
        }
        if ciphertext.len() > MAX_CIPHERTEXT_LEN {
            return Err(WireError::TooLong {
                field: "ciphertext",
                len: ciphertext.len(),
                max: MAX_CIPHERTEXT_LEN,
            }
            .into());
        }
        reader.finish()?;
        Ok(Self { key_id, account_id, enc, ciphertext })
    }

    /// The id of the fleet key the request claims to be sealed to.
    pub fn key_id(&self) -> u8 {
        self.key_id
    }

    /// The account the request claims to be for; the relay routes by it.
    pub fn account_id(&self) -> &'a [u8] {
        self.account_id
    }

    /// The encapsulated ephemeral key: unique per request, usable as a replay-cache key.
    pub fn enc(&self) -> &[u8; ENC_LEN] {
        &self.enc
    }

    /// The sealed request, tag included.
    pub fn ciphertext(&self) -> &'a [u8] {
        self.ciphertext
    }
}

/// The client's state between sending a request and reading its response. Consumed by
/// [`PendingResponse::open`]: one response per request.
pub struct PendingResponse {
    enc: [u8; ENC_LEN],
    secret: Zeroizing<[u8; SECRET_LEN]>,
}

impl fmt::Debug for PendingResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingResponse").field("secret", &"<redacted>").finish_non_exhaustive()
    }
}

impl PendingResponse {
    /// Opens the response to the request this state came from.
    pub fn open(self, response: &[u8]) -> Result<Zeroizing<Vec<u8>>, ChannelError> {
        if response.len() < RESPONSE_NONCE_LEN + TAG_LEN {
            return Err(ChannelError::ResponseTooShort(response.len()));
        }
        if response.len() > RESPONSE_NONCE_LEN + MAX_CIPHERTEXT_LEN {
            return Err(ChannelError::ResponseTooLong(response.len()));
        }
        let mut reader = Reader::new(response);
        let response_nonce = reader.array::<RESPONSE_NONCE_LEN>("response_nonce")?;
        let body = reader.rest();
        let cipher = response_cipher(&self.secret, &self.enc, &response_nonce)?;
        let mut buffer = Zeroizing::new(body.to_vec());
        cipher
            .aead
            .decrypt_in_place(Nonce::from_slice(&*cipher.nonce), b"", &mut *buffer)
            .map_err(|_| ChannelError::ResponseDoesNotOpen)?;
        Ok(buffer)
    }
}

/// The HSM's state between opening a request and answering it. Consumed by
/// [`ResponseSealer::seal`]: one response per request.
pub struct ResponseSealer {
    enc: [u8; ENC_LEN],
    secret: Zeroizing<[u8; SECRET_LEN]>,
}

impl fmt::Debug for ResponseSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseSealer").field("secret", &"<redacted>").finish_non_exhaustive()
    }
}

impl ResponseSealer {
    /// Seals the response, with a fresh response nonce drawn from `rng`.
    pub fn seal<R: RngCore + CryptoRng>(
        self,
        rng: &mut R,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, ChannelError> {
        let mut response_nonce = [0u8; RESPONSE_NONCE_LEN];
        rng.fill_bytes(&mut response_nonce);
        self.seal_with_nonce(&response_nonce, plaintext)
    }

    /// Seals the response with the given response nonce. For test vectors only: a nonce must
    /// never be chosen by anything but a cryptographic generator.
    #[doc(hidden)] // reproducing test vectors only: never a fixed draw in production
    pub fn seal_with_nonce(
        self,
        response_nonce: &[u8; RESPONSE_NONCE_LEN],
        plaintext: &[u8],
    ) -> Result<Vec<u8>, ChannelError> {
        if plaintext.len() > MAX_PLAINTEXT_LEN {
            return Err(ChannelError::PlaintextTooLong(plaintext.len()));
        }
        let cipher = response_cipher(&self.secret, &self.enc, response_nonce)?;
        let body = cipher
            .aead
            .encrypt(Nonce::from_slice(&*cipher.nonce), plaintext)
            .map_err(|_| ChannelError::Internal("response seal"))?;
        Ok(Writer::new().bytes(response_nonce).bytes(&body).finish())
    }
}

/// Seals `plaintext` for account `account_id` to the fleet key `key_id`/`public` of fleet
/// `fleet_id`. Returns the envelope to send and the state that opens its response.
pub fn seal_request<R: RngCore + CryptoRng>(
    rng: &mut R,
    fleet_id: &[u8],
    key_id: u8,
    public: &FleetPublicKey,
    account_id: &[u8],
    plaintext: &[u8],
) -> Result<(Vec<u8>, PendingResponse), ChannelError> {
    let mut ikm_e = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(&mut *ikm_e);
    seal_request_with_ephemeral_ikm(&ikm_e, fleet_id, key_id, public, account_id, plaintext)
}

/// [`seal_request`] with the ephemeral key pair `DeriveKeyPair(ikm_e)` instead of a random one.
/// For test vectors only: reusing `ikm_e` reuses the ephemeral key and breaks the channel.
#[doc(hidden)] // reproducing test vectors only: never a fixed draw in production
pub fn seal_request_with_ephemeral_ikm(
    ikm_e: &[u8; 32],
    fleet_id: &[u8],
    key_id: u8,
    public: &FleetPublicKey,
    account_id: &[u8],
    plaintext: &[u8],
) -> Result<(Vec<u8>, PendingResponse), ChannelError> {
    check_fleet_id(fleet_id)?;
    check_account_id(account_id)?;
    if plaintext.len() > MAX_PLAINTEXT_LEN {
        return Err(ChannelError::PlaintextTooLong(plaintext.len()));
    }
    let pk_r = <HpkeKem as hpke::Kem>::PublicKey::from_bytes(&public.0)
        .map_err(|_| ChannelError::InvalidFleetKey)?;
    let info = request_info(VERSION, fleet_id, account_id, key_id)?;

    let mut ephemeral = IkmRng::new(ikm_e);
    let (enc, mut context) = hpke::setup_sender::<HpkeAead, HpkeKdf, HpkeKem, _>(
        &OpModeS::Base,
        &pk_r,
        &info,
        &mut ephemeral,
    )
    .map_err(|_| ChannelError::InvalidFleetKey)?;
    if !ephemeral.took_exactly_all() {
        return Err(ChannelError::Internal("ephemeral key derivation"));
    }

    let ciphertext =
        context.seal(plaintext, b"").map_err(|_| ChannelError::Internal("request seal"))?;
    let mut secret = Zeroizing::new([0u8; SECRET_LEN]);
    context
        .export(RESPONSE_EXPORT_LABEL, &mut *secret)
        .map_err(|_| ChannelError::Internal("response secret export"))?;

    let mut enc_bytes = [0u8; ENC_LEN];
    enc_bytes.copy_from_slice(&enc.to_bytes());
    let envelope = Writer::new()
        .u8(VERSION)
        .u8(key_id)
        .vec16(account_id)
        .bytes(&enc_bytes)
        .bytes(&ciphertext)
        .finish();
    Ok((envelope, PendingResponse { enc: enc_bytes, secret }))
}

/// Opens a request with the secret key the HSM picked for `envelope.key_id()`, as a member of
/// fleet `fleet_id`. Returns the plaintext and the state that seals the response.
pub fn open_request(
    secret: &FleetSecretKey,
    fleet_id: &[u8],
    envelope: &RequestEnvelope<'_>,
) -> Result<(Zeroizing<Vec<u8>>, ResponseSealer), ChannelError> {
    let info = request_info(VERSION, fleet_id, envelope.account_id, envelope.key_id)?;
    let enc = <HpkeKem as hpke::Kem>::EncappedKey::from_bytes(&envelope.enc)
        .map_err(|_| ChannelError::RequestDoesNotOpen)?;
    let mut context = hpke::setup_receiver::<HpkeAead, HpkeKdf, HpkeKem>(
        &OpModeR::Base,
        &secret.secret,
        &enc,
        &info,
    )
    .map_err(|_| ChannelError::RequestDoesNotOpen)?;

    let split =
        envelope.ciphertext.len().checked_sub(TAG_LEN).ok_or(WireError::Truncated("ciphertext"))?;
    let (sealed, tag) = envelope.ciphertext.split_at(split);
    let tag = AeadTag::<HpkeAead>::from_bytes(tag).map_err(|_| ChannelError::RequestDoesNotOpen)?;
    let mut plaintext = Zeroizing::new(sealed.to_vec());
    context
        .open_in_place_detached(&mut plaintext, b"", &tag)
        .map_err(|_| ChannelError::RequestDoesNotOpen)?;

    let mut response_secret = Zeroizing::new([0u8; SECRET_LEN]);
    context
        .export(RESPONSE_EXPORT_LABEL, &mut *response_secret)
        .map_err(|_| ChannelError::Internal("response secret export"))?;
    Ok((plaintext, ResponseSealer { enc: envelope.enc, secret: response_secret }))
}

/// [`open_request`] for an HSM holding several fleet keys: `lookup` maps the envelope's key id
/// to the secret key, or to `None` for [`ChannelError::UnknownKeyId`].
pub fn open_request_with_keys<'k, F>(
    fleet_id: &[u8],
    envelope: &RequestEnvelope<'_>,
    lookup: F,
) -> Result<(Zeroizing<Vec<u8>>, ResponseSealer), ChannelError>
where
    F: FnOnce(u8) -> Option<&'k FleetSecretKey>,
{
    let secret = lookup(envelope.key_id).ok_or(ChannelError::UnknownKeyId(envelope.key_id))?;
    open_request(secret, fleet_id, envelope)
}

/// The HPKE `info` of a request (see the module documentation). Fails if `fleet_id` or
/// `account_id` is out of its bounds.
pub fn request_info(
    version: u8,
    fleet_id: &[u8],
    account_id: &[u8],
    key_id: u8,
) -> Result<Vec<u8>, ChannelError> {
    check_fleet_id(fleet_id)?;
    check_account_id(account_id)?;
    Ok(Writer::new()
        .bytes(REQUEST_INFO_LABEL)
        .u8(0)
        .u8(version)
        .vec16(fleet_id)
        .vec16(account_id)
        .u8(key_id)
        .finish())
}

fn check_fleet_id(fleet_id: &[u8]) -> Result<(), ChannelError> {
    FleetId::new(fleet_id).map(drop).map_err(|e| ChannelError::InvalidFleetId(e.length()))
}

fn check_account_id(account_id: &[u8]) -> Result<(), ChannelError> {
    AccountId::new(account_id).map(drop).map_err(|e| ChannelError::InvalidAccountId(e.length()))
}

/// The AEAD and nonce of one response.
struct ResponseCipher {
    aead: Aes256Gcm,
    nonce: Zeroizing<[u8; AEAD_NONCE_LEN]>,
}

fn response_cipher(
    secret: &[u8; SECRET_LEN],
    enc: &[u8; ENC_LEN],
    response_nonce: &[u8; RESPONSE_NONCE_LEN],
) -> Result<ResponseCipher, ChannelError> {
    let mut salt = [0u8; ENC_LEN + RESPONSE_NONCE_LEN];
    salt[..ENC_LEN].copy_from_slice(enc);
    salt[ENC_LEN..].copy_from_slice(response_nonce);
    let prk = Hkdf::<Sha256>::new(Some(&salt[..]), secret);
    let mut key = Zeroizing::new([0u8; AEAD_KEY_LEN]);
    let mut nonce = Zeroizing::new([0u8; AEAD_NONCE_LEN]);
    prk.expand(b"key", &mut *key)
        .and_then(|()| prk.expand(b"nonce", &mut *nonce))
        .map_err(|_| ChannelError::Internal("response key derivation"))?;
    let aead = Aes256Gcm::new_from_slice(&*key)
        .map_err(|_| ChannelError::Internal("response key length"))?;
    Ok(ResponseCipher { aead, nonce })
}

/// A generator, in the `rand_core` version `hpke` uses, that yields the 32 bytes of `ikmE` and
/// nothing else. `hpke` draws exactly 32 bytes for the ephemeral key (its `GenerateKeyPair` is
/// `DeriveKeyPair` of 32 random bytes); any other draw is recorded and turned into an error by
/// the caller instead of yielding bytes that are not random.
struct IkmRng {
    ikm: Zeroizing<[u8; 32]>,
    taken: usize,
    overdrawn: bool,
}

impl IkmRng {
    fn new(ikm: &[u8; 32]) -> Self {
        Self { ikm: Zeroizing::new(*ikm), taken: 0, overdrawn: false }
    }

    fn took_exactly_all(&self) -> bool {
        !self.overdrawn && self.taken == self.ikm.len()
    }
}

impl hpke::rand_core::RngCore for IkmRng {
    fn next_u32(&mut self) -> u32 {
        let mut bytes = [0u8; 4];
        self.fill_bytes(&mut bytes);
        u32::from_le_bytes(bytes)
    }

    fn next_u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        self.fill_bytes(&mut bytes);
        u64::from_le_bytes(bytes)
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        let left = &self.ikm[self.taken..];
        if dst.len() > left.len() {
            self.overdrawn = true;
            dst.fill(0);
            return;
        }
        dst.copy_from_slice(&left[..dst.len()]);
        self.taken += dst.len();
    }
}

impl hpke::rand_core::CryptoRng for IkmRng {}
