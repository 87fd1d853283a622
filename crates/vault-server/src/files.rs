//! The data directory: what `init` creates and `serve` reads.
//!
//! | file | content | mode |
//! |---|---|---|
//! | `secrets.bin` | the fleet secrets ([`HsmSecrets::to_bytes`]) | 0600 |
//! | `authority.key` | the fleet authority's Ed25519 seed (32 bytes). Move it offline in production: it is needed only to sign a new fleet key bundle | 0600 |
//! | `fleet-bundle.bin` | the signed fleet key bundle the server hands out (spec section 4.3) | 0644 |
//! | `fleet.pin` | what clients pin (see [`FleetPin`]) | 0644 |
//! | `config.toml` | the policy and the listen address (see [`ConfigFile`]) | 0644 |
//! | `vault.redb` | the account records (and a replica's log and snapshot), created by the first `serve` | 0600 |
//! | `keys/` | the erasable keys that seal registered records, log entries and snapshots inside `vault.redb` ([`crate::at_rest`], spec 4.13.1); never copy it without `vault.redb`, nor back it up: a destroyed key must stay destroyed | 0700, files 0600 |
//!
//! One file, though over 700 lines: it is the whole on-disk layout of a data directory, each
//! file's reader beside its writer and `init`, so that the table above has one place to match.

use std::fs;
use std::io::Write as _;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use e2ee_backup_vault::{
    DEFAULT_BUDGET, FleetAuthority, FleetBundle, FleetId, HsmConfig, HsmSecrets, KsfProfile,
    PinError, PinnedFleet,
};
use ed25519_dalek::VerifyingKey;
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::limits::Limits;
use crate::store::STORE_FILE;

/// Fleet secrets file name.
pub const SECRETS_FILE: &str = "secrets.bin";
/// Fleet authority seed file name.
pub const AUTHORITY_FILE: &str = "authority.key";
/// Signed fleet key bundle file name.
pub const BUNDLE_FILE: &str = "fleet-bundle.bin";
/// Client pin file name.
pub const PIN_FILE: &str = "fleet.pin";
/// Configuration file name.
pub const CONFIG_FILE: &str = "config.toml";
/// The default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";

/// Why the data directory could not be created or read. No variant carries secret bytes.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FilesError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// `init` would overwrite an existing file.
    #[error("{0} already exists; pass --force to overwrite the whole data directory")]
    AlreadyExists(PathBuf),
    /// A file's content is invalid.
    #[error("{path}: {why}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// An option is out of range.
    #[error("invalid option: {0}")]
    Option(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FilesError + '_ {
    move |source| FilesError::Io { path: path.to_path_buf(), source }
}

fn invalid(path: &Path, why: impl Into<String>) -> FilesError {
    FilesError::Invalid { path: path.to_path_buf(), why: why.into() }
}

/// The stretching profile, as written in `config.toml` and on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum KsfName {
    /// Argon2id 16 MiB, 32 passes: every real deployment.
    Mobile,
    /// Argon2id 256 KiB, 1 pass: tests and demos only (a stolen store is then cheap to attack).
    Fast,
}

impl KsfName {
    /// The protocol profile.
    pub fn profile(self) -> KsfProfile {
        match self {
            Self::Mobile => KsfProfile::Mobile,
            Self::Fast => KsfProfile::Fast,
        }
    }
}

/// `[name]` followed by `value`'s keys, in TOML.
fn toml_section<T: Serialize>(name: &str, value: &T) -> String {
    let table = std::collections::BTreeMap::from([(name, value)]);
    toml::to_string(&table).expect("configuration sections serialise")
}

/// `config.toml`: the vault's policy and where it listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Listen address; loopback unless a relay must reach it over the network.
    pub listen: SocketAddr,
    /// Guess budget of new registrations, 1 to 255.
    pub budget: u8,
    /// Stretching profile of new registrations.
    pub ksf: KsfName,
    /// Seconds a login ticket stays valid after KE2.
    pub session_lifetime: u64,
    /// Seconds a token stays valid after a successful login.
    pub token_lifetime: u64,
    /// Timeouts and caps on connections and requests (spec section 4.15); absent keys take
    /// their defaults.
    #[serde(default, skip_serializing_if = "Limits::is_default")]
    pub limits: Limits,
    /// Optional account authentication by the relay and per-account rates (spec section
    /// 4.15.1); absent: every request is served, at any rate.
    #[serde(default, skip_serializing_if = "RelayConfig::is_off")]
    pub relay: RelayConfig,
    /// This replica's place in a replicated fleet (spec chapter 7); absent for a single vault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<ReplicaConfig>,
}

