//! [`LocalEventLog`]: the log in this process — the [`EventLog`] implementation that the
//! embedded `haven up` hands to every service and that the gRPC server exposes.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use haven_eventlog_client::{
    AllSlice, AppendOutcome, BatchItemOutcome, EventLog, Head, LogError, ReadStream, StreamAppend, StreamSlice,
    Subscription,
};
use haven_kernel::{ExpectedVersion, Position, StreamId};
use haven_proto::v1::{EventFilter, ProposedEvent, TraceContext};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::Instrument as _;

use crate::config::EventLogConfig;
use crate::metrics::LogMetrics;
use crate::raft::batcher::{self, Batcher, Call};
use crate::raft::read_index::ReadIndex;
use crate::store::{SegmentStore, Store, StoreHead};
use crate::subscribe::{self, SubscribeLimits};
use crate::writer::{WriteRequest, Writer};
use crate::{read, validate};

/// The event log, open in this process.
#[derive(Clone, Debug)]
pub struct LocalEventLog {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: EventLogConfig,
    store: Arc<dyn Store>,
    head: watch::Receiver<StoreHead>,
    metrics: LogMetrics,
    /// Taken on close; `None` once closed.
    writer: Mutex<Option<WritePath>>,
    /// Replicated: what makes a read linearizable. A log alone is always current.
    read_index: Option<ReadIndex>,
}

/// Where appends go.
#[derive(Debug)]
enum WritePath {
    /// This process's writer thread (a log alone).
    Writer(Writer),
    /// Raft: the batcher in front of it.
    Replicated(Batcher),
}

/// A handle for one append call.
enum Queue {
    Writer(mpsc::Sender<WriteRequest>),
    Replicated(mpsc::Sender<Call>),
}

impl LocalEventLog {
    /// Opens the log stored in `dir` (created when missing) and starts its writer.
    pub fn open(dir: &Path, config: EventLogConfig) -> Result<Self, LogError> {
        config.validate().map_err(|(field, reason)| LogError::invalid(format!("eventlog.{field}"), reason))?;
        std::fs::create_dir_all(dir)
            .map_err(|e| LogError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        let store: Arc<dyn Store> = Arc::new(SegmentStore::open(dir, config.cache_bytes)?);
        Self::with_store(store, config)
    }

    /// Starts a log on an already open store.
    pub fn with_store(store: Arc<dyn Store>, config: EventLogConfig) -> Result<Self, LogError> {
        let (head_tx, head) = watch::channel(store.head()?);
        let metrics = LogMetrics::default();
        metrics.head_position.set(head.borrow().next_position.0 as i64);
        let writer = WritePath::Writer(Writer::start(Arc::clone(&store), &config, head_tx, metrics.clone()));
        let writer = Mutex::new(Some(writer));
        Ok(LocalEventLog { inner: Arc::new(Inner { config, store, head, metrics, writer, read_index: None }) })
    }

    /// A log whose appends go through raft (`batcher`); `head` follows the state machine.
    pub(crate) fn replicated(
        store: Arc<dyn Store>,
        config: EventLogConfig,
        head: watch::Receiver<StoreHead>,
        metrics: LogMetrics,
        batcher: Batcher,
        read_index: ReadIndex,
    ) -> Self {
        let writer = Mutex::new(Some(WritePath::Replicated(batcher)));
        let read_index = Some(read_index);
        LocalEventLog { inner: Arc::new(Inner { config, store, head, metrics, writer, read_index }) }
    }

    /// Stops accepting writes, waits for queued ones to be written and answered, and stops
    /// the writer. Reads keep working; appends afterwards get `Unavailable`.
    pub async fn close(&self) {
        let writer = self.inner.writer.lock().expect("writer lock").take();
        match writer {
            Some(WritePath::Writer(writer)) => {
                let _ = tokio::task::spawn_blocking(move || writer.join()).await;
            }
            Some(WritePath::Replicated(batcher)) => batcher.close().await,
            None => {}
        }
    }

    /// Registers the log's metrics (`haven_eventlog_…`) with the process registry.
    pub fn register_metrics(&self, metrics: &haven_runtime::Metrics) {
        self.inner.metrics.register(metrics);
    }

    /// The store's size on disk in bytes.
    pub fn size_on_disk(&self) -> Result<u64, LogError> {
        self.inner.store.size_on_disk()
    }

    /// The configuration the log runs with.
    pub fn config(&self) -> &EventLogConfig {
        &self.inner.config
    }

    fn durable_head(&self) -> StoreHead {
        *self.inner.head.borrow()
    }

    async fn submit(&self, appends: Vec<StreamAppend>) -> Result<Vec<BatchItemOutcome>, LogError> {
        // The writer's queue handle is cloned per call and dropped once the request is queued,
        // so closing the log (taking the writer) lets the writer thread drain and stop.
        let queue = self.inner.writer.lock().expect("writer lock").as_ref().map(|path| match path {
            WritePath::Writer(writer) => Queue::Writer(writer.queue()),
            WritePath::Replicated(batcher) => Queue::Replicated(batcher.sender()),
        });
        let queue = match queue {
            None => return Err(LogError::Unavailable("the event log is shutting down".into())),
            Some(Queue::Replicated(calls)) => return batcher::submit(calls, appends, true).await,
            Some(Queue::Writer(queue)) => queue,
        };
        let (reply, answer) = oneshot::channel();
        queue
            .send(WriteRequest { appends, reply })
            .await
            .map_err(|_| LogError::Unavailable("the event log is shutting down".into()))?;
        answer.await.map_err(|_| LogError::Unavailable("the event log writer stopped".into()))?
    }

    /// Runs a blocking store read off the async threads.
    async fn blocking<T: Send + 'static>(
        &self,
        read: impl FnOnce(&dyn Store, StoreHead) -> Result<T, LogError> + Send + 'static,
    ) -> Result<T, LogError> {
        let store = Arc::clone(&self.inner.store);
        let head = self.durable_head();
        tokio::task::spawn_blocking(move || read(store.as_ref(), head))
            .await
            .map_err(|e| LogError::Internal(format!("read task failed: {e}")))?
    }
}

