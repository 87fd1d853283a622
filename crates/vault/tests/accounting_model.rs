//! Model-based test of guess accounting: arbitrary interleavings of many login sessions for one
//! account (honest and guessing), with crashes before and after the durable write, lost
//! replies, replayed envelopes, forged KE3s and KE3s presented with another session's ticket.
//!
//! After every step the test checks, from what actually left the vault:
//! * KE2s released for distinct attempts since the last released key never exceed the budget;
//! * a sealed K is released only for the first delivery of a KE3 that an honest client (right
//!   password, its own ticket) produced;
//! * a locked account releases nothing ever again;
//! * the record's counters stay within the budget.

use e2ee_backup_vault::{
    AccountId, AccountRecord, AccountState, Endpoint, FleetId, FleetPublicKey, Hsm, HsmConfig,
    HsmSecrets, Identities, KsfProfile, RecordChange, Registration, Request, Response, VaultSuite,
    envelope::{self, PendingResponse},
    internal::{suite::CONTEXT, ticket::attempt_id},
};
use std::collections::HashSet;

use e2ee_backup_kdf::BackupKey;
use opaque_ke::{ClientLogin, ClientLoginFinishParameters, CredentialResponse};
use proptest::prelude::*;
use rand_core::{OsRng, RngCore};

const FLEET: &[u8] = b"fleet.model";
const ACCOUNT: &[u8] = b"victim";
const NOW: u64 = 1_800_000_000;

/// What can happen next.
#[derive(Debug, Clone)]
enum Op {
    /// A client starts a login, with the right password or a guess.
    Start { honest: bool },
    /// The next request of session `s` reaches the vault; the vault may crash around the write.
    Deliver { s: usize, crash: Crash },
    /// An envelope the vault saw before arrives again.
    Replay { e: usize },
    /// Someone sends KE3 bytes of their own with session `s`'s ticket.
    Forge { s: usize },
    /// Session `a`'s KE3 arrives with session `b`'s ticket.
    Cross { a: usize, b: usize },
    /// Time passes: attempts and tickets may expire.
    Tick { seconds: u64 },
}

#[derive(Debug, Clone, Copy)]
enum Crash {
    None,
    /// The durable write fails: nothing is stored, nothing is sent.
    BeforeWrite,
    /// The write succeeds, then the reply is lost.
    ReplyLost,
}

fn op() -> impl Strategy<Value = Op> {
    let crash = prop_oneof![
        6 => Just(Crash::None),
        1 => Just(Crash::BeforeWrite),
        1 => Just(Crash::ReplyLost)
    ];
    prop_oneof![
        3 => any::<bool>().prop_map(|honest| Op::Start { honest }),
        6 => (0..16usize, crash).prop_map(|(s, crash)| Op::Deliver { s, crash }),
        2 => (0..64usize).prop_map(|e| Op::Replay { e }),
        1 => (0..16usize).prop_map(|s| Op::Forge { s }),
        1 => (0..16usize, 0..16usize).prop_map(|(a, b)| Op::Cross { a, b }),
        1 => (0..400u64).prop_map(|seconds| Op::Tick { seconds }),
    ]
}

/// One sealed envelope, with what it takes to open its response again.
struct Sent {
    ikm: [u8; 32],
    plaintext: Vec<u8>,
    /// The first delivery of an honest KE3 with its own ticket.
    honest_ke3: bool,
}

enum Phase {
    /// KE1 sealed, waiting for KE2.
    Ke1 {
        login: Box<ClientLogin<VaultSuite>>,
        ke1: Vec<u8>,
        sent: usize,
    },
    /// KE3 sealed, waiting for the key.
    Ke3 {
        ticket: Vec<u8>,
        ke3: Vec<u8>,
        sent: usize,
    },
    Done,
}

struct Session {
    honest: bool,
    phase: Phase,
    ticket: Option<Vec<u8>>,
}

