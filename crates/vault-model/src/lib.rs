//! Model check of the vault's guess accounting (spec sections 4.8–4.10) over an abstract
//! replicated log, with [stateright].
//!
//! # What is modelled
//!
//! One account, `N = 3` replicas. Each replica has a durable `term` and `log` (a list of
//! [`Entry`]: the term it was appended in and a [`Cmd`]), and volatile state: its commit index
//! and, when it believes it is leader, a [`LeaderState`] (how far each peer is known to match).
//! The applied state machine ([`Account`]) is not stored: it is the fold of [`apply`] over the
//! committed prefix `log[..commit]`, exactly as a replica would rebuild it after a restart.
//!
//! The state machine is the vault's record reduced to what accounting needs: `registered`,
//! `locked`, `remaining`, the pending attempts (id and `not_after`), and the number of
//! successful logins so far (`logins`, ghost). Commands:
//!
//! * [`Cmd::Register`]: the registration (spec 4.10.2 RegisterFinish, reduced to "registered").
//! * [`Cmd::Charge`] `(attempt, now)`: LoginStart. A live pending attempt with this id is answered
//!   uncharged (a retried identical KE1 is charged once); else with `remaining = 0` the result is
//!   `exhausted` if something is live, or the record locks; else expired attempts are dropped,
//!   `remaining -= 1`, the attempt is appended with `not_after = now` (session lifetime 0 ticks),
//!   and the result is "release a KE2".
//! * [`Cmd::Confirm`] `(attempt, now, valid)`: LoginFinish. Not pending: no change. Otherwise the
//!   attempt is removed; expired or invalid KE3 fails (and locks if nothing is left), a valid KE3
//!   restores `remaining = budget` and clears pending.
//!
//! # Actions
//!
//! * `Ke1 { attempt, to }`: a client sends a KE1 to a replica that believes it is leader. The
//!   attacker has attempts `A1..A3` (distinct KE1s), the honest client `H`. In the correct
//!   protocol the leader only appends `Charge`; the KE2 is released when the entry is committed
//!   and applied (see "answering" below). Requests to non-leaders are refused and change nothing,
//!   so they are not modelled; a lost or duplicated request is the same as the client sending (or
//!   not sending) again, which it may always do.
//! * `Ke3 { to }`: the honest client sends a valid KE3 for `H` once it has been given a KE2 for `H`.
//!   The attacker never sends a valid KE3 (nor, to keep the state space small, invalid ones: an
//!   invalid KE3 only removes a pending attempt and never restores the budget).
//! * `Register { to }`: the honest client registers (once).
//! * `Replicate { from, to }`: a leader sends `Append { term, log, commit }` (its whole log: an
//!   abstraction of AppendEntries with `prev_index = 0`) to a peer.
//! * `Deliver(msg)` / `Drop(msg)`: the network is a set of messages, unordered, duplicating
//!   (delivering leaves the message in the set, so it can be delivered again, in any order) and
//!   lossy (a message can be dropped) — the semantics of stateright's
//!   `Network::UnorderedDuplicating` with `LossyNetwork::Yes` (whose `send` is crate-private, so
//!   the set is kept here). A follower with a term above the message's answers with its term
//!   (the leader steps down); otherwise it adopts the term, keeps its log when the message's log
//!   is a prefix of it (a stale duplicate) or else replaces its log by the leader's (Raft's
//!   truncate-and-append), takes the commit index, and acks the matched length. A leader that
//!   gets an ack of its term raises the peer's match and commits the highest index stored on a
//!   majority whose entry has the leader's term (Raft's rule).
//! * `Elect { candidate, voter }`: simplified Raft election, atomic: the candidate takes
//!   `term + 1` (bounded by `max_term`) if it and one voter (a majority of 3) have a lower term and
//!   the candidate's log is at least as up to date as the voter's (last term, then length). Both
//!   adopt the term (durably); the voter stops being leader. The third replica learns of the new
//!   term only by messages, so old leaders keep acting until then.
//! * `Crash(r)`: a replica restarts at once, losing its volatile state (commit index, leadership,
//!   match indexes); term and log survive. Bounded by `max_crashes`.
//! * `Tick`: time passes (bounded by `max_time`); attempts charged before are no longer live.
//!
//! **Answering.** When a leader's commit index advances, it applies the new entries; for each
//! entry of its own term it answers the client: a `Charge` whose result is "KE2" releases a KE2,
//! a successful `Confirm` is a login, a `Register` is acknowledged. Entries of earlier terms are
//! applied but not answered (their leader is gone; the client retries).
//!
//! # Properties
//!
//! * `always "ke2 within budget"`: every KE2 release is attributed to the *login epoch* of the
//!   charge it answers (the number of successful logins before it in the log); for each epoch,
//!   the set of distinct attempts released must not exceed the budget. This is the spec's "between
//!   two successful logins" counted per charge, as in section 4.10.3 (a KE2 computed from a charge
//!   made before a login but sent after it is not a new guess).
//! * `always "acked registration kept"`: once `Register` was acknowledged (at index `i`, term
//!   `t`), every leader of a term `>= t` holds that entry at `i`, and every replica whose commit
//!   index passes `i` holds it.
//! * `sometimes`: a KE2 released, the record locked, a leader change, a successful login.
//!
//! # Broken variants ([`Variant`])
//!
//! * [`Variant::Ke2BeforeCommit`]: the leader releases the KE2 as soon as it appends the charge,
//!   from the fold of its whole local log (committed or not). Uncommitted charges of a deposed
//!   leader are overwritten by the next one, which charges the same budget again.
//! * [`Variant::LeaseReadBudget`]: the leader reads the budget from its local applied state
//!   (committed prefix) as if it held a lease, releases the KE2 at once and appends the charge to
//!   be committed later; it neither checks that it is still leader nor waits for the commit that
//!   would prove it.
//!
//! # What is abstracted away
//!
//! Cryptography (OPAQUE, tickets, HPKE): a KE2 is a token, KE3 validity a flag. Token, delete and
//! re-registration rules, phantom records, serials (attempt ids are distinct by construction),
//! real time (one tick), log compaction, snapshots, membership changes, vote messages (elections
//! are atomic), AppendEntries consistency checks (whole logs are sent), and client-side behaviour
//! beyond sending requests.
//!
//! # How far the check goes today
//!
//! The tests search breadth-first to depth 8 (about 1.9 million states for the correct model):
//! the correct protocol shows no violation within that bound, and both broken variants are
//! caught within it. This is bounded evidence, not a proof: an unbounded search did not finish
//! in memory here. Message loss is modelled but off in the tests; the lock, a successful login
//! and an acknowledged registration are not reached within depth 8, so the registration
//! property is not yet exercised. `LeaseReadBudget` also fails with a single leader (its own
//! uncommitted charges are invisible to the read), so it does not isolate the stale-leader bug.
#![forbid(unsafe_code)]

