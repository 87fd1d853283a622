//! Seeded in-process fleet runs (spec section 7.8): three real openraft replicas with real
//! `redb` stores on simulated disks ([`CrashDisk`]: a crash loses what was not synced), an
//! in-memory network that delays, drops and partitions, a paused clock, and concurrent
//! attackers and honest clients. After each run an oracle checks:
//!
//! 1. the attackers of an account nobody logs in to got at most its budget in KE2s;
//! 2. every account's history (each request an operation, from its invocation to its
//!    decision; requests without a confirmed decision may or may not have happened) is
//!    linearizable against the sans-IO core applied one command at a time
//!    (stateright's `LinearizabilityTester`);
//! 3. honest clients always logged in with their password once registered.
//!
//! A failing seed is printed; `FLEET_SIM_SEED=N cargo test -p e2ee-backup-vault-server --test
//! fleet_sim` replays it (same faults, same client choices, same clock). `FLEET_SIM_SEEDS=N`
//! runs more seeds.

use e2ee_backup_vault::{
    AccountId, AccountRecord, ClientError, Command, Endpoint, FleetId, Hsm, HsmConfig, HsmSecrets,
    KsfProfile, Login, RecordChange, RefusalReason, Registration,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2ee_backup_kdf::BackupKey;
use e2ee_backup_testkit::disk::CrashDisk;
use e2ee_backup_vault_server::at_rest::Keyring;
use e2ee_backup_vault_server::raft::{Member, NodeId, RaftReplication, Tuning, TypeConfig};
use e2ee_backup_vault_server::replication::Replication as _;
use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore as _, SeedableRng as _};
use stateright::semantics::{ConsistencyTester as _, LinearizabilityTester, SequentialSpec};

const BUDGET: u8 = 4;
const BASE_TIME: u64 = 1_900_000_000;
const NODES: u64 = 3;

/// Which replica build runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Correct,
    #[cfg(feature = "broken-variants")]
    Broken(e2ee_backup_vault_server::raft::Broken),
}

// ---------------------------------------------------------------------------------------------
// The simulated world: nodes, disks, links, clock, randomness.

