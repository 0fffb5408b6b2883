//! The gRPC side of a raft node: `haven.v1.Raft` (between nodes) and `haven.v1.Cluster`
//! (`haven log cluster …`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::StreamExt;
use haven_eventlog_client::LogError;
use haven_eventlog_client::status::{batch_to_proto, to_status};
use haven_kernel::Position;
use haven_proto::v1 as pb;
use haven_proto::v1::cluster_server::{Cluster, ClusterServer};
use haven_proto::v1::raft_server::{Raft as RaftRpc, RaftServer};
use openraft::error::{ChangeMembershipError, ClientWriteError, InitializeError, RaftError};
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft::{BasicNode, ChangeMembers, Snapshot, SnapshotMeta, Vote};
use tokio::io::AsyncWriteExt;
use tonic::{Request, Response, Status, Streaming};

use super::batcher::{Call, submit};
use super::network::MAX_MESSAGE_BYTES;
use super::read_index::leader_read_index;
use super::state_machine::SnapshotData;
use super::{NodeId, Raft, TypeConfig, decode, encode};
use crate::store::{Store, StoreHead};

/// What both services need of the node.
#[derive(Clone)]
pub(crate) struct NodeHandle {
    pub raft: Raft,
    pub id: NodeId,
    pub addr: String,
    pub store: Arc<dyn Store>,
    pub staging: PathBuf,
    pub calls: tokio::sync::mpsc::Sender<Call>,
    pub reads: super::read_index::ReadIndex,
}

/// `haven.v1.Raft`.
#[derive(Clone)]
pub struct RaftService {
    node: NodeHandle,
}

/// `haven.v1.Cluster`.
#[derive(Clone)]
pub struct ClusterService {
    node: NodeHandle,
}

impl std::fmt::Debug for RaftService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftService").field("node", &self.node.id).finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ClusterService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterService").field("node", &self.node.id).finish_non_exhaustive()
    }
}

impl RaftService {
    pub(crate) fn server(node: NodeHandle) -> RaftServer<RaftService> {
        RaftServer::new(RaftService { node })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

impl ClusterService {
    pub(crate) fn server(node: NodeHandle) -> ClusterServer<ClusterService> {
        ClusterServer::new(ClusterService { node })
    }
}

fn bad(field: &str, e: impl std::fmt::Display) -> Status {
    to_status(&LogError::invalid(field, e.to_string()))
}

fn reply<T: serde::Serialize>(value: &T) -> Result<Response<pb::RaftMessage>, Status> {
    Ok(Response::new(pb::RaftMessage { body: encode(value) }))
}

#[tonic::async_trait]
impl RaftRpc for RaftService {
    async fn append_entries(&self, request: Request<pb::RaftMessage>) -> Result<Response<pb::RaftMessage>, Status> {
        let rpc: AppendEntriesRequest<TypeConfig> =
            decode(&request.into_inner().body, "append-entries request").map_err(|e| to_status(&e))?;
        reply(&self.node.raft.append_entries(rpc).await)
    }

    async fn vote(&self, request: Request<pb::RaftMessage>) -> Result<Response<pb::RaftMessage>, Status> {
        let rpc: VoteRequest<NodeId> = decode(&request.into_inner().body, "vote request").map_err(|e| to_status(&e))?;
        reply(&self.node.raft.vote(rpc).await)
    }

    async fn snapshot_head(
        &self,
        _request: Request<pb::SnapshotHeadRequest>,
    ) -> Result<Response<pb::SnapshotHeadResponse>, Status> {
        let head = self.node.store.head().map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::SnapshotHeadResponse {
            next_position: head.next_position.0,
            head_hash: head.head_hash.to_vec(),
        }))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<pb::SnapshotChunk>>,
    ) -> Result<Response<pb::RaftMessage>, Status> {
        let mut chunks = request.into_inner();
        let first = chunks.next().await.ok_or_else(|| bad("header", "the snapshot stream was empty"))??;
        type Header = (Vote<NodeId>, SnapshotMeta<NodeId, BasicNode>, u64, u64, [u8; 32]);
        let (vote, meta, from, next, hash): Header =
            decode(&first.header, "snapshot header").map_err(|e| to_status(&e))?;
        let own = self.node.store.head().map_err(|e| to_status(&e))?;
        if own.next_position.0 != from {
            return Err(bad(
                "header",
                format!("the snapshot starts at {from} but this log ends at {}", own.next_position.0),
            ));
        }
        std::fs::create_dir_all(&self.node.staging).map_err(|e| Status::internal(e.to_string()))?;
        let path = self.node.staging.join(format!("incoming-{}", meta.snapshot_id));
        let mut file = tokio::fs::File::create(&path).await.map_err(|e| Status::internal(e.to_string()))?;
        file.write_all(&first.records).await.map_err(|e| Status::internal(e.to_string()))?;
        while let Some(chunk) = chunks.next().await {
            file.write_all(&chunk?.records).await.map_err(|e| Status::internal(e.to_string()))?;
        }
        file.sync_all().await.map_err(|e| Status::internal(e.to_string()))?;
        drop(file);
        let head = StoreHead { next_position: Position(next), head_hash: hash };
        let snapshot = Snapshot {
            meta,
            snapshot: Box::new(SnapshotData::Received { path: path.clone(), from: Position(from), head }),
        };
        let result = self.node.raft.install_full_snapshot(vote, snapshot).await.map_err(|e| e.to_string());
        let _ = std::fs::remove_file(&path);
        reply(&result)
    }