/// The `[relay]` section of `config.toml` (spec section 4.15.1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// The relay's Ed25519 public key (64 hexadecimal digits): when set, every vault request
    /// needs an account token signed by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// At most this many requests per account and minute (at the replica that decides them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<std::num::NonZeroU32>,
}

impl RelayConfig {
    /// Whether the section asks for nothing.
    pub fn is_off(&self) -> bool {
        self.public_key.is_none() && self.requests_per_minute.is_none()
    }

    /// The relay's public key, if one is configured.
    pub fn verifying_key(&self) -> Result<Option<VerifyingKey>, RelayKeyError> {
        let Some(text) = &self.public_key else { return Ok(None) };
        let bytes: [u8; 32] =
            hex::decode(text).ok().and_then(|b| b.try_into().ok()).ok_or(RelayKeyError::NotHex)?;
        VerifyingKey::from_bytes(&bytes).map(Some).map_err(|_| RelayKeyError::NotEd25519)
    }
}

/// Why `relay.public_key` is not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RelayKeyError {
    /// It is not 64 hexadecimal digits.
    #[error("relay.public_key must be 64 hexadecimal digits")]
    NotHex,
    /// It is not the encoding of an Ed25519 public key.
    #[error("relay.public_key is not an Ed25519 public key")]
    NotEd25519,
}

/// The `[replica]` section of `config.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaConfig {
    /// This replica's node id: unique in the fleet and never reused (a replica that lost its
    /// disk rejoins under a new id).
    pub node_id: u64,
    /// Where the replica listens for its peers (the replicas' private network only).
    pub peer_listen: SocketAddr,
    /// Milliseconds between leader heartbeats.
    pub heartbeat_ms: u64,
    /// Election timeout bounds in milliseconds (a follower that hears no leader for a random
    /// time in this range starts an election).
    pub election_timeout_ms: [u64; 2],
    /// Applied entries between snapshots (the log is compacted behind each), default 10 000;
    /// a replica that holds more records than this waits for as many entries as it holds
    /// records (spec section 7.6).
    #[serde(default = "snapshot_after_default")]
    pub snapshot_after: u64,
    /// The fleet's replicas at bootstrap (a fleet that exists ignores this list; membership
    /// then changes through `e2ee-backup-vault member`). For a replica that joins an existing
    /// fleet, only itself.
    pub members: Vec<MemberConfig>,
    /// Whether a pristine replica initialises the fleet with `members` (true for the replicas
    /// `init` makes; false for one `member prepare` makes, which waits to be added).
    #[serde(default = "bootstrap_default")]
    pub bootstrap: bool,
    /// Mutual TLS on the peer network (spec section 7.7.1): every replica of the fleet must
    /// agree. Recommended wherever the replicas' network is not private.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub peer_tls: bool,
}

fn bootstrap_default() -> bool {
    true
}

fn snapshot_after_default() -> u64 {
    crate::raft::Tuning::LOCAL.snapshot_after
}

/// One replica in `[[replica.members]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    /// Its node id.
    pub id: u64,
    /// Its client address (`HOST:PORT`, what the relay reaches).
    pub api: String,
    /// Its peer address (`HOST:PORT`).
    pub peer: String,
}

impl MemberConfig {
    /// The engine's view of the member.
    pub fn member(&self) -> crate::raft::Member {
        crate::raft::Member { api: self.api.clone(), peer: self.peer.clone() }
    }
}

impl ReplicaConfig {
    /// The engine tuning this section names.
    pub fn tuning(&self) -> crate::raft::Tuning {
        crate::raft::Tuning {
            heartbeat_ms: self.heartbeat_ms,
            election_min_ms: self.election_timeout_ms[0],
            election_max_ms: self.election_timeout_ms[1],
            snapshot_after: self.snapshot_after,
        }
    }

    fn check(&self, path: &Path) -> Result<(), FilesError> {
        let [low, high] = self.election_timeout_ms;
        if self.snapshot_after < 10 {
            return Err(invalid(path, "snapshot_after must be at least 10"));
        }
        if self.heartbeat_ms == 0 || low <= self.heartbeat_ms || high <= low {
            return Err(invalid(
                path,
                "replica timing must satisfy 0 < heartbeat_ms < election_timeout_ms[0] < \
                 election_timeout_ms[1]",
            ));
        }
        let mut ids: Vec<u64> = self.members.iter().map(|m| m.id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != self.members.len() || !ids.contains(&self.node_id) {
            return Err(invalid(path, "replica members must have distinct ids including node_id"));
        }
        Ok(())
    }
}

impl ConfigFile {
    /// The vault policy this file names.
    pub fn policy(&self) -> HsmConfig {
        HsmConfig {
            budget: self.budget,
            ksf_profile: self.ksf.profile(),
            session_lifetime: self.session_lifetime,
            token_lifetime: self.token_lifetime,
        }
    }

