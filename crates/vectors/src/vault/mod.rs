//! Vectors for the Backup Key Vault protocol (spec chapter 4): `test-vectors/vault.json`.
//!
//! Every journey case drives the real client ([`e2ee_backup_vault::Login`] and [`e2ee_backup_vault::Registration`]) against the real
//! HSM ([`e2ee_backup_vault::Hsm`]) through a small in-memory driver, with a generator that
//! records each `fill_bytes` call under the name of the step that made it
//! (`client.login_start.draw[2]`, `hsm.login_start.draw[0]`, ...). The recorded draws are the
//! case's inputs, in draw order; every envelope, response and stored record is an output.
//!
//! [`verify_case`] replays a case: it feeds the recorded draws back (checking each name and
//! length) into the same client and HSM calls, rebuilds the whole case and compares it with
//! the file, so every byte of every output is checked and every rejection must happen as
//! recorded.
//!
//! The draws are not random: draw number `i` of a case, named `name`, is
//! `crate::draw("{seed}/{i}/{name}", len)`. The verifier never uses the seed; it only
//! documents where the bytes came from.
//!
//! Two kinds of case need no journey: the sealed channel alone (`Channel` groups: given keys,
//! plaintexts and nonces, with an envelope or response a relay may have changed) and stored
//! records alone (the `Record` group: bytes written field by field, which the record decoder
//! must accept and encode back, or reject with a wire error code). Groups added after the
//! first release of the file come after it, so that no tcId moves.
//!
//! The files: `draws` (the named draws), `driver` (the in-memory driver), `scenarios` (one
//! journey per scenario), `outcomes` (vocabulary names), `sealed_channel`, `records` and
//! `secrets` (the cases that need no journey), and `generate` (the file and the replay of one
//! case). They share this module's imports and constants, and each other's items, through
//! `pub(super)`: together they are one generator.

use crate::account_id;
use e2ee_backup_vault::{
    AccountRecord, AwaitingLoginChallenge, AwaitingRegisterChallenge, ChannelError, ClientError,
    Endpoint, FleetPublicKey, FleetSecretKey, Hsm, HsmConfig, HsmError, HsmSecrets, Identities,
    KsfProfile, LoggedIn, Login, RecordChange, Registration, Request, Response, VaultSuite,
    envelope::{self, RequestEnvelope},
    internal::{suite::CONTEXT, wrap},
};
use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_kdf::schedule::vault_wrapping_key;

use opaque_ke::{
    ClientLogin, ClientLoginFinishParameters, ClientRegistration,
    ClientRegistrationFinishParameters, CredentialResponse, RegistrationResponse,
};
use rand_core::{CryptoRng, RngCore};
use serde_json::{Value, json};

use crate::{draw, envelope, expect_eq, hex_field, number};

/// The `algorithm` of the file.
pub const ALGORITHM: &str = "e2ee-backups vault v1";

