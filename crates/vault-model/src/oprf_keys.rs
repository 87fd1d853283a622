//! OPRF key usage (spec section 4.10): which registration's key each OPRF evaluation used, and
//! whether that registration's budget paid for it. One account, one vault: replication is the
//! [`VaultModel`](crate::VaultModel)'s subject, not this model's. The crate docs (section "OPRF
//! key usage") say what is checked, which designs fail, and what the checks cost.

use std::collections::BTreeSet;

use stateright::{Model, Property};

/// How the vault chooses the OPRF key of a registration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyDesign {
    /// Today: one key per account, derived from the fleet's `oprf_seed` and the account id,
    /// evaluated by every RegisterStart and every LoginStart (a phantom's fake KE2 included: RFC
    /// 9807's fake KE2, as `opaque-ke` computes it, evaluates the key derived from the seed and
    /// the credential identifier).
    PerAccount,
    /// The key is derived from the account id and the `record_version` the registration has:
    /// RegisterStart evaluates the key of the announced version (stored version + 1), LoginStart
    /// the key of the stored version (0 for no record or a fresh phantom).
    PerVersion,
    /// The fix: every RegisterStart draws a fresh random key, carries it in its sealed ticket to
    /// RegisterFinish, and the registration stores it; LoginStart evaluates the stored key, and a
    /// fake KE2 (no registration) the account's derived key, which no registration stores.
    FreshPerRegisterStart,
}

/// An OPRF key, as an identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// Derived from the fleet's `oprf_seed` and the account id.
    Account,
    /// Derived from the fleet's seed, the account id and this `record_version`.
    Version(u8),
    /// Drawn at random by the RegisterStart whose ticket has this id.
    Fresh(u8),
}

/// Who made a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Who {
    /// Anyone without the password: the guesser. It never finishes a registration.
    Attacker,
    /// The account's owner.
    Honest,
}

/// One OPRF evaluation (ghost).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Eval {
    /// A RegisterStart (uncharged), answered with the ticket of this id.
    RegisterStart { by: Who, ticket: u8 },
    /// A LoginStart (KE1) that paid one unit of budget: of the registration completed by the
    /// ticket `charged_to`, or of an unregistered record (`None`: a phantom's budget, which a
    /// registration replaces with a full one).
    LoginStart { by: Who, charged_to: Option<u8> },
}

impl Eval {
    fn by(self) -> Who {
        match self {
            Eval::RegisterStart { by, .. } | Eval::LoginStart { by, .. } => by,
        }
    }
}

/// The account's record, reduced to what key usage needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Record {
    /// No registration: no record or a phantom (version 0), or, with tombstones, a deleted
    /// account that keeps its version.
    Unregistered { version: u8 },
    /// A registration, with the key its logins evaluate and the id of the ticket of the
    /// RegisterStart that completed it.
    Registered { version: u8, key: Key, ticket: u8 },
}

impl Record {
    /// The stored `record_version`.
    pub fn version(self) -> u8 {
        match self {
            Record::Unregistered { version } | Record::Registered { version, .. } => version,
        }
    }
}

/// A registration ticket (RegisterChallenge to RegisterFinish).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket {
    pub id: u8,
    /// The key its RegisterStart evaluated.
    pub key: Key,
    /// The announced `record_version` (stored version + 1).
    pub version: u8,
}

/// Where the search starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// No record.
    NoRecord,
    /// Registered at version 1 by ticket 0 (the honest client holds no token).
    Registered,
}

/// An action of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OprfAction {
    /// RegisterStart by the attacker: one uncharged evaluation; the ticket is never finished.
    AttackerRegisterStart,
    /// LoginStart by the attacker: one charged evaluation (a fake KE2 without a registration).
    AttackerLoginStart,
    /// RegisterStart by the honest client (first registration, a retry after a lost
    /// RegisterChallenge, or a password change holding the login token).
    HonestRegisterStart,
    /// RegisterFinish by the honest client with its last ticket.
    HonestRegisterFinish,
    /// A successful login (KE1 charged, then a valid KE3): the client holds the login token.
    HonestLogin,
    /// Delete with the login token.
    HonestDelete,
}