    /// Reads and checks a configuration file.
    pub fn read(path: &Path) -> Result<Self, FilesError> {
        let text = fs::read_to_string(path).map_err(io_err(path))?;
        let config: Self = toml::from_str(&text).map_err(|e| invalid(path, e.to_string()))?;
        if config.budget == 0 {
            return Err(invalid(path, "budget must be 1 to 255"));
        }
        config.limits.check().map_err(|why| invalid(path, why.to_string()))?;
        config.relay.verifying_key().map_err(|why| invalid(path, why.to_string()))?;
        if let Some(replica) = &config.replica {
            replica.check(path)?;
        }
        Ok(config)
    }

    /// The file's text, with comments.
    pub fn render(&self) -> String {
        format!(
            "# e2ee-backup-vault configuration. `serve` flags override these values.\n\
             # Listen address. Keep it on loopback: only the relay (the messaging front end,\n\
             # which authenticates accounts) may reach the vault.\n\
             listen = \"{}\"\n\
             # Guess budget of new registrations (1 to 255).\n\
             budget = {}\n\
             # Key stretching profile of new registrations: \"mobile\" (production) or \"fast\"\n\
             # (tests and demos only).\n\
             ksf = \"{}\"\n\
             # Seconds a login ticket stays valid after KE2, and a token after a login.\n\
             session_lifetime = {}\n\
             token_lifetime = {}\n",
            self.listen,
            self.budget,
            match self.ksf {
                KsfName::Mobile => "mobile",
                KsfName::Fast => "fast",
            },
            self.session_lifetime,
            self.token_lifetime
        ) + &self.render_limits()
            + &self.render_relay()
            + &self.render_replica()
    }

    fn render_limits(&self) -> String {
        let note = "\n# Timeouts and caps on connections and requests (spec section 4.15): a [limits]\n\
                    # section overrides the defaults key by key.\n";
        let section = (!self.limits.is_default()).then(|| toml_section("limits", &self.limits));
        format!("{note}{}", section.unwrap_or_default())
    }

    fn render_relay(&self) -> String {
        let note = "\n# Account authentication by the relay and per-account rates (spec section\n\
                    # 4.15.1): [relay] public_key = \"<64 hex digits>\", requests_per_minute = N.\n";
        let section = (!self.relay.is_off()).then(|| toml_section("relay", &self.relay));
        format!("{note}{}", section.unwrap_or_default())
    }

    fn render_replica(&self) -> String {
        match &self.replica {
            None => String::new(),
            Some(replica) => format!(
                "\n# This replica's place in the fleet (spec chapter 7). node_id is never reused;\n\
                 # members is the fleet at bootstrap. peer_listen must be reachable by the other\n\
                 # replicas only.\n{}",
                toml_section("replica", replica)
            ),
        }
    }
}

/// What a client pins: the fleet id and the authority's public key (and optionally an auditor).
///
/// The file `fleet.pin` is UTF-8 text, one `key = value` per line; blank lines and lines
/// starting with `#` are ignored; every key at most once, no other key:
///
/// ```text
/// # e2ee-backups fleet pin, format 1
/// fleet_id = example.fleet
/// authority = 3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c
/// ```
///
/// `fleet_id` is 1 to 64 printable ASCII characters without spaces; `authority` (required) and
/// `auditor` (optional) are Ed25519 public keys in 64 hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetPin(pub PinnedFleet);

impl FleetPin {
    /// The pin file's text ([`PinnedFleet::render_pin`]).
    pub fn render(&self) -> String {
        self.0.render_pin()
    }

    /// Parses a pin file's text ([`PinnedFleet::parse_pin`], the rules the client reads it by).
    pub fn parse(text: &str) -> Result<Self, PinError> {
        PinnedFleet::parse_pin(text).map(Self)
    }

