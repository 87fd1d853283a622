//! Issue 11: `e2ee-backup-vault cluster`, the operator's view of a local fleet, reports what
//! happens to it while it runs: a replica that dies (here SIGKILL, from outside), the new
//! leader, and a lost majority. A real three-replica fleet of `serve` processes on loopback.
#![cfg(target_os = "linux")]

use std::io::{BufRead as _, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_e2ee-backup-vault");

/// A base port `p` with `p`, `p + 1` and `p + 2` free on 127.0.0.1, as far as can be told now.
fn three_free_ports(seed: u16) -> u16 {
    let mut base = 20_000 + (std::process::id() as u16 % 20_000) + seed * 7;
    loop {
        if (0..3).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
        base += 3;
    }
}

/// The process id of the `serve` process of replica `node` of the fleet in `dir`.
fn serve_pid(dir: &Path, node: u64) -> Option<u32> {
    let wanted = dir.join(format!("replica-{node}"));
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        if args.contains(&b"serve".as_slice())
            && args.contains(&wanted.as_os_str().as_encoded_bytes())
        {
            return Some(pid);
        }
    }
    None
}

fn kill(signal: &str, pid: u32) {
    let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
    assert!(status.expect("kill runs").success());
}

struct Cluster {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Cluster {
    fn start(dir: &Path, seed: u16, json: bool) -> Self {
        let listen = three_free_ports(seed);
        let peer = three_free_ports(seed + 1000);
        let mut child = Command::new(EXE)
            .args(if json { &["--json"][..] } else { &[] })
            .args(["cluster", "--replicas", "3", "--ksf", "fast", "--dir"])
            .arg(dir)
            .args(["--listen", &format!("127.0.0.1:{listen}")])
            .args(["--peer-listen", &format!("127.0.0.1:{peer}")])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the cluster starts");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                eprintln!("cluster: {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self { child, lines, seen: Vec::new() }
    }

    /// Waits for a line that `matches`; returns it.
    fn expect(&mut self, what: &str, within: Duration, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return line;
                    }
                }
                Err(_) => panic!("no line saying {what} within {within:?}; seen: {:#?}", self.seen),
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The node id and role of a line `replica N on http://ADDR (ROLE; ...`.
fn replica_line(line: &str) -> Option<(u64, String)> {
    let rest = line.strip_prefix("replica ")?;
    let (id, rest) = rest.split_once(' ')?;
    let role = rest.split_once('(')?.1.split([';', ')']).next()?;
    Some((id.parse().ok()?, role.to_owned()))
}

#[test]
fn cluster_reports_a_dead_replica_the_new_leader_and_a_lost_majority() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("fleet");
    let mut cluster = Cluster::start(&dir, 0, false);
    let mut leader = None;
    let mut replicas = Vec::new();
    while replicas.len() < 3 {
        let line =
            cluster.expect("the replicas", Duration::from_secs(60), |l| replica_line(l).is_some());
        let (id, role) = replica_line(&line).unwrap();
        if role == "leader" {
            leader = Some(id);
        }
        replicas.push(id);
    }
    let leader = leader.expect("a leader is shown");
    let pid = serve_pid(&dir, leader).expect("the leader's process");

    // The leader dies: the cluster says so, and names the new leader.
    kill("KILL", pid);
    let down = format!("replica {leader} is down");
    cluster.expect(&down, Duration::from_secs(15), |l| l.contains(&down));
    let line = cluster
        .expect("a new leader", Duration::from_secs(30), |l| l.starts_with("leader: replica "));
    let new_leader: u64 =
        line["leader: replica ".len()..].split(' ').next().unwrap().parse().unwrap();
    assert_ne!(new_leader, leader, "{line}");

    // A second replica dies: one of three cannot commit anything.
    let follower = replicas.iter().copied().find(|&id| id != leader && id != new_leader).unwrap();
    kill("KILL", serve_pid(&dir, follower).expect("the follower's process"));
    let down = format!("replica {follower} is down");
    cluster.expect(&down, Duration::from_secs(15), |l| l.contains(&down));
    cluster.expect("the lost majority", Duration::from_secs(15), |l| {
        l.contains("majority lost") && l.contains("1 of 3")
    });
    drop(cluster);
    assert!(serve_pid(&dir, new_leader).is_none(), "the last replica was not stopped");
}

/// `--json`: the same reports, one JSON object per line, each with its `event`.
#[test]
fn cluster_json_prints_one_event_object_per_line() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("fleet");
    let mut cluster = Cluster::start(&dir, 40, true);
    let event = |line: &str| -> serde_json::Value {
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
    };
    let fleet = event(&cluster.expect("the fleet", Duration::from_secs(60), |_| true));
    assert_eq!(fleet["event"], "fleet");
    assert_eq!(fleet["made"], true);
    assert!(fleet["pin"].as_str().unwrap().ends_with("fleet.pin"), "{fleet}");
    let mut leader = None;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let replica = event(&cluster.expect("a replica", Duration::from_secs(60), |_| true));
        assert_eq!(replica["event"], "replica", "{replica}");
        assert!(replica["url"].as_str().unwrap().starts_with("http://127.0.0.1:"), "{replica}");
        assert!(replica["pid"].as_u64().is_some(), "{replica}");
        if replica["role"] == "leader" {
            leader = replica["nodeId"].as_u64();
        }
        ids.push(replica["nodeId"].as_u64().expect("a node id"));
    }
    let leader = leader.expect("one replica is the leader");
    assert_eq!(event(&cluster.expect("ready", Duration::from_secs(5), |_| true))["event"], "ready");

    kill("KILL", serve_pid(&dir, leader).expect("the leader's process"));
    let down = event(
        &cluster
            .expect("a down event", Duration::from_secs(15), |l| l.contains(r#""event":"down""#)),
    );
    assert_eq!(down["nodeId"].as_u64(), Some(leader), "{down}");
    assert_eq!(down["exit"], "killed by signal 9", "{down}");
    let new = event(&cluster.expect("a new leader", Duration::from_secs(30), |l| {
        l.contains(r#""event":"leader""#) && !l.contains(r#""leader":null"#)
    }));
    assert_ne!(new["leader"].as_u64(), Some(leader), "{new}");

    // A second replica dies: the lost majority is an event too.
    let new_leader = new["leader"].as_u64().unwrap();
    let follower = ids.into_iter().find(|&id| id != leader && id != new_leader).unwrap();
    kill("KILL", serve_pid(&dir, follower).expect("the follower's process"));
    let lost = event(&cluster.expect("the lost majority", Duration::from_secs(20), |l| {
        l.contains(r#""event":"majority""#) && l.contains(r#""majority":false"#)
    }));
    assert_eq!((lost["running"].as_u64(), lost["replicas"].as_u64()), (Some(1), Some(3)), "{lost}");
}
