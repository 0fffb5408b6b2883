//! The filtering record's read model: every school's changes and filtering record, folded from
//! the log. Fed by a subscription (categories `filterchange` and `filtering`), rebuilt from
//! position 0 on every start, ready once caught up. It answers what spans streams: the
//! register of a school's changes, and the report over checks, reviews and over-blocking.
//!
//! ```text
//!  log ─(filterchange-*, filtering-*)─▶ apply ─▶ per school: changes · record
//!  ListFilteringChanges ─▶ changes(school)     GetFilteringReport ─▶ record(school) + changes
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use haven_eventlog_client::{EventLog, follow_log};
use haven_kernel::Decider;
use haven_proto::v1 as pb;
use haven_proto::v1::EventFilter;
use haven_runtime::{ReadinessHandle, Shutdown};

use super::domain::{Change, ChangeDecider, RecordDecider, SchoolFiltering};
use super::events;

#[derive(Debug, Default)]
struct School {
    /// By change id, with the stream version the change reflects.
    changes: BTreeMap<String, (Change, u64)>,
    record: SchoolFiltering,
}

/// Every school's filtering changes and record, as the log says.
#[derive(Clone, Debug, Default)]
pub struct GovernanceIndex {
    inner: Arc<RwLock<HashMap<String, School>>>,
}

impl GovernanceIndex {
    /// Follows the log until `shutdown` (see [`follow_log`]).
    pub async fn follow(self, log: Arc<dyn EventLog>, readiness: ReadinessHandle, shutdown: Shutdown) {
        let filter =
            EventFilter { stream_categories: vec!["filterchange".into(), "filtering".into()], ..Default::default() };
        follow_log(log, filter, "ingest-governance", |envelope| self.apply(envelope), readiness, shutdown).await;
    }

    /// Applies one event; unreadable ones are skipped (logged by position and type only).
    pub fn apply(&self, envelope: &pb::EventEnvelope) {
        let Some((category, id)) = envelope.stream_id.split_once('-') else { return };
        let mut inner = self.inner.write().expect("governance index lock");
        let school = inner.entry(envelope.school_id.clone()).or_default();
        match category {
            "filterchange" => match events::decode_change(envelope) {
                Ok(event) => {
                    let current = school.changes.remove(id).map(|(change, _)| change);
                    if let Some(change) = ChangeDecider::evolve(current, &event) {
                        school.changes.insert(id.to_owned(), (change, envelope.version));
                    }
                }
                Err(error) => tracing::error!(%error, "governance index skipped an unreadable event"),
            },
            "filtering" => match events::decode_record(envelope) {
                Ok(event) => school.record = RecordDecider::evolve(std::mem::take(&mut school.record), &event),
                Err(error) => tracing::error!(%error, "governance index skipped an unreadable event"),
            },
            _ => {}
        }
    }

    /// A school's changes with their versions, newest request first.
    pub fn changes(&self, school_id: &str) -> Vec<(Change, u64)> {
        let inner = self.inner.read().expect("governance index lock");
        let mut changes: Vec<_> =
            inner.get(school_id).map(|s| s.changes.values().cloned().collect()).unwrap_or_default();
        changes.sort_by(|(a, _), (b, _)| {
            b.requested_at.cmp(&a.requested_at).then_with(|| b.requested.change_id.cmp(&a.requested.change_id))
        });
        changes
    }

    /// A school's filtering record (checks, over-blocking reports, reviews).
    pub fn record(&self, school_id: &str) -> SchoolFiltering {
        let inner = self.inner.read().expect("governance index lock");
        inner.get(school_id).map(|s| s.record.clone()).unwrap_or_default()
    }
}
