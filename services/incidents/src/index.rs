//! Incidents' in-memory read model: every case, concern and alert folded from the log, for
//! lists, a learner's chronology across cases and schools, and the escalation timer.
//!
//! ```text
//!  log ─(incident-, concern-, alert- streams)─▶ follow_log ─▶ apply: decode ─▶ evolve
//!        ─▶ cases / concerns / alerts by id, with version, school and the positions of their events
//! ```
//! It is rebuilt from the log on every start (small: one entry per record). Commands never
//! decide on it: the app loads the stream itself, so a lagging index only delays a list.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use haven_eventlog_client::{EventLog, follow_log};
use haven_kernel::{Decider, Version};
use haven_proto::v1 as pb;
use haven_runtime::{ReadinessHandle, Shutdown};

use crate::domain::*;
use crate::events;

/// One record's folded state and where its events are.
#[derive(Clone, Debug)]
pub struct Indexed<T> {
    pub state: T,
    pub version: Version,
    /// Global positions of its events, oldest first (for chronologies).
    pub positions: Vec<u64>,
}

#[derive(Debug, Default)]
struct Inner {
    cases: BTreeMap<CaseId, Indexed<Option<Case>>>,
    concerns: BTreeMap<ConcernId, Indexed<Option<Concern>>>,
    alerts: BTreeMap<AlertId, Indexed<Option<Alert>>>,
}

/// Cases, concerns and alerts as the log says, shared by the service and the timer.
#[derive(Clone, Debug, Default)]
pub struct IncidentsIndex {
    inner: Arc<RwLock<Inner>>,
}

impl IncidentsIndex {
    /// Follows the log until `shutdown` (see [`follow_log`]); ready once caught up.
    pub async fn follow(self, log: Arc<dyn EventLog>, readiness: ReadinessHandle, shutdown: Shutdown) {
        let filter = pb::EventFilter {
            stream_categories: vec!["incident".into(), "concern".into(), "alert".into()],
            ..Default::default()
        };
        follow_log(log, filter, "incidents", |envelope| self.apply(envelope), readiness, shutdown).await;
    }

    /// Folds one event in. Events it cannot read are skipped (and logged without content).
    pub fn apply(&self, envelope: &pb::EventEnvelope) {
        let mut inner = self.inner.write().expect("incidents index lock");
        let Some((category, id)) = envelope.stream_id.split_once('-') else { return };
        let position = envelope.position;
        let version = Version(envelope.version);
        match category {
            "incident" => {
                let (Ok(key), Ok(event)) = (CaseId::parse(id), events::decode_case(envelope)) else {
                    return skipped(envelope);
                };
                let entry = inner.cases.entry(key).or_insert_with(|| Indexed {
                    state: CaseDecider::initial(),
                    version,
                    positions: Vec::new(),
                });
                entry.state = CaseDecider::evolve(entry.state.take(), &event);
                entry.version = version;
                entry.positions.push(position);
            }
            "concern" => {
                let (Ok(key), Ok(event)) = (ConcernId::parse(id), events::decode_concern(envelope)) else {
                    return skipped(envelope);
                };
                let entry = inner.concerns.entry(key).or_insert_with(|| Indexed {
                    state: ConcernDecider::initial(),
                    version,
                    positions: Vec::new(),
                });
                entry.state = ConcernDecider::evolve(entry.state.take(), &event);
                entry.version = version;
                entry.positions.push(position);
            }
            "alert" => {
                let (Ok(key), Ok(event)) = (AlertId::parse(id), events::decode_alert(envelope)) else {
                    return skipped(envelope);
                };
                let entry = inner.alerts.entry(key).or_insert_with(|| Indexed {
                    state: AlertDecider::initial(),
                    version,
                    positions: Vec::new(),
                });
                entry.state = AlertDecider::evolve(entry.state.take(), &event);
                entry.version = version;
                entry.positions.push(position);
            }
            _ => {}
        }
    }

    /// Every case, newest first.
    pub fn cases(&self) -> Vec<(Case, Version)> {
        let inner = self.inner.read().expect("incidents index lock");
        let mut cases: Vec<(Case, Version)> = inner
            .cases
            .values()
            .filter_map(|indexed| indexed.state.clone().map(|case| (case, indexed.version)))
            .collect();
        cases.sort_by(|(a, _), (b, _)| b.opened_at.cmp(&a.opened_at).then_with(|| a.case_id().cmp(b.case_id())));
        cases
    }

    /// Every concern, newest first.
    pub fn concerns(&self) -> Vec<(Concern, Version)> {
        let inner = self.inner.read().expect("incidents index lock");
        let mut concerns: Vec<(Concern, Version)> = inner
            .concerns
            .values()
            .filter_map(|indexed| indexed.state.clone().map(|concern| (concern, indexed.version)))
            .collect();
        concerns.sort_by(|(a, _), (b, _)| {
            b.details.raised_at.cmp(&a.details.raised_at).then_with(|| a.details.concern_id.cmp(&b.details.concern_id))
        });
        concerns
    }

    /// Alerts not acknowledged, for the escalation timer.
    pub fn unacknowledged_alerts(&self) -> Vec<Alert> {
        let inner = self.inner.read().expect("incidents index lock");
        inner
            .alerts
            .values()
            .filter_map(|indexed| indexed.state.clone())
            .filter(|alert| alert.acknowledged.is_none())
            .collect()
    }

    /// Alerts (acknowledged or not) with no concern raised from them yet.
    pub fn alerts_without_concern(&self) -> Vec<Alert> {
        let inner = self.inner.read().expect("incidents index lock");
        let with_concern: std::collections::BTreeSet<&AlertId> = inner
            .concerns
            .values()
            .filter_map(|indexed| indexed.state.as_ref().and_then(|concern| concern.details.alert_id.as_ref()))
            .collect();
        inner
            .alerts
            .values()
            .filter_map(|indexed| indexed.state.clone())
            .filter(|alert| !with_concern.contains(&alert.alert_id))
            .collect()
    }

    /// One alert as the index has it.
    pub fn alert(&self, alert_id: &AlertId) -> Option<Alert> {
        let inner = self.inner.read().expect("incidents index lock");
        inner.alerts.get(alert_id).and_then(|indexed| indexed.state.clone())
    }

    /// The cases and concerns naming a learner, across every school of the trust: the
    /// learner's chronology is their events, in log order.
    pub fn about_learner(&self, subject: &SubjectId) -> (Vec<Case>, Vec<Concern>) {
        let inner = self.inner.read().expect("incidents index lock");
        let cases = inner
            .cases
            .values()
            .filter_map(|indexed| indexed.state.clone())
            .filter(|case| case.opened.subject_ids.contains(subject))
            .collect();
        let concerns = inner
            .concerns
            .values()
            .filter_map(|indexed| indexed.state.clone())
            .filter(|concern| concern.details.subject_ids.contains(subject))
            .collect();
        (cases, concerns)
    }
}

fn skipped(envelope: &pb::EventEnvelope) {
    tracing::warn!(position = envelope.position, event_type = %envelope.event_type, "incidents index skipped an unreadable event");
}
