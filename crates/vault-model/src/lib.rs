//! Model check of the vault's guess accounting (spec sections 4.8–4.10 and 7.10) over an
//! abstract replicated log, with [stateright].
//!
//! A second, separate model ([`oprf_keys`], section "OPRF key usage" below) checks which
//! registration's OPRF key each request evaluates (spec section 4.10.4), for one account on one
//! vault.
//!
//! # What is checked
//!
//! In every reachable state of each configuration below (crashes, message loss, duplication,
//! reordering and leader changes included):
//!
//! * **`ke2 within budget`**: the KE2s released for the account without an intervening valid
//!   KE3 never exceed its budget. Every KE2 is attributed to the *login epoch* of the charge it
//!   answers (the number of successful logins before that charge in the log); per epoch, the set
//!   of distinct attempts a KE2 was released for has at most `budget` members (section 4.10.3:
//!   a KE2 computed from a charge made before a login but sent after it is not a new guess).
//! * **`acked registration kept`**: once the registration was acknowledged to the client (at log
//!   index `i`, in term `t`), every leader of a term `>= t` holds that entry at `i`, and every
//!   replica whose commit index passes `i` holds it.
//!
//! The search is exhaustive within each configuration's bounds (depth-first, no depth bound).
//! `sometimes` properties show that the safety properties are not vacuous: the tests assert
//! that a released KE2, a spent budget, a lock, a successful login, a KE2 released after a login
//! restored a spent budget, an acknowledged registration followed by a leader crash and a new
//! leader, a registration acknowledged by a later leader, and two leader changes are each
//! reached.
//!
//! # Configurations and measured cost
//!
//! Three replicas throughout. `cargo test -p e2ee-backup-vault-model` runs the first nine rows
//! (unoptimised, as the workspace builds tests; two test threads on two cores): 28 s wall clock
//! and 135 to 192 MiB peak resident memory for them (three runs, `/usr/bin/time -v`; times per
//! row are with the other test thread busy; on the two-core machine the section "OPRF key usage"
//! was measured on, the same nine rows took 117 and 124 s over two runs). It then runs the tests
//! of that section (2 to 3 s). "States" counts generated states
//! (unique ones in brackets); "depth" is the longest path the search followed. A broken variant
//! is searched breadth-first with a depth bound raised one step at a time until a property
//! fails, so its counterexample is a shortest one.
//!
//! | test | configuration | states | depth | time |
//! |---|---|---|---|---|
//! | `correct_protocol_keeps_registration` | [`VaultModel::registration`]: registration proposed at the first leader, or sent by the client to any leader; 3 terms, 2 crashes | 62,796 (13,225) | 17 | 0.2 s |
//! | `correct_protocol_holds` | [`VaultModel::accounting`]: registered account, budget 1, attacker attempt `A1` and the honest client (one login), 2 terms, 1 crash, logs of 3 entries, 1 tick | 1,860,877 (350,299) | 20 | 5.7 s |
//! | `…_with_longer_logs` | accounting, logs of 4 entries, no tick | 2,011,720 (330,339) | 23 | 6.1 s |
//! | `…_with_two_elections` | accounting, 3 terms, no login | 4,901,317 (714,996) | 27 | 13.9 s |
//! | `…_with_budget_two` | accounting, budget 2, attempts `A1`, `A2`, logs of 4 entries, no login | 7,766,902 (1,190,172) | 25 | 22.8 s |
//! | `ke2_before_commit_is_caught` | accounting | 3,513 | counterexample of 3 actions | 0.01 s |
//! | `lease_read_budget_is_caught` | accounting | 62,646 | 7 actions | 0.4 s |
//! | `ack_before_fsync_is_caught` | registration; accounting | 10,169; 805,472 | 4; 8 actions | 4.2 s |
//! | `broken_variants_need_a_leader_change` | both, each broken variant, 1 term (no election) | at most 103,011 each | at most 18 | 0.3 s |
//!
//! `extended_configurations_hold` (ignored; `cargo test --release -p e2ee-backup-vault-model --
//! --ignored`: 2 min 10 s to 2 min 17 s and 360 to 381 MiB peak over two runs) searches larger
//! ones: accounting with 3 terms and the login (104,495,445 states, 14,662,224 unique), with
//! `A1`, `A2`, logs of 4 entries and the login (134,687,084; 21,223,330), budget 2 with
//! `A1..A3` and logs of 4 entries (17,720,527; 2,661,024), and the registration configuration
//! with `A1` charging after it (12,536,731; 1,776,959). No violation in any.
//!
//! # What is modelled
//!
//! One account. Each replica has a durable `term` and `log` (a list of [`Entry`]: the term it
//! was appended in and a [`Cmd`]), and volatile state: its commit index and, when it believes
//! it is leader, how far each peer is known to match. The applied state machine ([`Account`])
//! is not stored: it is the fold of [`apply`] over the committed prefix, exactly as a replica
//! rebuilds it.
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
//! # The network
//!
//! Unordered, duplicating and lossy, as stateright's `Network::UnorderedDuplicating` with
//! `LossyNetwork::Yes`: every message ever sent stays deliverable, any number of times, in any
//! order, or never. Loss is therefore on in every configuration: no message ever has to be
//! delivered. (An explicit `Drop` action is not needed: in such a network dropping a message
//! only takes away deliveries the search may already leave out, so it adds network states but
//! no replica state; the previous version of this model, with `Replicate` and `Drop` actions,
//! was searched to depth 8 only.)
//!
//! The set of messages is kept per term ([`TermRecord`]), which makes it small:
//!
//! * `Append`: a leader may send its whole log (AppendEntries with `prev_index = 0`) to a peer at
//!   any moment, so every log it had while leading its term counts as sent: for each length `l`
//!   from its length at election to its current one, the first `l` entries of its log in that
//!   term (which only grows). The `Append` of length `l` carries the commit index the leader had
//!   when its log first reached `l` (the earliest copy: followers learn commitment late, never
//!   early; nothing a leader answers depends on what followers know of it).
//! * `Ack`: the lengths each replica acknowledged to the leader of a term.
//! * Refusals: the higher terms with which replicas answered a replica's `Append`.
//!
//! # Actions
//!
//! * `Ke1 { attempt, to }`: a client sends a KE1 to a replica that believes it is leader, which
//!   appends `Charge`; the KE2 is released when the entry is committed and applied (see
//!   "answering"). The attacker has attempts `A1..A3` (distinct KE1s), the honest client `H`.
//!   Requests to non-leaders are refused and change nothing, so they are not modelled.
//! * `Ke3 { to }`: the honest client sends a valid KE3 for `H` once it was given a KE2 for `H`.
//!   The attacker never sends a valid KE3 (nor invalid ones: an invalid KE3 only removes a
//!   pending attempt and never restores the budget).
//! * `Register { to }`: the honest client registers (once).
//! * `Append { term, len, to }`: delivers an `Append`. A replica of a higher term refuses (answers
//!   with its term); otherwise it adopts the term and stops leading, keeps its log when the
//!   message's log is a prefix of it (a stale duplicate) or else replaces it by the leader's
//!   (Raft's truncate-and-append), raises its commit index to what the message carries, and
//!   acknowledges the length.
//! * `Ack { term, from, matched }`: the leader of `term` raises the peer's match and commits the
//!   highest index stored on a majority whose entry has its term (Raft's rule).
//! * `Refusal { to, term }`: the replica adopts the higher term and stops leading.
//! * `Elect { candidate, voter }`: simplified Raft election, atomic: the candidate takes
//!   `term + 1` (bounded by `max_term`) if it and one voter (a majority of 3) have a lower term
//!   and the candidate's log is at least as up to date as the voter's (last term, then length).
//!   Both adopt the term (durably); the voter stops leading. The third replica learns of the new
//!   term only by messages, so an old leader keeps acting until then.
//! * `Crash(r)`: a replica restarts at once, losing its volatile state (commit index, leadership,
//!   match indexes; under [`Variant::AckBeforeFsync`] also the appends it has not written); term
//!   and log survive. Bounded by `max_crashes`.
//! * `Persist(r)`: [`Variant::AckBeforeFsync`] only: a replica writes its appends to disk.
//! * `Tick`: time passes (bounded by `max_time`); attempts charged before are no longer live.
//!
//! **Answering.** When a leader's commit index advances, it applies the new entries; for each
//! entry of its own term it answers the client: a `Charge` whose result is "KE2" releases a KE2,
//! a successful `Confirm` is a login, a `Register` is acknowledged. Entries of earlier terms are
//! applied but not answered (their leader is gone; the client retries).
//!
//! # Broken variants ([`Variant`])
//!
//! Each is caught, and each keeps both properties when there is only one leader (no election:
//! `broken_variants_need_a_leader_change`), so each counterexample is a replication bug.
//!
//! * [`Variant::Ke2BeforeCommit`]: the leader releases the KE2 as soon as it appends the charge,
//!   from the fold of its whole local log. Caught by `ke2 within budget` (3 actions): the leader
//!   releases a KE2 for `H` and appends the charge; the two other replicas, which lack it, elect
//!   a leader, which charges the same budget again and releases a KE2 for `A1`. (A deposed
//!   leader that keeps releasing from its own log is caught the same way.)
//! * [`Variant::LeaseReadBudget`]: the leader decides the KE1 from a local read (a lease read)
//!   of its applied state (its committed prefix) plus its own proposals of its current term,
//!   appends the charge, and releases the KE2 once that charge commits, as decided: it does not
//!   first commit an entry of its term, so after a leader change its commit index can lag behind
//!   charges an earlier leader committed and answered. Caught by `ke2 within budget`: the first
//!   leader's `Append` carrying `A1` reaches a follower before `A1` commits; that follower is
//!   elected, reads a budget without `A1` and grants `H`; the old leader's ack arrives, `A1`
//!   commits and is answered, then `H` commits and is answered (7 actions).
//! * [`Variant::AckBeforeFsync`]: a follower acknowledges an `Append` before writing it; a crash
//!   before [`Action::Persist`] loses it. Caught by `acked registration kept` (4 actions: the
//!   follower acknowledges the registration and crashes, the other follower is elected with it
//!   as voter, the acknowledgement reaches the first leader, which acknowledges the registration
//!   while a leader of a later term lacks it) and by `ke2 within budget` (8 actions: the same
//!   with a charge, then a second attempt charged and answered by the new leader).
//!
//! # Reductions and bounds
//!
//! Sound reductions: the network per term (above); acknowledgements and refusals that can no
//! longer change anything are forgotten (to a replica that no longer leads their term, of
//! lengths its leader already knows, carrying a term not above the receiver's); a delivery that
//! changes nothing is left out; a follower's crash is left out unless it loses unwritten appends
//! (it would only lose the follower's commit index, which no answer depends on and whose loss
//! cannot break the commit clause); the attacker's attempts are interchangeable, so attempt `k`
//! is sent only once attempt `k - 1` is in the leader's log. Bounds (beyond the configuration's):
//! a client sends a given request to a given leader at most once per term and tick (a retry goes
//! to another leader, or comes after a tick), the honest client logs in once, and registers once.
//! Leaders write their own appends to disk in every variant.
//!
//! # What is abstracted away
//!
//! Cryptography (OPAQUE, tickets, HPKE): a KE2 is a token, KE3 validity a flag. Token, delete and
//! re-registration rules, phantom records (all in the [`oprf_keys`] model, for key usage only),
//! serials (attempt ids are distinct by construction), real time (one tick), log compaction,
//! snapshots, membership changes, vote messages (elections are atomic, with one voter),
//! AppendEntries consistency checks (whole logs are sent), and client-side behaviour beyond
//! sending requests.
//!
//! # Limitations
//!
//! * The evidence is exhaustive for small scopes only (3 replicas, budgets 1 and 2, up to 3
//!   attacker attempts, 3 terms, 2 crashes, logs of 4 entries, 1 tick): a bounded model check,
//!   not a proof for every size.
//! * `LeaseReadBudget` isolates the stale *applied state* of a leader after a leader change, not
//!   a deposed leader serving a read while a new leader charges: a deposed leader can release a
//!   KE2 only without a majority round trip in its term (its charge can never commit), and a
//!   variant that releases without one is also broken with no deposed leader acting (a
//!   legitimate leader's released charge is lost at the next election): that is
//!   `Ke2BeforeCommit`, whose shortest counterexample needs no deposed leader.
//! * Followers learn commit indexes only from the earliest copy of each `Append`: a subset of
//!   Raft's behaviours, so the commit clause of `acked registration kept` is checked against the
//!   commit indexes followers can have in that subset.
//!
//! # OPRF key usage ([`oprf_keys`])
//!
//! Every OPRF evaluation under a registration's key is a password guess against it: with one KE2
//! of that registration (the masked envelope) and the evaluation of a blinded candidate, the
//! candidate is tested offline. So every evaluation must count against the registration whose
//! key it used, made before that registration existed included, unless it is that
//! registration's own completion (spec section 4.10.4). [`oprf_keys::OprfModel`] checks this for
//! three ways of choosing keys ([`oprf_keys::KeyDesign`]):
//!
//! | design | RegisterStart evaluates | a registration stores | a KE1 without a registration (fake KE2) evaluates |
//! |---|---|---|---|
//! | `PerAccount` (today) | the account's key (fleet seed, account id) | the account's key | the account's key (RFC 9807's fake KE2, as `opaque-ke` computes it) |
//! | `PerVersion` | the key of (account, stored version + 1) | the key of (account, its version) | the key of (account, stored version) |
//! | `FreshPerRegisterStart` (the fix) | a fresh key, carried in its ticket | its ticket's key | the account's key, which no registration stores |
//!
//! Two switches: the *token rule* (RegisterStart on a registered account needs the login token;
//! without a registration none is needed) and *tombstones* (Delete keeps the record's version;
//! without, it erases the record and the version restarts at 0, as the spec's Delete did).
//!
//! One account on one vault: replication is the subject of the model above and does not change
//! which key a request evaluates (every replica decides from the same committed record).
//!
//! **State** ([`oprf_keys::OprfState`]). The record: `Unregistered { version }` (no record or a
//! phantom, version 0, or a tombstone) or `Registered { version, key, ticket }` (the key its logins
//! evaluate, and the id of the ticket that completed it). Whether the honest client holds the
//! login token; the honest client's registration ticket (id, key evaluated, announced version);
//! the number of RegisterStarts so far (ticket ids, and fresh key ids); a counter per action. The
//! ghost: the set of OPRF evaluations made, each a key and an [`oprf_keys::Eval`]: a
//! RegisterStart (uncharged; by whom, and its ticket id) or a KE1 (charged; by whom, and to which
//! registration, or to an unregistered record's budget); and facts for the `sometimes`
//! properties.
//!
//! **Actions** ([`oprf_keys::OprfAction`]):
//!
//! * `AttackerRegisterStart`: one uncharged evaluation under the key the design says; refused on
//!   a registered account under the token rule. The attacker never finishes a registration.
//! * `AttackerLoginStart`: one evaluation, charged to the live registration (under its key), or,
//!   without one, to the phantom or tombstone (a fake KE2, under the key the design says).
//! * `HonestRegisterStart`: the first registration, a retry (a lost RegisterChallenge: the new
//!   ticket replaces the old), or, holding the login token, a password change. Announces stored
//!   version + 1.
//! * `HonestRegisterFinish`: with the client's last ticket; refused (stale) unless its version is
//!   exactly stored version + 1; stores a registration with the design's key, clears the token.
//! * `HonestLogin`: KE1 charged to the live registration, then a valid KE3: the client holds the
//!   token.
//! * `HonestDelete`: with the token; leaves a tombstone or erases the record.
//!
//! The honest client makes one request at a time (no login or delete while it registers).
//!
//! **Invariants.** `every guess under the live key is charged to it`
//! ([`oprf_keys::GUESSES_CHARGED`]): while the account has a registration, every evaluation the
//! attacker made under its key, whenever made, is a KE1 charged to that registration. A
//! RegisterStart, a KE1 charged to a phantom (whose budget the registration replaces with a full
//! one) or to an earlier registration with the same key are guesses this registration's budget
//! never paid for. The honest client's evaluations are not guesses (its own password, blinded, in
//! the sealed channel), so this invariant leaves them out and the "own completion" exception is
//! not needed for it. The stricter `the live key is evaluated only by its charges and its
//! completion` ([`oprf_keys::KEY_PRIVATE`]) counts the honest client's evaluations too and exempts
//! only charges to the registration and the RegisterStart whose ticket completed it; the tests
//! assert it for the fresh design only (in the others an honest retried RegisterStart, which
//! reveals nothing, already breaks it).
//!
//! **Bounds** ([`oprf_keys::OprfModel::new`]): 2 attacker RegisterStarts, 2 attacker KE1s, 4
//! honest RegisterStarts, 2 honest logins, 2 deletes; from no record and from a registration
//! (version 1, honest client without a token). Searches are exhaustive within them.
//!
//! **Abstracted away.** Keys are identities (no cryptography; keys of different accounts are
//! distinct by derivation, so one account suffices). Budget counts and locking: "charged" means a
//! KE1 paid one unit; how many may be paid is the accounting model's property above, and a lock
//! only refuses requests, so leaving it out only adds behaviours (sound for an `always`
//! property). Ticket and token expiry (they only refuse). The attacker's RegisterFinish
//! (squatting an account without a registration: that registration holds the attacker's own
//! password, so guesses against it mean nothing; it could only make the honest client's
//! RegisterFinish stale, which is therefore never reached here). The attacker never sees the
//! honest client's tickets or replies (the sealed channel, section 4.4). A login is one step.
//!
//! **Results.** `cargo test -p e2ee-backup-vault-model --test oprf_keys` (unoptimised, two test
//! threads on two cores): 1.9 to 3.0 s wall clock and 4.4 MiB peak resident memory for the test
//! binary (three runs, `/usr/bin/time`). A design that holds is searched depth-first, to the end;
//! a broken one breadth-first with a depth bound raised one step at a time, so its counterexample
//! is a shortest one (the tests accept each ordering of independent steps that is as short).
//! States of a broken design are those of the last search.
//!
//! | test | configuration | states | depth or counterexample | time |
//! |---|---|---|---|---|
//! | `fresh_keys_hold` | fresh keys, token rule, tombstones (the fix) | 30,632 (22,610) | 16 | 1.3 to 1.6 s |
//! | `fresh_keys_hold_without_token_rule` | fresh keys, no token rule, Delete erases | 68,661 (48,381) | 16 | 1.8 to 3.0 s |
//! | `per_account_keys_are_caught` | today: per account, no token rule, Delete erases; registered; no record | 14; 106 | 1; 3 actions | < 0.05 s |
//! | `per_account_keys_with_token_rule_are_caught` | per account, token rule, tombstones: no record; registered; no record without attacker RegisterStarts or honest logins | 96; 94; 27 | 3; 4; 3 actions | < 0.05 s |
//! | `per_account_keys_leak_after_a_delete` | per account, token rule, tombstones, registered, no attacker KE1 | 63 | 5 actions | < 0.05 s |
//! | `per_version_keys_are_caught` | per version, token rule, tombstones: no record; registered; registered without the token rule | 96; 208; 203 | 3; 5; 4 actions | < 0.05 s |
//! | `per_version_keys_leak_only_through_register_start` | per version, token rule, no attacker RegisterStart: tombstones (holds); Delete erases | 2,485 (2,067); 121 | 14; 5 actions | 0.2 s |
//!
//! Every `sometimes` property is reached in `fresh_keys_hold_without_token_rule`, all but "attacker
//! RegisterStart on a registered account" (which the token rule forbids) in `fresh_keys_hold`: a
//! registration completed, an attacker RegisterStart before a registration, an attacker KE1
//! without a registration then a registration, an attacker KE1 charged to the live registration,
//! a re-registration after a login, a registration after a delete, a registration by a retried
//! RegisterStart. `fresh_keys_hold_with_larger_bounds` (ignored; `cargo test --release -p
//! e2ee-backup-vault-model --test oprf_keys -- --ignored`: 4.2 and 4.6 s, 14 MiB, two runs)
//! searches both fresh configurations with 3 attacker RegisterStarts, 3 attacker KE1s and 3
//! honest logins: 281,632 states (185,616 unique) and 879,539 (522,825), depth 20, no violation.
//!
//! **Counterexamples** (ticket ids count RegisterStarts from 0):
//!
//! * Today, registered (1 action): the attacker's RegisterStart evaluates the account's key, the
//!   live registration's, uncharged. With one charged KE1 for the envelope, every further guess
//!   costs one RegisterStart. From no record (3): the honest client registers (RegisterStart,
//!   RegisterFinish), then the same RegisterStart.
//! * Per account with the token rule (the token rule alone is not enough). From no record (3):
//!   honest RegisterStart, the attacker's RegisterStart (no token: no registration yet), honest
//!   RegisterFinish, which stores the key the attacker evaluated. Registered (4): the attacker's
//!   KE1, charged to registration 0; honest login; password change (RegisterStart, RegisterFinish
//!   with the token): the new registration has the same key, and the KE1 was paid by the old
//!   registration's budget. Without attacker RegisterStarts and password changes (3): the
//!   attacker's KE1 on the phantom (a fake KE2 under the account's key, charged to the phantom);
//!   honest RegisterStart, RegisterFinish (with a full budget). After a delete, without attacker
//!   KE1s (5): honest login, Delete (a tombstone), honest RegisterStart, the attacker's
//!   RegisterStart (no token: no registration), honest RegisterFinish.
//! * Per version, token rule and tombstones. From no record (3), the "next version" attack:
//!   honest RegisterStart (announces version 1), the attacker's RegisterStart (also announces 1:
//!   evaluates the key of (account, 1)), honest RegisterFinish of version 1, whose key that is.
//!   Registered (5): honest login, Delete (the tombstone keeps version 1), honest RegisterStart
//!   (version 2), the attacker's RegisterStart (the key of version 2), honest RegisterFinish.
//!   Without the token rule (4): honest login, honest RegisterStart (version 2), the attacker's
//!   RegisterStart on the registered account (version 2), honest RegisterFinish. Without
//!   attacker RegisterStarts the design holds with tombstones; if Delete erases the record (5):
//!   the attacker's KE1 charged to registration 0 under the key of (account, 1); honest login;
//!   Delete (version back to 0); honest RegisterStart and RegisterFinish of version 1 again,
//!   under the same key.
//! * Fresh keys: none, with or without the token rule and tombstones. Each RegisterStart's key is
//!   stored only by the RegisterFinish of its own ticket, and a fake KE2's key by none.
//!
//! **Limitations.** For the fresh design the invariant also follows from a short argument (the
//! sentence above); the search confirms it over every interleaving within the bounds and records
//! what the implementation must keep: RegisterFinish stores the key of the ticket it presents
//! (bound to the account and version), a fake KE2 uses a key no registration stores, and the
//! attacker cannot obtain the honest client's ticket. The search is bounded, single-account and
//! single-vault.
//!
//! One file, though over 700 lines: a stateright model is one state type, one action type and
//! one transition function, whose cases must be read side by side to see that every one keeps
//! the properties.
#![forbid(unsafe_code)]

