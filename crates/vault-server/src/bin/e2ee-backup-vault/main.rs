//! `e2ee-backup-vault`: creates a vault's data directory, serves the vault over HTTP (spec
//! sections 4.15 and 7.8), re-signs the fleet key bundle (section 4.3), operates a fleet
//! (section 7.9), and generates load.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

mod cluster;
mod load;
mod populate;
mod scale;

use crate::cluster::FleetProcesses;
use clap::{Parser, Subcommand};
use e2ee_backup_vault_server::files::{
    AUTHORITY_FILE, DEFAULT_LISTEN, DEFAULT_PEER_LISTEN, FleetPin, KsfName,
};
use e2ee_backup_vault_server::{InitOptions, RunningServer, ServerConfig};

/// An account id this binary made up (`load`, `populate` and the bench accounts): 1 to 64
/// bytes by construction.
fn account_id(bytes: &[u8]) -> e2ee_backup_vault::AccountId<'_> {
    e2ee_backup_vault::AccountId::new(bytes).expect("generated account ids are 1 to 64 bytes")
}

/// The e2ee-backups Backup Key Vault server (password mode, spec chapter 4).
///
/// The vault does not authenticate accounts: in production it must sit behind the messaging
/// front end (the relay), which authenticates each account over its own session and puts it in
/// the request path. Never expose the vault's port to clients directly.
#[derive(Parser)]
#[command(name = "e2ee-backup-vault", version, max_term_width = 100)]
struct Cli {
    /// Print one JSON object on standard output instead of text, for `init`, `bundle` and
    /// `member`: `{"ok": true, ...}`, or `{"ok": false, "error": {"code", "message",
    /// "retryable"}}` (a usage error included, code `usage`). `cluster` prints one JSON object
    /// per line, one per event (`{"event": "replica", ...}`, `"down"`, `"majority"`, `"leader"`,
    /// `"ready"`, `"stopping"`).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// Why a command failed: a stable code for scripts, and whether running it again later may
/// succeed.
struct Failure {
    code: &'static str,
    message: String,
    retryable: bool,
}

impl Failure {
    fn new(code: &'static str, message: impl std::fmt::Display) -> Self {
        Self { code, message: message.to_string(), retryable: false }
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self::new("failed", message)
    }
}

/// What a command reports: text for people, JSON for scripts.
struct Report {
    text: String,
    json: serde_json::Value,
}

#[derive(Subcommand)]
enum Command {
    /// Create a data directory: fleet secrets (secrets.bin, 0600), the fleet authority's Ed25519
    /// seed (authority.key, 0600), a signed fleet key bundle (fleet-bundle.bin, epoch 1), the
    /// pin clients use (fleet.pin) and config.toml.
    ///
    /// In production, move authority.key offline right after init: it is needed only to sign
    /// the next fleet key bundle (`bundle`), and whoever holds it can make clients trust other
    /// keys.
    Init {
        /// The data directory to create (created if missing).
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The fleet identifier (1 to 64 printable ASCII characters, no spaces); bound into
        /// every OPAQUE transcript and sealed request.
        #[arg(long, value_name = "ID")]
        fleet_id: String,
        /// Password attempts of each new registration, 1 to 255; at zero the sealed key is
        /// erased for good.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u8).range(1..))]
        budget: u8,
        /// Days the first fleet key bundle is valid (1 to 3650); sign the next one with
        /// `bundle` before it expires.
        #[arg(long, default_value_t = 30, value_name = "N",
              value_parser = clap::value_parser!(u32).range(1..=3650))]
        bundle_days: u32,
        /// Key stretching (Argon2id) profile of new registrations: `mobile` (16 MiB, 32
        /// passes: every real deployment) or `fast` (256 KiB, 1 pass: tests and demos ONLY; a
        /// stolen store is then cheap to attack, and production clients refuse it).
        #[arg(long, value_enum, default_value = "mobile")]
        ksf: KsfName,
        /// Listen address written to config.toml (loopback by default).
        #[arg(long, default_value = DEFAULT_LISTEN, value_name = "ADDR")]
        listen: SocketAddr,
        /// Overwrite an existing data directory. Its account records are erased too: they are
        /// bound to the old secrets.
        #[arg(long)]
        force: bool,
        /// Replicas of the fleet (1 to 15). With N > 1, DIR/replica-1 .. DIR/replica-N are
        /// made: the same fleet secrets, node ids 1 to N, client ports counting up from
        /// --listen and peer ports from --peer-listen; authority.key stays in DIR. Use an odd
        /// N: a fleet of N survives the loss of (N-1)/2 replicas.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=15))]
        replicas: u8,
        /// First peer address of a replicated fleet (the replicas' private network).
        #[arg(long, default_value = DEFAULT_PEER_LISTEN, value_name = "ADDR")]
        peer_listen: SocketAddr,
        /// Mutual TLS between the replicas (TLS 1.3 with a key derived from the fleet
        /// secrets; spec 7.7.1): use it wherever the peer network is not private.
        #[arg(long)]
        peer_tls: bool,
    },
    /// Start a replicated fleet on loopback in one go: `init --replicas N` into DIR unless it
    /// holds a fleet already, then one `serve` process per replica (logs in
    /// DIR/replica-I/serve.log). Prints each replica's address, process id and the leader,
    /// then runs until SIGINT or SIGTERM and stops the replicas. Meanwhile it reports a replica
    /// that goes down, a change of leader, and a lost majority (the fleet then commits nothing).
    Cluster {
        /// The fleet directory.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Replicas (3, 5 or 7 are sensible) when DIR is new.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=15))]
        replicas: u8,
        /// Fleet identifier when DIR is new.
        #[arg(long, default_value = "local.fleet", value_name = "ID")]
        fleet_id: String,
        /// Key stretching profile when DIR is new (`fast` only for tests and demos).
        #[arg(long, value_enum, default_value = "mobile")]
        ksf: KsfName,
        /// First client address when DIR is new.
        #[arg(long, default_value = DEFAULT_LISTEN, value_name = "ADDR")]
        listen: SocketAddr,
        /// First peer address when DIR is new.
        #[arg(long, default_value = DEFAULT_PEER_LISTEN, value_name = "ADDR")]
        peer_listen: SocketAddr,
    },
    /// Serve the vault over HTTP until SIGINT or SIGTERM (then finish the requests in flight).
    /// Prints `listening on ADDR` on standard output once bound; logs go to standard error
    /// (filter with RUST_LOG, default info).
    Serve {
        /// The data directory made by `init`; the records live in DIR/vault.redb.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The configuration file (default DIR/config.toml).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Listen address, overriding the configuration (port 0 picks a free port).
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
    },
    /// Change the replicas of a fleet (spec section 7.9), one change at a time through the
    /// log. To add a replica: `member prepare`, start `serve` on the new directory, then
    /// `member add`. To replace one that lost its disk: add a new one (new node id), then
    /// `member remove` the old id. Never bring a node id back on an empty or restored disk.
    Member {
        #[command(subcommand)]
        action: MemberAction,
    },
    /// Sign a new fleet key bundle (the next epoch) with the authority key; restart `serve` to
    /// hand it out.
    Bundle {
        /// The data directory made by `init`.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The authority's seed (default DIR/authority.key; in production, where you keep it
        /// offline).
        #[arg(long, value_name = "FILE")]
        authority_key: Option<PathBuf>,
        /// Days the new bundle is valid (1 to 3650).
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(1..=3650))]
        days: u32,
    },
    /// Generate load against a running server: register one account per client, then run the
    /// clients' retrieval loops (login, then K) for a bounded time, and compare with the same
    /// retrieval through the in-process core. Meant for a server with `--ksf fast` on loopback.
    Load {
        /// The server's base URL, http://HOST:PORT (plain HTTP; loopback).
        #[arg(long, value_name = "URL")]
        url: String,
        /// The fleet pin file (DIR/fleet.pin of the server's data directory).
        #[arg(long, value_name = "FILE")]
        pin: PathBuf,
        /// Concurrent clients, 1 to 256 (one account and one connection each).
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Seconds of load, 1 to 600.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Seconds of the in-process measurement.
        #[arg(long, default_value_t = 3)]
        in_process_seconds: u64,
    },
    /// Compare a single vault with a replicated fleet on this machine, in one run: init (ksf
    /// fast) and start a single vault and an N-replica fleet as child processes on free
    /// loopback ports, run the `load` retrieval loops against the single vault, then the
    /// fleet's leader, then one follower (which forwards each request to the leader), and
    /// stop everything.
    ///
    /// Prints per target: retrievals/s (one retrieval = KE1, a durable charge, + KE3, a durable
    /// restore, + opening K), latency p50/p90/p99, rate and p50 relative to the single vault,
    /// and the CPU spent per retrieval by the clients (this process) and the servers (all
    /// replicas for the fleet). Then where the time goes: the measured cost of an fdatasync
    /// and of a durable redb commit in the bench directory, a loopback HTTP round trip, the
    /// raft log entries per retrieval, and how busy the cores were (clients and servers share
    /// them, so a figure near 100 % means the rate is CPU-bound, not disk-bound).
    BenchFleet {
        /// Replicas of the fleet, 2 to 15.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(2..=15))]
        replicas: u8,
        #[command(flatten)]
        run: BenchRun,
    },
    /// Fill data directories with registered accounts, for scale measurements: accounts
    /// scale-0000000 up to --accounts (those present are kept), each registered with the real
    /// journey (RegisterStart, RegisterFinish, sealed to the fleet key and decided by the HSM
    /// core) in process on every core, on the directory's own fleet secrets and policy, then
    /// written to vault.redb in transactions of 20,000 records. Account I has the password
    /// `scale password I`. The servers of the directories must be stopped.
    ///
    /// Give every replica of a fleet (--data-dir once per replica) to keep them identical. With
    /// `--ksf mobile`, each registration stretches the password for real (about a second).
    Populate {
        /// A data directory made by `init` (repeat for each replica of one fleet).
        #[arg(long = "data-dir", value_name = "DIR", required = true)]
        data_dirs: Vec<PathBuf>,
        /// Accounts to have in all (at most 10,000,000).
        #[arg(long, value_name = "N")]
        accounts: u64,
    },
    /// Measure a vault as its population grows, in one run: for each level, `populate` a
    /// single vault and a 3-replica fleet (one fleet's secrets, the same records), then for
    /// each: the store's size, how long the server takes to start, retrievals per second and
    /// their p50/p99 on random accounts, the p50 of 50 registrations, and peak memory. At the
    /// last level, the time each replica takes to build the snapshot that follows a deletion,
    /// and the time an empty fourth replica takes to catch up once added.
    BenchScale {
        /// Account populations, ascending, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1000,100000,1000000")]
        levels: Vec<u64>,
        #[command(flatten)]
        run: BenchRun,
    },
}

