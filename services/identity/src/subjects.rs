//! The protected directory of learners: every subject by id and by school, fed by a
//! subscription to `subject` streams and rebuilt from position 0 on every start. Readable only
//! through identity's gRPC, where each read is authorised (DSL, deputies and principal of the
//! school; the trust safeguarding lead) and recorded.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use haven_eventlog_client::{EventEnvelope, EventFilter, EventLog, follow_log};
use haven_kernel::{Decider, SchoolId, Version};
use haven_runtime::{ReadinessHandle, Shutdown};

use crate::domain::{Subject, SubjectDecider};
use crate::events;

/// Every subject, by id, with the version of its stream.
#[derive(Clone, Debug, Default)]
pub struct SubjectDirectory {
    subjects: Arc<RwLock<BTreeMap<String, (Subject, Version)>>>,
}

impl SubjectDirectory {
    pub fn get(&self, subject_id: &str) -> Option<(Subject, Version)> {
        self.subjects.read().expect("subjects lock").get(subject_id).cloned()
    }

    /// A school's subjects, by id.
    pub fn of_school(&self, school_id: &SchoolId) -> Vec<(Subject, Version)> {
        let subjects = self.subjects.read().expect("subjects lock");
        subjects.values().filter(|(subject, _)| subject.school_id == *school_id).cloned().collect()
    }

    /// Follows the log until `shutdown`.
    pub async fn follow(self, log: Arc<dyn EventLog>, readiness: ReadinessHandle, shutdown: Shutdown) {
        let filter = EventFilter { stream_categories: vec!["subject".into()], ..Default::default() };
        follow_log(log, filter, "subjects", |envelope| self.apply(envelope), readiness, shutdown).await;
    }

    fn apply(&self, envelope: &EventEnvelope) {
        let event = match events::decode_subject(envelope) {
            Ok(event) => event,
            Err(error) => {
                tracing::error!(%error, "subject directory skipped an unreadable event");
                return;
            }
        };
        let Some(subject_id) = envelope.stream_id.strip_prefix("subject-").map(str::to_owned) else { return };
        let mut subjects = self.subjects.write().expect("subjects lock");
        let current = subjects.remove(&subject_id).map(|(subject, _)| subject);
        if let Some(subject) = SubjectDecider::evolve(current, &event) {
            subjects.insert(subject_id, (subject, Version(envelope.version)));
        }
    }
}
