//! The process's one Prometheus registry. Names follow `haven_<subsystem>_<name>_<unit>[_total]`;
//! labels never carry names, free text or URLs.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::{Metric, Registry};

/// A shared registry: components register their metrics once, `/metrics` encodes them.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
}

impl Metrics {
    /// Registers a metric under `haven_<name>` (the prefix is added here).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry.lock().expect("metrics lock").register(format!("haven_{name}"), help, metric);
    }

    /// The Prometheus text exposition of every registered metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        let registry = self.registry.lock().expect("metrics lock");
        encode(&mut text, &registry).expect("writing to a String cannot fail");
        text
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::metrics::counter::Counter;

    use super::*;

    #[test]
    fn registered_metrics_are_encoded_with_the_prefix() {
        let metrics = Metrics::default();
        let appends: Counter = Counter::default();
        metrics.register("eventlog_appends", "Append calls", appends.clone());
        appends.inc_by(3);
        let text = metrics.encode();
        assert!(text.contains("haven_eventlog_appends_total 3"), "{text}");
    }
}