#[derive(Debug)]
struct SimError(&'static str);

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for SimError {}

struct World {
    hsm: Arc<Hsm>,
    variant: Variant,
    rng: Mutex<ChaCha20Rng>,
    nodes: Mutex<BTreeMap<NodeId, Arc<RaftReplication>>>,
    disks: Mutex<BTreeMap<NodeId, CrashDisk>>,
    /// Each replica's erasable keys: written through at once, as the real key files are
    /// synced before use, so they survive a crash of the simulated disk.
    keys: Mutex<BTreeMap<NodeId, Arc<Keyring>>>,
    /// Directed links that are cut: (from, to).
    cut: Mutex<BTreeSet<(NodeId, NodeId)>>,
    /// Per-mille of messages lost.
    loss: u32,
    trace: Mutex<Vec<String>>,
    start: tokio::time::Instant,
    /// Snapshot chunks delivered (a replica that lagged behind the purged log caught up).
    snapshot_chunks: std::sync::atomic::AtomicU64,
}

impl World {
    fn roll(&self, below: u64) -> u64 {
        self.rng.lock().unwrap().next_u64() % below
    }

    fn log(&self, line: String) {
        self.trace.lock().unwrap().push(line);
    }

    fn now(&self) -> u64 {
        BASE_TIME + self.start.elapsed().as_secs()
    }

    fn node(&self, id: NodeId) -> Option<Arc<RaftReplication>> {
        self.nodes.lock().unwrap().get(&id).cloned()
    }

    fn link_up(&self, from: NodeId, to: NodeId) -> bool {
        !self.cut.lock().unwrap().contains(&(from, to))
    }

    fn isolate(&self, id: NodeId) {
        let mut cut = self.cut.lock().unwrap();
        for other in 1..=NODES {
            if other != id {
                cut.insert((id, other));
                cut.insert((other, id));
            }
        }
    }

    fn heal(&self) {
        self.cut.lock().unwrap().clear();
    }

    fn tuning(id: NodeId) -> Tuning {
        // Fixed, distinct election timeouts per node keep runs reproducible (openraft draws
        // the timeout from [min, max), here a single value).
        let min = 300 + 150 * id;
        // Snapshots every 20 entries: followers that were down catch up from snapshots too.
        Tuning {
            heartbeat_ms: 50,
            election_min_ms: min,
            election_max_ms: min + 1,
            snapshot_after: 20,
        }
    }

    async fn start_node(self: &Arc<Self>, id: NodeId, disk: CrashDisk, bootstrap: bool) {
        let db = redb::Database::builder().create_with_backend(disk.clone()).expect("opens");
        e2ee_backup_vault_server::store::create_tables(&db).expect("tables");
        let members: BTreeMap<NodeId, Member> = (1..=NODES)
            .map(|n| (n, Member { api: format!("node-{n}"), peer: format!("node-{n}") }))
            .collect();
        let network = SimNetwork { world: self.clone(), from: id };
        let bootstrap = bootstrap.then_some(members);
        let keys = self
            .keys
            .lock()
            .unwrap()
            .entry(id)
            .or_insert_with(|| Arc::new(Keyring::in_memory()))
            .clone();
        let db = (Arc::new(db), keys);
        let replication = match self.variant {
            Variant::Correct => {
                RaftReplication::start(
                    id,
                    db,
                    self.hsm.clone(),
                    network,
                    Self::tuning(id),
                    bootstrap,
                )
                .await
            }
            #[cfg(feature = "broken-variants")]
            Variant::Broken(broken) => {
                RaftReplication::start_broken(
                    id,
                    db,
                    self.hsm.clone(),
                    network,
                    Self::tuning(id),
                    bootstrap,
                    broken,
                )
                .await
            }
        }
        .expect("the replica starts");
        self.disks.lock().unwrap().insert(id, disk);
        self.nodes.lock().unwrap().insert(id, Arc::new(replication));
    }

    /// Starts every replica on an empty disk, each ready to bootstrap the fleet.
    async fn start_fleet(self: &Arc<Self>) {
        for id in 1..=NODES {
            self.start_node(id, CrashDisk::new(), true).await;
        }
    }

    /// Power loss: what was not synced is gone; the process is gone.
    async fn crash(self: &Arc<Self>, id: NodeId) {
        let Some(node) = self.nodes.lock().unwrap().remove(&id) else { return };
        let survived = self.disks.lock().unwrap()[&id].crash();
        self.disks.lock().unwrap().insert(id, survived);
        node.shutdown().await;
        self.log(format!("crash {id}"));
    }

    async fn restart(self: &Arc<Self>, id: NodeId) {
        if self.node(id).is_some() {
            return;
        }
        let disk = self.disks.lock().unwrap()[&id].clone();
        self.start_node(id, disk, false).await;
        self.log(format!("restart {id}"));
    }

    fn leader(&self) -> Option<NodeId> {
        let nodes = self.nodes.lock().unwrap();
        nodes.iter().find(|(_, n)| n.status().role == "leader").map(|(id, _)| *id)
    }

    async fn wait_for_leader(&self) -> NodeId {
        for _ in 0..600 {
            if let Some(leader) = self.leader() {
                return leader;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no leader after 30 s of simulated time");
    }
}

#[derive(Clone)]
struct SimNetwork {
    world: Arc<World>,
    from: NodeId,
}

struct SimPeer {
    world: Arc<World>,
    from: NodeId,
    to: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for SimNetwork {
    type Network = SimPeer;

    async fn new_client(&mut self, target: NodeId, _node: &Member) -> SimPeer {
        SimPeer { world: self.world.clone(), from: self.from, to: target }
    }
}

impl SimPeer {
    /// One hop: a delay, then delivered unless the link is cut, the message is lost or the
    /// target is down.
    async fn hop(&self, from: NodeId, to: NodeId) -> Result<Arc<RaftReplication>, Unreachable> {
        let delay = self.world.roll(15) + 1;
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let lost = self.world.roll(1000) < u64::from(self.world.loss);
        match self.world.node(to) {
            Some(node) if !lost && self.world.link_up(from, to) => Ok(node),
            _ => Err(Unreachable::new(&SimError("unreachable"))),
        }
    }

    async fn exchange<T, E>(
        &self,
        call: impl AsyncFnOnce(Arc<RaftReplication>) -> Result<T, E>,
    ) -> Result<T, RPCError<NodeId, Member, E>>
    where
        E: std::error::Error,
    {
        let target = self.hop(self.from, self.to).await?;
        let answer = call(target).await;
        // The answer travels back and may be lost too (the request did happen).
        self.hop(self.to, self.from).await?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }
}

impl RaftNetwork<TypeConfig> for SimPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        self.exchange(async move |n: Arc<RaftReplication>| n.raft().append_entries(rpc).await).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Member, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.world.snapshot_chunks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.exchange(async move |n: Arc<RaftReplication>| n.raft().install_snapshot(rpc).await)
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        self.exchange(async move |n: Arc<RaftReplication>| n.raft().vote(rpc).await).await
    }
}

// ---------------------------------------------------------------------------------------------
// The sequential specification: the sans-IO core, one command at a time.

/// What a decision tells the client, for the linearizability check.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    kind: &'static str,
    remaining: Option<u8>,
    refusal: Option<RefusalReason>,
}

#[derive(Clone)]
struct VaultSpec {
    hsm: Arc<Hsm>,
    record: Option<AccountRecord>,
}

impl SequentialSpec for VaultSpec {
    type Op = Op;
    type Ret = Outcome;

    fn invoke(&mut self, op: &Op) -> Outcome {
        let record = &mut self.record;
        let stored = self.hsm.apply(&op.0, record.clone()).persist(|change| {
            *record = match change {
                RecordChange::Put(new) => Some(new.clone()),
                RecordChange::Delete => None,
            };
            Ok::<(), std::convert::Infallible>(())
        });
        let Ok(decision) = stored;
        Outcome {
            kind: decision.kind(),
            remaining: decision.remaining(),
            refusal: decision.refusal().map(|r| r.0),
        }
    }
}

/// An operation: one command.
#[derive(Clone)]
struct Op(Command);

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.0.name(), self.0.now())
    }
}