use std::collections::{BTreeMap, BTreeSet};

use stateright::{Model, Property};

/// Number of replicas.
pub const N: usize = 3;

/// A login attempt (its id stands for `attempt_id`, derived from account and KE1 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Attempt {
    A1,
    A2,
    A3,
    /// The honest client's attempt.
    H,
}

/// The attacker's attempts.
pub const ATTACKER: [Attempt; 3] = [Attempt::A1, Attempt::A2, Attempt::A3];

/// A replicated command.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cmd {
    Register,
    Charge { attempt: Attempt, now: u8 },
    Confirm { attempt: Attempt, now: u8, valid: bool },
}

/// A log entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Entry {
    pub term: u8,
    pub cmd: Cmd,
}

/// The applied account record.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Account {
    pub registered: bool,
    pub locked: bool,
    pub remaining: u8,
    /// `(attempt, not_after)`.
    pub pending: Vec<(Attempt, u8)>,
    /// Successful logins so far (ghost: the login epoch).
    pub logins: u8,
}

/// What applying a command yields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Registered,
    /// Release a KE2 for this attempt.
    Ke2(Attempt),
    Refused,
    LoginOk,
    LoginFailed,
    NoChange,
}

/// Applies one command (deterministic, as `hsm::handle`).
pub fn apply(acc: &mut Account, cmd: Cmd, budget: u8) -> Outcome {
    if acc.locked {
        return Outcome::Refused;
    }
    let lock = |acc: &mut Account| {
        *acc = Account { locked: true, logins: acc.logins, ..Account::default() };
    };
    match cmd {
        Cmd::Register => {
            acc.registered = true;
            Outcome::Registered
        }
        Cmd::Charge { attempt, now } => {
            if acc.pending.iter().any(|&(a, na)| a == attempt && now <= na) {
                return Outcome::Ke2(attempt);
            }
            if acc.remaining == 0 {
                if acc.pending.iter().any(|&(_, na)| now <= na) {
                    return Outcome::Refused;
                }
                lock(acc);
                return Outcome::Refused;
            }
            acc.pending.retain(|&(_, na)| now <= na);
            acc.remaining -= 1;
            acc.pending.push((attempt, now));
            Outcome::Ke2(attempt)
        }
        Cmd::Confirm { attempt, now, valid } => {
            let Some(pos) = acc.pending.iter().position(|&(a, _)| a == attempt) else {
                return Outcome::NoChange;
            };
            let (_, not_after) = acc.pending.remove(pos);
            if now <= not_after && valid && acc.registered {
                acc.remaining = budget;
                acc.pending.clear();
                acc.logins += 1;
                return Outcome::LoginOk;
            }
            if acc.remaining == 0 && !acc.pending.iter().any(|&(_, na)| now <= na) {
                lock(acc);
            }
            Outcome::LoginFailed
        }
    }
}

