//! The single writer: one thread owns every write, so ordering needs no locks and many
//! concurrent appends share one fsync (group commit).
//!
//! ```text
//!  append callers ──(bounded queue: backpressure)──▶ writer thread
//!                                                      │ take what is queued, up to the group limits
//!                                                      │ plan each request (planner.rs)
//!                                                      │ Store::write: one atomic batch + fsync
//!                                                      ├─▶ publish the new head (watch) → readers, subscribers
//!                                                      └─▶ reply to each caller (oneshot)
//! ```
//! A caller is answered only after the fsync: acknowledged means durable. If the store fails
//! a write, the writer stops accepting writes (the state on disk is unknown until a restart
//! re-reads it) and every waiting caller gets `Unavailable`.

use std::sync::Arc;
use std::thread::JoinHandle;

use haven_eventlog_client::{BatchItemOutcome, LogError, StreamAppend};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::EventLogConfig;
use crate::metrics::LogMetrics;
use crate::planner::Planner;
use crate::store::{Store, StoreHead};

/// One append call waiting for the writer.
#[derive(Debug)]
pub struct WriteRequest {
    pub appends: Vec<StreamAppend>,
    pub reply: oneshot::Sender<Result<Vec<BatchItemOutcome>, LogError>>,
}

/// The running writer: its queue and its thread.
#[derive(Debug)]
pub struct Writer {
    queue: mpsc::Sender<WriteRequest>,
    thread: JoinHandle<()>,
}

impl Writer {
    /// Starts the writer thread on top of the store's durable head, published on `head`.
    pub fn start(
        store: Arc<dyn Store>,
        config: &EventLogConfig,
        head: watch::Sender<StoreHead>,
        metrics: LogMetrics,
    ) -> Self {
        let (queue, requests) = mpsc::channel(config.write_queue_depth);
        let limits =
            GroupLimits { max_events: config.group_commit_max_events, max_bytes: config.group_commit_max_bytes };
        let thread = std::thread::Builder::new()
            .name("haven-eventlog-writer".into())
            .spawn(move || run(store, requests, head, limits, metrics))
            .expect("the OS can start one thread");
        Writer { queue, thread }
    }

    /// A handle for submitting requests.
    pub fn queue(&self) -> mpsc::Sender<WriteRequest> {
        self.queue.clone()
    }

    /// Waits for the thread to finish. It finishes once every queue handle is dropped and
    /// every queued request has been written and answered.
    pub fn join(self) {
        drop(self.queue);
        if self.thread.join().is_err() {
            tracing::error!("event log writer thread panicked");
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct GroupLimits {
    max_events: usize,
    max_bytes: usize,
}

fn run(
    store: Arc<dyn Store>,
    mut requests: mpsc::Receiver<WriteRequest>,
    head: watch::Sender<StoreHead>,
    limits: GroupLimits,
    metrics: LogMetrics,
) {
    let mut failed: Option<String> = None;
    while let Some(first) = requests.blocking_recv() {
        if let Some(reason) = &failed {
            let _ = first.reply.send(Err(LogError::Unavailable(reason.clone())));
            continue;
        }
        let durable_head = *head.borrow();
        let mut planner = Planner::new(store.as_ref(), durable_head, now());
        let mut answered: Vec<(WriteRequest, Result<Vec<BatchItemOutcome>, LogError>)> = Vec::new();
        let mut events = 0usize;
        let mut next = Some(first);
        while let Some(request) = next.take() {
            events += request.appends.iter().map(|a| a.events.len()).sum::<usize>();
            let result = planner.plan(&request.appends);
            answered.push((request, result));
            if events >= limits.max_events || planner.bytes() >= limits.max_bytes {
                break;
            }
            next = requests.try_recv().ok();
        }
        let (set, new_head) = planner.finish();
        if let Some(set) = set {
            let written = set.records.len();
            let started = std::time::Instant::now();
            let result = store.write(set);
            metrics.write_seconds.observe(started.elapsed().as_secs_f64());
            if let Err(error) = result {
                metrics.failed_writes.inc();
                tracing::error!(%error, "event log write failed; refusing writes until restart");
                let reason = format!("the event store failed a write ({error}); restart the node");
                for (request, _) in answered {
                    let _ = request.reply.send(Err(LogError::Unavailable(reason.clone())));
                }
                failed = Some(reason);
                continue;
            }
            tracing::trace!(events = written, requests = answered.len(), "group committed");
            head.send_replace(new_head);
            metrics.events_appended.inc_by(written as u64);
            metrics.group_commits.inc();
            metrics.group_events.observe(written as f64);
            metrics.head_position.set(new_head.next_position.0 as i64);
        }
        for (request, result) in answered {
            // A caller that gave up (timeout, cancelled) no longer listens; its write stands.
            let _ = request.reply.send(result);
        }
    }
}

/// The commit time stamped on a group: the log's clock is the only one read here.
fn now() -> prost_types::Timestamp {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp { seconds: since_epoch.as_secs() as i64, nanos: since_epoch.subsec_nanos() as i32 }
}