// ---------------------------------------------------------------------------------------------
// Clients and the history they record.

#[derive(Debug, Clone)]
enum Event {
    Invoke { thread: u64, command: Command },
    Return { thread: u64, outcome: Outcome },
}

struct History {
    events: Mutex<BTreeMap<Vec<u8>, Vec<Event>>>,
    next_thread: Mutex<u64>,
    ke2s_released: Mutex<BTreeMap<Vec<u8>, u64>>,
    failures: Mutex<Vec<String>>,
}

impl History {
    fn thread(&self) -> u64 {
        let mut next = self.next_thread.lock().unwrap();
        *next += 1;
        *next
    }
}

/// Sends one request through the fleet the way the HTTP server does: open, stamp, submit to
/// some replica (again elsewhere while no replica leads), seal. `None`: no confirmed decision.
async fn request(
    world: &Arc<World>,
    history: &History,
    thread: &mut u64,
    envelope: &[u8],
    rng: &mut ChaCha20Rng,
) -> Option<Vec<u8>> {
    let opened = world.hsm.open(envelope).expect("our own requests open");
    let account = opened.account().to_vec();
    let (command, pending) = opened.into_command(world.now());
    let command = command.expect("our own requests decode");
    history
        .events
        .lock()
        .unwrap()
        .entry(account.clone())
        .or_default()
        .push(Event::Invoke { thread: *thread, command: command.clone() });
    for _attempt in 0..100 {
        let target = world.roll(NODES) + 1;
        // Only a replica that believes it leads takes the command (the HTTP server forwards
        // to it); any failure after that is unconfirmed.
        let Some(node) = world.node(target).filter(|n| n.status().role == "leader") else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        match node.submit(command.clone()).await {
            Ok(decision) => {
                let outcome = Outcome {
                    kind: decision.kind(),
                    remaining: decision.remaining(),
                    refusal: decision.refusal().map(|r| r.0),
                };
                if outcome.kind == "LoginChallenge" {
                    *history.ke2s_released.lock().unwrap().entry(account.clone()).or_default() += 1;
                }
                history
                    .events
                    .lock()
                    .unwrap()
                    .get_mut(&account)
                    .expect("invoked")
                    .push(Event::Return { thread: *thread, outcome });
                return Some(world.hsm.seal(pending.reply(decision), rng));
            }
            Err(_) => break,
        }
    }
    // No confirmed decision: the operation stays open for good; later requests of this client
    // count as another thread.
    *thread = history.thread();
    None
}