struct World {
    hsm: Hsm,
    public: FleetPublicKey,
    key_id: u8,
    budget: u8,
    record: Option<AccountRecord>,
    sessions: Vec<Session>,
    sent: Vec<Sent>,
    /// Attempts answered with a KE2 since the last released key.
    ke2_attempts: HashSet<[u8; 16]>,
    delivered_honest_ke3: HashSet<usize>,
    locked_seen: bool,
    now: u64,
}

impl World {
    fn seal(&mut self, request: &Request, honest_ke3: bool) -> usize {
        let mut ikm = [0u8; 32];
        OsRng.fill_bytes(&mut ikm);
        self.sent.push(Sent { ikm, plaintext: request.encode(), honest_ke3 });
        self.sent.len() - 1
    }

    fn pending(&self, e: usize) -> (Vec<u8>, PendingResponse) {
        let sent = &self.sent[e];
        envelope::seal_request_with_ephemeral_ikm(
            &sent.ikm,
            FLEET,
            self.key_id,
            &self.public,
            ACCOUNT,
            &sent.plaintext,
        )
        .unwrap()
    }

    /// Delivers envelope `e` and returns the decoded response, if one left the vault.
    fn deliver(&mut self, e: usize, crash: Crash) -> Option<Response> {
        let (envelope, pending) = self.pending(e);
        let opened = self.hsm.open(&envelope).expect("our own envelopes open");
        let (command, held) = opened.into_command(self.now);
        let command = command.expect("our own requests decode");
        let record = &mut self.record;
        let decision = self
            .hsm
            .apply(&command, record.clone())
            .persist(|change| {
                if let Crash::BeforeWrite = crash {
                    return Err(());
                }
                *record = match change {
                    RecordChange::Put(r) => Some(r.clone()),
                    RecordChange::Delete => None,
                };
                Ok(())
            })
            .ok()?;
        let reply = held.reply(decision);
        // What the vault released counts, whether or not it reaches the client.
        let bytes = self.hsm.seal(reply, &mut OsRng);
        let response = Response::decode(&pending.open(&bytes).unwrap()).unwrap();
        self.observe(e, &response);
        match crash {
            Crash::ReplyLost => None,
            _ => Some(response),
        }
    }

