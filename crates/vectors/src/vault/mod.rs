//! Vectors for the Backup Key Vault protocol (spec chapter 4): `test-vectors/vault.json`.
//!
//! Every journey case drives the real client ([`e2ee_backup_vault::client`]) against the real
//! HSM ([`e2ee_backup_vault::hsm`]) through a small in-memory driver, with a generator that
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
//! [`crate::draw`]`("{seed}/{i}/{name}", len)`. The verifier never uses the seed; it only
//! documents where the bytes came from.
//!
//! Two kinds of case need no journey: the sealed channel alone (`Channel` groups: given keys,
//! plaintexts and nonces, with an envelope or response a relay may have changed) and stored
//! records alone (the `Record` group: bytes written field by field, which the record decoder
//! must accept and encode back, or reject with a wire error code). Groups added after the
//! first release of the file come after it, so that no tcId moves.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_kdf::schedule::vault_wrapping_key;
use e2ee_backup_vault::channel::{
    self, ChannelError, FleetPublicKey, FleetSecretKey, RequestEnvelope,
};
use e2ee_backup_vault::client::{
    AwaitingLoginChallenge, AwaitingRegisterChallenge, ClientError, Endpoint, LoggedIn, Login,
    Registration,
};
use e2ee_backup_vault::hsm::{Hsm, HsmConfig, HsmError, HsmSecrets, RecordChange};
use e2ee_backup_vault::messages::{Request, Response};
use e2ee_backup_vault::record::AccountRecord;
use e2ee_backup_vault::suite::{CONTEXT, Identities, KsfProfile, VaultSuite};
use e2ee_backup_vault::{hsm, wrap};
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
        "Fleet secrets alone (spec 4.10.1): valid ones decode and serialise back to the same bytes; invalid ones are rejected with the wire error code (spec 4.2) of the first rule they break, front to back.",
    ),
    (
        "MobileProfile",
        "The vault's policy and the registration use the Mobile profile (code 1: 16 MiB, 32 passes, 1 lane), the one every real account uses.",
    ),
    (
        "ResponseBounds",
        "The bounds of a response (spec 4.4): 48 to 8240 bytes, checked before the tag. tamperResponse changes the response before the client reads it.",
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

// ---------------------------------------------------------------------------------------------
// Randomness
// ---------------------------------------------------------------------------------------------

/// Where the bytes of the draws come from.
enum Source {
    /// Derived from the seed (generation).
    Derive(String),
    /// Read back from a vector (verification).
    Replay(VecDeque<(String, Vec<u8>)>),
}

/// The generator every client and HSM step draws from: names each draw after the current
/// step and records it.
struct Draws {
    source: Source,
    step: String,
    index: usize,
    log: Vec<(String, Vec<u8>)>,
    mismatch: Option<String>,
}

impl Draws {
    fn new(source: Source) -> Self {
        Self { source, step: String::new(), index: 0, log: Vec::new(), mismatch: None }
    }

    /// Starts a step; returns the position of its first draw in the log.
    fn begin(&mut self, step: &str) -> usize {
        step.clone_into(&mut self.step);
        self.index = 0;
        self.log.len()
    }

    /// The values drawn since position `from`.
    fn since(&self, from: usize) -> Vec<Vec<u8>> {
        self.log[from..].iter().map(|d| d.1.clone()).collect()
    }

    /// The last draw, which must be 32 bytes: the `ikmE` of the request just sealed.
    fn last_ikm(&self) -> Result<[u8; 32], String> {
        let last = self.log.last().ok_or("no draw yet")?;
        last.1.clone().try_into().map_err(|_| format!("{} is not the 32-byte ikmE", last.0))
    }

    /// Fails if the replayed draws did not match what the code asked for, or are not all used.
    fn finish(&self) -> Result<(), String> {
        if let Some(m) = &self.mismatch {
            return Err(m.clone());
        }
        match &self.source {
            Source::Replay(left) if !left.is_empty() => {
                Err(format!("{} recorded draws are never made, first {}", left.len(), left[0].0))
            }
            _ => Ok(()),
        }
    }

    fn draws_json(&self) -> Value {
        self.log
            .iter()
            .map(|(name, value)| json!({ "name": name, "value": hex::encode(value) }))
            .collect()
    }
}

impl RngCore for Draws {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let name = format!("{}.draw[{}]", self.step, self.index);
        self.index += 1;
        match &mut self.source {
            Source::Derive(seed) => {
                dest.copy_from_slice(&draw(
                    &format!("{seed}/{}/{name}", self.log.len()),
                    dest.len(),
                ));
            }
            Source::Replay(queue) => match queue.pop_front() {
                Some((recorded, value)) if recorded == name && value.len() == dest.len() => {
                    dest.copy_from_slice(&value);
                }
                other => {
                    let found = other
                        .map_or("nothing".to_owned(), |(n, v)| format!("{n} of {} bytes", v.len()));
                    self.mismatch.get_or_insert(format!(
                        "the code draws {name} of {} bytes where the vector has {found}",
                        dest.len()
                    ));
                    dest.fill(0);
                }
            },
        }
        self.log.push((name, dest.to_vec()));
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for Draws {}

/// Hands out given values, for recomputing OPAQUE intermediates from recorded draws.
struct Given(VecDeque<Vec<u8>>, bool);

impl Given {
    fn new(values: Vec<Vec<u8>>) -> Self {
        Self(values.into(), true)
    }

    fn spent(&self) -> Result<(), String> {
        if self.1 && self.0.is_empty() {
            Ok(())
        } else {
            Err("the recorded draws of a client step do not match opaque-ke's draws".into())
        }
    }
}

impl RngCore for Given {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        match self.0.pop_front() {
            Some(v) if v.len() == dest.len() => dest.copy_from_slice(&v),
            _ => {
                self.1 = false;
                dest.fill(0);
            }
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for Given {}

// ---------------------------------------------------------------------------------------------
// Names of outcomes
// ---------------------------------------------------------------------------------------------

// The closed vocabulary of spec section 4.14: every error and outcome a vault vector names.

fn channel_error(e: &ChannelError) -> String {
    e.code().to_owned()
}

fn hsm_error(e: &HsmError) -> String {
    match e {
        HsmError::Channel(c) => channel_error(c),
        _ => "internal".to_owned(),
    }
}

fn client_error(e: &ClientError) -> Result<String, String> {
    match e {
        ClientError::WrongPassword { remaining } => {
            Ok(format!("wrong-password remaining={remaining}"))
        }
        ClientError::Locked => Ok("locked".into()),
        ClientError::Exhausted => Ok("exhausted".into()),
        ClientError::Refused { reason, remaining } => {
            Ok(format!("refused {} remaining={remaining}", reason.name()))
        }
        other => Err(format!("unexpected client error {other:?}")),
    }
}

fn response_outcome(response: &Response) -> String {
    match response {
        Response::Refused { reason, remaining } => {
            format!("refused {} remaining={remaining}", reason.name())
        }
        Response::Deleted => "deleted".to_owned(),
        Response::Registered { budget } => format!("registered budget={budget}"),
        other => format!("unexpected response {other:?}"),
    }
}

fn refusal(response: &Response) -> Option<String> {
    match response {
        Response::Refused { reason, .. } => Some(reason.name().to_owned()),
        _ => None,
    }
}

fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The driver
// ---------------------------------------------------------------------------------------------

/// One answer of the HSM.
enum Answer {
    Sealed { bytes: Vec<u8>, response: Response },
    Rejected(String),
}

/// What `Login::start` and its KE1 exchange leave: the client state, the draws of the step
/// (ikmE last), the HSM's answer and the envelope sent.
struct LoginStarted {
    state: AwaitingLoginChallenge,
    start_draws: Vec<Vec<u8>>,
    answer: Answer,
    envelope: Vec<u8>,
}

struct Run {
    draws: Draws,
    fleet_id: Vec<u8>,
    account: Vec<u8>,
    now: u64,
    hsm: Hsm,
    endpoint: Endpoint,
    public: FleetPublicKey,
    fleet_secret: FleetSecretKey,
    hsm_secrets: Vec<u8>,
    records: BTreeMap<Vec<u8>, AccountRecord>,
    mids: Vec<Value>,
    outs: Vec<Value>,
    client: Vec<Value>,
    /// The export key of the latest registration.
    export_key: Option<Vec<u8>>,
}

fn u64_field(v: &Value, field: &str) -> Result<u64, String> {
    v[field].as_u64().ok_or_else(|| format!("missing number {field}"))
}

fn key_field(v: &Value, field: &str) -> Result<BackupKey, String> {
    let bytes: [u8; 32] =
        hex_field(v, field)?.try_into().map_err(|_| format!("{field} is not 32 bytes"))?;
    Ok(BackupKey::from_bytes(bytes))
}

impl Run {
    fn new(config: &Value, source: Source) -> Result<Self, String> {
        let fleet_id = hex_field(config, "fleetId")?;
        let account = hex_field(config, "accountId")?;
        let budget = u8::try_from(u64_field(config, "budget")?).map_err(|_| "budget too big")?;
        let ksf_profile = u8::try_from(u64_field(config, "ksfProfile")?)
            .ok()
            .and_then(KsfProfile::from_code)
            .ok_or("unknown ksfProfile")?;
        expect_eq(
            "ksfParams",
            config["ksfParams"].as_str(),
            Some(ksf_params(ksf_profile).as_str()),
        )?;
        let mut draws = Draws::new(source);
        draws.begin("hsm.setup");
        let secrets = HsmSecrets::generate(&mut draws, &fleet_id);
        let hsm_secrets = secrets.to_bytes().to_vec();
        // to_bytes ends with count (1) || key_id || X25519 secret [32].
        let tail = &hsm_secrets[hsm_secrets.len() - 34..];
        expect_eq("channel key count and id", (tail[0], tail[1]), (1, 1))?;
        let fleet_secret = FleetSecretKey::from_bytes(tail[2..].try_into().expect("32 bytes"))
            .map_err(|e| e.to_string())?;
        let (key_id, public) = secrets.public_keys()[0];
        expect_eq("fleetKeyId", u64::from(key_id), u64_field(config, "fleetKeyId")?)?;
        let hsm_config = HsmConfig {
            budget,
            ksf_profile,
            session_lifetime: u64_field(config, "sessionLifetime")?,
            token_lifetime: u64_field(config, "tokenLifetime")?,
        };
        let hsm = Hsm::new(secrets, hsm_config).map_err(|e| e.to_string())?;
        let endpoint = Endpoint::new(&fleet_id, key_id, public).accepting_fast_ksf();
        Ok(Self {
            draws,
            fleet_id,
            account,
            now: u64_field(config, "now")?,
            hsm,
            endpoint,
            public,
            fleet_secret,
            hsm_secrets,
            records: BTreeMap::new(),
            mids: Vec::new(),
            outs: Vec::new(),
            client: Vec::new(),
            export_key: None,
        })
    }

    fn record_json(&self) -> Value {
        self.records.get(&self.account).map_or(Value::Null, |r| json!(hex::encode(r.encode())))
    }

    fn outcome(&mut self, outcome: String) {
        self.client.push(json!({ "outcome": outcome }));
    }

    /// Sends `envelope` (sealed with `ikm` as its `ikmE`, if known) to the HSM through the
    /// driver, and records the exchange.
    fn call(&mut self, envelope: &[u8], ikm: Option<&[u8; 32]>) -> Result<Answer, String> {
        let mut mid = json!({});
        let mut out = json!({ "envelope": hex::encode(envelope) });
        // The plaintext, opened beside the HSM with the fleet's secret key.
        let parsed = RequestEnvelope::parse(envelope).ok();
        let plain = parsed.as_ref().and_then(|e| {
            channel::open_request(&self.fleet_secret, &self.fleet_id, e).ok().map(|p| p.0.to_vec())
        });
        if let (Some(p), Some(e)) = (&plain, &parsed) {
            mid["requestPlaintext"] = json!(hex::encode(p));
            // A plaintext that does not decode (spec 4.7, "Decoding") has no request name.
            if let Ok(request) = Request::decode(p) {
                mid["request"] = json!(request.name());
                if let Request::LoginStart { ke1 } = &request {
                    mid["attemptId"] =
                        json!(hex::encode(hsm::attempt_id(e.account_id(), ke1.as_ref())));
                }
            }
        }
        let answer = match self.hsm.open(envelope) {
            Err(e) => {
                out["error"] = json!(hsm_error(&e));
                out["recordChange"] = json!("none");
                Answer::Rejected(hsm_error(&e))
            }
            Ok(opened) => {
                let step =
                    format!("hsm.{}", snake(opened.request_name().unwrap_or("InvalidRequest")));
                let record = self.records.get(opened.account()).cloned();
                let (command, pending) = opened.into_command(self.now);
                let mut change = "none";
                let decision = match command {
                    Err(refusal) => refusal,
                    Ok(command) => {
                        let records = &mut self.records;
                        let stored = self.hsm.apply(&command, record).persist(|c| {
                            match c {
                                RecordChange::Put(r) => {
                                    records.insert(command.account().to_vec(), r.clone());
                                    change = "put";
                                }
                                RecordChange::Delete => {
                                    records.remove(command.account());
                                    change = "delete";
                                }
                            }
                            Ok::<(), Infallible>(())
                        });
                        let Ok(decision) = stored;
                        decision
                    }
                };
                let reply = pending.reply(decision);
                self.draws.begin(&step);
                let bytes = self.hsm.seal(reply, &mut self.draws);
                out["response"] = json!(hex::encode(&bytes));
                out["recordChange"] = json!(change);
                // The response plaintext: the pending state of the request, rebuilt from ikmE.
                let (Some(ikm), Some(p), Some(e)) = (ikm, &plain, &parsed) else {
                    return Err("a sealed response to a request whose ikmE is unknown".into());
                };
                let (again, pending) = channel::seal_request_with_ephemeral_ikm(
                    ikm,
                    &self.fleet_id,
                    e.key_id(),
                    &self.public,
                    e.account_id(),
                    p,
                )
                .map_err(|e| e.to_string())?;
                expect_eq(
                    "envelope resealed with its ikmE",
                    hex::encode(again),
                    hex::encode(envelope),
                )?;
                let response_plain = pending.open(&bytes).map_err(|e| e.to_string())?;
                mid["responsePlaintext"] = json!(hex::encode(&response_plain));
                let response = Response::decode(&response_plain).map_err(|e| e.to_string())?;
                Answer::Sealed { bytes, response }
            }
        };
        out["record"] = self.record_json();
        self.mids.push(mid);
        self.outs.push(out);
        Ok(answer)
    }

    fn sealed(answer: Answer) -> Result<(Vec<u8>, Response), String> {
        match answer {
            Answer::Sealed { bytes, response } => Ok((bytes, response)),
            Answer::Rejected(e) => Err(format!("the HSM rejected a request: {e}")),
        }
    }

    /// A registration: `Registration::start` (or `change_password`), then its finish.
    fn register(&mut self, password: &[u8], key: &BackupKey) -> Result<(), String> {
        let from = self.draws.begin("client.register_start");
        let (state, envelope) =
            Registration::start(&mut self.draws, &self.endpoint, &self.account, password, None)
                .map_err(|e| format!("{e:?}"))?;
        let start_draws = self.draws.since(from);
        self.finish_registration(state, envelope, start_draws, password, key)
    }

    fn change_password(
        &mut self,
        session: LoggedIn,
        password: &[u8],
        expected_key: &BackupKey,
    ) -> Result<(), String> {
        let from = self.draws.begin("client.change_password");
        let (state, key, envelope) = session
            .change_password(&mut self.draws, password, None)
            .map_err(|e| format!("{e:?}"))?;
        expect_eq("the key change_password keeps", &key, expected_key)?;
        let start_draws = self.draws.since(from);
        self.finish_registration(state, envelope, start_draws, password, &key)
    }

    fn finish_registration(
        &mut self,
        state: AwaitingRegisterChallenge,
        envelope: Vec<u8>,
        start_draws: Vec<Vec<u8>>,
        password: &[u8],
        key: &BackupKey,
    ) -> Result<(), String> {
        let blind = start_draws;
        let ikm: [u8; 32] =
            blind.last().cloned().unwrap_or_default().try_into().map_err(|_| "ikmE")?;
        let (response, challenge) = Self::sealed(self.call(&envelope, Some(&ikm))?)?;
        let from = self.draws.begin("client.register_finish");
        let (state, envelope) =
            state.receive(&mut self.draws, &response, key).map_err(|e| format!("{e:?}"))?;
        let finish_draws = self.draws.since(from);
        let ikm = self.draws.last_ikm()?;
        let (response, _) = Self::sealed(self.call(&envelope, Some(&ikm))?)?;
        let budget = state.receive(&response).map_err(|e| format!("{e:?}"))?;
        self.outcome(format!("registered budget={budget}"));

        // The intermediates, recomputed from the recorded draws with opaque-ke alone: the
        // blind is every draw of the start step but ikmE, then the envelope nonce and the
        // sealed-key nonce.
        let Response::RegisterChallenge {
            registration_response, record_version, ksf_profile, ..
        } = challenge
        else {
            return Err("no RegisterChallenge".into());
        };
        let mut given = Given::new(blind[..blind.len() - 1].to_vec());
        let started = ClientRegistration::<VaultSuite>::start(&mut given, password)
            .map_err(|e| e.to_string())?;
        given.spent()?;
        let ksf = KsfProfile::from_code(ksf_profile).ok_or("ksf profile")?.argon2();
        let ids = Identities { account: &self.account, fleet: &self.fleet_id };
        let [nonce, seal_nonce, _ikm] = <[Vec<u8>; 3]>::try_from(finish_draws)
            .map_err(|_| "client.register_finish does not make three draws")?;
        let mut given = Given::new(vec![nonce]);
        let finished = started
            .state
            .finish(
                &mut given,
                password,
                RegistrationResponse::deserialize(&registration_response)
                    .map_err(|e| e.to_string())?,
                ClientRegistrationFinishParameters::new(ids.opaque(), Some(&ksf)),
            )
            .map_err(|e| e.to_string())?;
        given.spent()?;
        let export_key = finished.export_key.to_vec();
        let upload = finished.message.serialize().to_vec();
        let seal_nonce: [u8; 12] = seal_nonce.try_into().map_err(|_| "sealed-key nonce")?;
        let sealed =
            wrap::seal_key_with_nonce(&seal_nonce, &export_key, &self.account, record_version, key);
        let mid = self.mids.last_mut().expect("an exchange");
        let plain = hex_field(mid, "requestPlaintext")?;
        let Ok(Request::RegisterFinish { registration_upload, sealed_key, .. }) =
            Request::decode(&plain)
        else {
            return Err("no RegisterFinish".into());
        };
        expect_eq("registration record", hex::encode(&upload), hex::encode(*registration_upload))?;
        expect_eq("sealed K", hex::encode(&sealed), hex::encode(sealed_key))?;
        mid["exportKey"] = json!(hex::encode(&export_key));
        mid["wrappingKey"] = json!(hex::encode(*vault_wrapping_key(&export_key)));
        mid["registrationRecord"] = json!(hex::encode(&upload));
        self.export_key = Some(export_key);
        Ok(())
    }

    /// `Login::start` and the KE1 exchange. Returns the client state, the KE1 draws and the
    /// answer.
    fn login_start(&mut self, password: &[u8]) -> Result<LoginStarted, String> {
        let from = self.draws.begin("client.login_start");
        let (state, envelope) =
            Login::start(&mut self.draws, &self.endpoint, &self.account, password)
                .map_err(|e| format!("{e:?}"))?;
        let start_draws = self.draws.since(from);
        let ikm = self.draws.last_ikm()?;
        let answer = self.call(&envelope, Some(&ikm))?;
        Ok(LoginStarted { state, start_draws, answer, envelope })
    }

    /// A whole login. Returns the session when it succeeds.
    fn login(&mut self, password: &[u8]) -> Result<Option<LoggedIn>, String> {
        let LoginStarted { state, start_draws, answer, .. } = self.login_start(password)?;
        let Answer::Sealed { bytes, response: ke2 } = answer else {
            return Err("KE1 rejected".into());
        };
        self.begin_finish(state, start_draws, password, &bytes, ke2)
    }

    fn begin_finish(
        &mut self,
        state: AwaitingLoginChallenge,
        start_draws: Vec<Vec<u8>>,
        password: &[u8],
        bytes: &[u8],
        ke2: Response,
    ) -> Result<Option<LoggedIn>, String> {
        let from = self.draws.begin("client.login_finish");
        let (state, envelope) = match state.receive(&mut self.draws, bytes) {
            Ok(next) => next,
            Err(e) => {
                let outcome = client_error(&e)?;
                self.outcome(outcome);
                return Ok(None);
            }
        };
        let finish_draws = self.draws.since(from);
        let ikm = self.draws.last_ikm()?;
        let (response, _) = Self::sealed(self.call(&envelope, Some(&ikm))?)?;
        let export_key = self.login_export_key(password, &start_draws, &finish_draws, &ke2)?;
        self.mids.last_mut().expect("an exchange")["exportKey"] = json!(hex::encode(&export_key));
        match state.receive(&response) {
            Ok(session) => {
                expect_eq("login export key", Some(&export_key), self.export_key.as_ref())?;
                self.client.push(json!({
                    "outcome": format!("logged-in remaining={}", session.remaining()),
                    "recoveredKey": hex::encode(session.key().expose_secret()),
                }));
                Ok(Some(session))
            }
            Err(e) => {
                let outcome = client_error(&e)?;
                self.outcome(outcome);
                Ok(None)
            }
        }
    }

    /// The export key of a login, recomputed with opaque-ke from the recorded draws; checks
    /// that KE1 and KE3 are the ones the client sent.
    fn login_export_key(
        &self,
        password: &[u8],
        start_draws: &[Vec<u8>],
        finish_draws: &[Vec<u8>],
        ke2: &Response,
    ) -> Result<Vec<u8>, String> {
        let Response::LoginChallenge { ke2, ksf_profile, .. } = ke2 else {
            return Err("no LoginChallenge".into());
        };
        let mut given = Given::new(start_draws[..start_draws.len() - 1].to_vec());
        let started =
            ClientLogin::<VaultSuite>::start(&mut given, password).map_err(|e| e.to_string())?;
        given.spent()?;
        let ke1 = started.message.serialize().to_vec();
        let ksf = KsfProfile::from_code(*ksf_profile).ok_or("ksf profile")?.argon2();
        let ids = Identities { account: &self.account, fleet: &self.fleet_id };
        let mut given = Given::new(finish_draws[..finish_draws.len() - 1].to_vec());
        let finished = started
            .state
            .finish(
                &mut given,
                password,
                CredentialResponse::deserialize(ke2.as_ref()).map_err(|e| e.to_string())?,
                ClientLoginFinishParameters::new(Some(CONTEXT), ids.opaque(), Some(&ksf)),
            )
            .map_err(|e| e.to_string())?;
        given.spent()?;
        let ke3 = finished.message.serialize().to_vec();
        // The KE1 and KE3 the client sent, from the opened plaintexts.
        let sent: Vec<Request> = self
            .mids
            .iter()
            .filter_map(|m| m["requestPlaintext"].as_str())
            .filter_map(|p| Request::decode(&hex::decode(p).ok()?).ok())
            .collect();
        let ke1_sent = sent
            .iter()
            .any(|r| matches!(r, Request::LoginStart { ke1: k } if k.as_ref()[..] == ke1[..]));
        let ke3_sent = sent
            .iter()
            .any(|r| matches!(r, Request::LoginFinish { ke3: k, .. } if k.as_ref()[..] == ke3[..]));
        if !(ke1_sent && ke3_sent) {
            return Err("opaque-ke on the recorded draws does not give the KE1 and KE3 sent".into());
        }
        Ok(finished.export_key.to_vec())
    }

    fn exchange_count(&self) -> usize {
        self.outs.len()
    }
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

/// The case `error` of a journey: what the decisive exchange was answered with.
fn journey(scenario: &str, run: &mut Run, inputs: &Value) -> Result<Option<String>, String> {
    let password = hex_field(inputs, "password")?;
    let key = || key_field(inputs, "backupKey");
    let other = || hex_field(inputs, "otherPassword");
    match scenario {
        "register-login" => {
            run.register(&password, &key()?)?;
            let session = run.login(&password)?.ok_or("the login failed")?;
            expect_eq("recovered K", session.key(), &key()?)?;
            Ok(None)
        }
        "wrong-password" => {
            run.register(&password, &key()?)?;
            let none = run.login(&other()?)?;
            expect_eq("a wrong password logs in", none.is_none(), true)?;
            Ok(None)
        }
        "lockout" => {
            run.register(&password, &key()?)?;
            for _ in 0..3 {
                if run.login(&other()?)?.is_some() {
                    return Err("a wrong password logged in".into());
                }
            }
            // The spent attempts are still in flight; once their session lifetime has passed,
            // the next KE1 locks the account.
            run.now += 301;
            run.client.push(json!({ "clockAdvancedBy": 301 }));
            if run.login(&password)?.is_some() {
                return Err("a locked account logged in".into());
            }
            Ok(None)
        }
        "unknown-account" => {
            if run.login(&password)?.is_some() {
                return Err("an unknown account logged in".into());
            }
            Ok(None)
        }
        "change-password" => {
            run.register(&password, &key()?)?;
            let session = run.login(&password)?.ok_or("the login failed")?;
            run.change_password(session, &other()?, &key()?)?;
            let session = run.login(&other()?)?.ok_or("the login with the new password failed")?;
            expect_eq("K after the password change", session.key(), &key()?)?;
            Ok(None)
        }
        "ke1-retry" => {
            run.register(&password, &key()?)?;
            let LoginStarted { state, start_draws, answer: first, envelope } =
                run.login_start(&password)?;
            Run::sealed(first)?;
            let ikm = start_draws.last().cloned().ok_or("no ikmE")?;
            let ikm: [u8; 32] = ikm.try_into().map_err(|_| "ikmE")?;
            let (bytes, ke2) = Run::sealed(run.call(&envelope, Some(&ikm))?)?;
            run.begin_finish(state, start_draws, &password, &bytes, ke2)?
                .ok_or("the login failed")?;
            Ok(None)
        }
        "tampered-envelope" => {
            let envelope = run.login_start_unsent(&password)?;
            let tampered = tamper(&envelope, &inputs["tamper"])?;
            let answer = run.call(&tampered, None)?;
            run.mids.last_mut().expect("an exchange")["untamperedEnvelope"] =
                json!(hex::encode(&envelope));
            match answer {
                Answer::Rejected(e) => Ok(Some(e)),
                Answer::Sealed { .. } => Err("the HSM answered a tampered envelope".into()),
            }
        }
        "replayed-ke3" => {
            run.register(&password, &key()?)?;
            run.login(&password)?.ok_or("the login failed")?;
            // The LoginFinish envelope, sent again with its ikmE.
            let n = run.exchange_count() - 1;
            let envelope = hex_field(&run.outs[n], "envelope")?;
            let ikm = last_ikm_of(&run.draws, "client.login_finish")?;
            let (_, response) = Run::sealed(run.call(&envelope, Some(&ikm))?)?;
            run.outcome(response_outcome(&response));
            Ok(refusal(&response))
        }
        "wrong-ticket" | "swapped-ticket" => {
            run.register(&password, &key()?)?;
            let LoginStarted { state, answer, .. } = run.login_start(&password)?;
            let (bytes, ke2) = Run::sealed(answer)?;
            let Response::LoginChallenge { ticket, .. } = &ke2 else {
                return Err("no LoginChallenge".into());
            };
            let ticket = if scenario == "swapped-ticket" {
                // A second login of the same account; its ticket goes with the first KE3.
                match Run::sealed(run.login_start(&password)?.answer)?.1 {
                    Response::LoginChallenge { ticket, .. } => ticket,
                    _ => return Err("no second LoginChallenge".into()),
                }
            } else {
                tamper(ticket, &inputs["tamper"])?
            };
            run.draws.begin("client.login_finish");
            let (_, envelope) =
                state.receive(&mut run.draws, &bytes).map_err(|e| format!("{e:?}"))?;
            // The KE3 the client sealed, under the wrong ticket, sealed again.
            let env = RequestEnvelope::parse(&envelope).map_err(|e| e.to_string())?;
            let (plain, _) = channel::open_request(&run.fleet_secret, &run.fleet_id, &env)
                .map_err(|e| e.to_string())?;
            let Ok(Request::LoginFinish { ke3, .. }) = Request::decode(&plain) else {
                return Err("no LoginFinish".into());
            };
            let request = Request::LoginFinish { ticket, ke3 };
            run.draws.begin("client.login_finish_resealed");
            let (envelope, pending) = channel::seal_request(
                &mut run.draws,
                &run.fleet_id,
                env.key_id(),
                &run.public,
                &run.account,
                &request.encode(),
            )
            .map_err(|e| e.to_string())?;
            let ikm = run.draws.last_ikm()?;
            let (bytes, response) = Run::sealed(run.call(&envelope, Some(&ikm))?)?;
            let opened = pending.open(&bytes).map_err(|e| e.to_string())?;
            expect_eq("response", Response::decode(&opened).ok(), Some(response.clone()))?;
            run.outcome(response_outcome(&response));
            Ok(refusal(&response))
        }
        "register-start-twice" => {
            // One RegisterStart envelope sent twice: each answer evaluates the same blinded
            // element under its own fresh OPRF seed; the client finishes with the second.
            let from = run.draws.begin("client.register_start");
            let (state, envelope) =
                Registration::start(&mut run.draws, &run.endpoint, &run.account, &password, None)
                    .map_err(|e| format!("{e:?}"))?;
            let start_draws = run.draws.since(from);
            let ikm = run.draws.last_ikm()?;
            let (_, first) = Run::sealed(run.call(&envelope, Some(&ikm))?)?;
            let evaluation = |r: &Response| match r {
                Response::RegisterChallenge { registration_response, .. } => {
                    Ok(registration_response[..32].to_vec())
                }
                _ => Err("no RegisterChallenge".to_string()),
            };
            let first = evaluation(&first)?;
            // The second call is recorded by finish_registration.
            run.finish_registration(state, envelope, start_draws, &password, &key()?)?;
            let n = run.exchange_count() - 2;
            let second = hex_field(&run.mids[n], "responsePlaintext")?;
            let second = Response::decode(&second).map_err(|e| e.to_string())?;
            if evaluation(&second)? == first {
                return Err("two RegisterStarts evaluated the same OPRF key".into());
            }
            let session = run.login(&password)?.ok_or("the login failed")?;
            expect_eq("recovered K", session.key(), &key()?)?;
            Ok(None)
        }
        "expired-registration-ticket" | "foreign-registration-ticket" => {
            let foreign = if scenario == "foreign-registration-ticket" {
                // A registration ticket the vault issued for another account.
                let other_account = hex_field(inputs, "otherAccountId")?;
                run.draws.begin("client.register_start_other_account");
                let (_, envelope) = Registration::start(
                    &mut run.draws,
                    &run.endpoint,
                    &other_account,
                    &password,
                    None,
                )
                .map_err(|e| format!("{e:?}"))?;
                let ikm = run.draws.last_ikm()?;
                match Run::sealed(run.call(&envelope, Some(&ikm))?)?.1 {
                    Response::RegisterChallenge { registration_ticket, .. } => {
                        Some(registration_ticket)
                    }
                    _ => return Err("no RegisterChallenge for the other account".into()),
                }
            } else {
                None
            };
            run.draws.begin("client.register_start");
            let (state, envelope) =
                Registration::start(&mut run.draws, &run.endpoint, &run.account, &password, None)
                    .map_err(|e| format!("{e:?}"))?;
            let ikm = run.draws.last_ikm()?;
            let (bytes, _) = Run::sealed(run.call(&envelope, Some(&ikm))?)?;
            if foreign.is_none() {
                // The session lifetime passes before the client finishes.
                run.now += 301;
                run.client.push(json!({ "clockAdvancedBy": 301 }));
            }
            run.draws.begin("client.register_finish");
            let (_, envelope) =
                state.receive(&mut run.draws, &bytes, &key()?).map_err(|e| format!("{e:?}"))?;
            let envelope = match foreign {
                None => envelope,
                Some(ticket) => run.resealed(&envelope, |request| {
                    if let Request::RegisterFinish { registration_ticket, .. } = request {
                        *registration_ticket = ticket;
                    }
                })?,
            };
            let ikm = run.draws.last_ikm()?;
            let (_, response) = Run::sealed(run.call(&envelope, Some(&ikm))?)?;
            run.outcome(response_outcome(&response));
            Ok(refusal(&response))
        }
        "re-register-without-token" => {
            run.register(&password, &key()?)?;
            run.draws.begin("client.register_start");
            let (state, envelope) =
                Registration::start(&mut run.draws, &run.endpoint, &run.account, &other()?, None)
                    .map_err(|e| format!("{e:?}"))?;
            let ikm = run.draws.last_ikm()?;
            // RegisterStart is answered as for any account: a challenge under a fresh seed.
            let (bytes, _) = Run::sealed(run.call(&envelope, Some(&ikm))?)?;
            run.draws.begin("client.register_finish");
            let (state, envelope) =
                state.receive(&mut run.draws, &bytes, &key()?).map_err(|e| format!("{e:?}"))?;
            let ikm = run.draws.last_ikm()?;
            let (bytes, response) = Run::sealed(run.call(&envelope, Some(&ikm))?)?;
            match state.receive(&bytes) {
                Ok(_) => Err("a registered account was re-registered without a token".into()),
                Err(e) => {
                    let outcome = client_error(&e)?;
                    run.outcome(outcome);
                    Ok(refusal(&response))
                }
            }
        }
        "replay-after-delete" => {
            run.register(&password, &key()?)?;
            let first_finish = hex_field(&run.outs[1], "envelope")?;
            let first_ikm = last_ikm_of(&run.draws, "client.register_finish")?;
            let session = run.login(&password)?.ok_or("the login failed")?;
            run.draws.begin("client.delete");
            let (state, envelope) = session.delete(&mut run.draws).map_err(|e| format!("{e:?}"))?;
            let ikm = run.draws.last_ikm()?;
            let (bytes, _) = Run::sealed(run.call(&envelope, Some(&ikm))?)?;
            state.receive(&bytes).map_err(|e| format!("{e:?}"))?;
            run.outcome("deleted".into());
            // The first registration's RegisterFinish, replayed: the tombstone's version
            // makes it stale.
            let (_, response) = Run::sealed(run.call(&first_finish, Some(&first_ikm))?)?;
            run.outcome(response_outcome(&response));
            Ok(refusal(&response))
        }
        "undecodable-request" => {
            run.register(&password, &key()?)?;
            // Requests a byte away from decoding, made from requests the client built (a
            // decoder that lets one through meets a valid request and answers otherwise).
            let env = run.login_start_unsent(&password)?;
            let ke1 = run.plaintext_of(&env)?;
            run.draws.begin("client.register_start");
            let (_, env) =
                Registration::start(&mut run.draws, &run.endpoint, &run.account, &password, None)
                    .map_err(|e| format!("{e:?}"))?;
            let mut register_start = run.plaintext_of(&env)?;
            let mut unknown_kind = ke1.clone();
            unknown_kind[0] = 0x06;
            let mut trailing = ke1.clone();
            trailing.push(0x00);
            let cut = ke1[..ke1.len() - 1].to_vec();
            *register_start.last_mut().ok_or("empty RegisterStart")? = 0x02;
            let mut long_ticket = vec![0x04, 0x02, 0x01];
            long_ticket.extend_from_slice(&[0u8; 513 + 64]);
            let mut short_delete = vec![0x05];
            short_delete.extend_from_slice(&[0x42; 15]);
            let mut answers = Vec::new();
            for plain in
                [vec![], unknown_kind, trailing, cut, register_start, long_ticket, short_delete]
            {
                answers.push(run.send_crafted(&plain)?);
            }
            refused_alike(&answers, "invalid-request")
        }
        "invalid-register-start" => {
            run.draws.begin("client.register_start");
            let (_, env) =
                Registration::start(&mut run.draws, &run.endpoint, &run.account, &password, None)
                    .map_err(|e| format!("{e:?}"))?;
            let mut answers = Vec::new();
            // Not a canonical encoding; the identity element.
            for element in [[0xff; 32], [0; 32]] {
                answers.push(run.send_edited(&env, |r| {
                    if let Request::RegisterStart { registration_request, .. } = r {
                        *registration_request = element;
                    }
                })?);
            }
            refused_alike(&answers, "invalid-request")
        }
        "invalid-ke1" => {
            run.register(&password, &key()?)?;
            let env = run.login_start_unsent(&password)?;
            let mut answers = Vec::new();
            // The blinded element not canonical, the identity; the client key share not
            // canonical.
            for (at, element) in [(0, [0xff; 32]), (0, [0; 32]), (64, [0xff; 32])] {
                answers.push(run.send_edited(&env, |r| {
                    if let Request::LoginStart { ke1 } = r {
                        ke1[at..at + 32].copy_from_slice(&element);
                    }
                })?);
            }
            refused_alike(&answers, "invalid-request")
        }
        "invalid-registration-record" => {
            let env = run.register_finish_unsent(&password, &key()?)?;
            let mut answers = Vec::new();
            // client_public_key not canonical; the identity element.
            for element in [[0xff; 32], [0; 32]] {
                answers.push(run.send_edited(&env, |r| {
                    if let Request::RegisterFinish { registration_upload, .. } = r {
                        registration_upload[..32].copy_from_slice(&element);
                    }
                })?);
            }
            refused_alike(&answers, "invalid-request")
        }
        "non-policy-ksf-profile" => {
            let env = run.register_finish_unsent(&password, &key()?)?;
            let mut answers = Vec::new();
            // The mobile profile (known, not the policy's), unknown codes, and an unknown code
            // with a stale version: the profile is checked first.
            for (profile, version_step) in [(1, 0), (3, 0), (0, 0), (0xff, 1)] {
                answers.push(run.send_edited(&env, |r| {
                    if let Request::RegisterFinish { ksf_profile, record_version, .. } = r {
                        *ksf_profile = profile;
                        *record_version = record_version.wrapping_add(version_step);
                    }
                })?);
            }
            refused_alike(&answers, "invalid-request")
        }
        "locked-undecodable" => {
            run.lock_account(&password, &other()?, &key()?)?;
            let env = run.login_start_unsent(&password)?;
            let mut trailing = run.plaintext_of(&env)?;
            trailing.push(0x00);
            let answers = vec![run.send_crafted(&[])?, run.send_crafted(&trailing)?];
            refused_alike(&answers, "invalid-request")
        }
        "locked-invalid-element" => {
            run.lock_account(&password, &other()?, &key()?)?;
            let env = run.login_start_unsent(&password)?;
            let mut answers = vec![run.send_edited(&env, |r| {
                if let Request::LoginStart { ke1 } = r {
                    ke1[..32].copy_from_slice(&[0xff; 32]);
                }
            })?];
            let invalid = [
                Request::RegisterStart { registration_request: [0xff; 32], token: None },
                Request::RegisterFinish {
                    record_version: 0,
                    ksf_profile: 0,
                    registration_upload: Box::new([0xff; 192]),
                    sealed_key: [0; 61],
                    registration_ticket: Box::new([0; 100]),
                    token: None,
                },
                Request::LoginFinish { ticket: vec![0; 188], ke3: Box::new([0; 64]) },
                Request::Delete { token: [0x42; 16] },
            ];
            for request in invalid {
                answers.push(run.send_crafted(&request.encode())?);
            }
            refused_alike(&answers, "locked")
        }
        "expired-login-ticket" | "login-ticket-at-expiry" | "expired-login-ticket-locks" => {
            run.register(&password, &key()?)?;
            let LoginStarted { state, start_draws, answer, .. } = run.login_start(&password)?;
            let (bytes, ke2) = Run::sealed(answer)?;
            // The KE3 arrives at the ticket's not_after, or one second after it.
            run.advance(if scenario == "login-ticket-at-expiry" { 300 } else { 301 });
            let session = run.begin_finish(state, start_draws, &password, &bytes, ke2)?;
            if scenario == "login-ticket-at-expiry" {
                session.ok_or("the login at not_after failed")?;
                return Ok(None);
            }
            if session.is_some() {
                return Err("a login after its ticket expired".into());
            }
            run.last_refusal()
        }
        "failed-ke3-locks" => {
            run.register(&password, &key()?)?;
            let LoginStarted { state, answer, .. } = run.login_start(&password)?;
            let (bytes, _) = Run::sealed(answer)?;
            run.draws.begin("client.login_finish");
            let (_, env) = state.receive(&mut run.draws, &bytes).map_err(|e| format!("{e:?}"))?;
            let response = run.send_edited(&env, |r| {
                if let Request::LoginFinish { ke3, .. } = r {
                    ke3[0] ^= 1;
                }
            })?;
            Ok(refusal(&response))
        }
        "delete-not-authorised" => {
            // A made-up token: for an account with no record, a phantom, a registered account
            // that holds no token, and one that holds another.
            let made_up = Request::Delete { token: [0x42; 16] }.encode();
            let mut answers = vec![run.send_crafted(&made_up)?];
            if run.login(&password)?.is_some() {
                return Err("an unknown account logged in".into());
            }
            answers.push(run.send_crafted(&made_up)?);
            run.register(&password, &key()?)?;
            answers.push(run.send_crafted(&made_up)?);
            let session = run.login(&password)?.ok_or("the login failed")?;
            answers.push(run.send_crafted(&made_up)?);
            // The login's own Delete, then the same envelope again: the tombstone.
            let (envelope, ikm) = run.delete(session)?;
            let (_, response) = Run::sealed(run.call(&envelope, Some(&ikm))?)?;
            run.outcome(response_outcome(&response));
            answers.push(response);
            refused_alike(&answers, "not-authorised")
        }
        "delete-token-expired" | "delete-at-token-expiry" => {
            run.register(&password, &key()?)?;
            let session = run.login(&password)?.ok_or("the login failed")?;
            // The Delete arrives at the token's not_after, or one second after it.
            run.advance(if scenario == "delete-at-token-expiry" { 300 } else { 301 });
            run.delete(session)?;
            run.last_refusal()
        }
        "phantom-any-token" => {
            if run.login(&password)?.is_some() {
                return Err("an unknown account logged in".into());
            }
            let env = run.register_finish_unsent(&password, &key()?)?;
            let response = run.send_edited(&env, |r| {
                if let Request::RegisterFinish { token, .. } = r {
                    *token = Some([0x42; 16]);
                }
            })?;
            match response {
                Response::Registered { .. } => Ok(None),
                other => Err(format!("a phantom's registration with a token: {other:?}")),
            }
        }
        other => Err(format!("unknown scenario {other:?}")),
    }
}

/// Every answer a refusal for `reason`: the case's error.
fn refused_alike(answers: &[Response], reason: &str) -> Result<Option<String>, String> {
    for answer in answers {
        expect_eq("refusal", refusal(answer).as_deref(), Some(reason))?;
    }
    Ok(Some(reason.to_owned()))
}

impl Run {
    /// Opens a request envelope the client made, changes the request with `edit`, and seals it
    /// again (drawing a new `ikmE` under the step `client.resealed`).
    fn resealed(
        &mut self,
        envelope: &[u8],
        edit: impl FnOnce(&mut Request),
    ) -> Result<Vec<u8>, String> {
        let env = RequestEnvelope::parse(envelope).map_err(|e| e.to_string())?;
        let (plain, _) = channel::open_request(&self.fleet_secret, &self.fleet_id, &env)
            .map_err(|e| e.to_string())?;
        let mut request = Request::decode(&plain).map_err(|e| e.to_string())?;
        edit(&mut request);
        self.draws.begin("client.resealed");
        let (envelope, _) = channel::seal_request(
            &mut self.draws,
            &self.fleet_id,
            env.key_id(),
            &self.public,
            &self.account,
            &request.encode(),
        )
        .map_err(|e| e.to_string())?;
        Ok(envelope)
    }

    /// The plaintext of a request envelope the client made, opened with the fleet's secret.
    fn plaintext_of(&self, envelope: &[u8]) -> Result<Vec<u8>, String> {
        let env = RequestEnvelope::parse(envelope).map_err(|e| e.to_string())?;
        let (plain, _) = channel::open_request(&self.fleet_secret, &self.fleet_id, &env)
            .map_err(|e| e.to_string())?;
        Ok(plain.to_vec())
    }

    /// Seals `plaintext` (any bytes, a request or not) for the case's account, drawing its
    /// `ikmE` under the step `client.crafted`, sends it and records the response it gets as
    /// the outcome (no client state waits for it). Returns the response.
    fn send_crafted(&mut self, plaintext: &[u8]) -> Result<Response, String> {
        self.draws.begin("client.crafted");
        let (key_id, public) = self.endpoint.key();
        let (envelope, pending) = channel::seal_request(
            &mut self.draws,
            &self.fleet_id,
            key_id,
            &public,
            &self.account,
            plaintext,
        )
        .map_err(|e| e.to_string())?;
        let ikm = self.draws.last_ikm()?;
        let (bytes, response) = Self::sealed(self.call(&envelope, Some(&ikm))?)?;
        let opened = pending.open(&bytes).map_err(|e| e.to_string())?;
        expect_eq("response", Response::decode(&opened).ok(), Some(response.clone()))?;
        self.outcome(response_outcome(&response));
        Ok(response)
    }

    /// Opens a request envelope the client made, changes the request with `edit`, and sends
    /// it sealed again as [`Run::send_crafted`] does.
    fn send_edited(
        &mut self,
        envelope: &[u8],
        edit: impl FnOnce(&mut Request),
    ) -> Result<Response, String> {
        let plain = self.plaintext_of(envelope)?;
        let mut request = Request::decode(&plain).map_err(|e| e.to_string())?;
        edit(&mut request);
        self.send_crafted(&request.encode())
    }

    /// A `RegisterStart` sent and answered, then the client's `RegisterFinish`, not sent.
    fn register_finish_unsent(
        &mut self,
        password: &[u8],
        key: &BackupKey,
    ) -> Result<Vec<u8>, String> {
        self.draws.begin("client.register_start");
        let (state, envelope) =
            Registration::start(&mut self.draws, &self.endpoint, &self.account, password, None)
                .map_err(|e| format!("{e:?}"))?;
        let ikm = self.draws.last_ikm()?;
        let (bytes, _) = Self::sealed(self.call(&envelope, Some(&ikm))?)?;
        self.draws.begin("client.register_finish");
        let (_, envelope) =
            state.receive(&mut self.draws, &bytes, key).map_err(|e| format!("{e:?}"))?;
        Ok(envelope)
    }

    /// The clock of the case moves on by `seconds`.
    fn advance(&mut self, seconds: u64) {
        self.now += seconds;
        self.client.push(json!({ "clockAdvancedBy": seconds }));
    }

    /// Locks the account (a budget of 1): registration, one wrong password, and once that
    /// attempt expired, a KE1 that finds nothing left and locks.
    fn lock_account(
        &mut self,
        password: &[u8],
        other: &[u8],
        key: &BackupKey,
    ) -> Result<(), String> {
        self.register(password, key)?;
        if self.login(other)?.is_some() {
            return Err("a wrong password logged in".into());
        }
        self.advance(301);
        if self.login(password)?.is_some() {
            return Err("a spent account logged in".into());
        }
        let record = self.records.get(&self.account).ok_or("no record")?;
        expect_eq("the record locked", record.encode()[1], 3)?;
        Ok(())
    }

    /// The Delete of a logged-in session, sent, and the client's outcome. Returns the envelope
    /// and its `ikmE`.
    fn delete(&mut self, session: LoggedIn) -> Result<(Vec<u8>, [u8; 32]), String> {
        self.draws.begin("client.delete");
        let (state, envelope) = session.delete(&mut self.draws).map_err(|e| format!("{e:?}"))?;
        let ikm = self.draws.last_ikm()?;
        let (bytes, _) = Self::sealed(self.call(&envelope, Some(&ikm))?)?;
        let outcome = match state.receive(&bytes) {
            Ok(()) => "deleted".to_owned(),
            Err(e) => client_error(&e)?,
        };
        self.outcome(outcome);
        Ok((envelope, ikm))
    }

    /// The refusal reason of the latest response.
    fn last_refusal(&self) -> Result<Option<String>, String> {
        let plain = hex_field(self.mids.last().ok_or("no exchange")?, "responsePlaintext")?;
        Ok(refusal(&Response::decode(&plain).map_err(|e| e.to_string())?))
    }

    /// `Login::start` only, not sent: for envelopes that are tampered with first.
    fn login_start_unsent(&mut self, password: &[u8]) -> Result<Vec<u8>, String> {
        self.draws.begin("client.login_start");
        let (_, envelope) = Login::start(&mut self.draws, &self.endpoint, &self.account, password)
            .map_err(|e| format!("{e:?}"))?;
        Ok(envelope)
    }
}

/// The `ikmE` of the latest run of `step`: its last draw.
fn last_ikm_of(draws: &Draws, step: &str) -> Result<[u8; 32], String> {
    let prefix = format!("{step}.draw[");
    let last = draws
        .log
        .iter()
        .enumerate()
        .filter(|(_, d)| d.0.starts_with(&prefix))
        .map(|(i, _)| i)
        .next_back()
        .ok_or("no such step")?;
    draws.log[last].1.clone().try_into().map_err(|_| "ikmE is not 32 bytes".into())
}

/// Applies `{"offset", "xor"}`, `{"truncateTo"}` or `{"append"}` to `bytes`.
fn tamper(bytes: &[u8], how: &Value) -> Result<Vec<u8>, String> {
    let mut out = bytes.to_vec();
    if how.get("append").is_some() {
        out.extend_from_slice(&hex_field(how, "append")?);
        return Ok(out);
    }
    if let Some(len) = how["truncateTo"].as_u64() {
        out.truncate(usize::try_from(len).map_err(|e| e.to_string())?);
        return Ok(out);
    }
    let offset = usize::try_from(u64_field(how, "offset")?).map_err(|e| e.to_string())?;
    let mask = u8::try_from(u64_field(how, "xor")?).map_err(|e| e.to_string())?;
    *out.get_mut(offset).ok_or("tamper offset out of range")? ^= mask;
    Ok(out)
}

/// Runs one journey case from its config and inputs: the whole case but tcId, comment, flags.
fn run_journey(
    scenario: &str,
    config: &Value,
    inputs: &Value,
    source: Source,
) -> Result<Value, String> {
    let suite = suite_config();
    for (field, value) in suite.as_object().expect("an object") {
        expect_eq(field, &config[field], value)?;
    }
    let mut run = Run::new(config, source)?;
    let result = journey(scenario, &mut run, inputs);
    run.draws.finish()?;
    let error = result?;
    let mut inputs = inputs.clone();
    inputs["draws"] = run.draws.draws_json();
    let mut case = json!({
        "result": if error.is_some() { "invalid" } else { "valid" },
        "scenario": scenario,
        "config": config,
        "inputs": inputs,
        "intermediates": {
            "hsmSecrets": hex::encode(&run.hsm_secrets),
            "fleetPublicKey": hex::encode(run.public.as_bytes()),
            "exchanges": run.mids,
        },
        "outputs": { "exchanges": run.outs, "client": run.client },
    });
    if let Some(error) = error {
        case["error"] = json!(error);
    }
    Ok(case)
}

/// The Argon2id parameters of a profile, as the config states them.
fn ksf_params(profile: KsfProfile) -> String {
    let (m, t, p) = profile.costs();
    let name = match profile {
        KsfProfile::Mobile => "the Mobile profile",
        KsfProfile::Fast => "the Fast profile, for tests and vectors only",
    };
    format!(
        "Argon2id version 0x13, m = {m} KiB, t = {t}, p = {p}, 64-byte output, salt of 16 zero bytes ({name}, code {})",
        profile.code()
    )
}

/// The suite fields of every journey config (checked, not varied).
fn suite_config() -> Value {
    json!({
        "opaque": "OPAQUE-3DH",
        "oprf": "ristretto255-SHA512",
        "group": "ristretto255",
        "hash": "SHA-512",
        "ksf": "Argon2id",
        "context": hex::encode(CONTEXT),
        "hpke": "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM",
    })
}

// ---------------------------------------------------------------------------------------------
// The sealed channel alone
// ---------------------------------------------------------------------------------------------

fn run_channel(config: &Value, inputs: &Value) -> Result<Value, String> {
    let fleet_id = hex_field(config, "fleetId")?;
    let account = hex_field(config, "accountId")?;
    let key_id = u8::try_from(u64_field(config, "fleetKeyId")?).map_err(|e| e.to_string())?;
    let ikm_r: [u8; 32] = hex_field(inputs, "fleetKeyIkm")?.try_into().map_err(|_| "ikmR")?;
    let ikm_e: [u8; 32] = hex_field(inputs, "ikmE")?.try_into().map_err(|_| "ikmE")?;
    let nonce: [u8; 32] =
        hex_field(inputs, "responseNonce")?.try_into().map_err(|_| "responseNonce")?;
    let request = hex_field(inputs, "requestPlaintext")?;
    let response_plain = hex_field(inputs, "responsePlaintext")?;
    let open_fleet = match inputs.get("hsmFleetId") {
        Some(_) => hex_field(inputs, "hsmFleetId")?,
        None => fleet_id.clone(),
    };
    let secret = FleetSecretKey::derive(&ikm_r);
    let public = secret.public_key();
    let (envelope, pending) = channel::seal_request_with_ephemeral_ikm(
        &ikm_e, &fleet_id, key_id, &public, &account, &request,
    )
    .map_err(|e| e.to_string())?;
    let parsed = RequestEnvelope::parse(&envelope).map_err(|e| e.to_string())?;
    let mut outputs = json!({
        "fleetPublicKey": hex::encode(public.as_bytes()),
        "enc": hex::encode(parsed.enc()),
        "envelope": hex::encode(&envelope),
    });
    let intermediates = json!({
        "fleetSecretKey": hex::encode(*secret.to_bytes()),
        "info": hex::encode(channel::request_info(1, &fleet_id, &account, key_id).map_err(|e| e.to_string())?),
    });
    let mut error = None;
    // The envelope the HSM is given: the sealed one, or one a relay changed.
    let delivered = match inputs.get("tamperRequest") {
        Some(how) => tamper(&envelope, how)?,
        None => envelope.clone(),
    };
    let opened = RequestEnvelope::parse(&delivered)
        .and_then(|d| channel::open_request(&secret, &open_fleet, &d));
    match opened {
        Err(e) => error = Some(channel_error(&e)),
        Ok((opened, sealer)) => {
            expect_eq("opened request", hex::encode(&*opened), hex::encode(&request))?;
            let response =
                sealer.seal_with_nonce(&nonce, &response_plain).map_err(|e| e.to_string())?;
            outputs["response"] = json!(hex::encode(&response));
            let delivered = match inputs.get("tamperResponse") {
                Some(how) => tamper(&response, how)?,
                None => response,
            };
            match pending.open(&delivered) {
                Ok(plain) => expect_eq(
                    "opened response",
                    hex::encode(&*plain),
                    hex::encode(&response_plain),
                )?,
                Err(e) => error = Some(channel_error(&e)),
            }
        }
    }
    let mut case = json!({
        "result": if error.is_some() { "invalid" } else { "valid" },
        "scenario": "channel",
        "config": config,
        "inputs": inputs,
        "intermediates": intermediates,
        "outputs": outputs,
    });
    if let Some(error) = error {
        case["error"] = json!(error);
    }
    Ok(case)
}

// ---------------------------------------------------------------------------------------------
// Stored records alone (spec 4.8)
// ---------------------------------------------------------------------------------------------

/// The fields of a stored record, written by hand (not by the vault's encoder) so that a case
/// can break one rule at a time.
#[derive(Clone)]
struct RecordBytes {
    /// `u8(2) || state || budget || remaining`.
    head: [u8; 4],
    record_version: u32,
    ksf_profile: u8,
    registration: Vec<u8>,
    sealed_key: Vec<u8>,
    oprf_ticket: Vec<u8>,
    charges: u64,
    /// `pending_count` as written; `None`: the number of attempts.
    pending_count: Option<u8>,
    pending: Vec<([u8; 16], u64, u64)>,
    /// `has_token` and what follows it.
    token: Vec<u8>,
    /// Bytes after the last field.
    trailing: Vec<u8>,
    /// The bytes cut to this length.
    cut_to: Option<usize>,
}

impl RecordBytes {
    /// A registered record: budget 5, 3 left, version 7, the fast profile, 4 charges, the
    /// attempts of serials 2 and 3 pending, and a token.
    fn registered() -> Self {
        let mut token = vec![1];
        token.extend_from_slice(&draw("vault/record/token", 16));
        token.extend_from_slice(&(NOW + 300).to_be_bytes());
        Self {
            head: [2, 1, 5, 3],
            record_version: 7,
            ksf_profile: KsfProfile::Fast.code(),
            registration: draw("vault/record/registration", 192),
            sealed_key: draw("vault/record/sealed-key", 61),
            oprf_ticket: draw("vault/record/oprf-ticket", 100),
            charges: 4,
            pending_count: None,
            pending: vec![
                (draw("vault/record/attempt-2", 16).try_into().expect("16 bytes"), 2, NOW + 300),
                (draw("vault/record/attempt-3", 16).try_into().expect("16 bytes"), 3, NOW + 301),
            ],
            token,
            trailing: Vec::new(),
            cut_to: None,
        }
    }

    /// A phantom: budget 5, all 5 left, nothing stored, nothing pending, no token.
    fn phantom() -> Self {
        Self {
            head: [2, 2, 5, 5],
            registration: Vec::new(),
            sealed_key: Vec::new(),
            oprf_ticket: Vec::new(),
            charges: 0,
            pending: Vec::new(),
            token: vec![0],
            ..Self::registered()
        }
    }

    /// A locked record: budget 5, version 7, 4 charges kept.
    fn locked() -> Self {
        Self { head: [2, 3, 5, 0], charges: 4, ..Self::phantom() }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = self.head.to_vec();
        out.extend_from_slice(&self.record_version.to_be_bytes());
        out.push(self.ksf_profile);
        for field in [&self.registration, &self.sealed_key, &self.oprf_ticket] {
            out.extend_from_slice(&u16::try_from(field.len()).expect("short").to_be_bytes());
            out.extend_from_slice(field);
        }
        out.extend_from_slice(&self.charges.to_be_bytes());
        let count = u8::try_from(self.pending.len()).expect("few attempts");
        out.push(self.pending_count.unwrap_or(count));
        for (id, serial, not_after) in &self.pending {
            out.extend_from_slice(id);
            out.extend_from_slice(&serial.to_be_bytes());
            out.extend_from_slice(&not_after.to_be_bytes());
        }
        out.extend_from_slice(&self.token);
        out.extend_from_slice(&self.trailing);
        if let Some(len) = self.cut_to {
            out.truncate(len);
        }
        out
    }
}

/// A record case from its bytes: the decoder accepts it and encodes it back to the same bytes,
/// or rejects it with a wire error code (spec 4.2).
fn run_record(record: &[u8]) -> Result<Value, String> {
    let mut case = json!({ "scenario": "record", "record": hex::encode(record) });
    match AccountRecord::decode(record) {
        Ok(decoded) => {
            expect_eq(
                "the record encoded again",
                hex::encode(decoded.encode()),
                hex::encode(record),
            )?;
            case["result"] = json!("valid");
        }
        Err(e) => {
            case["result"] = json!("invalid");
            case["error"] = json!(e.code());
        }
    }
    Ok(case)
}

/// The record cases: valid records at their bounds, then one rule of the decoder broken at a
/// time in the order spec 4.8 checks them, then records with two faults.
fn record_cases() -> Vec<Value> {
    /// A comment, the record a case starts from, its change and the expected error.
    type Case = (&'static str, fn() -> RecordBytes, fn(&mut RecordBytes), Option<&'static str>);
    let registered = RecordBytes::registered;
    let phantom = RecordBytes::phantom;
    let locked = RecordBytes::locked;
    let cases: Vec<Case> = vec![
        ("a registered record with two attempts pending and a token", registered, |_| {}, None),
        ("a phantom", phantom, |_| {}, None),
        ("a locked record", locked, |_| {}, None),
        (
            "bounds: remaining = budget = pending_count = 2, the mobile profile, the largest serial (charges - 1), no token",
            registered,
            |r| {
                r.head = [2, 1, 2, 2];
                r.ksf_profile = KsfProfile::Mobile.code();
                r.token = vec![0];
            },
            None,
        ),
        ("a first byte of 1", registered, |r| r.head[0] = 1, Some("invalid-value")),
        ("state 0", phantom, |r| r.head[1] = 0, Some("invalid-value")),
        ("state 4", phantom, |r| r.head[1] = 4, Some("invalid-value")),
        (
            "budget 0 (and remaining 0)",
            phantom,
            |r| r.head[2..].copy_from_slice(&[0, 0]),
            Some("invalid-value"),
        ),
        ("remaining 6 above budget 5", phantom, |r| r.head[3] = 6, Some("invalid-value")),
        ("ksf_profile 0", phantom, |r| r.ksf_profile = 0, Some("invalid-value")),
        ("ksf_profile 3", phantom, |r| r.ksf_profile = 3, Some("invalid-value")),
        (
            "a registration record of 193 bytes",
            registered,
            |r| r.registration.push(0),
            Some("too-long"),
        ),
        ("a sealed key of 62 bytes", registered, |r| r.sealed_key.push(0), Some("too-long")),
        ("an oprf ticket of 101 bytes", registered, |r| r.oprf_ticket.push(0), Some("too-long")),
        (
            "registered, a registration record of 191 bytes",
            registered,
            |r| {
                r.registration.pop();
            },
            Some("invalid-value"),
        ),
        (
            "registered, no oprf ticket",
            registered,
            |r| r.oprf_ticket.clear(),
            Some("invalid-value"),
        ),
        (
            "a phantom with a 61-byte sealed key",
            phantom,
            |r| r.sealed_key = vec![0; 61],
            Some("invalid-value"),
        ),
        (
            "a locked record with a 192-byte registration record",
            locked,
            |r| r.registration = vec![0; 192],
            Some("invalid-value"),
        ),
        (
            "pending_count 6 above budget 5 (the attempts are not read)",
            registered,
            |r| r.pending_count = Some(6),
            Some("invalid-value"),
        ),
        (
            "a pending serial equal to charges",
            registered,
            |r| r.pending[1].1 = 4,
            Some("invalid-value"),
        ),
        (
            "an attempt id twice",
            registered,
            |r| r.pending[1].0 = r.pending[0].0,
            Some("invalid-value"),
        ),
        ("has_token 2", registered, |r| r.token = vec![2], Some("invalid-value")),
        (
            "one byte after the last field",
            registered,
            |r| r.trailing = vec![0],
            Some("trailing-bytes"),
        ),
        ("a locked record with remaining 1", locked, |r| r.head[3] = 1, Some("invalid-value")),
        (
            "a locked record with an attempt pending",
            locked,
            |r| r.pending = vec![([7; 16], 3, NOW)],
            Some("invalid-value"),
        ),
        (
            "a locked record with a token",
            locked,
            |r| r.token = RecordBytes::registered().token,
            Some("invalid-value"),
        ),
        // 368 bytes up to the end of the oprf ticket's field, then 5 of the 8 of charges.
        ("cut inside charges", registered, |r| r.cut_to = Some(368 + 5), Some("truncated")),
        ("empty", registered, |r| r.cut_to = Some(0), Some("truncated")),
        (
            "two faults, the locked rule checked last: a locked record with remaining 1 and a byte after the last field",
            locked,
            |r| {
                r.head[3] = 1;
                r.trailing = vec![0];
            },
            Some("trailing-bytes"),
        ),
        (
            "two faults, front to back: remaining above budget and a registration record of 193 bytes",
            registered,
            |r| {
                r.head[3] = 6;
                r.registration.push(0);
            },
            Some("invalid-value"),
        ),
        (
            "two faults, the length's maximum before presence: a phantom with a 62-byte sealed key",
            phantom,
            |r| r.sealed_key = vec![0; 62],
            Some("too-long"),
        ),
    ];
    cases
        .into_iter()
        .map(|(comment, base, edit, error)| {
            let mut fields = base();
            edit(&mut fields);
            let mut case =
                run_record(&fields.bytes()).unwrap_or_else(|e| panic!("record {comment}: {e}"));
            assert_eq!(case.get("error").and_then(Value::as_str), error, "record {comment}");
            case["comment"] = json!(comment);
            case["flags"] = json!(["RecordDecoding"]);
            case
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Fleet secrets alone (spec 4.10.1)
// ---------------------------------------------------------------------------------------------

/// A secrets case from its bytes: the decoder accepts them and serialises them back to the same
/// bytes, or rejects them with a wire error code (spec 4.2).
fn run_secrets(secrets: &[u8]) -> Result<Value, String> {
    let mut case = json!({ "scenario": "secrets", "secrets": hex::encode(secrets) });
    match HsmSecrets::from_bytes(secrets) {
        Ok(decoded) => {
            expect_eq(
                "the secrets serialised again",
                hex::encode(&*decoded.to_bytes()),
                hex::encode(secrets),
            )?;
            case["result"] = json!("valid");
        }
        Err(e) => {
            case["result"] = json!("invalid");
            case["error"] = json!(e.code());
        }
    }
    Ok(case)
}

/// The fleet secrets cases: the secrets of a fleet set up from seeded draws, changed one rule
/// at a time in the order spec 4.10.1 checks them.
fn secrets_cases() -> Vec<Value> {
    let mut draws = Draws::new(Source::Derive("vault/secrets".into()));
    draws.begin("hsm.setup");
    let base = HsmSecrets::generate(&mut draws, FLEET_ID).to_bytes().to_vec();
    // Offsets in `base`: the fleet id, then the OPAQUE setup (oprf_seed [64] || ake_private [32]
    // || dummy_public [32]), ticket_key [32], count, key id, X25519 key [32].
    let setup = 1 + 2 + FLEET_ID.len();
    let (ake, dummy, count) = (setup + 64, setup + 96, setup + 128 + 32);
    expect_eq("secrets length", base.len(), count + 1 + 33).expect("the layout of spec 4.10.1");
    let second_key = draw("vault/secrets/second-channel-key", 32);
    let with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = base.clone();
        edit(&mut bytes);
        bytes
    };
    let longer_fleet = |len: usize| {
        with(&|b: &mut Vec<u8>| {
            let fleet = draw("vault/secrets/fleet-id", len);
            let len = u16::try_from(len).expect("short").to_be_bytes();
            b.splice(1..setup, len.into_iter().chain(fleet));
        })
    };
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        ("the secrets of a fleet with one channel key, id 1", base.clone(), None),
        (
            "two channel keys, ids 1 and 2",
            with(&|b| {
                b[count] = 2;
                b.push(2);
                b.extend_from_slice(&second_key);
            }),
            None,
        ),
        ("a fleet id of 64 bytes", longer_fleet(64), None),
        ("a first byte of 2", with(&|b| b[0] = 2), Some("invalid-value")),
        ("a fleet id of 65 bytes", longer_fleet(65), Some("too-long")),
        (
            "ake_private not canonical (32 bytes of ff)",
            with(&|b| b[ake..ake + 32].fill(0xff)),
            Some("invalid-value"),
        ),
        ("ake_private zero", with(&|b| b[ake..ake + 32].fill(0)), Some("invalid-value")),
        (
            "dummy_public not a valid element (32 bytes of ff)",
            with(&|b| b[dummy..dummy + 32].fill(0xff)),
            Some("invalid-value"),
        ),
        (
            "dummy_public the identity",
            with(&|b| b[dummy..dummy + 32].fill(0)),
            Some("invalid-value"),
        ),
        ("count 0, the key after it left in place", with(&|b| b[count] = 0), Some("invalid-value")),
        (
            "a key id twice, the second one's key missing: reported when the id is read",
            with(&|b| {
                b[count] = 2;
                b.push(1);
            }),
            Some("invalid-value"),
        ),
        ("count 2 and one key", with(&|b| b[count] = 2), Some("truncated")),
        ("one byte after the last key", with(&|b| b.push(0)), Some("trailing-bytes")),
        ("cut inside ticket_key", with(&|b| b.truncate(count - 1)), Some("truncated")),
        ("empty", Vec::new(), Some("truncated")),
    ];
    cases
        .into_iter()
        .map(|(comment, bytes, error)| {
            let mut case = run_secrets(&bytes).unwrap_or_else(|e| panic!("secrets {comment}: {e}"));
            assert_eq!(case.get("error").and_then(Value::as_str), error, "secrets {comment}");
            case["comment"] = json!(comment);
            case["flags"] = json!(["SecretsDecoding"]);
            case
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Generation and verification
// ---------------------------------------------------------------------------------------------

struct Journey<'a> {
    scenario: &'a str,
    comment: &'a str,
    flags: &'a [&'a str],
    account: &'a [u8],
    budget: u8,
    password: &'a [u8],
    other_password: Option<&'a [u8]>,
    tamper: Option<Value>,
    /// The profile of the vault's policy.
    ksf: KsfProfile,
}

impl Journey<'_> {
    fn case(&self, slug: &str) -> Value {
        let mut config = suite_config();
        for (field, value) in [
            ("ksfProfile", json!(self.ksf.code())),
            ("ksfParams", json!(ksf_params(self.ksf))),
            ("fleetId", json!(hex::encode(FLEET_ID))),
            ("fleetKeyId", json!(1)),
            ("accountId", json!(hex::encode(self.account))),
            ("budget", json!(self.budget)),
            ("now", json!(NOW)),
            ("sessionLifetime", json!(300)),
            ("tokenLifetime", json!(300)),
        ] {
            config[field] = value;
        }
        let seed = format!("vault/{slug}");
        let mut inputs = json!({
            "seed": seed,
            "password": hex::encode(self.password),
            "backupKey": hex::encode(draw(&format!("{seed}/K"), 32)),
        });
        if let Some(p) = self.other_password {
            inputs["otherPassword"] = json!(hex::encode(p));
        }
        if let Some(t) = &self.tamper {
            match t.get("otherAccountId") {
                Some(other) => inputs["otherAccountId"] = other.clone(),
                None => inputs["tamper"] = t.clone(),
            }
        }
        let mut case = run_journey(self.scenario, &config, &inputs, Source::Derive(seed))
            .unwrap_or_else(|e| panic!("vault vector {slug}: {e}"));
        case["comment"] = json!(self.comment);
        case["flags"] = json!(self.flags);
        case
    }
}

/// Builds the vector file.
pub fn generate() -> Value {
    let journey = |scenario, comment, flags, account, budget, other_password| Journey {
        scenario,
        comment,
        flags,
        account,
        budget,
        password: b"correct horse battery staple",
        other_password,
        tamper: None,
        ksf: KsfProfile::Fast,
    };
    let valid = [
        journey(
            "register-login",
            "register, then log in and recover K",
            &["Registration", "Login", "UnseenVersion"][..],
            &b"account-1"[..],
            10,
            None,
        ),
        journey(
            "wrong-password",
            "one wrong password: KE2, then the client stops",
            &["Registration", "WrongPassword"],
            b"account-2",
            5,
            Some(&b"Tr0ub4dor&3"[..]),
        ),
        journey(
            "lockout",
            "budget 2: two wrong passwords spend it, a third wrong KE1 is refused as Exhausted while they are in flight; 301 s later the right password's KE1 locks the account and erases K",
            &["Registration", "WrongPassword", "Lockout"],
            b"account-3",
            2,
            Some(&b"Tr0ub4dor&3"[..]),
        ),
        journey(
            "unknown-account",
            "KE1 for an account nobody registered: fake KE2, phantom record",
            &["UnknownAccount", "WrongPassword", "UnseenVersion"],
            b"account-4",
            3,
            None,
        ),
        journey(
            "change-password",
            "log in, change the password with the login's token keeping K, log in with the new one",
            &["Registration", "Login", "PasswordChange"],
            b"account-5",
            5,
            Some(&b"new password, same K"[..]),
        ),
        journey(
            "register-start-twice",
            "one RegisterStart envelope sent twice: each RegisterChallenge evaluates the blinded element under its own fresh OPRF seed (different evaluations); the client finishes with the second, and the login evaluates under that registration's seed",
            &["Registration", "FreshOprfKey", "Login"],
            b"account-11",
            5,
            None,
        ),
        journey(
            "ke1-retry",
            "the same KE1 envelope twice: charged once, two KE2 for one attempt; the login finishes on the second",
            &["Registration", "Login", "Ke1Retry"],
            b"account-6",
            5,
            None,
        ),
    ];
    let journeys: Vec<Value> = valid.iter().map(|j| j.case(j.scenario)).collect();

    let account = b"account-7";
    let enc_at = 1 + 1 + 2 + account.len();
    let tampered = [
        ("version byte changed to 2", json!({ "offset": 0, "xor": 3 })),
        ("key id changed to 2", json!({ "offset": 1, "xor": 3 })),
        ("account id changed", json!({ "offset": enc_at - 1, "xor": 1 })),
        ("enc changed", json!({ "offset": enc_at, "xor": 0x80 })),
        ("ciphertext changed", json!({ "offset": enc_at + 32 + 5, "xor": 1 })),
        // The last byte of a KE1 envelope: the tag of 97 bytes of LoginStart.
        ("tag changed", json!({ "offset": enc_at + 32 + 97 + 16 - 1, "xor": 1 })),
        ("cut inside enc", json!({ "truncateTo": enc_at + 16 })),
    ];
    let mut rejected = Vec::new();
    for (i, (comment, how)) in tampered.into_iter().enumerate() {
        let j = Journey {
            tamper: Some(how),
            ..journey("tampered-envelope", comment, &["ModifiedEnvelope"], account, 5, None)
        };
        rejected.push(j.case(&format!("tampered-envelope/{i}")));
    }
    for j in [
        journey(
            "replayed-ke3",
            "the KE3 envelope of a successful login, sent again",
            &["Registration", "Login", "ReplayedKe3"],
            b"account-8",
            5,
            None,
        ),
        Journey {
            tamper: Some(json!({ "offset": 20, "xor": 1 })),
            ..journey(
                "wrong-ticket",
                "KE3 with its ticket damaged",
                &["Registration", "WrongTicket", "UnchargedRefusal"],
                b"account-9",
                5,
                None,
            )
        },
        journey(
            "swapped-ticket",
            "two logins; the first KE3 is sent with the second login's ticket",
            &["Registration", "WrongTicket"],
            b"account-10",
            5,
            None,
        ),
        journey(
            "expired-registration-ticket",
            "RegisterFinish 301 s after RegisterStart: the registration ticket expired",
            &["RegistrationTicket", "UnchargedRefusal"],
            b"account-12",
            5,
            None,
        ),
        Journey {
            tamper: Some(json!({ "otherAccountId": hex::encode(b"account-13-other") })),
            ..journey(
                "foreign-registration-ticket",
                "RegisterFinish carrying the registration ticket the vault issued for another account",
                &["RegistrationTicket"],
                b"account-13",
                5,
                None,
            )
        },
        journey(
            "re-register-without-token",
            "a second registration of a registered account without a login token: RegisterStart is answered as for any account (under a fresh seed), RegisterFinish is refused as NotAuthorised with remaining 0",
            &["Registration", "ReRegistration", "UnchargedRefusal"],
            b"account-14",
            5,
            Some(&b"attacker's guess"[..]),
        ),
        journey(
            "replay-after-delete",
            "register, log in, delete; the first RegisterFinish envelope replayed: the deleted record's tombstone keeps its version, so the replay is stale",
            &["Registration", "Login", "Delete", "DeleteReplay", "UnchargedRefusal"],
            b"account-15",
            5,
            None,
        ),
    ] {
        rejected.push(j.case(j.scenario));
    }

    let channel_case = |slug: &str,
                        comment: &str,
                        flags: &[&str],
                        request: &[u8],
                        response: &[u8],
                        extra: Value| {
        channel_vector(b"account-channel", slug, comment, flags, request, response, extra)
    };
    let delete = Request::Delete { token: [0x42; 16] }.encode();
    let deleted = Response::Deleted.encode();
    let long = draw("vault/channel/long", 600);
    let channel_cases = vec![
        channel_case(
            "delete",
            "a Delete request and its Deleted response",
            &["Channel"],
            &delete,
            &deleted,
            json!({}),
        ),
        channel_case("long", "600 bytes each way", &["Channel"], &long, &long[..300], json!({})),
        channel_case("empty", "empty plaintexts both ways", &["Channel"], b"", b"", json!({})),
        channel_case(
            "modified-response",
            "the response's last byte changed",
            &["Channel", "ModifiedResponse"],
            &delete,
            &deleted,
            json!({ "tamperResponse": { "offset": 32 + 1 + 16 - 1, "xor": 1 } }),
        ),
        channel_case(
            "wrong-fleet",
            "opened by an HSM of another fleet",
            &["Channel", "WrongFleet"],
            &delete,
            &deleted,
            json!({ "hsmFleetId": hex::encode(b"another.fleet.example") }),
        ),
    ];
    let mut groups = vec![
        json!({ "type": "Journey", "tests": journeys }),
        json!({ "type": "Rejected", "tests": rejected }),
        json!({ "type": "Channel", "tests": channel_cases }),
    ];
    // Cases added later come in groups of their own after these, so that the tcIds above
    // never move; each has its own seed, so no earlier case's draws change.
    groups.extend(later_groups());
    groups.push(json!({ "type": "Record", "tests": record_cases() }));
    groups.push(json!({ "type": "Secrets", "tests": secrets_cases() }));
    // The production profile: about 7 s per Argon2id evaluation in a debug build.
    let mobile = Journey {
        scenario: "register-login",
        comment: "the Mobile profile (code 1), as deployed: register, then log in and recover K",
        flags: &["Registration", "Login", "MobileProfile"],
        account: b"account-32",
        budget: 10,
        password: b"correct horse battery staple",
        other_password: None,
        tamper: None,
        ksf: KsfProfile::Mobile,
    };
    groups.push(json!({ "type": "Journey", "tests": [mobile.case("register-login-mobile")] }));
    number(&mut groups);
    envelope(ALGORITHM, HEADER, NOTES, groups)
}

/// A case of the sealed channel alone, for `account`.
fn channel_vector(
    account: &[u8],
    slug: &str,
    comment: &str,
    flags: &[&str],
    request: &[u8],
    response: &[u8],
    extra: Value,
) -> Value {
    let config = json!({
        "hpke": "DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM",
        "fleetId": hex::encode(FLEET_ID),
        "fleetKeyId": 1,
        "accountId": hex::encode(account),
    });
    let mut inputs = json!({
        "fleetKeyIkm": hex::encode(draw("vault/channel/ikmR", 32)),
        "ikmE": hex::encode(draw(&format!("vault/channel/{slug}/ikmE"), 32)),
        "responseNonce": hex::encode(draw(&format!("vault/channel/{slug}/response-nonce"), 32)),
        "requestPlaintext": hex::encode(request),
        "responsePlaintext": hex::encode(response),
    });
    for (k, v) in extra.as_object().expect("an object") {
        inputs[k] = v.clone();
    }
    let mut case = run_channel(&config, &inputs).unwrap_or_else(|e| panic!("channel {slug}: {e}"));
    case["comment"] = json!(comment);
    case["flags"] = json!(flags);
    case
}

/// The groups added after the first 26 cases (issue 13): the rules of sections 4.4, 4.7, 4.8
/// and 4.10.2 those did not pin.
fn later_groups() -> Vec<Value> {
    let journey = |scenario, comment, flags, account, budget, other_password| Journey {
        scenario,
        comment,
        flags,
        account,
        budget,
        password: b"correct horse battery staple",
        other_password,
        tamper: None,
        ksf: KsfProfile::Fast,
    };
    let channel_case = channel_vector;
    const LONG_ACCOUNT: &[u8; 64] =
        b"account-16-is-sixty-four-bytes-long-the-most-an-account-id-holds";
    let valid = [
        journey(
            "register-login",
            "an account id of 64 bytes, the most an envelope carries: register, then log in and recover K",
            &["Registration", "Login", "EnvelopeBounds"][..],
            LONG_ACCOUNT,
            10,
            None,
        ),
        journey(
            "login-ticket-at-expiry",
            "the KE3 arrives 300 s after its KE1, at the ticket's not_after: still accepted",
            &["Registration", "Login", "LoginTicketExpiry"],
            b"account-17",
            5,
            None,
        ),
        journey(
            "delete-at-token-expiry",
            "the Delete arrives 300 s after the login, at the token's not_after: still accepted",
            &["Registration", "Login", "Delete", "TokenExpiry"],
            b"account-18",
            5,
            None,
        ),
        journey(
            "phantom-any-token",
            "KE1 for an unknown account leaves a phantom; a registration whose RegisterFinish carries a made-up token is stored: a phantom's token is not looked at",
            &["UnknownAccount", "WrongPassword", "Registration", "PhantomToken"],
            b"account-19",
            5,
            None,
        ),
    ];
    let slug = |j: &Journey<'_>| {
        if j.account == LONG_ACCOUNT {
            "register-login-64-byte-account".to_owned()
        } else {
            j.scenario.to_owned()
        }
    };
    let journeys: Vec<Value> = valid.iter().map(|j| j.case(&slug(j))).collect();

    let other = Some(&b"Tr0ub4dor&3"[..]);
    let rejected: Vec<Value> = [
        journey(
            "undecodable-request",
            "a registered account (5 left) sent plaintexts that do not decode: empty, kind 6, a KE1 with a byte after it, a KE1 one byte short, a RegisterStart with token flag 2, a LoginFinish ticket of 513 bytes, a Delete one byte short; each is invalid-request with remaining 0 and changes nothing",
            &["Registration", "InvalidRequest", "UnchargedRefusal"][..],
            b"account-20",
            5,
            None,
        ),
        journey(
            "invalid-register-start",
            "RegisterStart whose registration_request is not a canonical element, then the identity: invalid-request, nothing stored",
            &["InvalidRequest", "UnchargedRefusal"],
            b"account-21",
            5,
            None,
        ),
        journey(
            "invalid-ke1",
            "a registered account (5 left) sent a KE1 whose blinded element is not canonical, is the identity, then whose client key share is not canonical: invalid-request with remaining 0, not charged",
            &["Registration", "InvalidRequest", "UnchargedRefusal"],
            b"account-22",
            5,
            None,
        ),
        journey(
            "invalid-registration-record",
            "RegisterFinish whose registration record's client_public_key is not canonical, then the identity (ticket, version and profile good): invalid-request, nothing stored",
            &["InvalidRequest", "UnchargedRefusal"],
            b"account-23",
            5,
            None,
        ),
        journey(
            "non-policy-ksf-profile",
            "RegisterFinish naming profile 1 (mobile: known, not this vault's policy), 3, 0, then 255 with a stale record_version: invalid-request each time, the profile checked before the version, nothing stored",
            &["InvalidRequest", "UnchargedRefusal"],
            b"account-24",
            5,
            None,
        ),
        journey(
            "locked-undecodable",
            "budget 1, one wrong password, 301 s later a KE1 locks the account; then an empty plaintext and a KE1 with a byte after it: a request that does not decode is invalid-request even on a locked account",
            &["Registration", "WrongPassword", "Lockout", "InvalidRequest", "LockedAccount"],
            b"account-25",
            1,
            other,
        ),
        journey(
            "locked-invalid-element",
            "a locked account (as in the case before) sent requests that decode but hold invalid elements: a KE1 with a non-canonical blinded element, a RegisterStart with one, a RegisterFinish with profile 0 and an invalid record, a LoginFinish with a made-up ticket, a Delete with a made-up token: each is locked",
            &["Registration", "WrongPassword", "Lockout", "LockedAccount"],
            b"account-26",
            1,
            other,
        ),
        journey(
            "expired-login-ticket",
            "the KE3 arrives 301 s after its KE1, one second after the ticket's not_after: session-invalid carrying the record's remaining (4), the KE3 unchecked and the attempt removed",
            &["Registration", "LoginTicketExpiry"],
            b"account-27",
            5,
            None,
        ),
        journey(
            "expired-login-ticket-locks",
            "budget 1: the KE1 spends it, and its KE3 arrives after the ticket's not_after with nothing else live: the LoginFinish locks the account",
            &["Registration", "LoginTicketExpiry", "LoginFinishLock"],
            b"account-28",
            1,
            None,
        ),
        journey(
            "failed-ke3-locks",
            "budget 1: the KE1 spends it, and its KE3 (a byte changed, resealed) does not verify with nothing else live: the LoginFinish locks the account",
            &["Registration", "LoginFinishLock"],
            b"account-29",
            1,
            None,
        ),
        journey(
            "delete-not-authorised",
            "Delete with a made-up token for an account with no record, a phantom, a registered account holding no token, and one holding another; then the login's own Delete and the same envelope again, on the tombstone: not-authorised with remaining 0 each time",
            &["UnknownAccount", "WrongPassword", "Registration", "Login", "Delete", "DeleteRefused", "UnchargedRefusal"],
            b"account-30",
            5,
            None,
        ),
        journey(
            "delete-token-expired",
            "the Delete arrives 301 s after the login, one second after the token's not_after: not-authorised",
            &["Registration", "Login", "DeleteRefused", "TokenExpiry"],
            b"account-31",
            5,
            None,
        ),
    ]
    .iter()
    .map(|j| j.case(j.scenario))
    .collect();

    let max = draw("vault/channel/max/plaintext", 8192);
    let bound =
        |slug: &str, comment: &str, flags: &[&str], account: &[u8], len: usize, extra: Value| {
            channel_case(account, slug, comment, flags, &max[..len], &max[..len], extra)
        };
    let channel_cases = vec![
        bound(
            "max",
            "a 64-byte account id and 8192-byte plaintexts both ways: an envelope of 8308 bytes (ciphertext 8208) and a response of 8240, the largest that open",
            &["Channel", "EnvelopeBounds", "ResponseBounds"],
            LONG_ACCOUNT,
            8192,
            json!({}),
        ),
        bound(
            "ciphertext-too-long",
            "the largest envelope with one byte appended: 8209 bytes follow enc",
            &["Channel", "EnvelopeBounds"],
            LONG_ACCOUNT,
            8192,
            json!({ "tamperRequest": { "append": "00" } }),
        ),
        bound(
            "account-too-long",
            "the length of a 64-byte account id raised to 65",
            &["Channel", "EnvelopeBounds"],
            LONG_ACCOUNT,
            0,
            json!({ "tamperRequest": { "offset": 3, "xor": 0x40 ^ 65 } }),
        ),
        bound(
            "account-empty",
            "the length of the account id set to 0",
            &["Channel", "EnvelopeBounds"],
            b"account-channel",
            0,
            json!({ "tamperRequest": { "offset": 3, "xor": 15 } }),
        ),
        bound(
            "ciphertext-too-short",
            "an empty plaintext's envelope cut by one byte: 15 bytes follow enc",
            &["Channel", "EnvelopeBounds"],
            b"account-channel",
            0,
            json!({ "tamperRequest": { "truncateTo": 1 + 1 + 2 + 15 + 32 + 15 } }),
        ),
        bound(
            "response-too-long",
            "the largest response (8240 bytes) with one byte appended",
            &["Channel", "ResponseBounds"],
            b"account-channel",
            8192,
            json!({ "tamperResponse": { "append": "00" } }),
        ),
        bound(
            "response-too-short",
            "the response to an empty plaintext (48 bytes) cut by one byte",
            &["Channel", "ResponseBounds"],
            b"account-channel",
            0,
            json!({ "tamperResponse": { "truncateTo": 47 } }),
        ),
    ];
    vec![
        json!({ "type": "Journey", "tests": journeys }),
        json!({ "type": "Rejected", "tests": rejected }),
        json!({ "type": "Channel", "tests": channel_cases }),
    ]
}

/// Checks one case by replaying it.
pub fn verify_case(case: &Value) -> Result<(), String> {
    let scenario = case["scenario"].as_str().ok_or("no scenario")?;
    let mut found = if scenario == "channel" {
        run_channel(&case["config"], &case["inputs"])?
    } else if scenario == "record" {
        run_record(&hex_field(case, "record")?)?
    } else if scenario == "secrets" {
        run_secrets(&hex_field(case, "secrets")?)?
    } else {
        let recorded = case["inputs"]["draws"].as_array().ok_or("no inputs.draws")?;
        let mut queue = VecDeque::new();
        for d in recorded {
            let name = d["name"].as_str().ok_or("a draw without a name")?;
            queue.push_back((name.to_owned(), hex_field(d, "value")?));
        }
        let mut inputs = case["inputs"].clone();
        if let Some(map) = inputs.as_object_mut() {
            map.remove("draws");
        }
        run_journey(scenario, &case["config"], &inputs, Source::Replay(queue))?
    };
    for field in ["tcId", "comment", "flags"] {
        found[field] = case[field].clone();
    }
    if found != *case {
        let diff = [
            "result",
            "error",
            "config",
            "inputs",
            "intermediates",
            "outputs",
            "record",
            "secrets",
        ]
        .into_iter()
        .find(|f| found[*f] != case[*f])
        .unwrap_or("a top-level field");
        return Err(format!("the replay differs in {diff}"));
    }
    Ok(())
}