/// Folds `entries` from the initial record; returns the record and, per entry, the login epoch
/// before it and its outcome.
pub fn fold(entries: &[Entry], budget: u8) -> (Account, Vec<(u8, Outcome)>) {
    let mut acc = Account { remaining: budget, ..Account::default() };
    let outs = entries
        .iter()
        .map(|e| {
            let epoch = acc.logins;
            (epoch, apply(&mut acc, e.cmd, budget))
        })
        .collect();
    (acc, outs)
}

/// Volatile state of a replica that believes it is leader.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaderState {
    /// Highest log length known to match, per replica.
    pub matched: [u8; N],
}

/// A replica.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Replica {
    pub term: u8,
    pub log: Vec<Entry>,
    pub commit: u8,
    pub leader: Option<LeaderState>,
}

/// A network message.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Msg {
    Append { term: u8, from: u8, to: u8, log: Vec<Entry>, commit: u8 },
    Ack { term: u8, from: u8, to: u8, matched: u8 },
}

/// The whole system.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub replicas: [Replica; N],
    pub network: BTreeSet<Msg>,
    pub now: u8,
    pub crashes: u8,
    pub register_sent: bool,
    /// Ghost: KE2s released, by login epoch.
    pub released: BTreeMap<u8, BTreeSet<Attempt>>,
    /// Ghost: the honest client holds a KE2 for `H` (and may send its KE3).
    pub honest_has_ke2: bool,
    /// Ghost: the acknowledged registration `(index, term)`.
    pub acked_register: Option<(u8, u8)>,
    pub logins_answered: u8,
    pub max_term_seen: u8,
}

/// Which protocol is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The protocol of the design: KE2 only after the charge is committed.
    Correct,
    /// Broken: KE2 released when the charge is appended.
    Ke2BeforeCommit,
    /// Broken: budget read from local applied state, KE2 released before the commit.
    LeaseReadBudget,
}

/// An action of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Ke1 { attempt: Attempt, to: u8 },
    Ke3 { to: u8 },
    Register { to: u8 },
    Replicate { from: u8, to: u8 },
    Deliver(Msg),
    Drop(Msg),
    Elect { candidate: u8, voter: u8 },
    Crash(u8),
    Tick,
}

/// The model and its bounds.
#[derive(Clone, Debug)]
pub struct VaultModel {
    pub variant: Variant,
    pub budget: u8,
    /// Highest term an election may reach (initial leader has term 1).
    pub max_term: u8,
    pub max_crashes: u8,
    /// Longest log a leader may append to.
    pub max_log: usize,
    pub max_time: u8,
    /// Whether the honest client registers (adds states).
    pub with_register: bool,
    /// Whether the honest client logs in (adds states).
    pub with_login: bool,
    /// Whether the network may drop messages.
    pub lossy: bool,
    /// Depth bound for the search (0: none).
    pub max_depth: usize,
}

impl VaultModel {
    /// The test configuration: budget 2, one election, one crash, small logs.
    pub fn new(variant: Variant) -> Self {
        VaultModel {
            variant,
            budget: 2,
            max_term: 2,
            max_crashes: 1,
            max_log: 3,
            max_time: 1,
            with_register: true,
            with_login: true,
            lossy: false,
            max_depth: 8,
        }
    }

    fn release(&self, s: &mut State, epoch: u8, attempt: Attempt) {
        s.released.entry(epoch).or_default().insert(attempt);
        if attempt == Attempt::H {
            s.honest_has_ke2 = true;
        }
    }

