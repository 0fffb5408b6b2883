//! Readiness: each component registers, says when it is ready (or why not), and `/readyz`
//! answers 200 only when every registered component is ready.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// One component's state, as reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComponentReadiness {
    pub name: String,
    pub ready: bool,
    /// Why it is not ready; empty when ready.
    pub reason: String,
}

/// The process's readiness: every component registered with it.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    components: Arc<Mutex<BTreeMap<String, (bool, String)>>>,
}

/// A component's handle for reporting its own state.
#[derive(Clone, Debug)]
pub struct ReadinessHandle {
    name: String,
    components: Arc<Mutex<BTreeMap<String, (bool, String)>>>,
}

impl Readiness {
    /// Registers a component, not ready until it says so.
    pub fn register(&self, name: &str, reason: &str) -> ReadinessHandle {
        self.components.lock().expect("readiness lock").insert(name.to_owned(), (false, reason.to_owned()));
        ReadinessHandle { name: name.to_owned(), components: Arc::clone(&self.components) }
    }

    /// Every component, by name.
    pub fn report(&self) -> Vec<ComponentReadiness> {
        let components = self.components.lock().expect("readiness lock");
        components
            .iter()
            .map(|(name, (ready, reason))| ComponentReadiness {
                name: name.clone(),
                ready: *ready,
                reason: reason.clone(),
            })
            .collect()
    }

    /// True when at least one component is registered and all are ready.
    pub fn is_ready(&self) -> bool {
        let components = self.components.lock().expect("readiness lock");
        !components.is_empty() && components.values().all(|(ready, _)| *ready)
    }
}

impl ReadinessHandle {
    /// Whether this component said it is ready.
    pub fn is_ready(&self) -> bool {
        self.components.lock().expect("readiness lock").get(&self.name).is_some_and(|(ready, _)| *ready)
    }

    pub fn set_ready(&self) {
        self.set(true, "");
    }

    pub fn set_not_ready(&self, reason: &str) {
        self.set(false, reason);
    }

    fn set(&self, ready: bool, reason: &str) {
        self.components.lock().expect("readiness lock").insert(self.name.clone(), (ready, reason.to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_component_is() {
        let readiness = Readiness::default();
        assert!(!readiness.is_ready(), "nothing registered is not ready");
        let log = readiness.register("eventlog", "opening");
        let identity = readiness.register("identity", "catching up");
        log.set_ready();
        assert!(!readiness.is_ready());
        identity.set_ready();
        assert!(readiness.is_ready());
        identity.set_not_ready("fell behind");
        assert!(!readiness.is_ready());
        let report = readiness.report();
        assert_eq!(
            report[1],
            ComponentReadiness { name: "identity".into(), ready: false, reason: "fell behind".into() }
        );
    }
}