    /// Reads a pin file.
    pub fn read(path: &Path) -> Result<Self, FilesError> {
        let text = fs::read_to_string(path).map_err(io_err(path))?;
        Self::parse(&text).map_err(|why| invalid(path, why.to_string()))
    }
}

/// Checks a fleet id: 1 to 64 printable ASCII characters, no spaces
/// ([`e2ee_backup_vault::check_fleet_id`]).
pub fn check_fleet_id(fleet_id: &str) -> Result<FleetId<'_>, String> {
    e2ee_backup_vault::check_fleet_id(fleet_id)
}

/// Options of `init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The data directory (created if missing).
    pub data_dir: PathBuf,
    /// The fleet identifier.
    pub fleet_id: String,
    /// Guess budget of new registrations, 1 to 255.
    pub budget: u8,
    /// Days the first fleet key bundle is valid.
    pub bundle_days: u32,
    /// Stretching profile of new registrations.
    pub ksf: KsfName,
    /// Listen address written to `config.toml`.
    pub listen: SocketAddr,
    /// Overwrite an existing data directory (its records are erased: they belong to the old
    /// secrets).
    pub force: bool,
    /// Replicas of the fleet: 1 makes a single vault in `data_dir`; N > 1 makes
    /// `data_dir/replica-1` to `replica-N` (same fleet secrets, node ids 1 to N, client ports
    /// from `listen` up, peer ports from `peer_listen` up) and keeps `authority.key` in
    /// `data_dir` only.
    pub replicas: u8,
    /// First peer address of a replicated fleet.
    pub peer_listen: SocketAddr,
    /// Mutual TLS between the replicas (spec section 7.7.1).
    pub peer_tls: bool,
}

/// The first peer address `init` gives a replicated fleet.
pub const DEFAULT_PEER_LISTEN: &str = "127.0.0.1:7978";

/// The data directory of replica `node_id` inside a fleet directory made by `init`.
pub fn replica_dir(fleet_dir: &Path, node_id: u64) -> PathBuf {
    fleet_dir.join(format!("replica-{node_id}"))
}

impl InitOptions {
    /// Options with the defaults of the command line.
    pub fn new(data_dir: impl Into<PathBuf>, fleet_id: impl Into<String>) -> Self {
        Self {
            data_dir: data_dir.into(),
            fleet_id: fleet_id.into(),
            budget: DEFAULT_BUDGET,
            bundle_days: 30,
            ksf: KsfName::Mobile,
            listen: DEFAULT_LISTEN.parse().expect("a valid address"),
            force: false,
            replicas: 1,
            peer_listen: DEFAULT_PEER_LISTEN.parse().expect("a valid address"),
            peer_tls: false,
        }
    }
}

/// What `init` made.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// The files written.
    pub files: Vec<PathBuf>,
    /// The pin clients use.
    pub pin: FleetPin,
    /// The bundle's expiry (Unix seconds).
    pub bundle_not_after: u64,
}