    /// The invariants, on every response that left the vault.
    fn observe(&mut self, e: usize, response: &Response) {
        match response {
            Response::LoginChallenge { .. } => {
                assert!(!self.locked_seen, "a KE2 after the account was locked");
                let Ok(Request::LoginStart { ke1 }) = Request::decode(&self.sent[e].plaintext)
                else {
                    panic!("a KE2 answers a KE1");
                };
                self.ke2_attempts.insert(attempt_id(ACCOUNT, ke1.as_ref()));
                assert!(
                    self.ke2_attempts.len() <= usize::from(self.budget),
                    "{} KE2s released without a valid KE3, budget {}",
                    self.ke2_attempts.len(),
                    self.budget
                );
            }
            Response::LoginSucceeded { .. } => {
                assert!(!self.locked_seen, "a key released after the account was locked");
                assert!(self.sent[e].honest_ke3, "a key released for a KE3 that is not honest");
                assert!(self.delivered_honest_ke3.insert(e), "a key released twice for one KE3");
                self.ke2_attempts.clear();
            }
            _ => {}
        }
        if let Some(r) = &self.record {
            assert!(r.remaining <= r.budget && r.pending.len() <= usize::from(r.budget));
            if r.state == AccountState::Locked {
                self.locked_seen = true;
                assert!(r.sealed_key.is_empty(), "a locked record keeps no key");
            }
        }
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Start { honest } => {
                let password: &[u8] = if honest { b"right" } else { b"guess" };
                let started = ClientLogin::<VaultSuite>::start(&mut OsRng, password).unwrap();
                let ke1 = started.message.serialize().to_vec();
                let request =
                    Request::LoginStart { ke1: Box::new(ke1.clone().try_into().unwrap()) };
                let sent = self.seal(&request, false);
                let phase = Phase::Ke1 { login: Box::new(started.state), ke1, sent };
                self.sessions.push(Session { honest, phase, ticket: None });
            }
            Op::Deliver { s, crash } => {
                if self.sessions.is_empty() {
                    return;
                }
                let s = s % self.sessions.len();
                match std::mem::replace(&mut self.sessions[s].phase, Phase::Done) {
                    Phase::Ke1 { login, ke1, sent } => match self.deliver(sent, crash) {
                        Some(Response::LoginChallenge { ke2, ticket, .. }) => {
                            self.sessions[s].ticket = Some(ticket.clone());
                            self.client_ke3(s, *login, &ke2[..], ticket);
                        }
                        // Nothing came back: the client tries again with the same KE1.
                        None => self.sessions[s].phase = Phase::Ke1 { login, ke1, sent },
                        Some(_) => {}
                    },
                    Phase::Ke3 { ticket, ke3, sent } => {
                        if self.deliver(sent, crash).is_none() {
                            // Resent in a new envelope, as a client that got no answer would.
                            let request = Request::LoginFinish {
                                ticket: ticket.clone(),
                                ke3: Box::new(ke3.clone().try_into().unwrap()),
                            };
                            let sent = self.seal(&request, true);
                            self.sessions[s].phase = Phase::Ke3 { ticket, ke3, sent };
                        }
                    }
                    Phase::Done => {}
                }
            }
            Op::Replay { e } => {
                if !self.sent.is_empty() {
                    let e = e % self.sent.len();
                    // A replay is never an honest first delivery.
                    let honest = std::mem::replace(&mut self.sent[e].honest_ke3, false);
                    let was_delivered = self.delivered_honest_ke3.contains(&e);
                    self.sent[e].honest_ke3 = honest && !was_delivered;
                    self.deliver(e, Crash::None);
                    self.sent[e].honest_ke3 = honest;
                }
            }
            Op::Forge { s } => {
                if let Some(ticket) = self.ticket_of(s) {
                    let mut ke3 = [0u8; 64];
                    OsRng.fill_bytes(&mut ke3);
                    let request = Request::LoginFinish { ticket, ke3: Box::new(ke3) };
                    let e = self.seal(&request, false);
                    self.deliver(e, Crash::None);
                }
            }
            Op::Tick { seconds } => self.now += seconds,
            Op::Cross { a, b } => {
                let (Some(ke3), Some(ticket)) = (self.ke3_of(a), self.ticket_of(b)) else {
                    return;
                };
                if self.ticket_of(a).as_ref() == Some(&ticket) {
                    return;
                }
                let request = Request::LoginFinish { ticket, ke3: Box::new(ke3) };
                let e = self.seal(&request, false);
                self.deliver(e, Crash::None);
            }
        }
    }

    fn client_ke3(
        &mut self,
        s: usize,
        login: ClientLogin<VaultSuite>,
        ke2: &[u8],
        ticket: Vec<u8>,
    ) {
        let password: &[u8] = if self.sessions[s].honest { b"right" } else { b"guess" };
        let ksf = KsfProfile::Fast.argon2();
        let ids = Identities { account: ACCOUNT, fleet: FLEET };
        let params = ClientLoginFinishParameters::new(Some(CONTEXT), ids.opaque(), Some(&ksf));
        let message = CredentialResponse::deserialize(ke2).unwrap();
        match login.finish(&mut OsRng, password, message, params) {
            Ok(done) => {
                assert!(self.sessions[s].honest, "a guess opened the envelope");
                let ke3: [u8; 64] = done.message.serialize().to_vec().try_into().unwrap();
                let request = Request::LoginFinish { ticket: ticket.clone(), ke3: Box::new(ke3) };
                let sent = self.seal(&request, true);
                self.sessions[s].phase = Phase::Ke3 { ticket, ke3: ke3.to_vec(), sent };
            }
            Err(_) => assert!(!self.sessions[s].honest, "the right password was refused"),
        }
    }

    fn ticket_of(&self, s: usize) -> Option<Vec<u8>> {
        if self.sessions.is_empty() {
            return None;
        }
        self.sessions[s % self.sessions.len()].ticket.clone()
    }

    fn ke3_of(&self, s: usize) -> Option<[u8; 64]> {
        if self.sessions.is_empty() {
            return None;
        }
        let sent = match &self.sessions[s % self.sessions.len()].phase {
            Phase::Ke3 { sent, .. } => *sent,
            _ => return None,
        };
        match Request::decode(&self.sent[sent].plaintext) {
            Ok(Request::LoginFinish { ke3, .. }) => Some(*ke3),
            _ => None,
        }
    }
}