async fn attacker(world: Arc<World>, history: Arc<History>, account: &'static [u8], seed: u64) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let ep = endpoint(&world);
    let mut thread = history.thread();
    for guess in 0..(u64::from(BUDGET) + 3) {
        let password = format!("guess {seed} {guess}");
        let (state, ke1) =
            Login::start(&mut rng, &ep, AccountId::new(account).unwrap(), password.as_bytes())
                .unwrap();
        let Some(response) = request(&world, &history, &mut thread, &ke1, &mut rng).await else {
            continue;
        };
        match state.receive(&mut rng, &response) {
            Err(ClientError::WrongPassword { .. }) => {}
            Err(ClientError::Exhausted | ClientError::Locked) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => history
                .failures
                .lock()
                .unwrap()
                .push(format!("attacker {seed}: unexpected answer {:?}", other.err())),
        }
        tokio::time::sleep(Duration::from_millis(world.roll(80))).await;
    }
}

/// An honest client: registers, then logs in a few times. On an account an attacker also
/// guesses (`contested`), `exhausted` and `locked` are fair answers: the attacker may spend the
/// budget. A KE2 the right password cannot open never is: the registration would be lost.
async fn honest(
    world: Arc<World>,
    history: Arc<History>,
    account: &'static [u8],
    seed: u64,
    contested: bool,
) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let ep = endpoint(&world);
    let mut thread = history.thread();
    let password = b"the real password";
    let key = BackupKey::from_bytes([seed as u8; 32]);
    // Register until a registration is confirmed.
    let mut registered = false;
    for _ in 0..10 {
        let (state, request1) =
            Registration::start(&mut rng, &ep, AccountId::new(account).unwrap(), password, None)
                .unwrap();
        let Some(response) = request(&world, &history, &mut thread, &request1, &mut rng).await
        else {
            continue;
        };
        let Ok((state, request2)) = state.receive(&mut rng, &response, &key) else { continue };
        let Some(response) = request(&world, &history, &mut thread, &request2, &mut rng).await
        else {
            continue;
        };
        if state.receive(&response).is_ok() {
            registered = true;
            break;
        }
    }
    if !registered {
        return;
    }
    world.log(format!("registered {}", String::from_utf8_lossy(account)));
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(world.roll(150))).await;
        let (state, ke1) =
            Login::start(&mut rng, &ep, AccountId::new(account).unwrap(), password).unwrap();
        let Some(response) = request(&world, &history, &mut thread, &ke1, &mut rng).await else {
            continue;
        };
        let (state, ke3) = match state.receive(&mut rng, &response) {
            Ok(next) => next,
            Err(ClientError::Exhausted | ClientError::Locked) if contested => continue,
            Err(e) => {
                history.failures.lock().unwrap().push(format!(
                    "{}: the right password got {e:?} after a confirmed registration",
                    String::from_utf8_lossy(account)
                ));
                continue;
            }
        };
        let Some(response) = request(&world, &history, &mut thread, &ke3, &mut rng).await else {
            continue;
        };
        match state.receive(&response) {
            Ok(logged_in) if logged_in.key().expose_secret() == key.expose_secret() => {}
            other => history.failures.lock().unwrap().push(format!(
                "{}: login after KE2 failed: {:?}",
                String::from_utf8_lossy(account),
                other.err()
            )),
        }
    }
}

