//! A replicated fleet (spec chapter 7; its operation, section 7.9) as child processes on one
//! machine: what `e2ee-backup-vault cluster` runs and what the process-level tests drive (kill,
//! stop, continue, restart).
//!
//! It lives in the binary, not the library: the tests include this file as a module of their own
//! (`tests/common/mod.rs`), and each uses only part of it.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use e2ee_backup_vault_server::client::HttpVault;
use e2ee_backup_vault_server::files::{CONFIG_FILE, ConfigFile, FilesError, replica_dir};

/// Why a replica process could not be started or signalled, or no leader was agreed on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// A replica's data directory is missing or invalid.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// Replica `node_id` did not (re)start.
    #[error("replica {node_id}: {source}")]
    Replica {
        /// Its node id.
        node_id: u64,
        /// Why.
        source: Box<ClusterError>,
    },
    /// The replica to signal has no running process.
    #[error("replica {0} is not running")]
    NotRunning(u64),
    /// `kill` could not be run.
    #[error("kill: {0}")]
    Kill(#[source] std::io::Error),
    /// `kill -SIGNAL` failed.
    #[error("kill -{0} failed")]
    KillFailed(&'static str),
    /// No leader agreed on by a majority of the running replicas within the time given.
    #[error("no leader within {0:?}")]
    NoLeader(Duration),
    /// The process's log file could not be opened.
    #[error("{}: {source}", path.display())]
    Log {
        /// The log file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The executable could not be started.
    #[error("cannot start {}: {source}", exe.display())]
    Spawn {
        /// The executable.
        exe: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The process did not print the address it listens on.
    #[error("{} did not start (see {})", data_dir.display(), log.display())]
    DidNotStart {
        /// Its data directory.
        data_dir: PathBuf,
        /// Its log file.
        log: PathBuf,
    },
}

/// One replica process.
#[derive(Debug)]
pub struct ReplicaProcess {
    /// Its node id.
    pub node_id: u64,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its client address.
    pub api: SocketAddr,
    child: Option<Child>,
}

/// A signal for a replica process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Crash it (no shutdown code runs).
    Kill,
    /// Freeze it (its sockets stay open, nothing answers).
    Stop,
    /// Thaw a frozen process.
    Continue,
    /// Ask it to shut down gracefully.
    Terminate,
}

impl Signal {
    fn name(self) -> &'static str {
        match self {
            Signal::Kill => "KILL",
            Signal::Stop => "STOP",
            Signal::Continue => "CONT",
            Signal::Terminate => "TERM",
        }
    }
}

/// The replica processes of one fleet directory.
#[derive(Debug)]
pub struct FleetProcesses {
    exe: PathBuf,
    /// Variables set for every replica process (on top of this process's environment).
    env: Vec<(String, String)>,
    /// The replicas, by position (node id = position + 1 for fleets made by `init`).
    pub replicas: Vec<ReplicaProcess>,
}

impl FleetProcesses {
    /// Starts `serve` with `exe` (the `e2ee-backup-vault` binary) for replicas 1 to `count` of
    /// the fleet directory `dir`, each logging to its `serve.log`.
    pub fn start(exe: &Path, dir: &Path, count: u64) -> Result<Self, ClusterError> {
        Self::start_with_env(exe, dir, count, &[])
    }

    /// [`FleetProcesses::start`], with the variables `env` set for every replica process (also
    /// when restarted).
    pub fn start_with_env(
        exe: &Path,
        dir: &Path,
        count: u64,
        env: &[(&str, &str)],
    ) -> Result<Self, ClusterError> {
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let mut fleet = Self { exe: exe.to_path_buf(), env, replicas: Vec::new() };
        for node_id in 1..=count {
            let data_dir = replica_dir(dir, node_id);
            let config = ConfigFile::read(&data_dir.join(CONFIG_FILE))?;
            fleet.replicas.push(ReplicaProcess {
                node_id,
                data_dir,
                api: config.listen,
                child: None,
            });
        }
        for i in 0..fleet.replicas.len() {
            fleet.restart(i)?;
        }
        Ok(fleet)
    }

    /// Starts one more replica from its data directory (one made by `member prepare`); its
    /// position.
    pub fn launch(&mut self, node_id: u64, data_dir: &Path) -> Result<usize, ClusterError> {
        let config = ConfigFile::read(&data_dir.join(CONFIG_FILE))?;
        self.replicas.push(ReplicaProcess {
            node_id,
            data_dir: data_dir.to_path_buf(),
            api: config.listen,
            child: None,
        });
        let i = self.replicas.len() - 1;
        self.restart(i)?;
        Ok(i)
    }

    /// (Re)starts replica `i` and waits until it listens.
    pub fn restart(&mut self, i: usize) -> Result<(), ClusterError> {
        let replica = &mut self.replicas[i];
        if let Some(mut old) = replica.child.take() {
            let _ = old.kill();
            let _ = old.wait();
        }
        let (child, _) = spawn_serve(&self.exe, &replica.data_dir, &[], &self.env)
            .map_err(|e| ClusterError::Replica { node_id: replica.node_id, source: Box::new(e) })?;
        replica.child = Some(child);
        Ok(())
    }

    /// Sends `signal` to replica `i` (a `Kill` also reaps it).
    pub fn signal(&mut self, i: usize, signal: Signal) -> Result<(), ClusterError> {
        let replica = &mut self.replicas[i];
        let Some(child) = replica.child.as_mut() else {
            return Err(ClusterError::NotRunning(replica.node_id));
        };
        if signal == Signal::Kill {
            let _ = child.kill();
            let _ = child.wait();
            replica.child = None;
            return Ok(());
        }
        let status = Command::new("kill")
            .arg(format!("-{}", signal.name()))
            .arg(child.id().to_string())
            .status()
            .map_err(ClusterError::Kill)?;
        if status.success() { Ok(()) } else { Err(ClusterError::KillFailed(signal.name())) }
    }

    /// Whether replica `i` runs.
    pub fn is_running(&self, i: usize) -> bool {
        self.replicas[i].child.is_some()
    }

    /// The status of replica `i` (`GET /v1/cluster`), if it answers within a second.
    pub fn status(&self, i: usize) -> Option<serde_json::Value> {
        let mut http = HttpVault::at(self.replicas[i].api).with_timeout(Duration::from_secs(1));
        let response = http.request("GET", "/v1/cluster", None).ok()?;
        serde_json::from_slice(&response.body).ok()
    }

    /// The process id of replica `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.replicas[i].child.as_ref().map(Child::id)
    }

    /// Reaps the replicas whose process ended without being asked to here (a crash, a signal
    /// from outside): from then on they do not count as running. Their positions and how they
    /// ended.
    pub fn reap_exited(&mut self) -> Vec<(usize, ExitStatus)> {
        let mut ended = Vec::new();
        for (i, replica) in self.replicas.iter_mut().enumerate() {
            let Some(child) = replica.child.as_mut() else { continue };
            if let Ok(Some(status)) = child.try_wait() {
                replica.child = None;
                ended.push((i, status));
            }
        }
        ended
    }

    /// The running replica that reports itself leader, if a majority of the whole fleet's
    /// replicas name it (asking each once); its position.
    pub fn agreed_leader(&self) -> Option<usize> {
        let statuses: Vec<_> = (0..self.replicas.len())
            .map(|i| if self.is_running(i) { self.status(i) } else { None })
            .collect();
        statuses.iter().enumerate().find_map(|(i, status)| {
            let status = status.as_ref()?;
            if status["role"] != "leader" {
                return None;
            }
            let id = &status["node_id"];
            let agree = statuses.iter().flatten().filter(|s| s["leader"] == *id).count();
            (agree * 2 > self.replicas.len()).then_some(i)
        })
    }

    /// Waits until a running replica reports itself leader and a majority of the running
    /// replicas agree; its position.
    pub fn wait_for_leader(&self, within: Duration) -> Result<usize, ClusterError> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(i) = self.agreed_leader() {
                return Ok(i);
            }
            if Instant::now() > deadline {
                return Err(ClusterError::NoLeader(within));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process ids of the running replicas.
    pub fn pids(&self) -> Vec<u32> {
        self.replicas.iter().filter_map(|r| r.child.as_ref().map(Child::id)).collect()
    }

    /// Stops every replica: SIGTERM, then SIGKILL for any still running after 5 s.
    pub fn stop(&mut self) {
        for i in 0..self.replicas.len() {
            if self.is_running(i) {
                let _ = self.signal(i, Signal::Continue);
                let _ = self.signal(i, Signal::Terminate);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for replica in &mut self.replicas {
            if let Some(mut child) = replica.child.take() {
                reap(&mut child, deadline);
            }
        }
    }
}

/// Starts `exe serve --data-dir DATA_DIR EXTRA...` with the variables `env` set, logging to
/// `DATA_DIR/serve.log`, and waits until it prints `listening on ADDR`; the process and the
/// address.
pub fn spawn_serve(
    exe: &Path,
    data_dir: &Path,
    extra: &[&str],
    env: &[(String, String)],
) -> Result<(Child, SocketAddr), ClusterError> {
    let log_path = data_dir.join("serve.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|source| ClusterError::Log { path: log_path.clone(), source })?;
    let mut child = Command::new(exe)
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|source| ClusterError::Spawn { exe: exe.to_path_buf(), source })?;
    let stdout = child.stdout.take().expect("piped");
    let mut line = String::new();
    let read = BufReader::new(stdout).read_line(&mut line);
    let addr = line.trim().strip_prefix("listening on ").and_then(|a| a.parse().ok());
    match (read, addr) {
        (Ok(_), Some(addr)) => Ok((child, addr)),
        _ => {
            let _ = child.kill();
            let _ = child.wait();
            Err(ClusterError::DidNotStart { data_dir: data_dir.to_path_buf(), log: log_path })
        }
    }
}

/// Stops a `serve` process: SIGTERM, then SIGKILL if it still runs after 5 s.
pub fn terminate(child: &mut Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    reap(child, Instant::now() + Duration::from_secs(5));
}

/// How a process ended, in words: `killed by signal 9`, `exited with code 1`.
pub fn describe_exit(status: ExitStatus) -> String {
    #[cfg(unix)]
    if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
        return format!("killed by signal {signal}");
    }
    match status.code() {
        Some(code) => format!("exited with code {code}"),
        None => status.to_string(),
    }
}

/// Waits for `child` until `deadline`, then kills it.
fn reap(child: &mut Child, deadline: Instant) {
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

impl FleetProcesses {}

impl Drop for FleetProcesses {
    fn drop(&mut self) {
        self.stop();
    }
}