pub mod oprf_keys;

use std::hash::{Hash, Hasher};

use stateright::{Model, Property};

/// Number of replicas.
pub const N: usize = 3;

/// Longest log the model supports (lengths are kept in `u8` bit sets).
pub const MAX_LOG: usize = 7;

/// Highest term the model supports.
pub const MAX_TERM: usize = 4;

/// A login attempt (its id stands for `attempt_id`, derived from account and KE1 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Attempt {
    A1,
    A2,
    A3,
    /// The honest client's attempt.
    H,
}

impl Attempt {
    fn bit(self) -> u8 {
        1 << self as u8
    }
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

/// A log held inline (the model's states are plain values: cloning one is a copy).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Log {
    len: u8,
    /// Entries past `len` are always [`Log::FILLER`], so derived equality is equality of logs.
    entries: [Entry; MAX_LOG],
}

impl Log {
    const FILLER: Entry = Entry { term: 0, cmd: Cmd::Register };

    /// The empty log.
    pub const EMPTY: Log = Log { len: 0, entries: [Log::FILLER; MAX_LOG] };

    /// A log holding `entries` (at most [`MAX_LOG`]).
    pub fn from_slice(entries: &[Entry]) -> Log {
        let mut log = Log::EMPTY;
        for &e in entries {
            log.push(e);
        }
        log
    }