/// The state: the record, the clients' state, and the ghost evaluations.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OprfState {
    pub record: Record,
    /// The honest client holds the record's stored login token.
    pub token: bool,
    /// The honest client's ticket (the attacker's are never finished, so not kept).
    pub honest_ticket: Option<Ticket>,
    /// RegisterStarts answered so far: the id of the next ticket (and of its fresh key).
    pub tickets: u8,
    pub attacker_starts: u8,
    pub attacker_logins: u8,
    pub honest_starts: u8,
    pub honest_logins: u8,
    pub deletes: u8,
    /// Ghost: every OPRF evaluation so far (a set: a repeated evaluation tests nothing new).
    pub evals: BTreeSet<(Key, Eval)>,
    /// Ghost: the honest ticket replaced an earlier one (a retried RegisterStart).
    pub retried: bool,
    /// Ghost: facts about the registrations, for the `sometimes` properties.
    pub seen: Seen,
}

/// Ghost facts recorded when a registration completes (and one when the attacker starts one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Seen {
    /// A registration completed after an attacker's RegisterStart.
    pub attacker_start_before_registration: bool,
    /// A registration completed after an attacker's KE1 on an unregistered record.
    pub phantom_ke1_before_registration: bool,
    /// A registration replaced one (a password change after a login).
    pub reregistration: bool,
    /// A registration completed after a delete.
    pub registration_after_delete: bool,
    /// A registration completed by a retried RegisterStart.
    pub registration_after_retry: bool,
    /// The attacker's RegisterStart was answered on a registered account.
    pub attacker_start_on_registered: bool,
}

/// The invariant that the tests require: no guess under the live registration's key that its
/// budget did not pay for.
pub const GUESSES_CHARGED: &str = "every guess under the live key is charged to it";

/// The stricter invariant that the fix also keeps: every evaluation under the live key, the
/// honest client's included, is a charge to that registration or the RegisterStart that
/// completed it.
pub const KEY_PRIVATE: &str = "the live key is evaluated only by its charges and its completion";

/// The model and its bounds.
#[derive(Clone, Debug)]
pub struct OprfModel {
    pub design: KeyDesign,
    /// RegisterStart on a registered account requires the login token (an account with no
    /// registration needs none).
    pub token_rule: bool,
    /// Delete keeps the record's version (a tombstone); without, it erases the record (version
    /// 0 again), as the spec's Delete does today.
    pub tombstones: bool,
    pub max_attacker_starts: u8,
    pub max_attacker_logins: u8,
    pub max_honest_starts: u8,
    pub max_honest_logins: u8,
    pub max_deletes: u8,
    pub starts: Vec<Start>,
}

impl OprfModel {
    /// A design with the default bounds: 2 attacker RegisterStarts, 2 attacker KE1s, 4 honest
    /// RegisterStarts, 2 honest logins, 2 deletes, from no record and from a registration.
    pub fn new(design: KeyDesign, token_rule: bool, tombstones: bool) -> Self {
        OprfModel {
            design,
            token_rule,
            tombstones,
            max_attacker_starts: 2,
            max_attacker_logins: 2,
            max_honest_starts: 4,
            max_honest_logins: 2,
            max_deletes: 2,
            starts: vec![Start::NoRecord, Start::Registered],
        }
    }

    /// Today's vault: one key per account, no token for RegisterStart, Delete erases.
    pub fn today() -> Self {
        OprfModel::new(KeyDesign::PerAccount, false, false)
    }

    /// The fix: a fresh key per RegisterStart, the token rule, tombstones.
    pub fn fixed() -> Self {
        OprfModel::new(KeyDesign::FreshPerRegisterStart, true, true)
    }

    /// The key a RegisterStart answered with ticket `id` evaluates.
    fn register_key(&self, record: Record, id: u8) -> Key {
        match self.design {
            KeyDesign::PerAccount => Key::Account,
            KeyDesign::PerVersion => Key::Version(record.version() + 1),
            KeyDesign::FreshPerRegisterStart => Key::Fresh(id),
        }
    }