fn world(budget: u8) -> World {
    let secrets = HsmSecrets::generate(&mut OsRng, FleetId::from_static(FLEET));
    let (key_id, public) = secrets.public_keys()[0];
    let config = HsmConfig { budget, ksf_profile: KsfProfile::Fast, ..HsmConfig::default() };
    let hsm = Hsm::new(secrets, config).unwrap();
    // Register the account through the real client.
    let endpoint = Endpoint::new(FleetId::from_static(FLEET), key_id, public).accepting_fast_ksf();
    let mut record = None;
    let call = |hsm: &Hsm, record: &mut Option<AccountRecord>, envelope: &[u8]| {
        let opened = hsm.open(envelope).unwrap();
        let (command, pending) = opened.into_command(NOW);
        let decision = hsm
            .apply(&command.expect("a request that decodes"), record.clone())
            .persist(|c| {
                if let RecordChange::Put(r) = c {
                    *record = Some(r.clone());
                }
                Ok::<_, ()>(())
            })
            .unwrap();
        let reply = pending.reply(decision);
        hsm.seal(reply, &mut OsRng)
    };
    let (state, request) =
        Registration::start(&mut OsRng, &endpoint, AccountId::from_static(ACCOUNT), b"right", None)
            .unwrap();
    let response = call(&hsm, &mut record, &request);
    let (state, request) = state.receive(&mut OsRng, &response, &BackupKey::generate()).unwrap();
    state.receive(&call(&hsm, &mut record, &request)).unwrap();
    World {
        hsm,
        public,
        key_id,
        budget,
        record,
        sessions: Vec::new(),
        sent: Vec::new(),
        ke2_attempts: HashSet::new(),
        delivered_honest_ke3: HashSet::new(),
        locked_seen: false,
        now: NOW,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn no_interleaving_gives_an_extra_guess(budget in 1u8..5, ops in proptest::collection::vec(op(), 1..60)) {
        let mut w = world(budget);
        for op in ops {
            w.step(op);
        }
    }
}

/// The model must be able to fail: with the check of outstanding attempts gone (every KE3 is
/// taken at face value), a replayed honest KE3 would release the key twice. This drives that
/// exact scenario and checks the vault refuses it.
#[test]
fn a_replayed_honest_ke3_releases_nothing() {
    let mut w = world(3);
    w.step(Op::Start { honest: true });
    w.step(Op::Deliver { s: 0, crash: Crash::None });
    w.step(Op::Deliver { s: 0, crash: Crash::None });
    assert_eq!(w.delivered_honest_ke3.len(), 1, "the honest login succeeded");
    let e = *w.delivered_honest_ke3.iter().next().unwrap();
    let response = w.deliver(e, Crash::None).unwrap();
    assert!(matches!(response, Response::Refused { .. }), "got {response:?}");
}

/// Found by the model: a KE1 replayed after its login succeeded is charged again under the
/// same attempt id; the old ticket must not come back to life with it (tickets name the charge's
/// serial, not only the attempt).
#[test]
fn a_replayed_ke1_does_not_revive_an_old_ticket() {
    let mut w = world(1);
    w.step(Op::Start { honest: true });
    w.step(Op::Deliver { s: 0, crash: Crash::None });
    w.step(Op::Deliver { s: 0, crash: Crash::None });
    w.step(Op::Replay { e: 0 });
    let response = w.deliver(1, Crash::None).unwrap();
    assert!(matches!(response, Response::Refused { .. }), "got {response:?}");
}
