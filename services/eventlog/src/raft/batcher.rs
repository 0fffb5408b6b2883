//! Group commit in front of raft: concurrent append calls become one raft entry.
//!
//! ```text
//!  calls ──(bounded queue)──▶ batcher task: wait for a call, wait for a free proposal slot
//!                             (calls pile up meanwhile), take what is queued up to the
//!                             count and byte limits ──▶ raft.client_write(one Command)
//!                                                        └─▶ each caller gets its own Reply
//! ```
//! Up to `eventlog.raft_proposals_in_flight` entries are proposed at once, so the next batch is gathered while the
//! previous one is being replicated. On a follower (or when leadership moves mid-proposal)
//! each call is forwarded to the leader's `Forward` RPC instead; it is retried across leader
//! changes until [`RETRY_FOR`] has passed. Retrying is safe because appends are idempotent by
//! event id: a call that did commit is answered with its original positions.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use haven_eventlog_client::status::{append_to_proto, batch_from_proto, from_status};
use haven_eventlog_client::{BatchItemOutcome, LogError, StreamAppend};
use haven_proto::v1 as pb;
use haven_proto::v1::raft_client::RaftClient;
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tonic::transport::Channel;

use super::{Command, NodeId, Raft};

/// How long a call is retried across leader changes before `Unavailable`.
const RETRY_FOR: Duration = Duration::from_secs(10);

/// How long one forwarded call may take before it is retried.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// The limits of one entry.
#[derive(Clone, Copy, Debug)]
pub struct BatchLimits {
    pub max_events: usize,
    pub max_bytes: usize,
    /// Entries proposed and not yet answered, at most.
    pub in_flight: usize,
}

type Answer = Result<Vec<BatchItemOutcome>, LogError>;

#[derive(Debug)]
pub struct Call {
    appends: Vec<StreamAppend>,
    /// False for calls forwarded here by another node: they are not forwarded again.
    forward: bool,
    reply: oneshot::Sender<Answer>,
}

/// The write path of a replicated log.
#[derive(Debug)]
pub struct Batcher {
    queue: mpsc::Sender<Call>,
    forwarder: Arc<Forwarder>,
    closing: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Batcher {
    /// `source_ip`: where connections to the leader (for forwarding) leave from.
    pub fn start(raft: Raft, me: NodeId, limits: BatchLimits, queue_depth: usize, source_ip: Option<IpAddr>) -> Self {
        let (queue, calls) = mpsc::channel(queue_depth);
        let (closing, closed) = tokio::sync::watch::channel(false);
        let forwarder = Arc::new(Forwarder { raft, me, source_ip, leader: Mutex::new(None) });
        let task = tokio::spawn(run(Arc::clone(&forwarder), me, calls, closed, limits));
        Batcher { queue, forwarder, closing, task }
    }

    /// A handle for submitting calls.
    pub fn sender(&self) -> mpsc::Sender<Call> {
        self.queue.clone()
    }

    /// What talks to the leader (the read index uses it too).
    pub(crate) fn forwarder(&self) -> Arc<Forwarder> {
        Arc::clone(&self.forwarder)
    }

    /// Stops taking calls, proposes the queued ones and waits for their answers.
    pub async fn close(self) {
        self.closing.send_replace(true);
        let _ = self.task.await;
    }
}

/// Submits one call through `queue` (taken from [`Batcher::sender`]); `forward`: whether a
/// follower may forward it to the leader.
pub async fn submit(queue: mpsc::Sender<Call>, appends: Vec<StreamAppend>, forward: bool) -> Answer {
    let (reply, answer) = oneshot::channel();
    queue.send(Call { appends, forward, reply }).await.map_err(|_| shutting_down())?;
    answer.await.map_err(|_| LogError::Unavailable("the event log's batcher stopped".into()))?
}

fn shutting_down() -> LogError {
    LogError::Unavailable("the event log is shutting down".into())
}

fn size(call: &Call) -> (usize, usize) {
    let events = call.appends.iter().map(|a| a.events.len()).sum();
    let bytes = call.appends.iter().flat_map(|a| &a.events).map(prost::Message::encoded_len).sum();
    (events, bytes)
}

async fn run(
    forwarder: Arc<Forwarder>,
    me: NodeId,
    mut calls: mpsc::Receiver<Call>,
    mut closed: tokio::sync::watch::Receiver<bool>,
    limits: BatchLimits,
) {
    let slots = Arc::new(Semaphore::new(limits.in_flight));
    let mut carried: Option<Call> = None;
    loop {
        let first = match carried.take() {
            Some(call) => call,
            None if *closed.borrow() => match calls.try_recv() {
                Ok(call) => call,
                Err(_) => break,
            },
            None => tokio::select! {
                call = calls.recv() => match call {
                    Some(call) => call,
                    None => break,
                },
                _ = closed.changed() => continue,
            },
        };
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                let waiting = tokio::time::Instant::now();
                let slot = Arc::clone(&slots).acquire_owned();
                tokio::pin!(slot);
                loop {
                    match tokio::time::timeout(Duration::from_secs(5), &mut slot).await {
                        Ok(slot) => break slot.expect("the semaphore is never closed"),
                        Err(_) => tracing::warn!(
                            waited_s = waiting.elapsed().as_secs(),
                            "every raft proposal slot is still taken; appends are waiting"
                        ),
                    }
                }
            }
        };
        let (mut events, mut bytes) = size(&first);
        let mut batch = vec![first];
        while events < limits.max_events && bytes < limits.max_bytes {
            let Ok(call) = calls.try_recv() else { break };
            let (e, b) = size(&call);
            if events + e > limits.max_events || bytes + b > limits.max_bytes {
                carried = Some(call);
                break;
            }
            events += e;
            bytes += b;
            batch.push(call);
        }
        let forwarder = Arc::clone(&forwarder);
        tokio::spawn(async move {
            propose(&forwarder, me, batch).await;
            drop(slot);
        });
    }
    // Later calls are refused; wait for the last proposals to be answered.
    calls.close();
    while let Ok(call) = calls.try_recv() {
        let _ = call.reply.send(Err(shutting_down()));
    }
    let _ = slots.acquire_many(limits.in_flight as u32).await;
}