/// The span of one append: the stream's category and counts, never ids or content.
fn append_span(category: &str, streams: usize, events: usize) -> tracing::Span {
    tracing::info_span!(
        "eventlog append",
        otel.kind = "internal",
        haven.stream_category = %category,
        haven.streams = streams,
        haven.events = events,
    )
}

/// Gives every event without a trace context the current span's (the append's), so the
/// relay and the projections continue the writer's trace (ADR 0021). Called only when the
/// append is part of a caller's trace (a request): background writers (ingest's batches, the
/// demo seed, timers) start no trace of their own downstream, so the relay and the
/// projections add no spans for them.
/// A `tracestate` longer than W3C's 512 bytes is not stored.
fn stamp_trace_context(events: &mut [ProposedEvent]) {
    const MAX_TRACESTATE_BYTES: usize = 512;
    let Some(mut current) = haven_runtime::trace::current() else { return };
    if current.tracestate.len() > MAX_TRACESTATE_BYTES {
        current.tracestate.clear();
    }
    for event in events.iter_mut().filter(|event| event.trace_context.as_ref().is_none_or(|t| t.traceparent.is_empty()))
    {
        event.trace_context =
            Some(TraceContext { traceparent: current.traceparent.clone(), tracestate: current.tracestate.clone() });
    }
}

#[async_trait]
impl EventLog for LocalEventLog {
    async fn append(
        &self,
        stream_id: &StreamId,
        expected: ExpectedVersion,
        mut events: Vec<ProposedEvent>,
    ) -> Result<AppendOutcome, LogError> {
        let traced = haven_runtime::trace::current().is_some();
        let span = append_span(stream_id.category(), 1, events.len());
        async {
            validate::check_append(&events, &self.inner.config)?;
            if traced {
                stamp_trace_context(&mut events);
            }
            let append = StreamAppend { stream_id: stream_id.clone(), expected, events };
            let mut outcomes = self.submit(vec![append]).await?;
            debug_assert_eq!(outcomes.len(), 1);
            outcomes.pop().expect("one outcome per stream append").map_err(LogError::from)
        }
        .instrument(span)
        .await
    }

    async fn append_batch(&self, mut appends: Vec<StreamAppend>) -> Result<Vec<BatchItemOutcome>, LogError> {
        let events = appends.iter().map(|append| append.events.len()).sum();
        let category = match appends.as_slice() {
            [first, rest @ ..] if rest.iter().all(|a| a.stream_id.category() == first.stream_id.category()) => {
                first.stream_id.category().to_owned()
            }
            _ => "mixed".to_owned(),
        };
        let traced = haven_runtime::trace::current().is_some();
        let span = append_span(&category, appends.len(), events);
        async {
            validate::check_batch(&appends, &self.inner.config)?;
            for append in appends.iter_mut().filter(|_| traced) {
                stamp_trace_context(&mut append.events);
            }
            self.submit(appends).await
        }
        .instrument(span)
        .await
    }

    async fn read_stream(&self, read: ReadStream) -> Result<StreamSlice, LogError> {
        let limit = validate::read_limit(read.limit, &self.inner.config)?;
        self.blocking(move |store, head| read::read_stream(store, head, &read, limit)).await
    }

    async fn read_all(&self, from: Position, limit: u32, filter: &EventFilter) -> Result<AllSlice, LogError> {
        let limit = validate::read_limit(limit, &self.inner.config)?;
        let filter = filter.clone();
        self.blocking(move |store, head| read::read_all(store, head, from, limit, &filter)).await
    }

    async fn subscribe(&self, from: Position, filter: EventFilter) -> Result<Subscription, LogError> {
        let config = &self.inner.config;
        let limits = SubscribeLimits {
            page_events: config.default_read_limit as usize,
            buffer_batches: config.subscriber_buffer_batches,
            slow_timeout: config.slow_subscriber_timeout(),
        };
        Ok(subscribe::subscribe(Arc::clone(&self.inner.store), self.inner.head.clone(), from, filter, limits))
    }

    async fn head(&self) -> Result<Head, LogError> {
        let head = self.durable_head();
        Ok(Head { next_position: head.next_position, head_hash: head.head_hash })
    }

    async fn read_barrier(&self) -> Result<(), LogError> {
        match &self.inner.read_index {
            Some(read_index) => read_index.barrier().await,
            None => Ok(()),
        }
    }
}