    /// Appends one entry.
    pub fn push(&mut self, e: Entry) {
        self.entries[self.len as usize] = e;
        self.len += 1;
    }
}

impl std::ops::Deref for Log {
    type Target = [Entry];
    fn deref(&self) -> &[Entry] {
        &self.entries[..self.len as usize]
    }
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The bytes a state is hashed from: every field, lengths first, so distinct states give
/// distinct bytes. One hasher call per state (the derived hash makes one per field, and the
/// tests run unoptimised).
struct Packer {
    buf: [u8; 512],
    len: usize,
}

impl Packer {
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    fn log(&mut self, log: &Log) {
        self.put(&[log.len]);
        for e in log.iter() {
            let (kind, attempt, now, valid) = match e.cmd {
                Cmd::Register => (0, 0, 0, false),
                Cmd::Charge { attempt, now } => (1, attempt as u8, now, false),
                Cmd::Confirm { attempt, now, valid } => (2, attempt as u8, now, valid),
            };
            self.put(&[e.term, kind | attempt << 2 | u8::from(valid) << 4, now]);
        }
    }
}

impl Hash for State {
    fn hash<H: Hasher>(&self, h: &mut H) {
        let mut p = Packer { buf: [0; 512], len: 0 };
        for rep in &self.replicas {
            p.put(&[rep.term, rep.commit]);
            match rep.leader {
                Some(m) => p.put(&[1, m[0], m[1], m[2]]),
                None => p.put(&[0]),
            }
            p.log(&rep.log);
            match &rep.disk {
                Some(disk) => {
                    p.put(&[1]);
                    p.log(disk);
                }
                None => p.put(&[0]),
            }
        }
        p.put(&[self.nterms]);
        for rec in &self.terms[..self.nterms as usize] {
            p.put(&[rec.leader, rec.base]);
            p.log(&rec.log);
            p.put(&rec.commits[rec.base as usize..=rec.log.len as usize]);
            p.put(&rec.acks);
        }
        p.put(&self.refusals);
        p.put(&self.released);
        let (acked, i, t) = self.acked_register.map_or((0, 0, 0), |(i, t)| (1, i, t));
        p.put(&[
            self.now,
            self.crashes,
            u8::from(self.register_sent),
            u8::from(self.honest_has_ke2),
            acked,
            i,
            t,
            u8::from(self.leader_crashed_after_ack),
            self.logins_answered,
        ]);
        h.write(&p.buf[..p.len]);
    }
}

/// A replica.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Replica {
    /// Current term (durable).
    pub term: u8,
    /// The log as the replica uses it (durable, except under [`Variant::AckBeforeFsync`]).
    pub log: Log,
    /// Commit index (volatile: lost in a crash).
    pub commit: u8,
    /// `Some(matched)` while it believes it is leader: per replica, the highest log length
    /// known to be stored there (volatile).
    pub leader: Option<[u8; N]>,
    /// What its disk holds, when that differs from `log` (only under
    /// [`Variant::AckBeforeFsync`]: appends acknowledged but not yet written).
    pub disk: Option<Log>,
}

