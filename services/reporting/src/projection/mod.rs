//! The reporting projection: one in-memory read model fed by the bus's [`Consumer`], its state
//! and checkpoint changed together under one lock, rebuilt from position 0 on every start.
//!
//! ```text
//!  Consumer (EmbeddedSource | NatsSource) ──Batch──▶ ReportingProjection::apply
//!        state.apply(e) for each e; checkpoint = batch.checkpoint     (one write lock)
//!  ReportView::read(|state, as_of| …) ──▶ dashboard / trends / registers / governors
//!
//!  ReportView::rebuild(log): read_all from 0 (same filter) into a fresh ReportState, in pages,
//!    up to the live checkpoint ─▶ write lock: still at that checkpoint? swap state (checkpoint
//!    unchanged) : release, read on to the new checkpoint, try again      (ADR 0020)
//! ```
//! [`haven_bus::Consumer`]: haven_bus::Consumer

pub mod dashboard;
pub mod governors;
pub mod registers;
pub mod state;
pub mod trends;

use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use haven_bus::{ApplyError, Batch, Projection, ProjectionName};
use haven_eventlog_client::EventLog;
use haven_kernel::Position;
use haven_proto::v1::EventFilter;

pub use state::ReportState;

/// The projection's name (its JetStream durable consumer and metric label).
pub const PROJECTION_NAME: &str = "reporting";

#[derive(Debug, Default)]
struct Shared {
    state: ReportState,
    checkpoint: Position,
}

/// The last rebuild on request, for `ListProjections`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RebuildStatus {
    pub rebuilding: bool,
    /// When the last rebuild was swapped in (seconds since the epoch).
    pub last_rebuilt_at: Option<i64>,
    /// Events the last rebuild applied, and the checkpoint it was swapped in at.
    pub last_events: u64,
    pub last_checkpoint: u64,
    /// Why the last rebuild stopped, when it failed (the live state was kept).
    pub last_error: Option<String>,
}

/// What one rebuild did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rebuilt {
    /// Events read from the log and applied to the fresh state.
    pub events: u64,
    /// The checkpoint the fresh state was swapped in at (the live one's at that instant).
    pub checkpoint: u64,
}

/// Events per log read while rebuilding.
const REBUILD_PAGE: u32 = 4_096;

/// The read side: clones share the projection's state.
#[derive(Clone, Debug, Default)]
pub struct ReportView {
    shared: Arc<RwLock<Shared>>,
    rebuild: Arc<Mutex<RebuildStatus>>,
}

impl ReportView {
    /// Runs `query` on the state and the checkpoint it reflects (one past the last position
    /// applied).
    pub fn read<T>(&self, query: impl FnOnce(&ReportState, u64) -> T) -> T {
        let shared = self.shared.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        query(&shared.state, shared.checkpoint.0)
    }

    pub fn checkpoint(&self) -> Position {
        self.read(|_, checkpoint| Position(checkpoint))
    }

    pub fn rebuild_status(&self) -> RebuildStatus {
        self.rebuild.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Marks a rebuild as started; `false` when one is already running.
    pub fn begin_rebuild(&self) -> bool {
        let mut status = self.rebuild.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        !std::mem::replace(&mut status.rebuilding, true)
    }

    /// Undoes [`ReportView::begin_rebuild`] when the rebuild could not be started.
    pub fn end_rebuild_unstarted(&self) {
        self.rebuild.lock().unwrap_or_else(std::sync::PoisonError::into_inner).rebuilding = false;
    }

    /// Rebuilds the state from position 0 of `log` into a fresh [`ReportState`] while the live
    /// one keeps answering, and swaps it in once it stands at exactly the live checkpoint (the
    /// consumer goes on from there, so nothing is applied twice or missed). Call after
    /// [`ReportView::begin_rebuild`]; the outcome is kept for [`ReportView::rebuild_status`].
    pub async fn rebuild(&self, log: &dyn EventLog, now: i64) -> Result<Rebuilt, crate::Error> {
        let outcome = self.rebuild_from_zero(log).await;
        let mut status = self.rebuild.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        status.rebuilding = false;
        match &outcome {
            Ok(rebuilt) => {
                status.last_rebuilt_at = Some(now);
                status.last_events = rebuilt.events;
                status.last_checkpoint = rebuilt.checkpoint;
                status.last_error = None;
            }
            Err(error) => status.last_error = Some(error.to_string()),
        }
        outcome
    }

    async fn rebuild_from_zero(&self, log: &dyn EventLog) -> Result<Rebuilt, crate::Error> {
        let filter = filter();
        let (mut state, mut position, mut events) = (ReportState::default(), 0u64, 0u64);
        loop {
            let target = self.checkpoint().0;
            if target < position {
                // The live projection was reset meanwhile: start again.
                (state, position, events) = (ReportState::default(), 0, 0);
                continue;
            }
            while position < target {
                let slice = log.read_all(Position(position), REBUILD_PAGE, &filter).await?;
                for event in slice.events.iter().take_while(|event| event.position < target) {
                    state.apply(event);
                    events += 1;
                }
                position = if slice.end_of_log { target } else { slice.next_position.0.min(target) };
            }
            let mut shared = self.shared.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            if shared.checkpoint.0 == position {
                shared.state = state;
                return Ok(Rebuilt { events, checkpoint: position });
            }
        }
    }
}

fn filter() -> EventFilter {
    let prefixes = ReportState::EVENT_TYPES.iter().map(|event_type| (*event_type).to_owned()).collect();
    EventFilter { event_type_prefixes: prefixes, ..Default::default() }
}

/// The bus side of the projection. Hand it to `haven_bus::Consumer::new`; keep its
/// [`ReportingProjection::view`] for the queries.
#[derive(Debug)]
pub struct ReportingProjection {
    name: ProjectionName,
    view: ReportView,
}

impl Default for ReportingProjection {
    fn default() -> Self {
        Self::new()
    }
}

impl ReportingProjection {
    pub fn new() -> Self {
        let name = ProjectionName::parse(PROJECTION_NAME).expect("a valid projection name");
        ReportingProjection { name, view: ReportView::default() }
    }

    pub fn view(&self) -> ReportView {
        self.view.clone()
    }
}

#[async_trait]
impl Projection for ReportingProjection {
    fn name(&self) -> &ProjectionName {
        &self.name
    }

    fn filter(&self) -> EventFilter {
        filter()
    }

    async fn checkpoint(&mut self) -> Result<Position, ApplyError> {
        Ok(self.view.checkpoint())
    }

    async fn apply(&mut self, batch: Batch<'_>) -> Result<(), ApplyError> {
        let mut shared = self.view.shared.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        for event in batch.events {
            shared.state.apply(event);
        }
        shared.checkpoint = batch.checkpoint;
        Ok(())
    }

    async fn reset(&mut self) -> Result<(), ApplyError> {
        *self.view.shared.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Shared::default();
        Ok(())
    }
}