fn endpoint(world: &World) -> Endpoint {
    let (id, public) = world.hsm.secrets().public_keys()[0];
    Endpoint::new(world.hsm.secrets().fleet_id(), id, public).accepting_fast_ksf()
}

// ---------------------------------------------------------------------------------------------
// Runs and the oracle.

struct Report {
    trace: Vec<String>,
    violations: Vec<String>,
    /// Requests, requests without a confirmed decision, KE2s released to the victim's
    /// attackers.
    requests: usize,
    unconfirmed: usize,
    victim_ke2s: u64,
    snapshot_chunks: u64,
    /// Every answer, in order: account, client thread, outcome.
    answers: Vec<String>,
}

fn report(world: &World, history: &History, violations: Vec<String>) -> Report {
    let events = history.events.lock().unwrap();
    let requests = events.values().flatten().filter(|e| matches!(e, Event::Invoke { .. })).count();
    let answered = events.values().flatten().filter(|e| matches!(e, Event::Return { .. })).count();
    Report {
        trace: world.trace.lock().unwrap().clone(),
        violations,
        requests,
        unconfirmed: requests - answered,
        snapshot_chunks: world.snapshot_chunks.load(std::sync::atomic::Ordering::Relaxed),
        answers: events
            .iter()
            .flat_map(|(account, events)| {
                events.iter().filter_map(move |e| match e {
                    Event::Return { thread, outcome } => {
                        Some(format!("{} {thread} {outcome:?}", String::from_utf8_lossy(account)))
                    }
                    Event::Invoke { .. } => None,
                })
            })
            .collect(),
        victim_ke2s: history
            .ke2s_released
            .lock()
            .unwrap()
            .get(b"victim".as_slice())
            .copied()
            .unwrap_or(0),
    }
}

fn new_world(seed: u64, variant: Variant, loss: u32) -> Arc<World> {
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x5eed);
    let secrets = HsmSecrets::generate(&mut rng, FleetId::from_static(b"sim.fleet"));
    let config = HsmConfig {
        budget: BUDGET,
        ksf_profile: KsfProfile::Fast,
        session_lifetime: 30,
        token_lifetime: 30,
    };
    Arc::new(World {
        hsm: Arc::new(Hsm::new(secrets, config).unwrap()),
        variant,
        rng: Mutex::new(rng),
        nodes: Mutex::new(BTreeMap::new()),
        disks: Mutex::new(BTreeMap::new()),
        keys: Mutex::new(BTreeMap::new()),
        cut: Mutex::new(BTreeSet::new()),
        loss,
        trace: Mutex::new(Vec::new()),
        start: tokio::time::Instant::now(),
        snapshot_chunks: std::sync::atomic::AtomicU64::new(0),
    })
}

fn new_history() -> Arc<History> {
    Arc::new(History {
        events: Mutex::new(BTreeMap::new()),
        next_thread: Mutex::new(0),
        ke2s_released: Mutex::new(BTreeMap::new()),
        failures: Mutex::new(Vec::new()),
    })
}

fn check(world: &World, history: &History, victims: &[&[u8]]) -> Vec<String> {
    let mut violations = history.failures.lock().unwrap().clone();
    let released = history.ke2s_released.lock().unwrap();
    for victim in victims {
        let count = released.get(*victim).copied().unwrap_or(0);
        if count > u64::from(BUDGET) {
            violations.push(format!(
                "{}: {count} KE2s released for a budget of {BUDGET}",
                String::from_utf8_lossy(victim)
            ));
        }
    }
    for (account, events) in history.events.lock().unwrap().iter() {
        let mut tester =
            LinearizabilityTester::new(VaultSpec { hsm: world.hsm.clone(), record: None });
        for event in events {
            let recorded = match event {
                Event::Invoke { thread, command } => {
                    tester.on_invoke(*thread, Op(command.clone())).map(|_| ())
                }
                Event::Return { thread, outcome } => {
                    tester.on_return(*thread, outcome.clone()).map(|_| ())
                }
            };
            if let Err(e) = recorded {
                violations.push(format!("history bookkeeping: {e}"));
            }
        }
        if !tester.is_consistent() {
            violations.push(format!(
                "{}: the history of {} requests is not linearizable",
                String::from_utf8_lossy(account),
                events.len()
            ));
        }
    }
    violations
}

