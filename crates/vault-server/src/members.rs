//! Changing a fleet's replicas (spec section 7.9): prepare a new replica's data directory from
//! an existing one, add it, remove a replica. Changes go through the log, one at a time.

use std::fs;
use std::net::SocketAddr;
use std::path::Path;

use crate::files::{
    self, BUNDLE_FILE, CONFIG_FILE, ConfigFile, FilesError, MemberConfig, PIN_FILE, SECRETS_FILE,
};
use crate::peer_tls::PeerTls;
use crate::raft::{self, MembershipError, MembershipRequest, NodeId, PeerSeal};
use crate::store::STORE_FILE;

/// Why a replica was not added or removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemberError {
    /// A file of the data directory is missing or invalid.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// The data directory's configuration has no `[replica]` section.
    #[error("the data directory is not a replica")]
    NotAReplica,
    /// The configuration's members do not include the replica's own node id.
    #[error("the configuration does not list the replica's own addresses")]
    NoOwnAddresses,
    /// The replicas' mutual TLS configuration could not be made.
    #[error("peer TLS: {0}")]
    PeerTls(#[source] rustls::Error),
    /// The fleet did not make the change, or did not confirm it.
    #[error(transparent)]
    Change(#[from] MembershipError),
}

/// Makes `data_dir` a replica of the fleet of `from` (another replica's data directory): the
/// same secrets, bundle, pin and policy, node id `node_id`, reached at `api` and `peer`. The
/// replica starts empty and waits to be added (`member add`).
pub fn prepare(
    from: &Path,
    data_dir: &Path,
    node_id: NodeId,
    api: SocketAddr,
    peer: SocketAddr,
) -> Result<(), FilesError> {
    let source = ConfigFile::read(&from.join(CONFIG_FILE))?;
    let Some(mut replica) = source.replica.clone() else {
        return Err(FilesError::Option(format!(
            "{} is not a replica of a fleet (no [replica] section)",
            from.display()
        )));
    };
    if replica.members.iter().any(|m| m.id == node_id) {
        return Err(FilesError::Option(format!(
            "node id {node_id} is in the source's configuration; a new replica needs a new id"
        )));
    }
    for name in [SECRETS_FILE, BUNDLE_FILE, PIN_FILE, CONFIG_FILE, STORE_FILE] {
        let path = data_dir.join(name);
        if path.exists() {
            return Err(FilesError::AlreadyExists(path));
        }
    }
    fs::create_dir_all(data_dir)
        .map_err(|source| FilesError::Io { path: data_dir.to_path_buf(), source })?;
    let secrets = files::read_secrets(from)?;
    files::write_file(&data_dir.join(SECRETS_FILE), &secrets.to_bytes(), 0o600)?;
    for name in [BUNDLE_FILE, PIN_FILE] {
        let bytes = fs::read(from.join(name))
            .map_err(|source| FilesError::Io { path: from.join(name), source })?;
        files::write_file(&data_dir.join(name), &bytes, 0o644)?;
    }
    replica.node_id = node_id;
    replica.peer_listen = peer;
    replica.members =
        vec![MemberConfig { id: node_id, api: api.to_string(), peer: peer.to_string() }];
    replica.bootstrap = false;
    let config = ConfigFile { listen: api, replica: Some(replica), ..source };
    files::write_file(&data_dir.join(CONFIG_FILE), config.render().as_bytes(), 0o644)?;
    Ok(())
}

/// The operator's seal and, if the fleet uses mutual TLS between replicas, its TLS
/// configuration, from any replica's data directory.
fn seal_of(data_dir: &Path) -> Result<(PeerSeal, Option<PeerTls>), MemberError> {
    let secrets = files::read_secrets(data_dir)?;
    let config = ConfigFile::read(&data_dir.join(CONFIG_FILE))?;
    let tls = match config.replica {
        Some(replica) if replica.peer_tls => {
            Some(PeerTls::new(&secrets.peer_tls_seed()).map_err(MemberError::PeerTls)?)
        }
        _ => None,
    };
    Ok((PeerSeal::new(secrets.peer_key(), e2ee_backup_vault::peer::OPERATOR), tls))
}

/// Adds the running replica of `data_dir` (made by [`prepare`]) to its fleet through the peer
/// address `via` of any member; the voters after the change.
pub async fn add(data_dir: &Path, via: &str) -> Result<Vec<NodeId>, MemberError> {
    let config = ConfigFile::read(&data_dir.join(CONFIG_FILE))?;
    let replica = config.replica.ok_or(MemberError::NotAReplica)?;
    let me = replica
        .members
        .iter()
        .find(|m| m.id == replica.node_id)
        .ok_or(MemberError::NoOwnAddresses)?;
    let request = MembershipRequest::Add { id: replica.node_id, member: me.member() };
    let (seal, tls) = seal_of(data_dir)?;
    Ok(raft::request_membership_change(&seal, tls.as_ref(), via, &request).await?)
}

/// Removes replica `node_id` from the fleet of `data_dir` (any replica's data directory, for
/// the fleet's peer key) through the peer address `via`; the voters after the change.
pub async fn remove(
    data_dir: &Path,
    node_id: NodeId,
    via: &str,
) -> Result<Vec<NodeId>, MemberError> {
    let request = MembershipRequest::Remove { id: node_id };
    let (seal, tls) = seal_of(data_dir)?;
    Ok(raft::request_membership_change(&seal, tls.as_ref(), via, &request).await?)
}