const NOTES: &[(&str, &str)] = &[
    ("Registration", "The client registers a password and stores K sealed under the export key."),
    ("Login", "The client logs in with the right password and recovers K."),
    (
        "WrongPassword",
        "The client logs in with a wrong password: the vault charges the KE1 and answers with a KE2, the client's KE2 check fails and it sends no KE3.",
    ),
    (
        "Lockout",
        "The budget runs out: the next KE1 locks the account, erasing the registration and the sealed K, and the right password is refused as Locked.",
    ),
    (
        "UnknownAccount",
        "A KE1 for an account nobody registered: the vault creates a phantom record, charges it and answers with a fake KE2 of the same size.",
    ),
    (
        "PasswordChange",
        "After a login, the token of that login authorises a new registration that keeps K and refills the budget.",
    ),
    (
        "FreshOprfKey",
        "Every RegisterStart evaluates the OPRF under a fresh random seed (the HSM's first draw of the step), sealed into the registration ticket; logins of the registration evaluate under the seed of the ticket it was finished with. An implementation that derives the key from the account or the record version fails these cases.",
    ),
    (
        "RegistrationTicket",
        "A RegisterFinish whose registration ticket is expired or was issued for another account (or fleet, or record version) is refused as SessionInvalid and nothing is stored.",
    ),
    (
        "ReRegistration",
        "A RegisterFinish for a registered account needs the token of a login: without it the vault refuses with NotAuthorised (after the registration ticket's check) and stores nothing. Its RegisterStart is answered as for any account, under a fresh seed.",
    ),
    ("Delete", "After a login, the token authorises deleting the registration."),
    (
        "DeleteReplay",
        "Delete leaves a tombstone (a phantom with the deleted record's version and charges): an old RegisterFinish replayed afterwards is StaleRegistration.",
    ),
    (
        "UnseenVersion",
        "An account with no record has the unseen version u32(HKDF-SHA256(ticket_key, \"e2ee-backups/v1/vault/unseen-version\" || 0x00 || vec16(account_id), 4)) >> 8: its first RegisterChallenge announces that plus one, and the phantom a KE1 leaves keeps it. Every registration case checks this.",
    ),
    (
        "UnchargedRefusal",
        "A refusal that no charge paid for (invalid-request, not-authorised, stale-registration, session-invalid before the ticket matched a pending attempt) carries remaining 0, whatever the record holds.",
    ),
    (
        "Ke1Retry",
        "The same KE1 envelope is sent twice: the retry is not charged again and gets a fresh KE2 for the same attempt.",
    ),
    (
        "Channel",
        "The sealed channel alone: one request and its response, with the ephemeral key and the response nonce given.",
    ),
    (
        "ModifiedEnvelope",
        "A byte of a request envelope was changed (or the envelope cut short): the HSM cannot open it, answers nothing sealed and nothing is charged.",
    ),
    ("ModifiedResponse", "A byte of a response was changed: the client cannot open it."),
    ("WrongFleet", "The request was sealed for another fleet id: the HSM cannot open it."),
    (
        "ReplayedKe3",
        "The KE3 envelope of a successful login is sent again: its attempt is no longer pending, so the vault refuses it as SessionInvalid.",
    ),
    (
        "WrongTicket",
        "A KE3 is sent with a ticket that is not the one of its KE2: a damaged ticket is SessionInvalid; the ticket of another pending attempt opens, but the KE3 does not verify against it (LoginFailed) and that attempt is used up.",
    ),
    (
        "InvalidRequest",
        "A request that does not decode, or that decodes but holds an invalid OPAQUE element or names a profile other than the policy's, is refused invalid-request with remaining 0 and changes nothing (spec 4.7, \"Decoding\"). The generator sealed these plaintexts itself (draws client.crafted), from requests the client built where it could.",
    ),
    (
        "LockedAccount",
        "A locked account answers locked to every request that decodes, before it looks at the request's content (invalid elements, profile, ticket, token); a request that does not decode is invalid-request without the record being read.",
    ),
    (
        "LoginTicketExpiry",
        "A KE3 whose pending attempt matches is accepted while now <= the ticket's not_after; one second later it is session-invalid, carrying the record's remaining, and the attempt is removed.",
    ),
    (
        "LoginFinishLock",
        "A LoginFinish refused as login-failed or session-invalid that leaves remaining 0 with no live attempt pending locks the account and answers locked.",
    ),
    (
        "DeleteRefused",
        "A Delete without the stored, unexpired token of a registered account (no record, a phantom, a tombstone, no stored token, another token, an expired one) is not-authorised with remaining 0 and changes nothing.",
    ),
    (
        "TokenExpiry",
        "A stored token admits a request while now <= token_not_after, and not one second later.",
    ),
    (
        "PhantomToken",
        "On an account without a registration (here a phantom) a RegisterFinish's token is not looked at: one with a made-up token is stored.",
    ),
    (
        "EnvelopeBounds",
        "The bounds of a request envelope (spec 4.4): an account id of 1 to 64 bytes, a ciphertext of 16 to 8208 bytes. tamperRequest changes the sealed envelope before the HSM reads it; outside the bounds the HSM answers malformed-envelope without opening anything.",
    ),
    (
        "RecordDecoding",
        "A stored record alone (spec 4.8): a valid one decodes and encodes back to the same bytes; an invalid one is rejected with the wire error code (spec 4.2) of the first rule it breaks, field by field, the locked record's rule last. A vault that reads such a record decides nothing and sends nothing.",
    ),
    (
        "SecretsDecoding",
        "Fleet secrets alone (spec 4.10.1): valid ones decode and serialise back to the same bytes, and fleetId is the fleet id they decode to; invalid ones are rejected with the wire error code (spec 4.2) of the first rule they break, front to back.",
    ),
    (
        "MobileProfile",
        "The vault's policy and the registration use the Mobile profile (code 1: 16 MiB, 32 passes, 1 lane), the one every real account uses.",
    ),
    (
        "ResponseBounds",
        "The bounds of a response (spec 4.4): 48 to 8240 bytes, checked before the tag. tamperResponse changes the response before the client reads it.",
    ),
    (
        "ExpiredAttempt",
        "A pending attempt whose not_after has passed is not live: the same KE1 sent again is not a retry but a new charge, which drops the expired attempt and pends the same attempt id under the next serial (spec 4.10.2, LoginStart steps 1 and 3); the first KE2's ticket then matches no pending (attempt_id, serial) and its KE3 is session-invalid with remaining 0 (LoginFinish).",
    ),
    (
        "SealingBounds",
        "The client's bounds when it seals (spec 4.4): a fleet id and an account id of 1 to 64 bytes, a plaintext of at most 8192 bytes. Outside them the client refuses to seal (invalid-fleet-id, invalid-account-id, plaintext-too-long): the case has no envelope, and intermediates.info is absent when an id is out of its bounds.",
    ),
];