/// A seeded run: clients and random faults (crashes, restarts, partitions, loss) together.
async fn random_run(seed: u64, variant: Variant) -> Report {
    let world = new_world(seed, variant, 20);
    world.start_fleet().await;
    world.wait_for_leader().await;
    let history = new_history();
    let mut clients = Vec::new();
    for (i, account) in [b"victim".as_slice(), b"victim", b"victim"].into_iter().enumerate() {
        clients.push(tokio::spawn(attacker(
            world.clone(),
            history.clone(),
            account,
            seed * 10 + i as u64,
        )));
    }
    clients.push(tokio::spawn(attacker(world.clone(), history.clone(), b"alice", seed * 10 + 5)));
    clients.push(tokio::spawn(honest(
        world.clone(),
        history.clone(),
        b"alice",
        seed * 10 + 6,
        true,
    )));
    clients.push(tokio::spawn(honest(
        world.clone(),
        history.clone(),
        b"bob",
        seed * 10 + 7,
        false,
    )));

    // Faults: at most one replica down or cut off at a time (a minority of three).
    let faults = {
        let world = world.clone();
        tokio::spawn(async move {
            let mut down: Option<NodeId> = None;
            loop {
                tokio::time::sleep(Duration::from_millis(150 + world.roll(400))).await;
                if let Some(id) = down.take() {
                    world.heal();
                    world.restart(id).await;
                    world.log(format!("heal {id}"));
                    continue;
                }
                let target = match world.roll(2) {
                    0 => world.leader().unwrap_or(1),
                    _ => world.roll(NODES) + 1,
                };
                if world.roll(2) == 0 {
                    world.crash(target).await;
                } else {
                    world.isolate(target);
                    world.log(format!("isolate {target}"));
                }
                down = Some(target);
            }
        })
    };
    for client in clients {
        client.await.expect("a client task panicked");
    }
    faults.abort();
    finish(&world, &history).await
}

/// Checks the run (the victim is the account only attackers use), then stops the replicas.
async fn finish(world: &Arc<World>, history: &History) -> Report {
    let violations = check(world, history, &[b"victim"]);
    let report = report(world, history, violations);
    for id in 1..=NODES {
        if let Some(node) = world.node(id) {
            node.shutdown().await;
        }
    }
    report
}

