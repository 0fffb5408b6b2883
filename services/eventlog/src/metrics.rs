//! The event log's metrics: what an operator watches at 3 am. No labels carry personal data.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// Counters the writer updates after each group commit.
#[derive(Clone, Debug)]
pub struct LogMetrics {
    pub events_appended: Counter,
    pub group_commits: Counter,
    pub failed_writes: Counter,
    pub head_position: Gauge,
    /// Seconds per durable write (atomic batch plus fsync).
    pub write_seconds: Histogram,
    /// Events per group commit.
    pub group_events: Histogram,
}

impl Default for LogMetrics {
    fn default() -> Self {
        LogMetrics {
            events_appended: Counter::default(),
            group_commits: Counter::default(),
            failed_writes: Counter::default(),
            head_position: Gauge::default(),
            write_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            group_events: Histogram::new(exponential_buckets(1.0, 4.0, 10)),
        }
    }
}

impl LogMetrics {
    /// Registers every metric under `haven_eventlog_…`.
    pub fn register(&self, metrics: &haven_runtime::Metrics) {
        metrics.register("eventlog_events_appended", "Events durably appended", self.events_appended.clone());
        metrics.register("eventlog_group_commits", "Durable writes (one fsync each)", self.group_commits.clone());
        metrics.register("eventlog_failed_writes", "Durable writes that failed", self.failed_writes.clone());
        metrics.register("eventlog_head_position", "Next global position to be written", self.head_position.clone());
        metrics.register(
            "eventlog_write_seconds",
            "Time per durable write, batch and fsync",
            self.write_seconds.clone(),
        );
        metrics.register("eventlog_group_events", "Events per group commit", self.group_events.clone());
    }
}
