//! The reporting projection: one in-memory read model fed by the bus's [`Consumer`], its state
//! and checkpoint changed together under one lock, rebuilt from position 0 on every start.
//!
//! ```text
//!  Consumer (EmbeddedSource | NatsSource) ──Batch──▶ ReportingProjection::apply
//!        state.apply(e) for each e; checkpoint = batch.checkpoint     (one write lock)
//!  ReportView::read(|state, as_of| …) ──▶ dashboard / trends / registers / governors
//! ```
//! [`haven_bus::Consumer`]: haven_bus::Consumer

pub mod dashboard;
pub mod governors;
pub mod registers;
pub mod state;
pub mod trends;

use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use haven_bus::{ApplyError, Batch, Projection, ProjectionName};
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

/// The read side: clones share the projection's state.
#[derive(Clone, Debug, Default)]
pub struct ReportView {
    shared: Arc<RwLock<Shared>>,
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
        let prefixes = ReportState::EVENT_TYPES.iter().map(|event_type| (*event_type).to_owned()).collect();
        EventFilter { event_type_prefixes: prefixes, ..Default::default() }
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
