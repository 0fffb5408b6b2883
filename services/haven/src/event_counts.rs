//! A small projection for `haven up`: how many events of each type the bus has delivered.
//! It shows the bus working end to end (banner and `haven_bus_demo_events{event_type}` in
//! `/metrics`); it lives in memory and is rebuilt from position 0 on every start. Event types
//! are chosen by code, so they are safe as a metric label.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use haven_bus::{ApplyError, Batch, Projection, ProjectionName};
use haven_kernel::Position;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventTypeLabel {
    pub event_type: String,
}

#[derive(Debug, Default)]
struct State {
    counts: BTreeMap<String, u64>,
    checkpoint: Position,
}

/// Events delivered, by type. Clones share the counts.
#[derive(Clone, Debug)]
pub struct EventCounts {
    name: ProjectionName,
    state: Arc<Mutex<State>>,
    gauge: Family<EventTypeLabel, Gauge>,
}

impl EventCounts {
    pub fn new(metrics: &haven_runtime::Metrics) -> Self {
        let gauge = Family::default();
        metrics.register("bus_demo_events", "Events the bus delivered to the demo projection, by type", gauge.clone());
        let name = ProjectionName::parse("event-counts").expect("a valid name");
        EventCounts { name, state: Arc::default(), gauge }
    }

    /// (event type, count), by type.
    pub fn counts(&self) -> Vec<(String, u64)> {
        let state = self.state.lock().expect("event counts lock");
        state.counts.iter().map(|(event_type, count)| (event_type.clone(), *count)).collect()
    }
}

#[async_trait]
impl Projection for EventCounts {
    fn name(&self) -> &ProjectionName {
        &self.name
    }

    async fn checkpoint(&mut self) -> Result<Position, ApplyError> {
        Ok(self.state.lock().expect("event counts lock").checkpoint)
    }

    async fn apply(&mut self, batch: Batch<'_>) -> Result<(), ApplyError> {
        // One lock for the counts and the checkpoint: both change together or not at all.
        let mut state = self.state.lock().expect("event counts lock");
        for event in batch.events {
            let count = state.counts.entry(event.event_type.clone()).or_default();
            *count += 1;
            let label = EventTypeLabel { event_type: event.event_type.clone() };
            self.gauge.get_or_create(&label).set(*count as i64);
        }
        state.checkpoint = batch.checkpoint;
        Ok(())
    }

    async fn reset(&mut self) -> Result<(), ApplyError> {
        *self.state.lock().expect("event counts lock") = State::default();
        self.gauge.clear();
        Ok(())
    }
}
