//! What the engine carries (spec sections 7.3 and 7.4): a replica's identity and addresses,
//! the log entries' payload (a [`Command`] in its spec encoding, stamped with the leader's
//! clock), what applying an entry answers (a [`Decision`]), and openraft's type configuration
//! over them.

use std::fmt::Debug;
use std::io::Cursor;

use e2ee_backup_vault::{Command, Decision};
use openraft::Entry;
use serde::{Deserialize, Serialize};

/// A replica's identity in the fleet: its node id.
pub type NodeId = u64;

/// Where a replica is reached: by clients (through the relay) and by its peers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Client (relay-facing) address, `HOST:PORT`.
    pub api: String,
    /// Peer address, `HOST:PORT`, on the replicas' private network.
    pub peer: String,
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "api {} peer {}", self.api, self.peer)
    }
}

/// A log entry's payload: a [`Command`] in its spec encoding.
#[derive(Clone)]
pub struct LogCommand(pub Command);

impl Debug for LogCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for LogCommand {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0.encode())
    }
}

impl<'de> Deserialize<'de> for LogCommand {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        Command::decode(&bytes).map(Self).map_err(serde::de::Error::custom)
    }
}

/// What applying an entry answers to the request that proposed it: a decision for a command,
/// nothing for the engine's own entries.
pub struct Applied(pub Option<Decision>);

impl Debug for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

// openraft asks that a response be serde-able, but hands it only to the proposer on the same
// replica: a decision (which may hold a live registration and an attempt id) is never written
// or sent, so both directions refuse rather than define bytes nobody reads.
impl Serialize for Applied {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("a decision never leaves the replica that applied it"))
    }
}

impl<'de> Deserialize<'de> for Applied {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom("a decision never leaves the replica that applied it"))
    }
}

openraft::declare_raft_types!(
    /// The vault's openraft configuration.
    pub TypeConfig:
        D = LogCommand,
        R = Applied,
        NodeId = NodeId,
        Node = Member,
        Entry = Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The openraft handle of one replica.
pub type Raft = openraft::Raft<TypeConfig>;