/// What the network holds for one term: every `Append` its leader sent, and every
/// acknowledgement of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TermRecord {
    /// The one replica elected in this term.
    pub leader: u8,
    /// Its log length when elected.
    pub base: u8,
    /// Its log while it led this term (it only grows: a leader never truncates its own log).
    /// An `Append` of its first `l` entries, for every `l` from `base`, may be in flight to each
    /// peer, any number of times.
    pub log: Log,
    /// For each length `l` from `base`, the commit index the leader had when its log first
    /// reached `l`: what the `Append` of length `l` tells about commitment.
    pub commits: [u8; MAX_LOG + 1],
    /// Per replica, the set (bit `l`) of lengths it acknowledged to this leader and that are
    /// still in flight and news to it.
    pub acks: [u8; N],
}

const NO_TERM: TermRecord =
    TermRecord { leader: 0, base: 0, log: Log::EMPTY, commits: [0; MAX_LOG + 1], acks: [0; N] };

/// The whole system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct State {
    pub replicas: [Replica; N],
    /// `terms[t - 1]` describes term `t`, for `t <= nterms` (the others are unused).
    pub terms: [TermRecord; MAX_TERM],
    pub nterms: u8,
    /// Per replica, the set (bit `t`) of terms carried by refusals in flight to it (a replica
    /// of a higher term answered its `Append`), above its own term.
    pub refusals: [u8; N],
    pub now: u8,
    pub crashes: u8,
    pub register_sent: bool,
    /// Ghost: per login epoch, the set of attempts (bit per [`Attempt`]) a KE2 was released for.
    pub released: [u8; MAX_LOG + 1],
    /// Ghost: the honest client holds a KE2 for `H` (and may send its KE3).
    pub honest_has_ke2: bool,
    /// Ghost: the acknowledged registration `(index, term)`.
    pub acked_register: Option<(u8, u8)>,
    /// Ghost: a leader crashed after the registration was acknowledged.
    pub leader_crashed_after_ack: bool,
    /// Ghost: successful logins answered to the honest client.
    pub logins_answered: u8,
}

