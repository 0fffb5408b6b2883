//! Replication of the event log with openraft 0.9 (docs/adr/0008-raft-replication.md).
//!
//! ```text
//!  append calls ──▶ batcher (leader: gather by count, bytes, linger) ──▶ one raft entry
//!                      │ follower: Forward RPC to the leader                 │ raft log: fsync on every node
//!                      ▼                                                     ▼ committed by a majority
//!                 each caller's own answer ◀── Reply ◀── state machine: plan + one Store::write
//!                                                         (tagged with the entry's log id)
//! ```
//! The state machine *is* the event store: applying an entry runs the same planner as the
//! single writer, with the leader's timestamp from the entry, so every node computes the same
//! positions, versions, refusals and hash chain. The applied log id is stored in the same
//! group as the events it produced (the store's tag), so it can never run ahead of or behind
//! the events.

pub(crate) mod batcher;
mod log_store;
mod network;
mod node;
pub(crate) mod read_index;
mod service;
mod state_machine;

use haven_eventlog_client::status::append_to_proto;
use haven_eventlog_client::{BatchItemOutcome, LogError, StreamAppend};
use haven_proto::v1 as pb;
use prost::Message;
use serde::{Deserialize, Serialize};

pub use log_store::LogStore;
pub use node::{RaftNode, RaftNodeConfig};
pub use service::{ClusterService, RaftService};
pub use state_machine::{SnapshotData, StateMachine};

openraft::declare_raft_types!(
    /// Haven's raft types: node ids are numbers, nodes are their gRPC addresses.
    pub TypeConfig:
        D = Command,
        R = Reply,
        NodeId = u64,
        Node = openraft::BasicNode,
        SnapshotData = SnapshotData,
);

pub type NodeId = u64;
pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type Membership = openraft::StoredMembership<NodeId, openraft::BasicNode>;

/// A raft entry's payload: a `haven.v1.LogCommand`, kept encoded (it is written to the raft
/// log and sent to followers as is; only the state machine decodes it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub encoded: Vec<u8>,
}

impl Command {
    /// The calls gathered for one entry, stamped with the leader's clock.
    pub fn new(recorded_at: prost_types::Timestamp, calls: Vec<Vec<StreamAppend>>) -> Self {
        let calls = calls
            .into_iter()
            .map(|appends| pb::AppendBatchRequest { appends: appends.into_iter().map(append_to_proto).collect() })
            .collect();
        Command { encoded: pb::LogCommand { recorded_at: Some(recorded_at), calls }.encode_to_vec() }
    }

    /// The timestamp and the calls; an error names what does not decode.
    pub fn decode(&self) -> Result<(prost_types::Timestamp, Vec<Vec<StreamAppend>>), LogError> {
        let command = pb::LogCommand::decode(self.encoded.as_slice())
            .map_err(|e| LogError::Internal(format!("raft entry: undecodable command: {e}")))?;
        let calls = command
            .calls
            .into_iter()
            .map(|call| call.appends.into_iter().map(crate::grpc::stream_append_from_proto).collect())
            .collect::<Result<Vec<Vec<StreamAppend>>, LogError>>()?;
        Ok((command.recorded_at.unwrap_or_default(), calls))
    }
}

/// What applying one entry answered: one result per call, in order. Read only on the node
/// that proposed the entry and never sent anywhere, so it is not serialized.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Reply {
    #[serde(skip)]
    pub calls: Vec<Result<Vec<BatchItemOutcome>, LogError>>,
}

/// postcard, for raft's own messages and files.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("raft messages always serialize")
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Result<T, LogError> {
    postcard::from_bytes(bytes).map_err(|e| LogError::Internal(format!("undecodable {what}: {e}")))
}
