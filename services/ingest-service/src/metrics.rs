//! `haven_ingest_*`: lines, breaches, refusals, alerts, UDP drops and failed TLS handshakes per
//! school and format.
//! Labels are school ids, formats, reasons and severities — never a host, address or user.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::pipeline::Summary;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub school: String,
    pub format: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub school: String,
    pub format: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SeverityLabels {
    pub school: String,
    pub severity: String,
}

/// Why a batch of the NATS ingest buffer was refused. No school label: the school of a refused
/// batch is whatever a publisher wrote, so it could grow the label set without bound (the
/// warning in the log names it).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SchoolLabels {
    pub school: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InputLabels {
    pub school: String,
    pub input: String,
}

/// Ingest's counters; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct IngestMetrics {
    lines: Family<SourceLabels, Counter>,
    breaches: Family<SourceLabels, Counter>,
    repeats: Family<SourceLabels, Counter>,
    duplicates: Family<SourceLabels, Counter>,
    quarantined: Family<ReasonLabels, Counter>,
    alerts: Family<SeverityLabels, Counter>,
    dropped: Family<InputLabels, Counter>,
    buffer_refused: Family<RefusalLabels, Counter>,
    tls_handshake_failures: Family<SchoolLabels, Counter>,
}

impl IngestMetrics {
    pub fn register(&self, metrics: &haven_runtime::Metrics) {
        metrics.register("ingest_lines", "Lines received and processed", self.lines.clone());
        metrics.register("ingest_breaches", "BreachObserved events appended", self.breaches.clone());
        metrics.register("ingest_repeats_collapsed", "Lines folded into an earlier breach", self.repeats.clone());
        metrics.register("ingest_duplicates", "Lines already received, dropped", self.duplicates.clone());
        metrics.register("ingest_quarantined", "Lines refused, by reason", self.quarantined.clone());
        metrics.register("ingest_alerts", "Safeguarding alerts raised, by severity", self.alerts.clone());
        metrics.register("ingest_dropped", "Lines dropped before parsing (UDP queue full)", self.dropped.clone());
        metrics.register(
            "ingest_buffer_refused",
            "NATS ingest-buffer batches refused unread, by reason",
            self.buffer_refused.clone(),
        );
        metrics.register(
            "ingest_tls_handshake_failures",
            "Syslog TLS connections closed before their handshake completed (the configured school's listener)",
            self.tls_handshake_failures.clone(),
        );
    }

    pub(crate) fn lines(&self, school: &str, format: &str, summary: &Summary) {
        let labels = SourceLabels { school: school.to_owned(), format: format.to_owned() };
        self.lines.get_or_create(&labels).inc_by(summary.lines_received);
        self.breaches.get_or_create(&labels).inc_by(summary.breaches_observed);
        self.repeats.get_or_create(&labels).inc_by(summary.repeats_collapsed);
        self.duplicates.get_or_create(&labels).inc_by(summary.duplicates_dropped);
    }

    pub(crate) fn quarantined(&self, school: &str, format: &str, reason: &str) {
        let labels = ReasonLabels { school: school.to_owned(), format: format.to_owned(), reason: reason.to_owned() };
        self.quarantined.get_or_create(&labels).inc();
    }

    pub(crate) fn alert(&self, school: &str, severity: &str) {
        self.alerts.get_or_create(&SeverityLabels { school: school.to_owned(), severity: severity.to_owned() }).inc();
    }

    /// A line dropped before it reached the pipeline (a full UDP queue).
    pub fn dropped(&self, school: &str, input: &str) {
        self.dropped.get_or_create(&InputLabels { school: school.to_owned(), input: input.to_owned() }).inc();
    }

    /// A batch of the NATS ingest buffer refused unread.
    pub fn buffer_refused(&self, reason: &str) {
        self.buffer_refused.get_or_create(&RefusalLabels { reason: reason.to_owned() }).inc();
    }

    /// A syslog TLS handshake that failed or timed out on a listener of `school`.
    pub fn tls_handshake_failed(&self, school: &str) {
        self.tls_handshake_failures.get_or_create(&SchoolLabels { school: school.to_owned() }).inc();
    }

    /// Failed TLS handshakes so far on `school`'s listeners.
    pub fn tls_handshake_failures_count(&self, school: &str) -> u64 {
        self.tls_handshake_failures.get_or_create(&SchoolLabels { school: school.to_owned() }).get()
    }

    /// Buffer batches refused so far for `reason`.
    pub fn buffer_refused_count(&self, reason: &str) -> u64 {
        self.buffer_refused.get_or_create(&RefusalLabels { reason: reason.to_owned() }).get()
    }

    /// Lines dropped so far for a school and input (for tests and the banner).
    pub fn dropped_count(&self, school: &str, input: &str) -> u64 {
        self.dropped.get_or_create(&InputLabels { school: school.to_owned(), input: input.to_owned() }).get()
    }
}
