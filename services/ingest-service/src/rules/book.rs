//! The alert rules in force, per school, as the log says (ADR 0028): the configured defaults,
//! the trust's latest `AlertRulesChanged` and each school's, followed from the log the way
//! attribution follows logins and leases.
//!
//! ```text
//!  alertrules-trust, alertrules-school-<school> ─▶ RuleBook::apply (newest version per scope)
//!  Pipeline, per batch ─▶ RuleBook::in_force(school) ─▶ settings + the two versions
//! ```
//! `start` reads them all before any line is taken, then follows. Each event holds its scope's whole overrides, so applying one replaces the scope's; an
//! older version arriving late (the follower behind a change the app applied) is ignored.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use haven_eventlog_client::{EventLog, LogError, follow_log};
use haven_kernel::Position;
use haven_proto::v1 as pb;
use haven_runtime::{ReadinessHandle, Shutdown};
use prost::Message;

use super::RuleSettings;
use super::settings::merge;

/// The event type of a change of one scope's rules.
pub const ALERT_RULES_CHANGED: &str = "ingest.AlertRulesChanged";
/// The stream category of every scope's rules.
pub const STREAM_CATEGORY: &str = "alertrules";

/// The rules a school's lines are judged by, and which versions they came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InForce {
    pub settings: RuleSettings,
    /// How many changes the trust's rules have had (0: the configured defaults).
    pub trust_version: u64,
    /// ... and the school's (0: the trust's, unchanged).
    pub school_version: u64,
}

/// One scope's latest change.
#[derive(Clone, Debug, Default)]
struct Scope {
    version: u64,
    overrides: pb::AlertRuleSettings,
}

#[derive(Debug, Default)]
struct Inner {
    defaults: RuleSettings,
    trust: Scope,
    schools: HashMap<String, Scope>,
    /// Computed on first use after a change; cleared by every change.
    in_force: HashMap<String, Arc<InForce>>,
}

/// The rules in force, shared by the pipeline and the gRPC service.
#[derive(Clone, Debug, Default)]
pub struct RuleBook {
    inner: Arc<RwLock<Inner>>,
}

impl RuleBook {
    /// A book with `defaults` (the configuration's) until the log says otherwise.
    pub fn new(defaults: RuleSettings) -> Self {
        RuleBook { inner: Arc::new(RwLock::new(Inner { defaults, ..Inner::default() })) }
    }

    /// The configured defaults.
    pub fn defaults(&self) -> RuleSettings {
        self.inner.read().expect("rule book lock").defaults.clone()
    }

    /// The rules in force for `school` (the trust's own for `""`).
    pub fn in_force(&self, school: &str) -> Arc<InForce> {
        if let Some(found) = self.inner.read().expect("rule book lock").in_force.get(school) {
            return Arc::clone(found);
        }
        let mut inner = self.inner.write().expect("rule book lock");
        let trust_settings = merge(&inner.defaults, &inner.trust.overrides);
        let scope = if school.is_empty() { None } else { inner.schools.get(school) };
        let computed = Arc::new(InForce {
            settings: scope.map_or(trust_settings.clone(), |scope| merge(&trust_settings, &scope.overrides)),
            trust_version: inner.trust.version,
            school_version: scope.map_or(0, |scope| scope.version),
        });
        inner.in_force.insert(school.to_owned(), Arc::clone(&computed));
        computed
    }

    /// Takes a recorded change (from the log, or from the app right after it appended).
    pub fn record(&self, change: &pb::AlertRulesChanged) {
        let mut inner = self.inner.write().expect("rule book lock");
        let scope = if change.school_id.is_empty() {
            &mut inner.trust
        } else {
            inner.schools.entry(change.school_id.clone()).or_default()
        };
        if change.version <= scope.version {
            return;
        }
        *scope = Scope { version: change.version, overrides: change.settings.clone().unwrap_or_default() };
        inner.in_force.clear();
    }

    /// Reads every change recorded so far, so the first line after a restart is judged by
    /// the rules in force (`start` calls it before any listener takes a line). Returns how
    /// many changes it read.
    pub async fn restore(&self, log: &dyn EventLog) -> Result<u64, LogError> {
        let filter = pb::EventFilter { stream_categories: vec![STREAM_CATEGORY.into()], ..Default::default() };
        let mut from = Position(0);
        let mut read = 0;
        loop {
            let slice = log.read_all(from, 1_000, &filter).await?;
            for envelope in &slice.events {
                self.apply(envelope);
                read += 1;
            }
            from = slice.next_position;
            if slice.end_of_log {
                return Ok(read);
            }
        }
    }

    /// Follows every scope's changes from the log until `shutdown`.
    pub async fn follow(self, log: Arc<dyn EventLog>, readiness: ReadinessHandle, shutdown: Shutdown) {
        let filter = pb::EventFilter { stream_categories: vec![STREAM_CATEGORY.into()], ..Default::default() };
        follow_log(log, filter, "ingest-rules", |envelope| self.apply(envelope), readiness, shutdown).await;
    }

    /// Applies one event; an unreadable one is skipped (logged by position and type only).
    pub fn apply(&self, envelope: &pb::EventEnvelope) {
        if envelope.event_type != ALERT_RULES_CHANGED {
            return;
        }
        match pb::AlertRulesChanged::decode(envelope.payload.as_slice()) {
            Ok(change) => self.record(&change),
            Err(_) => tracing::error!(
                position = envelope.position,
                event_type = %envelope.event_type,
                "the rule book skipped an unreadable event"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(school: &str, version: u64, threshold: u32) -> pb::AlertRulesChanged {
        pb::AlertRulesChanged {
            school_id: school.into(),
            version,
            settings: Some(pb::AlertRuleSettings { repeat_threshold: Some(threshold), ..Default::default() }),
            changed_by: "user-lead".into(),
            reason: "invented".into(),
        }
    }

    #[test]
    fn the_newest_version_of_each_scope_is_in_force_and_late_old_ones_are_ignored() {
        let book = RuleBook::new(RuleSettings::default());
        assert_eq!(book.in_force("oak").settings, RuleSettings::default());
        assert_eq!((book.in_force("oak").trust_version, book.in_force("oak").school_version), (0, 0));
        book.record(&change("", 1, 4));
        book.record(&change("oak", 2, 1));
        book.record(&change("oak", 1, 7));
        let oak = book.in_force("oak");
        assert_eq!((oak.settings.repeat_threshold, oak.trust_version, oak.school_version), (1, 1, 2));
        let elm = book.in_force("elm");
        assert_eq!((elm.settings.repeat_threshold, elm.trust_version, elm.school_version), (4, 1, 0));
        book.record(&change("", 2, 6));
        assert_eq!(book.in_force("elm").settings.repeat_threshold, 6, "a trust change reaches every school");
        assert_eq!(book.in_force("oak").settings.repeat_threshold, 1, "but not a field the school set");
        assert_eq!(book.in_force("oak").trust_version, 2);
    }
}