impl State {
    fn term(&mut self, t: u8) -> &mut TermRecord {
        &mut self.terms[t as usize - 1]
    }
}

/// Which protocol is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The protocol of the design: a KE2 is released only by the leader that committed its
    /// charge, with the outcome of applying the committed log.
    Correct,
    /// Broken: the KE2 is released as soon as the leader appends the charge.
    Ke2BeforeCommit,
    /// Broken: the KE1 is decided by a local read (a lease read) of the leader's applied state
    /// and own proposals, without first committing an entry of its term; the KE2 is released
    /// when the charge commits, as that read decided.
    LeaseReadBudget,
    /// Broken: a follower acknowledges an append before it is on disk (fsync skipped).
    AckBeforeFsync,
}

/// Where the search starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Nothing registered; the honest client may register.
    Empty,
    /// The registration is in the leader's log, not yet replicated.
    RegisterProposed,
    /// The registration is on every replica, committed and acknowledged.
    Registered,
}

/// An action of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Ke1 {
        attempt: Attempt,
        to: u8,
    },
    Ke3 {
        to: u8,
    },
    Register {
        to: u8,
    },
    /// Deliver to `to` the `Append` of length `len` of the leader of `term`.
    Append {
        term: u8,
        len: u8,
        to: u8,
    },
    /// Deliver to the leader of `term` the acknowledgement of `matched` entries by `from`.
    Ack {
        term: u8,
        from: u8,
        matched: u8,
    },
    /// Deliver to `to` a refusal carrying `term`.
    Refusal {
        to: u8,
        term: u8,
    },
    Elect {
        candidate: u8,
        voter: u8,
    },
    Crash(u8),
    /// A replica writes its acknowledged appends to disk ([`Variant::AckBeforeFsync`]).
    Persist(u8),
    Tick,
}

