//! `haven_incidents_*`: what the on-call engineer needs to see about alerts without reading a
//! case — how many are waiting for acknowledgement, how long the oldest has waited, how many
//! were escalated. Labels are school ids, severities and escalation steps; never a learner,
//! a person or free text.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use crate::domain::{Alert, Severity, UnixTime};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WaitingLabels {
    school: String,
    severity: &'static str,
    /// Escalation steps already taken (0: still with the school's DSL).
    escalations: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgeLabels {
    school: String,
    severity: &'static str,
}

/// The alert gauges and counters; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct AlertMetrics {
    unacknowledged: Family<WaitingLabels, Gauge>,
    oldest_unacknowledged: Family<AgeLabels, Gauge>,
    escalated: Counter,
    /// The label sets set last time, so those no longer waiting are removed (not cleared
    /// first: a scrape never sees every gauge at zero for a moment).
    last: Arc<Mutex<(Vec<WaitingLabels>, Vec<AgeLabels>)>>,
}

pub(crate) fn severity_label(severity: Severity) -> &'static str {
    match severity {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

impl AlertMetrics {
    /// Registers the metrics under `haven_incidents_*`.
    pub fn register(&self, metrics: &haven_runtime::Metrics) {
        metrics.register(
            "incidents_alerts_unacknowledged",
            "Alerts nobody has acknowledged, by school, severity and escalation steps taken",
            self.unacknowledged.clone(),
        );
        metrics.register(
            "incidents_oldest_unacknowledged_alert_age_seconds",
            "How long the oldest unacknowledged alert has waited, by school and severity",
            self.oldest_unacknowledged.clone(),
        );
        metrics.register(
            "incidents_alert_escalations",
            "Times the escalation timer moved an alert on (one or more steps)",
            self.escalated.clone(),
        );
    }

    /// Replaces the gauges with what `alerts` (the unacknowledged ones) say at `now`.
    pub fn observe_waiting(&self, alerts: &[Alert], now: UnixTime) {
        let mut waiting: HashMap<WaitingLabels, i64> = HashMap::new();
        let mut oldest: HashMap<AgeLabels, i64> = HashMap::new();
        for alert in alerts.iter().filter(|alert| alert.acknowledged.is_none()) {
            let severity = severity_label(alert.severity);
            let school = alert.school_id.as_str().to_owned();
            let escalations = u32::try_from(alert.escalations.len()).unwrap_or(u32::MAX);
            *waiting.entry(WaitingLabels { school: school.clone(), severity, escalations }).or_default() += 1;
            let age = (now.0 - alert.raised_at.0).max(0);
            let entry = oldest.entry(AgeLabels { school, severity }).or_default();
            *entry = (*entry).max(age);
        }
        let mut last = self.last.lock().expect("alert metrics lock");
        for gone in last.0.iter().filter(|labels| !waiting.contains_key(labels)) {
            self.unacknowledged.remove(gone);
        }
        for gone in last.1.iter().filter(|labels| !oldest.contains_key(labels)) {
            self.oldest_unacknowledged.remove(gone);
        }
        for (labels, count) in &waiting {
            self.unacknowledged.get_or_create(labels).set(*count);
        }
        for (labels, age) in &oldest {
            self.oldest_unacknowledged.get_or_create(labels).set(*age);
        }
        *last = (waiting.into_keys().collect(), oldest.into_keys().collect());
    }

    /// Counts escalation steps the timer took.
    pub fn escalated(&self, steps: u64) {
        self.escalated.inc_by(steps);
    }

    /// Unacknowledged alerts counted now for a school and severity, over every step (tests).
    pub fn unacknowledged(&self, school: &str, severity: Severity) -> i64 {
        let last = self.last.lock().expect("alert metrics lock");
        last.0
            .iter()
            .filter(|labels| labels.school == school && labels.severity == severity_label(severity))
            .filter_map(|labels| self.unacknowledged.get(labels).map(|gauge| gauge.get()))
            .sum()
    }

    /// The age of the oldest unacknowledged alert of a school and severity, if any (tests).
    pub fn oldest_age_s(&self, school: &str, severity: Severity) -> Option<i64> {
        let labels = AgeLabels { school: school.to_owned(), severity: severity_label(severity) };
        self.oldest_unacknowledged.get(&labels).map(|gauge| gauge.get())
    }
}

#[cfg(test)]
mod tests {
    use haven_authz::{Role, UserId};
    use haven_kernel::SchoolId;

    use super::*;
    use crate::domain::{Acknowledgement, AlertId, EscalationStep};

    fn alert(id: &str, school: &str, severity: Severity, raised_at: i64, steps: u32) -> Alert {
        Alert {
            alert_id: AlertId::parse(id).unwrap(),
            school_id: SchoolId::parse(school).unwrap(),
            severity,
            raised_at: UnixTime(raised_at),
            acknowledged: None,
            escalations: (1..=steps)
                .map(|level| EscalationStep {
                    level,
                    role: Role::DeputyDsl,
                    acknowledge_by: UnixTime(raised_at + 900 * i64::from(level)),
                    next_acknowledge_by: None,
                })
                .collect(),
        }
    }

    #[test]
    fn gauges_follow_the_waiting_alerts_and_forget_those_acknowledged() {
        let metrics = AlertMetrics::default();
        let registry = haven_runtime::Metrics::default();
        metrics.register(&registry);
        let mut acknowledged = alert("a-3", "oak", Severity::Critical, 100, 0);
        acknowledged.acknowledged = Some(Acknowledgement {
            by: UserId::parse("u-1").unwrap(),
            at: UnixTime(200),
            within_deadline: true,
            concern_id: None,
            note: String::new(),
        });
        let waiting = vec![
            alert("a-1", "oak", Severity::Critical, 1_000, 0),
            alert("a-2", "oak", Severity::Critical, 400, 1),
            acknowledged,
            alert("a-4", "elm", Severity::High, 1_500, 0),
        ];
        metrics.observe_waiting(&waiting, UnixTime(2_000));
        assert_eq!(metrics.unacknowledged("oak", Severity::Critical), 2, "the acknowledged one is not counted");
        assert_eq!(metrics.oldest_age_s("oak", Severity::Critical), Some(1_600));
        assert_eq!(metrics.unacknowledged("elm", Severity::High), 1);
        let text = registry.encode();
        assert!(
            text.contains(
                r#"haven_incidents_alerts_unacknowledged{school="oak",severity="critical",escalations="1"} 1"#
            ),
            "{text}"
        );

        // Later, only elm's alert still waits: oak's gauges are gone, not left at their old values.
        metrics.observe_waiting(&waiting[3..], UnixTime(2_100));
        assert_eq!(metrics.unacknowledged("oak", Severity::Critical), 0);
        assert_eq!(metrics.oldest_age_s("oak", Severity::Critical), None);
        assert_eq!(metrics.oldest_age_s("elm", Severity::High), Some(600));
        assert!(!registry.encode().contains(r#"school="oak""#));
    }
}
