//! The consumer: feeds one projection, in global-position order, exactly once in effect.
//!
//! ```text
//!  start: checkpoint ◀── projection ─▶ catch up from the log (read_all to the head)
//!         ─▶ source.open(checkpoint) ─▶ deliveries (any order, repeats, holes) ─▶ deliver:
//!               sort, drop repeats and positions below the checkpoint
//!               a hole before the next position ─▶ read it from the log (read_all)
//!               matching events ─▶ projection.apply(events, new checkpoint)   (one transaction)
//!         ─▶ source.handled(checkpoint)   (the JetStream ack, after the store)
//!  a handler refuses event e: the events before it are stored, e is retried alone with
//!  backoff, then parked (recorded with the checkpoint that moves past it) and counted in
//!  `haven_bus_parked_events_total`; the projection goes on. Nothing is silently dropped.
//!  a source or store failure: back off, reload the checkpoint, start again.
//! ```
//! Each projection has its own consumer task, so one projection's retries never hold up another.

use std::sync::Arc;
use std::time::Duration;

use haven_eventlog_client::{EventFilter, EventLog, LogError, matches};
use haven_kernel::Position;
use haven_proto::v1::EventEnvelope;
use haven_runtime::Shutdown;
use tokio::sync::watch;
use tracing::Instrument as _;

use crate::metrics::ProjectionLabel;
use crate::projection::{ApplyError, Batch, ParkedEvent, Projection};
use crate::source::{Delivery, Source};
use crate::{BusError, BusMetrics, HandlerError};

/// Events per log read when catching up or filling a gap.
const LOG_PAGE: u32 = 1_000;

/// How a refused event is retried before it is parked.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Attempts in all, the first included, before parking.
    pub attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { attempts: 5, first_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(5) }
    }
}

/// A projection with its place in the log.
pub struct Consumer<P> {
    projection: P,
    filter: EventFilter,
    log: Arc<dyn EventLog>,
    retry: RetryPolicy,
    metrics: BusMetrics,
    label: ProjectionLabel,
    /// The stored checkpoint, as last read or written.
    next: Position,
    progress: watch::Sender<Position>,
}

impl<P> std::fmt::Debug for Consumer<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").field("projection", &self.label.projection).field("next", &self.next).finish()
    }
}

impl<P: Projection> Consumer<P> {
    pub fn new(projection: P, log: Arc<dyn EventLog>, metrics: BusMetrics) -> Self {
        let label = BusMetrics::label(projection.name().as_str());
        let filter = projection.filter();
        Consumer {
            projection,
            filter,
            log,
            retry: RetryPolicy::default(),
            metrics,
            label,
            next: Position(0),
            progress: watch::Sender::new(Position(0)),
        }
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// The stored checkpoint as last seen; follow it with [`Consumer::progress`].
    pub fn checkpoint(&self) -> Position {
        self.next
    }

    /// Every stored checkpoint, as it is stored.
    pub fn progress(&self) -> watch::Receiver<Position> {
        self.progress.subscribe()
    }

    /// Reads the stored checkpoint from the projection.
    pub async fn load(&mut self) -> Result<Position, BusError> {
        self.next = self.projection.checkpoint().await.map_err(|error| self.store_error(error))?;
        self.progress.send_replace(self.next);
        Ok(self.next)
    }

    /// `replay from 0`: forgets the projection's state and rebuilds it from the log.
    pub async fn rebuild(&mut self) -> Result<Position, BusError> {
        self.projection.reset().await.map_err(|error| self.store_error(error))?;
        self.load().await?;
        debug_assert_eq!(self.next, Position(0), "a reset projection starts at 0");
        self.catch_up().await
    }

    /// Reads the log from the checkpoint to its head; returns the new checkpoint.
    pub async fn catch_up(&mut self) -> Result<Position, BusError> {
        loop {
            let slice = self.log.read_all(self.next, LOG_PAGE, &self.filter).await?;
            if slice.next_position > self.next {
                self.apply_run(&slice.events, slice.next_position).await?;
            }
            if slice.end_of_log {
                return Ok(self.next);
            }
        }
    }

    /// Handles one delivery from a source: events in any order, with repeats, possibly with
    /// positions missing (filled from the log). Returns once everything up to the highest
    /// position delivered is stored.
    pub async fn deliver(&mut self, delivery: Delivery) -> Result<(), BusError> {
        let Delivery { mut events, complete_to } = delivery;
        events.sort_unstable_by_key(|event| event.position);
        events.dedup_by_key(|event| event.position);
        let vouched = complete_to.unwrap_or(Position(0));
        let mut run = Vec::new();
        let mut run_end = self.next;
        for event in events {
            let position = Position(event.position);
            if position < run_end {
                continue;
            }
            if position > run_end && position >= vouched {
                self.apply_run(&std::mem::take(&mut run), run_end).await?;
                self.fill_gap(position).await?;
                run_end = self.next;
                if position < run_end {
                    continue;
                }
            }
            if matches(&self.filter, &event) {
                run.push(event);
            }
            run_end = Position(position.0 + 1);
        }
        let run_end = run_end.max(vouched);
        if run_end > self.next {
            self.apply_run(&run, run_end).await?;
        }
        Ok(())
    }

    /// Runs until `shutdown`, resuming after any failure from the stored checkpoint. Gives
    /// the projection back at the end.
    pub async fn run(mut self, mut source: impl Source, shutdown: Shutdown) -> P {
        let mut backoff = self.retry.first_backoff;
        while !shutdown.is_triggered() {
            match self.run_once(&mut source, &shutdown).await {
                Ok(()) => break,
                Err(error) => {
                    self.metrics.source_failures.get_or_create(&self.label).inc();
                    tracing::warn!(projection = %self.label.projection, %error, "consumer stopped; resuming");
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = shutdown.triggered() => break,
                    }
                    backoff = (backoff * 2).min(self.retry.max_backoff);
                }
            }
        }
        self.projection
    }

