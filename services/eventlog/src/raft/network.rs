//! Raft's RPCs to other nodes, over tonic (`haven.v1.Raft`).
//!
//! Append-entries and votes are one unary call each with a postcard body. A snapshot first
//! asks the follower where its log ends, then streams only the records after that, read from
//! this node's store in chunks, so a store much larger than memory can be sent; it has no
//! overall deadline (a real snapshot can take minutes), only the replication's own cancel.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use haven_eventlog_client::LogError;
use haven_kernel::Position;
use haven_proto::v1 as pb;
use haven_proto::v1::raft_client::RaftClient;
use openraft::error::{
    Fatal, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed, StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse};
use openraft::{BasicNode, Snapshot, Vote};
use tonic::transport::{Channel, Endpoint};

use super::state_machine::SnapshotData;
use super::{NodeId, TypeConfig, decode, encode};
use crate::store::{Scan, StoreHead};

/// Records per snapshot chunk, at most about this many bytes.
const CHUNK_BYTES: usize = 1024 * 1024;
pub(crate) const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// Clients for the peers: one HTTP/2 connection per peer address, shared by replication,
/// votes and the heartbeats of read-index checks (openraft asks for a new client for each of
/// those; a connection each would churn through ports under a read load).
#[derive(Clone, Debug, Default)]
pub struct Network {
    /// The local address connections to peers leave from; `None`: the OS chooses.
    pub source_ip: Option<IpAddr>,
    clients: Arc<Mutex<HashMap<String, RaftClient<Channel>>>>,
}

impl Network {
    pub fn new(source_ip: Option<IpAddr>) -> Self {
        Network { source_ip, clients: Arc::default() }
    }
}

/// One peer.
#[derive(Debug)]
pub struct Peer {
    target: NodeId,
    client: Result<RaftClient<Channel>, String>,
}

pub(crate) fn channel(addr: &str, source_ip: Option<IpAddr>) -> Result<Channel, String> {
    let uri = if addr.contains("://") { addr.to_owned() } else { format!("http://{addr}") };
    Ok(Endpoint::from_shared(uri)
        .map_err(|e| format!("bad node address {addr}: {e}"))?
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true)
        // A peer that stops answering on a kept connection (paused, partitioned) is noticed
        // and the connection replaced, instead of calls waiting on it.
        .http2_keep_alive_interval(Duration::from_secs(1))
        .keep_alive_timeout(Duration::from_secs(2))
        .keep_alive_while_idle(true)
        .local_address(source_ip)
        .connect_lazy())
}

pub(crate) fn raft_client(addr: &str, source_ip: Option<IpAddr>) -> Result<RaftClient<Channel>, String> {
    Ok(RaftClient::new(channel(addr, source_ip)?)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES))
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        let mut clients = self.clients.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let client = match clients.get(&node.addr) {
            Some(client) => Ok(client.clone()),
            None => raft_client(&node.addr, self.source_ip).inspect(|client| {
                clients.insert(node.addr.clone(), client.clone());
            }),
        };
        Peer { target, client }
    }
}

type RpcError<E = openraft::error::Infallible> = RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

fn unreachable(e: impl std::fmt::Display) -> Unreachable {
    Unreachable::new(&std::io::Error::other(e.to_string()))
}

impl Peer {
    fn client(&self) -> Result<RaftClient<Channel>, Unreachable> {
        self.client.clone().map_err(unreachable)
    }