    /// Commits what a majority stores in the leader's term, applies and answers.
    fn advance_commit(&self, s: &mut State, r: usize) {
        let rep = &s.replicas[r];
        let Some(ls) = &rep.leader else { return };
        let mut new_commit = rep.commit;
        for n in (rep.commit as usize + 1)..=rep.log.len() {
            let acks = ls.matched.iter().filter(|&&m| m as usize >= n).count();
            if acks * 2 > N && rep.log[n - 1].term == rep.term {
                new_commit = n as u8;
            }
        }
        if new_commit == rep.commit {
            return;
        }
        let old = rep.commit as usize;
        let term = rep.term;
        let log = rep.log.clone();
        s.replicas[r].commit = new_commit;
        let (_, outs) = fold(&log[..new_commit as usize], self.budget);
        for i in old..new_commit as usize {
            if log[i].term != term {
                continue;
            }
            let (epoch, out) = outs[i];
            match out {
                Outcome::Ke2(a) if self.variant == Variant::Correct => self.release(s, epoch, a),
                Outcome::LoginOk => s.logins_answered += 1,
                Outcome::Registered if s.acked_register.is_none() => {
                    s.acked_register = Some((i as u8, term));
                }
                _ => {}
            }
        }
    }

    fn append(&self, s: &mut State, r: usize, cmd: Cmd) {
        let rep = &mut s.replicas[r];
        rep.log.push(Entry { term: rep.term, cmd });
        let len = rep.log.len() as u8;
        if let Some(ls) = &mut rep.leader {
            ls.matched[r] = len;
        }
    }
}

fn up_to_date(a: &[Entry], b: &[Entry]) -> bool {
    let la = a.last().map_or(0, |e| e.term);
    let lb = b.last().map_or(0, |e| e.term);
    (la, a.len()) >= (lb, b.len())
}

