//! The relay: tails `$all` and publishes every committed event to `HAVEN_EVENTS`, in order.
//!
//! ```text
//!  acquire lease ─▶ start = max(own checkpoint file, position after the stream's last message)
//!       │
//!       ▼
//!  log.subscribe(start) ─▶ encode ─▶ JetStream publish (Nats-Msg-Id = event id) ─▶ acks, in order
//!       ▲                                                                     │
//!       └─ on any error or a lost lease: stop, back off, start again ◀── checkpoint = last ack + 1
//! ```
//! Up to `max_in_flight` events are published and not yet confirmed at once. JetStream is asked
//! to acknowledge every [`ACK_EVERY`]th event and the last of each batch the log hands over;
//! the events between go without a reply subject, so the server sends, and the relay awaits,
//! one acknowledgement in 64 at full speed (and one per event when events come one by one).
//! One connection's publishes reach the stream in order, so an acknowledgement confirms the
//! events before it; one the server dropped (it never should) is a gap that consumers fill
//! from the log, which is the record (ADR 0009). Acks are taken in publish order, so the
//! checkpoint only ever covers a prefix. Whatever happens after the checkpoint is published
//! again on restart, and JetStream's duplicate window (or the consumers' checkpoints, past the
//! window) drops the repeats. An event the log stored with a
//! trace context is published inside a `relay publish` span, a child of that context.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::context::PublishError;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::publish::PublishAck;
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use haven_eventlog_client::{EventFilter, EventLog};
use haven_kernel::Position;
use haven_runtime::Shutdown;
use tracing::Instrument as _;

use crate::codec::{self, position_header};
use crate::lease::{Lease, LeaseKeeper};
use crate::nats::{EVENTS_STREAM, MAX_ACKS_IN_FLIGHT};
use crate::relay_checkpoint::CheckpointFile;
use crate::{BusError, BusMetrics, Nats, trace};

/// JetStream acknowledges every this many events at least (by position), and the last of each
/// batch read from the log.
pub const ACK_EVERY: u64 = 64;

/// How a relay runs.
#[derive(Clone, Debug)]
pub struct RelayConfig {
    /// This relay's lease holder id: unique per process (a fresh UUID by default).
    pub holder: String,
    /// The lease's time to live; a crashed leader is replaced after at most this long.
    pub lease_ttl: Duration,
    /// The relay's own checkpoint file.
    pub checkpoint: CheckpointFile,
    /// Events published and not yet confirmed by an acknowledgement, at most; the limit is
    /// backpressure on the tail.
    pub max_in_flight: usize,
    /// How often the checkpoint file is rewritten while publishing.
    pub checkpoint_interval: Duration,
}

impl RelayConfig {
    pub fn new(checkpoint: CheckpointFile) -> Self {
        RelayConfig {
            holder: format!("relay-{}", uuid::Uuid::now_v7().simple()),
            lease_ttl: Duration::from_secs(10),
            checkpoint,
            max_in_flight: 8_192,
            checkpoint_interval: Duration::from_secs(1),
        }
    }
}

/// One relay process. Many may run; the lease lets one publish at a time.
#[derive(Clone)]
pub struct Relay {
    log: Arc<dyn EventLog>,
    nats: Nats,
    config: RelayConfig,
    metrics: BusMetrics,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("holder", &self.config.holder).finish_non_exhaustive()
    }
}

impl Relay {
    pub fn new(log: Arc<dyn EventLog>, nats: Nats, config: RelayConfig, metrics: BusMetrics) -> Self {
        Relay { log, nats, config, metrics }
    }

    /// Runs until `shutdown`: waits for the lease, publishes while it holds it, and starts
    /// again after any failure (NATS or the log unavailable, the lease lost).
    pub async fn run(self, shutdown: Shutdown) {
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_triggered() {
            let acquired = Lease::try_acquire(&self.nats, &self.config.holder, self.config.lease_ttl).await;
            let wait = match acquired {
                Ok(Some(lease)) => {
                    tracing::info!("relay lease taken; publishing");
                    let keeper = lease.keep();
                    self.metrics.relay_leader.set(1);
                    let result = self.lead(&keeper, &shutdown).await;
                    self.metrics.relay_leader.set(0);
                    self.metrics.relay_lag.set(0);
                    keeper.release().await;
                    match result {
                        Ok(()) => return,
                        Err(error) => {
                            self.metrics.relay_failures.inc();
                            tracing::warn!(%error, "relay stopped; starting again");
                            backoff = (backoff * 2).min(Duration::from_secs(2));
                            backoff
                        }
                    }
                }
                Ok(None) => self.config.lease_ttl / 3,
                Err(error) => {
                    tracing::warn!(%error, "relay cannot reach its lease");
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    backoff
                }
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = shutdown.triggered() => return,
            }
        }
    }