/// The scripted loss of acknowledged entries: charges commit on the leader L and X while Z is
/// cut off; X loses power and comes back; L is cut off and Z rejoins. With durable appends X
/// still has the charges and they stand; an engine that acknowledged appends without syncing
/// lets Z and the emptied X elect a leader without them, and the budget is back.
async fn lost_acknowledgement_run(variant: Variant) -> Report {
    let world = new_world(7, variant, 0);
    world.start_fleet().await;
    let history = new_history();
    let leader = world.wait_for_leader().await;
    let others: Vec<NodeId> = (1..=NODES).filter(|n| *n != leader).collect();
    let (x, z) = (others[0], others[1]);
    world.isolate(z);
    world.log(format!("isolate {z}"));
    attacker(world.clone(), history.clone(), b"victim", 1).await;
    world.crash(x).await;
    world.restart(x).await;
    world.heal();
    world.isolate(leader);
    world.log(format!("isolate {leader}"));
    attacker(world.clone(), history.clone(), b"victim", 2).await;
    finish(&world, &history).await
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap()
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("FLEET_SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        return vec![seed];
    }
    let count = std::env::var("FLEET_SIM_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(8);
    (1..=count).collect()
}

#[test]
fn seeded_runs_keep_the_budget_and_stay_linearizable() {
    for seed in seeds() {
        let report = runtime().block_on(random_run(seed, Variant::Correct));
        assert!(
            report.violations.is_empty(),
            "seed {seed} (replay: FLEET_SIM_SEED={seed}): {:#?}\nfaults: {:?}",
            report.violations,
            report.trace
        );
        eprintln!(
            "seed {seed}: ok: {} requests ({} unconfirmed), {} KE2s to the victim's attackers, \
             {} snapshot chunks sent; events {:?}",
            report.requests,
            report.unconfirmed,
            report.victim_ke2s,
            report.snapshot_chunks,
            report.trace
        );
        assert!(report.requests > 40, "the run must do real work");
    }
}

#[test]
fn a_seed_replays_the_same_run() {
    let first = runtime().block_on(random_run(3, Variant::Correct));
    let second = runtime().block_on(random_run(3, Variant::Correct));
    assert_eq!(first.trace, second.trace, "the same faults");
    assert_eq!(first.answers, second.answers, "the same answers to the same requests");
}

#[test]
fn acknowledged_charges_survive_a_power_loss_and_a_leader_change() {
    let report = runtime().block_on(lost_acknowledgement_run(Variant::Correct));
    assert!(report.violations.is_empty(), "{:#?}\n{:?}", report.violations, report.trace);
    // Not vacuous: the attackers did spend the whole budget.
    assert_eq!(report.victim_ke2s, u64::from(BUDGET), "{:?}", report.trace);
}

#[cfg(feature = "broken-variants")]
mod broken {
    use e2ee_backup_vault_server::raft::Broken;

    use super::*;

    /// Whether some seed (or the scripted run) finds a violation in `broken`.
    fn caught(broken: Broken) -> Option<String> {
        let scripted = runtime().block_on(lost_acknowledgement_run(Variant::Broken(broken)));
        if let Some(v) = scripted.violations.first() {
            return Some(format!("scripted run: {v}"));
        }
        for seed in 1..=6 {
            let report = runtime().block_on(random_run(seed, Variant::Broken(broken)));
            if let Some(v) = report.violations.first() {
                return Some(format!("seed {seed}: {v}"));
            }
        }
        None
    }

    #[test]
    fn ke2_before_commit_is_caught() {
        let found = caught(Broken::Ke2BeforeCommit).expect("the oracle must catch it");
        eprintln!("ke2-before-commit caught: {found}");
    }

    #[test]
    fn a_lease_read_of_the_budget_is_caught() {
        let found = caught(Broken::LeaseRead).expect("the oracle must catch it");
        eprintln!("lease-read caught: {found}");
    }

    #[test]
    fn skipping_fsync_is_caught() {
        let found = caught(Broken::SkipFsync).expect("the oracle must catch it");
        eprintln!("skip-fsync caught: {found}");
    }
}

/// A replica whose disk fails under it (every write errors; the process does not restart)
/// reports that its engine stopped, so that the server exits for its supervisor instead of
/// answering 503 for ever; the others keep going and elect a leader without it.
#[test]
fn a_replica_whose_disk_fails_reports_that_its_engine_stopped() {
    runtime().block_on(async {
        let world = new_world(1, Variant::Correct, 0);
        world.start_fleet().await;
        let leader = world.wait_for_leader().await;
        let node = world.node(leader).expect("the leader runs");
        let _ = world.disks.lock().unwrap()[&leader].crash();
        // A command makes the leader write to its log, which fails.
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let (_, ke1) =
            Login::start(&mut rng, &endpoint(&world), AccountId::from_static(b"victim"), b"guess")
                .unwrap();
        let (command, _) = world.hsm.open(&ke1).expect("opens").into_command(world.now());
        let submitted = node.submit(command.expect("decodes"));
        let _ = tokio::time::timeout(Duration::from_secs(10), submitted).await;
        let stopped = tokio::time::timeout(Duration::from_secs(30), node.stopped()).await;
        let stopped = stopped.expect("the engine stops once its log store fails");
        assert!(stopped.to_string().contains("stopped"), "{stopped}");

        let other = world.node(if leader == 1 { 2 } else { 1 }).expect("runs");
        let still = tokio::time::timeout(Duration::from_secs(5), other.stopped()).await;
        assert!(still.is_err(), "a healthy replica's engine keeps running");
        world.nodes.lock().unwrap().remove(&leader);
        let next = world.wait_for_leader().await;
        assert_ne!(next, leader);
    });
}