    /// The key a LoginStart without a registration (a fake KE2) evaluates.
    fn phantom_key(&self, version: u8) -> Key {
        match self.design {
            KeyDesign::PerAccount | KeyDesign::FreshPerRegisterStart => Key::Account,
            KeyDesign::PerVersion => Key::Version(version),
        }
    }

    /// The key the registration finished with ticket `t` stores (its logins evaluate it).
    fn stored_key(&self, t: Ticket) -> Key {
        match self.design {
            // Derived again from what is stored, not taken from the ticket.
            KeyDesign::PerAccount => Key::Account,
            KeyDesign::PerVersion => Key::Version(t.version),
            KeyDesign::FreshPerRegisterStart => t.key,
        }
    }
}

/// The attacker's evaluations under the live registration's key that were not charged to it:
/// guesses its budget never paid for.
pub fn unpaid_guesses(s: &OprfState) -> Vec<(Key, Eval)> {
    foreign_evaluations(s).into_iter().filter(|(_, e)| e.by() == Who::Attacker).collect()
}

/// Every evaluation under the live registration's key that is neither a charge to it nor the
/// RegisterStart whose ticket completed it (whenever it was made: before the registration
/// existed included).
pub fn foreign_evaluations(s: &OprfState) -> Vec<(Key, Eval)> {
    let Record::Registered { key, ticket, .. } = s.record else { return Vec::new() };
    s.evals
        .iter()
        .copied()
        .filter(|&(k, e)| {
            k == key
                && !matches!(e, Eval::LoginStart { charged_to: Some(t), .. } if t == ticket)
                && !matches!(e, Eval::RegisterStart { ticket: t, .. } if t == ticket)
        })
        .collect()
}

impl Model for OprfModel {
    type State = OprfState;
    type Action = OprfAction;

    fn init_states(&self) -> Vec<OprfState> {
        self.starts
            .iter()
            .map(|&start| {
                let empty = Record::Unregistered { version: 0 };
                let (record, tickets) = match start {
                    Start::NoRecord => (empty, 0),
                    Start::Registered => {
                        let key = self.register_key(empty, 0);
                        (Record::Registered { version: 1, key, ticket: 0 }, 1)
                    }
                };
                OprfState {
                    record,
                    token: false,
                    honest_ticket: None,
                    tickets,
                    attacker_starts: 0,
                    attacker_logins: 0,
                    honest_starts: 0,
                    honest_logins: 0,
                    deletes: 0,
                    evals: BTreeSet::new(),
                    retried: false,
                    seen: Seen::default(),
                }
            })
            .collect()
    }

    fn actions(&self, s: &OprfState, actions: &mut Vec<OprfAction>) {
        let registered = matches!(s.record, Record::Registered { .. });
        if s.attacker_starts < self.max_attacker_starts && !(self.token_rule && registered) {
            actions.push(OprfAction::AttackerRegisterStart);
        }
        if s.attacker_logins < self.max_attacker_logins {
            actions.push(OprfAction::AttackerLoginStart);
        }
        // The honest client registers a new account, retries, or changes its password after a
        // login (with the token, whether or not the vault requires it).
        if s.honest_starts < self.max_honest_starts && (!registered || s.token) {
            actions.push(OprfAction::HonestRegisterStart);
        }
        if s.honest_ticket.is_some() {
            actions.push(OprfAction::HonestRegisterFinish);
        }
        // One request at a time: no login or delete while a registration is under way.
        if registered && s.honest_ticket.is_none() {
            if !s.token && s.honest_logins < self.max_honest_logins {
                actions.push(OprfAction::HonestLogin);
            }
            if s.token && s.deletes < self.max_deletes {
                actions.push(OprfAction::HonestDelete);
            }
        }
    }