    /// Publishes while the lease is held. Returns `Ok` only on shutdown.
    async fn lead(&self, keeper: &LeaseKeeper, shutdown: &Shutdown) -> Result<(), BusError> {
        self.nats.ensure_events_stream().await?;
        let start = self.config.checkpoint.load()?.max(self.after_last_published().await?);
        tracing::info!(from = start.0, "relay tailing the log");
        let mut acked = start;
        let mut saved = start;
        self.metrics.relay_checkpoint.set(start.0 as i64);
        let mut subscription = self.log.subscribe(start, EventFilter::default()).await?;
        let mut in_flight = FuturesOrdered::new();
        let mut tick = tokio::time::interval(self.config.checkpoint_interval);
        // Never more than the connection's ack permits awaiting (see MAX_ACKS_IN_FLIGHT).
        let window = self.config.max_in_flight.clamp(1, MAX_ACKS_IN_FLIGHT) as u64;
        // One past the last event published.
        let mut published = start;
        let result = loop {
            tokio::select! {
                biased;
                () = shutdown.triggered() => break Ok(()),
                Some((position, ack)) = in_flight.next() => {
                    if let Err(error) = self.acknowledged(&mut acked, position, ack) {
                        break Err(error);
                    }
                }
                _ = tick.tick() => {
                    if !keeper.is_held() {
                        break Err(BusError::LeaseLost);
                    }
                    if let Ok(head) = self.log.head().await {
                        self.metrics.relay_lag.set(head.next_position.0.saturating_sub(acked.0) as i64);
                    }
                    if acked != saved {
                        self.config.checkpoint.save(acked).await?;
                        saved = acked;
                        self.metrics.relay_checkpoint.set(acked.0 as i64);
                    }
                }
                batch = subscription.next(), if published.0.saturating_sub(acked.0) < window => {
                    let batch = match batch {
                        Some(Ok(batch)) => batch,
                        Some(Err(error)) => break Err(error.into()),
                        None => break Err(BusError::SourceEnded),
                    };
                    if !keeper.is_held() {
                        break Err(BusError::LeaseLost);
                    }
                    let last = batch.events.len().saturating_sub(1);
                    for (index, envelope) in batch.events.iter().enumerate() {
                        // A large batch waits here for the oldest acks rather than overrun the window.
                        while published.0.saturating_sub(acked.0) >= window {
                            let Some((position, ack)) = in_flight.next().await else { break };
                            self.acknowledged(&mut acked, position, ack)?;
                        }
                        let position = Position(envelope.position);
                        let confirm = index == last || position.0.is_multiple_of(ACK_EVERY);
                        if let Some(ack) = self.publish(envelope, confirm).await? {
                            in_flight.push_back(async move { (position, ack.await) });
                        }
                        published = Position(position.0 + 1);
                    }
                }
            }
        };
        // Whatever was published is acknowledged (or not) now; keep what was.
        while let Some((position, ack)) = in_flight.next().await {
            if self.acknowledged(&mut acked, position, ack).is_err() {
                break;
            }
        }
        if acked != saved {
            self.config.checkpoint.save(acked).await?;
            self.metrics.relay_checkpoint.set(acked.0 as i64);
        }
        result
    }

    /// Publishes one event; with `confirm`, asks JetStream for an acknowledgement and returns
    /// it to await.
    async fn publish(
        &self,
        envelope: &haven_proto::v1::EventEnvelope,
        confirm: bool,
    ) -> Result<Option<async_nats::jetstream::context::PublishAckFuture>, BusError> {
        let outbound = codec::encode(envelope);
        let span = trace::publish_span(envelope);
        if confirm {
            let publish = PublishMessage::build().payload(outbound.payload).headers(outbound.headers);
            let send = self.nats.jetstream.send_publish(outbound.subject, publish);
            let sent = match span {
                Some(span) => send.instrument(span).await,
                None => send.await,
            };
            sent.map(Some).map_err(|error| BusError::nats("publish", error))
        } else {
            let send = self.nats.client.publish_with_headers(outbound.subject, outbound.headers, outbound.payload);
            let sent = match span {
                Some(span) => send.instrument(span).await,
                None => send.await,
            };
            sent.map(|()| None).map_err(|error| BusError::nats("publish", error))
        }
    }

    /// Takes one acknowledgement, in publish order: the checkpoint moves past its event and
    /// the unconfirmed ones before it.
    fn acknowledged(
        &self,
        acked: &mut Position,
        position: Position,
        ack: Result<PublishAck, PublishError>,
    ) -> Result<(), BusError> {
        ack.map_err(|error| BusError::nats("publish", error))?;
        debug_assert!(position >= *acked, "acknowledgements are taken in publish order");
        self.metrics.relay_published.inc_by(position.0 + 1 - acked.0.min(position.0));
        *acked = Position(position.0 + 1);
        Ok(())
    }

    /// One past the position of the stream's last message; 0 for an empty stream.
    async fn after_last_published(&self) -> Result<Position, BusError> {
        let stream = self.nats.stream(EVENTS_STREAM).await?;
        let last = stream.get_info().await.map_err(|error| BusError::nats("stream info", error))?.state.last_sequence;
        if last == 0 {
            return Ok(Position(0));
        }
        // A last message that is gone (expired, removed) only costs republishing from the file.
        let Ok(message) = stream.get_raw_message(last).await else {
            return Ok(Position(0));
        };
        let position = position_header(&message.headers)
            .ok_or_else(|| BusError::Malformed { sequence: last, reason: "no Haven-Position header".into() })?;
        Ok(Position(position.0 + 1))
    }
}