    async fn run_once(&mut self, source: &mut impl Source, shutdown: &Shutdown) -> Result<(), BusError> {
        source.prepare(self.projection.name()).await?;
        self.load().await?;
        self.catch_up().await?;
        source.open(self.next, self.projection.name(), &self.filter).await?;
        loop {
            let delivery = tokio::select! {
                delivery = source.next() => delivery?,
                () = shutdown.triggered() => return Ok(()),
            };
            self.deliver(delivery).await?;
            source.handled(self.next).await?;
        }
    }

    /// Reads the log from the checkpoint until `until` is covered.
    async fn fill_gap(&mut self, until: Position) -> Result<(), BusError> {
        let mut filled = 0;
        while self.next < until {
            let limit = (until.0 - self.next.0).min(u64::from(LOG_PAGE)) as u32;
            let slice = self.log.read_all(self.next, limit, &self.filter).await?;
            // Only the hole: what follows it is on its way from the bus.
            let end = slice.next_position.min(until);
            let events: Vec<_> = slice.events.into_iter().filter(|event| event.position < end.0).collect();
            if end > self.next {
                filled += events.len() as u64;
                self.apply_run(&events, end).await?;
            }
            if slice.end_of_log && self.next < until {
                // The bus is ahead of the log we read (a lagging replica): try again later.
                return Err(LogError::Unavailable(format!("the log ends before position {until}")).into());
            }
        }
        self.metrics.gap_filled.get_or_create(&self.label).inc_by(filled);
        Ok(())
    }

    /// Stores `events` (matching, ordered, at or after the checkpoint) with `checkpoint`;
    /// a refused event is retried, then parked. Traced events are stored inside a
    /// `projection apply` span continuing their trace (`trace.rs`).
    async fn apply_run(&mut self, events: &[EventEnvelope], checkpoint: Position) -> Result<(), BusError> {
        match crate::trace::apply_span(&self.label.projection, events, checkpoint.0) {
            Some(span) => self.apply_run_untraced(events, checkpoint).instrument(span).await,
            None => self.apply_run_untraced(events, checkpoint).await,
        }
    }

    /// [`Consumer::apply_run`]'s work, inside whatever span it chose.
    async fn apply_run_untraced(&mut self, events: &[EventEnvelope], checkpoint: Position) -> Result<(), BusError> {
        let mut rest = events;
        loop {
            let batch = Batch { events: rest, checkpoint, parked: None };
            match self.projection.apply(batch).await {
                Ok(()) => {
                    self.stored(checkpoint, rest.len());
                    return Ok(());
                }
                Err(ApplyError::Store(reason)) => return Err(self.store_error(ApplyError::Store(reason))),
                Err(ApplyError::Handler { index, error }) => {
                    for event in &rest[..index] {
                        self.apply_one(event, None).await?;
                    }
                    self.apply_one(&rest[index], Some(error)).await?;
                    rest = &rest[index + 1..];
                }
            }
        }
    }

    /// Applies one event on its own, retrying with backoff; parks it when every attempt fails.
    async fn apply_one(&mut self, event: &EventEnvelope, mut failed: Option<HandlerError>) -> Result<(), BusError> {
        let checkpoint = Position(event.position + 1);
        let mut attempts = u32::from(failed.is_some());
        let mut backoff = self.retry.first_backoff;
        while attempts < self.retry.attempts {
            if attempts > 0 {
                self.metrics.retries.get_or_create(&self.label).inc();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(self.retry.max_backoff);
            }
            attempts += 1;
            let batch = Batch { events: std::slice::from_ref(event), checkpoint, parked: None };
            match self.projection.apply(batch).await {
                Ok(()) => {
                    self.stored(checkpoint, 1);
                    return Ok(());
                }
                Err(ApplyError::Handler { error, .. }) => failed = Some(error),
                Err(store) => return Err(self.store_error(store)),
            }
        }
        let error = failed.unwrap_or_else(|| HandlerError::new("unknown", ""));
        let parked = ParkedEvent {
            position: event.position,
            event_id: uuid::Uuid::from_slice(&event.event_id).map_or_else(|_| String::new(), |id| id.to_string()),
            event_type: event.event_type.clone(),
            stream_id: event.stream_id.clone(),
            attempts,
            error_kind: error.kind.to_owned(),
            error_detail: error.detail,
        };
        let batch = Batch { events: &[], checkpoint, parked: Some(&parked) };
        self.projection.apply(batch).await.map_err(|store| self.store_error(store))?;
        self.metrics.parked.get_or_create(&self.label).inc();
        tracing::error!(
            projection = %self.label.projection,
            position = event.position,
            event_type = %event.event_type,
            error_kind = error.kind,
            attempts,
            "event parked after every retry failed"
        );
        self.stored(checkpoint, 0);
        Ok(())
    }

    fn stored(&mut self, checkpoint: Position, handled: usize) {
        debug_assert!(checkpoint >= self.next, "checkpoints only move forwards");
        self.next = checkpoint;
        self.metrics.handled.get_or_create(&self.label).inc_by(handled as u64);
        self.metrics.checkpoint.get_or_create(&self.label).set(checkpoint.0 as i64);
        self.progress.send_replace(checkpoint);
    }

    fn store_error(&self, error: ApplyError) -> BusError {
        BusError::Store { projection: self.label.projection.clone(), reason: error.to_string() }
    }
}
