//! Vectors for the replicated vault (spec chapter 7): `test-vectors/replication.json`.
//!
//! * commands (section 7.3): account, time and request, and the encoded command; commands a
//!   decoder must reject, with the error;
//! * sequences of commands applied in order to one account (section 7.4): after each, the
//!   decision and the stored record; the requests are real OPAQUE messages of a scripted
//!   client, so an implementation of the replica can replay the sequence and compare;
//! * the fleet's peer key and sealed peer messages (section 7.7).

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_vault::client::{Endpoint, Login, Registration};
use e2ee_backup_vault::hsm::{Command, Decision, Hsm, HsmConfig, HsmSecrets, RecordChange};
use e2ee_backup_vault::peer;
use e2ee_backup_vault::record::AccountRecord;
use e2ee_backup_vault::suite::KsfProfile;
use rand_core::{CryptoRng, RngCore};
use serde_json::{Value, json};

use crate::{draw, draw32, envelope, expect_eq, hex_field, number};

/// The `algorithm` of the file.
pub const ALGORITHM: &str = "e2ee-backups replicated vault";

const FLEET_ID: &[u8] = b"replication.vectors.example";
const ACCOUNT: &[u8] = b"+15550100";
const NOW: u64 = 1_800_000_000;

const NOTES: &[(&str, &str)] = &[
    ("Command", "A command (section 7.3): vec16(account) || now u64 || request."),
    ("CommandInvalid", "Bytes a command decoder must reject; error is the decoder's message."),
    (
        "Apply",
        "Commands applied in order to one account's record, starting with none (section 7.4). After each: the decision (kind, remaining, refusal, and the response plaintext of section 4.7 unless it is a KE2 still to compute) and the stored record (section 4.8), null when there is none.",
    ),
    ("PeerKey", "The peer key of the fleet whose secrets (section 4.10.1) are given."),
    ("PeerSeal", "A peer message sealed under the peer key with the given nonce and route."),
    ("PeerSealInvalid", "A sealed peer message that must not open."),
];

/// A generator over the vector draws: every value named after its purpose and position.
struct Draws {
    label: String,
    count: u64,
}

impl Draws {
    fn new(label: &str) -> Self {
        Self { label: label.to_owned(), count: 0 }
    }
}

impl RngCore for Draws {
    fn next_u32(&mut self) -> u32 {
        rand_core::impls::next_u32_via_fill(self)
    }