    async fn forward(
        &self,
        request: Request<pb::AppendBatchRequest>,
    ) -> Result<Response<pb::AppendBatchResponse>, Status> {
        let appends = crate::grpc::batch_from_request(request.into_inner()).map_err(|e| to_status(&e))?;
        let outcomes = submit(self.node.calls.clone(), appends, false).await.map_err(|e| to_status(&e))?;
        Ok(Response::new(batch_to_proto(&outcomes)))
    }

    async fn read_index(
        &self,
        _request: Request<pb::ReadIndexRequest>,
    ) -> Result<Response<pb::ReadIndexResponse>, Status> {
        let index = leader_read_index(&self.node.raft).await.map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::ReadIndexResponse { index }))
    }
}

fn failed(e: impl std::fmt::Display) -> Status {
    Status::failed_precondition(e.to_string())
}

/// The status of `node`'s cluster as it sees it.
pub(crate) fn status_of(node: &NodeHandle) -> Result<pb::ClusterStatus, LogError> {
    let metrics = node.raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let matched: BTreeMap<NodeId, u64> = metrics
        .replication
        .as_ref()
        .map(|r| r.iter().map(|(id, log)| (*id, log.map_or(0, |l| l.index))).collect())
        .unwrap_or_default();
    let members = membership
        .nodes()
        .map(|(id, n)| pb::ClusterMember {
            node_id: *id,
            addr: n.addr.clone(),
            voter: voters.contains(id),
            matched_index: matched.get(id).copied().unwrap_or(0),
        })
        .collect();
    Ok(pb::ClusterStatus {
        node_id: node.id,
        leader_id: metrics.current_leader.unwrap_or(0),
        term: metrics.current_term,
        last_log_index: metrics.last_log_index.unwrap_or(0),
        applied_index: metrics.last_applied.map_or(0, |l| l.index),
        state: format!("{:?}", metrics.state),
        members,
        next_position: node.store.head()?.next_position.0,
    })
}

