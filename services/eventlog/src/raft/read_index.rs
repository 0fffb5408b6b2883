//! Linearizable reads on any node: the read-index protocol (raft thesis §6.4).
//!
//! ```text
//!  read ──▶ read index: leader? ── yes ─▶ confirm leadership with a quorum (heartbeats);
//!             │                           the index = the leader's commit
//!             └─ no ─▶ `ReadIndex` RPC to the leader, which does the same
//!        ──▶ wait until this node's store has applied that index ──▶ read the store
//! ```
//! Reads that arrive together share one confirmation; a read that arrives while one is under
//! way waits for the next, so its index is always taken after it arrived — what makes the
//! read see every append acknowledged before it began.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use haven_eventlog_client::LogError;
use haven_eventlog_client::status::from_status;
use haven_proto::v1 as pb;
use openraft::error::{CheckIsLeaderError, RaftError};
use tokio::sync::oneshot;

use super::batcher::Forwarder;
use super::{NodeId, Raft};

/// How long a read waits for its index and for this node to apply it.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

type Index = Result<u64, LogError>;

/// The read barrier of one node; cheap to clone.
#[derive(Clone)]
pub(crate) struct ReadIndex {
    raft: Raft,
    me: NodeId,
    forwarder: Arc<Forwarder>,
    queue: Arc<Mutex<Queue>>,
}

impl std::fmt::Debug for ReadIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadIndex").field("me", &self.me).finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Queue {
    waiting: Vec<oneshot::Sender<Index>>,
    running: bool,
}

impl ReadIndex {
    pub(crate) fn new(raft: Raft, me: NodeId, forwarder: Arc<Forwarder>) -> Self {
        ReadIndex { raft, me, forwarder, queue: Arc::default() }
    }

    /// Waits until this node's store holds everything committed before the call.
    pub(crate) async fn barrier(&self) -> Result<(), LogError> {
        let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
        let index = tokio::time::timeout_at(deadline, self.index()).await.map_err(|_| {
            LogError::Unavailable(format!("no quorum confirmed a read index within {READ_TIMEOUT:?}"))
        })??;
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        self.raft.wait(Some(left)).applied_index_at_least(Some(index), "read index").await.map_err(|_| {
            LogError::Unavailable(format!(
                "this node did not apply up to the read index {index} within {READ_TIMEOUT:?}"
            ))
        })?;
        Ok(())
    }

    /// The read index, from a confirmation that started after this call.
    pub(crate) async fn index(&self) -> Index {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut queue = self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            queue.waiting.push(tx);
            !std::mem::replace(&mut queue.running, true)
        };
        if start {
            tokio::spawn(self.clone().confirm_while_waited_for());
        }
        rx.await.map_err(|_| LogError::Unavailable("the read index task stopped".into()))?
    }

    /// Confirms for everyone waiting, then again for those who came meanwhile, until none.
    async fn confirm_while_waited_for(self) {
        loop {
            let waiting = {
                let mut queue = self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if queue.waiting.is_empty() {
                    queue.running = false;
                    return;
                }
                std::mem::take(&mut queue.waiting)
            };
            let index = tokio::time::timeout(READ_TIMEOUT, self.confirm())
                .await
                .unwrap_or_else(|_| Err(LogError::Unavailable("the read index was not confirmed in time".into())));
            for reader in waiting {
                let _ = reader.send(index.clone());
            }
        }
    }

    /// One confirmation: here when this node leads, else by the leader — retried while the
    /// leadership moves (the caller's timeout ends it).
    async fn confirm(&self) -> Index {
        loop {
            let answer = if self.raft.current_leader().await == Some(self.me) {
                leader_read_index(&self.raft).await
            } else {
                self.ask_leader().await
            };
            match answer {
                Err(LogError::Unavailable(_)) => {
                    self.forwarder.leader_changes(Duration::from_millis(100)).await;
                }
                answer => return answer,
            }
        }
    }

    async fn ask_leader(&self) -> Index {
        let mut client = self.forwarder.leader_client()?;
        let mut request = haven_runtime::internal::request(pb::ReadIndexRequest {});
        request.set_timeout(READ_TIMEOUT);
        let response = client.read_index(request).await.map_err(|status| from_status(&status))?;
        Ok(response.into_inner().index)
    }
}

/// On the leader: confirms with a quorum that it still leads and answers the commit a read
/// must wait for. A node that does not lead says so (`Unavailable`, naming no one).
pub(crate) async fn leader_read_index(raft: &Raft) -> Index {
    match raft.get_read_log_id().await {
        Ok((read, _applied)) => Ok(read.map_or(0, |id| id.index)),
        Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_))) => {
            Err(LogError::Unavailable("this node does not lead the cluster".into()))
        }
        Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(e))) => {
            Err(LogError::Unavailable(format!("no quorum confirmed the leader for a read: {e}")))
        }
        Err(RaftError::Fatal(e)) => Err(LogError::Unavailable(format!("raft stopped: {e}"))),
    }
}