/// Proposes a batch here if this node leads, else forwards each call to the leader.
async fn propose(forwarder: &Forwarder, me: NodeId, batch: Vec<Call>) {
    let raft = &forwarder.raft;
    if raft.current_leader().await != Some(me) {
        forward_all(forwarder, batch).await;
        return;
    }
    let forwardable: Vec<bool> = batch.iter().map(|c| c.forward).collect();
    let (replies, appends): (Vec<_>, Vec<_>) = batch.into_iter().map(|c| (c.reply, c.appends)).unzip();
    let command = Command::new(now(), appends);
    // Kept for forwarding if leadership moved before the entry was accepted.
    let retained = command.clone();
    match raft.client_write(command).await {
        Ok(response) => {
            let mut answers = response.data.calls.into_iter();
            for reply in replies {
                let answer = answers.next().unwrap_or_else(|| {
                    Err(LogError::Internal("the raft entry was refused by the state machine".into()))
                });
                let _ = reply.send(answer);
            }
        }
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
            let calls = match retained.decode() {
                Ok((_, calls)) => calls,
                Err(error) => {
                    for reply in replies {
                        let _ = reply.send(Err(error.clone()));
                    }
                    return;
                }
            };
            let batch = replies
                .into_iter()
                .zip(calls)
                .zip(forwardable)
                .map(|((reply, appends), forward)| Call { appends, forward, reply })
                .collect();
            forward_all(forwarder, batch).await;
        }
        Err(error) => {
            // Fatal (shutting down) or a membership error: the entry may or may not commit;
            // the caller retries with the same event ids and learns which.
            let reason = format!("the raft proposal failed: {error}");
            for reply in replies {
                let _ = reply.send(Err(LogError::Unavailable(reason.clone())));
            }
        }
    }
}

async fn forward_all(forwarder: &Forwarder, batch: Vec<Call>) {
    let forwards = batch.into_iter().map(|call| async move {
        let answer = if call.forward {
            forwarder.forward(call.appends).await
        } else {
            Err(LogError::Unavailable("this node is no longer the leader".into()))
        };
        let _ = call.reply.send(answer);
    });
    futures_util::future::join_all(forwards).await;
}

