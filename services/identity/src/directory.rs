//! The school directory: a read model of every school, fed by a subscription to the log and
//! rebuilt from position 0 on every start (it is small). Ready once it has caught up.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use haven_eventlog_client::EventLog;
use haven_kernel::{SchoolId, Version};
use haven_proto::v1::EventFilter;
use haven_runtime::{ReadinessHandle, Shutdown};

use crate::domain::{School, SchoolDecider};
use crate::events;
use crate::follow::follow_log;

/// Every school, by id, with the version of its stream.
#[derive(Clone, Debug, Default)]
pub struct SchoolDirectory {
    schools: Arc<RwLock<BTreeMap<SchoolId, (School, Version)>>>,
}

impl SchoolDirectory {
    pub fn list(&self) -> Vec<(School, Version)> {
        self.schools.read().expect("directory lock").values().cloned().collect()
    }

    pub fn get(&self, school_id: &SchoolId) -> Option<(School, Version)> {
        self.schools.read().expect("directory lock").get(school_id).cloned()
    }

    /// Follows the log until `shutdown` (see [`follow_log`]).
    pub async fn follow(self, log: Arc<dyn EventLog>, readiness: ReadinessHandle, shutdown: Shutdown) {
        let filter = EventFilter { stream_categories: vec!["school".into()], ..Default::default() };
        follow_log(log, filter, "schools", |envelope| self.apply(envelope), readiness, shutdown).await;
    }

    fn apply(&self, envelope: &haven_proto::v1::EventEnvelope) {
        let event = match events::decode_school(envelope) {
            Ok(event) => event,
            Err(error) => {
                tracing::error!(%error, "school directory skipped an unreadable event");
                return;
            }
        };
        let school_id = match &event {
            crate::domain::SchoolEvent::Registered { school_id, .. }
            | crate::domain::SchoolEvent::PupilNumbersChanged { school_id, .. } => school_id.clone(),
        };
        let mut schools = self.schools.write().expect("directory lock");
        let current = schools.remove(&school_id).map(|(school, _)| school);
        if let Some(school) = <SchoolDecider as haven_kernel::Decider>::evolve(current, &event) {
            schools.insert(school_id, (school, Version(envelope.version)));
        }
    }
}