/// The model and its bounds.
#[derive(Clone, Debug)]
pub struct VaultModel {
    pub variant: Variant,
    pub budget: u8,
    /// How many distinct attacker attempts (`A1..`) exist, 0 to 3.
    pub attackers: usize,
    /// Whether the honest client logs in (once).
    pub with_login: bool,
    /// Highest term an election may reach (the initial leader has term 1), at most
    /// [`MAX_TERM`].
    pub max_term: u8,
    pub max_crashes: u8,
    /// Longest log a leader may append to, at most [`MAX_LOG`].
    pub max_log: usize,
    pub max_time: u8,
    pub starts: Vec<Start>,
}

impl VaultModel {
    /// The accounting configuration: registered account, budget 1, one attacker attempt and
    /// the honest client, one election, one crash, logs of 3 entries, one tick.
    pub fn accounting(variant: Variant) -> Self {
        VaultModel {
            variant,
            budget: 1,
            attackers: 1,
            with_login: true,
            max_term: 2,
            max_crashes: 1,
            max_log: 3,
            max_time: 1,
            starts: vec![Start::Registered],
        }
    }

    /// The registration configuration: the registration proposed at the first leader, or sent
    /// by the client to any leader; no logins; two elections, two crashes.
    pub fn registration(variant: Variant) -> Self {
        VaultModel {
            variant,
            budget: 1,
            attackers: 0,
            with_login: false,
            max_term: 3,
            max_crashes: 2,
            max_log: 2,
            max_time: 0,
            starts: vec![Start::RegisterProposed, Start::Empty],
        }
    }

    fn release(&self, s: &mut State, epoch: u8, attempt: Attempt) {
        s.released[epoch as usize] |= attempt.bit();
        if attempt == Attempt::H {
            s.honest_has_ke2 = true;
        }
    }

    /// What a lease read of [`Variant::LeaseReadBudget`] sees: the leader's applied state (its
    /// committed prefix) and its own proposals of its current term.
    fn lease_view(&self, rep: &Replica) -> Account {
        let c = rep.commit as usize;
        let (mut acc, _) = fold(&rep.log[..c], self.budget);
        for e in &rep.log[c..] {
            if e.term == rep.term {
                apply(&mut acc, e.cmd, self.budget);
            }
        }
        acc
    }

    /// Commits what a majority stores in the leader's term, applies and answers.
    fn advance_commit(&self, s: &mut State, r: usize) {
        let rep = &s.replicas[r];
        let Some(matched) = &rep.leader else { return };
        let mut new_commit = rep.commit;
        for n in (rep.commit as usize + 1)..=rep.log.len() {
            let stored = matched.iter().filter(|&&m| m as usize >= n).count();
            if stored * 2 > N && rep.log[n - 1].term == rep.term {
                new_commit = n as u8;
            }
        }
        if new_commit == rep.commit {
            return;
        }
        let old = rep.commit as usize;
        let term = rep.term;
        let log = rep.log;
        s.replicas[r].commit = new_commit;
        let (_, outs) = fold(&log[..new_commit as usize], self.budget);
        for i in old..new_commit as usize {
            if log[i].term != term {
                continue; // its leader is gone; the client retries
            }
            let (epoch, out) = outs[i];
            match (self.variant, out, log[i].cmd) {
                (Variant::Ke2BeforeCommit, ..) => {} // released when appended
                (Variant::LeaseReadBudget, _, Cmd::Charge { attempt, .. }) => {
                    self.release(s, epoch, attempt); // decided by the lease read
                }
                (_, Outcome::Ke2(a), _) => self.release(s, epoch, a),
                _ => {}
            }
            match out {
                Outcome::LoginOk => s.logins_answered += 1,
                Outcome::Registered if s.acked_register.is_none() => {
                    s.acked_register = Some((i as u8, term));
                }
                _ => {}
            }
        }
    }

