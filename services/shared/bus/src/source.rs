//! Where a consumer's events come from. Two sources, one interface:
//!
//! - [`EmbeddedSource`]: the log's own `subscribe` (history, then live) — `haven up` without
//!   NATS. Deliveries are complete (no holes) up to the subscription's checkpoint.
//! - [`NatsSource`]: a durable JetStream pull consumer per projection on `HAVEN_EVENTS`,
//!   acknowledged (ack-all) only after the projection stored the batch. Deliveries may repeat,
//!   come out of order or have holes (a lost store, a relay that restarted elsewhere); the
//!   consumer sorts that out against its checkpoint and the log.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_trait::async_trait;
use futures_util::StreamExt;
use futures_util::stream::ReadyChunks;
use haven_eventlog_client::{EventFilter, EventLog, Subscription};
use haven_kernel::Position;
use haven_proto::v1::EventEnvelope;

use crate::nats::EVENTS_STREAM;
use crate::projection::ProjectionName;
use crate::{BusError, Nats, codec};

/// Most messages taken from JetStream into one delivery.
const MAX_DELIVERY: usize = 1_024;

/// What a source hands the consumer.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Events in any order, possibly repeated.
    pub events: Vec<EventEnvelope>,
    /// When set, every event matching the projection's filter below this position is in
    /// `events` or was delivered before: positions missing below it are not holes.
    pub complete_to: Option<Position>,
}

/// A feed of events for one projection.
#[async_trait]
pub trait Source: Send {
    /// Called before the consumer catches up from the log (and [`Source::open`] after it):
    /// a source may note here what the catch-up is sure to cover.
    async fn prepare(&mut self, _projection: &ProjectionName) -> Result<(), BusError> {
        Ok(())
    }

    /// (Re)starts the feed at `from` for `projection`.
    async fn open(&mut self, from: Position, projection: &ProjectionName, filter: &EventFilter)
    -> Result<(), BusError>;

    /// The next delivery; [`BusError::SourceEnded`] or another error when the feed broke
    /// (the consumer reopens it).
    async fn next(&mut self) -> Result<Delivery, BusError>;

    /// Everything below `checkpoint` is stored; the source may forget it.
    async fn handled(&mut self, checkpoint: Position) -> Result<(), BusError>;
}

/// The log's subscription as a source: the embedded bus.
pub struct EmbeddedSource {
    log: Arc<dyn EventLog>,
    subscription: Option<Subscription>,
}

impl std::fmt::Debug for EmbeddedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedSource").finish_non_exhaustive()
    }
}

impl EmbeddedSource {
    pub fn new(log: Arc<dyn EventLog>) -> Self {
        EmbeddedSource { log, subscription: None }
    }
}

#[async_trait]
impl Source for EmbeddedSource {
    async fn open(&mut self, from: Position, _: &ProjectionName, filter: &EventFilter) -> Result<(), BusError> {
        self.subscription = Some(self.log.subscribe(from, filter.clone()).await?);
        Ok(())
    }

    async fn next(&mut self) -> Result<Delivery, BusError> {
        let subscription = self.subscription.as_mut().ok_or(BusError::SourceEnded)?;
        match subscription.next().await {
            Some(Ok(batch)) => Ok(Delivery { events: batch.events, complete_to: Some(batch.checkpoint) }),
            Some(Err(error)) => Err(error.into()),
            None => Err(BusError::SourceEnded),
        }
    }

    async fn handled(&mut self, _: Position) -> Result<(), BusError> {
        Ok(())
    }
}

/// A durable JetStream consumer on `HAVEN_EVENTS` as a source.
pub struct NatsSource {
    nats: Nats,
    /// For a durable consumer that does not exist yet: the stream's last sequence and that
    /// message's position, noted before the catch-up from the log.
    backlog: Option<(u64, Position)>,
    messages: Option<ReadyChunks<pull::Stream>>,
    /// The last message of the latest delivery: acknowledging it acknowledges all before it.
    unacknowledged: Option<async_nats::jetstream::Message>,
}

impl std::fmt::Debug for NatsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSource").finish_non_exhaustive()
    }
}

impl NatsSource {
    pub fn new(nats: Nats) -> Self {
        NatsSource { nats, backlog: None, messages: None, unacknowledged: None }
    }
}

fn consumer_name(projection: &ProjectionName) -> String {
    format!("projection-{}", projection.as_str())
}

#[async_trait]
impl Source for NatsSource {
    /// Every message already in the stream was published after its event committed, so the
    /// catch-up that follows reads it from the log: a new durable consumer can start after
    /// them instead of at the stream's first message. Noted only when the consumer is new.
    async fn prepare(&mut self, projection: &ProjectionName) -> Result<(), BusError> {
        self.backlog = None;
        self.nats.ensure_events_stream().await?;
        let stream = self.nats.stream(EVENTS_STREAM).await?;
        if stream.consumer_info(consumer_name(projection)).await.is_ok() {
            return Ok(());
        }
        let last = stream.get_info().await.map_err(|error| BusError::nats("stream info", error))?.state.last_sequence;
        if last == 0 {
            return Ok(());
        }
        if let Ok(message) = stream.get_raw_message(last).await
            && let Some(position) = codec::position_header(&message.headers)
        {
            self.backlog = Some((last, position));
        }
        Ok(())
    }

    async fn open(&mut self, from: Position, projection: &ProjectionName, _: &EventFilter) -> Result<(), BusError> {
        self.messages = None;
        self.unacknowledged = None;
        self.nats.ensure_events_stream().await?;
        let stream = self.nats.stream(EVENTS_STREAM).await?;
        // The durable consumer remembers what was acknowledged; a new one starts after the
        // backlog noted in `prepare` when the catch-up covered it (a log replica that lags
        // behind the bus would not have), else at the stream's beginning. Whatever it then
        // delivers below the projection's checkpoint is skipped.
        let deliver_policy = match self.backlog.take() {
            Some((sequence, position)) if from > position => {
                DeliverPolicy::ByStartSequence { start_sequence: sequence + 1 }
            }
            _ => DeliverPolicy::All,
        };
        let name = consumer_name(projection);
        let consumer = stream
            .get_or_create_consumer(
                &name,
                pull::Config {
                    durable_name: Some(name.clone()),
                    deliver_policy,
                    ack_policy: AckPolicy::All,
                    ack_wait: Duration::from_secs(30),
                    max_ack_pending: 100_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|error| BusError::nats("create consumer", error))?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(MAX_DELIVERY)
            .heartbeat(Duration::from_secs(2))
            .expires(Duration::from_secs(10))
            .messages()
            .await
            .map_err(|error| BusError::nats("consume", error))?;
        self.messages = Some(messages.ready_chunks(MAX_DELIVERY));
        Ok(())
    }

    async fn next(&mut self) -> Result<Delivery, BusError> {
        let messages = self.messages.as_mut().ok_or(BusError::SourceEnded)?;
        let Some(chunk) = messages.next().await else {
            return Err(BusError::SourceEnded);
        };
        let mut events = Vec::with_capacity(chunk.len());
        for message in chunk {
            let message = message.map_err(|error| BusError::nats("receive", error))?;
            let sequence = message.info().map(|info| info.stream_sequence).unwrap_or(0);
            events.push(codec::decode(&message.payload, sequence)?);
            self.unacknowledged = Some(message);
        }
        Ok(Delivery { events, complete_to: None })
    }

    async fn handled(&mut self, _: Position) -> Result<(), BusError> {
        if let Some(message) = self.unacknowledged.take() {
            message.ack().await.map_err(|error| BusError::nats("acknowledge", error))?;
        }
        Ok(())
    }
}