impl Model for VaultModel {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let replica = |leader: bool| Replica {
            term: 1,
            log: Vec::new(),
            commit: 0,
            leader: leader.then_some(LeaderState { matched: [0; N] }),
        };
        vec![State {
            replicas: [replica(true), replica(false), replica(false)],
            network: BTreeSet::new(),
            now: 0,
            crashes: 0,
            register_sent: !self.with_register,
            released: BTreeMap::new(),
            honest_has_ke2: false,
            acked_register: None,
            logins_answered: 0,
            max_term_seen: 1,
        }]
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        for (r, rep) in s.replicas.iter().enumerate() {
            let to = r as u8;
            if rep.leader.is_some() {
                if rep.log.len() < self.max_log {
                    // Symmetry reduction: the attacker's attempts are interchangeable, so
                    // attempt k is sent only once attempt k-1 is in this leader's log.
                    for (k, attempt) in ATTACKER.into_iter().enumerate() {
                        let prev_sent = k == 0
                            || rep.log.iter().any(|e| {
                                matches!(e.cmd, Cmd::Charge { attempt: p, .. } if p == ATTACKER[k - 1])
                            });
                        if prev_sent {
                            actions.push(Action::Ke1 { attempt, to });
                        }
                    }
                    if self.with_login {
                        actions.push(Action::Ke1 { attempt: Attempt::H, to });
                        if s.honest_has_ke2 {
                            actions.push(Action::Ke3 { to });
                        }
                    }
                    if !s.register_sent {
                        actions.push(Action::Register { to });
                    }
                }
                for p in 0..N as u8 {
                    if p != to {
                        actions.push(Action::Replicate { from: to, to: p });
                    }
                }
            }
            if rep.term < self.max_term {
                for v in 0..N {
                    if v != r
                        && s.replicas[v].term <= rep.term
                        && up_to_date(&rep.log, &s.replicas[v].log)
                    {
                        actions.push(Action::Elect { candidate: to, voter: v as u8 });
                    }
                }
            }
            if s.crashes < self.max_crashes {
                actions.push(Action::Crash(to));
            }
        }
        for m in &s.network {
            actions.push(Action::Deliver(m.clone()));
            if self.lossy {
                actions.push(Action::Drop(m.clone()));
            }
        }
        if s.now < self.max_time {
            actions.push(Action::Tick);
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Ke1 { attempt, to } => {
                let r = to as usize;
                let cmd = Cmd::Charge { attempt, now: s.now };
                match self.variant {
                    Variant::Correct => {}
                    Variant::Ke2BeforeCommit => {
                        let rep = &s.replicas[r];
                        let (mut acc, _) = fold(&rep.log, self.budget);
                        let epoch = acc.logins;
                        if let Outcome::Ke2(a) = apply(&mut acc, cmd, self.budget) {
                            self.release(&mut s, epoch, a);
                        }
                    }
                    Variant::LeaseReadBudget => {
                        let rep = &s.replicas[r];
                        let (mut acc, _) = fold(&rep.log[..rep.commit as usize], self.budget);
                        let epoch = acc.logins;
                        if let Outcome::Ke2(a) = apply(&mut acc, cmd, self.budget) {
                            self.release(&mut s, epoch, a);
                        }
                    }
                }
                self.append(&mut s, r, cmd);
            }
            Action::Ke3 { to } => {
                let cmd = Cmd::Confirm { attempt: Attempt::H, now: s.now, valid: true };
                self.append(&mut s, to as usize, cmd);
            }
            Action::Register { to } => {
                s.register_sent = true;
                self.append(&mut s, to as usize, Cmd::Register);
            }
            Action::Replicate { from, to } => {
                let rep = &s.replicas[from as usize];
                s.network.insert(Msg::Append {
                    term: rep.term,
                    from,
                    to,
                    log: rep.log.clone(),
                    commit: rep.commit,
                });
            }
            Action::Drop(m) => {
                s.network.remove(&m);
            }
            Action::Deliver(Msg::Append { term, from, to, log, commit }) => {
                let rep = &mut s.replicas[to as usize];
                if term < rep.term {
                    s.network.insert(Msg::Ack { term: rep.term, from: to, to: from, matched: 0 });
                } else {
                    if term > rep.term {
                        rep.term = term;
                    }
                    // Same term: the sender is the one leader of this term.
                    rep.leader = None;
                    if !rep.log.starts_with(&log) {
                        rep.log = log.clone();
                    }
                    let c = commit.min(log.len() as u8);
                    rep.commit = rep.commit.max(c);
                    s.network.insert(Msg::Ack {
                        term,
                        from: to,
                        to: from,
                        matched: log.len() as u8,
                    });
                }
            }
            Action::Deliver(Msg::Ack { term, from, to, matched }) => {
                let r = to as usize;
                let rep = &mut s.replicas[r];
                if term > rep.term {
                    rep.term = term;
                    rep.leader = None;
                } else if term == rep.term
                    && let Some(ls) = &mut rep.leader
                {
                    let m = &mut ls.matched[from as usize];
                    if matched <= *m {
                        return None; // duplicate: no change
                    }
                    *m = matched;
                    self.advance_commit(&mut s, r);
                } else {
                    return None;
                }
            }
            Action::Elect { candidate, voter } => {
                let t = s.replicas[candidate as usize].term + 1;
                for r in [candidate, voter] {
                    let rep = &mut s.replicas[r as usize];
                    rep.term = t;
                    rep.leader = None;
                }
                let c = &mut s.replicas[candidate as usize];
                let mut matched = [0; N];
                matched[candidate as usize] = c.log.len() as u8;
                c.leader = Some(LeaderState { matched });
                s.max_term_seen = s.max_term_seen.max(t);
            }
            Action::Crash(r) => {
                s.crashes += 1;
                let rep = &mut s.replicas[r as usize];
                rep.commit = 0;
                rep.leader = None;
            }
            Action::Tick => s.now += 1,
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("ke2 within budget", |m: &VaultModel, s: &State| {
                s.released.values().all(|set| set.len() <= m.budget as usize)
            }),
            Property::always("acked registration kept", |_, s: &State| {
                let Some((i, t)) = s.acked_register else { return true };
                let holds = |rep: &Replica| {
                    rep.log.get(i as usize).is_some_and(|e| e.term == t && e.cmd == Cmd::Register)
                };
                s.replicas.iter().all(|rep| {
                    let leader_ok = rep.leader.is_none() || rep.term < t || holds(rep);
                    let commit_ok = (rep.commit as usize) <= i as usize || holds(rep);
                    leader_ok && commit_ok
                })
            }),
            Property::sometimes("ke2 released", |_, s: &State| !s.released.is_empty()),
            Property::sometimes("locked", |m: &VaultModel, s: &State| {
                s.replicas.iter().any(|r| fold(&r.log[..r.commit as usize], m.budget).0.locked)
            }),
            Property::sometimes("leader change", |_, s: &State| {
                s.replicas.iter().any(|r| r.leader.is_some() && r.term >= 2)
            }),
            Property::sometimes("login", |_, s: &State| s.logins_answered > 0),
        ]
    }
}