/// The load runs of `bench-fleet` and `bench-scale`.
#[derive(clap::Args)]
struct BenchRun {
    /// Concurrent clients of each load run, 1 to 256 (one connection each, and for
    /// `bench-fleet` one account each).
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Seconds of each load run, 1 to 600.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Where to put the data directories (kept, with each server's serve.log; `bench-scale`
    /// goes on with a run that stopped short there, population included). Default: a fresh
    /// temporary directory, removed at the end.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum MemberAction {
    /// Make a data directory for a new replica from an existing replica's: the same fleet
    /// secrets, bundle, pin and policy; a new node id and its own addresses. It starts empty
    /// and waits to be added.
    Prepare {
        /// An existing replica's data directory.
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// The new replica's data directory (created).
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The new node id: never used in this fleet before.
        #[arg(long, value_name = "N")]
        node_id: u64,
        /// The client address the relay will reach the new replica at.
        #[arg(long, value_name = "ADDR")]
        api: SocketAddr,
        /// The peer address the other replicas will reach it at.
        #[arg(long, value_name = "ADDR")]
        peer: SocketAddr,
    },
    /// Add a prepared, running replica: it joins as a learner, catches up, then votes.
    Add {
        /// The new replica's data directory (made by `member prepare`).
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The peer address of any member of the fleet (the request follows to the leader).
        #[arg(long, value_name = "ADDR")]
        via: String,
    },
    /// Remove a replica (lost or retired) from the voters.
    Remove {
        /// Any replica's data directory (for the fleet's peer key).
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The node id to remove.
        #[arg(long, value_name = "N")]
        node_id: u64,
        /// The peer address of any member of the fleet.
        #[arg(long, value_name = "ADDR")]
        via: String,
    },
}

fn member(action: MemberAction) -> Result<Report, Failure> {
    use e2ee_backup_vault_server::members;
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Failure::new("runtime", format!("cannot start the runtime: {e}")))
    };
    // Not marked retryable: a fleet without a leader may answer later, a directory that is
    // not a replica never will, and the members module does not tell them apart yet.
    let changed = |e: members::MemberError| Failure::new("member-change-failed", e);
    Ok(match action {
        MemberAction::Prepare { from, data_dir, node_id, api, peer } => {
            members::prepare(&from, &data_dir, node_id, api, peer)
                .map_err(|e| Failure::new("member-prepare-failed", e))?;
            Report {
                text: format!(
                    "prepared replica {node_id} in {}; start it with `serve --data-dir {}`, \
                     then `member add`",
                    data_dir.display(),
                    data_dir.display()
                ),
                json: serde_json::json!({ "nodeId": node_id, "dataDir": data_dir }),
            }
        }
        MemberAction::Add { data_dir, via } => {
            let voters = runtime()?.block_on(members::add(&data_dir, &via)).map_err(changed)?;
            Report {
                text: format!("added; the voters are now {voters:?}"),
                json: serde_json::json!({ "voters": voters }),
            }
        }
        MemberAction::Remove { data_dir, node_id, via } => {
            let voters =
                runtime()?.block_on(members::remove(&data_dir, node_id, &via)).map_err(changed)?;
            Report {
                text: format!("removed node {node_id}; the voters are now {voters:?}"),
                json: serde_json::json!({ "removed": node_id, "voters": voters }),
            }
        }
    })
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminate = async {
        match terminate.as_mut() {
            Some(t) => {
                t.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}

fn serve(
    data_dir: PathBuf,
    config: Option<PathBuf>,
    listen: Option<SocketAddr>,
) -> Result<(), String> {
    let mut server_config =
        ServerConfig::from_data_dir(&data_dir, config.as_deref()).map_err(|e| e.to_string())?;
    if let Some(listen) = listen {
        server_config.listen = listen;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let server = RunningServer::start(server_config).await.map_err(|e| e.to_string())?;
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "listening on {}", server.addr);
        let _ = stdout.flush();
        server.run_until(shutdown_signal()).await.map_err(|e| e.to_string())
    })
}

