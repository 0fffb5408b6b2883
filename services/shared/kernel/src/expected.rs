//! What a writer expects of a stream before appending to it (optimistic concurrency).

use crate::Version;

/// The writer's expectation of a stream's current state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExpectedVersion {
    /// No expectation.
    Any,
    /// The stream must not exist (creating an aggregate).
    NoStream,
    /// The stream must exist, at any version.
    StreamExists,
    /// The stream's last event must have exactly this version.
    Exact(Version),
}

impl ExpectedVersion {
    /// Whether a stream whose last version is `current` (None: no stream) meets this expectation.
    pub fn is_met_by(self, current: Option<Version>) -> bool {
        match (self, current) {
            (ExpectedVersion::Any, _) => true,
            (ExpectedVersion::NoStream, current) => current.is_none(),
            (ExpectedVersion::StreamExists, current) => current.is_some(),
            (ExpectedVersion::Exact(expected), Some(actual)) => expected == actual,
            (ExpectedVersion::Exact(_), None) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expectations() {
        let v3 = Some(Version(3));
        assert!(ExpectedVersion::Any.is_met_by(None));
        assert!(ExpectedVersion::Any.is_met_by(v3));
        assert!(ExpectedVersion::NoStream.is_met_by(None));
        assert!(!ExpectedVersion::NoStream.is_met_by(v3));
        assert!(!ExpectedVersion::StreamExists.is_met_by(None));
        assert!(ExpectedVersion::StreamExists.is_met_by(v3));
        assert!(ExpectedVersion::Exact(Version(3)).is_met_by(v3));
        assert!(!ExpectedVersion::Exact(Version(2)).is_met_by(v3));
        assert!(!ExpectedVersion::Exact(Version(0)).is_met_by(None));
    }
}