    /// A leader appends a command (and writes it to disk: its own appends are durable in every
    /// variant).
    fn append(&self, s: &mut State, r: usize, cmd: Cmd) {
        let rep = &mut s.replicas[r];
        let entry = Entry { term: rep.term, cmd };
        rep.log.push(entry);
        rep.disk = None;
        let len = rep.log.len() as u8;
        if let Some(matched) = &mut rep.leader {
            matched[r] = len;
        }
        let (term, commit) = (rep.term, rep.commit);
        let rec = s.term(term);
        rec.log.push(entry);
        rec.commits[len as usize] = commit;
    }

    fn init_state(&self, start: Start) -> State {
        let reg = Entry { term: 1, cmd: Cmd::Register };
        let (leader_log, follower_log, commit, acked) = match start {
            Start::Empty => (Log::EMPTY, Log::EMPTY, 0, None),
            Start::RegisterProposed => (Log::from_slice(&[reg]), Log::EMPTY, 0, None),
            // The followers' acks were delivered; no later `Append` told them the commit yet.
            Start::Registered => {
                (Log::from_slice(&[reg]), Log::from_slice(&[reg]), 1, Some((0, 1)))
            }
        };
        let (llen, flen) = (leader_log.len() as u8, follower_log.len() as u8);
        let replica = |leader: bool| Replica {
            term: 1,
            log: if leader { leader_log } else { follower_log },
            commit: if leader { commit } else { 0 },
            leader: leader.then_some([llen, flen, flen]),
            disk: None,
        };
        let mut terms = [NO_TERM; MAX_TERM];
        terms[0].log = leader_log;
        State {
            replicas: [replica(true), replica(false), replica(false)],
            terms,
            nterms: 1,
            refusals: [0; N],
            now: 0,
            crashes: 0,
            register_sent: start != Start::Empty,
            released: [0; MAX_LOG + 1],
            honest_has_ke2: false,
            acked_register: acked,
            leader_crashed_after_ack: false,
            logins_answered: 0,
        }
    }

    fn deliver_append(&self, s: &mut State, term: u8, len: u8, to: u8) {
        let rec = *s.term(term);
        let rep = &mut s.replicas[to as usize];
        if rep.term > term {
            s.refusals[rec.leader as usize] |= 1 << rep.term;
            return;
        }
        rep.term = term;
        rep.leader = None; // same term: the sender is the one leader of this term
        let log = &rec.log[..len as usize];
        if !rep.log.starts_with(log) {
            // Raft's truncate-and-append (a prefix of the receiver's log is a stale duplicate).
            if self.variant == Variant::AckBeforeFsync && rep.disk.is_none() {
                rep.disk = Some(rep.log);
            }
            rep.log = Log::from_slice(log);
            // Only a broken variant truncates a committed entry; keep the index in range.
            rep.commit = rep.commit.min(len);
        }
        rep.commit = rep.commit.max(rec.commits[len as usize].min(len));
        s.term(term).acks[to as usize] |= 1 << len;
    }
}

