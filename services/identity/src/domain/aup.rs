//! The acceptable use policy (stream `aup-<trust id>`): published in numbered versions. A new
//! version makes every earlier acceptance outdated, so everyone must accept again before
//! they may do anything else.

use haven_kernel::Decider;

/// The AUP in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Aup {
    pub version: u32,
    /// SHA-256 of the policy text: acceptance is tied to exact wording.
    pub text_sha256: [u8; 32],
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AupCommand {
    Publish { version: u32, text_sha256: [u8; 32] },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AupEvent {
    Published { version: u32, text_sha256: [u8; 32] },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AupError {
    #[error("aup_version must be {expected}, the next version (got {offered})")]
    NotNextVersion { offered: u32, expected: u32 },
    #[error("this text is already the current AUP")]
    SameText,
}

/// The AUP aggregate.
#[derive(Debug)]
pub struct AupDecider;

impl Decider for AupDecider {
    type State = Option<Aup>;
    type Command = AupCommand;
    type Event = AupEvent;
    type Error = AupError;

    fn initial() -> Self::State {
        None
    }

    fn decide(state: &Self::State, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error> {
        let AupCommand::Publish { version, text_sha256 } = command;
        let expected = state.as_ref().map_or(1, |aup| aup.version + 1);
        if *version != expected {
            return Err(AupError::NotNextVersion { offered: *version, expected });
        }
        if state.as_ref().is_some_and(|aup| aup.text_sha256 == *text_sha256) {
            return Err(AupError::SameText);
        }
        Ok(vec![AupEvent::Published { version: *version, text_sha256: *text_sha256 }])
    }

    fn evolve(_state: Self::State, event: &Self::Event) -> Self::State {
        let AupEvent::Published { version, text_sha256 } = event;
        Some(Aup { version: *version, text_sha256: *text_sha256 })
    }
}

#[cfg(test)]
mod tests {
    use haven_kernel::fold;

    use super::*;

    #[test]
    fn versions_are_published_in_order_from_one() {
        let first = AupCommand::Publish { version: 1, text_sha256: [1; 32] };
        let history = AupDecider::decide(&None, &first).unwrap();
        let state = fold::<AupDecider>(&history);
        assert_eq!(state.as_ref().map(|aup| aup.version), Some(1));
        assert_eq!(
            AupDecider::decide(&state, &AupCommand::Publish { version: 3, text_sha256: [2; 32] }),
            Err(AupError::NotNextVersion { offered: 3, expected: 2 })
        );
        assert_eq!(AupDecider::decide(&state, &first), Err(AupError::NotNextVersion { offered: 1, expected: 2 }));
        assert_eq!(
            AupDecider::decide(&state, &AupCommand::Publish { version: 2, text_sha256: [1; 32] }),
            Err(AupError::SameText)
        );
        assert_eq!(
            AupDecider::decide(&None, &AupCommand::Publish { version: 0, text_sha256: [1; 32] }),
            Err(AupError::NotNextVersion { offered: 0, expected: 1 })
        );
    }
}
