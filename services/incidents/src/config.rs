//! Incidents' settings (`incidents.*` in Haven's configuration, ADR 0006).

use serde::{Deserialize, Serialize};

use crate::domain::EscalationPolicy;

/// What an operator may tune.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IncidentsConfig {
    /// Seconds a critical alert may go unacknowledged before each escalation step
    /// (deputies, then the principal, then the trust's safeguarding lead). Default 900.
    pub escalate_after_s: i64,
}

impl Default for IncidentsConfig {
    fn default() -> Self {
        IncidentsConfig { escalate_after_s: EscalationPolicy::default().acknowledge_within_seconds }
    }
}

impl IncidentsConfig {
    /// Refuses settings out of range, naming the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(60..=86_400).contains(&self.escalate_after_s) {
            return Err(("escalate_after_s", format!("must be 60..=86400 seconds, not {}", self.escalate_after_s)));
        }
        Ok(())
    }

    /// The escalation policy these settings give.
    pub fn escalation(&self) -> EscalationPolicy {
        EscalationPolicy { acknowledge_within_seconds: self.escalate_after_s, ..EscalationPolicy::default() }
    }
}