/// Forgets messages that can no longer change anything, so that states differing only in them
/// are one state: acknowledgements to a replica that no longer leads their term, or of lengths
/// its leader already knows; refusals carrying a term not above the receiver's.
fn canonicalise(s: &mut State) {
    for t in 0..s.nterms as usize {
        let rec = &mut s.terms[t];
        let leader = &s.replicas[rec.leader as usize];
        match leader.leader {
            Some(matched) if leader.term as usize == t + 1 => {
                for (acks, m) in rec.acks.iter_mut().zip(matched) {
                    *acks &= !((2u16 << m) - 1) as u8;
                }
            }
            _ => rec.acks = [0; N],
        }
    }
    for (refusals, rep) in s.refusals.iter_mut().zip(&s.replicas) {
        *refusals &= !((2u16 << rep.term) - 1) as u8;
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
        assert!(self.max_log <= MAX_LOG && usize::from(self.max_term) <= MAX_TERM);
        assert!(self.attackers <= ATTACKER.len());
        self.starts.iter().map(|&start| self.init_state(start)).collect()
    }

    fn actions(&self, s: &State, actions: &mut Vec<Action>) {
        let now = s.now;
        for (r, rep) in s.replicas.iter().enumerate() {
            let to = r as u8;
            if rep.leader.is_some() && rep.log.len() < self.max_log {
                // Bound: a client sends a given request to a given leader at most once per term
                // and tick (a retry goes to another leader, or comes after a tick).
                let fresh = |cmd: Cmd| !rep.log.iter().any(|e| e.term == rep.term && e.cmd == cmd);
                // Symmetry reduction: the attacker's attempts are interchangeable, so attempt k
                // is sent only once attempt k-1 is in this leader's log.
                for (k, &attempt) in ATTACKER[..self.attackers].iter().enumerate() {
                    let prev_sent = k == 0
                        || rep.log.iter().any(|e| {
                            matches!(e.cmd, Cmd::Charge { attempt: p, .. } if p == ATTACKER[k - 1])
                        });
                    if prev_sent && fresh(Cmd::Charge { attempt, now }) {
                        actions.push(Action::Ke1 { attempt, to });
                    }
                }
                if self.with_login && s.logins_answered == 0 {
                    if fresh(Cmd::Charge { attempt: Attempt::H, now }) {
                        actions.push(Action::Ke1 { attempt: Attempt::H, to });
                    }
                    let confirm = Cmd::Confirm { attempt: Attempt::H, now, valid: true };
                    if s.honest_has_ke2 && fresh(confirm) {
                        actions.push(Action::Ke3 { to });
                    }
                }
                if !s.register_sent {
                    actions.push(Action::Register { to });
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
            // A follower's crash only loses its commit index, which no answer depends on (and
            // losing it cannot break the commit clause of the registration property): left out
            // unless it loses unwritten appends.
            if s.crashes < self.max_crashes && (rep.leader.is_some() || rep.disk.is_some()) {
                actions.push(Action::Crash(to));
            }
            if rep.disk.is_some() {
                actions.push(Action::Persist(to));
            }
            for t in (rep.term + 1)..8 {
                if s.refusals[r] & (1 << t) != 0 {
                    actions.push(Action::Refusal { to, term: t });
                }
            }
        }
        for (ti, rec) in s.terms[..s.nterms as usize].iter().enumerate() {
            let term = ti as u8 + 1;
            for len in rec.base..=rec.log.len() as u8 {
                for p in 0..N as u8 {
                    if p != rec.leader {
                        actions.push(Action::Append { term, len, to: p });
                    }
                }
            }
            // After `canonicalise`, every ack left is news to a current leader.
            for p in 0..N {
                for l in 0..=MAX_LOG as u8 {
                    if rec.acks[p] & (1 << l) != 0 {
                        actions.push(Action::Ack { term, from: p as u8, matched: l });
                    }
                }
            }
        }
        if s.now < self.max_time {
            actions.push(Action::Tick);
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = *last;
        match action {
            Action::Ke1 { attempt, to } => {
                let r = to as usize;
                let cmd = Cmd::Charge { attempt, now: s.now };
                match self.variant {
                    Variant::Correct | Variant::AckBeforeFsync => {}
                    Variant::Ke2BeforeCommit => {
                        let (mut acc, _) = fold(&s.replicas[r].log, self.budget);
                        let epoch = acc.logins;
                        if let Outcome::Ke2(a) = apply(&mut acc, cmd, self.budget) {
                            self.release(&mut s, epoch, a);
                        }
                    }
                    Variant::LeaseReadBudget => {
                        let mut acc = self.lease_view(&s.replicas[r]);
                        if !matches!(apply(&mut acc, cmd, self.budget), Outcome::Ke2(_)) {
                            return None; // refused at once, nothing appended
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
            Action::Append { term, len, to } => {
                self.deliver_append(&mut s, term, len, to);
                canonicalise(&mut s);
                // A delivery that changes nothing (a duplicate) is left out.
                let (r, t) = (to as usize, term as usize - 1);
                let same = s.replicas[r] == last.replicas[r]
                    && s.terms[t].acks == last.terms[t].acks
                    && s.refusals == last.refusals;
                return (!same).then_some(s);
            }
            Action::Ack { term, from, matched } => {
                let r = s.term(term).leader as usize;
                let m = s.replicas[r].leader.as_mut().expect("acks only go to a current leader");
                m[from as usize] = matched;
                self.advance_commit(&mut s, r);
                canonicalise(&mut s);
            }
            Action::Refusal { to, term } => {
                let rep = &mut s.replicas[to as usize];
                rep.term = term;
                rep.leader = None;
                canonicalise(&mut s);
            }
            Action::Elect { candidate, voter } => {
                let t = s.replicas[candidate as usize].term + 1;
                // A term is won once: two of the three replicas reach it.
                assert_eq!(s.nterms + 1, t);
                for r in [candidate, voter] {
                    let rep = &mut s.replicas[r as usize];
                    rep.term = t;
                    rep.leader = None;
                }
                let c = &mut s.replicas[candidate as usize];
                let len = c.log.len() as u8;
                let mut matched = [0; N];
                matched[candidate as usize] = len;
                c.leader = Some(matched);
                let mut rec = TermRecord { leader: candidate, base: len, log: c.log, ..NO_TERM };
                rec.commits[len as usize] = c.commit;
                s.nterms = t;
                *s.term(t) = rec;
                canonicalise(&mut s);
            }
            Action::Crash(r) => {
                s.crashes += 1;
                if s.replicas[r as usize].leader.is_some() && s.acked_register.is_some() {
                    s.leader_crashed_after_ack = true;
                }
                let rep = &mut s.replicas[r as usize];
                rep.commit = 0;
                rep.leader = None;
                if let Some(disk) = rep.disk.take() {
                    rep.log = disk;
                }
                canonicalise(&mut s);
            }
            Action::Persist(r) => s.replicas[r as usize].disk = None,
            Action::Tick => s.now += 1,
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("ke2 within budget", |m: &VaultModel, s: &State| {
                s.released.iter().all(|set| set.count_ones() <= u32::from(m.budget))
            }),
            Property::always("acked registration kept", |_, s: &State| {
                let Some((i, t)) = s.acked_register else { return true };
                let holds = |rep: &Replica| {
                    rep.log.get(i as usize).is_some_and(|e| e.term == t && e.cmd == Cmd::Register)
                };
                s.replicas.iter().all(|rep| {
                    let leader_ok = rep.leader.is_none() || rep.term < t || holds(rep);
                    let commit_ok = rep.commit <= i || holds(rep);
                    leader_ok && commit_ok
                })
            }),
            Property::sometimes("ke2 released", |_, s: &State| s.released[0] != 0),
            Property::sometimes("budget spent", |m: &VaultModel, s: &State| {
                s.released[0].count_ones() >= u32::from(m.budget)
            }),
            Property::sometimes("budget spent and restored by a login", |m, s: &State| {
                s.released[0].count_ones() >= u32::from(m.budget) && s.released[1] != 0
            }),
            Property::sometimes("locked", |m: &VaultModel, s: &State| {
                s.replicas
                    .iter()
                    .any(|r| r.commit >= 2 && fold(&r.log[..r.commit as usize], m.budget).0.locked)
            }),
            Property::sometimes("login", |_, s: &State| s.logins_answered > 0),
            Property::sometimes("leader change", |_, s: &State| {
                s.replicas.iter().any(|r| r.leader.is_some() && r.term >= 2)
            }),
            Property::sometimes("two leader changes", |_, s: &State| {
                s.replicas.iter().any(|r| r.leader.is_some() && r.term >= 3)
            }),
            Property::sometimes("registration acked", |_, s: &State| s.acked_register.is_some()),
            Property::sometimes("registration acked by a later leader", |_, s: &State| {
                s.acked_register.is_some_and(|(_, t)| t >= 2)
            }),
            Property::sometimes(
                "registration acked, leader crashed, new leader",
                |_, s: &State| {
                    let Some((_, t)) = s.acked_register else { return false };
                    s.leader_crashed_after_ack
                        && s.replicas.iter().any(|r| r.leader.is_some() && r.term > t)
                },
            ),
        ]
    }
}