/// A forwarded call carries the time left as its deadline, so a leader that stops answering
/// fails it instead of holding it (and this node's proposal slot) forever.
fn forward_request(request: &pb::AppendBatchRequest) -> tonic::Request<pb::AppendBatchRequest> {
    let mut request = haven_runtime::internal::request(request.clone());
    request.set_timeout(FORWARD_TIMEOUT);
    request
}

/// Sends calls on to the leader, over one connection kept while the leader stays.
pub(crate) struct Forwarder {
    raft: Raft,
    me: NodeId,
    source_ip: Option<IpAddr>,
    /// The leader's address and a client connected to it.
    leader: Mutex<Option<(String, RaftClient<Channel>)>>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").field("me", &self.me).finish_non_exhaustive()
    }
}

impl Forwarder {
    /// Sends a call to the leader's `Forward` RPC, retrying across leader changes.
    async fn forward(&self, appends: Vec<StreamAppend>) -> Answer {
        let request = pb::AppendBatchRequest { appends: appends.iter().cloned().map(append_to_proto).collect() };
        let deadline = tokio::time::Instant::now() + RETRY_FOR;
        let mut wait = Duration::from_millis(20);
        loop {
            // This node may have become the leader meanwhile: it proposes the call itself (a
            // call to its own Forward RPC would wait for the proposal slot this call holds).
            let error = if self.raft.current_leader().await == Some(self.me) {
                match self.propose_here(appends.clone()).await {
                    Some(answer) => return answer,
                    None => LogError::Unavailable("leadership moved before the proposal was accepted".into()),
                }
            } else {
                match self.leader_client() {
                    Err(error) => error,
                    Ok(mut client) => match client.forward(forward_request(&request)).await {
                        Ok(response) => return batch_from_proto(&response.into_inner()),
                        Err(status) => from_status(&status),
                    },
                }
            };
            if !matches!(error, LogError::Unavailable(_)) || tokio::time::Instant::now() + wait > deadline {
                return Err(error);
            }
            // Retried as soon as another leader is known, or after the backoff.
            if !self.leader_changes(wait).await {
                wait = (wait * 2).min(Duration::from_millis(200));
            }
        }
    }

    /// Proposes one call as a raft entry of its own; `None` if this node no longer leads.
    async fn propose_here(&self, appends: Vec<StreamAppend>) -> Option<Answer> {
        match self.raft.client_write(Command::new(now(), vec![appends])).await {
            Ok(response) => {
                Some(response.data.calls.into_iter().next().unwrap_or_else(|| {
                    Err(LogError::Internal("the raft entry was refused by the state machine".into()))
                }))
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => None,
            Err(error) => Some(Err(LogError::Unavailable(format!("the raft proposal failed: {error}")))),
        }
    }

    /// Waits up to `wait` for the known leader to change; true if it did.
    pub(crate) async fn leader_changes(&self, wait: Duration) -> bool {
        let mut metrics = self.raft.metrics();
        let before = metrics.borrow_and_update().current_leader;
        tokio::time::timeout(wait, async {
            while metrics.changed().await.is_ok() {
                let now = metrics.borrow_and_update().current_leader;
                if now.is_some() && now != before {
                    return;
                }
            }
            std::future::pending::<()>().await;
        })
        .await
        .is_ok()
    }

    /// A client for the current leader: the kept one while the leader's address is the same.
    pub(crate) fn leader_client(&self) -> Result<RaftClient<Channel>, LogError> {
        let metrics = self.raft.metrics().borrow().clone();
        let addr = metrics
            .current_leader
            .and_then(|leader| metrics.membership_config.membership().get_node(&leader).map(|n| n.addr.clone()))
            .ok_or_else(|| LogError::Unavailable("no leader is known".into()))?;
        let mut kept = self.leader.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((kept_addr, client)) = kept.as_ref()
            && *kept_addr == addr
        {
            return Ok(client.clone());
        }
        let client = super::network::raft_client(&addr, self.source_ip).map_err(LogError::Unavailable)?;
        *kept = Some((addr, client.clone()));
        Ok(client)
    }
}

fn now() -> prost_types::Timestamp {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp { seconds: since_epoch.as_secs() as i64, nanos: since_epoch.subsec_nanos() as i32 }
}
