//! Custody's read model: every custody record and every school-owned device, folded from the
//! log, and who has left (identity's `UserDisabled`). Fed by a subscription to the log and
//! rebuilt from position 0 on every start; ready once caught up. It answers what needs more
//! than one stream: the records the end-of-day sweep looks at, and the register's allocations
//! (by school, held by leavers, overdue).
//!
//! ```text
//!  log ─(custody-*, device-*, user-*)─▶ apply ─▶ records · devices · leavers
//!  sweep ─▶ open_seized_between(day)      ListAllocations ─▶ allocations(filter, page)
//! ```

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};

use haven_eventlog_client::{EventLog, follow_log};
use haven_kernel::{Decider, SchoolId, Version};
use haven_proto::v1 as pb;
use haven_proto::v1::EventFilter;
use haven_runtime::{ReadinessHandle, Shutdown};
use prost::Message;

use crate::domain::{CustodyDecider, CustodyRecord, Holder, RegisterDecider, SchoolDevice, UnixTime};
use crate::events;

#[derive(Debug, Default)]
struct Inner {
    records: BTreeMap<String, (CustodyRecord, Version)>,
    devices: BTreeMap<String, (SchoolDevice, Version)>,
    /// User ids (not principal ids) of people who have left.
    leavers: HashSet<String>,
}

/// What [`CustodyIndex::allocations`] lists.
#[derive(Clone, Debug, Default)]
pub struct AllocationFilter {
    /// `None`: every school (trust-wide readers).
    pub school: Option<SchoolId>,
    pub leavers_only: bool,
    /// Past `expected_return_at` at `now`.
    pub overdue_only: bool,
    pub now: UnixTime,
}

/// Custody records and the device register, as the log says.
#[derive(Clone, Debug, Default)]
pub struct CustodyIndex {
    inner: Arc<RwLock<Inner>>,
}

impl CustodyIndex {
    /// Follows the log until `shutdown` (see [`follow_log`]).
    pub async fn follow(self, log: Arc<dyn EventLog>, readiness: ReadinessHandle, shutdown: Shutdown) {
        let filter = EventFilter {
            stream_categories: vec!["custody".into(), "device".into(), "user".into()],
            ..Default::default()
        };
        follow_log(log, filter, "custody", |envelope| self.apply(envelope), readiness, shutdown).await;
    }

    /// Applies one event; other events are ignored, unreadable ones skipped (and logged by
    /// position and type only).
    pub fn apply(&self, envelope: &pb::EventEnvelope) {
        let Some((category, id)) = envelope.stream_id.split_once('-') else { return };
        let mut inner = self.inner.write().expect("custody index lock");
        match category {
            "custody" => match events::decode_custody(envelope) {
                Ok(event) => {
                    let current = inner.records.remove(id).map(|(record, _)| record);
                    if let Some(record) = CustodyDecider::evolve(current, &event) {
                        inner.records.insert(id.to_owned(), (record, Version(envelope.version)));
                    }
                }
                Err(error) => tracing::error!(%error, "custody index skipped an unreadable event"),
            },
            "device" => match events::decode_register(envelope) {
                Ok(event) => {
                    let current = inner.devices.remove(id).map(|(device, _)| device);
                    if let Some(device) = RegisterDecider::evolve(current, &event) {
                        inner.devices.insert(id.to_owned(), (device, Version(envelope.version)));
                    }
                }
                Err(error) => tracing::error!(%error, "custody index skipped an unreadable event"),
            },
            "user" if envelope.event_type == "identity.UserDisabled" => {
                if let Ok(event) = pb::UserDisabled::decode(envelope.payload.as_slice()) {
                    inner.leavers.insert(event.user_id);
                }
            }
            _ => {}
        }
    }

    /// One record as the index has it.
    pub fn record(&self, custody_id: &str) -> Option<(CustodyRecord, Version)> {
        self.inner.read().expect("custody index lock").records.get(custody_id).cloned()
    }

    /// Ids of the records seized in `[from, until)` whose custody has not ended: what the
    /// end-of-day sweep looks at (it re-reads each from its stream).
    pub fn open_seized_between(&self, from: UnixTime, until: UnixTime) -> Vec<String> {
        let inner = self.inner.read().expect("custody index lock");
        inner
            .records
            .iter()
            .filter(|(_, (record, _))| record.seized_at >= from && record.seized_at < until && !record.ended())
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Whether a user (by user id) has left.
    pub fn has_left(&self, user_id: &str) -> bool {
        self.inner.read().expect("custody index lock").leavers.contains(user_id)
    }

    /// Allocated devices matching `filter`, ordered by device id, from after `after`, at most
    /// `limit`; and whether more follow.
    pub fn allocations(
        &self,
        filter: &AllocationFilter,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<(SchoolDevice, Version)>, bool) {
        let inner = self.inner.read().expect("custody index lock");
        let mut matching = inner
            .devices
            .iter()
            .filter(|(id, _)| after.is_none_or(|after| id.as_str() > after))
            .map(|(_, entry)| entry)
            .filter(|(device, _)| filter.school.as_ref().is_none_or(|school| &device.school_id == school))
            .filter(|(device, _)| {
                let Some(allocation) = &device.allocation else { return false };
                let leaver = match &allocation.holder {
                    Holder::Staff { user_id } => inner.leavers.contains(user_id),
                    // Identity records no leaving date for learners yet.
                    Holder::Learner { .. } => false,
                };
                let overdue = allocation.expected_return_at.is_some_and(|due| due < filter.now);
                (!filter.leavers_only || leaver) && (!filter.overdue_only || overdue)
            });
        let page: Vec<_> = matching.by_ref().take(limit).cloned().collect();
        let more = matching.next().is_some();
        (page, more)
    }
}
