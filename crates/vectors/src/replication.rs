//! Vectors for the replicated vault (spec chapter 7): `test-vectors/replication.json`.
//!
//! * commands (section 7.3): account, time and request, and the encoded command; commands a
//!   decoder must reject, with the error;
//! * sequences of commands applied in order to one account (section 7.4): after each, the
//!   decision and the stored record; the requests are real OPAQUE messages of a scripted
//!   client, so an implementation of the replica can replay the sequence and compare;
//! * the fleet's peer key and sealed peer messages (section 7.7).
//!
//! One file, though over 700 lines: the generator and the verifier of `replication.json` share
//! one scripted client and one driver, and each case is written next to the check that replays it.

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_vault::{
    AccountId, AccountRecord, Command, Decision, Endpoint, FleetId, Hsm, HsmConfig, HsmSecrets,
    KsfProfile, Login, RecordChange, Registration, peer,
};
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
    (
        "CommandInvalid",
        "Bytes a command decoder must reject; error is the code of section 4.2 (truncated, too-long, invalid-value, trailing-bytes).",
    ),
    (
        "Apply",
        "Commands applied in order to one account's record, starting with none (section 7.4). After each: the decision (kind, remaining, refusal, and the response plaintext of section 4.7 unless it is a KE2 still to compute) and the stored record (section 4.8), null when there is none.",
    ),
    (
        "PeerKey",
        "The peer key (section 7.7) and the seed of the peer TLS key (section 7.7.1) of the fleet whose secrets (section 4.10.1) are given.",
    ),
    (
        "PeerSeal",
        "A peer request and its reply (section 7.7): headers, nonces and messages, the sealed bytes, the digest the reply is bound to; the receiver `me` accepts the request at `nowMs`.",
    ),
    (
        "PeerSealInvalid",
        "A peer message that must be refused, with the error of section 7.7: a request opened by node `me` at `nowMs` after accepting `acceptedBefore`, or a reply opened by the sender of `sealedRequest`.",
    ),
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
        "refusal": decision.refusal().map(|(reason, _)| reason.name()),
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
        let secrets = HsmSecrets::generate(&mut rng, FleetId::from_static(FLEET_ID));
        let (id, public) = secrets.public_keys()[0];
        let config = HsmConfig {
            budget,
            ksf_profile: KsfProfile::Fast,
            session_lifetime: 60,
            token_lifetime: 60,
        };
        let secrets_bytes = secrets.to_bytes().to_vec();
        let hsm = Hsm::new(secrets, config).expect("a valid policy");
        let endpoint =
            Endpoint::new(FleetId::from_static(FLEET_ID), id, public).accepting_fast_ksf();
        Self { hsm, endpoint, rng, record: None, steps: Vec::new(), secrets: secrets_bytes, config }
    }

    /// Applies the request in `envelope` at `now`; the sealed response for the client.
    fn apply(&mut self, envelope: &[u8], now: u64) -> Vec<u8> {
        let opened = self.hsm.open(envelope).expect("the scripted client's requests open");
        let (command, pending) = opened.into_command(now);
        let command = command.expect("the scripted client's requests decode");
        let decision = apply(&self.hsm, &command, &mut self.record);
        self.steps.push(json!({
            "command": hex::encode(command.encode()),
            "decision": decision_json(&decision),
            "record": record_json(&self.record),
        }));
        self.hsm.seal(pending.reply(decision), &mut self.rng)
    }

    fn register(&mut self, password: &[u8], key: &BackupKey) {
        let endpoint = self.endpoint.clone();
        let (state, request) = Registration::start(
            &mut self.rng,
            &endpoint,
            AccountId::from_static(ACCOUNT),
            password,
            None,
        )
        .unwrap();
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
    let (_, first) =
        Login::start(&mut s.rng, &endpoint, AccountId::from_static(ACCOUNT), b"guess 1").unwrap();
    s.apply(&first, NOW + 1);
    s.apply(&first, NOW + 2);
    for (i, now) in [(2, NOW + 3), (3, NOW + 4), (4, NOW + 100), (5, NOW + 101)] {
        let guess = format!("guess {i}");
        let (_, ke1) =
            Login::start(&mut s.rng, &endpoint, AccountId::from_static(ACCOUNT), guess.as_bytes())
                .unwrap();
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
    let (_, wrong) =
        Login::start(&mut s.rng, &endpoint, AccountId::from_static(ACCOUNT), b"wrong").unwrap();
    s.apply(&wrong, NOW + 1);
    let (state, ke1) =
        Login::start(&mut s.rng, &endpoint, AccountId::from_static(ACCOUNT), b"correct horse")
            .unwrap();
    let response = s.apply(&ke1, NOW + 2);
    let (state, ke3) = state.receive(&mut s.rng, &response).unwrap();
    let response = s.apply(&ke3, NOW + 3);
    let logged_in = state.receive(&response).unwrap();
    s.apply(&ke3, NOW + 4);
    let (state, delete) = logged_in.delete(&mut s.rng).unwrap();
    let response = s.apply(&delete, NOW + 5);
    state.receive(&response).unwrap();
    let (_, ke1) =
        Login::start(&mut s.rng, &endpoint, AccountId::from_static(ACCOUNT), b"correct horse")
            .unwrap();
    s.apply(&ke1, NOW + 6);
    s.case("register; wrong KE1; right KE1; KE3; KE3 replayed; delete; KE1 for the erased account")
}

fn command_cases() -> (Vec<Value>, Vec<Value>) {
    let mut s = Sequence::new("commands", 2);
    let endpoint = s.endpoint.clone();
    let (_, ke1) =
        Login::start(&mut s.rng, &endpoint, AccountId::from_static(ACCOUNT), b"any").unwrap();
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
        let error = Command::decode(&bytes).expect_err("must be rejected").code();
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

/// The clock of the peer vectors, in milliseconds.
const PEER_NOW_MS: u64 = NOW * 1000;

/// One request and its reply, sealed with named draws.
struct PeerExchange {
    route: &'static str,
    request: peer::Header,
    request_nonce: [u8; peer::NONCE_LEN],
    message: Vec<u8>,
    sealed_request: Vec<u8>,
    reply: peer::Header,
    reply_nonce: [u8; peer::NONCE_LEN],
    reply_message: Vec<u8>,
    sealed_reply: Vec<u8>,
}

impl PeerExchange {
    fn new(key: &[u8; 32], name: &str, route: &'static str, from: u64, to: u64) -> Self {
        let label = |what: &str| format!("replication/peer/{name}/{what}");
        let nonce = |what: &str| -> [u8; peer::NONCE_LEN] {
            draw(&label(what), peer::NONCE_LEN).try_into().expect("a nonce")
        };
        let request = peer::Header {
            direction: peer::Direction::Request,
            from,
            to,
            sent_at_ms: PEER_NOW_MS,
            message_id: draw(&label("message-id"), peer::MESSAGE_ID_LEN).try_into().expect("16"),
        };
        let message = if route == "vote" { Vec::new() } else { draw(&label("message"), 40) };
        let request_nonce = nonce("request-nonce");
        let sealed_request = peer::seal_with(key, route, &request, &[], request_nonce, &message);
        // The node that answers an operator's request to any replica is node 2.
        let replier = if to == peer::ANY_REPLICA { 2 } else { to };
        let reply = peer::Header {
            direction: peer::Direction::Reply,
            from: replier,
            to: from,
            sent_at_ms: PEER_NOW_MS + 250,
            message_id: request.message_id,
        };
        let reply_message = draw(&label("reply"), 9);
        let reply_nonce = nonce("reply-nonce");
        let digest = sha256(&sealed_request);
        let sealed_reply =
            peer::seal_with(key, route, &reply, &digest, reply_nonce, &reply_message);
        Self {
            route,
            request,
            request_nonce,
            message,
            sealed_request,
            reply,
            reply_nonce,
            reply_message,
            sealed_reply,
        }
    }

    fn to_json(&self, comment: &str, key: &[u8; 32], now_ms: u64) -> Value {
        json!({
            "comment": comment,
            "flags": ["PeerSeal"],
            "result": "valid",
            "peerKey": hex::encode(key),
            "route": self.route,
            "request": {
                "from": self.request.from,
                "to": self.request.to,
                "sentAtMs": self.request.sent_at_ms,
                "messageId": hex::encode(self.request.message_id),
                "nonce": hex::encode(self.request_nonce),
                "message": hex::encode(&self.message),
                "sealed": hex::encode(&self.sealed_request),
            },
            "receiver": { "me": self.reply.from, "nowMs": now_ms },
            "requestDigest": hex::encode(sha256(&self.sealed_request)),
            "reply": {
                "from": self.reply.from,
                "sentAtMs": self.reply.sent_at_ms,
                "nonce": hex::encode(self.reply_nonce),
                "message": hex::encode(&self.reply_message),
                "sealed": hex::encode(&self.sealed_reply),
            },
        })
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::{Digest as _, Sha256};
    Sha256::digest(bytes).into()
}

fn peer_cases() -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let mut rng = Draws::new("replication/peer");
    let secrets = HsmSecrets::generate(&mut rng, FleetId::from_static(FLEET_ID));
    let key = secrets.peer_key();
    let key: &[u8; 32] = &key;
    let keys = vec![json!({
        "comment": "the peer key of a fleet",
        "flags": ["PeerKey"],
        "result": "valid",
        "hsmSecrets": hex::encode(secrets.to_bytes().as_slice()),
        "peerKey": hex::encode(key),
        "peerTlsSeed": hex::encode(*secrets.peer_tls_seed()),
    })];
    let append = PeerExchange::new(key, "append", "append", 1, 2);
    let earlier = PeerExchange::new(key, "earlier-append", "append", 1, 2);
    let vote = PeerExchange::new(key, "vote", "vote", 3, 1);
    let members = PeerExchange::new(key, "members", "members", peer::OPERATOR, peer::ANY_REPLICA);
    let to_three = PeerExchange::new(key, "append-to-3", "append", 1, 3);
    let window = peer::REPLAY_WINDOW_MS;
    let seals = vec![
        append.to_json("an append request from node 1 to node 2, and its reply", key, PEER_NOW_MS),
        vote.to_json(
            "a vote request with an empty message, received at the end of the window",
            key,
            PEER_NOW_MS + window,
        ),
        members.to_json(
            "an operator's members request to any replica, received at the start of the window",
            key,
            PEER_NOW_MS - window,
        ),
    ];

    let request_case = |comment: &str,
                        route: &str,
                        sealed: &[u8],
                        me: u64,
                        now_ms: u64,
                        accepted_before: &[&[u8]],
                        error: peer::PeerError| {
        json!({
            "comment": comment, "flags": ["PeerSealInvalid"], "result": "invalid",
            "peerKey": hex::encode(key), "route": route, "kind": "request",
            "sealed": hex::encode(sealed), "me": me, "nowMs": now_ms,
            "acceptedBefore": accepted_before.iter().map(hex::encode).collect::<Vec<_>>(),
            "error": error.code(),
        })
    };
    let reply_case =
        |comment: &str, sealed_request: &[u8], sealed: &[u8], error: peer::PeerError| {
            json!({
                "comment": comment, "flags": ["PeerSealInvalid"], "result": "invalid",
                "peerKey": hex::encode(key), "route": "append", "kind": "reply",
                "sealedRequest": hex::encode(sealed_request), "sealed": hex::encode(sealed),
                "error": error.code(),
            })
        };
    let request = &append.sealed_request;
    let changed = |bytes: &[u8], at: usize, xor: u8| {
        let mut out = bytes.to_vec();
        out[at] ^= xor;
        out
    };
    let last = request.len() - 1;
    let short = &request[..peer::HEADER_LEN + peer::NONCE_LEN + peer::TAG_LEN - 1];
    // The earlier reply, given this request's message id: the digest still refuses it.
    let mut relabelled = earlier.sealed_reply.clone();
    relabelled[25..peer::HEADER_LEN].copy_from_slice(&append.request.message_id);
    let reply_to_three = peer::seal_with(
        key,
        "append",
        &peer::Header { to: 3, ..append.reply },
        &sha256(request),
        append.reply_nonce,
        &append.reply_message,
    );
    use peer::PeerError as E;
    let now = PEER_NOW_MS;
    let invalid = vec![
        request_case("sealed for another route", "vote", request, 2, now, &[], E::DoesNotOpen),
        request_case(
            "tag changed",
            "append",
            &changed(request, last, 1),
            2,
            now,
            &[],
            E::DoesNotOpen,
        ),
        request_case(
            "from changed in the header",
            "append",
            &changed(request, 8, 1),
            2,
            now,
            &[],
            E::DoesNotOpen,
        ),
        request_case(
            "shorter than header, nonce and tag",
            "append",
            short,
            2,
            now,
            &[],
            E::Malformed,
        ),
        request_case(
            "direction code 3",
            "append",
            &changed(request, 0, 2),
            2,
            now,
            &[],
            E::Malformed,
        ),
        request_case(
            "a reply sent as a request",
            "append",
            &append.sealed_reply,
            1,
            now,
            &[],
            E::WrongDirection,
        ),
        request_case(
            "addressed to node 2, received by node 3",
            "append",
            request,
            3,
            now,
            &[],
            E::WrongReceiver,
        ),
        request_case("reflected to its sender", "append", request, 1, now, &[], E::WrongReceiver),
        request_case(
            "a replica's request to any replica",
            "append",
            &changed(request, 16, 2),
            2,
            now,
            &[],
            E::WrongReceiver,
        ),
        request_case(
            "received one millisecond after the window",
            "append",
            request,
            2,
            now + window + 1,
            &[],
            E::Stale,
        ),
        request_case(
            "received one millisecond before the window",
            "append",
            request,
            2,
            now - window - 1,
            &[],
            E::Stale,
        ),
        request_case(
            "accepted once already",
            "append",
            request,
            2,
            now,
            &[request.as_slice()],
            E::Replayed,
        ),
        reply_case(
            "a captured reply to an earlier request",
            request,
            &earlier.sealed_reply,
            E::WrongRequest,
        ),
        reply_case(
            "the earlier reply given this request's message id",
            request,
            &relabelled,
            E::DoesNotOpen,
        ),
        reply_case(
            "a reply from node 3 to a request to node 2",
            request,
            &to_three.sealed_reply,
            E::WrongRequest,
        ),
        reply_case("a reply addressed to node 3", request, &reply_to_three, E::WrongReceiver),
        reply_case("the request reflected as its reply", request, request, E::WrongDirection),
        reply_case(
            "reply tag changed",
            request,
            &changed(&append.sealed_reply, append.sealed_reply.len() - 1, 1),
            E::DoesNotOpen,
        ),
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

fn verify_peer_exchange(case: &Value) -> Result<(), String> {
    let key = key32(case, "peerKey")?;
    let route = case["route"].as_str().ok_or("no route")?;
    let (request, reply, receiver) = (&case["request"], &case["reply"], &case["receiver"]);
    let nonce = |part: &Value| -> Result<[u8; peer::NONCE_LEN], String> {
        hex_field(part, "nonce")?.try_into().map_err(|_| "a nonce is not 12 bytes".into())
    };
    let header = peer::Header {
        direction: peer::Direction::Request,
        from: u64_of(request, "from")?,
        to: u64_of(request, "to")?,
        sent_at_ms: u64_of(request, "sentAtMs")?,
        message_id: hex_field(request, "messageId")?
            .try_into()
            .map_err(|_| "messageId is not 16 bytes")?,
    };
    let message = hex_field(request, "message")?;
    let sealed = hex_field(request, "sealed")?;
    let resealed = peer::seal_with(&key, route, &header, &[], nonce(request)?, &message);
    expect_eq("sealed request", &resealed, &sealed)?;
    expect_eq("requestDigest", sha256(&sealed).to_vec(), hex_field(case, "requestDigest")?)?;

    let mut node = peer::Receiver::new(u64_of(receiver, "me")?);
    let (opened, incoming) = node
        .open_request(&key, route, &sealed, u64_of(receiver, "nowMs")?, route == "members")
        .map_err(|e| format!("the request is refused: {e}"))?;
    expect_eq("opened request", opened.to_vec(), message)?;

    let reply_header = peer::Header {
        direction: peer::Direction::Reply,
        from: u64_of(reply, "from")?,
        to: incoming.header().from,
        sent_at_ms: u64_of(reply, "sentAtMs")?,
        message_id: header.message_id,
    };
    let reply_message = hex_field(reply, "message")?;
    let sealed_reply = hex_field(reply, "sealed")?;
    let digest = sha256(&sealed);
    let resealed =
        peer::seal_with(&key, route, &reply_header, &digest, nonce(reply)?, &reply_message);
    expect_eq("sealed reply", &resealed, &sealed_reply)?;
    let outgoing = peer::Outgoing::for_request(route, &sealed).map_err(|e| e.to_string())?;
    let opened = outgoing.open_reply(&key, &sealed_reply).map_err(|e| format!("the reply: {e}"))?;
    expect_eq("opened reply", opened.to_vec(), reply_message)
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
        let decision = apply(&hsm, &command, &mut record);
        expect_eq(&format!("step {i} decision"), &decision_json(&decision), &step["decision"])?;
        expect_eq(&format!("step {i} record"), &record_json(&record), &step["record"])?;
    }
    Ok(())
}

/// Applies `command` to `record` as a replica does: the change is stored, then the decision
/// released.
fn apply(hsm: &Hsm, command: &Command, record: &mut Option<AccountRecord>) -> Decision {
    let stored = hsm.apply(command, record.clone()).persist(|change| {
        *record = match change {
            RecordChange::Put(new) => Some(new.clone()),
            RecordChange::Delete => None,
        };
        Ok::<(), std::convert::Infallible>(())
    });
    let Ok(decision) = stored;
    decision
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
            Err(e) => expect_eq("error", e.code(), case["error"].as_str().unwrap_or("")),
        },
        "Apply" => verify_apply(case),
        "PeerKey" => {
            let secrets = HsmSecrets::from_bytes(&hex_field(case, "hsmSecrets")?)
                .map_err(|e| e.to_string())?;
            expect_eq("peerKey", secrets.peer_key().to_vec(), hex_field(case, "peerKey")?)?;
            expect_eq(
                "peerTlsSeed",
                secrets.peer_tls_seed().to_vec(),
                hex_field(case, "peerTlsSeed")?,
            )
        }
        "PeerSeal" => verify_peer_exchange(case),
        "PeerSealInvalid" => {
            let key = key32(case, "peerKey")?;
            let route = case["route"].as_str().ok_or("no route")?;
            let sealed = hex_field(case, "sealed")?;
            let outcome = match case["kind"].as_str() {
                Some("request") => {
                    let mut receiver = peer::Receiver::new(u64_of(case, "me")?);
                    let now_ms = u64_of(case, "nowMs")?;
                    for earlier in case["acceptedBefore"].as_array().ok_or("no acceptedBefore")? {
                        let earlier = hex::decode(earlier.as_str().unwrap_or_default())
                            .map_err(|e| e.to_string())?;
                        receiver
                            .open_request(&key, route, &earlier, now_ms, route == "members")
                            .map_err(|e| format!("an earlier request is refused: {e}"))?;
                    }
                    receiver
                        .open_request(&key, route, &sealed, now_ms, route == "members")
                        .map(|_| ())
                }
                Some("reply") => {
                    let request = hex_field(case, "sealedRequest")?;
                    let outgoing =
                        peer::Outgoing::for_request(route, &request).map_err(|e| e.to_string())?;
                    outgoing.open_reply(&key, &sealed).map(|_| ())
                }
                _ => return Err("kind is neither request nor reply".into()),
            };
            match outcome {
                Ok(()) => Err("a message that must be refused is accepted".into()),
                Err(e) => expect_eq("error", e.code(), case["error"].as_str().unwrap_or("")),
            }
        }
        other => Err(format!("unknown flag {other}")),
    }
}