/// How `cluster` tells the operator what happens: a line of text, or a JSON object per line.
#[derive(Clone, Copy)]
struct Events {
    json: bool,
}

impl Events {
    /// Prints `text`, or `fields` with `"event": kind` added.
    fn say(self, kind: &str, text: String, mut fields: serde_json::Value) {
        if self.json {
            fields["event"] = kind.into();
            println!("{fields}");
        } else {
            println!("{text}");
        }
    }
}

fn run_cluster(options: &InitOptions, events: Events) -> Result<(), String> {
    let first = e2ee_backup_vault_server::files::replica_dir(&options.data_dir, 1);
    let pin = options.data_dir.join(e2ee_backup_vault_server::files::PIN_FILE);
    if first.join(e2ee_backup_vault_server::files::CONFIG_FILE).exists() {
        events.say(
            "fleet",
            format!("using the fleet in {}", options.data_dir.display()),
            serde_json::json!({ "dir": options.data_dir, "pin": pin, "made": false }),
        );
    } else {
        let report = e2ee_backup_vault_server::init(options).map_err(|e| e.to_string())?;
        events.say(
            "fleet",
            format!(
                "made a fleet of {} replicas in {}; clients pin {}",
                options.replicas,
                options.data_dir.display(),
                pin.display()
            ),
            serde_json::json!({ "dir": options.data_dir, "pin": pin, "made": true }),
        );
        drop(report);
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let count = (1..=15u64)
        .take_while(|id| {
            e2ee_backup_vault_server::files::replica_dir(&options.data_dir, *id)
                .join(e2ee_backup_vault_server::files::CONFIG_FILE)
                .exists()
        })
        .count() as u64;
    let mut fleet =
        FleetProcesses::start(&exe, &options.data_dir, count).map_err(|e| e.to_string())?;
    let leader =
        fleet.wait_for_leader(std::time::Duration::from_secs(30)).map_err(|e| e.to_string())?;
    for (i, replica) in fleet.replicas.iter().enumerate() {
        let role = if i == leader { "leader" } else { "follower" };
        let pid = fleet.pid(i);
        let log = replica.data_dir.join("serve.log");
        events.say(
            "replica",
            format!(
                "replica {} on http://{} ({role}; pid {}; log {})",
                replica.node_id,
                replica.api,
                pid.map_or("?".to_owned(), |p| p.to_string()),
                log.display()
            ),
            serde_json::json!({
                "nodeId": replica.node_id, "url": format!("http://{}", replica.api),
                "role": role, "pid": pid, "log": log,
            }),
        );
    }
    events.say(
        "ready",
        "any replica takes requests; followers pass them to the leader. Changes are reported \
         here. Ctrl-C stops."
            .to_owned(),
        serde_json::json!({}),
    );
    // The signal is awaited on a thread of its own; this one watches the fleet meanwhile.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopping = stop.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    std::thread::spawn(move || {
        runtime.block_on(shutdown_signal());
        stopping.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    let mut watch = Watch { leader: Some(leader), majority: true, events };
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        watch.poll(&mut fleet);
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    events.say("stopping", "stopping the replicas".to_owned(), serde_json::json!({}));
    fleet.stop();
    Ok(())
}

/// What `cluster` last told the operator about its fleet.
struct Watch {
    /// The leader's position.
    leader: Option<usize>,
    /// Whether a majority of the replicas run.
    majority: bool,
    /// Where the reports go.
    events: Events,
}

impl Watch {
    /// Reports the replicas that died, a lost (or regained) majority and a change of leader.
    fn poll(&mut self, fleet: &mut FleetProcesses) {
        for (i, status) in fleet.reap_exited() {
            let how = crate::cluster::describe_exit(status);
            let log = fleet.replicas[i].data_dir.join("serve.log");
            self.events.say(
                "down",
                format!(
                    "replica {} is down ({how}; log {})",
                    fleet.replicas[i].node_id,
                    log.display()
                ),
                serde_json::json!({ "nodeId": fleet.replicas[i].node_id, "exit": how, "log": log }),
            );
        }
        let total = fleet.replicas.len();
        let running = (0..total).filter(|&i| fleet.is_running(i)).count();
        let majority = running * 2 > total;
        if majority != self.majority {
            self.majority = majority;
            let text = if majority {
                format!("majority back: {running} of {total} replicas running")
            } else {
                format!(
                    "majority lost: {running} of {total} replicas running; the fleet commits \
                     nothing (no login, registration or change) until {} of them run",
                    total / 2 + 1
                )
            };
            self.events.say(
                "majority",
                text,
                serde_json::json!({ "majority": majority, "running": running, "replicas": total }),
            );
        }
        let leader = if majority { fleet.agreed_leader() } else { None };
        if leader != self.leader {
            self.leader = leader;
            let node = leader.map(|i| fleet.replicas[i].node_id);
            let text = match node {
                Some(id) => format!("leader: replica {id}"),
                None if majority => "no leader: an election is under way".to_owned(),
                None => "no leader".to_owned(),
            };
            self.events.say("leader", text, serde_json::json!({ "leader": node }));
        }
    }
}

/// Runs a command; `Ok(None)` for the long-running ones, which print as they go.
fn run(command: Command, json: bool) -> Result<Option<Report>, Failure> {
    match command {
        Command::Init {
            data_dir,
            fleet_id,
            budget,
            bundle_days,
            ksf,
            listen,
            force,
            replicas,
            peer_listen,
            peer_tls,
        } => {
            let options = InitOptions {
                data_dir,
                fleet_id,
                budget,
                bundle_days,
                ksf,
                listen,
                force,
                replicas,
                peer_listen,
                peer_tls,
            };
            let report = e2ee_backup_vault_server::init(&options)
                .map_err(|e| Failure::new("init-failed", e))?;
            let mut text = String::new();
            for file in &report.files {
                text.push_str(&format!("wrote {}\n", file.display()));
            }
            text.push_str(&format!("fleet pin (give it to clients):\n{}\n", report.pin.render()));
            let authority = options.data_dir.join(AUTHORITY_FILE);
            text.push_str(&format!(
                "Move {} offline in production: it signs fleet key bundles.",
                authority.display()
            ));
            if ksf == KsfName::Fast {
                text.push_str("\nWARNING: --ksf fast is for tests and demos only.");
            }
            let json = serde_json::json!({
                "files": report.files,
                "pin": report.pin.render(),
                "fleetId": options.fleet_id,
                "authorityKey": authority,
                "bundleNotAfter": report.bundle_not_after,
                "ksf": format!("{ksf:?}").to_lowercase(),
            });
            Ok(Some(Report { text, json }))
        }
        Command::Cluster { dir, replicas, fleet_id, ksf, listen, peer_listen } => {
            let options = InitOptions {
                replicas,
                ksf,
                listen,
                peer_listen,
                ..InitOptions::new(&dir, fleet_id)
            };
            run_cluster(&options, Events { json })?;
            Ok(None)
        }
        Command::Serve { data_dir, config, listen } => {
            init_logs();
            serve(data_dir, config, listen)?;
            Ok(None)
        }
        Command::Member { action } => member(action).map(Some),
        Command::Bundle { data_dir, authority_key, days } => {
            let authority_key = authority_key.unwrap_or_else(|| data_dir.join(AUTHORITY_FILE));
            let (epoch, not_after) =
                e2ee_backup_vault_server::files::resign_bundle(&data_dir, &authority_key, days)
                    .map_err(|e| Failure::new("bundle-failed", e))?;
            Ok(Some(Report {
                text: format!(
                    "signed fleet key bundle epoch {epoch}, valid until {not_after} (unix)"
                ),
                json: serde_json::json!({ "epoch": epoch, "notAfter": not_after }),
            }))
        }
        Command::Load { url, pin, clients, seconds, in_process_seconds } => {
            let pin = FleetPin::read(&pin).map_err(|e| e.to_string())?;
            let options =
                load::LoadOptions { url, pin: pin.0, clients, seconds, in_process_seconds };
            let report = load::run(&options).map_err(|e| Failure::new("load-failed", e))?;
            println!("{report}");
            Ok(None)
        }
        Command::BenchFleet { replicas, run: BenchRun { clients, seconds, dir } } => {
            let exe =
                std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
            let options = load::BenchFleetOptions { exe, replicas, clients, seconds, dir };
            let report = load::bench_fleet(&options).map_err(|e| Failure::new("failed", e))?;
            println!("{report}");
            Ok(None)
        }
        Command::Populate { data_dirs, accounts } => {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let options = populate::PopulateOptions { dirs: data_dirs, accounts, threads };
            let report = populate::populate(&options, &mut |done, to_do| {
                eprint!("\rpopulate: {done} / {to_do}");
                if done == to_do {
                    eprintln!();
                }
            })
            .map_err(|e| Failure::new("populate-failed", e))?;
            println!("{report}");
            Ok(None)
        }
        Command::BenchScale { levels, run: BenchRun { clients, seconds, dir } } => {
            let exe =
                std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
            let options = scale::BenchScaleOptions { exe, levels, clients, seconds, dir };
            let report = scale::bench_scale(&options, &mut |line| eprintln!("bench-scale: {line}"))
                .map_err(|e| Failure::new("failed", e))?;
            println!("{report}");
            Ok(None)
        }
    }
}

fn main() -> ExitCode {
    let wants_json = std::env::args_os().any(|a| a == "--json");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if wants_json && e.use_stderr() => {
            let error = serde_json::json!({
                "code": "usage",
                "message": e.to_string().trim_end(),
                "retryable": false,
            });
            println!("{}", serde_json::json!({ "ok": false, "error": error }));
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    let json = cli.json;
    match run(cli.command, json) {
        Ok(Some(report)) if json => {
            let mut object = report.json;
            object["ok"] = serde_json::Value::Bool(true);
            println!("{object}");
            ExitCode::SUCCESS
        }
        Ok(Some(report)) => {
            println!("{}", report.text);
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(failure) if json => {
            let error = serde_json::json!({
                "code": failure.code,
                "message": failure.message,
                "retryable": failure.retryable,
            });
            println!("{}", serde_json::json!({ "ok": false, "error": error }));
            ExitCode::FAILURE
        }
        Err(failure) => {
            eprintln!("e2ee-backup-vault: {}", failure.message);
            ExitCode::FAILURE
        }
    }
}