/// The current Unix time in seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Creates a data directory: fleet secrets, authority key, signed bundle (epoch 1), pin and
/// configuration. Refuses to overwrite anything unless `force`; with `force` an existing
/// record store is removed too (its records are bound to the old secrets).
pub fn init(options: &InitOptions) -> Result<InitReport, FilesError> {
    let fleet_id = check_fleet_id(&options.fleet_id).map_err(FilesError::Option)?;
    if options.budget == 0 {
        return Err(FilesError::Option("the budget must be 1 to 255".into()));
    }
    if options.bundle_days == 0 || options.bundle_days > 3650 {
        return Err(FilesError::Option("--bundle-days must be 1 to 3650".into()));
    }
    if options.replicas == 0 || options.replicas > 15 {
        return Err(FilesError::Option("--replicas must be 1 to 15".into()));
    }
    let dir = &options.data_dir;
    let replicated = options.replicas > 1;
    let replica_dirs: Vec<PathBuf> = if replicated {
        (1..=u64::from(options.replicas)).map(|id| replica_dir(dir, id)).collect()
    } else {
        vec![dir.clone()]
    };
    let mut existing = vec![dir.join(AUTHORITY_FILE)];
    for replica in &replica_dirs {
        let names = [SECRETS_FILE, BUNDLE_FILE, PIN_FILE, CONFIG_FILE, STORE_FILE];
        existing.extend(names.iter().map(|name| replica.join(name)));
    }
    for path in existing.iter().filter(|p| p.exists()) {
        if !options.force {
            return Err(FilesError::AlreadyExists(path.clone()));
        }
        if path.file_name().is_some_and(|n| n == STORE_FILE) {
            fs::remove_file(path).map_err(io_err(path))?;
        }
    }

    let secrets = HsmSecrets::generate(&mut OsRng, fleet_id);
    let authority = FleetAuthority::generate(&mut OsRng);
    let not_after = unix_now() + u64::from(options.bundle_days) * 86_400;
    let bundle = FleetBundle {
        fleet_id: options.fleet_id.as_bytes().to_vec(),
        epoch: 1,
        not_after,
        keys: secrets.public_keys(),
    };
    let signed = authority
        .sign(&bundle)
        .map_err(|e| FilesError::Option(format!("the bundle cannot be signed: {e}")))?;
    let pin = FleetPin(PinnedFleet {
        fleet_id: options.fleet_id.as_bytes().to_vec(),
        authority: authority.verifying_key(),
        auditor: None,
    });
    let offset = |addr: SocketAddr, i: u64| -> Result<SocketAddr, FilesError> {
        let port = u16::try_from(u64::from(addr.port()) + i)
            .map_err(|_| FilesError::Option(format!("no port {i} above {addr}")))?;
        Ok(SocketAddr::new(addr.ip(), port))
    };
    let mut members = Vec::new();
    for i in 0..u64::from(options.replicas) {
        members.push(MemberConfig {
            id: i + 1,
            api: offset(options.listen, i)?.to_string(),
            peer: offset(options.peer_listen, i)?.to_string(),
        });
    }

    let mut files = Vec::new();
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    files.push(write_file(&dir.join(AUTHORITY_FILE), authority.to_bytes().as_ref(), 0o600)?);
    let secrets_bytes = secrets.to_bytes();
    for (i, replica) in replica_dirs.iter().enumerate() {
        fs::create_dir_all(replica).map_err(io_err(replica))?;
        let me = &members[i];
        let config = ConfigFile {
            listen: me.api.parse().expect("made from a SocketAddr"),
            budget: options.budget,
            ksf: options.ksf,
            session_lifetime: 300,
            token_lifetime: 300,
            limits: Limits::DEFAULT,
            relay: RelayConfig::default(),
            replica: replicated.then(|| ReplicaConfig {
                node_id: me.id,
                peer_listen: me.peer.parse().expect("made from a SocketAddr"),
                heartbeat_ms: 50,
                election_timeout_ms: [300, 600],
                snapshot_after: snapshot_after_default(),
                members: members.clone(),
                bootstrap: true,
                peer_tls: options.peer_tls,
            }),
        };
        files.push(write_file(&replica.join(SECRETS_FILE), &secrets_bytes, 0o600)?);
        files.push(write_file(&replica.join(BUNDLE_FILE), &signed, 0o644)?);
        files.push(write_file(&replica.join(PIN_FILE), pin.render().as_bytes(), 0o644)?);
        files.push(write_file(&replica.join(CONFIG_FILE), config.render().as_bytes(), 0o644)?);
    }
    if replicated {
        files.push(write_file(&dir.join(PIN_FILE), pin.render().as_bytes(), 0o644)?);
    }
    Ok(InitReport { files, pin, bundle_not_after: not_after })
}

/// Signs a new fleet key bundle for the fleet of `data_dir` with the authority seed at
/// `authority_key`: the next epoch, valid `days` days. Returns the new epoch and expiry.
pub fn resign_bundle(
    data_dir: &Path,
    authority_key: &Path,
    days: u32,
) -> Result<(u64, u64), FilesError> {
    if days == 0 || days > 3650 {
        return Err(FilesError::Option("--days must be 1 to 3650".into()));
    }
    let secrets = read_secrets(data_dir)?;
    let seed = Zeroizing::new(fs::read(authority_key).map_err(io_err(authority_key))?);
    let seed: &[u8; 32] =
        seed.as_slice().try_into().map_err(|_| invalid(authority_key, "not 32 bytes"))?;
    let authority = FleetAuthority::from_bytes(seed);
    let pin = FleetPin::read(&data_dir.join(PIN_FILE))?;
    if pin.0.authority != authority.verifying_key() {
        return Err(invalid(authority_key, "this is not the authority the fleet pin names"));
    }
    let bundle_path = data_dir.join(BUNDLE_FILE);
    let old = fs::read(&bundle_path).map_err(io_err(&bundle_path))?;
    // The old bundle may have expired: take its epoch from a check at time 0.
    let old = pin.0.verify(&old, 0, None).map_err(|e| invalid(&bundle_path, e.to_string()))?;
    let not_after = unix_now() + u64::from(days) * 86_400;
    let bundle = FleetBundle {
        fleet_id: secrets.fleet_id().as_bytes().to_vec(),
        epoch: old.epoch + 1,
        not_after,
        keys: secrets.public_keys(),
    };
    let signed = authority.sign(&bundle).map_err(|e| invalid(&bundle_path, e.to_string()))?;
    write_file(&bundle_path, &signed, 0o644)?;
    Ok((bundle.epoch, not_after))
}