const HEADER: &[&str] = &[
    "The Backup Key Vault protocol (spec chapter 4): OPAQUE-3DH (RFC 9807) with ristretto255-SHA512, Argon2id as KSF, and requests and responses sealed with HPKE (RFC 9180) DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM.",
    "Every journey case but the last uses the Fast Argon2id profile (code 2: 256 KiB, 1 pass, 1 lane) so that the vectors are cheap to check; deployments use the Mobile profile (code 1), which the last case uses. The profile changes the export key and every byte derived from it, not the message flow.",
    "inputs.draws lists every random draw of the case in the order it is made, named step.draw[i] after the client or HSM step that makes it (names repeat when a step runs twice; an HSM step is named after the request, hsm.invalid_request for a plaintext that does not decode, and client.crafted is a request the generator sealed itself). An implementation reproduces the case by answering each draw of its generator with the next listed value. The values were derived as SHA-256 counter-mode output over the case seed, the draw's position and its name; a checker needs only the listed values.",
    "outputs.exchanges[i] is one request: the envelope the client sent, the sealed response (or the error of an envelope the HSM cannot open), what the driver stored and the stored record of the case's account afterwards (null: none). intermediates.exchanges[i] holds the opened plaintexts, the request's name (absent when the plaintext does not decode), the attempt id of a KE1, and the export key, wrapping key and OPAQUE registration record computed along the way.",
    "A tamper is {offset, xor} (one byte changed), {truncateTo} (the bytes cut to that length) or {append} (these bytes added at the end).",
    "outputs.client lists what each client step ended with. result is invalid when the case's decisive request is one the vault must reject; error then names the HSM error or the refusal.",
];

/// The fleet of the journey cases.
const FLEET_ID: &[u8] = b"vault.vectors.example";
/// The time every journey case runs at.
const NOW: u64 = 1_800_000_000;

mod draws;
mod driver;
mod generate;
mod outcomes;
mod records;
mod scenarios;
mod sealed_channel;
mod secrets;

use draws::*;
use driver::*;
pub use generate::{generate, verify_case};
use outcomes::*;
use records::*;
use scenarios::*;
use sealed_channel::*;
use secrets::*;