fn node_id(raw: u64) -> Result<NodeId, Status> {
    if raw == 0 { Err(bad("node_id", "node ids start at 1")) } else { Ok(raw) }
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn init(&self, request: Request<pb::ClusterInitRequest>) -> Result<Response<pb::ClusterStatus>, Status> {
        let mut members: BTreeMap<NodeId, BasicNode> = BTreeMap::new();
        for member in request.into_inner().members {
            if member.addr.is_empty() {
                return Err(bad("members.addr", format!("node {} has no address", member.node_id)));
            }
            members.insert(node_id(member.node_id)?, BasicNode::new(member.addr));
        }
        if members.is_empty() {
            members.insert(self.node.id, BasicNode::new(self.node.addr.clone()));
        }
        if !members.contains_key(&self.node.id) {
            return Err(bad("members", format!("the members must include this node ({})", self.node.id)));
        }
        match self.node.raft.initialize(members).await {
            Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
            Err(e) => return Err(failed(e)),
        }
        self.status(Request::new(pb::ClusterStatusRequest {})).await
    }

    async fn add_learner(
        &self,
        request: Request<pb::ClusterNodeRequest>,
    ) -> Result<Response<pb::ClusterStatus>, Status> {
        let request = request.into_inner();
        let id = node_id(request.node_id)?;
        if request.addr.is_empty() {
            return Err(bad("addr", "a learner needs its gRPC address"));
        }
        // Returns once the learner has caught up with the leader's log.
        self.node.raft.add_learner(id, BasicNode::new(request.addr), true).await.map_err(leader_error)?;
        self.status(Request::new(pb::ClusterStatusRequest {})).await
    }

    async fn promote(&self, request: Request<pb::ClusterNodeRequest>) -> Result<Response<pb::ClusterStatus>, Status> {
        let id = node_id(request.into_inner().node_id)?;
        let change = ChangeMembers::AddVoterIds(BTreeSet::from([id]));
        self.node.raft.change_membership(change, false).await.map_err(leader_error)?;
        self.status(Request::new(pb::ClusterStatusRequest {})).await
    }

    async fn remove(&self, request: Request<pb::ClusterNodeRequest>) -> Result<Response<pb::ClusterStatus>, Status> {
        let id = node_id(request.into_inner().node_id)?;
        let metrics = self.node.raft.metrics().borrow().clone();
        let is_voter = metrics.membership_config.membership().voter_ids().any(|v| v == id);
        if is_voter {
            let change = ChangeMembers::RemoveVoters(BTreeSet::from([id]));
            self.node.raft.change_membership(change, false).await.map_err(leader_error)?;
        }
        let change = ChangeMembers::RemoveNodes(BTreeSet::from([id]));
        self.node.raft.change_membership(change, false).await.map_err(leader_error)?;
        self.status(Request::new(pb::ClusterStatusRequest {})).await
    }

    type BackupStream = tokio_stream::wrappers::ReceiverStream<Result<pb::BackupChunk, Status>>;

    async fn backup(&self, _request: Request<pb::BackupRequest>) -> Result<Response<Self::BackupStream>, Status> {
        // Everything committed before the call is in this node's store once the barrier passes;
        // the head read after it is the backup's fixed end.
        self.node.reads.barrier().await.map_err(|e| to_status(&e))?;
        let head = self.node.store.head().map_err(|e| to_status(&e))?;
        let (sender, receiver) = tokio::sync::mpsc::channel(4);
        let first = pb::BackupChunk {
            next_position: head.next_position.0,
            head_hash: head.head_hash.to_vec(),
            records: Vec::new(),
        };
        sender.send(Ok(first)).await.map_err(|_| Status::cancelled("the backup stream closed"))?;
        let store = Arc::clone(&self.node.store);
        tokio::task::spawn_blocking(move || {
            let chunks = sender.clone();
            let read = super::network::read_records(store.as_ref(), Position(0), head, chunks, |records| {
                Ok(pb::BackupChunk { next_position: 0, head_hash: Vec::new(), records })
            });
            if let Err(error) = read {
                tracing::warn!(%error, "a backup stream stopped");
                let _ = sender.blocking_send(Err(to_status(&error)));
            }
        });
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(receiver)))
    }

    async fn status(&self, _request: Request<pb::ClusterStatusRequest>) -> Result<Response<pb::ClusterStatus>, Status> {
        Ok(Response::new(status_of(&self.node).map_err(|e| to_status(&e))?))
    }
}

/// Membership changes run on the leader; elsewhere the error names it.
fn leader_error(error: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>) -> Status {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(to)) => Status::failed_precondition(format!(
            "this node is not the leader; run this against the leader{}",
            to.leader_node.map(|n| format!(" at {}", n.addr)).unwrap_or_default()
        )),
        RaftError::APIError(ClientWriteError::ChangeMembershipError(ChangeMembershipError::LearnerNotFound(e))) => {
            Status::failed_precondition(format!("node {} must be added as a learner first", e.node_id))
        }
        other => failed(other),
    }
}