/// Reads `secrets.bin`.
pub fn read_secrets(data_dir: &Path) -> Result<HsmSecrets, FilesError> {
    let path = data_dir.join(SECRETS_FILE);
    let bytes = Zeroizing::new(fs::read(&path).map_err(io_err(&path))?);
    HsmSecrets::from_bytes(&bytes).map_err(|e| invalid(&path, e.to_string()))
}

/// Writes a whole file through a temporary file and a rename, with `mode`, synced to disk.
pub(crate) fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<PathBuf, FilesError> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        file.set_permissions(fs::Permissions::from_mode(mode)).map_err(io_err(&tmp))?;
        file.write_all(bytes).map_err(io_err(&tmp))?;
        file.sync_all().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(parent) = path.parent()
        && let Ok(dir) = fs::File::open(parent)
    {
        let _ = dir.sync_all();
    }
    Ok(path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin() -> FleetPin {
        FleetPin(PinnedFleet {
            fleet_id: b"unit.fleet".to_vec(),
            authority: FleetAuthority::generate(&mut OsRng).verifying_key(),
            auditor: Some(FleetAuthority::generate(&mut OsRng).verifying_key()),
        })
    }

    #[test]
    fn a_pin_reads_back_what_was_written() {
        let pin = pin();
        assert_eq!(FleetPin::parse(&pin.render()).unwrap(), pin);
    }

    #[test]
    fn a_pin_with_a_bad_line_is_refused_with_its_number() {
        let text = pin().render();
        let cases = [
            (format!("{text}authority = 00\n"), "line 5"),
            (format!("{text}colour = blue\n"), "unknown key"),
            (format!("{text}no equals sign\n"), "key = value"),
            (text.replace("fleet_id = unit.fleet", "fleet_id = two words"), "printable"),
            (
                text.lines().filter(|l| !l.starts_with("authority")).collect::<Vec<_>>().join("\n"),
                "authority is missing",
            ),
            // The identity point is a small-order Ed25519 key.
            (
                text.lines()
                    .map(|l| {
                        if l.starts_with("authority") {
                            format!("authority = 01{}", "00".repeat(31))
                        } else {
                            l.to_owned()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
                "small-order",
            ),
        ];
        for (text, expected) in cases {
            let error = FleetPin::parse(&text).unwrap_err().to_string();
            assert!(error.contains(expected), "{error:?} should mention {expected:?}");
        }
    }

    #[test]
    fn config_reads_back_and_refuses_unknown_keys_and_a_zero_budget() {
        let dir = tempfile::tempdir().unwrap();
        let config = ConfigFile {
            listen: "127.0.0.1:9999".parse().unwrap(),
            budget: 7,
            ksf: KsfName::Fast,
            session_lifetime: 60,
            token_lifetime: 30,
            limits: Limits::DEFAULT,
            relay: RelayConfig::default(),
            replica: None,
        };
        let path = dir.path().join(CONFIG_FILE);
        fs::write(&path, config.render()).unwrap();
        assert_eq!(ConfigFile::read(&path).unwrap(), config);
        fs::write(&path, config.render().replace("budget = 7", "budget = 0")).unwrap();
        assert!(ConfigFile::read(&path).is_err());
        fs::write(&path, format!("{}extra = 1\n", config.render())).unwrap();
        assert!(ConfigFile::read(&path).is_err());
        let tight = ConfigFile {
            limits: Limits { max_connections_per_source: 3, ..Limits::DEFAULT },
            ..config.clone()
        };
        fs::write(&path, tight.render()).unwrap();
        assert_eq!(ConfigFile::read(&path).unwrap(), tight);
        fs::write(&path, format!("{}[limits]\nmax_in_flight = 0\n", config.render())).unwrap();
        assert!(ConfigFile::read(&path).is_err());
    }

    #[test]
    fn fleet_ids_are_printable_ascii_of_1_to_64_bytes() {
        assert!(check_fleet_id("vault.example-1").is_ok());
        for bad in ["", "has space", "tab\t", "é", &"x".repeat(65)] {
            assert!(check_fleet_id(bad).is_err(), "{bad:?}");
        }
    }
}