    fn next_u64(&mut self) -> u64 {
        rand_core::impls::next_u64_via_fill(self)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.copy_from_slice(&draw(&format!("{}/{}", self.label, self.count), dest.len()));
        self.count += 1;
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for Draws {}

/// The decision as the vectors record it.
fn decision_json(decision: &Decision) -> Value {
    json!({
        "kind": decision.kind(),
        "remaining": decision.remaining(),
        "refusal": decision.refusal().map(|(reason, _)| format!("{reason:?}")),
        "response": decision.response().map(|r| hex::encode(r.encode())),
    })
}

fn record_json(record: &Option<AccountRecord>) -> Value {
    record.as_ref().map_or(Value::Null, |r| json!(hex::encode(r.encode())))
}

/// One account's vault during generation: applies commands and keeps the steps.
struct Sequence {
    hsm: Hsm,
    endpoint: Endpoint,
    rng: Draws,
    record: Option<AccountRecord>,
    steps: Vec<Value>,
    secrets: Vec<u8>,
    config: HsmConfig,
}

impl Sequence {
    fn new(name: &str, budget: u8) -> Self {
        let mut rng = Draws::new(&format!("replication/{name}"));
        let secrets = HsmSecrets::generate(&mut rng, FLEET_ID);
        let (id, public) = secrets.public_keys()[0];
        let config = HsmConfig {
            budget,
            ksf_profile: KsfProfile::Fast,
            session_lifetime: 60,
            token_lifetime: 60,
        };
        let secrets_bytes = secrets.to_bytes().to_vec();
        let hsm = Hsm::new(secrets, config).expect("a valid policy");
        let endpoint = Endpoint::new(FLEET_ID, id, public).accepting_fast_ksf();
        Self { hsm, endpoint, rng, record: None, steps: Vec::new(), secrets: secrets_bytes, config }
    }

    /// Applies the request in `envelope` at `now`; the sealed response for the client.
    fn apply(&mut self, envelope: &[u8], now: u64) -> Vec<u8> {
        let opened = self.hsm.open(envelope).expect("the scripted client's requests open");
        let (command, pending) = opened.into_command(now);
        let command = command.expect("the scripted client's requests decode");
        let (change, decision) = self.hsm.apply(&command, self.record.clone());
        match change {
            Some(RecordChange::Put(record)) => self.record = Some(record),
            Some(RecordChange::Delete) => self.record = None,
            None => {}
        }
        self.steps.push(json!({
            "command": hex::encode(command.encode()),
            "decision": decision_json(&decision),
            "record": record_json(&self.record),
        }));
        self.hsm.seal(pending.reply(decision), &mut self.rng)
    }

    fn register(&mut self, password: &[u8], key: &BackupKey) {
        let endpoint = self.endpoint.clone();
        let (state, request) =
            Registration::start(&mut self.rng, &endpoint, ACCOUNT, password, None).unwrap();
        let response = self.apply(&request, NOW);
        let (state, request) = state.receive(&mut self.rng, &response, key).unwrap();
        let response = self.apply(&request, NOW);
        state.receive(&response).unwrap();
    }

    fn case(self, comment: &str) -> Value {
        json!({
            "comment": comment,
            "flags": ["Apply"],
            "result": "valid",
            "hsmSecrets": hex::encode(&self.secrets),
            "budget": self.config.budget,
            "ksfProfile": self.config.ksf_profile.code(),
            "sessionLifetime": self.config.session_lifetime,
            "tokenLifetime": self.config.token_lifetime,
            "steps": self.steps,
        })
    }
}

/// Wrong guesses until the account locks: a retried KE1 is not charged again, the last charged
/// attempt keeps the account `exhausted` until it expires, then a KE1 locks it.
fn lock_out() -> Value {
    let mut s = Sequence::new("lock-out", 2);
    let key = BackupKey::from_bytes(draw32("replication/lock-out/key"));
    s.register(b"correct horse", &key);
    let endpoint = s.endpoint.clone();
    let (_, first) = Login::start(&mut s.rng, &endpoint, ACCOUNT, b"guess 1").unwrap();
    s.apply(&first, NOW + 1);
    s.apply(&first, NOW + 2);
    for (i, now) in [(2, NOW + 3), (3, NOW + 4), (4, NOW + 100), (5, NOW + 101)] {
        let guess = format!("guess {i}");
        let (_, ke1) = Login::start(&mut s.rng, &endpoint, ACCOUNT, guess.as_bytes()).unwrap();
        s.apply(&ke1, now);
    }
    s.case("register; KE1; the same KE1 again; KE1; KE1 while one is live; KE1 after expiry; KE1 when locked")
}

/// A wrong guess, then the right password: the KE3 restores the budget, its replay is refused,
/// the token deletes the record, and an unknown account gets a phantom.
fn login_restores_budget() -> Value {
    let mut s = Sequence::new("login", 3);
    let key = BackupKey::from_bytes(draw32("replication/login/key"));
    s.register(b"correct horse", &key);
    let endpoint = s.endpoint.clone();
    let (_, wrong) = Login::start(&mut s.rng, &endpoint, ACCOUNT, b"wrong").unwrap();
    s.apply(&wrong, NOW + 1);
    let (state, ke1) = Login::start(&mut s.rng, &endpoint, ACCOUNT, b"correct horse").unwrap();
    let response = s.apply(&ke1, NOW + 2);
    let (state, ke3) = state.receive(&mut s.rng, &response).unwrap();
    let response = s.apply(&ke3, NOW + 3);
    let logged_in = state.receive(&response).unwrap();
    s.apply(&ke3, NOW + 4);
    let (state, delete) = logged_in.delete(&mut s.rng).unwrap();
    let response = s.apply(&delete, NOW + 5);
    state.receive(&response).unwrap();
    let (_, ke1) = Login::start(&mut s.rng, &endpoint, ACCOUNT, b"correct horse").unwrap();
    s.apply(&ke1, NOW + 6);
    s.case("register; wrong KE1; right KE1; KE3; KE3 replayed; delete; KE1 for the erased account")
}

fn command_cases() -> (Vec<Value>, Vec<Value>) {
    let mut s = Sequence::new("commands", 2);
    let endpoint = s.endpoint.clone();
    let (_, ke1) = Login::start(&mut s.rng, &endpoint, ACCOUNT, b"any").unwrap();
    let opened = s.hsm.open(&ke1).unwrap();
    let (command, _) = opened.into_command(NOW);
    let command = command.unwrap().encode();
    let account_len = 2 + ACCOUNT.len();
    let request = &command[account_len + 8..];
    let valid = vec![json!({
        "comment": "a KE1 at a given time",
        "flags": ["Command"],
        "result": "valid",
        "account": hex::encode(ACCOUNT),
        "now": NOW,
        "request": hex::encode(request),
        "command": hex::encode(&command),
    })];
    let invalid_case = |comment: &str, bytes: Vec<u8>| {
        let error = Command::decode(&bytes).expect_err("must be rejected").to_string();
        json!({
            "comment": comment, "flags": ["CommandInvalid"], "result": "invalid",
            "command": hex::encode(bytes), "error": error,
        })
    };
    let mut empty_account = vec![0, 0];
    empty_account.extend_from_slice(&command[account_len..]);
    let mut long_account = vec![0, 65];
    long_account.extend_from_slice(&[b'1'; 65]);
    long_account.extend_from_slice(&command[account_len..]);
    let mut unknown_kind = command[..account_len + 8].to_vec();
    unknown_kind.push(0x7f);
    let mut trailing = command.clone();
    trailing.push(0);
    let invalid = vec![
        invalid_case("empty account", empty_account),
        invalid_case("account of 65 bytes", long_account),
        invalid_case("ends inside now", command[..account_len + 4].to_vec()),
        invalid_case("no request", command[..account_len + 8].to_vec()),
        invalid_case("unknown request kind", unknown_kind),
        invalid_case("request cut short", command[..command.len() - 1].to_vec()),
        invalid_case("a byte after the request", trailing),
    ];
    (valid, invalid)
}

fn peer_cases() -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let mut rng = Draws::new("replication/peer");
    let secrets = HsmSecrets::generate(&mut rng, FLEET_ID);
    let key = secrets.peer_key();
    let keys = vec![json!({
        "comment": "the peer key of a fleet",
        "flags": ["PeerKey"],
        "result": "valid",
        "hsmSecrets": hex::encode(secrets.to_bytes().as_slice()),
        "peerKey": hex::encode(key.as_ref()),
    })];
    let mut seals = Vec::new();
    let mut sealed_append = Vec::new();
    for (route, message) in [("append", draw("replication/peer/append", 40)), ("vote", Vec::new())]
    {
        let nonce: [u8; peer::NONCE_LEN] =
            draw(&format!("replication/peer/{route}/nonce"), peer::NONCE_LEN).try_into().unwrap();
        let sealed = peer::seal_with_nonce(&key, nonce, route, &message);
        if route == "append" {
            sealed_append.clone_from(&sealed);
        }
        seals.push(json!({
            "comment": format!("a {route} message"),
            "flags": ["PeerSeal"],
            "result": "valid",
            "peerKey": hex::encode(key.as_ref()),
            "nonce": hex::encode(nonce),
            "route": route,
            "message": hex::encode(&message),
            "sealed": hex::encode(&sealed),
        }));
    }
    let invalid_case = |comment: &str, route: &str, sealed: &[u8]| {
        json!({
            "comment": comment, "flags": ["PeerSealInvalid"], "result": "invalid",
            "peerKey": hex::encode(key.as_ref()), "route": route,
            "sealed": hex::encode(sealed), "error": "does-not-open",
        })
    };
    let mut flipped = sealed_append.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    let invalid = vec![
        invalid_case("sealed for another route", "vote", &sealed_append),
        invalid_case("tag changed", "append", &flipped),
        invalid_case("shorter than nonce and tag", "append", &sealed_append[..27]),
    ];
    (keys, seals, invalid)
}

/// Builds the vector file.
pub fn generate() -> Value {
    let (commands, invalid_commands) = command_cases();
    let (keys, seals, invalid_seals) = peer_cases();
    let mut groups = vec![
        json!({ "type": "Command", "tests": commands }),
        json!({ "type": "CommandInvalid", "tests": invalid_commands }),
        json!({ "type": "Apply", "tests": [lock_out(), login_restores_budget()] }),
        json!({ "type": "PeerKey", "tests": keys }),
        json!({ "type": "PeerSeal", "tests": seals }),
        json!({ "type": "PeerSealInvalid", "tests": invalid_seals }),
    ];
    number(&mut groups);
    envelope(
        ALGORITHM,
        &[
            "Vectors for the replicated vault: spec chapter 7.",
            "Byte strings are lowercase hexadecimal; times are Unix seconds.",
        ],
        NOTES,
        groups,
    )
}

fn u64_of(case: &Value, field: &str) -> Result<u64, String> {
    case[field].as_u64().ok_or_else(|| format!("missing field {field}"))
}

fn key32(case: &Value, field: &str) -> Result<[u8; 32], String> {
    hex_field(case, field)?.try_into().map_err(|_| format!("{field} is not 32 bytes"))
}

fn verify_apply(case: &Value) -> Result<(), String> {
    let secrets =
        HsmSecrets::from_bytes(&hex_field(case, "hsmSecrets")?).map_err(|e| e.to_string())?;
    let byte = |field| u8::try_from(u64_of(case, field)?).map_err(|_| format!("{field} too big"));
    let config = HsmConfig {
        budget: byte("budget")?,
        ksf_profile: KsfProfile::from_code(byte("ksfProfile")?).ok_or("unknown ksfProfile")?,
        session_lifetime: u64_of(case, "sessionLifetime")?,
        token_lifetime: u64_of(case, "tokenLifetime")?,
    };
    let hsm = Hsm::new(secrets, config).map_err(|e| e.to_string())?;
    let mut record: Option<AccountRecord> = None;
    for (i, step) in case["steps"].as_array().ok_or("no steps")?.iter().enumerate() {
        let command =
            Command::decode(&hex_field(step, "command")?).map_err(|e| format!("step {i}: {e}"))?;
        let (change, decision) = hsm.apply(&command, record.clone());
        match change {
            Some(RecordChange::Put(new)) => record = Some(new),
            Some(RecordChange::Delete) => record = None,
            None => {}
        }
        expect_eq(&format!("step {i} decision"), &decision_json(&decision), &step["decision"])?;
        expect_eq(&format!("step {i} record"), &record_json(&record), &step["record"])?;
    }
    Ok(())
}

/// Checks one case.
pub fn verify_case(case: &Value) -> Result<(), String> {
    let flag = case["flags"][0].as_str().ok_or("no flag")?;
    match flag {
        "Command" => {
            let command =
                Command::decode(&hex_field(case, "command")?).map_err(|e| e.to_string())?;
            expect_eq(
                "account",
                hex::encode(command.account()),
                hex::encode(hex_field(case, "account")?),
            )?;
            expect_eq("now", command.now(), u64_of(case, "now")?)?;
            expect_eq("encoding", command.encode(), hex_field(case, "command")?)
        }
        "CommandInvalid" => match Command::decode(&hex_field(case, "command")?) {
            Ok(_) => Err("a command that must be rejected decodes".into()),
            Err(e) => {
                expect_eq("error", e.to_string().as_str(), case["error"].as_str().unwrap_or(""))
            }
        },
        "Apply" => verify_apply(case),
        "PeerKey" => {
            let secrets = HsmSecrets::from_bytes(&hex_field(case, "hsmSecrets")?)
                .map_err(|e| e.to_string())?;
            expect_eq("peerKey", secrets.peer_key().to_vec(), hex_field(case, "peerKey")?)
        }
        "PeerSeal" => {
            let key = key32(case, "peerKey")?;
            let nonce: [u8; peer::NONCE_LEN] =
                hex_field(case, "nonce")?.try_into().map_err(|_| "nonce is not 12 bytes")?;
            let route = case["route"].as_str().ok_or("no route")?;
            let message = hex_field(case, "message")?;
            let sealed = hex_field(case, "sealed")?;
            expect_eq("sealed", &peer::seal_with_nonce(&key, nonce, route, &message), &sealed)?;
            let opened = peer::open(&key, route, &sealed).ok_or("does not open")?;
            expect_eq("opened", opened.to_vec(), message)
        }
        "PeerSealInvalid" => {
            let key = key32(case, "peerKey")?;
            let route = case["route"].as_str().ok_or("no route")?;
            match peer::open(&key, route, &hex_field(case, "sealed")?) {
                Some(_) => Err("a message that must not open opens".into()),
                None => Ok(()),
            }
        }
        other => Err(format!("unknown flag {other}")),
    }
}
