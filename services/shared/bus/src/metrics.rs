//! The bus's metrics, `haven_bus_*`. The only label is a projection's name, which code chooses.
//! `haven_bus_parked_events_total` is the alert: any increase means an event a projection
//! could not handle was set aside (its record is in the projection's store).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProjectionLabel {
    pub projection: String,
}

/// Every bus metric of a process. Cheap to clone; register once.
#[derive(Clone, Debug, Default)]
pub struct BusMetrics {
    pub relay_published: Counter,
    pub relay_checkpoint: Gauge,
    /// Committed events the relay has not had acknowledged yet, as of its last checkpoint tick.
    pub relay_lag: Gauge,
    pub relay_leader: Gauge,
    pub relay_failures: Counter,
    pub handled: Family<ProjectionLabel, Counter>,
    pub checkpoint: Family<ProjectionLabel, Gauge>,
    pub gap_filled: Family<ProjectionLabel, Counter>,
    pub retries: Family<ProjectionLabel, Counter>,
    pub parked: Family<ProjectionLabel, Counter>,
    pub source_failures: Family<ProjectionLabel, Counter>,
}

impl BusMetrics {
    pub fn register(&self, metrics: &haven_runtime::Metrics) {
        metrics.register(
            "bus_relay_published_events",
            "Events JetStream acknowledged from the relay",
            self.relay_published.clone(),
        );
        metrics.register(
            "bus_relay_checkpoint_position",
            "One past the last position the relay published",
            self.relay_checkpoint.clone(),
        );
        metrics.register(
            "bus_relay_lag_events",
            "Events in the log not yet acknowledged by JetStream (the leading relay; 0 elsewhere)",
            self.relay_lag.clone(),
        );
        metrics.register("bus_relay_leader", "1 while this process holds the relay lease", self.relay_leader.clone());
        metrics.register(
            "bus_relay_failures",
            "Relay runs ended by an error (then retried)",
            self.relay_failures.clone(),
        );
        metrics.register("bus_handled_events", "Events a projection handled", self.handled.clone());
        metrics.register(
            "bus_checkpoint_position",
            "One past the last position a projection stored",
            self.checkpoint.clone(),
        );
        metrics.register(
            "bus_gap_filled_events",
            "Events a projection read from the log to fill a gap on the bus",
            self.gap_filled.clone(),
        );
        metrics.register("bus_handler_retries", "Handler attempts retried after an error", self.retries.clone());
        metrics.register(
            "bus_parked_events",
            "Events parked after every retry failed (alert on any increase)",
            self.parked.clone(),
        );
        metrics.register(
            "bus_source_failures",
            "Consumer runs ended by a source or store error (then resumed)",
            self.source_failures.clone(),
        );
    }

    pub(crate) fn label(projection: &str) -> ProjectionLabel {
        ProjectionLabel { projection: projection.to_owned() }
    }
}