    fn next_state(&self, last: &OprfState, action: OprfAction) -> Option<OprfState> {
        let mut s = last.clone();
        match action {
            OprfAction::AttackerRegisterStart => {
                let id = s.tickets;
                s.tickets += 1;
                s.attacker_starts += 1;
                let key = self.register_key(s.record, id);
                s.evals.insert((key, Eval::RegisterStart { by: Who::Attacker, ticket: id }));
                if matches!(s.record, Record::Registered { .. }) {
                    s.seen.attacker_start_on_registered = true;
                }
            }
            OprfAction::AttackerLoginStart => {
                s.attacker_logins += 1;
                let (key, charged_to) = match s.record {
                    Record::Registered { key, ticket, .. } => (key, Some(ticket)),
                    Record::Unregistered { version } => (self.phantom_key(version), None),
                };
                s.evals.insert((key, Eval::LoginStart { by: Who::Attacker, charged_to }));
            }
            OprfAction::HonestRegisterStart => {
                let id = s.tickets;
                s.tickets += 1;
                s.honest_starts += 1;
                let key = self.register_key(s.record, id);
                s.evals.insert((key, Eval::RegisterStart { by: Who::Honest, ticket: id }));
                s.retried = s.honest_ticket.is_some();
                s.honest_ticket = Some(Ticket { id, key, version: s.record.version() + 1 });
            }
            OprfAction::HonestRegisterFinish => {
                let t = s.honest_ticket.take().expect("offered only with a ticket");
                if t.version != s.record.version() + 1 {
                    return Some(s); // stale-registration (cannot happen here: one writer)
                }
                let attacker = |e: &Eval| e.by() == Who::Attacker;
                let seen = &mut s.seen;
                for (_, e) in &s.evals {
                    match e {
                        Eval::RegisterStart { .. } if attacker(e) => {
                            seen.attacker_start_before_registration = true;
                        }
                        Eval::LoginStart { charged_to: None, .. } if attacker(e) => {
                            seen.phantom_ke1_before_registration = true;
                        }
                        _ => {}
                    }
                }
                match s.record {
                    Record::Registered { .. } => seen.reregistration = true,
                    Record::Unregistered { .. } if s.deletes > 0 => {
                        seen.registration_after_delete = true;
                    }
                    Record::Unregistered { .. } => {}
                }
                seen.registration_after_retry |= s.retried;
                s.retried = false;
                let key = self.stored_key(t);
                s.record = Record::Registered { version: t.version, key, ticket: t.id };
                s.token = false;
            }
            OprfAction::HonestLogin => {
                let Record::Registered { key, ticket, .. } = s.record else {
                    unreachable!("offered only when registered")
                };
                s.honest_logins += 1;
                let eval = Eval::LoginStart { by: Who::Honest, charged_to: Some(ticket) };
                s.evals.insert((key, eval));
                s.token = true;
            }
            OprfAction::HonestDelete => {
                s.deletes += 1;
                let version = if self.tombstones { s.record.version() } else { 0 };
                s.record = Record::Unregistered { version };
                s.token = false;
            }
        }
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(GUESSES_CHARGED, |_, s: &OprfState| unpaid_guesses(s).is_empty()),
            Property::always(KEY_PRIVATE, |_, s: &OprfState| foreign_evaluations(s).is_empty()),
            Property::sometimes("registration completed", |_, s: &OprfState| {
                s.honest_starts > 0 && matches!(s.record, Record::Registered { .. })
            }),
            Property::sometimes(
                "attacker RegisterStart before a registration",
                |_, s: &OprfState| s.seen.attacker_start_before_registration,
            ),
            Property::sometimes(
                "attacker KE1 without a registration, then a registration",
                |_, s: &OprfState| s.seen.phantom_ke1_before_registration,
            ),
            Property::sometimes(
                "attacker KE1 charged to the live registration",
                |_, s: &OprfState| {
                    let Record::Registered { ticket, .. } = s.record else { return false };
                    let charged = Eval::LoginStart { by: Who::Attacker, charged_to: Some(ticket) };
                    s.evals.iter().any(|&(_, e)| e == charged)
                },
            ),
            Property::sometimes(
                "attacker RegisterStart on a registered account",
                |_, s: &OprfState| s.seen.attacker_start_on_registered,
            ),
            Property::sometimes("re-registration after a login", |_, s: &OprfState| {
                s.seen.reregistration
            }),
            Property::sometimes("registration after a delete", |_, s: &OprfState| {
                s.seen.registration_after_delete
            }),
            Property::sometimes("registration by a retried RegisterStart", |_, s: &OprfState| {
                s.seen.registration_after_retry
            }),
        ]
    }
}