    /// One unary call: postcard request, postcard `Result<response, RaftError>` back.
    async fn call<Req, Resp, F, Fut>(&self, request: &Req, option: &RPCOption, send: F) -> Result<Resp, RpcError>
    where
        Req: serde::Serialize,
        Resp: for<'de> serde::Deserialize<'de>,
        F: FnOnce(RaftClient<Channel>, tonic::Request<pb::RaftMessage>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<pb::RaftMessage>, tonic::Status>>,
    {
        let client = self.client()?;
        let mut message = haven_runtime::internal::request(pb::RaftMessage { body: encode(request) });
        message.set_timeout(option.hard_ttl());
        let reply = send(client, message).await.map_err(|status| {
            if status.code() == tonic::Code::Unavailable {
                RPCError::Unreachable(unreachable(status.message()))
            } else {
                RPCError::Network(NetworkError::new(&std::io::Error::other(status.message().to_owned())))
            }
        })?;
        let result: Result<Resp, RaftError<NodeId>> = decode(&reply.into_inner().body, "raft reply")
            .map_err(|e| RPCError::Network(NetworkError::new(&std::io::Error::other(e.to_string()))))?;
        result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    /// Retries an unreachable peer every 100 ms (openraft's default is 500 ms): a restarted
    /// node hears from the leader while its elections are held (`hold_elections`), instead of
    /// campaigning and unseating a healthy leader.
    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(Duration::from_millis(100)))
    }

    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError> {
        self.call(&rpc, &option, |mut client, message| async move { client.append_entries(message).await }).await
    }

    async fn vote(&mut self, rpc: VoteRequest<NodeId>, option: RPCOption) -> Result<VoteResponse<NodeId>, RpcError> {
        self.call(&rpc, &option, |mut client, message| async move { client.vote(message).await }).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<NodeId>,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let SnapshotData::Built { store, head } = *snapshot.snapshot else {
            return Err(StreamingError::Unreachable(unreachable("only a snapshot built here can be sent")));
        };
        let mut client = self.client()?;
        let send = async move {
            let theirs = client
                .snapshot_head(haven_runtime::internal::request(pb::SnapshotHeadRequest {}))
                .await
                .map_err(unreachable)?
                .into_inner();
            let from = Position(theirs.next_position);
            if from > head.next_position {
                return Err(unreachable(format!(
                    "the follower's log ({}) is ahead of the snapshot ({})",
                    from.0, head.next_position.0
                )));
            }
            let header = encode(&(vote, snapshot.meta.clone(), from.0, head.next_position.0, head.head_hash));
            let (chunks, receiver) = tokio::sync::mpsc::channel::<pb::SnapshotChunk>(4);
            chunks
                .send(pb::SnapshotChunk { header, records: Vec::new() })
                .await
                .map_err(|_| unreachable("snapshot stream closed"))?;
            let reader = tokio::task::spawn_blocking(move || {
                read_records(store.as_ref(), from, head, chunks, |records| pb::SnapshotChunk {
                    header: Vec::new(),
                    records,
                })
            });
            let reply = client
                .install_snapshot(haven_runtime::internal::request(tokio_stream::wrappers::ReceiverStream::new(
                    receiver,
                )))
                .await
                .map_err(unreachable)?;
            reader.await.map_err(unreachable)?.map_err(unreachable)?;
            let result: Result<SnapshotResponse<NodeId>, String> =
                decode(&reply.into_inner().body, "snapshot reply").map_err(unreachable)?;
            result.map_err(unreachable)
        };
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            result = send => result.map_err(StreamingError::Unreachable),
        }
    }
}

/// Reads the records `from..head` into chunks of about [`CHUNK_BYTES`] (each record
/// `len:u32 LE ‖ stored value`), each sent as `chunk(records)`: a snapshot's or a backup's.
pub(crate) fn read_records<T>(
    store: &dyn crate::store::Store,
    from: Position,
    head: StoreHead,
    chunks: tokio::sync::mpsc::Sender<T>,
    chunk: impl Fn(Vec<u8>) -> T,
) -> Result<(), LogError> {
    let mut records = Vec::with_capacity(CHUNK_BYTES);
    let mut closed = false;
    store.scan(from, &mut |position, value| {
        if position >= head.next_position {
            return Scan::Stop;
        }
        records.extend_from_slice(&(value.len() as u32).to_le_bytes());
        records.extend_from_slice(value);
        if records.len() >= CHUNK_BYTES && chunks.blocking_send(chunk(std::mem::take(&mut records))).is_err() {
            closed = true;
            return Scan::Stop;
        }
        Scan::Continue
    })?;
    if closed {
        return Err(LogError::Unavailable("the receiver closed the stream".into()));
    }
    if !records.is_empty() {
        chunks
            .blocking_send(chunk(records))
            .map_err(|_| LogError::Unavailable("the receiver closed the stream".into()))?;
    }
    Ok(())
}
